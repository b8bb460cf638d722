"""Registries (注册服务, 应用功能指引 §73) that supervision needs (§45, §46, §69): practitioners,
institutions and terminology.

- **Practitioners** (医务人员): the person (GB 11643 id, GB/T 2261.1 sex), the qualification
  (资格证书) and each practice licence (执业证书编码): registered scope (执业范围), 诊疗科目,
  the institution registered at (注册执业机构), validity and registration status. 医师法 (2021)
  第十三条 (注册), 第十四条 (practice within the registered place, category and scope),
  第十六条 (注销), 第十七条 (变更注册).
- **Institutions** (医疗卫生机构): the unified social credit code (GB 32100-2015, with its check
  character), class and grade, location (GB/T 2260 division, address, coordinates) and the
  执业许可证 with licensed 诊疗科目 and validity (医疗机构管理条例 第十五条、第二十二条).
- **Terminology** (术语注册): code systems seeded from ontology/vocab, concepts per version
  (a later version adds, relabels or retires codes; earlier versions stay readable), hierarchy
  (ICD-10 chapter → code, ATC group → substance) and mappings with an equivalence (FHIR R4
  ConceptMap): ICD-10 → 诊疗科目, 执业范围 → 诊疗科目, drug → drug class, drug → ATC, drug class →
  ATC group.

All state lives in the graph as ontology classes. Every change is validated against the
ontology, written in one transaction together with a ``RegistryEvent`` (who, when, why and the
change set) and raises coded errors (HG-08xx) for what the rules forbid.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
import threading
import time
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import pandas as pd
from pypinyin import Style, lazy_pinyin
from rapidfuzz import fuzz
from rapidfuzz.distance import Levenshtein

from graph import GraphStore, Provenance
from ontology import errors
from ontology.identifiers import is_valid_uscc, parse_resident_id, uscc_check_char
from ontology.validate import plain, validate_nodes
from ontology.vocab import vocab
from services.changes import ChangeSet, Edge, Row, iso

SYSTEM_ACTOR = "system:registry"

# ---------------------------------------------------------------------- licence rules
REGISTERED, SUSPENDED, REVOKED, EXPIRED = "registered", "suspended", "revoked", "expired"
LICENCE_STATUSES = (REGISTERED, SUSPENDED, REVOKED, EXPIRED)
# 医师法 (2021) 第十六条: 注销 ends a registration; a practitioner registers anew (a new licence
# record). Suspension (中止) and expiry can be lifted by re-registration or renewal.
TRANSITIONS: dict[str, frozenset[str]] = {
    REGISTERED: frozenset({SUSPENDED, REVOKED, EXPIRED}),
    SUSPENDED: frozenset({REGISTERED, REVOKED, EXPIRED}),
    EXPIRED: frozenset({REGISTERED, REVOKED}),
    REVOKED: frozenset(),
}
# The loaded data's older ``status`` values; ``status`` keeps this convention (registered → active).
LEGACY_STATUS = {"active": REGISTERED, REGISTERED: REGISTERED, SUSPENDED: SUSPENDED, REVOKED: REVOKED,
                 "cancelled": REVOKED, EXPIRED: EXPIRED, "lapsed": EXPIRED}
LICENCE_CODE = re.compile(r"[0-9A-Z][0-9A-Z-]{5,39}")

# ---------------------------------------------------------------------- duplicate rules
PERSON_NAME_SAME_BIRTH = 0.85  # similar name + same birth date + same sex
PERSON_NAME_SAME_INSTITUTION = 0.9  # similar name + same sex + same institution, birth dates not contradicting
INSTITUTION_NAME = 0.8  # floor under the edit rule below
# Characters a name variant may drop or add without naming another institution ("杭州市第一人民医院"
# vs "杭州第一人民医院"), and legal-form words removed before comparing.
FILLER_CHARS = frozenset("省市区县")
LEGAL_FORMS = ("有限责任公司", "股份有限公司", "有限公司", "公司")
NUMERALS = re.compile(r"[0-9]+|[零〇一二三四五六七八九十百千两]+")


def today() -> dt.date:
    return dt.date.today()


# ---------------------------------------------------------------------- change sets and events
class _Base:
    """Shared write path: validate with the ontology, write in one transaction with a RegistryEvent."""

    registry = ""

    def __init__(self, store: GraphStore, *, clock: Callable[[], dt.datetime] | None = None,
                 lock: threading.RLock | None = None) -> None:
        self.store = store
        self.onto = store.onto
        self.clock = clock or (lambda: dt.datetime.now().replace(microsecond=0))
        self._lock = lock or threading.RLock()
        self._last_ns = 0

    def _row(self, table: str, key: str) -> Row | None:
        """A node's stored row (every property, None when missing) or None when absent."""
        try:
            node = self.store.get(table, key)
        except errors.NodeNotFound:
            return None
        return {c: node.get(c) for c in self.store.columns(table) if c != "content_hash"}

    def _event_id(self) -> str:
        # Sortable by when it happened: nanoseconds of the wall clock, strictly increasing in-process.
        self._last_ns = max(time.time_ns(), self._last_ns + 1)
        return f"RE{self._last_ns:020d}"

    def _commit(self, cs: ChangeSet, action: str, actor: str, reason: str | None, subjects: Iterable[str], *,
                summary: Row | None = None) -> Row:
        """Write a change set and its RegistryEvent in one transaction; returns the event (no change set).

        ``summary`` replaces the full change set on the event for bulk operations (seed, build).
        """
        if not actor:
            raise errors.MissingRequired("every registry change names its actor", field="actor")
        cs.nodes = {k: (b, a) for k, (b, a) in cs.nodes.items() if not _same(b, a)}
        event_id = self._event_id()
        now = self.clock()
        prov = Provenance(f"registry:{action}", event_id, now)
        subjects = list(dict.fromkeys(s for s in subjects if s))
        event = {"key": event_id, "class": "RegistryEvent", "event_id": event_id, "action": action,
                 "registry": self.registry, "actor": actor, "reason": reason, "occurred_at": now,
                 "subjects": subjects,
                 "change": json.dumps(summary, ensure_ascii=False, default=iso) if summary is not None
                 else cs.to_json()}
        with self._lock, self.store.transaction():
            for edge_type, group in itertools.groupby(sorted(cs.removed), key=lambda e: e[0]):
                self.store.delete_edges(edge_type, _edge_frame(group))
            by_table: dict[str, list[Row]] = defaultdict(list)
            for (table, _), (_, after) in cs.nodes.items():
                if after is not None:
                    by_table[table].append(after)
            for table in sorted(by_table):
                self._write(table, by_table[table], prov)
            for edge_type, group in itertools.groupby(sorted(set(cs.added)), key=lambda e: e[0]):
                self.store.upsert_edges(edge_type, _edge_frame(group), prov)
            self._write("RegistryEvent", [event], prov)
            self.store.record_batch(prov, received=len(cs.nodes), accepted=len(cs.nodes), quarantined=0)
        return {"event_id": event_id, "action": action, "registry": self.registry, "actor": actor, "reason": reason,
                "occurred_at": now.isoformat(), "subjects": subjects}

    def _write(self, table: str, rows: list[Row], prov: Provenance) -> None:
        """Validate rows against the ontology, then upsert: the registries write nothing it forbids."""
        frame = pd.DataFrame(rows)
        frame = frame.drop(columns=[c for c in ("batch_id", "content_hash") if c in frame])
        checked = validate_nodes(self.onto, table, frame)
        if checked.rejected:
            bad = checked.rejected[0]
            raise _validation_error(bad.codes[0], f"{table} {bad.record.get('key')}: " + "; ".join(bad.messages))
        self.store.upsert_nodes(table, checked.accepted, prov)

    def _checked(self, table: str, row: Row) -> Row:
        """One row validated (typed, key computed) without writing it: errors surface before any change."""
        frame = pd.DataFrame([{k: v for k, v in row.items() if k not in ("key", "batch_id", "content_hash")}])
        checked = validate_nodes(self.onto, table, frame)
        if checked.rejected:
            bad = checked.rejected[0]
            raise _validation_error(bad.codes[0], "; ".join(bad.messages))
        props = self.onto.table_properties(table)
        out: Row = {}
        for k, v in checked.accepted.iloc[0].items():
            v = plain(v)
            if k in props and props[k].datatype == "date" and isinstance(v, dt.datetime):
                v = v.date()
            out[k] = v
        return {c: out.get(c) for c in self.store.columns(table) if c != "content_hash"}

    def history(self, subject: str) -> list[Row]:
        """Every change of this registry concerning an entry (practitioner code, licence, USCC, code
        system), oldest first: who, when, why, and which fields of which nodes changed (no values)."""
        events = self.store.nodes("RegistryEvent", ["action", "registry", "actor", "reason", "occurred_at",
                                                    "subjects", "change"])
        out = []
        for e in events.to_dict("records"):
            if subject not in (e.get("subjects") or []):
                continue
            out.append({"event": e["key"], "action": e["action"], "registry": e["registry"], "actor": e["actor"],
                        "reason": e["reason"], "occurred_at": e["occurred_at"], "subjects": e["subjects"],
                        "changed": _changed_fields(e.get("change"))})
        return out


