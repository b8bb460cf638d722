"""Validate batches of records against the ontology, column by column.

Each batch is a DataFrame of one node table (or one edge type). Every row either passes, typed
and normalised to the table's columns, or is rejected with every reason that applies, each with
its stable code. Nothing is dropped silently: ``len(batch) == len(accepted) + len(rejected)``.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ontology import errors
from ontology.model import KEY_SEPARATOR, Ontology, Property

RESERVED_NODE_COLUMNS = ("key", "class")
EDGE_COLUMNS = ("src", "dst", "src_class", "dst_class")

TEXT = pd.StringDtype("pyarrow")
"""Text columns stay in Arrow memory: pandas' default (Python-object) strings made validation
several times slower, since every null check, comparison and hash then runs per Python object."""

PANDAS_DTYPES = {
    "string": TEXT, "integer": "Int64", "double": "Float64", "boolean": "boolean",
    "date": "datetime64[ms]", "dateTime": "datetime64[us]",
}
"""How each ontology datatype is held in an accepted (normalised) frame."""

_TRUE = {"true", "1", "yes", "y", "t", "是"}
_FALSE = {"false", "0", "no", "n", "f", "否"}


@dataclass
class Rejection:
    """One quarantined record: where it came from, why (codes and messages) and its content."""

    row: int
    codes: list[str]
    messages: list[str]
    record: dict[str, Any]

    @property
    def code(self) -> str:
        return self.codes[0]


@dataclass
class Validated:
    """The outcome of validating one batch."""

    target: str
    received: int
    accepted: pd.DataFrame
    rejected: list[Rejection] = field(default_factory=list)
    collapsed_duplicates: int = 0

    def reconciles(self) -> bool:
        return self.received == len(self.accepted) + self.collapsed_duplicates + len(self.rejected)


class _Reasons:
    """Collects (row → codes, messages) from vectorised checks."""

    def __init__(self) -> None:
        self.by_row: dict[int, list[tuple[str, str]]] = defaultdict(list)

    def add(self, mask: pd.Series | np.ndarray, error: type[errors.ValidationError],
            message: Callable[[int], str] | str) -> None:
        rows = np.flatnonzero(np.asarray(mask, dtype=bool))
        for r in rows:
            self.by_row[int(r)].append((error.code, message(int(r)) if callable(message) else message))

    def rows(self) -> np.ndarray:
        return np.array(sorted(self.by_row), dtype=np.int64)


def _is_present(v: Any) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return False
    if isinstance(v, float):
        return not np.isnan(v)
    if isinstance(v, str):
        return v != ""
    if isinstance(v, (list, tuple, np.ndarray)):
        return len(v) > 0
    return True


def _present(col: pd.Series) -> np.ndarray:
    if col.dtype == object:
        return np.fromiter((_is_present(v) for v in col), dtype=bool, count=len(col))
    out = col.notna().to_numpy(copy=True)
    if pd.api.types.is_string_dtype(col.dtype):
        out &= (col.fillna("") != "").to_numpy()
    return out


def coerce(prop: Property, col: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Cast a column to the property's datatype. Returns the typed column and a mask of bad values."""
    present = _present(col)
    if prop.is_list:
        return _coerce_list(prop, col, present)
    dtype = prop.datatype
    if dtype == "string":
        typed = col.astype(TEXT)
        return typed.where(present, None), np.zeros(len(col), dtype=bool)
    if dtype in ("integer", "double"):
        if pd.api.types.is_bool_dtype(col.dtype):
            num = pd.Series(np.nan, index=col.index)
        else:
            num = pd.to_numeric(col.astype(TEXT) if col.dtype == object else col, errors="coerce")
        bad = present & num.isna().to_numpy()
        if dtype == "integer":
            frac = present & ~bad & (num.fillna(0) % 1 != 0).to_numpy()
            bad |= frac
            typed = num.where(~bad & present).astype("Float64").round().astype("Int64")
        else:
            typed = num.where(~bad & present).astype("Float64")
        return typed, bad
    if dtype == "boolean":
        if pd.api.types.is_bool_dtype(col.dtype):
            return col.astype("boolean"), np.zeros(len(col), dtype=bool)
        text = col.astype(TEXT).str.strip().str.lower()
        is_true, is_false = text.isin(_TRUE).fillna(False), text.isin(_FALSE).fillna(False)
        bad = present & ~(is_true | is_false).to_numpy()
        typed = pd.Series(pd.NA, index=col.index, dtype="boolean")
        typed[is_true.to_numpy()] = True
        typed[is_false.to_numpy()] = False
        return typed, bad
    if dtype in ("date", "dateTime"):
        if pd.api.types.is_datetime64_any_dtype(col.dtype):
            parsed = col.dt.tz_localize(None) if getattr(col.dt, "tz", None) else col
        else:
            parsed = pd.to_datetime(col.astype(TEXT), errors="coerce", format="ISO8601")
            if getattr(parsed.dt, "tz", None) is not None:
                parsed = parsed.dt.tz_convert("Asia/Shanghai").dt.tz_localize(None)
        bad = present & parsed.isna().to_numpy()
        if dtype == "date":
            bad |= present & ~bad & (parsed.dt.normalize() != parsed).fillna(False).to_numpy()
            parsed = parsed.dt.normalize()
        return parsed.astype(PANDAS_DTYPES[dtype]), bad
    raise AssertionError(f"unhandled datatype {dtype}")


