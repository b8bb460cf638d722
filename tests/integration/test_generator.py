"""The synthetic province: deterministic, realistic identifiers, planted scenarios with ground truth."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from ingest.quality import id_check_ok
from ingest.synthetic import generate
from ontology.identifiers import is_division_code, is_valid_uscc, parse_resident_id


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(folder.rglob("*")):
        if f.is_file() and f.name != "manifest.json":
            h.update(f.relative_to(folder).as_posix().encode())
            if f.suffix == ".parquet":
                h.update(pd.util.hash_pandas_object(pd.read_parquet(f).astype(str), index=False).to_numpy().tobytes())
            else:
                h.update(f.read_bytes())
    return h.hexdigest()


def test_same_seed_same_province_other_seed_other_province(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", residents=600, seed=5)
    b = generate(tmp_path / "b", residents=600, seed=5)
    generate(tmp_path / "c", residents=600, seed=6)
    assert a.counts == b.counts
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_registry_ids_are_valid_and_agree_with_the_person(province: Path) -> None:
    res = pd.read_parquet(province / "nodes" / "Resident.parquet")
    phis = res[res["source_system"] == "PHIS"]
    assert id_check_ok(phis["id_number"].astype("string")).all()
    assert phis["id_number"].is_unique
    for r in phis.head(200).itertuples():
        parsed = parse_resident_id(r.id_number)
        assert parsed.birth_date == r.birth_date.date()
        assert parsed.sex == r.sex
        assert is_division_code(r.division_code)


def test_institutions_carry_valid_credit_codes_and_real_divisions(province: Path) -> None:
    inst = pd.read_parquet(province / "nodes" / "Institution.parquet")
    assert all(is_valid_uscc(c) for c in inst["uscc"])
    assert all(is_division_code(c) for c in inst["division_code"])
    assert {"Hospital", "CDC", "BloodCenter", "Venue", "FoodProducer", "Pharmacy"} <= set(inst["class"])


def test_duplicate_records_with_real_world_errors_are_in_the_truth(province: Path, truth: dict) -> None:
    records = pd.read_parquet(province / truth["person_records"])
    per_person = records.groupby("person").size()
    assert (per_person > 1).mean() > 0.5, "most people have records in several systems"
    errors = " ".join(records["errors"].fillna("")).split()
    for kind in ("missing_id", "homophone", "date_transposed", "phone_changed"):
        assert kind in errors, kind
    assert truth["twins"], "twins must be planted: they must never auto-merge"


def test_one_anomaly_per_rule_family_is_planted(truth: dict) -> None:
    families = {a["rule_family"] for a in truth["anomalies"]}
    assert {"practitioner_registration", "practitioner_scope", "institution_scope", "prescription_review",
            "mutual_recognition", "insurance_fraud", "infectious_disease_reporting", "blood_safety",
            "immunisation", "appointment"} <= families
    kinds = {a["kind"] for a in truth["anomalies"]}
    assert {"rx_too_many_drugs", "rx_supply_over_7_days", "rx_dose_above_maximum", "rx_duplicate_therapy",
            "rx_interaction", "rx_contraindicated_pregnancy", "rx_contraindicated_age"} <= kinds
    assert all(a["basis"] for a in truth["anomalies"])


def test_outbreak_positive_donor_and_aefi_cluster_are_planted(truth: dict) -> None:
    ob = truth["outbreak"]
    assert ob["source_lot"] and len(ob["cases"]) >= 20 and len(ob["venues"]) >= 2
    donor = truth["positive_donor"]
    assert donor["reactive_donation"] in donor["donations"]
    assert donor["transfused_units"], "earlier units reached recipients: lookback has work to do"
    assert len(truth["aefi_cluster"]["events"]) >= 5


def test_a_busy_province_keeps_its_clean_bulk_clean(tmp_path: Path) -> None:
    """At 5.6× the visits (the ≈ 10 encounters a resident of the 10M-encounter benchmark) the clean bulk
    must still not look like fraud or abuse: no resident in two inpatient stays at once and nobody with
    the three no-shows of the appointment-abuse rule, except the planted cases."""
    out = tmp_path / "busy"
    result = generate(out, residents=20_000, seed=7, encounter_rate=5.6)
    planted = {a["kind"]: a for a in result.ground_truth["anomalies"]}
    records = pd.read_parquet(out / "truth" / "person_records.parquet").set_index("key")["person"]

    def person_of(kind: str) -> pd.DataFrame:
        nodes = pd.read_parquet(out / "nodes" / f"{kind}.parquet")
        nodes["key"] = nodes["source_system"] + ":" + nodes["source_id"]
        edges = pd.read_parquet(out / "edges" / "of_patient.parquet", columns=["src", "dst"])
        nodes = nodes.merge(edges, left_on="key", right_on="src")
        return nodes.assign(person=nodes["dst"].map(records))

    stays = person_of("Encounter").query("`class` == 'InpatientEncounter'").sort_values(["person", "occurred_at"])
    admitted_while_in = stays["occurred_at"] < stays.groupby("person")["ended_at"].transform(
        lambda s: s.shift().cummax())
    assert set(stays.loc[admitted_while_in, "key"]) <= set(planted["overlapping_admissions"]["encounters"])
    assert admitted_while_in.sum() >= 1  # the planted pair is there: the check can see an overlap
    appointments = person_of("Appointment")
    no_shows = appointments[appointments["attendance"] == "no_show"].groupby("person").size()
    assert set(no_shows[no_shows >= 3].index) == {planted["appointment_abuse"]["person"]}


def test_care_generated_in_batches_covers_everyone_once(tmp_path: Path) -> None:
    """Batches of residents bound the generator's memory: the people are the same as in one batch, every
    key stays unique across batches, and each resident's visits come from one batch (their records too)."""
    whole = generate(tmp_path / "whole", residents=900, seed=3)
    parts = generate(tmp_path / "parts", residents=900, seed=3, batch_residents=250)

    def registry(out: Path) -> pd.DataFrame:
        res = pd.read_parquet(out / "nodes" / "Resident.parquet")
        return res[res["source_system"] == "PHIS"].reset_index(drop=True)

    pd.testing.assert_frame_equal(registry(tmp_path / "whole"), registry(tmp_path / "parts"))
    for table in ("Encounter", "Diagnosis", "Prescription", "PrescriptionItem", "LabResult", "Appointment", "Document"):
        nodes = pd.read_parquet(tmp_path / "parts" / "nodes" / f"{table}.parquet")
        assert not nodes.duplicated(["source_system", "source_id"]).any(), table
        assert 0.7 < len(nodes) / whole.counts[table] < 1.3, table
    records = pd.read_parquet(tmp_path / "parts" / parts.ground_truth["person_records"])
    assert records["key"].is_unique
    assert not records.dropna(subset=["institution"]).duplicated(["person", "institution"]).any()
    seen = pd.read_parquet(tmp_path / "parts" / "edges" / "of_patient.parquet", columns=["src", "dst"])
    encounter_patients = seen[seen["dst"].isin(records["key"])]["dst"].map(records.set_index("key")["person"])
    assert encounter_patients.nunique() > 0.6 * 900  # visits reach residents of every batch, not only the first
    assert {a["kind"] for a in parts.ground_truth["anomalies"]} == {a["kind"] for a in whole.ground_truth["anomalies"]}
