"""Evaluating a rule over candidate rows: findings with dedup keys, explanations and messages.

Pure functions over plain rows (dicts), no graph access: the supervision service fetches rows with
the rule's named query and turns findings into alerts; the shipped test cases feed fixture rows.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import rule_engine

from ontology.errors import RuleTestFailed
from rules.columnar import candidates
from rules.model import TIMEZONE, Pack, Rule

MAX_EVIDENCE_ROWS = 20


@dataclass
class Finding:
    """One alert-to-be: the rows of one dedup key for which the rule's condition held."""

    rule: Rule
    key_values: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def dedup_key(self) -> str:
        return "|".join(str(self.key_values[c]) for c in self.rule.dedup_key)

    @property
    def digest(self) -> str:
        return hashlib.sha1(f"{self.rule.id}\x1f{self.dedup_key}".encode()).hexdigest()[:16]

    @property
    def at(self) -> dt.datetime | None:
        """The latest event time among the rows (the rule's ``at`` column)."""
        times = [_as_datetime(r.get(self.rule.at)) for r in self.rows] if self.rule.at else []
        times = [t for t in times if t is not None]
        return max(times) if times else None

    @property
    def subjects(self) -> list[str]:
        """``Class:key`` of every subject named by the rule, over all rows, in first-seen order."""
        out: dict[str, None] = {}
        for row in self.rows:
            for cls, col in self.rule.subjects.items():
                values = row.get(col)
                for v in values if isinstance(values, list) else [values]:
                    if v is not None:
                        out[f"{cls}:{v}"] = None
        return list(out)

    def message(self, lang: str) -> str:
        return _format(self.rule.message[lang], self.rows[0])

    def explanation(self) -> dict[str, Any]:
        """Which condition held, with the values it read (first row; ``rows`` counts them all)."""
        first = self.rows[0]
        return {"condition": self.rule.when, "values": {c: _json_value(first.get(c))
                                                           for c in self.rule.condition_columns},
                "rows": len(self.rows)}

    def evidence(self) -> dict[str, Any]:
        return {"query": self.rule.query, "params": self.rule.params,
                "rows": [{k: _json_value(v) for k, v in r.items()} for r in self.rows[:MAX_EVIDENCE_ROWS]],
                "rows_total": len(self.rows)}


def _as_datetime(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time())
    return None


def _json_value(value: Any) -> Any:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    return value


class _Missing(dict):
    def __missing__(self, key: str) -> str:
        return "—"


def _format(template: str, row: dict[str, Any]) -> str:
    values = _Missing({k: ("—" if v is None else ", ".join(map(str, v)) if isinstance(v, list) else v)
                       for k, v in row.items()})
    try:
        return template.format_map(values)
    except (ValueError, TypeError, KeyError, IndexError):
        return template


def _with_timezone(value: Any) -> Any:
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=TIMEZONE)
    return value


@dataclass
class Evaluation:
    """What a rule made of some rows: findings, and rows it could not evaluate (with the reason)."""

    rule: Rule
    rows: int = 0
    matched: int = 0
    findings: list[Finding] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


