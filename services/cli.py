"""The ``healthgraph`` command line: thin wrappers over library functions."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ontology.errors import HealthGraphError
from services.mpi_cli import mpi_app
from services.access_cli import access_app
from services.audit_cli import audit_app
from services.keys_cli import keys_app
from services.knowledge_cli import ask, kb_app, triage
from services.registries_cli import registry_app
from services.research_cli import research_app
from services.supervision_cli import alerts_app, rules_app

app = typer.Typer(help="HealthGraph 区域人口健康知识图谱 — regional population-health knowledge graph.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
ontology_app = typer.Typer(help="本体 The ontology: check and generate artefacts.", no_args_is_help=True)
app.add_typer(ontology_app, name="ontology")
services_app = typer.Typer(help="引擎服务 Neo4j and OpenSearch servers on 127.0.0.1, fetched from Maven Central.",
                           no_args_is_help=True)
app.add_typer(services_app, name="services")
SERVER_NAMES = ("neo4j", "opensearch")
trace_app = typer.Typer(help="追溯 Traceability for investigators: blood, food, vaccines, drugs, case clusters.",
                        no_args_is_help=True)
app.add_typer(trace_app, name="trace")
app.add_typer(mpi_app, name="mpi")
app.add_typer(rules_app, name="rules")
app.add_typer(alerts_app, name="alerts")
app.add_typer(registry_app, name="registry")
app.add_typer(kb_app, name="kb")
app.add_typer(audit_app, name="audit")
app.add_typer(access_app, name="access")
app.add_typer(keys_app, name="keys")
app.add_typer(research_app, name="export")
app.command("triage")(triage)
app.command("ask")(ask)
console = Console()


def _settings() -> Any:
    from services.settings import Settings

    return Settings()


def _fail(exc: HealthGraphError) -> None:
    console.print(f"[bold red]{exc.code}[/] {exc.title}: {exc.message}")
    raise typer.Exit(2)


@app.command()
def generate(
    out: Annotated[Path | None, typer.Option(help="Output folder (default: <data_dir>/province)")] = None,
    residents: Annotated[int, typer.Option(help="Number of residents")] = 10_000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same province)")] = 7,
    province: Annotated[str, typer.Option(help="GB/T 2260 province code")] = "330000",
    anomalies: Annotated[bool, typer.Option(
        "--anomalies/--no-anomalies",
        help="植入监管异常 plant the supervision anomalies (--no-anomalies: a clean province on which the "
             "rule packs raise no alert; traceability scenarios stay)")] = True,
    encounter_rate: Annotated[float, typer.Option(
        min=0.1, help="就诊频度 visits per resident relative to the default (≈ 1.8 encounters a resident at 1.0)")] = 1.0,
) -> None:
    """生成合成省份 Generate a synthetic province with planted scenarios and ground truth."""
    from ingest.synthetic import generate as gen

    out = out or _settings().province_dir
    with Progress(TextColumn("[bold]{task.description}"), TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task("starting", total=None)
        result = gen(out, residents=residents, seed=seed, province_code=province, anomalies=anomalies,
                     encounter_rate=encounter_rate, progress=lambda label: bar.update(task, description=label))
    nodes = sum(v for k, v in result.counts.items() if k[:1].isupper())
    edges = sum(v for k, v in result.counts.items() if k[:1].islower() and "/" not in k)
    console.print(f"generated {residents:,} residents → {nodes:,} node records, {edges:,} edges in {out}"
                  + ("" if anomalies else " (no supervision anomalies 未植入监管异常)"))


@app.command()
def load(
    folder: Annotated[Path | None, typer.Argument(help="A folder with nodes/ and edges/ (default: the demo province)")] = None,
) -> None:
    """校验并入库 Validate and load a folder; quarantine bad records; print the reconciliation."""
    from ingest.load import load_folder

    s = _settings()
    folder = folder or s.province_dir
    try:
        store = s.open_graph()
        try:
            with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                          TimeElapsedColumn(), console=console) as bar:
                task = bar.add_task("loading", total=None)
                report = load_folder(store, folder, quarantine_root=s.quarantine_dir,
                                     progress=lambda name, i, n: bar.update(task, description=name, completed=i, total=n))
        finally:
            store.close()
    except HealthGraphError as exc:
        _fail(exc)
        return
    _print_load(report)


def _print_load(report: Any) -> None:
    t = report.totals()
    table = Table(title=f"batch {report.batch_id} · {report.seconds:.1f} s")
    for col in ("file", "received", "accepted", "collapsed", "quarantined", "inserted", "updated", "unchanged", "reasons"):
        table.add_column(col, justify="left" if col in ("file", "reasons") else "right")
    for f in report.files:
        table.add_row(f.file, *(f"{getattr(f, c):,}" for c in ("received", "accepted", "collapsed", "quarantined",
                                                                "inserted", "updated", "unchanged")),
                      " ".join(f"{k}×{v}" for k, v in f.reasons.items()))
    console.print(table)
    mark = "[green]✓[/]" if report.reconciles else "[red]✗[/]"
    console.print(f"{mark} received {t['received']:,} = accepted {t['accepted']:,} + collapsed {t['collapsed']:,} "
                  f"+ quarantined {t['quarantined']:,}; written: {t['inserted']:,} new, {t['updated']:,} updated, "
                  f"{t['unchanged']:,} unchanged. Quarantine: {report.quarantine_dir}")
    for q in report.quality.get("resident_ids", []):
        console.print(f"  id quality {q['file']}: {q['valid_18']:,} valid, {q['missing']:,} missing, "
                      f"{q['legacy_15']:,} legacy 15-digit, {q['invalid']:,} invalid")


@app.command()
def index() -> None:
    """建立检索索引 Build the search indexes of the directory and knowledge classes from the graph."""
    from services.directory import Directory

    s = _settings()
    try:
        store = s.open_graph()
        try:
            directory = Directory.open(s, store)
            with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                          TimeElapsedColumn(), console=console) as bar:
                task = bar.add_task("indexing", total=None)
                counts = directory.rebuild(store, progress=lambda name, i, n: bar.update(
                    task, description=f"indexing {name}", completed=i, total=n))
            directory.close()
        finally:
            store.close()
    except HealthGraphError as exc:
        _fail(exc)
        return
    console.print(f"[green]✓[/] {sum(counts.values()):,} documents on {s.search_engine}: "
                  + ", ".join(f"{t} {n:,}" for t, n in counts.items()))


@app.command()
def search(
    words: Annotated[str, typer.Argument(help="检索词 what to look for")],
    size: Annotated[int, typer.Option(help="Hits per class")] = 3,
) -> None:
    """检索 Search the directory and knowledge (run `healthgraph index` after loading)."""
    from services.directory import Directory

    s = _settings()
    store = s.open_graph()
    try:
        directory = Directory.open(s, store)
        try:
            found = directory.search(words, size=size)
        finally:
            directory.close()
    except HealthGraphError as exc:
        _fail(exc)
        return
    finally:
        store.close()
    console.print(f"tokens: {' '.join(found['tokens'])}")
    for group in found["groups"]:
        console.print(f"[bold]{group['zh']} {group['en']}[/] ({group['total']:,})")
        for hit in group["hits"]:
            console.print(f"  {hit['score']:6.2f}  {hit['id']}  {hit['fields'].get('name', '')}")


@app.command()
def stats() -> None:
    """统计 Node counts per class and edge counts per type."""
    from ontology.model import load_ontology

    s = _settings()
    onto = load_ontology()
    store = s.open_graph(onto)
    try:
        counts = store.counts()
    finally:
        store.close()
    table = Table(title="HealthGraph")
    for col in ("name", "中文", "English", "count"):
        table.add_column(col, justify="right" if col == "count" else "left")
    for name, n in counts.items():
        label = onto.label_of(name)
        table.add_row(name, label.zh, label.en, f"{n:,}")
    console.print(table)


@app.command()
def query(
    name: Annotated[str, typer.Argument(help="A named query from the catalog (see `healthgraph query list`)")],
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="name=value, repeatable")] = None,
) -> None:
    """命名查询 Run a named query and print JSON rows."""
    from graph import QUERIES

    if name == "list":
        for q in QUERIES.values():
            console.print(f"[bold]{q.name}[/] {q.description}  params: {q.params}")
        return
    params = dict(p.split("=", 1) for p in (param or []))
    s = _settings()
    try:
        store = s.open_graph()
        try:
            rows = store.query(name, **params)
        finally:
            store.close()
    except HealthGraphError as exc:
        _fail(exc)
        return
    sys.stdout.write(json.dumps(rows, ensure_ascii=False, default=str, indent=1) + "\n")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option()] = None,
    port: Annotated[int | None, typer.Option()] = None,
) -> None:
    """启动服务 Serve the API and console (default 127.0.0.1:8000)."""
    import uvicorn

    from services.api import create_app

    s = _settings()
    host, port = host or s.host, port or s.port
    console.print(f"API  http://{host}:{port}/docs   console  http://{host}:{port}/   "
                  f"triage  http://{host}:{port}/console/triage")
    uvicorn.run(create_app(s), host=host, port=port, log_level="warning")


@app.command()
def demo(
    residents: Annotated[int | None, typer.Option(help="Residents in the demo province")] = None,
    no_serve: Annotated[bool, typer.Option("--no-serve", help="Stop after loading")] = False,
) -> None:
    """演示 Generate a province, load it and serve the API: the whole platform on this machine."""
    s = _settings()
    n = residents or s.residents
    manifest = s.province_dir / "manifest.json"
    fresh = manifest.exists() and json.loads(manifest.read_text(encoding="utf-8")).get("residents") == n and \
        json.loads(manifest.read_text(encoding="utf-8")).get("seed") == s.seed
    if fresh:
        console.print(f"province of {n:,} residents already generated in {s.province_dir}")
    else:
        generate(out=s.province_dir, residents=n, seed=s.seed, province="330000")
    load(s.province_dir)
    from services.mpi_cli import build as build_master_index

    build_master_index()
    from services.knowledge_cli import kb_import, kb_train
    from services.registries_cli import build as build_registries

    build_registries()
    kb_import(None)
    kb_train()
    index()
    stats()
    console.print(f"\nGround truth of planted scenarios: {s.province_dir / 'ground_truth.json'}")
    if not no_serve:
        serve(None, None)


@ontology_app.command("check")
def ontology_check() -> None:
    """检查本体 Structural rules and the reasoner's consistency check."""
    from ontology.check import check

    report = check()
    console.print(f"{report.classes} classes, {report.properties} data properties, {report.edges} edge types; "
                  f"reasoner: {report.reasoner}")
    for p in report.problems:
        console.print(f"[red]✗[/] {p}")
    if report.problems:
        raise typer.Exit(1)
    console.print("[green]✓ ontology OK[/]")


