"""Red flags on a held-aside set of colloquial complaints (tests/data/triage/redflag_complaints.yaml,
written apart from the knowledge base's phrasing): recall must be 1.0 — every emergency presentation
is answered "call 120 / go to emergency" — and look-alikes (denied symptoms, mild versions, an adult's
fever) must not fire."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ontology.knowledge import load_knowledge
from services.triage import Triage

CASES = yaml.safe_load((Path(__file__).parents[1] / "data" / "triage" / "redflag_complaints.yaml").read_text("utf-8"))
KB = load_knowledge()


@pytest.fixture(scope="module")
def triage() -> Triage:
    from models.triage import get_parser

    return Triage(None, KB, parser=get_parser(KB))  # type: ignore[arg-type]  # red flags need no graph


def _fired(triage: Triage, case: dict) -> set[str]:
    complaint = triage.parser.parse(case["text"])
    age = case.get("age_years", complaint.age_years)
    return {f["id"] for f in triage.red_flags(complaint, age)}


def test_the_set_covers_every_red_flag_with_positives_and_negatives() -> None:
    expected = {c["expect"] for c in CASES if c.get("expect")}
    assert expected == {rf.id for rf in KB.red_flags}
    assert sum(1 for c in CASES if not c.get("expect")) >= 40


def test_red_flag_recall_is_one(triage: Triage) -> None:
    missed = [(c["text"], c["expect"], sorted(_fired(triage, c))) for c in CASES
              if c.get("expect") and c["expect"] not in _fired(triage, c)]
    assert not missed, f"{len(missed)} emergency complaints missed: {missed[:10]}"


def test_look_alikes_raise_no_red_flag(triage: Triage) -> None:
    false_alarms = [(c["text"], sorted(f)) for c in CASES if not c.get("expect") and (f := _fired(triage, c))]
    negatives = sum(1 for c in CASES if not c.get("expect"))
    precision_floor = 0.95  # of the negatives, at least this share must stay silent
    assert len(false_alarms) <= (1 - precision_floor) * negatives, false_alarms


@pytest.mark.parametrize("rf", KB.red_flags, ids=lambda rf: rf.id)
def test_every_red_flag_cites_its_clinical_basis_and_advises_emergency_care(rf) -> None:
    assert rf.basis and ("120" in rf.advice or "急诊" in rf.advice)
    assert rf.advice_en and rf.title_en


@pytest.mark.parametrize(("text", "fires"), [
    ("一个月的宝宝发烧了", True),             # a reported fever without a number counts (NICE NG143: < 3 months)
    ("两个月宝宝烧到38.2度", True),
    ("宝宝两个月，体温37.2", False),            # measured below 38 °C
    ("宝宝一个月，有点鼻塞，体温正常", False),    # a temperature word is not a fever
    ("孩子两岁，发烧38.5度", False),            # outside the age window
])
def test_infant_fever_needs_the_age_window_and_a_fever(triage: Triage, text: str, fires: bool) -> None:
    complaint = triage.parser.parse(text)
    fired = {f["id"] for f in triage.red_flags(complaint, complaint.age_years)}
    assert ("RF-INFANT-FEVER" in fired) is fires, (text, complaint.age_years, complaint.temperature_c, fired)
