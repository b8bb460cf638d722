"""The HTTP API end to end over a generated, loaded province."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from graph import GraphStore
from ingest.load import LoadReport
from services.api import create_app
from services.audit import AuditLog
from services.settings import Settings
from tests.e2e.auth import auth_headers


@pytest.fixture(scope="module")
def client(loaded: tuple[GraphStore, LoadReport, Path], tmp_path_factory: pytest.TempPathFactory):
    store, _, _ = loaded
    settings = Settings(data_dir=tmp_path_factory.mktemp("api"))
    with TestClient(create_app(settings, store=store)) as c:
        c.settings = settings  # type: ignore[attr-defined]
        yield c


@pytest.fixture(scope="module")
def investigator(client: TestClient) -> dict[str, str]:
    return auth_headers(client, "investigator", name="investigator-7")


@pytest.fixture(scope="module")
def me(client: TestClient) -> dict[str, str]:
    """The resident whose record is PHIS:000000000."""
    return auth_headers(client, "resident", name="op1", subjects=("PHIS:000000000",))


@pytest.fixture(scope="module")
def indexed(client: TestClient, store: GraphStore) -> dict[str, int]:
    from services.directory import Directory

    directory = Directory.open(client.settings, store)  # type: ignore[attr-defined]
    try:
        return directory.rebuild(store)
    finally:
        directory.close()


def test_search_finds_an_institution_by_its_name(client: TestClient, indexed: dict[str, int], province: Path) -> None:
    import pandas as pd

    hospital = pd.read_parquet(province / "nodes" / "Institution.parquet").query("`class` == 'Hospital'").iloc[0]
    found = client.get("/search", params={"q": hospital["name"]}).json()
    institutions = next(g for g in found["groups"] if g["table"] == "Institution")
    assert institutions["hits"][0]["id"] == hospital["uscc"]
    assert "<em>" in next(iter(institutions["hits"][0]["highlights"].values()))
    assert indexed["Institution"] == len(pd.read_parquet(province / "nodes" / "Institution.parquet").drop_duplicates("uscc"))


def test_search_one_class_with_filters_facets_and_pages(client: TestClient, indexed: dict[str, int]) -> None:
    everything = client.get("/search/Institution", params={"q": "医院", "facet": "division_code", "size": 5}).json()
    assert everything["total"] > 5 and len(everything["hits"]) == 5
    code, n = next(iter(everything["facets"]["division_code"].items()))
    only = client.get("/search/Institution", params={"q": "医院", "filter": f"division_code:{code}", "size": 100}).json()
    assert only["total"] == n and all(h["fields"]["division_code"] == code for h in only["hits"])
    second = client.get("/search/Institution", params={"q": "医院", "page": 2, "size": 5}).json()
    assert not {h["id"] for h in second["hits"]} & {h["id"] for h in everything["hits"]}


def test_search_never_reaches_residents_or_sensitive_fields(client: TestClient, indexed: dict[str, int]) -> None:
    assert "Resident" not in indexed
    r = client.get("/search/Resident", params={"q": "王"})
    assert r.status_code == 422 and r.json()["code"] == "HG-0503"
    practitioners = client.get("/search/Practitioner", params={"size": 3}).json()
    assert practitioners["hits"] and all("id_number" not in h["fields"] and "phone" not in h["fields"]
                                         for h in practitioners["hits"])


def test_health_and_openapi(client: TestClient) -> None:
    assert client.get("/health").json()["status"] == "ok"
    spec = client.get("/openapi.json").json()
    assert "/nodes/{cls}/{key}" in spec["paths"] and "/stats" in spec["paths"]


def test_stats_have_labels_in_both_languages(client: TestClient, store: GraphStore) -> None:
    rows = {r["name"]: r for r in client.get("/stats").json()}
    assert rows["Resident"]["zh"] == "居民" and rows["Resident"]["en"] == "Resident"
    assert rows["Resident"]["count"] == store.counts()["Resident"]
    assert rows["of_patient"]["kind"] == "edge"


def test_a_resident_is_returned_with_identifiers_masked_and_the_read_audited(client: TestClient,
                                                                            me: dict[str, str]) -> None:
    r = client.get("/nodes/Resident/PHIS:000000000", headers=me)
    assert r.status_code == 200
    body = r.json()
    assert "*" in body["id_number"] and len(body["id_number"]) == 18
    assert "*" in body["phone"]
    events = AuditLog(client.settings.audit_path).events()  # type: ignore[attr-defined]
    assert any(e["entity"] == "Resident/PHIS:000000000" and e["agent"]["who"] == "op1" and e["outcome"] == "success"
               for e in events)


def test_restricted_diagnoses_are_hidden(client: TestClient, store: GraphStore) -> None:
    from services.access.facts import _patients

    rows = store.query("diagnoses_by_code_prefix", prefix="F")
    if not rows:
        pytest.skip("no psychiatric diagnosis in this small province")
    code = rows[0]["code"]
    key = store._run("MATCH (d:Diagnosis) WHERE d.icd10_code = $c RETURN d.key AS k LIMIT 1", {"c": code})["k"].iat[0]
    owner = auth_headers(client, "resident", subjects=tuple(_patients(store, "Diagnosis", key)))
    body = client.get(f"/nodes/Diagnosis/{key}", headers=owner).json()
    assert body["restricted"] == "Psychiatric" and "icd10_code" not in body


def test_errors_are_json_with_stable_codes(client: TestClient, me: dict[str, str], investigator: dict[str, str]
                                           ) -> None:
    r = client.get("/nodes/Resident/NOPE:1", headers=me)
    assert r.status_code == 403 and r.json()["code"] == "HG-1302", "not someone else's: no existence oracle"
    r = client.get("/nodes/Disease/NOPE", headers=me)
    assert r.status_code == 404 and r.json()["code"] == "HG-0205"
    r = client.get("/nodes/Residnt/PHIS:000000000", headers=me)
    assert r.status_code == 404 and r.json()["code"] == "HG-0003" and "Resident" in r.json()["message"]
    r = client.post("/queries/encounters_of_resident", json={"wrong": 1}, headers=investigator)
    assert r.status_code == 422 and r.json()["code"] == "HG-0203"
    r = client.get("/nodes/Resident/PHIS:000000000/paths", params={"max_hops": 9}, headers=me)
    assert r.status_code == 422 and r.json()["code"] == "HG-0203"


def test_neighbours_paths_and_queries(client: TestClient, me: dict[str, str], investigator: dict[str, str]) -> None:
    n = client.get("/nodes/Resident/PHIS:000000000/neighbours", headers=me).json()
    assert any(x["edge"] == "resides_in" for x in n)
    around = client.get("/nodes/Resident/PHIS:000000000/paths", params={"max_hops": 2}, headers=me).json()
    assert around and not any(x.get("class") == "Resident" and x.get("key") not in (None, "PHIS:000000000")
                              for x in around), "another resident's record is withheld"
    names = {q["name"] for q in client.get("/queries").json()}
    assert "encounters_of_resident" in names
    rows = client.post("/queries/residents_in_division", json={"code_prefix": "33"}, headers=investigator).json()
    assert rows and all(r["code"].startswith("33") for r in rows)


def test_ontology_endpoints(client: TestClient) -> None:
    classes = {c["name"]: c for c in client.get("/ontology/classes").json()}
    assert "Hospital" in classes["Institution"]["subclasses"]
    props = {p["name"]: p for p in client.get("/ontology/properties").json()}
    assert props["id_number"]["sensitivity"] == "identifier"
    edges = {e["name"]: e for e in client.get("/ontology/edges").json()}
    assert edges["at_institution"]["range"] == ["Institution"]


def test_console_page_lists_counts_in_chinese_and_english(client: TestClient) -> None:
    page = client.get("/").text
    assert "居民" in page and "Resident" in page and "/docs" in page


def test_blood_lookback_and_traceback_over_http_are_audited(client: TestClient, truth: dict, query_args: dict,
                                                            investigator: dict[str, str]) -> None:
    donor = truth["positive_donor"]
    r = client.get(f"/trace/blood/lookback/{donor['reactive_donation']}", params={"as_of": "2026-01-01"},
                   headers=investigator)
    assert r.status_code == 200, r.text
    body = r.json()
    assert {x["unit"] for x in body["recipients"]} == set(donor["transfused_units"])
    assert body["quarantine_by"] and body["basis"].startswith("look-back window")
    recipient = query_args["transfusions_of_recipient"]["recipient_key"]
    back = client.get(f"/trace/blood/traceback/{recipient}", headers=investigator).json()
    assert any(t["donation"] in donor["donations"] for t in back["transfusions"])
    missing = client.get("/trace/blood/lookback/Z999925999999", headers=investigator)
    assert missing.status_code == 404 and missing.json()["code"] == "HG-0205"
    events = [e for e in AuditLog(client.settings.audit_path).events()
              if e["agent"]["who"] == "investigator-7" and e["action"].startswith("trace:")]
    assert [(e["action"], e["outcome"]) for e in events] == [
        ("trace:lookback", "success"), ("trace:traceback", "success"), ("trace:lookback", "failure")]


def test_food_trace_back_and_forward_over_http(client: TestClient, truth: dict, investigator: dict[str, str]) -> None:
    outbreak = truth["outbreak"]
    window = {"since": "2025-01-01T00:00:00", "until": "2026-01-01T00:00:00"}
    back = client.get("/trace/food/back", params={"icd10": outbreak["icd10"], **window}, headers=investigator).json()
    assert back["stations"][0]["key"] == outbreak["source_station"] and back["stations"][0]["score"] == 1.0
    forward = client.get(f"/trace/food/forward/{outbreak['source_lot']}", params=window, headers=investigator).json()
    assert set(outbreak["venues"]) <= set(forward["stations"])
    checks = client.get("/trace/food/plausibility", params=window, headers=investigator).json()
    assert set(checks) >= {"out_of_order", "unbalanced", "likely_duplicate_stations"}
    bad = client.get("/trace/food/back", params=window, headers=investigator)
    assert bad.status_code == 422 and bad.json()["code"] == "HG-0203"


def test_vaccine_lot_signals_over_http(client: TestClient, truth: dict, investigator: dict[str, str]) -> None:
    body = client.get("/trace/vaccine/lots", headers=investigator).json()
    assert body["signals"] == [truth["aefi_cluster"]["lot"]]
    assert client.get("/trace/vaccine/lots", params={"alpha": 2}, headers=investigator).status_code == 422


def test_repeated_drug_trace_codes_over_http(client: TestClient, truth: dict, investigator: dict[str, str]) -> None:
    body = client.get("/trace/drug/repeats", headers=investigator).json()
    assert [g["code"] for g in body["repeats"]] == [truth["drug_trace_repeat"]["code"]]


def test_blood_inventory_and_reaction_clusters_over_http(client: TestClient, truth: dict, investigator: dict[str, str]) -> None:
    planted = next(a["unit"] for a in truth["anomalies"] if a["kind"] == "expired_unit_in_stock")
    body = client.get("/trace/blood/inventory", params={"as_of": "2026-01-01"}, headers=investigator).json()
    assert [u["unit"] for u in body["expired_in_stock"]] == [planted]
    clusters = client.get("/trace/blood/reaction-clusters", params={"min_reactions": 2}, headers=investigator).json()
    assert clusters["min_reactions"] == 2 and isinstance(clusters["clusters"], list)
    assert client.get("/trace/blood/reaction-clusters", params={"min_reactions": 1}, headers=investigator).status_code == 422


def test_case_clusters_over_http(client: TestClient, investigator: dict[str, str]) -> None:
    body = client.get("/trace/cases/clusters", params={"icd10": "A0", "since": "2025-01-01T00:00:00",
                                                       "until": "2026-01-01T00:00:00", "replications": 99},
                      headers=investigator).json()
    assert body["cases"] > 0 and body["replications"] == 99 and "Kulldorff" in body["basis"]
    assert client.get("/trace/cases/clusters", params={"icd10": "Z99.9", "since": "2025-01-01T00:00:00",
                                                       "until": "2025-01-02T00:00:00"},
                      headers=investigator).json()["code"] == "HG-0203"


def test_traces_export_as_graphml_and_json(client: TestClient, truth: dict, investigator: dict[str, str]) -> None:
    import io

    import networkx as nx

    donor = truth["positive_donor"]
    r = client.get(f"/trace/blood/lookback/{donor['reactive_donation']}/graph", params={"as_of": "2026-01-01"},
                   headers=investigator)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/graphml+xml")
    g = nx.read_graphml(io.BytesIO(r.content))
    units = {n for n, a in g.nodes(data=True) if a["kind"] == "BloodUnit"}
    assert units == set(donor["units"]) and g.graph["trace"] == "blood lookback"
    recipients = [n for n, a in g.nodes(data=True) if a.get("role") == "recipient"]
    assert 1 <= len(recipients) <= len(donor["transfused_units"])  # a recipient may have had two units
    window = {"since": "2025-01-01T00:00:00", "until": "2026-01-01T00:00:00", "format": "json"}
    body = client.get(f"/trace/food/forward-graph/{truth['outbreak']['source_lot']}", params=window, headers=investigator).json()
    stations = {n["id"] for n in body["nodes"] if n["kind"] == "Institution"}
    assert set(truth["outbreak"]["venues"]) <= stations
    assert client.get(f"/trace/food/forward-graph/{truth['outbreak']['source_lot']}",
                      params={**window, "format": "pdf"}, headers=investigator).status_code == 422
