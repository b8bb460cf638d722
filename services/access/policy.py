"""The one enforcement point: :func:`authorise` decides every request, from the role table in
:mod:`services.access.model`, the purpose of use, and — for personal records — ownership, care and consent."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from services.access.errors import AccessError, Forbidden, PurposeInvalid, PurposeMissing
from services.access.model import GRANTS, PERSONAL, Permission, Principal, Purpose, Role


class Facts(Protocol):
    """What the policy needs to know about the data (answered from the graph and the consent store)."""

    def is_personal(self, cls: str) -> bool: ...

    def patients_of(self, cls: str, key: str) -> frozenset[str]: ...

    def in_care(self, resident: str, institution: str) -> bool: ...

    def consented(self, resident: str, institution: str, purpose: str, cls: str) -> bool: ...


@dataclass(frozen=True)
class Resource:
    """What a request is about: a graph node for node routes, otherwise the route path."""

    path: str
    cls: str | None = None
    key: str | None = None

    @property
    def entity(self) -> str:
        return f"{self.cls}/{self.key}" if self.cls and self.key else self.path


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    error: AccessError | None = None

    def enforce(self) -> None:
        if self.error is not None:
            raise self.error


def _deny(reason: str, error: type[AccessError] = Forbidden, **details: object) -> Decision:
    return Decision(False, reason, error(reason, **details))


def authorise(principal: Principal | None, permission: Permission, resource: Resource, purpose: str | None,
              facts: Facts) -> Decision:
    """Allow or deny one request. ``principal`` is None for an anonymous caller."""
    if permission is Permission.PUBLIC:
        return Decision(True, "public")
    if principal is None:
        from services.access.errors import Unauthenticated

        return _deny("需要登录 login required", Unauthenticated)
    if permission is Permission.SELF:
        return Decision(True, "self")
    grants = GRANTS[principal.role]
    if permission not in grants:
        return _deny(f"角色 {principal.role} 无 {permission} 权限 role {principal.role} lacks {permission}",
                     role=str(principal.role), permission=str(permission))
    if permission in PERSONAL:
        if not purpose:
            return _deny("个人数据访问须声明使用目的 X-Purpose-Of-Use is required on personal-data routes",
                         PurposeMissing, valid=[p.value for p in Purpose])
        if purpose not in {p.value for p in Purpose}:
            return _deny(f"未知使用目的 unknown purpose of use {purpose!r}", PurposeInvalid,
                         valid=[p.value for p in Purpose])
    purposes = grants[permission]
    if purposes and purpose not in purposes:
        return _deny(f"角色 {principal.role} 不能以 {purpose} 为目的使用 {permission} "
                     f"role {principal.role} may not use {permission} for {purpose}",
                     allowed_purposes=sorted(purposes))
    if permission is Permission.READ_PERSONAL and resource.cls and resource.key and facts.is_personal(resource.cls):
        return _personal_record(principal, resource, purpose or "", facts)
    return Decision(True, f"{principal.role} holds {permission}")


def _personal_record(principal: Principal, resource: Resource, purpose: str, facts: Facts) -> Decision:
    assert resource.cls and resource.key
    patients = facts.patients_of(resource.cls, resource.key)
    if principal.role is Role.RESIDENT:
        if resource.key in principal.subjects or (patients and patients <= principal.subjects):
            return Decision(True, "own record")
        return _deny("居民只能查看本人记录 a resident may read their own record only")
    if principal.role is Role.CLINICIAN:
        if not principal.institution:
            return _deny("医务人员未关联机构 clinician without an institution")
        if not patients:
            return _deny("记录不属于任何患者 the record belongs to no patient")
        for patient in sorted(patients):
            if not facts.in_care(patient, principal.institution):
                return _deny("该患者未在本机构就诊 the patient has no encounter at your institution",
                             reason_code="not_in_care")
            if not facts.consented(patient, principal.institution, purpose, resource.cls):
                return _deny("患者未授权本机构以此目的查看此类数据 no consent from the patient for your institution, "
                             "this purpose and this category", reason_code="no_consent")
        return Decision(True, "patient in care, with consent")
    return _deny(f"角色 {principal.role} 不能查看个人记录 role {principal.role} may not read personal records")
