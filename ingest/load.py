"""Load a folder of records into the graph: read → validate (ontology) → upsert (graph).

Nothing is lost: every input record is accepted (written, or identical to what is stored) or
quarantined with its reason codes, and ``received = accepted + collapsed + quarantined`` is
checked for every file. The batch id is derived from the files' content, so loading the same
folder twice writes nothing the second time and rewrites the same quarantine files.

A Parquet file longer than ``PART_ROWS`` is validated and written in parts, so memory follows the
part and not the file. Rows whose key occurs more than once in the file are held back into one last
part and validated together: duplicates collapse or are quarantined exactly as in a file read whole.
"""

from __future__ import annotations

import hashlib
import json
import time
from concurrent.futures import Future, ThreadPoolExecutor
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from graph.store import GraphStore, Provenance, WritePlan, WriteResult, by_table_pair
from ingest.quality import resident_id_quality
from ontology import errors
from ontology.model import KEY_SEPARATOR, Ontology
from ontology.validate import (TEXT, Rejection, Validated, arrow_text, duplicated, lookup_from, validate_edges,
                               validate_nodes)

READERS = (".parquet", ".jsonl", ".csv")
IN_FLIGHT = 3
PART_ROWS = 2_000_000
"""Rows of one file validated and written together (about 1 GB of a wide table in memory)."""


@dataclass
class FileReport:
    file: str
    target: str
    received: int
    accepted: int
    collapsed: int
    quarantined: int
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def reconciles(self) -> bool:
        return self.received == self.accepted + self.collapsed + self.quarantined


@dataclass
class LoadReport:
    batch_id: str
    source: str
    files: list[FileReport]
    seconds: float
    quarantine_dir: str
    quality: dict[str, Any] = field(default_factory=dict)

    def totals(self) -> dict[str, int]:
        keys = ("received", "accepted", "collapsed", "quarantined", "inserted", "updated", "unchanged")
        return {k: sum(getattr(f, k) for f in self.files) for k in keys}

    @property
    def reconciles(self) -> bool:
        t = self.totals()
        return all(f.reconciles for f in self.files) and t["received"] == t["accepted"] + t["collapsed"] + t["quarantined"]

    def to_dict(self) -> dict[str, Any]:
        return {"batch_id": self.batch_id, "source": self.source, "seconds": round(self.seconds, 3),
                "quarantine_dir": self.quarantine_dir, "totals": self.totals(), "reconciles": self.reconciles,
                "quality": self.quality, "files": [asdict(f) for f in self.files]}


Progress = Callable[[str, int, int], None]


def discover(root: Path) -> tuple[list[Path], list[Path]]:
    """Node files and edge files of a folder, in a stable order."""
    if not root.is_dir():
        raise errors.InputFormatError(f"{root} is not a folder with nodes/ and edges/", path=str(root))
    found = [sorted(p for p in (root / sub).glob("*") if p.suffix in READERS) for sub in ("nodes", "edges")]
    if not found[0] and not found[1]:
        raise errors.InputFormatError(f"no .parquet, .jsonl or .csv files under {root}/nodes or {root}/edges",
                                      path=str(root))
    return found[0], found[1]


def batch_id_of(root: Path, files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(str(f.relative_to(root)).encode())
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:12]


def _frame(table: pa.Table) -> pd.DataFrame:
    text = {pa.string(): TEXT, pa.large_string(): TEXT}
    return table.to_pandas(types_mapper=text.get)


