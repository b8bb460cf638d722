"""AEFI per vaccine lot: the planted cluster signals, no other lot does."""

from __future__ import annotations

from graph import GraphStore
from services.vaccine_safety import lot_signals


def test_the_planted_aefi_cluster_is_the_only_signal(store: GraphStore, truth: dict) -> None:
    found = lot_signals(store)
    assert found["signals"] == [truth["aefi_cluster"]["lot"]]
    top = found["lots"][0]
    assert top["lot"] == truth["aefi_cluster"]["lot"] and top["adverse_events"] >= len(truth["aefi_cluster"]["events"])
    assert top["rate_per_10k"] == 1e4 * top["adverse_events"] / top["vaccinations"]


def test_counts_reconcile_with_the_graph(store: GraphStore) -> None:
    found = lot_signals(store)
    counts = store.counts()
    assert sum(x["vaccinations"] for x in found["lots"]) == counts["Vaccination"]
    assert sum(x["adverse_events"] for x in found["lots"]) == counts.get("following", 0)


def test_stricter_thresholds_silence_the_signal(store: GraphStore) -> None:
    assert lot_signals(store, min_events=1000)["signals"] == []
    assert lot_signals(store, alpha=1e-12)["signals"] == []