def _coerce_list(prop: Property, col: pd.Series, present: np.ndarray) -> tuple[pd.Series, np.ndarray]:
    bad = np.zeros(len(col), dtype=bool)
    values: list[list[str] | None] = []
    for i, v in enumerate(col.tolist()):
        if not present[i]:
            values.append(None)
        elif isinstance(v, str):
            values.append([p for p in v.replace("|", " ").split() if p])
        elif isinstance(v, (list, tuple, np.ndarray)):
            values.append([str(x) for x in v])
        else:
            values.append(None)
            bad[i] = True
    if prop.datatype != "string":
        raise errors.OntologyError(f"list property '{prop.name}' must be xsd:string")
    return pd.Series(values, index=col.index, dtype=object), bad


def _allowed_check(prop: Property, typed: pd.Series, present: np.ndarray) -> np.ndarray:
    if not prop.allowed_values and prop.regex is None:
        return np.zeros(len(typed), dtype=bool)
    if prop.is_list:
        def ok(vals: list[str] | None) -> bool:
            if vals is None:
                return True
            return all((not prop.allowed_values or v in prop.allowed_values)
                       and (prop.regex is None or prop.regex.fullmatch(v)) for v in vals)
        return np.array([not ok(v) for v in typed], dtype=bool)
    text = typed.astype(TEXT)
    bad = np.zeros(len(typed), dtype=bool)
    if prop.allowed_values:
        bad |= present & ~text.isin(prop.allowed_values).fillna(False).to_numpy()
    if prop.regex is not None:
        # The whole value must match (re.fullmatch); Arrow's RE2 runs without Python objects.
        matched = pc.match_substring_regex(arrow_text(text), f"^(?:{prop.pattern})$")
        bad |= present & ~matched.fill_null(False).to_numpy(zero_copy_only=False)
    return bad


def arrow_text(values: pd.Series | pd.Index) -> pa.Array:
    """Text values as an Arrow string array (nulls for every kind of missing)."""
    # ``.array``: handed a Series, pyarrow asks it for ``__arrow_array__``, and pandas answers the
    # unknown attribute by searching the Series' index, which hashes every key of a keyed index.
    return pa.array(values.array, pa.string(), from_pandas=True)


def _combined(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def _text_series(values: pa.Array | pa.ChunkedArray, index: pd.Index) -> pd.Series:
    return pd.Series(pd.arrays.ArrowStringArray(values), index=index)


def _records(frame: pd.DataFrame, rows: Iterable[int]) -> list[dict[str, Any]]:
    out = []
    sub = frame.iloc[list(rows)]
    for rec in sub.to_dict(orient="records"):
        out.append({k: plain(v) for k, v in rec.items() if plain(v) is not None})
    return out


def plain(v: Any) -> Any:
    """A numpy/pandas/Arrow scalar as a plain Python value (None for every kind of missing)."""
    kind = type(v)
    if kind is str or kind is int or kind is bool or kind is dt.datetime or kind is dt.date:
        return v  # what the engines hand back most: no conversion (checked first, by exact type, for speed)
    if kind is list and all(type(x) is str for x in v):
        return v  # a list of codes, as the engines return lists of strings
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, float) and np.isnan(v):
        return None
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, pd.Timestamp):
        return v.to_pydatetime()
    if isinstance(v, (np.ndarray, list, tuple)):
        return [plain(x) for x in v]
    return v


