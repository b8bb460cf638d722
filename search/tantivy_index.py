"""The embedded engine: tantivy (Rust, via PyPI ``tantivy``), in a directory or in memory.

Text fields hold our pre-analyzed tokens and use tantivy's ``whitespace`` tokenizer, so BM25
(k1 = 1.2, b = 0.75, tantivy's fixed values) runs on exactly the terms OpenSearch sees. Keyword
fields are ``raw`` fast fields (filters, terms aggregations for facets); the projected original
document is stored as JSON bytes.
"""

from __future__ import annotations

import json
from pathlib import Path

import tantivy

from ontology.errors import IndexSpecError, SearchError
from search.analyzer import Analyzer
from search.index import FACET_SIZE, EngineHits, EngineQuery, Prepared, SearchIndex
from search.spec import FieldKind, IndexSpec

SPEC_FILE = "healthgraph-spec.json"


class TantivyIndex(SearchIndex):
    """``path`` is a folder holding one sub-folder per index; ``None`` keeps the index in memory."""

    engine = "tantivy"

    def __init__(self, path: str | Path | None = None, *, analyzer: Analyzer | None = None,
                 heap_size: int = 128_000_000, threads: int = 0) -> None:
        super().__init__(analyzer=analyzer)
        self.root = Path(path) if path is not None else None
        self.heap_size, self.threads = heap_size, threads
        self._tv: tantivy.Index | None = None
        self._schema: tantivy.Schema | None = None
        self._writer: tantivy.IndexWriter | None = None

    def _ensure(self, spec: IndexSpec) -> None:
        self._close()
        builder = tantivy.SchemaBuilder()
        builder.add_text_field("id", fast=True, tokenizer_name="raw", index_option="basic")
        builder.add_bytes_field("hg_source", stored=True)
        for f in spec.fields:
            if f.kind is FieldKind.TEXT:
                builder.add_text_field(f.name, tokenizer_name="whitespace", index_option="freq")
            elif f.kind is FieldKind.KEYWORD:
                builder.add_text_field(f.name, fast=True, tokenizer_name="raw", index_option="basic")
            elif f.kind is FieldKind.INTEGER:
                builder.add_integer_field(f.name, indexed=True, fast=True)
            else:
                builder.add_date_field(f.name, indexed=True, fast=True)
        self._schema = builder.build()
        if self.root is None:
            self._tv = tantivy.Index(self._schema)
            return
        folder = self.root / spec.name
        folder.mkdir(parents=True, exist_ok=True)
        marker = folder / SPEC_FILE
        if marker.exists() and json.loads(marker.read_text(encoding="utf-8"))["fields"] != spec.fingerprint():
            raise IndexSpecError(f"索引已存在且字段不同 index {spec.name} at {folder} was built with other fields; "
                                 "delete the folder to rebuild it", index=spec.name, path=str(folder))
        try:
            self._tv = tantivy.Index(self._schema, path=str(folder), reuse=True)
        except ValueError as exc:
            raise SearchError(f"无法打开索引 cannot open tantivy index at {folder}: {exc}", path=str(folder)) from exc
        marker.write_text(json.dumps({"fields": spec.fingerprint()}), encoding="utf-8")

    def _handle(self) -> tantivy.Index:
        if self._tv is None:
            raise SearchError("索引尚未建立 call ensure(spec) first", engine=self.engine)
        return self._tv

    def _writer_for_changes(self) -> tantivy.IndexWriter:
        if self._writer is None:
            try:
                self._writer = self._handle().writer(self.heap_size, self.threads)
            except ValueError as exc:  # another writer holds the folder's lock
                raise SearchError(f"索引正被写入 tantivy index is locked by another writer: {exc}") from exc
        return self._writer

    def _upsert(self, docs: list[Prepared]) -> None:
        writer = self._writer_for_changes()
        for p in docs:
            doc = tantivy.Document()
            doc.add_text("id", p.id)
            doc.add_bytes("hg_source", p.source.encode())
            for name, tokens in p.text.items():
                doc.add_text(name, tokens)
            for name, values in p.keywords.items():
                for value in values:
                    doc.add_text(name, value)
            for name, number in p.integers.items():
                doc.add_integer(name, number)
            for name, when in p.dates.items():
                doc.add_date(name, when)
            # a delete applies only to documents added before it, so this replaces, never removes, p
            writer.delete_documents_by_term("id", p.id)
            writer.add_document(doc)
        writer.commit()

    def _remove(self, ids: list[str]) -> None:
        writer = self._writer_for_changes()
        for doc_id in ids:
            writer.delete_documents_by_term("id", doc_id)
        writer.commit()

    def _query(self, q: EngineQuery) -> EngineHits:
        schema = self._schema
        if q.terms:
            clauses = []
            for name, token, boost in q.terms:
                term = tantivy.Query.term_query(schema, name, token, index_option="freq")
                clauses.append((tantivy.Occur.Should, term if boost == 1 else tantivy.Query.boost_query(term, boost)))
            main = tantivy.Query.boolean_query(clauses)
        else:
            main = tantivy.Query.all_query()
        # filters score zero, like OpenSearch's bool.filter
        filters = [(tantivy.Occur.Must, tantivy.Query.const_score_query(
            tantivy.Query.term_set_query(schema, name, values), 0.0)) for name, values in q.filters.items()]
        query = tantivy.Query.boolean_query([(tantivy.Occur.Must, main), *filters]) if filters else main
        searcher = self._handle().searcher()
        if q.terms:
            found = searcher.search(query, q.limit, count=True, offset=q.offset)
        else:
            found = searcher.search(query, q.limit, count=True, offset=q.offset, order_by_field="id",
                                    order=tantivy.Order.Asc)
        hits = [(float(key) if q.terms else 0.0, bytes(searcher.doc(address)["hg_source"][0]).decode())
                for key, address in found.hits]
        facets = {}
        if q.facets:
            aggs = searcher.aggregate(query, {f: {"terms": {"field": f, "size": FACET_SIZE}} for f in q.facets})
            facets = {f: {b["key"]: int(b["doc_count"]) for b in aggs[f]["buckets"]} for f in q.facets}
        return EngineHits(int(found.count), hits, facets)

    def _count(self) -> int:
        return int(self._handle().searcher().num_docs)

    def _refresh(self) -> None:
        self._handle().reload()

    def _sync(self) -> None:  # a reader in another process sees new commits only after a reload
        self._handle().reload()

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.wait_merging_threads()  # releases the writer and its lock
            self._writer = None
