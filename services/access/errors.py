"""Errors of access control, codes HG-13xx (see ``ontology/errors.py`` for the tree).

    AccessError                    HG-1300
    ├── Unauthenticated            HG-1301  no credentials, bad credentials, or a token that is malformed (401)
    ├── Forbidden                  HG-1302  the principal may not do this; ``details["reason"]`` says why (403)
    ├── AccountLocked              HG-1303  too many failed logins, or locked by an administrator (423)
    ├── PurposeMissing             HG-1304  no ``X-Purpose-Of-Use`` on a personal-data route (400)
    ├── PurposeInvalid             HG-1305  a purpose outside the closed list (400)
    ├── SecondFactorRequired       HG-1306  a privileged role logging in without a valid TOTP code (401)
    ├── SessionExpired             HG-1307  the token expired, the session idled out or reached its absolute limit (401)
    ├── TokenRevoked               HG-1308  the token (or its session) was revoked (401)
    ├── SeparationOfDuties         HG-1309  三权分立: two of system/security/audit administrator for one user (409)
    ├── UnknownPrincipal           HG-1310  no such user or client (404)
    ├── InvalidAccessRequest       HG-1311  an unknown role, label, category or grant type; a duplicate user (422)
    └── PermissionUndeclared       HG-1312  a route without a declared permission: refused, fail closed (500)
"""

from __future__ import annotations

from ontology.errors import HealthGraphError


class AccessError(HealthGraphError):
    code = "HG-1300"
    title = "访问控制错误 access control error"
    http_status = 403


class Unauthenticated(AccessError):
    code = "HG-1301"
    title = "未认证 unauthenticated"
    http_status = 401


class Forbidden(AccessError):
    code = "HG-1302"
    title = "无权访问 forbidden"
    http_status = 403


class AccountLocked(AccessError):
    code = "HG-1303"
    title = "账户已锁定 account locked"
    http_status = 423


class PurposeMissing(AccessError):
    code = "HG-1304"
    title = "缺少使用目的 purpose of use missing"
    http_status = 400


class PurposeInvalid(AccessError):
    code = "HG-1305"
    title = "使用目的无效 purpose of use invalid"
    http_status = 400


class SecondFactorRequired(AccessError):
    code = "HG-1306"
    title = "需要第二因子 second factor required"
    http_status = 401


class SessionExpired(AccessError):
    code = "HG-1307"
    title = "会话已过期 session expired"
    http_status = 401


class TokenRevoked(AccessError):
    code = "HG-1308"
    title = "令牌已撤销 token revoked"
    http_status = 401


class SeparationOfDuties(AccessError):
    code = "HG-1309"
    title = "三权分立冲突 separation of duties"
    http_status = 409


class UnknownPrincipal(AccessError):
    code = "HG-1310"
    title = "用户不存在 unknown user or client"
    http_status = 404


class InvalidAccessRequest(AccessError):
    code = "HG-1311"
    title = "访问控制请求无效 invalid access-control request"
    http_status = 422


class PermissionUndeclared(AccessError):
    code = "HG-1312"
    title = "路由未声明权限 route without a declared permission"
    http_status = 500
