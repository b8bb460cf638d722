"""The search contract, on every engine: the same documents and queries give the same answers.

Expected results come from a reference computed here in Python from the documents (which
documents share a token with the query, BM25 by its textbook formula), not from either engine.
"""

from __future__ import annotations

import math
import re
from collections import Counter

import pytest

from ontology.errors import IndexSpecError, SearchError, SearchQueryError, SearchUnavailable
from search import Analyzer, FieldKind, IndexSpec, open_search

from search_corpus import SPEC, corpus

QUERIES = ["心肌梗死", "心梗", "人民医院", "发烧 咳嗽", "Hospital", "糖尿病 高血压", "杭州 中医院",
           "拉肚子", "疫苗接种", "acute fever", "慢性阻塞性肺疾病", "温州市第一人民医院", "不存在的词语"]
K1, B = 1.2, 0.75


def text_tokens(analyzer: Analyzer, doc: dict) -> dict[str, list[str]]:
    # an absent text field counts as one token that never matches (the documented placeholder)
    return {f.name: analyzer.tokens(doc.get(f.name)) or ["\u2205"] for f in SPEC.of_kind(FieldKind.TEXT)}


def matching(analyzer: Analyzer, docs: list[dict], query: str) -> list[dict]:
    wanted = set(analyzer.query_tokens(query))
    return [d for d in docs if any(wanted & set(t) for t in text_tokens(analyzer, d).values())]


def reference_bm25(analyzer: Analyzer, docs: list[dict], query: str) -> dict[str, float]:
    tokens = {d["id"]: text_tokens(analyzer, d) for d in docs}
    n = len(docs)
    scores: Counter[str] = Counter()
    for f in SPEC.of_kind(FieldKind.TEXT):
        avgdl = sum(len(t[f.name]) for t in tokens.values()) / n
        for term in analyzer.query_tokens(query):
            df = sum(term in t[f.name] for t in tokens.values())
            if not df:
                continue
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            for doc_id, t in tokens.items():
                tf = t[f.name].count(term)
                if tf:
                    norm = K1 * (1 - B + B * len(t[f.name]) / avgdl)
                    scores[doc_id] += f.boost * idf * tf * (K1 + 1) / (tf + norm)
    return dict(scores)


def assert_same_ranking(got: list[tuple[str, float]], want: list[tuple[str, float]], rel: float = 0.01) -> None:
    """Equal scores rank by rank, and the same ids wherever neighbouring scores differ by more than ``rel``.

    Ids may swap only inside a group of (near-)equal scores; the last group may be cut by the page.
    """
    assert [s for _, s in got] == pytest.approx([s for _, s in want], rel=1e-4)
    bounds = [0] + [k for k in range(1, len(want)) if want[k - 1][1] - want[k][1] > rel * want[k - 1][1]]
    bounds.append(len(want))
    for a, b in zip(bounds, bounds[1:-1], strict=False):       # every group but the last, possibly cut one
        assert {i for i, _ in got[a:b]} == {i for i, _ in want[a:b]}, (got, want)


# ---------------------------------------------------------------- one engine against the reference

@pytest.mark.parametrize("query", QUERIES)
def test_ranking_and_total_match_reference(engine, loaded_indexes, analyzer, docs, query) -> None:
    idx = loaded_indexes[engine]
    res = idx.search(query, size=10)
    ref = sorted(reference_bm25(analyzer, docs, query).items(), key=lambda kv: -kv[1])
    assert res.total == len(matching(analyzer, docs, query)) == len(ref)
    assert_same_ranking([(h.id, h.score) for h in res.hits], ref[:10])


def test_filters_are_exact_and_do_not_change_scores(engine, loaded_indexes, analyzer, docs) -> None:
    idx = loaded_indexes[engine]
    query = "医院"
    hits = {h.id: h.score for h in idx.search(query, size=200).hits}
    res = idx.search(query, filters={"level": ["3A", "3B"], "dept": "03"}, size=200)
    want = [d for d in matching(analyzer, docs, query) if d["level"] in ("3A", "3B") and d["dept"] == "03"]
    assert sorted(res.ids) == sorted(d["id"] for d in want) and res.total == len(want) > 0
    assert all(h.score == pytest.approx(hits[h.id], rel=1e-6) for h in res.hits)
    tagged = idx.search(query, filters={"tags": "rural"}, size=200)
    assert sorted(tagged.ids) == sorted(d["id"] for d in matching(analyzer, docs, query) if "rural" in d.get("tags", []))


