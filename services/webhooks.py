"""Webhook subscriptions for supervision alerts (预警推送): HMAC-signed JSON, retries with bounded
exponential backoff, and a dead-letter list.

A subscription names a URL, a shared secret and optional filters (rule ids, severities). Every
alert event the supervision service publishes (raised, updated, acknowledged, resolved,
false_positive) that passes a subscription's filters is POSTed to its URL as JSON::

    {"id": "WD-…", "type": "alert.raised", "created_at": "2026-01-01T00:00:00+08:00",
     "subscription": "WH-…", "attempt": 1, "alert": {…the event…}}

with the headers

    X-HealthGraph-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
    X-HealthGraph-Event: alert.raised
    X-HealthGraph-Delivery: WD-…            (the same id on every retry of one delivery)

The receiver recomputes the HMAC over the timestamp and the raw body with its copy of the secret
and rejects timestamps older than its tolerance (``verify_signature``, default 5 minutes), so a
captured request cannot be replayed later. The scheme follows the timestamped signatures of
Stripe and Standard Webhooks; HMAC per RFC 2104, SHA-256 per FIPS 180-4.

Delivery never blocks the rule run: ``publish`` only queues; one worker thread sends. A 2xx
response is success; anything else (an error status, a refused connection, a timeout) is retried
after ``backoff × 2^(n-1)`` seconds (capped at ``max_backoff``) until ``attempts`` tries in all,
then the delivery goes to the dead-letter list with every attempt's error. Dead letters can be
re-queued (``redeliver``).

Subscriptions and dead letters live in one JSON file under the settings' data dir
(``<data_dir>/webhooks.json``), shared by the server and the CLI: the file is re-read when it
changes, so a subscription added with the CLI reaches a running server. The secret is kept there
(it is needed to sign) and never returned by the API or CLI after the subscription is created.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import heapq
import hmac
import itertools
import json
import os
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ontology.errors import DeliveryError, UnknownSubscription

SIGNATURE_HEADER = "X-HealthGraph-Signature"
EVENT_HEADER = "X-HealthGraph-Event"
DELIVERY_HEADER = "X-HealthGraph-Delivery"
TOLERANCE_SECONDS = 300
SEVERITIES = ("info", "warning", "critical")
USER_AGENT = "HealthGraph-Webhooks/1"

Sender = Callable[[str, bytes, dict[str, str], float], int]
"""``sender(url, body, headers, timeout) -> HTTP status``; raises OSError on connection failures."""


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The signature header value for a body sent at ``timestamp`` (unix seconds)."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(secret: str, body: bytes, header: str, *, tolerance: int = TOLERANCE_SECONDS,
                     now: float | None = None) -> bool:
    """True when ``header`` signs ``body`` with ``secret`` and its timestamp is within ``tolerance``
    seconds of ``now`` (receivers use this; it is constant-time in the MAC comparison)."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def urllib_sender(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """POST with the standard library (no HTTP client is a runtime dependency)."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (http/https checked)
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return int(exc.code)


def _now_iso() -> str:
    return dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).replace(microsecond=0).isoformat()