def evaluate(rule: Rule, rows: list[dict[str, Any]] | pa.Table, *, as_of: dt.datetime | None = None,
             since: dt.datetime | None = None, until: dt.datetime | None = None) -> Evaluation:
    """Evaluate ``rule`` on candidate rows (dicts, or an Arrow table: see :mod:`rules.columnar`). Rows
    whose event time (``at``) is outside the rule's effective dates or outside [since, until) are
    skipped; rows with equal dedup-key values make one finding. Rows the condition cannot evaluate
    (e.g. a null compared with a number) are reported in ``errors``, never silently dropped."""
    as_of = as_of or dt.datetime.now().replace(microsecond=0)
    out = Evaluation(rule)
    in_scope = None
    if isinstance(rows, pa.Table):  # drop the rows the condition certainly rejects, column by column
        in_scope, rows = candidates(rule, rows, as_of=as_of, since=since, until=until)
    by_key: dict[tuple, Finding] = {}
    extra = {**rule.constants, "as_of": _with_timezone(as_of)}
    # A condition is a pure function of the columns it reads (the constants are fixed for the run):
    # rows repeating the same values of those (most rows of a large pack share a few dose, supply,
    # licence or status combinations) are evaluated once.
    reads = rule.condition_columns
    verdicts: dict[tuple, bool | str] = {}
    for row in rows:
        when = _as_datetime(row.get(rule.at)) if rule.at else None
        if when is not None and (not rule.in_effect(when) or (since and when < since) or (until and when >= until)):
            continue
        out.rows += 1
        values = tuple(_hashable(row.get(c)) for c in reads)
        held = verdicts.get(values)
        if held is None:
            thing = {c: _with_timezone(row.get(c)) for c in reads}
            thing.update(extra)
            try:
                held = verdicts[values] = rule.compiled.matches(thing)
            except rule_engine.errors.EngineError as exc:
                held = verdicts[values] = exc.message
            except (TypeError, ArithmeticError) as exc:  # rule-engine lets some through, e.g. 'a' + null
                held = verdicts[values] = f"{type(exc).__name__}: {exc}"
        if isinstance(held, str):
            if len(out.errors) < MAX_EVIDENCE_ROWS:
                out.errors.append({"row": {k: _json_value(v) for k, v in row.items()}, "error": held})
            continue
        if not held:
            continue
        out.matched += 1
        key = tuple(_hashable(row.get(c)) for c in rule.dedup_key)
        finding = by_key.get(key)
        if finding is None:
            finding = by_key[key] = Finding(rule, {c: row.get(c) for c in rule.dedup_key})
        finding.rows.append(row)
    out.findings = list(by_key.values())
    if in_scope is not None:
        out.rows = in_scope
    return out


def _hashable(value: Any) -> Any:
    return json.dumps(_json_value(value), sort_keys=True) if isinstance(value, (list, dict)) else value


# ---------------------------------------------------------------------- shipped test cases
@dataclass
class CaseResult:
    rule: str
    case: str
    passed: bool
    expected: list[dict[str, Any]]
    got: list[dict[str, Any]]
    errors: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "case": self.case, "passed": self.passed,
                "expected": [{k: _json_value(v) for k, v in e.items()} for e in self.expected],
                "got": [{k: _json_value(v) for k, v in g.items()} for g in self.got], "errors": self.errors}


def run_case(rule: Rule, case: Any) -> CaseResult:
    rows = [{c: r.get(c) for c in rule.columns} for r in case.rows]
    ev = evaluate(rule, rows, as_of=case.as_of)
    got = [f.key_values for f in ev.findings]
    norm = sorted(json.dumps(_json_value(g), sort_keys=True, ensure_ascii=False) for g in got)
    want = sorted(json.dumps(_json_value(e), sort_keys=True, ensure_ascii=False) for e in case.expect)
    return CaseResult(rule.id, case.name, norm == want and not ev.errors, case.expect, got, ev.errors)


def run_tests(pack: Pack, rule_ids: list[str] | None = None) -> list[CaseResult]:
    """Run the test cases shipped with each rule of a pack (or the named rules)."""
    rules = [pack.rule(r) for r in rule_ids] if rule_ids else list(pack.rules.values())
    return [run_case(rule, case) for rule in rules for case in rule.tests]


def assert_tests_pass(pack: Pack) -> None:
    failed = [r for r in run_tests(pack) if not r.passed]
    if failed:
        lines = "; ".join(f"{r.rule}/{r.case}: expected {r.expected}, got {r.got} {r.errors or ''}" for r in failed)
        raise RuleTestFailed(f"{len(failed)} shipped rule test(s) failed: {lines}",
                             failures=[r.to_dict() for r in failed])
