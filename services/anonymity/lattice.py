"""Exact optimal search over the full generalisation lattice.

A node gives one level per quasi-identifier; the lattice holds every combination. The search walks a spanning
tree of the lattice depth-first from the bottom: a node's parent is the node with its last non-zero level one
lower, so every node is reached exactly once and everything below a node in the walk generalises it. A node's
equivalence classes are rolled up from its parent's (one column coarser), never recomputed from the records:
the class keys are mixed-radix integers, grouped with a hash factorisation.

Every node is evaluated unless one of two provably sound rules removes its whole subtree, both resting on the
metric's lower bound never decreasing upwards (a node above N is a generalisation of N):

1. bound(N) > best loss found so far: nothing above N can beat the best;
2. N is feasible and the metric is monotone: nothing above N has lower loss, and ties go to the lower node.

Neither rule assumes the privacy models are monotone, so ℓ-diversity and t-closeness with suppression (which are
not) are searched exactly. Ties in loss (within 1e-10 relative) go to the node with the lowest sum of levels, then
to the lexicographically smallest level vector in the caller's column order.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from services.anonymity.metrics import Columns, Metric
from services.anonymity.models import Check

_KEY_LIMIT = 2**62
_TIE = 1e-10


@dataclass(frozen=True)
class Candidate:
    levels: tuple[int, ...]
    loss: float
    suppressed: int


@dataclass(frozen=True)
class SearchStats:
    nodes: int
    evaluated: int
    feasible: int
    seconds: float

    @property
    def pruned(self) -> int:
        return self.nodes - self.evaluated


@dataclass(frozen=True)
class SearchOutcome:
    best: Candidate | None
    fewest_suppressed: Candidate
    """The node that would need the fewest suppressions (its loss is NaN when infeasible)."""
    stats: SearchStats


class ClassTable:
    """The equivalence classes of one node: a key per class (mixed-radix codes of every column), its size and,
    per sensitive attribute, its value counts."""

    __slots__ = ("keys", "sizes", "histograms", "_space")

    def __init__(self, keys: np.ndarray, sizes: np.ndarray, histograms: tuple[np.ndarray, ...], space: Space):
        self.keys, self.sizes, self.histograms, self._space = keys, sizes, histograms, space

    def codes(self, column: int) -> np.ndarray:
        space = self._space
        return self.keys[:, space.part[column]] // space.stride[column] % space.radix[column]


class Space:
    """The encoded search problem, columns in search order."""

    def __init__(self, codes: Sequence[np.ndarray], columns: Columns, sensitive: Sequence[np.ndarray],
                 sensitive_sizes: Sequence[int]):
        self.columns = columns
        self.hierarchies = columns.hierarchies
        self.max_levels = tuple(h.max_level for h in self.hierarchies)
        self.radix = [len(h) for h in self.hierarchies]
        # Columns share an int64 key while the product of their radices fits; more columns start another key.
        self.part, self.stride = [], []
        part, stride = 0, 1
        for radix in self.radix:
            if stride * radix > _KEY_LIMIT:
                part, stride = part + 1, 1
            self.part.append(part)
            self.stride.append(stride)
            stride *= radix
        self.parts = part + 1
        self.bottom, self.record_class = self._bottom(codes, sensitive, sensitive_sizes)
        """The classes of the bottom node, and each record's class among them."""

    def _bottom(self, codes: Sequence[np.ndarray], sensitive: Sequence[np.ndarray],
                sensitive_sizes: Sequence[int]) -> tuple[ClassTable, np.ndarray]:
        keys = np.zeros((len(codes[0]), self.parts), dtype=np.int64)
        for column, values in enumerate(codes):
            keys[:, self.part[column]] += values * self.stride[column]
        group, unique = _group(keys)
        count = len(unique)
        sizes = np.bincount(group, minlength=count).astype(np.int64)
        histograms = tuple(np.bincount(group * size + values, minlength=count * size).reshape(count, size)
                           for values, size in zip(sensitive, sensitive_sizes, strict=True))
        return ClassTable(unique, sizes, histograms, self), group

    def roll_up(self, table: ClassTable, column: int, level: int) -> ClassTable:
        """The classes one level coarser in ``column`` (which is at ``level`` in ``table``)."""
        old = table.codes(column)
        keys = table.keys.copy()
        keys[:, self.part[column]] += (self.hierarchies[column].up(level)[old] - old) * self.stride[column]
        group, unique = _group(keys)
        count = len(unique)
        sizes = np.bincount(group, weights=table.sizes, minlength=count).astype(np.int64)
        histograms = tuple(_rebin(group, count, h) for h in table.histograms)
        return ClassTable(unique, sizes, histograms, self)


