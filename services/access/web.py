"""The HTTP side of access control: every route declares a permission (``**permit(...)``), one application-wide
dependency (:meth:`Gate.enforce`) authenticates, calls :func:`authorise` and audits, and the ``/auth`` routes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.routing import APIRoute

from ontology.errors import HealthGraphError
from services.access.errors import AccessError, InvalidAccessRequest, PermissionUndeclared, Unauthenticated
from services.access.facts import GraphFacts
from services.access.model import ANONYMOUS, PERSONAL, Permission, Principal
from services.access.policy import Resource, authorise
from services.access.service import AccessService
from services.privacy import Viewer

PERMISSION_KEY = "x-permission"


def permit(permission: Permission) -> dict[str, Any]:
    """Route keyword arguments declaring its permission: ``@router.get("/x", **permit(Permission.TRACE))``."""
    return {"openapi_extra": {PERMISSION_KEY: permission.value}}


def permission_of(route: Any) -> Permission | None:
    """The permission a route declared, or None (refused: fail closed)."""
    extra = getattr(route, "openapi_extra", None) or {}
    value = extra.get(PERMISSION_KEY)
    return Permission(value) if value else None


def all_routes(routes: list[Any]) -> list[Any]:
    """Every route, including those of included routers (which FastAPI keeps as nested routers)."""
    found: list[Any] = []
    for route in routes:
        nested = getattr(route, "original_router", None)
        found += all_routes(nested.routes) if nested is not None else [route]
    return found


def declare(routes: list[Any], prefix: str, permission: Permission) -> None:
    """Declare the permission of routes from a router this package does not own (e.g. the console page)."""
    for route in all_routes(routes):
        if isinstance(route, APIRoute) and route.path.startswith(prefix) and permission_of(route) is None:
            route.openapi_extra = {**(route.openapi_extra or {}), PERMISSION_KEY: permission.value}


class Gate:
    """Authentication, authorisation and the audit of decisions, for every request."""

    def __init__(self, service: AccessService, audit: Callable[[], Any], facts: GraphFacts) -> None:
        self.service, self._audit, self.facts = service, audit, facts

    def enforce(self, request: Request) -> None:
        """The application-wide dependency: sets ``request.state.viewer`` or raises a coded error."""
        permission = permission_of(request.scope.get("route"))
        if permission is None:
            raise PermissionUndeclared(f"路由未声明权限 route {request.url.path} declares no permission: refused")
        request.state.viewer = ANONYMOUS
        if permission is Permission.PUBLIC:
            return
        purpose = request.headers.get("x-purpose-of-use")
        params = request.path_params
        resource = Resource(path=request.url.path, cls=params.get("cls"), key=params.get("key"))
        principal: Principal | None = None
        try:
            principal = self.principal(request)
            decision = authorise(principal, permission, resource, purpose, self.facts)
        except AccessError as exc:
            self._record(principal, purpose, permission, resource, request, "denied", exc)
            raise
        except HealthGraphError:
            if principal is None:
                raise
            # an unknown class while resolving the record: the route answers with its coded error (and audits it)
            decision = None
        if decision is not None and not decision.allowed:
            self._record(principal, purpose, permission, resource, request, "denied", decision.error)
            decision.enforce()
        assert principal is not None
        request.state.principal = principal
        request.state.viewer = principal.viewer(purpose or "operations")
        if permission in PERSONAL and decision is not None:
            self._record(principal, purpose, permission, resource, request, "allowed", None, reason=decision.reason)

    def principal(self, request: Request) -> Principal:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("需要登录：Authorization: Bearer <token> login required: send a bearer token",
                                  login="POST /auth/token")
        return self.service.authenticate(token.strip())

    def _record(self, principal: Principal | None, purpose: str | None, permission: Permission, resource: Resource,
                request: Request, outcome: str, error: AccessError | None, **detail: Any) -> None:
        if permission not in PERSONAL and outcome == "allowed":
            return
        who = principal.viewer(purpose or "") if principal else Viewer(user="anonymous", role="", purpose=purpose or "")
        if error is not None:
            detail = {**detail, "code": error.code, "reason": error.message}
        self._audit().record(who, f"authorise:{permission}", resource.entity, outcome,
                             method=request.method, path=request.url.path, **detail)


def auth_router(gate: Gate, audit_path: Callable[[], Any]) -> APIRouter:
    """``/auth/token`` (password and client-credentials grants), ``/auth/refresh``, ``/auth/revoke``,
    ``/auth/me``, and ``/audit/events`` for the audit administrator."""
    router = APIRouter(tags=["access"])
    service = gate.service

    @router.post("/auth/token", **permit(Permission.PUBLIC))
    def token(grant_type: Annotated[str, Form()] = "password", username: Annotated[str | None, Form()] = None,
              password: Annotated[str | None, Form()] = None, totp: Annotated[str | None, Form()] = None,
              client_id: Annotated[str | None, Form()] = None,
              client_secret: Annotated[str | None, Form()] = None) -> dict[str, Any]:
        """登录 OAuth2 token endpoint: ``grant_type=password`` (username, password, totp for privileged roles) or
        ``grant_type=client_credentials`` (client_id, client_secret) for institution systems. Returns a bearer token
        valid 15 minutes; refresh it within the session (idle 30 min, at most 8 h)."""
        if grant_type == "password":
            if not username or not password:
                raise Unauthenticated("需要用户名和口令 username and password are required")
            return service.login(username, password, totp)
        if grant_type == "client_credentials":
            if not client_id or not client_secret:
                raise Unauthenticated("需要客户端标识和密钥 client_id and client_secret are required")
            return service.client_login(client_id, client_secret)
        raise InvalidAccessRequest(f"不支持的授权类型 unsupported grant_type {grant_type!r}",
                                   valid=["password", "client_credentials"])

    @router.post("/auth/refresh", **permit(Permission.SELF))
    def refresh(request: Request) -> dict[str, Any]:
        """A new token for the same session; the old one is revoked."""
        return service.refresh(request.state.principal)

    @router.post("/auth/revoke", **permit(Permission.SELF))
    def revoke(request: Request) -> dict[str, Any]:
        """Log out: the token and its session are revoked."""
        principal: Principal = request.state.principal
        service.revoke(principal)
        return {"revoked": principal.token_id, "session": "ended"}

    @router.get("/auth/me", **permit(Permission.SELF))
    def me(request: Request) -> dict[str, Any]:
        """Who the token belongs to: name, role, institution, sensitivity labels."""
        p: Principal = request.state.principal
        return {"name": p.name, "role": str(p.role), "institution": p.institution, "labels": sorted(p.labels),
                "subjects": sorted(p.subjects)}

    @router.get("/audit/events", **permit(Permission.AUDIT_READ))
    def audit_events(limit: int = Query(100, ge=1, le=10_000)) -> list[dict[str, Any]]:
        """审计日志 The latest audit entries (audit administrator only)."""
        from services.security import iter_events

        return list(iter_events(audit_path()))[-limit:]

    return router
