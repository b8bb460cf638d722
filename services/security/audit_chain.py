"""The tamper-evident access audit: an SM3 hash chain with SM2-signed checkpoints, failing closed.

:class:`ChainedAuditLog` is a drop-in for :class:`services.audit.AuditLog`: the same ``record(...)`` and
``events()``, the same FHIR AuditEvent-shaped entries, plus ``seq``, ``prev`` and ``hash``. The file is
append-only JSON lines:

- an **entry**: ``{"hash":"…", <canonical JSON of the entry>}``, where ``hash`` = SM3(prev ‖ canonical JSON of the
  entry without its hash) (GB/T 32905-2016), ``prev`` is the previous entry's hash (64 zeros for the first) and
  ``seq`` counts from 1 without gaps. Canonical JSON: sorted keys, no spaces, UTF-8.
- a **checkpoint** every ``checkpoint_every`` entries and on :meth:`ChainedAuditLog.checkpoint`:
  ``{"type":"checkpoint","n":…,"seq":…,"head":…,"time":…,"signer":…,"sig":…}``, an SM2 signature
  (GB/T 32918.2-2016) over the sequence number and hash of the entry just before it.
- a **key operation** (account, consent and key changes; :meth:`ChainedAuditLog.record_operation`) is an entry that
  also carries ``opsig``: ``{"signer":…,"sig":…}``, an SM2 signature over the event alone (without ``seq``, ``prev``,
  ``hash``), so each such operation is attributable on its own (non-repudiation, GB/T 22239-2019 8.1.4.9 抗抵赖),
  not only through the checkpoint that follows it.
- beside the log, ``<log>.head``: the signed sequence number, hash, checkpoint count and byte size of the log as
  last made durable. It catches truncation of the tail; it is rewritten on every durable write.

:func:`verify_chain` reads it all back and raises :class:`AuditTampered` (HG-1101) at the first entry that was
modified, deleted, inserted or reordered, or whose checkpoint signature is bad.

**Durability.** ``record`` returns only once its entry is written; with ``sync_every=1`` (the default) also fsynced
and the head re-signed, so a crash or power cut cannot lose an entry whose data was released. Callers in other threads
share that work (group commit): whoever's turn it is writes, fsyncs and signs for every entry queued meanwhile. With
``sync_every=N`` the fsync and head signature happen every N entries (and on checkpoints and :meth:`close`): a process
crash still loses nothing (the entry is in the kernel), a power cut may lose up to N-1 acknowledged entries. If a
write or fsync fails, ``record`` removes what it wrote and raises :class:`AuditWriteFailed` (HG-1102): the caller
must not release the data the entry covers.

    log = ChainedAuditLog(Path("var/audit/access.jsonl"), SM2KeyPair.load(Path("var/keys/audit-sm2.pem"), create=True))
    log.record(viewer, "read", "Person/P001", "success")
    log.verify()                                                     # ChainReport(entries=1, …) or HG-1101
"""

from __future__ import annotations

import base64
import datetime as dt
import fcntl
import json
import os
import threading
import time
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ontology.errors import HealthGraphError
from services.audit import AuditLog
from services.privacy import Viewer
from services.security.errors import AuditTampered, AuditWriteFailed, KeyNotFound
from services.security.gm import SM2KeyPair, sm3, write_secret

GENESIS = "0" * 64
"""The ``prev`` of the first entry."""

RESERVED = frozenset({"seq", "prev", "hash", "type", "opsig", "signer", "sig"})
"""Detail names ``record`` refuses: the chain's own fields."""

_ENTRY_PREFIX = b'{"hash":"'


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str).encode("utf-8")


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def entry_line(entry: dict[str, Any]) -> tuple[str, bytes]:
    """(hash, line) of an entry that already carries its ``seq`` and ``prev``."""
    body = _canonical(entry)
    digest = sm3(bytes.fromhex(entry["prev"]) + body).hex()
    # the hash leads the line, so verifying hashes the bytes as written instead of re-serialising them
    return digest, _ENTRY_PREFIX + digest.encode() + b'",' + body[1:] + b"\n"


