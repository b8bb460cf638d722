"""Column-wise work in an in-process DuckDB: one C++ pass over Arrow columns, no Python object per value.

Used where a bulk load hashes millions of values (content hashes, unkeyed digests), where a named
query's rows are joined to its lookups and paired, and where a rule asks whether each row's list holds a
value.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

ARROW_TYPES = {"string": pa.string(), "integer": pa.int64(), "double": pa.float64(), "boolean": pa.bool_(),
               "date": pa.date32(), "dateTime": pa.timestamp("us"), "strings": pa.list_(pa.string())}
"""The Arrow type of each column type of the catalog (``NamedQuery.columns``) and ontology datatype."""

_local = threading.local()


@dataclass(frozen=True)
class Fallback:
    """A lookup column's value where the lookup has none: the value of another column of the row."""

    column: str


def _connection(every_core: bool = False) -> duckdb.DuckDBPyConnection:
    """This thread's in-memory DuckDB (opening one takes ~40 ms; a connection is not shared across threads):
    for a bulk load's hashes one thread, since the graph writer works beside them; for a query's rows every
    core, since they are what the caller waits for (joining 1M encounters to their lookups took 2.7 s on one)."""
    name = "every_core" if every_core else "one_core"
    if not hasattr(_local, name):
        setattr(_local, name, duckdb.connect() if every_core else duckdb.connect(config={"threads": 1}))
    return getattr(_local, name)


def query_connection() -> duckdb.DuckDBPyConnection:
    """The DuckDB where a query's rows are assembled, joined, paired and counted (every core)."""
    return _connection(every_core=True)


def row_hashes(table: pa.Table) -> np.ndarray:
    """A 64-bit hash of each row over all the table's columns, in order (a null is a value of its own)."""
    columns = table.rename_columns([f"c{i}" for i in range(table.num_columns)])
    con = _connection()
    con.register("rows_to_hash", columns)
    try:
        out = con.execute(f"SELECT hash({', '.join(columns.column_names)}) AS h FROM rows_to_hash").fetchnumpy()["h"]
    finally:
        con.unregister("rows_to_hash")
    return np.asarray(out, dtype=np.uint64)


def sha256_hex(prefix: str, values: pa.Array) -> list[str]:
    """``sha256(prefix + value)`` of each (non-null) value as lowercase hex, in order."""
    con = _connection()
    con.register("values_to_hash", pa.table({"v": values}))
    try:
        out = con.execute("SELECT sha256($prefix || v) AS d FROM values_to_hash", {"prefix": prefix}).fetchnumpy()["d"]
    finally:
        con.unregister("values_to_hash")
    return out.tolist()



def list_contains(lists: pa.Array, members: pa.Array) -> np.ndarray:
    """Per row, whether the list holds the member (False where either is null). Flattening the lists and
    comparing element by element took 0.9 s for 1M encounters' licensed subjects; DuckDB scans each list."""
    con = query_connection()
    con.register("lists_and_members", pa.table({"l": lists, "m": members}))
    try:
        out = con.sql("SELECT coalesce(list_contains(l, m), false) AS h FROM lists_and_members").fetchnumpy()["h"]
    finally:
        con.unregister("lists_and_members")
    return np.asarray(out, dtype=bool)

def join_lookups(rows: pa.Table, lookups: list[tuple[str, pa.Table, dict[str, Any]]]) -> pa.Table:
    """``rows`` with the columns of each lookup table joined on its key column, a column of ``rows`` or of an
    earlier lookup (left join: a row whose key has no lookup row, or a null, keeps nulls, or the lookup's
    ``absent`` values: constants, or another column's value (:class:`Fallback`); a key with several lookup
    rows repeats the row, as a Cypher match would)."""
    for on, table, absent in lookups:
        found = _unique_positions(rows.column(on), table.column(on))
        rows = _joined(rows, on, table, absent) if found is None else _gathered(rows, found, on, table, absent)
    return rows


def _gathered(rows: pa.Table, found: pa.Array, on: str, table: pa.Table, absent: dict[str, Any]) -> pa.Table:
    """A lookup whose keys are unique, by taking its row (``found``) for each row: the rows stay as they are
    (at 10M encounters, DuckDB's join took most of its time returning the rows' own columns). Its texts and
    lists reach the rows as dictionary arrays pointing at the lookup's values, not a copy per row."""
    for c in table.column_names:
        if c == on:
            continue
        column = one_chunk(table.column(c))
        if pa.types.is_dictionary(column.type) and c not in absent:  # a lookup assembled from scans
            taken = pa.DictionaryArray.from_arrays(column.indices.take(found), column.dictionary)
        elif (pa.types.is_string(column.type) or pa.types.is_list(column.type)) and c not in absent:
            taken = pa.DictionaryArray.from_arrays(found, column)
        else:
            taken = _filled(_plain(column).take(found), rows, absent.get(c))
        rows = rows.append_column(c, taken)
    return rows


