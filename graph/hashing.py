"""Column-wise hashing in an in-process DuckDB: one C++ pass over Arrow columns, no Python object per value.

Used where a bulk load hashes millions of values (content hashes, unkeyed digests); one thread each,
since the graph writer works beside them.
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
