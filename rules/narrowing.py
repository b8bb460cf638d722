"""What a rule's condition lets the graph engine drop before the rows are handed over.

:func:`narrowing` translates a compiled ``rule-engine`` condition into a predicate over its query's
narrowable columns (``graph/narrowing.py``) that holds, or is null, on every row where the condition
holds *or cannot be evaluated*. The store adds it to the query; the rule engine then judges the rows
that come back exactly as it judged all of them before, so findings, explanations and evaluation
errors are unchanged; only rows on which the condition is certainly false stay in the engine.

Each sub-expression is translated into three predicates, each a necessary condition: ``holds`` (the
sub-expression is true or fails), ``fails`` (false or fails) and ``errs`` (fails). ``and``/``or``
combine them as rule-engine evaluates, left to right with short-circuit; ``not`` swaps ``holds`` and
``fails``. Whatever is not translated (a column that cannot narrow the query, date arithmetic, a
function) is ``True`` in all three: it says nothing. Only comparisons whose meaning is the same in
rule-engine and in Cypher are translated: equality of strings, numbers and flags; order of numbers;
null tests; membership of a string in a constant list of strings.
"""

from __future__ import annotations

import decimal
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import rule_engine.ast as ast

from graph.narrowing import (
    Column,
    Compare,
    Concat,
    InList,
    IsNull,
    Literal,
    Operand,
    Predicate,
    all_of,
    any_of,
)
from rules.model import Rule

_KINDS = {"string": "str", "integer": "num", "double": "num", "boolean": "flag"}
_EXACT_LIMIT = 2 ** 52
_NEGATED = {"lt": ">=", "le": ">", "gt": "<=", "ge": "<"}
_ORDER = {"lt": "<", "le": "<=", "gt": ">", "ge": ">="}


@dataclass(frozen=True)
class _Cond:
    holds: Predicate
    fails: Predicate
    errs: Predicate


_UNKNOWN = _Cond(True, True, True)


@dataclass(frozen=True)
class _Operand:
    value: Operand | None  # None: the null literal
    kind: str  # str | num | flag | null
    errs: Predicate = False
    """Where evaluating it fails: a string sum with a null part (rule-engine cannot add None)."""


def narrowing(rule: Rule, columns: Iterable[str]) -> Predicate:
    """A predicate over ``columns`` (a query's narrowable columns) that every row on which the rule's
    condition holds, or fails to evaluate, satisfies. ``True`` when the condition says nothing about them."""
    if rule.compiled is None:
        return True
    kinds = {c: _KINDS[rule.columns[c]] for c in columns if rule.columns.get(c) in _KINDS}
    return _Translator(rule, kinds).cond(rule.compiled.statement.expression).holds


def _number(value: Any) -> Literal | None:
    """A numeric literal Cypher compares as rule-engine does (rule-engine reads numbers as Decimal)."""
    if isinstance(value, bool):
        return None
    d = decimal.Decimal(repr(value)) if isinstance(value, float) else decimal.Decimal(value)
    if not d.is_finite():
        return None
    if d == d.to_integral_value() and abs(d) < _EXACT_LIMIT:
        return Literal(int(d))
    f = float(d)
    return Literal(f) if decimal.Decimal(repr(f)) == d else None


