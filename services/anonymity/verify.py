"""Independent verification of an anonymised table.

Written apart from the search (plain pandas group-bys over the released text values, the hierarchies read as
dictionaries, the hierarchical EMD by the tree-edge formula rather than Li et al.'s), it checks that:

- no more records were suppressed than allowed;
- every released quasi-identifier equals its original generalised to the chosen level, other columns unchanged,
  and suppressed rows (when kept) show ``*``;
- every equivalence class of released records satisfies every privacy model;

and reports what was achieved: the smallest class, the smallest ℓ, the largest EMD.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from services.anonymity.hierarchy import TOP, Hierarchy
from services.anonymity.models import (
    DistinctLDiversity,
    EntropyLDiversity,
    EqualDistanceTCloseness,
    HierarchicalTCloseness,
    KAnonymity,
    PrivacyModel,
)


@dataclass(frozen=True)
class Verification:
    ok: bool
    released: int
    suppressed: int
    max_suppressed: int
    classes: int
    achieved: dict[str, float] = field(default_factory=dict)
    """Per model label: the smallest class size / distinct count / entropy-ℓ (exp of the entropy), or the largest
    EMD, over the released classes (NaN when nothing is released)."""
    problems: tuple[str, ...] = ()


def verify(original: pd.DataFrame, output: pd.DataFrame, suppressed: np.ndarray,
           hierarchies: Mapping[str, Hierarchy], levels: Mapping[str, int], models: Sequence[PrivacyModel],
           max_suppressed: int) -> Verification:
    """Check ``output`` (with suppressed rows removed, or kept with ``*``) against ``original``.

    ``suppressed`` marks, by position in ``original``, the suppressed records."""
    problems: list[str] = []
    suppressed = np.asarray(suppressed, dtype=bool)
    count = int(suppressed.sum())
    if count > max_suppressed:
        problems.append(f"suppressed {count} records, more than the limit {max_suppressed}")
    kept_original = original.iloc[np.flatnonzero(~suppressed)]
    if len(output) == len(original):
        released = output.iloc[np.flatnonzero(~suppressed)]
        hidden = output.iloc[np.flatnonzero(suppressed)]
        for column in hierarchies:
            if not (hidden[column].astype(str) == TOP).all():
                problems.append(f"suppressed rows show values in {column!r}")
    elif len(output) == len(kept_original):
        released = output
    else:
        released = output.iloc[0:0]
        problems.append(f"output has {len(output)} rows; expected {len(original)} or {len(kept_original)}")

    if len(released) == len(kept_original):
        for column in original.columns:
            expected = kept_original[column]
            if column in hierarchies:
                level = levels[column]
                lookup = {row[0]: row[level] for row in hierarchies[column].rows}
                expected = expected.astype(str).map(lookup)
                same = released[column].astype(str).to_numpy() == expected.to_numpy()
            else:
                same = _same(released[column].to_numpy(), expected.to_numpy())
            if not same.all():
                problems.append(f"column {column!r} differs from the expected generalisation in {int((~same).sum())} "
                                f"rows")

    quasi = list(hierarchies)
    keys = released[quasi].astype(str)
    sizes = keys.groupby(quasi, sort=False).size()
    achieved: dict[str, float] = {}
    for model in models:
        value = _measure(model, released, keys, quasi, original)
        achieved[model.label] = value
        if len(sizes) and not model.satisfied_by(value):
            problems.append(f"{model.label} fails: achieved {value:g}")
    return Verification(not problems, len(released), count, max_suppressed, len(sizes), achieved, tuple(problems))


def _measure(model: PrivacyModel, released: pd.DataFrame, keys: pd.DataFrame, quasi: list[str],
             original: pd.DataFrame) -> float:
    if not len(released):
        return math.nan
    if isinstance(model, KAnonymity):
        return float(keys.groupby(quasi, sort=False).size().min())
    frame = keys.assign(_value=released[model.sensitive].astype(str).to_numpy())
    counts = frame.groupby([*quasi, "_value"], sort=False).size().unstack("_value", fill_value=0)
    if isinstance(model, DistinctLDiversity):
        return float((counts > 0).sum(axis=1).min())
    share = counts.div(counts.sum(axis=1), axis=0)
    if isinstance(model, EntropyLDiversity):
        logs = np.log(share.where(share > 0, 1.0))
        return float(np.exp(-(share * logs).sum(axis=1)).min())
    overall = original[model.sensitive].astype(str).value_counts(normalize=True)
    share = share.reindex(columns=overall.index, fill_value=0.0)
    difference = share - overall
    if isinstance(model, EqualDistanceTCloseness):
        return float((difference.abs().sum(axis=1) / 2).max())
    if isinstance(model, HierarchicalTCloseness):
        return float(_tree_emd(difference, model.hierarchy).max())
    raise TypeError(f"no verification for {type(model).__name__}")


def _tree_emd(difference: pd.DataFrame, hierarchy: Hierarchy) -> pd.Series:
    """EMD over a tree metric is Σ_edges weight·|mass crossing the edge|. Leaves whose lowest common ancestor is at
    level h are h/H apart (H the top level) along 2h edges, so every edge weighs 1/(2H); the mass crossing the
    edge above a node is the net excess (p − q) of the leaves under it."""
    top = hierarchy.max_level
    total = pd.Series(0.0, index=difference.index)
    for level in range(top):
        lookup = {row[0]: row[level] for row in hierarchy.rows}
        by_node = difference.T.groupby(difference.columns.map(lookup)).sum().T
        total += by_node.abs().sum(axis=1) / (2 * top)
    return total


def _same(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    equal = left == right
    missing = pd.isna(left) & pd.isna(right)
    return np.asarray(equal | missing, dtype=bool)