# ---------------------------------------------------------------------- practitioners
PRACTITIONER_FIELDS = ("name", "sex", "birth_date", "id_number", "phone", "title", "qualification_code",
                       "qualification_category")
LICENCE_FIELDS = ("licence", "practice_scope", "licensed_subjects", "valid_from", "valid_to", "status",
                  "institution")


class PractitionerRegistry(_Base):
    """医务人员注册 Practitioners with their qualification and practice licences."""

    registry = "practitioner"

    # ---------------------------------------------------------------- reads
    def get(self, code: str, *, as_of: dt.date | None = None) -> Row:
        """A practitioner, their licences (with the status in force ``as_of``) and institutions."""
        person = self._row("Practitioner", code)
        if person is None:
            raise errors.NodeNotFound(f"no practitioner {code!r}", cls="Practitioner", key=code)
        licences = [_licence_view(r, as_of or self.clock().date())
                    for r in self.store.query("practitioner_licences", code=code)]
        employers = [n["key"] for n in self.store.neighbours("Practitioner", code, edge="employed_by")
                     if n["direction"] == "out"]
        return {"practitioner": {k: v for k, v in person.items() if v is not None and k != "batch_id"},
                "licences": licences, "employed_by": sorted(employers)}

    def by_licence(self, licence: str, *, as_of: dt.date | None = None) -> Row:
        """The practitioner holding a licence (执业证书编码)."""
        holders = self.store.query("licence_holders", licences=[licence])
        if not holders:
            raise errors.NodeNotFound(f"no practitioner holds licence {licence!r}", cls="PracticeLicense",
                                      key=licence)
        return self.get(holders[0]["practitioner"], as_of=as_of)

    def find(self, *, id_number: str | None = None, name: str | None = None, limit: int = 10) -> list[Row]:
        """Practitioners by resident id number (exact) or by name (similar names, pinyin included)."""
        if id_number:
            return [{"practitioner": r["practitioner"], "score": 1.0, "rule": "same_id_number"}
                    for r in self.store.query("practitioners_by_id_number", id_numbers=[id_number.upper()])]
        if not name:
            raise errors.QueryParameterError("find needs id_number or name")
        people = self.store.nodes("Practitioner", ["name"])
        scored = [{"practitioner": k, "name": n, "score": round(name_similarity(name, n), 4), "rule": "similar_name"}
                  for k, n in zip(people["key"], people["name"], strict=True) if n]
        scored = [s for s in scored if s["score"] >= PERSON_NAME_SAME_BIRTH]
        return sorted(scored, key=lambda s: (-s["score"], s["practitioner"]))[:limit]

    # ---------------------------------------------------------------- writes
    def register(self, record: Row, *, actor: str, reason: str | None = None,
                 as_of: dt.date | None = None) -> Row:
        """Register a practitioner with one licence, or update one already registered (same code).

        ``record`` holds the person (code, class, name, sex, birth_date, id_number, phone, title,
        qualification_code, qualification_category) and the licence (licence = 执业证书编码,
        practice_scope, licensed_subjects, valid_from, valid_to, status, institution = USCC of
        the institution registered at). Omitted fields keep their registered values.
        """
        with self._lock:
            record = {k: v for k, v in record.items() if v is not None and v != "" and v != []}
            code = str(record.get("code") or "")
            if not code:
                raise errors.MissingKey("a practitioner needs its code", field="code")
            before = self._row("Practitioner", code)
            cs = ChangeSet()
            person = self._person_row(code, before, record)
            cs.put("Practitioner", code, before, person)
            warnings: list[str] = []
            licence = record.get("licence")
            if licence is None and any(f in record for f in LICENCE_FIELDS):
                held = self.store.query("practitioner_licences", code=code) if before else []
                if len(held) != 1:
                    raise errors.InvalidLicence("name the licence (执业证书编码) to change: the practitioner holds "
                                                f"{len(held)}", field="licence")
                licence = held[0]["licence"]
            if licence is not None:
                warnings += self._licence(cs, code, str(licence).upper(), record, before is None,
                                          as_of or self.clock().date())
            action = "update_practitioner" if before else "register_practitioner"
            subjects = [code, *[k for (t, k) in cs.nodes if t != "Practitioner"],
                        *[e[2] for e in cs.added + cs.removed if e[4] == "Institution"]]
            if before is not None and not cs.added and not cs.removed and \
                    all(_same(b, a) for b, a in cs.nodes.values()):
                return {"practitioner": code, "changed": False, "warnings": warnings}
            event = self._commit(cs, action, actor, reason, subjects)
            return {"practitioner": code, "licence": licence, "changed": True, "warnings": warnings,
                    "event": event["event_id"], "action": action}

    def update(self, code: str, changes: Row, *, actor: str, reason: str | None = None,
               as_of: dt.date | None = None) -> Row:
        """Change some fields of a registered practitioner or their licence (变更注册)."""
        if self._row("Practitioner", code) is None:
            raise errors.NodeNotFound(f"no practitioner {code!r}", cls="Practitioner", key=code)
        return self.register({**changes, "code": code}, actor=actor, reason=reason, as_of=as_of)

    def set_licence_status(self, licence: str, status: str, *, actor: str, reason: str | None = None,
                           valid_to: dt.date | None = None, as_of: dt.date | None = None) -> Row:
        """Suspend, revoke, expire or reinstate a practice licence (医师法 2021 第十六条、第十七条)."""
        holders = self.store.query("licence_holders", licences=[licence])
        if not holders:
            raise errors.NodeNotFound(f"no practitioner holds licence {licence!r}", cls="PracticeLicense",
                                      key=licence)
        return _set_status(self, licence, status, actor=actor, reason=reason, valid_to=valid_to,
                           as_of=as_of or self.clock().date(), subjects=[holders[0]["practitioner"]])

    def _person_row(self, code: str, before: Row | None, record: Row) -> Row:
        row = dict(before or {"code": code, "class": "Physician"})
        row.pop("batch_id", None)
        row.update({k: record[k] for k in ("class", *PRACTITIONER_FIELDS) if k in record})
        row["code"] = code
        number = row.get("id_number")
        if number:
            number = str(number).upper()
            row["id_number"] = number
            try:
                parsed = parse_resident_id(number)
            except ValueError as exc:
                raise errors.InvalidResidentId(f"resident id {number!r}: {exc} (GB 11643-1999)",
                                               field="id_number") from None
            # GB 11643-1999: the id encodes birth date (digits 7–14) and sex (digit 17).
            if row.get("birth_date") and _as_date(row["birth_date"]) != parsed.birth_date:
                raise errors.InvalidResidentId(f"birth date {row['birth_date']} disagrees with the id number "
                                               f"({parsed.birth_date}) (GB 11643-1999)", field="birth_date")
            if row.get("sex") in ("1", "2") and row["sex"] != parsed.sex:
                raise errors.InvalidResidentId("sex disagrees with the id number (GB 11643-1999 顺序码)", field="sex")
        return self._checked("Practitioner", row)

    def _licence(self, cs: ChangeSet, code: str, licence: str, record: Row, new_person: bool,
                 as_of: dt.date) -> list[str]:
        if not LICENCE_CODE.fullmatch(licence):
            raise errors.InvalidLicence(f"licence number {licence!r} must be 6–40 letters, digits or '-' "
                                        "(执业证书编码)", field="licence")
        holders = {r["practitioner"] for r in self.store.query("licence_holders", licences=[licence])}
        if holders - {code}:
            raise errors.RegistrationConflict(f"licence {licence} is held by practitioner {sorted(holders)[0]}",
                                              licence=licence, holder=sorted(holders)[0])
        before = self._row("License", licence)
        if before is not None and before["class"] != "PracticeLicense":
            raise errors.RegistrationConflict(f"{licence} is a {before['class']}, not a practice licence",
                                              licence=licence)
        row = dict(before or {"code": licence, "class": "PracticeLicense"})
        row.pop("batch_id", None)
        for f in ("practice_scope", "licensed_subjects", "valid_from", "valid_to"):
            if f in record:
                row[f] = record[f]
        scopes = _as_list(row.get("practice_scope"))
        known = set(vocab("practice_scopes")["code"])
        bad = [s for s in scopes if s not in known]
        if bad:
            raise errors.InvalidLicence(f"practice scope {bad[0]!r} is not a 执业范围 code "
                                        f"{errors.did_you_mean(bad[0], known)} (卫医发〔2001〕169号)",
                                        field="practice_scope")
        allowed = scope_subjects(scopes)
        subjects = _as_list(row.get("licensed_subjects")) or sorted(allowed)
        _check_subjects(subjects)
        outside = [s for s in subjects if scopes and s not in allowed]
        if outside:
            raise errors.InvalidLicence(f"诊疗科目 {outside[0]} lies outside the registered scope "
                                        f"{' '.join(scopes)} (关于医师执业注册中执业范围的暂行规定)",
                                        field="licensed_subjects")
        row["practice_scope"], row["licensed_subjects"] = scopes or None, subjects or None
        status = record.get("status") or (before or {}).get("registration_status") or \
            LEGACY_STATUS.get(str((before or {}).get("status")), REGISTERED)
        row.update(_validity_and_status(row, status, as_of))
        if before is not None and "status" in record:
            _check_transition(before, row["registration_status"], licence)
        cs.put("License", licence, before, self._checked("License", row))
        if before is None or new_person:
            cs.added.append(("holds_license", code, licence, "Practitioner", "License"))
        warnings: list[str] = []
        institution = record.get("institution")
        if institution:
            inst = self._row("Institution", str(institution))
            if inst is None:
                raise errors.NodeNotFound(f"no institution {institution!r} to register at (USCC)",
                                          cls="Institution", key=str(institution))
            current = [r["institution"] for r in self.store.query("practitioner_licences", code=code)
                       if r["licence"] == licence and r["institution"]]
            if current != [institution]:
                for old in current:  # 变更注册 (执业地点): the registration and the employment move
                    cs.removed.append(("registered_at", licence, old, "License", "Institution"))
                    cs.removed.append(("employed_by", code, old, "Practitioner", "Institution"))
                cs.added.append(("registered_at", licence, institution, "License", "Institution"))
                cs.added.append(("employed_by", code, institution, "Practitioner", "Institution"))
            inst_subjects = {s for r in self.store.query("institution_licences", uscc=institution)
                             if (r["registration_status"] or LEGACY_STATUS.get(str(r["status"]))) == REGISTERED
                             for s in (r["licensed_subjects"] or [])}
            missing = [s for s in subjects if inst_subjects and s not in inst_subjects]
            if missing:
                warnings.append(f"诊疗科目 {' '.join(missing)} not on the licence of {institution} "
                                "(医疗机构管理条例 第二十六条)")
        elif before is None:
            raise errors.InvalidLicence("a new practice licence names the institution registered at (注册执业机构)",
                                        field="institution")
        return warnings

    # ---------------------------------------------------------------- duplicates
    def duplicates(self) -> list[Row]:
        """Likely duplicate practitioners: the same resident id number; or a similar name (characters
        or pinyin) with the same birth date and sex; or a similar name and sex at the same institution
        where birth dates do not contradict. Different valid id numbers always mean different people."""
        people = self.store.nodes("Practitioner", ["name", "sex", "birth_date", "id_number"])
        employed = self.store.edge_pairs("employed_by", "Practitioner", "Institution")
        places: dict[str, set[str]] = defaultdict(set)
        for src, dst in zip(employed["src"], employed["dst"], strict=True):
            places[str(src)].add(str(dst))
        return practitioner_duplicates(people.to_dict("records"), places)


