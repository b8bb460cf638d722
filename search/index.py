"""The search protocol every engine implements, with the work they share done once, here.

    idx = open_search("tantivy")                 # or "opensearch", url=...
    idx.ensure(spec_for("Institution"))          # create the index if missing (idempotent)
    idx.index(docs, refresh=True)                # bulk upsert by "id"
    res = idx.search("人民医院", filters={"grade": ["3A", "3B"]}, facets=["grade"], highlight=True)
    res.total, [h.id for h in res.hits], res.facets["grade"]

Query semantics, identical on every engine: the query is analyzed by the shared ``Analyzer``;
each distinct token is a term clause on every text field (times the field's boost) and a hit's
score is the BM25 sum of the clauses it matches (OR of tokens). Filters are exact keyword matches,
AND across fields and OR within a field's list; they never change scores. An empty query (or one
of stop words only) lists the filtered documents by id. Highlights are computed here, in Python,
from the stored text and the matched tokens, so both engines return the same ones.

Changes (``index``, ``delete``) are durable when the call returns and visible to ``search`` and
``count`` after ``refresh()`` (or ``refresh=True``), as in both engines' near-real-time model.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ontology.errors import IndexSpecError, SearchError, SearchQueryError, did_you_mean
from search.analyzer import Analyzer, default_analyzer
from search.spec import FieldKind, IndexSpec, as_list

EMPTY_FIELD = "\u2205"
MAX_ANALYZED_CHARS = 2_000
"""Characters of a text field that are indexed (the whole text is still stored and returned): long
knowledge texts (a disease's causes, nursing notes) say what they are about early, and segmenting
all of them made indexing a knowledge graph several times slower."""
"""Stands in for a missing or empty text field: the analyzer never emits it, so it never matches.

Lucene counts, per field, only the documents that have it (BM25's N and average length); tantivy
counts every document. With every text field present in every document both count the same.
"""

MAX_WINDOW = 10_000
"""Deepest hit reachable by paging (OpenSearch's default index.max_result_window)."""

FACET_SIZE = 1_000
"""Most distinct values a facet returns: large enough that both engines return all of them."""

SNIPPET_CHARS = 160

_USES = {"filter": "筛选 (filter)", "facet": "分面 (facet)", "boost": "加权 (boost)"}


@dataclass(frozen=True)
class Hit:
    id: str
    score: float
    fields: dict[str, Any]
    highlights: dict[str, str] = field(default_factory=dict)
    """Text field → the field's text (or a window of it) with matched terms in ``<em>``, HTML-escaped."""


@dataclass(frozen=True)
class SearchResult:
    hits: list[Hit]
    total: int
    facets: dict[str, dict[str, int]]
    """Keyword field → {value: matching documents}, most frequent first."""
    page: int
    size: int
    tokens: list[str]
    """The analyzed query: what was searched for, synonyms included."""

    @property
    def ids(self) -> list[str]:
        return [h.id for h in self.hits]


@dataclass(frozen=True)
class Prepared:
    """A document ready for any engine: analyzed text, typed values and the original to store."""

    id: str
    source: str                      # JSON of the projected document, returned with hits
    text: dict[str, str]             # text field → space-joined tokens (EMPTY_FIELD when none)
    keywords: dict[str, list[str]]
    integers: dict[str, int]
    dates: dict[str, dt.datetime]


@dataclass(frozen=True)
class EngineQuery:
    """What a backend turns into its own query language; built and checked by ``SearchIndex``."""

    terms: list[tuple[str, str, float]]      # (text field, token, boost); empty → every document, by id
    filters: dict[str, list[str]]
    facets: list[str]
    offset: int
    limit: int


@dataclass(frozen=True)
class EngineHits:
    total: int
    hits: list[tuple[float, str]]            # (score, stored source JSON)
    facets: dict[str, dict[str, int]]


class SearchIndex(ABC):
    """One named index on one engine. Public methods validate and analyze; engines implement the hooks."""

    engine: ClassVar[str]

    def __init__(self, *, analyzer: Analyzer | None = None) -> None:
        self.analyzer = analyzer or default_analyzer()
        self._spec: IndexSpec | None = None

    # ------------------------------------------------------------------ public
    @property
    def spec(self) -> IndexSpec:
        if self._spec is None:
            raise SearchError("索引尚未建立 call ensure(spec) before using the index", engine=self.engine)
        return self._spec

    def ensure(self, spec: IndexSpec) -> SearchIndex:
        """Create the index for ``spec`` if missing; an existing one must have the same fields."""
        self._ensure(spec)
        self._spec = spec
        return self

    def index(self, docs: Iterable[dict[str, Any]], *, refresh: bool = False) -> int:
        """Insert or replace documents by ``id``; fields outside the spec are dropped. Returns how many."""
        prepared: dict[str, Prepared] = {}
        problems: list[str] = []
        for doc in docs:
            try:
                p = self._prepare(doc)
            except IndexSpecError as exc:
                problems.append(exc.message)
                continue
            prepared[p.id] = p  # last one wins, as a second upsert would
        if problems:
            shown = "; ".join(problems[:5]) + (f" … ({len(problems)} in all)" if len(problems) > 5 else "")
            raise IndexSpecError(f"{len(problems)} 个文档不符合索引定义 documents break the spec: {shown}",
                                 index=self.spec.name, errors=len(problems))
        if prepared:
            self._upsert(list(prepared.values()))
        if refresh:
            self.refresh()
        return len(prepared)

    def delete(self, ids: Iterable[str], *, refresh: bool = False) -> None:
        """Remove documents by id; unknown ids are ignored."""
        ids = sorted({str(i) for i in ids})
        if ids:
            self.spec  # noqa: B018 — fails clearly before ensure()
            self._remove(ids)
        if refresh:
            self.refresh()

    def search(self, query: str | None, *, filters: dict[str, str | Sequence[str]] | None = None,
               facets: Sequence[str] | None = None, highlight: bool = False, page: int = 1, size: int = 10,
               boosts: dict[str, float] | None = None) -> SearchResult:
        """Rank documents for ``query`` by BM25 (see the module docstring for the exact semantics)."""
        spec = self.spec
        if page < 1 or not 1 <= size <= 1_000 or page * size > MAX_WINDOW:
            raise SearchQueryError(f"分页参数无效 page must be ≥ 1, size 1..1000 and page × size ≤ {MAX_WINDOW}; "
                                   f"got page={page}, size={size}", page=page, size=size)
        tokens = self.analyzer.query_tokens(query)
        weights = {f.name: f.boost for f in spec.of_kind(FieldKind.TEXT)}
        for name, boost in (boosts or {}).items():
            self._field(name, FieldKind.TEXT, "boost")
            if boost <= 0:
                raise SearchQueryError(f"权重必须为正 boost for '{name}' must be positive, got {boost}")
            weights[name] = float(boost)
        terms = [(f, t, w) for t in tokens for f, w in weights.items()]
        wanted = {}
        for name, values in (filters or {}).items():
            self._field(name, FieldKind.KEYWORD, "filter")
            values = [str(v).lower() if isinstance(v, bool) else v for v in as_list(values)]
            if not values or not all(isinstance(v, str) for v in values):
                raise SearchQueryError(f"筛选值无效 filter '{name}' needs a string or a non-empty list of strings, "
                                       f"got {values!r}", field=name)
            wanted[name] = sorted(set(values))
        for name in facets or ():
            self._field(name, FieldKind.KEYWORD, "facet")
        found = self._query(EngineQuery(terms, wanted, list(dict.fromkeys(facets or ())), (page - 1) * size, size))
        hits = []
        for score, source in found.hits:
            doc = self._decode(source)
            doc_id = doc.pop("id")
            hits.append(Hit(doc_id, score if terms else 0.0, doc, self._highlights(doc, tokens) if highlight else {}))
        ordered = {f: dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))) for f, c in found.facets.items()}
        return SearchResult(hits, found.total, ordered, page, size, tokens)

    def count(self) -> int:
        """Documents visible to search (as of the last refresh)."""
        self.spec  # noqa: B018
        return self._count()

    def refresh(self) -> None:
        """Make every change so far visible to search."""
        self.spec  # noqa: B018
        self._refresh()

    def sync(self) -> None:
        """See changes other processes committed (cheap; a reader should call it before searching)."""
        self.spec  # noqa: B018
        self._sync()

    def close(self) -> None:
        self._close()

    def __enter__(self) -> SearchIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ engine hooks
    @abstractmethod
    def _ensure(self, spec: IndexSpec) -> None: ...

    @abstractmethod
    def _upsert(self, docs: list[Prepared]) -> None: ...

    @abstractmethod
    def _remove(self, ids: list[str]) -> None: ...

    @abstractmethod
    def _query(self, query: EngineQuery) -> EngineHits: ...

    @abstractmethod
    def _count(self) -> int: ...

    @abstractmethod
    def _refresh(self) -> None: ...

    def _sync(self) -> None:
        """Engines whose readers see other writers' commits at once need nothing here."""
        return None

    @abstractmethod
    def _close(self) -> None: ...

    # ------------------------------------------------------------------ shared work
    def _field(self, name: str, kind: FieldKind, use: str) -> Any:
        spec = self.spec
        candidates = [f.name for f in spec.of_kind(kind)]
        if name not in candidates:
            raise SearchQueryError(f"字段不可用于{_USES[use]} '{name}' is not a {kind.value} field of {spec.name} "
                                   f"{did_you_mean(name, candidates)}", field=name, index=spec.name)
        return spec.field(name)

    def _prepare(self, doc: dict[str, Any]) -> Prepared:
        spec = self.spec
        doc_id, values = spec.project(doc)
        text = {f.name: self.analyzer.analyze((values.get(f.name) or "")[:MAX_ANALYZED_CHARS]) or EMPTY_FIELD
                for f in spec.of_kind(FieldKind.TEXT)}
        keywords = {n: as_list(v) for n, v in values.items() if spec.field(n).kind is FieldKind.KEYWORD}
        integers = {n: v for n, v in values.items() if spec.field(n).kind is FieldKind.INTEGER}
        dates = {n: _as_datetime(v) for n, v in values.items() if spec.field(n).kind is FieldKind.DATE}
        source = {"id": doc_id, **{n: v.isoformat() if isinstance(v, dt.date) else v for n, v in values.items()}}
        return Prepared(doc_id, json.dumps(source, ensure_ascii=False, sort_keys=True), text, keywords, integers, dates)

    def _decode(self, source: str) -> dict[str, Any]:
        doc = json.loads(source)
        for f in self.spec.of_kind(FieldKind.DATE):
            if isinstance(doc.get(f.name), str):
                value = doc[f.name]
                doc[f.name] = dt.datetime.fromisoformat(value) if "T" in value else dt.date.fromisoformat(value)
        return doc

    def _highlights(self, doc: dict[str, Any], tokens: list[str]) -> dict[str, str]:
        out = {}
        for f in self.spec.of_kind(FieldKind.TEXT):
            text = doc.get(f.name)
            # Mark the query's tokens where they occur; re-segmenting every hit's long text (jieba, in
            # Python) cost far more than the search itself.
            normalised = unicodedata.normalize("NFKC", text).lower() if text else ""
            matched = {t for t in tokens if t in normalised}
            snippet = highlight(text, matched) if matched else None
            if snippet:
                out[f.name] = snippet
        return out


