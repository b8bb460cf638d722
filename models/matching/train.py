"""Retrain the shipped person matcher: ``python -m models.matching.train --residents 20000 --seed 7``.

Generates three synthetic provinces: seed (training, unsupervised Splink EM), seed+1 (validation: thresholds
from its precision–recall curve) and seed+2 (test: the metrics in the model card). Labels never reach Splink.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ingest.synthetic import generate
from models.matching.dedupe import score_candidates
from models.matching.evaluate import (
    choose_thresholds,
    pair_set,
    pairwise_metrics,
    pr_curve,
    province_truth,
    recall_by_error,
    true_pairs,
    twin_record_pairs,
)
from models.matching.model import DEFAULT_PATH, MATCH, MatchModel, train


def evaluate_province(model: MatchModel, folder: Path) -> dict:
    """Pairwise metrics of the model's decisions on a generated province, per error type, and twins at MATCH."""
    res, truth, twins = province_truth(folder)
    scored, _ = score_candidates(res, model, progress=False)
    tp = true_pairs(truth.set_index("key")["person"])
    matched = pair_set(scored[scored["decision"] == MATCH])
    twin_pairs = twin_record_pairs(truth, twins)
    by_error = recall_by_error(matched, tp, truth.set_index("key")["errors"])
    return {"records": int(len(res)), "true_pairs": len(tp), "candidate_pairs": int(len(scored)),
            "blocking_recall": round(len(pair_set(scored) & tp) / len(tp), 6),
            **pairwise_metrics(matched, tp).as_dict(),
            "recall_by_error": {r.error: {"pairs": r.pairs, "recall": round(r.recall, 6)}
                                for r in by_error.itertuples()},
            "twin_record_pairs": len(twin_pairs), "twin_pairs_at_match": len(matched & twin_pairs),
            "_scored": scored, "_truth": tp}


def main(argv: list[str] | None = None) -> MatchModel:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--residents", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=DEFAULT_PATH)
    ap.add_argument("--u-max-pairs", type=float, default=1e7)
    args = ap.parse_args(argv)
    console = Console(width=120)
    with tempfile.TemporaryDirectory() as tmp:
        folders = {}
        for role, seed in (("train", args.seed), ("validation", args.seed + 1), ("test", args.seed + 2)):
            console.print(f"生成省份 generating province ({role}, seed {seed}, {args.residents} residents)")
            folders[role] = generate(Path(tmp) / role, residents=args.residents, seed=seed).out
        res, _, _ = province_truth(folders["train"])
        t0 = time.perf_counter()
        console.print("训练 training with Splink (u: random sampling, m: EM)")
        model = train(res, seed=1, u_max_pairs=args.u_max_pairs)
        train_s = time.perf_counter() - t0
        val = evaluate_province(model, folders["validation"])
        curve = pr_curve(val["_scored"], val["_truth"])
        model.match_threshold, model.possible_threshold = choose_thresholds(curve)
        test = evaluate_province(model, folders["test"])
    metrics = {k: v for k, v in test.items() if not k.startswith("_")}
    model.model_card.update({
        "name": "HealthGraph person matcher (平台主索引 人员匹配)",
        "training_data": (f"synthetic province from ingest.synthetic.generate(residents={args.residents}, "
                          f"seed={args.seed}): registry (PHIS) and hospital (HIS-*) Resident records with planted "
                          "duplicates and errors; unsupervised — no labels used in training"),
        "training_seed": args.seed, "training_seconds": round(train_s, 1),
        "validation": f"seed {args.seed + 1}: thresholds chosen on its precision-recall curve "
                      "(match = centre of the best-F1 plateau; possible = lowest threshold >= 0.5 with precision >= 0.5)",
        "test": f"seed {args.seed + 2}, {args.residents} residents", "test_metrics": metrics,
        "date": dt.date.today().isoformat()})
    model.save(args.out)
    table = Table(title="人员匹配评估 person-matching evaluation (test province)")
    table.add_column("指标 metric", no_wrap=True)
    table.add_column("值 value", justify="right")
    for k in ("records", "true_pairs", "candidate_pairs", "blocking_recall", "precision", "recall", "f1",
              "twin_record_pairs", "twin_pairs_at_match"):
        table.add_row(k, str(metrics[k]))
    for err, row in metrics["recall_by_error"].items():
        table.add_row(f"召回 recall [{err}]", f"{row['recall']:.4f} ({row['pairs']} pairs)")
    table.add_row("match_threshold", f"{model.match_threshold:.6f}")
    table.add_row("possible_threshold", f"{model.possible_threshold:.6f}")
    console.print(table)
    console.print(f"saved {args.out}")
    return model


if __name__ == "__main__":
    main()
