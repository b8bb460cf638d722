"""The tamper-evident audit log: SM3 chain, SM2 checkpoints, signed head, fail-closed writes."""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import threading
from pathlib import Path

import pytest

from services.audit import AuditLog
from services.privacy import Viewer
from services.security import audit_chain
from services.security.audit_chain import ChainedAuditLog, entry_line, head_path, verify_chain
from services.security.errors import AuditTampered, AuditWriteFailed
from services.security.gm import SM2KeyPair

VIEWER = Viewer(user="dr.wang", role="clinician", purpose="treatment")


@pytest.fixture(scope="module")
def key() -> SM2KeyPair:
    return SM2KeyPair.generate()


def write_log(path: Path, key: SM2KeyPair, n: int, **kw) -> ChainedAuditLog:
    log = ChainedAuditLog(path, key, checkpoint_every=kw.pop("checkpoint_every", 5), **kw)
    for i in range(1, n + 1):
        log.record(VIEWER, "read", f"Person/P{i:03d}", "success")
    return log


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def entry_index(path: Path, seq: int) -> int:
    """The line index of entry ``seq``."""
    return next(i for i, raw in enumerate(lines(path)) if b'"type":"checkpoint"' not in raw
                and json.loads(raw)["seq"] == seq)


def tampered(path: Path, key: SM2KeyPair) -> AuditTampered:
    with pytest.raises(AuditTampered) as err:
        verify_chain(path, [key])
    assert err.value.code == "HG-1101" and "审计日志被篡改" in err.value.message
    return err.value


def test_append_and_verify(tmp_path: Path, key: SM2KeyPair) -> None:
    path = tmp_path / "audit.jsonl"
    log = write_log(path, key, 12)
    report = log.verify()
    assert (report.entries, report.checkpoints, report.signed_seq, report.head_seq, report.ok) == (12, 2, 10, 12, True)
    events = log.events()
    assert [e["seq"] for e in events] == list(range(1, 13))
    assert events[0]["prev"] == audit_chain.GENESIS
    assert all(b["prev"] == a["hash"] for a, b in zip(events, events[1:], strict=False))
    assert events[2]["entity"] == "Person/P003" and events[2]["agent"] == {"who": "dr.wang", "role": "clinician"}
    cp = log.checkpoint()
    assert (cp["n"], cp["seq"], cp["head"], cp["signer"]) == (3, 12, events[-1]["hash"], key.key_id)
    assert log.verify().signed_seq == 12
    log.close()


def test_drop_in_for_the_plain_audit_log(tmp_path: Path, key: SM2KeyPair) -> None:
    plain, chained = AuditLog(tmp_path / "plain.jsonl"), ChainedAuditLog(tmp_path / "chain.jsonl", key)
    assert isinstance(chained, AuditLog)
    for log in (plain, chained):
        log.record(VIEWER, "read", "Person/P001", "failure", code="HG-0205")
    (p,), (c,) = plain.events(), chained.events()
    assert set(c) == set(p) | {"seq", "prev", "hash"}
    assert {k: c[k] for k in p if k != "recorded"} == {k: v for k, v in p.items() if k != "recorded"}
    with pytest.raises(ValueError, match="reserved"):
        chained.record(VIEWER, "read", "Person/P001", "success", seq=7)


def test_entry_hash_is_sm3_of_prev_and_canonical_json(key: SM2KeyPair) -> None:
    entry = {"seq": 1, "prev": audit_chain.GENESIS, "entity": "Person/P1", "agent": {"who": "a", "role": "b"}}
    digest, line = entry_line(entry)
    canonical = json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert digest == audit_chain.sm3(bytes(32) + canonical).hex()
    assert json.loads(line) == {**entry, "hash": digest}


def test_modified_field_is_pinpointed(tmp_path: Path, key: SM2KeyPair) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, key, 12)
    raw = path.read_bytes()
    path.write_bytes(raw.replace(b"Person/P007", b"Person/P008", 1))  # one byte of entry 7
    err = tampered(path, key)
    assert (err.details["kind"], err.details["seq"]) == ("modified", 7)
    path.write_bytes(raw.replace(b'"seq":4}', b'"seq":5}', 1))  # its sequence number
    err = tampered(path, key)
    assert (err.details["kind"], err.details["seq"]) == ("modified", 4)
    # entry 3 rewritten with a fresh hash of its own: entry 4 no longer links to it
    rows = raw.splitlines(keepends=True)
    i = next(i for i, r in enumerate(rows) if b'"seq":3}' in r)
    obj = json.loads(rows[i])
    obj.pop("hash")
    rows[i] = entry_line({**obj, "entity": "Person/P999"})[1]
    path.write_bytes(b"".join(rows))
    err = tampered(path, key)
    assert (err.details["kind"], err.details["seq"]) == ("modified", 3)