def highlight(text: str, terms: Iterable[str], *, width: int = SNIPPET_CHARS) -> str | None:
    """``text`` (or a window around its first match) with each term in ``<em>``; None if none occurs."""
    # match on the normalised text (as analyzed: full-width → ASCII), mark the original characters
    owner = [i for i, ch in enumerate(text) for _ in unicodedata.normalize("NFKC", ch)]
    normalised = "".join(unicodedata.normalize("NFKC", ch) for ch in text)
    terms = sorted({t for t in terms if t}, key=lambda t: (-len(t), t))  # longest first: 心肌梗死 over 心肌
    found = re.finditer("|".join(map(re.escape, terms)), normalised, re.IGNORECASE) if terms else ()
    spans = [(owner[m.start()], owner[m.end() - 1] + 1) for m in found if m.end() > m.start()]
    if not spans:
        return None
    merged = [spans[0]]
    for a, b in spans[1:]:  # adjacent terms (人民|医院) read better as one mark
        merged[-1:] = [(merged[-1][0], b)] if a == merged[-1][1] else [merged[-1], (a, b)]
    spans = merged
    start = 0 if len(text) <= width else max(0, min(spans[0][0] - width // 8, len(text) - width))
    end = min(len(text), start + width)
    out, pos = ["…" if start else ""], start
    for a, b in spans:
        if a < start or b > end:
            continue
        out += [html.escape(text[pos:a]), "<em>", html.escape(text[a:b]), "</em>"]
        pos = b
    out += [html.escape(text[pos:end]), "…" if end < len(text) else ""]
    return "".join(out)


def _as_datetime(value: dt.date) -> dt.datetime:
    if not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time())
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
