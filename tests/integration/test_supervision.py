"""Supervision rules on the generated province: every planted anomaly found and nothing else (per
rule, against ground_truth.json), dedup on re-run, lifecycle, re-evaluation, backtest, coded errors."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from graph import GraphStore, open_graph
from graph.catalog import QUERIES, named_query
from ingest.load import load_folder
from ingest.synthetic.truth import score
from ontology import errors
from ontology.model import Ontology
from services.mpi import MasterPersonIndex
from services.security import SM2KeyPair
from rules import evaluate
from rules.columnar import candidates
from services.supervision import AlertState, Supervision

@pytest.fixture(scope="module")
def sup_store(province: Path, tmp_path_factory: pytest.TempPathFactory, onto: Ontology) -> GraphStore:
    data = tmp_path_factory.mktemp("supervision")
    store = open_graph(data / "g.lbdb", onto=onto)
    load_folder(store, province, quarantine_root=data / "quarantine")
    MasterPersonIndex(store).build(progress=False)
    yield store
    store.close()


@pytest.fixture(scope="module")
def as_of(province: Path) -> dt.datetime:
    manifest = json.loads((province / "manifest.json").read_text(encoding="utf-8"))
    return dt.datetime.fromisoformat(manifest["as_of"])


@pytest.fixture(scope="module")
def alert_key() -> SM2KeyPair:
    return SM2KeyPair.generate()


@pytest.fixture(scope="module")
def first_run(sup_store: GraphStore, as_of: dt.datetime, alert_key: SM2KeyPair):
    sup = Supervision(sup_store, signer=alert_key)
    return sup, sup.run("core", as_of=as_of)


def test_every_planted_anomaly_is_found_and_nothing_else(first_run, truth: dict, province: Path) -> None:
    sup, report = first_run
    records = pd.read_parquet(province / "truth" / "person_records.parquet")
    assert {a["kind"] for a in truth["anomalies"]} <= set(sup.pack("core").rules), "every anomaly kind has a rule"
    alerts = {rule: [a["subjects"] for a in sup.alerts(rule_id=rule, limit=1000)] for rule in sup.pack("core").rules}
    scores = score(alerts, truth["anomalies"], records)
    assert set(scores) == set(sup.pack("core").rules)
    for rule_id, s in scores.items():
        assert (rule_id, s.recall, s.precision) == (rule_id, 1.0, 1.0), (s, alerts[rule_id])
        assert s.alerts == s.planted >= 1, rule_id  # one alert per planted case, and every rule has one
    assert report.totals["raised"] == len(truth["anomalies"])
    assert not any(r.errors or r.skipped for r in report.rules)


def test_alerts_carry_rule_version_evidence_and_explanation(first_run) -> None:
    sup, _ = first_run
    code = sup.alerts(rule_id="rx_dose_above_maximum")[0]["code"]
    alert = sup.alert(code)
    rule = sup.rule("rx_dose_above_maximum")
    assert alert["rule_version"] == rule.version and alert["severity"] == str(rule.severity)
    assert alert["alert_state"] == AlertState.NEW and rule.basis["article"] in alert["legal_basis"]
    values = alert["explanation"]["values"]
    assert values["daily_dose"] > values["max_daily_dose"]  # the explanation shows why it held
    row = alert["alert_evidence"]["rows"][0]
    assert row["prescription"] in alert["dedup_key"] and alert["alert_evidence"]["query"] == rule.query


def test_rerun_updates_instead_of_duplicating(sup_store: GraphStore, first_run, as_of: dt.datetime) -> None:
    sup, first = first_run
    again = sup.run("core", as_of=as_of)
    assert again.totals["raised"] == 0 and again.totals["updated"] == first.totals["raised"]
    assert len(sup.alerts(limit=1000)) == first.totals["raised"]
    assert all(a["occurrences"] >= 2 for a in sup.alerts(limit=1000))


def test_lifecycle_with_who_when_why(first_run, as_of: dt.datetime) -> None:
    sup, _ = first_run
    code = sup.alerts(rule_id="rx_too_many_drugs")[0]["code"]
    acked = sup.acknowledge(code, "inspector:wang", "核查中 checking")
    assert acked["alert_state"] == "acknowledged" and acked["acknowledged_by"] == "inspector:wang"
    with pytest.raises(errors.AlertTransitionNotAllowed):
        sup.resolve(code, "inspector:wang", "")  # closing needs a reason
    closed = sup.resolve(code, "inspector:wang", "已约谈处方医师 prescriber interviewed")
    assert closed["alert_state"] == "resolved" and closed["closed_by"] == "inspector:wang"
    assert [h["to"] for h in closed["alert_history"]] == ["new", "acknowledged", "resolved"]
    with pytest.raises(errors.AlertTransitionNotAllowed) as exc:
        sup.acknowledge(code, "inspector:li")
    assert exc.value.code == "HG-0910"
    # Inside the suppression window the same finding is suppressed, not raised again.
    report = sup.run(rules=["rx_too_many_drugs"], as_of=as_of)
    assert (report.rules[0].raised, report.rules[0].suppressed) == (0, 1)
    fp = sup.alerts(rule_id="rx_supply_over_7_days")[0]["code"]
    assert sup.false_positive(fp, "inspector:li", "慢性病长期处方 chronic")["alert_state"] == "false_positive"
    with pytest.raises(errors.UnknownAlert):
        sup.alert("AL-nope")


def test_alerts_are_sm2_signed_and_checked_on_every_read(first_run, sup_store: GraphStore,
                                                          alert_key: SM2KeyPair) -> None:
    """GB/T 22239-2019 8.1.4.9 抗抵赖: alerts are signed by the platform key when written (raised, updated or
    changed state) and verified when read; an alert altered in the engine reads as invalid."""
    sup, _ = first_run
    listed = sup.alerts(limit=1000)
    assert listed and {a["signature_state"] for a in listed} == {"valid"}
    code = next(a["code"] for a in listed if a["state"] == "new")
    acked = sup.acknowledge(code, "inspector:zhao", "复核 re-checking")  # a state change re-signs
    assert acked["signature_state"] == "valid" and acked["signed_by"] == alert_key.key_id
    message = acked["message"]
    forged = "已核实无问题 nothing found"
    sup_store._run("MATCH (a:Alert) WHERE a.key = $k SET a.message = $m", {"k": code, "m": forged})
    try:
        assert sup.alert(code)["signature_state"] == "invalid"
        assert next(a for a in sup.alerts(limit=1000) if a["code"] == code)["signature_state"] == "invalid"
    finally:
        sup_store._run("MATCH (a:Alert) WHERE a.key = $k SET a.message = $m", {"k": code, "m": message})
    assert sup.alert(code)["signature_state"] == "valid"
    stranger = Supervision(sup_store, signer=SM2KeyPair.generate())
    assert stranger.alert(code)["signature_state"] == "unknown_key"
    assert Supervision(sup_store, trusted=[alert_key.public_key()]).alert(code)["signature_state"] == "valid"


def test_re_evaluation_closes_alerts_whose_condition_no_longer_holds(first_run, as_of: dt.datetime) -> None:
    sup, _ = first_run
    rule = sup.rule("expired_unit_in_stock")
    assert rule.auto_resolve
    open_before = sup.alerts(rule_id=rule.id, state="new")
    assert open_before
    # Judged a year earlier, the unit had not expired: the condition no longer holds, the alert closes.
    report = sup.run(rules=[rule.id], as_of=as_of - dt.timedelta(days=365))
    assert report.rules[0].closed == len(open_before)
    closed = sup.alert(open_before[0]["code"])
    assert closed["alert_state"] == "resolved" and closed["closed_by"] == "system:supervision"


def test_backtest_counts_per_rule_without_creating_alerts(first_run, truth: dict) -> None:
    sup, _ = first_run
    before = len(sup.alerts(limit=1000))
    late = [a for a in truth["anomalies"] if a["kind"] == "late_infectious_disease_report"]
    report = sup.backtest("core", since=dt.datetime(2025, 1, 1), until=dt.datetime(2026, 1, 1), samples=2)
    assert len(sup.alerts(limit=1000)) == before and report.dry_run
    per_rule = {r.rule_id: r for r in report.rules}
    assert per_rule["late_infectious_disease_report"].findings == len(late)
    sample = per_rule["late_infectious_disease_report"].samples[0]
    assert sample["evidence"]["rows"] and sample["explanation"]["condition"]
    empty = sup.backtest("core", since=dt.datetime(2020, 1, 1), until=dt.datetime(2021, 1, 1))
    assert sum(r.findings for r in empty.rules if sup.rule(r.rule_id).at) == 0


@pytest.mark.parametrize("rule_id", ["rx_dose_above_maximum", "practice_without_valid_registration"])
def test_a_backtest_over_a_period_reads_only_that_period(first_run, as_of: dt.datetime, rule_id: str) -> None:
    sup = Supervision(first_run[0].store, narrow=False)  # every candidate row, to count them
    rule = sup.rule(rule_id)
    planted = sup.backtest(rules=[rule_id], as_of=as_of, samples=1).rules[0]
    when = dt.datetime.fromisoformat(planted.samples[0]["evidence"]["rows"][0][rule.at])
    since, until = when - dt.timedelta(days=10), when + dt.timedelta(days=10)
    narrow = sup.backtest(rules=[rule_id], as_of=as_of, since=since, until=until).rules[0]
    # the same rows in scope and findings as judging every candidate row against the period
    every = sup.store.query_table(rule.query, **rule.params)
    judged = evaluate(rule, every, as_of=as_of, since=since, until=until)
    assert (narrow.rows, narrow.findings) == (judged.rows, len(judged.findings)) and narrow.findings >= 1
    assert narrow.rows <= narrow.fetched < every.num_rows / 4  # 20 days of a year's rows, not all of them
    assert planted.fetched == every.num_rows  # without a period, everything


def test_a_period_the_engine_cannot_apply_is_applied_to_the_rows(first_run, as_of: dt.datetime) -> None:
    # notifiable diagnoses are read whole (not sliced): the period applies to the rows
    sup = Supervision(first_run[0].store, narrow=False)
    rule = sup.rule("late_infectious_disease_report")
    assert named_query(rule.query).slice_by is None
    since, until = dt.datetime(2025, 3, 1), dt.datetime(2025, 9, 1)
    narrow = sup.backtest(rules=[rule.id], as_of=as_of, since=since, until=until).rules[0]
    every = sup.store.query_table(rule.query, **rule.params)
    judged = evaluate(rule, every, as_of=as_of, since=since, until=until)
    assert narrow.fetched == every.num_rows > narrow.rows == judged.rows
    assert narrow.findings == len(judged.findings)


def test_narrowed_queries_find_what_whole_ones_find(sup_store: GraphStore, as_of: dt.datetime) -> None:
    """The engine keeps back rows no rule reading the query can hold on (rules/narrowing.py): the same
    findings, matches and evaluation errors, from fewer rows."""
    sup = Supervision(sup_store)
    narrowed = sup.backtest("core", as_of=as_of, samples=10_000)
    whole = Supervision(sup_store, narrow=False).backtest("core", as_of=as_of, samples=10_000)
    for n, w in zip(narrowed.rules, whole.rules, strict=True):
        assert (n.rule_id, n.matched, n.findings, n.errors) == (w.rule_id, w.matched, w.findings, w.errors)
        assert sorted(x["dedup_key"] for x in n.samples) == sorted(x["dedup_key"] for x in w.samples)
    # A query the store answers from table scans (graph/scan.py) is never narrowed: it returns every row.
    scanned = {n.rule_id for n in narrowed.rules if named_query(sup.rule(n.rule_id).query).scan}
    assert {"rx_supply_over_7_days", "practice_outside_scope"} <= scanned
    assert all(n.fetched == w.fetched for n, w in zip(narrowed.rules, whole.rules, strict=True) if n.rule_id in scanned)
    fetched = {n.rule_id: (n.fetched, w.fetched) for n, w in zip(narrowed.rules, whole.rules, strict=True)
               if named_query(sup.rule(n.rule_id).query).narrowable and n.rule_id not in scanned}
    assert set(fetched) >= {"appointment_abuse"}
    assert all(n < w for n, w in fetched.values()), fetched
    assert sum(n for n, _ in fetched.values()) < sum(w for _, w in fetched.values()) / 2, fetched
    assert sum(r.findings for r in narrowed.rules) >= 10  # not 0 == 0


# The same pairs formed inside the engine (the statements these queries had before they paired outside it): an
# oracle the test province is small enough for.
_PAIRED_IN_ENGINE = {
    "repeat_tests_across_institutions": """
        MATCH (m:MasterPerson)<-[:link_master]-(l:PersonLink)-[:link_record]->(r:Resident)
              <-[:of_patient]-(e:Encounter)<-[:in_encounter]-(a:LabResult)-[:of_test]->(t:LabTest),
              (e)-[:at_institution]->(i:Institution)
        WHERE l.state = 'MATCH'
        WITH m, t, collect({result: a.key, at: a.occurred_at, institution: i.key}) AS done
        UNWIND done AS x
        UNWIND done AS y
        WITH m, t, x, y WHERE x.institution <> y.institution AND x.at < y.at
        RETURN m.key AS master_id, t.key AS test, x.result AS first_result, y.result AS second_result""",
    "overlapping_inpatient_stays": """
        MATCH (m:MasterPerson)<-[:link_master]-(la:PersonLink)-[:link_record]->(:Resident)<-[:of_patient]-(a:Encounter)
        MATCH (m)<-[:link_master]-(lb:PersonLink)-[:link_record]->(:Resident)<-[:of_patient]-(b:Encounter)
        WHERE la.state = 'MATCH' AND lb.state = 'MATCH' AND a.class = 'InpatientEncounter'
              AND b.class = 'InpatientEncounter'
              AND (a.occurred_at < b.occurred_at OR (a.occurred_at = b.occurred_at AND a.key < b.key))
        RETURN m.key AS master_id, a.key AS first_stay, b.key AS second_stay""",
}


@pytest.mark.parametrize("name", sorted(_PAIRED_IN_ENGINE))
def test_pairs_formed_outside_the_engine_are_those_formed_inside(sup_store: GraphStore, name: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A person's rows pair in the store (graph.catalog.Pairs), in any number of slices, exactly as one
    Cypher statement pairs them."""
    expected = sup_store._run(_PAIRED_IN_ENGINE[name])
    columns = list(expected.columns)
    expected = sorted(map(tuple, expected.itertuples(index=False)))
    whole = sup_store.query_table(name)
    assert sorted(tuple(r[c] for c in columns) for r in whole.to_pylist()) == expected
    assert len(expected) >= 3 and len({r[0] for r in expected}) >= 2  # pairs of several persons: not 0 == 0
    monkeypatch.setattr(sup_store, "slice_rows", 40)
    assert len(sup_store._slices(named_query(name))) > 5
    sliced = sup_store.query_table(name)
    assert sorted(map(repr, sliced.to_pylist())) == sorted(map(repr, whole.to_pylist()))


