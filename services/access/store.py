"""Users, clients, consents and revoked tokens in one JSON file under ``<data_dir>/access``.

The file is small and read afresh under an exclusive lock for every change, so the server and the CLI
(`healthgraph access …`) see each other's changes at once. Passwords and client secrets are argon2id hashes.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from services.access.errors import InvalidAccessRequest, SeparationOfDuties, UnknownPrincipal
from services.access.model import ADMIN_ROLES, CATEGORIES, Purpose, Role

_HASHER = PasswordHasher()  # argon2id with the library's RFC 9106 defaults


def hash_secret(secret: str) -> str:
    return _HASHER.hash(secret)


def verify_secret(stored: str, secret: str) -> bool:
    try:
        return _HASHER.verify(stored, secret)
    except (VerificationError, InvalidHashError):
        return False


def _empty() -> dict[str, Any]:
    return {"users": {}, "clients": {}, "consents": [], "revoked": {}}


class AccessStore:
    def __init__(self, folder: Path, clock: Callable[[], float]) -> None:
        self.path = folder / "access.json"
        self.clock = clock
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)

    # ---------------------------------------------------------------- file
    def read(self) -> dict[str, Any]:
        if not self.path.exists():
            return _empty()
        return {**_empty(), **json.loads(self.path.read_text(encoding="utf-8"))}

    @contextmanager
    def change(self) -> Iterator[dict[str, Any]]:
        """The state to change in place; written back atomically when the block ends without error."""
        lock = self.path.with_suffix(".lock")
        with open(lock, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            state = self.read()
            yield state
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(state, out, ensure_ascii=False, indent=1)
            os.replace(tmp, self.path)

    def _now(self) -> str:
        return dt.datetime.fromtimestamp(self.clock(), dt.timezone.utc).isoformat(timespec="seconds")

    # ---------------------------------------------------------------- users
    def add_user(self, name: str, password: str, roles: list[str], *, institution: str | None = None,
                 labels: list[str] = (), subjects: list[str] = (), totp_secret: str | None = None,
                 known_labels: frozenset[str] | None = None) -> dict[str, Any]:
        """A new user with exactly one role. Asking for two of the administrator roles is refused (三权分立)."""
        try:
            wanted = [Role(r) for r in roles]
        except ValueError as exc:
            raise InvalidAccessRequest(f"未知角色 unknown role: {exc}", valid=[r.value for r in Role]) from None
        admins = sorted({r.value for r in wanted} & {r.value for r in ADMIN_ROLES})
        if len(admins) > 1:
            raise SeparationOfDuties(f"三权分立：系统、安全、审计管理员不能由同一用户担任 separation of duties: "
                                     f"one user cannot be {' and '.join(admins)}", roles=admins)
        if len(set(wanted)) != 1:
            raise InvalidAccessRequest("每个用户一个角色 one role per user", roles=roles)
        if known_labels is not None and set(labels) - known_labels:
            raise InvalidAccessRequest(f"未知敏感标签 unknown sensitivity label: {sorted(set(labels) - known_labels)}",
                                       valid=sorted(known_labels))
        if len(password) < 12:
            raise InvalidAccessRequest("口令至少 12 个字符 password must have at least 12 characters")
        with self.change() as state:
            if name in state["users"] or name in state["clients"]:
                raise InvalidAccessRequest(f"用户已存在 user {name!r} exists", user=name)
            user = {"role": wanted[0].value, "password": hash_secret(password), "institution": institution,
                    "labels": sorted(set(labels)), "subjects": sorted(set(subjects)), "totp": totp_secret,
                    "failures": 0, "locked_until": None, "locked": False, "created": self._now()}
            state["users"][name] = user
        return user

    def user(self, name: str) -> dict[str, Any]:
        found = self.read()["users"].get(name)
        if found is None:
            raise UnknownPrincipal(f"用户不存在 no user {name!r}", user=name)
        return found

    def update_user(self, name: str, **changes: Any) -> dict[str, Any]:
        with self.change() as state:
            if name not in state["users"]:
                raise UnknownPrincipal(f"用户不存在 no user {name!r}", user=name)
            state["users"][name].update(changes)
            return state["users"][name]

    # ---------------------------------------------------------------- clients
    def add_client(self, client_id: str, secret: str, *, role: str = Role.NODE.value,
                   institution: str | None = None) -> dict[str, Any]:
        """An institution or node system; it logs in with the client-credentials grant."""
        if Role(role) in ADMIN_ROLES | {Role.RESIDENT}:
            raise InvalidAccessRequest(f"客户端不能是 {role} a client cannot have the role {role}")
        if len(secret) < 24:
            raise InvalidAccessRequest("客户端密钥至少 24 个字符 client secret must have at least 24 characters")
        with self.change() as state:
            if client_id in state["clients"] or client_id in state["users"]:
                raise InvalidAccessRequest(f"客户端已存在 client {client_id!r} exists")
            state["clients"][client_id] = {"role": role, "secret": hash_secret(secret), "institution": institution,
                                           "created": self._now()}
            return state["clients"][client_id]

    def client(self, client_id: str) -> dict[str, Any]:
        found = self.read()["clients"].get(client_id)
        if found is None:
            raise UnknownPrincipal(f"客户端不存在 no client {client_id!r}", client=client_id)
        return found

    # ---------------------------------------------------------------- consent
    def grant(self, resident: str, institution: str, purpose: str, category: str) -> dict[str, Any]:
        """A resident allows an institution to read one category of their record for one purpose."""
        self._check_consent(purpose, category)
        with self.change() as state:
            entry = {"resident": resident, "institution": institution, "purpose": purpose, "category": category,
                     "granted": self._now(), "withdrawn": None}
            state["consents"].append(entry)
            return entry

    def withdraw(self, resident: str, institution: str, purpose: str, category: str) -> int:
        """Withdraw every matching grant still in force; how many were withdrawn."""
        self._check_consent(purpose, category)
        n = 0
        with self.change() as state:
            for c in state["consents"]:
                if (c["resident"], c["institution"], c["purpose"], c["category"]) == (
                        resident, institution, purpose, category) and not c["withdrawn"]:
                    c["withdrawn"] = self._now()
                    n += 1
        return n

    def consented(self, resident: str, institution: str, purpose: str, category: str) -> bool:
        return any(c["resident"] == resident and c["institution"] == institution and c["purpose"] == purpose
                   and c["category"] in (category, "all") and not c["withdrawn"]
                   for c in self.read()["consents"])

    def consents_of(self, resident: str) -> list[dict[str, Any]]:
        return [c for c in self.read()["consents"] if c["resident"] == resident]

    @staticmethod
    def _check_consent(purpose: str, category: str) -> None:
        if purpose not in {p.value for p in Purpose}:
            raise InvalidAccessRequest(f"未知使用目的 unknown purpose {purpose!r}", valid=[p.value for p in Purpose])
        if category not in CATEGORIES:
            raise InvalidAccessRequest(f"未知数据类别 unknown category {category!r}", valid=list(CATEGORIES))

    # ---------------------------------------------------------------- revocation
    def revoke(self, jti: str, until: float) -> None:
        """Remember a revoked token id until it would have expired anyway."""
        now = self.clock()
        with self.change() as state:
            state["revoked"] = {k: v for k, v in state["revoked"].items() if v > now}
            state["revoked"][jti] = until

    def revoked(self, jti: str) -> bool:
        return jti in self.read()["revoked"]
