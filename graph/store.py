"""The GraphStore protocol: what every engine offers, with the shared logic written once.

Public methods validate their arguments and carry the idempotency and provenance rules; each
backend implements a few small hooks (execute a statement, bulk-insert rows, update rows).
"""

from __future__ import annotations

import collections
import datetime as dt
import functools
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from graph.catalog import QUERIES, NamedQuery, named_query, returned_columns
from graph.dialect import Dialect
from graph.columnar import count_distinct, join_lookups, pair_rows, row_hashes
from graph.narrowing import Predicate
from graph.scan import Hop, ScanPlan, assemble, plan_of
from graph.protect import FieldProtector, PlainFields
from ontology.errors import NodeNotFound, QueryParameterError, did_you_mean
from ontology.model import Ontology
from ontology.validate import PANDAS_DTYPES, TEXT, arrow_text, edge_duplicated, plain, text_codes


SMALL_WRITE = 2_000
"""Writes up to this many rows compare against the stored rows they touch (key lookups); larger ones
read the table's hashes or edge pairs in one pass."""


SMALL_EDGE_WRITE = 200
"""Edge writes up to this many rows look up the stored pairs of their source nodes one by one."""


RESEAL_BATCH = 10_000
"""Rows re-sealed per statement when the field key rotates."""


STORED_PAGE_ROWS = 1_000_000
"""Nodes read per statement when a table is copied out as stored (``GraphStore.stored_nodes``)."""


@dataclass(frozen=True)
class Provenance:
    """Where a write came from: the source (system or adapter), the batch and when."""

    source: str
    batch_id: str
    ingested_at: dt.datetime = field(default_factory=lambda: dt.datetime.now().replace(microsecond=0))


@dataclass
class WriteResult:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0

    def __iadd__(self, other: WriteResult) -> WriteResult:
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged
        return self

    @property
    def total(self) -> int:
        return self.inserted + self.updated + self.unchanged


def content_hash(frame: pd.DataFrame) -> pd.Series:
    """A stable 64-bit hash of each row's domain content (provenance excluded), as a signed integer.

    Hashed in DuckDB, ten times faster than pandas, which makes a Python object of every value. The
    hash is DuckDB's: a DuckDB release that changed it would make the next re-load update every row once.
    """
    cols = sorted(c for c in frame.columns if c not in ("source", "batch_id", "ingested_at", "content_hash"))
    if not cols or frame.empty:
        return pd.Series(0, index=frame.index, dtype="Int64")
    hashes = row_hashes(pa.Table.from_pandas(frame[cols], preserve_index=False))
    return pd.Series(hashes.view(np.int64), index=frame.index, dtype="Int64")


def by_table_pair(frame: pd.DataFrame, columns: list[str] | None = None) -> Iterator[tuple[tuple[str, str], pd.DataFrame]]:
    """Edge rows (``columns`` of them, or all) grouped by (source table, target table), in name order.

    A frame of one table pair is passed on without copying its rows.
    """
    src, dst = text_codes(frame["src_table"]), text_codes(frame["dst_table"])
    pair = np.where((src >= 0) & (dst >= 0), src * (int(dst.max(initial=0)) + 1) + dst, -1)
    groups: dict[tuple[str, str], np.ndarray] = {}
    for value in np.unique(pair[pair >= 0]):
        rows = np.flatnonzero(pair == value)
        first = rows[0]
        groups[(str(frame["src_table"].iat[first]), str(frame["dst_table"].iat[first]))] = rows
    part = frame if columns is None else frame[columns]
    for names, rows in sorted(groups.items()):
        yield names, part if len(rows) == len(frame) else part.iloc[rows]


@dataclass
class WritePlan:
    """A prepared write: encoded inserts (per table pair for edges), encoded updates, and the counts."""

    target: str
    is_edge: bool = False
    inserts: list[tuple[str | None, str | None, Any]] = field(default_factory=list)
    updates: Any = None
    result: WriteResult = field(default_factory=WriteResult)


NEVER_NULL = frozenset({"key", "class"})
"""Properties every node holds: its key and its class, both written by the store itself."""


def _node_scan(plan: ScanPlan, alias: str) -> tuple[str, ...]:
    window = plan.window[1] if plan.window and plan.window[0] == alias else ""
    return (plan.labels[alias], window, repr(plan.required(alias)), *plan.properties(alias))


def _edge_scan(plan: ScanPlan, hop: Hop) -> tuple[str, ...]:
    return (hop.edge, plan.labels[hop.source], plan.labels[hop.target])


@functools.cache
def _shared_scans() -> collections.Counter:
    """How many of the catalog's scanned statements (queries and lookups, each once) read each scan, and
    each statement: what is worth keeping for the rest of a run."""
    uses: collections.Counter = collections.Counter()
    statements = [q.cypher for q in QUERIES.values() if q.scan]
    for cypher in statements:
        uses[(cypher,)] += 1
    lookups = {lookup.cypher for q in QUERIES.values() for lookup in q.lookups if lookup.scan}
    for cypher in dict.fromkeys(statements) | dict.fromkeys(lookups):
        plan = plan_of(cypher)
        uses.update({_node_scan(plan, alias) for alias in plan.scanned} | {_edge_scan(plan, h) for h in plan.hops})
    return uses