def one_chunk(column: pa.ChunkedArray) -> pa.Array:
    """The column as one array: its only chunk as it is (no copy, so arrays pointing at it share it), else
    its chunks joined."""
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _unique_positions(keys: pa.ChunkedArray, lookup: pa.ChunkedArray) -> pa.Array | None:
    """The row of ``lookup`` holding each key's value (null where none does, or the key is null), or None
    when the lookup holds a value more than once."""
    keys, lookup = one_chunk(keys), one_chunk(lookup)
    if _same_values(keys, lookup):
        # both point at one scan's keys (the resident of each item and of each master link): positions in
        # it are the values, so no text is hashed
        at = lookup.indices.fill_null(0).to_numpy(zero_copy_only=False)
        held = np.asarray(lookup.indices.is_valid(), dtype=bool)
        if np.bincount(at[held], minlength=1).max() > 1:
            return None
        row_of = np.full(len(lookup.dictionary), -1, np.int64)
        row_of[at[held]] = np.flatnonzero(held)
        wanted = keys.indices.fill_null(0).to_numpy(zero_copy_only=False)
        found = row_of[wanted]
        return pa.array(found.astype(np.int32), mask=(found < 0) | ~np.asarray(keys.indices.is_valid(), dtype=bool))
    values = _plain(lookup)
    if pc.count_distinct(values).as_py() != len(values) - values.null_count:
        return None
    if pa.types.is_dictionary(keys.type):  # each distinct value looked up once
        return pc.index_in(keys.dictionary, value_set=values.cast(keys.type.value_type), skip_nulls=True
                           ).take(keys.indices)
    return pc.index_in(keys, value_set=values.cast(keys.type), skip_nulls=True)


def _same_values(keys: pa.Array, lookup: pa.Array) -> bool:
    """Whether both are dictionary arrays over the very same values, each value once (a node table's keys)."""
    if not (pa.types.is_dictionary(keys.type) and pa.types.is_dictionary(lookup.type)):
        return False
    a, b = keys.dictionary, lookup.dictionary
    if len(a) != len(b) or a.offset != b.offset or a.type != b.type or \
            [x and x.address for x in a.buffers()] != [x and x.address for x in b.buffers()]:
        return False
    return pc.count_distinct(a).as_py() == len(a) - a.null_count


def _filled(column: pa.ChunkedArray, rows: pa.Table, absent: Any) -> pa.ChunkedArray:
    if absent is None:
        return column
    if isinstance(absent, Fallback):
        return pc.coalesce(column, _plain(rows.column(absent.column)))
    return pc.coalesce(column, pa.scalar(absent, column.type))


def _plain(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """A column with its dictionary encoding undone (texts and lists that rows point at), else as it is."""
    if pa.types.is_dictionary(column.type):
        return column.cast(column.type.value_type)
    return column


def _joined(rows: pa.Table, on: str, table: pa.Table, absent: dict[str, Any]) -> pa.Table:
    """A lookup with several rows for a key, by a left join in DuckDB (a row per match)."""
    select, params = ["rows.*"], []
    for c in table.column_names:
        if c == on:
            continue
        if isinstance(absent.get(c), Fallback):
            select.append(f'coalesce(lookup."{c}", rows."{absent[c].column}") AS "{c}"')
        elif c in absent:
            params.append(absent[c])
            select.append(f'coalesce(lookup."{c}", ${len(params)}) AS "{c}"')
        else:
            select.append(f'lookup."{c}"')
    con = query_connection()
    con.register("rows", rows)
    con.register("lookup", table)
    try:
        return con.sql(f'SELECT {", ".join(select)} FROM rows LEFT JOIN lookup ON rows."{on}" = lookup."{on}"',
                       params=params).to_arrow_table()
    finally:
        con.unregister("rows")
        con.unregister("lookup")


def pair_rows(rows: pa.Table, within: tuple[str, ...], order: tuple[str, ...], differ: tuple[str, ...] = (),
              names: tuple[str, str] = ("first_{}", "second_{}")) -> pa.Table:
    """Every two rows equal (and not null) on ``within``, the first strictly before the second in ``order``
    (left to right) and different on each of ``differ``: the ``within`` columns, then the first row's other
    columns named by ``names[0]``, then the second's by ``names[1]`` (``graph.catalog.Pairs``)."""
    rest = [c for c in rows.column_names if c not in within]

    def before(i: int) -> str:  # lexicographic "a < b" on order[i:], as SQL; a null compares as unknown
        head = f'a."{order[i]}" < b."{order[i]}"'
        if i + 1 == len(order):
            return head
        return f'({head} OR (a."{order[i]}" = b."{order[i]}" AND {before(i + 1)}))'

    earlier, later = names
    select = ([f'a."{c}"' for c in within] + [f'a."{c}" AS "{earlier.format(c)}"' for c in rest]
              + [f'b."{c}" AS "{later.format(c)}"' for c in rest])
    where = [f'a."{c}" = b."{c}"' for c in within] + [before(0)] + [f'a."{c}" <> b."{c}"' for c in differ]
    con = query_connection()
    con.register("paired", rows)
    try:
        return con.sql(f"SELECT {', '.join(select)} FROM paired AS a JOIN paired AS b ON "
                       f"{' AND '.join(where)}").to_arrow_table()
    finally:
        con.unregister("paired")


def count_distinct(rows: pa.Table, by: tuple[str, ...], distinct: dict[str, str]) -> pa.Table:
    """A row per distinct combination of ``by`` (nulls group together) with, per ``distinct`` column, the number
    of distinct non-null values of the counted column (``graph.catalog.Counted``)."""
    keys = ", ".join(f'"{c}"' for c in by)
    counts = ", ".join(f'count(DISTINCT "{column}") AS "{name}"' for name, column in distinct.items())
    con = query_connection()
    con.register("grouped", rows)
    try:
        return con.sql(f"SELECT {keys}, {counts} FROM grouped GROUP BY {keys}").to_arrow_table()
    finally:
        con.unregister("grouped")
