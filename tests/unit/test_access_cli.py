"""``healthgraph access …`` through its Typer app."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.access import AccessStore
from services.access_cli import access_app


@pytest.fixture()
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AccessStore:
    monkeypatch.setenv("HEALTHGRAPH_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HEALTHGRAPH_NEW_PASSWORD", "correct horse battery staple")
    monkeypatch.setenv("HEALTHGRAPH_NEW_SECRET", "node-client-secret-0123456789")
    return AccessStore(tmp_path / "access", lambda: 0.0)


def test_users_locks_consent_and_clients(env: AccessStore) -> None:
    run = CliRunner().invoke
    done = run(access_app, ["user", "add", "dr-wang", "--role", "clinician", "--institution", "U1", "--label", "HIV"])
    assert done.exit_code == 0, done.output
    assert env.user("dr-wang")["labels"] == ["HIV"] and "otpauth://" not in done.output
    admin = run(access_app, ["user", "add", "sec", "--role", "security_admin"])
    assert admin.exit_code == 0 and "otpauth://totp/" in admin.output
    both = run(access_app, ["user", "add", "root", "--role", "system_admin", "--role", "audit_admin"])
    assert both.exit_code == 2 and "HG-1309" in both.output
    assert run(access_app, ["user", "add", "x", "--role", "clinician", "--label", "Nope"]).exit_code == 2
    assert run(access_app, ["user", "lock", "dr-wang"]).exit_code == 0 and env.user("dr-wang")["locked"]
    assert run(access_app, ["user", "unlock", "dr-wang"]).exit_code == 0 and not env.user("dr-wang")["locked"]
    assert run(access_app, ["consent", "grant", "R1", "--institution", "U1", "--category", "diagnoses"]).exit_code == 0
    assert env.consented("R1", "U1", "treatment", "diagnoses")
    assert run(access_app, ["consent", "withdraw", "R1", "--institution", "U1", "--category", "diagnoses"]).exit_code == 0
    assert not env.consented("R1", "U1", "treatment", "diagnoses")
    assert run(access_app, ["client", "add", "his-1", "--institution", "U1"]).exit_code == 0
    assert env.client("his-1")["role"] == "node"


def test_every_change_is_a_signed_key_operation_in_the_audit(env: AccessStore, tmp_path: Path) -> None:
    from services.security import iter_events
    from services.settings import Settings

    run = CliRunner().invoke
    assert run(access_app, ["user", "add", "dr-li", "--role", "clinician", "--institution", "U1"]).exit_code == 0
    assert run(access_app, ["user", "lock", "dr-li"]).exit_code == 0
    assert run(access_app, ["consent", "grant", "R1", "--institution", "U1"]).exit_code == 0
    refused = run(access_app, ["user", "add", "root", "--role", "system_admin", "--role", "audit_admin"])
    assert refused.exit_code == 2
    settings = Settings()
    events = list(iter_events(settings.audit_path))
    assert [e["action"] for e in events] == ["access:user:add", "access:user:lock", "consent:grant"]
    assert events[0]["entity"] == "User/dr-li" and events[0]["roles"] == ["clinician"]
    assert all(e["opsig"]["signer"] == settings.platform_key().key_id for e in events)
    assert settings.audit_log().verify().operations == 3
