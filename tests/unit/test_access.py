"""Access control without HTTP: hashing, lockout, TOTP, token lifetimes on a fake clock, revocation, 三权分立,
consent, and the policy table."""

from __future__ import annotations

import json
from pathlib import Path

import pyotp
import pytest

from services.access import (
    GRANTS,
    AccessService,
    AccountLocked,
    Forbidden,
    InvalidAccessRequest,
    Limits,
    Permission,
    Principal,
    PurposeInvalid,
    PurposeMissing,
    Resource,
    Role,
    SecondFactorRequired,
    SeparationOfDuties,
    SessionExpired,
    TokenRevoked,
    Unauthenticated,
    authorise,
    new_totp_secret,
)
from services.access.store import hash_secret, verify_secret
from services.settings import Settings

PASSWORD = "correct horse battery staple"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, minutes: float) -> None:
        self.now += minutes * 60


@pytest.fixture()
def clock() -> Clock:
    return Clock()


@pytest.fixture()
def service(tmp_path: Path, clock: Clock) -> AccessService:
    return AccessService(tmp_path / "access", b"k" * 32, limits=Limits(), clock=clock)


def test_passwords_are_argon2id_hashes_never_stored_in_clear(service: AccessService) -> None:
    stored = hash_secret(PASSWORD)
    assert stored.startswith("$argon2id$") and verify_secret(stored, PASSWORD) and not verify_secret(stored, "x")
    service.store.add_user("dr-li", PASSWORD, ["clinician"], institution="U1")
    text = service.store.path.read_text(encoding="utf-8")
    assert PASSWORD not in text and json.loads(text)["users"]["dr-li"]["password"].startswith("$argon2id$")
    assert oct(service.store.path.stat().st_mode & 0o777) == "0o600"


def test_five_failures_lock_the_account_for_fifteen_minutes(service: AccessService, clock: Clock) -> None:
    service.store.add_user("dr-li", PASSWORD, ["clinician"])
    for _ in range(4):
        with pytest.raises(Unauthenticated):
            service.login("dr-li", "wrong password!")
    with pytest.raises(AccountLocked) as locked:
        service.login("dr-li", "wrong password!")
    assert locked.value.http_status == 423 and locked.value.code == "HG-1303"
    with pytest.raises(AccountLocked):
        service.login("dr-li", PASSWORD)  # even the right password while locked
    clock.advance(15.1)
    assert service.login("dr-li", PASSWORD)["token_type"] == "bearer"


def test_lockout_is_configurable_in_settings(tmp_path: Path) -> None:
    svc = Settings(data_dir=tmp_path, access_max_failures=2, access_lockout_minutes=1).access()
    svc.store.add_user("u", PASSWORD, ["researcher"])
    with pytest.raises(Unauthenticated):
        svc.login("u", "nope nope nope")
    with pytest.raises(AccountLocked):
        svc.login("u", "nope nope nope")
    key = Settings(data_dir=tmp_path).access_key_path
    assert oct(key.stat().st_mode & 0o777) == "0o600"


def test_an_administrator_lock_holds_until_unlocked(service: AccessService) -> None:
    service.store.add_user("u", PASSWORD, ["researcher"])
    token = service.login("u", PASSWORD)["access_token"]
    service.store.update_user("u", locked=True)
    with pytest.raises(AccountLocked):
        service.authenticate(token)
    with pytest.raises(AccountLocked):
        service.login("u", PASSWORD)
    service.store.update_user("u", locked=False)
    assert service.authenticate(service.login("u", PASSWORD)["access_token"]).name == "u"


@pytest.mark.parametrize("role", ["system_admin", "security_admin", "audit_admin", "supervisor"])
def test_privileged_roles_need_a_totp_code(service: AccessService, role: str) -> None:
    secret = new_totp_secret()
    service.store.add_user("admin", PASSWORD, [role], totp_secret=secret)
    with pytest.raises(SecondFactorRequired):
        service.login("admin", PASSWORD)
    with pytest.raises(SecondFactorRequired):
        service.login("admin", PASSWORD, "000000" if pyotp.TOTP(secret).now() != "000000" else "111111")
    code = pyotp.TOTP(secret).at(service.clock())
    assert service.authenticate(service.login("admin", PASSWORD, code)["access_token"]).role == Role(role)


