"""Feature views of raw records, shared by the Splink training SQL and the real-time Python scorer.

Every comparison level reads only these pre-normalised columns, so the SQL stays a plain equality or
edit distance and the Python predicate is its one-line twin.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from functools import lru_cache
from typing import Any

import pandas as pd
from pypinyin import lazy_pinyin

from ontology.identifiers import is_valid_resident_id, parse_resident_id, upgrade_15_to_18

PERSON_COLUMNS = (
    "key", "name", "name_py", "surname_py", "given_py", "sex", "birth_date", "birth_swapped", "birth_ym",
    "birth_year", "birth_md", "id18", "id_valid", "id_consistent", "phone", "address", "division_code",
    "prefecture_code",
)

_SPACE = re.compile(r"\s+")
_NON_DIGIT = re.compile(r"\D+")


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def clean_text(value: Any) -> str | None:
    """NFKC (full-width → half-width), whitespace removed; None for missing or empty."""
    if _missing(value):
        return None
    text = _SPACE.sub("", unicodedata.normalize("NFKC", str(value)))
    return text or None


@lru_cache(maxsize=1)
def _to_simplified() -> Any:
    import opencc

    return opencc.OpenCC("t2s")


@lru_cache(maxsize=500_000)
def simplified(text: str) -> str:
    """Traditional and common variant characters as their simplified forms (陳麗 → 陈丽), via OpenCC:
    one source writes 陳, another 陈, and they are the same name."""
    return _to_simplified().convert(text)


@lru_cache(maxsize=1)
def _compound_surnames() -> frozenset[str]:
    from ontology.vocab import vocab

    return frozenset(s for s in vocab("surnames")["surname"] if len(s) > 1)


@lru_cache(maxsize=200_000)
def _pinyin(text: str) -> str:
    return "".join(lazy_pinyin(text))


def split_name(name: str) -> tuple[str, str]:
    """(surname, given name); compound surnames (欧阳, 尉迟 …) from the project's surname list."""
    if len(name) > 2 and name[:2] in _compound_surnames():
        return name[:2], name[2:]
    return name[:1], name[1:]


def to_date(value: Any) -> dt.date | None:
    if _missing(value):
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip()[:10])
    except ValueError:
        return None


def clean_id(value: Any) -> str | None:
    """Upper-cased resident id; a legacy 15-digit id is upgraded to 18 (GB 11643-1999)."""
    text = clean_text(value)
    if text is None:
        return None
    text = text.upper()
    if len(text) == 15 and text.isdigit():
        return upgrade_15_to_18(text)
    return text


def clean_phone(value: Any) -> str | None:
    text = clean_text(value)
    if text is None:
        return None
    digits = _NON_DIGIT.sub("", text)
    if len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]
    return digits or None


def normalise(record: dict) -> dict:
    """The person feature view: names with pinyin, sex per GB/T 2261.1, ISO dates, 18-digit ids, phone, address."""
    name = clean_text(record.get("name"))
    name = simplified(name) if name else None
    sex = clean_text(record.get("sex"))
    sex = sex if sex in ("1", "2") else None  # GB/T 2261.1: 0 unknown, 9 unstated → no evidence
    birth = to_date(record.get("birth_date"))
    id18 = clean_id(record.get("id_number"))
    id_valid = bool(id18) and is_valid_resident_id(id18)
    consistent = False
    if id_valid:
        parsed = parse_resident_id(id18)
        # A newborn registered under a parent's id: the id's own birth date / sex contradict the record.
        consistent = (birth is None or parsed.birth_date == birth) and (sex is None or parsed.sex == sex)
    surname_py = given_py = name_py = None
    if name:
        surname, given = split_name(name)
        name_py = _pinyin(name)
        surname_py = _pinyin(surname)
        given_py = _pinyin(given) if given else None
    swapped = None
    if birth is not None and birth.day <= 12 and birth.day != birth.month:
        swapped = dt.date(birth.year, birth.day, birth.month).isoformat()
    division = clean_text(record.get("division_code"))
    key = record.get("key")
    return {
        "key": None if _missing(key) else str(key),
        "name": name, "name_py": name_py, "surname_py": surname_py, "given_py": given_py,
        "sex": sex,
        "birth_date": birth.isoformat() if birth else None,
        "birth_swapped": swapped,
        "birth_ym": birth.isoformat()[:7] if birth else None,
        "birth_year": birth.isoformat()[:4] if birth else None,
        "birth_md": birth.isoformat()[5:] if birth else None,
        "id18": id18, "id_valid": id_valid, "id_consistent": consistent,
        "phone": clean_phone(record.get("phone")),
        "address": simplified(address) if (address := clean_text(record.get("address"))) else None,
        "division_code": division,
        "prefecture_code": division[:4] if division and len(division) == 6 else None,
    }


def _lower(value: Any) -> str | None:
    text = clean_text(value)
    return text.lower() if text else None


def normalise_febrl(record: dict) -> dict:
    """FEBRL (English) feature view: lower-cased strings, empty → None."""
    out = {"key": None if _missing(record.get("key")) else str(record["key"])}
    for col in ("given_name", "surname", "street_number", "address_1", "address_2", "suburb", "postcode",
                "state", "date_of_birth", "soc_sec_id"):
        out[col] = _lower(record.get(col))
    dob = out["date_of_birth"]
    out["dob_year"] = dob[:4] if dob and len(dob) == 8 else None
    out["dob_swapped"] = dob[:4] + dob[6:8] + dob[4:6] if dob and len(dob) == 8 and dob[4:6] != dob[6:8] else None
    return out


def normalise_fake1000(record: dict) -> dict:
    """Splink fake_1000 feature view; email split so a changed domain still matches on the user part."""
    out = {"key": None if _missing(record.get("key")) else str(record["key"])}
    for col in ("first_name", "surname", "city", "email"):
        out[col] = _lower(record.get(col))
    dob = to_date(record.get("dob"))
    out["dob"] = dob.isoformat() if dob else None
    out["dob_year"] = dob.isoformat()[:4] if dob else None
    out["email_user"] = out["email"].split("@", 1)[0] if out["email"] else None
    return out


def normalise_frame(records: pd.DataFrame | list[dict], normaliser=normalise) -> pd.DataFrame:
    """Normalise every row; the frame Splink and the batch path both read."""
    rows = records.to_dict("records") if isinstance(records, pd.DataFrame) else list(records)
    return pd.DataFrame([normaliser(r) for r in rows])
