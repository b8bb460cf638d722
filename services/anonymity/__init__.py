"""Exact anonymisation: optimal full-domain generalisation with suppression under k-anonymity, ℓ-diversity and
t-closeness, searching the whole generalisation lattice (results match ARX's optima; see docs/anonymity.md).

    from services.anonymity import Hierarchy, KAnonymity, EntropyLDiversity, anonymize, interval_hierarchy

    hierarchies = {"age": interval_hierarchy(df["age"], (5, 10, 20), name="age"),
                   "sex": Hierarchy.from_csv("sex.csv", name="sex")}
    result = anonymize(df, hierarchies, [KAnonymity(5), EntropyLDiversity("diagnosis", 3)], suppression_limit=0.04)
    result.data, result.levels, result.loss, result.suppressed, result.verification.achieved
"""

from services.anonymity.anonymizer import AnonymizationResult, anonymize
from services.anonymity.errors import (
    AnonymityError,
    HierarchyInvalid,
    HierarchyMissingValue,
    HierarchyNotMonotone,
    InvalidConfiguration,
    InvalidPrivacyModel,
    NoSolution,
    VerificationFailed,
)
from services.anonymity.hierarchy import (
    Hierarchy,
    date_hierarchy,
    division_hierarchy,
    interval_hierarchy,
    suppression_hierarchy,
)
from services.anonymity.lattice import SearchStats
from services.anonymity.metrics import METRICS, Metric
from services.anonymity.models import (
    DistinctLDiversity,
    EntropyLDiversity,
    EqualDistanceTCloseness,
    HierarchicalTCloseness,
    KAnonymity,
    PrivacyModel,
)
from services.anonymity.verify import Verification, verify

__all__ = [
    "METRICS",
    "AnonymityError",
    "AnonymizationResult",
    "DistinctLDiversity",
    "EntropyLDiversity",
    "EqualDistanceTCloseness",
    "HierarchicalTCloseness",
    "Hierarchy",
    "HierarchyInvalid",
    "HierarchyMissingValue",
    "HierarchyNotMonotone",
    "InvalidConfiguration",
    "InvalidPrivacyModel",
    "KAnonymity",
    "Metric",
    "NoSolution",
    "PrivacyModel",
    "SearchStats",
    "Verification",
    "VerificationFailed",
    "anonymize",
    "date_hierarchy",
    "division_hierarchy",
    "interval_hierarchy",
    "suppression_hierarchy",
    "verify",
]