@ontology_app.command("generate")
def ontology_generate() -> None:
    """生成产物 Write the generated artefacts (records, labels, DDL) into ontology/generated/."""
    from graph import schema_ddl
    from ontology.generate import write_artefacts
    from ontology.model import load_ontology

    onto = load_ontology()
    for path in write_artefacts(onto, schema_ddl(onto)):
        console.print(f"wrote {path}")


AsOf = Annotated[str | None, typer.Option("--as-of", help="Judge expiry on this date (YYYY-MM-DD; default today)")]


@trace_app.command("lookback")
def trace_lookback(
    din: Annotated[str, typer.Argument(help="DIN of the reactive donation")],
    as_of: AsOf = None,
    months: Annotated[int, typer.Option(help="Look-back window in months")] = 12,
) -> None:
    """献血者追溯 Earlier donations in the window, each unit and what to do with it, recipients."""
    import datetime as dt

    from services.blood_safety import lookback

    day = dt.date.fromisoformat(as_of) if as_of else None
    found = _with_store(lambda store: lookback(store, din, as_of=day, months=months))
    console.print(f"donor {found.donor} · reactive {found.index_donation} at {found.reactive_at:%Y-%m-%d} · window from "
                  f"{found.window_from:%Y-%m-%d} · quarantine by {found.quarantine_by} · {found.basis}")
    table = Table(title="血液去向 units")
    for col in ("unit", "component", "status", "expires", "action", "recipients"):
        table.add_column(col)
    for u in found.units:
        table.add_row(u.unit, u.component or "", u.status or "", str(u.expires_on or ""), u.action,
                      " ".join(t["recipient"] or "" for t in u.transfusions))
    console.print(table)
    console.print(f"quarantine first: {', '.join(u.unit for u in found.quarantine_first) or '—'}")


