"""``anonymize``: the optimal full-domain generalisation of a table under privacy models, with suppression."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from services.anonymity.errors import InvalidConfiguration, InvalidPrivacyModel, NoSolution, VerificationFailed
from services.anonymity.hierarchy import TOP, Hierarchy
from services.anonymity.lattice import ClassTable, SearchStats, Space, search
from services.anonymity.metrics import Columns, Metric, resolve_metric
from services.anonymity.models import PrivacyModel, SensitiveDomain
from services.anonymity.verify import Verification, verify

Suppression = Literal["remove", "mark"]


@dataclass(frozen=True)
class AnonymizationResult:
    data: pd.DataFrame
    """The released table: quasi-identifiers generalised, suppressed rows removed or shown as ``*``; the input's
    index and other columns are kept."""
    quasi_identifiers: tuple[str, ...]
    node: tuple[int, ...]
    """The generalisation level of each quasi-identifier, in ``quasi_identifiers`` order."""
    loss: float
    relative_loss: float
    """``loss`` rescaled so that the original data (nothing suppressed) is 0 and every column at its top level is 1.
    Non-monotone metrics can exceed 1 when suppression costs more than full generalisation."""
    metric: str
    suppressed: int
    max_suppressed: int
    suppressed_rows: pd.Series
    """True for each suppressed input row (indexed like the input)."""
    class_sizes: pd.Series
    """Equivalence-class size → number of released classes of that size."""
    verification: Verification
    stats: SearchStats

    @property
    def levels(self) -> dict[str, int]:
        return dict(zip(self.quasi_identifiers, self.node, strict=True))


def anonymize(data: pd.DataFrame, hierarchies: Mapping[str, Hierarchy], models: PrivacyModel | Sequence[PrivacyModel],
              suppression_limit: float = 0.0, metric: str | Metric = "entropy", suppressed: Suppression = "remove",
              strict: bool = True, max_nodes: int = 1_000_000) -> AnonymizationResult:
    """Find the generalisation levels (one per quasi-identifier, the keys of ``hierarchies`` in order) with the
    least information loss under which every equivalence class satisfies ``models``, classes that do not being
    suppressed as long as at most ``floor(suppression_limit × rows)`` records are.

    ``metric`` is ``"entropy"``, ``"nm_entropy"``, ``"dm_star"`` or ``"dm"`` (see ``metrics``). ``suppressed`` says
    whether suppressed rows are dropped from the output or kept with every quasi-identifier ``*``. The output is
    always verified independently (``result.verification``); with ``strict`` a failed verification raises
    VerificationFailed. Raises NoSolution when no levels work within the limit, InvalidConfiguration when the
    lattice has more than ``max_nodes`` nodes (the search is exact, so its worst case visits every one).
    """
    models = [models] if isinstance(models, PrivacyModel) else list(models)
    quasi = _check_call(data, hierarchies, models, suppression_limit, suppressed)
    nodes = math.prod(hierarchies[c].height for c in quasi)
    if nodes > max_nodes:
        raise InvalidConfiguration(
            f"泛化格过大 the lattice has {nodes} nodes, more than max_nodes={max_nodes}: use fewer quasi-identifiers "
            f"or shallower hierarchies, or raise max_nodes", nodes=nodes, max_nodes=max_nodes,
        )
    metric = resolve_metric(metric)
    problem = _Problem(data, {c: hierarchies[c] for c in quasi}, models)
    n = len(data)
    max_suppressed = math.floor(suppression_limit * n + 1e-9)

    outcome = search(problem.space(problem.search_order), problem.checks, metric, max_suppressed,
                     problem.search_order)
    if outcome.best is None:
        fewest = outcome.fewest_suppressed
        node = _caller_order(fewest.levels, problem.search_order)
        raise NoSolution(
            f"无可行匿名方案 no generalisation satisfies {', '.join(m.label for m in models)} within the suppression "
            f"limit of {max_suppressed} records: the best node {node} must suppress {fewest.suppressed} "
            f"(raise suppression_limit to at least {math.ceil(fewest.suppressed / n * 1e4) / 1e4:.4f}, or relax "
            f"the models)",
            max_suppressed=max_suppressed, min_suppressed=fewest.suppressed, node=list(node),
        )
    node = _caller_order(outcome.best.levels, problem.search_order)
    output, hidden, class_sizes = problem.release(node, suppressed)

    caller = problem.space(range(len(quasi)))
    low = _loss_at(caller, [0] * len(quasi), metric)
    high = _loss_at(caller, [hierarchies[c].max_level for c in quasi], metric)
    relative = (outcome.best.loss - low) / (high - low) if high > low else 0.0

    verification = verify(data, output, hidden, problem.hierarchies, dict(zip(quasi, node, strict=True)), models,
                          max_suppressed)
    if strict and not verification.ok:
        raise VerificationFailed(
            f"匿名结果校验未通过 the output failed verification: {'; '.join(verification.problems)}",
            problems=list(verification.problems),
        )
    return AnonymizationResult(
        data=output, quasi_identifiers=tuple(quasi), node=node, loss=outcome.best.loss, relative_loss=relative,
        metric=metric.name, suppressed=int(hidden.sum()), max_suppressed=max_suppressed,
        suppressed_rows=pd.Series(hidden, index=data.index, name="suppressed"), class_sizes=class_sizes,
        verification=verification, stats=outcome.stats,
    )


class _Problem:
    """The data encoded for the search: hierarchy rows of every quasi-identifier value, codes of the sensitive
    values, the models' class checks."""

    def __init__(self, data: pd.DataFrame, hierarchies: dict[str, Hierarchy], models: list[PrivacyModel]):
        self.data, self.hierarchies = data, hierarchies
        self.quasi = list(hierarchies)
        self.rows = [h.row_index(data[c], c) for c, h in hierarchies.items()]
        self.counts = [np.bincount(r, minlength=len(h)) for r, h in zip(self.rows, hierarchies.values(), strict=True)]
        # Generalising the widest columns first shrinks the rolled-up class tables soonest.
        self.search_order = sorted(range(len(self.quasi)), key=lambda i: -int(np.count_nonzero(self.counts[i])))
        sensitive = list(dict.fromkeys(m.sensitive for m in models if m.sensitive is not None))
        domains: dict[str, SensitiveDomain] = {}
        self.sensitive_codes = []
        for column in sensitive:
            codes, labels = pd.factorize(data[column].astype(str), sort=True)
            domains[column] = SensitiveDomain(column, tuple(labels), np.bincount(codes, minlength=len(labels)))
            self.sensitive_codes.append(codes.astype(np.int64))
        self.sensitive_sizes = [len(domains[c].values) for c in sensitive]
        self.checks = [(m.check(domains.get(m.sensitive)), None if m.sensitive is None else sensitive.index(m.sensitive))
                       for m in models]

    def space(self, order: Sequence[int], levels: Sequence[int] | None = None) -> Space:
        """The search space over the columns in ``order``, its bottom being ``levels`` (caller order; default 0)."""
        hierarchies = [self.hierarchies[self.quasi[i]] for i in order]
        columns = Columns(tuple(hierarchies), tuple(self.counts[i] for i in order), len(self.data))
        levels = levels or [0] * len(self.quasi)
        codes = [self.hierarchies[self.quasi[i]].codes(levels[i])[self.rows[i]] for i in order]
        return Space(codes, columns, self.sensitive_codes, self.sensitive_sizes)

    def release(self, node: tuple[int, ...], suppressed: Suppression) -> tuple[pd.DataFrame, np.ndarray, pd.Series]:
        """The output table at ``node``, which input rows are suppressed, and the released class sizes."""
        space = self.space(range(len(self.quasi)), node)
        classes = space.bottom
        outliers = np.zeros(len(classes.sizes), dtype=bool)
        for check, histogram in self.checks:
            outliers |= check(classes.sizes, None if histogram is None else classes.histograms[histogram])
        hidden = outliers[space.record_class]
        output = self.data.copy()
        for column, (name, level) in enumerate(zip(self.quasi, node, strict=True)):
            labels = np.asarray(self.hierarchies[name].labels(level), dtype=object)
            output[name] = labels[classes.codes(column)[space.record_class]]
        if suppressed == "remove":
            output = output.iloc[np.flatnonzero(~hidden)]
        else:
            output.loc[hidden, self.quasi] = TOP
        class_sizes = pd.Series(classes.sizes[~outliers]).value_counts().sort_index()
        return output, hidden, class_sizes.rename_axis("size").rename("classes")


