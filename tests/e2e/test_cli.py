"""The `healthgraph` CLI: generate → load → stats → query, and coded errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.cli import app

runner = CliRunner()


def flat(text: str) -> str:
    """The output without the line wrapping rich applies to narrow terminals."""
    return " ".join(text.split())


@pytest.fixture()
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HEALTHGRAPH_DATA_DIR", str(tmp_path))
    return tmp_path


def test_generate_load_stats_query(env: Path) -> None:
    r = runner.invoke(app, ["generate", "--residents", "500", "--seed", "3"])
    assert r.exit_code == 0, r.output
    assert (env / "province" / "ground_truth.json").exists()
    r = runner.invoke(app, ["load"])
    assert r.exit_code == 0, r.output
    assert "✓ received" in flat(r.output)
    r = runner.invoke(app, ["load"])
    assert "0 new, 0 updated" in flat(r.output)
    r = runner.invoke(app, ["stats"])
    assert r.exit_code == 0 and "居民" in r.output
    r = runner.invoke(app, ["query", "residents_in_division", "-p", "code_prefix=33"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert rows and all(row["code"].startswith("33") for row in rows)
    truth = json.loads((env / "province" / "ground_truth.json").read_text(encoding="utf-8"))
    r = runner.invoke(app, ["trace", "lookback", truth["positive_donor"]["reactive_donation"], "--as-of", "2026-01-01"])
    assert r.exit_code == 0, r.output
    out = flat(r.output)
    assert f"reactive {truth['positive_donor']['reactive_donation']}" in out and "quarantine first:" in out
    assert runner.invoke(app, ["trace", "lookback", "Z999925999999"]).exit_code == 2
    r = runner.invoke(app, ["trace", "food-back", "--icd10", truth["outbreak"]["icd10"], "--since", "2025-01-01",
                            "--until", "2026-01-01"])
    assert r.exit_code == 0, r.output
    assert truth["outbreak"]["source_station"] in flat(r.output)
    for command in (["trace", "inventory", "--as-of", "2026-01-01"], ["trace", "vaccine-lots"], ["trace", "drug-repeats"],
                    ["trace", "clusters", "--icd10", "A0", "--since", "2025-01-01", "--until", "2026-01-01",
                     "--replications", "99"]):
        r = runner.invoke(app, command)
        assert r.exit_code == 0, (command, r.output)
    r = runner.invoke(app, ["trace", "drug-repeats"])
    assert truth["drug_trace_repeat"]["code"] in flat(r.output)
    r = runner.invoke(app, ["trace", "vaccine-lots"])
    assert truth["aefi_cluster"]["lot"] in flat(r.output) and "⚠" in r.output
    r = runner.invoke(app, ["index"])
    assert r.exit_code == 0, r.output
    assert "documents on tantivy" in flat(r.output) and "Institution" in r.output
    r = runner.invoke(app, ["search", "医院"])
    assert r.exit_code == 0, r.output
    assert "医疗机构" in r.output or "Institution" in r.output


def test_unknown_query_exits_with_its_code(env: Path) -> None:
    r = runner.invoke(app, ["query", "residnts_in_division"])
    assert r.exit_code == 2 and "HG-0202" in flat(r.output)


def test_services_status_names_each_server(env: Path) -> None:
    r = runner.invoke(app, ["services", "status"])
    assert r.exit_code == 0 and "neo4j" in r.output and "opensearch" in r.output
    assert runner.invoke(app, ["services", "status", "mysql"]).exit_code == 2


def test_ontology_check(env: Path) -> None:
    r = runner.invoke(app, ["ontology", "check"])
    assert r.exit_code == 0, r.output
    assert "ontology OK" in flat(r.output)
