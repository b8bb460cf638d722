"""Real graph data through the ontology-derived specs, on both engines."""

from __future__ import annotations

from itertools import islice

import pytest

from search import node_documents, spec_for


@pytest.fixture(scope="module")
def institutions(store) -> list[dict]:
    return list(node_documents(store, "Institution"))


def test_a_name_finds_its_institution_on_every_engine(engine, make_index, institutions) -> None:
    idx = make_index(engine, spec_for("Institution"))
    assert idx.index(institutions, refresh=True) == len(institutions) > 10
    for doc in institutions[:: max(1, len(institutions) // 8)]:
        res = idx.search(doc["name"], size=3, highlight=True)
        top = res.hits[0]
        assert top.fields["name"] == doc["name"], (doc, res.ids)
        assert "<em>" in top.highlights["name"]
        if doc.get("grade"):
            assert doc["id"] in idx.search(doc["name"], filters={"grade": doc["grade"]}, size=50).ids


def test_engines_rank_graph_data_alike(make_index, institutions) -> None:
    spec = spec_for("Institution")
    a, b = make_index("tantivy", spec), make_index("opensearch", spec)
    for idx in (a, b):
        idx.index(institutions, refresh=True)
    for query in ["人民医院", "卫生院", "中心", institutions[0]["name"]]:
        ra, rb = a.search(query, facets=["grade"], size=20), b.search(query, facets=["grade"], size=20)
        assert (ra.total, ra.facets) == (rb.total, rb.facets)
        assert [h.score for h in ra.hits] == pytest.approx([h.score for h in rb.hits], rel=1e-4)


def test_personal_identifiers_never_reach_the_index(engine, make_index, store) -> None:
    docs = list(islice(node_documents(store, "Resident"), 150))
    idx = make_index(engine, spec_for("Resident"))
    idx.index(docs, refresh=True)
    person = store.get("Resident", docs[0]["id"])
    assert person.get("id_number")
    assert idx.search(person["id_number"]).total == 0
    hit = idx.search(person["name"], size=150)
    assert docs[0]["id"] in hit.ids
    assert not {"id_number", "phone", "birth_date", "sex"} & {k for h in hit.hits for k in h.fields}