def test_facets_count_every_match(engine, loaded_indexes, analyzer, docs) -> None:
    res = loaded_indexes[engine].search("医院 中心", facets=["level", "tags"], filters={"dept": ["01", "02"]})
    want = [d for d in matching(analyzer, docs, "医院 中心") if d["dept"] in ("01", "02")]
    assert res.facets["level"] == dict(Counter(d["level"] for d in want))
    assert res.facets["tags"] == dict(Counter(t for d in want for t in d.get("tags", [])))
    assert list(res.facets["level"].values()) == sorted(res.facets["level"].values(), reverse=True)


def test_pages_are_disjoint_and_complete(engine, loaded_indexes, analyzer, docs) -> None:
    idx = loaded_indexes[engine]
    total = idx.search("医院", size=1).total
    pages = [idx.search("医院", page=p, size=7).ids for p in range(1, math.ceil(total / 7) + 2)]
    seen = [i for page in pages for i in page]
    assert len(seen) == len(set(seen)) == total == len(matching(analyzer, docs, "医院"))
    assert pages[-1] == [] and all(len(p) == 7 for p in pages[:-2])


def test_empty_query_lists_filtered_documents_by_id(engine, loaded_indexes, docs) -> None:
    res = loaded_indexes[engine].search("的", filters={"level": "2A"}, size=100)   # a stop word only
    want = sorted(d["id"] for d in docs if d["level"] == "2A")
    assert res.ids == want and res.total == len(want) and {h.score for h in res.hits} == {0.0}


def test_highlights_mark_the_matched_terms(engine, loaded_indexes, analyzer) -> None:
    res = loaded_indexes[engine].search("心梗 Acute", highlight=True, size=20)
    assert res.hits
    for hit in res.hits:
        marked = [m.lower() for text in hit.highlights.values() for m in re.findall(r"<em>(.*?)</em>", text)]
        assert marked, hit
        assert all(set(analyzer.tokens(m)) & set(res.tokens) for m in marked)
        for name, text in hit.highlights.items():
            assert re.sub(r"</?em>", "", text) in hit.fields[name]
    assert not loaded_indexes[engine].search("心梗").hits[0].highlights     # only when asked


def test_hits_return_the_stored_fields(engine, loaded_indexes, docs) -> None:
    by_id = {d["id"]: d for d in docs}
    for hit in loaded_indexes[engine].search("医院", size=30).hits:
        want = {k: v for k, v in by_id[hit.id].items() if k != "id"}
        if isinstance(want.get("tags"), list):
            want["tags"] = sorted(want["tags"]) if len(want["tags"]) > 1 else want["tags"][0]
        assert hit.fields == want


def test_bad_requests_fail_with_codes(engine, loaded_indexes) -> None:
    idx = loaded_indexes[engine]
    with pytest.raises(SearchQueryError, match="did you mean 'level'") as err:
        idx.search("医院", filters={"levle": "3A"})
    assert err.value.code == "HG-0503"
    with pytest.raises(SearchQueryError):
        idx.search("医院", facets=["name"])                      # text fields have no facets
    with pytest.raises(SearchQueryError):
        idx.search("医院", page=0)
    with pytest.raises(SearchQueryError):
        idx.search("医院", page=500, size=100)
    with pytest.raises(SearchQueryError):
        idx.search("医院", filters={"level": []})


# ---------------------------------------------------------------- both engines side by side

@pytest.mark.parametrize("query", QUERIES)
def test_engines_agree(loaded_indexes, query) -> None:
    a = loaded_indexes["tantivy"].search(query, facets=["level", "dept"], highlight=True, size=10)
    b = loaded_indexes["opensearch"].search(query, facets=["level", "dept"], highlight=True, size=10)
    assert (a.total, a.facets, a.tokens) == (b.total, b.facets, b.tokens)
    assert_same_ranking([(h.id, h.score) for h in a.hits], [(h.id, h.score) for h in b.hits])
    tied = {h.id for h in a.hits} ^ {h.id for h in b.hits}     # differ only at a tie on the last place
    assert not tied or a.hits[-1].score == pytest.approx(b.hits[-1].score, rel=1e-4)
    same = {h.id for h in a.hits} & {h.id for h in b.hits}
    assert {h.id: h.highlights for h in a.hits if h.id in same} == {h.id: h.highlights for h in b.hits if h.id in same}