class _Translator:
    def __init__(self, rule: Rule, kinds: dict[str, str]) -> None:
        self.rule = rule
        self.kinds = kinds

    # ---- values
    def operand(self, node: Any) -> _Operand | list[str] | None:
        """A column, a literal or a string sum; a constant list of strings as a list; None if untranslatable."""
        if isinstance(node, ast.SymbolExpression):
            if node.scope is not None:
                return None
            if node.name in self.rule.columns:
                kind = self.kinds.get(node.name)
                return _Operand(Column(node.name), kind) if kind else None
            return self.constant(self.rule.constants.get(node.name)) if node.name in self.rule.constants else None
        if isinstance(node, ast.NullExpression):
            return _Operand(None, "null")
        if isinstance(node, (ast.StringExpression, ast.FloatExpression, ast.BooleanExpression)):
            return self.constant(node.value)
        if isinstance(node, ast.ArrayExpression):
            items = [i.value for i in node.value if isinstance(i, ast.StringExpression)]
            return items if len(items) == len(node.value) else None
        if isinstance(node, ast.AddExpression) and node.type == "add":
            left, right = self.operand(node.left), self.operand(node.right)
            if not (isinstance(left, _Operand) and isinstance(right, _Operand)) or left.kind != "str" \
                    or right.kind != "str":
                return None
            parts = tuple(p for side in (left.value, right.value)
                          for p in (side.parts if isinstance(side, Concat) else (side,)))
            nulls = [IsNull(p) for p in parts if isinstance(p, Column)]
            return _Operand(Concat(parts), "str", any_of(left.errs, right.errs, *nulls))
        return None

    @staticmethod
    def constant(value: Any) -> _Operand | list[str] | None:
        if value is None:
            return _Operand(None, "null")
        if isinstance(value, bool):
            return _Operand(Literal(value), "flag")
        if isinstance(value, str):
            return _Operand(Literal(value), "str")
        if isinstance(value, (int, float, decimal.Decimal)):
            literal = _number(value)
            return _Operand(literal, "num") if literal else None
        if isinstance(value, (list, tuple, set, frozenset)) and all(isinstance(v, str) for v in value):
            return sorted(value)
        return None

    # ---- conditions
    def cond(self, node: Any) -> _Cond:
        method = getattr(self, f"_{type(node).__name__}", None)
        return method(node) if method else _UNKNOWN

    def _LogicExpression(self, node: ast.LogicExpression) -> _Cond:
        a, b = self.cond(node.left), self.cond(node.right)
        if node.type == "and":  # b is evaluated only when a is true
            return _Cond(all_of(a.holds, any_of(b.holds, a.errs)), any_of(a.fails, b.fails), any_of(a.errs, b.errs))
        if node.type == "or":  # b is evaluated only when a is false
            return _Cond(any_of(a.holds, b.holds), all_of(a.fails, any_of(b.fails, a.errs)), any_of(a.errs, b.errs))
        return _UNKNOWN

    def _UnaryExpression(self, node: ast.UnaryExpression) -> _Cond:
        if node.type != "not":
            return _UNKNOWN
        inner = self.cond(node.right)
        return _Cond(inner.fails, inner.holds, inner.errs)

    def _BooleanExpression(self, node: ast.BooleanExpression) -> _Cond:
        return _Cond(bool(node.value), not node.value, False)

    def _SymbolExpression(self, node: ast.SymbolExpression) -> _Cond:
        o = self.operand(node)
        if not isinstance(o, _Operand) or o.kind != "flag" or not isinstance(o.value, Column):
            return _UNKNOWN
        # a flag read as a truth value: null is false (rule-engine's truthiness), never an error
        return _Cond(Compare(o.value, "=", Literal(True)), any_of(Compare(o.value, "=", Literal(False)),
                                                                  IsNull(o.value)), False)

    def _ComparisonExpression(self, node: ast.ComparisonExpression) -> _Cond:
        if node.type not in ("eq", "ne"):
            return _UNKNOWN
        left, right = self.operand(node.left), self.operand(node.right)
        if not isinstance(left, _Operand) or not isinstance(right, _Operand):
            return _UNKNOWN
        equal = node.type == "eq"
        if "null" in (left.kind, right.kind):
            other = right if left.kind == "null" else left
            if other.kind == "null" or not isinstance(other.value, Column):
                return _UNKNOWN
            same = IsNull(other.value)
            differs = IsNull(other.value, null=False)
        elif left.kind == right.kind and (isinstance(left.value, Column | Concat) or
                                          isinstance(right.value, Column | Concat)):
            same, differs = Compare(left.value, "=", right.value), Compare(left.value, "<>", right.value)
        else:
            return _UNKNOWN
        errs = any_of(left.errs, right.errs)
        holds, fails = (same, differs) if equal else (differs, same)
        return _Cond(any_of(errs, holds), any_of(errs, fails), errs)

    def _ArithmeticComparisonExpression(self, node: ast.ArithmeticComparisonExpression) -> _Cond:
        left, right = self.operand(node.left), self.operand(node.right)
        if not isinstance(left, _Operand) or not isinstance(right, _Operand) or left.kind != "num" \
                or right.kind != "num" or node.type not in _ORDER:
            return _UNKNOWN
        # comparing a null fails in rule-engine; in Cypher it is null, which keeps the row
        errs = any_of(*(IsNull(o.value) for o in (left, right) if isinstance(o.value, Column)))
        return _Cond(Compare(left.value, _ORDER[node.type], right.value),
                     Compare(left.value, _NEGATED[node.type], right.value), errs)

    def _ContainsExpression(self, node: ast.ContainsExpression) -> _Cond:
        container, member = self.operand(node.container), self.operand(node.member)
        if not isinstance(container, list) or not isinstance(member, _Operand) or member.kind != "str" \
                or not isinstance(member.value, Column | Concat):
            return _UNKNOWN
        values = tuple(container)
        return _Cond(any_of(member.errs, InList(member.value, values)),
                     any_of(member.errs, InList(member.value, values, inside=False)), member.errs)