def test_rewritten_chain_is_caught_by_the_signed_checkpoint(tmp_path: Path, key: SM2KeyPair) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, key, 9)
    # an attacker without the key rewrites entry 3 and recomputes every hash after it
    out, prev = [], audit_chain.GENESIS
    for raw in lines(path):
        obj = json.loads(raw)
        if obj.get("type") == "checkpoint":
            out.append(raw)
            continue
        obj.pop("hash")
        if obj["seq"] == 3:
            obj["entity"] = "Person/P999"
        obj["prev"] = prev
        prev, line = entry_line(obj)
        out.append(line)
    path.write_bytes(b"".join(out))
    err = tampered(path, key)
    assert err.details["kind"] == "modified" and err.details["range"][0] <= 3 <= err.details["range"][1]


def test_deleted_middle_line(tmp_path: Path, key: SM2KeyPair) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, key, 12)
    rows = lines(path)
    del rows[entry_index(path, 4)]
    path.write_bytes(b"".join(rows))
    err = tampered(path, key)
    assert (err.details["kind"], err.details["seq"]) == ("deleted", 4)


def test_swapped_lines(tmp_path: Path, key: SM2KeyPair) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, key, 12)
    rows = lines(path)
    i, j = entry_index(path, 7), entry_index(path, 8)
    rows[i], rows[j] = rows[j], rows[i]
    path.write_bytes(b"".join(rows))
    err = tampered(path, key)
    assert (err.details["kind"], err.details["seq"]) == ("reordered", 7)


def test_inserted_copy(tmp_path: Path, key: SM2KeyPair) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, key, 8)
    rows = lines(path)
    rows.insert(entry_index(path, 3) + 1, rows[entry_index(path, 2)])  # a replayed copy of entry 2 before 4
    path.write_bytes(b"".join(rows))
    err = tampered(path, key)
    assert (err.details["kind"], err.details["seq"]) == ("inserted", 4)


def test_truncated_tail_after_the_last_checkpoint(tmp_path: Path, key: SM2KeyPair) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, key, 13)  # checkpoints after 5 and 10; 11..13 are covered only by the head file
    rows = lines(path)
    path.write_bytes(b"".join(rows[:entry_index(path, 11)]))
    err = tampered(path, key)
    assert (err.details["kind"], err.details["seq"], err.details["truncated"]) == ("deleted", 11, True)
    # and a writer refuses to extend it: fail closed
    with pytest.raises(AuditTampered):
        ChainedAuditLog(path, key).record(VIEWER, "read", "Person/P014", "success")


def test_writer_refuses_a_chain_it_cannot_extend(tmp_path: Path, key: SM2KeyPair) -> None:
    path = tmp_path / "audit.jsonl"
    log = write_log(path, key, 3)
    with path.open("ab") as fh:  # a forged line appended behind the writer's back
        fh.write(entry_line({"seq": 4, "prev": "ab" * 32, "entity": "Person/P999"})[1])
    with pytest.raises(AuditTampered) as err:
        log.record(VIEWER, "read", "Person/P004", "success")
    assert err.value.details["seq"] == 4
    other = tmp_path / "other.jsonl"
    write_log(other, key, 2).close()
    head_path(other).unlink()
    with pytest.raises(AuditTampered):
        ChainedAuditLog(other, key).record(VIEWER, "read", "Person/P003", "success")


def test_deleted_checkpoint_and_head(tmp_path: Path, key: SM2KeyPair) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, key, 12)
    original = path.read_bytes()
    path.write_bytes(b"".join(r for r in lines(path) if b'"n":1,' not in r))
    assert tampered(path, key).details["kind"] == "deleted"
    path.write_bytes(original)
    head_path(path).unlink()
    assert tampered(path, key).details["kind"] == "deleted"


