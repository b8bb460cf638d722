"""Column work in DuckDB: content hashes decide whether a re-loaded record changed; digests must equal those of
lookups; lookup tables join to a query's rows as a Cypher match would; rows pair as Cypher would compare them."""

from __future__ import annotations

import collections
import datetime as dt
import itertools

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graph.catalog import Counted, Pairs
from graph.columnar import Fallback, count_distinct, join_lookups, list_contains, pair_rows
from graph.store import content_hash
from ontology.validate import TEXT


def _frame() -> pd.DataFrame:
    return pd.DataFrame({
        "key": pd.Series(["R1", "R2", "R3"], dtype=TEXT),
        "name": pd.Series(["张三", None, ""], dtype=TEXT),
        "birth_date": pd.to_datetime(["1980-01-02", "1990-03-04", None]),
        "pregnant": pd.Series([True, None, False], dtype="boolean"),
        "subjects": [["02", "03"], None, []],
        "batch_id": pd.Series(["b1", "b1", "b1"], dtype=TEXT),
    })


def test_equal_rows_hash_equal_and_provenance_is_not_content() -> None:
    a, b = _frame(), _frame()
    b["batch_id"] = "b2"
    b["subjects"] = [np.array(["02", "03"], dtype=object), None, []]  # lists as read back from the engine
    assert content_hash(a).tolist() == content_hash(b).tolist()
    assert content_hash(a).dtype == "Int64" and content_hash(a).nunique() == 3


def test_every_change_of_a_fact_changes_the_hash() -> None:
    base = content_hash(_frame())
    changes = {
        "name": pd.Series(["张四", None, ""], dtype=TEXT),
        "birth_date": pd.to_datetime(["1980-01-03", "1990-03-04", None]),
        "pregnant": pd.Series([None, None, False], dtype="boolean"),
        "subjects": [["03", "02"], None, []],           # order of a list is content
    }
    for column, values in changes.items():
        changed = _frame()
        changed[column] = values
        after = content_hash(changed)
        assert after.iat[0] != base.iat[0], column
        assert after.iloc[1:].tolist() == base.iloc[1:].tolist(), column
    missing = _frame()
    missing["name"] = pd.Series(["张三", "", ""], dtype=TEXT)  # missing and empty are different facts
    assert content_hash(missing).iat[1] != base.iat[1]


def test_columns_are_hashed_by_name_not_position() -> None:
    frame = _frame()
    assert content_hash(frame[list(reversed(frame.columns))]).tolist() == content_hash(frame).tolist()
    assert content_hash(frame.iloc[0:0]).empty


def test_bulk_digests_equal_one_by_one_digests() -> None:
    """A bulk load and a lookup must agree on every digest, normalised or not (graph.protect.normalise)."""
    from graph.protect import PlainFields

    values = ["11010519491231002X", "11010519491231002x", " 11010519491231002X", "13800138000\u3000", "",
              "张三", "a b", "A B ", "!`{~", "ABC\t", "\x1f123"]
    protector = PlainFields()
    bulk = protector.digests("Resident.id_number", pa.array(values, pa.string()))
    assert bulk == [protector.digest("Resident.id_number", v) for v in values]
    assert bulk[0] == bulk[1] == bulk[2] and bulk[6] == bulk[7]  # one id; "a b" and "A B " normalise alike
    assert len(set(bulk)) == len(values) - 3


def test_lookups_join_every_row_keep_the_unmatched_and_repeat_for_several() -> None:
    rows = pa.table({"encounter": ["E1", "E2", "E3"], "practitioner": ["P1", "P2", "P9"], "unit": ["u1", "u2", "u3"]})
    licences = pa.table({"practitioner": ["P1", "P2", "P2"], "licence": ["L1", "L2a", "L2b"],
                         "subjects": [["01"], None, ["02", "03"]]})
    units = pa.table({"unit": ["u1", "u2"], "unit_name": ["一科 first", "二科 second"]})
    out = join_lookups(rows, [("practitioner", licences, {}), ("unit", units, {})])
    assert out.column_names == ["encounter", "practitioner", "unit", "licence", "subjects", "unit_name"]
    got = sorted((r["encounter"], r["licence"], r["subjects"], r["unit_name"]) for r in out.to_pylist())
    assert got == [("E1", "L1", ["01"], "一科 first"), ("E2", "L2a", None, "二科 second"),
                   ("E2", "L2b", ["02", "03"], "二科 second"), ("E3", None, None, None)]


def test_a_lookups_lists_point_at_its_rows_instead_of_being_copied_to_each_row() -> None:
    rows = pa.table({"encounter": ["E1", "E2", "E3", "E4"], "institution": ["H1", "H2", "H1", None]})
    subjects = pa.table({"institution": ["H1", "H2"], "subjects": pa.array([["01", "03"], None], pa.list_(pa.string()))})
    out = join_lookups(rows, [("institution", subjects, {})])
    assert pa.types.is_dictionary(out.schema.field("subjects").type)
    assert out.column("subjects").to_pylist() == [["01", "03"], None, ["01", "03"], None]
    assert list_contains(out.column("subjects").combine_chunks(), pa.array(["03", "03", "02", "01"])).tolist() == \
        [True, False, False, False]


