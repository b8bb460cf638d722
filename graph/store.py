"""The GraphStore protocol: what every engine offers, with the shared logic written once.

Public methods validate their arguments and carry the idempotency and provenance rules; each
backend implements a few small hooks (execute a statement, bulk-insert rows, update rows).
"""

from __future__ import annotations

import datetime as dt
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from graph.catalog import named_query
from graph.dialect import Dialect
from ontology.errors import NodeNotFound, QueryParameterError
from ontology.model import Ontology
from ontology.validate import PANDAS_DTYPES


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
    """A stable 64-bit hash of each row's domain content (provenance excluded), as decimal text."""
    cols = sorted(c for c in frame.columns if c not in ("source", "batch_id", "ingested_at", "content_hash"))
    acc = np.zeros(len(frame), dtype=np.uint64)
    for i, c in enumerate(cols):
        col = frame[c]
        if col.dtype == object:  # list properties: hash their joined text
            col = col.map(lambda v: "\x1f".join(v) if isinstance(v, (list, tuple, np.ndarray)) else v).astype("string")
        h = pd.util.hash_pandas_object(col, index=False, categorize=False).to_numpy()
        acc = (acc * np.uint64(1_000_003)) ^ h ^ np.uint64(i + 1)
    return pd.Series(acc.astype(str), index=frame.index, dtype="string")