def _finish(target: str, frame: pd.DataFrame, reasons: _Reasons, accepted: pd.DataFrame,
            collapsed: int = 0) -> Validated:
    bad_rows = reasons.rows()
    rejected = [
        Rejection(int(r), [c for c, _ in reasons.by_row[int(r)]], [m for _, m in reasons.by_row[int(r)]], rec)
        for r, rec in zip(bad_rows, _records(frame, bad_rows), strict=True)
    ]
    return Validated(target, len(frame), accepted, rejected, collapsed)


def validate_nodes(onto: Ontology, cls_name: str, frame: pd.DataFrame) -> Validated:
    """Validate records of ``cls_name`` (a class; the ``class`` column may name subclasses)."""
    frame = frame.reset_index(drop=True)
    n = len(frame)
    reasons = _Reasons()
    if cls_name not in onto.classes:
        reasons.add(np.ones(n, dtype=bool), errors.UnknownClass,
                    f"unknown class '{cls_name}' {errors.did_you_mean(cls_name, onto.classes)}")
        return _finish(cls_name, frame, reasons, frame.iloc[0:0])
    table = onto.classes[cls_name].table
    columns = onto.table_properties(table)
    allowed_classes = onto.descendants(cls_name)

    classes = frame["class"].astype(TEXT).fillna(cls_name) if "class" in frame else \
        pd.Series(cls_name, index=frame.index, dtype=TEXT)
    unknown_cls = ~classes.isin(allowed_classes).to_numpy()
    reasons.add(unknown_cls, errors.UnknownClass,
                lambda r: f"class '{classes.iat[r]}' is not {cls_name} or a subclass of it "
                          f"{errors.did_you_mean(str(classes.iat[r]), allowed_classes)}")

    out = pd.DataFrame(index=frame.index)
    out["class"] = classes
    for col_name in frame.columns:
        if col_name in RESERVED_NODE_COLUMNS:
            continue
        col = frame[col_name]
        present = _present(col)
        prop = columns.get(col_name)
        if prop is None:
            reasons.add(present, errors.UnknownProperty,
                        f"unknown property '{col_name}' on {table} {errors.did_you_mean(col_name, columns)}")
            continue
        if prop.system:
            reasons.add(present, errors.SystemPropertyInInput,
                        f"'{col_name}' is filled by the platform (provenance); remove it from the input")
            continue
        # A property of the table that the row's own class may not carry (e.g. grade on a Pharmacy).
        owners = {c for c in allowed_classes if col_name in onto.properties_of(c)}
        if owners != set(allowed_classes):
            foreign = present & ~classes.isin(owners).to_numpy()
            reasons.add(foreign, errors.UnknownProperty,
                        lambda r, p=col_name: f"property '{p}' does not apply to class '{classes.iat[r]}'")
        typed, bad = coerce(prop, col)
        reasons.add(bad, errors.WrongDatatype,
                    lambda r, p=prop, c=col: f"'{p.name}' must be {p.datatype}"
                                             f"{' list' if p.is_list else ''}, got {c.iat[r]!r}")
        present &= ~bad
        not_allowed = _allowed_check(prop, typed, present)
        if prop.allowed_values:
            reasons.add(not_allowed, errors.ValueNotAllowed,
                        lambda r, p=prop, c=col: f"'{p.name}' = {c.iat[r]!r} not allowed; valid: "
                                                 f"{' '.join(p.allowed_values)}"
                                                 + (f" ({p.basis})" if p.basis else ""))
        else:
            reasons.add(not_allowed, errors.PatternMismatch,
                        lambda r, p=prop, c=col: f"'{p.name}' = {c.iat[r]!r} does not match {p.pattern}"
                                                 + (f" ({p.basis})" if p.basis else ""))
        out[col_name] = typed

    for prop in columns.values():
        if prop.name not in out and not prop.system:
            out[prop.name] = pd.Series(pd.NA, index=frame.index, dtype=_dtype(prop))

    # Required properties (owl:minCardinality 1), per concrete class.
    for c in sorted(set(classes.dropna().unique()) & allowed_classes):
        rows = (classes == c).to_numpy()
        for req in sorted(onto.required_of(c)):
            missing = rows & ~_present(out[req])
            error = errors.MissingKey if req in onto.key_of(c) else errors.MissingRequired
            reasons.add(missing, error,
                        f"'{req}' is required on {c} ({onto.classes[c].label})"
                        + (" and is part of its key" if error is errors.MissingKey else ""))

    key_props = onto.key_of(cls_name)
    key = out[key_props[0]].astype(TEXT)
    for k in key_props[1:]:
        key = key + KEY_SEPARATOR + out[k].astype(TEXT)
    if "key" in frame:
        given = frame["key"].astype(TEXT)
        mismatch = (_present(frame["key"]) & (given != key).fillna(True).to_numpy())
        reasons.add(mismatch, errors.MissingKey,
                    lambda r: f"'key' {given.iat[r]!r} differs from the ontology key "
                              f"({' + '.join(key_props)}) = {key.iat[r]!r}")
    out.insert(0, "key", key)

    ok = np.ones(n, dtype=bool)
    ok[reasons.rows()] = False
    # Duplicates inside the batch: identical content collapses, conflicting content is rejected.
    good = out[ok]
    collapsed = 0
    dup = duplicated(good["key"], keep=False)
    if dup.any():
        content = pd.util.hash_pandas_object(good.drop(columns=["key"]).astype(TEXT), index=False)
        first_hash = content.groupby(good["key"].to_numpy()).transform("first")
        conflict = dup & (content != first_hash).to_numpy()
        exact_later = duplicated(good["key"]) & ~conflict
        idx = good.index.to_numpy()
        conflict_rows = np.zeros(n, dtype=bool)
        conflict_rows[idx[conflict]] = True
        reasons.add(conflict_rows, errors.ConflictingDuplicate,
                    lambda r: f"key {out['key'].iat[r]!r} appears earlier in this batch with different content")
        ok[idx[conflict]] = False
        ok[idx[exact_later]] = False
        collapsed = int(exact_later.sum())
    accepted = out[ok].reset_index(drop=True)
    return _finish(cls_name, frame, reasons, accepted, collapsed)


