"""Rows from table scans (graph/scan.py): which statements a scan may answer, and that the scans join into
exactly the rows the match would bind — a row per combination of nodes and relationships, none where a
relationship is missing, one per parallel relationship."""

from __future__ import annotations

import collections
import itertools

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graph.catalog import QUERIES, return_items
from graph.scan import Hop, NotScannable, assemble, plan_of

# A chain, a branch off its middle and an arrow against the chain's direction: every way a hop meets the
# aliases already joined.
_SHAPE = """MATCH (it:Item)-[:item_of]->(rx:Rx)-[:in_encounter]->(e:Enc), (it)-[:of_drug]->(g:Drug),
                  (e)<-[:cites]-(d:Doc)
            WHERE rx.at >= $slice_from AND rx.at < $slice_to /*narrow*/
            RETURN rx.key AS prescription, it.dose AS dose, g.key AS drug, e.key AS encounter"""
# A relationship that closes a cycle joins two aliases already bound; the window on a leaf; a node reached
# late that must carry a required value.
_CYCLE = """MATCH (it:Item)-[:item_of]->(rx:Rx)-[:in_encounter]->(e:Enc), (it)-[:seen_in]->(e), (it)-[:of_drug]->(g:Drug)
            WHERE g.at >= $slice_from AND g.at < $slice_to AND e.class = 'Inpatient'
            RETURN it.key AS item, e.key AS encounter, g.dose AS dose"""


def test_a_plan_reads_aliases_hops_in_stored_direction_columns_and_window() -> None:
    plan = plan_of(_SHAPE)
    assert plan.labels == {"it": "Item", "rx": "Rx", "e": "Enc", "g": "Drug", "d": "Doc"}
    assert plan.hops == (Hop("it", "item_of", "rx"), Hop("rx", "in_encounter", "e"), Hop("it", "of_drug", "g"),
                         Hop("d", "cites", "e"))
    assert plan.columns == {"prescription": ("rx", "key"), "dose": ("it", "dose"), "drug": ("g", "key"),
                            "encounter": ("e", "key")}
    assert plan.window == ("rx", "at")
    assert plan.scanned == ["it", "rx", "e", "g"]  # d binds through its relationship alone
    assert plan.properties("rx") == ["key"]


def test_a_plan_reads_the_texts_a_statement_requires() -> None:
    plan = plan_of("""MATCH (s:Enc)-[:of_patient]->(r:Res) WHERE s.class = 'Inpatient' AND s.at >= $slice_from
                      AND s.at < $slice_to AND r.state = 'MATCH' RETURN s.key AS stay""")
    assert plan.window == ("s", "at")
    assert plan.required("s") == {"class": "Inpatient"} and plan.required("r") == {"state": "MATCH"}
    assert plan.scanned == ["s", "r"]  # r returns nothing, but its table is scanned for the required value


@pytest.mark.parametrize("cypher, reason", [
    ("MATCH (a:A) OPTIONAL MATCH (a)-[:r]->(b:B) RETURN a.key AS a, b.key AS b", "OPTIONAL"),
    ("MATCH (a:A)-[:r]->(b:B) WITH a, count(b) AS n RETURN a.key AS a, n", "WITH"),
    ("MATCH (a:A)-[:r]->(b:B) RETURN a.key AS a ORDER BY a", "ORDER"),
    ("MATCH (a:A {key: $key})-[:r]->(b:B) RETURN b.key AS b", "pattern"),
    ("MATCH (a:A)-[:r]->(b:B) WHERE b.class <> 'X' RETURN a.key AS a", "WHERE"),
    ("MATCH (a:A)-[:r]->(b:B) WHERE b.class = 'X' OR b.class = 'Y' RETURN a.key AS a", "WHERE"),
    ("MATCH (a:A)-[:r]->(b:B) WHERE a.t >= $slice_from RETURN a.key AS a", "both"),
    ("MATCH (a:A)-[:r]->(b:B) WHERE a.t >= $slice_from AND b.t < $slice_to RETURN a.key AS a", "WHERE"),
    ("MATCH (a:A)-[:r]->(b:B) RETURN a.key AS a, a.x + 1 AS y", "not a property"),
    ("MATCH (a:A)-[:r]->(b) RETURN a.key AS a", "label"),
    ("MATCH (a:A)-[:r]-(b:B) RETURN a.key AS a", "direction"),
    ("MATCH (a:A)-[:r]->(x:X)<-[:r]-(b:B) RETURN a.key AS a, b.key AS b", "twice"),
    ("MATCH (a:A)-[:r]->(b:B), (c:C)-[:s]->(d:D) RETURN a.key AS a, c.key AS c", "connected"),
    ("MATCH (a:A)-[:r*1..2]->(b:B) RETURN a.key AS a", "pattern"),
])
def test_statements_a_scan_cannot_answer_are_refused_with_the_reason(cypher: str, reason: str) -> None:
    with pytest.raises(NotScannable, match=reason):
        plan_of(cypher)


