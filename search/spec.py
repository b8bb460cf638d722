"""What an index holds: typed fields, declared ad hoc or derived from the ontology.

    >>> spec_for("Institution").kinds()            # doctest: +SKIP
    {'address': 'text', 'division_code': 'keyword', 'grade': 'keyword', 'name': 'text', …}

Graph node indexes are never declared by hand: ``spec_for(table)`` reads the ontology, the only
place schema is declared. Two rules there are privacy rules, not tuning: a property with a
sensitivity annotation is never indexed, and neither are the key properties of a table that holds
personal data (the document id still carries the node key, so a hit leads back to the graph and
its privacy guard).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from ontology.errors import IndexSpecError, did_you_mean
from ontology.model import Ontology, Property, load_ontology

if TYPE_CHECKING:
    from graph import GraphStore


class FieldKind(StrEnum):
    """How a field is indexed. The same on every engine."""

    TEXT = "text"          # analyzed by our Analyzer, ranked by BM25, highlighted
    KEYWORD = "keyword"    # exact value: filters and facets
    INTEGER = "integer"
    DATE = "date"          # a date or a date-time


@dataclass(frozen=True)
class Field:
    name: str
    kind: FieldKind
    boost: float = 1.0
    """Weight of this text field in the BM25 sum (text fields only)."""


_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
RESERVED = frozenset({"id", "hg_source"})
"""Names the engines use themselves: the document id and the stored original document."""


@dataclass(frozen=True)
class IndexSpec:
    """An index's name and fields. ``id`` is implicit: every document has a string ``id``."""

    name: str
    fields: tuple[Field, ...]
    _by_name: dict[str, Field] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        problems = []
        if not re.fullmatch(r"[a-z][a-z0-9_-]{0,100}", self.name):
            problems.append(f"index name {self.name!r} must be lower-case letters, digits, '-' or '_'")
        seen: dict[str, Field] = {}
        for f in self.fields:
            if not _NAME.match(f.name) or f.name in RESERVED:
                problems.append(f"field name {f.name!r} must match [a-z][a-z0-9_]* and not be one of {sorted(RESERVED)}")
            if f.name in seen:
                problems.append(f"field {f.name!r} declared twice")
            if f.boost <= 0:
                problems.append(f"field {f.name!r} boost must be positive, got {f.boost}")
            seen[f.name] = f
        if not any(f.kind is FieldKind.TEXT for f in self.fields):
            problems.append("an index needs at least one text field to search")
        if problems:
            raise IndexSpecError("索引定义无效 invalid index spec: " + "; ".join(problems), index=self.name)
        object.__setattr__(self, "_by_name", seen)

    @classmethod
    def of(cls, name: str, /, **kinds: str | FieldKind | tuple[str | FieldKind, float]) -> IndexSpec:
        """Ad hoc: ``IndexSpec.of("demo", title=("text", 2.0), body="text", dept="keyword")``."""
        fields = []
        for fname, kind in kinds.items():
            kind, boost = kind if isinstance(kind, tuple) else (kind, 1.0)
            try:
                fields.append(Field(fname, FieldKind(kind), float(boost)))
            except ValueError:
                raise IndexSpecError(f"未知字段类型 unknown field kind {kind!r} for {fname!r} "
                                     f"{did_you_mean(str(kind), [k.value for k in FieldKind])}", field=fname) from None
        return cls(name, tuple(fields))

    def field(self, name: str) -> Field:
        try:
            return self._by_name[name]
        except KeyError:
            raise IndexSpecError(f"索引 {self.name} 没有字段 no field '{name}' {did_you_mean(name, self._by_name)}",
                                 index=self.name, field=name) from None

    def of_kind(self, kind: FieldKind) -> list[Field]:
        return [f for f in self.fields if f.kind is kind]

    def kinds(self) -> dict[str, str]:
        return {f.name: f.kind.value for f in self.fields}

    def fingerprint(self) -> str:
        """A stable description of the fields: an existing index with another fingerprint is a conflict."""
        return ";".join(f"{f.name}:{f.kind.value}:{f.boost:g}" for f in sorted(self.fields, key=lambda f: f.name))

    def project(self, doc: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """A document's id and its spec fields, typed; anything else is dropped (never stored)."""
        doc_id = doc.get("id")
        if not isinstance(doc_id, str) or not doc_id:
            raise IndexSpecError(f"文档缺少 id document needs a non-empty string 'id', got {doc_id!r}", index=self.name)
        out: dict[str, Any] = {}
        for f in self.fields:
            value = doc.get(f.name)
            if value is None or value == [] or value == "":
                continue
            out[f.name] = _typed(self.name, doc_id, f, value)
        return doc_id, out


def _typed(index: str, doc_id: str, f: Field, value: Any) -> Any:
    bad = IndexSpecError(f"文档 {doc_id} 的字段 {f.name} 类型错误 field '{f.name}' ({f.kind.value}) got {value!r}",
                         index=index, id=doc_id, field=f.name)
    if f.kind is FieldKind.TEXT:
        parts = value if isinstance(value, list | tuple) else [value]
        if not all(isinstance(p, str) for p in parts):
            raise bad
        return "\n".join(parts)
    if f.kind is FieldKind.KEYWORD:
        values = value if isinstance(value, list | tuple) else [value]
        out = [str(v).lower() if isinstance(v, bool) else v for v in values]
        if not all(isinstance(v, str) for v in out):
            raise bad
        return sorted(set(out)) if len(out) > 1 else out[0]
    if f.kind is FieldKind.INTEGER:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if isinstance(value, dt.date):
        return value
    raise bad


def as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


# ---------------------------------------------------------------- ontology-derived specs

_CODE_LIKE = frozenset({"code", "atc", "din", "uscc", "status", "unit", "component", "id", "system", "type",
                        "class", "category", "version", "scope", "subjects"})
"""Last word of a property name that marks an identifier-like string (exact match, not prose)."""


def _kind_of(p: Property) -> FieldKind | None:
    if p.datatype == "string":
        code_like = p.allowed_values or p.pattern or p.name.rsplit("_", 1)[-1] in _CODE_LIKE
        return FieldKind.KEYWORD if code_like else FieldKind.TEXT
    return {"boolean": FieldKind.KEYWORD, "integer": FieldKind.INTEGER,
            "date": FieldKind.DATE, "dateTime": FieldKind.DATE}.get(p.datatype)  # doubles: not searched


def spec_for(table: str, onto: Ontology | None = None, *, boosts: dict[str, float] | None = None) -> IndexSpec:
    """The index spec of a graph table, derived from the ontology.

    Strings with allowed values, a pattern or an identifier-like name are keywords; other strings
    are text; integers, dates and booleans (as keyword ``true``/``false``) are typed; doubles and
    system properties are left out. Sensitive properties are never indexed.
    """
    onto = onto or load_ontology()
    if table not in onto.tables:
        raise IndexSpecError(f"不是图表 not a graph table '{table}' {did_you_mean(table, onto.tables)}", table=table)
    props = onto.table_properties(table)
    personal = any(p.sensitivity for p in props.values())
    hidden = set(onto.classes[table].key) if personal else set()
    boosts = boosts or {}
    fields = []
    for name, p in props.items():
        kind = _kind_of(p)
        if p.system or p.sensitivity or name in hidden or kind is None:
            continue
        fields.append(Field(name, kind, boosts.get(name, 1.0)))
    return IndexSpec(f"hg-{table.lower()}", tuple(fields))


def node_documents(store: GraphStore, table: str, spec: IndexSpec | None = None) -> Iterator[dict[str, Any]]:
    """The nodes of a graph table as index documents (``id`` = node key), projected onto the spec."""
    spec = spec or spec_for(table, store.onto)
    frame = store.nodes(table, [f.name for f in spec.fields])
    for row in frame.to_dict("records"):
        doc = {"id": str(row["key"]), **{f.name: row.get(f.name) for f in spec.fields}}
        yield {k: v for k, v in doc.items() if v is not None and not (isinstance(v, float) and v != v)}