def practitioner_duplicates(people: list[Row], places: dict[str, set[str]]) -> list[Row]:
    """The duplicate rules of ``PractitionerRegistry.duplicates`` over plain rows (key, name, sex,
    birth_date, id_number) and each practitioner's institutions."""
    found: dict[tuple[str, str], Row] = {}

    def add(a: Row, b: Row, rule: str, score: float) -> None:
        pair = tuple(sorted((str(a["key"]), str(b["key"]))))
        if pair not in found or found[pair]["score"] < score:
            found[pair] = {"a": pair[0], "b": pair[1], "rule": rule, "score": round(score, 4)}

    by_id: dict[str, list[Row]] = defaultdict(list)
    by_birth: dict[tuple[Any, Any], list[Row]] = defaultdict(list)
    by_place: dict[tuple[str, Any], list[Row]] = defaultdict(list)
    for p in people:
        if p.get("id_number"):
            by_id[str(p["id_number"]).upper()].append(p)
        if p.get("birth_date") and p.get("sex"):
            by_birth[(str(p["birth_date"]), p["sex"])].append(p)
        for place in places.get(str(p["key"]), ()):
            by_place[(place, p.get("sex"))].append(p)
    for group in by_id.values():
        for a, b in itertools.combinations(group, 2):
            add(a, b, "same_id_number", 1.0)

    def different_ids(a: Row, b: Row) -> bool:
        return bool(a.get("id_number") and b.get("id_number")
                    and str(a["id_number"]).upper() != str(b["id_number"]).upper())

    for group in by_birth.values():
        for a, b in itertools.combinations(group, 2):
            score = name_similarity(a.get("name"), b.get("name"))
            if score >= PERSON_NAME_SAME_BIRTH and not different_ids(a, b):
                add(a, b, "similar_name_same_birth_date_sex", score)
    for group in by_place.values():
        for a, b in itertools.combinations(group, 2):
            if a.get("birth_date") and b.get("birth_date") and str(a["birth_date"]) != str(b["birth_date"]):
                continue
            score = name_similarity(a.get("name"), b.get("name"))
            if score >= PERSON_NAME_SAME_INSTITUTION and not different_ids(a, b):
                add(a, b, "similar_name_same_institution", score)
    return sorted(found.values(), key=lambda r: (-r["score"], r["a"], r["b"]))


# ---------------------------------------------------------------------- institutions
INSTITUTION_FIELDS = ("name", "division_code", "address", "latitude", "longitude", "grade", "beds")