def read_records(path: Path) -> tuple[pd.DataFrame, list[Rejection]]:
    """Read one file; malformed lines become rejections (HG-0301), never silent losses."""
    if path.suffix == ".parquet":
        return _frame(pq.read_table(path)), []
    if path.suffix == ".csv":
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
        return frame.replace("", None), []
    rows: list[dict[str, Any]] = []
    bad: list[Rejection] = []
    with path.open(encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                if not isinstance(rec, dict):
                    raise ValueError("a line must hold one JSON object")
                rows.append(rec)
            except ValueError as exc:
                bad.append(Rejection(i, [errors.InputFormatError.code], [f"line {i + 1}: {exc}"], {"raw": line[:2000]}))
    return pd.DataFrame(rows), bad


def read_parts(path: Path, key_columns: Sequence[str], part_rows: int | None = None,
               ) -> Iterator[tuple[pd.DataFrame, list[Rejection], np.ndarray]]:
    """A file as (frame, unreadable lines, each frame row's row number in the file), in parts.

    A file of at most ``part_rows`` rows (and every JSON lines or CSV file) is one part. A longer
    Parquet file is read ``part_rows`` rows at a time, except the rows whose ``key_columns`` (their
    values joined) occur more than once in the file: those come last, as one part of their own.
    """
    part_rows = part_rows or PART_ROWS
    parquet = pq.ParquetFile(path) if path.suffix == ".parquet" else None
    if parquet is None or parquet.metadata.num_rows <= part_rows:
        frame, unreadable = read_records(path)
        yield frame, unreadable, np.arange(len(frame))
        return
    present = [c for c in key_columns if c in parquet.schema_arrow.names]
    repeated = np.zeros(parquet.metadata.num_rows, dtype=bool)
    if present and len(present) == len(key_columns):
        keys = parquet.read(columns=present)
        joined = pc.binary_join_element_wise(*(keys[c].cast(pa.string()) for c in present), KEY_SEPARATOR)
        repeated = duplicated(pd.Series(pd.arrays.ArrowStringArray(joined.combine_chunks())), keep=False)
        del keys, joined
    held: list[pa.Table] = []
    start = 0
    for batch in parquet.iter_batches(batch_size=part_rows):
        rows = np.arange(start, start + batch.num_rows)
        start += batch.num_rows
        part = pa.Table.from_batches([batch])
        later = repeated[rows]
        if later.any():
            held.append(part.filter(pa.array(later)))
            part, rows = part.filter(pa.array(~later)), rows[~later]
        if part.num_rows:
            yield _frame(part), [], rows
    if held:
        yield _frame(pa.concat_tables(held)), [], np.flatnonzero(repeated)


def key_columns(onto: Ontology, target: str, *, edge: bool) -> tuple[str, ...]:
    """The columns naming what a row of ``target`` is about: a node's key, an edge's source (functional) or pair."""
    if edge:
        return ("src",) if target in onto.edges and onto.edges[target].functional else ("src", "dst")
    return onto.key_of(target) if target in onto.classes else ()


def target_of(path: Path) -> str:
    """``nodes/Resident.legacy-emr.jsonl`` → ``Resident``."""
    return path.name.split(".", 1)[0]


def load_folder(store: GraphStore, root: str | Path, *, quarantine_root: str | Path, source: str | None = None,
                progress: Progress | None = None) -> LoadReport:
    """Validate and load every node file, then every edge file, of a folder."""
    started = time.perf_counter()
    root = Path(root)
    node_files, edge_files = discover(root)
    batch = batch_id_of(root, node_files + edge_files)
    source = source or root.name
    provenance = Provenance(source=source, batch_id=batch)
    qdir = Path(quarantine_root) / batch
    onto = store.onto
    quality: dict[str, Any] = {}
    total = len(node_files) + len(edge_files)

    # Reading, validating and preparing (Python) the next file overlaps the engine's bulk write of
    # the previous ones: one writer thread keeps writes serialised and in order, and at most
    # IN_FLIGHT prepared batches wait for it (more smooths uneven files, at the cost of memory).
    pending: list[tuple[Path, Validated, list[Rejection], str | None, Future[WriteResult] | None]] = []
    parts: dict[Path, list[_Part]] = {}

    def settle(keep: int) -> None:
        while len(pending) > keep:
            path, result, unreadable, _, future = pending.pop(0)
            written = future.result() if future is not None else WriteResult()
            parts.setdefault(path, []).append(_Part(result.target, result.received + len(unreadable),
                                                    len(result.accepted), result.collapsed_duplicates,
                                                    unreadable + result.rejected, written))

    def submit(path: Path, result: Validated, unreadable: list[Rejection], rows: np.ndarray, target: str | None,
               prepare: Callable[[], WritePlan]) -> None:
        for r in result.rejected:
            if r.row >= 0:  # the part's row → the file's row (unreadable lines are numbered by line already)
                r.row = int(rows[r.row])
        if target is not None and any(p[3] == target for p in pending):
            settle(keep=0)  # the plan compares with what is stored: earlier writes to the target first
        future = writer.submit(store.write, prepare()) if target is not None else None
        settle(keep=IN_FLIGHT - 1)
        pending.append((path, result, unreadable, target, future))

    empty_before = store.empty_tables()
    writers: dict[str, Path] = {}  # target → the first file of this batch that wrote to it

    def absent(target: str, path: Path) -> bool:
        """No key of this part is stored: the target held nothing before the batch, and everything written
        to it since came from other parts of this file, whose keys are not this part's (read_parts)."""
        return target in empty_before and writers.setdefault(target, path) == path
    batch_classes: dict[str, list[pd.Series]] = {}

    def classes_of(table: str) -> pd.Series:
        """key → class of a table: from this batch alone when the table was empty before it."""
        if table in empty_before:
            parts = batch_classes.pop(table, [])  # asked once per table (the lookup keeps it): free the parts
            return pd.concat(parts) if parts else pd.Series(dtype="string")
        return store.node_classes(table)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="graph-writer") as writer:
        for i, path in enumerate(node_files):
            if progress:
                progress(str(path.relative_to(root)), i, total)
            for frame, unreadable, rows in read_parts(path, key_columns(onto, target_of(path), edge=False)):
                result = validate_nodes(onto, target_of(path), frame)
                del frame
                table = onto.classes[result.target].table if len(result.accepted) else None
                if table is not None:
                    accepted = result.accepted
                    batch_classes.setdefault(table, []).append(
                        pd.Series(accepted["class"].array, index=pd.Index(accepted["key"].array)))
                submit(path, result, unreadable, rows, table,
                       lambda t=table, r=result, p=path: store.prepare_nodes(t, r.accepted, provenance,
                                                                              absent=absent(t, p)))
                if table == "Resident":  # after submitting: the writer stores the batch meanwhile
                    _add_quality(quality.setdefault("resident_ids", []),
                                 resident_id_quality(result.accepted, path.name))
        if not empty_before >= set(onto.tables):
            settle(keep=0)  # endpoint classes are read from the graph: every node write must be in
        # Edge writes queue behind the node writes (one FIFO writer), so endpoints exist when written.
        lookup = lookup_from(classes_of)
        for j, path in enumerate(edge_files, start=len(node_files)):
            if progress:
                progress(str(path.relative_to(root)), j, total)
            edge = target_of(path)
            for frame, unreadable, rows in read_parts(path, key_columns(onto, edge, edge=True)):
                result = validate_edges(onto, edge, frame, lookup)
                del frame
                fresh = absent(edge, path)
                if edge in onto.edges and onto.edges[edge].functional and len(result.accepted) and not fresh:
                    if any(p[3] == edge for p in pending):
                        settle(keep=0)  # earlier writes of this edge type must be in the graph before the check
                    _functional_against_graph(store, edge, result)
                submit(path, result, unreadable, rows, edge if len(result.accepted) else None,
                       lambda e=edge, r=result, f=fresh: store.prepare_edges(e, r.accepted, provenance, unique=True,
                                                                            absent=f))
        settle(keep=0)
    if progress:
        progress("done", total, total)
    reports = [_report(root, path, parts[path], qdir) for path in node_files + edge_files]

    report = LoadReport(batch, source, reports, time.perf_counter() - started, str(qdir), quality)
    t = report.totals()
    store.record_batch(provenance, received=t["received"], accepted=t["accepted"] + t["collapsed"],
                       quarantined=t["quarantined"])
    qdir.mkdir(parents=True, exist_ok=True)
    (qdir / "report.json").write_text(json.dumps(report.to_dict(), ensure_ascii=False, indent=1, default=str),
                                      encoding="utf-8")
    if not report.reconciles:
        raise errors.ReconciliationError(
            "received ≠ accepted + collapsed + quarantined; see " + str(qdir / "report.json"), batch=batch)
    return report