class GraphStore(ABC):
    """A typed property graph governed by the ontology.

    Writes are idempotent (keyed; unchanged rows are skipped, changed rows updated in place) and
    carry provenance; they are serialised in-process. Reads go through typed methods and the
    named-query catalog; no caller writes a query string.

    Properties the ontology marks ``hg:encrypted`` reach the engine only as ciphertext from the
    store's :class:`~graph.protect.FieldProtector`, with their ``hg:digestOf`` digests beside them;
    every read method returns them opened.
    """

    dialect: Dialect
    exclusive_writer = False
    """True when no other client can write (an embedded store holding its file lock): the store may
    then remember which tables are empty instead of asking the engine."""
    slice_rows: int | None = None
    """Anchor nodes per slice of a sliced named query (``NamedQuery.slice_by``), for an engine that holds a
    whole result in a bounded buffer; None runs every query in one piece (the engine streams results)."""
    scan_page_rows: int | None = None
    """Nodes per page of a table scan whose rows are converted (nullable columns), for an engine that holds
    a whole converted result in a bounded buffer; None scans every table in one piece."""

    def __init__(self, onto: Ontology, protector: FieldProtector | None = None) -> None:
        self.onto = onto
        self.protector: FieldProtector = protector or PlainFields()
        self._write_lock = threading.RLock()
        self._empty: set[str] | None = None

    def empty_tables(self) -> frozenset[str]:
        """Node tables and edge types holding no rows."""
        if self.exclusive_writer and self._empty is not None:
            return frozenset(self._empty)
        empty = set(self.onto.tables) | set(self.onto.edges)
        for table in self.onto.tables:
            if len(self._run(f"MATCH (n:{table}) RETURN n.key AS key LIMIT 1")):
                empty.discard(table)
        for edge in self.onto.edges:
            if len(self._run(f"MATCH ()-[e:{edge}]->() RETURN 1 AS x LIMIT 1")):
                empty.discard(edge)
        self._empty = empty
        return frozenset(empty)

    def _known_empty(self, name: str) -> bool:
        """Whether a table is empty, from memory only (an exclusive writer that has asked before):
        a first load then skips reading what is stored."""
        return self.exclusive_writer and self._empty is not None and name in self._empty

    def _written(self, name: str) -> None:
        if self._empty is not None:
            self._empty.discard(name)

    # ------------------------------------------------------------------ hooks
    @abstractmethod
    def _run(self, statement: str, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Execute one statement and return its rows."""

    def _records(self, statement: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Execute one statement and return its rows as dicts (engines may skip the DataFrame)."""
        return self._run(statement, params).to_dict("records")

    def _scan(self, statement: str, params: dict[str, Any], never_null: bool) -> pa.Table:
        """Run a table scan (``Dialect.node_scan``, ``Dialect.edge_scan``) and return its rows as Arrow;
        ``never_null`` says that none of its columns can hold a null (offsets, keys, classes)."""
        return self._run_arrow(statement, params)

    def _run_arrow(self, statement: str, params: dict[str, Any] | None = None,
                   types: dict[str, str] | None = None) -> pa.Table:
        """Execute one statement and return its rows as an Arrow table (engines with a columnar result
        hand it over without a Python object per value). ``types`` are the statement's returned columns
        and their types (``catalog.returned_columns``), for engines that convert some on the way."""
        return pa.Table.from_pylist([{k: plain(v) for k, v in r.items()} for r in self._records(statement, params)])

    @abstractmethod
    def _encode_nodes(self, table: str, rows: pd.DataFrame) -> Any:
        """Turn conformed rows (all table columns, in order) into the engine's bulk payload."""

    @abstractmethod
    def _encode_edges(self, rows: pd.DataFrame) -> Any:
        """Turn edge rows (src, dst, batch_id) into the engine's bulk payload."""

    @abstractmethod
    def _insert_nodes(self, table: str, payload: Any) -> None:
        """Insert encoded rows whose keys are new."""

    @abstractmethod
    def _update_nodes(self, table: str, payload: Any) -> None:
        """Overwrite every column of encoded rows whose keys exist."""

    @abstractmethod
    def _insert_edges(self, edge: str, src_table: str, dst_table: str, payload: Any) -> None:
        """Insert encoded new edges."""

    @abstractmethod
    def ensure_schema(self) -> None:
        """Create the schema generated from the ontology (idempotent)."""

    @abstractmethod
    def close(self) -> None: ...

    @contextmanager
    @abstractmethod
    def transaction(self) -> Iterator[None]:
        """Run the enclosed writes atomically."""
        yield

    # ------------------------------------------------------------------ writes
    def columns(self, table: str) -> list[str]:
        return ["key", "class", *self.onto.table_properties(table)]

    def upsert_nodes(self, table: str, frame: pd.DataFrame, provenance: Provenance) -> WriteResult:
        """Insert new keys, update changed ones, leave identical ones untouched."""
        with self._write_lock:
            return self.write(self.prepare_nodes(table, frame, provenance))

    def upsert_edges(self, edge: str, frame: pd.DataFrame, provenance: Provenance) -> WriteResult:
        """Insert edges not yet present; an edge is keyed by (type, source node, target node) and
        names its batch (``record_batch`` stores the batch's source and time)."""
        with self._write_lock:
            return self.write(self.prepare_edges(edge, frame, provenance))

    def prepare_nodes(self, table: str, frame: pd.DataFrame, provenance: Provenance, *,
                      absent: bool = False) -> WritePlan:
        """Everything but the write itself: conform, hash, compare with what is stored, encode.

        A bulk loader prepares the next batch while the engine writes the previous one; plans for
        one table must be written in the order they were prepared. ``absent=True`` says the caller
        knows no key of ``frame`` is stored (the parts of one file, into a table empty before the
        first): nothing stored is read.
        """
        self.onto.cls(table)
        if table != self.onto.classes[table].table:
            raise QueryParameterError(f"'{table}' is not a table root; use {self.onto.classes[table].table}")
        plan = WritePlan(table)
        if frame.empty:
            return plan
        rows = self._conform(table, frame)
        # Of the plaintext, without the keyed digests: the hash says whether the facts changed, whatever the keys.
        derived = ["content_hash", *(n for n, p in self.onto.table_properties(table).items() if p.digest_of)]
        rows["content_hash"] = content_hash(rows.drop(columns=derived))
        if absent or self._known_empty(table):
            existing = pd.Series(dtype="Int64")
        elif len(rows) > SMALL_WRITE:
            existing = self.node_hashes(table)
        else:
            existing = self._hashes_of(table, rows["key"])
        if len(existing):
            at = pc.fill_null(pc.index_in(arrow_text(rows["key"]), value_set=arrow_text(existing.index)), -1).to_numpy()
            is_new, at = at < 0, np.maximum(at, 0)
            stored, known = existing.to_numpy(dtype=np.int64, na_value=0)[at], existing.notna().to_numpy()[at]
            changed = ~is_new & (~known | (stored != rows["content_hash"].to_numpy(dtype=np.int64)))
        else:
            is_new, changed = np.ones(len(rows), dtype=bool), np.zeros(len(rows), dtype=bool)
        rows = self._seal(table, rows, is_new | changed)
        rows["batch_id"] = provenance.batch_id
        if "source" in rows:  # the IngestBatch node itself holds the batch's source and time
            rows["source"] = provenance.source
            rows["ingested_at"] = pd.Series(provenance.ingested_at, index=rows.index).astype("datetime64[us]")
        if is_new.any():
            plan.inserts.append((None, None, self._encode_nodes(table, rows if is_new.all() else
                                                                rows[is_new].reset_index(drop=True))))
        if changed.any():
            plan.updates = self._encode_nodes(table, rows[changed].reset_index(drop=True))
        plan.result = WriteResult(int(is_new.sum()), int(changed.sum()), int(len(rows) - is_new.sum() - changed.sum()))
        return plan

    def prepare_edges(self, edge: str, frame: pd.DataFrame, provenance: Provenance, *,
                      unique: bool = False, absent: bool = False) -> WritePlan:
        """Drop edges already stored and encode the rest, per (source table, target table).

        ``unique=True`` says the caller guarantees no (src, dst) pair repeats in ``frame`` (a
        validated batch does), which saves a pass over it; ``absent=True`` that no pair of it is
        stored, which saves reading what is.
        """
        self.onto.edge(edge)
        plan = WritePlan(edge, is_edge=True)
        for (st, dt_), group in by_table_pair(frame, ["src", "dst"]):
            if absent or self._known_empty(edge):
                existing = pd.DataFrame()
            elif len(group) > SMALL_EDGE_WRITE:
                existing = self.edge_pairs(edge, str(st), str(dt_))
            else:
                existing = self._pairs_from(edge, str(st), str(dt_), group["src"])
            pairs = group[["src", "dst"]] if unique else group[["src", "dst"]][~edge_duplicated(group)]
            # Only rows whose source already has an edge can repeat a stored pair: join those alone.
            maybe = (np.flatnonzero(pc.is_in(arrow_text(pairs["src"]), value_set=arrow_text(existing["src"])))
                     if len(existing) else np.empty(0, int))
            if len(maybe):
                probe = (pairs if len(maybe) == len(pairs) else pairs.iloc[maybe]).assign(row=maybe)
                stored = np.zeros(len(pairs), dtype=bool)
                stored[probe.merge(existing[["src", "dst"]], on=["src", "dst"])["row"].to_numpy()] = True
                new = pairs[~stored]
            else:
                new = pairs
            if len(new):
                rows = new.reset_index(drop=True)
                rows["batch_id"] = provenance.batch_id
                plan.inserts.append((str(st), str(dt_), self._encode_edges(rows)))
            plan.result += WriteResult(len(new), 0, len(pairs) - len(new))
        return plan

    def delete_nodes(self, table: str, keys: list[str]) -> int:
        """Delete nodes by key together with their edges; returns how many existed.

        For services that own their nodes (the master index undoing a merge); loaded records are
        never deleted, a later batch updates them.
        """
        label = self._table(table)
        keys = list(dict.fromkeys(keys))
        if not keys:
            return 0
        with self._write_lock:
            match = f"UNWIND $keys AS k MATCH (n:{label}) WHERE n.key = k"
            found = self._run(f"{match} RETURN count(n) AS n", {"keys": keys})
            self._run(f"{match} DETACH DELETE n", {"keys": keys})
            self._empty = None
        return int(found["n"].iat[0]) if len(found) else 0

    def delete_edges(self, edge: str, frame: pd.DataFrame) -> int:
        """Delete edges given as rows of src, dst, src_table, dst_table; returns how many existed."""
        self.onto.edge(edge)
        removed = 0
        with self._write_lock:
            for (st, dt_), group in frame.groupby(["src_table", "dst_table"], sort=True):
                pairs = group[["src", "dst"]].drop_duplicates().to_dict("records")
                match = (f"UNWIND $pairs AS p MATCH (a:{self._table(str(st))})-[e:{edge}]->(b:{self._table(str(dt_))}) "
                         "WHERE a.key = p.src AND b.key = p.dst")
                found = self._run(f"{match} RETURN count(e) AS n", {"pairs": pairs})
                self._run(f"{match} DELETE e", {"pairs": pairs})
                removed += int(found["n"].iat[0]) if len(found) else 0
            self._empty = None
        return removed

    def _hashes_of(self, table: str, keys: pd.Series) -> pd.Series:
        """key → content_hash for the given keys only (index lookups: a small write never reads a whole table)."""
        df = self._run(f"UNWIND $keys AS k MATCH (n:{self._table(table)}) WHERE n.key = k "
                       "RETURN n.key AS key, n.content_hash AS h", {"keys": list(dict.fromkeys(keys))})
        return pd.Series(df["h"].to_numpy(), index=df["key"].to_numpy(), dtype="Int64") if len(df) else \
            pd.Series(dtype="Int64")

    def _pairs_from(self, edge: str, src_table: str, dst_table: str, sources: pd.Series) -> pd.DataFrame:
        """Stored (src, dst) pairs of an edge type leaving the given source nodes: one bound key per
        statement (a hop from an unwound list scans the whole relationship table on LadybugDB)."""
        statement = (f"MATCH (a:{self._table(src_table)} {{key: $k}})-[:{edge}]->(b:{self._table(dst_table)}) "
                     "RETURN a.key AS src, b.key AS dst")
        rows = [r for k in dict.fromkeys(sources) for r in self._records(statement, {"k": k})]
        return pd.DataFrame(rows, columns=["src", "dst"], dtype="string")

    def provenance(self, batch_id: str) -> dict[str, Any]:
        """Where a node or edge came from: its batch's source, time and reconciliation."""
        return self.get("IngestBatch", batch_id)

    def record_batch(self, provenance: Provenance, **counts: int) -> WriteResult:
        """Store the IngestBatch node that edges of this batch point to by ``batch_id``."""
        frame = pd.DataFrame([{"key": provenance.batch_id, "class": "IngestBatch", **counts}])
        for name in counts:
            frame[name] = frame[name].astype("Int64")
        return self.upsert_nodes("IngestBatch", frame, provenance)

    def write(self, plan: WritePlan) -> WriteResult:
        """Carry out a prepared plan (bulk inserts, then in-place updates)."""
        with self._write_lock:
            for src_table, dst_table, payload in plan.inserts:
                if plan.is_edge:
                    self._insert_edges(plan.target, str(src_table), str(dst_table), payload)
                else:
                    self._insert_nodes(plan.target, payload)
            if plan.inserts:
                self._written(plan.target)
            if plan.updates is not None:
                self._update_nodes(plan.target, plan.updates)
        return plan.result

    def _conform(self, table: str, frame: pd.DataFrame) -> pd.DataFrame:
        """Order the columns as the table declares them, adding typed nulls for absent ones (digests
        too: ``_seal`` computes them for the rows to write; the content hash is taken of the plaintext)."""
        props = self.onto.table_properties(table)
        out = pd.DataFrame(index=frame.index)
        out["key"] = frame["key"].astype(TEXT)
        out["class"] = frame["class"].astype(TEXT) if "class" in frame else table
        for name, prop in props.items():
            if name in frame:
                out[name] = frame[name]
            elif prop.is_list:
                out[name] = pd.Series(None, index=frame.index, dtype=object)
            else:
                out[name] = pd.Series(pd.NA, index=frame.index, dtype=PANDAS_DTYPES[prop.datatype])
        return out.reset_index(drop=True)

    def _encrypted(self, table: str) -> list[str]:
        return [name for name, prop in self.onto.table_properties(table).items() if prop.encrypted]

    def _seal(self, table: str, rows: pd.DataFrame, to_write: np.ndarray) -> pd.DataFrame:
        """Digests of the plaintext, then ciphertext in the encrypted columns, of the rows about to be written
        (a re-load of unchanged rows computes neither)."""
        for name, prop in self.onto.table_properties(table).items():
            target = to_write & rows[prop.digest_of].notna().to_numpy() if prop.digest_of else None
            if target is not None and target.any():
                digests = np.full(len(rows), None, dtype=object)
                plaintext = arrow_text(rows[prop.digest_of]).filter(target)
                digests[target] = self.protector.digests(prop.digest_of, plaintext)
                rows[name] = pd.Series(digests, index=rows.index, dtype=TEXT)
        for name in self._encrypted(table):
            target = to_write & rows[name].notna().to_numpy()
            if target.any():
                values = rows[name].to_numpy(dtype=object)
                values[target] = self.protector.seal(f"{table}.{name}", [str(v) for v in values[target]])
                rows[name] = pd.Series(values, index=rows.index, dtype=TEXT)
        return rows

    def _unseal(self, field: str, values: list[Any]) -> list[Any]:
        present = [i for i, v in enumerate(values) if isinstance(v, str)]
        opened = self.protector.open(field, [values[i] for i in present])
        out = list(values)
        for i, v in zip(present, opened, strict=True):
            out[i] = v
        return out

    def _stale(self, root: str, name: str) -> tuple[int, list[tuple[str, str]]]:
        """(how many values ``root.name`` holds, the (key, value) pairs not sealed under the active key)."""
        df = self._run(f"MATCH (n:{root}) WHERE n.{name} IS NOT NULL RETURN n.key AS key, n.{name} AS v")
        if not len(df):
            return 0, []
        return len(df), [(k, v) for k, v in zip(df["key"], df["v"], strict=True) if not self.protector.current(v)]

    def seal_status(self) -> dict[str, dict[str, int]]:
        """Per encrypted ``Table.property``: how many values it holds and how many are not under the active key."""
        out = {}
        for table in self.onto.tables:
            for name in self._encrypted(table):
                total, stale = self._stale(table, name)
                out[f"{table}.{name}"] = {"values": total, "stale": len(stale)}
        return out

    def reseal(self, table: str) -> int:
        """Seal every encrypted value of ``table`` that is not under the protector's active key (after a key
        rotation, or values stored before encryption was switched on) and refresh their digests; returns how
        many values changed. Run by ``healthgraph keys rotate``."""
        root = self._table(table)
        changed = 0
        for name in self._encrypted(root):
            digest = next((d for d, p in self.onto.table_properties(root).items() if p.digest_of == name), None)
            _, stale = self._stale(root, name)
            for start in range(0, len(stale), RESEAL_BATCH):
                part = stale[start:start + RESEAL_BATCH]
                plain_values = self._unseal(f"{root}.{name}", [v for _, v in part])
                sealed = self.protector.seal(f"{root}.{name}", plain_values)
                rows = [{"key": k, "v": s, "d": self.protector.digest(name, p)}
                        for (k, _), s, p in zip(part, sealed, plain_values, strict=True)]
                assignment = f"n.{name} = r.v" + (f", n.{digest} = r.d" if digest else "")
                with self._write_lock, self.transaction():
                    self._run(f"UNWIND $rows AS r MATCH (n:{root}) WHERE n.key = r.key SET {assignment}",
                              {"rows": rows})
                changed += len(part)
        return changed

    # ------------------------------------------------------------------ reads
    def node_hashes(self, table: str) -> pd.Series:
        """key → content_hash for every node of a table."""
        if table in self.empty_tables():
            return pd.Series(dtype="Int64")
        df = self._run(f"MATCH (n:{self._table(table)}) RETURN n.key AS key, n.content_hash AS h")
        return pd.Series(df["h"].to_numpy(), index=df["key"].to_numpy(), dtype="Int64") if len(df) else \
            pd.Series(dtype="Int64")

    def node_classes(self, table: str) -> pd.Series:
        """key → class for every node of a table (used to check edge endpoints)."""
        df = self._run(f"MATCH (n:{self._table(table)}) RETURN n.key AS key, n.class AS class")
        return pd.Series(df["class"].to_numpy(), index=df["key"].to_numpy(), dtype="string") if len(df) else \
            pd.Series(dtype="string")

    def nodes(self, table: str, columns: list[str] | None = None) -> pd.DataFrame:
        """Every node of a table in one bulk read: ``key``, ``class`` and the given properties
        (all of the table's properties by default), ordered by key."""
        names = self._checked_columns(table, columns)
        if table in self.empty_tables():
            return pd.DataFrame({c: pd.Series(dtype=object) for c in ["key", "class", *names]})
        ret = ", ".join(f"n.{c} AS {c}" for c in ["key", "class", *names])
        # sorted here, not by the engine: an ORDER BY over every Resident of a 1M province (2.3M records)
        # filled LadybugDB's buffer pool
        df = self._run(f"MATCH (n:{self._table(table)}) RETURN {ret}")
        return self._plain_nodes(table, df.sort_values("key", kind="stable", ignore_index=True))

    def _plain_nodes(self, table: str, df: pd.DataFrame) -> pd.DataFrame:
        """Columns of plain Python values (None for missing), identical whatever the engine returned."""
        root = self._table(table)
        props = self.onto.table_properties(root)
        out = pd.DataFrame(index=range(len(df)))
        for c in df.columns:
            values = [plain(v) for v in df[c]]
            if c in props and props[c].datatype == "integer":  # integer columns with nulls arrive as floats
                values = [None if v is None else int(v) for v in values]
            if c in props and props[c].encrypted:
                values = self._unseal(f"{root}.{c}", values)
            out[c] = pd.Series(values, dtype=object)
        return out

    def _checked_columns(self, table: str, columns: list[str] | None) -> list[str]:
        props = self.onto.table_properties(self._table(table))
        names = list(props) if columns is None else [c for c in columns if c not in ("key", "class")]
        for c in names:
            if c not in props:
                raise QueryParameterError(f"'{table}' has no property '{c}' {did_you_mean(c, props)}", table=table)
        return names

    def edge_pairs(self, edge: str, src_table: str, dst_table: str) -> pd.DataFrame:
        self.onto.edge(edge)
        if edge in self.empty_tables():
            return pd.DataFrame({"src": [], "dst": []}, dtype="string")
        df = self._run(f"MATCH (a:{self._table(src_table)})-[:{edge}]->(b:{self._table(dst_table)}) "
                       "RETURN a.key AS src, b.key AS dst")
        return df.astype("string") if len(df) else pd.DataFrame({"src": [], "dst": []}, dtype="string")

    def stored_nodes(self, table: str, page_rows: int = STORED_PAGE_ROWS) -> Iterator[pa.Table]:
        """Every node of a table as stored, for copying the graph into another engine: key, class and
        each of the table's properties, sealed ones still sealed (nothing is opened here). In pages of at
        most ``page_rows`` nodes where the engine pages (the same columns in each), so that no table has to
        fit the engine's memory in one result."""
        table = self._table(table)
        names = ["key", "class", *self.onto.table_properties(table)]
        return self._pages(table, "n", f"(n:{table})", ", ".join(f"n.{c} AS {c}" for c in names), page_rows)

    def stored_edges(self, edge: str, src_table: str, dst_table: str,
                     page_rows: int = STORED_PAGE_ROWS) -> Iterator[pa.Table]:
        """Every relationship of one type between two tables as stored: source key, target key, batch; paged
        by source node as ``stored_nodes`` is."""
        self.onto.edge(edge)
        source = self._table(src_table)
        return self._pages(source, "a", f"(a:{source})-[e:{edge}]->(b:{self._table(dst_table)})",
                           "a.key AS source, b.key AS target, e.batch_id AS batch_id", page_rows)

    def _pages(self, table: str, variable: str, pattern: str, returned: str, page_rows: int) -> Iterator[pa.Table]:
        paging = self.dialect.page(variable)
        if paging is None:
            yield self._run_arrow(f"MATCH {pattern} RETURN {returned}")
            return
        condition, _ = paging
        for start in range(0, self._positions(table, variable), page_rows):
            yield self._run_arrow(f"MATCH {pattern} WHERE {condition} RETURN {returned}",
                                  {"page_from": start, "page_to": start + page_rows})

    def _positions(self, table: str, variable: str) -> int:
        """One past the last node position of ``table`` for the dialect's paging (0 when empty)."""
        _, end = self.dialect.page(variable)
        return self._records(f"MATCH ({variable}:{table}) RETURN {end} AS positions")[0]["positions"] or 0

    def get(self, cls: str, key: str) -> dict[str, Any]:
        """The node of class ``cls`` (or a subclass) with this key; raises NodeNotFound."""
        table = self._table(cls)
        df = self._run(f"MATCH (n:{table}) WHERE n.key = $key AND n.class IN $classes RETURN properties(n) AS node",
                       {"key": key, "classes": sorted(self.onto.descendants(cls))})
        if df.empty:
            raise NodeNotFound(f"no {cls} with key {key!r}", cls=cls, key=key)
        props = self.onto.table_properties(table)
        node = {k: plain(v) for k, v in df["node"].iat[0].items()
                if not k.startswith("_") and plain(v) is not None and not (k in props and props[k].digest_of)}
        for name in self._encrypted(table):
            if name in node:
                node[name] = self._unseal(f"{table}.{name}", [node[name]])[0]
        return node

    def neighbours(self, cls: str, key: str, *, edge: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Nodes one edge away, with the edge type and direction."""
        table = self._table(cls)
        rel = f":{self.onto.edge(edge).name}" if edge else ""
        out: list[dict[str, Any]] = []
        for direction, pattern in (("out", f"(n:{table} {{key: $key}})-[e{rel}]->(m)"),
                                   ("in", f"(n:{table} {{key: $key}})<-[e{rel}]-(m)")):
            df = self._run(f"MATCH {pattern} RETURN {self.dialect.edge_type('e')} AS edge, m.class AS class, m.key AS key, "
                           "m.name AS name ORDER BY edge, key LIMIT $limit", {"key": key, "limit": int(limit)})
            out += [{"direction": direction, **{k: plain(v) for k, v in r.items()}} for r in df.to_dict("records")]
        return out[:limit]

    def paths(self, cls: str, key: str, *, max_hops: int = 2, limit: int = 100) -> list[dict[str, Any]]:
        """Bounded paths (no repeated edge) from a node: the end node and path length."""
        if not 1 <= max_hops <= 4:
            raise QueryParameterError(f"max_hops must be 1..4, got {max_hops}")
        df = self._run(
            f"MATCH p = (n:{self._table(cls)} {{key: $key}})-[{self.dialect.path_pattern(max_hops)}]-(m) "
            "RETURN m.class AS class, m.key AS key, min(length(p)) AS hops ORDER BY hops, key LIMIT $limit",
            {"key": key, "limit": int(limit)})
        return [{k: plain(v) for k, v in r.items()} for r in df.to_dict("records")]

    def query(self, name: str, **params: Any) -> list[dict[str, Any]]:
        """Run a named query from the catalog with typed parameters."""
        q = named_query(name)
        if q.lookups or q.pairs or q.counted:
            return [{k: plain(v) for k, v in r.items()} for r in self.query_table(name, **params).to_pylist()]
        bound = self._bind(q, params)
        rows = [r for piece in self._slices(q) for r in self._records(q.cypher, {**bound, **piece})]
        return self._opened(q, [{k: plain(v) for k, v in r.items()} for r in rows])

    def query_table(self, name: str, *, period: tuple[dt.datetime | None, dt.datetime | None] | None = None,
                    narrowing: Predicate | None = None, lookups: dict[str, pa.Table] | None = None,
                    **params: Any) -> pa.Table:
        """Run a named query and return its rows as an Arrow table: for scans of many rows (a supervision
        rule's candidates), where a dict per row would cost more than the query.

        ``period`` = ``(since, until)`` (naive local times, either may be None) keeps a sliced query
        (``NamedQuery.slice_by``) to anchors whose property falls in [since, until): a backtest over one
        month reads that month's rows, not the whole graph's.

        ``narrowing`` (a necessary condition over the query's ``narrowable`` columns, ``graph/narrowing.py``)
        keeps, inside the engine, only rows for which it may hold.

        ``lookups`` holds the tables fetched earlier in one run (lookups, ``NamedQuery.lookups``, and table
        scans, ``NamedQuery.scan``), by statement; the store adds those it fetches, so the queries of a run
        that share a lookup or a scan fetch it once."""
        q = named_query(name)
        bound = self._bind(q, params)
        fetched = {} if lookups is None else lookups
        if q.scan and self.dialect.scans:
            table = self._scanned(q.cypher, period, fetched)
        else:
            types = returned_columns(q.cypher, q, self.onto)
            cypher, narrowed = q.statement(narrowing)
            pieces = [self._run_arrow(cypher, {**bound, **narrowed, **piece}, types) for piece in self._slices(q, period)]
            table = pieces[0] if len(pieces) == 1 else pa.concat_tables(pieces, promote_options="permissive")
        if q.lookups:
            for lookup in q.lookups:
                if lookup.cypher in fetched:
                    continue
                if lookup.scan and self.dialect.scans:
                    fetched[lookup.cypher] = self._scanned(lookup.cypher, None, fetched)
                else:
                    fetched[lookup.cypher] = self._run_arrow(lookup.cypher, {}, returned_columns(lookup.cypher, q, self.onto))
            table = join_lookups(table, [(lookup.on, fetched[lookup.cypher], lookup.absent) for lookup in q.lookups])
        if q.pairs:
            table = pair_rows(table, q.pairs.within, q.pairs.order, q.pairs.differ, q.pairs.names)
        if q.counted:
            table = count_distinct(table, q.counted.by, q.counted.distinct)
        for column, field_name in q.sealed.items():
            if column in table.column_names:
                opened = pa.array(self._unseal(field_name, table.column(column).to_pylist()), pa.string())
                table = table.set_column(table.column_names.index(column), column, opened)
        return table

    def _scanned(self, cypher: str, period: tuple[dt.datetime | None, dt.datetime | None] | None,
                 fetched: dict[str, pa.Table]) -> pa.Table:
        """The statement's rows assembled from a scan of each node table and relationship it matches
        (``graph/scan.py``), the window, if any, bounded by ``period``. A scan, or the rows of a statement,
        that more than one scanned statement of the catalog reads is kept in ``fetched`` for the rest of the
        run; the others are let go at once (at 10M encounters the items' rows alone take gigabytes)."""
        plan = plan_of(cypher)
        since, until = period or (None, None)
        window = {"window_from": since or dt.datetime(1, 1, 1), "window_to": until or dt.datetime(9999, 12, 31)}
        bounded = since is not None or until is not None  # else every node with a value in the window's property
        shared = _shared_scans()
        assembled = f"{cypher} {sorted(window.items())}"
        if assembled in fetched:
            return fetched[assembled]

        def once(statement: str, params: dict[str, Any], scan: tuple[str, ...], never_null: bool,
                 pages: list[dict[str, int]] | None = None) -> pa.Table:
            key = f"{statement} {sorted(params.items())}" if params else statement
            if key in fetched:
                return fetched[key]
            pieces = [self._scan(statement, params | page, never_null) for page in pages or [{}]]
            table = pa.concat_tables(pieces).combine_chunks()  # one chunk: see graph/scan._taken
            if shared[scan] > 1:
                fetched[key] = table
            return table

        nodes = {}
        for alias in plan.scanned:
            windowed = plan.window[1] if plan.window and plan.window[0] == alias else None
            required = plan.required(alias)
            params = (window if windowed and bounded else {}) | {f"required_{i}": text
                                                                 for i, text in enumerate(required.values())}
            # a window property is never null in the window's rows
            nullable = set(plan.properties(alias)) - NEVER_NULL - {windowed}
            pages = self._scan_pages(plan.labels[alias]) if nullable else []
            statement = self.dialect.node_scan(plan.labels[alias], plan.properties(alias), windowed, list(required),
                                               bounded=bounded, paged=bool(pages))
            nodes[alias] = once(statement, params, _node_scan(plan, alias), never_null=not nullable, pages=pages)
        hops = [once(self.dialect.edge_scan(h.edge, plan.labels[h.source], plan.labels[h.target]), {},
                     _edge_scan(plan, h), never_null=True) for h in plan.hops]
        rows = assemble(plan, nodes, hops)
        if shared[(cypher,)] > 1:  # the drugs of each prescription, counted and paired
            fetched[assembled] = rows
        return rows

    def _scan_pages(self, table: str) -> list[dict[str, int]]:
        """``page_from``/``page_to`` of each page of node offsets for a converted scan of ``table``; none when
        the table fits in one page (or the engine scans in one piece)."""
        if self.dialect.page("n") is None or self.scan_page_rows is None:
            return []
        end = self._positions(table, "n")
        if end <= self.scan_page_rows:
            return []
        return [{"page_from": start, "page_to": start + self.scan_page_rows}
                for start in range(0, end, self.scan_page_rows)]

    def _slices(self, q: NamedQuery, period: tuple[dt.datetime | None, dt.datetime | None] | None = None,
                ) -> list[dict[str, dt.datetime]]:
        """``slice_from``/``slice_to`` of each piece of a sliced query: equal spans of its anchor property's
        range (within ``period``), enough of them to keep each piece near ``slice_rows`` anchors."""
        if q.slice_by is None:
            return [{}]
        since, until = period or (None, None)
        nothing = [{"slice_from": dt.datetime(1900, 1, 1), "slice_to": dt.datetime(1900, 1, 1)}]  # the columns, no row
        if self.slice_rows is None:
            whole = {"slice_from": since or dt.datetime(1, 1, 1), "slice_to": until or dt.datetime(9999, 12, 31)}
            return [whole] if whole["slice_from"] < whole["slice_to"] else nothing
        cls, prop = q.slice_by.cls, q.slice_by.prop
        bounds = self._run(f"MATCH (a:{self._table(cls)}) RETURN count(a) AS n, min(a.{prop}) AS lo, "
                           f"max(a.{prop}) AS hi").iloc[0]
        if not bounds["n"]:
            return nothing
        lo, hi = pd.Timestamp(bounds["lo"]), pd.Timestamp(bounds["hi"]) + pd.Timedelta(seconds=1)
        share = 1.0
        if since or until:  # the share of the range inside the period, assuming anchors spread evenly over it
            span = hi - lo
            lo, hi = max(lo, pd.Timestamp(since or lo)), min(hi, pd.Timestamp(until or hi))
            if lo >= hi:
                return nothing
            share = (hi - lo) / span if span > pd.Timedelta(0) else 1.0
        count = max(1, -(-int(bounds["n"] * share) // self.slice_rows))
        edges = [lo] + [(lo + (hi - lo) * i / count).floor("s") for i in range(1, count)] + [hi]
        return [{"slice_from": a.to_pydatetime(), "slice_to": b.to_pydatetime()}
                for a, b in zip(edges, edges[1:], strict=False) if a < b]

    def _bind(self, q: NamedQuery, params: dict[str, Any]) -> dict[str, Any]:
        """The query's bound parameters, with values of digested parameters replaced by their digests."""
        bound = q.bind(self.onto, params)
        for pname, prop in q.digested.items():
            bound[pname] = [self.protector.digest(prop, str(v)) for v in bound[pname]]
        return bound

    def _opened(self, q: NamedQuery, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Rows with the query's sealed columns opened."""
        for column, field_name in q.sealed.items():
            values = self._unseal(field_name, [r.get(column) for r in rows])
            for r, v in zip(rows, values, strict=True):
                r[column] = v
        return rows

    def query_each(self, name: str, param: str, values: list[Any], **params: Any) -> list[dict[str, Any]]:
        """Run a named query once per value of ``param`` and concatenate the rows, in the order of the values.

        Each run starts from one bound key, which both engines answer by index lookups; a list
        parameter unwound inside one statement made LadybugDB's planner scan whole relationship
        tables (docs/engines.md).
        """
        return [row for value in dict.fromkeys(values) for row in self.query(name, **{param: value}, **params)]

    def counts(self) -> dict[str, int]:
        """Node count per concrete class and edge count per edge type."""
        out: dict[str, int] = {}
        for table in self.onto.tables:
            df = self._run(f"MATCH (n:{table}) RETURN n.class AS class, count(*) AS n")
            out.update({str(r["class"]): int(r["n"]) for r in df.to_dict("records")})
        for edge in self.onto.edges:
            df = self._run(f"MATCH ()-[e:{edge}]->() RETURN count(e) AS n")
            n = int(df["n"].iat[0]) if len(df) else 0
            if n:
                out[edge] = n
        return dict(sorted(out.items()))

    def _table(self, cls: str) -> str:
        return self.onto.cls(cls).table