class InstitutionRegistry(_Base):
    """机构注册 Institutions with their USCC, location and 执业许可证."""

    registry = "institution"

    def get(self, uscc: str, *, as_of: dt.date | None = None) -> Row:
        """An institution, its licences (status in force ``as_of``) and the practitioners registered there."""
        inst = self._row("Institution", uscc)
        if inst is None:
            raise errors.NodeNotFound(f"no institution {uscc!r}", cls="Institution", key=uscc)
        day = as_of or self.clock().date()
        return {"institution": {k: v for k, v in inst.items() if v is not None and k != "batch_id"},
                "licences": [_licence_view(r, day) for r in self.store.query("institution_licences", uscc=uscc)],
                "registered_practitioners": len({r["practitioner"] for r in
                                                 self.store.query("registered_practitioners", uscc=uscc)})}

    def find(self, name: str, *, division_code: str | None = None, limit: int = 10) -> list[Row]:
        """Institutions with a similar name (optionally in one division), best first."""
        inst = self.store.nodes("Institution", ["name", "division_code"])
        out = []
        for r in inst.to_dict("records"):
            if division_code and r["division_code"] != division_code:
                continue
            score = max(fuzz.partial_ratio(_norm_name(name), _norm_name(r["name"])) / 100,
                        name_similarity(name, r["name"]))
            if score >= INSTITUTION_NAME:
                out.append({"uscc": r["key"], "name": r["name"], "division_code": r["division_code"],
                            "score": round(score, 4)})
        return sorted(out, key=lambda s: (-s["score"], s["uscc"]))[:limit]

    def register(self, record: Row, *, actor: str, reason: str | None = None,
                 as_of: dt.date | None = None) -> Row:
        """Register an institution (or update one with the same USCC) and its 执业许可证.

        ``record``: uscc, class, name, division_code, address, latitude, longitude, grade (hospitals),
        beds; and optionally the licence: licence (default ``IL-<uscc>``), licensed_subjects,
        valid_from, valid_to, status.
        """
        with self._lock:
            record = {k: v for k, v in record.items() if v is not None and v != "" and v != []}
            uscc = check_uscc(str(record.get("uscc") or ""))
            before = self._row("Institution", uscc)
            cs = ChangeSet()
            row = dict(before or {"uscc": uscc, "class": "HealthcareInstitution"})
            row.pop("batch_id", None)
            row.update({k: record[k] for k in ("class", *INSTITUTION_FIELDS) if k in record})
            for axis, bound in (("latitude", 90), ("longitude", 180)):
                if row.get(axis) is not None and not -bound <= float(row[axis]) <= bound:
                    raise errors.ValueNotAllowed(f"{axis} {row[axis]} outside ±{bound}", field=axis)
            row = self._checked("Institution", row)
            cs.put("Institution", uscc, before, row)
            warnings = []
            if row.get("division_code") and uscc[2:8] != row["division_code"]:
                warnings.append(f"USCC registration division {uscc[2:8]} differs from division_code "
                                f"{row['division_code']} (GB 32100-2015 §4: characters 3–8)")
            old_div = (before or {}).get("division_code")
            if old_div != row.get("division_code"):
                if old_div:
                    cs.removed.append(("located_in", uscc, old_div, "Institution", "Division"))
                if row.get("division_code") and self._row("Division", row["division_code"]) is not None:
                    cs.added.append(("located_in", uscc, row["division_code"], "Institution", "Division"))
            licence = record.get("licence")
            if licence is None and any(f in record for f in ("licensed_subjects", "valid_from", "valid_to", "status")):
                held = self.store.query("institution_licences", uscc=uscc) if before else []
                licence = held[0]["licence"] if len(held) == 1 else f"IL-{uscc}"
            if licence is not None:
                self._licence(cs, uscc, str(licence), record, as_of or self.clock().date())
            if before is not None and all(_same(b, a) for b, a in cs.nodes.values()) and not cs.added \
                    and not cs.removed:
                return {"uscc": uscc, "changed": False, "warnings": warnings}
            action = "update_institution" if before else "register_institution"
            event = self._commit(cs, action, actor, reason, [uscc, *[k for (t, k) in cs.nodes if t == "License"]])
            return {"uscc": uscc, "licence": licence, "changed": True, "warnings": warnings,
                    "event": event["event_id"], "action": action}

    def update(self, uscc: str, changes: Row, *, actor: str, reason: str | None = None,
               as_of: dt.date | None = None) -> Row:
        """Change some fields of a registered institution or its licence (变更登记)."""
        if self._row("Institution", uscc) is None:
            raise errors.NodeNotFound(f"no institution {uscc!r}", cls="Institution", key=uscc)
        return self.register({**changes, "uscc": uscc}, actor=actor, reason=reason, as_of=as_of)

    def set_licence_status(self, licence: str, status: str, *, actor: str, reason: str | None = None,
                           valid_to: dt.date | None = None, as_of: dt.date | None = None) -> Row:
        """Suspend, revoke, expire or reinstate an institution licence (医疗机构管理条例 第二十二条 校验)."""
        row = self._row("License", licence)
        if row is None or row["class"] != "InstitutionLicense":
            raise errors.NodeNotFound(f"no institution licence {licence!r}", cls="InstitutionLicense", key=licence)
        holder = [n["key"] for n in self.store.neighbours("License", licence, edge="holds_license")
                  if n["direction"] == "in"]
        return _set_status(self, licence, status, actor=actor, reason=reason, valid_to=valid_to,
                           as_of=as_of or self.clock().date(), subjects=holder)

    def _licence(self, cs: ChangeSet, uscc: str, licence: str, record: Row, as_of: dt.date) -> None:
        before = self._row("License", licence)
        if before is not None and before["class"] != "InstitutionLicense":
            raise errors.RegistrationConflict(f"{licence} is a {before['class']}, not an institution licence",
                                              licence=licence)
        row = dict(before or {"code": licence, "class": "InstitutionLicense"})
        row.pop("batch_id", None)
        for f in ("licensed_subjects", "valid_from", "valid_to"):
            if f in record:
                row[f] = record[f]
        subjects = _as_list(row.get("licensed_subjects"))
        _check_subjects(subjects)
        row["licensed_subjects"] = subjects or None
        status = record.get("status") or (before or {}).get("registration_status") or \
            LEGACY_STATUS.get(str((before or {}).get("status")), REGISTERED)
        row.update(_validity_and_status(row, status, as_of))
        if before is not None and "status" in record:
            _check_transition(before, row["registration_status"], licence)
        cs.put("License", licence, before, self._checked("License", row))
        if before is None:
            cs.added.append(("holds_license", uscc, licence, "Institution", "License"))

    def duplicates(self) -> list[Row]:
        """Likely duplicate institutions: in the same division, names that differ only by dropped
        administrative characters (省市区县), legal-form words, punctuation or same-pinyin characters;
        or the same address with a similar name. Names with different numbers (第一/第二, 1号/2号)
        or a different distinguishing character (东城/西城) are distinct."""
        inst = self.store.nodes("Institution", ["name", "division_code", "address"])
        return institution_duplicates(inst.to_dict("records"))


def institution_duplicates(rows: list[Row]) -> list[Row]:
    """The duplicate rules of ``InstitutionRegistry.duplicates`` over plain rows (key, name,
    division_code, address)."""
    groups: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        if r.get("name"):
            groups[str(r.get("division_code") or "")].append(r)
    out = []
    for division, group in sorted(groups.items()):
        for a, b in itertools.combinations(sorted(group, key=lambda r: str(r["key"])), 2):
            rule = institution_names_match(str(a["name"]), str(b["name"]))
            score = fuzz.ratio(_norm_name(a["name"]), _norm_name(b["name"])) / 100
            if rule is None and a.get("address") and _norm_name(a["address"]) == _norm_name(b.get("address") or "") \
                    and score >= INSTITUTION_NAME and _numbers(a["name"]) == _numbers(b["name"]):
                rule = "same_address_similar_name"
            if rule:
                out.append({"a": a["key"], "b": b["key"], "division_code": division, "names": [a["name"], b["name"]],
                            "rule": rule, "score": round(score, 4)})
    return sorted(out, key=lambda r: (-r["score"], r["a"], r["b"]))


def institution_names_match(a: str, b: str) -> str | None:
    """Why two institution names are likely the same institution, or None.

    Every edit between the normalised names must be dropping or adding an administrative character
    (省市区县) or replacing a character by one read the same (pinyin without tone); numbers must agree.
    """
    na, nb = _norm_name(a), _norm_name(b)
    if not na or not nb:
        return None
    if na == nb:
        return "same_name_normalised"
    if _numbers(a) != _numbers(b) or fuzz.ratio(na, nb) / 100 < INSTITUTION_NAME:
        return None
    homophone = False
    for op in Levenshtein.editops(na, nb):
        if op.tag == "delete" and na[op.src_pos] in FILLER_CHARS:
            continue
        if op.tag == "insert" and nb[op.dest_pos] in FILLER_CHARS:
            continue
        if op.tag == "replace" and _pinyin(na[op.src_pos]) == _pinyin(nb[op.dest_pos]):
            homophone = True
            continue
        return None
    return "name_variant_homophone" if homophone else "name_variant"


def check_uscc(code: str) -> str:
    """A unified social credit code, upper-cased, or InvalidUscc (GB 32100-2015 §4: 18 characters
    of the 31-character alphabet without I, O, Z, S, V; the 18th is the check character)."""
    code = code.strip().upper()
    if len(code) != 18:
        raise errors.InvalidUscc(f"USCC {code!r} has {len(code)} characters; GB 32100-2015 needs 18",
                                 field="uscc", uscc=code)
    bad = [ch for ch in code if ch not in "0123456789ABCDEFGHJKLMNPQRTUWXY"]
    if bad:
        raise errors.InvalidUscc(f"USCC {code!r} contains {bad[0]!r}, outside the GB 32100-2015 alphabet "
                                 "(digits and capitals except I, O, Z, S, V)", field="uscc", uscc=code)
    if not is_valid_uscc(code):
        expected = uscc_check_char(code[:17])
        raise errors.InvalidUscc(f"USCC {code!r}: check character should be {expected!r}, not {code[17]!r} "
                                 "(GB 32100-2015 §4.2)", field="uscc", uscc=code, expected=expected)
    return code