def _check_call(data: pd.DataFrame, hierarchies: Mapping[str, Hierarchy], models: list[PrivacyModel],
                suppression_limit: float, suppressed: str) -> list[str]:
    if not isinstance(data, pd.DataFrame) or data.empty:
        raise InvalidConfiguration("数据须为非空 DataFrame data must be a non-empty pandas DataFrame")
    quasi = list(hierarchies)
    if not quasi:
        raise InvalidConfiguration("至少需要一个准标识符 give a hierarchy for at least one quasi-identifier")
    unknown = [c for c in quasi if c not in data.columns]
    if unknown:
        raise InvalidConfiguration(f"数据中没有列 no column {unknown[0]!r} in the data (columns: {list(data.columns)})",
                                   column=unknown[0])
    for column in quasi:
        if not isinstance(hierarchies[column], Hierarchy):
            raise InvalidConfiguration(f"列 {column!r} 的层级须为 Hierarchy the hierarchy for {column!r} must be a "
                                       f"Hierarchy, got {type(hierarchies[column]).__name__}", column=column)
    if not models or not all(isinstance(m, PrivacyModel) for m in models):
        raise InvalidPrivacyModel("须给出隐私模型 give one or more privacy models (KAnonymity, …)")
    for model in models:
        if model.sensitive is not None and model.sensitive not in data.columns:
            raise InvalidPrivacyModel(f"数据中没有敏感属性列 no sensitive column {model.sensitive!r} in the data",
                                      sensitive=model.sensitive)
        if model.sensitive in hierarchies:
            raise InvalidPrivacyModel(f"敏感属性不能同时是准标识符 {model.sensitive!r} cannot be both sensitive and a "
                                      f"quasi-identifier", sensitive=model.sensitive)
    if isinstance(suppression_limit, bool) or not isinstance(suppression_limit, int | float) \
            or not 0 <= suppression_limit <= 1:
        raise InvalidConfiguration(f"抑制上限须在0到1之间 suppression_limit must be a fraction in [0, 1], got "
                                   f"{suppression_limit!r}", suppression_limit=repr(suppression_limit))
    if suppressed not in ("remove", "mark"):
        raise InvalidConfiguration(f"suppressed 须为 'remove' 或 'mark' must be 'remove' or 'mark', got {suppressed!r}")
    return quasi


def _caller_order(levels: Sequence[int], order: Sequence[int]) -> tuple[int, ...]:
    caller = [0] * len(levels)
    for column, level in zip(order, levels, strict=True):
        caller[column] = level
    return tuple(caller)


def _loss_at(space: Space, levels: list[int], metric: Metric) -> float:
    table: ClassTable = space.bottom
    current = [0] * len(levels)
    for column, target in enumerate(levels):
        while current[column] < target:
            table = space.roll_up(table, column, current[column])
            current[column] += 1
    return metric.loss(levels, table, np.zeros(len(table.sizes), dtype=bool), space.columns)
