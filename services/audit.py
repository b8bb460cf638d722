"""Access audit: one line per read of personal data, allowed or denied (FHIR AuditEvent shape).

The tamper-evident chain (SM3) and signed checkpoints arrive with the privacy work; the record
shape here is the one that chain will carry.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path
from typing import Any

from services.privacy import Viewer


class AuditLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def record(self, viewer: Viewer, action: str, entity: str, outcome: str, **detail: Any) -> None:
        event = {"recorded": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"),
                 "agent": {"who": viewer.user, "role": viewer.role}, "purposeOfUse": viewer.purpose,
                 "action": action, "entity": entity, "outcome": outcome, **detail}
        line = json.dumps(event, ensure_ascii=False, default=str)
        with self._lock, self.path.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    def events(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with self.path.open(encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]
