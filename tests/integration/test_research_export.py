"""The research export (services/research_export.py): nothing identifying or restricted leaves, k and ℓ hold (by the
anonymity verification and by pycanon), small cells are marked, the DP noise has the right scale, pseudonyms are
keyed and stable, the signed manifest catches any change, the CLI and the researcher notebook run."""

from __future__ import annotations

import json
import math
import re
import runpy
import shutil
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import networkx as nx
import pandas as pd
import pytest
from typer.testing import CliRunner

from graph import GraphStore, Provenance, open_graph
from ingest.load import load_folder
from ingest.synthetic import generate
from ontology.model import Ontology
from ontology.validate import lookup_from, validate_edges, validate_nodes
from services import research_cli
from services.anonymity.errors import ExportTampered, InvalidConfiguration, NoSolution
from services.mpi import MasterPersonIndex
from services.research_export import (
    AGE_BANDS,
    DATA_FILES,
    QUASI_IDENTIFIERS,
    SENSITIVE,
    ExportReport,
    age_band,
    age_hierarchy,
    export_research,
    icd10_chapter,
    pseudonym,
    verify_export,
)
from services.security import SM2KeyPair

KEY, OTHER_KEY = bytes(range(32)), bytes(range(100, 132))
NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "research_graph.py"
PUBLIC_TEXT = {"institutions": {"name"}, "divisions": {"name"}}
CJK = re.compile(r"[\u3400-\u9fff]+")
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
TOKEN = re.compile(r"[0-9A-Za-z_:|.\-]+")


@pytest.fixture(scope="module")
def signer() -> SM2KeyPair:
    return SM2KeyPair.generate()


@pytest.fixture(scope="module")
def exported(store: GraphStore, tmp_path_factory: pytest.TempPathFactory, signer: SM2KeyPair) -> ExportReport:
    return export_research(store, tmp_path_factory.mktemp("research") / "a", key=KEY, signer=signer, progress=False)


@pytest.fixture(scope="module")
def again(store: GraphStore, tmp_path_factory: pytest.TempPathFactory) -> ExportReport:
    return export_research(store, tmp_path_factory.mktemp("research") / "b", key=KEY, progress=False)


@pytest.fixture(scope="module")
def other(store: GraphStore, tmp_path_factory: pytest.TempPathFactory) -> ExportReport:
    return export_research(store, tmp_path_factory.mktemp("research") / "c", key=OTHER_KEY, epsilon=0.25,
                           progress=False)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory, onto: Ontology) -> dict[str, Any]:
    """A 400-resident province of its own with the master index built and restricted diagnoses planted (the
    shared store is never written)."""
    root = tmp_path_factory.mktemp("research-small")
    generate(root / "p", residents=400, seed=5)
    store = open_graph(root / "graph.lbdb", onto=onto)
    load_folder(store, root / "p", quarantine_root=root / "q")
    MasterPersonIndex(store).build(progress=False)
    planted = _plant_restricted(store, onto, {"B20.1": "DX-HIV-1", "Z21": "DX-HIV-2", "A53.9": "DX-STI-1"})
    signer = SM2KeyPair.generate()
    report = export_research(store, root / "export", key=KEY, signer=signer, progress=False)
    yield {"store": store, "report": report, "planted": planted, "signer": signer, "root": root}
    store.close()


def _plant_restricted(store: GraphStore, onto: Ontology, codes: dict[str, str]) -> list[str]:
    diagnoses = store.nodes("Diagnosis", ["source_system"]).head(len(codes))
    in_encounter = store.edge_pairs("in_encounter", "Diagnosis", "Encounter").astype(object).set_index("src")["dst"]
    encounter_class = store.node_classes("Encounter")
    batch = Provenance("test", "research-restricted")
    store.record_batch(batch)
    keys = []
    for (code, source_id), row in zip(codes.items(), diagnoses.itertuples(), strict=True):
        node = {"source_system": row.source_system, "source_id": source_id, "class": "Diagnosis",
                "icd10_code": code, "is_primary": False, "occurred_at": pd.Timestamp("2025-03-01 10:00")}
        checked = validate_nodes(onto, "Diagnosis", pd.DataFrame([node]))
        assert not checked.rejected
        store.upsert_nodes("Diagnosis", checked.accepted, batch)
        key, encounter = f"{row.source_system}:{source_id}", in_encounter[row.key]
        edge = pd.DataFrame([{"src": key, "dst": encounter, "src_class": "Diagnosis",
                              "dst_class": encounter_class[encounter]}])
        edges = validate_edges(onto, "in_encounter", edge, lookup=lookup_from(store.node_classes))
        assert not edges.rejected
        store.upsert_edges("in_encounter", edges.accepted, batch)
        keys.append(key)
    return keys


