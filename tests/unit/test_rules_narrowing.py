"""Narrowing a rule's query inside the engine (rules/narrowing.py, graph/narrowing.py) never drops a row
the rule engine would find or fail on: over random rows with nulls and boundary values, loaded into a
real (in-memory) LadybugDB table, every such row comes back; and rows the condition rejects stay behind."""

from __future__ import annotations

import datetime as dt
from typing import Any

import ladybug
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graph.catalog import named_query
from graph.narrowing import AllOf, AnyOf, Column, Compare, IsNull, Literal, all_of, any_of, render
from ontology.model import Ontology
from rules import evaluate, load_packs, parse_pack
from rules.model import Rule
from rules.narrowing import narrowing

CYPHER_TYPES = {"string": "STRING", "integer": "INT64", "double": "DOUBLE", "boolean": "BOOLEAN"}
VALUES = {
    "string": [None, "a", "b", "03", "04", "mg", "acei", "arb"],
    "integer": [None, 0, 1, 5, 7, 8, 30],
    "double": [None, 0.0, 0.1, 0.3, 1.0, 2.5, 7.0],  # the store holds no NaN: a missing double is null
    "boolean": [None, True, False],
}
AS_OF = dt.datetime(2025, 1, 2)
QUERY = "prescription_items_review"

CONDITIONS = [
    "days_supply != null and days_supply > 7 and exception_reason == null",
    "daily_dose != null and max_daily_dose != null and (unit == null or unit == drug_unit) "
    "and daily_dose > max_daily_dose",
    "daily_dose > max_daily_dose",  # fails on a null: kept for the rule engine to report
    "pregnancy_contraindicated == true and (record_pregnant == true or pregnant_records > 0)",
    "min_age != null and min_age > 0 and birth_date != null and (occurred_at - birth_date).days / 365.25 < min_age",
    "not (unit == drug_unit) or pregnancy_contraindicated",
    "not (days_supply <= 7 or exception_reason != null)",
    "(drug_class + '|' + unit) in ['acei|arb', 'a|b']",
    "not drug_class in ['acei', 'arb'] and days_supply >= 7.0",
    "days_supply == 0.1 or min_age != 5",
    "daily_dose == 2.5 and unit != null",
    "exception_reason =~ 'a.*' and days_supply > 7",
    "(days_supply > 7 and unit == 'mg') or (min_age < 8 and not record_pregnant)",
    "days_supply > 7 or birth_date == null",
    "not (days_supply > 7) and unit == 'mg'",  # fails on a null days_supply before unit is read
]


def _rule(onto: Ontology, when: str) -> Rule:
    pack = parse_pack({"pack": "t", "version": "1", "title": {"zh": "测", "en": "t"}, "rules": [{
        "id": "r", "version": "1", "title": {"zh": "测", "en": "t"}, "basis": {"document": "d", "article": "a"},
        "seed_function": "§64", "severity": "info", "query": QUERY, "when": when, "at": "occurred_at",
        "effective": {"from": dt.date(2025, 1, 1), "to": None}, "dedup_key": ["item"],
        "message": {"zh": "{item}", "en": "{item}"}}]}, onto, source="t.yaml")
    return pack.rules["r"]


def _narrowable(rule: Rule) -> dict[str, str]:
    return {c: rule.columns[c] for c in named_query(QUERY).narrowable if rule.columns[c] in CYPHER_TYPES}


def _kept(rule: Rule, rows: list[dict[str, Any]]) -> set[str]:
    """The items a real engine returns for the rule's narrowing, the rows held in a table of their own."""
    columns = _narrowable(rule)
    db = ladybug.Database(":memory:")
    conn = ladybug.Connection(db)
    conn.execute("CREATE NODE TABLE T(k STRING, " + ", ".join(f"{c} {CYPHER_TYPES[t]}" for c, t in columns.items())
                 + ", PRIMARY KEY(k))")
    for row in rows:
        conn.execute("CREATE (:T {k: $k, " + ", ".join(f"{c}: ${c}" for c in columns) + "})",
                     {"k": row["item"], **{c: row.get(c) for c in columns}})
    text, params = render(narrowing(rule, columns), {c: f"t.{c}" for c in columns})
    result = conn.execute(f"MATCH (t:T) WHERE true {text} RETURN t.k", params)
    kept = {r[0] for r in result.get_all()}
    conn.close()
    db.close()
    return kept


