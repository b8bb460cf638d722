"""Full-text search over the graph: one Chinese analyzer, one protocol, two engines.

    from search import open_search, spec_for
    idx = open_search("tantivy", path="var/search", spec=spec_for("Institution"))   # embedded default
    idx = open_search("opensearch", url="http://127.0.0.1:9200", spec=spec)         # pip install 'healthgraph[opensearch]'
    idx.index(docs, refresh=True)
    res = idx.search("人民医院", filters={"grade": "3A"}, facets=["grade"], highlight=True)

Callers never build engine queries: ``SearchIndex.search`` takes words, filters and facets, and
both engines answer with the same hits, scores' order, totals, facets and highlights
(docs/search.md says what was measured).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ontology.errors import IndexSpecError, SearchError, SearchQueryError, SearchUnavailable, did_you_mean
from search.analyzer import Analyzer, default_analyzer
from search.index import Hit, SearchIndex, SearchResult
from search.spec import Field, FieldKind, IndexSpec, node_documents, spec_for

__all__ = [
    "ENGINES", "Analyzer", "Field", "FieldKind", "Hit", "IndexSpec", "IndexSpecError", "SearchError", "SearchIndex",
    "SearchQueryError", "SearchResult", "SearchUnavailable", "default_analyzer", "node_documents", "open_search",
    "spec_for",
]

ENGINES = ("tantivy", "opensearch")


def open_search(engine: str | Any = "tantivy", *, spec: IndexSpec | None = None, path: str | Path | None = None,
                url: str | None = None, analyzer: Analyzer | None = None, **options: Any) -> SearchIndex:
    """A search index on ``engine`` ("tantivy" or "opensearch"), ensured for ``spec`` when one is given.

    ``engine`` may also be a settings object: its ``search_engine``, ``search_path`` (or
    ``data_dir``/"search") and ``opensearch_url`` attributes are used where present.
    ``path=None`` keeps a tantivy index in memory.
    """
    if not isinstance(engine, str):
        settings = engine
        engine = getattr(settings, "search_engine", "tantivy")
        if path is None:
            path = getattr(settings, "search_path", None) or (
                Path(settings.data_dir) / "search" if getattr(settings, "data_dir", None) else None)
        url = url or getattr(settings, "opensearch_url", None)
    if engine == "tantivy":
        from search.tantivy_index import TantivyIndex

        index: SearchIndex = TantivyIndex(path, analyzer=analyzer, **options)
    elif engine == "opensearch":
        from search.opensearch_index import OpenSearchIndex

        index = OpenSearchIndex(url or "http://127.0.0.1:9200", analyzer=analyzer, **options)
    else:
        raise SearchError(f"未知检索引擎 unknown search engine '{engine}' {did_you_mean(engine, ENGINES)}",
                          engine=engine)
    return index.ensure(spec) if spec is not None else index
