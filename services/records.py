"""Reading nodes of the graph through the privacy guard, with every personal-data read audited."""

from __future__ import annotations

from typing import Any

from graph import GraphStore
from ontology.errors import HealthGraphError
from services.audit import AuditLog
from services.privacy import Guard, Viewer


class Records:
    def __init__(self, store: GraphStore, guard: Guard, audit: AuditLog) -> None:
        self.store = store
        self.guard = guard
        self.audit = audit

    def _audited(self, viewer: Viewer, action: str, cls: str, key: str, fn: Any) -> Any:
        personal = self.guard.is_personal(cls)
        try:
            result = fn()
        except HealthGraphError as exc:
            if personal:
                self.audit.record(viewer, action, f"{cls}/{key}", "failure", code=exc.code)
            raise
        if personal:
            self.audit.record(viewer, action, f"{cls}/{key}", "success")
        return result

    def get(self, cls: str, key: str, viewer: Viewer) -> dict[str, Any]:
        node = self._audited(viewer, "read", cls, key, lambda: self.store.get(cls, key))
        released = self.guard.release(node, viewer)
        if "batch_id" in node:
            batch = self.store.provenance(node["batch_id"])
            released["provenance"] = {k: batch.get(k) for k in ("batch_id", "source", "ingested_at")}
        return released

    def neighbours(self, cls: str, key: str, viewer: Viewer, *, edge: str | None = None,
                   limit: int = 100) -> list[dict[str, Any]]:
        """Nodes one edge away; another person's records among them are withheld (class and edge only)."""
        rows = self._audited(viewer, "neighbours", cls, key,
                             lambda: self.store.neighbours(cls, key, edge=edge, limit=limit))
        return self._around(cls, key, rows, viewer)

    def paths(self, cls: str, key: str, viewer: Viewer, *, max_hops: int = 2, limit: int = 100) -> list[dict[str, Any]]:
        """Nodes within ``max_hops``; another person's records among them are withheld."""
        rows = self._audited(viewer, "paths", cls, key,
                             lambda: self.store.paths(cls, key, max_hops=max_hops, limit=limit))
        return self._around(cls, key, rows, viewer)

    def _around(self, cls: str, key: str, rows: list[dict[str, Any]], viewer: Viewer) -> list[dict[str, Any]]:
        from services.access.facts import scoped

        visible = scoped(self.store, self.guard, cls, key)
        return [self.guard.release(r, viewer) if visible(r) else
                {**{k: v for k, v in r.items() if k in ("direction", "edge", "class", "hops")},
                 "withheld": "他人记录 another person's record"} for r in rows]

    def query(self, name: str, params: dict[str, Any], viewer: Viewer) -> list[dict[str, Any]]:
        """A named query, audited; rows naming a restricted diagnosis the viewer may not see are withheld."""
        rows = self._audited_always(viewer, "query", f"query/{name}", lambda: self.store.query(name, **params),
                                    params=params)
        return [self.guard.release_row(r, viewer) for r in rows]

    def _audited_always(self, viewer: Viewer, action: str, entity: str, fn: Any, **detail: Any) -> Any:
        try:
            result = fn()
        except HealthGraphError as exc:
            self.audit.record(viewer, action, entity, "failure", code=exc.code, **detail)
            raise
        self.audit.record(viewer, action, entity, "success", **detail)
        return result

    def trace(self, viewer: Viewer, kind: str, cls: str, key: str, fn: Any) -> Any:
        """An investigation that reads linked personal data (lookback, traceback): audited like a read
        whatever its starting node; the result names records by key only, never their identifiers."""
        try:
            result = fn()
        except HealthGraphError as exc:
            self.audit.record(viewer, f"trace:{kind}", f"{cls}/{key}", "failure", code=exc.code)
            raise
        self.audit.record(viewer, f"trace:{kind}", f"{cls}/{key}", "success")
        return result
