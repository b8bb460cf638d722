"""The one place personal data is released: masking by sensitivity and restricted diagnoses.

Every service that returns personal data passes it through ``Guard.release``; the rules come
from the ontology's sensitivity annotations (identifiers masked, restricted diagnoses hidden
from viewers without the right). Who the viewer is, their role, purpose of use and labels are
established by :mod:`services.access` before any route runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ontology.model import Ontology


@dataclass(frozen=True)
class Viewer:
    """Who is reading, why, and which sensitivity labels they may see (e.g. {"HIV"})."""

    user: str = "anonymous"
    role: str = "operator"
    purpose: str = "operations"
    labels: frozenset[str] = field(default_factory=frozenset)


def mask(value: str) -> str:
    """Keep the first 3 and last 4 characters: 330106********123X, 138****5678."""
    if len(value) <= 7:
        return "*" * len(value)
    return value[:3] + "*" * (len(value) - 7) + value[-4:]


_IDENTIFIER_IN_TEXT = re.compile(r"(?<![0-9])(?:[0-9]{17}[0-9Xx]|[0-9]{15}|1[3-9][0-9]{9})(?![0-9])")


def mask_identifiers(text: str) -> str:
    """Mask resident ids (18 or 15 digits) and mobile numbers wherever they appear in free text."""
    return _IDENTIFIER_IN_TEXT.sub(lambda m: mask(m.group()), text)


class Guard:
    def __init__(self, onto: Ontology) -> None:
        self.onto = onto
        self._labels = {name: re.compile(s.icd10_pattern) for name, s in onto.sensitivity_labels.items()}
        self.personal_classes = frozenset(
            c for c in onto.classes
            if any(p.sensitivity for p in onto.properties_of(c).values())
            or set(onto.ancestors(c)) & onto.edges["of_patient"].domain
            or onto.classes[c].table in ("Diagnosis", "Prescription", "PrescriptionItem", "LabResult",
                                         "TransfusionReaction")
        )

    def is_personal(self, cls: str) -> bool:
        return cls in self.personal_classes

    def restriction(self, icd10_code: str | None) -> str | None:
        """The sensitivity label an ICD-10 code falls under, if any."""
        if not icd10_code:
            return None
        for name, rx in self._labels.items():
            if rx.fullmatch(icd10_code):
                return name
        return None

    def restriction_of_prefix(self, prefix: str | None) -> str | None:
        """The sensitivity label of any code starting with ``prefix`` (``F2`` covers F20–F29: psychiatric)."""
        if not prefix:
            return None
        digits = "0123456789"
        for tail in ("", *digits, *(a + b for a in digits for b in digits)):
            label = self.restriction(prefix + tail)
            if label:
                return label
        return None

    def release(self, record: dict[str, Any], viewer: Viewer) -> dict[str, Any]:
        """A copy of one node's properties that the viewer may see."""
        cls = record.get("class", "")
        props = self.onto.properties_of(cls) if cls in self.onto.classes else {}
        label = self.restriction(record.get("icd10_code")) or (
            self.restriction(record.get("key")) if cls == "Disease" else None)
        if label and label not in viewer.labels:
            keep = {"class"} if cls == "Disease" else {"key", "class"}  # a disease's key is its ICD-10 code
            return {**{k: v for k, v in record.items() if k in keep},
                    "restricted": label, "message": "受限信息 restricted: 需要相应授权 requires the matching right"}
        out = {}
        for k, v in record.items():
            prop = props.get(k)
            if prop is not None and prop.sensitivity == "identifier" and isinstance(v, str):
                out[k] = mask(v)
            else:
                out[k] = v
        return out

    def release_row(self, row: dict[str, Any], viewer: Viewer) -> dict[str, Any]:
        """A query result row, withheld whole when a code in it is a restricted diagnosis the viewer may not see."""
        for name, value in row.items():
            if isinstance(value, str) and ("icd10" in name or name in ("code", "disease", "diagnosis")):
                label = self.restriction(value)
                if label and label not in viewer.labels:
                    return {"restricted": label, "message": "受限信息 restricted: 需要相应授权 requires the matching right"}
        return row
