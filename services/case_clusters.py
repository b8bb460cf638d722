"""Is an outbreak going on, and where? A prospective space-time permutation scan over the cases
of one diagnosis (ICD-10), by county of residence and day (see ``services/spacetime_scan``).

The graph holds no map coordinates yet, so counties are laid out administratively: the counties
of one prefecture on a small circle, prefectures far apart. A scan circle therefore grows from a
county through its neighbours in the same prefecture, never across prefectures; with geographic
centroids on Division nodes the same scan runs on real distances.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from dataclasses import asdict
from typing import Any

import pandas as pd

from graph import GraphStore
from ontology.errors import QueryParameterError
from services.spacetime_scan import scan


def administrative_layout(counties: list[str]) -> dict[str, tuple[float, float]]:
    """Planar points: prefecture k around (1000·k, 0), its counties on a unit circle around it."""
    by_prefecture: dict[str, list[str]] = defaultdict(list)
    for code in sorted(set(counties)):
        by_prefecture[code[:4]].append(code)
    points = {}
    for k, (_, codes) in enumerate(sorted(by_prefecture.items())):
        for j, code in enumerate(codes):
            angle = 2 * math.pi * j / len(codes)
            points[code] = (1000.0 * k + math.cos(angle), math.sin(angle))
    return points


def case_clusters(store: GraphStore, *, icd10: str, since: dt.datetime, until: dt.datetime,
                  max_days: int = 7, replications: int = 999, seed: int = 20250101) -> dict[str, Any]:
    """Clusters of ``icd10`` cases still going on at the end of [since, until): one case per
    resident record (its first encounter in the period)."""
    rows = store.query("case_places", icd10=icd10, since=since, until=until)
    if not rows:
        raise QueryParameterError(f"该时段无 {icd10} 病例 no {icd10} cases between {since:%Y-%m-%d} and {until:%Y-%m-%d}",
                                  icd10=icd10)
    first = pd.DataFrame(rows).sort_values("occurred_at").drop_duplicates("resident")
    cases = pd.DataFrame({"location": first["county"].astype(str), "day": [t.date() for t in first["occurred_at"]],
                          "case": first["resident"].astype(str)})
    counties = [c for c in store.nodes("Division", ["level"]).query("level == 'county'")["key"]]
    # A circle may hold half the cases (SaTScan's default) and always at least one whole county,
    # however populous: otherwise a county with most of the cases could never be a cluster.
    largest = cases["location"].value_counts(normalize=True).iat[0]
    result = scan(cases, administrative_layout(counties + list(cases["location"])),
                  end=(until - dt.timedelta(microseconds=1)).date(), start=since.date(), max_days=max_days,
                  max_share_of_cases=max(0.5, float(largest)), replications=replications, seed=seed)
    return {"icd10": icd10, "window": [since, until], "cases": len(cases),
            "clusters": [asdict(c) for c in result.clusters], "replications": result.replications,
            "basis": result.basis, "layout": "administrative (no coordinates in the graph yet)"}
