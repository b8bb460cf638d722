"""The ontology: required classes, labels, hierarchy, keys, sensitivity, consistency, fresh artefacts."""

from __future__ import annotations

import datetime as dt
import importlib

import pydantic
import pytest

from graph import schema_ddl
from ontology.check import check, structural_problems
from ontology.generate import stale_artefacts
from ontology.model import Ontology

REQUIRED_CLASSES = [
    "Resident", "Practitioner", "Institution", "Hospital", "CommunityHealthCenter", "CDC", "BloodCenter",
    "PlasmaStation", "Pharmacy", "FoodBusiness", "Venue", "Department", "PracticeLicense", "InstitutionLicense",
    "Encounter", "OutpatientEncounter", "InpatientEncounter", "EmergencyEncounter", "Diagnosis", "Disease",
    "Symptom", "Document", "Drug", "Prescription", "PrescriptionItem", "LabTest", "LabResult", "BloodDonation",
    "BloodUnit", "Transfusion", "TransfusionReaction", "Vaccine", "VaccineLot", "Vaccination", "AdverseEvent",
    "FoodProduct", "FoodLot", "Delivery", "FoodSample", "Exposure", "Consent", "Alert",
]


def test_required_classes_exist_with_zh_and_en_labels(onto: Ontology) -> None:
    for name in REQUIRED_CLASSES:
        c = onto.cls(name)
        assert c.label.zh != name and c.label.en, name
        assert any("\u4e00" <= ch <= "\u9fff" for ch in c.label.zh), f"{name} needs a Chinese label"


def test_subclasses_share_their_root_table_and_queries_include_them(onto: Ontology) -> None:
    assert onto.classes["Hospital"].table == "Institution"
    assert {"Hospital", "CDC", "Pharmacy", "Venue"} <= onto.descendants("Institution")
    assert onto.descendants("Hospital") == {"Hospital"}
    assert onto.is_a("Venue", "FoodBusiness") and not onto.is_a("Hospital", "FoodBusiness")


def test_keys_and_required_properties(onto: Ontology) -> None:
    assert onto.key_of("Resident") == ("source_system", "source_id")
    assert onto.key_of("Hospital") == ("uscc",)
    assert onto.key_of("BloodUnit") == ("din", "component")
    assert {"name", "sex", "birth_date"} <= onto.required_of("Resident")


def test_datatypes_and_lists(onto: Ontology) -> None:
    assert onto.prop("birth_date").datatype == "date"
    assert onto.prop("occurred_at").datatype == "dateTime"
    assert onto.prop("beds").datatype == "integer"
    assert onto.prop("licensed_subjects").is_list
    assert not onto.prop("name").is_list


def test_edges_have_domain_and_range(onto: Ontology) -> None:
    e = onto.edge("at_institution")
    assert "Encounter" in e.domain and e.range == {"Institution"}
    assert onto.edge_allows("at_institution", "InpatientEncounter", "Hospital")
    assert not onto.edge_allows("at_institution", "Resident", "Hospital")


def test_sensitivity_is_declared(onto: Ontology) -> None:
    assert onto.prop("id_number").sensitivity == "identifier"
    assert onto.prop("phone").sensitivity == "identifier"
    assert {"HIV", "Psychiatric"} <= set(onto.sensitivity_labels)
    import re

    assert re.fullmatch(onto.sensitivity_labels["HIV"].icd10_pattern, "B20.1")
    assert re.fullmatch(onto.sensitivity_labels["Psychiatric"].icd10_pattern, "F32.9")
    assert not re.fullmatch(onto.sensitivity_labels["Psychiatric"].icd10_pattern, "I10")


def test_structure_is_clean(onto: Ontology) -> None:
    assert structural_problems(onto) == []


def test_reasoner_finds_the_ontology_consistent() -> None:
    report = check()
    if report.reasoner.startswith("skipped"):
        pytest.skip(report.reasoner)
    assert report.ok, report.problems
    assert report.reasoner.endswith("consistent") and "inconsistent" not in report.reasoner


def test_generated_artefacts_are_fresh(onto: Ontology) -> None:
    stale = stale_artefacts(onto, schema_ddl(onto))
    assert stale == [], f"run `make generate` (healthgraph ontology generate): stale {stale}"


def test_generated_records_validate() -> None:
    records = importlib.import_module("ontology.generated.records")
    r = records.Resident(source_system="HIS-A", source_id="1", name="张伟", sex="1", birth_date=dt.date(1980, 1, 2))
    assert r.key() == "HIS-A:1"
    with pytest.raises(pydantic.ValidationError):
        records.Resident(source_system="HIS-A", source_id="1", name="张伟", sex="男", birth_date=dt.date(1980, 1, 2))
    with pytest.raises(pydantic.ValidationError):
        records.Resident(source_system="HIS-A", source_id="1", sex="1", birth_date=dt.date(1980, 1, 2))
    assert issubclass(records.Hospital, records.Institution)
    assert records.Hospital(uscc="91350100M000100Y43", name="一院", grade="3A").key() == "91350100M000100Y43"


def test_generated_files_carry_provenance(onto: Ontology) -> None:
    from ontology.generate import GENERATED_DIR

    for f in ("records.py", "labels.json", "ladybug_schema.cypher"):
        text = (GENERATED_DIR / f).read_text(encoding="utf-8")
        assert onto.source_hash in text and onto.iri in text
