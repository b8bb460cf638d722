"""Traces as graphs for other tools: GraphML (Gephi, yEd, Cytoscape) or node-link JSON (d3).

Nodes carry their class (``kind``) and the trace's attributes (unit action, station score…);
edges carry their relation. Personal data never enters: residents appear by record key only,
as in the trace answers themselves. The graph's own attributes say what the trace used: its
kind, window and basis.
"""

from __future__ import annotations

import io
import json
from typing import Any

import networkx as nx

from services.blood_safety import Lookback

FORMATS = ("graphml", "json")


def lookback_graph(found: Lookback) -> nx.DiGraph:
    """Donor → donations → units → transfusions → recipients (and reactions)."""
    g = nx.DiGraph(trace="blood lookback", window_from=str(found.window_from), reactive_at=str(found.reactive_at),
                   basis=found.basis)
    g.add_node(found.donor, kind="Resident", role="donor")
    for d in found.donations:
        g.add_node(d["donation"], kind="BloodDonation", donated_at=str(d["donated_at"]), screening=d["screening"] or "")
        g.add_edge(found.donor, d["donation"], relation="donated")
    for u in found.units:
        g.add_node(u.unit, kind="BloodUnit", component=u.component or "", status=u.status or "", action=u.action,
                   expires_on=str(u.expires_on or ""))
        g.add_edge(u.donation, u.unit, relation="made_into")
        for t in u.transfusions:
            g.add_node(t["transfusion"], kind="Transfusion", transfused_at=str(t["transfused_at"]))
            g.add_edge(u.unit, t["transfusion"], relation="transfused_in")
            if t["recipient"]:
                g.add_node(t["recipient"], kind="Resident", role="recipient")
                g.add_edge(t["transfusion"], t["recipient"], relation="received_by")
            for r in t["reactions"]:
                g.add_node(r["reaction"], kind="TransfusionReaction", reaction_type=r["type"] or "")
                g.add_edge(t["transfusion"], r["reaction"], relation="reaction")
    return g


def forward_graph(found: dict[str, Any]) -> nx.DiGraph:
    """Stations linked by the deliveries of a suspect lot, and the residents exposed to it."""
    g = nx.DiGraph(trace="food trace-forward", lot=found["lot"], window=json.dumps([str(w) for w in found["window"]]),
                   basis=found["basis"])
    for d in found["deliveries"]:
        for station in (d["from_key"], d["to_key"]):
            g.add_node(station, kind="Institution")
        g.add_edge(d["from_key"], d["to_key"], relation="delivered", delivery=d["delivery"], lot=d["lot"],
                   delivered_at=str(d["occurred_at"]))
    for x in found["exposed"]:
        g.add_node(x["resident"], kind="Resident", role="exposed")
        g.add_node(x["lot"], kind="FoodLot")
        g.add_edge(x["lot"], x["resident"], relation="eaten_by", exposed_at=str(x["occurred_at"]))
    return g


def serialise(g: nx.DiGraph, fmt: str) -> tuple[str, str]:
    """The graph as text, with its media type."""
    if fmt == "graphml":
        buf = io.BytesIO()
        nx.write_graphml(g, buf, encoding="utf-8")
        return buf.getvalue().decode("utf-8"), "application/graphml+xml"
    if fmt == "json":
        return json.dumps(nx.node_link_data(g, edges="edges"), ensure_ascii=False, default=str), "application/json"
    raise ValueError(f"format must be one of {FORMATS}")
