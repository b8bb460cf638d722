"""Drug trace codes (药品追溯码) dispensed more than once.

Each sales pack carries one code (NMPAB/T 1002-2019 药品追溯码编码要求); a code dispensed or
settled twice means a pack resold after dispensing (回流药), a swapped pack (串换) or a
counterfeit code. Each repeat is listed with every dispensing of it (where and when), earliest
first, and whether the code itself is well formed.
"""

from __future__ import annotations

from typing import Any

from graph import GraphStore
from ontology.errors import InvalidDrugTraceCode
from ontology.trace_codes import validate_drug_trace_code

BASIS = "NMPAB/T 1002-2019 药品追溯码编码要求: one code per sales pack; a repeat signals 回流药 / 串换 / fake"


def repeated_codes(store: GraphStore) -> dict[str, Any]:
    """Codes dispensed more than once, most repeated first, each with its dispensings in time order."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in store.query("repeated_trace_codes"):
        groups.setdefault(r["code"], []).append(
            {k: r[k] for k in ("item", "prescription", "dispensed_at", "institution")})
    out = []
    for code, dispensings in groups.items():
        try:
            validate_drug_trace_code(code)
            problem = None
        except InvalidDrugTraceCode as exc:
            problem = f"{exc.code} {exc.message}"
        dispensings.sort(key=lambda d: (d["dispensed_at"], d["item"]))
        out.append({"code": code, "times": len(dispensings), "institutions": len({d["institution"] for d in dispensings}),
                    "well_formed": problem is None, "problem": problem, "dispensings": dispensings})
    out.sort(key=lambda g: (-g["times"], g["code"]))
    return {"repeats": out, "basis": BASIS}