# ---------------------------------------------------------------------- terminology
ICD10_CHAPTERS = (
    ("I", "某些传染病和寄生虫病", "Certain infectious and parasitic diseases"),
    ("II", "肿瘤", "Neoplasms"),
    ("III", "血液及造血器官疾病和涉及免疫机制的某些疾患",
     "Diseases of the blood and blood-forming organs and certain disorders involving the immune mechanism"),
    ("IV", "内分泌、营养和代谢疾病", "Endocrine, nutritional and metabolic diseases"),
    ("V", "精神和行为障碍", "Mental and behavioural disorders"),
    ("VI", "神经系统疾病", "Diseases of the nervous system"),
    ("VII", "眼和附器疾病", "Diseases of the eye and adnexa"),
    ("VIII", "耳和乳突疾病", "Diseases of the ear and mastoid process"),
    ("IX", "循环系统疾病", "Diseases of the circulatory system"),
    ("X", "呼吸系统疾病", "Diseases of the respiratory system"),
    ("XI", "消化系统疾病", "Diseases of the digestive system"),
    ("XII", "皮肤和皮下组织疾病", "Diseases of the skin and subcutaneous tissue"),
    ("XIII", "肌肉骨骼系统和结缔组织疾病", "Diseases of the musculoskeletal system and connective tissue"),
    ("XIV", "泌尿生殖系统疾病", "Diseases of the genitourinary system"),
    ("XV", "妊娠、分娩和产褥期", "Pregnancy, childbirth and the puerperium"),
    ("XVI", "起源于围生期的某些情况", "Certain conditions originating in the perinatal period"),
    ("XVII", "先天性畸形、变形和染色体异常", "Congenital malformations, deformations and chromosomal abnormalities"),
    ("XVIII", "症状、体征和临床与实验室异常所见，不可归类在他处者",
     "Symptoms, signs and abnormal clinical and laboratory findings, not elsewhere classified"),
    ("XIX", "损伤、中毒和外因的某些其他后果", "Injury, poisoning and certain other consequences of external causes"),
    ("XX", "疾病和死亡的外因", "External causes of morbidity and mortality"),
    ("XXI", "影响健康状态和与保健机构接触的因素", "Factors influencing health status and contact with health services"),
    ("XXII", "用于特殊目的的编码", "Codes for special purposes"),
)
DRUG_CLASS_ZH = {
    "penicillin": "青霉素类", "cephalosporin": "头孢菌素类", "macrolide": "大环内酯类", "fluoroquinolone": "氟喹诺酮类",
    "tetracycline": "四环素类", "neuraminidase_inhibitor": "神经氨酸酶抑制剂", "antitubercular": "抗结核药",
    "rifamycin": "利福霉素类", "antiretroviral": "抗逆转录病毒药", "hbv_antiviral": "抗乙肝病毒药",
    "nsaid": "非甾体抗炎药", "antiplatelet": "抗血小板药", "p2y12_inhibitor": "P2Y12受体抑制剂",
    "warfarin_vka": "维生素K拮抗剂", "doac": "直接口服抗凝药", "analgesic_antipyretic": "解热镇痛药",
    "opioid": "阿片类镇痛药", "ppi": "质子泵抑制剂", "d2_antiemetic": "多巴胺D2受体拮抗止吐药",
    "antidiarrhoeal": "止泻药", "intestinal_adsorbent": "肠道吸附剂", "biguanide": "双胍类", "sulfonylurea": "磺脲类",
    "insulin": "胰岛素类", "ccb": "钙通道阻滞剂", "acei": "血管紧张素转换酶抑制剂", "arb": "血管紧张素II受体拮抗剂",
    "beta_blocker": "β受体阻滞剂", "thiazide_diuretic": "噻嗪类利尿剂", "potassium_sparing_diuretic": "保钾利尿剂",
    "loop_diuretic": "袢利尿剂", "statin": "他汀类", "nitrate": "硝酸酯类", "pde5_inhibitor": "PDE5抑制剂",
    "thyroid_hormone": "甲状腺激素", "corticosteroid": "糖皮质激素", "saba": "短效β2受体激动剂",
    "leukotriene_antagonist": "白三烯受体拮抗剂", "antihistamine_h1": "H1抗组胺药",
    "ssri": "选择性5-羟色胺再摄取抑制剂", "benzodiazepine": "苯二氮䓬类", "z_drug": "非苯二氮䓬类催眠药",
    "antipsychotic": "抗精神病药", "antiepileptic": "抗癫痫药", "retinoid": "维A酸类",
    "xanthine_oxidase_inhibitor": "黄嘌呤氧化酶抑制剂",
}
ATC_LEVELS = (7, 5, 4, 3, 1)  # characters at ATC levels 5, 4, 3, 2, 1 (WHO ATC structure)
FIRST_VERSION = "v1"
INVERSE = {"equivalent": "equivalent", "wider": "narrower", "narrower": "wider", "related": "related"}


@dataclass(frozen=True)
class SystemSpec:
    code: str
    name: str
    name_en: str
    publisher: str
    concepts: list[Row]
    mappings: list[tuple[str, str, str, str, str]]  # from system, from code, to system, to code, equivalence


def vocab_systems() -> list[SystemSpec]:
    """The code systems the project's own vocabularies define, with their hierarchy and mappings."""
    icd = vocab("icd10")
    subjects = vocab("clinical_subjects")
    scopes = vocab("practice_scopes")
    drugs = vocab("drugs")
    labs = vocab("lab_tests")
    vaccines = vocab("vaccines")

    icd_codes = set(icd["code"])
    icd_concepts = [{"code": c, "name": zh, "name_en": en} for c, zh, en in ICD10_CHAPTERS]
    icd_concepts += [{"code": r.code, "name": r.name_zh, "name_en": r.name_en,
                      "parent_code": r.code.split(".")[0] if "." in r.code and r.code.split(".")[0] in icd_codes
                      else r.chapter} for r in icd.itertuples()]
    classes = sorted(set(drugs["drug_class"]))
    class_atc = {c: atc_group(drugs.loc[drugs["drug_class"] == c, "atc"]) for c in classes}
    groups = sorted({g for g in class_atc.values() if g})
    atc_concepts = [{"code": g, "name": f"ATC {g}", "name_en": f"ATC group {g}"} for g in groups]
    for r in drugs.drop_duplicates("atc").itertuples():
        parent = max((g for g in groups if r.atc.startswith(g)), key=len, default=None)
        atc_concepts.append({"code": r.atc, "name": r.name_zh, "name_en": r.name_en, "parent_code": parent})
    for g in groups:
        parent = max((h for h in groups if g.startswith(h) and h != g), key=len, default=None)
        next(c for c in atc_concepts if c["code"] == g)["parent_code"] = parent
    return [
        SystemSpec("icd10", "疾病分类与代码 (ICD-10 子集)", "ICD-10 (subset)",
                   "WHO ICD-10; GB/T 14396-2016 疾病分类与代码", icd_concepts,
                   [("icd10", r.code, "clinical_subjects", r.subject_code, "related")
                    for r in icd.itertuples() if r.subject_code]),
        SystemSpec("clinical_subjects", "医疗机构诊疗科目", "Clinical subjects (诊疗科目)",
                   "医疗机构诊疗科目名录 (卫医发〔1994〕27号; 卫医发〔2007〕227号; 卫医政发〔2009〕9号)",
                   plain_rows(subjects), []),
        SystemSpec("practice_scopes", "医师执业范围", "Physician practice scopes (执业范围)",
                   "关于医师执业注册中执业范围的暂行规定 (卫医发〔2001〕169号); 医师法 (2021)", plain_rows(scopes),
                   [("practice_scopes", r.code, "clinical_subjects", s, "related")
                    for r in scopes.itertuples() for s in r.subject_codes.split()]),
        SystemSpec("drugs", "药品 (通用名)", "Drugs (generic names)", "HealthGraph 药品词表; 国家处方集; 药品说明书",
                   plain_rows(drugs.drop_duplicates("code")),
                   [("drugs", r.code, "drug_classes", r.drug_class, "wider") for r in drugs.itertuples()]
                   + [("drugs", r.code, "atc", r.atc, "equivalent") for r in drugs.itertuples()]),
        SystemSpec("drug_classes", "药理分类", "Drug classes", "HealthGraph 药理分类 (drugs.csv drug_class)",
                   [{"code": c, "name": DRUG_CLASS_ZH.get(c, c), "name_en": c.replace("_", " ")} for c in classes],
                   [("drug_classes", c, "atc", g, "wider") for c, g in class_atc.items() if g]),
        SystemSpec("atc", "解剖学治疗学及化学分类 (ATC)", "Anatomical Therapeutic Chemical classification (ATC)",
                   "WHO Collaborating Centre for Drug Statistics Methodology, ATC index", atc_concepts, []),
        SystemSpec("lab_tests", "检验检查项目", "Lab and imaging tests",
                   "WS/T 405-2012; WS/T 404; 检查检验结果互认管理办法 (国卫医发〔2022〕6号)", plain_rows(labs), []),
        SystemSpec("vaccines", "疫苗", "Vaccines", "国家免疫规划疫苗儿童免疫程序及说明 (2021年版) 及其调整",
                   plain_rows(vaccines), []),
    ]


