"""Master person index (平台主索引): one stable master id per person across source systems.

Functions of the national guide: §72 平台主索引, §73 注册服务 (person registration), §77.3 the
IHE PIX-based master index (cross-references) and PDQ (demographic query).

Every source record (a ``Resident`` node, keyed by source system and local id) has exactly one
MATCH link to an active ``MasterPerson``; POSSIBLE_MATCH links wait in the review queue;
NO_MATCH links record a judgement that a record is not that person (never re-linked
automatically); REDIRECT links point at masters merged away. Links carry their origin (AUTO or
MANUAL), probability, match weight and per-field evidence.

All state lives in the graph. Every operation builds a change set (nodes before and after,
edges added and removed), writes it in one transaction and keeps it on an ``IdentityEvent`` with
who, when and why: that is the history, and what lets ``unmerge`` restore the exact prior state.
Subscribers receive each event after it commits.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from rich.progress import Progress

from graph import GraphStore, Provenance
from models.matching import Comparison, MatchModel, PersonMatcher, cluster_assignment, dedupe
from models.matching.model import NON_MATCH
from ontology import errors
from ontology.identifiers import is_valid_resident_id, parse_resident_id, upgrade_15_to_18
from ontology.validate import plain, validate_nodes
from services.changes import ChangeSet, Edge, Row

MATCH, POSSIBLE_MATCH, NO_MATCH, REDIRECT = "MATCH", "POSSIBLE_MATCH", "NO_MATCH", "REDIRECT"
AUTO, MANUAL = "AUTO", "MANUAL"
ACTIVE, MERGED = "active", "merged"
PERSON_FIELDS = ("name", "sex", "birth_date", "id_number", "phone", "address", "division_code")
SYSTEM_ACTOR = "system:mpi"

# Trust given to a source system when it is first seen; operators change it in the registry.
# The population registry (全员人口信息库) outranks hospital systems, which outrank the rest.
DEFAULT_TRUST = ((re.compile(r"PHIS"), 90), (re.compile(r"HIS-.*"), 60), (re.compile(r".*"), 40))



def default_trust(system: str) -> int:
    return next(t for rx, t in DEFAULT_TRUST if rx.fullmatch(system))


def link_id(record: str, master: str) -> str:
    return f"{record}|{master}"


@dataclass(frozen=True)
class Candidate:
    """A master person that a record may be, with the comparison that says why."""

    master_id: str
    decision: str  # MATCH | POSSIBLE_MATCH | NO_MATCH by the model's thresholds
    comparison: Comparison

    def to_dict(self) -> dict[str, Any]:
        return {"master_id": self.master_id, "decision": self.decision, **self.comparison.to_dict()}


class MasterPersonIndex:
    """The master person index over a graph store. Not thread-safe for writes from several
    processes; within one process every operation is serialised."""

    def __init__(self, store: GraphStore, model: MatchModel | None = None, *,
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        self.store = store
        self.onto = store.onto
        self.model = model or MatchModel.load()
        self.clock = clock or (lambda: dt.datetime.now().replace(microsecond=0))
        self._lock = threading.RLock()
        self._subscribers: list[Callable[[dict[str, Any]], None]] = []
        self._last_ns = 0
        self.reload()

    # ------------------------------------------------------------------ in-memory mirror
    def reload(self) -> None:
        """Rebuild the in-memory mirror (matcher index, link maps) from the graph."""
        with self._lock:
            cols = ["source_system", *PERSON_FIELDS]
            records = self.store.nodes("Resident", cols)
            self.matcher = PersonMatcher(self.model)
            if len(records):
                self.matcher.add(records)
            self.record_system = dict(zip(records["key"], records["source_system"], strict=True)) \
                if len(records) else {}
            links = self.store.nodes("PersonLink", ["state"])
            self.links: dict[str, str] = dict(zip(links["key"], links["state"], strict=True)) if len(links) else {}
            self.by_record: dict[str, set[str]] = defaultdict(set)
            self.by_master: dict[str, set[str]] = defaultdict(set)
            for lid in self.links:
                record, master = lid.rsplit("|", 1)
                self.by_record[record].add(lid)
                self.by_master[master].add(lid)
            masters = self.store.nodes("MasterPerson", ["status"])
            self.status: dict[str, str] = dict(zip(masters["key"], masters["status"], strict=True)) \
                if len(masters) else {}
            self._next_master = 1 + max((int(k[2:]) for k in self.status), default=0)
            systems = self.store.nodes("SourceSystem", ["trust"])
            self.trust: dict[str, int] = dict(zip(systems["key"], systems["trust"], strict=True)) \
                if len(systems) else {}

    def master_of(self, record: str) -> str:
        """The active master person a source record belongs to."""
        for lid in self.by_record.get(record, ()):
            if self.links[lid] == MATCH:
                return lid.rsplit("|", 1)[1]
        raise errors.NodeNotFound(f"no master person links record {record!r} (is the index built?)",
                                  cls="Resident", key=record)

    def records_of(self, master: str, state: str = MATCH) -> list[str]:
        return sorted(lid.rsplit("|", 1)[0] for lid in self.by_master.get(master, ()) if self.links[lid] == state)

    def _require_master(self, master: str) -> None:
        if master not in self.status:
            raise errors.NodeNotFound(f"no master person {master!r}", cls="MasterPerson", key=master)

    def _require_active(self, master: str) -> None:
        self._require_master(master)
        if self.status[master] != ACTIVE:
            raise errors.InvalidLinkOperation(f"master person {master} was merged away; use the one it redirects to",
                                              master_id=master)

    # ------------------------------------------------------------------ questions (no side effects)
    def match(self, record: Row, *, limit: int = 10) -> list[Candidate]:
        """Candidate master persons for a record, best first, with scores and per-field evidence
        (FHIR Patient/$match). Masters this record was judged NOT to be are left out."""
        key = record.get("key")
        excluded = {lid.rsplit("|", 1)[1] for lid in self.by_record.get(key, ()) if self.links[lid] == NO_MATCH} \
            if key else set()  # the record's own master stays in: an update may fit another better
        best: dict[str, Comparison] = {}
        for comp in self.matcher.match(record, limit=200, min_probability=0.0):
            try:
                master = self.master_of(comp.key)
            except errors.NodeNotFound:
                continue  # a record not yet linked (during a build)
            if master in excluded:
                continue
            if master not in best or comp.weight > best[master].weight:
                best[master] = comp
        ranked = sorted(best.items(), key=lambda kv: (-kv[1].deterministic, -kv[1].weight))[:limit]
        return [Candidate(m, self._decision(c), c) for m, c in ranked]

    def _current_master(self, record: str) -> str | None:
        try:
            return self.master_of(record)
        except errors.NodeNotFound:
            return None

    @staticmethod
    def _decision(comp: Comparison) -> str:
        """The model's decision (thresholds plus its rules, e.g. a name must agree for an automatic MATCH)."""
        return NO_MATCH if comp.decision == NON_MATCH else comp.decision

    def golden(self, master: str) -> Row:
        """The golden record of a master person (redirects are followed)."""
        self._require_master(master)
        return self.store.get("MasterPerson", self.resolve(master))

    def resolve(self, master: str) -> str:
        """Follow merged_into redirects to the active master."""
        seen = set()
        while self.status.get(master) == MERGED and master not in seen:
            seen.add(master)
            nxt = [n["key"] for n in self.store.neighbours("MasterPerson", master, edge="merged_into")
                   if n["direction"] == "out"]
            if not nxt:
                break
            master = nxt[0]
        return master

    def cross_references(self, source_system: str, source_id: str, *,
                         systems: Iterable[str] | None = None) -> dict[str, Any]:
        """PIX query: the master id of a source record and the ids it has in other source systems."""
        record = f"{source_system}:{source_id}"
        master = self.master_of(record)
        wanted = set(systems) if systems else None
        refs = [{"source_system": self.record_system[r], "source_id": r.split(":", 1)[1], "record": r}
                for r in self.records_of(master)
                if r != record and (wanted is None or self.record_system[r] in wanted)]
        return {"master_id": master, "record": record, "identifiers": refs}

    def demographic_query(self, query: Row, *, limit: int = 10, min_probability: float | None = None) -> list[Row]:
        """PDQ query: master persons whose records match the given demographics, best first."""
        floor = self.model.possible_threshold if min_probability is None else min_probability
        out = []
        for cand in self.match(query, limit=limit):
            if cand.comparison.probability >= floor or cand.comparison.deterministic:
                out.append({"master_id": cand.master_id, "probability": cand.comparison.probability,
                            "decision": cand.decision, "golden": self.golden(cand.master_id)})
        return out

    def review_queue(self, *, limit: int = 100) -> list[Row]:
        """POSSIBLE_MATCH links awaiting an operator, most probable first."""
        rows = self.store.query("possible_matches", limit=limit)
        for r in rows:
            r["evidence"] = json.loads(r["evidence"]) if r.get("evidence") else []
        return rows

    def history(self, subject: str) -> list[Row]:
        """Every change that concerned a master id or a record key, oldest first."""
        return self.store.query("identity_history", subject=subject)

    def events(self, *, since: str = "", limit: int = 100) -> list[Row]:
        """Identity events after an event id (for consumers that poll)."""
        return self.store.query("identity_events", since=since, limit=limit)

    def subscribe(self, callback: Callable[[dict[str, Any]], None]) -> None:
        """Call ``callback(event)`` after every committed change (alerts and search react to these)."""
        self._subscribers.append(callback)

    # ------------------------------------------------------------------ operations
    def register_source(self, code: str, name: str, *, trust: int | None = None, actor: str = SYSTEM_ACTOR) -> Row:
        """Register (or update) a source system: an assigning authority of local person ids."""
        with self._lock:
            row = {"key": code, "class": "SourceSystem", "code": code, "name": name,
                   "trust": default_trust(code) if trust is None else int(trust)}
            cs = ChangeSet()
            cs.put("SourceSystem", code, self._row("SourceSystem", code), row)
            self._commit(cs, "register", actor, f"source system {code}", masters=[], records=[])
            self.trust[code] = row["trust"]
            return row

    def register(self, record: Row, *, actor: str, reason: str | None = None) -> dict[str, Any]:
        """Register or update a person record from a source system and link it to a master person.

        Returns the record key, its master id, the link and the candidates considered.
        """
        with self._lock:
            row = self._checked_record(record)
            key = row["key"]
            before = self._row("Resident", key)
            cs = ChangeSet()
            cs.put("Resident", key, before, row)
            if before is not None:
                self.matcher.remove(key)
            self.matcher.add([{k: row.get(k) for k in ("key", *PERSON_FIELDS)}])
            self.record_system[key] = row["source_system"]
            self._place(cs, key, (before or {}).get("division_code"), row.get("division_code"))
            current = self._current_master(key)
            cands = self.match(row)
            top = cands[0] if cands else None
            manual = current is not None and self._link_row(key, current).get("origin") == MANUAL
            if top is not None and top.decision == MATCH and top.master_id != current and not manual:
                self._move(cs, key, top.master_id, AUTO, top.comparison)
            elif current is None:
                self._move(cs, key, None, AUTO, None)
            elif not manual and len(self.records_of(current)) > 1 and not self._still_matches(row, current):
                self._move(cs, key, None, AUTO, None)  # the update no longer looks like its person
            master = self._current_master(key)
            for cand in cands:
                if cand.decision != NO_MATCH and cand.master_id != master:
                    self._set_link(cs, key, cand.master_id, POSSIBLE_MATCH, AUTO, cand.comparison)
            self._refresh_golden(cs, master)
            if current and current != master:
                self._refresh_golden(cs, current)
            event = self._commit(cs, "update" if before else "register", actor, reason,
                                 masters=[m for m in (master, current) if m], records=[key])
            return {"record": key, "master_id": master, "link": self._link_row(key, master),
                    "candidates": [c.to_dict() for c in cands], "event": event["event_id"]}

    def link(self, record: str, master: str, *, actor: str, reason: str | None = None,
             action: str = "link") -> dict[str, Any]:
        """Link a record to a master person by hand (MATCH, MANUAL). A master left without records
        is merged into the target (its old link becomes REDIRECT)."""
        with self._lock:
            self._require_active(master)
            current = self.master_of(record)
            if current == master:
                raise errors.InvalidLinkOperation(f"record {record} is already linked to {master}",
                                                  record=record, master_id=master)
            cs = ChangeSet()
            comp = self.model.compare(self._person(record), self._golden_person(master))
            self._move(cs, record, master, MANUAL, comp)
            self._refresh_golden(cs, master)
            self._refresh_golden(cs, current)
            event = self._commit(cs, action, actor, reason, masters=[current, master], records=[record])
            return {"record": record, "master_id": master, "previous_master": current, "event": event["event_id"]}

    def unlink(self, record: str, *, actor: str, reason: str | None = None) -> dict[str, Any]:
        """Detach a record from its master: it gets a master of its own and the old link becomes
        NO_MATCH (MANUAL), so automatic matching never puts it back."""
        with self._lock:
            current = self.master_of(record)
            if self.records_of(current) == [record]:
                raise errors.InvalidLinkOperation(f"record {record} is the only record of {current}: nothing to "
                                                  "unlink it from", record=record, master_id=current)
            cs = ChangeSet()
            new = self._move(cs, record, None, MANUAL, None)
            self._refresh_golden(cs, new)
            self._refresh_golden(cs, current)
            event = self._commit(cs, "unlink", actor, reason, masters=[current, new], records=[record])
            return {"record": record, "master_id": new, "previous_master": current, "event": event["event_id"]}

    def merge(self, source: str, target: str, *, actor: str, reason: str | None = None) -> dict[str, Any]:
        """Merge master ``source`` into ``target``: its MATCH links become REDIRECT, its records link
        to the target (MANUAL), the source redirects to the target. No source record is lost."""
        with self._lock:
            if source == target:
                raise errors.MergeIntoSelf(f"cannot merge {source} into itself", master_id=source)
            self._require_active(source)
            self._require_active(target)
            cs = ChangeSet()
            moved = self.records_of(source)
            for record in moved:
                comp = self.model.compare(self._person(record), self._golden_person(target))
                self._set_link(cs, record, source, REDIRECT, MANUAL, None, keep_score=True)
                self._set_link(cs, record, target, MATCH, MANUAL, comp)
            self._set_status(cs, source, MERGED)
            cs.added.append(("merged_into", source, target, "MasterPerson", "MasterPerson"))
            self._refresh_golden(cs, target)
            event = self._commit(cs, "merge", actor, reason, masters=[source, target], records=moved)
            return {"merged": source, "into": target, "records": moved, "event": event["event_id"]}

    def unmerge(self, master: str, *, actor: str, reason: str | None = None) -> dict[str, Any]:
        """Undo the merge that took ``master`` away, restoring the exact prior state of every node
        and edge it changed. Refused when later changes built on the merge (undo those first)."""
        with self._lock:
            self._require_master(master)
            if self.status[master] != MERGED:
                raise errors.NotMerged(f"master person {master} was never merged away", master_id=master)
            merges = [(e, ChangeSet.from_json(e["change"])) for e in self.store.query("identity_changes", subject=master)
                      if e["action"] in ("merge", "link", "accept")]
            merges = [(e, c) for e, c in merges
                      if (c.nodes.get(("MasterPerson", master)) or (None, None))[1]
                      and c.nodes[("MasterPerson", master)][1]["status"] == MERGED]
            if not merges:
                raise errors.NotMerged(f"no recorded merge took {master} away", master_id=master)
            done, change = merges[-1]
            for (table, key), (_, after) in change.nodes.items():
                if not _same(self._row(table, key), after):
                    raise errors.StaleChange(f"{table} {key} changed after event {done['event']}; undo the later "
                                             "changes first", event_id=done["event"], table=table, key=key)
            undo = change.inverse()
            event = self._commit(undo, "unmerge", actor, reason or f"undo {done['event']}",
                                 masters=list(done["masters"]), records=list(done["records"]), restore=True)
            return {"restored": master, "undid": done["event"], "event": event["event_id"]}

    def accept(self, link: str, *, actor: str, reason: str | None = None) -> dict[str, Any]:
        """Accept a POSSIBLE_MATCH from the review queue: the record joins that master person."""
        record, master = self._possible(link)
        return self.link(record, self.resolve(master), actor=actor, reason=reason, action="accept")

    def reject(self, link: str, *, actor: str, reason: str | None = None) -> dict[str, Any]:
        """Reject a POSSIBLE_MATCH: it becomes NO_MATCH (MANUAL) and leaves the queue."""
        with self._lock:
            record, master = self._possible(link)
            cs = ChangeSet()
            self._set_link(cs, record, master, NO_MATCH, MANUAL, None, keep_score=True)
            event = self._commit(cs, "reject", actor, reason, masters=[master], records=[record])
            return {"link": link, "state": NO_MATCH, "event": event["event_id"]}

    def _possible(self, link: str) -> tuple[str, str]:
        if link not in self.links:
            raise errors.NodeNotFound(f"no person link {link!r}", cls="PersonLink", key=link)
        if self.links[link] != POSSIBLE_MATCH:
            raise errors.InvalidLinkOperation(f"link {link} is {self.links[link]}, not awaiting review", link=link)
        record, master = link.rsplit("|", 1)
        return record, master

    # ------------------------------------------------------------------ bulk build
    def build(self, *, actor: str = SYSTEM_ACTOR, progress: bool = True) -> dict[str, Any]:
        """Link every source record not yet in the index.

        On an empty index this is a batch dedupe (blocking, scoring, connected components of MATCH
        pairs) written in bulk; afterwards new records are registered one by one. Re-running with
        nothing new changes nothing.
        """
        with self._lock:
            records = self.store.nodes("Resident", ["source_system", *PERSON_FIELDS])
            new_systems = sorted(set(records["source_system"]) - set(self.trust)) if len(records) else []
            for system in new_systems:
                self.register_source(system, system, actor=actor)
            todo = records[~records["key"].isin(self.by_record.keys())] if len(records) else records
            if todo.empty:
                return {"records": int(len(records)), "linked": 0, "masters": len(self.status),
                        "possible": sum(s == POSSIBLE_MATCH for s in self.links.values())}
            if self.status:
                with Progress(disable=not progress) as bar:
                    task = bar.add_task("主索引登记 registering new records", total=len(todo))
                    for row in todo.to_dict("records"):
                        self.register(_unkeyed(row), actor=actor, reason="build: new record")
                        bar.advance(task)
                return {"records": int(len(records)), "linked": int(len(todo)), "masters": len(self.status),
                        "possible": sum(s == POSSIBLE_MATCH for s in self.links.values())}
            return self._bulk_build(todo, actor, progress)

    def _bulk_build(self, records: pd.DataFrame, actor: str, progress: bool) -> dict[str, Any]:
        pairs = dedupe(records, self.model, progress=progress)
        keys = records["key"].to_numpy()
        n = len(keys)
        is_match = (pairs["decision"] == MATCH).to_numpy()
        mp = pairs[is_match]
        component = cluster_assignment(records, pairs).reindex(keys).to_numpy()
        order = pd.unique(component)  # masters numbered in record order
        numbers = pd.Series(np.arange(self._next_master, self._next_master + len(order)), index=order)
        master = pd.Series(("MP" + pd.Series(numbers[component].to_numpy()).astype(str).str.zfill(10)).to_numpy(),
                           index=keys)
        self._next_master += len(order)
        now = self.clock()
        # Each record's MATCH link carries its best pair inside the cluster; POSSIBLE_MATCH links
        # point at the other record's master. Both keep the pair they came from as evidence.
        both = pd.concat([mp[["key_l", "key_r", "probability", "weight"]].rename(columns={"key_l": "record",
                                                                                        "key_r": "partner"}),
                          mp[["key_r", "key_l", "probability", "weight"]].rename(columns={"key_r": "record",
                                                                                        "key_l": "partner"})])
        best = both.sort_values("probability", ascending=False).drop_duplicates("record").set_index("record")
        links = pd.DataFrame({"record": keys, "master": master.to_numpy()})
        links["state"], links["origin"] = MATCH, AUTO
        links["partner"] = best["partner"].reindex(keys).to_numpy()
        links["probability"] = best["probability"].reindex(keys).to_numpy()
        links["match_weight"] = best["weight"].reindex(keys).to_numpy()
        possible = pairs[~is_match]
        possible = possible[master[possible["key_l"]].to_numpy() != master[possible["key_r"]].to_numpy()]
        poss = pd.DataFrame({"record": possible["key_l"].to_numpy(), "master": master[possible["key_r"]].to_numpy(),
                             "partner": possible["key_r"].to_numpy(), "state": POSSIBLE_MATCH, "origin": AUTO,
                             "probability": possible["probability"].to_numpy(),
                             "match_weight": possible["weight"].to_numpy()})
        poss = poss.sort_values("probability", ascending=False).drop_duplicates(["record", "master"])
        links = pd.concat([links, poss], ignore_index=True)
        links["key"] = links["record"] + "|" + links["master"]
        links["link_id"], links["class"], links["linked_at"] = links["key"], "PersonLink", now
        links["evidence"] = [None if pd.isna(p) else self._evidence(self.model.score(
            self.matcher.record(r), self.matcher.record(p), p)) for r, p in zip(links["record"], links["partner"],
                                                                               strict=True)]
        links = links.drop(columns=["partner"])
        event_id = self._event_id()
        prov = Provenance("mpi:build", event_id, now)
        goldens = self._bulk_goldens(records, master)
        # All or nothing on the embedded store. A server commits the bulk batches as they go (a
        # province's links outgrow its per-transaction memory); after a failed build, re-running
        # registers the records left unlinked one by one.
        with self.store.transaction() if self.store.exclusive_writer else contextlib.nullcontext():
            self._write("MasterPerson", goldens, prov)
            self._write("PersonLink", links.drop(columns=["record", "master"]), prov)
            for edge, col, table in (("link_record", "record", "Resident"), ("link_master", "master", "MasterPerson")):
                self.store.upsert_edges(edge, pd.DataFrame({"src": links["key"], "dst": links[col],
                                                            "src_table": "PersonLink", "dst_table": table}), prov)
            summary = {"records": int(n), "linked": int(n), "masters": int(len(goldens)),
                       "possible": int(len(poss))}
            self.store.record_batch(prov, received=n, accepted=n, quarantined=0)
            self._write("IdentityEvent", pd.DataFrame([{
                "key": event_id, "class": "IdentityEvent", "event_id": event_id, "action": "build", "actor": actor,
                "reason": json.dumps(summary), "occurred_at": now, "masters": [], "records": []}]), prov)
        self.reload()
        self._emit({"event_id": event_id, "action": "build", "actor": actor, "occurred_at": now.isoformat(),
                    **summary})
        return summary

    def _bulk_goldens(self, records: pd.DataFrame, master: pd.Series) -> pd.DataFrame:
        # Grouped by hand, masters in order of first appearance: a pandas group per master cost ~0.3 ms
        # (most masters have one record), minutes at 1M residents.
        members: dict[str, list[Row]] = {}
        for row, m in zip(records.to_dict("records"), master.reindex(records["key"]).to_numpy(), strict=True):
            members.setdefault(m, []).append(row)
        rows = []
        for m, group in members.items():
            golden, chosen = survivorship(group, self.trust, {})
            rows.append({"key": m, "class": "MasterPerson", "master_id": m, "status": ACTIVE, **golden,
                         "survivorship": json.dumps(chosen, ensure_ascii=False)})
        return pd.DataFrame(rows)

    # ------------------------------------------------------------------ change primitives
    def _move(self, cs: ChangeSet, record: str, target: str | None, origin: str,
              comp: Comparison | None) -> str:
        """Make ``target`` (or a new master) the record's MATCH; retire the old link."""
        current = self._current_master(record)
        if target is None:
            target = self._new_master(cs)
        if current is not None:
            emptied = self.records_of(current) == [record]
            old_state = REDIRECT if emptied else NO_MATCH
            self._set_link(cs, record, current, old_state, origin, None, keep_score=True)
            if emptied:
                self._set_status(cs, current, MERGED)
                cs.added.append(("merged_into", current, target, "MasterPerson", "MasterPerson"))
        self._set_link(cs, record, target, MATCH, origin, comp)
        return target

    def _place(self, cs: ChangeSet, record: str, old: str | None, new: str | None) -> None:
        """Keep the record's resides_in edge on its division (when the division is in the graph)."""
        if old == new:
            return
        if old:
            cs.removed.append(("resides_in", record, old, "Resident", "Division"))
        if new and self._row("Division", new) is not None:
            cs.added.append(("resides_in", record, new, "Resident", "Division"))

    def _new_master(self, cs: ChangeSet) -> str:
        master = f"MP{self._next_master:010d}"
        self._next_master += 1
        cs.put("MasterPerson", master, None, {"key": master, "class": "MasterPerson", "master_id": master,
                                              "status": ACTIVE})
        self.status[master] = ACTIVE
        return master

    def _set_status(self, cs: ChangeSet, master: str, status: str) -> None:
        row = dict(self._pending(cs, "MasterPerson", master))
        row["status"] = status
        cs.put("MasterPerson", master, self._row("MasterPerson", master), row)
        self.status[master] = status

    def _set_link(self, cs: ChangeSet, record: str, master: str, state: str, origin: str,
                  comp: Comparison | None, *, keep_score: bool = False) -> None:
        lid = link_id(record, master)
        before = self._row("PersonLink", lid)
        pending = self._pending(cs, "PersonLink", lid) if (before or (("PersonLink", lid) in cs.nodes)) else None
        row = {"key": lid, "class": "PersonLink", "link_id": lid, "state": state, "origin": origin,
               "linked_at": self.clock()}
        if keep_score and pending:
            row.update({k: pending.get(k) for k in ("probability", "match_weight", "evidence")})
        elif comp is not None:
            row.update(probability=comp.probability, match_weight=comp.weight, evidence=self._evidence(comp))
        cs.put("PersonLink", lid, before, row)
        if before is None and ("link_record", lid, record, "PersonLink", "Resident") not in cs.added:
            cs.added.append(("link_record", lid, record, "PersonLink", "Resident"))
            cs.added.append(("link_master", lid, master, "PersonLink", "MasterPerson"))
        self.links[lid] = state
        self.by_record[record].add(lid)
        self.by_master[master].add(lid)

    @staticmethod
    def _evidence(comp: Comparison) -> str:
        """Which level each field reached and its weight; never the values (they are personal data)."""
        levels = [{"field": f.field, "level": f.level, "weight": round(f.weight, 4)} for f in comp.fields]
        if comp.deterministic:
            levels.append({"field": "id_number", "level": "deterministic", "weight": None})
        return json.dumps(levels, ensure_ascii=False)

    def _refresh_golden(self, cs: ChangeSet, master: str | None) -> None:
        if master is None or self.status.get(master) != ACTIVE:
            return
        people = [self._person(r, cs) for r in self.records_of(master)]
        linked_at = {r: self._pending(cs, "PersonLink", link_id(r, master)).get("linked_at")
                     for r in self.records_of(master)}
        golden, chosen = survivorship(people, self.trust, linked_at)
        row = {**self._pending(cs, "MasterPerson", master), **golden,
               "survivorship": json.dumps(chosen, ensure_ascii=False)}
        cs.put("MasterPerson", master, self._row("MasterPerson", master), row)

    def _pending(self, cs: ChangeSet, table: str, key: str) -> Row:
        """A node's row as this change set leaves it so far."""
        if (table, key) in cs.nodes:
            return dict(cs.nodes[(table, key)][1] or {})
        return dict(self._row(table, key) or {})

    def _row(self, table: str, key: str) -> Row | None:
        """A node's stored row (every property, None for missing) or None when absent."""
        try:
            node = self.store.get(table, key)
        except errors.NodeNotFound:
            return None
        cols = self.store.columns(table)
        return {c: node.get(c) for c in [*cols, "batch_id"] if c != "content_hash"}

    def _link_row(self, record: str, master: str) -> Row:
        return self._row("PersonLink", link_id(record, master)) or {}

    def _person(self, record: str, cs: ChangeSet | None = None) -> Row:
        row = self._pending(cs, "Resident", record) if cs else (self._row("Resident", record) or {})
        return {"key": record, **{f: row.get(f) for f in ("source_system", *PERSON_FIELDS)}}

    def _golden_person(self, master: str) -> Row:
        row = self._row("MasterPerson", master) or {}
        return {"key": master, **{f: row.get(f) for f in PERSON_FIELDS}}

    def _still_matches(self, row: Row, master: str) -> bool:
        others = [r for r in self.records_of(master) if r != row["key"]]
        return any(self._decision(self.model.compare(row, self._person(o))) != NO_MATCH for o in others)

    def _checked_record(self, record: Row) -> Row:
        record = {k: v for k, v in record.items() if v is not None and v != ""}
        system = record.get("source_system")
        if not system or not record.get("source_id"):
            raise errors.MissingKey("a person record needs source_system and source_id",
                                    fields=["source_system", "source_id"])
        if system not in self.trust:
            raise errors.UnknownSource(f"source system {system!r} is not registered "
                                       f"{errors.did_you_mean(str(system), self.trust)}; register it first",
                                       source_system=system)
        number = record.get("id_number")
        if number:
            try:
                parse_resident_id(str(number))
            except ValueError as exc:
                raise errors.InvalidResidentId(f"resident id {number!r}: {exc}", field="id_number") from None
        frame = pd.DataFrame([{**{k: v for k, v in record.items() if k != "key"}, "class": "Resident"}])
        checked = validate_nodes(self.onto, "Resident", frame)
        if checked.rejected:
            bad = checked.rejected[0]
            raise _validation_error(bad.codes[0], "; ".join(bad.messages))
        row = {c: None for c in self.store.columns("Resident") if c != "content_hash"}
        props = self.onto.table_properties("Resident")
        for k, v in checked.accepted.iloc[0].items():
            if k in row:
                v = plain(v)
                row[k] = v.date() if isinstance(v, dt.datetime) and props[k].datatype == "date" else v
        row["batch_id"] = None
        return row

    # ------------------------------------------------------------------ commit
    def _event_id(self) -> str:
        # Sortable by when it happened: nanoseconds of the wall clock, strictly increasing in-process
        # (history and unmerge read events in id order).
        self._last_ns = max(time.time_ns(), self._last_ns + 1)
        return f"IE{self._last_ns:020d}"

    def _commit(self, cs: ChangeSet, action: str, actor: str, reason: str | None, *, masters: list[str],
                records: list[str], restore: bool = False) -> dict[str, Any]:
        """Write a change set and its IdentityEvent in one transaction, then tell subscribers."""
        event_id = self._event_id()
        now = self.clock()
        prov = Provenance(f"mpi:{action}", event_id, now)
        cs.nodes = {k: (b, a) for k, (b, a) in cs.nodes.items() if not _same(b, a)}  # drop no-op writes
        if not restore:  # forward changes carry this event as their batch; a restore keeps the old batches
            for key, (before, after) in cs.nodes.items():
                if after is not None:
                    cs.nodes[key] = (before, {**after, "batch_id": event_id})
        masters = list(dict.fromkeys(m for m in masters if m))
        event = {"key": event_id, "class": "IdentityEvent", "event_id": event_id, "action": action, "actor": actor,
                 "reason": reason, "occurred_at": now, "masters": masters, "records": list(dict.fromkeys(records)),
                 "change": cs.to_json()}
        try:
            with self.store.transaction():
                self._apply(cs, prov)
                self._write("IdentityEvent", pd.DataFrame([event]), prov)
                self.store.record_batch(prov, received=len(cs.nodes), accepted=len(cs.nodes), quarantined=0)
        except BaseException:
            self.reload()  # the mirror may hold the failed change
            raise
        self._mirror(cs)
        public = {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in event.items()
                  if k not in ("key", "class", "change")}
        self._emit(public)
        return public

    def _mirror(self, cs: ChangeSet) -> None:
        """Bring the in-memory maps in line with a committed change set."""
        for (table, key), (_, after) in cs.nodes.items():
            if table == "MasterPerson":
                if after is None:
                    self.status.pop(key, None)
                else:
                    self.status[key] = after["status"]
            elif table == "PersonLink":
                record, master = key.rsplit("|", 1)
                if after is None:
                    self.links.pop(key, None)
                    self.by_record[record].discard(key)
                    self.by_master[master].discard(key)
                else:
                    self.links[key] = after["state"]
                    self.by_record[record].add(key)
                    self.by_master[master].add(key)

    def _apply(self, cs: ChangeSet, prov: Provenance) -> None:
        deletes: dict[str, list[str]] = defaultdict(list)
        upserts: dict[tuple[str, str], list[Row]] = defaultdict(list)
        for (table, key), (_, after) in cs.nodes.items():
            if after is None:
                deletes[table].append(key)
            else:
                upserts[(table, after.get("batch_id") or prov.batch_id)].append(after)
        for edge_type, group in itertools.groupby(sorted(cs.removed), key=lambda e: e[0]):
            self.store.delete_edges(edge_type, _edge_frame(group))
        for table in ("PersonLink", "IdentityEvent", "MasterPerson", "Resident", "SourceSystem"):
            if deletes.get(table):
                self.store.delete_nodes(table, deletes[table])
        for (table, batch), rows in sorted(upserts.items()):
            self._write(table, pd.DataFrame(rows).drop(columns=["batch_id"]),
                        Provenance(prov.source, batch, prov.ingested_at))
        for edge_type, group in itertools.groupby(sorted(cs.added), key=lambda e: e[0]):
            self.store.upsert_edges(edge_type, _edge_frame(group), prov)

    def _write(self, table: str, frame: pd.DataFrame, prov: Provenance) -> None:
        """Validate rows against the ontology, then upsert: the index writes nothing the ontology forbids."""
        frame = frame.drop(columns=[c for c in ("batch_id", "content_hash") if c in frame])
        checked = validate_nodes(self.onto, table, frame)
        if checked.rejected:
            bad = checked.rejected[0]
            raise _validation_error(bad.codes[0], f"{table} {bad.record.get('key')}: " + "; ".join(bad.messages))
        self.store.upsert_nodes(table, checked.accepted, prov)

    def _emit(self, event: dict[str, Any]) -> None:
        for callback in list(self._subscribers):
            callback(event)


