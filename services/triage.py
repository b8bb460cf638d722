"""Guided triage (智能导诊, 应用功能指引 §2): from a complaint in everyday Chinese to where to go.

    triage = Triage.open(store)
    answer = triage.assess("我爸胸口疼，出了一身冷汗", age_years=67)
    answer["action"]             # "emergency": a red flag is answered before anything else
    answer["departments"][0]     # {"subject_code": "03", "name": "内科", "confidence": 0.71, …}

Order of work, every step explained in the answer:
1. Red flags first (ontology/knowledge/redflags.yaml, each with its clinical basis): an emergency
   presentation returns "call 120 / go to the emergency department" with the reason.
2. Ranked conditions — never a diagnosis, and the answer says so — by naive Bayes over the graph's
   knowledge: the condition's prior (relative prevalence) × how often it shows each symptom
   mentioned × how rarely it shows each symptom denied, with a small leak for symptoms a condition
   is not known to have, and age/sex fit. A symptom few conditions share moves the ranking most
   (its specificity is reported).
3. Departments top-3 with confidence: the conditions' probability per 诊疗科目 blended with the
   learned department classifier.
4. A clarifying question when the leader is unsure: the unmentioned symptom whose answer is
   expected to tell the candidates apart best (information gain).
5. Doctors and hospitals from the graph, ranked by a transparent mix of distance, popularity (visits),
   patient rating and hospital grade, each reason shown.
"""

from __future__ import annotations

import json
import math
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graph import GraphStore
from ingest.knowledge import BUILTIN, DEFAULT_SYMPTOM_WEIGHT
from ontology.errors import NothingUnderstood
from ontology.knowledge import KnowledgeBase, RedFlag, load_knowledge
from ontology.vocab import vocab

NOT_A_DIAGNOSIS = ("以下仅为可能情况的排序，不是诊断；请以医生面诊为准。"
                   " This ranks possibilities; it is not a diagnosis — a doctor's examination decides.")
LEAK = 0.02
"""P(symptom | condition) for a symptom the knowledge base does not list for the condition."""
OUT_OF_RANGE = 0.05
"""Prior factor for a condition outside its age range or for the other sex (rare, not impossible)."""
UNCURATED_PRIOR_SCALE = 0.03
"""Imported knowledge graphs state a population prevalence (not a share of visits) for thousands of
near-duplicate conditions (小儿感冒, 风寒感冒…): their priors are scaled down so curated conditions lead
when both explain a complaint. With 0.03 and symptom weight 0.3, condition top-1 on generated
held-out complaints went from 0.56 to 0.80 with the 8.8k-disease graph imported."""
CLARIFY_BELOW = 0.5
"""Ask a clarifying question when the leading condition's probability is below this."""
CLASSIFIER_SHARE = 0.6
"""Weight of the learned department classifier against the conditions' departments: chosen on
generated complaints held out from training (top-1 0.93 at 0, 0.97 at 0.6–0.8, 0.965 at 1), never on
the labelled test set."""
EMERGENCY_SUBJECT = "20"
INTERNAL_MEDICINE, PAEDIATRICS = "03", "07"
PAEDIATRIC_AGE = 14
"""Children under 14 with an internal-medicine condition go to 儿科: the age up to which Chinese
hospitals' paediatric departments usually take children (a local policy may set another age)."""
RECOMMEND_WEIGHTS = {"distance": 0.35, "popularity": 0.25, "rating": 0.25, "grade": 0.15}
"""How doctors are ranked; every recommendation shows each part."""
GRADE_SCORE = {"3A": 1.0, "3B": 0.9, "3C": 0.85, "2A": 0.7, "2B": 0.6, "2C": 0.55, "1A": 0.4, "1B": 0.35,
               "1C": 0.3}
"""医院等级 (医院分级管理办法, 1989: 三级甲等 highest); ungraded institutions score 0.3."""


@dataclass(frozen=True)
class ConditionProfile:
    code: str
    name: str
    subject_code: str
    departments: tuple[str, ...]
    urgency: str
    prevalence: float
    sex: str | None
    min_age: int | None
    max_age: int | None
    weights: dict[str, float] = field(hash=False)


