"""The server engine: OpenSearch 2.x over HTTP (``pip install 'healthgraph[opensearch]'``).

The mapping mirrors the tantivy schema: text fields use a ``whitespace`` analyzer over our
pre-analyzed tokens with BM25 k1 = 1.2, b = 0.75 (tantivy's fixed values); keyword fields are
``keyword``. Each index has **one shard** (and no replica on a single node): BM25 statistics are
per shard, so one shard gives the same document frequencies and lengths as tantivy's one index,
hence the same scores. The projected original document is kept in ``hg_source`` (not indexed).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from ontology.errors import IndexSpecError, SearchError, SearchUnavailable
from search.analyzer import Analyzer
from search.index import FACET_SIZE, EngineHits, EngineQuery, Prepared, SearchIndex
from search.spec import FieldKind, IndexSpec

try:
    from opensearchpy import OpenSearch, helpers
    from opensearchpy.exceptions import ConnectionError as OSConnectionError
    from opensearchpy.exceptions import ConnectionTimeout, NotFoundError, TransportError
except ImportError as exc:  # optional engine
    raise ImportError("OpenSearch 后端需要 opensearch-py: pip install 'healthgraph[opensearch]' "
                      "(the OpenSearch engine needs the opensearch extra)") from exc

ANALYZER = "hg_whitespace"
CHUNK = 1_000


class OpenSearchIndex(SearchIndex):
    """One index named ``prefix + spec.name`` on the server at ``url`` (loopback, no TLS)."""

    engine = "opensearch"

    def __init__(self, url: str = "http://127.0.0.1:9200", *, prefix: str = "healthgraph-",
                 analyzer: Analyzer | None = None, timeout: float = 30.0, **client_options: Any) -> None:
        super().__init__(analyzer=analyzer)
        self.url, self.prefix = url, prefix
        self._client = OpenSearch([url], use_ssl=False, timeout=timeout, **client_options)
        self._name: str | None = None

    # ------------------------------------------------------------------ hooks
    def _ensure(self, spec: IndexSpec) -> None:
        name = self.prefix + spec.name
        with self._errors("ensure"):
            if self._client.indices.exists(index=name):
                meta = self._client.indices.get_mapping(index=name)[name]["mappings"].get("_meta", {})
                if meta.get("healthgraph_spec") != spec.fingerprint():
                    raise IndexSpecError(f"索引已存在且字段不同 index {name} on {self.url} was built with other fields; "
                                         "delete it to rebuild", index=name)
            else:
                self._client.indices.create(index=name, body=_index_body(spec))
        self._name = name

    def _upsert(self, docs: list[Prepared]) -> None:
        actions = ({"_index": self._name, "_id": p.id, "_source": _body(p)} for p in docs)
        with self._errors("index"):
            _, errors = helpers.bulk(self._client, actions, chunk_size=CHUNK, raise_on_error=False,
                                     max_retries=2, refresh=False)
        if errors:
            raise SearchError(f"{len(errors)} 个文档写入失败 documents failed to index in {self._name}: {errors[:3]}",
                              index=self._name, errors=len(errors))

    def _remove(self, ids: list[str]) -> None:
        actions = ({"_op_type": "delete", "_index": self._name, "_id": i} for i in ids)
        with self._errors("delete"):
            _, errors = helpers.bulk(self._client, actions, chunk_size=CHUNK, raise_on_error=False, refresh=False)
        errors = [e for e in errors if e.get("delete", {}).get("status") != 404]  # unknown ids are fine
        if errors:
            raise SearchError(f"{len(errors)} 个文档删除失败 deletes failed in {self._name}: {errors[:3]}",
                              index=self._name)

    def _query(self, q: EngineQuery) -> EngineHits:
        filters = [{"terms": {name: values}} for name, values in q.filters.items()]
        if q.terms:
            should = [{"term": {name: {"value": token, "boost": boost}}} for name, token, boost in q.terms]
            query = {"bool": {"should": should, "minimum_should_match": 1, "filter": filters}}
            sort = None
        else:
            query = {"bool": {"must": [{"match_all": {}}], "filter": filters}}
            sort = [{"id": "asc"}]
        body: dict[str, Any] = {"query": query, "from": q.offset, "size": q.limit, "track_total_hits": True,
                                "_source": ["hg_source"]}
        if sort:
            body["sort"] = sort
        if q.facets:
            body["aggs"] = {f: {"terms": {"field": f, "size": FACET_SIZE}} for f in q.facets}
        with self._errors("search"):
            res = self._client.search(index=self._name, body=body)
        hits = [(float(h["_score"] or 0.0), h["_source"]["hg_source"]) for h in res["hits"]["hits"]]
        facets = {f: {b["key"]: int(b["doc_count"]) for b in res["aggregations"][f]["buckets"]} for f in q.facets}
        return EngineHits(int(res["hits"]["total"]["value"]), hits, facets)

    def _count(self) -> int:
        with self._errors("count"):
            return int(self._client.count(index=self._name)["count"])

    def _refresh(self) -> None:
        with self._errors("refresh"):
            self._client.indices.refresh(index=self._name)

    def _close(self) -> None:
        self._client.close()

    def drop(self) -> None:
        """Delete the index on the server (tests and rebuilds)."""
        with self._errors("drop"), suppress(NotFoundError):
            self._client.indices.delete(index=self.prefix + self.spec.name)

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Engine exceptions → the project's: unreachable server → SearchUnavailable, others → SearchError."""
        try:
            yield
        except (OSConnectionError, ConnectionTimeout) as exc:
            raise SearchUnavailable(f"检索服务无法连接 cannot reach OpenSearch at {self.url} ({action}): start the "
                                    "server or set the right URL", url=self.url) from exc
        except NotFoundError as exc:
            raise SearchError(f"索引不存在 index {self._name} not found on {self.url}: call ensure(spec)",
                              url=self.url) from exc
        except TransportError as exc:
            raise SearchError(f"OpenSearch 拒绝请求 OpenSearch refused {action} on {self.url}: {exc}",
                              url=self.url) from exc


def _index_body(spec: IndexSpec) -> dict[str, Any]:
    kinds = {FieldKind.TEXT: {"type": "text", "analyzer": ANALYZER, "similarity": "hg_bm25"},
             FieldKind.KEYWORD: {"type": "keyword"}, FieldKind.INTEGER: {"type": "long"},
             FieldKind.DATE: {"type": "date"}}
    properties: dict[str, Any] = {"id": {"type": "keyword"}, "hg_source": {"type": "keyword", "index": False, "doc_values": False}}
    properties |= {f.name: kinds[f.kind] for f in spec.fields}
    return {
        "settings": {
            "number_of_shards": 1, "number_of_replicas": 0,
            "similarity": {"hg_bm25": {"type": "BM25", "k1": 1.2, "b": 0.75}},
            "analysis": {"analyzer": {ANALYZER: {"type": "custom", "tokenizer": "whitespace"}}},
        },
        "mappings": {
            "dynamic": "strict",
            "_meta": {"healthgraph_spec": spec.fingerprint()},
            "_source": {"excludes": [f.name for f in spec.of_kind(FieldKind.TEXT)]},
            "properties": properties,
        },
    }


def _body(p: Prepared) -> dict[str, Any]:
    body: dict[str, Any] = {"id": p.id, "hg_source": p.source, **p.text, **p.integers}
    body |= {n: v if len(v) > 1 else v[0] for n, v in p.keywords.items()}
    body |= {n: v.isoformat() for n, v in p.dates.items()}
    return body
