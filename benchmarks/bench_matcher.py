"""Person-matcher benchmark: real-time latency at 1M records, batch dedupe vs plain Splink, FEBRL4 and fake_1000.

    python benchmarks/bench_matcher.py                      # 1M index, 200k-record dedupe
    python benchmarks/bench_matcher.py --dedupe-residents 440000   # ~1M records for the dedupe
Writes benchmarks/results/matcher.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from ingest.synthetic import generate, people
from models.matching import MatchModel, PersonMatcher, dedupe
from models.matching.evaluate import (
    clusters_from_pairs,
    evaluate_fake1000,
    evaluate_febrl4,
    pair_set,
    pairwise_metrics,
    province_truth,
    true_pairs,
)
from models.matching.model import MATCH, quiet_splink
from ontology.identifiers import province_divisions

RESULTS = Path(__file__).resolve().parent / "results" / "matcher.json"


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def filler_records(n: int, seed: int = 99) -> pd.DataFrame:
    """n distinct synthetic people (one record each), vectorised with the generator's own samplers."""
    rng = np.random.default_rng(seed)
    sex = np.where(rng.random(n) < people.MALE_SHARE, "1", "2")
    birth = (pd.Timestamp("2025-06-30") - pd.to_timedelta(people.ages_in_years(rng, n) * 365.25, unit="D")).normalize()
    counties = np.array([d.code for d in province_divisions("330000") if d.level == "county"])
    division = rng.choice(counties, n)
    seq = rng.integers(0, 500, n) * 2 + (sex == "1")
    ids = people.id_numbers(division, birth.to_numpy(), seq).astype(object)
    ids[rng.random(n) < 0.15] = None
    names = people.NameSampler(rng).sample(sex)
    return pd.DataFrame({"key": np.char.add("FILL:", np.arange(n).astype(str)), "name": names, "sex": sex,
                         "birth_date": birth.strftime("%Y-%m-%d"), "id_number": ids,
                         "phone": people.phones(rng, n), "address": np.char.add("某市某镇人民路",
                                                                                rng.integers(1, 999, n).astype(str)),
                         "division_code": division})


def bench_realtime(model: MatchModel, folder: Path, index_size: int, queries: int) -> dict:
    res, truth, _ = province_truth(folder)
    filler = filler_records(max(0, index_size - len(res)))
    before = rss_mib()
    matcher = PersonMatcher(model)
    t0 = time.perf_counter()
    matcher.add(res)
    matcher.add(filler)
    build = time.perf_counter() - t0
    after = rss_mib()
    rows = res.sample(min(queries, len(res)), random_state=1).to_dict("records")
    times, cands, hits = [], [], 0
    person = truth.set_index("key")["person"]
    for r in rows:
        t = time.perf_counter()
        got = matcher.match(r, limit=10)
        times.append((time.perf_counter() - t) * 1000)
        cands.append(len(matcher.candidates(r)))
        if got and person.get(got[0].key) == person.get(r["key"]):
            hits += 1
    times_a = np.array(times)
    return {"index_records": len(matcher), "build_seconds": round(build, 1),
            "index_rss_mib": round(after - before, 0), "process_rss_mib": round(after, 0),
            "queries": len(rows), "p50_ms": round(float(np.percentile(times_a, 50)), 3),
            "p99_ms": round(float(np.percentile(times_a, 99)), 3), "max_ms": round(float(times_a.max()), 3),
            "mean_candidates": round(float(np.mean(cands)), 1),
            "top1_same_person_when_any": round(hits / len(rows), 4)}


def bench_dedupe(model: MatchModel, folder: Path, progress: bool) -> dict:
    res, truth, _ = province_truth(folder)
    tp = true_pairs(truth.set_index("key")["person"])
    t0 = time.perf_counter()
    pairs = dedupe(res, model, progress=progress)
    ours_s = time.perf_counter() - t0
    ours = pairwise_metrics(pair_set(pairs[pairs["decision"] == MATCH]), tp)
    # Plain Splink on the same records, levels, parameters and blocking rules: predict + connected components.
    t0 = time.perf_counter()
    linker = model.splink_linker(res)
    with quiet_splink():
        pred = linker.inference.predict(threshold_match_probability=model.possible_threshold)
        clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
            pred, threshold_match_probability=model.match_threshold).as_pandas_dataframe()
        pdf = pred.as_pandas_dataframe()
    splink_s = time.perf_counter() - t0
    linked = pdf[pdf["match_probability"] >= model.match_threshold]
    base = pairwise_metrics(pair_set(linked, "unique_id_l", "unique_id_r"), tp)
    ours_clusters = clusters_from_pairs(res["key"], pairs[pairs["decision"] == MATCH])
    return {"records": int(len(res)), "true_pairs": len(tp),
            "ours": {"seconds": round(ours_s, 1), **ours.as_dict(), "clusters": int(ours_clusters.nunique())},
            "splink": {"seconds": round(splink_s, 1), **base.as_dict(), "clusters": int(clusters["cluster_id"].nunique())},
            "time_ratio_ours_over_splink": round(ours_s / splink_s, 3),
            "f1_ratio_ours_over_splink": round(ours.f1 / base.f1, 4) if base.f1 else None}


