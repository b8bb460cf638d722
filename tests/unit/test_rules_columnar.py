"""Columnar pruning (rules/columnar.py) never changes what a rule finds: over random rows with nulls,
boundary values and NaN, every translated construct gives the same counts, findings and errors as
rule-engine row by row; and it does prune."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ontology.model import Ontology
from ontology.validate import plain
from rules import evaluate, load_packs, parse_pack
from rules.columnar import candidates
from rules.model import Rule

ARROW = {"string": pa.string(), "integer": pa.int64(), "double": pa.float64(), "boolean": pa.bool_(),
         "date": pa.date32(), "dateTime": pa.timestamp("us"), "strings": pa.list_(pa.string())}
VALUES = {
    "string": [None, "a", "b", "03", "04"],
    "integer": [None, 0, 1, 5, 7, 8, 30],
    "double": [None, 0.0, 0.1, 0.3, 1.0, 2.5, 7.0, float("nan")],
    "boolean": [None, True, False],
    "date": [None, dt.date(2024, 12, 31), dt.date(2025, 1, 1), dt.date(2025, 1, 2)],
    "dateTime": [None, dt.datetime(2024, 12, 31, 23, 59, 59, 500000), dt.datetime(2025, 1, 1),
                 dt.datetime(2025, 1, 1, 12), dt.datetime(2025, 1, 2)],
    "strings": [None, [], ["03"], ["03", "04"]],
}
AS_OF = dt.datetime(2025, 1, 2)

# One condition per construct the translator handles (and two it does not: a regex and a function).
ITEMS = [  # over prescription_items_review
    "daily_dose != null and max_daily_dose != null and daily_dose > max_daily_dose",
    "daily_dose > max_daily_dose",
    "days_supply > 7 and exception_reason == null",
    "not (unit == drug_unit) or pregnancy_contraindicated",
    "pregnancy_contraindicated == true and (record_pregnant == true or pregnant_records > 0)",
    "min_age != null and birth_date != null and (occurred_at - birth_date).days / 365.25 < min_age",
    "(occurred_at - birth_date).total_seconds <= min_age * 86400",
    "-days_supply < -7 or daily_dose * 2 >= max_daily_dose + 1",
    "(drug_class + '|' + unit) in ['a|b', 'b|a', '03|04']",
    "birth_date < occurred_at or birth_date >= as_of",
    "birth_date == occurred_at or unit != null",
    "days_supply >= pregnant_records and daily_dose <= 2.5",
    "daily_dose / days_supply > 0.1",
    "exception_reason =~ 'a.*' or days_supply == 7",
    "days_supply == 0.1 or min_age != 5",
]
PRACTICE = [  # over encounter_practice (list columns)
    "not subject_code in licensed_subjects",
    "licensed_subjects != null and subject_code in licensed_subjects and valid_to >= occurred_at",
    "licence == null or registration_status != 'registered' or (valid_to != null and valid_to < occurred_at)",
]


def _rule(onto: Ontology, query: str, when: str, key: str) -> Rule:
    pack = parse_pack({"pack": "t", "version": "1", "title": {"zh": "测", "en": "t"}, "rules": [{
        "id": "r", "version": "1", "title": {"zh": "测", "en": "t"}, "basis": {"document": "d", "article": "a"},
        "seed_function": "§64", "severity": "info", "query": query, "when": when, "at": "occurred_at",
        "effective": {"from": dt.date(2025, 1, 1), "to": None}, "dedup_key": [key],
        "message": {"zh": "{%s}" % key, "en": "{%s}" % key}}]}, onto, source="t.yaml")
    return pack.rules["r"]


def _table(rule: Rule, rows: list[dict[str, Any]]) -> pa.Table:
    schema = pa.schema([(c, ARROW.get(t, pa.string())) for c, t in rule.columns.items()])
    return pa.Table.from_pylist(rows, schema=schema)


def _rows(rule: Rule, key: str) -> st.SearchStrategy[list[dict[str, Any]]]:
    row = st.fixed_dictionaries({c: st.sampled_from(VALUES.get(t, [None, "x"])) for c, t in rule.columns.items()
                                 if c != key})
    return st.lists(row, min_size=1, max_size=40).map(
        lambda rows: [{**r, key: f"K{i}"} for i, r in enumerate(rows)])


def _same(rule: Rule, rows: list[dict[str, Any]]) -> None:
    by_row = evaluate(rule, [{c: plain(v) for c, v in r.items()} for r in rows], as_of=AS_OF)
    pruned = evaluate(rule, _table(rule, rows), as_of=AS_OF)
    assert (pruned.rows, pruned.matched) == (by_row.rows, by_row.matched)
    assert [f.dedup_key for f in pruned.findings] == [f.dedup_key for f in by_row.findings]
    assert [e["error"] for e in pruned.errors] == [e["error"] for e in by_row.errors]


@pytest.mark.parametrize(("query", "when", "key"), [("prescription_items_review", w, "item") for w in ITEMS]
                         + [("encounter_practice", w, "encounter") for w in PRACTICE])
def test_pruning_agrees_with_rule_engine_on_random_rows(onto: Ontology, query: str, when: str, key: str) -> None:
    rule = _rule(onto, query, when, key)

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(_rows(rule, key))
    def check(rows: list[dict[str, Any]]) -> None:
        _same(rule, rows)

    check()


def test_every_shipped_case_agrees_through_the_columnar_path(onto: Ontology) -> None:
    for pack in load_packs(onto).values():
        for rule in pack.rules.values():
            for case in rule.tests:
                rows = [{c: r.get(c) for c in rule.columns} for r in case.rows]
                by_row = evaluate(rule, rows, as_of=case.as_of)
                pruned = evaluate(rule, _table(rule, rows), as_of=case.as_of)
                assert sorted(f.dedup_key for f in pruned.findings) == sorted(f.dedup_key for f in by_row.findings)
                assert (pruned.rows, pruned.matched, len(pruned.errors)) == \
                    (by_row.rows, by_row.matched, len(by_row.errors)), (rule.id, case.name)


def test_rows_the_condition_certainly_rejects_are_dropped_and_the_rest_kept(onto: Ontology) -> None:
    rule = _rule(onto, "prescription_items_review", ITEMS[2], "item")
    rows = [{"item": f"K{i}", "days_supply": 3, "exception_reason": None,
             "occurred_at": dt.datetime(2025, 6, 1)} for i in range(1000)]
    rows[10]["days_supply"] = 12                      # matches
    rows[20]["days_supply"] = None                    # null > 7: rule-engine's error, so kept for it to report
    rows[30]["occurred_at"] = dt.datetime(2024, 6, 1)  # before the rule took effect: out of scope
    in_scope, kept = candidates(rule, _table(rule, rows), as_of=AS_OF)
    assert in_scope == 999
    assert [r["item"] for r in kept] == ["K10", "K20"]
    ev = evaluate(rule, _table(rule, rows), as_of=AS_OF)
    assert ev.rows == 999 and ev.matched == 1 and len(ev.errors) == 1


def test_a_condition_it_cannot_translate_keeps_every_row(onto: Ontology) -> None:
    rule = _rule(onto, "prescription_items_review", "exception_reason =~ 'urgent.*'", "item")
    rows = [{"item": f"K{i}", "exception_reason": "none", "occurred_at": dt.datetime(2025, 6, 1)} for i in range(50)]
    assert len(candidates(rule, _table(rule, rows), as_of=AS_OF)[1]) == 50