def test_a_privileged_user_without_an_enrolled_secret_cannot_log_in(service: AccessService) -> None:
    service.store.add_user("sec", PASSWORD, ["security_admin"])
    with pytest.raises(SecondFactorRequired):
        service.login("sec", PASSWORD, "123456")


def test_separation_of_duties_refuses_two_administrator_roles(service: AccessService) -> None:
    with pytest.raises(SeparationOfDuties) as exc:
        service.store.add_user("root", PASSWORD, ["system_admin", "audit_admin"])
    assert exc.value.code == "HG-1309" and "三权分立" in exc.value.message
    with pytest.raises(InvalidAccessRequest):
        service.store.add_user("two", PASSWORD, ["clinician", "investigator"])
    with pytest.raises(InvalidAccessRequest):
        service.store.add_user("x", PASSWORD, ["superuser"])
    for admin in ("system_admin", "security_admin", "audit_admin"):
        assert not set(GRANTS[Role(admin)]) & {Permission.READ_PERSONAL, Permission.TRACE, Permission.MPI_READ,
                                                Permission.QUERY, Permission.REGISTRY_READ, Permission.SUPERVISE}


def test_tokens_expire_after_fifteen_minutes_and_refresh_within_the_session(service: AccessService,
                                                                           clock: Clock) -> None:
    service.store.add_user("u", PASSWORD, ["researcher"])
    token = service.login("u", PASSWORD)["access_token"]
    clock.advance(14)
    principal = service.authenticate(token)
    fresh = service.refresh(principal)["access_token"]
    with pytest.raises(TokenRevoked):
        service.authenticate(token)  # a refreshed token is revoked
    clock.advance(14)
    assert service.authenticate(fresh).name == "u"
    clock.advance(16)
    with pytest.raises(SessionExpired) as exc:
        service.authenticate(fresh)
    assert exc.value.details["reason"] == "expired"


def test_sessions_idle_out_after_thirty_minutes(tmp_path: Path, clock: Clock) -> None:
    svc = AccessService(tmp_path, b"k" * 32, limits=Limits(token_seconds=7200), clock=clock)
    svc.store.add_user("u", PASSWORD, ["researcher"])
    token = svc.login("u", PASSWORD)["access_token"]
    clock.advance(29)
    svc.authenticate(token)
    clock.advance(31)
    with pytest.raises(SessionExpired) as exc:
        svc.authenticate(token)
    assert exc.value.details["reason"] == "idle"