class GraphStore(ABC):
    """A typed property graph governed by the ontology.

    Writes are idempotent (keyed; unchanged rows are skipped, changed rows updated in place) and
    carry provenance; they are serialised in-process. Reads go through typed methods and the
    named-query catalog; no caller writes a query string.
    """

    dialect: Dialect

    def __init__(self, onto: Ontology) -> None:
        self.onto = onto
        self._write_lock = threading.RLock()

    # ------------------------------------------------------------------ hooks
    @abstractmethod
    def _run(self, statement: str, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Execute one statement and return its rows."""

    @abstractmethod
    def _insert_nodes(self, table: str, rows: pd.DataFrame) -> None:
        """Insert rows whose keys are new (all table columns present, in order)."""

    @abstractmethod
    def _update_nodes(self, table: str, rows: pd.DataFrame) -> None:
        """Overwrite every column of rows whose keys exist."""

    @abstractmethod
    def _insert_edges(self, edge: str, src_table: str, dst_table: str, rows: pd.DataFrame) -> None:
        """Insert new edges: columns src, dst and the provenance columns."""

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
        self.onto.cls(table)
        if table != self.onto.classes[table].table:
            raise QueryParameterError(f"'{table}' is not a table root; use {self.onto.classes[table].table}")
        if frame.empty:
            return WriteResult()
        rows = self._conform(table, frame)
        rows["content_hash"] = content_hash(rows.drop(columns=["content_hash"]))
        with self._write_lock:
            existing = self.node_hashes(table)
            old_hash = rows["key"].map(existing) if len(existing) else pd.Series(pd.NA, index=rows.index, dtype="string")
            is_new = old_hash.isna().to_numpy()
            changed = ~is_new & (old_hash != rows["content_hash"]).fillna(True).to_numpy()
            for name, value in (("source", provenance.source), ("batch_id", provenance.batch_id),
                                ("ingested_at", provenance.ingested_at)):
                rows[name] = value
            rows["ingested_at"] = rows["ingested_at"].astype("datetime64[us]")
            if is_new.any():
                self._insert_nodes(table, rows[is_new].reset_index(drop=True))
            if changed.any():
                self._update_nodes(table, rows[changed].reset_index(drop=True))
        return WriteResult(int(is_new.sum()), int(changed.sum()), int(len(rows) - is_new.sum() - changed.sum()))

    def upsert_edges(self, edge: str, frame: pd.DataFrame, provenance: Provenance) -> WriteResult:
        """Insert edges not yet present; an edge is keyed by (type, source node, target node)."""
        self.onto.edge(edge)
        result = WriteResult()
        if frame.empty:
            return result
        with self._write_lock:
            for (st, dt_), group in frame.groupby(["src_table", "dst_table"], sort=True):
                existing = self.edge_pairs(edge, str(st), str(dt_))
                pairs = group[["src", "dst"]].astype("string").drop_duplicates()
                if len(existing):
                    merged = pairs.merge(existing, on=["src", "dst"], how="left", indicator=True)
                    new = merged[merged["_merge"] == "left_only"][["src", "dst"]]
                else:
                    new = pairs
                if len(new):
                    rows = new.reset_index(drop=True).copy()
                    rows["source"] = provenance.source
                    rows["batch_id"] = provenance.batch_id
                    rows["ingested_at"] = pd.Series(provenance.ingested_at, index=rows.index).astype("datetime64[us]")
                    self._insert_edges(edge, str(st), str(dt_), rows)
                result += WriteResult(len(new), 0, len(pairs) - len(new))
        return result

    def _conform(self, table: str, frame: pd.DataFrame) -> pd.DataFrame:
        """Order the columns as the table declares them, adding typed nulls for absent ones."""
        props = self.onto.table_properties(table)
        out = pd.DataFrame(index=frame.index)
        out["key"] = frame["key"].astype("string")
        out["class"] = frame["class"].astype("string") if "class" in frame else table
        for name, prop in props.items():
            if name in frame:
                out[name] = frame[name]
            elif prop.is_list:
                out[name] = pd.Series(None, index=frame.index, dtype=object)
            else:
                out[name] = pd.Series(pd.NA, index=frame.index, dtype=PANDAS_DTYPES[prop.datatype])
        return out.reset_index(drop=True)

    # ------------------------------------------------------------------ reads
    def node_hashes(self, table: str) -> pd.Series:
        """key → content_hash for every node of a table."""
        df = self._run(f"MATCH (n:{self._table(table)}) RETURN n.key AS key, n.content_hash AS h")
        return pd.Series(df["h"].to_numpy(), index=df["key"].to_numpy(), dtype="string") if len(df) else \
            pd.Series(dtype="string")

    def node_classes(self, table: str) -> pd.Series:
        """key → class for every node of a table (used to check edge endpoints)."""
        df = self._run(f"MATCH (n:{self._table(table)}) RETURN n.key AS key, n.class AS class")
        return pd.Series(df["class"].to_numpy(), index=df["key"].to_numpy(), dtype="string") if len(df) else \
            pd.Series(dtype="string")

    def edge_pairs(self, edge: str, src_table: str, dst_table: str) -> pd.DataFrame:
        self.onto.edge(edge)
        df = self._run(f"MATCH (a:{self._table(src_table)})-[:{edge}]->(b:{self._table(dst_table)}) "
                       "RETURN a.key AS src, b.key AS dst")
        return df.astype("string") if len(df) else pd.DataFrame({"src": [], "dst": []}, dtype="string")

    def get(self, cls: str, key: str) -> dict[str, Any]:
        """The node of class ``cls`` (or a subclass) with this key; raises NodeNotFound."""
        table = self._table(cls)
        df = self._run(f"MATCH (n:{table}) WHERE n.key = $key AND n.class IN $classes RETURN properties(n) AS node",
                       {"key": key, "classes": sorted(self.onto.descendants(cls))})
        if df.empty:
            raise NodeNotFound(f"no {cls} with key {key!r}", cls=cls, key=key)
        return {k: _plain(v) for k, v in df["node"].iat[0].items() if not k.startswith("_") and _plain(v) is not None}

    def neighbours(self, cls: str, key: str, *, edge: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Nodes one edge away, with the edge type and direction."""
        table = self._table(cls)
        rel = f":{self.onto.edge(edge).name}" if edge else ""
        out: list[dict[str, Any]] = []
        for direction, pattern in (("out", f"(n:{table} {{key: $key}})-[e{rel}]->(m)"),
                                   ("in", f"(n:{table} {{key: $key}})<-[e{rel}]-(m)")):
            df = self._run(f"MATCH {pattern} RETURN {self.dialect.edge_type('e')} AS edge, m.class AS class, m.key AS key, "
                           f"m.name AS name ORDER BY edge, key LIMIT {int(limit)}", {"key": key})
            out += [{"direction": direction, **{k: _plain(v) for k, v in r.items()}} for r in df.to_dict("records")]
        return out[:limit]

    def paths(self, cls: str, key: str, *, max_hops: int = 2, limit: int = 100) -> list[dict[str, Any]]:
        """Bounded paths (no repeated edge) from a node: the end node and path length."""
        if not 1 <= max_hops <= 4:
            raise QueryParameterError(f"max_hops must be 1..4, got {max_hops}")
        df = self._run(
            f"MATCH p = (n:{self._table(cls)} {{key: $key}})-[{self.dialect.path_pattern(max_hops)}]-(m) "
            f"RETURN m.class AS class, m.key AS key, min(length(p)) AS hops ORDER BY hops, key LIMIT {int(limit)}",
            {"key": key})
        return [{k: _plain(v) for k, v in r.items()} for r in df.to_dict("records")]

    def query(self, name: str, **params: Any) -> list[dict[str, Any]]:
        """Run a named query from the catalog with typed parameters."""
        q = named_query(name)
        df = self._run(q.cypher, q.bind(self.onto, params))
        return [{k: _plain(v) for k, v in r.items()} for r in df.to_dict("records")]

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


def _plain(v: Any) -> Any:
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, float) and np.isnan(v):
        return None
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, pd.Timestamp):
        return v.to_pydatetime()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v
