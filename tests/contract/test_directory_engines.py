"""The directory search service on both search engines: same documents, same answers."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from graph import GraphStore
from services.directory import Directory
from services.settings import Settings


@pytest.fixture(scope="module")
def directories(store: GraphStore, opensearch_url: str, tmp_path_factory: pytest.TempPathFactory):
    out = {}
    for engine in ("tantivy", "opensearch"):
        settings = Settings(data_dir=tmp_path_factory.mktemp(engine), search_engine=engine,
                            opensearch_url=opensearch_url)
        out[engine] = Directory.open(settings, store)
        out[engine].rebuild(store)
    yield out
    for d in out.values():
        d.close()


def test_both_engines_index_every_searchable_node(directories, store: GraphStore) -> None:
    counts = {e: d.counts() for e, d in directories.items()}
    assert counts["tantivy"] == counts["opensearch"]
    assert counts["tantivy"]["Institution"] == len(store.nodes("Institution", []))


@pytest.mark.parametrize("words", ["人民医院", "儿科", "发热", "杭州", "中医"])
def test_same_groups_and_top_hits(directories, words: str) -> None:
    found = {e: d.search(words, size=3) for e, d in directories.items()}
    assert found["tantivy"]["tokens"] == found["opensearch"]["tokens"]
    summary = {e: [(g["table"], g["total"]) for g in f["groups"]] for e, f in found.items()}
    assert sorted(summary["tantivy"]) == sorted(summary["opensearch"])
    for a, b in zip(sorted(found["tantivy"]["groups"], key=lambda g: g["table"]),
                    sorted(found["opensearch"]["groups"], key=lambda g: g["table"]), strict=True):
        assert a["hits"][0]["score"] == pytest.approx(b["hits"][0]["score"], rel=1e-3)


def test_a_hospital_is_found_by_name_on_both(directories, province: Path) -> None:
    hospital = pd.read_parquet(province / "nodes" / "Institution.parquet").query("`class` == 'Hospital'").iloc[-1]
    for d in directories.values():
        assert d.search_table("Institution", hospital["name"], size=1).hits[0].id == hospital["uscc"]
