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
        rows = self._audited(viewer, "neighbours", cls, key,
                             lambda: self.store.neighbours(cls, key, edge=edge, limit=limit))
        return [self.guard.release(r, viewer) for r in rows]

    def paths(self, cls: str, key: str, viewer: Viewer, *, max_hops: int = 2, limit: int = 100) -> list[dict[str, Any]]:
        return self._audited(viewer, "paths", cls, key,
                             lambda: self.store.paths(cls, key, max_hops=max_hops, limit=limit))

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
