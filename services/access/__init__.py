"""Access control (national guide §80 信息安全, §81 用户/角色/权限; 等保 2.0 level 3).

- :mod:`services.access.model`: the closed vocabularies (roles, permissions, purposes, consent categories) and
  the grant table.
- :mod:`services.access.policy`: :func:`authorise`, the one enforcement point.
- :mod:`services.access.service`: logging in (argon2id, lockout, TOTP, client credentials) and JWT sessions.
- :mod:`services.access.store`: users, clients, consents and revoked tokens (JSON under ``<data_dir>/access``).
- :mod:`services.access.web`: the permission each route declares, the application-wide dependency, ``/auth``.
- :mod:`services.access.errors`: HG-13xx.
"""

from services.access.errors import (
    AccessError,
    AccountLocked,
    Forbidden,
    InvalidAccessRequest,
    PermissionUndeclared,
    PurposeInvalid,
    PurposeMissing,
    SecondFactorRequired,
    SeparationOfDuties,
    SessionExpired,
    TokenRevoked,
    Unauthenticated,
    UnknownPrincipal,
)
from services.access.model import ADMIN_ROLES, GRANTS, PERSONAL, PRIVILEGED_ROLES, Permission, Principal, Purpose, Role
from services.access.policy import Decision, Resource, authorise
from services.access.service import AccessService, Limits, new_totp_secret, provisioning_uri
from services.access.store import AccessStore

__all__ = [
    "ADMIN_ROLES", "GRANTS", "PERSONAL", "PRIVILEGED_ROLES", "AccessError", "AccessService", "AccessStore",
    "AccountLocked", "Decision", "Forbidden", "InvalidAccessRequest", "Limits", "Permission", "PermissionUndeclared",
    "Principal", "Purpose", "PurposeInvalid", "PurposeMissing", "Resource", "Role", "SecondFactorRequired",
    "SeparationOfDuties", "SessionExpired", "TokenRevoked", "Unauthenticated", "UnknownPrincipal", "authorise",
    "new_totp_secret", "provisioning_uri",
]
