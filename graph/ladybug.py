"""LadybugDB backend: the embedded default engine (in-process, schema-first Cypher).

Traps handled here (measured; see docs/engines.md):
- one writer at a time: writes are serialised in-process;
- a second Database object on the same path in one process opens silently and loses its writes:
  each path is opened once per process;
- a failed statement inside a transaction silently rolls the transaction back and returns the
  connection to autocommit: the connection is discarded after any failure in a transaction;
- a failed COPY can leave the engine's memory inconsistent: inputs are validated and deduplicated
  first, and after a failed COPY the database is reopened;
- pandas nullable dtypes break or corrupt COPY: bulk loads always go through typed Arrow tables;
- every COPY or LOAD FROM an Arrow table holds megabytes of the buffer pool that are not given back
  (about 3 MiB each: a few hundred small writes exhaust 1 GiB), so small writes — the master index's
  operations — run as parameterised statements instead;
- a connection keeps every Arrow table bound to one of its statements until it is closed (1.4 GB after
  loading 16.6M rows, all of them at 166M): outside a transaction, a bulk statement gets a connection
  of its own.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ladybug
import pandas as pd
import pyarrow as pa

from graph.columnar import ARROW_TYPES
from graph.dialect import LadybugDialect
from graph.protect import FieldProtector
from graph.store import GraphStore
from ontology.errors import GraphError, SchemaMismatch, StoreLocked, TransactionFailed
from ontology.model import Ontology

SMALL_ROWS = 64
"""Writes of at most this many rows use parameterised statements instead of COPY (see the module notes)."""
NATIVE_CHUNK_ROWS = 1 << 20
"""Rows per chunk of a table scan's Arrow result."""

_OPEN_PATHS: set[Path] = set()
_OPEN_LOCK = threading.Lock()



