"""Score what the supervision rules found against the anomalies the generator planted.

Each anomaly in ``ground_truth.json`` names the record an alert must concern (a prescription, a unit,
a department…); a finding or alert matches it when one of its ``Class:key`` subjects is that record.
Used by the supervision tests (recall and precision 1.0 per rule) and by ``benchmarks/bench_rules.py``
at scale.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

# Which field of a planted anomaly names the record an alert must concern, and its ontology class.
SUBJECT_OF = {"encounter": "Encounter", "prescription": "Prescription", "diagnosis": "Diagnosis", "unit": "BloodUnit",
              "vaccination": "Vaccination", "department": "Department", "reactions": "TransfusionReaction",
              "person": "Resident", "encounters": "Encounter", "store": "Institution"}
# When an anomaly has several of those fields, the first of these is the one alerts name.
PRIMARY = ("store", "department", "prescription", "diagnosis", "unit", "vaccination", "reactions", "encounter",
           "encounters", "person")


def planted_subjects(anomaly: Mapping[str, Any], records: pd.DataFrame) -> set[str]:
    """The ``Class:key`` subjects any one of which an alert for ``anomaly`` must name.

    ``records`` is the generator's ``truth/person_records.parquet`` (source record key → person): an
    anomaly about a person is matched by an alert on any of that person's source records."""
    field = next(f for f in PRIMARY if f in anomaly)
    values = anomaly[field] if isinstance(anomaly[field], list) else [anomaly[field]]
    if field == "person":
        values = records.loc[records["person"].isin(values), "key"].tolist()
    return {f"{SUBJECT_OF[field]}:{v}" for v in values}


@dataclass(frozen=True)
class RuleScore:
    """One rule against the planted anomalies of its kind."""

    rule_id: str
    planted: int
    found: int
    """Planted anomalies some alert names."""
    alerts: int
    true_alerts: int
    """Alerts that name some planted anomaly."""

    @property
    def recall(self) -> float:
        return self.found / self.planted if self.planted else 1.0

    @property
    def precision(self) -> float:
        return self.true_alerts / self.alerts if self.alerts else 1.0


def score(alerts_by_rule: Mapping[str, Iterable[Iterable[str]]], anomalies: Iterable[Mapping[str, Any]],
          records: pd.DataFrame) -> dict[str, RuleScore]:
    """Recall and precision per rule: ``alerts_by_rule`` gives each rule's alerts (or findings) as their
    subjects; an anomaly's ``kind`` is the id of the rule that must find it."""
    planted: dict[str, list[set[str]]] = {}
    for anomaly in anomalies:
        planted.setdefault(anomaly["kind"], []).append(planted_subjects(anomaly, records))
    out = {}
    for rule_id in sorted(set(alerts_by_rule) | set(planted)):
        alerts = [set(a) for a in alerts_by_rule.get(rule_id, [])]
        expected = planted.get(rule_id, [])
        out[rule_id] = RuleScore(
            rule_id, planted=len(expected), found=sum(any(a & e for a in alerts) for e in expected),
            alerts=len(alerts), true_alerts=sum(any(a & e for e in expected) for a in alerts))
    return out
