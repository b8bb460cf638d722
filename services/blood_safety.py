"""Blood-safety traceability for investigators: lookback from a donor, traceback from a recipient.

Lookback (献血者追溯): a donation screens reactive → the donor's earlier donations inside the
look-back window → every unit made from them → where each unit is (in date, transfused,
discarded, expired) → the recipients of transfused units and any reactions they had. In-date
units that were not transfused are listed first, soonest expiry first: they are the ones to
quarantine now.

Traceback (受血者溯源): a recipient's transfusion-transmitted infection or reaction → the units
transfused → their donations → the donors, with each donor's other donations, units and
recipients (who may share the exposure).

The donor is the resident record the donation links to; when the master person index links a
person's records, the lookback spans all of them (issue: master person index).

Sources for the figures used:
- look-back window of 12 months before the reactive donation and quarantine of in-date units
  within 3 calendar days: US 21 CFR 610.46 (HIV) and 610.47 (HCV) lookback practice, the usual
  reference where 《血站技术操作规程》(2019) leaves the window to the blood centre;
- component storage limits are those recorded on each unit (``expires_on``), set by the blood
  centre under WS 399-2012 《血液储存要求》.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from graph import GraphStore
from ontology.errors import NodeNotFound
from ontology.trace_codes import validate_din

LOOKBACK_MONTHS = 12
"""Look-back window before the reactive donation (21 CFR 610.46/610.47 practice)."""
QUARANTINE_WITHIN_DAYS = 3
"""In-date units from the window are to be quarantined within this many calendar days (same source)."""
BASIS = ("look-back window 12 months, quarantine in-date units within 3 calendar days: 21 CFR 610.46 (HIV), "
         "610.47 (HCV); storage limits per unit (WS 399-2012 血液储存要求)")


@dataclass
class UnitState:
    unit: str
    donation: str
    component: str | None
    status: str | None
    expires_on: dt.date | None
    stored_at: str | None
    action: str
    """What the investigator does with it: ``quarantine`` (in date, not transfused: 立即隔离),
    ``notify recipient`` (transfused: 通知受血者), ``held`` (already quarantined: 已隔离),
    ``discarded`` (已报废) or ``expired`` (已过期)."""
    transfusions: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Lookback:
    donor: str
    index_donation: str
    reactive_at: dt.datetime
    window_from: dt.datetime
    quarantine_by: dt.date
    as_of: dt.date
    donations: list[dict[str, Any]]
    units: list[UnitState]
    donor_records: list[str] = field(default_factory=list)
    """Every source record of the donor the master person index links (donations may sit on any)."""
    basis: str = BASIS

    @property
    def quarantine_first(self) -> list[UnitState]:
        return sorted((u for u in self.units if u.action == "quarantine"),
                      key=lambda u: (u.expires_on or dt.date.max, u.unit))

    @property
    def recipients(self) -> list[dict[str, Any]]:
        return [{"recipient": t["recipient"], "unit": u.unit, "transfusion": t["transfusion"],
                 "transfused_at": t["transfused_at"], "reactions": t["reactions"]}
                for u in self.units for t in u.transfusions if t["recipient"]]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["quarantine_first"] = [u.unit for u in self.quarantine_first]
        out["recipients"] = self.recipients
        return out


def lookback(store: GraphStore, reactive_donation: str, *, as_of: dt.date | None = None,
             months: int = LOOKBACK_MONTHS) -> Lookback:
    """Trace forward from a reactive donation (its DIN): earlier donations in the window, their
    units, where each one is, who received them."""
    reactive_donation = validate_din(reactive_donation)  # printed forms accepted; a bad DIN fails with HG-0601
    found = store.query("donor_of_donation", din=reactive_donation)
    if not found:
        raise NodeNotFound(f"no donation with DIN {reactive_donation!r} linked to a donor",
                           cls="BloodDonation", key=reactive_donation)
    donor, reactive_at = found[0]["donor"], found[0]["donated_at"]
    window_from = _months_before(reactive_at, months)
    records = person_records(store, donor)
    donations = [d for d in _donations(store, records) if window_from <= d["donated_at"] <= reactive_at]
    as_of = as_of or dt.date.today()
    units = _units(store, [d["donation"] for d in donations], as_of)
    return Lookback(donor, reactive_donation, reactive_at, window_from,
                    reactive_at.date() + dt.timedelta(days=QUARANTINE_WITHIN_DAYS), as_of, donations, units, records)


def person_records(store: GraphStore, record: str) -> list[str]:
    """A record and every other record the master person index links to the same person."""
    return sorted({record} | {r["record"] for r in store.query("same_person_records", resident=record)})


def _donations(store: GraphStore, records: list[str]) -> list[dict[str, Any]]:
    rows = [d for r in records for d in store.query("donations_of_donor", donor_key=r)]
    return sorted({d["donation"]: d for d in rows}.values(), key=lambda d: (d["donated_at"], d["donation"]))


def traceback(store: GraphStore, recipient: str, *, as_of: dt.date | None = None) -> dict[str, Any]:
    """Trace back from a recipient: transfusions → units → donations → donors, then each donor's
    other donations with their units and recipients."""
    rows = store.query("transfusions_of_recipient", recipient_key=recipient)
    if not rows:
        raise NodeNotFound(f"no transfusion of a donated unit recorded for {recipient!r}",
                           cls="Resident", key=recipient)
    transfusions: dict[str, dict[str, Any]] = {}
    for r in rows:
        t = transfusions.setdefault(r["transfusion"], {k: r[k] for k in (
            "transfusion", "transfused_at", "unit", "component", "donation", "donated_at", "donor")} | {"reactions": []})
        if r["reaction"]:
            t["reactions"].append({"reaction": r["reaction"], "type": r["reaction_type"], "serious": r["serious"]})
    donors = []
    for donor in sorted({t["donor"] for t in transfusions.values()}):
        donations = _donations(store, person_records(store, donor))
        units = _units(store, [d["donation"] for d in donations], as_of or dt.date.today())
        others = [{"recipient": t["recipient"], "unit": u.unit, "transfused_at": t["transfused_at"]}
                  for u in units for t in u.transfusions if t["recipient"] and t["recipient"] != recipient]
        donors.append({"donor": donor, "donations": donations, "units": [asdict(u) for u in units],
                       "other_recipients": others})
    return {"recipient": recipient, "transfusions": sorted(transfusions.values(), key=lambda t: t["transfused_at"]),
            "donors": donors}


def _units(store: GraphStore, donations: list[str], as_of: dt.date) -> list[UnitState]:
    units: dict[str, UnitState] = {}
    transfusions: dict[tuple[str, str], dict[str, Any]] = {}
    for made in store.query_each("units_made_from", "din", donations):
        units[made["unit"]] = UnitState(made["unit"], made["donation"], made["component"], made["status"],
                                        made["expires_on"], None, "")
    for r in store.query_each("unit_whereabouts", "unit", list(units)):
        u = units[r["unit"]]
        u.stored_at = u.stored_at or r["stored_at"]
        if r["transfusion"]:
            t = transfusions.get((u.unit, r["transfusion"]))
            if t is None:
                t = transfusions[(u.unit, r["transfusion"])] = {
                    "transfusion": r["transfusion"], "transfused_at": r["transfused_at"],
                    "recipient": r["recipient"], "reactions": []}
                u.transfusions.append(t)
            if r["reaction"]:
                t["reactions"].append({"reaction": r["reaction"], "type": r["reaction_type"], "serious": r["serious"]})
    for u in units.values():
        u.transfusions.sort(key=lambda t: (t["transfused_at"], t["transfusion"]))
        u.action = _action(u, as_of)
    return sorted(units.values(), key=lambda u: (u.donation, u.unit))


def _action(u: UnitState, as_of: dt.date) -> str:
    if u.transfusions or u.status == "transfused":
        return "notify recipient"
    if u.status == "discarded":
        return "discarded"
    if u.status == "quarantined":
        return "held"
    if u.expires_on is not None and u.expires_on < as_of:
        return "expired"
    return "quarantine"


def _months_before(when: dt.datetime, months: int) -> dt.datetime:
    """The same day ``months`` earlier (clipped to the month's last day)."""
    return (pd.Timestamp(when) - pd.DateOffset(months=months)).to_pydatetime()


EXPIRY_WARNING_DAYS = 3
CLUSTER_MIN_REACTIONS = 3
CLUSTER_WINDOW_DAYS = 30


def inventory(store: GraphStore, *, as_of: dt.date | None = None,
              warn_days: int = EXPIRY_WARNING_DAYS) -> dict[str, Any]:
    """Units in stock per store, component and ABO/Rh; units past expiry still in stock; units
    expiring within ``warn_days``; units whose labelled expiry exceeds the component's storage
    limit (WS 399-2012, from the blood_components vocabulary)."""
    from ontology.vocab import numeric, vocab

    as_of = as_of or dt.date.today()
    components = vocab("blood_components")
    limit = dict(zip(components["code"], numeric(components, "shelf_life_days", 0), strict=True))
    stock: dict[tuple[str, str, str], int] = {}
    expired, expiring, over_limit = [], [], []
    for u in store.query("blood_inventory"):
        shelf = limit.get(u["component"])
        if u["donated_at"] and u["expires_on"] and shelf and \
                (u["expires_on"] - u["donated_at"].date()).days > shelf:
            over_limit.append({**u, "limit_days": int(shelf)})
        if u["status"] != "in_stock":
            continue
        if u["expires_on"] is not None and u["expires_on"] < as_of:
            expired.append(u)
            continue
        key = (u["store"], u["component"] or "", u["abo_rh"] or "")
        stock[key] = stock.get(key, 0) + 1
        if u["expires_on"] is not None and (u["expires_on"] - as_of).days <= warn_days:
            expiring.append(u)
    return {"as_of": as_of, "in_stock": [{"store": s, "component": c, "abo_rh": a, "units": n}
                                         for (s, c, a), n in sorted(stock.items())],
            "expired_in_stock": sorted(expired, key=lambda u: u["expires_on"]),
            "expiring": sorted(expiring, key=lambda u: u["expires_on"]),
            "expiry_beyond_storage_limit": over_limit,
            "basis": "WS 399-2012 血液储存要求 (storage period per component)"}


def reaction_clusters(store: GraphStore, *, min_reactions: int = CLUSTER_MIN_REACTIONS,
                      window_days: int = CLUSTER_WINDOW_DAYS) -> dict[str, Any]:
    """Transfusion reactions with a common source to investigate: at least ``min_reactions`` that
    share a unit or a donor (at any interval: the source travels with the blood), or that share a
    transfusing facility within ``window_days``."""
    clusters = cluster_reactions(store.query("transfusion_reactions"), min_reactions=min_reactions,
                                 window_days=window_days)
    return {"clusters": clusters, "min_reactions": min_reactions, "window_days": window_days,
            "basis": "WS/T 624-2018 输血反应分类; clustering by shared unit, donor or facility"}


def cluster_reactions(rows: list[dict[str, Any]], *, min_reactions: int = CLUSTER_MIN_REACTIONS,
                      window_days: int = CLUSTER_WINDOW_DAYS) -> list[dict[str, Any]]:
    """The clustering of ``reaction_clusters`` over rows of the ``transfusion_reactions`` query."""
    clusters = []
    for by in ("unit", "donor", "facility"):
        groups: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            if r[by]:
                groups.setdefault(r[by], []).append(r)
        for key, group in sorted(groups.items()):
            group.sort(key=lambda r: r["occurred_at"])
            best: list[dict[str, Any]] = []
            start = 0
            for end in range(len(group)):  # the largest set of reactions inside any window
                while by == "facility" and \
                        group[end]["occurred_at"] - group[start]["occurred_at"] > dt.timedelta(days=window_days):
                    start += 1
                if end - start + 1 > len(best):
                    best = group[start:end + 1]
            if len(best) >= min_reactions:
                clusters.append({"by": by, "key": key, "reactions": [r["reaction"] for r in best],
                                 "types": sorted({r["reaction_type"] for r in best}),
                                 "from": best[0]["occurred_at"], "to": best[-1]["occurred_at"]})
    return clusters
