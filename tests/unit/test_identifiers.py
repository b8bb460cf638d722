"""GB 11643-1999 resident ids, GB/T 2260 division codes, GB 32100-2015 credit codes."""

from __future__ import annotations

import pytest
from id_validator import validator

from ontology.identifiers import (
    id_check_char,
    is_division_code,
    is_valid_resident_id,
    is_valid_uscc,
    parse_resident_id,
    province_divisions,
    upgrade_15_to_18,
    uscc_check_char,
)

VALID = "11010519491231002X"  # GB 11643-1999 Appendix A worked example


def test_check_digit_of_the_standard_example() -> None:
    assert id_check_char(VALID[:17]) == "X"
    assert is_valid_resident_id(VALID)


@pytest.mark.parametrize("position", range(17))
def test_every_single_digit_typo_is_caught(position: int) -> None:
    # ISO 7064 MOD 11-2 (GB 11643 §8.2) detects every single substitution.
    for d in "0123456789":
        if d == VALID[position]:
            continue
        typo = VALID[:position] + d + VALID[position + 1:17]
        assert id_check_char(typo) != "X" or typo == VALID[:17]


def test_adjacent_transpositions_are_caught() -> None:
    body = VALID[:17]
    for i in range(16):
        if body[i] == body[i + 1]:
            continue
        swapped = body[:i] + body[i + 1] + body[i] + body[i + 2:]
        assert id_check_char(swapped) != "X"


def test_legacy_15_digit_upgrade_matches_an_independent_implementation() -> None:
    legacy = "110103800101123"
    assert upgrade_15_to_18(legacy) == validator.upgrade_id(legacy)
    assert parse_resident_id(legacy).birth_date.year == 1980


def test_abolished_division_codes_stay_valid_in_ids() -> None:
    # 110103 崇文区 was abolished in 2010; ids issued there remain valid (TARGETS: historical GB/T 2260).
    body = "110103" + "19800101" + "123"
    number = body + id_check_char(body)
    assert not is_division_code("110103")
    assert is_division_code("110103", historical=True)
    assert parse_resident_id(number).division_code == "110103"


def test_bad_dates_and_unknown_divisions_are_rejected() -> None:
    body = "110105" + "19800230" + "123"
    with pytest.raises(ValueError, match="calendar"):
        parse_resident_id(body + id_check_char(body))
    body = "999999" + "19800101" + "123"
    with pytest.raises(ValueError, match="GB/T 2260"):
        parse_resident_id(body + id_check_char(body))


def test_sex_digit() -> None:
    assert parse_resident_id(VALID).sex == "2"  # 17th digit 2: even → female


def test_fake_ids_from_an_independent_generator_validate() -> None:
    for _ in range(300):
        assert is_valid_resident_id(validator.fake_id())


def test_unified_social_credit_code() -> None:
    code = "91350100M000100Y43"  # a published example code
    assert is_valid_uscc(code)
    assert uscc_check_char(code[:17]) == "3"
    assert not is_valid_uscc(code[:-1] + "4")


def test_province_divisions_are_real() -> None:
    zj = {d.code: d for d in province_divisions("330000")}
    assert zj["330000"].name == "浙江省"
    assert zj["330100"].level == "prefecture"
    assert zj["330106"].name == "西湖区"
    assert zj["330106"].parent_code == "330100"
