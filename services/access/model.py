"""The closed vocabularies of access control: roles, permissions, purposes of use, consent categories,
and who may do what for which purpose (the one table :func:`services.access.policy.authorise` reads)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from services.privacy import Viewer


class Role(StrEnum):
    RESIDENT = "resident"
    CLINICIAN = "clinician"
    TRIAGE_USER = "triage_user"
    INVESTIGATOR = "investigator"
    SUPERVISOR = "supervisor"
    RESEARCHER = "researcher"
    NODE = "node"  # an institution or node system, authenticated with client credentials
    SYSTEM_ADMIN = "system_admin"
    SECURITY_ADMIN = "security_admin"
    AUDIT_ADMIN = "audit_admin"


ADMIN_ROLES = frozenset({Role.SYSTEM_ADMIN, Role.SECURITY_ADMIN, Role.AUDIT_ADMIN})
"""三权分立: one user holds at most one of these, and none of them reads personal data."""

PRIVILEGED_ROLES = ADMIN_ROLES | {Role.SUPERVISOR}
"""Roles that must log in with a TOTP second factor."""


class Purpose(StrEnum):
    TREATMENT = "treatment"
    PUBLIC_HEALTH = "public_health"
    INVESTIGATION = "investigation"
    SUPERVISION = "supervision"
    PATIENT_REQUEST = "patient_request"
    OPERATIONS = "operations"
    RESEARCH = "research"


class Permission(StrEnum):
    """What a route needs; every route declares exactly one."""

    PUBLIC = "public"                  # open to anyone, no login: health, docs, console, triage, public directory
    SELF = "self"                      # any logged-in principal, about itself: /auth/me, /auth/revoke
    READ_PERSONAL = "read:personal"    # graph nodes, neighbours, paths
    QUERY = "query"                    # named queries over the whole graph
    TRACE = "trace"                    # investigations reading linked personal data (blood, food)
    TRACE_AGGREGATE = "trace:aggregate"  # aggregate traceability views (counts, signals, clusters)
    MPI_READ = "mpi:read"
    MPI_WRITE = "mpi:write"
    MPI_EVENTS = "mpi:events"          # identity event ids only
    REGISTRY_READ = "registry:read"    # practitioner records (personal data)
    REGISTRY_WRITE = "registry:write"
    SUPERVISE = "supervise"            # rules, runs, alerts, webhooks
    AUDIT_READ = "audit:read"


PERSONAL = frozenset({Permission.READ_PERSONAL, Permission.QUERY, Permission.TRACE, Permission.MPI_READ,
                      Permission.MPI_WRITE, Permission.REGISTRY_READ, Permission.REGISTRY_WRITE,
                      Permission.SUPERVISE})
"""Permissions of personal-data routes: a purpose of use is required and every decision is audited."""

_ID = {Purpose.TREATMENT, Purpose.OPERATIONS, Purpose.PUBLIC_HEALTH, Purpose.INVESTIGATION}

GRANTS: dict[Role, dict[Permission, frozenset[Purpose]]] = {
    Role.RESIDENT: {Permission.READ_PERSONAL: frozenset({Purpose.PATIENT_REQUEST})},
    Role.CLINICIAN: {Permission.READ_PERSONAL: frozenset({Purpose.TREATMENT}),
                     Permission.MPI_READ: frozenset({Purpose.TREATMENT, Purpose.OPERATIONS}),
                     Permission.MPI_WRITE: frozenset({Purpose.TREATMENT, Purpose.OPERATIONS}),
                     Permission.MPI_EVENTS: frozenset(),
                     Permission.REGISTRY_READ: frozenset({Purpose.OPERATIONS, Purpose.TREATMENT})},
    Role.TRIAGE_USER: {},
    Role.INVESTIGATOR: {Permission.TRACE: frozenset({Purpose.INVESTIGATION, Purpose.PUBLIC_HEALTH}),
                        Permission.TRACE_AGGREGATE: frozenset(),
                        Permission.QUERY: frozenset({Purpose.INVESTIGATION, Purpose.PUBLIC_HEALTH}),
                        Permission.MPI_READ: frozenset({Purpose.INVESTIGATION, Purpose.PUBLIC_HEALTH}),
                        Permission.MPI_EVENTS: frozenset(),
                        Permission.REGISTRY_READ: frozenset({Purpose.INVESTIGATION})},
    Role.SUPERVISOR: {Permission.SUPERVISE: frozenset({Purpose.SUPERVISION}),
                      Permission.TRACE_AGGREGATE: frozenset(),
                      Permission.QUERY: frozenset({Purpose.SUPERVISION}),
                      Permission.REGISTRY_READ: frozenset({Purpose.SUPERVISION, Purpose.OPERATIONS}),
                      Permission.REGISTRY_WRITE: frozenset({Purpose.SUPERVISION, Purpose.OPERATIONS})},
    Role.RESEARCHER: {},
    Role.NODE: {Permission.MPI_READ: frozenset(_ID),
                Permission.MPI_WRITE: frozenset(_ID),
                Permission.MPI_EVENTS: frozenset(),
                Permission.REGISTRY_READ: frozenset({Purpose.OPERATIONS}),
                Permission.REGISTRY_WRITE: frozenset({Purpose.OPERATIONS})},
    Role.SYSTEM_ADMIN: {},
    Role.SECURITY_ADMIN: {},
    Role.AUDIT_ADMIN: {Permission.AUDIT_READ: frozenset()},
}
"""Role → permission → purposes allowed (empty: the permission needs no purpose). ``public`` and ``self``
are everyone's and are not listed."""

CATEGORIES = ("demographics", "encounters", "diagnoses", "prescriptions", "lab_results", "records", "all")
"""Consent categories; ``all`` covers every other one."""

CATEGORY_OF_TABLE = {"Resident": "demographics", "Encounter": "encounters", "Diagnosis": "diagnoses",
                     "Prescription": "prescriptions", "PrescriptionItem": "prescriptions", "LabResult": "lab_results"}
"""A storage table's consent category; any other personal table is ``records``."""


@dataclass(frozen=True)
class Principal:
    """Who is calling, as established by a valid token: a user or an institution/node client."""

    name: str
    role: Role
    institution: str | None = None
    labels: frozenset[str] = field(default_factory=frozenset)
    subjects: frozenset[str] = field(default_factory=frozenset)  # a resident's own Resident/MasterPerson keys
    session: str = ""
    token_id: str = ""

    def viewer(self, purpose: str) -> Viewer:
        return Viewer(user=self.name, role=str(self.role), purpose=purpose, labels=self.labels)


ANONYMOUS = Viewer(user="anonymous", role="public", purpose="operations")
