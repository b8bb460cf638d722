"""HTTP routes of the registries (注册服务): practitioners, institutions, licences, terminology.

Practitioner records hold personal data: every practitioner route is audited through the records
layer and what it returns passes the privacy guard (id numbers and phones masked). Changes to
any registry are audited with the caller as actor.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from graph import GraphStore
from services.access import Permission
from services.access.web import permit
from services.privacy import Viewer
from services.records import Records
from services.registries import Registries


class PractitionerIn(BaseModel):
    """A practitioner and one practice licence (医师法 2021 第十三条、第十四条)."""

    code: str | None = Field(None, description="医务人员编码 practitioner code (given in the path for updates)")
    cls: str | None = Field(None, alias="class", description="Physician | Nurse | Pharmacist")
    name: str | None = None
    sex: str | None = Field(None, description="GB/T 2261.1: 1 男 male, 2 女 female")
    birth_date: dt.date | None = None
    id_number: str | None = Field(None, description="身份证号 GB 11643-1999")
    phone: str | None = None
    title: str | None = Field(None, description="resident | attending | associate_chief | chief")
    qualification_code: str | None = Field(None, description="资格证书编码")
    qualification_category: str | None = Field(None, description="clinical | tcm | dental | public_health | …")
    licence: str | None = Field(None, description="执业证书编码 practice licence number")
    practice_scope: list[str] | None = Field(None, description="执业范围 codes (practice_scopes)")
    licensed_subjects: list[str] | None = Field(None, description="诊疗科目 codes")
    valid_from: dt.date | None = None
    valid_to: dt.date | None = None
    status: str | None = Field(None, description="registered | suspended | revoked | expired")
    institution: str | None = Field(None, description="注册执业机构 USCC")
    reason: str | None = None

    def record(self) -> dict[str, Any]:
        row = self.model_dump(exclude_none=True, by_alias=True)
        row.pop("reason", None)
        return row


class InstitutionIn(BaseModel):
    """An institution and its 执业许可证 (医疗机构管理条例 第十五条)."""

    uscc: str | None = Field(None, description="统一社会信用代码 GB 32100-2015 (given in the path for updates)")
    cls: str | None = Field(None, alias="class", description="Hospital | Clinic | CommunityHealthCenter | …")
    name: str | None = None
    division_code: str | None = Field(None, description="GB/T 2260 county code")
    address: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    grade: str | None = Field(None, description="hospitals: 3A … 1C, ungraded")
    beds: int | None = None
    licence: str | None = Field(None, description="许可证编号 (default IL-<uscc>)")
    licensed_subjects: list[str] | None = Field(None, description="诊疗科目 codes")
    valid_from: dt.date | None = None
    valid_to: dt.date | None = None
    status: str | None = None
    reason: str | None = None

    def record(self) -> dict[str, Any]:
        row = self.model_dump(exclude_none=True, by_alias=True)
        row.pop("reason", None)
        return row


class StatusChange(BaseModel):
    status: str = Field(..., description="registered | suspended | revoked | expired")
    valid_to: dt.date | None = Field(None, description="new end of validity (renewal, 延续注册)")
    reason: str | None = None


class ConceptIn(BaseModel):
    code: str
    name: str
    name_en: str | None = None
    parent_code: str | None = None


class VersionIn(BaseModel):
    version: str = Field(..., description="the new version's id, e.g. v2")
    concepts: list[ConceptIn] = Field(default_factory=list, description="added or relabelled concepts")
    retired: list[str] = Field(default_factory=list, description="codes retired in this version")
    reason: str | None = None


def registries_router(store: Callable[[], GraphStore], records: Callable[[], Records],
                      viewer: Callable[[Request], Viewer]) -> APIRouter:
    router = APIRouter(prefix="/registry", tags=["registries"])
    cache: dict[int, Registries] = {}

    def reg() -> Registries:
        s = store()
        if id(s) not in cache:  # the terminology mirror is read once per store
            cache.clear()
            cache[id(s)] = Registries(s)
        return cache[id(s)]

    def audited(request: Request, kind: str, cls: str, key: str, fn: Callable[[], Any]) -> Any:
        return records().trace(viewer(request), f"registry:{kind}", cls, key, fn)

    def release(row: dict[str, Any], request: Request) -> dict[str, Any]:
        return records().guard.release(row, viewer(request))

    # ---------------------------------------------------------------- practitioners
    @router.post("/practitioners", **permit(Permission.REGISTRY_WRITE))
    def register_practitioner(body: PractitionerIn, request: Request) -> dict[str, Any]:
        """注册 Register a practitioner with a licence, or update one registered under the same code."""
        who = viewer(request).user
        return audited(request, "register", "Practitioner", body.code or "?",
                       lambda: reg().practitioners.register(body.record(), actor=who, reason=body.reason))

    @router.patch("/practitioners/{code}", **permit(Permission.REGISTRY_WRITE))
    def update_practitioner(code: str, body: PractitionerIn, request: Request) -> dict[str, Any]:
        """变更注册 Change fields of a practitioner or their licence."""
        who = viewer(request).user
        changes = {k: v for k, v in body.record().items() if k != "code"}
        return audited(request, "update", "Practitioner", code,
                       lambda: reg().practitioners.update(code, changes, actor=who, reason=body.reason))

    @router.get("/practitioners/duplicates", **permit(Permission.REGISTRY_READ))
    def practitioner_duplicates(request: Request) -> list[dict[str, Any]]:
        """Likely duplicate practitioners (keys, rule and score; no identifiers)."""
        return audited(request, "duplicates", "Practitioner", "*", lambda: reg().practitioners.duplicates())

    @router.get("/practitioners", **permit(Permission.REGISTRY_READ))
    def find_practitioners(request: Request, id_number: str | None = None, name: str | None = None,
                           licence: str | None = None, limit: int = Query(10, ge=1, le=100)) -> list[dict[str, Any]]:
        """Look practitioners up by licence number, resident id number (exact) or name (similar)."""
        if licence:
            found = audited(request, "lookup", "PracticeLicense", licence,
                            lambda: reg().practitioners.by_licence(licence))
            return [{**found, "practitioner": release(found["practitioner"], request)}]
        return audited(request, "find", "Practitioner", "query",
                       lambda: reg().practitioners.find(id_number=id_number, name=name, limit=limit))

    @router.get("/practitioners/{code}", **permit(Permission.REGISTRY_READ))
    def practitioner(code: str, request: Request, as_of: dt.date | None = None) -> dict[str, Any]:
        """A practitioner (identifiers masked), their licences with the status in force, employers."""
        found = audited(request, "read", "Practitioner", code, lambda: reg().practitioners.get(code, as_of=as_of))
        return {**found, "practitioner": release(found["practitioner"], request)}

    # ---------------------------------------------------------------- licences and history
    @router.post("/licences/{licence}/status", **permit(Permission.REGISTRY_WRITE))
    def licence_status(licence: str, body: StatusChange, request: Request) -> dict[str, Any]:
        """Suspend, revoke, expire or reinstate a licence (practice or institution)."""
        who = viewer(request).user
        return audited(request, "licence-status", "License", licence,
                       lambda: reg().set_licence_status(licence, body.status, actor=who, reason=body.reason,
                                                        valid_to=body.valid_to))

    @router.get("/history/{subject:path}", **permit(Permission.REGISTRY_READ))
    def history(subject: str, request: Request) -> list[dict[str, Any]]:
        """Every registry change concerning an entry: who, when, why and which fields (no values)."""
        return audited(request, "history", "RegistryEvent", subject, lambda: reg().history(subject))

    # ---------------------------------------------------------------- institutions
    @router.post("/institutions", **permit(Permission.REGISTRY_WRITE))
    def register_institution(body: InstitutionIn, request: Request) -> dict[str, Any]:
        """注册 Register an institution (USCC checked, GB 32100-2015) and its licence, or update it."""
        who = viewer(request).user
        return audited(request, "register", "Institution", body.uscc or "?",
                       lambda: reg().institutions.register(body.record(), actor=who, reason=body.reason))

    @router.patch("/institutions/{uscc}", **permit(Permission.REGISTRY_WRITE))
    def update_institution(uscc: str, body: InstitutionIn, request: Request) -> dict[str, Any]:
        """变更登记 Change fields of an institution or its licence."""
        who = viewer(request).user
        changes = {k: v for k, v in body.record().items() if k != "uscc"}
        return audited(request, "update", "Institution", uscc,
                       lambda: reg().institutions.update(uscc, changes, actor=who, reason=body.reason))

    @router.get("/institutions/duplicates", **permit(Permission.PUBLIC))
    def institution_duplicates() -> list[dict[str, Any]]:
        """Likely duplicate institutions: similar names in the same division."""
        return reg().institutions.duplicates()

    @router.get("/institutions", **permit(Permission.PUBLIC))
    def find_institutions(name: str, division_code: str | None = None,
                          limit: int = Query(10, ge=1, le=100)) -> list[dict[str, Any]]:
        """Institutions with a similar name, optionally in one division."""
        return reg().institutions.find(name, division_code=division_code, limit=limit)

    @router.get("/institutions/{uscc}", **permit(Permission.PUBLIC))
    def institution(uscc: str, as_of: dt.date | None = None) -> dict[str, Any]:
        """An institution, its licences with the status in force and how many practitioners registered there."""
        return reg().institutions.get(uscc, as_of=as_of)

    # ---------------------------------------------------------------- terminology
    @router.get("/terminology/systems", **permit(Permission.PUBLIC))
    def systems() -> list[dict[str, Any]]:
        """Registered code systems with versions and active concept counts."""
        return reg().terminology.systems()

    @router.get("/terminology/search", **permit(Permission.PUBLIC))
    def search(q: str = Query(..., min_length=1), system: str | None = None, version: str | None = None,
               limit: int = Query(20, ge=1, le=200)) -> list[dict[str, Any]]:
        """Concepts by code prefix, Chinese or English label, or pinyin of the Chinese label."""
        return reg().terminology.search(q, system=system, version=version, limit=limit)

    @router.get("/terminology/{system}/concepts", **permit(Permission.PUBLIC))
    def concepts(system: str, version: str | None = None) -> list[dict[str, Any]]:
        """Every concept of a code system version (current by default)."""
        return reg().terminology.concepts_of(system, version)

    @router.get("/terminology/{system}/concepts/{code}/translate", **permit(Permission.PUBLIC))
    def translate(system: str, code: str, target: str | None = None) -> list[dict[str, Any]]:
        """Translate a code to other systems through the mappings, with the equivalence."""
        return reg().terminology.translate(system, code, target)

    @router.get("/terminology/{system}/concepts/{code}", **permit(Permission.PUBLIC))
    def concept(system: str, code: str, version: str | None = None) -> dict[str, Any]:
        """A concept in one version (current by default): labels, status, parent, children, mappings."""
        return reg().terminology.lookup(system, code, version)

    @router.post("/terminology/{system}/versions", **permit(Permission.REGISTRY_WRITE))
    def add_version(system: str, body: VersionIn, request: Request) -> dict[str, Any]:
        """A new version: concepts added or relabelled, codes retired; older versions stay readable."""
        who = viewer(request).user
        return audited(request, "add-version", "CodeSystem", system,
                       lambda: reg().terminology.add_version(system, body.version,
                                                             concepts=[c.model_dump(exclude_none=True) for c in body.concepts],
                                                             retired=body.retired, actor=who,
                                                             reason=body.reason))

    return router
