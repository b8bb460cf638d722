"""How rows travel to Neo4j: datetimes as ISO text parsed by the statement (the round trip itself is
checked against a real server in tests/contract: stored datetimes equal the embedded engine's)."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from graph.dialect import Neo4jDialect
from graph.neo4j import _records


def test_datetime_columns_named_as_text_travel_as_iso_text_and_others_as_python_values():
    rows = pd.DataFrame({
        "key": ["a", "b"],
        "occurred_at": pd.to_datetime(["2025-08-06 14:45:00.123456", None]).astype("datetime64[us]"),
        "ended_at": pd.to_datetime(["2025-08-07 09:00", "2025-08-08 10:30"]).astype("datetime64[us]"),
        "birth_date": pd.to_datetime(["1980-02-29", None]).astype("datetime64[ms]"),
    })
    out = _records(rows, as_text=("occurred_at",))
    assert out[0]["occurred_at"] == "2025-08-06T14:45:00.123456"
    assert out[1]["occurred_at"] is None
    assert out[0]["ended_at"] == dt.datetime(2025, 8, 7, 9, 0)  # not named: a Python datetime, as before
    assert out[0]["birth_date"] == dt.date(1980, 2, 29) and out[1]["birth_date"] is None


def test_the_merge_statement_parses_exactly_the_datetime_columns_it_is_given():
    dialect = Neo4jDialect()
    assert dialect.merge_nodes("Encounter") == "UNWIND $rows AS r MERGE (n:Encounter {key: r.key}) SET n += r"
    statement = dialect.merge_nodes("Encounter", ("occurred_at", "ended_at"))
    assert statement.endswith("SET n += r {.*, occurred_at: localdatetime(r.occurred_at), "
                              "ended_at: localdatetime(r.ended_at)}")


def test_result_columns_become_arrow_directly_or_value_by_value_when_the_driver_hands_objects():
    import neo4j.time
    import pyarrow as pa

    from graph.neo4j import _column

    assert _column(("a", None, "b")).to_pylist() == ["a", None, "b"]
    assert _column((1.5, float("nan"), None)).to_pylist() == [1.5, None, None]  # NaN read as missing, as plain() does
    assert _column((["01", "03"], None)).type == pa.list_(pa.string())
    stamps = _column((neo4j.time.DateTime(2025, 1, 1, 10, 30, 0), None))  # not plain: converted one by one
    assert stamps.to_pylist() == [dt.datetime(2025, 1, 1, 10, 30), None]
