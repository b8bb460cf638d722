"""The two faults of LadybugDB 0.22's native Arrow path that the store's table scans work around
(``LadybugStore._scan``, ``LadybugDialect.edge_scan``), pinned on a real in-memory database: when a test here
fails, the fault is fixed and the workaround can go."""

from __future__ import annotations

import ladybug
import pyarrow as pa
import pytest

from graph.dialect import LadybugDialect

ROWS = 3000  # more than one chunk of the engine's vectors (2048)


@pytest.fixture(scope="module")
def connection() -> ladybug.Connection:
    conn = ladybug.Connection(ladybug.Database(":memory:"))
    conn.execute("CREATE NODE TABLE Item(key STRING, dose DOUBLE, PRIMARY KEY(key))")
    conn.execute("CREATE NODE TABLE Rx(key STRING, PRIMARY KEY(key))")
    conn.execute("CREATE REL TABLE item_of(FROM Item TO Rx, batch_id STRING)")
    conn.execute("UNWIND range(0, $n - 1) AS i CREATE (:Item {key: 'I' + string(i), "
                 "dose: CASE WHEN i % 3 = 0 THEN NULL ELSE i * 1.0 END})", {"n": ROWS})
    conn.execute("UNWIND range(0, $n - 1) AS i CREATE (:Rx {key: 'X' + string(i)})", {"n": ROWS // 2})
    conn.execute("MATCH (a:Item), (b:Rx) WHERE b.key = 'X' + string(offset(id(a)) / 2) CREATE (a)-[:item_of]->(b)")
    return conn


def _native(conn: ladybug.Connection, statement: str) -> pa.Table:
    return conn.query_as_arrow(statement, 1 << 20).get_as_arrow()


def _sorted(table: pa.Table) -> pa.Table:
    return table.sort_by([(c, "ascending") for c in table.column_names])


def test_the_native_path_loses_nulls_so_only_never_null_scans_take_it(connection: ladybug.Connection) -> None:
    statement = "MATCH (n:Item) RETURN offset(id(n)) AS _id, n.key AS key, n.dose AS dose"
    converted = _sorted(connection.execute(statement).get_as_arrow())
    native = _sorted(_native(connection, statement))
    assert converted.column("dose").null_count == ROWS // 3
    assert native.column("dose").null_count == 0, "nulls survive the native path now: it may serve every scan"
    assert native.select(["_id", "key"]).equals(converted.select(["_id", "key"]))  # never-null columns are right


def test_the_native_path_returns_no_rows_for_offsets_alone_but_all_with_a_constant_beside(
        connection: ladybug.Connection) -> None:
    offsets = "MATCH (a:Item)-[:item_of]->(b:Rx) RETURN offset(id(a)) AS source, offset(id(b)) AS target"
    converted = _sorted(connection.execute(offsets).get_as_arrow())
    assert converted.num_rows == ROWS
    assert _native(connection, offsets).num_rows == 0, "offsets alone come back now: drop the constant column"
    scan = _sorted(_native(connection, LadybugDialect().edge_scan("item_of", "Item", "Rx")))
    assert scan.select(["source", "target"]).equals(converted)
