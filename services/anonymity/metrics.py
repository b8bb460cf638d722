"""Information-loss metrics, as ARX defines them (names are what ``anonymize(metric=…)`` accepts).

- ``entropy``: monotone non-uniform entropy (ARX ``createPrecomputedEntropyMetric(…, true)``):
  ``−Σ_col Σ_records log2(a/b)`` = ``−Σ_col Σ_v a·log2(a/b)``, a the number of records with original value v and b
  the number with v's generalisation, both counted over all records. Suppression is not charged, which keeps the
  metric monotone.
- ``nm_entropy``: non-monotone non-uniform entropy (ARX ``createPrecomputedEntropyMetric(…, false)``): the above,
  plus for the suppressed records, per column, ``−Σ_g c·log2(c/S)`` over their generalised values g (c records
  with value g, S records suppressed).
- ``dm_star``: monotone discernibility DM* (ARX ``createDiscernabilityMetric(true)``): ``Σ|E|²`` over all
  equivalence classes, suppressed or not.
- ``dm``: discernibility DM (ARX ``createDiscernabilityMetric(false)``): ``|E|²`` per released class, ``|E|·n`` per
  suppressed class.

Each metric also gives a lower bound that never decreases towards the top of the lattice (the metric itself when
monotone, else its monotone variant); the search prunes with it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar, Protocol

import numpy as np

from services.anonymity.errors import InvalidConfiguration
from services.anonymity.hierarchy import Hierarchy


class Classes(Protocol):
    """The equivalence classes of one lattice node."""

    sizes: np.ndarray

    def codes(self, column: int) -> np.ndarray:
        """Each class's value code in ``column`` at the node's level (codes index ``Hierarchy.labels``)."""
        ...


@dataclass(frozen=True, eq=False)
class Columns:
    """The quasi-identifiers as the metrics see them: hierarchies and records per hierarchy row (level 0)."""

    hierarchies: tuple[Hierarchy, ...]
    row_counts: tuple[np.ndarray, ...]
    records: int

    @cached_property
    def entropy(self) -> tuple[np.ndarray, ...]:
        """Per column, the monotone non-uniform entropy of each level."""
        table = []
        for hierarchy, a in zip(self.hierarchies, self.row_counts, strict=True):
            present = a > 0
            losses = []
            for level in range(hierarchy.height):
                codes = hierarchy.codes(level)
                b = np.bincount(codes, weights=a)[codes]
                losses.append(float(np.sum(a[present] * np.log2(b[present] / a[present]))))
            table.append(np.array(losses))
        return tuple(table)


class Metric(ABC):
    name: ClassVar[str]
    monotone: ClassVar[bool]
    bound_needs_classes: ClassVar[bool]
    """False when the bound depends on the node alone, so the search can prune before grouping."""

    @abstractmethod
    def bound(self, levels: Sequence[int], classes: Classes | None, columns: Columns) -> float:
        """A lower bound on the loss of this node and of every node above it."""

    @abstractmethod
    def loss(self, levels: Sequence[int], classes: Classes, outliers: np.ndarray, columns: Columns) -> float:
        """The loss of the node, ``outliers`` marking the suppressed classes."""


class Entropy(Metric):
    name = "entropy"
    monotone = True
    bound_needs_classes = False

    def bound(self, levels: Sequence[int], classes: Classes | None, columns: Columns) -> float:
        return float(sum(table[level] for table, level in zip(columns.entropy, levels, strict=True)))

    def loss(self, levels: Sequence[int], classes: Classes, outliers: np.ndarray, columns: Columns) -> float:
        return self.bound(levels, classes, columns)


class NMEntropy(Entropy):
    name = "nm_entropy"
    monotone = False

    def loss(self, levels: Sequence[int], classes: Classes, outliers: np.ndarray, columns: Columns) -> float:
        loss = self.bound(levels, classes, columns)
        weights = classes.sizes[outliers]
        suppressed = weights.sum()
        if suppressed:
            for column in range(len(levels)):
                counts = np.bincount(classes.codes(column)[outliers], weights=weights)
                counts = counts[counts > 0]
                loss += float(np.sum(counts * np.log2(suppressed / counts)))
        return loss


class DiscernibilityStar(Metric):
    name = "dm_star"
    monotone = True
    bound_needs_classes = True

    def bound(self, levels: Sequence[int], classes: Classes | None, columns: Columns) -> float:
        return float(np.sum(classes.sizes * classes.sizes))

    def loss(self, levels: Sequence[int], classes: Classes, outliers: np.ndarray, columns: Columns) -> float:
        return self.bound(levels, classes, columns)


class Discernibility(DiscernibilityStar):
    name = "dm"
    monotone = False

    def loss(self, levels: Sequence[int], classes: Classes, outliers: np.ndarray, columns: Columns) -> float:
        sizes = classes.sizes
        kept = sizes[~outliers]
        return float(np.sum(kept * kept)) + float(columns.records) * float(sizes[outliers].sum())


METRICS: dict[str, type[Metric]] = {m.name: m for m in (Entropy, NMEntropy, DiscernibilityStar, Discernibility)}


def resolve_metric(metric: str | Metric) -> Metric:
    if isinstance(metric, Metric):
        return metric
    if metric in METRICS:
        return METRICS[metric]()
    raise InvalidConfiguration(
        f"未知信息损失度量 unknown metric {metric!r} (valid: {', '.join(METRICS)})", metric=repr(metric),
    )
