"""Food-borne outbreak tracing for investigators: trace-back from cases, trace-forward from a lot.

Trace-back follows lots, not just stations: a case ate at a venue on a day; the lots delivered
to that venue in the days before are the candidates; each lot is followed upstream through the
deliveries that carried the same lot (each one before the next), to the station that produced
it and, for processed lots, to the lots it was made from. A station, lot or delivery scores the
share of cases whose backward trace reaches it: 1.0 is a common link of every case (the scoring
used by trace-back tools such as BfR's FoodChain-Lab). Equal scores rank the most upstream
first: the earliest common point is where contamination can have entered.

Among equal scores, lots with laboratory-positive samples (and the stations and deliveries that
carried them) rank first, then lots that ended up only where the cases ate.

Options an investigator sets, as in FoodChain-Lab:
- case weights (e.g. 1 for a laboratory-confirmed case, 0.5 for a probable one): a score is the
  weighted share of cases;
- negative controls: people who ate at the venues and stayed well. Their backward trace is scored
  the same way; a point reached by many controls is a weaker suspect (it ranks after an equal score
  with fewer controls) and each candidate reports its control share;
- cross-contamination inside a station: at the stations named, any lot that arrived there may have
  contaminated a lot leaving later (only where the dates allow: it arrived before that lot left, within the
  shelf life);
- kill steps: stations whose processing kills the agent (e.g. pasteurisation): a trace stops there,
  nothing upstream of them can be the source of what passed through.

Trace-forward from a suspected lot: every delivery of it and of lots made from it, every station
it reached, and every resident exposed to it (for recall and case finding).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from graph import GraphStore
from ontology.errors import QueryParameterError

SHELF_DAYS = 30
"""How long before a meal a delivered lot counts as a candidate (a perishable product's shelf life)."""
BASIS = "食源性疾病监测报告工作规范 (试行) 2019; lot-based trace-back scoring (FoodChain-Lab)"
CROSS_ALL = "*"
"""Pass as the only cross-contamination station to allow it at every station."""


@dataclass
class Candidate:
    key: str
    kind: str
    """station · lot · delivery"""
    score: float
    cases: int
    depth: int
    """Deliveries between this point and the nearest case's venue (0 for a venue)."""
    via: list[str] = field(default_factory=list)
    """The lots that link it to the cases."""
    specificity: float = 1.0
    """For a lot: the share of the places it ended up (stations that passed it on to no one) that are
    case venues. A lot that also went to many venues without cases is the weaker suspect."""
    positive_samples: list[str] = field(default_factory=list)
    """Laboratory-positive food samples of this lot: evidence that breaks ties between equal scores."""
    controls: float = 0.0
    """The share of negative controls (people who ate there and stayed well) whose trace reaches it."""


@dataclass
class Network:
    """The supply network of a period: deliveries by receiving station and lots by key."""

    deliveries: list[dict[str, Any]]
    producer: dict[str, str | None]
    made_from: dict[str, list[str]]

    @classmethod
    def read(cls, store: GraphStore, start: dt.datetime, end: dt.datetime) -> Network:
        deliveries = store.query("food_deliveries", since=start, until=end)
        producer: dict[str, str | None] = {}
        made_from: dict[str, list[str]] = defaultdict(list)
        for r in store.query("food_lots"):
            producer[r["lot"]] = r["producer"]
            if r["made_from"]:
                made_from[r["lot"]].append(r["made_from"])
        return cls(deliveries, producer, dict(made_from))

    def end_points(self, lot: str) -> set[str]:
        """Stations that received the lot and passed it on to no one."""
        return self._ends.get(lot, set())

    @cached_property
    def _ends(self) -> dict[str, set[str]]:
        senders: dict[str, set[str]] = defaultdict(set)
        receivers: dict[str, set[str]] = defaultdict(set)
        for d in self.deliveries:
            senders[d["lot"]].add(d["from_key"])
            receivers[d["lot"]].add(d["to_key"])
        return {lot: to - senders[lot] for lot, to in receivers.items()}

    @cached_property
    def into(self) -> dict[str, list[dict[str, Any]]]:
        """Deliveries by receiving station."""
        out: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for d in self.deliveries:
            out[d["to_key"]].append(d)
        return dict(out)


def trace_back(store: GraphStore, *, cases: list[str] | None = None, icd10: str | None = None,
               start: dt.datetime, end: dt.datetime, shelf_days: int = SHELF_DAYS, top: int = 20,
               weights: dict[str, float] | None = None, controls: list[str] | None = None,
               cross_contamination: list[str] | None = None, kill: list[str] | None = None) -> dict[str, Any]:
    """Rank stations, lots and deliveries by the (weighted) share of cases whose backward trace reaches them.

    Cases are resident record keys, or every resident diagnosed with ``icd10`` in [start, end).
    ``weights`` maps case keys to weights (default 1); ``controls`` are record keys of negative
    controls; ``cross_contamination`` names stations where lots may contaminate each other
    (``["*"]`` for all); ``kill`` names stations whose processing kills the agent.
    """
    if cases is None:
        if not icd10:
            raise QueryParameterError("give cases or an ICD-10 code 需提供病例或ICD-10编码")
        diagnosed = [r["resident"] for r in store.query("cases_by_diagnosis", icd10=icd10, since=start, until=end)]
        # Diagnoses sit on hospital records, meals on the surveillance record of the same person: the
        # master person index links them; a shared resident id number links them before it is built.
        cases = sorted({r["record"] for r in store.query_each("same_person_records", "resident", diagnosed)}
                       | {r["record"] for r in store.query("records_sharing_id_number", residents=diagnosed)}
                       | set(diagnosed))
    exposures = [e for e in store.query("exposures_of_residents", residents=sorted(set(cases))) if e["venue"]]
    control_meals = [e for e in store.query("exposures_of_residents", residents=sorted(set(controls)))
                     if e["venue"]] if controls else []
    network = Network.read(store, start - dt.timedelta(days=shelf_days * 4), end)
    positives: dict[str, list[str]] = defaultdict(list)
    for r in store.query("samples_of_lots", lots=sorted(network.producer)):
        if r["positive"]:
            positives[r["lot"]].append(r["sample"])
    options = Options(weights or {}, frozenset(cross_contamination or ()), frozenset(kill or ()), shelf_days)
    ranked, traced = rank_sources(network, exposures, options=options, positives=positives, controls=control_meals)
    if not traced:
        raise QueryParameterError("no case has a recorded meal or exposure at a venue 病例均无就餐/暴露记录",
                                  cases=len(cases))
    return {"cases": len(set(cases)), "cases_traced": traced, "window": [start, end], "shelf_days": shelf_days,
            "options": {"weighted_cases": len(options.weights), "controls": len({e["resident"] for e in control_meals}),
                        "cross_contamination": sorted(options.cross), "kill": sorted(options.kill)},
            **{plural: [c.__dict__ for c in ranked if c.kind == kind][:top]
               for kind, plural in (("station", "stations"), ("lot", "lots"), ("delivery", "deliveries"))},
            "basis": BASIS}


@dataclass(frozen=True)
class Options:
    """How a trace-back weighs cases and moves through stations (see the module notes)."""

    weights: dict[str, float] = field(default_factory=dict)
    cross: frozenset[str] = frozenset()
    kill: frozenset[str] = frozenset()
    shelf_days: int = SHELF_DAYS

    def weight(self, case: str) -> float:
        return float(self.weights.get(case, 1.0))

    def crosses_at(self, station: str) -> bool:
        return CROSS_ALL in self.cross or station in self.cross


def rank_sources(network: Network, exposures: list[dict[str, Any]], *, options: Options | None = None,
                 positives: dict[str, list[str]] | None = None,
                 controls: list[dict[str, Any]] | None = None) -> tuple[list[Candidate], int]:
    """The trace-back itself, on a network in memory: exposures (and negative controls' meals) are
    rows with ``resident``, ``venue`` and ``occurred_at``. Returns every reached station, lot and
    delivery, best first, and how many cases had something to trace."""
    options = options or Options()
    positives = positives or {}
    meals = _by_person(exposures)
    reached = _reached(network, meals, options)
    by_control = _reached(network, _by_person(controls or []), options)
    n_controls = len(_by_person(controls or []))
    total = sum(options.weight(case) for case in meals) or 1.0
    venues = {e["venue"] for e in exposures if e.get("venue")}
    ranked = []
    for (kind, key), v in reached.items():
        weighted = sum(options.weight(case) for case in v["cases"])
        c = Candidate(key, kind, weighted / total, len(v["cases"]), v["depth"], sorted(v["via"]))
        if n_controls:
            c.controls = len(by_control.get((kind, key), {}).get("cases", ())) / n_controls
        if kind == "lot":
            ends = network.end_points(key)
            c.specificity = len(ends & venues) / len(ends) if ends else 0.0
            c.positive_samples = sorted(positives.get(key, []))
        else:
            c.positive_samples = sorted({s for lot in c.via for s in positives.get(lot, [])})
        ranked.append(c)
    ranked.sort(key=lambda c: (-c.score, c.controls, -len(c.positive_samples), -c.specificity, -c.depth, c.key))
    return ranked, len(meals)


def _by_person(exposures: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    meals: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in exposures:
        if e.get("venue"):
            meals[e["resident"]].append(e)
    return meals


def _reached(network: Network, meals: dict[str, list[dict[str, Any]]],
             options: Options) -> dict[tuple[str, str], dict[str, Any]]:
    """For every station, lot and delivery: the people whose backward trace reaches it."""
    into = network.into
    reached: dict[tuple[str, str], dict[str, Any]] = {}
    for person, eaten in meals.items():
        seen: dict[tuple[str, str], tuple[int, str]] = {}
        for e in eaten:
            seen.setdefault(("station", e["venue"]), (0, ""))
            window = e["occurred_at"] - dt.timedelta(days=options.shelf_days)
            for d in into.get(e["venue"], []):
                if window <= d["occurred_at"] <= e["occurred_at"]:
                    _upstream(d, 1, network, into, seen, options)
        for key, (depth, lot) in seen.items():
            entry = reached.setdefault(key, {"cases": set(), "depth": depth, "via": set()})
            entry["cases"].add(person)
            entry["depth"] = max(entry["depth"], depth)
            if lot:
                entry["via"].add(lot)
    return reached


def _upstream(delivery: dict[str, Any], depth: int, network: Network, into: dict[str, list[dict[str, Any]]],
              seen: dict[tuple[str, str], tuple[int, str]], options: Options) -> None:
    """Mark a delivery, its lot and its sender, then follow the same lot (and its ingredients) upstream;
    at a cross-contamination station every earlier arrival, at a kill step nothing further."""
    lot, sender = delivery["lot"], delivery["from_key"]
    for key in (("delivery", delivery["delivery"]), ("lot", lot), ("station", sender)):
        if key not in seen or seen[key][0] < depth:
            seen[key] = (depth, lot)
    if sender in options.kill:
        return
    ingredients = set(network.made_from.get(lot, []))
    producer = network.producer.get(lot)
    if producer:
        seen.setdefault(("station", producer), (depth + 1, lot))
    crosses = options.crosses_at(sender)
    window = delivery["occurred_at"] - dt.timedelta(days=options.shelf_days)
    for d in into.get(sender, []):
        if (crosses or d["lot"] == lot or d["lot"] in ingredients) \
                and window <= d["occurred_at"] <= delivery["occurred_at"] and ("delivery", d["delivery"]) not in seen:
            _upstream(d, depth + 1, network, into, seen, options)


def trace_forward(store: GraphStore, lot: str, *, start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    """Every delivery of a lot (and of lots made from it), the stations reached and the residents exposed."""
    network = Network.read(store, start, end)
    lots = {lot}
    grew = True
    while grew:  # lots made from a suspect lot are suspect too
        more = {child for child, parents in network.made_from.items() if lots & set(parents)}
        grew = not more <= lots
        lots |= more
    deliveries = sorted((d for d in network.deliveries if d["lot"] in lots), key=lambda d: (d["occurred_at"], d["delivery"]))
    stations = sorted({d["to_key"] for d in deliveries} | {network.producer[x] for x in lots if network.producer.get(x)})
    exposed = sorted(store.query("exposures_to_lots", lots=sorted(lots)),
                     key=lambda x: (x["occurred_at"], x["exposure"]))
    return {"lot": lot, "lots": sorted(lots), "deliveries": deliveries, "stations": stations,
            "exposed": exposed, "residents": sorted({x["resident"] for x in exposed}), "window": [start, end],
            "basis": BASIS}


def plausibility(store: GraphStore, *, start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    """Checks of the trace data itself, reported for the investigator, never silently fixed."""
    network = Network.read(store, start, end)
    institutions = store.nodes("Institution", ["name", "division_code"])
    return {"window": [start, end], **check_network(network),
            "likely_duplicate_stations": likely_duplicates(institutions.to_dict("records"))}


def check_network(network: Network) -> dict[str, list[dict[str, Any]]]:
    """Deliveries out of a station before the lot arrived there, and lots sent on in larger quantity
    than received (a producer's own lots excepted: it makes them)."""
    arrivals: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    departures: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for d in network.deliveries:
        arrivals[(d["to_key"], d["lot"])].append(d)
        departures[(d["from_key"], d["lot"])].append(d)
    out_of_order, unbalanced = [], []
    for (station, lot), sent in sorted(departures.items()):
        if network.producer.get(lot) == station:
            continue
        received = arrivals.get((station, lot), [])
        first_in = min((d["occurred_at"] for d in received), default=None)
        for d in sorted(sent, key=lambda x: x["occurred_at"]):
            if first_in is None or d["occurred_at"] < first_in:
                out_of_order.append({"station": station, "lot": lot, "delivery": d["delivery"],
                                     "sent_at": d["occurred_at"], "first_arrival": first_in,
                                     "problem": "送出早于到货 sent before it arrived" if first_in else
                                                "无到货记录 never recorded as received"})
        q_in = sum(d["quantity"] or 0 for d in received)
        q_out = sum(d["quantity"] or 0 for d in sent)
        if received and q_out > q_in * (1 + 1e-9):
            unbalanced.append({"station": station, "lot": lot, "received": q_in, "sent": q_out,
                               "problem": "送出多于收到 more sent on than received"})
    return {"out_of_order": out_of_order, "unbalanced": unbalanced}


def likely_duplicates(stations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stations in one division whose names match once spaces, brackets and case are ignored."""
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for s in stations:
        if s.get("name"):
            name = "".join(ch for ch in str(s["name"]).lower() if ch.isalnum())
            groups[(str(s.get("division_code") or ""), name)].append(str(s["key"]))
    return [{"division_code": div, "name": name, "stations": sorted(keys)}
            for (div, name), keys in sorted(groups.items()) if len(keys) > 1]
