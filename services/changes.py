"""Change sets: what one operation did to the graph (node rows before and after, edges added and
removed), so that it can be written in one transaction, kept with its event and undone exactly."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

Row = dict[str, Any]
Edge = tuple[str, str, str, str, str]  # edge type, src key, dst key, src table, dst table


@dataclass
class ChangeSet:
    """What one operation changed: node rows before and after (None = absent), edges added/removed."""

    nodes: dict[tuple[str, str], tuple[Row | None, Row | None]] = field(default_factory=dict)
    added: list[Edge] = field(default_factory=list)
    removed: list[Edge] = field(default_factory=list)

    def put(self, table: str, key: str, before: Row | None, after: Row | None) -> None:
        first = self.nodes.get((table, key), (before, None))[0]
        self.nodes[(table, key)] = (first, after)

    def inverse(self) -> ChangeSet:
        return ChangeSet({k: (a, b) for k, (b, a) in self.nodes.items()}, list(self.removed), list(self.added))

    def to_json(self) -> str:
        return json.dumps({"nodes": [[t, k, b, a] for (t, k), (b, a) in self.nodes.items()],
                           "added": self.added, "removed": self.removed}, ensure_ascii=False, default=iso)

    @classmethod
    def from_json(cls, text: str) -> ChangeSet:
        data = json.loads(text)
        return cls({(t, k): (b, a) for t, k, b, a in data["nodes"]},
                   [tuple(e) for e in data["added"]], [tuple(e) for e in data["removed"]])


def iso(v: Any) -> str:
    """JSON fallback: dates and times as ISO 8601, anything else as text."""
    return v.isoformat() if isinstance(v, (dt.date, dt.datetime)) else str(v)