def _dtype(prop: Property) -> str | type:
    return object if prop.is_list else PANDAS_DTYPES[prop.datatype]


EndpointLookup = Callable[[str, pd.Series, frozenset[str], pa.Array | None], tuple[pd.Series, np.ndarray]]
"""(role, keys, allowed tables, each key's declared table or None) → the class of each key's node, or
<NA> when there is none, and a number naming that node (-1 when there is none): equal numbers, same
node, so duplicate edges are found by comparing integers instead of hashing the keys again. A key is
looked for in its declared table first and in the other allowed tables only when not found there."""


def validate_edges(onto: Ontology, edge_name: str, frame: pd.DataFrame,
                   lookup: EndpointLookup) -> Validated:
    """Validate edges of one type: endpoints exist, their classes lie in the domain and range."""
    frame = frame.reset_index(drop=True)
    n = len(frame)
    reasons = _Reasons()
    if edge_name not in onto.edges:
        reasons.add(np.ones(n, dtype=bool), errors.UnknownEdgeType,
                    f"unknown edge type '{edge_name}' {errors.did_you_mean(edge_name, onto.edges)}")
        return _finish(edge_name, frame, reasons, frame.iloc[0:0])
    edge = onto.edges[edge_name]
    for col_name in frame.columns:
        if col_name not in EDGE_COLUMNS:
            reasons.add(_present(frame[col_name]), errors.UnknownProperty,
                        f"edges carry no properties: '{col_name}' is not one of {', '.join(EDGE_COLUMNS)}")
    out = pd.DataFrame(index=frame.index)
    nodes: dict[str, np.ndarray] = {}
    names = pa.array(list(onto.classes), pa.string())
    tables_of = pa.array([d.table for d in onto.classes.values()], pa.string())

    def table_of(classes: pd.Series) -> pa.Array:
        return pc.take(tables_of, pc.index_in(arrow_text(classes), value_set=names))

    for role, allowed in (("src", edge.domain), ("dst", edge.range)):
        keys = frame[role].astype(TEXT) if role in frame else pd.Series(pd.NA, index=frame.index, dtype=TEXT)
        missing = ~_present(keys)
        reasons.add(missing, errors.MissingKey, f"edge {edge_name} needs '{role}' (the key of its "
                                                f"{'source' if role == 'src' else 'target'} node)")
        tables = frozenset(onto.classes[c].table for c in allowed)
        declared = frame.get(f"{role}_class")
        if declared is not None:
            declared = declared.astype(TEXT)
            unknown = _present(declared) & ~declared.isin(onto.classes).to_numpy()
            reasons.add(unknown, errors.UnknownClass,
                        lambda r, d=declared: f"unknown class '{d.iat[r]}' {errors.did_you_mean(str(d.iat[r]), onto.classes)}")
            known = declared.where(declared.isin(onto.classes))
            tables = frozenset(tables | {onto.classes[c].table for c in known.dropna().unique()})
        found, nodes[role] = lookup(role, keys, tables, table_of(declared) if declared is not None else None)
        dangling = ~missing & found.isna().to_numpy()
        reasons.add(dangling, errors.DanglingEndpoint,
                    lambda r, k=keys, t=tables, ro=role: f"{ro} node {k.iat[r]!r} not found in "
                                                         f"{'/'.join(sorted(t))} (load the node first)")
        if declared is not None:
            clash = ~dangling & ~missing & _present(declared) & (found != declared).fillna(False).to_numpy()
            reasons.add(clash, errors.DomainRangeViolation,
                        lambda r, f=found, d=declared, ro=role: f"{ro} is a {f.iat[r]}, not the declared {d.iat[r]}")
        allowed_all = frozenset().union(*(onto.descendants(c) for c in allowed))
        outside = ~dangling & ~missing & ~found.isin(allowed_all).fillna(False).to_numpy()
        reasons.add(outside, errors.DomainRangeViolation,
                    lambda r, f=found, ro=role, a=allowed: f"edge {edge_name} {'from' if ro == 'src' else 'to'} "
                                                           f"a {f.iat[r]} is not allowed; "
                                                           f"{'domain' if ro == 'src' else 'range'}: {', '.join(sorted(a))}")
        out[role] = keys
        out[f"{role}_class"] = found
        out[f"{role}_table"] = _text_series(table_of(found), frame.index)

    ok = np.ones(n, dtype=bool)
    ok[reasons.rows()] = False
    # Rows still ok have both endpoints found, so their node numbers identify the pair.
    src, dst = nodes["src"], nodes["dst"]
    pair = src * (int(dst.max(initial=0)) + 1) + dst
    good = np.flatnonzero(ok)
    exact_later = pd.Series(pair[good]).duplicated().to_numpy()
    collapsed = int(exact_later.sum())
    ok[good[exact_later]] = False
    if edge.functional:
        # owl:FunctionalProperty: a source node has at most one target of this edge type.
        kept = np.flatnonzero(ok)
        multi = pd.Series(src[kept]).duplicated(keep=False).to_numpy()
        rows = np.zeros(n, dtype=bool)
        rows[kept[multi]] = True
        reasons.add(rows, errors.CardinalityViolation,
                    lambda r: f"{edge_name} is functional: {out['src'].iat[r]!r} has more than one target in this batch")
        ok[rows] = False
    accepted = out[ok].reset_index(drop=True)
    return _finish(edge_name, frame, reasons, accepted, collapsed)


