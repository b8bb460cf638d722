"""Test helper: create a user (or client) with a role in an app's access store, log in over HTTP, and return the
headers a caller sends (bearer token and purpose of use). No role bypasses the checks: each test picks the role a
real caller would have."""

from __future__ import annotations

import itertools
from typing import Any

import pyotp

from services.access import Role, new_totp_secret
from services.access.model import PRIVILEGED_ROLES

PASSWORD = "correct horse battery staple"
SECRET = "node-client-secret-0123456789"

DEFAULT_PURPOSE = {Role.RESIDENT: "patient_request", Role.CLINICIAN: "treatment", Role.INVESTIGATOR: "investigation",
                   Role.SUPERVISOR: "supervision", Role.NODE: "operations"}
_serial = itertools.count(1)


def auth_headers(client: Any, role: str, *, app: Any = None, name: str | None = None, institution: str | None = None,
                 labels: tuple[str, ...] = (), subjects: tuple[str, ...] = (), purpose: str | None = "default",
                 ) -> dict[str, str]:
    """Headers of a fresh principal with ``role``: ``client`` is a TestClient or an ``httpx.Client`` with a base URL
    (then pass ``app``). ``purpose="default"`` picks the role's usual purpose; None sends none."""
    app = app or client.app
    store = app.state.access.store
    role = Role(role)
    name = name or f"{role.value}-{next(_serial)}"
    if role is Role.NODE:
        store.add_client(name, SECRET, institution=institution)
        form = {"grant_type": "client_credentials", "client_id": name, "client_secret": SECRET}
    else:
        totp = new_totp_secret() if role in PRIVILEGED_ROLES else None
        store.add_user(name, PASSWORD, [role.value], institution=institution, labels=list(labels),
                       subjects=list(subjects), totp_secret=totp)
        form = {"username": name, "password": PASSWORD}
        if totp:
            form["totp"] = pyotp.TOTP(totp).at(app.state.access.clock())  # the app's clock, faked or not
    r = client.post("/auth/token", data=form)
    assert r.status_code == 200, r.text
    headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
    purpose = DEFAULT_PURPOSE.get(role) if purpose == "default" else purpose
    if purpose:
        headers["X-Purpose-Of-Use"] = purpose
    return headers