# ---------------------------------------------------------------------- survivorship
def survivorship(records: list[Row], trust: dict[str, int], linked_at: dict[str, Any]) -> tuple[Row, dict[str, Row]]:
    """The golden record of one person from its source records, field by field.

    Rules (each field names the record and the rule that chose it):
    - id_number: a GB 11643-valid id (legacy 15-digit ids upgraded) from the most trusted source;
      an id failing its check digit never survives;
    - birth_date and sex: the most trusted source that agrees with the surviving id, else the most trusted;
    - name, division_code: the most trusted source (then the most common value);
    - phone: the most recently linked record (people change numbers), then trust;
    - address: the most complete (longest) text, then trust.
    """
    if not records:
        return {f: None for f in PERSON_FIELDS}, {}

    def rank(r: Row) -> tuple[int, str]:
        return (trust.get(str(r.get("source_system")), 0), str(r.get("key")))

    by_trust = sorted(records, key=rank, reverse=True)
    golden: Row = {}
    chosen: dict[str, Row] = {}

    def pick(name: str, candidates: list[Row], rule: str, value: Callable[[Row], Any] = lambda r: None) -> None:
        for r in candidates:
            v = value(r) if value(r) is not None else r.get(name)
            if v is not None and v != "":
                golden[name], chosen[name] = v, {"record": r["key"], "rule": rule}
                return
        golden[name] = None

    def valid_id(r: Row) -> str | None:
        n = r.get("id_number")
        if not n:
            return None
        n = str(n).upper()
        if len(n) == 15 and n.isdigit():
            n = upgrade_15_to_18(n)
        return n if is_valid_resident_id(n) else None

    pick("id_number", [r for r in by_trust if valid_id(r)], "valid_id_most_trusted", valid_id)
    parsed = parse_resident_id(golden["id_number"]) if golden.get("id_number") else None
    agree = [r for r in by_trust if parsed and _as_date(r.get("birth_date")) == parsed.birth_date]
    pick("birth_date", agree or by_trust, "agrees_with_id" if agree else "most_trusted")
    agree_sex = [r for r in by_trust if parsed and r.get("sex") == parsed.sex]
    pick("sex", agree_sex or by_trust, "agrees_with_id" if agree_sex else "most_trusted")
    for name in ("name", "division_code"):
        pick(name, by_trust, "most_trusted")
    recent = sorted(records, key=lambda r: (str(linked_at.get(r["key"]) or ""), rank(r)), reverse=True)
    pick("phone", recent, "most_recent")
    complete = sorted(records, key=lambda r: (len(str(r.get("address") or "")), rank(r)), reverse=True)
    pick("address", complete, "most_complete")
    return golden, chosen