def test_every_query_declared_scan_has_a_plan_and_a_sliced_one_scans_its_anchor_in_the_window() -> None:
    scanned = [q for q in QUERIES.values() if q.scan]
    assert len(scanned) >= 3
    for q in scanned:
        plan = plan_of(q.cypher)
        assert list(plan.columns) == list(return_items(q.cypher))
        if q.slice_by:
            assert plan.window and plan.labels[plan.window[0]] == q.slice_by.cls and plan.window[1] == q.slice_by.prop


_LABELS = {"it": "Item", "rx": "Rx", "e": "Enc", "g": "Drug", "d": "Doc"}


def _reference(plan, sizes: dict[str, int], props: dict[str, list[int]], edges: list[list[tuple[int, int]]],
               chosen: dict[str, list[bool]]) -> collections.Counter:
    """The match, bound the slow way: every assignment of nodes to aliases, once per combination of
    relationships joining them. ``chosen[label]`` says which nodes lie in the window or hold the required
    value, for the aliases that have one."""
    out: collections.Counter = collections.Counter()
    aliases = list(plan.labels)
    for nodes in itertools.product(*(range(sizes[plan.labels[a]]) for a in aliases)):
        bound = dict(zip(aliases, nodes, strict=True))
        if any(not chosen[plan.labels[a]][bound[a]] for a in _filtered(plan)):
            continue
        times = 1
        for hop, pairs in zip(plan.hops, edges, strict=True):
            times *= pairs.count((bound[hop.source], bound[hop.target]))
        if times:
            row = tuple(props[plan.labels[a]][bound[a]] if p == "dose" else f"{a}{bound[a]}"
                        for a, p in plan.columns.values())
            out[row] += times
    return out


@pytest.mark.parametrize("shape", [_SHAPE, _CYCLE], ids=["branches", "cycle"])
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_scans_join_into_exactly_the_rows_the_match_binds(shape: str, data: st.DataObject) -> None:
    plan = plan_of(shape)
    sizes = {label: data.draw(st.integers(0, 3), label) for label in _LABELS.values()}
    props = {label: data.draw(st.lists(st.integers(0, 2), min_size=n, max_size=n)) for label, n in sizes.items()}
    chosen = {label: data.draw(st.lists(st.booleans(), min_size=n, max_size=n)) for label, n in sizes.items()}
    edges = []
    for hop in plan.hops:
        ends = st.tuples(st.integers(0, max(sizes[plan.labels[hop.source]] - 1, 0)),
                         st.integers(0, max(sizes[plan.labels[hop.target]] - 1, 0)))
        pairs = data.draw(st.lists(ends, max_size=5)) if sizes[plan.labels[hop.source]] and \
            sizes[plan.labels[hop.target]] else []
        edges.append(pairs)  # repeats are parallel relationships
    nodes = {}
    for alias in plan.scanned:
        label = plan.labels[alias]
        keep = [i for i in range(sizes[label]) if alias not in _filtered(plan) or chosen[label][i]]
        keep = data.draw(st.permutations(keep))  # scans come in any order
        columns = {"_id": pa.array(keep, pa.int64())}
        for prop in plan.properties(alias):
            columns[prop] = pa.array([props[label][i] if prop == "dose" else f"{alias}{i}" for i in keep],
                                     pa.int64() if prop == "dose" else pa.string())
        nodes[alias] = pa.table(columns)
    hops = [pa.table({"source": pa.array([s for s, _ in pairs], pa.int64()),
                      "target": pa.array([t for _, t in pairs], pa.int64())}) for pairs in edges]
    rows = assemble(plan, nodes, hops)
    assert rows.column_names == list(plan.columns)
    got = collections.Counter(tuple(r.values()) for r in rows.to_pylist())
    assert got == _reference(plan, sizes, props, edges, chosen)


def _filtered(plan) -> set[str]:
    """The aliases whose scans hold only some nodes: the window's and those with a required value."""
    return {a for a in plan.labels if (plan.window and plan.window[0] == a) or plan.required(a)}