def _tables(folder: Path) -> dict[str, pd.DataFrame]:
    return {name.removesuffix(".parquet"): pd.read_parquet(folder / name) for name in DATA_FILES
            if name.endswith(".parquet")}


def _identifying(store: GraphStore) -> set[str]:
    """Every original key, name, id number, phone, address, source id and birth date of every person record,
    master person, encounter and diagnosis."""
    values: set[str] = set()
    for table, columns in (("Resident", ["name", "id_number", "phone", "address", "source_id", "birth_date"]),
                           ("MasterPerson", ["name", "id_number", "phone", "address", "birth_date"]),
                           ("Encounter", ["source_id"]), ("Diagnosis", ["source_id"])):
        frame = store.nodes(table, columns)
        for column in ["key", *columns]:
            values |= {str(v) for v in frame[column].dropna()}
    return values


def _assert_nothing_identifying(folder: Path, store: GraphStore) -> None:
    identifying = _identifying(store)
    assert len(identifying) > 1000
    tables = _tables(folder)
    public_names = set(tables["institutions"]["name"].dropna()) | set(tables["divisions"]["name"].dropna())
    for name, frame in tables.items():
        for column in frame.columns:
            cells = {str(v) for v in frame[column].dropna()}
            assert not cells & identifying, f"{name}.{column} holds original values"
            assert not any(ISO_DATE.search(c) for c in cells), f"{name}.{column} holds an exact date"
            if column not in PUBLIC_TEXT.get(name, ()):
                assert not any(CJK.search(c) for c in cells), f"{name}.{column} holds Chinese text (a name?)"
    graphml = (folder / "research.graphml").read_text(encoding="utf-8")
    assert not set(TOKEN.findall(graphml)) & identifying
    assert not ISO_DATE.search(graphml)
    assert set(CJK.findall(graphml)) <= {run for name in public_names for run in CJK.findall(name)}
    for report in ("report.json", "report.md", "manifest.json"):
        assert not set(TOKEN.findall((folder / report).read_text(encoding="utf-8"))) & identifying


def _assert_nothing_restricted(folder: Path, onto: Ontology) -> None:
    restricted = re.compile("|".join(f"(?:{label.icd10_pattern})" for label in onto.sensitivity_labels.values()))
    tables = _tables(folder)
    categories = set(tables["diagnoses"]["category"])
    assert categories and not {c for c in categories if restricted.fullmatch(c)}
    assert "V" not in set(tables["diagnoses"]["chapter"]) | set(tables["residents"][SENSITIVE])
    assert "V" not in set(tables["aggregates"]["chapter"].dropna())
    graph = nx.read_graphml(folder / "research.graphml")
    assert not {c for c in nx.get_node_attributes(graph, "category").values() if restricted.fullmatch(c)}


# ------------------------------------------------------------------------------------------------------------ tests


def test_no_original_identifier_exact_date_or_restricted_diagnosis_leaves(
        exported: ExportReport, store: GraphStore, onto: Ontology) -> None:
    _assert_nothing_identifying(exported.out, store)
    _assert_nothing_restricted(exported.out, onto)
    restricted = exported.document["restricted"]
    assert restricted["diagnoses_removed"] == exported.restricted_removed > 0
    assert restricted["chapters_withheld"] == ["V"]


def test_k_and_l_hold_by_verification_and_by_pycanon(exported: ExportReport, pycanon: Any) -> None:
    residents = pd.read_parquet(exported.out / "residents.parquet")
    assert exported.achieved_k >= 5 and exported.achieved_l >= 2
    classes = residents.groupby(list(QUASI_IDENTIFIERS))[SENSITIVE]
    assert classes.size().min() == exported.achieved_k
    entropy = classes.apply(lambda s: -(s.value_counts(normalize=True).map(lambda p: p * math.log(p))).sum())
    assert math.exp(entropy.min()) == pytest.approx(exported.achieved_l)
    measured = pycanon(residents, list(QUASI_IDENTIFIERS), [SENSITIVE])
    assert measured["k"] >= 5 and measured["l_entropy"] >= 2
    before = exported.document["persons"]["exported_before_suppression"]
    assert exported.suppressed <= exported.max_suppressed == math.floor(0.02 * before)
    assert len(residents) == before - exported.suppressed


