"""Webhook delivery against a real HTTP server on 127.0.0.1: HMAC-SHA256 signatures that verify (and
fail when tampered or stale), retries with backoff until success, dead letters after the last
failure, filters, redelivery, and publishing that never waits for the network."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ontology import errors
from services.webhooks import DELIVERY_HEADER, SIGNATURE_HEADER, WebhookHub, sign, verify_signature

SECRET = "s3cret-for-tests-0123456789"


class Receiver:
    """A local HTTP endpoint that answers each POST with the next status of ``script`` (the last
    one repeats) after ``delay`` seconds, and keeps every request it got."""

    def __init__(self, script: list[int], delay: float = 0.0) -> None:
        self.script, self.delay = list(script), delay
        self.requests: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server naming)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append({"headers": {k.lower(): v for k, v in self.headers.items()}, "body": body, "at": time.monotonic()})
                if receiver.delay:
                    time.sleep(receiver.delay)
                status = receiver.script[min(len(receiver.requests), len(receiver.script)) - 1]
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[WebhookHub]:
    h = WebhookHub(tmp_path / "webhooks.json", attempts=4, backoff=0.05, max_backoff=0.2, timeout=2.0)
    yield h
    h.stop()


def _event(rule: str = "rx_interaction", severity: str = "critical", kind: str = "raised") -> dict[str, Any]:
    return {"seq": 1, "event": kind, "code": f"AL-{rule}", "rule_id": rule, "rule_version": "1.0.0",
            "severity": severity, "state": "new", "message": "药物相互作用", "subjects": ["Prescription:RX1"]}


def test_signed_payload_verifies_and_tampering_or_replay_fails(hub: WebhookHub) -> None:
    with Receiver([204]) as rx:
        sub = hub.subscribe(rx.url, SECRET)
        assert sub["secret"] == "***" and SECRET not in json.dumps(hub.subscriptions())
        assert hub.publish(_event()) == 1
        assert hub.drain(10)
    (req,) = rx.requests
    body, header = req["body"], req["headers"][SIGNATURE_HEADER.lower()]
    assert verify_signature(SECRET, body, header)
    payload = json.loads(body)
    assert payload["type"] == "alert.raised" and payload["alert"]["code"] == "AL-rx_interaction"
    assert payload["subscription"] == sub["id"] and payload["id"] == req["headers"][DELIVERY_HEADER.lower()]
    # The signature is over the timestamp and the exact bytes: any change, another secret or an old
    # timestamp (a replay) fails verification.
    assert not verify_signature(SECRET, body.replace(b"rx_interaction", b"rx_duplicate_therapy"), header)
    assert not verify_signature("another-secret-0123456789", body, header)
    stamp = int(header.split(",")[0].removeprefix("t="))
    assert not verify_signature(SECRET, body, header, now=stamp + 301)
    old = stamp - 3600
    assert not verify_signature(SECRET, body, sign(SECRET, body, old))
    assert verify_signature(SECRET, body, sign(SECRET, body, old), now=old + 10)
    assert not hub.dead_letters()


def test_fails_twice_then_succeeds_on_the_third_try_with_backoff(hub: WebhookHub) -> None:
    with Receiver([500, 503, 200]) as rx:
        hub.subscribe(rx.url, SECRET)
        hub.publish(_event())
        assert hub.drain(10)
    assert len(rx.requests) == 3
    bodies = [json.loads(r["body"]) for r in rx.requests]
    assert [b["attempt"] for b in bodies] == [1, 2, 3]
    assert len({b["id"] for b in bodies}) == 1  # one delivery, retried
    assert all(verify_signature(SECRET, r["body"], r["headers"][SIGNATURE_HEADER.lower()]) for r in rx.requests)
    gaps = [b["at"] - a["at"] for a, b in zip(rx.requests, rx.requests[1:], strict=False)]
    assert gaps[0] >= hub._delay(1) * 0.9 and gaps[1] >= hub._delay(2) * 0.9  # backoff doubles
    assert hub._delay(2) == 2 * hub._delay(1)
    assert not hub.dead_letters()
    assert [a["status"] for a in hub.log] == [500, 503, 200]


def test_always_failing_server_ends_in_the_dead_letters_and_can_be_redelivered(hub: WebhookHub,
                                                                               tmp_path: Path) -> None:
    with Receiver([500]) as rx:
        sub = hub.subscribe(rx.url, SECRET)
        hub.publish(_event(kind="acknowledged"))
        assert hub.drain(10)
        assert len(rx.requests) == hub.attempts  # bounded: no more tries than configured
        (letter,) = hub.dead_letters()
        assert letter["subscription"] == sub["id"] and letter["attempts"] == hub.attempts
        assert letter["type"] == "alert.acknowledged" and letter["last_error"] == "HTTP 500"
        assert len(letter["errors"]) == hub.attempts
        # The dead letters are on disk: another process (the CLI) sees them.
        other = WebhookHub(tmp_path / "webhooks.json")
        assert [d["id"] for d in other.dead_letters()] == [letter["id"]]
        rx.script = [200]
        hub.redeliver(letter["id"])
        assert hub.drain(10)
    assert not hub.dead_letters()
    assert json.loads(rx.requests[-1]["body"])["id"] == letter["id"]
    with pytest.raises(errors.UnknownSubscription):
        hub.redeliver(letter["id"])


def test_refused_connection_is_retried_then_dead_lettered(hub: WebhookHub) -> None:
    with Receiver([200]) as rx:
        url = rx.url  # the port is free again once the server has closed
    hub.subscribe(url, SECRET)
    hub.publish(_event())
    assert hub.drain(10)
    (letter,) = hub.dead_letters()
    assert letter["attempts"] == hub.attempts and "HTTP" not in letter["last_error"]


def test_filters_by_rule_and_severity(hub: WebhookHub) -> None:
    with Receiver([200]) as rx:
        hub.subscribe(rx.url, SECRET, rules=["rx_interaction"])
        hub.subscribe(rx.url, SECRET, severities=["warning"])
        assert hub.publish(_event("rx_interaction", "critical")) == 1
        assert hub.publish(_event("rx_too_many_drugs", "warning")) == 1
        assert hub.publish(_event("expired_unit_in_stock", "critical")) == 0
        assert hub.drain(10)
    got = sorted(json.loads(r["body"])["alert"]["rule_id"] for r in rx.requests)
    assert got == ["rx_interaction", "rx_too_many_drugs"]


def test_publishing_does_not_wait_for_the_receiver(hub: WebhookHub) -> None:
    with Receiver([200], delay=0.5) as rx:
        hub.subscribe(rx.url, SECRET)
        started = time.perf_counter()
        for _ in range(3):
            hub.publish(_event())
        assert time.perf_counter() - started < 0.25 and hub.pending() >= 1
        assert hub.drain(10)
        assert len(rx.requests) == 3


def test_bad_subscriptions_are_refused_with_a_code(hub: WebhookHub) -> None:
    for url, secret, sev in (("ftp://example.org/x", SECRET, None), ("http://127.0.0.1:1/x", "short", None),
                             ("http://127.0.0.1:1/x", SECRET, ["urgent"])):
        with pytest.raises(errors.DeliveryError) as exc:
            hub.subscribe(url, secret, severities=sev)
        assert exc.value.code == "HG-0911"
    with pytest.raises(errors.UnknownSubscription) as missing:
        hub.unsubscribe("WH-none")
    assert missing.value.http_status == 404


def test_the_subscriptions_file_holding_the_secrets_is_private_to_its_owner(hub: WebhookHub) -> None:
    hub.path.with_suffix(".tmp").write_text("{}", encoding="utf-8")  # a leftover with the default mode
    hub.subscribe("http://127.0.0.1:1/hook", SECRET)
    assert hub.path.stat().st_mode & 0o777 == 0o600
    assert SECRET in hub.path.read_text(encoding="utf-8")  # it is the file that signs: the secret is there
    assert all(s["secret"] == "***" for s in hub.subscriptions())  # and never in what the API shows
