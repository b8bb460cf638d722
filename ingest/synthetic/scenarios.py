"""Planted scenarios with ground truth: one supervision anomaly per rule family, a food-borne
outbreak with a known source, a donor who later tests positive, an AEFI cluster on one lot, and a
legacy export with records that must be quarantined.

Each anomaly entry in the ground truth names its kind, the rule family it belongs to, the legal
basis, and the keys of the records involved, so rule packs can be scored for precision and recall.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ingest.synthetic.province import (
    AS_OF,
    WINDOW_START,
    Province,
    diagnoses,
    emit_appointments,
    emit_encounters,
    emit_lab_results,
    emit_prescriptions,
    record_of,
)
from ingest.synthetic.supply import (
    emit_aefi,
    emit_donations,
    emit_exposures,
    emit_food_lots,
    emit_deliveries,
    emit_reactions,
    emit_samples,
    emit_transfusions,
    emit_units,
    emit_vaccinations,
)
from ontology.vocab import numeric, vocab


def _anomaly(p: Province, kind: str, family: str, basis: str, **keys: Any) -> None:
    p.truth.setdefault("anomalies", []).append({"kind": kind, "rule_family": family, "basis": basis, **keys})


def _pick_person(p: Province, *, min_age: float = 20, max_age: float = 70, sex: str | None = None,
                 pregnant: bool | None = None) -> pd.Series:
    pool = p.persons[p.persons["age"].between(min_age, max_age)]
    if sex:
        pool = pool[pool["sex"] == sex]
    if pregnant is not None:
        pool = pool[pool["pregnant"] == pregnant]
    return pool.iloc[int(p.rng.integers(0, len(pool)))]


def _encounter(p: Province, person: pd.Series, dept: pd.Series, physician: str, when: pd.Timestamp,
               icd: str = "J06.9", cls: str = "OutpatientEncounter", days: int = 0) -> pd.DataFrame:
    """One encounter record (with its diagnosis) for a planted scenario."""
    enc = pd.DataFrame([{
        "person": person["person"], "class": cls, "occurred_at": when, "institution": dept["institution"],
        "department": dept["code"], "physician": physician, "icd": icd, "age": person["age"],
        "sex": person["sex"], "pregnant": person["pregnant"], "prefecture": person["prefecture"],
        "ended_at": when + pd.Timedelta(days=days) if days else pd.NaT}])
    enc["record"] = record_of(p, enc["person"], enc["institution"]).to_numpy()
    enc["source_system"] = "HIS-" + enc["institution"]
    enc["source_id"] = p.next_ids("E", 1)
    enc["key"] = enc["source_system"] + ":" + enc["source_id"]
    emit_encounters(p, enc)
    return enc


def _dept(p: Province, subject: str, kind: str = "Hospital2", index: int = 0) -> pd.Series:
    d = p.depts[(p.depts["subject_code"] == subject) & (p.depts["kind"] == kind)]
    return d.iloc[index % len(d)]


def _physician_of(p: Province, dept_code: str) -> pd.Series:
    return p.docs[p.docs["code"] == dept_code].iloc[0]


def practice_anomalies(p: Province) -> None:
    when = WINDOW_START + pd.Timedelta(days=100, hours=9)
    # A physician whose licence lapsed before the encounter (医师法 2021 第十三、十四条: practice requires registration).
    dept = _dept(p, "03")
    lic = pd.DataFrame([{"code": "110LAPSED0000001", "class": "PracticeLicense", "practice_scope": ["internal_medicine"],
                         "licensed_subjects": ["03"], "valid_from": pd.Timestamp("2014-01-01"),
                         "valid_to": pd.Timestamp("2024-06-30"), "status": "expired",
                         "registration_status": "expired"}])
    staff = pd.DataFrame([{"code": "DLAPSED01", "class": "Physician", "name": "吴建伟", "sex": "1",
                           "birth_date": pd.Timestamp("1975-03-02"), "title": "attending"}])
    p.writer.add_nodes("Practitioner", staff)
    p.writer.add_nodes("License", lic)
    p.writer.add_edges("holds_license", ["DLAPSED01"], ["110LAPSED0000001"], "Physician", "PracticeLicense")
    p.writer.add_edges("registered_at", ["110LAPSED0000001"], [dept["institution"]], "PracticeLicense", "Hospital")
    p.writer.add_edges("employed_by", ["DLAPSED01"], [dept["institution"]], "Physician", "Hospital")
    p.writer.add_edges("works_in", ["DLAPSED01"], [dept["code"]], "Physician", "Department")
    e = _encounter(p, _pick_person(p), dept, "DLAPSED01", when)
    _anomaly(p, "practice_without_valid_registration", "practitioner_registration",
             "中华人民共和国医师法 (2021) 第十三条、第十四条", practitioner="DLAPSED01", encounter=e["key"].iat[0])

    # Practising outside the registered scope: an internist attending in the surgical department.
    internist = _physician_of(p, _dept(p, "03", "Hospital2", 1)["code"])
    surgery = p.depts[(p.depts["institution"] == internist["institution"]) & (p.depts["subject_code"] == "04")].iloc[0]
    e = _encounter(p, _pick_person(p), surgery, internist["key"], when + pd.Timedelta(days=3), icd="K35")
    _anomaly(p, "practice_outside_scope", "practitioner_scope", "中华人民共和国医师法 (2021) 第十四条 (按照注册的执业范围执业)",
             practitioner=internist["key"], encounter=e["key"].iat[0])

    # Practising at an institution where the physician is not registered (no multi-site filing).
    other = p.depts[(p.depts["subject_code"] == internist["subject_code"]) &
                    (p.depts["institution"] != internist["institution"]) & (p.depts["kind"] == "Hospital3")].iloc[0]
    e = _encounter(p, _pick_person(p), other, internist["key"], when + pd.Timedelta(days=5))
    _anomaly(p, "practice_outside_registered_institution", "practitioner_scope",
             "医师执业注册管理办法 (2017) 第十七条 (多机构执业备案)", practitioner=internist["key"], encounter=e["key"].iat[0])

    # A department whose 诊疗科目 is not on the institution's licence (医疗机构管理条例 第二十六条).
    chc = p.inst[p.inst["kind"].isin(["CommunityHealthCenter", "TownshipHealthCenter"])].iloc[0]
    dept_code = f"{chc['key']}-14"
    p.writer.add_nodes("Department", [{"code": dept_code, "name": "医疗美容科", "subject_code": "14"}])
    p.writer.add_edges("part_of", [dept_code], [chc["key"]], "Department", chc["class"])
    gp = p.docs[p.docs["institution"] == chc["key"]].iloc[0]
    e = _encounter(p, _pick_person(p), pd.Series({"institution": chc["key"], "code": dept_code}), gp["key"],
                   when + pd.Timedelta(days=7), icd="L70")
    _anomaly(p, "service_outside_licensed_subjects", "institution_scope",
             "医疗机构管理条例 (2022 修订) 第二十六条 (按照核准登记的诊疗科目开展诊疗活动)",
             institution=chc["key"], department=dept_code, encounter=e["key"].iat[0])


def prescription_anomalies(p: Province) -> None:
    drugs = vocab("drugs").reset_index(drop=True)
    by_class = drugs.groupby("drug_class")["code"].apply(list)
    max_dose = dict(zip(drugs["code"], numeric(drugs, "max_daily_dose", 1e9), strict=True))
    typical = dict(zip(drugs["code"], numeric(drugs, "typical_dose", 1), strict=True))
    unit = dict(zip(drugs["code"], drugs["unit"], strict=True))
    dept = _dept(p, "03", "Hospital3")
    doc = _physician_of(p, dept["code"])
    inter = vocab("drug_interactions").iloc[0]
    safe = [c for c in drugs["code"] if drugs.set_index("code").at[c, "pregnancy_contraindicated"] == "false"
            and float(numeric(drugs.set_index("code").loc[[c]].reset_index(), "min_age", 0).iat[0]) == 0]
    distinct: list[str] = []
    seen: set[str] = set()
    pairs = set(zip(vocab("drug_interactions")["class_a"], vocab("drug_interactions")["class_b"], strict=True))
    for c in safe:
        cls = drugs.set_index("code").at[c, "drug_class"]
        if cls not in seen and not any((cls, s) in pairs or (s, cls) in pairs for s in seen):
            distinct.append(c)
            seen.add(cls)
    duplicated_class = next(k for k, v in by_class.items() if len(v) >= 2)
    preg_drug = drugs[drugs["pregnancy_contraindicated"] == "true"]["code"].iloc[0]
    age_rows = drugs[numeric(drugs, "min_age", 0) >= 12]
    cases = [
        ("rx_too_many_drugs", "处方管理办法 (2007) 第六条 (每张处方不得超过 5 种药品)", distinct[:6], {}, {}),
        ("rx_supply_over_7_days", "处方管理办法 (2007) 第十九条 (一般不得超过 7 日用量)", distinct[:1], {"days_supply": 12}, {}),
        ("rx_dose_above_maximum", "处方审核规范 (2018) 第十五条 (用法用量)", distinct[:1], {"overdose": True}, {}),
        ("rx_duplicate_therapy", "处方审核规范 (2018) 第十五条 (重复给药)", by_class[duplicated_class][:2], {}, {}),
        ("rx_interaction", "处方审核规范 (2018) 第十五条 (相互作用)",
         [by_class[inter["class_a"]][0], by_class[inter["class_b"]][0]], {}, {}),
        ("rx_contraindicated_pregnancy", "处方审核规范 (2018) 第十五条 (特殊人群禁忌)", [preg_drug], {}, {"pregnant": True}),
        ("rx_contraindicated_age", "处方审核规范 (2018) 第十五条 (特殊人群禁忌)",
         [age_rows["code"].iloc[0]] if len(age_rows) else distinct[:1], {}, {"child": True}),
    ]
    when = WINDOW_START + pd.Timedelta(days=150, hours=10)
    for i, (kind, basis, codes, item_opts, person_opts) in enumerate(cases):
        if person_opts.get("pregnant"):
            person = _pick_person(p, min_age=20, max_age=40, sex="2", pregnant=True)
        elif person_opts.get("child"):
            person = _pick_person(p, min_age=5, max_age=10)
        else:
            person = _pick_person(p)
        e = _encounter(p, person, dept, doc["key"], when + pd.Timedelta(days=i))
        rx = e.assign(rx=e["source_system"] + ":" + p.next_ids("RX", 1))
        items = pd.DataFrame({"rx": rx["rx"].iat[0], "source_system": rx["source_system"].iat[0], "of_drug": list(codes)})
        items["daily_dose"] = [max_dose[c] * 2 if item_opts.get("overdose") else min(typical[c], max_dose[c]) for c in codes]
        items["unit"] = [unit[c] for c in codes]
        items["days_supply"] = item_opts.get("days_supply", 5)
        items["exception_reason"] = None
        items["trace_code"] = None
        items["source_id"] = p.next_ids("RXI", len(items))
        emit_prescriptions(p, rx, items)
        _anomaly(p, kind, "prescription_review", basis, prescription=rx["rx"].iat[0], encounter=e["key"].iat[0],
                 drugs=list(codes))


def care_anomalies(p: Province) -> None:
    when = WINDOW_START + pd.Timedelta(days=200, hours=9)
    # Repeat test inside the mutual-recognition window at another hospital of the same grade.
    tests = vocab("lab_tests")
    test = tests[tests["kind"] == "imaging"].iloc[0] if (tests["kind"] == "imaging").any() else tests.iloc[0]
    person = _pick_person(p)
    d1 = _dept(p, "03", "Hospital2", 0)
    d2 = _dept(p, "03", "Hospital2", 1)
    keys = []
    for dept, delay in ((d1, 0), (d2, 3)):
        e = _encounter(p, person, dept, _physician_of(p, dept["code"])["key"], when + pd.Timedelta(days=delay))
        res = e.assign(of_test=test["code"], value=1.0, abnormal=False, unit=test["unit"] or None,
                       occurred_at=e["occurred_at"] + pd.Timedelta(minutes=30))
        emit_lab_results(p, res)
        keys.append(e["key"].iat[0])
    _anomaly(p, "repeat_test_within_recognition_window", "mutual_recognition",
             "检查检验结果互认管理办法 (国卫医发〔2022〕6号) 第十六条、第二十一条", person=person["person"],
             test=test["code"], encounters=keys)

    # Overlapping inpatient stays at two hospitals (医保基金 fraud signal: 分解住院/挂床).
    person = _pick_person(p, min_age=40, max_age=80)
    keys = []
    for dept, delay in ((_dept(p, "03", "Hospital2", 0), 0), (_dept(p, "03", "Hospital3", 0), 2)):
        e = _encounter(p, person, dept, _physician_of(p, dept["code"])["key"], when + pd.Timedelta(days=20 + delay),
                       icd="I10", cls="InpatientEncounter", days=6)
        keys.append(e["key"].iat[0])
    _anomaly(p, "overlapping_admissions", "insurance_fraud",
             "医疗保障基金使用监督管理条例 (2021) 第十五条、第三十八条", person=person["person"], encounters=keys)

    # Notifiable diseases reported after the legal limit (传染病信息报告管理规范 2015: 甲类 2 h, 乙/丙类 24 h).
    icd = vocab("icd10")
    for cls_, late_hours in (("A", 5.0), ("B", 60.0)):
        rows = icd[icd["notifiable_class"] == cls_]
        if rows.empty:
            continue
        code = rows["code"].iloc[0]
        dept = _dept(p, "16", "Hospital3") if (p.depts["subject_code"] == "16").any() else _dept(p, "03", "Hospital3")
        e = _encounter(p, _pick_person(p), dept, _physician_of(p, dept["code"])["key"],
                       when + pd.Timedelta(days=40), icd=code)
        dx = diagnoses(p, e.assign(age=0), report_delay=lambda n, h=late_hours: np.full(n, h))
        _anomaly(p, "late_infectious_disease_report", "infectious_disease_reporting",
                 "传染病信息报告管理规范 (2015) 四、报告时限", diagnosis=dx["key"].iat[0], icd10=code,
                 hours_late=late_hours)

    # Appointment abuse: one person books 15 slots in a week and misses 12 (号贩子/恶意占号).
    person = _pick_person(p)
    dept = _dept(p, "03", "Hospital3")
    slots = [WINDOW_START + pd.Timedelta(days=230 + i // 3, hours=8 + i % 3) for i in range(15)]
    appt = pd.DataFrame({"person": person["person"], "slot_at": slots, "department": dept["code"],
                         "attendance": ["no_show"] * 12 + ["attended"] * 3})
    appt["occurred_at"] = appt["slot_at"] - pd.Timedelta(days=1)
    emit_appointments(p, appt)
    _anomaly(p, "appointment_abuse", "appointment", "预约挂号业务监管 (省统筹区域人口健康信息平台应用功能指引 2016 §57)",
             person=person["person"], appointments=len(appt), no_shows=12)


def blood_scenarios(p: Province, *, anomalies: bool = True) -> None:
    """A donor whose third donation screens reactive (lookback), a reaction cluster, an expired unit in stock.

    The lookback donor is traceability truth and always planted; the reaction cluster and the expired
    unit are supervision anomalies, left out with ``anomalies=False``."""
    centre = p.inst[p.inst["kind"] == "BloodCenter"].iloc[0]
    donor = _pick_person(p, min_age=25, max_age=50)
    dates = [WINDOW_START + pd.Timedelta(days=d, hours=9) for d in (20, 200, 330)]
    don = pd.DataFrame({"person": donor["person"], "centre": centre["key"], "prefecture": centre["prefecture"],
                        "abo": "O", "occurred_at": dates})
    emitted = emit_donations(p, don, screening=np.array(["negative", "negative", "reactive"]))
    new_units = pd.concat(p.pending_units, ignore_index=True)
    p.pending_units = []
    inpat = p.encounters[(p.encounters["class"] == "InpatientEncounter") &
                         (p.encounters["prefecture"] == centre["prefecture"])]
    tx_rows, recipients = [], []
    for u in new_units.itertuples():
        if u.din == emitted["din"].iat[2]:
            continue  # the reactive donation's units are held, never issued
        cand = inpat[(inpat["occurred_at"] > u.occurred_at + pd.Timedelta(days=1)) & (inpat["occurred_at"] < u.expires_on)]
        if cand.empty:
            continue
        e = cand.iloc[0]
        tx_rows.append({"unit": u.key, "encounter": e["key"], "enc_class": e["class"], "record": e["record"],
                        "person": e["person"], "source_system": e["source_system"],
                        "occurred_at": e["occurred_at"] + pd.Timedelta(hours=6)})
        recipients.append(e["person"])
    new_units["status"] = np.where(new_units["din"] == emitted["din"].iat[2], "quarantined",
                                   np.where(new_units["key"].isin([t["unit"] for t in tx_rows]), "transfused",
                                            np.where(new_units["expires_on"] < AS_OF, "discarded", "in_stock")))
    new_units["abo_rh"] = "O+"
    emit_units(p, new_units)
    if tx_rows:
        emit_transfusions(p, pd.DataFrame(tx_rows))
    p.truth["positive_donor"] = {
        "person": donor["person"], "donations": emitted["din"].tolist(), "reactive_donation": emitted["din"].iat[2],
        "units": new_units["key"].tolist(), "transfused_units": [t["unit"] for t in tx_rows], "recipients": recipients,
        "basis": "血站技术操作规程 (2019) 与输血相容性检测 — lookback of prior donations"}
    if not anomalies:
        return

    # A cluster of febrile reactions with one source: a second donor's units, transfused within weeks.
    donor2 = _pick_person(p, min_age=25, max_age=50)
    don2 = pd.DataFrame({"person": donor2["person"], "centre": centre["key"], "prefecture": centre["prefecture"],
                         "abo": "A", "occurred_at": [WINDOW_START + pd.Timedelta(days=d, hours=9) for d in (60, 74)]})
    emitted2 = emit_donations(p, don2, screening=np.array(["negative", "negative"]))
    units2 = pd.concat(p.pending_units, ignore_index=True)
    p.pending_units = []
    tx2 = []
    for u in units2.itertuples():
        cand = inpat[(inpat["occurred_at"] > u.occurred_at + pd.Timedelta(days=1)) & (inpat["occurred_at"] < u.expires_on)
                     & ~inpat["key"].isin([t["encounter"] for t in tx_rows + tx2])]
        if len(tx2) < 3 and not cand.empty:
            e = cand.iloc[0]
            tx2.append({"unit": u.key, "encounter": e["key"], "enc_class": e["class"], "record": e["record"],
                        "person": e["person"], "source_system": e["source_system"],
                        "occurred_at": e["occurred_at"] + pd.Timedelta(hours=6)})
    units2["status"] = np.where(units2["key"].isin([t["unit"] for t in tx2]), "transfused",
                                np.where(units2["expires_on"] < AS_OF, "discarded", "in_stock"))
    units2["abo_rh"] = "A+"
    emit_units(p, units2)
    if tx2:
        r = emit_reactions(p, emit_transfusions(p, pd.DataFrame(tx2)), types="febrile")
        _anomaly(p, "transfusion_reaction_cluster", "blood_safety", "输血不良反应监测 (WS/T 624-2018 输血反应分类)",
                 reactions=r["key"].tolist(), donor=donor2["person"], donations=emitted2["din"].tolist())
    # An expired unit still recorded as in stock (WS 399-2012 血液储存要求: shelf life per component).
    expired = pd.DataFrame([{"din": f"Z3399{25}999901", "component": vocab("blood_components")["code"].iloc[0],
                             "abo_rh": "A+", "expires_on": pd.Timestamp("2025-10-01"), "status": "in_stock",
                             "key": None, "centre": centre["key"]}])
    expired["key"] = expired["din"] + ":" + expired["component"]
    p.writer.add_nodes("BloodDonation", [{"din": expired["din"].iat[0], "occurred_at": pd.Timestamp("2025-08-27 09:00"),
                                          "volume_ml": 400, "screening": "negative"}])
    p.writer.add_edges("at_institution", expired["din"], [centre["key"]], "BloodDonation", "BloodCenter")
    emit_units(p, expired)
    _anomaly(p, "expired_unit_in_stock", "blood_safety", "WS 399-2012 血液储存要求 (储存期)",
             unit=expired["key"].iat[0])


RESERVE_DONATIONS = 6
"""Recent donations per blood centre and ABO group, so that each centre holds an in-date red-cell
reserve at the as-of date (above the core pack's ``minimum_units``, a project setting)."""
SHORT_GROUP = ("AB", 1)
"""The planted shortage: the first centre's AB+ red cells, one unit."""


def blood_reserve(p: Province, *, anomalies: bool = True) -> None:
    """Each blood centre's working stock at the as-of date: red cells and plasma from donations in
    the last three weeks (red cells keep 35 days, WS 399-2012), per ABO group. With anomalies on, one
    centre's AB+ red cells fall below the minimum reserve (血液库存低于最低储备)."""
    centres = p.inst[p.inst["kind"] == "BloodCenter"]
    # Earlier donors (a record at a blood centre) are left out: whole blood at most every 6 months
    # (献血者健康检查要求 GB 18467-2011).
    donated = set(p.records.loc[p.records["institution"].isin(centres["key"]), "person"])
    pool = p.persons[p.persons["age"].between(18, 55) & ~p.persons["person"].isin(donated)]
    rows = []
    for i, c in enumerate(centres.itertuples()):
        local = pool[pool["prefecture"] == c.prefecture]
        local = local if len(local) >= 4 * RESERVE_DONATIONS else pool
        for abo in ("A", "B", "O", "AB"):
            n = SHORT_GROUP[1] if anomalies and i == 0 and abo == SHORT_GROUP[0] else RESERVE_DONATIONS
            picked = local.iloc[p.rng.choice(len(local), n, replace=False)]
            local = local.drop(picked.index)
            pool = pool.drop(picked.index)
            for person in picked["person"]:
                rows.append({"person": person, "centre": c.key, "prefecture": c.prefecture, "abo": abo,
                             "occurred_at": AS_OF - pd.Timedelta(days=int(p.rng.integers(2, 21))) +
                             pd.Timedelta(hours=9)})
    emit_donations(p, pd.DataFrame(rows), screening="negative")
    units = pd.concat(p.pending_units, ignore_index=True)
    p.pending_units = []
    units["status"] = "in_stock"
    emit_units(p, units)
    if anomalies and len(centres):
        red = units[(units["centre"] == centres["key"].iat[0]) & (units["abo"] == SHORT_GROUP[0])]
        red = red[red["component"] == vocab("blood_components")["code"].iloc[0]]
        _anomaly(p, "blood_inventory_below_minimum", "blood_safety",
                 "医疗机构临床用血管理办法 (卫生部令第85号, 2012) 第二十条 (血液库存动态预警机制)",
                 store=centres["key"].iat[0], component=red["component"].iat[0], abo_rh=f"{SHORT_GROUP[0]}+",
                 units=len(red), unit_keys=red["key"].tolist())


def vaccine_scenarios(p: Province, vx: pd.DataFrame, *, anomalies: bool = True) -> None:
    """An expired lot used, a recalled lot used (supervision anomalies, left out with
    ``anomalies=False``), and an AEFI cluster on one lot (traceability truth, always planted)."""
    if vx.empty:
        return
    if anomalies:
        _bad_lots(p, vx)
    _aefi_cluster(p, vx)


def _bad_lots(p: Province, vx: pd.DataFrame) -> None:
    vac = vocab("vaccines")["code"].iloc[0]
    bad_lots = pd.DataFrame([
        {"code": f"{vac.upper()}-EXPIRED1", "manufacturer": "华康疫苗有限公司", "expires_on": pd.Timestamp("2025-03-31"),
         "recalled": False},
        {"code": f"{vac.upper()}-RECALL01", "manufacturer": "北辰生物药业有限公司", "expires_on": pd.Timestamp("2026-12-31"),
         "recalled": True}])
    p.writer.add_nodes("VaccineLot", bad_lots)
    p.writer.add_edges("lot_of_vaccine", bad_lots["code"], vac, "VaccineLot", "Vaccine")
    basis = "中华人民共和国疫苗管理法 (2019) 第四十四条、第七十三条"
    for lot, kind, day in ((bad_lots["code"].iat[0], "vaccination_with_expired_lot", 130),
                           (bad_lots["code"].iat[1], "vaccination_with_recalled_lot", 140)):
        person = _pick_person(p, min_age=20, max_age=60)
        one = pd.DataFrame([{"person": person["person"], "vaccine": vac, "dose_number": 1, "lot": lot,
                             "occurred_at": WINDOW_START + pd.Timedelta(days=day, hours=10),
                             "institution": vx["institution"].iat[0]}])
        emit_vaccinations(p, one)
        _anomaly(p, kind, "immunisation", basis, vaccination=one["key"].iat[0], lot=lot)


def _aefi_cluster(p: Province, vx: pd.DataFrame) -> None:
    # AEFI cluster: one lot's recipients report reactions at ~10× the background rate.
    lot = vx["lot"].value_counts().index[0]
    recipients = vx[vx["lot"] == lot]
    cluster = recipients.sample(n=max(5, len(recipients) // 20), random_state=7, replace=len(recipients) < 5)
    cluster = cluster.drop_duplicates("key")
    ae = emit_aefi(p, cluster, category="adverse_reaction")
    p.truth["aefi_cluster"] = {"lot": lot, "vaccinations": len(recipients), "events": ae["key"].tolist(),
                               "basis": "全国疑似预防接种异常反应监测方案 (2022) 聚集性反应"}


def outbreak(p: Province, deliveries: pd.DataFrame) -> None:
    """A contaminated lot from one producer reaches several venues; diners fall ill 12–72 h later."""
    rng = p.rng
    food = vocab("food_products")
    product = food[food["typical_pathogen"].str.contains("Salmonella", case=False)]["code"]
    product = product.iloc[0] if len(product) else food["code"].iloc[0]
    producer = p.inst[p.inst["kind"] == "FoodProducer"].iloc[0]
    distributor = p.inst[(p.inst["kind"] == "FoodDistributor") & (p.inst["division_code"] == producer["division_code"])].iloc[0]
    venues = p.inst[(p.inst["kind"] == "Venue") & (p.inst["division_code"] == producer["division_code"])].head(4)
    produced = WINDOW_START + pd.Timedelta(days=180)
    lot = f"FL-{producer['key'][-6:]}-{product}-OUTBREAK"
    emit_food_lots(p, pd.DataFrame([{"code": lot, "product": product, "producer": producer["key"],
                                     "expires_on": produced + pd.Timedelta(days=10)}]))
    deliv = [{"lot": lot, "from": producer["key"], "to": distributor["key"], "occurred_at": produced + pd.Timedelta(days=1),
              "quantity": 400.0}]
    deliv += [{"lot": lot, "from": distributor["key"], "to": v.key, "occurred_at": produced + pd.Timedelta(days=2),
               "quantity": 40.0} for v in venues.itertuples()]
    emit_deliveries(p, pd.DataFrame(deliv))
    local = p.persons[p.persons["division_code"] == producer["division_code"]]
    n_cases = int(min(len(local), rng.integers(30, 50)))
    cases = local.sample(n=n_cases, random_state=11)
    meals = cases.assign(venue=rng.choice(venues["key"].to_numpy(), n_cases), lot=lot,
                         occurred_at=produced + pd.Timedelta(days=3, hours=12) +
                         pd.to_timedelta(rng.integers(0, 48, n_cases), unit="h"))
    emit_exposures(p, meals)
    # They present with food-borne illness (A02.0 Salmonella enteritis, or A05.9 when untyped).
    icd_codes = set(vocab("icd10")["code"])
    code = "A02.0" if "A02.0" in icd_codes else ("A02" if "A02" in icd_codes else "A05.9")
    hosp = p.depts[(p.depts["division_code"] == producer["division_code"]) & (p.depts["kind"] == "Hospital2")]
    dept = hosp[hosp["subject_code"] == "03"].iloc[0] if (hosp["subject_code"] == "03").any() else hosp.iloc[0]
    doc = _physician_of(p, dept["code"])
    keys = []
    for m in meals.itertuples():
        person = cases.set_index("person").loc[m.person].copy()
        person["person"] = m.person
        e = _encounter(p, person, dept, doc["key"], m.occurred_at + pd.Timedelta(hours=int(rng.integers(12, 72))), icd=code)
        keys.append(e["key"].iat[0])
        diagnoses(p, e)
    sample = emit_samples(p, pd.DataFrame([{"code": lot, "produced": produced}]), positive=True, pathogen="Salmonella")
    p.truth["outbreak"] = {
        "source_station": producer["key"], "source_lot": lot, "product": product, "distributor": distributor["key"],
        "venues": venues["key"].tolist(), "cases": cases["person"].tolist(), "case_encounters": keys,
        "icd10": code, "positive_sample": sample["code"].iat[0],
        "basis": "食源性疾病监测报告工作规范 (试行) 2019; trace-back per BfR FoodChain-Lab scoring"}


def legacy_export(p: Province) -> None:
    """A legacy system's JSON export: mostly good records, plus the classic faults of old exports.

    Each bad record's expected quarantine code is in ground_truth["quarantine"].
    """
    sample = p.persons.sample(n=min(40, len(p.persons)), random_state=3).reset_index(drop=True)
    records, expected = [], {}
    for i, r in sample.iterrows():
        rec: dict[str, Any] = {"source_system": "LEGACY-EMR", "source_id": f"L{i:05d}", "name": r["name"],
                               "sex": r["sex"], "birth_date": r["birth_date"].date().isoformat(),
                               "id_number": r["id_number"], "division_code": r["division_code"]}
        fault = i % 8
        if fault == 1:
            rec["birth_date"] = f"{r['birth_date'].year}-02-30"
            expected[i] = "HG-0103"
        elif fault == 2:
            rec["sex"] = "男"
            expected[i] = "HG-0107"
        elif fault == 3:
            rec["birthdate"] = rec.pop("birth_date")
            expected[i] = "HG-0102"
        elif fault == 4:
            rec.pop("name")
            expected[i] = "HG-0106"
        elif fault == 5:
            rec["division_code"] = "33A1"
            expected[i] = "HG-0108"
        elif fault == 6:
            rec.pop("source_id")
            expected[i] = "HG-0104"
        else:
            p.records = pd.concat([p.records, pd.DataFrame([{
                "key": f"LEGACY-EMR:L{i:05d}", "person": r["person"], "source_system": "LEGACY-EMR",
                "source_id": f"L{i:05d}", "institution": None, "errors": ""}])], ignore_index=True)
        records.append(rec)
    records.append(dict(records[0]))  # an exact re-send of the first record collapses, it is not an error
    records.append({**records[0], "name": records[0].get("name", "") + "某"})
    expected[len(records) - 1] = "HG-0105"
    p.writer.add_extra("nodes/Resident.legacy-emr.jsonl", records)
    edges = [{"src": f"LEGACY-EMR:L{i:05d}", "dst": r["division_code"]} for i, r in sample.iterrows()
             if i % 8 in (0, 7)]
    edges.append({"src": "LEGACY-EMR:L99999", "dst": sample["division_code"].iat[0]})
    edge_expected = {len(edges) - 1: "HG-0111"}
    edges.append({"src": f"LEGACY-EMR:L{0:05d}", "dst": "FL-UNKNOWN"})
    edge_expected[len(edges) - 1] = "HG-0111"
    p.writer.add_extra("edges/resides_in.legacy-emr.jsonl", edges)
    p.truth["quarantine"] = {"nodes/Resident.legacy-emr.jsonl": {str(k): v for k, v in expected.items()},
                             "edges/resides_in.legacy-emr.jsonl": {str(k): v for k, v in edge_expected.items()}}


def resold_drug_pack(p: Province) -> None:
    """One drug pack's trace code dispensed twice, weeks apart, at two hospitals (回流药)."""
    drugs = vocab("drugs").reset_index(drop=True)
    drug = drugs.iloc[0]
    code = f"{int(pd.util.hash_array(np.array([drug['code']]))[0] % 10**7):07d}{10**13 - 1:013d}"
    items = []
    for i, kind in enumerate(("Hospital3", "Hospital2")):
        dept = _dept(p, "03", kind)
        e = _encounter(p, _pick_person(p), dept, _physician_of(p, dept["code"])["key"],
                       WINDOW_START + pd.Timedelta(days=180 + 21 * i, hours=11))
        rx = e.assign(rx=e["source_system"] + ":" + p.next_ids("RX", 1))
        item = pd.DataFrame({"rx": rx["rx"].iat[0], "source_system": rx["source_system"].iat[0],
                             "of_drug": [drug["code"]], "daily_dose": [numeric(drugs, "typical_dose", 1).iat[0]],
                             "unit": [drug["unit"]], "days_supply": [3], "exception_reason": [None],
                             "trace_code": [code], "source_id": p.next_ids("RXI", 1)})
        emit_prescriptions(p, rx, item)
        items.append(f"{item['source_system'].iat[0]}:{item['source_id'].iat[0]}")
    p.truth["drug_trace_repeat"] = {"code": code, "items": items,
                                    "basis": "NMPAB/T 1002-2019 药品追溯码编码要求 (one code per sales pack)"}
