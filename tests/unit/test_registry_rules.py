"""Pure rules of the registries: USCC checking (GB 32100-2015), name similarity and the duplicate
rules, ATC grouping and the code systems built from ontology/vocab."""

from __future__ import annotations

import datetime as dt

import pytest

from ontology import errors
from ontology.identifiers import uscc_check_char
from ontology.vocab import vocab
from services.registries import (
    TRANSITIONS, _validity_and_status, atc_group, check_uscc, institution_names_match, name_similarity,
    practitioner_duplicates, scope_subjects, vocab_systems,
)


def test_check_uscc_accepts_a_valid_code_and_names_the_expected_check_character() -> None:
    body = "91330106MA2B3C4D5"
    assert check_uscc((body + uscc_check_char(body)).lower()) == body + uscc_check_char(body)
    wrong = "0" if uscc_check_char(body) != "0" else "1"
    with pytest.raises(errors.InvalidUscc) as exc:
        check_uscc(body + wrong)
    assert exc.value.details["expected"] == uscc_check_char(body)
    with pytest.raises(errors.InvalidUscc):
        check_uscc(body.replace("A", "O") + "0")  # O is outside the GB 32100-2015 alphabet


@pytest.mark.parametrize(("a", "b", "similar"), [("陈静", "陈婧", True), ("王伟", "王玮", True),
                                                 ("张建国", "张建华", False), ("李娜", "王芳", False)])
def test_name_similarity_counts_homophones(a: str, b: str, similar: bool) -> None:
    assert (name_similarity(a, b) >= 0.85) is similar


@pytest.mark.parametrize(("a", "b", "rule"), [
    ("杭州市第一人民医院", "杭州第一人民医院", "name_variant"),
    ("杭州市第一人民医院", "杭州市第一人民医苑", "name_variant_homophone"),
    ("鲜味食品加工有限公司", "鲜味食品加工(有限公司)", "same_name_normalised"),
    ("杭州市第一人民医院", "杭州市第二人民医院", None),
    ("东城街道社区卫生服务中心", "西城街道社区卫生服务中心", None),
    ("康民大药房第1分店", "康民大药房第2分店", None),
])
def test_institution_name_rules(a: str, b: str, rule: str | None) -> None:
    assert institution_names_match(a, b) == rule


def test_practitioner_duplicate_rules_on_plain_rows() -> None:
    born = dt.date(1980, 1, 2)
    people = [{"key": "a", "name": "刘洋", "sex": "1", "birth_date": born, "id_number": None},
              {"key": "b", "name": "刘阳", "sex": "1", "birth_date": born, "id_number": None},
              {"key": "c", "name": "刘洋", "sex": "2", "birth_date": born, "id_number": None},
              {"key": "d", "name": "刘扬", "sex": "1", "birth_date": None, "id_number": None}]
    found = {(d["a"], d["b"]): d["rule"] for d in practitioner_duplicates(people, {"a": {"H1"}, "d": {"H1"}})}
    assert found == {("a", "b"): "similar_name_same_birth_date_sex", ("a", "d"): "similar_name_same_institution"}


def test_atc_group_is_the_deepest_shared_level() -> None:
    assert atc_group(["J01CA04", "J01CE08"]) == "J01C"
    assert atc_group(["C09AA02", "C09AA07"]) == "C09AA"
    assert atc_group(["N02AX02", "R05DA04"]) is None
    assert atc_group(["A10BA02"]) == "A10BA02"


def test_licence_validity_and_transitions() -> None:
    with pytest.raises(errors.InvalidLicence):
        _validity_and_status({"valid_from": dt.date(2025, 1, 1), "valid_to": dt.date(2024, 1, 1)}, "registered",
                             dt.date(2026, 1, 1))
    past = _validity_and_status({"valid_from": "2010-01-01", "valid_to": "2020-01-01"}, "registered",
                                dt.date(2026, 1, 1))
    assert past["registration_status"] == "expired" and past["status"] == "expired"
    assert TRANSITIONS["revoked"] == frozenset(), "注销 is final for a licence (医师法 2021 第十六条)"


def test_vocab_systems_cover_every_vocabulary_row_and_mapping() -> None:
    specs = {s.code: s for s in vocab_systems()}
    icd = vocab("icd10")
    assert {c["code"] for c in specs["icd10"].concepts} >= set(icd["code"])
    assert len(specs["icd10"].mappings) == int((icd["subject_code"] != "").sum())
    scopes = vocab("practice_scopes")
    assert len(specs["practice_scopes"].mappings) == sum(len(s.split()) for s in scopes["subject_codes"])
    assert scope_subjects(["internal_medicine"]) == set(scopes.set_index("code").loc["internal_medicine",
                                                                                      "subject_codes"].split())
    drug_codes = {c["code"] for c in specs["atc"].concepts}
    assert set(vocab("drugs")["atc"]) <= drug_codes
    assert all(c["parent_code"] in drug_codes for c in specs["atc"].concepts if c.get("parent_code"))
