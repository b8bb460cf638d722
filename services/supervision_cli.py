"""``healthgraph rules …`` and ``healthgraph alerts …``: supervision rule packs and alerts.

Thin wrappers over ``rules`` and ``services.supervision``; lifecycle changes are recorded with the
operating-system user as actor.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ontology.errors import HealthGraphError
from rules import PACKS_DIR

rules_app = typer.Typer(help="监管规则 Supervision rule packs: check, test, run, backtest.", no_args_is_help=True)
alerts_app = typer.Typer(help="监管预警 Alerts: list, show, acknowledge, resolve, false positive.",
                         no_args_is_help=True)
console = Console()
PackDir = Annotated[Path, typer.Option(help="folder of *.yaml rule packs")]
PackOpt = Annotated[str | None, typer.Option(help="规则包 pack id")]
RuleOpt = Annotated[list[str] | None, typer.Option("--rule", help="only this rule (repeatable)")]
When = Annotated[str | None, typer.Option(help="ISO date or date-time")]


def _fail(exc: HealthGraphError) -> None:
    console.print(f"[bold red]{exc.code}[/] {exc.title}: {exc.message}")
    raise typer.Exit(2) from None


def _time(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def _with_supervision(fn: Callable[[Any], Any], pack_dir: Path = PACKS_DIR) -> Any:
    """Run ``fn`` with a supervision service; alert events go to the webhook subscriptions, and the
    command waits (bounded by the retry policy) until each delivery succeeded or is a dead letter."""
    from services.settings import Settings
    from services.supervision import Supervision

    settings = Settings()
    store = settings.open_graph()
    hub = settings.webhooks()
    try:
        sup = Supervision(store, pack_dir=pack_dir, signer=settings.platform_key())
        sup.subscribe(hub.publish)
        return fn(sup)
    except HealthGraphError as exc:
        _fail(exc)
    finally:
        if hub.pending():
            console.print(f"推送中 delivering {hub.pending()} webhook(s)…")
            if not hub.drain(hub.worst_case_seconds()):
                console.print("[yellow]some webhook deliveries did not finish[/]")
        hub.stop()
        store.close()


def _show(result: Any) -> None:
    console.print_json(json.dumps(result, ensure_ascii=False, default=str))


@rules_app.command("check")
def check(pack_dir: PackDir = PACKS_DIR) -> None:
    """校验规则包 Validate every pack; every problem is listed with its code (HG-09xx)."""
    from ontology.model import load_ontology
    from rules import load_packs

    try:
        packs = load_packs(load_ontology(), pack_dir)
    except HealthGraphError as exc:
        _fail(exc)
    for pack in packs.values():
        console.print(f"✓ {pack.id} {pack.version}: {len(pack.rules)} rules")


@rules_app.command("test")
def test(pack_dir: PackDir = PACKS_DIR, rule: RuleOpt = None) -> None:
    """运行规则自带测试 Run the test cases shipped with each rule."""
    from ontology.model import load_ontology
    from rules import load_packs, run_tests

    try:
        packs = load_packs(load_ontology(), pack_dir)
    except HealthGraphError as exc:
        _fail(exc)
    results = [r for p in packs.values() for r in run_tests(p, [x for x in rule or [] if x in p.rules] or None)
               if not rule or r.rule in rule]
    for r in results:
        console.print(f"{'✓' if r.passed else '[red]✗[/]'} {r.rule} · {r.case}"
                      + ("" if r.passed else f" expected {r.expected} got {r.got} {r.errors or ''}"))
    failed = sum(not r.passed for r in results)
    console.print(f"{len(results) - failed} passed, {failed} failed")
    if failed:
        raise typer.Exit(1)


def _report(report: Any) -> None:
    table = Table("rule", "version", "rows", "findings", "raised", "updated", "suppressed", "closed", "s", "note")
    for r in report.rules:
        table.add_row(r.rule_id, r.version, f"{r.rows:,}", str(r.findings), str(r.raised), str(r.updated),
                      str(r.suppressed), str(r.closed), f"{r.seconds:.2f}",
                      r.skipped or (f"{len(r.errors)} rows not evaluable" if r.errors else ""))
    console.print(table)
    console.print(report.totals)


@rules_app.command("run")
def run(pack: PackOpt = None, rule: RuleOpt = None, as_of: When = None, pack_dir: PackDir = PACKS_DIR) -> None:
    """执行规则 Evaluate a pack over the graph and write alerts."""
    _with_supervision(lambda s: _report(s.run(pack, rules=rule, as_of=_time(as_of),
                                               actor=f"cli:{getpass.getuser()}")), pack_dir)


@rules_app.command("backtest")
def backtest(pack: PackOpt = None, rule: RuleOpt = None, since: When = None, until: When = None,
             samples: int = 2, json_out: Annotated[bool, typer.Option("--json")] = False,
             pack_dir: PackDir = PACKS_DIR) -> None:
    """回测 Run rules over a past period without creating alerts: counts and sample evidence."""
    def go(s: Any) -> None:
        report = s.backtest(pack, rules=rule, since=_time(since), until=_time(until), samples=samples)
        _show(report.to_dict()) if json_out else _report(report)
    _with_supervision(go, pack_dir)


@alerts_app.command("list")
def list_alerts(state: str | None = None, severity: str | None = None, rule: str | None = None,
                subject: str | None = None, limit: int = 50) -> None:
    """预警列表 Alerts, newest first."""
    rows = _with_supervision(lambda s: s.alerts(state=state, severity=severity, rule_id=rule, subject=subject,
                                                limit=limit))
    table = Table("code", "rule", "severity", "state", "raised", "签名 signature", "message")
    for a in rows:
        signature = a["signature_state"] if a["signature_state"] == "valid" else f"[bold red]{a['signature_state']}[/]"
        table.add_row(a["code"], a["rule_id"], a["severity"], a["state"], str(a["raised_at"]), signature, a["message"])
    console.print(table)


@alerts_app.command("show")
def show(code: str) -> None:
    """预警详情 One alert with evidence, explanation and history."""
    _show(_with_supervision(lambda s: s.alert(code)))


Reason = Annotated[str, typer.Option(help="原因 why (kept in the alert's history)")]


@alerts_app.command("ack")
def ack(code: str, note: Annotated[str, typer.Option()] = "") -> None:
    """确认 Acknowledge an alert."""
    _show(_with_supervision(lambda s: s.acknowledge(code, f"cli:{getpass.getuser()}", note)))


@alerts_app.command("resolve")
def resolve(code: str, reason: Reason,
            false_positive: Annotated[bool, typer.Option("--false-positive", help="误报 close as wrong")] = False
            ) -> None:
    """关闭 Resolve an alert (or close it as a false positive)."""
    actor = f"cli:{getpass.getuser()}"
    _show(_with_supervision(lambda s: (s.false_positive if false_positive else s.resolve)(code, actor, reason)))


# ---------------------------------------------------------------------- webhooks
webhooks_app = typer.Typer(help="预警推送 Webhook subscriptions: add, list, remove, dead letters, redeliver.",
                           no_args_is_help=True)
alerts_app.add_typer(webhooks_app, name="webhooks")


def _hub() -> Any:
    from services.settings import Settings

    return Settings().webhooks()


def _with_hub(fn: Callable[[Any], Any]) -> Any:
    hub = _hub()
    try:
        return fn(hub)
    except HealthGraphError as exc:
        _fail(exc)
    finally:
        hub.stop()


@webhooks_app.command("add")
def webhook_add(url: str,
                secret: Annotated[str, typer.Option(envvar="HEALTHGRAPH_WEBHOOK_SECRET",
                                                    help="签名密钥 shared secret (≥ 16 characters)")],
                rule: RuleOpt = None,
                severity: Annotated[list[str] | None, typer.Option("--severity", help="info, warning or critical "
                                                                   "(repeatable)")] = None,
                description: str = "") -> None:
    """订阅 Register a webhook for alert events (HMAC-SHA256 signed JSON)."""
    from ontology.model import load_ontology
    from rules import load_packs

    every = {r for p in load_packs(load_ontology()).values() for r in p.rules}
    for r in rule or []:
        if r not in every:
            from ontology.errors import UnknownRule, did_you_mean

            _fail(UnknownRule(f"no rule '{r}' {did_you_mean(r, every)}", rule=r))
    _show(_with_hub(lambda h: h.subscribe(url, secret, rules=rule, severities=severity,
                                          actor=f"cli:{getpass.getuser()}", description=description)))


@webhooks_app.command("list")
def webhook_list(json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """订阅列表 Webhook subscriptions (secrets masked)."""
    subs = _with_hub(lambda h: h.subscriptions())
    if json_out:
        _show(subs)
        return
    table = Table("id", "url", "rules", "severities", "created")
    for s in subs:
        table.add_row(s["id"], s["url"], ", ".join(s["rules"]) or "*", ", ".join(s["severities"]) or "*",
                      s["created_at"])
    console.print(table)


@webhooks_app.command("remove")
def webhook_remove(sub_id: str) -> None:
    """取消订阅 Remove a webhook subscription."""
    _show(_with_hub(lambda h: h.unsubscribe(sub_id)))


@webhooks_app.command("dead-letters")
def webhook_dead_letters(subscription: str | None = None,
                         json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """死信 Deliveries that failed every attempt."""
    letters = _with_hub(lambda h: h.dead_letters(subscription))
    if json_out:
        _show(letters)
        return
    table = Table("id", "subscription", "type", "alert", "attempts", "last error", "failed")
    for d in letters:
        table.add_row(d["id"], d["subscription"], d["type"], str(d["alert"].get("code")), str(d["attempts"]),
                      d["last_error"], d["failed_at"])
    console.print(table)


@webhooks_app.command("redeliver")
def webhook_redeliver(letter_id: str) -> None:
    """重新推送 Queue a dead letter again and wait for the outcome."""
    def go(h: Any) -> Any:
        h.redeliver(letter_id)
        h.drain(h.worst_case_seconds())
        again = [d for d in h.dead_letters() if d["id"] == letter_id]
        return {"id": letter_id, "delivered": not again, "errors": again[0]["errors"] if again else []}
    _show(_with_hub(go))
