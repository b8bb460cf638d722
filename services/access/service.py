"""Logging in and tokens: argon2id passwords with lockout, TOTP for privileged roles, client credentials for
institution systems, short-lived JWTs (HS256, key file 0600) tied to a session with idle and absolute limits."""

from __future__ import annotations

import datetime as dt
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pyotp

from services.access.errors import (
    AccountLocked,
    SecondFactorRequired,
    SessionExpired,
    TokenRevoked,
    Unauthenticated,
)
from services.access.model import PRIVILEGED_ROLES, Principal, Role
from services.access.store import AccessStore, verify_secret

ALGORITHM = "HS256"
ISSUER = "healthgraph"


@dataclass(frozen=True)
class Limits:
    """Lockout and session limits (from :class:`services.settings.Settings`)."""

    max_failures: int = 5
    lockout_seconds: float = 15 * 60
    token_seconds: float = 15 * 60
    idle_seconds: float = 30 * 60
    session_seconds: float = 8 * 3600


@dataclass
class _Session:
    principal: str
    started: float
    last_used: float


def load_key(path: Path) -> bytes:
    """The token signing key, created (32 random bytes, mode 0600) on first use."""
    from services.security.gm import write_secret

    if not path.exists():
        write_secret(path, secrets.token_bytes(32))
    if path.stat().st_mode & 0o077:
        from services.security.errors import KeyFileExposed

        raise KeyFileExposed(f"密钥文件权限过宽 key file {path} may be read by others: chmod 600", path=str(path))
    return path.read_bytes()


