"""HTTP routes of supervision (业务监管): rules, runs, backtests, alerts and their lifecycle, and a
server-sent-events stream of alert events.

Alert evidence holds personal data (the candidate rows), so reading one alert passes the records
layer (audited); lists carry messages and subject keys only. The caller (viewer) is the actor of
lifecycle changes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from rules import run_tests
from services.access import Permission
from services.access.web import permit
from services.privacy import Viewer
from services.records import Records
from services.supervision import Supervision
from services.webhooks import WebhookHub


class RunRequest(BaseModel):
    pack: str | None = Field(None, description="规则包 pack id (default: the first pack)")
    rules: list[str] | None = Field(None, description="only these rule ids")
    as_of: dt.datetime | None = Field(None, description="评估时点 evaluation time (default: now)")


class BacktestRequest(RunRequest):
    since: dt.datetime | None = Field(None, description="事件时间起 events from (inclusive)")
    until: dt.datetime | None = Field(None, description="事件时间止 events until (exclusive)")
    samples: int = Field(3, ge=0, le=50, description="sample findings per rule")


class Change(BaseModel):
    reason: str | None = Field(None, description="原因 why (required to resolve or mark false positive)")


class SubscriptionRequest(BaseModel):
    url: str = Field(..., description="接收地址 http(s) URL the alerts are POSTed to")
    secret: str = Field(..., min_length=16, description="签名密钥 shared secret for the HMAC-SHA256 signature")
    rules: list[str] | None = Field(None, description="only alerts of these rule ids (default: all)")
    severities: list[str] | None = Field(None, description="only these severities: info, warning, critical")
    description: str = ""


def supervision_router(supervision: Callable[[], Supervision], records: Callable[[], Records],
                       viewer: Callable[[Request], Viewer],
                       webhooks: Callable[[], WebhookHub] | None = None) -> APIRouter:
    router = APIRouter(prefix="/supervision", tags=["supervision"])

    @router.get("/rules", **permit(Permission.SUPERVISE))
    def rules() -> list[dict[str, Any]]:
        """Every loaded rule: id, version, title, severity, legal basis, seed function, query, condition."""
        return [r.summary() for p in supervision().packs.values() for r in p.rules.values()]

    @router.get("/rules/{rule_id}/tests", **permit(Permission.SUPERVISE))
    def rule_tests(rule_id: str) -> list[dict[str, Any]]:
        """Run the test cases shipped with a rule (fixture rows → expected alerts)."""
        sup = supervision()
        rule = sup.rule(rule_id)
        return [r.to_dict() for r in run_tests(sup.pack(rule.pack), [rule_id])]

    @router.post("/run", **permit(Permission.SUPERVISE))
    def run(body: RunRequest, request: Request) -> dict[str, Any]:
        """Evaluate a pack over the graph and write alerts (dedup, suppression, re-evaluation)."""
        return supervision().run(body.pack, rules=body.rules, as_of=body.as_of,
                                 actor=viewer(request).user).to_dict()

    @router.post("/backtest", **permit(Permission.SUPERVISE))
    def backtest(body: BacktestRequest) -> dict[str, Any]:
        """Dry run over a past period: counts per rule and sample evidence; creates no alert."""
        return supervision().backtest(body.pack, rules=body.rules, since=body.since, until=body.until,
                                      as_of=body.as_of, samples=body.samples).to_dict()

    @router.get("/alerts", **permit(Permission.SUPERVISE))
    def alerts(state: str | None = None, severity: str | None = None, rule_id: str | None = None,
               subject: Annotated[str | None, Query(description="a subject as Class:key")] = None,
               limit: int = Query(100, ge=1, le=1000)) -> list[dict[str, Any]]:
        """Alerts, newest first, filtered by state, severity, rule and subject."""
        return supervision().alerts(state=state, severity=severity, rule_id=rule_id, subject=subject, limit=limit)

    @router.get("/alerts/stream", **permit(Permission.SUPERVISE))
    async def stream(request: Request, max_events: int | None = Query(None, ge=1),
                     timeout: float | None = Query(None, gt=0, description="close after this many seconds")
                     ) -> StreamingResponse:
        """Server-sent events: one ``alert`` event per raised, updated or state-changed alert."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        unsubscribe = supervision().subscribe(lambda e: loop.call_soon_threadsafe(queue.put_nowait, e))

        async def events() -> AsyncIterator[str]:
            sent = 0
            deadline = loop.time() + timeout if timeout else None
            try:
                yield ": supervision alert stream\n\n"
                while max_events is None or sent < max_events:
                    wait = None if deadline is None else deadline - loop.time()
                    if wait is not None and wait <= 0:
                        break
                    try:
                        event = await asyncio.wait_for(queue.get(), timeout=min(wait or 15.0, 15.0))
                    except TimeoutError:
                        if await request.is_disconnected():
                            break
                        yield ": keep-alive\n\n"
                        continue
                    sent += 1
                    yield f"id: {event['seq']}\nevent: alert\ndata: {json.dumps(event, ensure_ascii=False)}\n\n"
            finally:
                unsubscribe()

        return StreamingResponse(events(), media_type="text/event-stream")

    @router.get("/alerts/{code}", **permit(Permission.SUPERVISE))
    def alert(code: str, request: Request) -> dict[str, Any]:
        """One alert with evidence (audited read), explanation and history."""
        return records().trace(viewer(request), "supervision:alert", "Alert", code, lambda: supervision().alert(code))

    @router.post("/alerts/{code}/ack", **permit(Permission.SUPERVISE))
    def acknowledge(code: str, body: Change, request: Request) -> dict[str, Any]:
        return supervision().acknowledge(code, viewer(request).user, body.reason or "")

    @router.post("/alerts/{code}/resolve", **permit(Permission.SUPERVISE))
    def resolve(code: str, body: Change, request: Request) -> dict[str, Any]:
        return supervision().resolve(code, viewer(request).user, body.reason or "")

    @router.post("/alerts/{code}/false-positive", **permit(Permission.SUPERVISE))
    def false_positive(code: str, body: Change, request: Request) -> dict[str, Any]:
        return supervision().false_positive(code, viewer(request).user, body.reason or "")

    if webhooks is not None:
        _webhook_routes(router, supervision, webhooks, viewer)
    return router


