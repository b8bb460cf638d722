"""Privacy models. Each judges equivalence classes (records sharing all generalised quasi-identifiers); records in
classes that fail any model are suppressed, as long as they fit in the suppression limit.

- ``KAnonymity(k)``: every class has at least k records.
- ``DistinctLDiversity(sensitive, l)``: every class holds at least l distinct sensitive values.
- ``EntropyLDiversity(sensitive, l)``: the Shannon entropy of every class's sensitive values is at least log(l).
- ``EqualDistanceTCloseness(sensitive, t)``: the earth mover's distance between a class's sensitive distribution
  and the whole data set's is at most t, every pair of distinct values being at distance 1 (so the EMD is the
  total variation distance, ½·Σ|p − q|).
- ``HierarchicalTCloseness(sensitive, t, hierarchy)``: as above with the hierarchical ground distance of Li, Li &
  Venkatasubramanian (ICDE 2007): two values are ``h / H`` apart, h the level of their lowest common ancestor and H
  the hierarchy's top level.

The class checks here run inside the lattice search; ``services.anonymity.verify`` re-derives the same guarantees
on the output with separate code.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from services.anonymity.errors import InvalidPrivacyModel
from services.anonymity.hierarchy import Hierarchy

Check = Callable[[np.ndarray, np.ndarray | None], np.ndarray]
"""``check(sizes, histogram) -> violating``: per class, True when the class breaks the model. ``histogram`` is the
class × sensitive-value count matrix (None for models without a sensitive attribute)."""

# Slack for float thresholds, so that a class exactly at the bound (e.g. ℓ equally frequent values) passes.
_SLACK = 1e-9


@dataclass(frozen=True)
class SensitiveDomain:
    """The sensitive attribute's distinct values (the histogram columns) and their counts over all records."""

    column: str
    values: tuple[str, ...]
    counts: np.ndarray

    @property
    def records(self) -> int:
        return int(self.counts.sum())


class PrivacyModel(ABC):
    """Base of the privacy models; ``sensitive`` is the sensitive attribute's column (None for k-anonymity)."""

    sensitive: str | None

    @property
    @abstractmethod
    def label(self) -> str:
        """A short name, e.g. ``5-anonymity``."""

    @abstractmethod
    def check(self, domain: SensitiveDomain | None) -> Check:
        """The class check, bound to the sensitive attribute's domain."""

    @abstractmethod
    def satisfied_by(self, achieved: float) -> bool:
        """Whether the value the verification measured (min class size, min ℓ, max EMD) meets the model."""


@dataclass(frozen=True)
class KAnonymity(PrivacyModel):
    k: int
    sensitive: ClassVar[str | None] = None

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int | np.integer) or self.k < 1:
            raise InvalidPrivacyModel(f"k 须为正整数 k must be an integer ≥ 1, got {self.k!r}", k=repr(self.k))

    @property
    def label(self) -> str:
        return f"{self.k}-anonymity"

    def check(self, domain: SensitiveDomain | None) -> Check:
        k = self.k
        return lambda sizes, histogram: sizes < k

    def satisfied_by(self, achieved: float) -> bool:
        return achieved >= self.k


@dataclass(frozen=True)
class DistinctLDiversity(PrivacyModel):
    sensitive: str
    l: int  # noqa: E741 - the model's name

    def __post_init__(self) -> None:
        _check_sensitive(self.sensitive)
        if isinstance(self.l, bool) or not isinstance(self.l, int | np.integer) or self.l < 1:
            raise InvalidPrivacyModel(f"ℓ 须为正整数 l must be an integer ≥ 1, got {self.l!r}", l=repr(self.l))

    @property
    def label(self) -> str:
        return f"distinct-{self.l}-diversity({self.sensitive})"

    def check(self, domain: SensitiveDomain | None) -> Check:
        l = self.l  # noqa: E741
        return lambda sizes, histogram: np.count_nonzero(histogram, axis=1) < l

    def satisfied_by(self, achieved: float) -> bool:
        return achieved >= self.l


@dataclass(frozen=True)
class EntropyLDiversity(PrivacyModel):
    sensitive: str
    l: float  # noqa: E741

    def __post_init__(self) -> None:
        _check_sensitive(self.sensitive)
        if isinstance(self.l, bool) or not isinstance(self.l, int | float) or not self.l >= 1 or math.isinf(self.l):
            raise InvalidPrivacyModel(f"ℓ 须不小于1 l must be a number ≥ 1, got {self.l!r}", l=repr(self.l))

    @property
    def label(self) -> str:
        return f"entropy-{self.l:g}-diversity({self.sensitive})"

    def check(self, domain: SensitiveDomain | None) -> Check:
        log_l = math.log(self.l)

        def check(sizes: np.ndarray, histogram: np.ndarray | None) -> np.ndarray:
            # entropy ≥ log l  ⟺  Σ f·ln f ≤ n·(ln n − ln l), n the class size and f its value counts
            counts = histogram.astype(np.float64)
            with np.errstate(divide="ignore", invalid="ignore"):
                plogp = np.where(histogram > 0, counts * np.log(counts), 0.0).sum(axis=1)
            n = sizes.astype(np.float64)
            return plogp > n * (np.log(n) - log_l) + _SLACK * n

        return check

    def satisfied_by(self, achieved: float) -> bool:
        return achieved >= self.l * (1 - _SLACK)