def test_a_lookup_joins_on_an_earlier_lookups_column_and_fills_what_it_lacks() -> None:
    """Items → each record's master (none for an unlinked record) → that master's count of pregnant
    records, 0 where the count lookup has no row."""
    rows = pa.table({"item": ["I1", "I2", "I3", "I4"], "resident": ["R1", "R2", "R3", "R9"]})
    masters = pa.table({"resident": ["R1", "R2", "R3"], "master_id": ["M1", "M1", None]})
    pregnant = pa.table({"master_id": ["M1", "M7"], "pregnant_records": pa.array([2, 1], pa.int64())})
    out = join_lookups(rows, [("resident", masters, {}), ("master_id", pregnant, {"pregnant_records": 0})])
    assert out.column_names == ["item", "resident", "master_id", "pregnant_records"]
    assert sorted((r["item"], r["master_id"], r["pregnant_records"]) for r in out.to_pylist()) == \
        [("I1", "M1", 2), ("I2", "M1", 2), ("I3", None, 0), ("I4", None, 0)]

_KEYS = st.sampled_from(["k1", "k2", "k3", None])


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(_KEYS, max_size=8), first=st.lists(st.tuples(_KEYS, st.sampled_from(["m1", "m2", None])), max_size=4),
       second=st.lists(st.tuples(st.sampled_from(["m1", "m2", None]), st.sampled_from([1, 2, None])), max_size=3),
       encoded=st.booleans())
def test_lookups_join_as_left_matches_do(rows: list, first: list, second: list, encoded: bool) -> None:
    """Lookups with unique keys (taken row by row) and with repeated ones (joined) give the rows a chain of
    left matches would: every row kept, repeated per matching lookup row, a null key matching nothing, the
    second lookup keyed by the first's column, absent values filled by a constant or from another column;
    texts plain or dictionary-encoded (assembled from scans)."""
    keys = pa.array(["k1", "k2", "k3"])  # one scan's keys, pointed at by both the rows and the lookup

    def key(values: list) -> pa.Array:
        if not encoded:
            return pa.array(values, pa.string())
        return pa.DictionaryArray.from_arrays(pa.array([None if v is None else int(v[1]) - 1 for v in values],
                                                       pa.int32()), keys)

    table = pa.table({"row": pa.array(range(len(rows)), pa.int64()), "key": key(rows),
                      "own": pa.array([10 * i for i in range(len(rows))], pa.int64())})
    master = pa.array([m for _, m in first], pa.string())
    masters = pa.table({"key": key([k for k, _ in first]), "master": master.dictionary_encode() if encoded else master})
    values = pa.table({"master": pa.array([m for m, _ in second], pa.string()),
                       "value": pa.array([v for _, v in second], pa.int64()),
                       "count": pa.array([v for _, v in second], pa.int64())})
    out = join_lookups(table, [("key", masters, {}), ("master", values, {"value": Fallback("own"), "count": 0})])
    assert out.column_names == ["row", "key", "own", "master", "value", "count"]
    expected = []
    for i, key in enumerate(rows):
        found = [m for k, m in first if key is not None and k == key] or [None]
        for master in found:
            hits = [v for m, v in second if master is not None and m == master] or [None]
            expected += [(i, master, 10 * i if v is None else v, 0 if v is None else v) for v in hits]
    assert sorted(out.select(["row", "master", "value", "count"]).to_pylist(), key=str) == \
        sorted([dict(zip(["row", "master", "value", "count"], e, strict=True)) for e in expected], key=str)


def _cypher_pairs(rows: list[dict], within: tuple, order: tuple, differ: tuple) -> list[tuple]:
    """Pairs by Cypher's rules, row by row: equality and order with a null are unknown, so no pair."""
    def less(a, b) -> bool | None:
        if a is None or b is None:
            return None
        return a < b

    def before(a: dict, b: dict, columns: tuple) -> bool | None:
        first, *rest = columns
        head = less(a[first], b[first])
        if head or not rest:
            return head
        same = None if a[first] is None or b[first] is None else a[first] == b[first]
        return bool(same) and before(a, b, tuple(rest))

    out = []
    for a, b in itertools.permutations(rows, 2):
        if all(a[c] is not None and a[c] == b[c] for c in within) and before(a, b, order) \
                and all(a[c] is not None and b[c] is not None and a[c] != b[c] for c in differ):
            out.append((a["id"], b["id"]))
    return sorted(out)


_ROWS = st.lists(st.fixed_dictionaries({
    "person": st.sampled_from(["M1", "M2", None]),
    "test": st.sampled_from(["ecg", "wbc"]),
    "at": st.one_of(st.none(), st.sampled_from([dt.datetime(2025, 7, d, 9) for d in (1, 2, 3)])),
    "place": st.sampled_from(["H1", "H2", None]),
}), max_size=12)


