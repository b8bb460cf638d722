"""The policy's facts from the graph: whose record a node is, whether a patient is in an institution's care, and
which nodes around a record may be shown."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from graph import GraphStore
from ontology.errors import HealthGraphError
from services.access.model import CATEGORY_OF_TABLE
from services.access.store import AccessStore
from services.privacy import Guard


class GraphFacts:
    """The policy's questions answered from the graph (ownership, care) and the consent store."""

    _TO_PATIENT = ("of_patient", "in_encounter", "item_of", "reaction_to")

    def __init__(self, store: Callable[[], GraphStore], guard: Callable[[], Guard], consents: AccessStore) -> None:
        self._store, self._guard, self._consents = store, guard, consents

    def is_personal(self, cls: str) -> bool:
        return self._guard().is_personal(cls)

    def patients_of(self, cls: str, key: str) -> frozenset[str]:
        return _patients(self._store(), cls, key)

    def in_care(self, resident: str, institution: str) -> bool:
        return any(r["key"] == institution for r in self._store().query("institutions_visited", resident_key=resident))

    def consented(self, resident: str, institution: str, purpose: str, cls: str) -> bool:
        table = self._store().onto.classes[cls].table if cls in self._store().onto.classes else cls
        return self._consents.consented(resident, institution, purpose, CATEGORY_OF_TABLE.get(table, "records"))


def _patients(store: GraphStore, cls: str, key: str, depth: int = 0) -> frozenset[str]:
    """The residents a node belongs to: itself for a resident, else along of_patient / in_encounter / item_of /
    reaction_to (at most three hops)."""
    if cls in store.onto.descendants("Resident") or cls in store.onto.descendants("MasterPerson"):
        return frozenset({key})
    if depth >= 3:
        return frozenset()
    found: set[str] = set()
    for edge in GraphFacts._TO_PATIENT:
        try:
            rows = store.neighbours(cls, key, edge=edge, limit=10)
        except HealthGraphError:
            continue
        for r in rows:
            if r["direction"] == "out":
                found |= _patients(store, r["class"], r["key"], depth + 1)
        if found:
            break
    return frozenset(found)


def scoped(store: GraphStore, guard: Guard, cls: str, key: str) -> Callable[[dict[str, Any]], bool]:
    """Whether a node found around (cls, key) may be shown: non-personal nodes always; personal ones only when
    they belong to no one but the start node's patients (a neighbour never opens another person's record)."""
    own = _patients(store, cls, key) if guard.is_personal(cls) else frozenset()
    cache = lru_cache(maxsize=1024)(lambda c, k: _patients(store, c, k))

    def visible(row: dict[str, Any]) -> bool:
        c, k = row.get("class"), row.get("key")
        if not c or not k or not guard.is_personal(c):
            return True
        mine = cache(c, k)
        return bool(own) and bool(mine) and mine <= own

    return visible
