"""Rule packs: loading YAML, validating every rule at once, compiling conditions with ``rule-engine``.

A pack is one YAML file (``rules/packs/*.yaml``)::

    pack: core                       # pack id
    version: "1.0.0"
    title: {zh: ..., en: ...}
    rules:
      - id: rx_supply_over_7_days
        version: "1.0.0"
        title: {zh: ..., en: ...}
        effective: {from: 2007-05-01, to: null}     # the event time (``at``) must fall inside
        basis: {document: 处方管理办法 (2007), article: 第十九条}
        seed_function: "§64 合理用药业务监管"
        severity: warning                          # info | warning | critical (CDS Hooks indicator)
        query: prescription_items_review           # a named query in graph/catalog.py
        params: {}                                 # its parameters, if any
        requires: [master_index]                   # optional: what must be built first
        at: occurred_at                            # the column holding the event time
        when: "days_supply > 7 and exception_reason == null"   # rule-engine expression over a row
        constants: {}                              # extra names for ``when``: literals, or {vocab, columns}
        subjects: {Prescription: prescription}     # ontology class -> column holding the subject key
        dedup_key: [prescription]                  # rows with equal values make one alert
        suppression_days: 30
        auto_resolve: true                         # close open alerts whose condition no longer holds
        message: {zh: "…{prescription}…", en: "…"}   # str.format over the row's columns
        tests:                                     # shipped with the rule, run by `healthgraph rules test`
          - name: twelve days without a reason
            as_of: 2025-12-31T00:00:00
            rows: [{prescription: RX1, days_supply: 12, exception_reason: null, occurred_at: 2025-06-01T10:00:00}]
            expect: [{prescription: RX1}]          # dedup-key values of the expected alerts

Every problem in a pack is collected and reported at once as :class:`RulePackInvalid`, each
problem with a stable code: unknown fields (HG-0902), columns the query does not return
(HG-0903, with did-you-mean), conditions that do not parse or type-check (HG-0904), unknown
queries (HG-0905) and bad values (HG-0906).
"""

from __future__ import annotations

import datetime as dt
import enum
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rule_engine
import yaml

from graph.catalog import QUERIES, result_columns
from ontology.errors import RulePackInvalid, did_you_mean
from ontology.model import Ontology
from ontology.vocab import vocab

PACKS_DIR = Path(__file__).parent / "packs"


