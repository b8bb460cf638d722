"""Scoring rule findings against planted anomalies: recall, precision, persons through their records."""

from __future__ import annotations

import pandas as pd

from ingest.synthetic.truth import planted_subjects, score

RECORDS = pd.DataFrame({"key": ["R1", "R2", "R3"], "person": ["P1", "P1", "P2"]})
PLANTED = [{"kind": "rx_too_many_drugs", "prescription": "RX1", "encounter": "E1"},
           {"kind": "rx_too_many_drugs", "prescription": "RX2"},
           {"kind": "appointment_abuse", "person": "P1"}]


def test_the_primary_field_names_the_subject() -> None:
    # a prescription anomaly also names its encounter; the alert must concern the prescription
    assert planted_subjects(PLANTED[0], RECORDS) == {"Prescription:RX1"}
    assert planted_subjects({"encounters": ["E1", "E2"]}, RECORDS) == {"Encounter:E1", "Encounter:E2"}


def test_a_person_is_matched_through_any_of_their_records() -> None:
    assert planted_subjects(PLANTED[2], RECORDS) == {"Resident:R1", "Resident:R2"}
    scores = score({"appointment_abuse": [["Resident:R2"]]}, PLANTED, RECORDS)
    assert (scores["appointment_abuse"].recall, scores["appointment_abuse"].precision) == (1.0, 1.0)


def test_a_missed_anomaly_lowers_recall_and_a_stray_alert_precision() -> None:
    found = {"rx_too_many_drugs": [["Prescription:RX1", "Encounter:E1"], ["Prescription:RX9"]]}
    s = score(found, PLANTED, RECORDS)["rx_too_many_drugs"]
    assert (s.planted, s.found, s.alerts, s.true_alerts) == (2, 1, 2, 1)
    assert (s.recall, s.precision) == (0.5, 0.5)


def test_rules_with_nothing_planted_and_nothing_found_score_one_and_strays_zero() -> None:
    s = score({"blood_inventory_below_minimum": [], "rx_interaction": [["Prescription:RX7"]]}, PLANTED, RECORDS)
    assert (s["blood_inventory_below_minimum"].recall, s["blood_inventory_below_minimum"].precision) == (1.0, 1.0)
    assert (s["rx_interaction"].planted, s["rx_interaction"].precision) == (0, 0.0)
    assert s["appointment_abuse"].recall == 0.0  # planted, and no alert at all
