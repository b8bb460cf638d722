"""Food trace-back at scale: a generated supply network of 57k stations and 300k deliveries with a
planted source and 50 cases, traced in memory by ``services.food_trace.rank_sources``.

    python benchmarks/bench_trace.py

Prints the time to index the network (once per network), the trace-back time (p50 over repeated
runs, goal ≤ 0.2 s) and the planted source's rank (goal 1). Writes benchmarks/results/trace.json.
End-to-end trace latencies on both graph engines are in bench_engines.py.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import time
from pathlib import Path

import numpy as np

from services.food_trace import Network, rank_sources

RESULTS = Path(__file__).with_name("results")


def supply_network(producers: int, distributors: int, venues: int, lots: int, seed: int) -> tuple[Network, list, str]:
    """Producer → distributor (one delivery per lot) → two venues each; a source lot reaches 10 venues."""
    rng = np.random.default_rng(seed)
    day0 = dt.datetime(2025, 1, 1)
    deliveries, producer = [], {}
    lot_producer = rng.integers(0, producers, lots)
    lot_distributor = rng.integers(0, distributors, lots)
    made = rng.integers(0, 330, lots)
    n = 0
    for i in range(lots):
        lot = f"L{i}"
        producer[lot] = f"P{lot_producer[i]}"
        when = day0 + dt.timedelta(days=int(made[i]))
        deliveries.append({"delivery": f"D{n}", "lot": lot, "from_key": producer[lot],
                           "to_key": f"W{lot_distributor[i]}", "occurred_at": when, "quantity": 100.0})
        n += 1
        for v in rng.integers(0, venues, 2):
            deliveries.append({"delivery": f"D{n}", "lot": lot, "from_key": f"W{lot_distributor[i]}",
                               "to_key": f"V{v}", "occurred_at": when + dt.timedelta(days=1), "quantity": 50.0})
            n += 1
    source_day = day0 + dt.timedelta(days=200)
    producer["OUTBREAK"] = "P-source"
    deliveries.append({"delivery": f"D{n}", "lot": "OUTBREAK", "from_key": "P-source", "to_key": "W-source",
                       "occurred_at": source_day, "quantity": 500.0})
    outbreak_venues = [f"V{v}" for v in rng.choice(venues, 10, replace=False)]
    for j, v in enumerate(outbreak_venues):
        deliveries.append({"delivery": f"D{n + 1 + j}", "lot": "OUTBREAK", "from_key": "W-source", "to_key": v,
                           "occurred_at": source_day + dt.timedelta(days=1), "quantity": 50.0})
    exposures = [{"resident": f"case{c}", "venue": outbreak_venues[c % 10],
                  "occurred_at": source_day + dt.timedelta(days=2 + c % 3, hours=12)} for c in range(50)]
    return Network(deliveries, producer, {}), exposures, "P-source"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--producers", type=int, default=5_000)
    parser.add_argument("--distributors", type=int, default=2_000)
    parser.add_argument("--venues", type=int, default=50_000)
    parser.add_argument("--lots", type=int, default=100_000, help="each lot makes 3 deliveries")
    parser.add_argument("--runs", type=int, default=7)
    ns = parser.parse_args()
    t = time.perf_counter()
    network, exposures, source = supply_network(ns.producers, ns.distributors, ns.venues, ns.lots, seed=1)
    build = time.perf_counter() - t
    stations = ns.producers + ns.distributors + ns.venues + 2
    t = time.perf_counter()
    network.into  # noqa: B018 - build the indexes once, as a long-running service would
    network.end_points("L0")
    index = time.perf_counter() - t
    times, ranked = [], []
    for _ in range(ns.runs):
        t = time.perf_counter()
        ranked, traced = rank_sources(network, exposures)
        times.append(time.perf_counter() - t)
    stations_ranked = [c for c in ranked if c.kind == "station"]
    rank = next(i for i, c in enumerate(stations_ranked, start=1) if c.key == source)
    out = {"stations": stations, "deliveries": len(network.deliveries), "cases": len(exposures),
           "generate_s": build, "index_s": index, "trace_p50_s": statistics.median(times), "trace_max_s": max(times),
           "source_rank": rank, "source_score": stations_ranked[rank - 1].score}
    print(f"supply network: {stations:,} stations, {len(network.deliveries):,} deliveries, {len(exposures)} cases")
    print(f"  index once: {index:.2f} s · trace-back p50 {out['trace_p50_s'] * 1000:.0f} ms (goal ≤ 200 ms, "
          f"ratio {out['trace_p50_s'] / 0.2:.2f} of the goal) · source rank {rank}, score {out['source_score']:.2f}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "trace.json").write_text(json.dumps(out, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