def test_small_cells_are_withheld_and_marked(exported: ExportReport) -> None:
    aggregates = pd.read_parquet(exported.out / "aggregates.parquet")
    assert set(aggregates["measure"]) == {"residents", "diagnoses"}
    assert (aggregates["small_cell"] == aggregates["count"].isna()).all()
    assert (aggregates.loc[~aggregates["small_cell"], "count"] >= 10).all()
    assert aggregates["small_cell"].sum() == exported.small_cells > 0 and (~aggregates["small_cell"]).sum() > 0
    assert aggregates["dp_count"].notna().all()
    published = exported.document["aggregates"]["small_cells_suppressed"]
    assert sum(published.values()) == exported.small_cells


def test_dp_noise_is_present_and_of_the_theoretical_scale(exported: ExportReport, other: ExportReport,
                                                          store: GraphStore) -> None:
    truth = _true_resident_counts(store, exported)
    for report in (exported, other):
        cells = pd.read_parquet(report.out / "aggregates.parquet").query("measure == 'residents'")
        cells = cells.set_index(["county", "age_band", "sex"])
        true = truth.reindex(cells.index, fill_value=0)
        published = cells["count"].dropna()
        assert (published == true[published.index]).all(), "published exact counts are the true counts"
        noise = cells["dp_count"] - true
        scale = 1 / report.epsilon
        assert len(noise) > 1000 and (noise != 0).mean() > 0.3
        assert 0.5 * scale < noise.abs().mean() < 1.5 * scale
        assert abs(noise.mean()) < 0.15 * scale
        dp = report.document["differential_privacy"]
        assert dp["epsilon_per_cell"] == pytest.approx(report.epsilon) and dp["delta"] == 0
        assert dp["person_level_epsilon"]["residents"] == pytest.approx(report.epsilon)


def _true_resident_counts(store: GraphStore, report: ExportReport) -> pd.Series:
    """Residents per (county, age band, sex) recomputed from the store (one per record: no master index here)."""
    assert report.document["persons"]["basis"] == "records"
    records = store.nodes("Resident", ["sex", "birth_date", "division_code"])
    as_of = pd.Timestamp(report.document["as_of"]).date()
    ages = records["birth_date"].map(lambda b: as_of.year - b.year - ((as_of.month, as_of.day) < (b.month, b.day)))
    frame = pd.DataFrame({"county": records["division_code"], "age_band": ages.map(age_band),
                          "sex": records["sex"].map(lambda s: s if s in ("1", "2") else "9")})
    return frame.groupby(["county", "age_band", "sex"]).size()


def test_pseudonyms_are_keyed_and_stable(exported: ExportReport, again: ExportReport, other: ExportReport,
                                         store: GraphStore) -> None:
    for name in DATA_FILES:
        same = exported.files[name] == again.files[name]
        assert same == (name != "aggregates.parquet"), name
    first, second = exported.document, again.document
    assert {k for k in first if first[k] != second[k]} == {"generated_at", "files", "signature"}
    residents = set(pd.read_parquet(exported.out / "residents.parquet")["resident"])
    records = store.nodes("Resident", [])["key"]
    assert residents <= {pseudonym(KEY, key) for key in records}
    assert all(re.fullmatch(r"[0-9a-f]{16}", r) for r in residents)
    for table, column in (("residents", "resident"), ("encounters", "encounter"), ("diagnoses", "diagnosis")):
        mine = set(pd.read_parquet(exported.out / f"{table}.parquet")[column])
        theirs = set(pd.read_parquet(other.out / f"{table}.parquet")[column])
        assert len(mine) == len(theirs) and not mine & theirs, table