def duplicated(values: pd.Series, keep: str | bool = "first") -> np.ndarray:
    """Like ``Series.duplicated`` for text, hashing each value once in Arrow (pandas hashes Python objects).

    ``keep="first"`` marks every repeat after the first; ``keep=False`` marks every row whose
    value occurs more than once. Missing values are never duplicates.
    """
    if keep not in ("first", False):
        raise ValueError(f"keep must be 'first' or False, not {keep!r}")
    codes = text_codes(values)
    if keep is False:
        return (np.bincount(codes + 1)[codes + 1] > 1) & (codes >= 0)
    # Dictionary codes are numbered in order of first appearance: a row repeats an earlier value
    # exactly when its code is not above every code before it.
    seen = np.maximum.accumulate(np.concatenate([[-1], codes[:-1]])) if len(codes) else codes
    return (codes <= seen) & (codes >= 0)


def edge_duplicated(frame: pd.DataFrame) -> np.ndarray:
    """Repeats (after the first) of a (src, dst) pair: the pair as one integer of the two columns' codes.

    Rows missing either end are never duplicates.
    """
    src, dst = text_codes(frame["src"]), text_codes(frame["dst"])
    pair = src * (int(dst.max(initial=0)) + 2) + (dst + 1)  # one-to-one, missing codes (-1) included
    return pd.Series(pair).duplicated().to_numpy() & (src >= 0) & (dst >= 0)