# ---------------------------------------------------------------------- helpers
def _same(current: Row | None, expected: Row | None) -> bool:
    """Equal content (provenance and link times aside)."""
    if current is None or expected is None:
        return current is None and expected is None
    keys = (set(current) | set(expected)) - {"linked_at", "batch_id"}
    return all(_norm(current.get(k)) == _norm(expected.get(k)) for k in keys)


def _norm(v: Any) -> Any:
    if isinstance(v, (dt.date, dt.datetime)):
        return v.isoformat()
    if isinstance(v, float):
        return round(v, 9)
    return v


def _as_date(v: Any) -> dt.date | None:
    if v is None:
        return None
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    try:
        return dt.date.fromisoformat(str(v)[:10])
    except ValueError:
        return None


def _edge_frame(edges: Iterable[Edge]) -> pd.DataFrame:
    return pd.DataFrame([{"src": s, "dst": d, "src_table": st, "dst_table": dt_} for _, s, d, st, dt_ in edges])


def _unkeyed(row: Row) -> Row:
    """A stored record as a registration request (its key is derived from source system and id)."""
    system, source_id = row["key"].split(":", 1)
    return {**{k: v for k, v in row.items() if k not in ("key", "class")}, "source_id": source_id}


def _validation_error(code: str, message: str) -> errors.ValidationError:
    cls = next((c for c in errors.VALIDATION_ERRORS if c.code == code), errors.ValidationError)
    return cls(message)
