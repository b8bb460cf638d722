"""The master person index on a loaded province: build, $match, register, link/unlink, merge and
unmerge round trips, review queue, PIX/PDQ, history and events, coded errors."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from graph import GraphStore, open_graph
from ingest.load import load_folder
from ontology import errors
from ontology.identifiers import id_check_char
from ontology.model import Ontology
from services.mpi import MATCH, NO_MATCH, POSSIBLE_MATCH, REDIRECT, MasterPersonIndex, survivorship

MPI_TABLES = ("Resident", "MasterPerson", "PersonLink", "SourceSystem")
MPI_EDGES = (("link_record", "PersonLink", "Resident"), ("link_master", "PersonLink", "MasterPerson"),
             ("merged_into", "MasterPerson", "MasterPerson"))


@pytest.fixture(scope="module")
def mpi_store(province: Path, tmp_path_factory: pytest.TempPathFactory, onto: Ontology) -> GraphStore:
    data = tmp_path_factory.mktemp("mpi")
    store = open_graph(data / "graph.lbdb", onto=onto)
    load_folder(store, province, quarantine_root=data / "quarantine")
    yield store
    store.close()


@pytest.fixture(scope="module")
def mpi(mpi_store: GraphStore) -> MasterPersonIndex:
    index = MasterPersonIndex(mpi_store)
    index.build(progress=False)
    return index


@pytest.fixture(scope="module")
def person_records(province: Path) -> pd.DataFrame:
    return pd.read_parquet(province / "truth" / "person_records.parquet")


def snapshot(store: GraphStore) -> dict[str, Any]:
    """Every MPI-governed node (all properties, provenance included) and edge, in key order."""
    out: dict[str, Any] = {}
    for table in MPI_TABLES:
        out[table] = store.nodes(table).sort_values("key").reset_index(drop=True).to_dict("records")
    for edge, src, dst in MPI_EDGES:
        out[edge] = sorted(map(tuple, store.edge_pairs(edge, src, dst).to_numpy().tolist()))
    return out


def _masters_by_person(mpi: MasterPersonIndex, person_records: pd.DataFrame) -> pd.Series:
    linked = person_records[person_records["key"].isin(mpi.record_system.keys())]
    return pd.Series([mpi.master_of(k) for k in linked["key"]], index=linked["key"].to_numpy())


def test_build_links_every_record_once_and_finds_the_planted_duplicates(
        mpi: MasterPersonIndex, mpi_store: GraphStore, person_records: pd.DataFrame, truth: dict) -> None:
    residents = mpi_store.nodes("Resident", ["source_system"])
    for key in residents["key"]:
        states = [mpi.links[lid] for lid in mpi.by_record[key]]
        assert states.count(MATCH) == 1, key
    masters = _masters_by_person(mpi, person_records)
    truth_person = person_records.set_index("key")["person"].reindex(masters.index)
    # Pairwise precision/recall of the master assignment against the generator's ground truth.
    frame = pd.DataFrame({"master": masters.to_numpy(), "person": truth_person.to_numpy()})
    same_master = frame.groupby("master").size().map(lambda n: n * (n - 1) // 2).sum()
    same_person = frame.groupby("person").size().map(lambda n: n * (n - 1) // 2).sum()
    both = frame.groupby(["master", "person"]).size().map(lambda n: n * (n - 1) // 2).sum()
    precision, recall = both / same_master, both / same_person
    assert precision >= 0.99 and recall >= 0.98, (precision, recall)
    for a, b in truth.get("twins", []):
        pa = person_records[person_records["person"] == a]["key"]
        pb = person_records[person_records["person"] == b]["key"]
        assert not set(masters.reindex(pa).dropna()) & set(masters.reindex(pb).dropna()), "twins kept apart"


def test_golden_record_explains_where_each_field_came_from(mpi: MasterPersonIndex,
                                                           person_records: pd.DataFrame) -> None:
    typo = person_records[person_records["errors"].fillna("").str.contains("id_typo")]["key"].iloc[0]
    golden = mpi.golden(mpi.master_of(typo))
    import json

    chosen = json.loads(golden["survivorship"])
    assert chosen["id_number"]["record"] != typo, "an id failing its check digit never survives"
    assert id_check_char(golden["id_number"][:17]) == golden["id_number"][17]
    assert chosen["id_number"]["rule"] == "valid_id_most_trusted"


def test_match_has_no_side_effects_and_explains_itself(mpi: MasterPersonIndex, mpi_store: GraphStore,
                                                       person_records: pd.DataFrame) -> None:
    key = person_records[person_records["errors"].fillna("").str.contains("homophone")]["key"].iloc[0]
    record = mpi_store.get("Resident", key)
    before = mpi_store.counts()
    query = {k: record.get(k) for k in ("name", "sex", "birth_date", "phone", "address", "division_code")}
    found = mpi.match(query)
    assert mpi_store.counts() == before
    assert found and found[0].master_id == mpi.master_of(key)
    levels = {f.field: f.level for f in found[0].comparison.fields}
    assert "name" in levels and found[0].comparison.probability > 0.5
    assert found[0].to_dict()["fields"], "per-field evidence is returned"


def test_register_links_a_new_source_record_to_its_person(mpi: MasterPersonIndex, mpi_store: GraphStore,
                                                          person_records: pd.DataFrame) -> None:
    registry = person_records[person_records["source_system"] == "PHIS"]["key"].iloc[5]
    person = mpi_store.get("Resident", registry)
    record = {"source_system": "CLINIC-TEST", "source_id": "A-1", "name": person["name"], "sex": person["sex"],
              "birth_date": person["birth_date"], "id_number": person["id_number"]}
    with pytest.raises(errors.UnknownSource) as unknown:
        mpi.register(record, actor="test")
    assert unknown.value.code == "HG-0701"
    heard: list[dict] = []
    mpi.subscribe(heard.append)
    mpi.register_source("CLINIC-TEST", "测试诊所 test clinic", trust=30, actor="test")
    result = mpi.register(record, actor="test", reason="first visit")
    assert result["master_id"] == mpi.master_of(registry)
    assert result["link"]["state"] == MATCH and result["link"]["origin"] == "AUTO"
    assert heard[-1]["action"] == "register" and "CLINIC-TEST:A-1" in heard[-1]["records"]
    again = mpi.register(record, actor="test")
    assert again["master_id"] == result["master_id"], "re-registering the same record is idempotent"
    history = mpi.history("CLINIC-TEST:A-1")
    assert [e["action"] for e in history][:2] == ["register", "update"] and history[0]["actor"] == "test"


def test_bad_input_gets_coded_errors(mpi: MasterPersonIndex, person_records: pd.DataFrame) -> None:
    body = "11010519491231002"
    wrong = "0" if id_check_char(body) != "0" else "1"
    with pytest.raises(errors.InvalidResidentId) as bad:
        mpi.register({"source_system": "PHIS", "source_id": "X-1", "name": "张三", "sex": "1",
                      "birth_date": dt.date(1949, 12, 31), "id_number": body + wrong}, actor="test")
    assert bad.value.code == "HG-0702" and "check digit" in bad.value.message
    master = mpi.master_of(person_records["key"].iloc[0])
    with pytest.raises(errors.MergeIntoSelf):
        mpi.merge(master, master, actor="test")
    with pytest.raises(errors.NotMerged):
        mpi.unmerge(master, actor="test")
    with pytest.raises(errors.NodeNotFound):
        mpi.merge("MP9999999999", master, actor="test")


def test_merge_then_unmerge_restores_the_exact_state(mpi: MasterPersonIndex, mpi_store: GraphStore,
                                                     person_records: pd.DataFrame) -> None:
    masters = _masters_by_person(mpi, person_records)
    sizes = masters.value_counts()
    source, target = sizes.index[sizes >= 2][:2]
    moved = mpi.records_of(source)
    before = snapshot(mpi_store)
    merged = mpi.merge(source, target, actor="operator-1", reason="same person (test)")
    assert mpi.status[source] == "merged" and mpi.resolve(source) == target
    assert set(moved) <= set(mpi.records_of(target))
    assert all(mpi.links[f"{r}|{source}"] == REDIRECT for r in moved), "old links kept as REDIRECT"
    assert snapshot(mpi_store) != before
    mpi.unmerge(source, actor="operator-2", reason="not the same person")
    assert snapshot(mpi_store) == before, "graph state identical after merge → unmerge"
    actions = [e["action"] for e in mpi.history(source)]
    assert actions[-2:] == ["merge", "unmerge"]
    assert merged["event"] in [e["event"] for e in mpi.history(source)]


def test_unmerge_is_refused_when_later_changes_depend_on_the_merge(
        mpi: MasterPersonIndex, person_records: pd.DataFrame) -> None:
    masters = _masters_by_person(mpi, person_records)
    sizes = masters.value_counts()
    a, b = sorted(sizes.index[sizes >= 2])[4:6]
    moved = mpi.records_of(a)
    mpi.merge(a, b, actor="test")
    mpi.unlink(moved[0], actor="test", reason="not this person after all")  # changes a link the merge made
    with pytest.raises(errors.StaleChange) as stale:
        mpi.unmerge(a, actor="test")
    assert stale.value.code == "HG-0705" and mpi.status[a] == "merged", "nothing was undone"


def test_unlink_then_link_back(mpi: MasterPersonIndex, person_records: pd.DataFrame, mpi_store: GraphStore) -> None:
    masters = _masters_by_person(mpi, person_records)
    sizes = masters.value_counts()
    master = sizes.index[sizes >= 3][0]
    record = mpi.records_of(master)[-1]
    out = mpi.unlink(record, actor="test", reason="different person")
    assert out["master_id"] != master and mpi.master_of(record) == out["master_id"]
    old = mpi_store.get("PersonLink", f"{record}|{master}")
    assert (old["state"], old["origin"]) == (NO_MATCH, "MANUAL")
    assert master not in [c.master_id for c in mpi.match(mpi_store.get("Resident", record))], \
        "a NO_MATCH judgement keeps the master out of the candidates"
    back = mpi.link(record, master, actor="test", reason="it was the same person")
    assert back["master_id"] == master and mpi.master_of(record) == master
    assert mpi.status[out["master_id"]] == "merged", "the emptied master redirects to the one linked to"
    lone = mpi.records_of(sizes.index[sizes == 1][0])[0]
    with pytest.raises(errors.InvalidLinkOperation):
        mpi.unlink(lone, actor="test")


def test_review_queue_accept_and_reject(mpi: MasterPersonIndex) -> None:
    queue = mpi.review_queue(limit=1000)
    assert len(queue) >= 2, "the generated duplicates leave some pairs for a person to decide"
    first, second = queue[0], next(q for q in queue[1:] if q["record"] != queue[0]["record"])
    assert first["probability"] >= second["probability"] and first["evidence"]
    mpi.reject(first["link"], actor="reviewer", reason="different people")
    assert mpi.links[first["link"]] == NO_MATCH
    assert first["link"] not in [q["link"] for q in mpi.review_queue(limit=1000)]
    with pytest.raises(errors.InvalidLinkOperation):
        mpi.accept(first["link"], actor="reviewer")
    target = mpi.resolve(second["master_id"])
    mpi.accept(second["link"], actor="reviewer", reason="same person")
    assert mpi.master_of(second["record"]) == target


def test_a_weak_registration_waits_for_review(mpi: MasterPersonIndex, mpi_store: GraphStore,
                                              person_records: pd.DataFrame) -> None:
    registry = person_records[person_records["source_system"] == "PHIS"]["key"].iloc[20]
    person = mpi_store.get("Resident", registry)
    # Same name and birth date, nothing else: not enough to link, enough to ask a person.
    record = {"source_system": "CLINIC-TEST", "source_id": "B-7", "name": person["name"], "sex": person["sex"],
              "birth_date": person["birth_date"]}
    result = mpi.register(record, actor="test")
    states = {lid.rsplit("|", 1)[1]: mpi.links[lid] for lid in mpi.by_record["CLINIC-TEST:B-7"]}
    assert states[result["master_id"]] == MATCH and result["master_id"] != mpi.master_of(registry)
    assert states[mpi.master_of(registry)] == POSSIBLE_MATCH
    assert any(q["record"] == "CLINIC-TEST:B-7" for q in mpi.review_queue(limit=1000))


def test_pix_and_pdq(mpi: MasterPersonIndex, mpi_store: GraphStore, person_records: pd.DataFrame) -> None:
    multi = person_records.groupby("person").filter(lambda g: (g["source_system"] == "PHIS").any() and len(g) >= 3)
    person = multi["person"].iloc[0]
    rows = multi[multi["person"] == person]
    registry = rows[rows["source_system"] == "PHIS"].iloc[0]
    xref = mpi.cross_references("PHIS", registry["source_id"])
    found = {r["record"] for r in xref["identifiers"]}
    expected = set(rows["key"]) - {registry["key"]}
    assert len(found & expected) >= len(expected) - 1, (found, expected)
    only_his = mpi.cross_references("PHIS", registry["source_id"],
                                    systems=[s for s in rows["source_system"] if s != "PHIS"][:1])
    assert {r["source_system"] for r in only_his["identifiers"]} <= set(rows["source_system"]) - {"PHIS"}
    rec = mpi_store.get("Resident", registry["key"])
    hits = mpi.demographic_query({"name": rec["name"], "birth_date": rec["birth_date"], "sex": rec["sex"],
                                  "address": rec.get("address")})
    assert hits and hits[0]["master_id"] == xref["master_id"]
    assert hits[0]["golden"]["name"] == rec["name"]


def test_services_follow_the_index_to_a_persons_other_records(mpi: MasterPersonIndex, mpi_store: GraphStore,
                                                               person_records: pd.DataFrame, truth: dict) -> None:
    import datetime as dt_

    from services.food_trace import trace_back

    outbreak = truth["outbreak"]
    rows = person_records[person_records["person"].isin(outbreak["cases"])]
    hospital = rows[rows["source_system"] != "PHIS"]["key"].tolist()
    linked = mpi_store.query_each("same_person_records", "resident", hospital)
    person = dict(zip(person_records["key"], person_records["person"], strict=True))
    assert {r["record"] for r in linked} | set(hospital) == set(rows["key"]), "every record of every case"
    assert all(person[r["resident"]] == person[r["record"]] for r in linked)
    found = trace_back(mpi_store, icd10=outbreak["icd10"], start=dt_.datetime(2025, 1, 1), end=dt_.datetime(2026, 1, 1))
    # Every planted case's meals are found, and background cases of the same diagnosis whose meal
    # records only the index connects (no id number on the hospital record) are traced too.
    assert found["cases_traced"] >= len(outbreak["cases"]) and found["stations"][0]["key"] == outbreak["source_station"]
    from services.blood_safety import lookback

    back = lookback(mpi_store, truth["positive_donor"]["reactive_donation"], as_of=dt_.date(2026, 1, 1))
    donor = person[back.donor]
    assert back.donor_records == sorted(person_records[person_records["person"] == donor]["key"])


def test_survivorship_rules() -> None:
    trust = {"PHIS": 90, "HIS-A": 60}
    records = [
        {"key": "HIS-A:1", "source_system": "HIS-A", "name": "王伟", "sex": "1", "birth_date": dt.date(1960, 3, 4),
         "id_number": "330106196003041234", "phone": "13800000001", "address": "西湖区文三路1号",
         "division_code": "330106"},
        {"key": "PHIS:2", "source_system": "PHIS", "name": "王玮", "sex": "1", "birth_date": dt.date(1960, 4, 3),
         "id_number": "330106600304123", "phone": "13800000002", "address": "区文三路1号", "division_code": "330106"},
    ]
    golden, chosen = survivorship(records, trust, {"HIS-A:1": "2026-01-02", "PHIS:2": "2026-01-01"})
    upgraded = "33010619600304123" + id_check_char("33010619600304123")
    assert golden["id_number"] == upgraded and chosen["id_number"]["record"] == "PHIS:2", "legacy id upgraded"
    assert golden["birth_date"] == dt.date(1960, 3, 4) and chosen["birth_date"]["rule"] == "agrees_with_id"
    assert golden["name"] == "王玮", "the most trusted source names the person"
    assert golden["phone"] == "13800000001", "the most recently linked phone"
    assert golden["address"] == "西湖区文三路1号", "the most complete address"


# ---------------------------------------------------------------- HTTP (last: its own index instance writes)
def test_api_match_register_review_and_coded_errors(mpi: MasterPersonIndex, mpi_store: GraphStore,
                                                    person_records: pd.DataFrame,
                                                    tmp_path_factory: pytest.TempPathFactory) -> None:
    from fastapi.testclient import TestClient

    from services.api import create_app
    from services.security import iter_events
    from services.settings import Settings
    from tests.e2e.auth import auth_headers

    settings = Settings(data_dir=tmp_path_factory.mktemp("mpi-api"))
    registry = person_records[person_records["source_system"] == "PHIS"]["key"].iloc[30]
    person = mpi_store.get("Resident", registry)
    body = {"name": person["name"], "sex": person["sex"], "birth_date": str(person["birth_date"]),
            "id_number": person["id_number"]}
    with TestClient(create_app(settings, store=mpi_store)) as client:
        headers = auth_headers(client, "clinician", name="clerk-7", institution="12330000000000000X",
                               purpose="operations")
        before = client.get("/stats").json()
        found = client.post("/mpi/Patient/$match", json=body, headers=headers).json()
        assert found[0]["deterministic"] and found[0]["decision"] == MATCH
        compared = {f["field"]: f for f in found[0]["fields"]}
        assert person["id_number"] not in str(found), "compared identifiers are masked"
        assert "*" in compared["id_number"]["left"] and compared["name"]["left"] == person["name"]
        assert client.get("/stats").json() == before, "$match changes nothing"
        master = found[0]["master_id"]
        shown = client.get(f"/mpi/persons/{master}", headers=headers).json()
        assert registry in shown["records"]
        assert "*" in shown["golden"]["id_number"], "identifiers are masked on the way out"
        bad = client.post("/mpi/persons", json={**body, "source_system": "NOPE", "source_id": "1"}, headers=headers)
        assert bad.status_code == 422 and bad.json()["code"] == "HG-0701"
        src = client.post("/mpi/sources", json={"code": "HIS-API", "name": "接口测试 API test"}, headers=headers)
        assert src.status_code == 200, src.text
        done = client.post("/mpi/persons", json={**body, "source_system": "HIS-API", "source_id": "9"},
                           headers=headers).json()
        assert done.get("master_id") == master, done
        xref = client.get("/mpi/xref", params={"source_system": "HIS-API", "source_id": "9"}, headers=headers).json()
        assert registry in {r["record"] for r in xref["identifiers"]}
        self_merge = client.post("/mpi/merge", json={"source": master, "target": master}, headers=headers)
        assert self_merge.status_code == 422 and self_merge.json()["code"] == "HG-0703"
        never = client.post("/mpi/unmerge", json={"master_id": master}, headers=headers)
        assert never.status_code == 409 and never.json()["code"] == "HG-0704"
        history = client.get("/mpi/history/HIS-API:9", headers=headers).json()
        assert history[-1]["actor"] == "clerk-7"
        stream = [e["event"] for e in client.get("/mpi/events", params={"limit": 1000}, headers=headers).json()]
        assert stream == sorted(stream) and history[-1]["event"] == stream[-1], "events in order, newest last"
        after = client.get("/mpi/events", params={"since": stream[-2]}, headers=headers).json()
        assert [e["event"] for e in after] == stream[-1:]
    audit = list(iter_events(settings.audit_path))
    mine = [e for e in audit if e["agent"]["who"] == "clerk-7"]
    assert {e["action"] for e in mine} >= {"trace:mpi:match", "trace:mpi:register", "trace:mpi:pix"}
    assert any(e["outcome"] == "failure" for e in mine), "failed requests are audited too"
