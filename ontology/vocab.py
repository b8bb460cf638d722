"""Reference vocabularies the project owns (ontology/vocab/*.csv): clinical subjects, practice
scopes, an ICD-10 subset, drugs, interactions, vaccines, lab tests, blood components, foods and
the name tables. See ontology/vocab/README.md for what each holds and where the facts come from.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pandas as pd

VOCAB_DIR = Path(__file__).with_name("vocab")

FILES = (
    "clinical_subjects", "practice_scopes", "icd10", "drugs", "drug_interactions", "vaccines",
    "lab_tests", "blood_components", "surnames", "given_name_chars", "homophones", "food_products",
)


@cache
def vocab(name: str) -> pd.DataFrame:
    """One vocabulary as a DataFrame of strings (callers convert the numeric columns they use)."""
    if name not in FILES:
        raise KeyError(f"unknown vocabulary '{name}' (valid: {', '.join(FILES)})")
    return pd.read_csv(VOCAB_DIR / f"{name}.csv", dtype=str, keep_default_na=False, encoding="utf-8")


def numeric(frame: pd.DataFrame, column: str, default: float = 0.0) -> pd.Series:
    return pd.to_numeric(frame[column].replace("", None), errors="coerce").fillna(default)