def text_codes(values: pd.Series) -> np.ndarray:
    """Equal text → equal integer (-1 for missing), by Arrow dictionary encoding."""
    arr = arrow_text(values)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    indices = arr.dictionary_encode().indices.cast(pa.int64())  # int64: pairs of codes are multiplied
    return pc.fill_null(indices, -1).to_numpy() if indices.null_count else indices.to_numpy()


def lookup_from(classes_of: Callable[[str], pd.Series | None]) -> EndpointLookup:
    """An endpoint lookup over ``classes_of(table)``: a Series indexed by key with the class as value.

    Each table is fetched once. Uses Arrow's hash lookup (``index_in``): one pass over the keys probed
    and one over the table.
    """
    arrow: dict[str, tuple[pa.Array, pa.Array, int] | None] = {}
    numbered = 0  # node numbers: a table's position in the lookup plus those of the tables before it

    def table_arrays(t: str) -> tuple[pa.Array, pa.Array, int] | None:
        nonlocal numbered
        if t not in arrow:
            classes = classes_of(t)
            if classes is None or classes.empty:
                arrow[t] = None
            else:
                arrow[t] = (_combined(arrow_text(classes.index.to_series())), _combined(arrow_text(classes)),
                            numbered)
                numbered += len(classes)
        return arrow[t]

    def lookup(role: str, keys: pd.Series, allowed: frozenset[str],
               declared: pa.Array | None = None) -> tuple[pd.Series, np.ndarray]:
        probe = arrow_text(keys)
        node = np.full(len(probe), -1, dtype=np.int64)
        tables = sorted(allowed)
        hits: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # table → (rows found there, their positions)

        def probe_in(t: str, rows: np.ndarray) -> None:
            arrays = table_arrays(t)
            if arrays is None or not len(rows):
                return
            sub = probe if len(rows) == len(probe) else probe.take(rows)
            position = pc.fill_null(pc.index_in(sub, value_set=arrays[0]).cast(pa.int64()), -1).to_numpy()
            hit = position >= 0
            rows, position = rows[hit], position[hit]
            node[rows] = position + arrays[2]
            previous = hits.get(t)
            hits[t] = (rows, position) if previous is None else (np.concatenate([previous[0], rows]),
                                                                  np.concatenate([previous[1], position]))

        # Multi-class edges (of_patient has nine source tables) look for each key in its declared
        # table first: half the probes, or fewer, of trying every allowed table for every key.
        if declared is not None:
            first = pc.fill_null(pc.index_in(declared, value_set=pa.array(tables, pa.string())), -1).to_numpy()
            for i, t in enumerate(tables):
                probe_in(t, np.flatnonzero(first == i))
        for t in tables:
            probe_in(t, np.flatnonzero(node < 0))
        found = pa.nulls(len(probe), pa.string())
        for t, (rows, position) in hits.items():
            mask = np.zeros(len(probe), dtype=bool)
            mask[rows] = True
            found = pc.replace_with_mask(found, mask, pc.take(table_arrays(t)[1], position[np.argsort(rows)]))
        return _text_series(found, keys.index), node

    return lookup