def test_forged_checkpoint_signature(tmp_path: Path, key: SM2KeyPair) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, key, 12)
    original = path.read_bytes()
    mallory = SM2KeyPair.generate()
    for signer in (key.key_id, mallory.key_id):  # a forged signature under our id, and a checkpoint by mallory
        rows = []
        for raw in lines(path):
            obj = json.loads(raw)
            if obj.get("type") == "checkpoint" and obj["n"] == 2:
                obj["signer"] = signer
                unsigned = {k: v for k, v in obj.items() if k != "sig"}
                obj["sig"] = audit_chain.base64.b64encode(mallory.sign(audit_chain._canonical(unsigned))).decode()
                raw = audit_chain._canonical(obj) + b"\n"
            rows.append(raw)
        path.write_bytes(b"".join(rows))
        err = tampered(path, key)
        assert (err.details["kind"], err.details["seq"], err.details["checkpoint"]) == ("bad_signature", 10, 2)
        path.write_bytes(original)
    assert verify_chain(path, [key]).ok
    head = json.loads(head_path(path).read_bytes())
    head["seq"] = 12_000
    head_path(path).write_text(json.dumps(head))
    assert tampered(path, key).details["kind"] == "bad_signature"


def test_key_operations_carry_their_own_sm2_signature(tmp_path: Path, key: SM2KeyPair) -> None:
    """GB/T 22239-2019 8.1.4.9 抗抵赖: an account, consent or key change is signed on its own, so rewriting it and
    re-hashing the chain from there (no checkpoint yet) is still caught."""
    path = tmp_path / "audit.jsonl"
    log = ChainedAuditLog(path, key, checkpoint_every=1000)
    admin = Viewer(user="cli:root", role="security_admin", purpose="operations")
    log.record(VIEWER, "read", "Person/P001", "success")
    log.record_operation(admin, "access:user:add", "User/dr-li", "success", roles=["clinician"])
    log.record(VIEWER, "read", "Person/P002", "success")
    report = log.verify()
    assert (report.entries, report.operations) == (3, 1)
    op = log.events()[1]
    assert op["opsig"]["signer"] == key.key_id and "opsig" not in log.events()[0]
    with pytest.raises(ValueError):
        log.record(VIEWER, "read", "Person/P003", "success", opsig={"sig": "x"})
    log.close()
    # Mallory grants herself a role and recomputes every hash after it (the head file's signature aside).
    rows, prev = [], audit_chain.GENESIS
    for raw in lines(path):
        obj = json.loads(raw)
        obj.pop("hash")
        if obj["seq"] == 2:
            obj["roles"] = ["security_admin"]
        obj["prev"] = prev
        prev, line = entry_line(obj)
        rows.append(line)
    path.write_bytes(b"".join(rows))
    with pytest.raises(AuditTampered) as err:
        verify_chain(path, [key])
    assert (err.value.details["kind"], err.value.details["seq"]) == ("bad_signature", 2)


