"""Shared fixtures: one small generated province, loaded once per test session."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from graph import GraphStore, open_graph
from ingest.load import LoadReport, load_folder
from ingest.synthetic import generate
from ontology.model import Ontology, load_ontology

SMALL = 3_000
SEED = 11


@pytest.fixture(scope="session")
def onto() -> Ontology:
    return load_ontology()


@pytest.fixture(scope="session")
def province(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("province") / "p"
    generate(out, residents=SMALL, seed=SEED)
    return out


@pytest.fixture(scope="session")
def truth(province: Path) -> dict:
    return json.loads((province / "ground_truth.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def loaded(province: Path, tmp_path_factory: pytest.TempPathFactory, onto: Ontology) -> tuple[GraphStore, LoadReport, Path]:
    data = tmp_path_factory.mktemp("data")
    store = open_graph(data / "graph.lbdb", onto=onto)
    report = load_folder(store, province, quarantine_root=data / "quarantine")
    yield store, report, data
    store.close()


@pytest.fixture(scope="session")
def store(loaded: tuple[GraphStore, LoadReport, Path]) -> GraphStore:
    return loaded[0]
