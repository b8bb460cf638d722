"""Vectorised people: names, sexes, ages by a population pyramid, GB 11643 id numbers, phones."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ontology.identifiers import id_check_char
from ontology.vocab import numeric, vocab

# Share of the population per 5-year age band 0–4 … 95–99, shaped like China's 2020 census pyramid
# (7th national census, 国家统计局 2021: wide 30–59 bands, narrow under-5s, ageing tail).
AGE_BANDS = np.array([0.049, 0.064, 0.059, 0.053, 0.052, 0.064, 0.084, 0.079, 0.070, 0.081,
                      0.087, 0.082, 0.072, 0.056, 0.042, 0.028, 0.018, 0.010, 0.004, 0.001])
MALE_SHARE = 0.5124  # 7th national census: sex ratio 105.07

# ABO/RhD shares among Han Chinese donors (approximate, widely reported): O≈30 %, A≈28 %, B≈30 %, AB≈10 %,
# RhD negative ≈0.4 %.
ABO = np.array(["O", "A", "B", "AB"])
ABO_P = np.array([0.31, 0.28, 0.30, 0.11])

def zfill(values: np.ndarray, width: int) -> np.ndarray:
    """Zero-padded text of each value (numpy's char.zfill fails on empty arrays)."""
    return pd.Series(np.asarray(values)).astype(str).str.zfill(width).to_numpy(dtype=str)


_ID_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])
_ID_CHECK = np.array(list("10X98765432"))


def id_numbers(division: np.ndarray, birth: np.ndarray, sequence: np.ndarray) -> np.ndarray:
    """18-digit resident ids from 6-digit division codes, birth dates and 3-digit sequence codes."""
    body = np.char.add(np.char.add(division.astype(str),
                                   pd.DatetimeIndex(birth).strftime("%Y%m%d").to_numpy().astype(str)),
                       zfill(sequence.astype(str), 3))
    digits = np.frombuffer("".join(body.tolist()).encode(), dtype=np.uint8).reshape(-1, 17) - ord("0")
    check = _ID_CHECK[(digits * _ID_WEIGHTS).sum(axis=1) % 11]
    return np.char.add(body, check)


def id_typo(number: str, rng: np.random.Generator) -> str:
    """Change one digit of the body: the check digit then fails (GB 11643 catches every single typo)."""
    pos = int(rng.integers(6, 17))
    digit = str((int(number[pos]) + int(rng.integers(1, 10))) % 10)
    return number[:pos] + digit + number[pos + 1:]


def legacy_15(number: str) -> str:
    """The 15-digit form of an id issued before 1999 (2-digit year, no check digit)."""
    return number[:6] + number[8:17]


def assert_valid(numbers: np.ndarray) -> None:
    for n in numbers[:50]:
        assert id_check_char(n[:17]) == n[17], n


class NameSampler:
    """Chinese names from the project's surname frequencies and given-name characters."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        s = vocab("surnames")
        share = numeric(s, "share_percent").to_numpy()
        self.surnames = s["surname"].to_numpy()
        self.surname_p = share / share.sum()
        g = vocab("given_name_chars")
        self.male = g[g["lean"].isin(["M", "U"])]["char"].to_numpy()
        self.female = g[g["lean"].isin(["F", "U"])]["char"].to_numpy()
        h = vocab("homophones")
        self.homophones = {r.char: r.alternatives.split() for r in h.itertuples()}

    def sample(self, sex: np.ndarray, surnames: np.ndarray | None = None) -> np.ndarray:
        n = len(sex)
        sur = surnames if surnames is not None else self.rng.choice(self.surnames, n, p=self.surname_p)
        male = sex == "1"
        first = np.where(male, self.rng.choice(self.male, n), self.rng.choice(self.female, n))
        second = np.where(male, self.rng.choice(self.male, n), self.rng.choice(self.female, n))
        two = self.rng.random(n) < 0.72  # most given names have two characters
        given = np.where(two, np.char.add(first.astype(str), second.astype(str)), first.astype(str))
        return np.char.add(sur.astype(str), given)

    def surname_of(self, names: np.ndarray) -> np.ndarray:
        compound = {s for s in self.surnames if len(s) > 1}
        return np.array([n[:2] if n[:2] in compound else n[:1] for n in names])

    def homophone_variant(self, name: str) -> str | None:
        """Replace one given-name character by a same-sounding one (a transcription error)."""
        for i in range(len(name) - 1, 0, -1):
            alts = self.homophones.get(name[i])
            if alts:
                return name[:i] + str(self.rng.choice(alts)) + name[i + 1:]
        return None


def ages_in_years(rng: np.random.Generator, n: int) -> np.ndarray:
    band = rng.choice(len(AGE_BANDS), n, p=AGE_BANDS / AGE_BANDS.sum())
    return band * 5 + rng.random(n) * 5


def phones(rng: np.random.Generator, n: int) -> np.ndarray:
    second = rng.choice(np.array(list("35789")), n)
    rest = rng.integers(0, 10**9, n)
    return np.char.add(np.char.add("1", second), zfill(rest.astype(str), 9))
