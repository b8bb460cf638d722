"""Lookback and traceback on the generated province, checked against its ground truth."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from graph import GraphStore
from ontology.errors import InvalidDin, NodeNotFound
from services.blood_safety import LOOKBACK_MONTHS, lookback, traceback

AS_OF = dt.date(2026, 1, 1)  # the generator's as-of date (manifest.json)


@pytest.fixture(scope="module")
def person_of(province: Path) -> dict[str, str]:
    records = pd.read_parquet(province / "truth" / "person_records.parquet")
    return dict(zip(records["key"], records["person"], strict=True))


def test_lookback_finds_every_recipient_of_the_positive_donor(store: GraphStore, truth: dict, person_of) -> None:
    donor = truth["positive_donor"]
    found = lookback(store, donor["reactive_donation"], as_of=AS_OF)
    assert [d["donation"] for d in found.donations] == donor["donations"]
    assert {u.unit for u in found.units} == set(donor["units"])
    assert {r["unit"] for r in found.recipients} == set(donor["transfused_units"])
    assert sorted(person_of[r["recipient"]] for r in found.recipients) == sorted(donor["recipients"])
    assert found.quarantine_by == found.reactive_at.date() + dt.timedelta(days=3)


def test_lookback_says_what_to_do_with_each_unit(store: GraphStore, truth: dict) -> None:
    donor = truth["positive_donor"]
    found = lookback(store, donor["reactive_donation"], as_of=AS_OF)
    actions = {u.unit: u.action for u in found.units}
    reactive_units = {u.unit for u in found.units if u.donation == donor["reactive_donation"]}
    assert reactive_units and all(actions[u] == "held" for u in reactive_units)
    assert all(actions[u] == "notify recipient" for u in donor["transfused_units"])
    for u in found.quarantine_first:  # in date on the as-of day and never transfused
        assert u.expires_on >= AS_OF and not u.transfusions
    dates = [u.expires_on for u in found.quarantine_first]
    assert dates == sorted(dates)


def test_the_window_excludes_older_donations(store: GraphStore, truth: dict) -> None:
    donor = truth["positive_donor"]
    short = lookback(store, donor["reactive_donation"], as_of=AS_OF, months=1)
    assert [d["donation"] for d in short.donations] == [donor["reactive_donation"]]
    assert LOOKBACK_MONTHS == 12


def test_traceback_from_a_recipient_reaches_the_donor_and_the_other_recipients(
        store: GraphStore, truth: dict, query_args: dict, person_of) -> None:
    donor = truth["positive_donor"]
    recipient = query_args["transfusions_of_recipient"]["recipient_key"]
    found = traceback(store, recipient, as_of=AS_OF)
    assert any(t["donation"] in donor["donations"] for t in found["transfusions"])
    traced = next(d for d in found["donors"] if person_of[d["donor"]] == donor["person"])
    assert [d["donation"] for d in traced["donations"]] == donor["donations"]
    others = {person_of[o["recipient"]] for o in traced["other_recipients"]}
    assert others == set(donor["recipients"]) - {person_of[recipient]}


def test_the_din_may_be_given_as_printed_and_is_checked(store: GraphStore, truth: dict) -> None:
    from ontology.trace_codes import din_check_character

    din = truth["positive_donor"]["reactive_donation"]
    printed = f"={din[:5]} {din[5:7]} {din[7:]} {din_check_character(din)}"
    assert lookback(store, printed, as_of=AS_OF).index_donation == din
    with pytest.raises(InvalidDin):
        lookback(store, din[:-1])


def test_unknown_starting_points_fail_with_a_code(store: GraphStore) -> None:
    with pytest.raises(NodeNotFound) as exc:
        lookback(store, "Z999925999999")
    assert exc.value.code == "HG-0205"
    with pytest.raises(NodeNotFound):
        traceback(store, "PHIS:no-such-record")


def test_inventory_finds_the_expired_unit_still_in_stock(store: GraphStore, truth: dict) -> None:
    from services.blood_safety import inventory

    planted = next(a["unit"] for a in truth["anomalies"] if a["kind"] == "expired_unit_in_stock")
    found = inventory(store, as_of=AS_OF)
    assert [u["unit"] for u in found["expired_in_stock"]] == [planted]
    assert sum(r["units"] for r in found["in_stock"]) > 0
    assert all(u["expires_on"] >= AS_OF for u in found["expiring"])
    later = inventory(store, as_of=AS_OF + dt.timedelta(days=400))
    assert len(later["expired_in_stock"]) > len(found["expired_in_stock"]), "every unit expires in the end"


def test_reactions_cluster_by_shared_donor_or_unit_at_any_interval_and_by_facility_in_a_window() -> None:
    from services.blood_safety import cluster_reactions

    t = dt.datetime(2025, 3, 1)

    def reaction(i: int, days: int, donor: str, facility: str) -> dict:
        return {"reaction": f"R{i}", "reaction_type": "febrile", "occurred_at": t + dt.timedelta(days=days),
                "serious": False, "unit": f"U{i}", "donation": f"D{i}", "donor": donor, "facility": facility}

    rows = [reaction(1, 0, "donor-a", "h1"), reaction(2, 90, "donor-a", "h2"), reaction(3, 200, "donor-a", "h3"),
            reaction(4, 1, "donor-b", "h4"), reaction(5, 5, "donor-c", "h4"), reaction(6, 70, "donor-d", "h4")]
    found = {(c["by"], c["key"]): c["reactions"] for c in cluster_reactions(rows, min_reactions=3, window_days=30)}
    assert found == {("donor", "donor-a"): ["R1", "R2", "R3"]}
    found = {(c["by"], c["key"]): c["reactions"] for c in cluster_reactions(rows, min_reactions=2, window_days=30)}
    assert found[("facility", "h4")] == ["R4", "R5"]  # R6 falls outside the 30-day window


def test_the_planted_reaction_cluster_is_found_by_its_donor(store: GraphStore, truth: dict) -> None:
    from services.blood_safety import reaction_clusters

    planted = next(a for a in truth["anomalies"] if a["kind"] == "transfusion_reaction_cluster")
    found = reaction_clusters(store, min_reactions=len(planted["reactions"]))["clusters"]
    by_donor = [c for c in found if c["by"] == "donor"]
    assert [sorted(c["reactions"]) for c in by_donor] == [sorted(planted["reactions"])]
    assert all(set(c["reactions"]) <= set(planted["reactions"]) for c in found), "no cluster without a source"
