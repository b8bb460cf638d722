"""HTTP routes of the master person index (平台主索引), FHIR-flavoured where natural.

Every route reads or changes personal data, so each passes the records layer: audited, with
identifiers masked by the privacy guard in what is returned. The caller (actor) is the viewer.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from services.mpi import MasterPersonIndex
from services.access import Permission
from services.access.web import permit
from services.privacy import Viewer, mask_identifiers
from services.records import Records


class PersonRecord(BaseModel):
    """A person record as a source system holds it (GB/T 2261.1 sex codes, GB 11643 id)."""

    source_system: str | None = Field(None, description="来源系统 assigning authority, e.g. HIS-<uscc>")
    source_id: str | None = Field(None, description="来源标识 the local person id in that system")
    name: str | None = Field(None, description="姓名 name")
    sex: str | None = Field(None, description="性别 1 男 male, 2 女 female, 0 unknown, 9 unstated")
    birth_date: dt.date | None = Field(None, description="出生日期 birth date")
    id_number: str | None = Field(None, description="身份证号 18-digit resident id (or legacy 15-digit)")
    phone: str | None = None
    address: str | None = None
    division_code: str | None = Field(None, description="行政区划代码 GB/T 2260 county code")

    def person(self) -> dict[str, Any]:
        row = self.model_dump(exclude_none=True)
        if self.source_system and self.source_id:
            row["key"] = f"{self.source_system}:{self.source_id}"
        return row


class LinkRequest(BaseModel):
    record: str = Field(..., description="source record key <source_system>:<source_id>")
    master_id: str
    reason: str | None = None


class UnlinkRequest(BaseModel):
    record: str
    reason: str | None = None


class MergeRequest(BaseModel):
    source: str = Field(..., description="master id merged away")
    target: str = Field(..., description="master id that survives")
    reason: str | None = None


class UnmergeRequest(BaseModel):
    master_id: str
    reason: str | None = None


class Decision(BaseModel):
    reason: str | None = None


class SourceSystemIn(BaseModel):
    code: str
    name: str
    trust: int | None = Field(None, ge=0, le=100, description="可信度 survivorship trust 0–100")


def mpi_router(mpi: Callable[[], MasterPersonIndex], records: Callable[[], Records],
               viewer: Callable[[Request], Viewer]) -> APIRouter:
    router = APIRouter(prefix="/mpi", tags=["master person index"])

    def audited(request: Request, kind: str, key: str, fn: Callable[[], Any]) -> Any:
        return records().trace(viewer(request), f"mpi:{kind}", "MasterPerson", key, fn)

    def release(row: dict[str, Any], request: Request) -> dict[str, Any]:
        return records().guard.release(row, viewer(request))

    @router.post("/Patient/$match", **permit(Permission.MPI_READ))
    def match(body: PersonRecord, request: Request, limit: int = Query(10, ge=1, le=50)) -> list[dict[str, Any]]:
        """$match: candidate master persons with probabilities and per-field evidence; changes nothing."""
        person = body.person()
        found = audited(request, "match", person.get("key", "query"), lambda: mpi().match(person, limit=limit))
        return [_masked(c.to_dict()) for c in found]

    @router.post("/persons", **permit(Permission.MPI_WRITE))
    def register(body: PersonRecord, request: Request, reason: str | None = None) -> dict[str, Any]:
        """注册 Register or update a source record; it is linked to a master person (new or existing)."""
        person = body.person()
        who = viewer(request).user
        return audited(request, "register", person.get("key", "?"),
                       lambda: mpi().register(person, actor=who, reason=reason))

    @router.get("/persons/{master_id}", **permit(Permission.MPI_READ))
    def person(master_id: str, request: Request) -> dict[str, Any]:
        """The golden record (identifiers masked), its source records and every link."""
        def read() -> dict[str, Any]:
            index = mpi()
            active = index.resolve(master_id)
            return {"master_id": active, "requested": master_id, "golden": index.golden(active),
                    "records": index.records_of(active), "possible": index.records_of(active, "POSSIBLE_MATCH"),
                    "redirected": index.records_of(active, "REDIRECT")}
        found = audited(request, "read", master_id, read)
        found["golden"] = release(found["golden"], request)
        return found

    @router.get("/xref", **permit(Permission.MPI_READ))
    def cross_references(source_system: str, source_id: str, request: Request,
                         system: Annotated[list[str] | None, Query(description="only these source systems")] = None
                         ) -> dict[str, Any]:
        """PIX query: the master id of a source record and its ids in the other source systems."""
        return audited(request, "pix", f"{source_system}:{source_id}",
                       lambda: mpi().cross_references(source_system, source_id, systems=system))

    @router.post("/pdq", **permit(Permission.MPI_READ))
    def demographic_query(body: PersonRecord, request: Request, limit: int = Query(10, ge=1, le=50)
                          ) -> list[dict[str, Any]]:
        """PDQ query: master persons matching demographics (golden records, identifiers masked)."""
        found = audited(request, "pdq", "query", lambda: mpi().demographic_query(body.person(), limit=limit))
        return [{**row, "golden": release(row["golden"], request)} for row in found]

    @router.post("/link", **permit(Permission.MPI_WRITE))
    def link(body: LinkRequest, request: Request) -> dict[str, Any]:
        """Link a record to a master person by hand (MATCH, MANUAL)."""
        who = viewer(request).user
        return audited(request, "link", body.master_id,
                       lambda: mpi().link(body.record, body.master_id, actor=who, reason=body.reason))

    @router.post("/unlink", **permit(Permission.MPI_WRITE))
    def unlink(body: UnlinkRequest, request: Request) -> dict[str, Any]:
        """Detach a record from its master (it gets its own; the old link becomes NO_MATCH)."""
        who = viewer(request).user
        return audited(request, "unlink", body.record,
                       lambda: mpi().unlink(body.record, actor=who, reason=body.reason))

    @router.post("/merge", **permit(Permission.MPI_WRITE))
    def merge(body: MergeRequest, request: Request) -> dict[str, Any]:
        """Merge two master persons; the source redirects to the target."""
        who = viewer(request).user
        return audited(request, "merge", body.target,
                       lambda: mpi().merge(body.source, body.target, actor=who, reason=body.reason))

    @router.post("/unmerge", **permit(Permission.MPI_WRITE))
    def unmerge(body: UnmergeRequest, request: Request) -> dict[str, Any]:
        """Undo the merge that took a master person away (exact prior state)."""
        who = viewer(request).user
        return audited(request, "unmerge", body.master_id,
                       lambda: mpi().unmerge(body.master_id, actor=who, reason=body.reason))

    @router.get("/review", **permit(Permission.MPI_READ))
    def review(request: Request, limit: int = Query(100, ge=1, le=1000)) -> list[dict[str, Any]]:
        """The review queue: POSSIBLE_MATCH links, most probable first."""
        return audited(request, "review", "queue", lambda: mpi().review_queue(limit=limit))

    @router.post("/review/{link:path}/accept", **permit(Permission.MPI_WRITE))
    def accept(link: str, body: Decision, request: Request) -> dict[str, Any]:
        who = viewer(request).user
        return audited(request, "accept", link, lambda: mpi().accept(link, actor=who, reason=body.reason))

    @router.post("/review/{link:path}/reject", **permit(Permission.MPI_WRITE))
    def reject(link: str, body: Decision, request: Request) -> dict[str, Any]:
        who = viewer(request).user
        return audited(request, "reject", link, lambda: mpi().reject(link, actor=who, reason=body.reason))

    @router.get("/history/{subject:path}", **permit(Permission.MPI_READ))
    def history(subject: str, request: Request) -> list[dict[str, Any]]:
        """Every change concerning a master id or a record key: who, when, why."""
        return audited(request, "history", subject, lambda: mpi().history(subject))

    @router.get("/events", **permit(Permission.MPI_EVENTS))
    def events(since: str = "", limit: int = Query(100, ge=1, le=1000)) -> list[dict[str, Any]]:
        """Identity events after an event id (ids and actions only), for consumers that poll."""
        return mpi().events(since=since, limit=limit)

    @router.post("/sources", **permit(Permission.MPI_WRITE))
    def register_source(body: SourceSystemIn, request: Request) -> dict[str, Any]:
        """Register a source system (assigning authority) with its survivorship trust."""
        return mpi().register_source(body.code, body.name, trust=body.trust, actor=viewer(request).user)

    @router.get("/sources", **permit(Permission.MPI_EVENTS))
    def sources() -> dict[str, int]:
        """Registered source systems and their trust."""
        return dict(sorted(mpi().trust.items()))

    return router


def _masked(candidate: dict[str, Any]) -> dict[str, Any]:
    """A candidate with the compared values' identifiers masked (names and dates stay: reviewers need them)."""
    fields = [{**f, **{side: mask_identifiers(f[side]) if isinstance(f[side], str) else f[side]
                       for side in ("left", "right")}} for f in candidate["fields"]]
    return {**candidate, "fields": fields}
