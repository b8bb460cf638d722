"""One contract, two graph engines: the embedded LadybugDB store and a real Neo4j 5.26 server.

The same generated province is validated and loaded into both; every named query and every
read operation of the GraphStore protocol must give identical results (in order where the
query has ORDER BY). Writes are checked on empty stores in test_graph_writes.py.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from graph import QUERIES, GraphStore, open_graph
from ingest.load import LoadReport, load_folder
from ontology import errors
from ontology.model import Ontology
from ontology.validate import plain
from rules import load_packs
from services.security.fields import FieldProtection
from services.supervision import Supervision, narrowing_of


@pytest.fixture(scope="module")
def neo4j_loaded(neo4j_url: str, province: Path, onto: Ontology,
                 tmp_path_factory: pytest.TempPathFactory) -> tuple[GraphStore, LoadReport]:
    keys = tmp_path_factory.mktemp("neo4j-keys")  # its own keys: ciphertexts and digests differ, reads agree
    protection = FieldProtection.at(keys / "fields-sm4.json", keys / "fields-digest.key")
    store = open_graph(neo4j_url, engine="neo4j", onto=onto, protector=protection)
    store.clear()
    report = load_folder(store, province, quarantine_root=tmp_path_factory.mktemp("neo4j-quarantine"))
    yield store, report
    store.close()


@pytest.fixture(scope="module")
def engines(store: GraphStore, neo4j_loaded: tuple[GraphStore, LoadReport]) -> dict[str, GraphStore]:
    return {"ladybug": store, "neo4j": neo4j_loaded[0]}


def _same(engines: dict[str, GraphStore], call: Any, *, ordered: bool = True) -> Any:
    """Run ``call`` on each engine; assert identical results; return the embedded engine's.

    A batch's ``ingested_at`` is the one value that differs: each engine loaded at its own time.
    """
    results = {name: _without_load_time(call(s)) for name, s in engines.items()}
    ladybug, neo4j = results["ladybug"], results["neo4j"]
    if not ordered:
        ladybug, neo4j = _canonical(ladybug), _canonical(neo4j)
    assert ladybug == neo4j
    return results["ladybug"]


def _without_load_time(value: Any) -> Any:
    if isinstance(value, dict) and value.get("class") == "IngestBatch":
        return {k: v for k, v in value.items() if k != "ingested_at"}
    return value


def _canonical(rows: list[dict[str, Any]]) -> list[str]:
    return sorted(repr(sorted(r.items())) for r in rows)


def test_both_engines_accept_and_quarantine_the_same_records(loaded, neo4j_loaded) -> None:
    ladybug, neo4j = loaded[1], neo4j_loaded[1]
    assert ladybug.totals() == neo4j.totals()
    assert neo4j.totals()["quarantined"] > 0 and neo4j.reconciles
    assert [(f.file, f.reasons) for f in ladybug.files] == [(f.file, f.reasons) for f in neo4j.files]


def test_counts_per_class_and_edge_type(engines) -> None:
    counts = _same(engines, lambda s: s.counts())
    assert counts["Resident"] > 0 and counts["of_patient"] > 0


# The master index's queries need an index built by its operations: tests/contract/test_mpi_engines.py
# runs them on both engines.
MASTER_INDEX_QUERIES = frozenset({"possible_matches", "identity_history", "identity_changes", "identity_events",
                                  "same_person_records",
                                  # supervision: rules joining the master index, and the alerts that runs
                                  # write; tests/integration/test_supervision.py runs them on a built index
                                  "repeat_tests_across_institutions", "overlapping_inpatient_stays",
                                  "alerts_of_rule", "alerts"})


@pytest.mark.parametrize("name", sorted(set(QUERIES) - MASTER_INDEX_QUERIES))
def test_named_query(engines, query_args: dict, name: str) -> None:
    rows = _same(engines, lambda s: s.query(name, **query_args[name]), ordered=QUERIES[name].ordered)
    assert rows, f"{name} returned nothing on the test data: choose arguments that exercise it"


def test_every_named_query_is_in_the_contract(query_args: dict) -> None:
    assert set(query_args) | MASTER_INDEX_QUERIES == set(QUERIES)
    assert not set(query_args) & MASTER_INDEX_QUERIES


@pytest.mark.parametrize("cls", ["Resident", "Hospital", "Diagnosis", "BloodUnit", "VaccineLot", "Practitioner",
                                 "InstitutionLicense", "IngestBatch"])
def test_get_returns_the_same_typed_node(engines, cls: str, onto: Ontology) -> None:
    table = onto.cls(cls).table
    key = engines["ladybug"]._run(f"MATCH (n:{table}) WHERE n.class IN $c RETURN n.key AS k ORDER BY k LIMIT 1",
                                  {"c": sorted(onto.descendants(cls))})["k"].iat[0]
    node = _same(engines, lambda s: s.get(cls, key))
    assert node["key"] == key and node["class"] in onto.descendants(cls)


def test_get_of_a_missing_node_fails_alike(engines, province: Path) -> None:
    hospital = pd.read_parquet(province / "nodes" / "Institution.parquet").query("`class` == 'Hospital'")["uscc"].iat[0]
    for s in engines.values():
        with pytest.raises(errors.NodeNotFound):
            s.get("Resident", "no-such-key")
        with pytest.raises(errors.NodeNotFound):  # the key exists, as a Hospital, not a Pharmacy
            s.get("Pharmacy", hospital)


def test_dates_and_lists_come_back_as_python_values(engines) -> None:
    node = _same(engines, lambda s: s.get("Resident", "PHIS:000000000"))
    assert node["birth_date"].__class__.__name__ == "date"
    _same(engines, lambda s: s.provenance(node["batch_id"]))
    for s in engines.values():
        assert s.provenance(node["batch_id"])["ingested_at"].__class__.__name__ == "datetime"


@pytest.mark.parametrize("edge", [None, "of_patient", "resides_in"])
def test_neighbours(engines, edge: str | None, query_args: dict) -> None:
    patient = query_args["encounters_of_resident"]["resident_key"]
    rows = _same(engines, lambda s: s.neighbours("Resident", patient, edge=edge, limit=50))
    assert rows and all(r["direction"] in ("out", "in") for r in rows)


@pytest.mark.parametrize("hops", [1, 2, 3, 4])
def test_paths_do_not_repeat_edges_on_either_engine(engines, hops: int, truth: dict) -> None:
    donor = truth["positive_donor"]["donations"][0]
    rows = _same(engines, lambda s: s.paths("BloodDonation", donor, max_hops=hops, limit=500))
    assert rows and max(r["hops"] for r in rows) <= hops


@pytest.mark.parametrize("table", ["Resident", "Institution", "Encounter", "Division"])
def test_hashes_and_classes_per_table(engines, table: str) -> None:
    hashes = {n: s.node_hashes(table).sort_index() for n, s in engines.items()}
    pd.testing.assert_series_equal(hashes["ladybug"], hashes["neo4j"], check_names=False)
    classes = {n: s.node_classes(table).sort_index() for n, s in engines.items()}
    pd.testing.assert_series_equal(classes["ladybug"], classes["neo4j"], check_names=False)
    assert len(hashes["neo4j"]) > 0


@pytest.mark.parametrize(("edge", "src", "dst"), [("of_patient", "Encounter", "Resident"),
                                                  ("located_in", "Institution", "Division")])
def test_edge_pairs(engines, edge: str, src: str, dst: str) -> None:
    pairs = {n: s.edge_pairs(edge, src, dst).sort_values(["src", "dst"]).reset_index(drop=True)
             for n, s in engines.items()}
    pd.testing.assert_frame_equal(pairs["ladybug"], pairs["neo4j"])
    assert len(pairs["neo4j"]) > 0


def test_empty_tables(engines) -> None:
    empty = _same(engines, lambda s: s.empty_tables())
    assert "Resident" not in empty


def test_parameter_errors_are_the_same(engines) -> None:
    for s in engines.values():
        with pytest.raises(errors.QueryParameterError, match="subclass"):
            s.query("institutions_in_division", division_code="330106", cls="Resident")
        with pytest.raises(errors.QueryParameterError):
            s.paths("Resident", "PHIS:000000000", max_hops=5)
        with pytest.raises(errors.UnknownQuery):
            s.query("no_such_query")


def test_reloading_writes_nothing_on_neo4j(neo4j_loaded, province: Path, tmp_path: Path) -> None:
    store, first = neo4j_loaded
    again = load_folder(store, province, quarantine_root=tmp_path / "q")
    totals = again.totals()
    assert totals["inserted"] == totals["updated"] == 0
    assert totals["unchanged"] == first.totals()["inserted"]


@pytest.mark.parametrize(("table", "columns"), [("Institution", None), ("Resident", ["name", "id_number", "birth_date"]),
                                                ("Diagnosis", ["icd10_code"])])
def test_bulk_node_reads(engines, table: str, columns: list[str] | None) -> None:
    frames = {n: s.nodes(table, columns) for n, s in engines.items()}
    pd.testing.assert_frame_equal(frames["ladybug"], frames["neo4j"])
    assert len(frames["neo4j"]) == sum(v for k, v in engines["ladybug"].counts().items()
                                       if k in engines["ladybug"].onto.descendants(table))


def test_bulk_reads_keep_nulls_in_place(engines) -> None:
    # Some generated residents have no id number: the bulk read must not shift later columns.
    frames = {n: s.nodes("Resident", ["id_number", "name"]) for n, s in engines.items()}
    pd.testing.assert_frame_equal(frames["ladybug"], frames["neo4j"])
    assert frames["neo4j"]["id_number"].isna().any() and frames["neo4j"]["name"].notna().all()
    for s in engines.values():
        with pytest.raises(errors.QueryParameterError, match="did you mean 'name'"):
            s.nodes("Resident", ["nmae"])


def test_query_each_runs_a_named_query_per_value(engines, truth: dict) -> None:
    """Neo4j runs the values in one round trip, LadybugDB one statement per value: same rows."""
    donor = truth["positive_donor"]
    rows = _same(engines, lambda s: s.query_each("units_made_from", "din", donor["donations"]), ordered=False)
    one_by_one = [r for din in donor["donations"] for r in engines["neo4j"].query("units_made_from", din=din)]
    assert _canonical(rows) == _canonical(one_by_one) and len(rows) >= len(donor["donations"])
    units = sorted({r["unit"] for r in rows})
    whereabouts = _same(engines, lambda s: s.query_each("unit_whereabouts", "unit", units), ordered=False)
    assert {r["unit"] for r in whereabouts} == set(units)
    assert set(donor["transfused_units"]) <= {r["unit"] for r in whereabouts if r["recipient"]}
    assert all(s.query_each("units_made_from", "din", []) == [] for s in engines.values())


def test_query_tables_hold_the_rows_of_query_on_both_engines(engines, onto: Ontology) -> None:
    """``query_table`` (Arrow, for supervision's scans) returns the rows ``query`` returns, values typed alike."""
    names = sorted({rule.query for rule in load_packs(onto)["core"].rules.values()} - MASTER_INDEX_QUERIES)
    assert len(names) >= 8
    for name in names:
        rows = _same(engines, lambda s, name=name: _canonical([{k: plain(v) for k, v in r.items()}
                                                               for r in s.query_table(name).to_pylist()]))
        assert rows == _canonical(engines["ladybug"].query(name)), name
        # Neo4j's temporal columns travel as text and are parsed by column: the same Arrow types arrive.
        tables = {engine: s.query_table(name) for engine, s in engines.items()}
        temporal = {f.name: f.type for f in tables["ladybug"].schema if pa.types.is_temporal(f.type)}
        if tables["neo4j"].num_rows:
            assert {n: tables["neo4j"].schema.field(n).type for n in temporal} == temporal, name


def test_query_tables_read_in_pieces_are_the_whole_tables(engines, onto: Ontology,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Neo4j's rows reach Arrow a piece at a time (``graph.neo4j.SCAN_PIECE_ROWS``), so a 10M-row result is
    never held as driver records; pieces with a column null throughout still join the whole table."""
    import graph.neo4j

    store = engines["neo4j"]
    names = sorted({rule.query for rule in load_packs(onto)["core"].rules.values()} - MASTER_INDEX_QUERIES)
    whole = {name: store.query_table(name) for name in names}
    monkeypatch.setattr(graph.neo4j, "SCAN_PIECE_ROWS", 3)
    pieced = {name: store.query_table(name) for name in names}
    assert sum(t.num_rows > 3 for t in whole.values()) >= 5  # several tables span several pieces
    for name in names:
        assert pieced[name].schema == whole[name].schema, name
        assert _canonical(pieced[name].to_pylist()) == _canonical(whole[name].to_pylist()), name


def test_narrowed_query_tables_are_the_same_on_both_engines(engines, onto: Ontology) -> None:
    """A query narrowed to the rows its rules may hold on (graph/narrowing.py) returns rows of the whole query,
    and fewer, the same on both engines; except where LadybugDB answers from table scans (graph/scan.py),
    which leave narrowing aside and return the whole query."""
    rules = list(load_packs(onto)["core"].rules.values())
    names = sorted({r.query for r in rules if QUERIES[r.query].narrowable} - MASTER_INDEX_QUERIES)
    assert {"appointment_behaviour", "prescription_items_review"} <= set(names)
    for name in names:
        predicate = narrowing_of([r for r in rules if r.query == name])
        narrowed = {engine: _canonical([{k: plain(v) for k, v in r.items()}
                                        for r in s.query_table(name, narrowing=predicate).to_pylist()])
                    for engine, s in engines.items()}
        whole = _canonical([{k: plain(v) for k, v in r.items()} for r in engines["neo4j"].query_table(name).to_pylist()])
        assert set(narrowed["neo4j"]) <= set(whole) and len(narrowed["neo4j"]) < len(whole), name
        assert narrowed["ladybug"] == (whole if QUERIES[name].scan else narrowed["neo4j"]), name


def test_rows_a_query_pairs_are_the_same_on_both_engines(engines) -> None:
    """A paired or counted query's statement (its rows before the lookups, the pairing and the counting, which
    run outside the engine: graph.catalog.Pairs, Counted) returns the same rows on both engines."""
    paired = sorted(name for name, q in QUERIES.items() if q.pairs or q.counted)
    assert paired == ["overlapping_inpatient_stays", "prescription_drug_pairs", "prescription_sizes",
                      "repeat_tests_across_institutions"]
    every = {"slice_from": dt.datetime(1, 1, 1), "slice_to": dt.datetime(9999, 12, 31)}
    for name in paired:
        rows = _same(engines, lambda s, name=name: [{k: plain(v) for k, v in r.items()}
                                                    for r in s._records(QUERIES[name].cypher, every)], ordered=False)
        assert len(rows) >= 10, name


def test_supervision_backtest_is_the_same_on_both_engines(engines, province: Path, onto: Ontology) -> None:
    """Every core rule that needs no master index (the shared stores have none) counts the same rows and
    findings on both engines, through the columnar path; a rule whose query LadybugDB answers from table
    scans (graph/scan.py, never narrowed) judges more rows there, with the same matches and findings."""
    as_of = dt.datetime.fromisoformat(json.loads((province / "manifest.json").read_text(encoding="utf-8"))["as_of"])
    reports = {name: Supervision(s).backtest("core", as_of=as_of, samples=0) for name, s in engines.items()}
    scanned = {rule.id for rule in load_packs(onto)["core"].rules.values() if QUERIES[rule.query].scan}
    summary = {name: [(r.rule_id, None if r.rule_id in scanned else r.rows, r.matched, r.findings, r.skipped)
                      for r in report.rules] for name, report in reports.items()}
    assert summary["ladybug"] == summary["neo4j"]
    assert {"rx_supply_over_7_days", "practice_outside_scope"} <= scanned
    assert sum(r.findings for r in reports["ladybug"].rules) >= 10