@trace_app.command("traceback")
def trace_traceback(
    recipient: Annotated[str, typer.Argument(help="Resident record key of the recipient")],
    as_of: AsOf = None,
) -> None:
    """受血者溯源 Transfusions → units → donations → donors, and each donor's other recipients."""
    import datetime as dt

    from services.blood_safety import traceback

    day = dt.date.fromisoformat(as_of) if as_of else None
    found = _with_store(lambda store: traceback(store, recipient, as_of=day))
    for t in found["transfusions"]:
        reactions = ", ".join(r["type"] for r in t["reactions"]) or "none"
        console.print(f"{t['transfused_at']:%Y-%m-%d} {t['unit']} ← {t['donation']} ← donor {t['donor']} · "
                      f"reactions: {reactions}")
    for d in found["donors"]:
        others = ", ".join(o["recipient"] for o in d["other_recipients"]) or "none"
        console.print(f"donor {d['donor']}: {len(d['donations'])} donations, {len(d['units'])} units, "
                      f"other recipients: {others}")


Since = Annotated[str, typer.Option(help="Period start (YYYY-MM-DD)")]
Until = Annotated[str, typer.Option(help="Period end, exclusive (YYYY-MM-DD)")]


@trace_app.command("food-back")
def trace_food_back(
    since: Since,
    until: Until,
    icd10: Annotated[str | None, typer.Option(help="Cases: residents diagnosed with this ICD-10 code")] = None,
    case: Annotated[list[str] | None, typer.Option(help="Cases: resident record keys (repeatable)")] = None,
    top: Annotated[int, typer.Option(help="Candidates shown per kind")] = 5,
    control: Annotated[list[str] | None, typer.Option(help="Negative controls: record keys (repeatable)")] = None,
    cross: Annotated[list[str] | None, typer.Option(help="Stations with cross-contamination ('*' = all)")] = None,
    kill: Annotated[list[str] | None, typer.Option(help="Stations whose processing kills the agent")] = None,
) -> None:
    """食源性疾病溯源 Rank stations and lots by the share of cases whose backward trace reaches them."""
    import datetime as dt

    from services.food_trace import trace_back

    start, end = dt.datetime.fromisoformat(since), dt.datetime.fromisoformat(until)
    found = _with_store(lambda store: trace_back(store, cases=case, icd10=icd10, start=start, end=end, top=top,
                                                 controls=control, cross_contamination=cross, kill=kill))
    console.print(f"{found['cases_traced']} of {found['cases']} case records have meals to trace · {found['basis']}")
    for kind in ("stations", "lots"):
        table = Table(title=kind)
        for col in ("rank", "key", "score", "cases", "controls", "depth", "positive samples"):
            table.add_column(col, no_wrap=col == "key")
        for i, c in enumerate(found[kind], start=1):
            table.add_row(str(i), c["key"], f"{c['score']:.2f}", str(c["cases"]), f"{c['controls']:.2f}",
                          str(c["depth"]), " ".join(c["positive_samples"]))
        console.print(table)
    console.print(f"options: {found['options']}")