def test_signature_verifies_and_any_change_fails(exported: ExportReport, signer: SM2KeyPair,
                                                 tmp_path: Path) -> None:
    checked = verify_export(exported.out, signer.public_key())
    assert checked.signed_by == signer.key_id and checked.files == len(DATA_FILES) + 2
    assert verify_export(exported.out, signer.public_pem()).signed_by == signer.key_id

    def tampered(change: Any) -> str:
        copy = tmp_path / f"copy{len(list(tmp_path.iterdir()))}"
        shutil.copytree(exported.out, copy)
        change(copy)
        with pytest.raises(ExportTampered) as caught:
            verify_export(copy, signer.public_key())
        assert caught.value.code == "HG-1208"
        return caught.value.details["kind"]

    assert tampered(lambda d: (d / "edges.parquet").write_bytes((d / "edges.parquet").read_bytes() + b"\0")) \
        == "modified"
    assert tampered(lambda d: (d / "report.md").write_text("k = 1", encoding="utf-8")) == "modified"
    assert tampered(lambda d: (d / "residents.parquet").unlink()) == "missing"
    assert tampered(lambda d: (d / "manifest.sig").unlink()) == "unsigned"
    assert tampered(lambda d: (d / "manifest.json").write_text(
        (d / "manifest.json").read_text().replace('"bytes"', '"Bytes"', 1))) == "signature"
    with pytest.raises(ExportTampered) as wrong:
        verify_export(exported.out, SM2KeyPair.generate().public_key())
    assert wrong.value.details["kind"] == "signature"


def test_report_states_the_parameters_and_the_outcome(exported: ExportReport) -> None:
    doc = json.loads((exported.out / "report.json").read_text(encoding="utf-8"))
    assert doc["parameters"] == {"k": 5, "l": 2, "suppression": 0.02, "epsilon": 1.0, "small_cell": 10,
                                 "metric": "entropy"}
    assert doc["privacy_model"]["models"] == ["5-anonymity", "entropy-2-diversity(primary_chapter)"]
    assert set(doc["generalisation"]["levels"]) == set(QUASI_IDENTIFIERS)
    assert 0 <= doc["generalisation"]["relative_information_loss"] <= 1
    assert doc["verification"]["ok"] and doc["as_of"] == exported.as_of.isoformat()
    assert "privacy_unit" in doc["differential_privacy"] and "discrete Laplace" in doc["differential_privacy"][
        "mechanism"]
    tables = _tables(exported.out)
    assert doc["rows"] == {name: len(frame) for name, frame in tables.items()}
    assert doc["signature"]["key_id"] == exported.signed_by
    markdown = (exported.out / "report.md").read_text(encoding="utf-8")
    for text in ("k = 5", "ℓ = 2", "2.00%", "ε per cell", str(exported.suppressed), exported.signed_by,
                 doc["as_of"], *(entry["sha256"] for entry in doc["files"].values())):
        assert text in markdown, text


def test_graph_matches_the_tables(exported: ExportReport) -> None:
    graph = nx.read_graphml(exported.out / "research.graphml")
    tables = _tables(exported.out)
    kinds = pd.Series(nx.get_node_attributes(graph, "kind")).value_counts()
    for kind, table in (("resident", "residents"), ("encounter", "encounters"), ("diagnosis", "diagnoses"),
                        ("institution", "institutions"), ("division", "divisions")):
        assert kinds[kind] == len(tables[table])
    assert graph.number_of_edges() == len(tables["edges"])
    encounters = tables["encounters"]
    assert encounters["month"].str.fullmatch(r"\d{4}-\d{2}").all()
    bands = age_hierarchy(AGE_BANDS)
    assert set(tables["residents"]["age_band"]) <= set(bands.labels(exported.levels["age_band"]))
    assert {icd10_chapter(c) for c in tables["diagnoses"]["category"]} == set(tables["diagnoses"]["chapter"])


def test_bad_parameters_are_coded(store: GraphStore, tmp_path: Path) -> None:
    for bad in ({"key": b"short"}, {"key": KEY, "k": 1}, {"key": KEY, "epsilon": 0}, {"key": KEY, "small_cell": 0},
                {"key": KEY, "suppression": 2}, {"key": KEY, "since": "not a date"}):
        with pytest.raises(InvalidConfiguration) as caught:
            export_research(store, tmp_path / "x", progress=False, **bad)
        assert caught.value.code == "HG-1205"


