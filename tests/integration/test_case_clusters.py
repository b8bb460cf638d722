"""The prospective space-time scan over generated cases: the planted outbreak is detected on its
last day, and nothing unusual is flagged a month before it."""

from __future__ import annotations

import datetime as dt
from graph import GraphStore
from services.case_clusters import administrative_layout, case_clusters

SINCE = dt.datetime(2025, 1, 1)


def _outbreak_days(store: GraphStore, truth: dict) -> list[dt.datetime]:
    return sorted(store.get("Encounter", k)["occurred_at"] for k in truth["outbreak"]["case_encounters"])


def test_the_outbreak_is_a_current_cluster_on_its_last_day(store: GraphStore, truth: dict) -> None:
    days = _outbreak_days(store, truth)
    until = dt.datetime.combine(days[-1].date() + dt.timedelta(days=1), dt.time())
    found = case_clusters(store, icd10="A0", since=SINCE, until=until, replications=199)
    top = found["clusters"][0]
    case_records = {store.neighbours("Encounter", k, edge="of_patient")[0]["key"]
                    for k in truth["outbreak"]["case_encounters"]}
    assert top["p_value"] <= 0.01 and top["observed"] > top["expected"]
    assert top["start"] <= days[-1].date() and top["end"] == days[-1].date()
    assert len(set(top["cases"]) & case_records) >= 0.8 * len(case_records)


def test_a_month_before_the_outbreak_nothing_is_unusual(store: GraphStore, truth: dict) -> None:
    days = _outbreak_days(store, truth)
    found = case_clusters(store, icd10="A0", since=SINCE, until=days[0] - dt.timedelta(days=30), replications=199)
    assert all(c["p_value"] > 0.05 for c in found["clusters"])


def test_the_layout_keeps_prefectures_apart() -> None:
    points = administrative_layout(["330106", "330102", "330203"])
    near = abs(points["330106"][0] - points["330102"][0]) + abs(points["330106"][1] - points["330102"][1])
    far = abs(points["330106"][0] - points["330203"][0])
    assert near <= 4 and far >= 900
