"""Blood lookback at scale: a blood-service graph of 1M donors (3 donations each, 2 units per
donation, a tenth of the units transfused), validated and loaded into the embedded engine, then
``services.blood_safety.lookback`` from random donations (goal: p95 ≤ 50 ms).

    python benchmarks/bench_lookback.py --donors 1000000

Writes benchmarks/results/lookback-<donors>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

RESULTS = Path(__file__).with_name("results")
CENTRE = "12330000MB0000000X"


def blood_service(out: Path, donors: int, seed: int) -> list[str]:
    """Write a folder of nodes/ and edges/ for the load pipeline; returns the last DIN of each donor."""
    rng = np.random.default_rng(seed)
    (out / "nodes").mkdir(parents=True)
    (out / "edges").mkdir(parents=True)
    ids = pd.Series(np.arange(donors)).astype(str).str.zfill(9)
    residents = pd.DataFrame({"source_system": "BLOOD", "source_id": ids, "name": "献血者" + ids.str[-4:],
                              "sex": rng.choice(["1", "2"], donors),
                              "birth_date": pd.Timestamp("1970-01-01") + pd.to_timedelta(rng.integers(0, 12000, donors), "D")})
    residents.to_parquet(out / "nodes" / "Resident.parquet")
    pd.DataFrame([{"uscc": CENTRE, "class": "BloodCenter", "name": "省血液中心"}]).to_parquet(
        out / "nodes" / "Institution.parquet")
    n = donors * 3
    serial = np.arange(n)
    din = ("Z33" + pd.Series(serial // 1_000_000).astype(str).str.zfill(2) + "25"
           + pd.Series(serial % 1_000_000).astype(str).str.zfill(6))
    donor = np.repeat(np.arange(donors), 3)
    when = pd.Timestamp("2025-01-01 09:00") + pd.to_timedelta(np.tile([0, 120, 240], donors)
                                                              + rng.integers(0, 90, n), "D")
    pd.DataFrame({"din": din, "occurred_at": when, "volume_ml": 400, "screening": "negative"}).to_parquet(
        out / "nodes" / "BloodDonation.parquet")
    resident_keys = "BLOOD:" + ids.to_numpy()[donor]
    pd.DataFrame({"src": din, "dst": resident_keys, "src_class": "BloodDonation", "dst_class": "Resident"}).to_parquet(
        out / "edges" / "of_patient.parquet")
    components = np.array(["suspended_red_cells", "fresh_frozen_plasma"])
    unit_din = np.repeat(din.to_numpy(), 2)
    unit_component = np.tile(components, n)
    unit_key = pd.Series(unit_din) + ":" + unit_component
    transfused = rng.random(2 * n) < 0.1
    units = pd.DataFrame({"din": unit_din, "component": unit_component, "abo_rh": "O+",
                          "expires_on": pd.Series(np.repeat(when.to_numpy(), 2)).dt.normalize()
                          + pd.to_timedelta(np.tile([35, 365], n), "D"),
                          "status": np.where(transfused, "transfused", "discarded")})
    units.to_parquet(out / "nodes" / "BloodUnit.parquet")
    pd.DataFrame({"src": unit_key, "dst": unit_din, "src_class": "BloodUnit", "dst_class": "BloodDonation"}).to_parquet(
        out / "edges" / "derived_from.parquet")
    pd.DataFrame({"src": unit_key, "dst": CENTRE, "src_class": "BloodUnit", "dst_class": "BloodCenter"}).to_parquet(
        out / "edges" / "stored_at.parquet")
    tx_units = unit_key[transfused].reset_index(drop=True)
    tx_ids = pd.Series(np.arange(len(tx_units))).astype(str).str.zfill(9)
    pd.DataFrame({"source_system": "HIS", "source_id": tx_ids,
                  "occurred_at": pd.Timestamp("2025-06-01")}).to_parquet(out / "nodes" / "Transfusion.parquet")
    tx_keys = "HIS:" + tx_ids
    pd.DataFrame({"src": tx_keys, "dst": tx_units, "src_class": "Transfusion", "dst_class": "BloodUnit"}).to_parquet(
        out / "edges" / "of_unit.parquet")
    recipients = "BLOOD:" + ids.to_numpy()[rng.integers(0, donors, len(tx_units))]
    pd.DataFrame({"src": tx_keys, "dst": recipients, "src_class": "Transfusion", "dst_class": "Resident"}).to_parquet(
        out / "edges" / "of_patient.transfusions.parquet")
    return list(din.to_numpy()[2::3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--donors", type=int, default=1_000_000)
    parser.add_argument("--lookbacks", type=int, default=300)
    ns = parser.parse_args()

    from graph import open_graph
    from ingest.load import load_folder
    from services.blood_safety import lookback

    with tempfile.TemporaryDirectory(prefix="hg-bench-lookback-") as tmp:
        work = Path(tmp)
        t = time.perf_counter()
        last = blood_service(work / "blood", ns.donors, seed=3)
        generate = time.perf_counter() - t
        store = open_graph(work / "g.lbdb")
        try:
            t = time.perf_counter()
            report = load_folder(store, work / "blood", quarantine_root=work / "q")
            load = time.perf_counter() - t
            assert report.totals()["quarantined"] == 0, report.totals()  # a benchmark of clean data only
            sample = [last[i] for i in np.random.default_rng(1).integers(0, len(last), ns.lookbacks)]
            for d in sample[:20]:
                lookback(store, d, as_of=dt.date(2026, 1, 1))
            times = []
            for d in sample:
                t = time.perf_counter()
                found = lookback(store, d, as_of=dt.date(2026, 1, 1))
                times.append((time.perf_counter() - t) * 1000)
                assert len(found.donations) >= 2 and len(found.units) == 2 * len(found.donations)
        finally:
            store.close()
    q = statistics.quantiles(times, n=100)
    out = {"donors": ns.donors, "rows": report.totals()["inserted"], "generate_s": generate, "load_s": load,
           "lookback_p50_ms": statistics.median(times), "lookback_p95_ms": q[94], "lookbacks": len(times)}
    print(f"{ns.donors:,} donors, {out['rows']:,} rows loaded in {load:.0f} s; lookback p50 "
          f"{out['lookback_p50_ms']:.1f} ms, p95 {out['lookback_p95_ms']:.1f} ms (goal ≤ 50 ms, ratio "
          f"{out['lookback_p95_ms'] / 50:.2f} of the goal)")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"lookback-{ns.donors}.json").write_text(json.dumps(out, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