def test_master_index_gives_one_resident_per_person_and_planted_restrictions_go(
        small: dict[str, Any], onto: Ontology) -> None:
    report, store = small["report"], small["store"]
    assert report.document["persons"]["basis"] == "master_index"
    masters = store.nodes("MasterPerson", [])["key"]
    residents = set(pd.read_parquet(report.out / "residents.parquet")["resident"])
    assert residents <= {pseudonym(KEY, key) for key in masters}
    assert len(residents) == len(masters) - report.suppressed
    by_label = report.document["restricted"]["by_label"]
    assert by_label["HIV"] >= 2 and by_label["SexuallyTransmitted"] >= 1
    planted = {pseudonym(KEY, key) for key in small["planted"]}
    assert not planted & set(pd.read_parquet(report.out / "diagnoses.parquet")["diagnosis"])
    _assert_nothing_identifying(report.out, store)
    _assert_nothing_restricted(report.out, onto)
    assert verify_export(report.out, small["signer"]).signed_by == small["signer"].key_id


def test_cli_creates_and_reuses_the_key_and_signs(small: dict[str, Any], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEALTHGRAPH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(research_cli, "open_store", lambda: nullcontext(small["store"]))
    run = CliRunner().invoke
    first = run(research_cli.research_app, ["research", "--out", str(tmp_path / "one"), "--k", "5", "--l", "2",
                                            "--epsilon", "1.0"])
    assert first.exit_code == 0, first.output
    key_file = tmp_path / "data" / "keys" / "research-pseudonym.key"
    assert key_file.stat().st_mode & 0o777 == 0o600 and len(key_file.read_bytes()) == 32
    second = run(research_cli.research_app, ["research", "--out", str(tmp_path / "two")])
    assert second.exit_code == 0, second.output
    ids = [set(pd.read_parquet(tmp_path / d / "residents.parquet")["resident"]) for d in ("one", "two")]
    assert ids[0] == ids[1]
    assert run(research_cli.research_app, ["verify", str(tmp_path / "one")]).exit_code == 0
    (tmp_path / "one" / "edges.parquet").write_bytes(b"changed")
    failed = run(research_cli.research_app, ["verify", str(tmp_path / "one")])
    assert failed.exit_code == 2 and "HG-1208" in failed.output
    missing = run(research_cli.research_app, ["research", "--out", str(tmp_path / "x"), "--key-file",
                                              str(tmp_path / "nope.key")])
    assert missing.exit_code == 2 and "HG-1105" in missing.output


def test_notebook_runs_end_to_end(small: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    folder = small["report"].out
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("HEALTHGRAPH_EXPORT", str(folder))
    runpy.run_path(str(NOTEBOOK), run_name="__main__")
    figures = {p.name for p in (folder / "figures").glob("*.png")}
    assert figures == {"degree_distribution.png", "institution_communities.png", "referral_flows.png",
                       "infectious_heatmap.png"}
    assert all((folder / "figures" / name).stat().st_size > 5_000 for name in figures)
    assert verify_export(folder, small["signer"]).unlisted == ("figures",)
    monkeypatch.setenv("HEALTHGRAPH_EXPORT", str(folder / "nowhere"))
    with pytest.raises(FileNotFoundError):
        runpy.run_path(str(NOTEBOOK), run_name="__main__")


def test_window_bounds_encounters_and_months_and_infeasible_k_is_coded(small: dict[str, Any],
                                                                        tmp_path: Path) -> None:
    store = small["store"]
    report = export_research(store, tmp_path / "w", key=KEY, since="2025-03-01", until="2025-06-01",
                             progress=False)
    months = {"2025-03", "2025-04", "2025-05"}
    assert set(pd.read_parquet(report.out / "encounters.parquet")["month"]) == months
    aggregates = pd.read_parquet(report.out / "aggregates.parquet").query("measure == 'diagnoses'")
    assert set(aggregates["month"]) == months
    assert report.document["window"] == {"since": "2025-03-01T00:00:00", "until": "2025-06-01T00:00:00"}
    assert report.as_of <= pd.Timestamp("2025-05-31").date()
    with pytest.raises(NoSolution) as caught:
        export_research(store, tmp_path / "k", key=KEY, k=100_000, progress=False)
    assert caught.value.code == "HG-1206"
