"""Neo4j 5 backend (official ``neo4j`` driver; extra ``healthgraph[neo4j]``).

Each node carries one label, its ontology table root (``:Institution`` for a Hospital, whose
``class`` property says Hospital), so the named queries read the same on both engines. Bulk
writes are batched ``UNWIND $rows … MERGE`` on the key, run as managed transactions that the
driver retries on transient errors (deadlocks, leader changes). Differences from LadybugDB
that we measured are in docs/engines.md.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from graph.catalog import named_query
from graph.columnar import ARROW_TYPES
from graph.dialect import Neo4jDialect
from graph.protect import FieldProtector
from graph.store import GraphStore
from ontology.errors import GraphError, GraphUnavailable, TransactionFailed
from ontology.model import Ontology
from ontology.validate import plain

try:
    import neo4j
    from neo4j.exceptions import DriverError, Neo4jError, ServiceUnavailable
except ImportError:  # pragma: no cover - depends on the installed extras
    neo4j = None

BATCH_ROWS = 5_000
"""Rows per UNWIND statement: large enough to amortise the round trip, small enough for a 1 GiB heap."""
COLLECT_ROWS = 250_000
"""Rows per collected list in bulk reads (see ``_collect``)."""
SCAN_PIECE_ROWS = 100_000
"""Rows a scan (``_run_arrow``) pulls per round trip and turns into Arrow at a time: the driver's records of
a whole 10M-row result, kept until converted, took gigabytes beside the server."""
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class Neo4jStore(GraphStore):
    dialect = Neo4jDialect()

    def __init__(self, uri: str, onto: Ontology, *, auth: tuple[str, str] | None = None,
                 database: str = "neo4j", protector: FieldProtector | None = None, index_wait_s: float = 300) -> None:
        """``index_wait_s``: how long opening waits for the ontology's indexes to come online (a bulk-imported
        database of 10M encounters builds them when it is first opened)."""
        if neo4j is None:
            raise GraphError("the neo4j engine needs the driver: pip install 'healthgraph[neo4j]'")
        super().__init__(onto, protector)
        self.uri, self.database, self.index_wait_s = uri, database, index_wait_s
        self._driver = neo4j.GraphDatabase.driver(uri, auth=auth, notifications_min_severity="OFF")
        try:
            self._driver.verify_connectivity()
        except (ServiceUnavailable, OSError, DriverError) as exc:
            self._driver.close()
            raise GraphUnavailable(f"cannot reach Neo4j at {uri}: {exc} — start it with "
                                   "`healthgraph services start neo4j`", uri=uri) from exc
        self._local = threading.local()
        self.ensure_schema()

    # ------------------------------------------------------------------ executor
    @property
    def _tx(self) -> Any:
        return getattr(self._local, "tx", None)

    @contextmanager
    def _engine_errors(self, statement: str) -> Iterator[None]:
        """Driver failures as the project's coded errors, on every path (inside a transaction too)."""
        try:
            yield
        except Neo4jError as exc:
            raise GraphError(f"{exc.message} — in statement: {statement[:200]}", statement=statement[:500],
                             neo4j_code=exc.code) from exc
        except (ServiceUnavailable, DriverError, OSError) as exc:
            raise GraphUnavailable(f"Neo4j at {self.uri} is unavailable: {exc}", uri=self.uri) from exc

    def _run(self, statement: str, params: dict[str, Any] | None = None) -> pd.DataFrame:
        rows, keys = self._fetch(statement, params)
        return pd.DataFrame(rows, columns=keys)

    def _records(self, statement: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return self._fetch(statement, params)[0]

    def query_each(self, name: str, param: str, values: list[Any], **params: Any) -> list[dict[str, Any]]:
        """One round trip for all values: the named query runs as a subquery per unwound value (Neo4j's
        planner keeps each run on its bound key; LadybugDB's did not, hence one statement per key there)."""
        q = named_query(name)
        values = list(dict.fromkeys(values))
        if not values:
            return []
        bound = [self._bind(q, {param: v, **params}) for v in values]
        inner = re.sub(r"\$" + re.escape(param) + r"\b", "__each", q.cypher)
        statement = f"UNWIND $__each AS __each CALL (__each) {{ {inner} }} RETURN *"
        rows = self._records(statement, {**{k: v for k, v in bound[0].items() if k != param},
                                         "__each": [b[param] for b in bound]})
        return self._opened(q, [{k: plain(v) for k, v in r.items() if k != "__each"} for r in rows])

    def _pairs_from(self, edge: str, src_table: str, dst_table: str, sources: pd.Series) -> pd.DataFrame:
        """One statement for all sources: Neo4j's planner seeks each unwound key in the key index."""
        statement = (f"UNWIND $keys AS k MATCH (a:{self._table(src_table)} {{key: k}})-[:{edge}]->"
                     f"(b:{self._table(dst_table)}) RETURN a.key AS src, b.key AS dst")
        rows = self._records(statement, {"keys": list(dict.fromkeys(sources))})
        return pd.DataFrame(rows, columns=["src", "dst"], dtype="string")

    def _run_arrow(self, statement: str, params: dict[str, Any] | None = None,
                   types: dict[str, str] | None = None) -> pa.Table:
        """Rows as Arrow columns, built from the driver's records without a Python dict or conversion per
        value; temporal columns come back as text and are parsed by column (the driver would make a
        Python object per value, in pure Python). Measured in docs/engines.md."""
        types = types or {}
        names = list(types)
        if not names or not all(_IDENTIFIER.fullmatch(name) for name in names):
            return super()._run_arrow(statement, params)
        temporal = {name for name in names if types[name] in ("dateTime", "date")}
        if temporal:
            returned = ", ".join(f"toString(`{n}`) AS `{n}`" if n in temporal else f"`{n}`" for n in names)
            statement = f"CALL () {{ {statement} }} RETURN {returned}"
        with self._engine_errors(statement):
            if self._tx is not None:
                pieces = _arrow_pieces(self._tx, statement, params or {})
            else:
                with self._driver.session(database=self.database, fetch_size=SCAN_PIECE_ROWS) as session:
                    pieces = session.execute_read(_arrow_pieces, statement, params or {})
        if not pieces:  # the statement's columns all the same: a lookup with no row still joins
            return pa.table({name: pa.array([], ARROW_TYPES.get(types[name], pa.null())) for name in names})
        table = pa.concat_tables(pieces, promote_options="permissive") if len(pieces) > 1 else pieces[0]
        for name in temporal:
            text = table.column(name).to_pandas()
            if types[name] == "date":
                values = pa.array(pd.to_datetime(text, format="ISO8601").dt.date, pa.date32())
            else:
                values = pa.array(pd.to_datetime(text, format="ISO8601"), pa.timestamp("us"))
            table = table.set_column(table.column_names.index(name), name, values)
        return table

    def _fetch(self, statement: str, params: dict[str, Any] | None) -> tuple[list[dict[str, Any]], list[str]]:
        records, keys = self._fetch_records(statement, params)
        return [{k: _native(r[k]) for k in keys} for r in records], keys

    def _fetch_records(self, statement: str, params: dict[str, Any] | None) -> tuple[list[Any], list[str]]:
        """The driver's records (tuples of values, in ``keys`` order) and the column names."""
        with self._engine_errors(statement):
            if self._tx is not None:
                result = self._tx.run(statement, params or {})
                records, keys = list(result), result.keys()
            else:
                records, _, keys = self._driver.execute_query(statement, params or {}, database_=self.database)
        return records, list(keys)

    def _write_batches(self, statement: str, rows: list[dict[str, Any]]) -> None:
        for start in range(0, len(rows), BATCH_ROWS):
            chunk = rows[start:start + BATCH_ROWS]
            with self._engine_errors(statement):
                if self._tx is not None:
                    self._tx.run(statement, rows=chunk).consume()
                else:
                    with self._driver.session(database=self.database) as session:
                        session.execute_write(lambda tx, c=chunk: tx.run(statement, rows=c).consume())

    def ensure_schema(self) -> None:
        with self._write_lock:
            for stmt in self.dialect.schema_statements(self.onto):
                self._run(stmt)
            self._run("CALL db.awaitIndexes($seconds)", {"seconds": int(self.index_wait_s)})

    def empty_tables(self) -> frozenset[str]:
        # One statement of counts, each answered by Neo4j's count store in constant time.
        # (db.labels() is no substitute: it also lists labels that only a constraint mentions.)
        parts = [f"MATCH (n:{t}) RETURN '{t}' AS name, count(n) AS n" for t in self.onto.tables]
        parts += [f"MATCH ()-[e:{e}]->() RETURN '{e}' AS name, count(e) AS n" for e in self.onto.edges]
        df = self._run(" UNION ALL ".join(parts))  # a label with no nodes yields no row (name groups)
        return frozenset(set(self.onto.tables) | set(self.onto.edges)) - set(df.loc[df["n"] > 0, "name"])

    # Bulk reads. Bolt sends one message per row, which the driver reads with two socket calls
    # each (≈ 100 µs per row measured here); a row holding collected lists crosses in one message.
    # Rows are split into buckets by internal id so no single list outgrows the server's heap.
    def node_hashes(self, table: str) -> pd.Series:
        df = self._collect(f"MATCH (n:{self._table(table)})", "n", {"key": "n.key", "h": "n.content_hash"},
                           f"MATCH (n:{self._table(table)}) RETURN count(n) AS n")
        return pd.Series(df["h"].to_numpy(), index=df["key"].to_numpy(), dtype="Int64")

    def node_classes(self, table: str) -> pd.Series:
        df = self._collect(f"MATCH (n:{self._table(table)})", "n", {"key": "n.key", "class": "n.class"},
                           f"MATCH (n:{self._table(table)}) RETURN count(n) AS n")
        return pd.Series(df["class"].to_numpy(), index=df["key"].to_numpy(), dtype="string")

    def nodes(self, table: str, columns: list[str] | None = None) -> pd.DataFrame:
        names = ["key", "class", *self._checked_columns(table, columns)]
        df = self._collect(f"MATCH (n:{self._table(table)})", "n", {c: f"n.{c}" for c in names},
                           f"MATCH (n:{self._table(table)}) RETURN count(n) AS n")
        return self._plain_nodes(table, df.sort_values("key").reset_index(drop=True))

    def edge_pairs(self, edge: str, src_table: str, dst_table: str) -> pd.DataFrame:
        self.onto.edge(edge)
        df = self._collect(f"MATCH (a:{self._table(src_table)})-[e:{edge}]->(b:{self._table(dst_table)})", "e",
                           {"src": "a.key", "dst": "b.key"}, f"MATCH ()-[e:{edge}]->() RETURN count(e) AS n")
        return df.astype("string")

    def _collect(self, match: str, variable: str, columns: dict[str, str], count: str) -> pd.DataFrame:
        n = int(self._run(count)["n"].iat[0])
        if n == 0:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
        buckets = max(1, -(-n // COLLECT_ROWS))
        # Each row is collected as a list: collect() skips nulls, a list keeps them in place.
        row = ", ".join(columns.values())
        statement = (f"UNWIND range(0, $buckets - 1) AS bucket CALL (bucket) {{ {match} "
                     f"WHERE id({variable}) % $buckets = bucket RETURN collect([{row}]) AS rows }} RETURN rows")
        parts = self._run(statement, {"buckets": buckets})
        return pd.DataFrame([r for chunk in parts["rows"] for r in chunk], columns=list(columns))

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._write_lock:
            if self._tx is not None:  # nested: join the outer transaction
                yield
                return
            session = self._driver.session(database=self.database)
            tx = session.begin_transaction()
            self._local.tx = tx
            try:
                yield
            except BaseException:
                tx.rollback()
                raise
            else:
                try:
                    tx.commit()
                except Neo4jError as exc:
                    raise TransactionFailed(f"commit failed: {exc.message}") from exc
            finally:
                self._local.tx = None
                tx.close()
                session.close()

    def close(self) -> None:
        self._driver.close()

    def clear(self) -> None:
        """Delete every node and edge (schema stays). For tests and re-seeding a scratch server."""
        with self._write_lock, self._driver.session(database=self.database) as session:
            # CALL … IN TRANSACTIONS runs only in an auto-commit transaction (session.run).
            session.run("MATCH (n) CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS").consume()

    # ------------------------------------------------------------------ bulk hooks
    def _datetimes(self, table: str) -> tuple[str, ...]:
        return tuple(name for name, prop in self.onto.table_properties(table).items() if prop.datatype == "dateTime")

    def _encode_nodes(self, table: str, rows: pd.DataFrame) -> list[dict[str, Any]]:
        return _records(rows, as_text=self._datetimes(table))

    def _encode_edges(self, rows: pd.DataFrame) -> list[dict[str, Any]]:
        return _records(rows[["src", "dst", "batch_id"]])

    def _insert_nodes(self, table: str, payload: list[dict[str, Any]]) -> None:
        self._write_batches(self._merge_nodes(table, payload), payload)

    def _update_nodes(self, table: str, payload: list[dict[str, Any]]) -> None:
        self._write_batches(self._merge_nodes(table, payload), payload)

    def _merge_nodes(self, table: str, payload: list[dict[str, Any]]) -> str:
        # Only the datetime columns the rows carry: a projected absent column would remove the property.
        present = payload[0].keys() if payload else ()
        return self.dialect.merge_nodes(table, tuple(name for name in self._datetimes(table) if name in present))

    def _insert_edges(self, edge: str, src_table: str, dst_table: str, payload: list[dict[str, Any]]) -> None:
        self._write_batches(self.dialect.merge_edges(edge, src_table, dst_table), payload)


def _records(rows: pd.DataFrame, as_text: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Rows as driver-ready dicts: Python scalars, None for missing, dates as date, lists as lists, and
    the ``as_text`` datetime columns as ISO text (the write statement parses them)."""
    columns: dict[str, list[Any]] = {}
    for name in rows.columns:
        col = rows[name]
        if name in as_text and col.dtype.kind == "M":
            text = np.datetime_as_string(col.to_numpy(dtype="datetime64[us]"), unit="us")
            values = np.where(col.isna().to_numpy(), None, text).tolist()
        elif col.dtype.kind == "M":
            values = [None if pd.isna(v) else v.to_pydatetime() for v in col]
            if str(col.dtype) == "datetime64[ms]":  # the ontology's xsd:date
                values = [v.date() if v is not None else None for v in values]
        elif col.dtype == object:
            values = [_list_or_scalar(v) for v in col]
        else:
            values = col.astype(object).where(col.notna(), None).tolist()
            values = [v.item() if isinstance(v, np.generic) else v for v in values]
        columns[name] = values
    names = list(columns)
    return [dict(zip(names, vals, strict=True)) for vals in zip(*columns.values(), strict=True)]


def _arrow_pieces(tx: Any, statement: str, params: dict[str, Any]) -> list[pa.Table]:
    """The statement's rows as Arrow tables of at most ``SCAN_PIECE_ROWS`` rows each, each built as its records
    arrive, so that only one piece of the driver's records is held at a time."""
    result = tx.run(statement, params)
    keys = list(result.keys())
    pieces = []
    while records := list(itertools.islice(result, SCAN_PIECE_ROWS)):
        # A Record is a tuple whose own __iter__ is Python code: read it through tuple's.
        columns = zip(*map(tuple.__iter__, records), strict=True)
        pieces.append(pa.Table.from_arrays([_column(values) for values in columns], names=keys))
    return pieces


def _column(values: tuple[Any, ...]) -> pa.Array:
    """One result column as Arrow: directly when its values are plain (strings, numbers, lists; NaN as
    null, as ``plain`` reads it), else value by value through the driver-to-Python conversion."""
    try:
        return pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        return pa.array([plain(_native(v)) for v in values], from_pandas=True)


def _list_or_scalar(v: Any) -> Any:
    if isinstance(v, (list, tuple, np.ndarray)):
        return [str(x) for x in v]
    if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
        return None
    return v


def _native(v: Any) -> Any:
    """Driver values as the Python values the embedded engine returns (dates, datetimes, dicts)."""
    if isinstance(v, dict):
        return {k: _native(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_native(x) for x in v]
    if hasattr(v, "to_native"):
        native = v.to_native()
        return native.replace(tzinfo=None) if isinstance(native, dt.datetime) else native
    return v
