"""Rows of a match assembled from whole-table scans, for named queries that return most of a large graph.

A supervision rule's query can return a row per encounter or per prescription item: 10M rows at the
scale the platform is built for. LadybugDB spends most of such a query returning the rows through its
joins, not finding them: at 1M encounters the practice statement took 2.3 s, while the encounters' own
columns took 0.4 s and each of its relationships, as pairs of node offsets, 0.15 s. A query declared
``scan=True`` (``graph.catalog.NamedQuery``) may therefore be answered by a store from one scan per node
table (the node's offset and the properties the query returns) and one per relationship (pairs of
offsets), joined here as the match would join them, by indexing arrays of offsets (:func:`assemble`).

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

import numpy as np
import pyarrow as pa

from graph.columnar import one_chunk
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
    and relationship joins as in the match: a row per combination, none where a relationship is missing.

    Offsets are dense positions in a table, so each join is array indexing over offsets, not a hash join:
    a row carries one offset per alias through the joins and takes its properties once, at the end (at 10M
    prescription items, hash-joining the scans with their keys took 15.8 s in DuckDB)."""
    start, order = _join_order(plan)
    ends = {hop: (_offsets(table, "source"), _offsets(table, "target"))
            for hop, table in zip(plan.hops, hops, strict=True)}
    places = {alias: _places(_offsets(table, "_id")) for alias, table in nodes.items()}
    # a scan of every node of its table (no window, no required value) filters nothing; in offset order, as
    # most come, its rows are the offsets
    whole = {alias for alias in nodes if not plan.required(alias) and not (plan.window and plan.window[0] == alias)}
    in_order = {alias for alias in whole if np.array_equal(_offsets(nodes[alias], "_id"), np.arange(len(places[alias])))}
    bound = {start: _offsets(nodes[start], "_id")}  # the start is scanned: it is the window's or a returned alias
    for hop in order:
        near, far = (hop.source, hop.target) if hop.source in bound else (hop.target, hop.source)
        near_ends, far_ends = ends[hop] if near == hop.source else ends[hop][::-1]
        rows, edges = _expand(bound[near], near_ends)
        bound = {alias: offsets[rows] for alias, offsets in bound.items()}
        reached = far_ends[edges]
        if far in bound:  # the relationship closes a cycle of the pattern: it must join the nodes bound
            keep = bound[far] == reached
        else:
            bound[far] = reached
            keep = _place_of(places[far], reached) >= 0 if far in places and far not in whole else None
        if keep is not None and not keep.all():
            bound = {alias: offsets[keep] for alias, offsets in bound.items()}
    rows = {alias: bound[alias] if alias in in_order else _place_of(places[alias], bound[alias]) for alias in nodes}
    return pa.table({column: _taken(nodes[alias].column(prop), rows[alias])
                     for column, (alias, prop) in plan.columns.items()})


def _taken(values: pa.ChunkedArray, rows: np.ndarray) -> pa.Array:
    """A scan's column at the given rows. Texts and lists stay in the scan: the rows point at them (a
    dictionary array), since copying a text per row cost most of the assembly at 10M rows, and most of them
    (keys, names) are only read for the few rows a rule keeps."""
    if pa.types.is_string(values.type) or pa.types.is_list(values.type):
        # rows of every statement that reads the scan share its values (graph.columnar matches lookups on them)
        return pa.DictionaryArray.from_arrays(pa.array(rows, pa.int32()), one_chunk(values))
    return values.take(rows)


def _offsets(table: pa.Table, column: str) -> np.ndarray:
    return table.column(column).to_numpy().astype(np.int64, copy=False)


def _places(ids: np.ndarray) -> np.ndarray:
    """Row of each offset in a node scan, -1 for a node the scan left out (outside the window)."""
    places = np.full(int(ids.max()) + 1 if len(ids) else 0, -1, np.int64)
    places[ids] = np.arange(len(ids))
    return places


def _place_of(places: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Row in a node scan of each offset, -1 for a node it does not hold."""
    if not len(places):
        return np.full(len(offsets), -1, np.int64)
    inside = offsets < len(places)
    return np.where(inside, places[np.where(inside, offsets, 0)], -1)


def _expand(offsets: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each pairing of a row with a relationship whose end is the row's node: (row, relationship) indices,
    rows without one dropped, a row repeated for each of several (a compressed sparse row index of ``ends``)."""
    size = max(int(offsets.max()) if len(offsets) else 0, int(ends.max()) if len(ends) else 0) + 1
    per_node = np.bincount(ends, minlength=size)
    if len(per_node) == 0 or per_node.max() <= 1:  # at most one each (an item's prescription): a lookup
        edge_of = np.full(size, -1, np.int64)
        edge_of[ends] = np.arange(len(ends))
        edges = edge_of[offsets]
        rows = np.flatnonzero(edges >= 0)
        return rows, edges[rows]
    first = np.concatenate(([0], np.cumsum(per_node)[:-1]))
    sorted_edges = np.argsort(ends, kind="stable")
    counts = per_node[offsets]
    rows = np.repeat(np.arange(len(offsets)), counts)
    within = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
    return rows, sorted_edges[first[offsets][rows] + within]
