"""The registries behave identically on both graph engines: the same registrations, status changes
and terminology versions give the same nodes, histories, lookups, translations and duplicates."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path
from typing import Any

from graph import GraphStore, open_graph
from ontology.identifiers import id_check_char, uscc_check_char
from ontology.model import Ontology
from services.registries import Registries


def _uscc(serial: str) -> str:
    body = "12330106" + serial.rjust(9, "0")
    return body + uscc_check_char(body)


def _run(store: GraphStore) -> dict[str, Any]:
    ticks = itertools.count()
    reg = Registries(store, clock=lambda: dt.datetime(2026, 3, 1, 8, 0) + dt.timedelta(seconds=next(ticks)))
    reg.terminology.seed(actor="test")
    a, b = _uscc("1"), _uscc("2")
    reg.institutions.register({"uscc": a, "class": "Hospital", "name": "杭州市第一人民医院", "grade": "3A",
                               "division_code": "330106", "licensed_subjects": ["03", "04"],
                               "valid_from": dt.date(2020, 1, 1), "valid_to": dt.date(2030, 12, 31)}, actor="test")
    reg.institutions.register({"uscc": b, "class": "Hospital", "name": "杭州第一人民医院", "division_code": "330106"},
                              actor="test")
    number = "33010619850712002"
    number += id_check_char(number)
    for code, name, licence in (("P1", "陈静", "110000000000901"), ("P2", "陈婧", "110000000000902")):
        reg.practitioners.register({"code": code, "name": name, "sex": "2", "birth_date": dt.date(1985, 7, 12),
                                    "id_number": number if code == "P1" else None, "licence": licence,
                                    "practice_scope": ["internal_medicine"], "valid_from": dt.date(2015, 1, 1),
                                    "valid_to": dt.date(2029, 12, 31), "institution": a}, actor="test")
    reg.practitioners.update("P2", {"institution": b}, actor="test", reason="变更执业地点")
    reg.set_licence_status("110000000000901", "suspended", actor="test", reason="中止")
    reg.terminology.add_version("vaccines", "v2", retired=["bcg"], actor="test")
    state = {}
    for table in ("Practitioner", "License", "Institution", "CodeSystem", "Concept", "ConceptMapping"):
        state[table] = store.nodes(table).drop(columns=["batch_id"]).sort_values("key").to_dict("records")
    for edge, src, dst in (("registered_at", "License", "Institution"), ("employed_by", "Practitioner", "Institution"),
                           ("broader", "Concept", "Concept"), ("in_code_system", "Concept", "CodeSystem")):
        state[edge] = sorted(map(tuple, store.edge_pairs(edge, src, dst).to_numpy().tolist()))
    return {"state": state,
            "practitioners": [reg.practitioners.get(c) for c in ("P1", "P2")],
            "institution": reg.institutions.get(a),
            "history": [(e["action"], e["actor"], e["reason"], e["changed"]) for e in reg.history("P2")],
            "duplicates": (reg.practitioners.duplicates(), reg.institutions.duplicates()),
            "lookup": (reg.terminology.lookup("vaccines", "bcg", "v1"), reg.terminology.lookup("vaccines", "bcg")),
            "translate": reg.terminology.translate("drugs", "warfarin"),
            "search": reg.terminology.search("feiyan")}


def test_registries_are_the_same_on_both_engines(tmp_path: Path, onto: Ontology, neo4j_scratch_url: str) -> None:
    embedded = open_graph(tmp_path / "g.lbdb", onto=onto)
    server = open_graph(neo4j_scratch_url, engine="neo4j", onto=onto)
    server.clear()
    try:
        a, b = _run(embedded), _run(server)
    finally:
        embedded.close()
        server.close()
    assert a["duplicates"][0] and a["duplicates"][1], "the planted pairs are found"
    assert a["lookup"][0]["concept_status"] == "active" and a["lookup"][1]["concept_status"] == "retired"
    assert a["state"]["registered_at"] and a["state"]["broader"]
    for part in a:
        assert a[part] == b[part], part
