"""A drug trace code dispensed twice (planted by the generator) is found with both dispensings."""

from __future__ import annotations

from graph import GraphStore
from ontology.trace_codes import parse_drug_trace_code
from services.drug_trace import repeated_codes


def test_the_resold_pack_is_the_only_repeat(store: GraphStore, truth: dict) -> None:
    planted = truth["drug_trace_repeat"]
    found = repeated_codes(store)["repeats"]
    assert [g["code"] for g in found] == [planted["code"]]
    assert [d["item"] for d in found[0]["dispensings"]] == planted["items"]  # earliest first
    assert found[0]["times"] == 2 and found[0]["institutions"] == 2 and found[0]["well_formed"]
    assert parse_drug_trace_code(planted["code"]).scheme == "nmpa20"