@dataclass(frozen=True)
class EqualDistanceTCloseness(PrivacyModel):
    sensitive: str
    t: float

    def __post_init__(self) -> None:
        _check_sensitive(self.sensitive)
        _check_t(self.t)

    @property
    def label(self) -> str:
        return f"{self.t:g}-closeness({self.sensitive}, equal distance)"

    def check(self, domain: SensitiveDomain | None) -> Check:
        overall, n, t = domain.counts, domain.records, self.t

        def check(sizes: np.ndarray, histogram: np.ndarray | None) -> np.ndarray:
            # EMD = ½·Σ|c/s − q/n| = Σ|c·n − q·s| / (2·n·s), kept in exact integers until the comparison
            numerator = np.abs(histogram * n - overall * sizes[:, None]).sum(axis=1)
            return numerator > t * (2.0 * n) * sizes * (1 + _SLACK)

        return check

    def satisfied_by(self, achieved: float) -> bool:
        return achieved <= self.t * (1 + _SLACK)


@dataclass(frozen=True)
class HierarchicalTCloseness(PrivacyModel):
    sensitive: str
    t: float
    hierarchy: Hierarchy = field(repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_sensitive(self.sensitive)
        _check_t(self.t)
        if not isinstance(self.hierarchy, Hierarchy) or self.hierarchy.height < 2:
            raise InvalidPrivacyModel(
                f"层级t-接近度需要至少两层的层级 hierarchical t-closeness needs a hierarchy with at least two levels "
                f"for {self.sensitive!r}", sensitive=self.sensitive,
            )
        tops = self.hierarchy.labels(self.hierarchy.max_level)
        if len(tops) != 1:
            raise InvalidPrivacyModel(
                f"层级顶层须为单一取值 the hierarchy for {self.sensitive!r} must end in a single top value (a tree), "
                f"got {len(tops)}: {', '.join(map(repr, tops[:5]))}", sensitive=self.sensitive,
            )

    @property
    def label(self) -> str:
        return f"{self.t:g}-closeness({self.sensitive}, hierarchical distance)"

    def check(self, domain: SensitiveDomain | None) -> Check:
        overall, n, t = domain.counts, domain.records, self.t
        top = self.hierarchy.max_level
        # Per level j ≥ 1: a 0/1 matrix from the level j−1 nodes to their parents, over the values present.
        rows = self.hierarchy.row_index(list(domain.values), self.sensitive)
        codes = [np.arange(len(rows))]
        codes += [np.unique(self.hierarchy.codes(j)[rows], return_inverse=True)[1] for j in range(1, top + 1)]
        parents = []
        for j in range(1, top + 1):
            link = np.zeros((codes[j - 1].max() + 1, codes[j].max() + 1), dtype=np.int64)
            link[codes[j - 1], codes[j]] = 1
            parents.append(link)

        def check(sizes: np.ndarray, histogram: np.ndarray | None) -> np.ndarray:
            # Li et al.: EMD = Σ_nodes (level/H)·min(positive extra, negative extra) of the node's children, with
            # extras scaled by n·s to stay integer; leaves' extra is c·n − q·s.
            extra = histogram * n - overall * sizes[:, None]
            numerator = np.zeros(len(sizes), dtype=np.int64)
            for level, link in enumerate(parents, start=1):
                positive = np.maximum(extra, 0) @ link
                negative = np.maximum(-extra, 0) @ link
                numerator += level * np.minimum(positive, negative).sum(axis=1)
                extra = extra @ link
            return numerator > t * (float(top) * n) * sizes * (1 + _SLACK)

        return check

    def satisfied_by(self, achieved: float) -> bool:
        return achieved <= self.t * (1 + _SLACK)


def _check_sensitive(sensitive: object) -> None:
    if not isinstance(sensitive, str) or not sensitive:
        raise InvalidPrivacyModel(f"须指定敏感属性列名 the sensitive attribute must be a column name, got {sensitive!r}")


def _check_t(t: object) -> None:
    if isinstance(t, bool) or not isinstance(t, int | float) or not 0 <= t <= 1:
        raise InvalidPrivacyModel(f"t 须在0到1之间 t must be a number in [0, 1], got {t!r}", t=repr(t))