def _webhook_routes(router: APIRouter, supervision: Callable[[], Supervision], webhooks: Callable[[], WebhookHub],
                    viewer: Callable[[Request], Viewer]) -> None:
    @router.post("/webhooks", status_code=201, **permit(Permission.SUPERVISE))
    def subscribe(body: SubscriptionRequest, request: Request) -> dict[str, Any]:
        """Register a webhook: each new or changed alert passing the filters is POSTed as signed JSON
        (header X-HealthGraph-Signature: t=<unix>,v1=<HMAC-SHA256(secret, "t.body")>)."""
        sup = supervision()  # builds the service, so its events reach the hub from now on
        for rule_id in body.rules or []:
            sup.rule(rule_id)  # an unknown rule id is HG-0908, not a silent never-matching filter
        return webhooks().subscribe(body.url, body.secret, rules=body.rules, severities=body.severities,
                                    actor=viewer(request).user, description=body.description)

    @router.get("/webhooks", **permit(Permission.SUPERVISE))
    def subscriptions() -> list[dict[str, Any]]:
        """Every subscription (secrets masked)."""
        return webhooks().subscriptions()

    @router.get("/webhooks/dead-letters", **permit(Permission.SUPERVISE))
    def dead_letters(subscription: str | None = None) -> list[dict[str, Any]]:
        """Deliveries that failed every attempt, with each attempt's error."""
        return webhooks().dead_letters(subscription)

    @router.post("/webhooks/dead-letters/{letter_id}/redeliver", **permit(Permission.SUPERVISE))
    def redeliver(letter_id: str) -> dict[str, Any]:
        """Take a dead letter off the list and queue it for a fresh round of attempts."""
        return webhooks().redeliver(letter_id)

    @router.get("/webhooks/deliveries", **permit(Permission.SUPERVISE))
    def deliveries() -> dict[str, Any]:
        """The latest delivery attempts (status or error) and how many deliveries are queued."""
        hub = webhooks()
        return {"pending": hub.pending(), "attempts": list(hub.log)}

    @router.get("/webhooks/{sub_id}", **permit(Permission.SUPERVISE))
    def subscription(sub_id: str) -> dict[str, Any]:
        return webhooks().subscription(sub_id)

    @router.delete("/webhooks/{sub_id}", **permit(Permission.SUPERVISE))
    def unsubscribe(sub_id: str) -> dict[str, Any]:
        return webhooks().unsubscribe(sub_id)