def test_sessions_end_after_eight_hours_however_busy(service: AccessService, clock: Clock) -> None:
    service.store.add_user("u", PASSWORD, ["researcher"])
    token = service.login("u", PASSWORD)["access_token"]
    for _ in range(8 * 60 // 10):
        clock.advance(10)
        principal = service.authenticate(token)
        token = service.refresh(principal)["access_token"]
    clock.advance(10)
    with pytest.raises(SessionExpired) as exc:
        service.authenticate(token)
    assert exc.value.details["reason"] == "absolute"


def test_revocation_ends_the_token_and_its_session(service: AccessService) -> None:
    service.store.add_user("u", PASSWORD, ["researcher"])
    token = service.login("u", PASSWORD)["access_token"]
    principal = service.authenticate(token)
    service.revoke(principal)
    with pytest.raises(TokenRevoked):
        service.authenticate(token)
    assert principal.token_id in service.store.read()["revoked"]


def test_a_tampered_or_foreign_token_is_refused(service: AccessService, tmp_path: Path) -> None:
    service.store.add_user("u", PASSWORD, ["researcher"])
    token = service.login("u", PASSWORD)["access_token"]
    with pytest.raises(Unauthenticated):
        service.authenticate(token[:-2] + ("AA" if not token.endswith("AA") else "BB"))
    other = AccessService(tmp_path / "other", b"z" * 32, clock=service.clock)
    with pytest.raises(Unauthenticated):
        other.authenticate(token)


def test_clients_log_in_with_client_credentials(service: AccessService) -> None:
    service.store.add_client("his-001", "s" * 32, institution="U1")
    principal = service.authenticate(service.client_login("his-001", "s" * 32)["access_token"])
    assert principal.role is Role.NODE and principal.institution == "U1"
    with pytest.raises(Unauthenticated):
        service.client_login("his-001", "t" * 32)
    assert service.store.read()["clients"]["his-001"]["secret"].startswith("$argon2id$")


def test_consent_grant_and_withdraw(service: AccessService) -> None:
    store = service.store
    assert not store.consented("R1", "U1", "treatment", "diagnoses")
    store.grant("R1", "U1", "treatment", "diagnoses")
    assert store.consented("R1", "U1", "treatment", "diagnoses")
    assert not store.consented("R1", "U1", "research", "diagnoses") and not store.consented("R1", "U2", "treatment",
                                                                                            "diagnoses")
    assert not store.consented("R1", "U1", "treatment", "lab_results")
    assert store.withdraw("R1", "U1", "treatment", "diagnoses") == 1
    assert not store.consented("R1", "U1", "treatment", "diagnoses")
    store.grant("R1", "U1", "treatment", "all")
    assert store.consented("R1", "U1", "treatment", "prescriptions")
    with pytest.raises(InvalidAccessRequest):
        store.grant("R1", "U1", "marketing", "all")


class FakeFacts:
    def __init__(self, *, care: bool = True, consent: bool = True) -> None:
        self.care, self.consent = care, consent

    def is_personal(self, cls: str) -> bool:
        return cls in ("Resident", "Diagnosis")

    def patients_of(self, cls: str, key: str) -> frozenset[str]:
        return frozenset({key.split("/")[0]})

    def in_care(self, resident: str, institution: str) -> bool:
        return self.care

    def consented(self, resident: str, institution: str, purpose: str, cls: str) -> bool:
        return self.consent


def _who(role: str, **kw: object) -> Principal:
    return Principal(name=role, role=Role(role), **kw)  # type: ignore[arg-type]


def test_authorise_residents_read_their_own_record_only() -> None:
    me = _who("resident", subjects=frozenset({"R1"}))
    mine, theirs = Resource("/nodes", "Resident", "R1"), Resource("/nodes", "Resident", "R2")
    assert authorise(me, Permission.READ_PERSONAL, mine, "patient_request", FakeFacts()).allowed
    assert not authorise(me, Permission.READ_PERSONAL, theirs, "patient_request", FakeFacts()).allowed
    assert not authorise(me, Permission.READ_PERSONAL, mine, "research", FakeFacts()).allowed


def test_authorise_clinicians_need_care_and_consent() -> None:
    dr = _who("clinician", institution="U1")
    dx = Resource("/nodes", "Diagnosis", "R1/D1")
    assert authorise(dr, Permission.READ_PERSONAL, dx, "treatment", FakeFacts()).allowed
    assert authorise(dr, Permission.READ_PERSONAL, dx, "treatment", FakeFacts(care=False)).error.details[
        "reason_code"] == "not_in_care"
    assert authorise(dr, Permission.READ_PERSONAL, dx, "treatment", FakeFacts(consent=False)).error.details[
        "reason_code"] == "no_consent"


def test_authorise_purpose_is_required_and_from_the_closed_list() -> None:
    inv = _who("investigator")
    r = Resource("/trace/blood/lookback/X")
    assert isinstance(authorise(inv, Permission.TRACE, r, None, FakeFacts()).error, PurposeMissing)
    assert isinstance(authorise(inv, Permission.TRACE, r, "curiosity", FakeFacts()).error, PurposeInvalid)
    assert isinstance(authorise(inv, Permission.TRACE, r, "treatment", FakeFacts()).error, Forbidden)
    assert authorise(inv, Permission.TRACE, r, "investigation", FakeFacts()).allowed


def test_authorise_researchers_and_administrators_reach_no_personal_route() -> None:
    from services.access import PERSONAL

    for role in ("researcher", "system_admin", "security_admin", "audit_admin", "triage_user"):
        for permission in PERSONAL:
            for purpose in ("treatment", "research", "operations", "supervision", "investigation"):
                assert not authorise(_who(role), permission, Resource("/x", "Resident", "R1"), purpose,
                                     FakeFacts()).allowed
    assert authorise(_who("audit_admin"), Permission.AUDIT_READ, Resource("/audit/events"), None, FakeFacts()).allowed
    assert not authorise(None, Permission.SELF, Resource("/auth/me"), None, FakeFacts()).allowed