class WebhookHub:
    """Subscriptions, a delivery queue with one worker thread, and the dead-letter list."""

    def __init__(self, path: str | Path, *, attempts: int = 5, backoff: float = 1.0, max_backoff: float = 60.0,
                 timeout: float = 5.0, sender: Sender | None = None, recent: int = 200) -> None:
        if attempts < 1:
            raise DeliveryError("attempts must be at least 1", attempts=attempts)
        self.path = Path(path)
        self.attempts, self.backoff, self.max_backoff, self.timeout = attempts, backoff, max_backoff, timeout
        self.sender = sender or urllib_sender
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._queue: list[tuple[float, int, dict[str, Any]]] = []
        self._seq = itertools.count()
        self._in_flight = 0
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._mtime: float | None = None
        self._data: dict[str, Any] = {"subscriptions": [], "dead_letters": []}
        self.log: deque[dict[str, Any]] = deque(maxlen=recent)
        """The latest delivery attempts (in memory): id, subscription, attempt, status or error."""

    # ------------------------------------------------------------------ storage
    def _read(self) -> dict[str, Any]:
        with self._lock:
            try:
                mtime = self.path.stat().st_mtime_ns
            except FileNotFoundError:
                return self._data
            if mtime != self._mtime:
                self._data = json.loads(self.path.read_text(encoding="utf-8"))
                self._mtime = mtime
            return self._data

    def _save(self) -> None:
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            # The subscriptions carry their signing secrets: readable by the platform's own user only.
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                os.fchmod(out.fileno(), 0o600)  # a leftover .tmp may have been created with other modes
                out.write(json.dumps(self._data, ensure_ascii=False, indent=1))
            os.replace(tmp, self.path)
            self._mtime = self.path.stat().st_mtime_ns

    @staticmethod
    def _public(sub: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in sub.items() if k != "secret"} | {"secret": "***"}

    # ------------------------------------------------------------------ subscriptions
    def subscribe(self, url: str, secret: str, *, rules: list[str] | None = None,
                  severities: list[str] | None = None, actor: str = "", description: str = "") -> dict[str, Any]:
        """Register a subscription; returns it (the secret masked)."""
        parsed = urlparse(url or "")
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise DeliveryError(f"订阅地址须为 http(s) URL: a subscription needs an http or https URL, got {url!r}",
                                url=url)
        if not secret or len(secret) < 16:
            raise DeliveryError("签名密钥至少 16 个字符: the signing secret needs at least 16 characters")
        bad = [s for s in severities or [] if s not in SEVERITIES]
        if bad:
            raise DeliveryError(f"unknown severity {bad[0]!r} (valid: {', '.join(SEVERITIES)})", severities=bad)
        sub = {"id": f"WH-{secrets.token_hex(6)}", "url": url, "secret": secret, "rules": sorted(set(rules or [])),
               "severities": sorted(set(severities or [])), "description": description, "active": True,
               "created_at": _now_iso(), "created_by": actor}
        with self._lock:
            self._read()["subscriptions"].append(sub)
            self._save()
        return self._public(sub)

    def subscriptions(self) -> list[dict[str, Any]]:
        return [self._public(s) for s in self._read()["subscriptions"]]

    def subscription(self, sub_id: str) -> dict[str, Any]:
        return self._public(self._find(sub_id))

    def _find(self, sub_id: str) -> dict[str, Any]:
        for s in self._read()["subscriptions"]:
            if s["id"] == sub_id:
                return s
        raise UnknownSubscription(f"没有此订阅 no webhook subscription {sub_id!r}", id=sub_id)

    def unsubscribe(self, sub_id: str) -> dict[str, Any]:
        with self._lock:
            sub = self._find(sub_id)
            self._data["subscriptions"].remove(sub)
            self._save()
        return self._public(sub)

    @staticmethod
    def matches(sub: dict[str, Any], event: dict[str, Any]) -> bool:
        return bool(sub.get("active", True)) and (not sub["rules"] or event.get("rule_id") in sub["rules"]) and \
            (not sub["severities"] or event.get("severity") in sub["severities"])

    # ------------------------------------------------------------------ delivery
    def publish(self, event: dict[str, Any]) -> int:
        """Queue ``event`` for every matching subscription; returns how many deliveries were queued.
        Never blocks on the network (a supervision subscriber callback)."""
        subs = [s for s in self._read()["subscriptions"] if self.matches(s, event)]
        if not subs:
            return 0
        with self._lock:
            for s in subs:
                job = {"id": f"WD-{secrets.token_hex(8)}", "subscription": s["id"],
                       "type": f"alert.{event.get('event', 'changed')}", "event": event, "attempt": 0,
                       "errors": [], "queued_at": _now_iso()}
                heapq.heappush(self._queue, (time.monotonic(), next(self._seq), job))
            self._wake.notify_all()
        self.start()
        return len(subs)

    def start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stopping = False
                self._thread = threading.Thread(target=self._work, name="healthgraph-webhooks", daemon=True)
                self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._lock:
            self._stopping = True
            self._wake.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until every queued delivery has succeeded or gone to the dead letters (True), or
        ``timeout`` seconds have passed (False)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._queue or self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._wake.wait(min(left, 0.05))
        return True

    def pending(self) -> int:
        with self._lock:
            return len(self._queue) + self._in_flight

    def worst_case_seconds(self) -> float:
        """How long one delivery can take from first try to dead letter (every wait and timeout)."""
        return sum(self._delay(n) for n in range(1, self.attempts)) + self.attempts * self.timeout + 1

    def _delay(self, attempt: int) -> float:
        return min(self.backoff * 2 ** (attempt - 1), self.max_backoff)

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._stopping and (not self._queue or self._queue[0][0] > time.monotonic()):
                    self._wake.wait(None if not self._queue else max(self._queue[0][0] - time.monotonic(), 0.001))
                if self._stopping:
                    return
                _, _, job = heapq.heappop(self._queue)
                self._in_flight += 1
            try:
                self._attempt(job)
            finally:
                with self._lock:
                    self._in_flight -= 1
                    self._wake.notify_all()

    def _attempt(self, job: dict[str, Any]) -> None:
        try:
            sub = self._find(job["subscription"])
        except UnknownSubscription:
            return  # unsubscribed meanwhile: nothing to deliver to
        job["attempt"] += 1
        timestamp = int(time.time())
        body = json.dumps({"id": job["id"], "type": job["type"], "created_at": job["queued_at"],
                           "subscription": sub["id"], "attempt": job["attempt"], "alert": job["event"]},
                          ensure_ascii=False, sort_keys=True, default=str).encode("utf-8")
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT,
                   SIGNATURE_HEADER: sign(sub["secret"], body, timestamp), EVENT_HEADER: job["type"],
                   DELIVERY_HEADER: job["id"]}
        error: str | None = None
        status: int | None = None
        try:
            status = self.sender(sub["url"], body, headers, self.timeout)
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except (OSError, ValueError) as exc:  # refused, timed out, DNS, bad URL
            error = f"{type(exc).__name__}: {exc}"
        self.log.append({"delivery": job["id"], "subscription": sub["id"], "attempt": job["attempt"],
                         "status": status, "error": error, "at": _now_iso()})
        if error is None:
            return
        job["errors"].append({"attempt": job["attempt"], "error": error, "at": _now_iso()})
        with self._lock:
            if job["attempt"] < self.attempts:
                due = time.monotonic() + self._delay(job["attempt"])
                heapq.heappush(self._queue, (due, next(self._seq), job))
                return
            self._read()["dead_letters"].append({
                "id": job["id"], "subscription": sub["id"], "url": sub["url"], "type": job["type"],
                "alert": job["event"], "attempts": job["attempt"], "errors": job["errors"],
                "last_error": error, "queued_at": job["queued_at"], "failed_at": _now_iso()})
            self._save()

    # ------------------------------------------------------------------ dead letters
    def dead_letters(self, subscription: str | None = None) -> list[dict[str, Any]]:
        return [d for d in self._read()["dead_letters"] if not subscription or d["subscription"] == subscription]

    def redeliver(self, dead_letter_id: str) -> dict[str, Any]:
        """Take a dead letter off the list and queue it again (a fresh round of attempts)."""
        with self._lock:
            letters = self._read()["dead_letters"]
            letter = next((d for d in letters if d["id"] == dead_letter_id), None)
            if letter is None:
                raise UnknownSubscription(f"没有此死信 no dead letter {dead_letter_id!r}", id=dead_letter_id)
            self._find(letter["subscription"])
            letters.remove(letter)
            self._save()
            job = {"id": letter["id"], "subscription": letter["subscription"], "type": letter["type"],
                   "event": letter["alert"], "attempt": 0, "errors": [], "queued_at": letter["queued_at"]}
            heapq.heappush(self._queue, (time.monotonic(), next(self._seq), job))
            self._wake.notify_all()
        self.start()
        return letter
