"""Vaccine lot safety: adverse events following immunisation (AEFI) per lot, and a signal when a
lot's rate departs from the other lots of the same vaccine.

For each lot: vaccinations given, AEFI reported, the rate per 10,000 doses, and a one-sided exact
binomial test of the lot's count against the pooled rate of the vaccine's other lots (Bonferroni
across that vaccine's lots). A lot signals when the adjusted p-value is below ``alpha`` and it has
at least ``min_events`` reports: a cluster worth the investigation that the AEFI surveillance
scheme (全国疑似预防接种异常反应监测方案, 2022: 群体性/聚集性反应 are investigated) asks for.
The statistics are ours; the scheme decides what happens next.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from scipy.stats import binomtest

from graph import GraphStore

ALPHA = 0.05
MIN_EVENTS = 3
BASIS = ("全国疑似预防接种异常反应监测方案 (2022): clusters of AEFI are investigated; signal = one-sided exact "
         "binomial test against the vaccine's other lots, Bonferroni-adjusted")


@dataclass
class LotSafety:
    vaccine: str
    vaccine_name: str | None
    lot: str
    vaccinations: int
    adverse_events: int
    serious: int
    rate_per_10k: float
    others_rate_per_10k: float | None
    p_value: float | None
    """Bonferroni-adjusted; None when the vaccine has no other lot to compare with."""
    signal: bool
    expires_on: Any = None
    recalled: bool | None = None


def lot_signals(store: GraphStore, *, alpha: float = ALPHA, min_events: int = MIN_EVENTS) -> dict[str, Any]:
    """Every lot with its AEFI rate and test; signalling lots first."""
    rows = store.query("adverse_events_by_lot")
    by_vaccine: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_vaccine.setdefault(r["vaccine"], []).append(r)
    lots = []
    for vaccine, group in by_vaccine.items():
        doses, events = sum(r["vaccinations"] for r in group), sum(r["adverse_events"] for r in group)
        for r in group:
            other_doses, other_events = doses - r["vaccinations"], events - r["adverse_events"]
            p = None
            others_rate = None
            if other_doses > 0 and r["vaccinations"] > 0:
                # Half an event added to the other lots keeps a clean comparison group from making
                # any single report infinitely unlikely.
                base = (other_events + 0.5) / (other_doses + 1)
                others_rate = 1e4 * other_events / other_doses
                raw = binomtest(r["adverse_events"], r["vaccinations"], base, alternative="greater").pvalue
                p = float(min(1.0, raw * len(group)))
            rate = 1e4 * r["adverse_events"] / r["vaccinations"] if r["vaccinations"] else 0.0
            lots.append(LotSafety(vaccine, r["vaccine_name"], r["lot"], r["vaccinations"], r["adverse_events"],
                                  r["serious"], rate, others_rate, p,
                                  p is not None and p < alpha and r["adverse_events"] >= min_events,
                                  r["expires_on"], r["recalled"]))
    lots.sort(key=lambda x: (not x.signal, x.p_value if x.p_value is not None else 2.0, x.lot))
    return {"lots": [asdict(x) for x in lots], "signals": [x.lot for x in lots if x.signal], "alpha": alpha,
            "min_events": min_events, "basis": BASIS}