def _functional_against_graph(store: GraphStore, edge: str, result: Validated) -> None:
    """owl:FunctionalProperty across batches: a source already linked to another target is a conflict."""
    acc = result.accepted
    conflict = pd.Series(False, index=acc.index)
    for (st, dt), group in by_table_pair(acc, ["src", "dst"]):
        existing = store.edge_pairs(edge, str(st), str(dt))
        if existing.empty:
            continue
        # The target each source already has (the first stored, as index_in finds it), if any.
        target = pc.take(arrow_text(existing["dst"]),
                         pc.index_in(arrow_text(group["src"]), value_set=arrow_text(existing["src"])))
        clash = pc.fill_null(pc.not_equal(target, arrow_text(group["dst"])), False)
        conflict.loc[group.index] = clash.to_numpy(zero_copy_only=False)
    if conflict.any():
        for idx in acc.index[conflict.to_numpy()]:
            row = acc.loc[idx]
            result.rejected.append(Rejection(-1, [errors.CardinalityViolation.code],
                                             [f"{edge} is functional: {row['src']!r} already links to another node"],
                                             {"src": row["src"], "dst": row["dst"]}))
        result.accepted = acc[~conflict.to_numpy()].reset_index(drop=True)


@dataclass
class _Part:
    """What one part of a file came to, kept (without its rows) until the file's report is written."""

    target: str
    received: int
    accepted: int
    collapsed: int
    rejected: list[Rejection]
    written: WriteResult


