"""A graph copied into a new Neo4j database by the offline bulk importer reads back as the graph it
was copied from: the same counts, nodes (sealed fields opened with the same keys), relationships and
supervision findings. Needs Java and Maven (a real importer and server); with CI=true a skip is a failure."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
import os
from pathlib import Path

import pyarrow as pa
import pytest

from graph import GraphStore, open_graph
from graph.neo4j_import import ImportFiles, node_columns, write_import_files
from ontology import errors
from ontology.model import Ontology
from services import servers
from services.supervision import Supervision


@pytest.fixture(scope="module")
def java_and_maven() -> None:
    missing = servers.requirements("neo4j")
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and {missing}", pytrace=False)
        pytest.skip(missing)


@pytest.fixture(scope="module")
def copied(java_and_maven: None, store: GraphStore, onto: Ontology, tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("neo4j-copy")
    # small pages, so that the files the importer reads are written a page at a time
    copy = servers.copy_graph_to_neo4j(store, home, port=servers.free_port("neo4j", 0), heap_mib=512, page_rows=1_000)
    target = open_graph(copy.server.url, engine="neo4j", onto=onto, protector=store.protector)
    yield copy, target
    target.close()
    servers.stop("neo4j", home)


def test_the_copy_holds_every_node_and_relationship(copied, store: GraphStore) -> None:
    copy, target = copied
    assert target.counts() == store.counts()
    assert copy.nodes == sum(copy.rows[t] for t in store.onto.tables if t in copy.rows)
    assert copy.nodes + copy.relationships == sum(store.counts().values())
    assert not (copy.server.home / "import").exists()  # the CSV files are removed


def test_nodes_read_back_as_stored(copied, store: GraphStore) -> None:
    _, target = copied
    tables = [t for t in store.onto.tables if t not in store.empty_tables()]
    assert "Resident" in tables
    for table in tables:
        ours, theirs = store.nodes(table).to_dict("records"), target.nodes(table).to_dict("records")
        assert len(theirs) == len(ours), table
        differing = [(a["key"], name, a[name], b.get(name)) for a, b in zip(ours, theirs, strict=True)
                     for name in a if a[name] != b.get(name)]
        assert differing == [], (table, differing[:5])


def test_relationships_and_their_batches_read_back(copied, store: GraphStore) -> None:
    _, target = copied
    total = 0
    for edge in store.onto.edges:
        for source, dest in store.onto.edge_table_pairs(edge):
            ours = sorted(tuple(r.values()) for page in store.stored_edges(edge, source, dest) for r in page.to_pylist())
            theirs = sorted(tuple(r.values()) for page in target.stored_edges(edge, source, dest)
                            for r in page.to_pylist())
            assert theirs == ours, (edge, source, dest)
            total += len(ours)
    assert total == sum(n for name, n in store.counts().items() if name in store.onto.edges)


def test_supervision_finds_the_same_on_the_copy(copied, store: GraphStore, province: Path) -> None:
    _, target = copied
    as_of = dt.datetime.fromisoformat(json.loads((province / "manifest.json").read_text(encoding="utf-8"))["as_of"])

    def findings(on: GraphStore) -> dict[str, list]:
        report = Supervision(on).backtest("core", as_of=as_of, samples=10_000)
        return {r.rule_id: sorted(json.dumps(f["subjects"], sort_keys=True) for f in r.samples) for r in report.rules}

    ours = findings(store)
    assert sum(map(len, ours.values())) > 0
    assert findings(target) == ours


def test_a_running_server_is_not_overwritten(copied, store: GraphStore) -> None:
    copy, _ = copied
    with pytest.raises(errors.GraphCopyFailed) as caught:
        servers.copy_graph_to_neo4j(store, copy.server.home)
    assert caught.value.code == "HG-0208"


def test_an_import_that_does_not_reconcile_is_refused(java_and_maven: None, tmp_path: Path) -> None:
    # a relationship to a node that is not in the files: the importer stops, and nothing is called done
    (tmp_path / "A.csv").write_text("key:ID(Resident),class\nr1,Resident\n", encoding="utf-8")
    (tmp_path / "e.csv").write_text(":START_ID(Resident),:END_ID(Resident),batch_id\nr1,r2,b\n", encoding="utf-8")
    files = ImportFiles(tmp_path, nodes={"Resident": tmp_path / "A.csv"},
                        relationships=[("same_person", tmp_path / "e.csv")], rows={"Resident": 1, "same_person": 1})
    with pytest.raises(errors.GraphCopyFailed) as caught:
        servers.import_neo4j(tmp_path / "home", files)
    assert caught.value.code == "HG-0208"
    assert (tmp_path / "home" / "import.log").exists()


def test_import_files_carry_typed_headers_and_iso_datetimes(store: GraphStore, tmp_path: Path) -> None:
    files = write_import_files(store, tmp_path, page_rows=500)
    text = gzip.decompress((tmp_path / "Encounter.csv.gz").read_bytes()).decode("utf-8")
    header = text.splitlines()[0].split(",")
    assert files.rows["Encounter"] > 500 and text.count('"key:ID(Encounter)"') == 1  # one header over the pages
    props = store.onto.table_properties("Encounter")
    assert header[:2] == ['"key:ID(Encounter)"', '"class"']
    typed = dict(h.strip('"').split(":", 1) for h in header[2:])
    assert set(typed) == set(props)
    assert {n for n, t in typed.items() if t == "localdatetime"} == {n for n, p in props.items()
                                                                   if p.datatype == "dateTime"}
    assert {n for n, t in typed.items() if t.endswith("[]")} == {n for n, p in props.items() if p.is_list}
    checked = 0
    rows = list(csv.DictReader(io.StringIO(text)))
    for name in (n for n, t in typed.items() if t == "localdatetime"):
        row = next((r for r in rows if r[f"{name}:localdatetime"]), None)
        if row is not None:
            assert "T" in row[f"{name}:localdatetime"]
            assert dt.datetime.fromisoformat(row[f"{name}:localdatetime"]) == \
                store.get("Encounter", row["key:ID(Encounter)"])[name]
            checked += 1
    assert checked > 0
    onto = store.onto
    assert files.rows["Encounter"] == sum(n for c, n in store.counts().items()
                                          if c not in onto.edges and onto.cls(c).table == "Encounter")
    assert not files.multiline


def test_a_list_element_holding_the_array_delimiter_is_refused(onto: Ontology) -> None:
    table, listed = next((t, name) for t in onto.tables for name, p in onto.table_properties(t).items() if p.is_list)
    rows = pa.table({"key": ["k1", "k2"], "class": [table, table],
                     listed: pa.array([["a"], ["b;c"]], pa.list_(pa.string()))})
    with pytest.raises(errors.GraphCopyFailed) as caught:
        node_columns(table, rows, onto.table_properties(table))
    assert caught.value.code == "HG-0208" and listed in caught.value.message


def test_cli_copies_the_configured_graph_and_audits_the_copy(java_and_maven: None, tmp_path: Path, onto: Ontology,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from ingest.load import load_folder
    from ingest.synthetic import generate
    from services.cli import app
    from services.security import iter_events
    from services.settings import Settings

    monkeypatch.setenv("HEALTHGRAPH_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HEALTHGRAPH_NEO4J_URI", f"bolt://127.0.0.1:{servers.free_port('neo4j', 0)}")
    settings = Settings()
    generate(tmp_path / "province", residents=300, seed=5)
    embedded = settings.open_graph(onto)  # identifiers sealed with the keys under the data folder
    load_folder(embedded, tmp_path / "province", quarantine_root=tmp_path / "quarantine")
    counts, residents = embedded.counts(), embedded.nodes("Resident").to_dict("records")
    embedded.close()
    try:
        done = CliRunner().invoke(app, ["services", "copy-to-neo4j", "--heap-mb", "512"])
        assert done.exit_code == 0, done.output
        monkeypatch.setenv("HEALTHGRAPH_GRAPH", "neo4j")
        copy = Settings().open_graph(onto)
        try:
            assert copy.counts() == counts
            assert copy.nodes("Resident").to_dict("records") == residents  # opened with the same keys
        finally:
            copy.close()
        again = CliRunner().invoke(app, ["services", "copy-to-neo4j"])
        assert again.exit_code == 2 and "HG-0208" in again.output  # never over a running server
    finally:
        servers.stop("neo4j", settings.servers_dir / "neo4j")
    [event] = [e for e in iter_events(settings.audit_path) if e["action"] == "graph:copy"]
    assert event["nodes"] + event["relationships"] == sum(counts.values()) and event["opsig"]
