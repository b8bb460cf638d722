"""ISBT 128 donation identification numbers and 药品追溯码 (NMPA 20-digit and GS1 forms)."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import pandas as pd
import pytest

from ontology.errors import HealthGraphError, InvalidDin, InvalidDrugTraceCode, TraceCodeError
from ontology.trace_codes import (
    Din,
    din_check_character,
    gs1_check_digit,
    gs1_date,
    parse_din,
    parse_drug_trace_code,
    validate_din,
    validate_drug_trace_code,
)

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"  # data characters; '*' is check-only
RED_BOOK = "G123498654321"  # JPAC Red Book Annex 2, Table A2.2 worked example → 'H'


# --- ISBT 128 DIN -----------------------------------------------------------------------------

def test_red_book_worked_example_step_by_step() -> None:
    # JPAC Red Book Annex 2, Table A2.2: Σ value·2ⁿ = 148354, mod 37 = 21, 38 − 21 = 17 → 'H';
    # barcode check value 17 + 60 = 77. Recomputed here in the table's own (non-Horner) form.
    values = [ALPHABET.index(ch) for ch in RED_BOOK]
    total = sum(v * 2 ** (len(values) - i) for i, v in enumerate(values))
    assert (total, total % 37, (38 - total % 37) % 37) == (148354, 21, 17)
    assert din_check_character(RED_BOOK) == "H"
    assert parse_din(RED_BOOK + "77") == Din("G1234", "98", "654321", "77", "H")


# DINs with check characters reported by two independent open-source check-digit test suites,
# each citing ICCBBA documents (ST-001 examples, IG-033 "Use of the Donation Identification
# Number" v1.2.0 §3.3 and Fig. 1, IN-015 "An Introduction to ISBT 128"). The ICCBBA PDFs could
# not be read while writing this, so these are second-hand values; only RED_BOOK is first-hand.
REPORTED = [
    ("A999914123456", "N"),
    ("C000307001466", "6"),
    ("A999922123459", "H"),
    ("A999922654321", "S"),
    ("A999922123458", "J"),
    ("A999922012346", "*"),
    ("A999522123456", "*"),
    ("G123417654321", "A"),
    ("A999917123456", "9"),
    ("A999916123456", "Q"),
]


@pytest.mark.parametrize(("din", "check"), [(RED_BOOK, "H"), *REPORTED])
def test_published_check_characters(din: str, check: str) -> None:
    assert din_check_character(din) == check
    assert validate_din(din + check, require_check=True) == din


@pytest.mark.parametrize(
    "printed",
    [
        "G123498654321",
        "G1234 98 654321",  # eye-readable groups, no check character
        "G1234 98 654321 H",
        "G1234 98 654321 [H]",  # check character in its box
        "g1234-98-654321-h",
        "=G12349865432100",  # as scanned: data identifier + flags 00
        "=G12349865432177",  # as scanned: checksum flags 17 + 60
        "G1234 98 654321 00 H",  # flags and the boxed check character
        "Ｇ１２３４ ９８ ６５４３２１ Ｈ",  # full-width (Chinese IME) input
    ],
)
def test_printed_forms_normalise_to_the_13_character_din(printed: str) -> None:
    din = parse_din(printed)
    assert din.din == str(din) == RED_BOOK
    assert (din.facility, din.year, din.sequence, din.check) == ("G1234", "98", "654321", "H")
    assert validate_din(printed) == RED_BOOK


def test_flags_are_kept_only_when_given() -> None:
    assert parse_din("G1234 98 654321 H").flags is None
    assert parse_din("=G12349865432100").flags == "00"
    assert parse_din("G12349865432107H").flags == "07"  # a process-control flag, not a checksum


def _random_dins(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    first = "ABCDEFGHIJKLMNPQRSTUVWXYZ123456789"
    return [rng.choice(first) + "".join(rng.choices("0123456789", k=12)) for _ in range(n)]


@pytest.mark.parametrize("din", _random_dins(11, 25))
def test_round_trip_with_the_computed_check_character(din: str) -> None:
    check = din_check_character(din)
    assert check in ALPHABET + "*"
    assert parse_din(din + check) == Din(din[:5], din[5:7], din[7:], None, check)
    flags = f"{(ALPHABET + '*').index(check) + 60:02d}"
    assert parse_din(f"={din}{flags}").check == check


@pytest.mark.parametrize("din", [RED_BOOK, "Z330025000038", "A999522123456"])
def test_every_single_substitution_is_caught(din: str) -> None:
    # ISO/IEC 7064 MOD 37-2 detects every single-character substitution: exhaustively, every
    # position of the keyed form (DIN + check) and every replacement character is rejected.
    keyed = din + din_check_character(din)
    for position in range(len(keyed)):
        for ch in ALPHABET + "*":
            if ch == keyed[position]:
                continue
            typo = keyed[:position] + ch + keyed[position + 1:]
            with pytest.raises(InvalidDin) as caught:
                parse_din(typo)
            if caught.value.details["field"] == "check" and position < 13:
                assert caught.value.details["expected"] == din_check_character(typo[:13])


@pytest.mark.parametrize("din", [RED_BOOK, "Z330025000038", "A999522123456"])
def test_adjacent_transpositions_are_caught(din: str) -> None:
    check = din_check_character(din)
    for i in range(12):
        if din[i] == din[i + 1]:
            continue
        swapped = din[:i] + din[i + 1] + din[i] + din[i + 2:]
        with pytest.raises(InvalidDin):
            parse_din(swapped + check)


@pytest.mark.parametrize(
    ("text", "field", "expected"),
    [
        ("G12349865432", "length", None),
        ("G123498654321H00X", "length", None),
        ("", "length", None),
        ("O123498654321", "facility", None),  # letter O is never a FIN's first character
        ("0123498654321", "facility", None),  # nor is digit 0
        ("G12A498654321", "facility", None),
        ("G1234X8654321", "year", None),
        ("G12349865432X", "sequence", None),
        ("G1234986543210AH", "flags", None),
        ("G12349865432178", "flags", "77"),  # checksum flags disagree with the DIN
        ("G123498654321A", "check", "H"),
        ("G123498654321#", "check", None),
        ("G123498654321*", "check", "H"),
    ],
)
def test_each_din_error_names_the_part_and_has_the_code(text: str, field: str, expected: str | None) -> None:
    with pytest.raises(InvalidDin) as caught:
        parse_din(text)
    err = caught.value
    assert (err.code, err.http_status, err.details["field"]) == ("HG-0601", 422, field)
    assert err.details.get("expected") == expected
    assert str(err).startswith("HG-0601 ")


def test_din_errors_are_trace_code_errors() -> None:
    assert issubclass(InvalidDin, TraceCodeError) and issubclass(InvalidDrugTraceCode, TraceCodeError)
    assert issubclass(TraceCodeError, HealthGraphError)
    assert (TraceCodeError.code, InvalidDin.code, InvalidDrugTraceCode.code) == ("HG-0600", "HG-0601", "HG-0602")
    with pytest.raises(InvalidDin) as caught:
        parse_din(12345)  # type: ignore[arg-type]
    assert caught.value.details["field"] == "length"


def test_require_check_refuses_a_din_without_its_check_character() -> None:
    assert validate_din("G1234 98 654321 H", require_check=True) == RED_BOOK
    with pytest.raises(InvalidDin) as caught:
        validate_din("G1234 98 654321", require_check=True)
    assert caught.value.details["field"] == "check"
    assert "expected" not in caught.value.details  # the answer is not handed to the typist


@pytest.mark.parametrize(("din13", "field"), [("G12349865432", "length"), ("G12A498654321", "facility")])
def test_check_character_needs_a_well_formed_din(din13: str, field: str) -> None:
    with pytest.raises(InvalidDin) as caught:
        din_check_character(din13)
    assert caught.value.details["field"] == field


# --- the synthetic generator's identifiers -----------------------------------------------------

@pytest.fixture(scope="module")
def province(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ingest.synthetic import generate

    root = tmp_path_factory.mktemp("trace") / "p"
    generate(root, residents=500, seed=3)
    return root


def test_every_generated_blood_donation_din_parses(province: Path) -> None:
    dins = pd.read_parquet(province / "nodes" / "BloodDonation.parquet")["din"]
    assert len(dins) > 0
    for value in dins:
        din = parse_din(value)
        assert din.din == value
        assert validate_din(value + din.check, require_check=True) == value


def test_every_generated_prescription_trace_code_parses(province: Path) -> None:
    codes = pd.read_parquet(province / "nodes" / "PrescriptionItem.parquet")["trace_code"].dropna()
    assert len(codes) > 0
    for value in codes:
        code = parse_drug_trace_code(value)
        assert (code.scheme, code.code, code.product_code + code.serial) == ("nmpa20", value, value)


# --- GS1 ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("body", "check"),
    [
        ("629104150021", "3"),  # GTIN-13 worked example, GS1 Hong Kong check digit calculator page
        ("890400021003", "7"),  # GTIN-13 worked example, GS1 India "How to calculate the check digit"
        ("03600024145", "7"),  # UPC-A (GTIN-12) 036000241457, Wikipedia "Universal Product Code"
        ("0950110153000", "3"),  # GTIN-14 09501101530003, GS1's example GTIN in Digital Link material
    ],
)
def test_gs1_check_digit_on_published_gtins(body: str, check: str) -> None:
    assert gs1_check_digit(body) == check


def test_gs1_check_digit_catches_every_single_digit_error() -> None:
    gtin = "09501101530003"
    for position in range(13):
        for d in "0123456789":
            if d != gtin[position]:
                typo = gtin[:position] + d + gtin[position + 1:13]
                assert gs1_check_digit(typo) != gtin[13]
    with pytest.raises(ValueError):
        gs1_check_digit("0950110153000X")


AS_OF = dt.date(2025, 6, 1)
BRACKETED = "(01)09501101530003(17)260200(10)AB-12/x(21)SN0001"
EXPECTED = ("gs1", BRACKETED, "09501101530003", "SN0001", "AB-12/x", dt.date(2026, 2, 28), "3")


@pytest.mark.parametrize(
    "text",
    [
        BRACKETED,
        "(01) 09501101530003 (17) 260200 (10) AB-12/x (21) SN0001",  # HRI as printed under a symbol
        "]d2010950110153000317260200" "10AB-12/x\x1d21SN0001",  # GS1 DataMatrix, FNC1 as GS
        "\x1d010950110153000317260200" "10AB-12/x\x1d21SN0001",  # leading FNC1, no symbology id
        "010950110153000317260200" "10AB-12/x<GS>21SN0001",  # GS spelt out by a keyboard wedge
        "]C1010950110153000317260200" "10AB-12/x\x1d21SN0001",  # GS1-128
    ],
)
def test_both_gs1_forms_parse_to_the_same_code(text: str) -> None:
    code = parse_drug_trace_code(text, as_of=AS_OF)
    assert (code.scheme, code.code, code.product_code, code.serial, code.lot, code.expiry, code.check) == EXPECTED
    assert code.elements == (("01", "09501101530003"), ("17", "260200"), ("10", "AB-12/x"), ("21", "SN0001"))
    assert validate_drug_trace_code(text, as_of=AS_OF) == BRACKETED


def test_lot_and_expiry_are_optional_but_gtin_and_serial_are_not() -> None:
    code = parse_drug_trace_code("(01)09501101530003(21)12345")
    assert (code.lot, code.expiry, code.serial) == (None, None, "12345")


def test_unknown_ais_are_kept_in_the_bracketed_form() -> None:
    code = parse_drug_trace_code("(01)09501101530003(21)12345(7003)2601011230")
    assert code.elements[-1] == ("7003", "2601011230")


@pytest.mark.parametrize(
    ("yymmdd", "date"),
    [
        ("260200", dt.date(2026, 2, 28)),  # DD = 00: last day of the month (GS1 GenSpecs §7.12)
        ("280200", dt.date(2028, 2, 29)),  # … in a leap year
        ("251100", dt.date(2025, 11, 30)),
        ("251231", dt.date(2025, 12, 31)),
        ("740101", dt.date(2074, 1, 1)),  # 49 years ahead of 2025: this century
        ("760101", dt.date(1976, 1, 1)),  # 51 years ahead: previous century (§7.12)
        ("990101", dt.date(1999, 1, 1)),
    ],
)
def test_gs1_dates(yymmdd: str, date: dt.date) -> None:
    assert gs1_date(yymmdd, as_of=AS_OF) == date


def test_gs1_century_rolls_forward_late_in_a_century() -> None:
    assert gs1_date("100101", as_of=dt.date(2095, 1, 1)) == dt.date(2110, 1, 1)  # 85 behind → next


@pytest.mark.parametrize("bad", ["261301", "260230", "26011", "2601AA"])
def test_impossible_gs1_dates(bad: str) -> None:
    with pytest.raises(ValueError):
        gs1_date(bad, as_of=AS_OF)


@pytest.mark.parametrize(
    ("text", "field", "expected"),
    [
        ("(01)09501101530004(21)1", "check", "3"),
        ("(01)0950110153000(21)1", "gtin", None),  # 13 digits
        ("(01)0950110153000X(21)1", "gtin", None),
        ("(21)12345", "gtin", None),  # no GTIN
        ("(01)09501101530003(17)260200", "serial", None),  # no serial number
        ("(01)09501101530003(21)" + "1" * 21, "serial", None),
        ("(01)09501101530003(10)批号1(21)1", "lot", None),  # outside GS1 character set 82
        ("(01)09501101530003(17)261301(21)1", "expiry", None),
        ("(01)09501101530003(17)260230(21)1", "expiry", None),
        ("(01)09501101530003(21)1(21)2", "ai", None),  # the same AI twice, different values
        ("(AB)09501101530003", "syntax", None),
        ("]d201095011015300039912345", "ai", None),  # AI 99 cannot be split in the raw form
        ("8123456789012345678", "length", None),  # 19 digits
        ("8123456789012345678A", "characters", None),
        ("   ", "length", None),
    ],
)
def test_each_drug_code_error_names_the_part_and_has_the_code(text: str, field: str, expected: str | None) -> None:
    with pytest.raises(InvalidDrugTraceCode) as caught:
        parse_drug_trace_code(text, as_of=AS_OF)
    err = caught.value
    assert (err.code, err.http_status, err.details["field"]) == ("HG-0602", 422, field)
    assert err.details.get("expected") == expected


# --- NMPA 20-digit -----------------------------------------------------------------------------
# Synthetic values only: a real code names a real product, and its check portion cannot be
# verified offline (NMPAB/T 1002-2019 does not publish the algorithm).

@pytest.mark.parametrize("text", ["81234567890123456789", "8123 4567 8901 2345 6789", "８１２３４５６７８９０１２３４５６７８９"])
def test_nmpa20_structure(text: str) -> None:
    code = parse_drug_trace_code(text)
    assert (code.scheme, code.code, code.product_code, code.serial) == (
        "nmpa20", "81234567890123456789", "8123456", "7890123456789")
    assert (code.lot, code.expiry, code.check, code.elements) == (None, None, None, ())


def test_twenty_digits_are_nmpa_unless_marked_as_gs1() -> None:
    twenty = "0109501101530003" "2112"  # also a valid GS1 string: (01)…(21)12
    assert len(twenty) == 20
    assert parse_drug_trace_code(twenty).scheme == "nmpa20"
    marked = parse_drug_trace_code("]d2" + twenty)
    assert (marked.scheme, marked.serial) == ("gs1", "12")