def _entry_digest(line: bytes, prev: Any) -> tuple[str, str]:
    """(claimed, actual) hash of an entry line (without its newline) chained to ``prev``."""
    claimed = line[len(_ENTRY_PREFIX):len(_ENTRY_PREFIX) + 64].decode("ascii", "replace")
    body = b"{" + line[len(_ENTRY_PREFIX) + 66:]
    try:
        actual = sm3(bytes.fromhex(prev) + body).hex()
    except (ValueError, TypeError):
        actual = ""
    return claimed, actual


def _signed(doc: dict[str, Any], key: SM2KeyPair) -> dict[str, Any]:
    unsigned = {**doc, "signer": key.key_id}
    return {**unsigned, "sig": base64.b64encode(key.sign(_canonical(unsigned))).decode()}


def _signature_ok(doc: dict[str, Any], keys: dict[str, SM2KeyPair]) -> bool:
    key = keys.get(doc.get("signer", ""))
    try:
        sig = base64.b64decode(doc.get("sig", ""), validate=True)
    except ValueError:
        return False
    unsigned = {k: v for k, v in doc.items() if k != "sig"}
    return key is not None and key.verify(_canonical(unsigned), sig)


@dataclass(frozen=True)
class _Tail:
    """What the writer knows of the end of the log: last entry, checkpoint count, byte size."""

    seq: int = 0
    hash: str = GENESIS
    checkpoints: int = 0
    size: int = 0


@dataclass
class _Request:
    """One caller's entry waiting for a group commit."""

    event: dict[str, Any]
    done: bool = False
    error: HealthGraphError | None = None


def _operation_ok(entry: dict[str, Any], keys: dict[str, SM2KeyPair]) -> bool:
    opsig = entry.get("opsig")
    if not isinstance(opsig, dict):
        return False
    event = {k: v for k, v in entry.items() if k not in ("opsig", "seq", "prev", "hash")}
    return _signature_ok({**event, **opsig}, keys)


@dataclass(frozen=True)
class ChainReport:
    """The result of a verification that found nothing wrong."""

    path: str
    entries: int
    checkpoints: int
    signed_seq: int
    """The last entry covered by a valid checkpoint signature."""
    head_seq: int
    """The last entry the signed head file vouches for (entries after it may still be lost undetected)."""
    torn_tail: bool
    """The last line is incomplete: a write interrupted by a crash, never acknowledged; the next write removes it."""
    seconds: float
    operations: int = 0
    """Key operations whose own SM2 signature verified."""
    ok: bool = True


def _tampered(path: Path, kind: str, seq: int, why: str, line: int | None = None, **more: Any) -> AuditTampered:
    where = f" (line {line})" if line else ""
    return AuditTampered(f"审计日志被篡改 audit log tampered: {kind} at seq {seq}{where}: {why}",
                         path=str(path), kind=kind, seq=seq, line=line, **more)


def head_path(path: Path) -> Path:
    """The signed head file beside the log ``path``."""
    return path.with_name(path.name + ".head")


def _read_head(path: Path, keys: dict[str, SM2KeyPair]) -> dict[str, Any] | None:
    hp = head_path(path)
    try:
        head = json.loads(hp.read_bytes())
        fields = int(head["seq"]), str(head["head"]), int(head["checkpoints"]), int(head["size"])
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        raise _tampered(path, "modified", 0, f"head file {hp.name} is unreadable") from None
    if head.get("type") != "head" or not _signature_ok(head, keys):
        raise _tampered(path, "bad_signature", fields[0], f"head file {hp.name} signature does not verify")
    return head


