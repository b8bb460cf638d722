"""Batch deduplication (and two-source linkage) with the same blocking rules and Python scorer as real time."""

from __future__ import annotations

import numpy as np
import pandas as pd
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from models.matching.evaluate import clusters_from_pairs
from models.matching.index import blocking_keys
from models.matching.model import MATCH, MatchModel

_CHUNK = 50_000


def _progress(enabled: bool) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    disable=not enabled, transient=False)


def candidate_pairs(norm: list[dict], rules, source: np.ndarray | None = None) -> np.ndarray:
    """Unique (i, j), i < j, row pairs sharing any blocking key (vectorised self-join per rule); with ``source``
    only pairs across sources (link_only)."""
    n = len(norm)
    codes: list[np.ndarray] = []
    for r, rule in enumerate(rules):
        keys = [None] * n
        for i, rec in enumerate(norm):
            for _, block in blocking_keys(rec, (rule,)):
                keys[i] = block
        frame = pd.DataFrame({"k": keys, "i": np.arange(n)}).dropna()
        if frame.empty:
            continue
        frame["g"] = pd.factorize(frame["k"])[0]
        frame = frame[frame.groupby("g")["i"].transform("size") > 1]
        joined = frame[["g", "i"]].merge(frame[["g", "i"]], on="g")
        joined = joined[joined["i_x"].to_numpy() < joined["i_y"].to_numpy()]
        i, j = joined["i_x"].to_numpy(np.int64), joined["i_y"].to_numpy(np.int64)
        if source is not None:
            keep = source[i] != source[j]
            i, j = i[keep], j[keep]
        codes.append(i * n + j)
        del r
    if not codes:
        return np.empty((0, 2), dtype=np.int64)
    code = np.unique(np.concatenate(codes))
    return np.stack([code // n, code % n], axis=1)


def score_candidates(records: pd.DataFrame, model: MatchModel, *, progress: bool = True,
                     source_column: str = "source_dataset") -> tuple[pd.DataFrame, np.ndarray]:
    """Every blocked candidate pair scored (key_l, key_r, weight, probability, deterministic, decision), and the
    record keys in input order."""
    cfg = model.config
    rows = records.to_dict("records")
    with _progress(progress) as bar:
        task = bar.add_task("规范化 normalise", total=len(rows))
        norm = []
        for start in range(0, len(rows), _CHUNK):
            norm.extend(cfg.normalise(r) for r in rows[start:start + _CHUNK])
            bar.advance(task, min(_CHUNK, len(rows) - start))
        source = records[source_column].to_numpy() if cfg.link_type == "link_only" else None
        task = bar.add_task("分块 blocking", total=1)
        pairs = candidate_pairs(norm, cfg.blocking, source)
        bar.advance(task)
        task = bar.add_task("比对 scoring", total=len(pairs))
        weights = np.empty(len(pairs))
        capped = np.zeros(len(pairs), dtype=bool)
        det = np.zeros(len(pairs), dtype=bool)
        assess, deterministic = model.assess, model.is_deterministic
        for start in range(0, len(pairs), _CHUNK):
            for p in range(start, min(start + _CHUNK, len(pairs))):
                a, b = norm[pairs[p, 0]], norm[pairs[p, 1]]
                weights[p], capped[p] = assess(a, b)
                det[p] = deterministic(a, b)
            bar.advance(task, min(_CHUNK, len(pairs) - start))
    keys = np.array([r["key"] for r in norm], dtype=object)
    prob = 1.0 / (1.0 + np.exp2(-weights))
    decision = np.where(det | ((prob >= model.match_threshold) & ~capped), MATCH,
                        np.where(prob >= model.possible_threshold, "POSSIBLE_MATCH", "NON_MATCH"))
    scored = pd.DataFrame({"key_l": keys[pairs[:, 0]], "key_r": keys[pairs[:, 1]], "weight": weights,
                           "probability": prob, "deterministic": det, "decision": decision})
    return scored, keys


def dedupe(records: pd.DataFrame, model: MatchModel, *, progress: bool = True,
           source_column: str = "source_dataset") -> pd.DataFrame:
    """Scored pairs at or above the possible threshold (or deterministic): key_l, key_r, weight, probability,
    deterministic, decision, and 'cluster' — the connected component of MATCH links that key_l belongs to
    (equal for both keys of a MATCH pair). For a link_only model, records carry ``source_column``."""
    scored, keys = score_candidates(records, model, progress=progress, source_column=source_column)
    out = scored[scored["decision"] != "NON_MATCH"].reset_index(drop=True)
    clusters = clusters_from_pairs(keys, out[out["decision"] == MATCH])
    out["cluster"] = clusters.loc[out["key_l"]].to_numpy()
    return out.sort_values("weight", ascending=False, ignore_index=True)


def cluster_assignment(records: pd.DataFrame, pairs: pd.DataFrame) -> pd.Series:
    """Every record's cluster (singletons included) from ``dedupe`` output: components of MATCH pairs."""
    return clusters_from_pairs(records["key"].astype(str), pairs[pairs["decision"] == MATCH])