@trace_app.command("food-forward")
def trace_food_forward(
    lot: Annotated[str, typer.Argument(help="The suspect food lot")],
    since: Since,
    until: Until,
) -> None:
    """食品召回追踪 Every delivery of a lot (and lots made from it), stations reached, residents exposed."""
    import datetime as dt

    from services.food_trace import trace_forward

    start, end = dt.datetime.fromisoformat(since), dt.datetime.fromisoformat(until)
    found = _with_store(lambda store: trace_forward(store, lot, start=start, end=end))
    for d in found["deliveries"]:
        console.print(f"{d['occurred_at']:%Y-%m-%d} {d['delivery']} {d['lot']}: {d['from_key']} → {d['to_key']}")
    console.print(f"stations reached: {len(found['stations'])} · residents exposed: {len(found['residents'])}")


@trace_app.command("inventory")
def trace_inventory(as_of: AsOf = None) -> None:
    """血液库存与效期 Units in stock, expired units still in stock, units about to expire (WS 399-2012)."""
    import datetime as dt

    from services.blood_safety import inventory

    day = dt.date.fromisoformat(as_of) if as_of else None
    found = _with_store(lambda store: inventory(store, as_of=day))
    table = Table(title=f"血液库存 stock on {found['as_of']}")
    for col in ("store", "component", "ABO/Rh", "units"):
        table.add_column(col)
    for r in found["in_stock"]:
        table.add_row(r["store"], r["component"], r["abo_rh"], str(r["units"]))
    console.print(table)
    for label, rows in (("expired, still in stock 过期在库", found["expired_in_stock"]),
                        ("expiring 即将过期", found["expiring"])):
        console.print(f"{label}: " + (", ".join(f"{u['unit']} ({u['expires_on']})" for u in rows) or "none"))