def _classify_gap(path: Path, rest: Iterable[bytes], expected: int, found: Any, line: int) -> AuditTampered:
    """Why entry ``expected`` is not where it should be, given the lines after it."""
    if not isinstance(found, int) or isinstance(found, bool):
        return _tampered(path, "modified", expected, "seq is not a number", line)
    if found < expected:
        return _tampered(path, "inserted", expected, f"entry seq {found} appears again before {expected}", line)
    for raw in rest:
        try:
            if json.loads(raw).get("seq") == expected and raw.startswith(_ENTRY_PREFIX):
                return _tampered(path, "reordered", expected, f"entry {found} comes before entry {expected}", line)
        except ValueError:
            continue
    return _tampered(path, "deleted", expected, f"entries {expected}..{found - 1} are missing", line)


def verify_chain(path: Path, keys: Iterable[SM2KeyPair]) -> ChainReport:
    """Check every hash link, checkpoint signature and the head file of the log at ``path``.

    ``keys`` are the trusted SM2 (public) keys; checkpoints signed by any other key count as forged.
    Returns a :class:`ChainReport`, or raises :class:`AuditTampered` naming the first bad ``seq`` and its ``kind``
    (modified, deleted, inserted, reordered, bad_signature).
    """
    started = time.perf_counter()
    trusted = {k.key_id: k for k in keys}
    head = _read_head(path, trusted)  # before the log: the head never runs ahead of what was written
    seq, prev, n, signed_seq, torn, operations = 0, GENESIS, 0, 0, False, 0
    head_seq = head["seq"] if head else 0
    try:
        fh: IO[bytes] = path.open("rb")
    except FileNotFoundError:
        if head and head["seq"]:
            raise _tampered(path, "deleted", 1, "the log file is missing but its head file is not") from None
        return ChainReport(str(path), 0, 0, 0, 0, False, time.perf_counter() - started)
    with fh:
        lines: Iterator[bytes] = iter(fh)
        for number, raw in enumerate(lines, 1):
            if not raw.endswith(b"\n"):
                torn = True
                break
            line = raw[:-1]
            try:
                obj = json.loads(line)
            except ValueError:
                raise _tampered(path, "modified", seq + 1, "the line is not JSON", number) from None
            if not isinstance(obj, dict):
                raise _tampered(path, "modified", seq + 1, "the line is not a JSON object", number)
            if obj.get("type") == "checkpoint":
                if obj.get("n") != n + 1:
                    kind = "deleted" if isinstance(obj.get("n"), int) and obj["n"] > n + 1 else "reordered"
                    raise _tampered(path, kind, seq, f"checkpoint {obj.get('n')} where {n + 1} was due", number,
                                    checkpoint=obj.get("n"))
                if obj.get("seq") != seq:
                    raise _tampered(path, "reordered", seq, f"checkpoint {n + 1} signs seq {obj.get('seq')} "
                                                            f"but follows entry {seq}", number, checkpoint=n + 1)
                if not _signature_ok(obj, trusted):
                    raise _tampered(path, "bad_signature", seq, f"checkpoint {n + 1} signature does not verify "
                                                                f"(signer {obj.get('signer')!r})", number,
                                    checkpoint=n + 1)
                if obj.get("head") != prev:
                    raise _tampered(path, "modified", signed_seq + 1, f"entries {signed_seq + 1}..{seq} were "
                                    f"rewritten: checkpoint {n + 1} signed another hash", number, checkpoint=n + 1,
                                    range=[signed_seq + 1, seq])
                n, signed_seq = n + 1, seq
                continue
            claimed, actual = _entry_digest(line, obj.get("prev"))
            if not line.startswith(_ENTRY_PREFIX) or claimed != obj.get("hash") or claimed != actual:
                raise _tampered(path, "modified", seq + 1, "its hash does not match its content", number)
            if obj.get("seq") != seq + 1:  # an intact entry out of place
                raise _classify_gap(path, lines, seq + 1, obj.get("seq"), number)
            if obj.get("prev") != prev:  # an intact entry whose predecessor was rewritten with a fresh hash
                raise _tampered(path, "modified", seq, f"entry {seq} no longer links to entry {seq + 1}", number)
            seq, prev = seq + 1, claimed
            if "opsig" in obj:
                if not _operation_ok(obj, trusted):
                    raise _tampered(path, "bad_signature", seq, f"key operation {obj.get('action')!r} signature does "
                                    f"not verify (signer {(obj['opsig'] or {}).get('signer')!r})", number)
                operations += 1
            if head and seq == head["seq"] and prev != head["head"]:
                raise _tampered(path, "modified", signed_seq + 1, f"entries {signed_seq + 1}..{seq} were rewritten: "
                                "the head file signed another hash", number, range=[signed_seq + 1, seq])
    if head is None and seq:
        raise _tampered(path, "deleted", signed_seq + 1, f"the head file {head_path(path).name} is missing")
    if head and head["seq"] > seq:
        raise _tampered(path, "deleted", seq + 1, f"the tail was truncated: the head file vouches for "
                                                  f"{head['seq']} entries, the log holds {seq}", truncated=True)
    if head and head["checkpoints"] > n:
        raise _tampered(path, "deleted", signed_seq + 1, f"checkpoint {n + 1} is missing: the head file "
                                                         f"vouches for {head['checkpoints']}")
    return ChainReport(str(path), seq, n, signed_seq, head_seq, torn, time.perf_counter() - started, operations)