class KnowledgeModel:
    """What triage knows, read from the graph once: conditions, their symptoms and frequencies."""

    def __init__(self, conditions: list[ConditionProfile]) -> None:
        self.conditions = {c.code: c for c in conditions}
        self.by_symptom: dict[str, list[ConditionProfile]] = defaultdict(list)
        for c in conditions:
            for s in c.weights:
                self.by_symptom[s].append(c)

    @classmethod
    def from_graph(cls, store: GraphStore) -> KnowledgeModel:
        pairs: dict[str, list[str]] = defaultdict(list)
        for r in store.query("knowledge_condition_symptoms"):
            pairs[r["disease"]].append(r["symptom"])
        profiles = []
        for r in store.query("knowledge_conditions"):
            weights = json.loads(r["symptom_weights"]) if r["symptom_weights"] else {}
            for s in pairs.get(r["key"], ()):
                weights.setdefault(s, DEFAULT_SYMPTOM_WEIGHT)  # a relation an imported graph added
            if not weights:
                continue  # a code-list disease with no knowledge: nothing to rank it by
            prior = float(r["prevalence"] or 0.001) * (1.0 if r["kb_source"] == BUILTIN else UNCURATED_PRIOR_SCALE)
            profiles.append(ConditionProfile(
                r["key"], r["name"], r["subject_code"] or "69", tuple(r["departments"] or ()), r["urgency"] or "routine",
                prior, r["affects_sex"], r["min_age"], r["max_age"], weights))
        return cls(profiles)

    def specificity(self, symptom: str) -> float:
        """log2(conditions / conditions with the symptom): how much a symptom narrows things down."""
        n = len(self.by_symptom.get(symptom, ())) or 1
        return math.log2(max(len(self.conditions), 1) / n)


@dataclass
class Location:
    latitude: float
    longitude: float
    source: str


def haversine_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 6371.0 * 2 * math.asin(math.sqrt(h))


