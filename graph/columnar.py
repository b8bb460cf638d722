"""Column-wise work in an in-process DuckDB: one C++ pass over Arrow columns, no Python object per value.

Used where a bulk load hashes millions of values (content hashes, unkeyed digests) and where a named
query's rows are joined to its lookups; one thread each, since the graph writer works beside them.
"""

from __future__ import annotations

import threading

import duckdb
import numpy as np
import pyarrow as pa

_local = threading.local()


def _connection() -> duckdb.DuckDBPyConnection:
    """This thread's in-memory DuckDB (opening one takes ~40 ms; a connection is not shared across threads)."""
    if not hasattr(_local, "con"):
        _local.con = duckdb.connect(config={"threads": 1})
    return _local.con


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


def join_lookups(rows: pa.Table, lookups: list[tuple[str, pa.Table]]) -> pa.Table:
    """``rows`` with the columns of each lookup table joined on its key column (left join: a row whose key
    has no lookup row keeps nulls; a key with several lookup rows repeats the row, as a Cypher match would)."""
    con = _connection()
    names = [f"lookup{i}" for i in range(len(lookups))]
    con.register("rows", rows)
    try:
        select, joins = ["rows.*"], []
        for name, (on, table) in zip(names, lookups, strict=True):
            con.register(name, table)
            select += [f'{name}."{c}"' for c in table.column_names if c != on]
            joins.append(f'LEFT JOIN {name} ON rows."{on}" = {name}."{on}"')
        return con.sql(f"SELECT {', '.join(select)} FROM rows {' '.join(joins)}").to_arrow_table()
    finally:
        for name in ["rows", *names]:
            con.unregister(name)
