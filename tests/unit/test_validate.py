"""Every validation error code, the reconciliation invariant and the typed output."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ontology import errors
from ontology.model import Ontology
from ontology.validate import TEXT, duplicated, edge_duplicated, lookup_from, validate_edges, validate_nodes

GOOD = {"source_system": "HIS-A", "source_id": "1", "name": "张伟", "sex": "1", "birth_date": "1980-01-02"}


def codes_of(result) -> dict[int, list[str]]:
    return {r.row: r.codes for r in result.rejected}


def test_a_good_record_is_typed_and_keyed(onto: Ontology) -> None:
    v = validate_nodes(onto, "Resident", pd.DataFrame([GOOD]))
    assert v.rejected == [] and len(v.accepted) == 1
    row = v.accepted.iloc[0]
    assert row["key"] == "HIS-A:1"
    assert row["class"] == "Resident"
    assert str(v.accepted["birth_date"].dtype).startswith("datetime64")
    assert row["birth_date"] == pd.Timestamp("1980-01-02")


@pytest.mark.parametrize(("change", "code"), [
    ({"class": "Residnt"}, errors.UnknownClass.code),
    ({"birthdate": "1980-01-02"}, errors.UnknownProperty.code),
    ({"birth_date": "1980-02-30"}, errors.WrongDatatype.code),
    ({"source_id": None}, errors.MissingKey.code),
    ({"name": None}, errors.MissingRequired.code),
    ({"sex": "男"}, errors.ValueNotAllowed.code),
    ({"division_code": "33A1"}, errors.PatternMismatch.code),
    ({"batch_id": "mine"}, errors.SystemPropertyInInput.code),
    ({"pregnant": "maybe"}, errors.WrongDatatype.code),
])
def test_each_node_error_has_its_code(onto: Ontology, change: dict, code: str) -> None:
    v = validate_nodes(onto, "Resident", pd.DataFrame([GOOD, {**GOOD, "source_id": "2", **change}]))
    assert [r.row for r in v.rejected] == [1]
    assert code in v.rejected[0].codes
    assert v.reconciles()


def test_messages_name_the_valid_options(onto: Ontology) -> None:
    v = validate_nodes(onto, "Resident", pd.DataFrame([{**GOOD, "birthdate": "x"}, {**GOOD, "sex": "3"}]))
    messages = [m for r in v.rejected for m in r.messages]
    assert any("did you mean 'birth_date'" in m for m in messages)
    assert any("valid: 0 1 2 9" in m and "GB/T 2261.1" in m for m in messages)


def test_all_errors_of_a_record_are_reported_at_once(onto: Ontology) -> None:
    bad = {**GOOD, "sex": "x", "birth_date": "never", "colour": "blue"}
    v = validate_nodes(onto, "Resident", pd.DataFrame([bad]))
    assert {errors.ValueNotAllowed.code, errors.WrongDatatype.code, errors.UnknownProperty.code} <= set(v.rejected[0].codes)


def test_property_of_another_subclass_is_rejected(onto: Ontology) -> None:
    rows = [{"class": "Hospital", "uscc": "91350100M000100Y43", "name": "一院", "grade": "3A"},
            {"class": "Pharmacy", "uscc": "12350100M000100Y41", "name": "药店", "grade": "3A"}]
    v = validate_nodes(onto, "Institution", pd.DataFrame(rows))
    assert codes_of(v) == {1: [errors.UnknownProperty.code]}


def test_duplicates_collapse_when_identical_and_conflict_otherwise(onto: Ontology) -> None:
    v = validate_nodes(onto, "Resident", pd.DataFrame([GOOD, GOOD, {**GOOD, "name": "张玮"}]))
    assert len(v.accepted) == 1 and v.collapsed_duplicates == 1
    assert codes_of(v) == {2: [errors.ConflictingDuplicate.code]}
    assert v.reconciles()


def test_lists_are_typed(onto: Ontology) -> None:
    rows = [{"class": "InstitutionLicense", "code": "IL-1", "valid_from": "2020-01-01", "licensed_subjects": "02 03"},
            {"class": "InstitutionLicense", "code": "IL-2", "valid_from": "2020-01-01", "licensed_subjects": ["02", "12"]}]
    v = validate_nodes(onto, "License", pd.DataFrame(rows))
    assert v.rejected == []
    assert v.accepted["licensed_subjects"].tolist() == [["02", "03"], ["02", "12"]]


def _lookup():
    return lookup_from({"Resident": pd.Series(["Resident"], index=["HIS-A:1"]),
                        "Division": pd.Series(["Division"], index=["330106"]),
                        "Institution": pd.Series(["Pharmacy"], index=["91350100M000100Y43"])}.get)


@pytest.mark.parametrize(("edge", "row", "code"), [
    ("lives_in", {"src": "HIS-A:1", "dst": "330106"}, errors.UnknownEdgeType.code),
    ("resides_in", {"src": "HIS-A:2", "dst": "330106"}, errors.DanglingEndpoint.code),
    ("resides_in", {"src": None, "dst": "330106"}, errors.MissingKey.code),
    ("resides_in", {"src": "HIS-A:1", "dst": "330106", "weight": 1}, errors.UnknownProperty.code),
    ("located_in", {"src": "HIS-A:1", "dst": "330106", "src_class": "Resident"}, errors.DomainRangeViolation.code),
])
def test_each_edge_error_has_its_code(onto: Ontology, edge: str, row: dict, code: str) -> None:
    v = validate_edges(onto, edge, pd.DataFrame([row]), _lookup())
    assert code in v.rejected[0].codes and v.reconciles()


def test_functional_edge_with_two_targets_in_one_batch(onto: Ontology) -> None:
    lookup = lookup_from({"Resident": pd.Series(["Resident"], index=["HIS-A:1"]),
                          "Division": pd.Series(["Division", "Division"], index=["330106", "330105"])}.get)
    rows = [{"src": "HIS-A:1", "dst": "330106"}, {"src": "HIS-A:1", "dst": "330105"}]
    v = validate_edges(onto, "resides_in", pd.DataFrame(rows), lookup)
    assert {r.code for r in v.rejected} == {errors.CardinalityViolation.code}
    assert v.reconciles()


def test_multi_class_edge_finds_each_endpoint_whatever_its_declared_class(onto: Ontology) -> None:
    """of_patient comes from nine tables: each key is looked for in its declared table, then in the others."""
    lookup = lookup_from({"Resident": pd.Series(["Resident"], index=["R1"]),
                          "Encounter": pd.Series(["OutpatientEncounter", "InpatientEncounter"], index=["E1", "E2"]),
                          "Vaccination": pd.Series(["Vaccination"], index=["V1"])}.get)
    rows = [{"src": "E2", "dst": "R1"},                               # no declared class: every table
            {"src": "E1", "dst": "R1", "src_class": "OutpatientEncounter"},
            {"src": "V1", "dst": "R1", "src_class": "Vaccination"},
            {"src": "V1", "dst": "R1", "src_class": "InpatientEncounter"},     # in another table than declared
            {"src": "E9", "dst": "R1", "src_class": "OutpatientEncounter"}]    # nowhere
    v = validate_edges(onto, "of_patient", pd.DataFrame(rows), lookup)
    assert v.accepted["src"].tolist() == ["E2", "E1", "V1"]
    assert v.accepted["src_class"].tolist() == ["InpatientEncounter", "OutpatientEncounter", "Vaccination"]
    assert v.accepted["src_table"].tolist() == ["Encounter", "Encounter", "Vaccination"]
    assert [r.code for r in v.rejected] == [errors.DomainRangeViolation.code, errors.DanglingEndpoint.code]
    assert "is a Vaccination, not the declared InpatientEncounter" in v.rejected[0].messages[0]


def test_every_validation_code_is_distinct_and_documented() -> None:
    codes = [e.code for e in errors.VALIDATION_ERRORS]
    assert len(codes) == len(set(codes))
    doc = errors.__doc__ or ""
    for e in errors.VALIDATION_ERRORS:
        assert e.code in doc and e.__name__ in doc


@pytest.mark.parametrize("seed", range(5))
def test_duplicate_detection_agrees_with_pandas_on_random_text(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.choice(["甲", "乙", "丙", "a", "b", "", None], size=500).tolist()
    text = pd.Series(values, dtype=TEXT)
    expected = pd.Series(values, dtype=object).duplicated(keep=False).to_numpy() & text.notna().to_numpy()
    assert duplicated(text, keep=False).tolist() == expected.tolist()
    first = pd.Series(values, dtype=object).duplicated(keep="first").to_numpy() & text.notna().to_numpy()
    assert duplicated(text).tolist() == first.tolist()


def test_duplicate_detection_matches_pandas_and_survives_many_distinct_pairs() -> None:
    text = pd.Series(["a", None, "b", "a", None, "b", "c"], dtype=TEXT)
    assert duplicated(text).tolist() == [False, False, False, True, False, True, False]  # missing never repeats
    assert duplicated(text, keep=False).tolist() == [True, False, True, True, False, True, False]
    # 60k × 60k codes overflow 32 bits: distinct pairs must stay distinct.
    n = 60_000
    keys = pd.Series([f"k{i}" for i in range(n)], dtype=TEXT)
    frame = pd.DataFrame({"src": pd.concat([keys, keys.iloc[:2]], ignore_index=True),
                          "dst": pd.concat([keys, keys.iloc[:2]], ignore_index=True)})
    assert edge_duplicated(frame).tolist() == [False] * n + [True, True]