def plot_pr_curve(curve: list[dict], chosen: float | None, path: Path) -> None:
    """Precision and recall against the match-weight threshold (needs the `bench` extra: matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed (pip install -e '.[bench]'): no plot")
        return
    weights = [p["weight"] for p in curve]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(weights, [p["precision"] for p in curve], label="precision")
    left.plot(weights, [p["recall"] for p in curve], label="recall")
    left.plot(weights, [p["f1"] for p in curve], label="F1", linestyle="--")
    left.set_xlabel("match weight threshold (log2 odds)")
    left.set_ylim(0, 1.02)
    left.legend()
    left.set_title("FEBRL4: by threshold")
    right.plot([p["recall"] for p in curve], [p["precision"] for p in curve], marker=".")
    right.set_xlabel("recall")
    right.set_ylabel("precision")
    right.set_title("FEBRL4: precision–recall curve")
    if chosen is not None:
        fig.suptitle(f"chosen threshold p ≥ {chosen:.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"plot {path}")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--index-size", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--dedupe-residents", type=int, default=88_000, help="≈2.27 records per resident: 88k → ~200k")
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--skip", nargs="*", default=[], choices=["realtime", "dedupe", "english"])
    ap.add_argument("--out", type=Path, default=RESULTS, help="where to write the figures (JSON)")
    args = ap.parse_args(argv)
    console = Console(width=120)
    model = MatchModel.load()
    out: dict = {"date": time.strftime("%Y-%m-%d"), "model_match_threshold": model.match_threshold}
    with tempfile.TemporaryDirectory() as tmp:
        if "realtime" not in args.skip or "dedupe" not in args.skip:
            console.print(f"生成省份 generating province ({args.dedupe_residents} residents, seed {args.seed})")
            t0 = time.perf_counter()
            folder = generate(Path(tmp) / "p", residents=args.dedupe_residents, seed=args.seed).out
            out["generate_seconds"] = round(time.perf_counter() - t0, 1)
        if "dedupe" not in args.skip:
            console.print("批量去重 batch dedupe: ours vs Splink")
            out["dedupe"] = bench_dedupe(model, folder, not args.no_progress)
        if "realtime" not in args.skip:
            console.print(f"实时匹配 real-time index of {args.index_size} records")
            out["realtime"] = bench_realtime(model, folder, args.index_size, args.queries)
    if "english" not in args.skip:
        febrl = evaluate_febrl4()
        out["febrl4"] = {k: v for k, v in febrl.items() if k not in ("curve", "model")}
        out["febrl4"]["pr_curve"] = febrl["curve"][["weight", "threshold", "precision", "recall", "f1"]].round(6) \
            .to_dict("records")
        fake = evaluate_fake1000()
        out["fake_1000"] = None if fake is None else {k: v for k, v in fake.items() if k not in ("curve", "model")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    if "febrl4" in out:
        plot_pr_curve(out["febrl4"]["pr_curve"], out["febrl4"].get("match_threshold"),
                      args.out.with_suffix(".febrl4-pr.png"))
    table = Table(title="人员匹配基准 person-matcher benchmark")
    table.add_column("项目 item", no_wrap=True)
    table.add_column("值 value", justify="right")
    if "realtime" in out:
        r = out["realtime"]
        for k in ("index_records", "build_seconds", "index_rss_mib", "p50_ms", "p99_ms", "mean_candidates"):
            table.add_row(f"实时 realtime {k}", str(r[k]))
    if "dedupe" in out:
        d = out["dedupe"]
        table.add_row("去重 dedupe records", str(d["records"]))
        for who in ("ours", "splink"):
            table.add_row(f"去重 dedupe {who} seconds / F1", f"{d[who]['seconds']} / {d[who]['f1']:.6f}")
        table.add_row("时间比 time ratio ours/splink", str(d["time_ratio_ours_over_splink"]))
        table.add_row("F1 比 F1 ratio ours/splink", str(d["f1_ratio_ours_over_splink"]))
    if "febrl4" in out:
        f = out["febrl4"]
        table.add_row("FEBRL4 P / R / F1", f"{f['precision']:.4f} / {f['recall']:.4f} / {f['f1']:.4f}")
    if out.get("fake_1000"):
        f = out["fake_1000"]
        table.add_row("fake_1000 P / R / F1", f"{f['precision']:.4f} / {f['recall']:.4f} / {f['f1']:.4f}")
        table.add_row("fake_1000 B-cubed F1 / exact clusters", f"{f['bcubed_f1']:.4f} / {f['exact_cluster_share']:.4f}")
    console.print(table)
    console.print(f"written {args.out}")
    return out


if __name__ == "__main__":
    main()
