"""Search fixtures: the shared analyzer, a deterministic corpus, and indexes on each engine."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from search import ENGINES, Analyzer, IndexSpec, SearchIndex, default_analyzer, open_search
from search_corpus import SPEC, corpus

@pytest.fixture(scope="session")
def analyzer() -> Analyzer:
    return default_analyzer()


@pytest.fixture(scope="session")
def docs() -> list[dict]:
    return corpus()


def _open(engine: str, request: pytest.FixtureRequest, spec: IndexSpec, **kw) -> SearchIndex:
    if engine == "opensearch":
        url = request.getfixturevalue("opensearch_url")  # only OpenSearch tests need the server
        prefix = f"test-{uuid.uuid4().hex[:8]}-"
        return open_search("opensearch", url=url, prefix=prefix, spec=spec, **kw)
    return open_search("tantivy", spec=spec, **kw)


@pytest.fixture
def make_index(request: pytest.FixtureRequest) -> Iterator[Callable[..., SearchIndex]]:
    """Fresh, empty indexes for tests that write; OpenSearch ones are dropped afterwards."""
    made: list[SearchIndex] = []

    def make(engine: str, spec: IndexSpec = SPEC, **kw) -> SearchIndex:
        made.append(_open(engine, request, spec, **kw))
        return made[-1]

    yield make
    for idx in made:
        if idx.engine == "opensearch":
            idx.drop()
        idx.close()


@pytest.fixture(scope="module")
def loaded_indexes(request: pytest.FixtureRequest) -> Iterator[dict[str, SearchIndex]]:
    """Both engines holding the same corpus, read-only; built on first use."""
    built: dict[str, SearchIndex] = {}

    class Lazy(dict):
        def __missing__(self, engine: str) -> SearchIndex:
            idx = _open(engine, request, SPEC)
            idx.index(corpus(), refresh=True)
            built[engine] = idx
            return idx

    yield Lazy()
    for idx in built.values():
        if idx.engine == "opensearch":
            idx.drop()
        idx.close()


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return request.param