def search(space: Space, checks: Sequence[tuple[Check, int | None]], metric: Metric, max_suppressed: int,
           order: Sequence[int]) -> SearchOutcome:
    """The optimal node. ``checks`` pairs each model's check with the index of its sensitive histogram;
    ``order[i]`` is the caller's position of search column i (for tie-breaking in the caller's order)."""
    started = time.perf_counter()
    walk = _Walk(space, checks, metric, max_suppressed, order)
    walk.visit([0] * len(space.max_levels), space.bottom, 0)
    nodes = math.prod(level + 1 for level in space.max_levels)
    stats = SearchStats(nodes, walk.evaluated, walk.feasible, time.perf_counter() - started)
    return SearchOutcome(walk.best, walk.fewest, stats)


class _Walk:
    def __init__(self, space: Space, checks: Sequence[tuple[Check, int | None]], metric: Metric,
                 max_suppressed: int, order: Sequence[int]):
        self.space, self.checks, self.metric, self.max_suppressed = space, checks, metric, max_suppressed
        self.order = list(order)
        self.best: Candidate | None = None
        self.best_rank: tuple[int, tuple[int, ...]] = (0, ())
        self.fewest = Candidate((), math.nan, -1)
        self.evaluated = 0
        self.feasible = 0

    def visit(self, levels: list[int], table: ClassTable, last: int) -> None:
        if self._evaluate(levels, table):
            return
        space = self.space
        for column in range(last, len(levels)):
            level = levels[column]
            if level == space.max_levels[column]:
                continue
            child = levels.copy()
            child[column] += 1
            if not self.metric.bound_needs_classes and self._beyond(self.metric.bound(child, None, space.columns)):
                continue
            self.visit(child, space.roll_up(table, column, level), column)

    def _evaluate(self, levels: list[int], table: ClassTable) -> bool:
        """Scores the node; True when its subtree can be skipped."""
        self.evaluated += 1
        outliers = np.zeros(len(table.sizes), dtype=bool)
        for check, histogram in self.checks:
            outliers |= check(table.sizes, None if histogram is None else table.histograms[histogram])
        suppressed = int(table.sizes[outliers].sum())
        feasible = suppressed <= self.max_suppressed
        if self.fewest.suppressed < 0 or suppressed < self.fewest.suppressed:
            self.fewest = Candidate(tuple(levels), math.nan, suppressed)
        bound = self.metric.bound(levels, table, self.space.columns)
        if feasible:
            self.feasible += 1
            loss = self.metric.loss(levels, table, outliers, self.space.columns)
            self._offer(levels, loss, suppressed)
            if self.metric.monotone:
                return True
        return self._beyond(bound)

    def _beyond(self, bound: float) -> bool:
        return self.best is not None and bound > self.best.loss + _TIE * max(1.0, abs(self.best.loss))

    def _offer(self, levels: list[int], loss: float, suppressed: int) -> None:
        caller = [0] * len(levels)
        for column, level in zip(self.order, levels, strict=True):
            caller[column] = level
        rank = (sum(levels), tuple(caller))
        best = self.best
        if best is not None:
            tolerance = _TIE * max(1.0, abs(best.loss))
            if loss > best.loss + tolerance or (loss >= best.loss - tolerance and rank >= self.best_rank):
                return
        self.best = Candidate(tuple(levels), loss, suppressed)
        self.best_rank = rank


def _group(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group rows of equal keys: (group of each row, the keys of each group)."""
    if keys.shape[1] == 1:
        group, unique = pd.factorize(keys[:, 0])
        return group, unique.reshape(-1, 1)
    combined = np.zeros(len(keys), dtype=np.int64)
    for part in range(keys.shape[1]):
        codes, unique = pd.factorize(keys[:, part])
        # both factors are below the row count, so the product stays far inside int64
        combined, _ = pd.factorize(combined * len(unique) + codes)
    representative = np.zeros(combined.max() + 1 if len(combined) else 0, dtype=np.int64)
    representative[combined] = np.arange(len(keys))
    return combined, keys[representative]


def _rebin(group: np.ndarray, count: int, histogram: np.ndarray) -> np.ndarray:
    size = histogram.shape[1]
    index = (group[:, None] * size + np.arange(size)).ravel()
    flat = np.bincount(index, weights=histogram.ravel(), minlength=count * size)
    return flat.astype(np.int64).reshape(count, size)
