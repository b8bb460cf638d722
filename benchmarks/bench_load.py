"""Load benchmark: validated ingest vs raw LadybugDB COPY of the same rows, peak memory, 2-hop latency.

    python benchmarks/bench_load.py --residents 100000

Each phase runs in its own process so its peak memory is its own. The baseline (raw COPY of
the same rows into the same schema, no validation, no idempotency checks) is measured in the
same run; the ratio validated/raw is the figure to watch (target ≥ 0.5, TARGETS.md). The validated
load runs twice: with identifiers stored as given, and as the platform stores them (id number and
phone sealed with SM4-GCM, HMAC-SM3 digests beside them; docs/privacy.md).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).with_name("results")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def phase_generate(out: str, residents: int, seed: int) -> dict[str, Any]:
    from ingest.synthetic import generate

    t = time.perf_counter()
    result = generate(out, residents=residents, seed=seed)
    rows = sum(result.counts.values())
    return {"seconds": time.perf_counter() - t, "rows": rows, "peak_mb": _peak_mb()}


def phase_validated(src: str, db: str, sealed: bool = False) -> dict[str, Any]:
    from graph import open_graph
    from ingest.load import load_folder
    from services.security.fields import FieldProtection

    keys = Path(db + ".keys")
    store = open_graph(db, protector=FieldProtection.at(keys / "sm4.json", keys / "digest.key") if sealed else None)
    t = time.perf_counter()
    report = load_folder(store, src, quarantine_root=db + ".quarantine")
    seconds = time.perf_counter() - t
    t2 = time.perf_counter()
    again = load_folder(store, src, quarantine_root=db + ".quarantine")
    rerun = time.perf_counter() - t2
    store.close()
    tot = report.totals()
    return {"seconds": seconds, "rows": tot["inserted"], "received": tot["received"],
            "quarantined": tot["quarantined"], "rerun_seconds": rerun,
            "rerun_writes": again.totals()["inserted"] + again.totals()["updated"], "peak_mb": _peak_mb()}


def phase_raw(src: str, db: str) -> dict[str, Any]:
    """COPY the same accepted rows with no validation: key and class added, columns ordered, nothing else."""
    import pandas as pd
    import pyarrow as pa

    from graph.ladybug import _ARROW, LadybugStore
    from ontology.model import KEY_SEPARATOR, load_ontology

    onto = load_ontology()
    store = LadybugStore(db, onto)
    prepared: list[tuple[str, pa.Table]] = []
    root = Path(src)
    for f in sorted((root / "nodes").glob("*.parquet")):
        table = f.name.split(".")[0]
        df = pd.read_parquet(f)
        key_props = onto.key_of(table)
        key = df[key_props[0]].astype(str)
        for k in key_props[1:]:
            key = key + KEY_SEPARATOR + df[k].astype(str)
        props = onto.table_properties(table)
        arrays = {"key": pa.array(key, pa.string()),
                  "class": pa.array(df["class"] if "class" in df else [table] * len(df), pa.string())}
        for name, p in props.items():
            typ = pa.list_(pa.string()) if p.is_list else _ARROW[p.datatype]
            if name in df:
                col = df[name]
                arrays[name] = pa.array(col.tolist(), typ) if p.is_list else pa.Array.from_pandas(col, type=typ)
            else:
                arrays[name] = pa.nulls(len(df), typ)
        prepared.append((f"COPY {table} FROM $batch", pa.table(arrays)))
    edge_jobs = []
    for f in sorted((root / "edges").glob("*.parquet")):
        edge = f.name.split(".")[0]
        df = pd.read_parquet(f)
        multi = len(onto.edge_table_pairs(edge)) > 1
        tables_src = df["src_class"].map(lambda c: onto.classes[c].table)
        tables_dst = df["dst_class"].map(lambda c: onto.classes[c].table)
        for (st, dt), g in df.groupby([tables_src, tables_dst]):
            batch = pa.table({"from": pa.array(g["src"], pa.string()), "to": pa.array(g["dst"], pa.string()),
                              "batch_id": pa.nulls(len(g), pa.string())})
            opts = f" (from='{st}', to='{dt}')" if multi else ""
            edge_jobs.append((f"COPY {edge} FROM $batch{opts}", batch))
    rows = 0
    t = time.perf_counter()
    for stmt, batch in prepared + edge_jobs:
        store._conn.execute(stmt, {"batch": batch})
        rows += batch.num_rows
    seconds = time.perf_counter() - t
    store.close()
    return {"seconds": seconds, "rows": rows, "peak_mb": _peak_mb()}


def phase_two_hop(db: str, samples: int) -> dict[str, Any]:
    import random

    from graph import open_graph

    store = open_graph(db)
    keys = store._run("MATCH (e:Encounter)-[:of_patient]->(r:Resident) RETURN DISTINCT r.key AS k LIMIT 20000")["k"].tolist()
    random.Random(1).shuffle(keys)
    lat = []
    for k in keys[:samples]:
        t = time.perf_counter()
        store.query("institutions_visited", resident_key=k)
        lat.append((time.perf_counter() - t) * 1000)
    store.close()
    q = statistics.quantiles(lat, n=100)
    return {"samples": len(lat), "p50_ms": statistics.median(lat), "p95_ms": q[94], "peak_mb": _peak_mb()}


def _run(fn: Any, *args: Any) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(fn, args)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--residents", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="hg-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    src = work / f"province-{args.residents}"
    print(f"HealthGraph load benchmark — {args.residents:,} residents, seed {args.seed}, work dir {work}")
    manifest = src / "manifest.json"
    reuse = manifest.exists() and (lambda m: (m["residents"], m["seed"]) == (args.residents, args.seed))(
        json.loads(manifest.read_text(encoding="utf-8")))
    if reuse:  # a province of this size and seed already in --workdir (7 min to generate at 1M)
        gen = {"seconds": float("nan"), "rows": sum(json.loads(manifest.read_text(encoding="utf-8"))["counts"].values()),
               "peak_mb": float("nan"), "reused": str(src)}
        print(f"  generate      reused {src}")
    else:
        gen = _run(phase_generate, str(src), args.residents, args.seed)
        print(f"  generate      {gen['seconds']:8.1f} s   {gen['rows']:>12,} rows   peak {gen['peak_mb']:,.0f} MB")
    for db in ("raw.lbdb", "validated.lbdb", "sealed.lbdb"):  # a kept work dir's stores from an earlier run
        for path in work.glob(f"{db}*"):  # the store file, its WAL, quarantine and keys
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
    raw = _run(phase_raw, str(src), str(work / "raw.lbdb"))
    print(f"  raw COPY      {raw['seconds']:8.1f} s   {raw['rows']:>12,} rows   {raw['rows'] / raw['seconds']:>10,.0f} rows/s"
          f"   peak {raw['peak_mb']:,.0f} MB")
    val = _run(phase_validated, str(src), str(work / "validated.lbdb"))
    print(f"  validated     {val['seconds']:8.1f} s   {val['rows']:>12,} rows   {val['rows'] / val['seconds']:>10,.0f} rows/s"
          f"   peak {val['peak_mb']:,.0f} MB   ({val['quarantined']} quarantined)")
    ratio = (val["rows"] / val["seconds"]) / (raw["rows"] / raw["seconds"])
    print(f"  ratio validated/raw = {ratio:.2f}  (target ≥ 0.50)")
    print(f"  re-run (idempotent) {val['rerun_seconds']:8.1f} s, writes: {val['rerun_writes']}")
    sealed = _run(phase_validated, str(src), str(work / "sealed.lbdb"), True)
    sealed_ratio = (sealed["rows"] / sealed["seconds"]) / (raw["rows"] / raw["seconds"])
    print(f"  validated+SM4 {sealed['seconds']:8.1f} s   {sealed['rows']:>12,} rows   "
          f"{sealed['rows'] / sealed['seconds']:>10,.0f} rows/s   peak {sealed['peak_mb']:,.0f} MB   "
          f"ratio/raw {sealed_ratio:.2f}, ×{sealed['seconds'] / val['seconds']:.2f} the time of the plain load")
    hop = _run(phase_two_hop, str(work / "validated.lbdb"), args.samples)
    print(f"  2-hop query (resident ← encounter → institution): p50 {hop['p50_ms']:.2f} ms, p95 {hop['p95_ms']:.2f} ms"
          f" over {hop['samples']} residents")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"load-{args.residents}.json"
    out.write_text(json.dumps({"residents": args.residents, "seed": args.seed, "generate": gen, "raw": raw,
                               "validated": val, "ratio": ratio, "validated_sealed": sealed,
                               "ratio_sealed": sealed_ratio, "two_hop": hop,
                               "measured": time.strftime("%Y-%m-%d %H:%M")}, indent=1), encoding="utf-8")
    print(f"  results → {out}")
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
