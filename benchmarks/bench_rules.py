"""Supervision rules at scale: the whole core pack as a backtest (nothing written) over a generated
province, with per-rule times, on the embedded LadybugDB store and (``--neo4j``) on a real Neo4j
5.26 server started here from Maven Central jars (as in bench_engines.py).

    python benchmarks/bench_rules.py --residents 100000 --neo4j
    python benchmarks/bench_rules.py --residents 1000000          # embedded only (goal: pack ≤ 2 min)

With ``--neo4j-copy`` the Neo4j graph is a copy of the embedded one (load and master index) made by Neo4j's
offline bulk importer (``healthgraph services copy-to-neo4j``), for sizes whose load through Bolt takes hours:

    python benchmarks/bench_rules.py --province P --graph G --neo4j --neo4j-copy --neo4j-home H --repeat 0

Per engine: validated load and master person index build (two rules need it) in a child process
(``--graph DIR`` keeps the embedded graph and reuses it for the same province: at 1M residents the
build takes ≈ 45 min; ``--neo4j-home DIR`` does the same for the Neo4j server's data), then ``--repeat`` backtests of the core pack rule by rule over the whole period
up to the province's as-of date (first = cold, the rest warm), then the pack as one backtest (rules
naming the same query fetch its rows once), whose findings are scored against the province's ground
truth (recall and precision per rule). Figures: per-rule seconds (rows fetched, findings) of the fastest
run and, of them, the seconds of the rule's query (rows as Arrow; the rest is pruning and judging rows in
Python), pack totals, and the ratio Neo4j ÷ LadybugDB; with ``--baseline FILE``, the pack totals, load and
master index beside those of an earlier results file. Results: benchmarks/results/rules-<residents>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).with_name("results")
GOAL_S = 120.0  # issue 6: the full pack over 1M residents / 10M encounters in ≤ 2 min
console = Console(width=150)
T = TypeVar("T")


def _counts(province: Path) -> dict[str, int]:
    """Source rows per node file of the province (Parquet metadata, nothing read)."""
    return {f.stem: pq.ParquetFile(f).metadata.num_rows for f in sorted((province / "nodes").glob("*.parquet"))}


def build(engine: str, target: str, province: str, work: str, buffer_pool_mb: int,
          master_index: bool = True, loaded: dict[str, Any] | None = None) -> dict[str, Any]:
    """Validated load and master index build (two rules need it; without it they are skipped). Run in a
    child process, so that the rules are timed in a process that has not just held the master index
    build's working set. ``loaded``: the stamp of a graph already loaded from this province, which then only
    gets its master index."""
    from graph import open_graph
    from ingest.load import load_folder
    from services.mpi import MasterPersonIndex

    store = open_graph(target, engine=engine, buffer_pool_mb=buffer_pool_mb)
    try:
        if loaded:
            rows, quarantined, load_s = loaded["rows"], loaded["quarantined"], loaded["load_s"]
        else:
            if engine == "neo4j":
                store.clear()
            t = time.perf_counter()
            report = load_folder(store, Path(province), quarantine_root=Path(work) / f"{engine}-quarantine")
            load_s = time.perf_counter() - t
            rows, quarantined = report.totals()["inserted"], report.totals()["quarantined"]
            console.print(f"{engine}: loaded {rows:,} rows in {load_s:.1f} s")
        mpi, mpi_s = None, float("nan")
        if master_index:
            t = time.perf_counter()
            mpi = MasterPersonIndex(store).build(progress=False)
            mpi_s = time.perf_counter() - t
            console.print(f"{engine}: master index {mpi} in {mpi_s:.1f} s")
        return {"rows": rows, "quarantined": quarantined, "load_s": load_s, "mpi_s": mpi_s, "mpi": mpi,
                "master_index": master_index}
    finally:
        store.close()


def in_child(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn`` in a fresh process: each engine is measured without the memory another one's run (or a
    build) left behind in this process, e.g. the embedded store's buffer pool beside a Neo4j server at 10M."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as child:
        return child.submit(fn, *args, **kwargs).result()


def built_graph(engine: str, target: str, province: Path, work: Path, buffer_pool_mb: int,
                keep: Path | None, master_index: bool = True) -> dict[str, Any]:
    """Build the graph in a child process, or reuse the one kept in ``keep`` for the same province (and
    with a master index if one is asked for)."""
    manifest = json.loads((province / "manifest.json").read_text(encoding="utf-8"))
    stamp = keep / "built.json" if keep else None
    loaded = None
    if stamp and stamp.exists():
        built = json.loads(stamp.read_text(encoding="utf-8"))
        if built["manifest"] == manifest and built.get("master_index", True) >= master_index:
            console.print(f"{engine}: reusing the graph built {built['built']} in {keep} "
                          f"(load {built['load_s']:.1f} s, master index {built['mpi_s']:.1f} s)")
            return built
        if built["manifest"] == manifest and engine != "neo4j":
            console.print(f"{engine}: the graph loaded {built['built']} in {keep} gets its master index")
            loaded = built
    built = in_child(build, engine, target, str(province), str(work), buffer_pool_mb, master_index, loaded)
    if stamp:
        stamp.write_text(json.dumps({**built, "manifest": manifest, "built": dt.datetime.now().isoformat()},
                                    default=str), encoding="utf-8")
    return built


def copied_graph(source: Path, home: Path, province: Path, ns: argparse.Namespace) -> None:
    """Fill the Neo4j run folder ``home`` with a copy of the embedded graph built for ``province`` (load and
    master index) through Neo4j's offline bulk importer, unless it already holds one; leaves the server running
    and a ``built.json`` that ``built_graph`` reuses."""
    from graph import open_graph
    from services import servers

    manifest = json.loads((province / "manifest.json").read_text(encoding="utf-8"))
    stamp = home / "built.json"
    if stamp.exists() and json.loads(stamp.read_text(encoding="utf-8"))["manifest"] == manifest:
        return
    store = open_graph(source, buffer_pool_mb=ns.buffer_pool_mb)
    try:
        with console.status("copying the embedded graph into Neo4j") as status:
            copy = servers.copy_graph_to_neo4j(
                store, home, port=servers.free_port("neo4j", 0), heap_mib=ns.neo4j_heap_mb,
                page_cache_mib=ns.neo4j_page_cache_mb,
                progress=lambda name, rows: status.update(f"copying the embedded graph into Neo4j: {name} "
                                                          f"({rows:,} rows written)"))
    finally:
        store.close()
    built = json.loads((source.parent / "built.json").read_text(encoding="utf-8")) if \
        (source.parent / "built.json").exists() else {}
    console.print(f"neo4j: copied {copy.nodes:,} nodes and {copy.relationships:,} relationships in {copy.seconds:.1f} s "
                  f"(files {copy.export_s:.1f} s, bulk import {copy.import_s:.1f} s, indexes {copy.schema_s:.1f} s)")
    nan = float("nan")
    stamp.write_text(json.dumps({"rows": copy.nodes + copy.relationships, "quarantined": built.get("quarantined", 0),
                                 "load_s": nan, "mpi_s": nan, "mpi": built.get("mpi"),
                                 "master_index": built.get("master_index", True), "copy_s": copy.seconds,
                                 "copy_export_s": copy.export_s, "copy_import_s": copy.import_s,
                                 "copy_schema_s": copy.schema_s, "copied_from": str(source), "manifest": manifest,
                                 "built": dt.datetime.now().isoformat()}, default=str), encoding="utf-8")


def run_engine(engine: str, target: str, province: Path, work: Path, *, as_of: dt.datetime, repeat: int,
               buffer_pool_mb: int = 1024, keep: Path | None = None, narrow: bool = True,
               master_index: bool = True) -> dict[str, Any]:
    from graph import open_graph
    from ingest.synthetic.truth import score
    from ontology.errors import GraphError
    from services.supervision import Supervision

    built = built_graph(engine, target, province, work, buffer_pool_mb, keep, master_index)
    store = open_graph(target, engine=engine, buffer_pool_mb=buffer_pool_mb)
    try:
        sup = Supervision(store, narrow=narrow)
        runs = []
        for i in range(repeat):
            # rule by rule, so that a rule whose query fails (e.g. out of buffer memory) is recorded
            # and the rest of the pack still timed; the pack time is the sum
            rules: dict[str, dict[str, Any]] = {}
            for rule in sup.pack("core").rules.values():
                t = time.perf_counter()
                try:
                    r = sup.backtest(rules=[rule.id], as_of=as_of, samples=0).rules[0]
                    rules[rule.id] = {"seconds": r.seconds, "query_s": r.query_seconds, "rows": r.rows,
                                      "matched": r.matched, "findings": r.findings, "errors": len(r.errors),
                                      "skipped": r.skipped}
                except GraphError as exc:
                    rules[rule.id] = {"seconds": time.perf_counter() - t, "query_s": float("nan"), "rows": 0,
                                      "matched": 0, "findings": 0, "errors": 0, "skipped": None,
                                      "failed": str(exc)[:300]}
                    console.print(f"[red]{engine}: {rule.id} failed after {rules[rule.id]['seconds']:.1f} s: "
                                  f"{str(exc)[:120]}")
            wall = sum(r["seconds"] for r in rules.values())
            runs.append({"wall_s": wall, "rules": rules})
            console.print(f"{engine}: pack backtest {i + 1}/{repeat} in {wall:.1f} s "
                          f"({sum(r['rows'] for r in rules.values()):,} rows, "
                          f"{sum(r['findings'] for r in rules.values())} findings)")
        t = time.perf_counter()  # the pack as one backtest: rules naming the same query fetch it once
        scores: dict[str, Any] = {}
        shared, pack_failed = None, None
        try:
            shared = sup.backtest("core", as_of=as_of, samples=100_000)  # every finding, for the ground truth
            pack_shared_s = time.perf_counter() - t
            console.print(f"{engine}: pack as one backtest in {pack_shared_s:.1f} s "
                          f"({sum(r.findings for r in shared.rules)} findings)")
            truth = json.loads((province / "ground_truth.json").read_text(encoding="utf-8"))
            records = pd.read_parquet(province / "truth" / "person_records.parquet", columns=["key", "person"])
            found = {r.rule_id: [f["subjects"] for f in r.samples] for r in shared.rules}
            scores = {rid: {"planted": s.planted, "findings": s.alerts, "recall": s.recall, "precision": s.precision}
                      for rid, s in score(found, truth["anomalies"], records).items()}
        except GraphError as exc:
            pack_shared_s, pack_failed = float("nan"), str(exc)[:300]
            console.print(f"[red]{engine}: the pack as one backtest failed: {str(exc)[:120]}")
        if runs:
            best = {rid: min((run["rules"][rid] for run in runs), key=lambda r: r["seconds"]) for rid in runs[0]["rules"]}
        else:  # --repeat 0: each rule's figures from the pack as one backtest (a shared query's time is the
            # first rule's that names it)
            best = {r.rule_id: {"seconds": r.seconds, "query_s": r.query_seconds, "rows": r.rows, "matched": r.matched,
                                "findings": r.findings, "errors": len(r.errors), "skipped": r.skipped}
                    for r in (shared.rules if shared else [])}
        for rid, r in best.items():
            r["truth"] = scores.get(rid)
        nan = float("nan")
        return {**built, "runs": runs, "pack_cold_s": runs[0]["wall_s"] if runs else nan,
                "pack_warm_s": min(r["wall_s"] for r in runs[1:] or runs) if runs else nan,
                "pack_shared_s": pack_shared_s, "pack_failed": pack_failed, "narrowed": narrow, "rules": best}
    finally:
        store.close()


def _table(ns: argparse.Namespace, results: dict[str, dict[str, Any]], counts: dict[str, int],
           encounters: int) -> Table:
    lb, n4 = results["ladybug"], results.get("neo4j")
    title = (f"core pack backtest · {ns.residents:,} residents ({counts.get('Resident', 0):,} source records) · "
             f"{encounters:,} encounters · " + (f"fastest of {ns.repeat} runs" if ns.repeat else "the pack as one backtest"))
    table = Table(title=title)
    cols = ["rule", "rows", "findings", "recall / precision", "LadybugDB s", "of which query"] + (
        ["Neo4j s", "of which query", "Neo4j ÷ LadybugDB"] if n4 else [])
    for col in cols:
        table.add_column(col, justify="left" if col == "rule" else "right")
    order = sorted(lb["rules"], key=lambda rid: -lb["rules"][rid]["seconds"])
    for rid in order:
        r = lb["rules"][rid]
        truth = r.get("truth")
        row = [rid, f"{r['rows']:,}", "FAILED" if "failed" in r else
               f"{r['findings']:,}" + (" (skipped)" if r["skipped"] else ""),
               f"{truth['recall']:.2f} / {truth['precision']:.2f} of {truth['planted']}" if truth else "–",
               f"{r['seconds']:.2f}", f"{r['query_s']:.2f}"]
        m = n4["rules"].get(rid) if n4 else None
        if n4 and m is None:  # the pack failed on Neo4j (its pack row says why)
            row += ["FAILED", "–", "–"]
        elif m:
            same = "" if (m["rows"], m["findings"]) == (r["rows"], r["findings"]) else " ≠"
            row += [f"{m['seconds']:.2f}{same}" + (" FAILED" if "failed" in m else ""), f"{m['query_s']:.2f}",
                    f"{m['seconds'] / r['seconds']:.1f}×" if r["seconds"] else "–"]
        table.add_row(*row)
    for key, label in (("pack_cold_s", "pack, first run (cold)"), ("pack_warm_s", "pack, warm"),
                       ("pack_shared_s", "pack as one backtest (shared queries)"),
                       ("load_s", "validated load"), ("mpi_s", "master index build")):
        if lb[key] != lb[key]:  # NaN: not run (--repeat 0)
            continue
        row = [label, "", "", "", f"{lb[key]:.1f}", ""]
        if n4:
            copied = n4[key] != n4[key]  # NaN: the Neo4j graph is a bulk-imported copy of the embedded one
            row += ["copied" if copied else f"{n4[key]:.1f}", "", "" if copied else f"{n4[key] / lb[key]:.1f}×"]
        table.add_row(*row, style="bold" if key.startswith("pack") else None)
    if n4 and "copy_s" in n4:
        table.add_row("copy of the embedded graph (bulk import)", "", "", "", "", "", f"{n4['copy_s']:.1f}", "", "")
    return table


def _against(results: dict[str, dict[str, Any]], baseline: dict[str, Any], path: Path) -> Table:
    """Pack totals, load and master index of this run beside an earlier results file's."""
    table = Table(title=f"against {path.name} (commit {baseline.get('commit', '?')}, {baseline.get('measured', '?')})")
    for col in ("engine", "figure", "baseline s", "now s", "baseline ÷ now"):
        table.add_column(col, justify="left" if col in ("engine", "figure") else "right")
    for engine, now in results.items():
        before = baseline.get(engine)
        if not before:
            continue
        for key, label in (("pack_warm_s", "pack, warm"), ("pack_shared_s", "pack as one backtest"),
                           ("load_s", "validated load"), ("mpi_s", "master index build")):
            table.add_row(engine, label, f"{before[key]:.1f}", f"{now[key]:.1f}", f"{before[key] / now[key]:.1f}×")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--residents", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--encounter-rate", type=float, default=1.0,
                        help="visits a resident relative to the default (5.6: ≈ 10 encounters a resident)")
    parser.add_argument("--repeat", type=int, default=3, help="backtests of the pack rule by rule per engine (first "
                        "= cold); 0: only the pack as one backtest, whose per-rule times are then reported")
    parser.add_argument("--neo4j", action="store_true", help="also on a real Neo4j server (loads at ~10k rows/s)")
    parser.add_argument("--province", type=Path, help="a province already generated (healthgraph generate) instead "
                        "of generating one here (7 min at 1M); its manifest gives --residents and --seed")
    parser.add_argument("--buffer-pool-mb", type=int, default=1024,
                        help="LadybugDB's buffer pool (HEALTHGRAPH_GRAPH_BUFFER_POOL_MB): at 1M residents the master "
                        "index build, one transaction on the embedded store, needs more than the default 1024")
    parser.add_argument("--neo4j-heap-mb", type=int, default=2048, help="the Neo4j server's Java heap")
    parser.add_argument("--neo4j-page-cache-mb", type=int, default=2048,
                        help="the Neo4j server's page cache (store files held in memory)")
    parser.add_argument("--neo4j-home", type=Path, help="run the Neo4j server from this folder and keep its "
                        "data (load and master index) for the next run over the same province")
    parser.add_argument("--neo4j-copy", action="store_true", help="fill Neo4j with a copy of the embedded graph "
                        "(load and master index) through Neo4j's offline bulk importer instead of loading it "
                        "through Bolt (≈ 10k rows/s: 4.5 h at 10M encounters)")
    parser.add_argument("--graph", type=Path, help="keep the embedded graph (load and master index) in this "
                        "folder and reuse it on the next run over the same province")
    parser.add_argument("--baseline", type=Path, help="an earlier results file to compare with, side by side")
    parser.add_argument("--out", type=Path, help="the results file (default: benchmarks/results/rules-<residents>"
                        "[-rate<r>][-whole][-no-index].json)")
    parser.add_argument("--no-master-index", dest="master_index", action="store_false",
                        help="skip the master index build (28–73 min at 10M encounters): its two pair rules are "
                        "then skipped, and the contraindication rules read the prescribing record")
    parser.add_argument("--whole", action="store_true", help="hand every candidate row to the rule engine "
                        "(no narrowing inside the graph engine): the baseline for --baseline")
    ns = parser.parse_args()

    from ingest.synthetic import generate
    from services import servers

    with tempfile.TemporaryDirectory(prefix="hg-bench-rules-") as tmp:
        work = Path(tmp)
        province = ns.province or work / "province"
        t = time.perf_counter()
        if not ns.province:
            with console.status(f"generating {ns.residents:,} residents"):
                generate(province, residents=ns.residents, seed=ns.seed, encounter_rate=ns.encounter_rate)
        generate_s = time.perf_counter() - t if not ns.province else float("nan")
        manifest = json.loads((province / "manifest.json").read_text(encoding="utf-8"))
        ns.residents, ns.seed = manifest["residents"], manifest["seed"]
        counts = _counts(province)
        encounters = sum(n for name, n in counts.items() if "Encounter" in name)
        source = str(province) if ns.province else f"generated in {generate_s:.1f} s"
        console.print(f"{source}: {counts.get('Resident', 0):,} resident records, "
                      f"{encounters:,} encounters, {sum(counts.values()):,} node rows")
        as_of = dt.datetime.fromisoformat(manifest["as_of"])
        results: dict[str, dict[str, Any]] = {}
        if ns.graph:
            ns.graph.mkdir(parents=True, exist_ok=True)
        target = ns.graph / "g.lbdb" if ns.graph else work / "g.lbdb"
        results["ladybug"] = in_child(run_engine, "ladybug", str(target), province, work, as_of=as_of,
                                      repeat=ns.repeat, buffer_pool_mb=ns.buffer_pool_mb, keep=ns.graph,
                                      narrow=not ns.whole, master_index=ns.master_index)
        if ns.neo4j:
            home = ns.neo4j_home or work / "neo4j"
            if ns.neo4j_copy:
                in_child(copied_graph, target, home, province, ns)
            with console.status("starting Neo4j"):
                neo4j = servers.start("neo4j", home, port=servers.free_port("neo4j", 0),
                                      heap_mib=ns.neo4j_heap_mb, page_cache_mib=ns.neo4j_page_cache_mb)
            try:
                results["neo4j"] = in_child(run_engine, "neo4j", neo4j.url, province, work, as_of=as_of,
                                            repeat=ns.repeat, keep=home if ns.neo4j_copy else ns.neo4j_home,
                                            narrow=not ns.whole, master_index=ns.master_index)
            finally:
                servers.stop("neo4j", home)

    console.print(_table(ns, results, counts, encounters))
    if ns.baseline:
        console.print(_against(results, json.loads(ns.baseline.read_text(encoding="utf-8")), ns.baseline))
    lb = results["ladybug"]
    console.print(f"goal: the pack over 1M residents / 10M encounters in ≤ {GOAL_S:.0f} s; here "
                  f"{lb['pack_shared_s']:.1f} s as one backtest, {lb['pack_warm_s']:.1f} s rule by rule (warm) at "
                  f"{ns.residents:,} residents ({encounters:,} encounters); "
                  "Neo4j ÷ LadybugDB = time on Neo4j over time on the embedded engine; ≠ = rows or findings differ")
    for engine, result in results.items():
        off = {rid: r["truth"] for rid, r in result["rules"].items() if r.get("truth")
               and (r["truth"]["recall"], r["truth"]["precision"]) != (1.0, 1.0)}
        scored = sum(1 for r in result["rules"].values() if r.get("truth"))
        console.print(f"{engine}: ground truth — {scored - len(off)} of {scored} rules find every planted anomaly "
                      f"and nothing else" + (f"; not: {off}" if off else ""))
    RESULTS.mkdir(exist_ok=True)
    rate = manifest.get("encounter_rate", 1.0)
    out = ns.out or RESULTS / (f"rules-{ns.residents}" + ("" if rate == 1.0 else f"-rate{rate:g}")
                     + ("-whole" if ns.whole else "") + ("" if ns.master_index else "-no-index") + ".json")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).parent).stdout.strip()
    out.write_text(json.dumps({"residents": ns.residents, "seed": ns.seed, "as_of": as_of.isoformat(), "commit": commit,
                               "encounter_rate": rate, "buffer_pool_mb": ns.buffer_pool_mb,
                               "master_index": ns.master_index,
                               **({"neo4j_heap_mb": ns.neo4j_heap_mb, "neo4j_page_cache_mb": ns.neo4j_page_cache_mb}
                                  if ns.neo4j else {}),
                               "encounters": encounters, "node_rows": counts, "generate_s": generate_s,
                               "goal_s": GOAL_S, "measured": dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
                               **results}, indent=1, default=str), encoding="utf-8")
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