def _needed(rule: Rule, rows: list[dict[str, Any]]) -> set[str]:
    """Items the rule engine finds or fails on, row by row."""
    needed = set()
    for row in rows:
        ev = evaluate(rule, [row], as_of=AS_OF)
        if ev.findings or ev.errors:
            needed.add(row["item"])
    return needed


def _rows(rule: Rule) -> st.SearchStrategy[list[dict[str, Any]]]:
    other = {"birth_date": [None, dt.date(2020, 1, 1)], "pregnant_records": [None, 0, 1]}
    row = st.fixed_dictionaries({
        **{c: st.sampled_from(VALUES[t]) for c, t in _narrowable(rule).items() if c != "item"},
        **{c: st.sampled_from(v) for c, v in other.items()},
        "occurred_at": st.just(dt.datetime(2025, 6, 1))})
    return st.lists(row, min_size=1, max_size=25).map(lambda rows: [{**r, "item": f"K{i}"} for i, r in enumerate(rows)])


@pytest.mark.parametrize("when", CONDITIONS)
def test_narrowing_keeps_every_row_the_rule_finds_or_fails_on(onto: Ontology, when: str) -> None:
    rule = _rule(onto, when)

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(_rows(rule))
    def check(rows: list[dict[str, Any]]) -> None:
        assert _needed(rule, rows) <= _kept(rule, rows)

    check()


def test_narrowing_leaves_behind_rows_the_condition_rejects(onto: Ontology) -> None:
    rule = _rule(onto, CONDITIONS[0])
    rows = [{"item": f"K{i}", "days_supply": 3, "exception_reason": None} for i in range(20)]
    rows[4]["days_supply"] = 12                    # holds
    rows[5]["days_supply"], rows[5]["exception_reason"] = 12, "chronic"  # an exception: rejected
    rows[6]["days_supply"] = None                  # rejected by the null test before the comparison
    assert _kept(rule, rows) == {"K4"} == _needed(rule, rows)


def test_shipped_rules_narrow_their_queries(onto: Ontology) -> None:
    """Every rule on a narrowable query says something to the engine, except where its condition rests on
    columns the engine cannot judge."""
    pack = load_packs(onto)["core"]
    said = {rid: narrowing(r, named_query(r.query).narrowable) for rid, r in pack.rules.items()
            if named_query(r.query).narrowable}
    supply = said["rx_supply_over_7_days"]
    assert isinstance(supply, AllOf)
    assert {Compare(Column("days_supply"), ">", Literal(7)), IsNull(Column("days_supply"), null=False)} <= \
        set(supply.parts)
    assert said["rx_contraindicated_pregnancy"] == Compare(Column("pregnancy_contraindicated"), "=", Literal(True))
    assert said["appointment_abuse"] == AnyOf((Compare(Column("no_shows"), ">=", Literal(3)),
                                               Compare(Column("appointments"), ">=", Literal(10))))
    assert all(p is not True for p in said.values()), said


def test_columns_of_a_lookup_narrow_through_the_node_they_come_from(onto: Ontology) -> None:
    """The drug's limits come from a per-drug lookup, not per item from the engine, yet narrow the items
    where the statement binds the drug (NamedQuery.looked_up_as)."""
    from graph.catalog import Lookup, NamedQuery, return_items

    q = named_query("prescription_items_review")
    assert "pregnancy_contraindicated" not in return_items(q.cypher)
    text, params = q.statement(Compare(Column("pregnancy_contraindicated"), "=", Literal(True)))
    assert "AND coalesce((g.pregnancy_contraindicated) = $narrow_0, true)" in text and params == {"narrow_0": True}
    with pytest.raises(ValueError, match="no lookup returns"):
        NamedQuery("q", "q", "MATCH (g:Drug) WHERE true /*narrow*/ RETURN g.key AS drug",
                   lookups=(Lookup("drug", "MATCH (g:Drug) RETURN g.key AS drug, g.name AS name"),),
                   looked_up_as={"min_age": "g.min_age"}, narrowable=("min_age",))


def test_simplification() -> None:
    a, b = Compare(Column("a"), "=", Literal(1)), Compare(Column("b"), "=", Literal(2))
    assert all_of(True, a) == a and all_of(a, False) is False and all_of(a, all_of(b, a)) == AllOf((a, b))
    assert any_of(False, a) == a and any_of(a, True) is True and any_of() is False and all_of() is True
    with pytest.raises(ValueError, match="cannot narrow"):
        render(a, {"b": "t.b"})