def plain_rows(frame: pd.DataFrame) -> list[Row]:
    return [{"code": r.code, "name": r.name_zh, "name_en": r.name_en} for r in frame.itertuples()]


def atc_group(codes: Iterable[str]) -> str | None:
    """The smallest ATC group holding every code: the longest common prefix cut to an ATC level."""
    codes = [c for c in codes if c]
    if not codes:
        return None
    prefix = codes[0]
    for c in codes[1:]:
        while not c.startswith(prefix):
            prefix = prefix[:-1]
    cut = next((n for n in ATC_LEVELS if n <= len(prefix)), 0)
    return prefix[:cut] or None


class TerminologyRegistry(_Base):
    """术语注册 Code systems, versioned concepts, hierarchy and mappings. Reads come from an
    in-memory mirror of the (small) terminology tables, refreshed after every change."""

    registry = "terminology"

    def __init__(self, store: GraphStore, **kw: Any) -> None:
        super().__init__(store, **kw)
        self.reload()

    def reload(self) -> None:
        with self._lock:
            systems = self.store.nodes("CodeSystem")
            self.code_systems: dict[str, Row] = {r["key"]: _clean(r) for r in systems.to_dict("records")}
            concepts = self.store.nodes("Concept", ["code_system", "version", "code", "name", "name_en",
                                                    "concept_status", "parent_code", "introduced_in", "retired_in"])
            self.concepts: dict[tuple[str, str], dict[str, Row]] = defaultdict(dict)
            for r in concepts.to_dict("records"):
                self.concepts[(r["code_system"], r["version"])][r["code"]] = _clean(r)
            maps = self.store.nodes("ConceptMapping", ["from_system", "from_code", "to_system", "to_code",
                                                       "equivalence"])
            self.mappings = [_clean(r) for r in maps.to_dict("records")]

    # ---------------------------------------------------------------- reads
    def systems(self) -> list[Row]:
        """Every registered code system with its versions and concept counts per version."""
        return [{"code": c, "name": s.get("name"), "name_en": s.get("name_en"), "publisher": s.get("publisher"),
                 "versions": s.get("versions") or [], "current_version": s.get("current_version"),
                 "concepts": {v: sum(1 for x in self.concepts[(c, v)].values() if x["concept_status"] == "active")
                              for v in s.get("versions") or []}}
                for c, s in sorted(self.code_systems.items())]

    def system(self, system: str, version: str | None = None) -> tuple[Row, str]:
        """A code system and the version asked for (its current one by default)."""
        found = self.code_systems.get(system)
        if found is None:
            raise errors.UnknownCodeSystem(f"code system {system!r} is not registered "
                                           f"{errors.did_you_mean(system, self.code_systems)}", system=system)
        version = version or found["current_version"]
        if version not in (found.get("versions") or []):
            raise errors.UnknownCodeSystem(f"code system {system} has no version {version!r} "
                                           f"(versions: {', '.join(found.get('versions') or [])})",
                                           system=system, version=version)
        return found, version

    def lookup(self, system: str, code: str, version: str | None = None) -> Row:
        """A concept as it stands in one version: labels, status, parent, children and mappings."""
        _, version = self.system(system, version)
        concepts = self.concepts[(system, version)]
        if code not in concepts:
            later = [v for v in self.code_systems[system]["versions"] if code in self.concepts[(system, v)]]
            raise errors.UnknownConcept(f"{system} {version} has no code {code!r}"
                                        + (f" (it exists in {', '.join(later)})" if later else ""),
                                        system=system, version=version, code=code)
        c = concepts[code]
        return {**{k: c.get(k) for k in ("code_system", "version", "code", "name", "name_en", "concept_status",
                                         "parent_code", "introduced_in", "retired_in")},
                "parent": _label_of(concepts.get(c.get("parent_code") or "")),
                "children": sorted(k for k, x in concepts.items() if x.get("parent_code") == code),
                "mappings": self._mapped(system, code)}

    def concepts_of(self, system: str, version: str | None = None, *, include_retired: bool = True) -> list[Row]:
        """Every concept of a code system version, ordered by code."""
        _, version = self.system(system, version)
        return [{k: c.get(k) for k in ("code", "name", "name_en", "concept_status", "parent_code")}
                for _, c in sorted(self.concepts[(system, version)].items())
                if include_retired or c["concept_status"] == "active"]

    def search(self, text: str, *, system: str | None = None, version: str | None = None,
               limit: int = 20) -> list[Row]:
        """Concepts whose code, Chinese or English label contains the text; pinyin (full or initials)
        of the Chinese label matches too. Current versions unless a version is given."""
        q = text.strip().lower()
        if not q:
            raise errors.QueryParameterError("search needs some text")
        out = []
        for code_system in ([system] if system else sorted(self.code_systems)):
            _, v = self.system(code_system, version if system else None)
            for code, c in sorted(self.concepts[(code_system, v)].items()):
                how = _label_match(q, code, c.get("name") or "", c.get("name_en") or "")
                if how:
                    out.append({"code_system": code_system, "version": v, "code": code, "name": c.get("name"),
                                "name_en": c.get("name_en"), "concept_status": c["concept_status"], "match": how})
        rank = {"code": 0, "name": 1, "name_en": 2, "pinyin": 3, "initials": 4}
        return sorted(out, key=lambda r: (rank[r["match"]], r["concept_status"] != "active", len(r["code"]),
                                          r["code_system"], r["code"]))[:limit]

    def translate(self, system: str, code: str, target: str | None = None) -> list[Row]:
        """The codes of other systems a code maps to (mappings read both ways; a reversed mapping's
        equivalence is inverted: wider ↔ narrower), labelled from each target's current version."""
        self.lookup(system, code, self._version_having(system, code))
        if target is not None:
            self.system(target)
        out = []
        for m in self._mapped(system, code):
            if target and m["system"] != target:
                continue
            tv = self.code_systems[m["system"]]["current_version"]
            tc = self.concepts[(m["system"], tv)].get(m["code"]) or {}
            out.append({**m, "version": tv, "name": tc.get("name"), "name_en": tc.get("name_en"),
                        "concept_status": tc.get("concept_status")})
        return out

    def _version_having(self, system: str, code: str) -> str | None:
        s, current = self.system(system)
        if code in self.concepts[(system, current)]:
            return current
        return next((v for v in reversed(s.get("versions") or []) if code in self.concepts[(system, v)]), current)

    def _mapped(self, system: str, code: str) -> list[Row]:
        out = []
        for m in self.mappings:
            if m["from_system"] == system and m["from_code"] == code:
                out.append({"system": m["to_system"], "code": m["to_code"], "equivalence": m["equivalence"],
                            "direction": "forward"})
            elif m["to_system"] == system and m["to_code"] == code:
                out.append({"system": m["from_system"], "code": m["from_code"],
                            "equivalence": INVERSE[m["equivalence"]], "direction": "reverse"})
        return sorted(out, key=lambda m: (m["direction"], m["system"], m["code"]))

    # ---------------------------------------------------------------- writes
    def seed(self, *, actor: str = SYSTEM_ACTOR, specs: list[SystemSpec] | None = None) -> Row:
        """Register the project's vocabularies as code systems (version v1) with hierarchy and
        mappings. Systems already registered are left as they are; re-running adds nothing."""
        with self._lock:
            specs = vocab_systems() if specs is None else specs
            todo = [s for s in specs if s.code not in self.code_systems]
            if not todo:
                return {"systems": 0, "concepts": 0, "mappings": 0, "event": None}
            known = {s.code for s in specs} | set(self.code_systems)
            cs = ChangeSet()
            n_concepts = n_maps = 0
            for spec in todo:
                cs.put("CodeSystem", spec.code, None, {
                    "key": spec.code, "class": "CodeSystem", "code": spec.code, "name": spec.name,
                    "name_en": spec.name_en, "publisher": spec.publisher, "versions": [FIRST_VERSION],
                    "current_version": FIRST_VERSION})
                rows = {c["code"]: {**c, "concept_status": "active", "introduced_in": FIRST_VERSION}
                        for c in spec.concepts}
                self._put_version(cs, spec.code, FIRST_VERSION, rows)
                n_concepts += len(rows)
                for fs, fc, ts, tc, eq in spec.mappings:
                    if ts not in known:
                        continue
                    mid = f"{fs}|{fc}|{ts}|{tc}"
                    cs.put("ConceptMapping", mid, None, {"key": mid, "class": "ConceptMapping", "mapping_id": mid,
                                                         "from_system": fs, "from_code": fc, "to_system": ts,
                                                         "to_code": tc, "equivalence": eq})
                    n_maps += 1
            summary = {"systems": [s.code for s in todo], "concepts": n_concepts, "mappings": n_maps}
            event = self._commit(cs, "seed_terminology", actor, "seed from ontology/vocab",
                                 [s.code for s in todo], summary=summary)
            self.reload()
            return {"systems": len(todo), "concepts": n_concepts, "mappings": n_maps, "event": event["event_id"]}

    def add_version(self, system: str, version: str, *, concepts: list[Row] | None = None,
                    retired: list[str] | None = None, actor: str, reason: str | None = None) -> Row:
        """A new version of a code system: the current version's concepts, with ``concepts`` added or
        relabelled (code, name, name_en, parent_code) and ``retired`` codes marked retired. The new
        version becomes current; every earlier version stays readable unchanged."""
        with self._lock:
            found, current = self.system(system)
            if version in (found.get("versions") or []):
                raise errors.VersionExists(f"{system} already has version {version!r}", system=system,
                                           version=version)
            rows = {code: {k: v for k, v in c.items() if k not in ("key", "version", "batch_id")}
                    for code, c in self.concepts[(system, current)].items()}
            added, relabelled = [], []
            for c in concepts or []:
                code = str(c.get("code") or "")
                if not code or not c.get("name"):
                    raise errors.MissingRequired("a concept needs code and name", field="code/name")
                old = rows.get(code)
                row = {**(old or {}), **{k: c[k] for k in ("name", "name_en", "parent_code") if k in c},
                       "code": code, "code_system": system, "concept_status": "active", "retired_in": None}
                if old is None or old["concept_status"] == "retired":
                    row["introduced_in"] = version
                    added.append(code)
                else:
                    relabelled.append(code)
                rows[code] = row
            for code in retired or []:
                if code not in rows or rows[code]["concept_status"] != "active":
                    raise errors.UnknownConcept(f"{system} {current} has no active code {code!r} to retire",
                                                system=system, version=current, code=code)
                rows[code] = {**rows[code], "concept_status": "retired", "retired_in": version}
            for code, row in rows.items():
                parent = row.get("parent_code")
                if parent and parent not in rows:
                    raise errors.UnknownConcept(f"parent {parent!r} of {code} is not in {system} {version}",
                                                system=system, version=version, code=parent)
            cs = ChangeSet()
            before = {k: v for k, v in found.items()}
            cs.put("CodeSystem", system, before, {**before, "key": system, "class": "CodeSystem",
                                                  "versions": [*(found.get("versions") or []), version],
                                                  "current_version": version})
            self._put_version(cs, system, version, rows)
            summary = {"system": system, "from": current, "version": version, "added": sorted(added),
                       "relabelled": sorted(relabelled), "retired": sorted(retired or [])}
            event = self._commit(cs, "add_code_system_version", actor, reason, [system], summary=summary)
            self.reload()
            return {**summary, "event": event["event_id"]}

    def _put_version(self, cs: ChangeSet, system: str, version: str, rows: dict[str, Row]) -> None:
        for code, c in rows.items():
            key = f"{system}:{version}:{code}"
            cs.put("Concept", key, None, {"key": key, "class": "Concept", "code_system": system, "version": version,
                                          "code": code, "name": c.get("name"), "name_en": c.get("name_en"),
                                          "concept_status": c.get("concept_status", "active"),
                                          "parent_code": c.get("parent_code"),
                                          "introduced_in": c.get("introduced_in"), "retired_in": c.get("retired_in")})
            cs.added.append(("in_code_system", key, system, "Concept", "CodeSystem"))
            if c.get("parent_code"):
                cs.added.append(("broader", key, f"{system}:{version}:{c['parent_code']}", "Concept", "Concept"))


