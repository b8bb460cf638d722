"""Rows of a match assembled from whole-table scans, for named queries that return most of a large graph.

A supervision rule's query can return a row per encounter or per prescription item: 10M rows at the
scale the platform is built for. LadybugDB spends most of such a query returning the rows through its
joins, not finding them: at 1M encounters the practice statement took 2.3 s, while the encounters' own
columns took 0.4 s and each of its relationships, as pairs of node offsets, 0.15 s. A query declared
``scan=True`` (``graph.catalog.NamedQuery``) may therefore be answered by a store from one scan per node
table (the node's offset and the properties the query returns) and one per relationship (pairs of
offsets), joined here in DuckDB as the match would join them.

Only the simplest statements qualify, checked when the catalog is built (:func:`plan_of`): one MATCH of
single-hop chains over labelled nodes, a WHERE that is at most the slice bounds on the anchor and
properties equal to texts (and the narrowing mark, which a scan ignores: narrowing is only ever a
necessary condition), and a RETURN of
``alias.property`` columns. The statement stays the query's definition and what every other engine runs;
the contract tests hold the two to the same rows.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import pyarrow as pa

from graph.columnar import query_connection
from graph.narrowing import NARROW

_STATEMENT = re.compile(r"^\s*MATCH\s+(?P<pattern>.*?)(?:\s+WHERE\s+(?P<where>.*?))?\s+RETURN\s+.*$",
                        re.S | re.I)
_NODE = re.compile(r"\s*\((\w+)(?::(\w+))?\)")
_HOP = re.compile(r"\s*(<-|-)\[:(\w+)\](->|-)")
_COLUMN = re.compile(r"(\w+)\.(\w+)")
_FROM = re.compile(r"(\w+)\.(\w+)\s*>=\s*\$slice_from")
_TO = re.compile(r"(\w+)\.(\w+)\s*<\s*\$slice_to")
_EQUALS = re.compile(r"(\w+)\.(\w+)\s*=\s*'([^'\\]*)'")
_RESERVED = re.compile(r"\b(OPTIONAL|WITH|UNWIND|CALL|UNION|ORDER|LIMIT|SKIP|DISTINCT|count|collect)\b", re.I)


@dataclass(frozen=True)
class Hop:
    """One relationship of the match, oriented along the stored direction: ``source -[edge]-> target``."""

    source: str
    edge: str
    target: str


@dataclass(frozen=True)
class ScanPlan:
    labels: dict[str, str]
    """Alias → node label (a table of the graph)."""
    hops: tuple[Hop, ...]
    columns: dict[str, tuple[str, str]]
    """Returned column → (alias, property), in the statement's order."""
    window: tuple[str, str] | None
    """(alias, property) the statement bounds by ``$slice_from``/``$slice_to``, if it does."""
    equals: tuple[tuple[str, str, str], ...] = ()
    """(alias, property, text) the statement requires equal (``s.class = 'InpatientEncounter'``)."""

    def required(self, alias: str) -> dict[str, str]:
        """The properties of one alias the statement requires equal to a text: property → text."""
        return {prop: text for a, prop, text in self.equals if a == alias}

    def properties(self, alias: str) -> list[str]:
        """The properties of one alias the rows need, each once, in the order they are returned."""
        return list(dict.fromkeys(prop for a, prop in self.columns.values() if a == alias))

    @property
    def scanned(self) -> list[str]:
        """The aliases whose node table is scanned: those with a returned property, the window or a required
        value. The others are joined through their relationships alone, as a match that binds a node and
        returns nothing of it."""
        window = self.window[0] if self.window else None
        return [a for a in self.labels if self.properties(a) or a == window or self.required(a)]


_RETURN = re.compile(r"\bRETURN\b(?:\s+DISTINCT\b)?(.*?)(?:\bORDER\s+BY\b|\bLIMIT\b|$)", re.S | re.I)


def return_items(cypher: str) -> dict[str, str]:
    """The columns of a statement's last RETURN clause, in order: column name → expression."""
    clause = _RETURN.findall(cypher)
    if not clause:
        return {}
    items, depth, current = [], 0, ""
    for ch in clause[-1]:
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += ch
    items.append(current)
    out: dict[str, str] = {}
    for item in (i.strip() for i in items if i.strip()):
        expr, _, name = item.rpartition(" AS ")
        expr, name = (expr.strip(), name.strip()) if expr else (item, item)
        out[name] = expr
    return out


class NotScannable(ValueError):
    """The statement is not one of the simple matches a scan can answer (see the module notes)."""