class Severity(enum.StrEnum):
    """How urgent an alert is (the CDS Hooks card indicator)."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


PACK_FIELDS = {"pack", "version", "title", "description", "rules"}
RULE_FIELDS = {"id", "version", "title", "effective", "basis", "seed_function", "severity", "query", "params",
               "requires", "at", "when", "constants", "subjects", "dedup_key", "suppression_days", "auto_resolve",
               "message", "tests", "notes"}
REQUIRED = ("id", "version", "title", "basis", "seed_function", "severity", "query", "when", "dedup_key", "message")
TEST_FIELDS = {"name", "rows", "expect", "as_of"}
REQUIREMENTS = {"master_index"}

_TYPES = {
    # a list column is an array of anything: rule-engine types an empty tuple ARRAY(UNDEFINED) and would
    # refuse it where ARRAY(STRING) is declared (a licence with no subjects is a value, not an error)
    "string": rule_engine.DataType.STRING, "strings": rule_engine.DataType.ARRAY(rule_engine.DataType.UNDEFINED),
    "integer": rule_engine.DataType.FLOAT, "double": rule_engine.DataType.FLOAT,
    "boolean": rule_engine.DataType.BOOLEAN, "date": rule_engine.DataType.DATETIME,
    "dateTime": rule_engine.DataType.DATETIME, "any": rule_engine.DataType.UNDEFINED,
}
TIMEZONE = dt.timezone(dt.timedelta(hours=8))
"""Graph times are naive local times (China Standard Time); conditions compare them in UTC+8."""


@dataclass(frozen=True)
class RuleTest:
    name: str
    rows: list[dict[str, Any]]
    expect: list[dict[str, Any]]
    as_of: dt.datetime | None = None


@dataclass
class Rule:
    """One supervision rule, validated and compiled."""

    id: str
    version: str
    title: dict[str, str]
    basis: dict[str, str]
    seed_function: str
    severity: Severity
    query: str
    when: str
    dedup_key: list[str]
    message: dict[str, str]
    columns: dict[str, str]
    params: dict[str, Any] = field(default_factory=dict)
    requires: list[str] = field(default_factory=list)
    at: str | None = None
    effective_from: dt.date | None = None
    effective_to: dt.date | None = None
    constants: dict[str, Any] = field(default_factory=dict)
    subjects: dict[str, str] = field(default_factory=dict)
    suppression_days: int = 30
    auto_resolve: bool = False
    tests: list[RuleTest] = field(default_factory=list)
    pack: str = ""
    compiled: Any = None

    @property
    def basis_text(self) -> str:
        return f"{self.basis.get('document', '')} {self.basis.get('article', '')}".strip()

    @property
    def condition_columns(self) -> list[str]:
        """The columns the condition reads, in the order they appear (for explanations)."""
        names = _identifiers(self.when)
        return [c for c in dict.fromkeys(names) if c in self.columns]

    def in_effect(self, when: dt.datetime | dt.date | None) -> bool:
        if when is None:
            return True
        day = when.date() if isinstance(when, dt.datetime) else when
        return (self.effective_from is None or day >= self.effective_from) and \
               (self.effective_to is None or day <= self.effective_to)

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "version": self.version, "pack": self.pack, "title": self.title,
                "severity": str(self.severity), "basis": self.basis, "seed_function": self.seed_function,
                "query": self.query, "when": self.when, "dedup_key": self.dedup_key,
                "suppression_days": self.suppression_days, "auto_resolve": self.auto_resolve,
                "effective": {"from": _iso(self.effective_from), "to": _iso(self.effective_to)},
                "requires": self.requires, "tests": len(self.tests)}


@dataclass
class Pack:
    id: str
    version: str
    title: dict[str, str]
    rules: dict[str, Rule]
    path: Path | None = None

    def rule(self, rule_id: str) -> Rule:
        from ontology.errors import UnknownRule

        try:
            return self.rules[rule_id]
        except KeyError:
            raise UnknownRule(f"no rule '{rule_id}' in pack '{self.id}' {did_you_mean(rule_id, self.rules)}",
                              rule=rule_id, pack=self.id) from None


def _iso(d: dt.date | None) -> str | None:
    return d.isoformat() if d else None


def _identifiers(text: str) -> list[str]:
    import re

    without_strings = re.sub(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"", "''", text)
    return re.findall(r"(?<![\w.$])([A-Za-z_]\w*)", without_strings)


class _Problems:
    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[dict[str, Any]] = []

    def add(self, code: str, rule: str | None, where: str, message: str) -> None:
        self.items.append({"code": code, "rule": rule, "field": where, "message": message})

    def raise_if_any(self) -> None:
        if self.items:
            lines = "\n".join(f"  {p['code']} [{p['rule'] or '-'}] {p['field']}: {p['message']}" for p in self.items)
            raise RulePackInvalid(f"rule pack {self.source} has {len(self.items)} problem(s):\n{lines}",
                                  source=self.source, problems=self.items)


def _constant(value: Any) -> Any:
    """A constant's value: a literal, or ``{vocab: name, columns: [a, b], join: '|'}`` (a list of
    joined column values of a vocabulary in ontology/vocab, e.g. interacting class pairs)."""
    if isinstance(value, dict) and "vocab" in value:
        table = vocab(value["vocab"])
        cols = list(value.get("columns") or [])
        joiner = str(value.get("join", "|"))
        out = [joiner.join(str(v) for v in row) for row in table[cols].itertuples(index=False)]
        if value.get("symmetric"):
            out += [joiner.join(str(v) for v in reversed(row)) for row in table[cols].itertuples(index=False)]
        return sorted(set(out))
    return value


def _type_of(value: Any) -> Any:
    if isinstance(value, list):
        return rule_engine.DataType.ARRAY(rule_engine.DataType.STRING) if all(isinstance(v, str) for v in value) \
            else rule_engine.DataType.ARRAY(rule_engine.DataType.UNDEFINED)
    return rule_engine.DataType.from_value(value)


def _as_date(value: Any, problems: _Problems, rule: str, where: str) -> dt.date | None:
    if value is None:
        return None
    if isinstance(value, dt.date):
        return value if not isinstance(value, dt.datetime) else value.date()
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        problems.add("HG-0906", rule, where, f"{value!r} is not an ISO date (YYYY-MM-DD)")
        return None


def _bilingual(value: Any, problems: _Problems, rule: str | None, where: str) -> dict[str, str]:
    if not isinstance(value, dict) or not value.get("zh") or not value.get("en"):
        problems.add("HG-0906", rule, where, "needs both 'zh' and 'en' text")
        return {"zh": str(value), "en": str(value)} if not isinstance(value, dict) else dict(value)
    return {"zh": str(value["zh"]), "en": str(value["en"])}


def _check_fields(data: dict[str, Any], allowed: set[str], problems: _Problems, rule: str | None, where: str) -> None:
    for name in data:
        if name not in allowed:
            problems.add("HG-0902", rule, f"{where}{name}", f"unknown field '{name}' {did_you_mean(name, allowed)}")


def build_rule(raw: dict[str, Any], onto: Ontology, problems: _Problems, pack: str = "") -> Rule | None:
    """Validate and compile one rule, adding every problem found to ``problems``."""
    rid = str(raw.get("id") or "?")
    _check_fields(raw, RULE_FIELDS, problems, rid, "")
    for name in REQUIRED:
        if raw.get(name) in (None, "", []):
            problems.add("HG-0906", rid, name, f"'{name}' is required")
    if any(p["rule"] == rid and p["code"] == "HG-0906" and p["message"].endswith("is required")
           for p in problems.items):
        return None

    severity = str(raw["severity"])
    if severity not in {s.value for s in Severity}:
        problems.add("HG-0906", rid, "severity", f"'{severity}' is not a severity "
                     f"{did_you_mean(severity, [s.value for s in Severity])}")
    basis = raw["basis"] if isinstance(raw["basis"], dict) else {}
    if not basis.get("document") or not basis.get("article"):
        problems.add("HG-0906", rid, "basis", "legal basis needs 'document' and 'article'")
    _check_fields(basis, {"document", "article", "note"}, problems, rid, "basis.")

    columns: dict[str, str] = {}
    query = str(raw["query"])
    if query not in QUERIES:
        problems.add("HG-0905", rid, "query", f"unknown named query '{query}' {did_you_mean(query, QUERIES)}")
    else:
        columns = result_columns(QUERIES[query], onto)
        params = raw.get("params") or {}
        for pname in set(QUERIES[query].params) - set(params):
            problems.add("HG-0906", rid, "params", f"query '{query}' needs parameter '{pname}'")
        for pname in set(params) - set(QUERIES[query].params):
            problems.add("HG-0902", rid, f"params.{pname}",
                         f"query '{query}' has no parameter '{pname}' {did_you_mean(pname, QUERIES[query].params)}")

    def column(name: Any, where: str) -> None:
        if columns and name not in columns:
            problems.add("HG-0903", rid, where, f"'{name}' is not a column of query '{query}' "
                         f"{did_you_mean(str(name), columns)}")

    dedup = raw["dedup_key"] if isinstance(raw["dedup_key"], list) else [raw["dedup_key"]]
    for c in dedup:
        column(c, "dedup_key")
    at = raw.get("at")
    if at is not None:
        column(at, "at")
    subjects = raw.get("subjects") or {}
    for cls, col in subjects.items():
        if cls not in onto.classes:
            problems.add("HG-0902", rid, f"subjects.{cls}", f"unknown ontology class '{cls}' "
                         f"{did_you_mean(cls, onto.classes)}")
        column(col, f"subjects.{cls}")
    for req in raw.get("requires") or []:
        if req not in REQUIREMENTS:
            problems.add("HG-0906", rid, "requires", f"unknown requirement '{req}' {did_you_mean(req, REQUIREMENTS)}")

    constants = {name: _constant(v) for name, v in (raw.get("constants") or {}).items()}
    message = _bilingual(raw["message"], problems, rid, "message")
    known = {**columns, **{c: "any" for c in constants}, "as_of": "dateTime"}
    for lang, text in message.items():
        try:
            names = [f for _, f, _, _ in string.Formatter().parse(text) if f]
        except ValueError as exc:
            problems.add("HG-0906", rid, f"message.{lang}", f"bad template: {exc}")
            continue
        for f in names:
            base = f.split(".")[0].split("[")[0]
            if columns and base not in known:
                problems.add("HG-0903", rid, f"message.{lang}", f"placeholder '{{{base}}}' is not a column of query "
                             f"'{query}' {did_you_mean(base, known)}")

    compiled = None
    if columns:
        types = {name: _TYPES.get(t, rule_engine.DataType.UNDEFINED) for name, t in columns.items()}
        types.update({name: _type_of(v) for name, v in constants.items()})
        types["as_of"] = rule_engine.DataType.DATETIME
        context = rule_engine.Context(type_resolver=rule_engine.type_resolver_from_dict(types),
                                      default_timezone=TIMEZONE)
        try:
            compiled = rule_engine.Rule(str(raw["when"]), context=context)
        except rule_engine.errors.SymbolResolutionError as exc:
            hint = f"(did you mean '{exc.suggestion}'?)" if exc.suggestion else did_you_mean(exc.symbol_name, types)
            problems.add("HG-0903", rid, "when", f"'{exc.symbol_name}' is not a column of query '{query}' {hint}")
        except rule_engine.errors.RuleSyntaxError as exc:
            problems.add("HG-0904", rid, "when", f"syntax error in condition: {exc.message}"
                         + (f" near {exc.token.value!r}" if getattr(exc, "token", None) else ""))
        except rule_engine.errors.EngineError as exc:
            problems.add("HG-0904", rid, "when", f"condition does not type-check: {exc.message}")

    effective = raw.get("effective") or {}
    _check_fields(effective, {"from", "to"}, problems, rid, "effective.")
    tests = []
    for i, case in enumerate(raw.get("tests") or []):
        _check_fields(case, TEST_FIELDS, problems, rid, f"tests[{i}].")
        for j, row in enumerate(case.get("rows") or []):
            for c in row:
                column(c, f"tests[{i}].rows[{j}]")
        for j, exp in enumerate(case.get("expect") or []):
            for c in exp:
                if c not in dedup:
                    problems.add("HG-0903", rid, f"tests[{i}].expect[{j}]",
                                 f"'{c}' is not in the dedup key {did_you_mean(str(c), dedup)}")
        as_of = case.get("as_of")
        tests.append(RuleTest(str(case.get("name", f"case {i + 1}")), list(case.get("rows") or []),
                              list(case.get("expect") or []),
                              as_of if isinstance(as_of, dt.datetime) else None))
    suppression = raw.get("suppression_days", 30)
    if not isinstance(suppression, int) or suppression < 0:
        problems.add("HG-0906", rid, "suppression_days", f"must be a whole number of days ≥ 0, got {suppression!r}")
        suppression = 30
    return Rule(
        id=rid, version=str(raw["version"]), title=_bilingual(raw["title"], problems, rid, "title"), basis=basis,
        seed_function=str(raw["seed_function"]), severity=Severity(severity) if severity in {s.value for s in Severity} else
        Severity.WARNING, query=query, when=str(raw["when"]), dedup_key=[str(c) for c in dedup], message=message,
        columns=columns, params=dict(raw.get("params") or {}), requires=list(raw.get("requires") or []), at=at,
        effective_from=_as_date(effective.get("from"), problems, rid, "effective.from"),
        effective_to=_as_date(effective.get("to"), problems, rid, "effective.to"), constants=constants,
        subjects=dict(subjects), suppression_days=suppression, auto_resolve=bool(raw.get("auto_resolve", False)),
        tests=tests, pack=pack, compiled=compiled)


def parse_pack(data: Any, onto: Ontology, *, source: str = "<pack>", path: Path | None = None) -> Pack:
    """Validate a pack given as parsed YAML; raises RulePackInvalid listing every problem."""
    problems = _Problems(source)
    if not isinstance(data, dict):
        problems.add("HG-0906", None, "", "a pack is a mapping with 'pack', 'version', 'title' and 'rules'")
        problems.raise_if_any()
    _check_fields(data, PACK_FIELDS, problems, None, "")
    pack_id = str(data.get("pack") or "")
    if not pack_id:
        problems.add("HG-0906", None, "pack", "'pack' (the pack id) is required")
    title = _bilingual(data.get("title"), problems, None, "title")
    rules: dict[str, Rule] = {}
    for i, raw in enumerate(data.get("rules") or []):
        if not isinstance(raw, dict):
            problems.add("HG-0906", None, f"rules[{i}]", "each rule is a mapping")
            continue
        rule = build_rule(raw, onto, problems, pack_id)
        if rule is None:
            continue
        if rule.id in rules:
            problems.add("HG-0906", rule.id, "id", f"rule id '{rule.id}' appears twice")
        rules[rule.id] = rule
    if not rules and not problems.items:
        problems.add("HG-0906", None, "rules", "a pack needs at least one rule")
    problems.raise_if_any()
    return Pack(pack_id, str(data.get("version", "")), title, rules, path)


def load_pack(path: str | Path, onto: Ontology) -> Pack:
    """Load and validate one YAML pack file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        problems = _Problems(str(path))
        problems.add("HG-0906", None, "", f"not valid YAML: {exc}")
        problems.raise_if_any()
    return parse_pack(data, onto, source=str(path), path=path)


def load_packs(onto: Ontology, directory: str | Path = PACKS_DIR) -> dict[str, Pack]:
    """Every pack in a directory (``*.yaml``), by pack id. All packs are checked before any error is
    raised, so one run reports the problems of every pack."""
    packs: dict[str, Pack] = {}
    problems: list[dict[str, Any]] = []
    for path in sorted(Path(directory).glob("*.yaml")):
        try:
            pack = load_pack(path, onto)
        except RulePackInvalid as exc:
            problems += [{**p, "source": str(path)} for p in exc.problems]
            continue
        packs[pack.id] = pack
    if problems:
        lines = "\n".join(f"  {p['code']} {Path(p['source']).name} [{p['rule'] or '-'}] {p['field']}: {p['message']}"
                          for p in problems)
        raise RulePackInvalid(f"{len(problems)} problem(s) in rule packs:\n{lines}", problems=problems)
    return packs
