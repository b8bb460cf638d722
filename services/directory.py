"""Public search over the graph's directory and knowledge: institutions, departments,
practitioners, diseases, symptoms, drugs, checks, vaccines, foods and divisions.

Which tables are searched is the ontology's word (``hg:searchable``); their sensitive properties
(a practitioner's id number, phone, birth date) are never indexed, and tables of residents are
never searchable, so nothing here is personal data under guard. Published practitioner and
institution details are public by design (医疗信息分级公开, guide §22; doctor and department
information for booking, §1).

    directory = Directory.open(settings, store)
    directory.rebuild(store)                        # after a load: one index per searchable table
    directory.search("儿科 医院")                    # grouped by table, best first within each
    directory.search_table("Institution", "人民医院", filters={"division_code": "330106"})
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from typing import Any

from graph import GraphStore
from ontology.errors import SearchQueryError, did_you_mean
from ontology.model import Ontology
from search import Analyzer, SearchIndex, SearchResult, node_documents, open_search, spec_for

Progress = Callable[[str, int, int], None]


class Directory:
    """One search index per searchable table, on the configured engine (tantivy or OpenSearch)."""

    def __init__(self, indexes: dict[str, SearchIndex], onto: Ontology) -> None:
        self.indexes, self.onto = indexes, onto
        self._pool = ThreadPoolExecutor(max_workers=min(8, max(len(indexes), 1)), thread_name_prefix="directory")

    @classmethod
    def open(cls, settings: Any, store: GraphStore) -> Directory:
        """Indexes for ``settings.search_engine``; the analyzer's dictionary includes the graph's names."""
        onto = store.onto
        analyzer = Analyzer.for_ontology(onto, store=store)
        indexes = {t: open_search(settings, spec=spec_for(t, onto), analyzer=analyzer) for t in onto.searchable_tables}
        return cls(indexes, onto)

    def rebuild(self, store: GraphStore, progress: Progress | None = None) -> dict[str, int]:
        """Index (insert or replace) every node of each searchable table. The graph never deletes
        nodes, so an index rebuilt after each load holds exactly the graph's searchable nodes."""
        counts: dict[str, int] = {}
        for i, (table, index) in enumerate(self.indexes.items()):
            if progress:
                progress(table, i, len(self.indexes))
            docs = list(node_documents(store, table, index.spec))
            index.index(docs, refresh=True)
            counts[table] = index.count()
        if progress:
            progress("done", len(self.indexes), len(self.indexes))
        return counts

    def counts(self) -> dict[str, int]:
        return {t: idx.count() for t, idx in self.indexes.items()}

    def search(self, query: str, *, size: int = 5) -> dict[str, Any]:
        """Top hits of each table that has any, tables ordered by their best hit's score."""
        if not query.strip():
            raise SearchQueryError("请输入检索词 a query is required", query=query)
        def one(index: SearchIndex) -> SearchResult:
            index.sync()
            return index.search(query, size=size, highlight=True)

        # One request per class: on a search server they wait on the network, so they go out together.
        results = list(self._pool.map(one, self.indexes.values()))
        groups = []
        tokens: list[str] = []
        for table, result in zip(self.indexes, results, strict=True):
            tokens = result.tokens
            if result.total:
                label = self.onto.label_of(table)
                groups.append({"table": table, "zh": label.zh, "en": label.en, "total": result.total,
                               "hits": [asdict(h) for h in result.hits]})
        groups.sort(key=lambda g: -g["hits"][0]["score"])
        return {"query": query, "tokens": tokens, "groups": groups}

    def search_table(self, table: str, query: str | None, *, filters: dict[str, Any] | None = None,
                     facets: list[str] | None = None, page: int = 1, size: int = 10) -> SearchResult:
        """One table's index with filters, facets, highlights and pagination."""
        if table not in self.indexes:
            raise SearchQueryError(f"不可检索的类 '{table}' is not searchable {did_you_mean(table, self.indexes)}",
                                   table=table)
        self.indexes[table].sync()
        return self.indexes[table].search(query, filters=filters, facets=facets, highlight=True, page=page,
                                          size=size)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        for index in self.indexes.values():
            index.close()
