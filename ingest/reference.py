"""Reference nodes every province shares: diseases, drugs and lab tests from the project's own
vocabularies (ontology/vocab) and knowledge base (ontology/knowledge).

The synthetic province and the knowledge import both write these rows through this module, so
loading either one after the other changes nothing: the rows are the same.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd

from ontology.knowledge import Condition, KnowledgeBase, load_knowledge
from ontology.vocab import numeric, vocab


def stable_code(prefix: str, name: str) -> str:
    """A key for a knowledge term known only by its Chinese name: the same name, the same key."""
    return f"{prefix}-{hashlib.blake2b(name.encode('utf-8'), digest_size=5).hexdigest()}"


def condition_row(c: Condition) -> dict[str, object]:
    """The Disease properties a knowledge-base condition holds (names, facts, priors)."""
    return {
        "code": c.code, "name": c.name, "name_en": c.name_en or None, "subject_code": c.subject_code or None,
        "synonyms": list(c.synonyms) or None, "kb_departments": list(c.departments) or None,
        "urgency": c.urgency, "prevalence": c.prevalence, "affects_sex": c.sex or None,
        "min_age": c.min_age, "max_age": c.max_age,
        "symptom_weights": json.dumps({s.name: s.weight for s in c.symptoms}, ensure_ascii=False) if c.symptoms
        else None,
        "description": c.description or None, "cause": c.cause or None, "prevention": c.prevention or None,
        "treatment": c.treatment or None, "course": c.course or None, "cure_rate": c.cure_rate or None,
        "susceptible": c.susceptible or None, "transmission": c.transmission or None, "nursing": c.nursing or None,
        "diet_advice": c.diet_advice or None, "cost": c.cost or None, "insurance_covered": c.insurance,
        "kb_source": c.source,
    }


def disease_frame(kb: KnowledgeBase | None = None) -> pd.DataFrame:
    """The ICD-10 subset the province codes diagnoses with, enriched by the built-in knowledge base
    (which may add conditions of its own)."""
    kb = kb or load_knowledge()
    icd = vocab("icd10")
    base = pd.DataFrame({"code": icd["code"], "name": icd["name_zh"], "name_en": icd["name_en"],
                         "subject_code": icd["subject_code"],
                         "notifiable_class": icd["notifiable_class"].replace("", None),
                         "report_limit_hours": numeric(icd, "report_limit_hours", np.nan)})
    knowledge = pd.DataFrame([condition_row(c) for c in kb.conditions])
    if knowledge.empty:
        return base
    merged = base.merge(knowledge, on="code", how="outer", suffixes=("", "_kb"))
    for column in ("name", "name_en", "subject_code"):
        # The vocabulary's coded names win; the knowledge base fills conditions the vocabulary lacks.
        merged[column] = merged[column].where(merged[column].notna(), merged[f"{column}_kb"])
        merged = merged.drop(columns=f"{column}_kb")
    for column in ("min_age", "max_age"):
        merged[column] = merged[column].astype("Int64")
    return merged.sort_values("code", ignore_index=True)


def drug_frame() -> pd.DataFrame:
    drugs = vocab("drugs")
    return pd.DataFrame({
        "code": drugs["code"], "name": drugs["name_zh"], "name_en": drugs["name_en"], "atc": drugs["atc"],
        "drug_class": drugs["drug_class"], "unit": drugs["unit"],
        "max_daily_dose": numeric(drugs, "max_daily_dose", np.nan),
        "pregnancy_contraindicated": drugs["pregnancy_contraindicated"] == "true",
        "min_age": numeric(drugs, "min_age", 0).astype(int)})


def lab_test_frame() -> pd.DataFrame:
    tests = vocab("lab_tests")
    return pd.DataFrame({"code": tests["code"], "name": tests["name_zh"], "name_en": tests["name_en"],
                         "recognition_days": numeric(tests, "recognition_days", 30).astype(int)})
