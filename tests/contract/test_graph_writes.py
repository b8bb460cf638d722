"""Write semantics, identical on both engines: insert, skip unchanged, update in place, idempotent
edges, provenance, transactions. Each engine starts empty (a scratch Neo4j server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from graph import GraphStore, Provenance, open_graph
from ontology import errors
from ontology.model import Ontology
from ontology.validate import lookup_from, validate_edges, validate_nodes


@pytest.fixture(params=["ladybug", "neo4j"])
def empty_store(request: pytest.FixtureRequest, tmp_path: Path, onto: Ontology) -> GraphStore:
    if request.param == "ladybug":
        store = open_graph(tmp_path / "g.lbdb", onto=onto)
    else:
        store = open_graph(request.getfixturevalue("neo4j_scratch_url"), engine="neo4j", onto=onto)
        store.clear()
    yield store
    store.close()


def _divisions(onto: Ontology, rows: list[dict[str, Any]]) -> pd.DataFrame:
    checked = validate_nodes(onto, "Division", pd.DataFrame(rows))
    assert not checked.rejected
    return checked.accepted


WEST_LAKE = {"code": "330106", "name": "西湖区", "level": "county"}
HANGZHOU = {"code": "330100", "name": "杭州市", "level": "prefecture"}


def test_insert_then_unchanged_then_update(empty_store: GraphStore, onto: Ontology) -> None:
    first = empty_store.upsert_nodes("Division", _divisions(onto, [WEST_LAKE, HANGZHOU]), Provenance("t", "b1"))
    assert (first.inserted, first.updated, first.unchanged) == (2, 0, 0)
    again = empty_store.upsert_nodes("Division", _divisions(onto, [WEST_LAKE, HANGZHOU]), Provenance("t", "b2"))
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2)
    assert empty_store.get("Division", "330106")["batch_id"] == "b1", "an unchanged row keeps its provenance"
    renamed = empty_store.upsert_nodes("Division", _divisions(onto, [{**WEST_LAKE, "name": "西湖区(新)"}]),
                                       Provenance("t", "b3"))
    assert (renamed.inserted, renamed.updated, renamed.unchanged) == (0, 1, 0)
    node = empty_store.get("Division", "330106")
    assert node["name"] == "西湖区(新)" and node["batch_id"] == "b3"
    assert empty_store.counts() == {"Division": 2}


def test_edges_are_keyed_by_type_and_endpoints(empty_store: GraphStore, onto: Ontology) -> None:
    empty_store.upsert_nodes("Division", _divisions(onto, [WEST_LAKE, HANGZHOU]), Provenance("t", "b1"))
    edges = validate_edges(onto, "within", pd.DataFrame([{"src": "330106", "dst": "330100", "src_class": "Division",
                                                           "dst_class": "Division"}]),
                           lookup=lookup_from(empty_store.node_classes))
    assert not edges.rejected
    first = empty_store.upsert_edges("within", edges.accepted, Provenance("t", "b1"))
    again = empty_store.upsert_edges("within", edges.accepted, Provenance("t", "b2"))
    assert (first.inserted, again.inserted, again.unchanged) == (1, 0, 1)
    assert empty_store.neighbours("Division", "330106") == [
        {"direction": "out", "edge": "within", "class": "Division", "key": "330100", "name": "杭州市"}]
    assert empty_store.counts() == {"Division": 2, "within": 1}


def test_a_failed_transaction_leaves_nothing(empty_store: GraphStore, onto: Ontology) -> None:
    with pytest.raises(RuntimeError), empty_store.transaction():
        empty_store.upsert_nodes("Division", _divisions(onto, [WEST_LAKE]), Provenance("t", "b1"))
        raise RuntimeError("abort")
    assert empty_store.counts() == {}
    with pytest.raises(errors.NodeNotFound):
        empty_store.get("Division", "330106")
    with empty_store.transaction():
        empty_store.upsert_nodes("Division", _divisions(onto, [WEST_LAKE]), Provenance("t", "b1"))
    assert empty_store.get("Division", "330106")["name"] == "西湖区"


def test_batches_record_their_reconciliation(empty_store: GraphStore) -> None:
    empty_store.record_batch(Provenance("his-export", "batch-1"), received=10, accepted=8, quarantined=2)
    batch = empty_store.provenance("batch-1")
    assert (batch["source"], batch["received"], batch["accepted"], batch["quarantined"]) == ("his-export", 10, 8, 2)
    assert batch["ingested_at"].year >= 2024


def test_both_engines_end_in_the_same_state(tmp_path: Path, onto: Ontology, request: pytest.FixtureRequest) -> None:
    neo4j = open_graph(request.getfixturevalue("neo4j_scratch_url"), engine="neo4j", onto=onto)
    ladybug = open_graph(tmp_path / "g.lbdb", onto=onto)
    try:
        neo4j.clear()
        for store in (ladybug, neo4j):
            store.upsert_nodes("Division", _divisions(onto, [WEST_LAKE, HANGZHOU]), Provenance("t", "b1"))
            store.upsert_nodes("Division", _divisions(onto, [{**HANGZHOU, "name": "杭州"}]), Provenance("t", "b2"))
        assert ladybug.get("Division", "330100") == neo4j.get("Division", "330100")
        pd.testing.assert_series_equal(ladybug.node_hashes("Division").sort_index(),
                                       neo4j.node_hashes("Division").sort_index())
    finally:
        ladybug.close()
        neo4j.close()


def test_delete_edges_then_nodes(empty_store: GraphStore, onto: Ontology) -> None:
    empty_store.upsert_nodes("Division", _divisions(onto, [WEST_LAKE, HANGZHOU]), Provenance("t", "b1"))
    edge = pd.DataFrame([{"src": "330106", "dst": "330100", "src_table": "Division", "dst_table": "Division"}])
    empty_store.upsert_edges("within", edge, Provenance("t", "b1"))
    assert empty_store.delete_edges("within", edge) == 1
    assert empty_store.counts() == {"Division": 2}
    assert empty_store.delete_edges("within", edge) == 0, "deleting twice finds nothing"
    empty_store.upsert_edges("within", edge, Provenance("t", "b2"))
    assert empty_store.delete_nodes("Division", ["330106", "no-such-code"]) == 1
    assert empty_store.counts() == {"Division": 1}, "a deleted node takes its edges with it"
    assert "within" in empty_store.empty_tables()


def test_stored_rows_read_in_pages_are_the_rows_read_whole(empty_store: GraphStore, onto: Ontology) -> None:
    counties = [{"code": f"3301{n:02d}", "name": f"第{n}区", "level": "county"} for n in range(1, 12)]
    empty_store.upsert_nodes("Division", _divisions(onto, [HANGZHOU, *counties]), Provenance("t", "b1"))
    within = pd.DataFrame([{"src": c["code"], "dst": "330100", "src_table": "Division", "dst_table": "Division"}
                           for c in counties])
    empty_store.upsert_edges("within", within, Provenance("t", "b1"))
    empty_store.delete_nodes("Division", ["330104", "330105", "330106"])  # leaves a gap in the stored positions
    kept = {"330100", *(c["code"] for c in counties)} - {"330104", "330105", "330106"}

    pages = list(empty_store.stored_nodes("Division", page_rows=3))
    whole = pa.concat_tables(pages)
    assert sorted(whole.column("key").to_pylist()) == sorted(kept)
    assert set(whole.column_names) == {"key", "class", *onto.table_properties("Division")}
    paged = empty_store.dialect.page("n") is not None
    assert all(p.num_rows <= 3 for p in pages) and len(pages) >= 4 if paged else len(pages) == 1
    one = pa.concat_tables(empty_store.stored_nodes("Division", page_rows=1_000))
    assert sorted(one.to_pylist(), key=lambda r: r["key"]) == sorted(whole.to_pylist(), key=lambda r: r["key"])

    edges = pa.concat_tables(empty_store.stored_edges("within", "Division", "Division", page_rows=2))
    assert sorted(edges.column("source").to_pylist()) == sorted(kept - {"330100"})
    assert set(edges.column("target").to_pylist()) == {"330100"} and set(edges.column("batch_id").to_pylist()) == {"b1"}
