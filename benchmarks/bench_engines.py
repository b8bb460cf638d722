"""Graph engines side by side: the same validated load and the same trace queries on the embedded
LadybugDB store and on a real Neo4j 5.26 server (started here from Maven Central jars).

    python benchmarks/bench_engines.py --residents 20000

Figures: load rows/s on each engine and the ratio embedded/Neo4j; re-run (nothing to write)
seconds; p50/p95 of a 2-hop query (institutions a resident visited) and of a 5-hop lookback
(donor → donations → units → transfusions → recipients → county), each over every resident or
donor that has one, up to --queries calls. Results: benchmarks/results/engines-<residents>.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).with_name("results")
console = Console()


def _latencies(store: Any, name: str, args: list[dict[str, Any]]) -> dict[str, float]:
    for a in args[:20]:  # warm caches and query plans
        store.query(name, **a)
    times = []
    for a in args:
        t = time.perf_counter()
        store.query(name, **a)
        times.append((time.perf_counter() - t) * 1000)
    q = statistics.quantiles(times, n=100)
    return {"p50_ms": statistics.median(times), "p95_ms": q[94], "calls": len(times)}


def _timed(calls: list[Any]) -> dict[str, float]:
    times = []
    for call in calls:
        t = time.perf_counter()
        call()
        times.append((time.perf_counter() - t) * 1000)
    q = statistics.quantiles(times, n=100) if len(times) > 1 else times * 99
    return {"p50_ms": statistics.median(times), "p95_ms": q[94], "calls": len(times)}


def _trace_latencies(store: Any, province: Path) -> dict[str, Any]:
    """End-to-end investigator answers: lookback from donations, food trace-back and trace-forward."""
    import datetime as dt

    from services.blood_safety import lookback
    from services.food_trace import trace_back, trace_forward

    truth = json.loads((province / "ground_truth.json").read_text(encoding="utf-8"))
    donations = pd.read_parquet(province / "nodes" / "BloodDonation.parquet")["din"].sample(100, random_state=1,
                                                                                              replace=True)
    lots = pd.read_parquet(province / "edges" / "carries.parquet")["dst"].drop_duplicates().head(50)
    start, end = dt.datetime(2025, 1, 1), dt.datetime(2026, 1, 1)
    as_of = dt.date(2026, 1, 1)
    return {"lookback": _timed([lambda d=d: lookback(store, d, as_of=as_of) for d in donations]),
            "trace_forward": _timed([lambda lot=lot: trace_forward(store, lot, start=start, end=end) for lot in lots]),
            "trace_back": _timed([lambda: trace_back(store, icd10=truth["outbreak"]["icd10"], start=start,
                                                     end=end)] * 5)}


def _query_args(province: Path, limit: int) -> dict[str, list[dict[str, Any]]]:
    of_patient = pd.read_parquet(province / "edges" / "of_patient.parquet")
    patients = of_patient.query("src_class == 'OutpatientEncounter'")["dst"].drop_duplicates()
    donors = of_patient.query("src_class == 'BloodDonation'")["dst"].drop_duplicates()
    return {"institutions_visited": [{"resident_key": k} for k in patients.sample(min(limit, len(patients)),
                                                                                    random_state=1)],
            "recipients_of_donor": [{"donor_key": k} for k in donors.sample(min(limit, len(donors)), random_state=1)]}


def run_engine(engine: str, target: str, province: Path, work: Path, args: dict[str, list]) -> dict[str, Any]:
    from graph import open_graph
    from ingest.load import load_folder

    store = open_graph(target, engine=engine)
    if engine == "neo4j":
        store.clear()
    try:
        t = time.perf_counter()
        report = load_folder(store, province, quarantine_root=work / f"{engine}-quarantine")
        seconds = time.perf_counter() - t
        t = time.perf_counter()
        again = load_folder(store, province, quarantine_root=work / f"{engine}-quarantine")
        rerun = time.perf_counter() - t
        out: dict[str, Any] = {"rows": report.totals()["inserted"], "load_seconds": seconds,
                               "rows_per_s": report.totals()["inserted"] / seconds, "rerun_seconds": rerun,
                               "rerun_writes": again.totals()["inserted"] + again.totals()["updated"]}
        out["two_hop"] = _latencies(store, "institutions_visited", args["institutions_visited"])
        out["five_hop"] = _latencies(store, "recipients_of_donor", args["recipients_of_donor"])
        out.update(_trace_latencies(store, province))
        return out
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--residents", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--seed", type=int, default=5)
    ns = parser.parse_args()

    from ingest.synthetic import generate
    from services import servers

    with tempfile.TemporaryDirectory(prefix="hg-bench-engines-") as tmp:
        work = Path(tmp)
        province = work / "province"
        with console.status(f"generating {ns.residents:,} residents"):
            generate(province, residents=ns.residents, seed=ns.seed)
        args = _query_args(province, ns.queries)
        with console.status("starting Neo4j"):
            neo4j = servers.start("neo4j", work / "neo4j", port=servers.free_port("neo4j", 0))
        try:
            results = {}
            with console.status("loading LadybugDB"):
                results["ladybug"] = run_engine("ladybug", str(work / "g.lbdb"), province, work, args)
            with console.status("loading Neo4j"):
                results["neo4j"] = run_engine("neo4j", neo4j.url, province, work, args)
        finally:
            servers.stop("neo4j", work / "neo4j")

    lb, n4 = results["ladybug"], results["neo4j"]
    table = Table(title=f"graph engines · {ns.residents:,} residents · {lb['rows']:,} rows")
    for col in ("figure", "LadybugDB", "Neo4j 5.26", "embedded speed-up"):
        table.add_column(col, justify="left" if col == "figure" else "right")
    table.add_row("validated load, rows/s", f"{lb['rows_per_s']:,.0f}", f"{n4['rows_per_s']:,.0f}",
                  f"{lb['rows_per_s'] / n4['rows_per_s']:.1f}×")
    table.add_row("re-run (0 writes), s", f"{lb['rerun_seconds']:.1f}", f"{n4['rerun_seconds']:.1f}",
                  f"{n4['rerun_seconds'] / lb['rerun_seconds']:.1f}×")
    for key, label in (("two_hop", "2-hop"), ("five_hop", "5-hop lookback"), ("lookback", "blood lookback (service)"),
                       ("trace_forward", "food trace-forward"), ("trace_back", "food trace-back from ICD-10")):
        for q in ("p50_ms", "p95_ms"):
            table.add_row(f"{label} {q.split('_')[0]}, ms", f"{lb[key][q]:.2f}", f"{n4[key][q]:.2f}",
                          f"{n4[key][q] / lb[key][q]:.1f}×")
    console.print(table)
    console.print("embedded speed-up: LadybugDB rows/s ÷ Neo4j rows/s, or Neo4j time ÷ LadybugDB time")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"engines-{ns.residents}.json"
    out.write_text(json.dumps({"residents": ns.residents, **results}, indent=1), encoding="utf-8")
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
