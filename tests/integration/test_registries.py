"""The registries (注册服务) over a loaded province: practitioners, institutions, licences and the
terminology, with coded errors, history, duplicate detection, versioning and the HTTP routes."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from graph import GraphStore, open_graph
from ingest.load import load_folder
from ontology import errors
from ontology.identifiers import id_check_char, uscc_check_char
from ontology.model import Ontology
from ontology.vocab import vocab
from services.api import create_app
from tests.e2e.auth import auth_headers
from services.security import iter_events
from services.registries import Registries, scope_subjects, vocab_systems
from services.settings import Settings

TODAY = dt.date(2026, 3, 1)


def _id(body17: str) -> str:
    return body17 + id_check_char(body17)


def _uscc(division: str, serial: str) -> str:
    body = "12" + division + serial.rjust(9, "0")
    return body + uscc_check_char(body)


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory, province: Path, onto: Ontology) -> GraphStore:
    data = tmp_path_factory.mktemp("registries")
    store = open_graph(data / "g.lbdb", onto=onto)
    load_folder(store, province, quarantine_root=data / "quarantine")
    yield store
    store.close()


@pytest.fixture(scope="module")
def reg(graph: GraphStore) -> Registries:
    ticks = itertools.count()
    return Registries(graph, clock=lambda: dt.datetime.combine(TODAY, dt.time(8)) + dt.timedelta(seconds=next(ticks)))


@pytest.fixture(scope="module")
def built(reg: Registries) -> dict:
    return reg.build(actor="test")


@pytest.fixture(scope="module")
def hospital(graph: GraphStore) -> dict:
    """A loaded hospital with a licence (the place the planted practitioners register at)."""
    rows = graph.nodes("Institution", ["name", "division_code"])
    row = rows[rows["class"] == "Hospital"].iloc[0]
    return {"uscc": row["key"], "division_code": row["division_code"]}


def _physician(code: str, hospital: dict, **extra) -> dict:
    return {"code": code, "class": "Physician", "name": "测试医师", "sex": "1", "birth_date": dt.date(1980, 5, 6),
            "licence": f"110{code[-12:].rjust(12, '0')}", "practice_scope": ["internal_medicine"],
            "licensed_subjects": ["03"], "valid_from": dt.date(2015, 1, 1), "valid_to": dt.date(2030, 12, 31),
            "institution": hospital["uscc"], "qualification_code": f"Q{code}", "qualification_category": "clinical",
            **extra}


# ---------------------------------------------------------------------- build
def test_build_registers_what_was_loaded_and_rerunning_changes_nothing(reg: Registries, built: dict,
                                                                      graph: GraphStore) -> None:
    licences = graph.nodes("License", ["registration_status", "status", "valid_to"])
    assert licences["registration_status"].notna().all(), "every loaded licence has a registration status"
    by_class = licences.groupby("class")["registration_status"].value_counts().to_dict()
    assert built["licences"] == {c: {s: n for (c2, s), n in by_class.items() if c2 == c}
                                 for c in sorted(licences["class"].unique())}
    lapsed = graph.get("License", "110LAPSED0000001")  # planted: valid_to 2024-06-30 (医师法 2021 第十三条)
    assert lapsed["registration_status"] == "expired"
    expired = licences[licences["valid_to"].map(lambda d: d is not None and d < TODAY)]
    assert (expired["registration_status"] == "expired").all()
    assert built["practitioners"] == len(graph.nodes("Practitioner", ["name"]))
    assert built["terminology"]["systems"] == len(vocab_systems())
    assert built["invalid_uscc"] == [], "the generator writes GB 32100-valid codes"
    again = reg.build(actor="test")
    assert again["licences_updated"] == 0 and again["event"] is None
    assert again["terminology"]["systems_added"] == 0


# ---------------------------------------------------------------------- institutions
def test_a_uscc_with_a_wrong_check_character_is_refused(reg: Registries, hospital: dict) -> None:
    good = _uscc(hospital["division_code"], "77001")
    wrong = good[:17] + next(ch for ch in "0123456789ABCDEFGHJKLMNPQRTUWXY" if ch != good[17])
    with pytest.raises(errors.InvalidUscc) as exc:
        reg.institutions.register({"uscc": wrong, "class": "Clinic", "name": "校验诊所",
                                   "division_code": hospital["division_code"]}, actor="test")
    assert exc.value.code == "HG-0801" and exc.value.details["expected"] == uscc_check_char(good[:17])
    for bad in (good[:17], good[:16] + "I" + good[17]):  # GB 32100-2015: 18 characters, no I O Z S V
        with pytest.raises(errors.InvalidUscc):
            reg.institutions.register({"uscc": bad, "name": "x"}, actor="test")


def test_register_update_and_history_of_an_institution(reg: Registries, hospital: dict, graph: GraphStore) -> None:
    uscc = _uscc(hospital["division_code"], "77002")
    made = reg.institutions.register(
        {"uscc": uscc, "class": "Hospital", "name": "测试县第三人民医院", "grade": "2A",
         "division_code": hospital["division_code"], "address": "人民路1号", "latitude": 30.1, "longitude": 120.2,
         "licensed_subjects": ["03", "04"], "valid_from": dt.date(2020, 1, 1), "valid_to": dt.date(2028, 12, 31)},
        actor="officer-1", reason="新设医院 new hospital")
    assert made["action"] == "register_institution" and made["licence"] == f"IL-{uscc}"
    found = reg.institutions.get(uscc)
    assert found["institution"]["grade"] == "2A"
    assert [(lic["licence"], lic["status_in_force"], lic["licensed_subjects"]) for lic in found["licences"]] == \
        [(f"IL-{uscc}", "registered", ["03", "04"])]
    assert [n["key"] for n in graph.neighbours("Institution", uscc, edge="located_in")] == [hospital["division_code"]]
    reg.institutions.update(uscc, {"address": "人民路99号"}, actor="officer-2", reason="迁址 moved")
    unchanged = reg.institutions.update(uscc, {"address": "人民路99号"}, actor="officer-2")
    assert unchanged["changed"] is False
    events = reg.history(uscc)
    assert [(e["action"], e["actor"], e["reason"]) for e in events] == [
        ("register_institution", "officer-1", "新设医院 new hospital"), ("update_institution", "officer-2", "迁址 moved")]
    assert events[1]["changed"] == {f"Institution/{uscc}": ["address"]}
    with pytest.raises(errors.UnknownProperty):  # grade is a hospital property (医院分级管理办法)
        reg.institutions.register({"uscc": _uscc(hospital["division_code"], "77003"), "class": "Clinic",
                                   "name": "测试诊所", "grade": "1A"}, actor="test")


def test_institution_licence_rules(reg: Registries, hospital: dict) -> None:
    base = {"uscc": _uscc(hospital["division_code"], "77004"), "class": "Clinic", "name": "规则诊所",
            "division_code": hospital["division_code"]}
    with pytest.raises(errors.InvalidLicence) as exc:  # 医疗机构管理条例: validity must run forward
        reg.institutions.register({**base, "licensed_subjects": ["02"], "valid_from": dt.date(2025, 1, 1),
                                   "valid_to": dt.date(2024, 1, 1)}, actor="test")
    assert exc.value.code == "HG-0803" and exc.value.details["field"] == "valid_to"
    with pytest.raises(errors.InvalidLicence) as exc:  # not a 诊疗科目 code
        reg.institutions.register({**base, "licensed_subjects": ["99"], "valid_from": dt.date(2025, 1, 1)},
                                  actor="test")
    assert exc.value.details["field"] == "licensed_subjects"
    assert reg.institutions._row("Institution", base["uscc"]) is None, "a refused registration writes nothing"


# ---------------------------------------------------------------------- practitioners
def test_register_look_up_update_and_move_a_practitioner(reg: Registries, hospital: dict, graph: GraphStore,
                                                         built: dict) -> None:
    number = _id("33010619800506001")
    made = reg.practitioners.register(_physician("T0000001", hospital, id_number=number, phone="13900000111"),
                                      actor="officer-1", reason="首次注册")
    licence = made["licence"]
    found = reg.practitioners.by_licence(licence)
    assert found["practitioner"]["code"] == "T0000001" and found["employed_by"] == [hospital["uscc"]]
    assert [(x["licence"], x["institution"], x["status_in_force"]) for x in found["licences"]] == \
        [(licence, hospital["uscc"], "registered")]
    assert [r["practitioner"] for r in reg.practitioners.find(id_number=number)] == ["T0000001"]
    assert "T0000001" in [r["practitioner"] for r in reg.practitioners.find(name="测试医师")]
    # 变更注册: a wider scope, then another institution (医师法 2021 第十七条)
    reg.practitioners.update("T0000001", {"practice_scope": ["internal_medicine", "emergency_medicine"],
                                          "licensed_subjects": ["03", "20"]}, actor="officer-2", reason="增加范围")
    other = graph.nodes("Institution", ["name"])
    other = other[(other["class"] == "Hospital") & (other["key"] != hospital["uscc"])]["key"].iloc[0]
    reg.practitioners.update("T0000001", {"institution": other}, actor="officer-2", reason="变更执业地点")
    moved = reg.practitioners.get("T0000001")
    assert moved["employed_by"] == [other] and moved["licences"][0]["institution"] == other
    history = reg.history("T0000001")
    assert [(e["action"], e["reason"]) for e in history] == [
        ("register_practitioner", "首次注册"), ("update_practitioner", "增加范围"), ("update_practitioner", "变更执业地点")]
    assert history[1]["changed"][f"License/{licence}"] == ["licensed_subjects", "practice_scope"]
    assert f"registered_at {licence}→{other}" in history[2]["changed"]["edges_added"]
    assert f"registered_at {licence}→{hospital['uscc']}" in history[2]["changed"]["edges_removed"]


def test_practitioner_rules_raise_coded_errors(reg: Registries, hospital: dict) -> None:
    with pytest.raises(errors.InvalidLicence) as exc:  # 医师法 (2021): validity must run forward
        reg.practitioners.register(_physician("T0000002", hospital, valid_to=dt.date(2014, 1, 1)), actor="test")
    assert exc.value.code == "HG-0803" and exc.value.details["field"] == "valid_to"
    body = "33010619800506001"
    wrong = body + next(ch for ch in "0123456789X" if ch != id_check_char(body))
    with pytest.raises(errors.InvalidResidentId):  # GB 11643-1999 check digit
        reg.practitioners.register(_physician("T0000002", hospital, id_number=wrong), actor="test")
    with pytest.raises(errors.InvalidResidentId) as exc:  # the id's birth date disagrees
        reg.practitioners.register(_physician("T0000002", hospital, id_number=_id("33010619810506001")), actor="test")
    assert exc.value.details["field"] == "birth_date"
    with pytest.raises(errors.InvalidLicence) as exc:  # 诊疗科目 outside the registered 执业范围
        reg.practitioners.register(_physician("T0000002", hospital, licensed_subjects=["04"]), actor="test")
    assert "04" not in scope_subjects(["internal_medicine"]) and exc.value.details["field"] == "licensed_subjects"
    with pytest.raises(errors.InvalidLicence):
        reg.practitioners.register(_physician("T0000002", hospital, practice_scope=["astrology"]), actor="test")
    with pytest.raises(errors.NodeNotFound):
        reg.practitioners.register(_physician("T0000002", hospital, institution=_uscc("330106", "1")), actor="test")
    with pytest.raises(errors.RegistrationConflict) as exc:  # someone else's licence
        reg.practitioners.register(_physician("T0000002", hospital, licence="110LAPSED0000001"), actor="test")
    assert exc.value.code == "HG-0807" and exc.value.details["holder"] == "DLAPSED01"
    assert reg.history("T0000002") == [], "refused registrations leave no history"


def test_licence_status_follows_the_rules(reg: Registries, hospital: dict) -> None:
    made = reg.practitioners.register(_physician("T0000003", hospital), actor="test")
    licence = made["licence"]
    assert reg.set_licence_status(licence, "suspended", actor="officer", reason="中止执业")["previous"] == "registered"
    assert reg.set_licence_status(licence, "registered", actor="officer", reason="恢复")["status"] == "registered"
    reg.set_licence_status(licence, "revoked", actor="officer", reason="注销注册 医师法 第十六条")
    with pytest.raises(errors.StatusTransitionNotAllowed) as exc:
        reg.set_licence_status(licence, "registered", actor="officer")
    assert exc.value.code == "HG-0805" and exc.value.details["current"] == "revoked"
    with pytest.raises(errors.InvalidLicence):
        reg.set_licence_status(licence, "paused", actor="officer")
    # An expired licence is reinstated only with a new validity (延续注册).
    lapsed = reg.practitioners._row("License", "110LAPSED0000001")
    assert lapsed["registration_status"] == "expired"
    with pytest.raises(errors.InvalidLicence):
        reg.set_licence_status("110LAPSED0000001", "registered", actor="officer")
    renewed = reg.set_licence_status("110LAPSED0000001", "registered", actor="officer", reason="延续",
                                     valid_to=dt.date(2031, 6, 30))
    assert renewed == {**renewed, "status": "registered", "previous": "expired"}
    assert [e["action"] for e in reg.history(licence)] == ["register_practitioner"] + ["set_licence_status"] * 3
    assert "DLAPSED01" in reg.history("110LAPSED0000001")[-1]["subjects"]


# ---------------------------------------------------------------------- duplicates
def test_planted_duplicate_practitioners_are_found_and_distinct_ones_are_not(reg: Registries, hospital: dict,
                                                                            built: dict) -> None:
    assert built["duplicate_practitioners"] == [], "the generated staff hold no duplicates"
    birth = dt.date(1985, 7, 12)
    a_id, d_id = _id("33010619850712002"), _id("33010619850712004")
    plant = [
        ("T0000010", "陈静", "2", birth, a_id),
        ("T0000011", "陈婧", "2", birth, None),       # homophone, same birth date and sex → duplicate of 10
        ("T0000012", "陈晶晶", "2", birth, a_id),     # same id number, another name → duplicate of 10
        ("T0000013", "陈静", "2", birth, d_id),       # same name and birth, another valid id → a different person
        ("T0000014", "张建国", "1", dt.date(1970, 3, 3), None),
        ("T0000015", "张建华", "1", dt.date(1970, 3, 3), None),  # one character apart: a different person
    ]
    for code, name, sex, born, number in plant:
        reg.practitioners.register(_physician(code, hospital, name=name, sex=sex, birth_date=born,
                                              id_number=number), actor="test")
    pairs = {(d["a"], d["b"]): d["rule"] for d in reg.practitioners.duplicates()}
    assert pairs[("T0000010", "T0000011")] == "similar_name_same_birth_date_sex"
    assert pairs[("T0000010", "T0000012")] == "same_id_number"
    assert ("T0000010", "T0000013") not in pairs
    assert ("T0000014", "T0000015") not in pairs
    assert all(a.startswith("T") and b.startswith("T") for a, b in pairs), "no pair among the loaded staff"


def test_planted_duplicate_institutions_are_found_and_distinct_ones_are_not(reg: Registries, hospital: dict,
                                                                           built: dict) -> None:
    assert built["duplicate_institutions"] == [], "the generated institutions hold no duplicates"
    div = hospital["division_code"]
    names = {"78001": "杭州市第一人民医院", "78002": "杭州第一人民医院", "78003": "杭州市第二人民医院",
             "78004": "杭州市第一人民医苑", "78005": "东城街道社区卫生服务中心", "78006": "西城街道社区卫生服务中心"}
    for serial, name in names.items():
        reg.institutions.register({"uscc": _uscc(div, serial), "class": "HealthcareInstitution", "name": name,
                                   "division_code": div}, actor="test")
    found = {(d["a"], d["b"]): d["rule"] for d in reg.institutions.duplicates()}
    u = {s: _uscc(div, s) for s in names}
    assert found[tuple(sorted((u["78001"], u["78002"])))] == "name_variant"
    assert found[tuple(sorted((u["78001"], u["78004"])))] == "name_variant_homophone"
    assert tuple(sorted((u["78001"], u["78003"]))) not in found, "第一 and 第二 are different hospitals"
    assert tuple(sorted((u["78005"], u["78006"]))) not in found, "东城 and 西城 are different centres"
    assert [r["uscc"] for r in reg.institutions.find("杭州第一人民医院", division_code=div)][:1] == [u["78002"]]


# ---------------------------------------------------------------------- terminology
def test_terminology_lookup_hierarchy_and_translation(reg: Registries, built: dict) -> None:
    icd = vocab("icd10").set_index("code")
    a00 = reg.terminology.lookup("icd10", "A00")
    assert (a00["name"], a00["parent_code"]) == (icd.loc["A00", "name_zh"], icd.loc["A00", "chapter"])
    assert "A00" in reg.terminology.lookup("icd10", icd.loc["A00", "chapter"])["children"]
    for code in ("A00", "J18.9", "I10"):
        subjects = [t["code"] for t in reg.terminology.translate("icd10", code, "clinical_subjects")]
        assert subjects == [icd.loc[code, "subject_code"]]
    back = [t["code"] for t in reg.terminology.translate("clinical_subjects", "16", "icd10")]
    assert sorted(back) == sorted(icd.index[icd["subject_code"] == "16"])
    drugs = vocab("drugs").set_index("code")
    klass = reg.terminology.translate("drugs", "amoxicillin", "drug_classes")
    assert [(t["code"], t["equivalence"]) for t in klass] == [(drugs.loc["amoxicillin", "drug_class"], "wider")]
    group = reg.terminology.translate("drug_classes", drugs.loc["amoxicillin", "drug_class"], "atc")
    members = drugs[drugs["drug_class"] == drugs.loc["amoxicillin", "drug_class"]]["atc"]
    assert len(group) == 1 and all(a.startswith(group[0]["code"]) for a in members)
    narrower = reg.terminology.translate("atc", group[0]["code"], "drug_classes")
    assert narrower[0]["equivalence"] == "narrower", "a reversed 'wider' mapping reads 'narrower'"
    assert [c["code"] for c in reg.terminology.search("huoluan", system="icd10")] == ["A00"]
    assert "I10" in [c["code"] for c in reg.terminology.search("hypertension", system="icd10")]
    with pytest.raises(errors.UnknownCodeSystem) as exc:
        reg.terminology.lookup("icd11", "A00")
    assert exc.value.code == "HG-0802"
    with pytest.raises(errors.UnknownConcept) as exc:
        reg.terminology.lookup("icd10", "Z99.99")
    assert exc.value.code == "HG-0804"
    with pytest.raises(errors.UnknownCodeSystem):
        reg.terminology.lookup("icd10", "A00", "v9")


def test_a_new_version_retires_and_adds_while_the_old_version_stays_readable(reg: Registries, built: dict) -> None:
    labs = vocab("lab_tests")
    retired, kept = labs["code"].iloc[0], labs["code"].iloc[1]
    out = reg.terminology.add_version("lab_tests", "v2", concepts=[
        {"code": "hba1c_poc", "name": "床旁糖化血红蛋白", "name_en": "point-of-care HbA1c"},
        {"code": kept, "name": labs["name_zh"].iloc[1] + "(新)"}], retired=[retired], actor="terminologist",
        reason="2026 修订")
    assert (out["added"], out["relabelled"], out["retired"]) == (["hba1c_poc"], [kept], [retired])
    old, new = reg.terminology.lookup("lab_tests", retired, "v1"), reg.terminology.lookup("lab_tests", retired)
    assert (old["concept_status"], old["version"]) == ("active", "v1")
    assert (new["concept_status"], new["retired_in"], new["version"]) == ("retired", "v2", "v2")
    assert reg.terminology.lookup("lab_tests", kept, "v1")["name"] == labs["name_zh"].iloc[1]
    assert reg.terminology.lookup("lab_tests", kept)["name"].endswith("(新)")
    with pytest.raises(errors.UnknownConcept) as exc:
        reg.terminology.lookup("lab_tests", "hba1c_poc", "v1")
    assert "v2" in exc.value.message
    systems = {s["code"]: s for s in reg.terminology.systems()}
    assert systems["lab_tests"]["versions"] == ["v1", "v2"]
    assert systems["lab_tests"]["concepts"] == {"v1": len(labs), "v2": len(labs)}  # one retired, one added
    with pytest.raises(errors.VersionExists):
        reg.terminology.add_version("lab_tests", "v2", actor="terminologist")
    with pytest.raises(errors.UnknownConcept):
        reg.terminology.add_version("lab_tests", "v3", retired=[retired], actor="terminologist")
    assert [e["action"] for e in reg.history("lab_tests")] == ["seed_terminology", "add_code_system_version"]


# ---------------------------------------------------------------------- HTTP
def test_routes_mask_identifiers_and_audit_reads(graph: GraphStore, reg: Registries, hospital: dict,
                                                 tmp_path: Path, built: dict) -> None:
    settings = Settings(data_dir=tmp_path)
    number = _id("33010619800506011")
    with TestClient(create_app(settings, store=graph)) as client:
        headers = auth_headers(client, "supervisor", name="inspector-3")
        body = {k: (v.isoformat() if isinstance(v, dt.date) else v)
                for k, v in _physician("T0000020", hospital, id_number=number, phone="13900000222").items()}
        made = client.post("/registry/practitioners", json=body, headers=headers)
        assert made.status_code == 200, made.text
        read = client.get("/registry/practitioners/T0000020", headers=headers).json()
        person = read["practitioner"]
        assert person["id_number"] != number and person["id_number"][:3] == number[:3] and "*" in person["id_number"]
        assert "*" in person["phone"]
        by_licence = client.get("/registry/practitioners", params={"licence": made.json()["licence"]},
                                headers=headers).json()
        assert by_licence[0]["practitioner"]["id_number"] == person["id_number"]
        bad = client.post("/registry/institutions", json={"uscc": "12330106MB0000000X", "name": "x"}, headers=headers)
        assert bad.status_code == 422 and bad.json()["code"] == "HG-0801"
        late = client.post("/registry/practitioners", json={**body, "code": "T0000021", "licence": "110T00000000021",
                                                            "id_number": None, "valid_to": "2010-01-01"},
                           headers=headers)
        assert late.status_code == 422 and late.json()["code"] == "HG-0803"
        assert client.get("/registry/terminology/icd10/concepts/A00").json()["name"] == "霍乱"
        assert client.get("/registry/terminology/nope/concepts/A00").json()["code"] == "HG-0802"
        history = client.get("/registry/history/T0000020", headers=headers).json()
        assert [e["actor"] for e in history] == ["inspector-3"]
    events = [e for e in list(iter_events(settings.audit_path)) if e["agent"]["who"] == "inspector-3"]
    assert ("trace:registry:read", "Practitioner/T0000020", "success") in \
        {(e["action"], e["entity"], e["outcome"]) for e in events}
    assert any(e["action"] == "trace:registry:register" for e in events)


# ---------------------------------------------------------------------- CLI
def test_cli_builds_looks_up_and_reports_coded_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from services.cli import app

    monkeypatch.setenv("HEALTHGRAPH_DATA_DIR", str(tmp_path))
    runner = CliRunner()
    assert runner.invoke(app, ["generate", "--residents", "500", "--seed", "3"]).exit_code == 0
    assert runner.invoke(app, ["load"]).exit_code == 0
    built = runner.invoke(app, ["registry", "build"])
    assert built.exit_code == 0, built.output
    assert f"terminology: {len(vocab_systems())} code systems" in " ".join(built.output.split())
    again = runner.invoke(app, ["registry", "build"])
    assert "licences updated now 0" in " ".join(again.output.split())
    found = runner.invoke(app, ["registry", "lookup", "icd10", "A00"])
    assert found.exit_code == 0 and "霍乱" in found.output
    unknown = runner.invoke(app, ["registry", "lookup", "icd11", "A00"])
    assert unknown.exit_code == 2 and "HG-0802" in unknown.output
    lapsed = runner.invoke(app, ["registry", "licence-status", "110LAPSED0000001", "registered"])
    assert lapsed.exit_code == 2 and "HG-0803" in lapsed.output, "reinstating needs a new validity"
