"""Food-borne outbreak trace-back and trace-forward on the generated province, against its ground truth."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from graph import GraphStore
from ontology.errors import QueryParameterError
from services.food_trace import trace_back, trace_forward

START, END = dt.datetime(2025, 1, 1), dt.datetime(2026, 1, 1)  # the generator's window (manifest.json)


@pytest.fixture(scope="module")
def records(province: Path) -> pd.DataFrame:
    return pd.read_parquet(province / "truth" / "person_records.parquet")


def test_the_source_ranks_first_with_score_one_from_a_case_list(store: GraphStore, truth: dict, records) -> None:
    outbreak = truth["outbreak"]
    cases = records[records["person"].isin(outbreak["cases"])]["key"].tolist()
    found = trace_back(store, cases=cases, start=START, end=END)
    top = found["stations"][0]
    assert (top["key"], top["score"]) == (outbreak["source_station"], 1.0)
    assert found["lots"][0]["key"] == outbreak["source_lot"] and found["lots"][0]["score"] == 1.0
    assert outbreak["positive_sample"] in found["lots"][0]["positive_samples"]
    assert found["cases_traced"] == len(outbreak["cases"])
    scores = {s["key"]: s["score"] for s in found["stations"]}
    assert scores[outbreak["distributor"]] == 1.0  # a common link too, but downstream of the source
    assert all(scores[v] < 1.0 for v in outbreak["venues"]), "each venue served only part of the cases"


def test_the_source_is_found_from_the_diagnosis_code_alone(store: GraphStore, truth: dict) -> None:
    outbreak = truth["outbreak"]
    found = trace_back(store, icd10=outbreak["icd10"], start=START, end=END)
    assert found["stations"][0]["key"] == outbreak["source_station"]
    assert found["lots"][0]["key"] == outbreak["source_lot"]
    assert found["options"] == {"weighted_cases": 0, "controls": 0, "cross_contamination": [], "kill": []}, \
        "an answer says which options it used"


def test_trace_forward_reaches_every_venue_and_exposed_case(store: GraphStore, truth: dict, records) -> None:
    outbreak = truth["outbreak"]
    found = trace_forward(store, outbreak["source_lot"], start=START, end=END)
    assert set(outbreak["venues"]) | {outbreak["distributor"], outbreak["source_station"]} <= set(found["stations"])
    person = dict(zip(records["key"], records["person"], strict=True))
    assert {person[r] for r in found["residents"]} == set(outbreak["cases"])
    dates = [d["occurred_at"] for d in found["deliveries"]]
    assert dates == sorted(dates) and len(found["deliveries"]) == 1 + len(outbreak["venues"])


def test_without_cases_or_meals_the_trace_says_why(store: GraphStore) -> None:
    with pytest.raises(QueryParameterError):
        trace_back(store, start=START, end=END)
    with pytest.raises(QueryParameterError, match="no case has a recorded meal"):
        trace_back(store, cases=["PHIS:no-such-record"], start=START, end=END)


def test_plausibility_checks_report_what_is_wrong() -> None:
    from services.food_trace import Network, check_network, likely_duplicates

    t = dt.datetime(2025, 6, 1)
    day = dt.timedelta(days=1)
    network = Network(deliveries=[
        {"delivery": "D1", "lot": "L1", "from_key": "farm", "to_key": "hub", "occurred_at": t, "quantity": 100.0},
        {"delivery": "D2", "lot": "L1", "from_key": "hub", "to_key": "cafe", "occurred_at": t - day, "quantity": 40.0},
        {"delivery": "D3", "lot": "L1", "from_key": "hub", "to_key": "deli", "occurred_at": t + day, "quantity": 70.0},
        {"delivery": "D4", "lot": "L2", "from_key": "hub", "to_key": "cafe", "occurred_at": t, "quantity": 5.0},
    ], producer={"L1": "farm", "L2": "farm"}, made_from={})
    found = check_network(network)
    assert [(x["delivery"], x["problem"][:4]) for x in found["out_of_order"]] == [("D2", "送出早于"), ("D4", "无到货记")]
    assert [(x["station"], x["lot"], x["received"], x["sent"]) for x in found["unbalanced"]] == [("hub", "L1", 100.0, 110.0)]
    dupes = likely_duplicates([{"key": "a", "name": "西湖 酒家", "division_code": "330106"},
                               {"key": "b", "name": "西湖酒家", "division_code": "330106"},
                               {"key": "c", "name": "西湖酒家", "division_code": "330102"}])
    assert dupes == [{"division_code": "330106", "name": "西湖酒家", "stations": ["a", "b"]}]


def test_the_generated_supply_chain_is_plausible(store: GraphStore) -> None:
    from services.food_trace import Network, plausibility

    assert len(Network.read(store, START, END).deliveries) > 100, "the check must have something to check"
    found = plausibility(store, start=START, end=END)
    assert found["out_of_order"] == [] and found["unbalanced"] == []