class ChainedAuditLog(AuditLog):
    """The access audit as an SM3 hash chain with SM2-signed checkpoints (see the module docstring).

    ``signer`` signs checkpoints and the head file; ``trusted`` adds keys whose older signatures still verify
    (after a key change). Thread-safe, and several processes may append to one file (``fcntl`` lock).
    """

    def __init__(self, path: Path, signer: SM2KeyPair, *, trusted: Iterable[SM2KeyPair] = (),
                 checkpoint_every: int = 1000, sync_every: int = 1) -> None:
        if checkpoint_every < 1 or sync_every < 1:
            raise ValueError("checkpoint_every and sync_every must be at least 1")
        if not signer.has_private:
            raise KeyNotFound("审计签名需要私钥 the audit signer needs a private key", key_id=signer.key_id)
        try:
            super().__init__(path)
            self._fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise AuditWriteFailed(f"审计日志写入失败 audit log write failed: cannot open {path}: {exc}",
                                   path=str(path), errno=exc.errno) from exc
        self._close = weakref.finalize(self, os.close, self._fd)
        self.signer = signer
        self.keys = {k.key_id: k for k in (signer, *trusted)}
        self.checkpoint_every = checkpoint_every
        self.sync_every = sync_every
        self._tail: _Tail | None = None  # None: read it from the head file and the log under the file lock
        self._pending = 0  # entries written since the last fsync
        self._queue: list[_Request] = []
        self._turn = threading.Condition()
        self._leading = False

    # -- writing -------------------------------------------------------------------------------------------------

    def record(self, viewer: Viewer, action: str, entity: str, outcome: str, **detail: Any) -> None:
        """Append one entry; returns once it is written (and durable, with ``sync_every=1``).

        Raises :class:`AuditWriteFailed` when it could not be written or made durable, and :class:`AuditTampered`
        when the log on disk no longer matches its head: in both cases release nothing.
        """
        self._enqueue(self._event(viewer, action, entity, outcome, detail))

    def record_operation(self, viewer: Viewer, action: str, entity: str, outcome: str, **detail: Any) -> None:
        """Append a key operation (account, role, label, consent or key change): an entry that also carries its own
        SM2 signature by the audit key (``opsig``), verified by :func:`verify_chain`."""
        event = self._event(viewer, action, entity, outcome, detail)
        signed = _signed(event, self.signer)
        self._enqueue({**event, "opsig": {"signer": signed["signer"], "sig": signed["sig"]}})

    @staticmethod
    def _event(viewer: Viewer, action: str, entity: str, outcome: str, detail: dict[str, Any]) -> dict[str, Any]:
        clash = RESERVED & detail.keys()
        if clash:
            raise ValueError(f"reserved audit fields: {sorted(clash)}")
        event = {"recorded": _now(), "agent": {"who": viewer.user, "role": viewer.role},
                 "purposeOfUse": viewer.purpose, "action": action, "entity": entity, "outcome": outcome, **detail}
        _canonical(event)  # a detail JSON cannot hold fails here, in its own caller, not in another thread's batch
        return event

    def _enqueue(self, event: dict[str, Any]) -> None:
        request = _Request(event)
        # group commit: one caller at a time leads, writing, fsyncing and signing for every entry queued so far;
        # the others wait until theirs is done or it is their turn to lead
        with self._turn:
            self._queue.append(request)
            while not request.done and self._leading:
                self._turn.wait()
            lead = not request.done
            if lead:
                self._leading, batch, self._queue = True, self._queue, []
        if lead:
            try:
                with self._lock, self._file_locked():
                    self._append(self._catch_up(), [r.event for r in batch])
            except BaseException as exc:
                for r in batch:  # every entry of the batch failed with it: each caller gets its own error
                    if r is not request:
                        r.error = type(exc)(exc.message, **exc.details) if isinstance(exc, HealthGraphError) \
                            else AuditWriteFailed(f"审计日志写入失败 audit log write failed: {exc!r}", path=str(self.path))
                raise
            finally:
                with self._turn:
                    for r in batch:
                        r.done = True
                    self._leading = False
                    self._turn.notify_all()
        if request.error is not None:
            raise request.error

    def _append(self, tail: _Tail, events: list[dict[str, Any]]) -> None:
        data, new = b"", tail
        for event in events:
            digest, line = entry_line({**event, "seq": new.seq + 1, "prev": new.hash})
            data += line
            new = _Tail(new.seq + 1, digest, new.checkpoints, new.size + len(line))
            if new.seq % self.checkpoint_every == 0:
                cp_line, new = self._checkpoint_line(new)
                data += cp_line
        self._commit(tail, new, data, force_sync=new.checkpoints > tail.checkpoints)

    def checkpoint(self) -> dict[str, Any]:
        """Sign the current head now (also makes everything written so far durable); returns the checkpoint."""
        with self._writing() as tail:
            data, new = self._checkpoint_line(tail)
            self._commit(tail, new, data, force_sync=True)
            return json.loads(data)

    def sync(self) -> None:
        """Make every entry written so far durable and re-sign the head file (a no-op when nothing is pending)."""
        with self._writing() as tail:
            if self._pending:
                self._commit(tail, tail, b"", force_sync=True)

    def close(self) -> None:
        """Sync what is pending and close the file."""
        if self._close.alive:
            try:
                self.sync()
            finally:
                self._close()

    def __enter__(self) -> ChainedAuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _checkpoint_line(self, tail: _Tail) -> tuple[bytes, _Tail]:
        doc = _signed({"type": "checkpoint", "n": tail.checkpoints + 1, "seq": tail.seq, "head": tail.hash,
                       "time": _now()}, self.signer)
        data = _canonical(doc) + b"\n"
        return data, _Tail(tail.seq, tail.hash, tail.checkpoints + 1, tail.size + len(data))

    @contextmanager
    def _file_locked(self) -> Iterator[None]:
        if not self._close.alive:
            raise AuditWriteFailed(f"审计日志写入失败 audit log write failed: {self.path} is closed",
                                   path=str(self.path))
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except OSError as exc:
            raise self._failed(exc) from exc
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    @contextmanager
    def _writing(self) -> Iterator[_Tail]:
        with self._lock, self._file_locked():
            yield self._catch_up()

    def _failed(self, exc: OSError) -> AuditWriteFailed:
        return AuditWriteFailed(f"审计日志写入失败 audit log write failed: {self.path}: {exc}; do not release the data",
                                path=str(self.path), errno=exc.errno)

    def _commit(self, old: _Tail, new: _Tail, data: bytes, *, force_sync: bool) -> None:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]
            pending = self._pending + new.seq - old.seq
            if force_sync or pending >= self.sync_every:
                os.fsync(self._fd)
                self._write_head(new)
                pending = 0
        except BaseException as exc:
            self._rollback(old.size)
            if isinstance(exc, OSError):
                raise self._failed(exc) from exc
            raise
        self._tail, self._pending = new, pending

    def _rollback(self, size: int) -> None:
        try:
            os.ftruncate(self._fd, size)
        except OSError:
            self._tail = None  # the next write re-reads the file and cuts any torn line

    def _write_head(self, tail: _Tail) -> None:
        doc = _signed({"type": "head", "seq": tail.seq, "head": tail.hash, "checkpoints": tail.checkpoints,
                       "size": tail.size, "time": _now()}, self.signer)
        # atomic replace; the directory is not fsynced because an older head after a crash is still consistent
        # (the log may run ahead of its head, never behind)
        write_secret(head_path(self.path), _canonical(doc) + b"\n")

    # -- reading the tail ----------------------------------------------------------------------------------------

    def _catch_up(self) -> _Tail:
        """The tail as on disk now: entries other processes appended are read and checked, a torn line is cut."""
        try:
            return self._read_tail()
        except OSError as exc:
            raise self._failed(exc) from exc

    def _read_tail(self) -> _Tail:
        size = os.fstat(self._fd).st_size
        tail = self._tail
        if tail is None:
            head = _read_head(self.path, self.keys)
            if head is None:
                if size:
                    raise _tampered(self.path, "deleted", 1, f"the head file {head_path(self.path).name} is missing")
                self._write_head(_Tail())  # so that a crash after the first entry cannot look like a deletion
                tail = _Tail()
            else:
                tail = _Tail(head["seq"], head["head"], head["checkpoints"], head["size"])
        if size < tail.size:
            raise _tampered(self.path, "deleted", tail.seq, f"the log shrank to {size} bytes below the "
                                                            f"{tail.size} already written", truncated=True)
        if size > tail.size:
            tail = self._read_from(tail, os.pread(self._fd, size - tail.size, tail.size))
        self._tail = tail
        return tail

    def _read_from(self, tail: _Tail, data: bytes) -> _Tail:
        end = data.rfind(b"\n") + 1
        if end < len(data):  # a writer died mid-line; that entry was never acknowledged
            os.ftruncate(self._fd, tail.size + end)
        seq, prev, n = tail.seq, tail.hash, tail.checkpoints
        for line in data[:end].splitlines():
            try:
                obj = json.loads(line)
            except ValueError:
                obj = None
            if not isinstance(obj, dict):
                raise _tampered(self.path, "modified", seq + 1, "an appended line is not a JSON object")
            if obj.get("type") == "checkpoint":
                if obj.get("n") != n + 1 or obj.get("seq") != seq or obj.get("head") != prev:
                    raise _tampered(self.path, "modified", seq, "an appended checkpoint does not fit the chain")
                n += 1
                continue
            claimed, actual = _entry_digest(line, prev)
            if not line.startswith(_ENTRY_PREFIX) or obj.get("seq") != seq + 1 or obj.get("prev") != prev \
                    or claimed != actual or claimed != obj.get("hash"):
                raise _tampered(self.path, "modified", seq + 1, "an appended entry does not fit the chain")
            seq, prev = seq + 1, claimed
        return _Tail(seq, prev, n, tail.size + end)

    # -- reading -------------------------------------------------------------------------------------------------

    def events(self) -> list[dict[str, Any]]:
        """Every entry (not the checkpoints), oldest first, as written."""
        return list(iter_events(self.path))

    def verify(self) -> ChainReport:
        """:func:`verify_chain` with this log's keys."""
        return verify_chain(self.path, self.keys.values())


def iter_events(path: Path) -> Iterator[dict[str, Any]]:
    """The entries of the log at ``path`` (checkpoints and a torn last line skipped), without verifying."""
    if not path.exists():
        return
    with path.open("rb") as fh:
        for raw in fh:
            if raw.endswith(b"\n") and raw.startswith(_ENTRY_PREFIX):
                yield json.loads(raw)