def test_two_threads_append_1000_each(tmp_path: Path, key: SM2KeyPair) -> None:
    path = tmp_path / "audit.jsonl"
    log = ChainedAuditLog(path, key, checkpoint_every=250, sync_every=100)

    def work(name: str) -> None:
        for i in range(1000):
            log.record(Viewer(user=name), "read", f"Person/{name}-{i}", "success")

    threads = [threading.Thread(target=work, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    report = verify_chain(path, [key])
    assert (report.entries, report.checkpoints, report.head_seq) == (2000, 8, 2000)
    events = log.events()
    assert [e["seq"] for e in events] == list(range(1, 2001))
    for name in ("a", "b"):
        assert [e["entity"] for e in events if e["agent"]["who"] == name] == [f"Person/{name}-{i}" for i in range(1000)]


def test_group_commit_keeps_every_entry_durable_before_it_returns(tmp_path: Path, key: SM2KeyPair,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "audit.jsonl"
    log = ChainedAuditLog(path, key, checkpoint_every=25)
    real_fsync, synced = os.fsync, []

    def slow_fsync(fd: int) -> None:
        if fd == log._fd:
            synced.append(os.fstat(fd).st_size)
            threading.Event().wait(0.002)  # a slow disk, so that callers pile up behind one fsync
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", slow_fsync)
    late = []

    def work(name: str) -> None:
        for i in range(20):
            log.record(Viewer(user=name), "read", f"Person/{name}-{i}", "success")
            end = path.read_bytes().index(f"Person/{name}-{i}".encode())
            if not synced or synced[-1] < end:  # returned before an fsync covered its entry
                late.append((name, i))

    threads = [threading.Thread(target=work, args=(n,)) for n in "abcd"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert late == []
    assert len(synced) < 80  # fewer fsyncs than entries: concurrent callers shared them
    report = verify_chain(path, [key])
    assert (report.entries, report.head_seq, report.checkpoints) == (80, 80, 3)


def _append_in_child(path: str, pem: str, who: str) -> None:
    log = ChainedAuditLog(Path(path), SM2KeyPair.from_pem(pem), checkpoint_every=70, sync_every=25)
    for i in range(300):
        log.record(Viewer(user=who), "read", f"Person/{who}-{i}", "success")
    log.close()


def test_two_processes_append_to_one_file(tmp_path: Path, key: SM2KeyPair) -> None:
    path = tmp_path / "audit.jsonl"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_append_in_child, args=(str(path), key.private_pem(), who)) for who in ("p", "q")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0, 0]
    report = verify_chain(path, [key])
    assert report.entries == 600 and report.checkpoints == 600 // 70
    assert sorted(e["entity"] for e in audit_chain.iter_events(path) if e["agent"]["who"] == "q") == \
        sorted(f"Person/q-{i}" for i in range(300))


def test_fsync_failure_fails_closed_and_leaves_nothing(tmp_path: Path, key: SM2KeyPair,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "audit.jsonl"
    log = write_log(path, key, 3)
    before, head_before = path.read_bytes(), head_path(path).read_bytes()

    def broken_fsync(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(AuditWriteFailed) as err:
        log.record(VIEWER, "read", "Person/P004", "success")
    assert (err.value.code, err.value.http_status, err.value.is_retryable()) == ("HG-1102", 503, True)
    assert path.read_bytes() == before and head_path(path).read_bytes() == head_before
    monkeypatch.undo()
    log.record(VIEWER, "read", "Person/P004", "success")
    assert [e["seq"] for e in log.events()] == [1, 2, 3, 4] and log.verify().head_seq == 4


def test_partial_write_is_rolled_back(tmp_path: Path, key: SM2KeyPair, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "audit.jsonl"
    log = write_log(path, key, 2, sync_every=10)
    before = path.read_bytes()
    real_write = os.write

    def disk_full(fd: int, data: bytes) -> int:
        if fd != log._fd:
            return real_write(fd, data)
        real_write(fd, bytes(data[:40]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", disk_full)
    with pytest.raises(AuditWriteFailed):
        log.record(VIEWER, "read", "Person/P003", "success")
    monkeypatch.undo()
    assert path.read_bytes() == before
    log.record(VIEWER, "read", "Person/P003", "success")
    log.close()
    assert verify_chain(path, [key]).entries == 3


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_device_raises_write_failed(tmp_path: Path, key: SM2KeyPair) -> None:
    path = tmp_path / "full.jsonl"
    path.symlink_to("/dev/full")
    with pytest.raises(AuditWriteFailed):
        ChainedAuditLog(path, key).record(VIEWER, "read", "Person/P001", "success")


def test_torn_last_line_is_reported_and_repaired(tmp_path: Path, key: SM2KeyPair) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, key, 4).close()
    with path.open("ab") as fh:
        fh.write(b'{"hash":"0123')  # a writer that died mid-line
    report = verify_chain(path, [key])
    assert report.torn_tail and report.entries == 4
    log = ChainedAuditLog(path, key)
    log.record(VIEWER, "read", "Person/P005", "success")
    report = log.verify()
    assert not report.torn_tail and report.entries == 5


def test_cli_verify(tmp_path: Path, key: SM2KeyPair, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from services.audit_cli import audit_app

    monkeypatch.setenv("HEALTHGRAPH_DATA_DIR", str(tmp_path))
    signer = SM2KeyPair.load(tmp_path / "keys" / "audit-sm2.pem", create=True)
    path = tmp_path / "audit" / "access.jsonl"
    write_log(path, signer, 6).close()
    runner = CliRunner()
    ok = runner.invoke(audit_app, ["verify"])
    assert ok.exit_code == 0 and "entries 6" in ok.output and "OK" in ok.output
    assert runner.invoke(audit_app, ["checkpoint"]).exit_code == 0
    shown = runner.invoke(audit_app, ["show", "--last", "2", "--json"])
    assert shown.exit_code == 0 and "Person/P006" in shown.output and "Person/P004" not in shown.output
    path.write_bytes(path.read_bytes().replace(b"Person/P002", b"Person/P003", 1))
    bad = runner.invoke(audit_app, ["verify", str(path)])
    assert bad.exit_code == 2 and "HG-1101" in bad.output