class AccessService:
    """Everything that establishes who a caller is. Decisions about what they may do are in
    :func:`services.access.policy.authorise`."""

    def __init__(self, folder: Path, key: bytes, *, limits: Limits | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.limits = limits or Limits()
        self.store = AccessStore(folder, clock)
        self._key = key
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- login
    def login(self, username: str, password: str, totp: str | None = None) -> dict[str, Any]:
        """The password grant. Five failures in a row lock the account for the lockout period (423)."""
        bad = Unauthenticated("用户名或口令错误 wrong user name or password")
        users = self.store.read()["users"]
        user = users.get(username)
        if user is None:
            raise bad
        now = self.clock()
        if user.get("locked"):
            raise AccountLocked("账户已被管理员锁定 account locked by an administrator", user=username)
        if user.get("locked_until") and user["locked_until"] > now:
            raise AccountLocked(f"登录失败次数过多，账户锁定至 {_iso(user['locked_until'])} too many failed logins, "
                                f"locked until {_iso(user['locked_until'])}", user=username,
                                locked_until=_iso(user["locked_until"]))
        privileged = Role(user["role"]) in PRIVILEGED_ROLES
        ok = verify_secret(user["password"], password)
        if ok and privileged:
            if not user.get("totp"):
                raise SecondFactorRequired("特权角色须先配置 TOTP privileged role without an enrolled TOTP secret",
                                           user=username)
            if not totp or not pyotp.TOTP(user["totp"]).verify(totp, for_time=int(now), valid_window=1):
                self._failed(username, now)
                raise SecondFactorRequired("特权角色须提供有效的动态口令 a privileged role needs a valid TOTP code",
                                           user=username)
        if not ok:
            self._failed(username, now)
            raise bad
        self.store.update_user(username, failures=0, locked_until=None)
        return self._issue(username, self._new_session(username, now), now)

    def _failed(self, username: str, now: float) -> None:
        user = self.store.user(username)
        failures = user.get("failures", 0) + 1
        locked_until = now + self.limits.lockout_seconds if failures >= self.limits.max_failures else None
        self.store.update_user(username, failures=0 if locked_until else failures, locked_until=locked_until)
        if locked_until:
            raise AccountLocked(f"连续 {failures} 次登录失败，账户锁定 {self.limits.lockout_seconds / 60:g} 分钟 "
                                f"{failures} failed logins: locked for {self.limits.lockout_seconds / 60:g} minutes",
                                user=username, locked_until=_iso(locked_until))

    def client_login(self, client_id: str, secret: str) -> dict[str, Any]:
        """The client-credentials grant for institution and node systems."""
        client = self.store.read()["clients"].get(client_id)
        if client is None or not verify_secret(client["secret"], secret):
            raise Unauthenticated("客户端标识或密钥错误 wrong client id or secret")
        now = self.clock()
        return self._issue(client_id, self._new_session(client_id, now), now)

    def _new_session(self, name: str, now: float) -> str:
        sid = secrets.token_urlsafe(16)
        with self._lock:
            self._sessions[sid] = _Session(name, now, now)
        return sid

    def _issue(self, name: str, sid: str, now: float) -> dict[str, Any]:
        jti = secrets.token_urlsafe(16)
        exp = now + self.limits.token_seconds
        claims = {"iss": ISSUER, "sub": name, "sid": sid, "jti": jti, "iat": int(now), "exp": int(exp)}
        token = jwt.encode(claims, self._key, algorithm=ALGORITHM)
        return {"access_token": token, "token_type": "bearer", "expires_in": int(self.limits.token_seconds)}

    # ---------------------------------------------------------------- each request
    def authenticate(self, token: str) -> Principal:
        """The principal behind a bearer token, checking expiry, revocation, idle and absolute limits."""
        now = self.clock()
        try:
            claims = jwt.decode(token, self._key, algorithms=[ALGORITHM], issuer=ISSUER,
                                # times are checked below against the service clock (faked in tests)
                                options={"verify_exp": False, "verify_iat": False,
                                         "require": ["exp", "jti", "sid", "sub"]})
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"令牌无效 invalid token: {exc}") from None
        if claims["exp"] <= now:
            raise SessionExpired("令牌已过期，请重新获取 the token expired: get a new one", reason="expired")
        if self.store.revoked(claims["jti"]) or self.store.revoked("sid:" + claims["sid"]):
            raise TokenRevoked("令牌已撤销 the token was revoked")
        with self._lock:
            session = self._sessions.get(claims["sid"])
            if session is None:
                raise SessionExpired("会话不存在或已结束 no such session (ended or the server restarted)",
                                     reason="unknown_session")
            if now - session.started > self.limits.session_seconds:
                del self._sessions[claims["sid"]]
                raise SessionExpired("会话已达最长时限，请重新登录 the session reached its absolute limit: log in again",
                                     reason="absolute")
            if now - session.last_used > self.limits.idle_seconds:
                del self._sessions[claims["sid"]]
                raise SessionExpired("会话空闲超时，请重新登录 the session idled out: log in again", reason="idle")
            session.last_used = now
        return self._principal(claims["sub"], claims["sid"], claims["jti"])

    def _principal(self, name: str, sid: str, jti: str) -> Principal:
        state = self.store.read()
        record = state["users"].get(name) or state["clients"].get(name)
        if record is None:
            raise Unauthenticated("用户已不存在 the user no longer exists")
        if record.get("locked") or (record.get("locked_until") or 0) > self.clock():
            raise AccountLocked("账户已锁定 account locked", user=name)
        return Principal(name=name, role=Role(record["role"]), institution=record.get("institution"),
                         labels=frozenset(record.get("labels", ())), subjects=frozenset(record.get("subjects", ())),
                         session=sid, token_id=jti)

    def refresh(self, principal: Principal) -> dict[str, Any]:
        """A fresh token in the same session (the session's idle and absolute limits still apply)."""
        now = self.clock()
        self.store.revoke(principal.token_id, now + self.limits.token_seconds)
        return self._issue(principal.name, principal.session, now)

    def revoke(self, principal: Principal, *, session: bool = True) -> None:
        """Revoke the token, and by default its whole session (logout)."""
        until = self.clock() + self.limits.session_seconds
        self.store.revoke(principal.token_id, until)
        if session:
            self.store.revoke("sid:" + principal.session, until)
            with self._lock:
                self._sessions.pop(principal.session, None)


def new_totp_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, name: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=name, issuer_name="HealthGraph")


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat(timespec="seconds")
