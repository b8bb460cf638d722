"""Rule packs: every shipped test case of every pack passes; bad packs report every problem at once,
each with a stable code and a did-you-mean."""

from __future__ import annotations

import copy

import pytest
import yaml

from ontology import errors
from ontology.model import Ontology
from rules import PACKS_DIR, load_packs, parse_pack, run_tests


@pytest.fixture(scope="module")
def packs(onto: Ontology):
    return load_packs(onto)


def test_every_rule_ships_test_cases_and_a_legal_basis(packs) -> None:
    for pack in packs.values():
        for rule in pack.rules.values():
            assert rule.tests, f"{rule.id} ships no test case"
            assert rule.basis["document"] and rule.basis["article"], rule.id
            assert any(case.expect for case in rule.tests), f"{rule.id}: no case expects an alert"


def test_every_shipped_case_passes(packs) -> None:
    results = [r for p in packs.values() for r in run_tests(p)]
    assert results
    failed = [r.to_dict() for r in results if not r.passed]
    assert not failed


def test_a_shipped_case_that_disagrees_fails(packs) -> None:
    rule = packs["core"].rule("rx_too_many_drugs")
    case = rule.tests[0]
    broken = type(case)(case.name, case.rows, [], case.as_of)  # expects nothing where the rule fires
    from rules.engine import run_case
    assert not run_case(rule, broken).passed


def test_bad_pack_reports_every_problem_with_codes(onto: Ontology) -> None:
    data = yaml.safe_load((PACKS_DIR / "core.yaml").read_text(encoding="utf-8"))
    bad = copy.deepcopy(data)
    rules = {r["id"]: r for r in bad["rules"]}
    rules["rx_too_many_drugs"]["when"] = "drugz > 5"                      # unknown column
    rules["rx_supply_over_7_days"]["when"] = "days_supply > 'seven'"     # type error
    rules["rx_dose_above_maximum"]["query"] = "prescription_item_review"  # unknown query
    rules["rx_interaction"]["severity"] = "urgent"                        # bad value
    rules["rx_duplicate_therapy"]["dedup"] = ["prescription"]             # unknown field
    rules["appointment_abuse"]["subjects"] = {"Resident": "residnt"}      # column not returned
    rules["overlapping_admissions"]["subjects"] = {"Encountr": "first_stay"}  # unknown ontology class
    with pytest.raises(errors.RulePackInvalid) as exc:
        parse_pack(bad, onto, source="bad.yaml")
    got = {(p["rule"], p["code"]) for p in exc.value.problems}
    assert {("rx_too_many_drugs", "HG-0903"), ("rx_supply_over_7_days", "HG-0904"),
            ("rx_dose_above_maximum", "HG-0905"), ("rx_interaction", "HG-0906"),
            ("rx_duplicate_therapy", "HG-0902"), ("appointment_abuse", "HG-0903"),
            ("overlapping_admissions", "HG-0902")} <= got
    text = str(exc.value)
    assert exc.value.code == "HG-0901"
    assert "did you mean 'drugs'" in text and "did you mean 'prescription_items_review'" in text
    assert "did you mean 'resident'" in text and "did you mean 'Encounter'" in text
