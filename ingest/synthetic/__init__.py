"""The synthetic province generator: ``generate(out, residents=10_000, seed=7)``.

Deterministic for a seed and size; writes the folder layout documented in
``ingest/writer.py`` with a ground truth of everything it planted.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ingest.synthetic import province as pv
from ingest.synthetic import scenarios, supply
from ingest.writer import ProvinceWriter

__all__ = ["generate", "GenerationResult", "BATCH_RESIDENTS"]

GenerationResult = pv.GenerationResult
Progress = Callable[[str], None]
BATCH_RESIDENTS = 200_000
"""Residents whose care is generated together (1M residents at 5.6 × the visits peaked at 6.2 GB; docs/data.md)."""


def generate(out: str | Path, *, residents: int = 10_000, seed: int = 7, province_code: str = "330000",
             anomalies: bool = True, encounter_rate: float = 1.0, batch_residents: int = BATCH_RESIDENTS,
             progress: Progress | None = None) -> GenerationResult:
    """Generate a province of ``residents`` people into ``out`` (replaced if it exists).

    ``anomalies=False`` leaves out the planted supervision anomalies (the cases the rule packs must
    find, ``ground_truth["anomalies"]`` is then empty) and keeps the traceability scenarios (outbreak,
    positive donor, AEFI cluster, legacy export, resold drug pack): on such a province every rule of
    the core pack should raise nothing.

    ``encounter_rate`` scales each resident's yearly visits (≈ 1.8 encounters a resident at 1.0; 5.6 gives
    the ≈ 10 per resident of a province whose residents see a doctor 6–7 times a year); the prescriptions,
    results, documents and bookings of those visits scale with them.

    Care (visits and everything made at them) is generated for ``batch_residents`` residents at a time, so
    memory follows the batch rather than the province; a province no larger than one batch is the same as
    before batching existed. The batch size is part of what makes a province: keep it to reproduce one."""
    if batch_residents < 1:
        raise ValueError(f"batch_residents must be at least 1, not {batch_residents}")
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    say = progress or (lambda _msg: None)
    p = pv.Province(rng=np.random.default_rng(seed), writer=ProvinceWriter(spill=out / ".parts"))
    counties = pv.divisions(p, province_code, residents)
    planted = [
        ("异常: 执业 practice anomalies", lambda: scenarios.practice_anomalies(p)),
        ("异常: 处方 prescription anomalies", lambda: scenarios.prescription_anomalies(p)),
        ("异常: 诊疗 care anomalies", lambda: scenarios.care_anomalies(p)),
    ] if anomalies else []
    setup: list[tuple[str, Callable[[], object]]] = [
        ("机构 institutions", lambda: pv.institutions(p, counties, residents)),
        ("科室与人员 departments, practitioners, licences", lambda: pv.departments_and_staff(p)),
        ("居民 residents", lambda: pv.population(p, counties, residents)),
        ("参考数据 reference data", lambda: pv.reference_data(p)),
    ]
    care: list[tuple[str, Callable[[pd.DataFrame], object]]] = [
        ("就诊 encounters", lambda persons: pv.encounters(p, persons, rate=encounter_rate)),
        ("诊断 diagnoses", lambda _: pv.diagnoses(p)),
        ("处方 prescriptions", lambda _: pv.prescriptions(p)),
        ("检验检查 lab results", lambda _: pv.lab_results(p)),
        ("预约 appointments", lambda _: pv.appointments(p)),
        ("文档 documents", lambda _: pv.documents(p)),
    ]
    steps: list[tuple[str, Callable[[], object]]] = [
        ("献血 blood donations", lambda: supply.blood(p)),
        ("输血 transfusions", lambda: supply.transfusions(p)),
        ("食品链 food chain", lambda: p.truth.__setitem__("_deliveries", supply.food_chain(p))),
        ("接种 vaccinations", lambda: p.truth.__setitem__("_vx", supply.vaccinations(p))),
        ("知情同意 consents", lambda: supply.consents(p)),
        *planted,
        ("血液安全 blood scenarios", lambda: scenarios.blood_scenarios(p, anomalies=anomalies)),
        ("血液库存 blood reserve", lambda: scenarios.blood_reserve(p, anomalies=anomalies)),
        ("疫苗 vaccine scenarios", lambda: scenarios.vaccine_scenarios(p, p.truth.pop("_vx"), anomalies=anomalies)),
        ("食源性疾病暴发 outbreak", lambda: scenarios.outbreak(p, p.truth.pop("_deliveries"))),
        ("遗留系统导出 legacy export", lambda: scenarios.legacy_export(p)),
        ("药品追溯 resold drug pack", lambda: scenarios.resold_drug_pack(p)),
    ]
    p.truth.setdefault("anomalies", [])
    for label, step in setup:
        say(label)
        step()
    batches = range(0, len(p.persons), batch_residents)
    stays = []
    for i, start in enumerate(batches, start=1):
        persons = p.persons.iloc[start:start + batch_residents]
        for label, visit_step in care:
            say(label if len(batches) == 1 else f"{label} {i}/{len(batches)}")
            visit_step(persons)
        # Later steps (transfusions, blood scenarios) draw only on inpatient stays: keep those, drop the rest.
        stays.append(p.encounters[p.encounters["class"] == "InpatientEncounter"])
        p.encounters = pd.DataFrame()
    p.encounters = pd.concat(stays, ignore_index=True)
    for label, step in steps:
        say(label)
        step()
    for internal in [k for k in p.truth if k.startswith("_")]:
        p.truth.pop(internal)
    say("写出 writing files")
    (out / "truth").mkdir(parents=True, exist_ok=True)
    p.records.to_parquet(out / "truth" / "person_records.parquet", index=False)
    truth = {**p.truth, "person_records": "truth/person_records.parquet",
             "persons": int(len(p.persons)),
             "records": int(len(p.records)),
             "records_with_errors": int((p.records.get("errors", "").fillna("") != "").sum())}
    manifest = {"generator": f"healthgraph.synthetic/{pv.GENERATOR_VERSION}", "seed": seed, "residents": residents,
                "encounter_rate": encounter_rate, "batch_residents": batch_residents,
                "province_code": province_code, "anomalies": anomalies, "window": [str(pv.WINDOW_START.date()), "2025-12-31"],
                "as_of": str(pv.AS_OF.date())}
    counts = p.writer.write(out, manifest, truth)
    return GenerationResult(out, counts, truth)
