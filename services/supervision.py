"""Supervision (业务监管): run rule packs over the graph, keep alerts and their lifecycle, backtest.

Seed functions of the national guide: §45 医务人员职业行为监管, §46 医疗行为监管, §47 传染病,
§50 预防接种, §57 预约挂号, §58 检验检查互认, §64 合理用药, §39 医保协同, §29 血液安全.

Rules are data (``rules/packs/*.yaml``); each names a catalog query that yields candidate rows and
a condition that judges each row. A finding becomes an ``Alert`` node keyed by a code, holding
the rule id and version, severity, subjects, evidence rows and an explanation of which condition
held with which values. Lifecycle: new → acknowledged → resolved | false_positive, each change with
who, when and why in the alert's history. Dedup: while an alert for a rule and dedup key is open,
the finding updates it (last seen, times seen, evidence); once closed, the same finding is
suppressed for the rule's suppression window, then raises a new alert. Re-evaluation: a rule with
``auto_resolve`` closes its open alerts whose condition no longer holds after a full run.

Writes validate rows against the ontology first and run one transaction per operation; every
change is published to subscribers (webhooks, the SSE stream) after it commits. With a signer, every
alert written carries an SM2 signature (``services/security/signing.py``) that every read checks.
"""

from __future__ import annotations

import collections
import datetime as dt
import enum
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from graph import GraphStore, Provenance
from graph.catalog import named_query
from graph.narrowing import Predicate, any_of
from ontology import errors
from ontology.validate import validate_nodes
from rules import PACKS_DIR, Evaluation, Finding, Pack, Rule, evaluate, load_packs
from rules.columnar import naive_local
from rules.narrowing import narrowing
from services.security.gm import SM2KeyPair
from services.security.signing import SIGNATURE_FIELDS, check_node, sign_node

SYSTEM_ACTOR = "system:supervision"


class AlertState(enum.StrEnum):
    """Where an alert is in its lifecycle."""

    NEW = "new"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    FALSE_POSITIVE = "false_positive"


OPEN = frozenset({AlertState.NEW, AlertState.ACKNOWLEDGED})
TRANSITIONS: dict[AlertState, frozenset[AlertState]] = {
    AlertState.NEW: frozenset({AlertState.ACKNOWLEDGED, AlertState.RESOLVED, AlertState.FALSE_POSITIVE}),
    AlertState.ACKNOWLEDGED: frozenset({AlertState.RESOLVED, AlertState.FALSE_POSITIVE}),
    AlertState.RESOLVED: frozenset(),
    AlertState.FALSE_POSITIVE: frozenset(),
}