@settings(max_examples=150, deadline=None)
@given(rows=_ROWS)
def test_rows_pair_as_cypher_compares_them(rows: list[dict]) -> None:
    """Two shapes the catalog uses: (person, test) pairs at different places, earlier first; a person's
    rows ordered by time, then id (every two distinct rows once)."""
    rows = [{"id": f"R{i}", **r} for i, r in enumerate(rows)]
    table = pa.Table.from_pylist(rows, schema=pa.schema([("id", pa.string()), ("person", pa.string()),
                                                          ("test", pa.string()), ("at", pa.timestamp("us")),
                                                          ("place", pa.string())]))
    for within, order, differ in [(("person", "test"), ("at",), ("place",)), (("person",), ("at", "id"), ())]:
        out = pair_rows(table, within, order, differ)
        assert out.column_names == list(Pairs(within, order, differ).columns(dict.fromkeys(table.column_names)))
        got = sorted((r["first_id"], r["second_id"]) for r in out.to_pylist())
        assert got == _cypher_pairs(rows, within, order, differ), (within, order)
    timed = collections.Counter(r["person"] for r in rows if r["person"] and r["at"])
    # every two timed rows of one person pair exactly once under (at, id)
    assert pair_rows(table, ("person",), ("at", "id")).num_rows == sum(n * (n - 1) // 2 for n in timed.values())


def test_pairs_name_only_columns_the_rows_have() -> None:
    pairs = Pairs(within=("master_id",), order=("at",), differ=("place",))
    assert list(pairs.columns({"master_id": "string", "at": "dateTime", "place": "string"})) == \
        ["master_id", "first_at", "first_place", "second_at", "second_place"]
    with pytest.raises(ValueError, match="place"):
        pairs.columns({"master_id": "string", "at": "dateTime"})


def test_pairs_take_the_names_asked_for() -> None:
    rows = pa.table({"rx": ["X1", "X1", "X1"], "drug": ["b", "a", "c"], "class": ["k", "k", None]})
    pairs = Pairs(within=("rx",), order=("drug",), names=("{}_a", "{}_b"))
    out = pair_rows(rows, pairs.within, pairs.order, pairs.differ, pairs.names)
    assert out.column_names == list(pairs.columns(dict.fromkeys(rows.column_names))) == \
        ["rx", "drug_a", "class_a", "drug_b", "class_b"]
    assert sorted((r["drug_a"], r["drug_b"], r["class_a"], r["class_b"]) for r in out.to_pylist()) == \
        [("a", "b", "k", "k"), ("a", "c", "k", None), ("b", "c", "k", None)]


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(st.tuples(st.sampled_from(["X1", "X2", None]), st.sampled_from(["E1", None]),
                               st.sampled_from(["a", "b", "c", None])), max_size=15))
def test_counts_group_and_count_distinct_as_cypher_does(rows: list[tuple]) -> None:
    """``WITH rx, e, count(DISTINCT g) AS drugs``: a null key is a group of its own; a null value is not counted."""
    table = pa.table({"rx": pa.array([r[0] for r in rows], pa.string()), "encounter": pa.array([r[1] for r in rows], pa.string()),
                      "drug": pa.array([r[2] for r in rows], pa.string())})
    counted = Counted(by=("rx", "encounter"), distinct={"drugs": "drug"})
    out = count_distinct(table, counted.by, counted.distinct)
    assert out.column_names == list(counted.columns({"rx": "string", "encounter": "string", "drug": "string"}))
    expected: dict[tuple, set] = collections.defaultdict(set)
    for rx, encounter, drug in rows:
        expected[(rx, encounter)] |= {drug} - {None}
    assert sorted((r["rx"] or "", r["encounter"] or "", r["drugs"]) for r in out.to_pylist()) == \
        sorted((rx or "", e or "", len(drugs)) for (rx, e), drugs in expected.items())
    assert out.schema.field("drugs").type == pa.int64()


def test_a_lookup_may_fall_back_on_another_column_of_the_row() -> None:
    """The master's birth date where the record has a master with one, else the record's own (coalesce)."""
    rows = pa.table({"item": ["I1", "I2", "I3"], "resident": ["R1", "R2", "R3"],
                     "record_birth_date": pa.array([dt.date(1990, 1, 1), dt.date(1991, 1, 1), None], pa.date32())})
    masters = pa.table({"resident": ["R1", "R2"], "master_id": ["M1", "M2"]})
    births = pa.table({"master_id": ["M1", "M2"], "birth_date": pa.array([dt.date(1989, 5, 5), None], pa.date32())})
    out = join_lookups(rows, [("resident", masters, {}),
                              ("master_id", births, {"birth_date": Fallback("record_birth_date")})])
    assert sorted((r["item"], r["birth_date"]) for r in out.to_pylist()) == \
        [("I1", dt.date(1989, 5, 5)), ("I2", dt.date(1991, 1, 1)), ("I3", None)]
    assert out.schema.field("birth_date").type == pa.date32()