class LadybugStore(GraphStore):
    dialect = LadybugDialect()
    exclusive_writer = True  # the file lock keeps every other process out

    def __init__(self, path: str | Path, onto: Ontology, *, buffer_pool_mb: int = 1024,
                 protector: FieldProtector | None = None) -> None:
        super().__init__(onto, protector)
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._buffer_pool = buffer_pool_mb * 1024 * 1024
        # A query's whole result lives in the buffer pool: at 1M encounters the practice rules' candidate
        # rows did not fit in 1 GiB, and ran in 12 pieces of ≈ 83k. ≈ 100 anchors a MiB leaves headroom.
        self.slice_rows = max(20_000, buffer_pool_mb * 100)
        # A converted scan's result too: 10.8M prescription items (six columns) did not fit in 1 GiB; pages of
        # node offsets cost a filter each (30–80 ms a page at 10.8M nodes).
        self.scan_page_rows = max(100_000, buffer_pool_mb * 2_000)
        with _OPEN_LOCK:
            if self.path.resolve() in _OPEN_PATHS:
                raise StoreLocked(f"graph store {self.path} is already open in this process; share that store",
                                  path=str(self.path))
            self._open()
            _OPEN_PATHS.add(self.path.resolve())
        self._in_tx = False
        try:
            self.ensure_schema()
        except BaseException:
            self.close()
            raise

    def _open(self) -> None:
        try:
            self._db = ladybug.Database(str(self.path), buffer_pool_size=self._buffer_pool)
        except RuntimeError as exc:
            if "lock" in str(exc).lower():
                raise StoreLocked(
                    f"graph store {self.path} is open in another process (LadybugDB allows one); "
                    "stop the other process (e.g. `healthgraph serve`) and retry", path=str(self.path)) from exc
            raise GraphError(f"cannot open graph store {self.path}: {exc}", path=str(self.path)) from exc
        self._conn = ladybug.Connection(self._db)

    # ------------------------------------------------------------------ executor
    def _execute(self, statement: str, params: dict[str, Any] | None = None) -> Any:
        with self._lock:
            try:
                return self._conn.execute(statement, params or {})
            except RuntimeError as exc:
                if self._in_tx:
                    self._discard_connection()
                raise GraphError(f"{exc} — in statement: {statement[:200]}", statement=statement[:500]) from exc

    def _copy(self, statement: str, batch: pa.Table) -> None:
        """Run a COPY from ``$batch``; after a failure reopen the database, whose memory may be inconsistent."""
        with self._lock:
            try:
                self._conn.execute(statement, {"batch": batch})
            except RuntimeError as exc:
                self._conn.close()
                self._db.close()
                self._open()
                raise GraphError(f"bulk load failed and the store was reopened: {exc}", statement=statement) from exc
            self._release_bound()

    def _release_bound(self) -> None:
        """Let go of the Arrow tables the connection holds for its statements (see the module notes)."""
        if not self._in_tx:
            self._conn.close()
            self._conn = ladybug.Connection(self._db)

    def _run(self, statement: str, params: dict[str, Any] | None = None) -> pd.DataFrame:
        with self._lock:
            result = self._execute(statement, params)
            if not result.get_column_names():  # a write without RETURN
                return pd.DataFrame()
            return result.get_as_arrow().to_pandas()

    def _records(self, statement: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        # Named queries return few rows: Python values straight from the engine; the Arrow → pandas
        # round trip cost more than the query itself (1.5 of 2.5 ms for a unit's whereabouts).
        with self._lock:
            result = self._execute(statement, params)
            names = result.get_column_names()
            return [dict(zip(names, row, strict=True)) for row in result.get_all()]

    def _run_arrow(self, statement: str, params: dict[str, Any] | None = None,
                   types: dict[str, str] | None = None) -> pa.Table:
        with self._lock:
            # The earlier results of a connection stay in the buffer pool while it lives: at 10M encounters a
            # 1 GiB pool filled with the pack's converted scans and refused a 274k-row query after them.
            self._release_bound()
            return self._execute(statement, params).get_as_arrow()

    def _scan(self, statement: str, params: dict[str, Any], never_null: bool) -> pa.Table:
        # LadybugDB's native Arrow collector hands a scan over without converting it afterwards: half the
        # time for 1.1M relationships (0.3 s against 0.6 s). In 0.22 it loses every null (no validity, and
        # the values under it invented), so it only serves scans whose columns are never null, and it
        # cannot take parameters.
        if not never_null or params:
            return self._run_arrow(statement, params)
        with self._lock:
            try:
                return self._conn.query_as_arrow(statement, NATIVE_CHUNK_ROWS).get_as_arrow()
            except RuntimeError as exc:
                raise GraphError(f"{exc} — in statement: {statement[:200]}", statement=statement[:500]) from exc

    def _discard_connection(self) -> None:
        # After a failed statement inside an explicit transaction the next statement on the same
        # connection can segfault (BACKENDS.md); never reuse it.
        self._conn = ladybug.Connection(self._db)
        self._in_tx = False

    def ensure_schema(self) -> None:
        """Create what is missing; a table stored by an older ontology gains the properties added since
        (``ALTER TABLE … ADD``, existing rows null). A stored column the ontology no longer declares, or
        declares with another type, raises :class:`SchemaMismatch`: that needs a reload, not a patch."""
        with self._write_lock:
            for stmt in self.dialect.schema_statements(self.onto):
                self._execute(stmt)
            self._order: dict[str, list[str]] = {}
            for table in self.onto.tables:
                stored = {r["name"]: r["type"] for r in self._records(f"CALL table_info('{table}') RETURN *")}
                wanted = {"key": "STRING", "class": "STRING"} | {  # table_info spells BOOLEAN as BOOL
                    name: self.dialect.column_type(p).replace("BOOLEAN", "BOOL")
                    for name, p in self.onto.table_properties(table).items()}
                wrong = {n: t for n, t in stored.items() if wanted.get(n, t) != t or n not in wanted}
                if wrong:
                    raise SchemaMismatch(
                        f"{self.path}: table {table} stores {', '.join(f'{n} {t}' for n, t in wrong.items())}, which the "
                        "ontology no longer declares so; load into a new graph (or delete this one and load again)",
                        table=table, columns=sorted(wrong))
                missing = [n for n in wanted if n not in stored]
                for name in missing:
                    self._execute(f"ALTER TABLE {table} ADD `{name}` {wanted[name]}")
                if missing:  # the engine's own order is the one COPY follows
                    stored = {r["name"]: r["type"] for r in self._records(f"CALL table_info('{table}') RETURN *")}
                self._order[table] = list(stored)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._write_lock, self._lock:
            if self._in_tx:  # nested: join the outer transaction
                yield
                return
            self._execute("BEGIN TRANSACTION")
            self._in_tx = True
            try:
                yield
            except BaseException:
                if self._in_tx:
                    try:
                        self._conn.execute("ROLLBACK")
                    except RuntimeError:
                        pass  # a failed statement already rolled the transaction back
                    finally:
                        self._discard_connection()
                raise
            else:
                try:
                    self._conn.execute("COMMIT")
                except RuntimeError as exc:
                    self._discard_connection()
                    raise TransactionFailed(f"commit failed: {exc}") from exc
                self._in_tx = False

    def close(self) -> None:
        with self._lock, _OPEN_LOCK:
            self._conn.close()
            self._db.close()
            _OPEN_PATHS.discard(self.path.resolve())

    # ------------------------------------------------------------------ bulk hooks
    def _arrow(self, table: str, rows: pd.DataFrame) -> pa.Table:
        props = self.onto.table_properties(table)
        fields = [pa.field("key", pa.string()), pa.field("class", pa.string())]
        fields += [pa.field(n, pa.list_(pa.string()) if p.is_list else ARROW_TYPES[p.datatype]) for n, p in props.items()]
        by_name = {f.name: f for f in fields}
        fields = [by_name[n] for n in self._order[table]]  # COPY is positional: the stored order, migrations last
        arrays = []
        for f in fields:
            col = rows[f.name]
            if pa.types.is_list(f.type):
                arrays.append(pa.array([None if v is pd.NA else v for v in col.tolist()], type=f.type))
            else:
                arrays.append(pa.Array.from_pandas(col, type=f.type))
        return pa.Table.from_arrays(arrays, schema=pa.schema(fields)).combine_chunks()

    def _encode_nodes(self, table: str, rows: pd.DataFrame) -> pa.Table:
        return self._arrow(table, rows)

    def _encode_edges(self, rows: pd.DataFrame) -> pa.Table:
        return pa.table({"from": pa.array(rows["src"], pa.string()), "to": pa.array(rows["dst"], pa.string()),
                         "batch_id": pa.array(rows["batch_id"], pa.string())})

    def _insert_nodes(self, table: str, payload: pa.Table) -> None:
        if payload.num_rows <= SMALL_ROWS:
            names = payload.column_names
            fields = ", ".join(f"`{name}`: $c{i}" for i, name in enumerate(names))
            for row in payload.to_pylist():
                self._execute(f"CREATE (n:{table} {{{fields}}})", {f"c{i}": row[n] for i, n in enumerate(names)})
            return
        self._copy(f"COPY {table} FROM $batch", payload)

    def _update_nodes(self, table: str, payload: pa.Table) -> None:
        names = payload.column_names
        if payload.num_rows <= SMALL_ROWS:
            key = names.index("key")
            sets = ", ".join(f"n.`{name}` = $c{i}" for i, name in enumerate(names) if name != "key")
            for row in payload.to_pylist():
                self._execute(f"MATCH (n:{table} {{key: $c{key}}}) SET {sets}",
                              {f"c{i}": row[n] for i, n in enumerate(names)})
            return
        # Positional aliases keep property names that are Cypher keywords out of the variable space.
        batch = payload.rename_columns([f"c{i}" for i in range(len(names))])
        assignments = ", ".join(f"n.{name} = c{i}" for i, name in enumerate(names) if name != "key")
        self._execute(f"LOAD FROM $batch MATCH (n:{table} {{key: c{names.index('key')}}}) SET {assignments}",
                      {"batch": batch})
        with self._lock:
            self._release_bound()

    def _insert_edges(self, edge: str, src_table: str, dst_table: str, payload: pa.Table) -> None:
        if payload.num_rows <= SMALL_ROWS:
            for row in payload.to_pylist():
                self._execute(f"MATCH (a:{src_table} {{key: $src}}), (b:{dst_table} {{key: $dst}}) "
                              f"CREATE (a)-[:{edge} {{batch_id: $batch}}]->(b)",
                              {"src": row["from"], "dst": row["to"], "batch": row["batch_id"]})
            return
        multi = len(self.onto.edge_table_pairs(edge)) > 1
        self._copy(self.dialect.copy_edges(edge, "$batch", src_table, dst_table, multi), payload)