@dataclass
class RuleRun:
    """What one rule did in a run or backtest."""

    rule_id: str
    version: str
    severity: str
    rows: int = 0
    """Candidate rows in scope: event time inside the rule's effective dates and the run's period."""
    fetched: int = 0
    """Candidate rows read from the graph: ``rows`` and any outside the period that the engine could not
    leave out (see ``GraphStore.query_table(period=...)``). When the run narrows its queries (the default),
    rows on which no rule reading the query can hold stay in the engine and are in neither count."""
    matched: int = 0
    findings: int = 0
    raised: int = 0
    updated: int = 0
    suppressed: int = 0
    closed: int = 0
    skipped: str | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    query_seconds: float = 0.0
    """Of ``seconds``, the time spent fetching the candidate rows (0 when an earlier rule of the run fetched them)."""
    samples: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class RunReport:
    pack: str
    as_of: str
    since: str | None
    until: str | None
    dry_run: bool
    rules: list[RuleRun]
    alerts: list[str] = field(default_factory=list)
    """Codes of alerts raised or updated (empty in a backtest)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def totals(self) -> dict[str, int]:
        keys = ("rows", "matched", "findings", "raised", "updated", "suppressed", "closed")
        return {k: sum(getattr(r, k) for r in self.rules) for k in keys}


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, (dt.date, dt.datetime)) else value


Period = tuple[dt.datetime | None, dt.datetime | None]


def _period(rule: Rule, since: dt.datetime | None, until: dt.datetime | None) -> Period | None:
    """The part of [since, until) the engine can apply: when the rule's event time is the anchor property
    its query is sliced on (every encounter or prescription), the query reads only that period."""
    sliced = named_query(rule.query).slice_by
    if not (since or until) or sliced is None or sliced.column is None or rule.at != sliced.column:
        return None
    return since and naive_local(since), until and naive_local(until)


def _source(rule: Rule, since: dt.datetime | None = None, until: dt.datetime | None = None) -> tuple[Any, ...]:
    """The candidate rows a rule reads: its query, parameters and the period the engine applies."""
    return rule.query, json.dumps(rule.params, sort_keys=True, default=str), _period(rule, since, until)


def narrowing_of(rules: Iterable[Rule]) -> Predicate:
    """What the engine may drop from a query that these rules read: rows on which none of them can hold."""
    return any_of(*(narrowing(r, named_query(r.query).narrowable) for r in rules))


class _SharedRows(dict):
    """Candidate rows fetched in one run, each kept until the last rule reading it is done (at 1M residents
    the per-encounter rows alone take gigabytes), and narrowed to rows one of those rules may hold on."""

    def __init__(self, rules: list[Rule], since: dt.datetime | None = None, until: dt.datetime | None = None,
                 *, narrow: bool = True) -> None:
        super().__init__()
        self.since, self.until = since, until
        by_source: dict[tuple[Any, ...], list[Rule]] = collections.defaultdict(list)
        for r in rules:
            by_source[_source(r, since, until)].append(r)
        self.readers = collections.Counter({source: len(readers) for source, readers in by_source.items()})
        self.narrowings: dict[tuple[Any, ...], Predicate] = {
            source: narrowing_of(readers) if narrow else True for source, readers in by_source.items()}
        self.lookups: dict[str, pa.Table] = {}  # the store's lookup tables, fetched once per run

    def done(self, rule: Rule) -> None:
        source = _source(rule, self.since, self.until)
        self.readers[source] -= 1
        if self.readers[source] <= 0:
            self.pop(source, None)


class Supervision:
    """Rule packs over a graph store: run, backtest, alerts and their lifecycle."""

    def __init__(self, store: GraphStore, packs: dict[str, Pack] | None = None, *,
                 pack_dir: str | Path = PACKS_DIR, clock: Callable[[], dt.datetime] | None = None,
                 signer: SM2KeyPair | None = None, trusted: Iterable[SM2KeyPair] = (), narrow: bool = True) -> None:
        """``signer`` signs every alert written (SM2); alerts read back say whether their signature verifies
        against it or one of the ``trusted`` (older) keys, in ``signature_state``. ``narrow=False`` hands
        every candidate row to the rule engine (for comparison: the findings are the same)."""
        self.store = store
        self.narrow = narrow
        self.signer = signer
        self.trusted = {k.key_id: k for k in (*([signer] if signer else []), *trusted)}
        self.onto = store.onto
        self.packs = packs if packs is not None else load_packs(store.onto, pack_dir)
        self.clock = clock or (lambda: dt.datetime.now().replace(microsecond=0))
        self._lock = threading.RLock()
        self._subscribers: list[Callable[[dict[str, Any]], None]] = []
        self._seq = itertools.count(1)

    # ------------------------------------------------------------------ rules
    def pack(self, pack_id: str) -> Pack:
        try:
            return self.packs[pack_id]
        except KeyError:
            raise errors.UnknownRule(f"no rule pack '{pack_id}' {errors.did_you_mean(pack_id, self.packs)}",
                                     pack=pack_id) from None

    def rule(self, rule_id: str) -> Rule:
        for pack in self.packs.values():
            if rule_id in pack.rules:
                return pack.rules[rule_id]
        every = [r for p in self.packs.values() for r in p.rules]
        raise errors.UnknownRule(f"no rule '{rule_id}' {errors.did_you_mean(rule_id, every)}", rule=rule_id)

    def _rules(self, pack: str | None, rules: list[str] | None) -> tuple[str, list[Rule]]:
        if rules:
            chosen = [self.rule(r) for r in rules]
            return pack or chosen[0].pack, chosen
        p = self.pack(pack or next(iter(self.packs)))
        return p.id, list(p.rules.values())

    def _unmet(self, rule: Rule) -> str | None:
        if "master_index" in rule.requires and not self.store.query("master_index_links")[0]["links"]:
            return "需要先建立主索引 the master person index is not built (healthgraph mpi build)"
        return None

    def evaluate_rule(self, rule: Rule, *, as_of: dt.datetime, since: dt.datetime | None = None,
                      until: dt.datetime | None = None,
                      fetched: dict[tuple[Any, ...], pa.Table] | None = None) -> tuple[Evaluation | None, RuleRun]:
        """Fetch the rule's candidate rows and evaluate them, without writing anything.

        ``fetched`` shares candidate rows between the rules of one run: rules naming the same query and
        parameters (four practice rules read every encounter, four prescription rules every item) fetch once.
        """
        started = time.perf_counter()
        run = RuleRun(rule.id, rule.version, str(rule.severity))
        run.skipped = self._unmet(rule)
        if run.skipped:
            return None, run
        fetched = {} if fetched is None else fetched
        source = _source(rule, since, until)
        if source not in fetched:
            if isinstance(fetched, _SharedRows):
                narrowed, lookups = fetched.narrowings[source], fetched.lookups
            else:
                narrowed, lookups = narrowing_of([rule]) if self.narrow else True, None
            fetched[source] = self.store.query_table(rule.query, period=source[2], narrowing=narrowed,
                                                     lookups=lookups, **rule.params)
            run.query_seconds = round(time.perf_counter() - started, 4)
        run.fetched = fetched[source].num_rows
        ev = evaluate(rule, fetched[source], as_of=as_of, since=since, until=until)
        run.rows, run.matched, run.findings, run.errors = ev.rows, ev.matched, len(ev.findings), ev.errors
        run.seconds = round(time.perf_counter() - started, 4)
        return ev, run

    # ------------------------------------------------------------------ run and backtest
    def run(self, pack: str | None = None, *, rules: list[str] | None = None, as_of: dt.datetime | None = None,
            actor: str = SYSTEM_ACTOR) -> RunReport:
        """Evaluate a pack (or some rules) over the whole graph and write alerts: raise new ones,
        update open ones (dedup), suppress recently closed ones, and close open alerts of
        ``auto_resolve`` rules whose condition no longer holds."""
        as_of = as_of or self.clock()
        pack_id, chosen = self._rules(pack, rules)
        report = RunReport(pack_id, as_of.isoformat(), None, None, False, [])
        fetched = _SharedRows(chosen, narrow=self.narrow)  # candidate queries never read the alerts written here
        for rule in chosen:
            ev, run = self.evaluate_rule(rule, as_of=as_of, fetched=fetched)
            fetched.done(rule)
            if ev is not None:
                started = time.perf_counter()
                report.alerts += self._apply(rule, ev, run, actor)
                run.seconds = round(run.seconds + time.perf_counter() - started, 4)
            report.rules.append(run)
        return report

    def backtest(self, pack: str | None = None, *, rules: list[str] | None = None, since: dt.datetime | None = None,
                 until: dt.datetime | None = None, as_of: dt.datetime | None = None, samples: int = 3) -> RunReport:
        """Run rules over a past period (event times in [since, until)) without creating alerts:
        counts per rule and a few sample findings with their evidence and explanation."""
        as_of = as_of or until or self.clock()
        pack_id, chosen = self._rules(pack, rules)
        report = RunReport(pack_id, as_of.isoformat(), _iso(since), _iso(until), True, [])
        fetched = _SharedRows(chosen, since, until, narrow=self.narrow)
        for rule in chosen:
            ev, run = self.evaluate_rule(rule, as_of=as_of, since=since, until=until, fetched=fetched)
            fetched.done(rule)
            if ev is not None:
                run.samples = [self._sample(f) for f in ev.findings[:samples]]
            report.rules.append(run)
        return report

    @staticmethod
    def _sample(f: Finding) -> dict[str, Any]:
        return {"dedup_key": f.dedup_key, "subjects": f.subjects, "message": f.message("zh"),
                "message_en": f.message("en"), "explanation": f.explanation(), "evidence": f.evidence()}

    def _apply(self, rule: Rule, ev: Evaluation, run: RuleRun, actor: str) -> list[str]:
        now = self.clock()
        with self._lock:
            existing: dict[str, dict[str, Any]] = {}
            for a in self.store.query("alerts_of_rule", rule_id=rule.id):
                existing[a["dedup_key"]] = a  # ordered by time: the latest alert of each key wins
            rows, events = [], []
            found = set()
            window = dt.timedelta(days=rule.suppression_days)
            for f in ev.findings:
                found.add(f.dedup_key)
                prior = existing.get(f.dedup_key)
                if prior and prior["alert_state"] in OPEN:
                    row = {**self._node(prior["code"]), **self._content(rule, f), "last_seen": now}
                    row["occurrences"] = int(row.get("occurrences") or 0) + 1
                    rows.append(row)
                    run.updated += 1
                    events.append(("updated", row))
                elif prior and prior.get("closed_at") and now - prior["closed_at"] < window:
                    row = {**self._node(prior["code"]), "last_seen": now}
                    row["occurrences"] = int(row.get("occurrences") or 0) + 1
                    rows.append(row)
                    run.suppressed += 1
                else:
                    code = f"AL-{f.digest}-{now:%Y%m%d%H%M%S}"
                    row = {"key": code, "class": "Alert", "code": code, "alert_state": str(AlertState.NEW),
                           "occurred_at": now, "last_seen": now, "occurrences": 1,
                           "alert_history": json.dumps([{"to": "new", "by": actor, "at": now.isoformat(),
                                                         "why": "规则命中 rule condition held"}], ensure_ascii=False),
                           **self._content(rule, f)}
                    rows.append(row)
                    run.raised += 1
                    events.append(("raised", row))
            if rule.auto_resolve:
                for key, prior in existing.items():
                    if key not in found and prior["alert_state"] in OPEN:
                        row = self._transition(self._node(prior["code"]), AlertState.RESOLVED, SYSTEM_ACTOR,
                                               "复核时条件不再成立 condition no longer holds on re-evaluation", now)
                        rows.append(row)
                        run.closed += 1
                        events.append(("resolved", row))
            if rows:
                with self.store.transaction():
                    self._write(rows, now)
        for kind, row in events:
            self._emit(kind, row)
        return [r["code"] for r in rows]

    @staticmethod
    def _content(rule: Rule, f: Finding) -> dict[str, Any]:
        return {"rule_id": rule.id, "rule_version": rule.version, "pack_id": rule.pack, "severity": str(rule.severity),
                "message": f.message("zh"), "message_en": f.message("en"), "legal_basis": rule.basis_text,
                "dedup_key": f.dedup_key, "alert_subjects": f.subjects, "event_at": f.at,
                "alert_evidence": json.dumps(f.evidence(), ensure_ascii=False, default=str),
                "explanation": json.dumps(f.explanation(), ensure_ascii=False, default=str)}

    def _write(self, rows: list[dict[str, Any]], now: dt.datetime) -> None:
        frame = pd.DataFrame(rows).drop(columns=["batch_id", "content_hash", *SIGNATURE_FIELDS], errors="ignore")
        checked = validate_nodes(self.onto, "Alert", frame)
        if checked.rejected:
            bad = checked.rejected[0]
            raise errors.ValidationError(f"Alert {bad.record.get('key')}: " + "; ".join(bad.messages))
        accepted = checked.accepted
        if self.signer is not None:
            signatures = [sign_node(r, self.signer) for r in accepted.to_dict("records")]
            accepted = accepted.assign(**{f: [s[f] for s in signatures] for f in SIGNATURE_FIELDS})
        self.store.upsert_nodes("Alert", accepted, Provenance("supervision", f"supervision:{now:%Y%m%d}", now))

    def _node(self, code: str) -> dict[str, Any]:
        try:
            return self.store.get("Alert", code)
        except errors.NodeNotFound:
            raise errors.UnknownAlert(f"no alert with code {code!r}", code=code) from None

    # ------------------------------------------------------------------ lifecycle
    def _transition(self, node: dict[str, Any], to: AlertState, actor: str, reason: str,
                    now: dt.datetime) -> dict[str, Any]:
        state = AlertState(node["alert_state"])
        if to not in TRANSITIONS[state]:
            allowed = ", ".join(sorted(TRANSITIONS[state])) or "none (closed)"
            raise errors.AlertTransitionNotAllowed(
                f"alert {node['code']} is {state}: cannot move to {to} (allowed: {allowed})",
                code=node["code"], state=str(state), to=str(to))
        history = json.loads(node.get("alert_history") or "[]")
        history.append({"from": str(state), "to": str(to), "by": actor, "at": now.isoformat(), "why": reason})
        row = {**node, "alert_state": str(to), "alert_history": json.dumps(history, ensure_ascii=False),
               "reason": reason}
        if to == AlertState.ACKNOWLEDGED:
            row.update(acknowledged_by=actor, acknowledged_at=now)
        else:
            row.update(closed_by=actor, closed_at=now)
        return row

    def _change(self, code: str, to: AlertState, actor: str, reason: str) -> dict[str, Any]:
        if not actor or not actor.strip():
            raise errors.AlertTransitionNotAllowed("an alert change needs who makes it (actor)", code=code)
        if to != AlertState.ACKNOWLEDGED and not (reason or "").strip():
            raise errors.AlertTransitionNotAllowed(f"closing alert {code} as {to} needs a reason", code=code)
        now = self.clock()
        with self._lock:
            row = self._transition(self._node(code), to, actor, reason or "", now)
            with self.store.transaction():
                self._write([row], now)
        self._emit(str(to), row)
        return self.alert(code)

    def acknowledge(self, code: str, actor: str, note: str = "") -> dict[str, Any]:
        """new → acknowledged: someone is looking at it."""
        return self._change(code, AlertState.ACKNOWLEDGED, actor, note)

    def resolve(self, code: str, actor: str, reason: str) -> dict[str, Any]:
        """Close an alert as dealt with (the reason says how)."""
        return self._change(code, AlertState.RESOLVED, actor, reason)

    def false_positive(self, code: str, actor: str, reason: str) -> dict[str, Any]:
        """Close an alert as wrong: the finding does not breach the rule (the reason says why)."""
        return self._change(code, AlertState.FALSE_POSITIVE, actor, reason)

    # ------------------------------------------------------------------ reading
    def alert(self, code: str) -> dict[str, Any]:
        """One alert with its evidence, explanation and history decoded, and whether its SM2 signature verifies
        (``signature_state``: valid, invalid, unsigned or unknown_key)."""
        node = self._node(code)
        node["signature_state"] = str(check_node(node, self.trusted))
        for name in ("alert_evidence", "explanation", "alert_history"):
            if node.get(name):
                node[name] = json.loads(node[name])
        return {k: _iso(v) for k, v in node.items()}

    def alerts(self, *, state: str | None = None, severity: str | None = None, rule_id: str | None = None,
               subject: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Alerts, newest first, filtered by state, severity, rule and subject (``Class:key``)."""
        if state and state not in {s.value for s in AlertState}:
            raise errors.QueryParameterError(f"unknown alert state '{state}' "
                                             f"{errors.did_you_mean(state, [s.value for s in AlertState])}")
        rows = self.store.query("alerts", state=state or "", severity=severity or "", rule_id=rule_id or "",
                                subject=subject or "", limit=int(limit))
        for r in rows:
            r["signature_state"] = str(check_node(self._node(r["code"]), self.trusted))
        return [{k: _iso(v) for k, v in r.items()} for r in rows]

    # ------------------------------------------------------------------ events
    def subscribe(self, callback: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        """Call ``callback`` with each alert event after it commits; returns an unsubscribe function."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    def _emit(self, kind: str, row: dict[str, Any]) -> None:
        event = {"seq": next(self._seq), "event": kind, "code": row["code"], "rule_id": row.get("rule_id"),
                 "rule_version": row.get("rule_version"), "severity": row.get("severity"),
                 "state": row.get("alert_state"), "message": row.get("message"), "message_en": row.get("message_en"),
                 "subjects": row.get("alert_subjects"), "at": self.clock().isoformat()}
        for callback in list(self._subscribers):
            callback(event)
