"""generate → load: nothing lost, quarantine with the expected codes, idempotent re-runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from graph import GraphStore, open_graph
from ingest.load import LoadReport, iter_quarantine, load_folder
from ontology.errors import CardinalityViolation, InputFormatError


def test_counts_reconcile_for_every_file(loaded: tuple[GraphStore, LoadReport, Path]) -> None:
    _, report, _ = loaded
    assert report.reconciles
    t = report.totals()
    assert t["received"] == t["accepted"] + t["collapsed"] + t["quarantined"]
    assert t["inserted"] == t["accepted"], "a fresh graph writes every accepted record"


def test_graph_holds_what_was_accepted(loaded: tuple[GraphStore, LoadReport, Path]) -> None:
    store, report, _ = loaded
    counts = store.counts()
    by_table: dict[str, int] = {}
    for f in report.files:
        if f.file.startswith("nodes/"):
            table = store.onto.classes[f.target].table
            by_table[table] = by_table.get(table, 0) + f.accepted
    for table, n in by_table.items():
        stored = sum(c for cls, c in counts.items() if cls in store.onto.descendants(table))
        assert stored == n, table


def test_quarantine_matches_the_ground_truth(loaded: tuple[GraphStore, LoadReport, Path], truth: dict) -> None:
    _, report, _ = loaded
    got: dict[str, dict[str, str]] = {}
    for q in iter_quarantine(report.quarantine_dir):
        got.setdefault(q["file"], {})[str(q["row"])] = q["code"]
    assert got == truth["quarantine"]
    # Every quarantined record keeps its content and reasons.
    for q in iter_quarantine(report.quarantine_dir):
        assert q["record"] and q["messages"]


def test_reloading_changes_nothing(loaded: tuple[GraphStore, LoadReport, Path], province: Path) -> None:
    store, first, data = loaded
    before = store.counts()
    again = load_folder(store, province, quarantine_root=data / "quarantine")
    t = again.totals()
    assert again.batch_id == first.batch_id
    assert t["inserted"] == 0 and t["updated"] == 0 and t["unchanged"] == first.totals()["inserted"]
    assert store.counts() == before


def test_a_changed_record_is_updated_in_place(province: Path, tmp_path: Path, onto) -> None:
    copy = tmp_path / "p"
    shutil.copytree(province, copy)
    store = open_graph(tmp_path / "g.lbdb", onto=onto)
    try:
        load_folder(store, copy, quarantine_root=tmp_path / "q")
        path = copy / "nodes" / "Drug.parquet"
        drugs = pd.read_parquet(path)
        drugs.loc[0, "name"] = drugs.loc[0, "name"] + "（新规格）"
        drugs.to_parquet(path, index=False)
        report = load_folder(store, copy, quarantine_root=tmp_path / "q")
        drug = next(f for f in report.files if f.file == "nodes/Drug.parquet")
        assert (drug.inserted, drug.updated) == (0, 1)
        assert store.get("Drug", drugs.loc[0, "code"])["name"].endswith("（新规格）")
        assert store.get("Drug", drugs.loc[0, "code"])["batch_id"] == report.batch_id
    finally:
        store.close()


def test_a_second_batch_updates_digests_and_keeps_functional_edges_functional(province: Path, tmp_path: Path,
                                                                           onto) -> None:
    """A changed id number gets the digest of its new value; a resident already living in one division
    cannot be linked to another by a later batch (resides_in is an owl:FunctionalProperty)."""
    store = open_graph(tmp_path / "g.lbdb", onto=onto)
    try:
        load_folder(store, province, quarantine_root=tmp_path / "q")
        residents = pd.read_parquet(province / "nodes" / "Resident.parquet").head(2)
        key = f"{residents.loc[0, 'source_system']}:{residents.loc[0, 'source_id']}"
        new_id = residents.loc[1, "id_number"]  # a valid id (GB 11643 check digit) of another record
        homes = pd.read_parquet(province / "edges" / "resides_in.parquet")
        home = homes.loc[homes["src"] == key, "dst"].iat[0]
        elsewhere = homes.loc[homes["dst"] != home, "dst"].iat[0]
        later = tmp_path / "later"
        (later / "nodes").mkdir(parents=True)
        (later / "edges").mkdir()
        residents.head(1).assign(id_number=new_id).to_parquet(later / "nodes" / "Resident.parquet", index=False)
        pd.DataFrame([{"src": key, "dst": elsewhere, "src_class": "Resident", "dst_class": "Division"}]
                     ).to_parquet(later / "edges" / "resides_in.parquet", index=False)
        report = load_folder(store, later, quarantine_root=tmp_path / "q")
        by_file = {f.file: f for f in report.files}
        assert (by_file["nodes/Resident.parquet"].updated, by_file["nodes/Resident.parquet"].inserted) == (1, 0)
        assert by_file["edges/resides_in.parquet"].reasons == {CardinalityViolation.code: 1}
        stored = store._run("MATCH (n:Resident) WHERE n.key = $k RETURN n.id_number_digest AS d", {"k": key})
        assert stored["d"].iat[0] == store.protector.digest("id_number", new_id)
    finally:
        store.close()


def test_malformed_lines_are_quarantined_not_lost(tmp_path: Path, onto) -> None:
    (tmp_path / "in" / "nodes").mkdir(parents=True)
    lines = ['{"code": "330000", "name": "浙江省", "level": "province"}', "{not json", "[1, 2]"]
    (tmp_path / "in" / "nodes" / "Division.jsonl").write_text("\n".join(lines), encoding="utf-8")
    store = open_graph(tmp_path / "g.lbdb", onto=onto)
    try:
        report = load_folder(store, tmp_path / "in", quarantine_root=tmp_path / "q")
    finally:
        store.close()
    f = report.files[0]
    assert (f.received, f.accepted, f.quarantined) == (3, 1, 2)
    assert f.reasons == {InputFormatError.code: 2}


def test_an_empty_folder_is_an_input_error(tmp_path: Path, onto) -> None:
    store = open_graph(tmp_path / "g.lbdb", onto=onto)
    try:
        with pytest.raises(InputFormatError):
            load_folder(store, tmp_path, quarantine_root=tmp_path / "q")
    finally:
        store.close()


def test_the_report_is_written_beside_the_quarantine(loaded: tuple[GraphStore, LoadReport, Path]) -> None:
    _, report, _ = loaded
    saved = json.loads((Path(report.quarantine_dir) / "report.json").read_text(encoding="utf-8"))
    assert saved["reconciles"] is True and saved["batch_id"] == report.batch_id
    for k in ("received", "accepted", "collapsed", "quarantined"):  # a re-run of the batch rewrites the report
        assert saved["totals"][k] == report.totals()[k]
    assert saved["quality"]["resident_ids"]


def _load_divisions(folder: Path, graph: Path, onto, monkeypatch: pytest.MonkeyPatch | None = None,
                    ) -> tuple[LoadReport, dict[str, int], set[tuple[str, str]]]:
    store = open_graph(graph, onto=onto)
    try:
        if monkeypatch is not None:  # parts of one file into empty tables never read back what is stored
            def stored_rows_read(*_args: object, **_kwargs: object) -> None:
                raise AssertionError("a part of a file read what earlier parts stored")
            with monkeypatch.context() as m:
                for name in ("node_hashes", "_hashes_of", "edge_pairs", "_pairs_from"):
                    m.setattr(type(store), name, stored_rows_read)
                report = load_folder(store, folder, quarantine_root=graph.parent / f"q-{graph.stem}")
        else:
            report = load_folder(store, folder, quarantine_root=graph.parent / f"q-{graph.stem}")
        pairs = store.edge_pairs("within", "Division", "Division")
        return report, store.counts(), set(zip(pairs["src"], pairs["dst"], strict=True))
    finally:
        store.close()


def test_a_file_read_in_parts_loads_as_if_read_whole(tmp_path: Path, onto, monkeypatch: pytest.MonkeyPatch) -> None:
    """Duplicates that fall in different parts still collapse or are quarantined as one batch's would, and
    rows are reported by their place in the file, as when the file is read at once. A later part does not
    read back what the earlier ones stored (that made a 10M-row file quadratic)."""
    from ingest import load
    from ontology.errors import ConflictingDuplicate, MissingKey
    from ontology.identifiers import province_divisions

    divisions = [d for d in province_divisions("330000")][:10]
    nodes = pd.DataFrame({"code": [d.code for d in divisions], "name": [d.name for d in divisions],
                          "level": [d.level for d in divisions]})
    nodes = pd.concat([nodes, nodes.iloc[[1]],                                   # row 10: exact repeat of row 1
                       nodes.iloc[[2]].assign(name="另一个名字"),                 # row 11: conflicts with row 2
                       pd.DataFrame({"code": [None], "name": ["无码"], "level": ["county"]})],  # row 12: no key
                      ignore_index=True)
    within = pd.DataFrame({"src": [d.code for d in divisions[1:]], "dst": ["330000"] + ["330100"] * 8})
    within = pd.concat([within, pd.DataFrame({"src": ["330102"], "dst": ["330000"]})],  # row 9: a second parent
                       ignore_index=True)
    folder = tmp_path / "in"
    (folder / "nodes").mkdir(parents=True)
    (folder / "edges").mkdir()
    nodes.to_parquet(folder / "nodes" / "Division.parquet", index=False)
    within.to_parquet(folder / "edges" / "within.parquet", index=False)

    whole = _load_divisions(folder, tmp_path / "whole.lbdb", onto)
    monkeypatch.setattr(load, "PART_ROWS", 4)
    assert len(list(load.read_parts(folder / "nodes" / "Division.parquet", ("code",)))) == 5  # 13 rows: 4 + repeats
    parted = _load_divisions(folder, tmp_path / "parted.lbdb", onto, monkeypatch)

    assert [f.__dict__ for f in parted[0].files] == [f.__dict__ for f in whole[0].files]
    assert parted[1:] == whole[1:]
    division = parted[0].files[0]
    assert (division.received, division.accepted, division.collapsed, division.quarantined) == (13, 10, 1, 2)
    assert division.reasons == {ConflictingDuplicate.code: 1, MissingKey.code: 1}
    quarantined = {(q["file"], q["row"], q["code"]) for q in iter_quarantine(parted[0].quarantine_dir)}
    assert ("nodes/Division.parquet", 11, ConflictingDuplicate.code) in quarantined
    assert ("nodes/Division.parquet", 12, MissingKey.code) in quarantined
    assert {(f, r) for f, r, c in quarantined if c == CardinalityViolation.code} == {
        ("edges/within.parquet", 1), ("edges/within.parquet", 9)}