class Triage:
    """The triage service over one graph store (thread-safe reads; the knowledge model is cached)."""

    def __init__(self, store: GraphStore, kb: KnowledgeBase | None = None, *, models_dir: Path | None = None,
                 parser: Any = None, classifier: Any = None) -> None:
        self.store = store
        self.kb = kb or load_knowledge()
        self.models_dir = models_dir
        self._parser, self._classifier = parser, classifier
        self._model: KnowledgeModel | None = None
        self._models: Any = None
        self._lock = threading.Lock()
        subjects = vocab("clinical_subjects")
        self.subject_names = {r.code: (r.name_zh, r.name_en) for r in subjects.itertuples()}

    @classmethod
    def open(cls, store: GraphStore, models_dir: Path | None = None) -> Triage:
        return cls(store, models_dir=models_dir)

    # ------------------------------------------------------------------ parts, built on first use
    @property
    def model(self) -> KnowledgeModel:
        with self._lock:
            if self._model is None:
                self._model = KnowledgeModel.from_graph(self.store)
            return self._model

    @property
    def parser(self) -> Any:
        with self._lock:
            if self._parser is None:
                from models.triage import ComplaintParser

                self._parser = ComplaintParser(self.kb, extra=self._graph_terms())
            return self._parser

    @property
    def models(self) -> Any:
        """The learned department and intent models (trained on the knowledge base when missing or stale)."""
        with self._lock:
            if self._models is None:
                from models.triage import load_or_train

                self._models = load_or_train(self.kb, self.models_dir / "triage")
            return self._models

    @property
    def classifier(self) -> Any:
        if self._classifier is None and self.models_dir is not None:
            self._classifier = self.models.department
        return self._classifier

    def _graph_terms(self) -> dict[str, dict[str, str]]:
        """Names the graph knows beyond the built-in knowledge base (an imported knowledge graph)."""
        label = {"Symptom": "SYMPTOM", "Drug": "DRUG", "LabTest": "CHECK", "Food": "FOOD"}
        extra: dict[str, dict[str, str]] = defaultdict(dict)
        for r in self.store.query("knowledge_terms"):
            # symptoms are named by their canonical name (what the knowledge model keys on)
            extra[label[r["class"]]][r["name"]] = r["name"] if r["class"] == "Symptom" else r["key"]
        for r in self.store.query("knowledge_conditions"):
            extra["DISEASE"][r["name"]] = r["key"]
            for s in r["synonyms"] or ():
                extra["DISEASE"].setdefault(s, r["key"])
        return dict(extra)

    def refresh(self) -> None:
        """Re-read the graph's knowledge (after an import)."""
        with self._lock:
            self._model, self._parser = None, None

    # ------------------------------------------------------------------ the answer
    def assess(self, text: str, *, age_years: float | None = None, sex: str | None = None,
               pregnant: bool | None = None, latitude: float | None = None, longitude: float | None = None,
               division: str | None = None, doctors: int = 5) -> dict[str, Any]:
        complaint = self.parser.parse(text)
        age = age_years if age_years is not None else complaint.age_years
        sex = sex or complaint.sex
        pregnant = pregnant if pregnant is not None else complaint.pregnant
        present = sorted(complaint.present_symptoms())
        denied = sorted(complaint.negated_symptoms())
        understood = {
            "symptoms": [{"name": s, "specificity": round(self.model.specificity(s), 2)} for s in present],
            "denied": denied, "age_years": age, "sex": sex, "pregnant": pregnant,
            "temperature_c": complaint.temperature_c, "duration_days": complaint.duration_days,
            "terms": [{"label": f.label, "text": f.surface, "concept": f.concept, "negated": f.negated}
                      for f in complaint.findings],
        }
        flags = self.red_flags(complaint, age)
        if flags:
            return {
                "action": "emergency",
                "message": "请立即拨打120或前往最近的急诊。 Call 120 or go to the nearest emergency department now.",
                "red_flags": flags, "understood": understood,
                "departments": [self._department(EMERGENCY_SUBJECT, 1.0, ["red flag 危急征象"])],
                "conditions": [], "question": None, "doctors": [], "disclaimer": NOT_A_DIAGNOSIS,
            }
        if not present:
            raise NothingUnderstood("没有识别出症状，请换种说法描述哪里不舒服 no symptom recognised; please say "
                                    "where it hurts or what feels wrong", text=text[:100])
        ranked = self.rank(present, denied, age, sex, pregnant)
        departments = self.departments(ranked, complaint, age)
        top = ranked[0]["probability"] if ranked else 0.0
        question = self.clarifying_question(ranked, present, denied) if top < CLARIFY_BELOW else None
        urgent = any(r["urgency"] in ("emergency", "urgent") and r["probability"] >= 0.2 for r in ranked[:3])
        return {
            "action": "see_doctor_soon" if urgent else "outpatient",
            "message": ("建议尽快（24小时内）就诊。 See a doctor within 24 hours." if urgent else
                        "建议门诊就诊。 Book an outpatient visit."),
            "red_flags": [], "understood": understood, "conditions": ranked[:5], "departments": departments,
            "question": question,
            "doctors": self.recommend([d["subject_code"] for d in departments[:2]], latitude=latitude,
                                      longitude=longitude, division=division, limit=doctors) if doctors else [],
            "disclaimer": NOT_A_DIAGNOSIS,
        }

    # ------------------------------------------------------------------ 1. red flags
    def red_flags(self, complaint: Any, age_years: float | None) -> list[dict[str, Any]]:
        present = complaint.present_symptoms()
        fired = []
        for rf in self.kb.red_flags:
            reason = self._fires(rf, complaint, present, age_years)
            if reason:
                fired.append({"id": rf.id, "title": rf.title, "title_en": rf.title_en, "advice": rf.advice,
                              "advice_en": rf.advice_en, "because": reason, "basis": rf.basis})
        return fired

    def _fires(self, rf: RedFlag, complaint: Any, present: set[str], age_years: float | None) -> str | None:
        months = None if age_years is None else age_years * 12
        if rf.max_age_months is not None and (months is None or months > rf.max_age_months):
            return None
        if rf.min_age_months is not None and (months is None or months < rf.min_age_months):
            return None
        if rf.min_temperature is not None and complaint.temperature_c is not None \
                and complaint.temperature_c < rf.min_temperature:
            # A fever reported without a number counts as reaching the threshold: for a young infant,
            # missing a real fever costs far more than an emergency visit that was not needed.
            return None
        for group in rf.all_of:
            if set(group) <= present:
                return "症状 symptoms: " + "、".join(group)
        if rf.min_temperature is not None and complaint.temperature_c is None:
            return None  # "体温正常": a temperature word without a number is no fever
        for phrase in rf.phrases:
            at = complaint.text.find(phrase)
            if at >= 0 and not self._negated_phrase(complaint.text, at):
                return f"提到 mentioned: “{phrase}”"
        return None

    def _negated_phrase(self, text: str, at: int) -> bool:
        clause_start = max(text.rfind(p, 0, at) for p in "，。；！？,;!?") + 1
        before = text[clause_start:at]
        return any(before.endswith(cue) or before.endswith(cue + "有") for cue in self.kb.lexicon.negations)

    # ------------------------------------------------------------------ 2. conditions
    def rank(self, present: list[str], denied: list[str], age_years: float | None, sex: str | None,
             pregnant: bool | None = None) -> list[dict[str, Any]]:
        model = self.model
        candidates = {c.code: c for s in present for c in model.by_symptom.get(s, ())}
        scored = []
        for c in candidates.values():
            log_p = math.log(c.prevalence)
            fit = []
            if sex in ("1", "2") and c.sex and c.sex != sex:
                log_p += math.log(OUT_OF_RANGE)
                fit.append("性别不符 sex does not fit")
            if age_years is not None and ((c.min_age is not None and age_years < c.min_age)
                                          or (c.max_age is not None and age_years > c.max_age)):
                log_p += math.log(OUT_OF_RANGE)
                fit.append("年龄不符 age does not fit")
            evidence = []
            for s in present:
                w = c.weights.get(s, LEAK)
                log_p += math.log(w)
                evidence.append({"symptom": s, "frequency": w if s in c.weights else None})
            for s in denied:
                if s in c.weights:
                    log_p += math.log(1 - min(c.weights[s], 0.95))
            scored.append((log_p, c, evidence, fit))
        if not scored:
            return []
        best = max(s[0] for s in scored)
        total = sum(math.exp(s[0] - best) for s in scored)
        scored.sort(key=lambda s: (-s[0], s[1].code))
        out = []
        for log_p, c, evidence, fit in scored[:10]:
            matched = [e["symptom"] for e in evidence if e["frequency"] is not None]
            out.append({
                "code": c.code, "name": c.name, "probability": round(math.exp(log_p - best) / total, 4),
                "subject_code": c.subject_code, "departments": list(c.departments), "urgency": c.urgency,
                "why": {"matched_symptoms": matched, "unexplained_symptoms": [s for s in present if s not in matched],
                        "prevalence": c.prevalence, "fit": fit or ["年龄性别相符 age and sex fit"]},
            })
        return out

    # ------------------------------------------------------------------ 3. departments
    def departments(self, ranked: list[dict[str, Any]], complaint: Any, age_years: float | None = None
                    ) -> list[dict[str, Any]]:
        mass: dict[str, float] = defaultdict(float)
        why: dict[str, list[str]] = defaultdict(list)
        child = age_years is not None and age_years < PAEDIATRIC_AGE
        for r in ranked:
            subject = PAEDIATRICS if child and r["subject_code"] == INTERNAL_MEDICINE else r["subject_code"]
            mass[subject] += r["probability"]
            if r["probability"] >= 0.05:
                why[subject].append(f"{r['name']} ({r['probability']:.0%})")
        learned: dict[str, float] = {}
        if self.classifier is not None:
            learned = {r.label: r.probability for r in self.classifier.top(complaint, k=5)}
        share = CLASSIFIER_SHARE if learned else 0.0
        scores = {s: (1 - share) * mass.get(s, 0.0) + share * learned.get(s, 0.0) for s in {*mass, *learned}}
        total = sum(scores.values()) or 1.0
        out = []
        for subject, score in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:3]:
            reasons = [f"可能的情况 conditions: {', '.join(why[subject])}"] if why[subject] else []
            if subject in learned:
                reasons.append(f"分诊模型 department model: {learned[subject]:.0%}")
            out.append(self._department(subject, score / total, reasons))
        return out

    def _department(self, subject: str, confidence: float, reasons: list[str]) -> dict[str, Any]:
        zh, en = self.subject_names.get(subject, (subject, subject))
        return {"subject_code": subject, "name": zh, "name_en": en, "confidence": round(confidence, 3),
                "why": reasons}

    # ------------------------------------------------------------------ 4. clarifying question
    def clarifying_question(self, ranked: list[dict[str, Any]], present: list[str],
                            denied: list[str]) -> dict[str, Any] | None:
        top = ranked[:6]
        if len(top) < 2:
            return None
        probs = [r["probability"] for r in top]
        norm = sum(probs)
        probs = [p / norm for p in probs]
        profiles = [self.model.conditions[r["code"]] for r in top]
        asked = set(present) | set(denied)
        options = {s for c in profiles for s in c.weights} - asked

        def entropy(ps: list[float]) -> float:
            t = sum(ps)
            return -sum(p / t * math.log2(p / t) for p in ps if p > 0) if t > 0 else 0.0

        base = entropy(probs)
        best: tuple[float, str] | None = None
        for s in sorted(options):
            yes = [p * c.weights.get(s, LEAK) for p, c in zip(probs, profiles, strict=True)]
            no = [p * (1 - c.weights.get(s, LEAK)) for p, c in zip(probs, profiles, strict=True)]
            p_yes = sum(yes)
            gain = base - p_yes * entropy(yes) - (1 - p_yes) * entropy(no)
            if best is None or gain > best[0] + 1e-12:
                best = (gain, s)
        if best is None or best[0] <= 0.01:
            return None
        symptom = self.kb.symptom_of(best[1])
        en = symptom.name_en if symptom else best[1]
        return {"symptom": best[1], "text": f"请问您有没有{best[1]}？ Do you have {en.lower()}?",
                "information_gain_bits": round(best[0], 3),
                "separates": [r["name"] for r in top[:3]]}

    # ------------------------------------------------------------------ 5. doctors
    def locate(self, latitude: float | None, longitude: float | None, division: str | None) -> Location | None:
        if latitude is not None and longitude is not None:
            return Location(latitude, longitude, "request 请求坐标")
        if division:
            prefix = division[:6].rstrip("0") or division[:2]
            places = self.store.query("division_institution_places", code_prefix=prefix)
            if places:
                return Location(sum(p["latitude"] for p in places) / len(places),
                                sum(p["longitude"] for p in places) / len(places),
                                f"区划 {division} 内机构的中心 centre of the division's institutions")
        return None

    def recommend(self, subjects: list[str], *, latitude: float | None = None, longitude: float | None = None,
                  division: str | None = None, limit: int = 5) -> list[dict[str, Any]]:
        subjects = [s for s in subjects if s != EMERGENCY_SUBJECT] or subjects
        doctors = self.store.query("practitioners_for_subjects", subjects=subjects)
        if not doctors:
            return []
        place = self.locate(latitude, longitude, division)
        if place is not None:
            for d in doctors:
                d["distance_km"] = (haversine_km((place.latitude, place.longitude), (d["latitude"], d["longitude"]))
                                    if d["latitude"] is not None else None)
            doctors.sort(key=lambda d: (d["distance_km"] is None, d["distance_km"] or 0.0, d["key"]))
            doctors = doctors[:200]  # the nearest few hundred: popularity is counted for these only
        visits = {r["key"]: r["visits"] for r in self.store.query(
            "practitioner_visits", practitioners=[d["key"] for d in doctors])}
        most = max(visits.values(), default=0) or 1
        ranked = []
        for d in doctors:
            parts = {
                "distance": math.exp(-d["distance_km"] / 10.0) if d.get("distance_km") is not None else 0.5,
                "popularity": visits.get(d["key"], 0) / most,
                "rating": ((d["rating"] or 3.0) - 1) / 4,
                "grade": GRADE_SCORE.get(str(d["grade"] or ""), 0.3),
            }
            score = sum(RECOMMEND_WEIGHTS[k] * v for k, v in parts.items())
            reasons = [
                f"距离 {d['distance_km']:.1f} km" if d.get("distance_km") is not None else "距离未知 distance unknown",
                f"接诊 {visits.get(d['key'], 0)} 人次 visits", f"评分 rating {d['rating'] or '—'}",
                f"医院等级 grade {d['grade'] or '—'}",
            ]
            ranked.append({"practitioner": d["key"], "name": d["name"], "title": d["title"],
                           "department": d["department"], "subject_code": d["subject_code"],
                           "institution": d["institution"], "institution_name": d["institution_name"],
                           "expertise": d["expertise"], "score": round(score, 4),
                           "parts": {k: round(v, 3) for k, v in parts.items()}, "why": reasons})
        ranked.sort(key=lambda r: (-r["score"], r["practitioner"]))
        return ranked[:limit]