@functools.cache
def plan_of(cypher: str) -> ScanPlan:
    """The scan plan of a statement, or :class:`NotScannable` saying why there is none."""
    found = _STATEMENT.match(cypher)
    if not found or _RESERVED.search(cypher):
        raise NotScannable("not a single MATCH … RETURN of properties (no OPTIONAL, WITH, aggregate or ORDER)")
    labels: dict[str, str] = {}
    hops: list[Hop] = []
    for chain in found["pattern"].split(","):
        pos, pending = 0, None  # pending: the alias before an open relationship, its arrows and type
        while pos < len(chain.rstrip()):
            node = _NODE.match(chain, pos)
            if not node:
                raise NotScannable(f"cannot read the pattern at '{chain[pos:].strip()[:40]}'")
            alias, label = node.groups()
            if label and labels.setdefault(alias, label) != label:
                raise NotScannable(f"'{alias}' carries two labels")
            if pending:
                before, arrow_in, edge, arrow_out = pending
                if (arrow_in == "<-") == (arrow_out == "->"):
                    raise NotScannable(f"relationship '{edge}' must have one direction")
                hops.append(Hop(before, edge, alias) if arrow_out == "->" else Hop(alias, edge, before))
            pos = node.end()
            hop = _HOP.match(chain, pos)
            pending = (alias, *hop.groups()) if hop else None
            pos = hop.end() if hop else pos
            if not hop and chain[pos:].strip():
                raise NotScannable(f"cannot read the pattern at '{chain[pos:].strip()[:40]}'")
        if pending:
            raise NotScannable("a relationship without an end node")
    unlabelled = ({h.source for h in hops} | {h.target for h in hops}) - set(labels)
    if unlabelled:
        raise NotScannable(f"nodes without a label: {sorted(unlabelled)}")
    edges = [h.edge for h in hops]
    if len(set(edges)) < len(edges):  # a match binds a relationship once; joined scans would not know that
        raise NotScannable("a relationship type occurs twice")
    window, equals = None, []
    where = (found["where"] or "").replace(NARROW, "").strip()
    bounds: dict[str, tuple[str, str]] = {}
    for term in re.split(r"\s+AND\s+", where, flags=re.I) if where else []:
        for kind, pattern in (("from", _FROM), ("to", _TO), ("equals", _EQUALS)):
            if (matched := pattern.fullmatch(term.strip())) and matched[1] in labels:
                if kind == "equals":
                    equals.append(matched.groups())
                else:
                    bounds[kind] = matched.group(1, 2)
                break
        else:
            raise NotScannable(f"the WHERE clause may only bound one property by $slice_from and $slice_to and "
                               f"require properties equal to texts, not '{term.strip()[:40]}'")
    if bounds:
        if bounds.get("from") != bounds.get("to"):
            raise NotScannable("the WHERE clause must bound one property by both $slice_from and $slice_to")
        window = bounds["from"]
    columns: dict[str, tuple[str, str]] = {}
    for name, expr in return_items(cypher).items():
        column = _COLUMN.fullmatch(expr)
        if not column or column[1] not in labels:
            raise NotScannable(f"returns '{expr}', not a property of a matched node")
        columns[name] = (column[1], column[2])
    plan = ScanPlan(labels, tuple(hops), columns, window, tuple(equals))
    _join_order(plan)  # a pattern in pieces would be a cartesian product
    return plan


def _join_order(plan: ScanPlan) -> tuple[str, list[Hop]]:
    """The alias the joins start from (the window's, else the first scanned one) and the hops in an order in
    which each touches an alias already joined."""
    start = plan.window[0] if plan.window else (plan.scanned or list(plan.labels))[0]
    joined, order, rest = {start}, [], list(plan.hops)
    while rest:
        hop = next((h for h in rest if h.source in joined or h.target in joined), None)
        if hop is None:
            raise NotScannable("the pattern is not connected")
        order.append(hop)
        rest.remove(hop)
        joined |= {hop.source, hop.target}
    if joined != set(plan.labels):
        raise NotScannable("the pattern is not connected")
    return start, order


def assemble(plan: ScanPlan, nodes: dict[str, pa.Table], hops: list[pa.Table]) -> pa.Table:
    """The match's rows from the scans: ``nodes[alias]`` holds ``_id`` (the node's offset in its table) and
    the alias's properties (:meth:`ScanPlan.properties`, in order), for each alias of :attr:`ScanPlan.scanned`;
    ``hops[i]`` holds ``source`` and ``target`` offsets of each relationship of ``plan.hops[i]``. Every node
    and relationship joins as in the match: a row per combination, none where a relationship is missing."""
    start, order = _join_order(plan)
    node_names = {alias: f"n_{alias}" for alias in nodes}
    hop_names = {hop: f"h{i}" for i, hop in enumerate(plan.hops)}
    bound = {start: f"{node_names[start]}._id"}
    joins = []
    for hop in order:
        h = hop_names[hop]
        ends = (("source", hop.source), ("target", hop.target))
        joins.append(f"JOIN {h} ON {' AND '.join(f'{h}.{end} = {bound[a]}' for end, a in ends if a in bound)}")
        for end, alias in ends:
            if alias not in bound:
                bound[alias] = f"{h}.{end}"
                if alias in nodes:
                    joins.append(f"JOIN {node_names[alias]} ON {node_names[alias]}._id = {h}.{end}")
    select = [f'{node_names[alias]}."{prop}" AS "{column}"' for column, (alias, prop) in plan.columns.items()]
    tables = {node_names[alias]: table for alias, table in nodes.items()}
    tables |= {hop_names[hop]: table for hop, table in zip(plan.hops, hops, strict=True)}
    con = query_connection()
    for name, table in tables.items():
        con.register(name, table)
    try:
        return con.sql(f"SELECT {', '.join(select)} FROM {node_names[start]} {' '.join(joins)}").to_arrow_table()
    finally:
        for name in tables:
            con.unregister(name)
