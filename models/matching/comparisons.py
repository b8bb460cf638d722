"""Declarative comparison levels: one list per data set, each level with a label, a DuckDB SQL condition
(what Splink trains and predicts with) and the Python predicate the real-time scorer evaluates.

Both forms are built by the same small constructors below, so a level cannot mean one thing in SQL and
another in Python. Edit distances are integers (DuckDB ``levenshtein`` counts characters, as rapidfuzz
does), so the two sides agree exactly — no float thresholds at a boundary.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from rapidfuzz.distance import Levenshtein

from models.matching.features import normalise, normalise_fake1000, normalise_febrl

Predicate = Callable[[dict, dict], bool]


@dataclass(frozen=True)
class Level:
    label: str
    sql: str
    test: Predicate = field(compare=False)
    is_null: bool = False


@dataclass(frozen=True)
class ComparisonSpec:
    field: str                 # evidence name and Splink output column name
    show: str                  # feature column(s) reported as left/right in evidence ("a+b" joins two)
    levels: tuple[Level, ...]


def _c(col: str, side: str) -> str:
    return f'"{col}_{side}"'


def null(*cols: str) -> Level:
    sql = " OR ".join(f"{_c(c, 'l')} IS NULL OR {_c(c, 'r')} IS NULL" for c in cols)
    return Level("null", sql, lambda a, b: any(a[c] is None or b[c] is None for c in cols), is_null=True)


def exact(col: str, label: str = "exact") -> Level:
    return Level(label, f"{_c(col, 'l')} = {_c(col, 'r')}", lambda a, b: a[col] is not None and a[col] == b[col])


def levenshtein(col: str, k: int, label: str | None = None) -> Level:
    def test(a: dict, b: dict) -> bool:
        x, y = a[col], b[col]
        return x is not None and y is not None and Levenshtein.distance(x, y, score_cutoff=k) <= k

    return Level(label or f"levenshtein_{k}", f"levenshtein({_c(col, 'l')}, {_c(col, 'r')}) <= {k}", test)


def both(first: Level, second: Level, label: str) -> Level:
    return Level(label, f"({first.sql}) AND ({second.sql})", lambda a, b: first.test(a, b) and second.test(a, b),
                 is_null=first.is_null and second.is_null)


def either(first: Level, second: Level, label: str = "") -> Level:
    return Level(label or f"{first.label}_or_{second.label}", f"({first.sql}) OR ({second.sql})",
                 lambda a, b: first.test(a, b) or second.test(a, b))


def crossed(col: str, other: str, label: str) -> Level:
    """``col`` of one side equals ``other`` of the other side (e.g. a birth date with day and month swapped)."""
    sql = f"{_c(col, 'l')} = {_c(other, 'r')} OR {_c(other, 'l')} = {_c(col, 'r')}"
    return Level(label, sql, lambda a, b: (a[col] is not None and a[col] == b[other])
                 or (a[other] is not None and a[other] == b[col]))


def suffix(col: str, min_len: int, label: str = "truncated") -> Level:
    """One value ends with the other (a source that cut the leading characters)."""
    sql = (f"(length({_c(col, 'r')}) >= {min_len} AND ends_with({_c(col, 'l')}, {_c(col, 'r')})) OR "
           f"(length({_c(col, 'l')}) >= {min_len} AND ends_with({_c(col, 'r')}, {_c(col, 'l')}))")

    def test(a: dict, b: dict) -> bool:
        x, y = a[col], b[col]
        if x is None or y is None:
            return False
        return (len(y) >= min_len and x.endswith(y)) or (len(x) >= min_len and y.endswith(x))

    return Level(label, sql, test)


ELSE = Level("else", "ELSE", lambda a, b: True)


@dataclass(frozen=True)
class MatchConfig:
    name: str
    comparisons: tuple[ComparisonSpec, ...]
    normalise: Callable[[dict], dict]
    blocking: tuple[tuple[str, ...], ...]            # real-time index and Splink predict
    training_blocking: tuple[tuple[str, ...], ...]   # Splink EM sessions
    prior_rules: tuple[tuple[str, ...], ...]         # deterministic rules for the prior estimate
    prior_recall: float
    link_type: Literal["dedupe_only", "link_only"] = "dedupe_only"
    deterministic: Predicate | None = None
    # field → labels: an automatic MATCH needs one of these levels (or the deterministic rule); otherwise the
    # decision is capped at POSSIBLE_MATCH for clerical review.
    match_requires: tuple[tuple[str, frozenset[str]], ...] = ()

    def feature_columns(self) -> list[str]:
        cols = {c for spec in self.comparisons for c in _columns(spec)} | {c for r in self.blocking for c in r}
        return sorted(cols)


def _columns(spec: ComparisonSpec) -> set[str]:
    import re

    return {m for lv in spec.levels for m in re.findall(r'"(\w+)_[lr]"', lv.sql)}


def _same_valid_id(a: dict, b: dict) -> bool:
    """Same valid 18-digit id (GB 11643-1999 §8.2 check), and neither record contradicts the id's own birth date
    or sex (a newborn registered under a parent's id is not the parent)."""
    return (a["id_valid"] and b["id_valid"] and a["id18"] == b["id18"]
            and a["id_consistent"] and b["id_consistent"])


PERSON = MatchConfig(
    name="person",
    comparisons=(
        ComparisonSpec("name", "name", (
            null("name"), exact("name"), exact("name_py", "pinyin"),
            both(exact("surname_py"), levenshtein("name", 1), "one_char"),
            exact("surname_py", "surname"), ELSE)),
        ComparisonSpec("sex", "sex", (null("sex"), exact("sex"), ELSE)),
        ComparisonSpec("birth_date", "birth_date", (
            null("birth_date"), exact("birth_date"), crossed("birth_swapped", "birth_date", "transposed"),
            exact("birth_ym", "year_month"), ELSE)),
        ComparisonSpec("id_number", "id18", (
            null("id18"), exact("id18"), levenshtein("id18", 1, "one_digit_off"), ELSE)),
        # Phone and address are household attributes: family members share both, so counting them as two
        # independent agreements would double the evidence (twins in one home would match). One joint comparison.
        ComparisonSpec("phone_address", "phone+address", (
            both(null("phone"), null("address"), "null"),
            both(exact("phone"), either(exact("address"), suffix("address", 6)), "both"),
            exact("phone", "phone"), either(exact("address"), suffix("address", 6), "address"), ELSE)),
        ComparisonSpec("division_code", "division_code", (
            null("division_code"), exact("division_code"), exact("prefecture_code", "prefecture"), ELSE)),
    ),
    normalise=normalise,
    blocking=(("id18",), ("phone",), ("surname_py", "birth_date"), ("name_py", "birth_year"),
              ("birth_date", "division_code"), ("given_py", "birth_md", "sex")),
    # Twins share phone, address and birth date: sessions that block on those would teach EM that twins match.
    training_blocking=(("id18",), ("name_py", "birth_date")),
    prior_rules=(("id18",), ("name_py", "birth_date", "phone")),
    prior_recall=0.85,
    deterministic=_same_valid_id,
    # Family members share birth date (twins), phone, address and surname, and Fellegi–Sunter adds those up as
    # if independent; the given name is what tells them apart, so it must agree (or sound the same).
    match_requires=(("name", frozenset({"exact", "pinyin"})),),
)

FEBRL = MatchConfig(
    name="febrl",
    comparisons=(
        ComparisonSpec("given_name", "given_name", (
            null("given_name"), exact("given_name"), levenshtein("given_name", 1), levenshtein("given_name", 2),
            ELSE)),
        ComparisonSpec("surname", "surname", (
            null("surname"), exact("surname"), levenshtein("surname", 1), levenshtein("surname", 2), ELSE)),
        ComparisonSpec("date_of_birth", "date_of_birth", (
            null("date_of_birth"), exact("date_of_birth"),
            crossed("dob_swapped", "date_of_birth", "transposed"),
            levenshtein("date_of_birth", 1), levenshtein("date_of_birth", 2), ELSE)),
        ComparisonSpec("soc_sec_id", "soc_sec_id", (
            null("soc_sec_id"), exact("soc_sec_id"), levenshtein("soc_sec_id", 1),
            levenshtein("soc_sec_id", 2), ELSE)),
        ComparisonSpec("street_number", "street_number", (
            null("street_number"), exact("street_number"), levenshtein("street_number", 1), ELSE)),
        ComparisonSpec("address_1", "address_1", (
            null("address_1"), exact("address_1"), levenshtein("address_1", 2), levenshtein("address_1", 5),
            ELSE)),
        ComparisonSpec("address_2", "address_2", (
            null("address_2"), exact("address_2"), levenshtein("address_2", 2), ELSE)),
        ComparisonSpec("suburb", "suburb", (null("suburb"), exact("suburb"), levenshtein("suburb", 2), ELSE)),
        ComparisonSpec("postcode", "postcode", (
            null("postcode"), exact("postcode"), levenshtein("postcode", 1), ELSE)),
        ComparisonSpec("state", "state", (null("state"), exact("state"), ELSE)),
    ),
    normalise=normalise_febrl,
    blocking=(("given_name",), ("surname",), ("date_of_birth",), ("soc_sec_id",), ("postcode", "street_number"),
              ("suburb", "dob_year")),
    training_blocking=(("given_name", "surname"), ("date_of_birth",), ("soc_sec_id",)),
    prior_rules=(("soc_sec_id",), ("given_name", "surname", "date_of_birth")),
    prior_recall=0.8,
    link_type="link_only",
)

FAKE_1000 = MatchConfig(
    name="fake_1000",
    comparisons=(
        ComparisonSpec("first_name", "first_name", (
            null("first_name"), exact("first_name"), levenshtein("first_name", 2),
            crossed("first_name", "surname", "swapped_with_surname"), ELSE)),
        ComparisonSpec("surname", "surname", (
            null("surname"), exact("surname"), levenshtein("surname", 2), ELSE)),
        ComparisonSpec("dob", "dob", (
            null("dob"), exact("dob"), levenshtein("dob", 1), levenshtein("dob", 2), exact("dob_year", "year"),
            ELSE)),
        ComparisonSpec("city", "city", (null("city"), exact("city"), levenshtein("city", 2), ELSE)),
        ComparisonSpec("email", "email", (
            null("email"), exact("email"), exact("email_user", "user"), levenshtein("email", 3), ELSE)),
    ),
    normalise=normalise_fake1000,
    blocking=(("first_name",), ("surname",), ("dob",), ("email",), ("email_user",), ("city", "dob_year")),
    training_blocking=(("first_name", "surname"), ("dob",), ("email",)),
    prior_rules=(("first_name", "surname", "dob"), ("email",)),
    prior_recall=0.6,
)

CONFIGS: dict[str, MatchConfig] = {c.name: c for c in (PERSON, FEBRL, FAKE_1000)}
