"""Guided triage and question answering over HTTP, on the generated province (which carries the
built-in knowledge base): red flags first, ranked conditions, departments, a clarifying question,
doctors from the graph, cited answers, and coded answers to bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from graph import GraphStore
from ingest.load import LoadReport
from ontology.knowledge import load_knowledge
from services.api import create_app
from services.settings import Settings

KB = load_knowledge()


@pytest.fixture(scope="module")
def client(loaded: tuple[GraphStore, LoadReport, Path], tmp_path_factory: pytest.TempPathFactory):
    store, _, _ = loaded
    settings = Settings(data_dir=tmp_path_factory.mktemp("triage-api"))
    with TestClient(create_app(settings, store=store)) as c:
        yield c


def _complaint_for(condition_code: str, n: int = 3) -> str:
    """A complaint naming the condition's most frequent symptoms by their everyday words."""
    c = KB.condition(condition_code)
    words = []
    for s in sorted(c.symptoms, key=lambda s: -s.weight)[:n]:
        symptom = KB.symptom_of(s.name)
        words.append(symptom.synonyms[0] if symptom and symptom.synonyms else s.name)
    return "我" + "，还".join(words) + "，两天了"


def test_a_red_flag_is_answered_first_with_its_reason_and_basis(client: TestClient) -> None:
    flag = next(rf for rf in KB.red_flags if rf.all_of and rf.max_age_months is None and rf.min_age_months is None)
    r = client.post("/triage", json={"text": "我" + "，而且".join(flag.all_of[0]), "age_years": 60})
    assert r.status_code == 200
    answer = r.json()
    assert answer["action"] == "emergency" and "120" in answer["message"]
    assert flag.id in [f["id"] for f in answer["red_flags"]]
    fired = next(f for f in answer["red_flags"] if f["id"] == flag.id)
    assert fired["basis"] and all(s in fired["because"] for s in flag.all_of[0])
    assert answer["departments"][0]["subject_code"] == "20" and answer["doctors"] == []


def test_a_denied_symptom_does_not_raise_a_red_flag(client: TestClient) -> None:
    flag = next(rf for rf in KB.red_flags if rf.all_of and len(rf.all_of[0]) >= 2 and rf.max_age_months is None)
    first, *rest = flag.all_of[0]
    r = client.post("/triage", json={"text": f"没有{first}，就是{'、'.join(rest)}", "age_years": 40}).json()
    assert flag.id not in [f["id"] for f in r["red_flags"]]
    assert first in r["understood"]["denied"]


@pytest.mark.parametrize("code", [c.code for c in KB.conditions if c.urgency == "routine"][:6])
def test_ordinary_complaints_rank_the_condition_and_its_department(client: TestClient, code: str) -> None:
    c = KB.condition(code)
    age = 30 if c.min_age <= 30 <= c.max_age else (c.min_age + min(c.max_age, 90)) / 2
    r = client.post("/triage", json={"text": _complaint_for(code), "age_years": age, "sex": c.sex or None}).json()
    assert r["action"] in ("outpatient", "see_doctor_soon") and r["red_flags"] == []
    assert code in [x["code"] for x in r["conditions"][:5]], r["conditions"]
    assert c.subject_code in [d["subject_code"] for d in r["departments"]]
    assert abs(sum(x["probability"] for x in r["conditions"]) - 1) < 0.05 or len(r["conditions"]) == 5
    assert "不是诊断" in r["disclaimer"] and "not a diagnosis" in r["disclaimer"]
    top = r["conditions"][0]
    assert top["why"]["matched_symptoms"] and top["why"]["fit"]


def test_doctors_come_from_the_graph_ranked_by_a_shown_mix(client: TestClient, province: Path) -> None:
    import pandas as pd

    division = pd.read_parquet(province / "nodes" / "Institution.parquet")["division_code"].iloc[0]
    code = next(c.code for c in KB.conditions if c.urgency == "routine")
    r = client.post("/triage", json={"text": _complaint_for(code), "division": division, "doctors": 5}).json()
    doctors = r["doctors"]
    assert doctors, "the generated province has physicians in every subject's departments"
    assert [d["score"] for d in doctors] == sorted((d["score"] for d in doctors), reverse=True)
    subjects = {d["subject_code"] for d in r["departments"][:2]}
    assert all(d["subject_code"] in subjects for d in doctors)
    for d in doctors:
        assert set(d["parts"]) == {"distance", "popularity", "rating", "grade"}
        assert any("km" in w for w in d["why"]) and any("评分" in w for w in d["why"])


def test_a_vague_complaint_gets_the_question_that_best_separates_the_candidates(client: TestClient) -> None:
    common = max(KB.symptoms, key=lambda s: sum(1 for c in KB.conditions if s.name in {x.name for x in c.symptoms}))
    r = client.post("/triage", json={"text": f"我{common.name}"}).json()
    assert r["conditions"][0]["probability"] < 0.5
    q = r["question"]
    assert q and q["symptom"] != common.name and q["information_gain_bits"] > 0
    candidates = {KB.condition(c["code"]).name for c in r["conditions"][:6] if c["code"] in
                  {k.code for k in KB.conditions}}
    assert candidates, "the candidates come from the knowledge base"


@pytest.mark.parametrize(("text", "code"), [
    ("", "HG-1003"), ("   ", "HG-1003"), ("头疼" * 300, "HG-1004"), ("my head hurts", "HG-1005"),
    ("今天天气不错，我们去公园吧", "HG-1006"),
])
def test_bad_input_gets_a_coded_answer_never_a_crash(client: TestClient, text: str, code: str) -> None:
    r = client.post("/triage", json={"text": text})
    assert r.status_code == 422 and r.json()["code"] == code


def test_questions_are_answered_from_cited_graph_facts(client: TestClient) -> None:
    c = next(c for c in KB.conditions if c.drugs and c.synonyms)
    r = client.post("/ask", json={"question": f"{c.synonyms[0]}吃什么药好"})
    assert r.status_code == 200
    a = r.json()
    assert a["intent"] == "disease_drug" and a["known"]
    assert {f["subject"] for f in a["facts"]} == {c.code}
    assert all(f["relation"] == "treated_with" for f in a["facts"])
    assert any(d in a["answer"] for d in c.drugs)


def test_a_question_the_graph_cannot_answer_says_so(client: TestClient) -> None:
    # A coded disease of the province's ICD-10 list that the knowledge base says nothing about.
    known = {c.code for c in KB.conditions}
    from ontology.vocab import vocab

    icd = vocab("icd10")
    name = next(r.name_zh for r in icd.itertuples() if r.code not in known and "[" not in r.name_zh
                and len(r.name_zh) <= 6)
    a = client.post("/ask", json={"question": f"{name}的治愈率是多少"}).json()
    assert a["known"] is False and "I don't know" in a["answer"] and a["facts"] == []
