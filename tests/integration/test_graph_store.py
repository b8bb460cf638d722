"""The LadybugDB store: typed reads, named queries, class hierarchy, transactions, locking."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from graph import QUERIES, GraphStore, Provenance, open_graph
from ontology import errors
from ontology.validate import validate_nodes


def test_get_returns_typed_properties_with_provenance(store: GraphStore) -> None:
    node = store.get("Resident", "PHIS:000000000")
    assert node["class"] == "Resident" and len(node["id_number"]) == 18
    assert node["batch_id"] and node["content_hash"]
    batch = store.provenance(node["batch_id"])
    assert batch["source"] and batch["ingested_at"] and batch["received"] == batch["accepted"] + batch["quarantined"]
    assert node["birth_date"].__class__.__name__ == "date"


def test_asking_for_a_superclass_finds_subclass_nodes(store: GraphStore, province: Path) -> None:
    hosp = pd.read_parquet(province / "nodes" / "Institution.parquet").query("`class` == 'Hospital'").iloc[0]
    assert store.get("Institution", hosp["uscc"])["class"] == "Hospital"
    assert store.get("Hospital", hosp["uscc"])["name"] == hosp["name"]
    with pytest.raises(errors.NodeNotFound):
        store.get("Pharmacy", hosp["uscc"])
    every = store.query("institutions_in_division", division_code=hosp["division_code"], cls="Institution")
    only = store.query("institutions_in_division", division_code=hosp["division_code"], cls="Hospital")
    assert {r["class"] for r in only} == {"Hospital"}
    assert len(every) > len(only) and {r["key"] for r in only} <= {r["key"] for r in every}


def test_unknown_terms_say_what_is_valid(store: GraphStore) -> None:
    with pytest.raises(errors.UnknownTerm, match="did you mean 'Hospital'"):
        store.get("Hospitl", "x")
    with pytest.raises(errors.UnknownQuery, match="did you mean"):
        store.query("encounters_of_residnt", resident_key="x")
    with pytest.raises(errors.QueryParameterError, match="needs parameter"):
        store.query("encounters_of_resident")
    with pytest.raises(errors.QueryParameterError, match="subclass"):
        store.query("institutions_in_division", division_code="330106", cls="Resident")


def test_neighbours_and_paths(store: GraphStore) -> None:
    out = store.neighbours("Resident", "PHIS:000000000")
    assert any(r["edge"] == "resides_in" and r["direction"] == "out" and r["class"] == "Division" for r in out)
    paths = store.paths("Resident", "PHIS:000000000", max_hops=2)
    assert paths and paths[0]["hops"] == 1 and all(p["hops"] <= 2 for p in paths)
    with pytest.raises(errors.QueryParameterError):
        store.paths("Resident", "PHIS:000000000", max_hops=9)


def test_every_named_query_runs(store: GraphStore, truth: dict, query_args: dict) -> None:
    args = query_args
    index_queries = {"possible_matches", "identity_history", "identity_changes", "identity_events",
                     "same_person_records",
                     # supervision: need a built master index or written alerts (tests/integration/test_supervision.py)
                     "repeat_tests_across_institutions", "overlapping_inpatient_stays", "alerts_of_rule", "alerts"}
    assert set(args) | index_queries == set(QUERIES), "every catalog query needs a test call"
    results = {name: store.query(name, **kw) for name, kw in args.items()}
    assert results["encounters_of_resident"] and results["institutions_visited"][0]["encounters"] >= 1
    assert sum(r["residents"] for r in results["residents_in_division"]) > 0
    donor = truth["positive_donor"]
    transfused = {r["unit"] for din in donor["donations"] for r in store.query("units_of_donation", din=din)
                  if r["recipient"]}
    assert transfused == set(donor["transfused_units"])
    recipients = {r["recipient"] for r in results["recipients_of_donor"]}
    assert recipients and {r["county"][:2] for r in results["recipients_of_donor"]} == {"33"}
    assert len(results["vaccinations_of_lot"]) >= len(truth["aefi_cluster"]["events"])
    assert len(results["deliveries_of_lot"]) == 1 + len(truth["outbreak"]["venues"])


def test_named_queries_use_only_ontology_terms(onto) -> None:
    import re

    for q in QUERIES.values():
        for label in re.findall(r"\(\w+:(\w+)", q.cypher):
            assert label in onto.classes, (q.name, label)
        for edge in re.findall(r"\[:(\w+)\]", q.cypher):
            assert edge in onto.edges, (q.name, edge)
        for prop in re.findall(r"\b[a-z]\.(\w+)", q.cypher):
            assert prop in ("key", "class") or prop in onto.properties, (q.name, prop)


def test_transaction_rolls_back_on_error(tmp_path: Path, onto) -> None:
    store = open_graph(tmp_path / "g.lbdb", onto=onto)
    try:
        rows = validate_nodes(onto, "Division", pd.DataFrame([{"code": "330106", "name": "西湖区", "level": "county"}]))
        with pytest.raises(RuntimeError), store.transaction():
            store.upsert_nodes("Division", rows.accepted, Provenance("t", "b1"))
            raise RuntimeError("abort")
        assert store.counts() == {}
        with store.transaction():
            store.upsert_nodes("Division", rows.accepted, Provenance("t", "b1"))
        assert store.counts() == {"Division": 1}
    finally:
        store.close()


def test_one_store_per_path(tmp_path: Path, onto) -> None:
    store = open_graph(tmp_path / "g.lbdb", onto=onto)
    try:
        with pytest.raises(errors.StoreLocked):
            open_graph(tmp_path / "g.lbdb", onto=onto)
        code = f"from graph import open_graph\nopen_graph({str(tmp_path / 'g.lbdb')!r})"
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert proc.returncode != 0 and "HG-0201" in proc.stderr
    finally:
        store.close()


def test_a_graph_from_an_older_ontology_gains_the_new_properties(tmp_path: Path, onto) -> None:
    """Opening a graph stored before properties were added adds them (existing rows null) and bulk writes
    still line up: COPY is positional and the added columns come last."""
    store = open_graph(tmp_path / "g.lbdb", onto=onto)
    store._run("ALTER TABLE Resident DROP id_number_digest")
    store._run("ALTER TABLE Resident DROP pregnant")
    store.close()
    store = open_graph(tmp_path / "g.lbdb", onto=onto)
    try:
        n = 200  # above the row-by-row threshold: the bulk COPY path
        frame = pd.DataFrame({"key": [f"T:{i}" for i in range(n)], "class": "Resident", "source_system": "T",
                              "source_id": [str(i) for i in range(n)], "name": "李四", "sex": "2",
                              "birth_date": pd.to_datetime(["1990-05-01"] * n).date, "pregnant": [i % 2 == 0 for i in range(n)],
                              "id_number": "110105199005010026"})
        rows = validate_nodes(onto, "Resident", frame)
        assert store.upsert_nodes("Resident", rows.accepted, Provenance("t", "b1")).inserted == n
        node = store.get("Resident", "T:3")
        assert (node["pregnant"], node["id_number"], node["name"]) == (False, "110105199005010026", "李四")
        assert len(store.query("records_sharing_id_number", residents=["T:0"])) == n
        store._run("ALTER TABLE Resident ADD legacy_code STRING")
    finally:
        store.close()
    with pytest.raises(errors.SchemaMismatch) as exc:
        open_graph(tmp_path / "g.lbdb", onto=onto)
    assert exc.value.code == "HG-0207" and "legacy_code" in exc.value.message


def test_the_buffer_pool_is_a_setting(tmp_path: Path, onto) -> None:
    """A 1M-resident province needs more than the default 1 GiB pool for some reads (docs/engines.md)."""
    from services.settings import Settings

    store = Settings(data_dir=tmp_path, graph_buffer_pool_mb=256, encrypt_fields=False).open_graph(onto)
    try:
        assert store._run("CALL bm_info() RETURN *").iloc[0, 0] == 256 * 1024 * 1024
    finally:
        store.close()


SLICED = sorted(name for name, q in QUERIES.items() if q.slice_by)
# Pairs of one person's rows need a built master index: tests/integration/test_supervision.py slices those.
SLICED_UNPAIRED = [name for name in SLICED if not QUERIES[name].pairs]


def test_sliced_queries_filter_a_required_property_of_their_anchor(onto) -> None:
    assert {"encounter_practice", "prescription_items_review", "prescription_sizes"} <= set(SLICED)
    for name in SLICED:
        q = QUERIES[name]
        cls, prop, column = q.slice_by.cls, q.slice_by.prop, q.slice_by.column
        assert prop in onto.required_of(cls), name  # else nodes without it would fall outside every slice
        assert "$slice_from" in q.cypher and "$slice_to" in q.cypher and not q.ordered, name
        anchor = re.search(rf"\((\w+):{cls}\)", q.cypher).group(1)
        assert f"{anchor}.{prop} >= $slice_from" in q.cypher, name
        if column:  # the anchor's own property: a rule whose `at` is this column may push its period down
            assert f"{anchor}.{prop} AS {column}," in q.cypher, name


@pytest.mark.parametrize("name", SLICED_UNPAIRED)
def test_a_query_run_in_many_slices_gives_the_rows_of_one_run(store: GraphStore, query_args: dict, name: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    q, args = QUERIES[name], query_args.get(name, {})
    assert len(store._slices(q)) == 1  # the test province fits one piece of the default buffer pool
    whole = store.query_table(name, **args)
    monkeypatch.setattr(store, "slice_rows", 40)
    assert len(store._slices(q)) > 5
    sliced = store.query_table(name, **args)
    assert whole.num_rows > 0 and sliced.schema.names == whole.schema.names
    assert sorted(map(repr, sliced.to_pylist())) == sorted(map(repr, whole.to_pylist()))
    assert len(store.query(name, **args)) == whole.num_rows