@trace_app.command("vaccine-lots")
def trace_vaccine_lots() -> None:
    """疫苗批号安全 AEFI rate per lot and the lots that signal against their siblings."""
    from services.vaccine_safety import lot_signals

    found = _with_store(lot_signals)
    table = Table(title="AEFI per lot")
    for col in ("lot", "vaccine", "doses", "AEFI", "per 10k", "p (adj.)", "signal"):
        table.add_column(col)
    for x in found["lots"]:
        table.add_row(x["lot"], x["vaccine_name"] or x["vaccine"], str(x["vaccinations"]), str(x["adverse_events"]),
                      f"{x['rate_per_10k']:.0f}", "" if x["p_value"] is None else f"{x['p_value']:.2g}",
                      "⚠" if x["signal"] else "")
    console.print(table)


@trace_app.command("drug-repeats")
def trace_drug_repeats() -> None:
    """药品追溯码重复 Trace codes dispensed more than once, with each dispensing."""
    from services.drug_trace import repeated_codes

    found = _with_store(repeated_codes)
    for g in found["repeats"]:
        console.print(f"[bold]{g['code']}[/] ×{g['times']} at {g['institutions']} institutions")
        for d in g["dispensings"]:
            console.print(f"  {d['dispensed_at']:%Y-%m-%d} {d['institution']} {d['item']}")
    if not found["repeats"]:
        console.print("no trace code dispensed twice 未发现重复追溯码")


@trace_app.command("clusters")
def trace_clusters(
    icd10: Annotated[str, typer.Option(help="ICD-10 code or prefix, e.g. A0")],
    since: Since,
    until: Until,
    replications: Annotated[int, typer.Option(help="Monte Carlo replications")] = 999,
) -> None:
    """病例时空聚集 Space-time clusters of a diagnosis still going on at the end of the period."""
    import datetime as dt

    from services.case_clusters import case_clusters

    start, end = dt.datetime.fromisoformat(since), dt.datetime.fromisoformat(until)
    found = _with_store(lambda store: case_clusters(store, icd10=icd10, since=start, until=end,
                                                    replications=replications))
    console.print(f"{found['cases']} cases · {found['replications']} replications · {found['basis']}")
    for c in found["clusters"][:5]:
        console.print(f"p={c['p_value']:.3f} every {c['recurrence_days']:.0f} days · {c['start']}–{c['end']} · "
                      f"{c['observed']} observed / {c['expected']:.1f} expected · {', '.join(c['locations'][:6])}")


def _with_store(fn: Any) -> Any:
    """Run ``fn(store)`` on the configured graph; a coded error exits with its code."""
    s = _settings()
    store = s.open_graph()
    try:
        return fn(store)
    except HealthGraphError as exc:
        _fail(exc)
    finally:
        store.close()


def _server_names(names: list[str] | None) -> list[str]:
    chosen = names or list(SERVER_NAMES)
    unknown = [n for n in chosen if n not in SERVER_NAMES]
    if unknown:
        console.print(f"[red]unknown server {unknown[0]!r}[/] (valid: {', '.join(SERVER_NAMES)})")
        raise typer.Exit(2)
    return chosen


