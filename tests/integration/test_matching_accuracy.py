"""Matching accuracy on held-out data: a generated province (seed 11, never the training seed 7), FEBRL4, and
Splink's fake_1000 when present."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.matching import MatchModel, cluster_assignment, dedupe
from models.matching.evaluate import (
    FAKE_1000_DIR,
    cluster_metrics,
    evaluate_fake1000,
    evaluate_febrl4,
    pair_set,
    pairwise_metrics,
    province_truth,
    recall_by_error,
    true_pairs,
    twin_record_pairs,
)
from models.matching.model import MATCH


@pytest.fixture(scope="module")
def outcome(province: Path):
    model = MatchModel.load()
    assert model.model_card["training_seed"] != 11  # the conftest province's seed must not be the training seed
    res, truth, twins = province_truth(province)
    pairs = dedupe(res, model, progress=False)
    return model, res, truth, twins, pairs


def test_pairwise_f1_on_held_out_province(outcome):
    _, _, truth, _, pairs = outcome
    m = pairwise_metrics(pair_set(pairs[pairs["decision"] == MATCH]), true_pairs(truth.set_index("key")["person"]))
    assert m.f1 >= 0.99, m


def test_recall_by_error_type(outcome):
    _, _, truth, _, pairs = outcome
    tp = true_pairs(truth.set_index("key")["person"])
    table = recall_by_error(pair_set(pairs[pairs["decision"] == MATCH]), tp, truth.set_index("key")["errors"])
    kinds = set(table["error"])
    assert {"missing_id", "phone_changed", "homophone", "clean"} <= kinds
    for row in table.itertuples():
        assert row.recall >= (0.97 if row.pairs >= 20 else 0.8), row


def test_twins_never_match(outcome):
    _, _, truth, twins, pairs = outcome
    twin_pairs = twin_record_pairs(truth, twins)
    assert twin_pairs
    assert not (pair_set(pairs[pairs["decision"] == MATCH]) & twin_pairs)


def test_clusters_are_components_of_match_pairs(outcome):
    _, res, truth, _, pairs = outcome
    clusters = cluster_assignment(res, pairs)
    assert len(clusters) == len(res)
    matched = pairs[pairs["decision"] == MATCH]
    assert (clusters.loc[matched["key_l"]].to_numpy() == clusters.loc[matched["key_r"]].to_numpy()).all()
    metrics = cluster_metrics(clusters, truth.set_index("key")["person"])
    assert metrics["bcubed_f1"] >= 0.99 and metrics["exact_cluster_share"] >= 0.98


def test_febrl4_link():
    r = evaluate_febrl4(limit=2000)
    assert r["true_links"] == 2000
    assert r["f1"] >= 0.99, {k: v for k, v in r.items() if k not in ("curve", "model")}
    curve = r["curve"]
    assert curve["recall"].is_monotonic_decreasing


@pytest.mark.skipif(not (FAKE_1000_DIR / "fake_1000.csv").exists(), reason="fake_1000 data not available")
def test_fake_1000():
    r = evaluate_fake1000()
    assert r is not None and r["records"] == 1000
    assert r["f1"] >= 0.85 and r["bcubed_f1"] >= 0.9, {k: v for k, v in r.items() if k not in ("curve", "model")}
