"""Narrowing a named query to the rows a condition may hold for, inside the engine.

A supervision rule's query returns every candidate row and the rule engine judges each one. At
10M encounters most of the time went into handing those rows over, not into the joins: on 1.08M
prescription items one four-hop match took 0.4 s to count and 12.8 s to return 18 columns. A
:data:`Predicate` is a condition over a query's returned columns that every row the rule could
hold for satisfies (a *necessary* condition, built in ``rules/narrowing.py``); the store adds it to
the statement where the query marks :data:`NARROW`, so only those rows come back. It never decides
a finding: the rule engine still judges each returned row.

Predicates are trees of ``AllOf``/``AnyOf`` over comparisons, with no negation. The store renders a
predicate as ``coalesce(<predicate>, true)``: a null from the data (a missing property) keeps the
row. In a formula without negation a null can only turn a result from false to null, never from
true to false, so nulls are always on the safe side. Values travel as parameters, never inside the
statement's text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NARROW = "/*narrow*/"
"""Where a narrowable statement takes ``AND <predicate>``: after a ``WHERE`` in whose scope every
narrowable column's expression is bound. Left in place (a comment) the statement returns every row."""


@dataclass(frozen=True)
class Column:
    name: str


@dataclass(frozen=True)
class Literal:
    value: str | int | float | bool


@dataclass(frozen=True)
class Concat:
    """Strings joined (``a + '|' + b``). The caller guards its columns against null: LadybugDB reads a
    null as the empty string here, Neo4j and the rule engine do not."""

    parts: tuple[Column | Literal, ...]


Operand = Column | Literal | Concat


@dataclass(frozen=True)
class Compare:
    left: Operand
    op: str  # = <> < <= > >=
    right: Operand


@dataclass(frozen=True)
class IsNull:
    column: Column
    null: bool = True  # False: IS NOT NULL


@dataclass(frozen=True)
class InList:
    operand: Operand
    values: tuple[str, ...]
    inside: bool = True  # False: NOT IN


@dataclass(frozen=True)
class AllOf:
    parts: tuple[Predicate, ...]


@dataclass(frozen=True)
class AnyOf:
    parts: tuple[Predicate, ...]


Predicate = Compare | IsNull | InList | AllOf | AnyOf | bool
"""``True`` holds for every row (nothing to narrow), ``False`` for none."""

_OPS = frozenset({"=", "<>", "<", "<=", ">", ">="})


def all_of(*parts: Predicate) -> Predicate:
    """The conjunction, simplified: ``True`` parts dropped, ``False`` absorbs, nested conjunctions flattened."""
    return _joined(parts, AllOf, absorbing=False)


def any_of(*parts: Predicate) -> Predicate:
    """The disjunction, simplified: ``True`` absorbs, ``False`` parts dropped, nested disjunctions flattened."""
    return _joined(parts, AnyOf, absorbing=True)


def _joined(parts: tuple[Predicate, ...], kind: type[AllOf] | type[AnyOf], *, absorbing: bool) -> Predicate:
    flat: list[Predicate] = []
    for p in parts:
        if p is absorbing:
            return absorbing
        if p is not (not absorbing):
            flat.extend(p.parts if isinstance(p, kind) else (p,))
    flat = list(dict.fromkeys(flat))
    return (not absorbing) if not flat else flat[0] if len(flat) == 1 else kind(tuple(flat))


def columns_of(p: Predicate | Operand) -> set[str]:
    """The column names a predicate reads."""
    if isinstance(p, Column):
        return {p.name}
    if isinstance(p, Concat):
        return set().union(*(columns_of(x) for x in p.parts))
    if isinstance(p, Compare):
        return columns_of(p.left) | columns_of(p.right)
    if isinstance(p, IsNull):
        return {p.column.name}
    if isinstance(p, InList):
        return columns_of(p.operand)
    if isinstance(p, AllOf | AnyOf):
        return set().union(*(columns_of(x) for x in p.parts))
    return set()


class _Renderer:
    def __init__(self, expressions: dict[str, str]) -> None:
        self.expressions = expressions
        self.params: dict[str, Any] = {}

    def value(self, v: Any) -> str:
        name = f"narrow_{len(self.params)}"
        self.params[name] = v
        return f"${name}"

    def operand(self, o: Operand) -> str:
        if isinstance(o, Column):
            return f"({self.expressions[o.name]})"
        if isinstance(o, Literal):
            return self.value(o.value)
        return "(" + " + ".join(self.operand(p) for p in o.parts) + ")"

    def predicate(self, p: Predicate) -> str:
        if p is True or p is False:
            return "true" if p else "false"
        if isinstance(p, Compare):
            if p.op not in _OPS:
                raise ValueError(f"unknown comparison {p.op!r}")
            return f"{self.operand(p.left)} {p.op} {self.operand(p.right)}"
        if isinstance(p, IsNull):
            return f"{self.operand(p.column)} IS {'' if p.null else 'NOT '}NULL"
        if isinstance(p, InList):
            inside = f"{self.operand(p.operand)} IN {self.value(list(p.values))}"
            return inside if p.inside else f"NOT {inside}"
        joiner = " AND " if isinstance(p, AllOf) else " OR "
        return "(" + joiner.join(self.predicate(x) for x in p.parts) + ")"


def render(p: Predicate, expressions: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """``AND coalesce(<p>, true)`` for a statement's :data:`NARROW` mark, with its parameters.
    ``expressions`` maps each column the predicate reads to its Cypher expression."""
    missing = columns_of(p) - set(expressions)
    if missing:
        raise ValueError(f"columns {sorted(missing)} cannot narrow this query")
    r = _Renderer(expressions)
    return f"AND coalesce({r.predicate(p)}, true)", r.params