# ---------------------------------------------------------------------- facade and bulk build
class Registries:
    """The three registries over one store, sharing one lock (writes serialised in-process)."""

    def __init__(self, store: GraphStore, *, clock: Callable[[], dt.datetime] | None = None) -> None:
        lock = threading.RLock()
        self.store = store
        self.practitioners = PractitionerRegistry(store, clock=clock, lock=lock)
        self.institutions = InstitutionRegistry(store, clock=clock, lock=lock)
        self.terminology = TerminologyRegistry(store, clock=clock, lock=lock)

    def history(self, subject: str) -> list[Row]:
        """Every registry change concerning an entry, whichever registry made it, oldest first."""
        return self.practitioners.history(subject)

    def set_licence_status(self, licence: str, status: str, **kw: Any) -> Row:
        """Change a licence's status in the registry that owns it (practice or institution licence)."""
        row = self.practitioners._row("License", licence)
        if row is None:
            raise errors.NodeNotFound(f"no licence {licence!r}", cls="License", key=licence)
        owner = self.institutions if row["class"] == "InstitutionLicense" else self.practitioners
        return owner.set_licence_status(licence, status, **kw)

    def build(self, *, actor: str = SYSTEM_ACTOR, as_of: dt.date | None = None) -> Row:
        """Bring what a load put in the graph under the registries: seed the terminology, give every
        licence its registration status (from its older status and validity), check every USCC, and
        report counts and likely duplicates. Re-running changes nothing new."""
        day = as_of or self.practitioners.clock().date()
        seeded = self.terminology.seed(actor=actor)
        licences = self.store.nodes("License")
        updated: list[Row] = []
        invalid_validity: list[str] = []
        status_counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        props = self.store.onto.table_properties("License")
        for r in licences.to_dict("records"):
            row = {k: v for k, v in r.items() if k in ("key", "class") or (k in props and not props[k].system)}
            frm, to = _as_date(row.get("valid_from")), _as_date(row.get("valid_to"))
            if frm and to and to < frm:
                invalid_validity.append(row["key"])
            status = row.get("registration_status") or LEGACY_STATUS.get(str(row.get("status")), REGISTERED)
            # 有效期届满未延续: a registration past valid_to is expired. That is judged when read (it depends
            # on the day), never written back over what the licensing source sent.
            in_force = EXPIRED if status == REGISTERED and to and to < day else status
            status_counts[row["class"]][in_force] += 1
            new = {**row, "registration_status": status, "status": _legacy(status)}
            if not _same(row, new):
                updated.append(new)
        event = None
        if updated:
            cs = ChangeSet()
            for row in updated:
                cs.put("License", row["key"], None, row)
            summary = {"licences_updated": len(updated)}
            event = self.practitioners._commit(cs, "build_registries", actor, "build: registration status from "
                                               "loaded licences", [], summary=summary)["event_id"]
        institutions = self.store.nodes("Institution", ["uscc"])
        bad_uscc = sorted(k for k in institutions["key"] if not is_valid_uscc(str(k)))
        people = self.practitioners.duplicates()
        places = self.institutions.duplicates()
        return {
            "terminology": {"systems_added": seeded["systems"], "concepts": seeded["concepts"],
                            "mappings": seeded["mappings"],
                            "systems": len(self.terminology.code_systems)},
            "practitioners": int(len(self.store.nodes("Practitioner", ["name"]))),
            "institutions": int(len(institutions)),
            "licences": {c: dict(sorted(v.items())) for c, v in sorted(status_counts.items())},
            "licences_updated": len(updated), "licences_with_invalid_validity": invalid_validity,
            "invalid_uscc": bad_uscc, "duplicate_practitioners": people, "duplicate_institutions": places,
            "event": event,
        }


