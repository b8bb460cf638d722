"""Blood donations → units → transfusions, vaccinations by lot, food lots → deliveries → meals, consents."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ingest.synthetic.people import zfill

from ingest.synthetic.province import (
    AS_OF,
    MANUFACTURERS,
    WINDOW_DAYS,
    WINDOW_START,
    Province,
    record_of,
    registry_record,
)
from ontology.vocab import numeric, vocab


def blood_facility_codes(p: Province) -> pd.Series:
    """A 5-character ISBT 128 facility identification number per blood centre (synthetic)."""
    centres = p.inst[p.inst["kind"] == "BloodCenter"]["key"].reset_index(drop=True)
    return pd.Series([f"Z{3300 + i:04d}" for i in range(len(centres))], index=centres.to_numpy())


def blood(p: Province) -> None:
    rng = p.rng
    persons = p.persons
    centres = p.inst[p.inst["kind"] == "BloodCenter"].set_index("prefecture")["key"]
    eligible = persons[persons["age"].between(18, 55)]
    donors = eligible[rng.random(len(eligible)) < 0.02]
    times = rng.choice([1, 2], len(donors), p=[0.8, 0.2])
    don = donors.loc[np.repeat(donors.index.to_numpy(), times)].reset_index(drop=True)
    don["centre"] = don["prefecture"].map(centres).to_numpy()
    # Whole-blood donations at least 6 months apart (献血法 / 献血者健康检查要求 GB 18467-2011 §4.4).
    don["occurred_at"] = WINDOW_START + pd.to_timedelta(rng.integers(0, 150, len(don)), unit="D") + \
        pd.to_timedelta(np.where(don.duplicated("person"), 190, 0), unit="D") + pd.Timedelta(hours=9)
    don = don[don["occurred_at"] < WINDOW_START + pd.Timedelta(days=WINDOW_DAYS - 40)].reset_index(drop=True)
    emit_donations(p, don, screening="negative")


def emit_donations(p: Province, don: pd.DataFrame, *, screening: str | np.ndarray) -> pd.DataFrame:
    rng = p.rng
    fin = blood_facility_codes(p)
    serial = np.arange(p.counters.get("din", 0), p.counters.get("din", 0) + len(don))
    p.counters["din"] = int(serial[-1]) + 1 if len(don) else p.counters.get("din", 0)
    don = don.copy()
    don["din"] = fin.loc[don["centre"]].to_numpy() + "25" + zfill(serial.astype(str), 6)
    don["record"] = record_of(p, don["person"], don["centre"]).to_numpy()
    p.writer.add_nodes("BloodDonation", pd.DataFrame({
        "din": don["din"], "occurred_at": don["occurred_at"], "volume_ml": rng.choice([200, 300, 400], len(don)),
        "screening": screening}))
    p.writer.add_edges("of_patient", don["din"], don["record"], "BloodDonation", "Resident")
    p.writer.add_edges("at_institution", don["din"], don["centre"], "BloodDonation", "BloodCenter")
    comps = vocab("blood_components")
    shelf = dict(zip(comps["code"], numeric(comps, "shelf_life_days", 35).astype(int), strict=True))
    red = comps["code"].iloc[0]
    chosen = [red] + [c for c in comps["code"] if "plasma" in c.lower()][:1]
    units = don.loc[np.repeat(don.index.to_numpy(), len(chosen))].reset_index(drop=True)
    units["component"] = np.tile(chosen, len(don))
    units["expires_on"] = (units["occurred_at"].dt.normalize() +
                           pd.to_timedelta(units["component"].map(shelf), unit="D"))
    units["key"] = units["din"] + ":" + units["component"]
    units["status"] = np.where(units["expires_on"] < AS_OF, "discarded", "in_stock")
    units["abo_rh"] = units["abo"] + "+"
    p.pending_units.append(units[["key", "din", "person", "component", "occurred_at", "expires_on", "centre",
                                  "prefecture", "abo", "abo_rh", "status"]])
    return don


def transfusions(p: Province) -> None:
    """Units are transfused to inpatients of the same prefecture before they expire."""
    rng = p.rng
    if not p.pending_units:
        return
    units = pd.concat(p.pending_units, ignore_index=True)
    p.pending_units = []
    enc = p.encounters
    inpat = enc[enc["class"] == "InpatientEncounter"]
    used = units[rng.random(len(units)) < 0.7].copy()
    rows = []
    for pref, grp in used.groupby("prefecture"):
        cand = inpat[inpat["prefecture"] == pref]
        if cand.empty:
            continue
        pick = rng.integers(0, len(cand), len(grp))
        e = cand.iloc[pick]
        ok = (e["occurred_at"].to_numpy() > grp["occurred_at"].to_numpy() + np.timedelta64(1, "D")) & \
             (e["occurred_at"].to_numpy() < grp["expires_on"].to_numpy())
        g = grp[ok]
        e = e[ok]
        rows.append(pd.DataFrame({"unit": g["key"].to_numpy(), "encounter": e["key"].to_numpy(),
                                  "enc_class": e["class"].to_numpy(), "record": e["record"].to_numpy(),
                                  "person": e["person"].to_numpy(),
                                  "source_system": e["source_system"].to_numpy(),
                                  "occurred_at": (e["occurred_at"] + pd.Timedelta(hours=6)).to_numpy()}))
    tx = pd.concat(rows, ignore_index=True).drop_duplicates("unit")
    status = units.set_index("key")["status"].copy()
    status.loc[tx["unit"]] = "transfused"
    units["status"] = status.loc[units["key"]].to_numpy()
    p.units = units
    emit_units(p, units)
    emit_transfusions(p, tx)
    # Rare, unclustered reactions in the bulk: at most one per donor.
    react = tx[rng.random(len(tx)) < 0.003].copy()
    react["donor"] = react["unit"].map(units.set_index("key")["person"])
    react = react.drop_duplicates("donor")
    emit_reactions(p, react, types=rng.choice(["febrile", "allergic"], len(react)))


def emit_units(p: Province, units: pd.DataFrame) -> None:
    p.writer.add_nodes("BloodUnit", units[["din", "component", "abo_rh", "expires_on", "status"]])
    p.writer.add_edges("derived_from", units["key"], units["din"], "BloodUnit", "BloodDonation")
    p.writer.add_edges("stored_at", units["key"], units["centre"], "BloodUnit", "BloodCenter")


def emit_transfusions(p: Province, tx: pd.DataFrame) -> pd.DataFrame:
    tx = tx.copy()
    tx["source_id"] = p.next_ids("TX", len(tx))
    tx["tx_key"] = tx["source_system"] + ":" + tx["source_id"]
    p.writer.add_nodes("Transfusion", tx[["source_system", "source_id", "occurred_at"]])
    p.writer.add_edges("of_unit", tx["tx_key"], tx["unit"], "Transfusion", "BloodUnit")
    p.writer.add_edges("of_patient", tx["tx_key"], tx["record"], "Transfusion", "Resident")
    p.writer.add_edges("in_encounter", tx["tx_key"], tx["encounter"], "Transfusion", tx["enc_class"])
    p.transfusions.append(tx)
    return tx


def emit_reactions(p: Province, tx: pd.DataFrame, *, types: np.ndarray | str, serious: bool = False) -> pd.DataFrame:
    if tx.empty:
        return tx
    tx = tx.copy()
    if "tx_key" not in tx:
        known = pd.concat(p.transfusions, ignore_index=True).set_index("unit")["tx_key"]
        tx["tx_key"] = tx["unit"].map(known)
    r = pd.DataFrame({"source_system": tx["source_system"].to_numpy(), "source_id": p.next_ids("TR", len(tx)),
                      "occurred_at": (tx["occurred_at"] + pd.Timedelta(hours=2)).to_numpy(),
                      "reported_at": (tx["occurred_at"] + pd.Timedelta(hours=20)).to_numpy(),
                      "reaction_type": types, "serious": serious})
    keys = r["source_system"] + ":" + r["source_id"]
    p.writer.add_nodes("TransfusionReaction", r)
    p.writer.add_edges("reaction_to", keys, tx["tx_key"].to_numpy(), "TransfusionReaction", "Transfusion")
    return r.assign(key=keys.to_numpy(), transfusion=tx["tx_key"].to_numpy())


def vaccine_lots(p: Province) -> pd.DataFrame:
    rng = p.rng
    vac = vocab("vaccines")
    rows = []
    for v in vac["code"]:
        for i in range(4):
            rows.append({"code": f"{v.upper()}-2024{i + 1:03d}", "vaccine": v, "manufacturer": rng.choice(MANUFACTURERS),
                         "expires_on": pd.Timestamp("2026-06-30") + pd.Timedelta(days=int(rng.integers(0, 300))),
                         "recalled": False})
    lots = pd.DataFrame(rows)
    p.writer.add_nodes("VaccineLot", lots[["code", "manufacturer", "expires_on", "recalled"]])
    p.writer.add_edges("lot_of_vaccine", lots["code"], lots["vaccine"], "VaccineLot", "Vaccine")
    return lots


def vaccinations(p: Province) -> pd.DataFrame:
    """Children by the national schedule (国家免疫规划儿童免疫程序, 2021) and influenza for people 60+."""
    rng = p.rng
    lots = vaccine_lots(p)
    vac = vocab("vaccines")
    persons = p.persons
    start, end = WINDOW_START, WINDOW_START + pd.Timedelta(days=WINDOW_DAYS)
    rows = []
    for v in vac.itertuples():
        months = [int(m) for m in str(v.schedule_months).split()] if v.schedule_months else []
        for dose, m in enumerate(months, start=1):
            due = persons["birth_date"] + pd.DateOffset(months=m)
            hit = (due >= start) & (due < end)
            if v.code.startswith("hpv"):  # the programme's HPV dose is for girls only (2025 notice)
                hit &= persons["sex"] == "2"
            if hit.any():
                rows.append(pd.DataFrame({"person": persons.loc[hit, "person"].to_numpy(), "vaccine": v.code,
                                          "dose_number": dose, "occurred_at": due[hit].to_numpy()}))
    flu = vac[vac["code"].str.contains("flu", case=False)]["code"]
    if len(flu):
        old = persons[(persons["age"] >= 60) & (rng.random(len(persons)) < 0.25)]
        rows.append(pd.DataFrame({"person": old["person"].to_numpy(), "vaccine": flu.iloc[0], "dose_number": 1,
                                  "occurred_at": (pd.Timestamp("2025-10-01") +
                                                  pd.to_timedelta(rng.integers(0, 80, len(old)), unit="D")).to_numpy()}))
    vx = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
    if vx.empty:
        return vx
    vx["occurred_at"] = pd.to_datetime(vx["occurred_at"]).dt.normalize() + pd.Timedelta(hours=10)
    division = persons.set_index("person").loc[vx["person"], "division_code"].to_numpy()
    chc = p.inst[p.inst["kind"].isin(["CommunityHealthCenter", "TownshipHealthCenter"])].drop_duplicates("division_code")
    vx["institution"] = pd.Series(division).map(chc.set_index("division_code")["key"]).to_numpy()
    vx = vx.dropna(subset=["institution"]).reset_index(drop=True)
    lot_of = lots.groupby("vaccine")["code"].apply(list)
    vx["lot"] = [lot_of[v][int(i)] for v, i in zip(vx["vaccine"], rng.integers(0, 4, len(vx)), strict=True)]
    emit_vaccinations(p, vx)
    # Common, mild reactions at a low background rate, spread over lots.
    ae = vx[rng.random(len(vx)) < 0.002]
    emit_aefi(p, ae, category="common_reaction")
    return vx


def emit_vaccinations(p: Province, vx: pd.DataFrame) -> None:
    vx["record"] = record_of(p, vx["person"], vx["institution"]).to_numpy()
    nurse_dept = p.docs.drop_duplicates("institution").set_index("institution")["key"]
    vx["nurse"] = vx["institution"].map(nurse_dept).to_numpy()
    vx["source_system"] = "HIS-" + vx["institution"]
    vx["source_id"] = p.next_ids("VX", len(vx))
    vx["key"] = vx["source_system"] + ":" + vx["source_id"]
    inst_class = p.inst.set_index("key")["class"]
    p.writer.add_nodes("Vaccination", vx[["source_system", "source_id", "occurred_at", "dose_number"]])
    p.writer.add_edges("of_patient", vx["key"], vx["record"], "Vaccination", "Resident")
    p.writer.add_edges("at_institution", vx["key"], vx["institution"], "Vaccination",
                       inst_class.loc[vx["institution"]].to_numpy())
    p.writer.add_edges("with_lot", vx["key"], vx["lot"], "Vaccination", "VaccineLot")
    has_nurse = vx["nurse"].notna()
    p.writer.add_edges("attended_by", vx.loc[has_nurse, "key"], vx.loc[has_nurse, "nurse"], "Vaccination", "Physician")


def emit_aefi(p: Province, vx: pd.DataFrame, *, category: str, serious: bool = False) -> pd.DataFrame:
    if vx.empty:
        return vx
    ae = pd.DataFrame({"source_system": "AEFI", "source_id": p.next_ids("AE", len(vx)),
                       "occurred_at": (vx["occurred_at"] + pd.Timedelta(hours=8)).to_numpy(),
                       "reported_at": (vx["occurred_at"] + pd.Timedelta(hours=30)).to_numpy(),
                       "category": category, "serious": serious})
    keys = "AEFI:" + ae["source_id"]
    p.writer.add_nodes("AdverseEvent", ae)
    p.writer.add_edges("following", keys, vx["key"].to_numpy(), "AdverseEvent", "Vaccination")
    p.writer.add_edges("of_patient", keys, vx["record"].to_numpy(), "AdverseEvent", "Resident")
    return ae.assign(key=keys.to_numpy())


def food_chain(p: Province) -> pd.DataFrame:
    """Monthly lots from producers, shipped to distributors and on to venues; a sample of meals."""
    rng = p.rng
    inst = p.inst
    food = vocab("food_products")
    producers = inst[inst["kind"] == "FoodProducer"]
    distributors = inst[inst["kind"] == "FoodDistributor"].set_index("division_code")["key"]
    venues = inst[inst["kind"] == "Venue"]
    lots, deliveries = [], []
    for prod in producers.itertuples():
        for f in rng.choice(food["code"], 3, replace=False):
            for month in range(12):
                produced = WINDOW_START + pd.DateOffset(months=month) + pd.Timedelta(days=int(rng.integers(0, 20)))
                lot = f"FL-{prod.key[-6:]}-{f}-{month + 1:02d}"
                lots.append({"code": lot, "product": f, "producer": prod.key, "produced": produced,
                             "expires_on": produced + pd.Timedelta(days=30)})
                dist = distributors.get(prod.division_code)
                deliveries.append({"lot": lot, "from": prod.key, "to": dist, "occurred_at": produced + pd.Timedelta(days=1),
                                   "quantity": float(rng.integers(200, 1000))})
                local = venues[venues["division_code"] == prod.division_code]
                for v in local.sample(n=min(len(local), int(rng.integers(1, 4))), random_state=int(rng.integers(1 << 31))).itertuples():
                    deliveries.append({"lot": lot, "from": dist, "to": v.key,
                                       "occurred_at": produced + pd.Timedelta(days=int(rng.integers(2, 5))),
                                       "quantity": float(rng.integers(10, 100))})
    lots_f = pd.DataFrame(lots)
    emit_food_lots(p, lots_f)
    deliv = pd.DataFrame(deliveries)
    emit_deliveries(p, deliv)
    # Meals: 2 % of residents, two meals each at a local venue, eating a lot delivered there in the week before.
    to_venue = deliv[deliv["to"].isin(venues["key"])]
    eaters = p.persons[rng.random(len(p.persons)) < 0.02]
    meals = eaters.loc[np.repeat(eaters.index.to_numpy(), 2)].reset_index(drop=True)
    pick = rng.integers(0, len(to_venue), len(meals))
    d = to_venue.iloc[pick]
    meals["venue"] = d["to"].to_numpy()
    meals["lot"] = d["lot"].to_numpy()
    meals["occurred_at"] = (d["occurred_at"] + pd.to_timedelta(rng.integers(1, 6, len(d)), unit="D") +
                            pd.Timedelta(hours=12)).to_numpy()
    emit_exposures(p, meals)
    samples = lots_f.sample(frac=0.05, random_state=int(rng.integers(1 << 31)))
    emit_samples(p, samples, positive=False)
    return deliv


def emit_food_lots(p: Province, lots: pd.DataFrame) -> None:
    p.writer.add_nodes("FoodLot", lots[["code", "expires_on"]].assign(recalled=False))
    p.writer.add_edges("lot_of_food", lots["code"], lots["product"], "FoodLot", "FoodProduct")
    p.writer.add_edges("produced_by", lots["code"], lots["producer"], "FoodLot", "FoodProducer")


def emit_deliveries(p: Province, deliv: pd.DataFrame) -> None:
    deliv = deliv.copy()
    deliv["code"] = p.next_ids("DL", len(deliv))
    inst_class = p.inst.set_index("key")["class"]
    p.writer.add_nodes("Delivery", pd.DataFrame({"code": deliv["code"], "occurred_at": deliv["occurred_at"],
                                                 "quantity": deliv["quantity"], "unit": "kg"}))
    p.writer.add_edges("carries", deliv["code"], deliv["lot"], "Delivery", "FoodLot")
    p.writer.add_edges("delivered_from", deliv["code"], deliv["from"], "Delivery", inst_class.loc[deliv["from"]].to_numpy())
    p.writer.add_edges("delivered_to", deliv["code"], deliv["to"], "Delivery", inst_class.loc[deliv["to"]].to_numpy())


def emit_exposures(p: Province, meals: pd.DataFrame) -> pd.DataFrame:
    meals = meals.copy()
    meals["source_system"] = "CDC-FBD"  # the food-borne disease surveillance system (食源性疾病监测)
    meals["source_id"] = p.next_ids("EX", len(meals))
    keys = "CDC-FBD:" + meals["source_id"]
    p.writer.add_nodes("Exposure", meals[["source_system", "source_id", "occurred_at"]])
    p.writer.add_edges("of_patient", keys, registry_record(p, meals["person"]), "Exposure", "Resident")
    p.writer.add_edges("at_institution", keys, meals["venue"], "Exposure", "Venue")
    p.writer.add_edges("exposed_to", keys, meals["lot"], "Exposure", "FoodLot")
    return meals.assign(key=keys.to_numpy())


def emit_samples(p: Province, lots: pd.DataFrame, *, positive: bool, pathogen: str | None = None) -> pd.DataFrame:
    cdc = p.inst[p.inst["kind"] == "CDC"]["key"].iloc[0]
    s = pd.DataFrame({"code": p.next_ids("FS", len(lots)),
                      "occurred_at": (lots["produced"] + pd.Timedelta(days=3)).to_numpy(),
                      "positive": positive, "pathogen": pathogen})
    p.writer.add_nodes("FoodSample", s)
    p.writer.add_edges("sample_of", s["code"], lots["code"].to_numpy(), "FoodSample", "FoodLot")
    p.writer.add_edges("at_institution", s["code"], cdc, "FoodSample", "CDC")
    return s


def consents(p: Province) -> None:
    rng = p.rng
    persons = p.persons[rng.random(len(p.persons)) < 0.1]
    n = len(persons)
    c = pd.DataFrame({"source_system": "PHIS", "source_id": p.next_ids("CS", n),
                      "purpose": rng.choice(["treatment", "research", "public_health"], n, p=[0.6, 0.25, 0.15]),
                      "data_category": rng.choice(["all", "clinical", "immunisation"], n),
                      "valid_from": (WINDOW_START + pd.to_timedelta(rng.integers(0, 300, n), unit="D")).to_numpy(),
                      "status": "active"})
    keys = "PHIS:" + c["source_id"]
    p.writer.add_nodes("Consent", c)
    p.writer.add_edges("of_patient", keys, registry_record(p, persons["person"]), "Consent", "Resident")
    hosp = p.inst[p.inst["kind"] == "Hospital3"]["key"].to_numpy()
    p.writer.add_edges("granted_to", keys, rng.choice(hosp, n), "Consent", "Hospital")
