"""Supervision rules at scale: the whole core pack as a backtest (nothing written) over a generated
province, with per-rule times, on the embedded LadybugDB store and (``--neo4j``) on a real Neo4j
5.26 server started here from Maven Central jars (as in bench_engines.py).

    python benchmarks/bench_rules.py --residents 100000 --neo4j
    python benchmarks/bench_rules.py --residents 1000000          # embedded only (goal: pack ≤ 2 min)

Per engine: validated load, master person index build (two rules need it), then ``--repeat``
backtests of the core pack over the whole period up to the province's as-of date (first = cold,
the rest warm), then the pack as one backtest (rules naming the same query fetch its rows once).
Figures: per-rule seconds (rows fetched, findings) of the fastest run, the seconds of the rule's query
alone (a separate query-only pass, rows as Arrow; the rest is pruning and judging rows in Python), pack
totals cold and warm, and the ratio Neo4j ÷ LadybugDB. Results: benchmarks/results/rules-<residents>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).with_name("results")
GOAL_S = 120.0  # issue 6: the full pack over 1M residents / 10M encounters in ≤ 2 min
console = Console(width=150)


def _counts(province: Path) -> dict[str, int]:
    """Source rows per node file of the province (Parquet metadata, nothing read)."""
    return {f.stem: pq.ParquetFile(f).metadata.num_rows for f in sorted((province / "nodes").glob("*.parquet"))}


def run_engine(engine: str, target: str, province: Path, work: Path, *, as_of: dt.datetime,
               repeat: int, buffer_pool_mb: int = 1024) -> dict[str, Any]:
    from graph import open_graph
    from ingest.load import load_folder
    from services.mpi import MasterPersonIndex
    from ontology.errors import GraphError
    from services.supervision import Supervision

    store = open_graph(target, engine=engine, buffer_pool_mb=buffer_pool_mb)
    if engine == "neo4j":
        store.clear()
    try:
        t = time.perf_counter()
        with console.status(f"{engine}: validated load"):
            report = load_folder(store, province, quarantine_root=work / f"{engine}-quarantine")
        load_s = time.perf_counter() - t
        console.print(f"{engine}: loaded {report.totals()['inserted']:,} rows in {load_s:.1f} s")
        t = time.perf_counter()
        mpi = MasterPersonIndex(store).build(progress=False)
        mpi_s = time.perf_counter() - t
        console.print(f"{engine}: master index {mpi} in {mpi_s:.1f} s")
        sup = Supervision(store)
        runs = []
        for i in range(repeat):
            # rule by rule, so that a rule whose query fails (e.g. out of buffer memory) is recorded
            # and the rest of the pack still timed; the pack time is the sum
            rules: dict[str, dict[str, Any]] = {}
            for rule in sup.pack("core").rules.values():
                t = time.perf_counter()
                try:
                    r = sup.backtest(rules=[rule.id], as_of=as_of, samples=0).rules[0]
                    rules[rule.id] = {"seconds": r.seconds, "rows": r.rows, "matched": r.matched,
                                      "findings": r.findings, "errors": len(r.errors), "skipped": r.skipped}
                except GraphError as exc:
                    rules[rule.id] = {"seconds": time.perf_counter() - t, "rows": 0, "matched": 0, "findings": 0,
                                      "errors": 0, "skipped": None, "failed": str(exc)[:300]}
                    console.print(f"[red]{engine}: {rule.id} failed after {rules[rule.id]['seconds']:.1f} s: "
                                  f"{str(exc)[:120]}")
            wall = sum(r["seconds"] for r in rules.values())
            runs.append({"wall_s": wall, "rules": rules})
            console.print(f"{engine}: pack backtest {i + 1}/{repeat} in {wall:.1f} s "
                          f"({sum(r['rows'] for r in rules.values()):,} rows, "
                          f"{sum(r['findings'] for r in rules.values())} findings)")
        t = time.perf_counter()  # the pack as one backtest: rules naming the same query fetch it once
        try:
            shared = sup.backtest("core", as_of=as_of, samples=0)
            pack_shared_s = time.perf_counter() - t
            console.print(f"{engine}: pack as one backtest in {pack_shared_s:.1f} s "
                          f"({sum(r.findings for r in shared.rules)} findings)")
        except GraphError as exc:
            pack_shared_s = float("nan")
            console.print(f"[red]{engine}: the pack as one backtest failed: {str(exc)[:120]}")
        with console.status(f"{engine}: query-only pass"):
            query_s = {}
            for rule in sup.pack("core").rules.values():  # the candidate rows alone, no condition
                t = time.perf_counter()
                if not sup._unmet(rule) and "failed" not in runs[0]["rules"][rule.id]:
                    store.query_table(rule.query, **rule.params)  # as the rules read it: Arrow, no dicts
                query_s[rule.id] = time.perf_counter() - t
        best = {rid: min((run["rules"][rid] for run in runs), key=lambda r: r["seconds"]) for rid in runs[0]["rules"]}
        for rid, r in best.items():
            r["query_s"] = query_s[rid]
        return {"rows": report.totals()["inserted"], "quarantined": report.totals()["quarantined"],
                "load_s": load_s, "mpi_s": mpi_s, "mpi": mpi, "runs": runs,
                "pack_cold_s": runs[0]["wall_s"], "pack_warm_s": min(r["wall_s"] for r in runs[1:] or runs),
                "pack_shared_s": pack_shared_s,
                "rules": best}
    finally:
        store.close()


def _table(ns: argparse.Namespace, results: dict[str, dict[str, Any]], counts: dict[str, int],
           encounters: int) -> Table:
    lb, n4 = results["ladybug"], results.get("neo4j")
    title = (f"core pack backtest · {ns.residents:,} residents ({counts.get('Resident', 0):,} source records) · "
             f"{encounters:,} encounters · fastest of {ns.repeat} runs")
    table = Table(title=title)
    cols = ["rule", "rows", "findings", "LadybugDB s", "of which query"] + (
        ["Neo4j s", "of which query", "Neo4j ÷ LadybugDB"] if n4 else [])
    for col in cols:
        table.add_column(col, justify="left" if col == "rule" else "right")
    order = sorted(lb["rules"], key=lambda rid: -lb["rules"][rid]["seconds"])
    for rid in order:
        r = lb["rules"][rid]
        row = [rid, f"{r['rows']:,}", "FAILED" if "failed" in r else
               f"{r['findings']:,}" + (" (skipped)" if r["skipped"] else ""),
               f"{r['seconds']:.2f}", f"{r['query_s']:.2f}"]
        if n4:
            m = n4["rules"][rid]
            same = "" if (m["rows"], m["findings"]) == (r["rows"], r["findings"]) else " ≠"
            row += [f"{m['seconds']:.2f}{same}" + (" FAILED" if "failed" in m else ""), f"{m['query_s']:.2f}", f"{m['seconds'] / r['seconds']:.1f}×" if r["seconds"] else "–"]
        table.add_row(*row)
    for key, label in (("pack_cold_s", "pack, first run (cold)"), ("pack_warm_s", "pack, warm"),
                       ("pack_shared_s", "pack as one backtest (shared queries)"),
                       ("load_s", "validated load"), ("mpi_s", "master index build")):
        row = [label, "", "", f"{lb[key]:.1f}", ""]
        if n4:
            row += [f"{n4[key]:.1f}", "", f"{n4[key] / lb[key]:.1f}×"]
        table.add_row(*row, style="bold" if key.startswith("pack") else None)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--residents", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="backtests of the pack per engine (first = cold)")
    parser.add_argument("--neo4j", action="store_true", help="also on a real Neo4j server (loads at ~10k rows/s)")
    parser.add_argument("--province", type=Path, help="a province already generated (healthgraph generate) instead "
                        "of generating one here (7 min at 1M); its manifest gives --residents and --seed")
    parser.add_argument("--buffer-pool-mb", type=int, default=1024,
                        help="LadybugDB's buffer pool (HEALTHGRAPH_GRAPH_BUFFER_POOL_MB): at 1M residents the master "
                        "index build, one transaction on the embedded store, needs more than the default 1024")
    ns = parser.parse_args()

    from ingest.synthetic import generate
    from services import servers

    with tempfile.TemporaryDirectory(prefix="hg-bench-rules-") as tmp:
        work = Path(tmp)
        province = ns.province or work / "province"
        t = time.perf_counter()
        if not ns.province:
            with console.status(f"generating {ns.residents:,} residents"):
                generate(province, residents=ns.residents, seed=ns.seed)
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
        results["ladybug"] = run_engine("ladybug", str(work / "g.lbdb"), province, work, as_of=as_of,
                                        repeat=ns.repeat, buffer_pool_mb=ns.buffer_pool_mb)
        if ns.neo4j:
            with console.status("starting Neo4j"):
                neo4j = servers.start("neo4j", work / "neo4j", port=servers.free_port("neo4j", 0))
            try:
                results["neo4j"] = run_engine("neo4j", neo4j.url, province, work, as_of=as_of, repeat=ns.repeat)
            finally:
                servers.stop("neo4j", work / "neo4j")

    console.print(_table(ns, results, counts, encounters))
    lb = results["ladybug"]
    console.print(f"goal: the pack over 1M residents / 10M encounters in ≤ {GOAL_S:.0f} s; here "
                  f"{lb['pack_warm_s']:.1f} s warm at {ns.residents:,} residents ({encounters:,} encounters); "
                  "Neo4j ÷ LadybugDB = time on Neo4j over time on the embedded engine; ≠ = rows or findings differ")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"rules-{ns.residents}.json"
    out.write_text(json.dumps({"residents": ns.residents, "seed": ns.seed, "as_of": as_of.isoformat(),
                               "encounters": encounters, "node_rows": counts, "generate_s": generate_s,
                               "goal_s": GOAL_S, "measured": dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
                               **results}, indent=1, default=str), encoding="utf-8")
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