def _plain_schema(table: pa.Table) -> pa.Schema:
    return pa.schema([pa.field(f.name, f.type.value_type if pa.types.is_dictionary(f.type) else f.type)
                      for f in table.schema])


@pytest.mark.parametrize("name", sorted(name for name, q in QUERIES.items() if q.scan))
def test_rows_assembled_from_table_scans_are_the_statements_rows(sup_store: GraphStore, name: str, as_of: dt.datetime,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """graph/scan.py: a scan-declared query gives the rows its statement gives, over the whole graph and over a
    period, without the engine running the statement."""
    ran: list[str] = []
    run = sup_store._run_arrow
    monkeypatch.setattr(sup_store, "_run_arrow", lambda statement, *a: ran.append(statement) or run(statement, *a))
    whole = None
    for period in (None, (as_of - dt.timedelta(days=300), as_of - dt.timedelta(days=30))):
        ran.clear()
        scanned = sup_store.query_table(name, period=period)
        assert named_query(name).cypher not in ran
        with monkeypatch.context() as statement_only:
            statement_only.setattr(sup_store.dialect, "scans", False)
            stated = sup_store.query_table(name, period=period)
        assert named_query(name).cypher in ran
        assert _plain_schema(scanned) == _plain_schema(stated)  # texts may be dictionary-encoded on either side
        assert sorted(map(repr, scanned.to_pylist())) == sorted(map(repr, stated.to_pylist()))
        whole = whole or scanned.num_rows
    assert 0 < scanned.num_rows < whole  # the period keeps some rows and not all: not 0 == 0


@pytest.mark.parametrize("name", sorted(name for name, q in QUERIES.items() if q.scan))
def test_scans_read_in_pages_of_node_offsets_give_the_same_rows(sup_store: GraphStore, name: str, as_of: dt.datetime,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A converted scan (nullable columns) bigger than a page is read a page of node offsets at a time, so that
    no whole converted result has to fit the buffer pool (LadybugStore.scan_page_rows); the rows are the same."""
    period = (as_of - dt.timedelta(days=300), as_of)
    whole = sup_store.query_table(name, period=period)
    paged_scans: list[tuple[str, dict]] = []
    scan = sup_store._scan

    def recorded(statement: str, params: dict, never_null: bool) -> pa.Table:
        if "page_from" in params:
            paged_scans.append((statement, params))
        return scan(statement, params, never_null)

    monkeypatch.setattr(sup_store, "_scan", recorded)
    monkeypatch.setattr(sup_store, "scan_page_rows", 7)
    paged = sup_store.query_table(name, period=period)
    assert all("offset(id(n)) >= $page_from" in statement for statement, _ in paged_scans)
    if name == "prescription_items_review":  # the items' dose and supply columns may be null
        assert len({params["page_from"] for _, params in paged_scans}) > 2
    assert whole.num_rows > 0
    assert sorted(map(repr, paged.to_pylist())) == sorted(map(repr, whole.to_pylist()))


def test_lookups_assembled_from_table_scans_are_their_statements_rows(sup_store: GraphStore) -> None:
    """A scan-declared lookup (the master of each resident record) gives the rows its statement gives."""
    scanned = {lookup.cypher for q in QUERIES.values() for lookup in q.lookups if lookup.scan}
    assert scanned
    for cypher in scanned:
        rows = sup_store._scanned(cypher, None, {})
        stated = sup_store._run_arrow(cypher)
        assert _plain_schema(rows) == _plain_schema(stated)
        assert sorted(map(repr, rows.to_pylist())) == sorted(map(repr, stated.to_pylist()))
        assert rows.num_rows >= 100  # the master index is built: not 0 == 0


def test_a_run_keeps_only_what_other_scanned_statements_read(sup_store: GraphStore) -> None:
    """Scans and assembled rows are kept for the rest of a run only where another statement reads them."""
    fetched: dict = {}
    items = sup_store.query_table("prescription_items_review", lookups=fetched)
    kept = "\n".join(fetched)
    assert items.num_rows > 0 and "MATCH (n:PrescriptionItem)" not in kept  # read by the items alone
    assert "MATCH (a:Encounter)-[:of_patient]->(b:Resident)" in kept  # the two pair queries read it too
    assert named_query("prescription_items_review").cypher not in kept
    sup_store.query_table("prescription_sizes", lookups=fetched)
    assert named_query("prescription_sizes").cypher in "\n".join(fetched)  # the drug pairs count on it
    before = len(fetched)
    pairs = sup_store.query_table("prescription_drug_pairs", lookups=fetched)
    assert pairs.num_rows > 0 and len(fetched) == before  # nothing scanned again


def test_rules_sharing_a_query_fetch_it_once_per_run(sup_store: GraphStore, as_of: dt.datetime,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    sup = Supervision(sup_store)
    alone = {rid: sup.backtest(rules=[rid], as_of=as_of).rules[0]
             for rid in ("practice_outside_scope", "practice_without_valid_registration")}
    calls: list[str] = []
    query = sup_store.query_table
    monkeypatch.setattr(sup_store, "query_table", lambda name, **kw: calls.append(name) or query(name, **kw))
    together = sup.backtest(rules=list(alone), as_of=as_of)
    assert calls.count("encounter_practice") == 1
    assert [(r.rows, r.matched, r.findings) for r in together.rules] == \
        [(r.rows, r.matched, r.findings) for r in alone.values()]
    assert all(r.findings >= 1 for r in together.rules)  # each rule has a planted anomaly: not 0 == 0


def test_queries_of_one_run_sharing_a_lookup_fetch_it_once(sup_store: GraphStore, as_of: dt.datetime,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    masters = named_query("overlapping_inpatient_stays").lookups[0].cypher
    assert masters in [lookup.cypher for lookup in named_query("repeat_tests_across_institutions").lookups]
    calls: list[str] = []
    run, scanned = sup_store._run_arrow, sup_store._scanned
    monkeypatch.setattr(sup_store, "_run_arrow", lambda cypher, *a, **kw: calls.append(cypher) or run(cypher, *a, **kw))
    monkeypatch.setattr(sup_store, "_scanned", lambda cypher, *a: calls.append(cypher) or scanned(cypher, *a))
    report = Supervision(sup_store).backtest(rules=["repeat_test_within_recognition_window", "overlapping_admissions"],
                                             as_of=as_of)
    assert calls.count(masters) == 1  # run as a statement or assembled from scans, once
    assert all(r.findings >= 1 for r in report.rules)  # each rule has a planted anomaly: not 0 == 0


def test_columnar_pruning_finds_what_the_row_by_row_path_finds(sup_store: GraphStore, as_of: dt.datetime) -> None:
    """Every core rule over the province: rows judged by rule-engine one by one (the candidate rows as
    dicts) and the pruned path (Arrow columns first) give the same counts, findings and errors, and the
    pruning leaves few rows beyond those that match (rules/columnar.py)."""
    sup = Supervision(sup_store)
    for rule in sup.pack("core").rules.values():
        by_row = evaluate(rule, sup_store.query(rule.query, **rule.params), as_of=as_of)
        table = sup_store.query_table(rule.query, **rule.params)
        pruned = evaluate(rule, table, as_of=as_of)
        assert (pruned.rows, pruned.matched, len(pruned.errors)) == (by_row.rows, by_row.matched, len(by_row.errors))
        assert sorted(f.dedup_key for f in pruned.findings) == sorted(f.dedup_key for f in by_row.findings)
        assert [f.rows for f in sorted(pruned.findings, key=lambda f: f.dedup_key)] == \
            [f.rows for f in sorted(by_row.findings, key=lambda f: f.dedup_key)], rule.id
        in_scope, survivors = candidates(rule, table, as_of=as_of)
        assert len(survivors) - by_row.matched <= 0.01 * in_scope, rule.id


def test_rules_needing_the_master_index_are_skipped_without_it(store: GraphStore, as_of: dt.datetime) -> None:
    sup = Supervision(store)  # the shared store: no master index; a backtest writes nothing
    report = sup.backtest(rules=["overlapping_admissions"], as_of=as_of)
    assert report.rules[0].skipped and "master" in report.rules[0].skipped


def test_rest_routes_run_list_change_and_stream(sup_store: GraphStore, tmp_path: Path, as_of: dt.datetime) -> None:
    from fastapi.testclient import TestClient

    from services.api import create_app
    from services.settings import Settings

    settings = Settings(data_dir=tmp_path)
    from tests.e2e.auth import auth_headers

    with TestClient(create_app(settings, store=sup_store)) as client:
        headers = auth_headers(client, "supervisor", name="inspector:zhao")
        rules = client.get("/supervision/rules", headers=headers).json()
        assert {r["id"] for r in rules} >= {"rx_interaction", "appointment_abuse"}
        assert all(c["passed"] for c in client.get("/supervision/rules/rx_interaction/tests", headers=headers).json())
        run = client.post("/supervision/run", json={"rules": ["vaccination_with_recalled_lot"],
                                                    "as_of": as_of.isoformat()}, headers=headers).json()
        assert run["rules"][0]["findings"] == 1
        listed = client.get("/supervision/alerts", params={"rule_id": "vaccination_with_recalled_lot"},
                            headers=headers).json()
        code = listed[0]["code"]
        detail = client.get(f"/supervision/alerts/{code}", headers=headers).json()
        assert detail["explanation"]["values"] == {"recalled": True}
        if detail["alert_state"] == "new":
            acked = client.post(f"/supervision/alerts/{code}/ack", json={}, headers=headers).json()
            assert acked["acknowledged_by"] == "inspector:zhao"
        bad = client.post(f"/supervision/alerts/{code}/resolve", json={}, headers=headers)
        assert bad.status_code == 409 and bad.json()["code"] == "HG-0910"
        assert client.get("/supervision/alerts/AL-none", headers=headers).json()["code"] == "HG-0909"
        assert client.get("/supervision/alerts", params={"state": "nope"}, headers=headers).status_code == 422
        back = client.post("/supervision/backtest", json={"since": "2025-01-01T00:00:00",
                                                          "until": "2026-01-01T00:00:00"}, headers=headers).json()
        assert back["dry_run"] and len(back["rules"]) == len(rules)
        # An idle stream closes at its timeout with only the opening comment.
        with client.stream("GET", "/supervision/alerts/stream", params={"timeout": 0.2}, headers=headers) as resp:
            body = "".join(resp.iter_text())
        assert resp.headers["content-type"].startswith("text/event-stream") and "event: alert" not in body


def test_cli_check_and_test(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from services.cli import app

    runner = CliRunner()
    ok = runner.invoke(app, ["rules", "check"])
    assert ok.exit_code == 0 and "core" in ok.output
    tested = runner.invoke(app, ["rules", "test"])
    assert tested.exit_code == 0 and "0 failed" in tested.output
    (tmp_path / "bad.yaml").write_text("pack: bad\nversion: '1'\ntitle: {zh: 坏, en: bad}\nrules:\n"
                                       "  - {id: r1, version: '1', title: {zh: a, en: a}, basis: {document: d, "
                                       "article: a}, seed_function: s, severity: loud, query: blood_inventry, "
                                       "when: 'x', dedup_key: [unit], message: {zh: m, en: m}}\n", encoding="utf-8")
    bad = runner.invoke(app, ["rules", "check", "--pack-dir", str(tmp_path)])
    assert bad.exit_code == 2 and "HG-0901" in bad.output and "HG-0905" in bad.output and "HG-0906" in bad.output


# ---------------------------------------------------------------- a province without planted anomalies
@pytest.fixture(scope="module")
def clean_store(tmp_path_factory: pytest.TempPathFactory, onto: Ontology, province: Path) -> GraphStore:
    from ingest.synthetic import generate

    planted = json.loads((province / "manifest.json").read_text(encoding="utf-8"))
    data = tmp_path_factory.mktemp("clean")
    # The anomaly-free twin of the test province: same size and seed, anomalies off.
    result = generate(data / "p", residents=planted["residents"], seed=planted["seed"], anomalies=False)
    assert result.ground_truth["anomalies"] == []
    store = open_graph(data / "g.lbdb", onto=onto)
    load_folder(store, data / "p", quarantine_root=data / "quarantine")
    MasterPersonIndex(store).build(progress=False)
    yield store
    store.close()


def test_no_alert_on_a_province_generated_with_anomalies_off(clean_store: GraphStore, as_of: dt.datetime,
                                                              truth: dict, tmp_path_factory) -> None:
    sup = Supervision(clean_store)
    report = sup.run("core", as_of=as_of)
    assert not any(r.errors or r.skipped for r in report.rules)
    assert {r.rule_id for r in report.rules} == set(sup.pack("core").rules)
    assert report.totals["rows"] > 0  # the rules did look at candidate rows
    raised = {r.rule_id: r.raised for r in report.rules if r.raised}
    assert raised == {}, [(a["rule_id"], a["message"]) for a in sup.alerts(limit=50)]
    assert sup.alerts(limit=1000) == []
    # The traceability scenarios stay: they are not supervision anomalies.
    assert clean_store.query("donor_of_donation", din=_reactive_donation(clean_store))


def _reactive_donation(store: GraphStore) -> str:
    return next(r["unit"].split(":")[0] for r in store.query("blood_inventory") if r["status"] == "quarantined")


def test_generate_cli_switch_leaves_anomalies_out(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from services.cli import app

    out = tmp_path / "p"
    done = CliRunner().invoke(app, ["generate", "--out", str(out), "--residents", "600", "--seed", "3",
                                    "--no-anomalies"])
    assert done.exit_code == 0, done.output
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    truth = json.loads((out / "ground_truth.json").read_text(encoding="utf-8"))
    assert manifest["anomalies"] is False and truth["anomalies"] == [] and truth["positive_donor"]["units"]


# ---------------------------------------------------------------- delivery: webhooks and the SSE stream
def test_webhook_subscription_over_rest_delivers_signed_alerts_and_dead_letters(
        sup_store: GraphStore, tmp_path: Path, as_of: dt.datetime, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from services.api import create_app
    from services.cli import app as cli
    from services.settings import Settings
    from services.webhooks import SIGNATURE_HEADER, verify_signature
    from tests.e2e.auth import auth_headers
    from tests.integration.test_webhooks import Receiver

    secret = "inspector-webhook-secret-42"
    settings = Settings(data_dir=tmp_path, webhook_attempts=2, webhook_backoff=0.05)
    rule = "vaccination_with_recalled_lot"
    with Receiver([200]) as ok, Receiver([503]) as down, TestClient(create_app(settings, store=sup_store)) as client:
        headers = auth_headers(client, "supervisor", name="inspector:zhao")
        sub = client.post("/supervision/webhooks", json={"url": ok.url, "secret": secret, "rules": [rule]},
                          headers=headers)
        assert sub.status_code == 201 and sub.json()["secret"] == "***"
        bad = client.post("/supervision/webhooks", json={"url": down.url, "secret": secret,
                                                         "severities": ["critical"]}, headers=headers).json()
        assert client.post("/supervision/webhooks", json={"url": ok.url, "secret": secret,
                                                          "rules": ["rx_interation"]}, headers=headers).json()["code"] == "HG-0908"
        run = client.post("/supervision/run", json={"rules": [rule], "as_of": as_of.isoformat()}, headers=headers).json()
        assert run["rules"][0]["findings"] == 1
        deadline = time.monotonic() + 10
        while (not ok.requests or not client.get("/supervision/webhooks/dead-letters", headers=headers).json()) \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        (req,) = ok.requests
        assert verify_signature(secret, req["body"], req["headers"][SIGNATURE_HEADER.lower()])
        payload = json.loads(req["body"])
        assert payload["alert"]["rule_id"] == rule and payload["alert"]["code"] in run["alerts"]
        letters = client.get("/supervision/webhooks/dead-letters", params={"subscription": bad["id"]},
                             headers=headers).json()
        assert len(letters) == 1 and letters[0]["attempts"] == 2 and len(down.requests) == 2
        assert letters[0]["alert"]["code"] == payload["alert"]["code"]
        attempts = client.get("/supervision/webhooks/deliveries", headers=headers).json()["attempts"]
        assert {a["status"] for a in attempts} == {200, 503}
        assert client.get("/supervision/webhooks/WH-none", headers=headers).status_code == 404
        # The CLI reads the same file.
        monkeypatch.setenv("HEALTHGRAPH_DATA_DIR", str(tmp_path))
        listed = CliRunner().invoke(cli, ["alerts", "webhooks", "list", "--json"])
        assert listed.exit_code == 0 and sub.json()["id"] in listed.output and secret not in listed.output
        dead = CliRunner().invoke(cli, ["alerts", "webhooks", "dead-letters", "--json"])
        assert dead.exit_code == 0 and letters[0]["id"] in dead.output
        assert client.delete(f"/supervision/webhooks/{bad['id']}", headers=headers).status_code == 200
        assert [s["id"] for s in client.get("/supervision/webhooks", headers=headers).json()] == [sub.json()["id"]]


def test_sse_stream_delivers_an_alert_event(sup_store: GraphStore, first_run, tmp_path: Path,
                                            as_of: dt.datetime) -> None:
    """A real server (uvicorn on a free port): open the stream, change an alert, read the event."""
    import queue
    import threading
    import time

    import httpx2 as httpx
    import uvicorn

    from services.api import create_app
    from services.settings import Settings

    from tests.e2e.auth import auth_headers

    app = create_app(Settings(data_dir=tmp_path), store=sup_store)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", ws="none"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    base = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    lines: queue.Queue[str] = queue.Queue()
    with httpx.Client(base_url=base) as http:
        headers = auth_headers(http, "supervisor", app=app, name="inspector:sun")

    def listen() -> None:
        with httpx.stream("GET", f"{base}/supervision/alerts/stream", params={"max_events": 1, "timeout": 15},
                          timeout=20, headers=headers) as resp:
            lines.put(resp.headers["content-type"])
            for line in resp.iter_lines():
                lines.put(line)
        lines.put("<closed>")

    reader = threading.Thread(target=listen, daemon=True)
    reader.start()
    try:
        assert lines.get(timeout=10).startswith("text/event-stream")
        assert lines.get(timeout=10) == ": supervision alert stream"  # subscribed: events from now on arrive
        target = next(a for a in httpx.get(f"{base}/supervision/alerts", params={"state": "new"},
                                           headers=headers).json())
        acked = httpx.post(f"{base}/supervision/alerts/{target['code']}/ack", json={"reason": "核查 checking"},
                           headers=headers)
        assert acked.status_code == 200
        got: list[str] = []
        while "<closed>" not in got:
            got.append(lines.get(timeout=10))
        event = next(line for line in got if line.startswith("event:"))
        data = json.loads(next(line for line in got if line.startswith("data:")).removeprefix("data:"))
        assert event == "event: alert"
        assert data["code"] == target["code"] and data["event"] == "acknowledged" and data["state"] == "acknowledged"
        assert data["rule_id"] == target["rule_id"]
    finally:
        server.should_exit = True
        thread.join(10)
        reader.join(5)


# ---------------------------------------------------------------- a busier province (more visits a resident)
def test_planted_anomalies_alone_are_found_at_five_times_the_visits(tmp_path: Path, onto: Ontology) -> None:
    """The benchmark's 10M-encounter province has ≈ 10 visits a resident: more visits must not make the
    clean bulk look anomalous (repeat tests, overlapping stays, booking counts all grow with them).
    Its care is generated in batches of residents, as the benchmark's is: here four."""
    from ingest.synthetic import generate

    base = generate(tmp_path / "base", residents=1500, seed=11)
    busy = generate(tmp_path / "busy", residents=1500, seed=11, encounter_rate=5.6, batch_residents=400)

    assert 4.5 < busy.counts["Encounter"] / base.counts["Encounter"] < 6.5
    manifest = json.loads((tmp_path / "busy" / "manifest.json").read_text(encoding="utf-8"))
    assert (manifest["encounter_rate"], manifest["batch_residents"]) == (5.6, 400)
    store = open_graph(tmp_path / "g.lbdb", onto=onto)
    try:
        load_folder(store, tmp_path / "busy", quarantine_root=tmp_path / "quarantine")
        MasterPersonIndex(store).build(progress=False)
        sup = Supervision(store)
        report = sup.backtest("core", as_of=dt.datetime.fromisoformat(manifest["as_of"]), samples=1000)
    finally:
        store.close()
    assert not any(r.errors or r.skipped for r in report.rules)
    records = pd.read_parquet(tmp_path / "busy" / "truth" / "person_records.parquet")
    found = {r.rule_id: [s["subjects"] for s in r.samples] for r in report.rules}
    scores = score(found, busy.ground_truth["anomalies"], records)
    off = {rid: s for rid, s in scores.items() if (s.recall, s.precision) != (1.0, 1.0)}
    assert off == {}
    assert sum(s.planted for s in scores.values()) == len(busy.ground_truth["anomalies"]) >= len(scores)
