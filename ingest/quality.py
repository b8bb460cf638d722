"""Data-quality checks reported after a load (they flag, never reject: a record with a mistyped id
is still a real person's record, and the master index must see it)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ontology.identifiers import historical_division_codes

_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])
_CHECK = np.array(list("10X98765432"))


def id_check_ok(ids: pd.Series) -> np.ndarray:
    """Vectorised GB 11643-1999 §8.2 check for well-formed 18-character ids."""
    body = ids.str.slice(0, 17).to_numpy().astype(str)
    digits = np.frombuffer("".join(body.tolist()).encode(), dtype=np.uint8).reshape(-1, 17) - ord("0")
    expected = _CHECK[(digits * _WEIGHTS).sum(axis=1) % 11]
    return expected == ids.str.slice(17).to_numpy().astype(str)


def resident_id_quality(frame: pd.DataFrame, file: str) -> dict[str, Any]:
    """Counts of missing, legacy 15-digit and invalid resident ids, and ids disagreeing with the record."""
    ids = frame["id_number"].astype(pd.StringDtype("pyarrow"))
    present = ids.notna() & (ids != "")
    shaped18 = present & ids.str.fullmatch(r"\d{17}[\dX]").fillna(False)
    shaped15 = present & ids.str.fullmatch(r"\d{15}").fillna(False)
    ok = pd.Series(False, index=frame.index)
    if shaped18.any():
        sub = ids[shaped18]
        check = id_check_ok(sub)
        birth = pd.to_datetime(sub.str.slice(6, 14), format="%Y%m%d", errors="coerce")
        division = sub.str.slice(0, 6).isin(historical_division_codes()).to_numpy()
        ok.loc[shaped18] = check & birth.notna().to_numpy() & division
        # A valid id can still be another person's (e.g. a newborn under a parent's id): compare.
        rec_birth = pd.to_datetime(frame.loc[shaped18, "birth_date"]).dt.normalize()
        mismatch_birth = int((ok.loc[shaped18] & (rec_birth.to_numpy() != birth.to_numpy())).sum())
        sex_digit = sub.str.slice(16, 17).astype(int) % 2
        rec_sex = frame.loc[shaped18, "sex"].map({"1": 1, "2": 0})
        mismatch_sex = int((ok.loc[shaped18] & rec_sex.notna() & (rec_sex != sex_digit)).sum())
    else:
        mismatch_birth = mismatch_sex = 0
    return {
        "file": file, "records": int(len(frame)), "missing": int((~present).sum()), "valid_18": int(ok.sum()),
        "legacy_15": int(shaped15.sum()), "invalid": int((present & ~shaped15 & ~ok).sum()),
        "birth_date_disagrees": mismatch_birth, "sex_digit_disagrees": mismatch_sex,
        "basis": "GB 11643-1999 公民身份号码; GB/T 2260 (historical codes accepted)",
    }