# ---------------------------------------------------------------- writes (fresh indexes)

def test_reindex_is_idempotent_and_updates_replace(engine, make_index, analyzer) -> None:
    idx = make_index(engine)
    docs = corpus(60, seed=9)
    assert idx.index(docs, refresh=True) == 60 and idx.count() == 60
    before = [(h.id, h.score) for h in idx.search("医院", size=60).hits]
    idx.index(docs, refresh=True)
    assert idx.count() == 60
    # replaced copies stay in Lucene's statistics until segments merge: scores move a little, ranks do not
    after = idx.search("医院", size=60).hits
    assert sorted(h.id for h in after) == sorted(i for i, _ in before)
    assert [h.score for h in after] == pytest.approx([s for _, s in before], rel=0.01)
    idx.index([{**docs[0], "name": "舟山海岛医疗急救站"}, {**docs[0], "name": "舟山海岛医疗急救站", "dept": "99"}],
              refresh=True)                                                # the last copy of an id wins
    assert idx.count() == 60
    hit = idx.search("急救站").hits
    assert [h.id for h in hit] == [docs[0]["id"]] and hit[0].fields["dept"] == "99"


def test_delete_removes_documents(engine, make_index) -> None:
    idx = make_index(engine)
    docs = corpus(40, seed=3)
    idx.index(docs, refresh=True)
    gone = [d["id"] for d in docs[:5]]
    idx.delete([*gone, "no-such-id"], refresh=True)
    assert idx.count() == 35
    left = idx.search("", size=100).ids
    assert not set(gone) & set(left) and len(left) == 35


def test_fields_outside_the_spec_are_never_stored(engine, make_index) -> None:
    idx = make_index(engine)
    idx.index([{"id": "p1", "name": "测试医院", "id_number": "330102199001011234"}], refresh=True)
    assert idx.search("330102199001011234").total == 0
    assert idx.search("测试医院").hits[0].fields == {"name": "测试医院"}


def test_bad_documents_are_reported_together(engine, make_index) -> None:
    idx = make_index(engine)
    with pytest.raises(IndexSpecError, match="2 个文档") as err:
        idx.index([{"id": "a", "beds": "many", "name": "x"}, {"name": "no id"}, {"id": "ok", "name": "好"}])
    assert err.value.details["errors"] == 2
    idx.refresh()
    assert idx.count() == 0                                               # nothing written


def test_ensure_is_idempotent_and_refuses_other_fields(engine, make_index, tmp_path) -> None:
    kw = {"path": tmp_path} if engine == "tantivy" else {}
    idx = make_index(engine, **kw)
    idx.index(corpus(10), refresh=True)
    idx.ensure(SPEC)
    idx.refresh()
    assert idx.count() == 10
    other = IndexSpec.of(SPEC.name, name="text", dept="keyword")
    with pytest.raises(IndexSpecError, match="other fields"):
        idx.ensure(other)


def test_tantivy_index_persists_in_its_folder(tmp_path, docs) -> None:
    with open_search("tantivy", path=tmp_path, spec=SPEC) as idx:
        idx.index(docs, refresh=True)
        first = idx.search("人民医院").ids
    with open_search("tantivy", path=tmp_path, spec=SPEC) as again:
        again.refresh()
        assert again.count() == len(docs) and again.search("人民医院").ids == first


def test_unreachable_server_is_retryable() -> None:
    with pytest.raises(SearchUnavailable) as err:
        open_search("opensearch", url="http://127.0.0.1:9", spec=SPEC, timeout=2, max_retries=0)
    assert err.value.code == "HG-0501" and err.value.is_retryable()


def test_unknown_engine_and_settings_objects(tmp_path) -> None:
    with pytest.raises(SearchError, match="did you mean 'tantivy'"):
        open_search("tantivi")

    class Settings:
        search_engine = "tantivy"
        data_dir = tmp_path

    with open_search(Settings(), spec=SPEC) as idx:
        idx.index(corpus(3), refresh=True)
    assert (tmp_path / "search" / SPEC.name).is_dir()


def test_using_an_index_before_ensure_is_an_error() -> None:
    idx = open_search("tantivy")
    with pytest.raises(SearchError, match="ensure"):
        idx.search("医院")