def _add_quality(entries: list[dict[str, Any]], entry: dict[str, Any]) -> None:
    """Another part of the same file adds its counts to the file's entry."""
    if entries and entries[-1]["file"] == entry["file"]:
        last = entries[-1]
        for k, v in entry.items():
            if isinstance(v, int) and not isinstance(v, bool):
                last[k] += v
    else:
        entries.append(entry)


def _report(root: Path, path: Path, parts: list[_Part], qdir: Path) -> FileReport:
    # Rows in file order; rejections found against the graph (row -1) after them, as found.
    rejected = sorted((r for p in parts for r in p.rejected), key=lambda r: (r.row < 0, r.row if r.row >= 0 else 0))
    written = WriteResult()
    for p in parts:
        written += p.written
    reasons: dict[str, int] = {}
    for r in rejected:
        reasons[r.code] = reasons.get(r.code, 0) + 1
    rel = path.relative_to(root)
    qfile = qdir / (str(rel) + ".quarantine.jsonl")
    if rejected:
        qfile.parent.mkdir(parents=True, exist_ok=True)
        with qfile.open("w", encoding="utf-8") as fh:
            for r in rejected:
                fh.write(json.dumps({"file": str(rel), "row": r.row, "code": r.code, "codes": r.codes,
                                     "messages": r.messages, "record": r.record}, ensure_ascii=False, default=str) + "\n")
    elif qfile.exists():
        qfile.unlink()
    return FileReport(str(rel), parts[0].target, sum(p.received for p in parts), sum(p.accepted for p in parts),
                      sum(p.collapsed for p in parts), len(rejected), written.inserted, written.updated,
                      written.unchanged, dict(sorted(reasons.items())))


def iter_quarantine(qdir: str | Path) -> Iterator[dict[str, Any]]:
    """Every quarantined record of a batch, as written."""
    for f in sorted(Path(qdir).rglob("*.quarantine.jsonl")):
        with f.open(encoding="utf-8") as fh:
            for line in fh:
                yield json.loads(line)