ServerNames = Annotated[list[str] | None, typer.Argument(help="neo4j, opensearch (default: both)")]


@services_app.command("start")
def services_start(names: ServerNames = None) -> None:
    """启动 Fetch (first time) and start the servers; wait until each answers."""
    from services import servers

    s = _settings()
    for name in _server_names(names):
        port = int((s.neo4j_uri if name == "neo4j" else s.opensearch_url).rsplit(":", 1)[1].split("/")[0])
        with console.status(f"starting {name} (the first start fetches its jars from Maven Central)…"):
            try:
                server = servers.start(name, s.servers_dir / name, port=port)
            except HealthGraphError as exc:
                _fail(exc)
                return
        console.print(f"[green]✓[/] {name} {server.url} pid {server.pid} log {server.log}")
    console.print("use them: HEALTHGRAPH_GRAPH=neo4j / HEALTHGRAPH_SEARCH=opensearch")


@services_app.command("status")
def services_status(names: ServerNames = None) -> None:
    """状态 Which servers run, where, and their logs."""
    from services import servers

    s = _settings()
    for name in _server_names(names):
        server = servers.status(name, s.servers_dir / name)
        if server is None:
            why = servers.requirements(name)
            console.print(f"[yellow]–[/] {name} not running" + (f" ({why})" if why else ""))
        else:
            console.print(f"[green]●[/] {name} {server.url} pid {server.pid} log {server.log}")


@services_app.command("stop")
def services_stop(names: ServerNames = None) -> None:
    """停止 Stop the servers and every process they started."""
    from services import servers

    s = _settings()
    for name in _server_names(names):
        stopped = servers.stop(name, s.servers_dir / name)
        console.print(f"{name}: {'stopped' if stopped else 'was not running'}")


@services_app.command("copy-to-neo4j")
def services_copy_to_neo4j(
    heap_mb: Annotated[int | None, typer.Option(help="the server's Java heap (MiB; default 768)")] = None,
    page_cache_mb: Annotated[int | None, typer.Option(help="the server's page cache (MiB; default 128)")] = None,
) -> None:
    """复制到 Neo4j Copy the embedded graph into the Neo4j server's database with Neo4j's offline bulk importer.

    Replaces what that database holds; the server must be stopped. Afterwards it runs on the copy, with the
    ontology's indexes built. Hours faster than loading through Bolt at ten million encounters.
    """
    from graph import open_graph
    from services import servers
    from services.cli_support import record_operation

    s = _settings()
    port = int(s.neo4j_uri.rsplit(":", 1)[1].split("/")[0])
    store = open_graph(s.graph_path, engine="ladybug", buffer_pool_mb=s.graph_buffer_pool_mb)
    try:
        with Progress(TextColumn("{task.description}"), TimeElapsedColumn(), console=console) as bar:
            task = bar.add_task("写导入文件 writing the importer's files")

            def written(name: str, rows: int) -> None:
                bar.update(task, description=f"写导入文件 writing the importer's files: {name} ({rows:,} rows)")

            copy = servers.copy_graph_to_neo4j(store, s.servers_dir / "neo4j", port=port, heap_mib=heap_mb,
                                               page_cache_mib=page_cache_mb, progress=written)
    except HealthGraphError as exc:
        _fail(exc)
        return
    finally:
        store.close()
    record_operation("system_admin", "graph:copy", "Graph/neo4j", source=str(s.graph_path), nodes=copy.nodes,
                     relationships=copy.relationships)
    console.print(f"[green]✓[/] {copy.nodes:,} nodes and {copy.relationships:,} relationships in {copy.seconds:.1f} s "
                  f"(files {copy.export_s:.1f} s, import {copy.import_s:.1f} s, indexes {copy.schema_s:.1f} s)")
    console.print(f"neo4j {copy.server.url} pid {copy.server.pid}; use it: HEALTHGRAPH_GRAPH=neo4j")


def main() -> None:  # pragma: no cover - console entry
    app()
