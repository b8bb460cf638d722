"""Index specs: derived from the ontology, with the privacy rules, and ad hoc ones checked when built."""

from __future__ import annotations

import datetime as dt

import pytest

from ontology.errors import IndexSpecError
from search import FieldKind, IndexSpec, spec_for


def test_no_sensitive_or_system_property_is_ever_indexed(onto) -> None:
    searchable = 0
    for table in onto.tables:
        props = onto.table_properties(table)
        try:
            spec = spec_for(table, onto)
        except IndexSpecError as exc:       # nothing left to search, e.g. Encounter
            assert "text field" in exc.message
            continue
        searchable += 1
        for f in spec.fields:
            assert props[f.name].sensitivity is None, (table, f.name)
            assert not props[f.name].system, (table, f.name)
    assert searchable >= 10


def test_people_tables_keep_identifiers_out(onto) -> None:
    for table in ("Resident", "Practitioner"):
        kinds = spec_for(table, onto).kinds()
        assert not {"id_number", "phone", "birth_date", "sex", "pregnant"} & set(kinds)
        assert not set(onto.cls(table).key) & set(kinds)           # e.g. the source record id
        assert kinds["name"] == "text"


def test_kinds_follow_the_ontology(onto) -> None:
    kinds = spec_for("Institution", onto).kinds()
    assert kinds["name"] == kinds["address"] == "text"
    assert kinds["grade"] == "keyword"                 # allowed values
    assert kinds["uscc"] == kinds["division_code"] == "keyword"   # patterns
    assert kinds["beds"] == "integer"
    assert "latitude" not in kinds                     # doubles are not searched
    disease = spec_for("Disease", onto).kinds()
    assert disease["notifiable_class"] == disease["code"] == "keyword" and disease["report_limit_hours"] == "integer"
    assert spec_for("Drug", onto).kinds()["pregnancy_contraindicated"] == "keyword"   # booleans as true/false
    assert spec_for("VaccineLot", onto).kinds()["expires_on"] == "date"


def test_unknown_table_suggests_the_right_one(onto) -> None:
    with pytest.raises(IndexSpecError, match="Institution") as err:
        spec_for("Institutions", onto)
    assert err.value.code == "HG-0502"


def test_ad_hoc_specs_are_checked_when_built() -> None:
    with pytest.raises(IndexSpecError) as err:
        IndexSpec.of("Bad Name", id="keyword", dept="keyword")
    assert "index name" in err.value.message and "'id'" in err.value.message
    assert "at least one text field" in err.value.message
    with pytest.raises(IndexSpecError, match="did you mean 'keyword'"):
        IndexSpec.of("x", body="keywrd")
    with pytest.raises(IndexSpecError, match="boost"):
        IndexSpec.of("x", body=("text", 0))


def test_projection_keeps_spec_fields_typed_and_drops_the_rest() -> None:
    spec = IndexSpec.of("x", body="text", dept="keyword", beds="integer", day="date")
    doc_id, values = spec.project({"id": "a", "body": "发热", "dept": ["b", "a", "b"], "beds": 3,
                                   "day": dt.date(2024, 1, 2), "id_number": "330102199001011234"})
    assert doc_id == "a" and values == {"body": "发热", "dept": ["a", "b"], "beds": 3, "day": dt.date(2024, 1, 2)}
    assert spec.project({"id": "b", "dept": True})[1] == {"dept": "true"}
    for bad in ({"id": "c", "beds": "3"}, {"id": "c", "body": 5}, {"body": "no id"}, {"id": "c", "day": "2024"}):
        with pytest.raises(IndexSpecError):
            spec.project(bad)
    assert [f.name for f in spec.of_kind(FieldKind.TEXT)] == ["body"]