# ---------------------------------------------------------------------- shared rules
def _set_status(reg: _Base, licence: str, status: str, *, actor: str, reason: str | None, valid_to: dt.date | None,
                as_of: dt.date, subjects: list[str]) -> Row:
    with reg._lock:
        before = reg._row("License", licence)
        if before is None:
            raise errors.NodeNotFound(f"no licence {licence!r}", cls="License", key=licence)
        row = {k: v for k, v in before.items() if k != "batch_id"}
        if valid_to is not None:
            row["valid_to"] = valid_to
        if status not in LICENCE_STATUSES:
            raise errors.InvalidLicence(f"status {status!r} not allowed; valid: {' '.join(LICENCE_STATUSES)}",
                                        field="status")
        _check_transition(before, status, licence)
        if status == REGISTERED and _as_date(row.get("valid_to")) and _as_date(row["valid_to"]) < as_of:
            raise errors.InvalidLicence(f"licence {licence} ended on {row['valid_to']}: reinstating it needs a "
                                        "new valid_to (延续注册)", field="valid_to")
        row.update(_validity_and_status(row, status, as_of))
        cs = ChangeSet()
        cs.put("License", licence, before, reg._checked("License", row))
        event = reg._commit(cs, "set_licence_status", actor, reason, [licence, *subjects])
        return {"licence": licence, "status": row["registration_status"], "previous": _status_of(before),
                "event": event["event_id"]}


def _status_of(row: Row) -> str:
    return row.get("registration_status") or LEGACY_STATUS.get(str(row.get("status")), REGISTERED)


def _check_transition(before: Row, status: str, licence: str) -> None:
    old = _status_of(before)
    if status != old and status not in TRANSITIONS[old]:
        raise errors.StatusTransitionNotAllowed(
            f"licence {licence} is {old}; it cannot become {status}"
            + (" (a revoked licence is final: register a new one, 医师法 2021 第十六条)" if old == REVOKED else ""),
            licence=licence, current=old, requested=status)


def _validity_and_status(row: Row, status: str, as_of: dt.date) -> Row:
    """Check validity dates and the status value; a registration past its valid_to is expired."""
    if status not in LICENCE_STATUSES:
        raise errors.InvalidLicence(f"status {status!r} not allowed; valid: {' '.join(LICENCE_STATUSES)}",
                                    field="status")
    frm, to = _as_date(row.get("valid_from")), _as_date(row.get("valid_to"))
    if frm is None:
        raise errors.InvalidLicence("a licence needs valid_from (有效期起)", field="valid_from")
    if to is not None and to <= frm:
        raise errors.InvalidLicence(f"valid_to {to} is not after valid_from {frm} (有效期止早于有效期起)",
                                    field="valid_to")
    if status == REGISTERED and to is not None and to < as_of:
        status = EXPIRED
    return {"valid_from": frm, "valid_to": to, "registration_status": status, "status": _legacy(status)}


def _legacy(status: str) -> str:
    return "active" if status == REGISTERED else status


def _licence_view(r: Row, as_of: dt.date) -> Row:
    """A licence row with the status in force on ``as_of`` (a registration past valid_to is expired)."""
    status = r.get("registration_status") or LEGACY_STATUS.get(str(r.get("status")), REGISTERED)
    to = _as_date(r.get("valid_to"))
    effective = EXPIRED if status == REGISTERED and to is not None and to < as_of else status
    return {**{k: v for k, v in r.items() if v is not None}, "registration_status": status,
            "status_in_force": effective, "as_of": as_of}


def scope_subjects(scopes: Iterable[str]) -> set[str]:
    """The 诊疗科目 codes the practice scopes allow (practice_scopes.csv, the project's reading of
    卫医发〔2001〕169号)."""
    table = vocab("practice_scopes").set_index("code")["subject_codes"]
    return {s for scope in scopes if scope in table.index for s in str(table[scope]).split()}


def _check_subjects(subjects: list[str]) -> None:
    known = set(vocab("clinical_subjects")["code"])
    bad = [s for s in subjects if s not in known]
    if bad:
        raise errors.InvalidLicence(f"{bad[0]!r} is not a 诊疗科目 code {errors.did_you_mean(bad[0], known)} "
                                    "(医疗机构诊疗科目名录)", field="licensed_subjects")


@lru_cache(maxsize=65536)
def _pinyin(text: str) -> str:
    return "".join(lazy_pinyin(text))


@lru_cache(maxsize=65536)
def _initials(text: str) -> str:
    return "".join(lazy_pinyin(text, style=Style.FIRST_LETTER))


def name_similarity(a: str | None, b: str | None) -> float:
    """0..1: the better of the character and the toneless-pinyin similarity (陈静 ≈ 陈婧 = 1.0)."""
    if not a or not b:
        return 0.0
    a, b = _norm_name(a), _norm_name(b)
    return max(fuzz.ratio(a, b), fuzz.ratio(_pinyin(a), _pinyin(b))) / 100


def _norm_name(text: Any) -> str:
    """NFKC, lower case, letters and digits only, legal-form words removed."""
    s = unicodedata.normalize("NFKC", str(text or "")).lower()
    s = re.sub(r"[(（][^)）]*[)）]", "", s)
    for word in LEGAL_FORMS:
        s = s.replace(word, "")
    return "".join(ch for ch in s if ch.isalnum())


def _numbers(name: str) -> list[str]:
    return NUMERALS.findall(unicodedata.normalize("NFKC", name))


def _label_match(q: str, code: str, zh: str, en: str) -> str | None:
    if code.lower().startswith(q):
        return "code"
    if q in zh.lower():
        return "name"
    if q in en.lower():
        return "name_en"
    compact = q.replace(" ", "")
    if compact.isascii() and compact.isalpha() and zh:
        if compact in _pinyin(zh):
            return "pinyin"
        if len(compact) >= 2 and compact in _initials(zh):
            return "initials"
    return None


def _label_of(c: Row | None) -> Row | None:
    return None if not c else {"code": c["code"], "name": c.get("name"), "name_en": c.get("name_en")}


def _changed_fields(change: str | None) -> dict[str, list[str]]:
    """Which fields of which nodes an event changed (names only: values may be personal)."""
    if not change:
        return {}
    data = json.loads(change)
    if "nodes" not in data:
        return {"summary": sorted(data)}
    out: dict[str, list[str]] = {}
    for table, key, before, after in data["nodes"]:
        b, a = before or {}, after or {}
        fields = sorted(k for k in set(a) | set(b) if k not in ("batch_id", "content_hash") and
                        _norm(a.get(k)) != _norm(b.get(k)))
        out[f"{table}/{key}"] = fields
    for name, edges in (("edges_added", data.get("added")), ("edges_removed", data.get("removed"))):
        if edges:
            out[name] = sorted(f"{e[0]} {e[1]}→{e[2]}" for e in edges)
    return out


def _as_list(v: Any) -> list[str]:
    if v is None:
        return []
    if isinstance(v, str):
        return [s for s in re.split(r"[\s,]+", v) if s]
    return [str(x) for x in v]


def _clean(row: Row) -> Row:
    return {k: v for k, v in row.items() if k not in ("batch_id", "content_hash")}


def _same(current: Row | None, expected: Row | None) -> bool:
    if current is None or expected is None:
        return current is None and expected is None
    keys = (set(current) | set(expected)) - {"batch_id", "content_hash"}
    return all(_norm(current.get(k)) == _norm(expected.get(k)) for k in keys)


def _norm(v: Any) -> Any:
    if isinstance(v, dt.datetime):
        return v.isoformat()
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, float):
        return round(v, 9)
    if isinstance(v, (list, tuple)):
        return [_norm(x) for x in v] or None
    if hasattr(v, "tolist"):
        return _norm(v.tolist())
    return v


def _as_date(v: Any) -> dt.date | None:
    if v is None or v == "":
        return None
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    if isinstance(v, pd.Timestamp):
        return v.date()
    try:
        return dt.date.fromisoformat(str(v)[:10])
    except ValueError:
        raise errors.InvalidLicence(f"{v!r} is not a date (YYYY-MM-DD)", field="date") from None


def _edge_frame(edges: Iterable[Edge]) -> pd.DataFrame:
    return pd.DataFrame([{"src": s, "dst": d, "src_table": st, "dst_table": dt_} for _, s, d, st, dt_ in edges])


def _validation_error(code: str, message: str) -> errors.ValidationError:
    cls = next((c for c in errors.VALIDATION_ERRORS if c.code == code), errors.ValidationError)
    return cls(message)
