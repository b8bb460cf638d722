"""Medical question answering over the knowledge graph (用药服务 §16, 健康教育 §17, 膳食指南 §7).

    qa = QuestionAnswering(store, parser, intents)
    qa.ask("感冒了吃什么药")
    # {"intent": "disease_drug", "answer": "急性上呼吸道感染 常用药物：对乙酰氨基酚…",
    #  "facts": [{"subject": "J06.9", "relation": "treated_with", "object": "…", …}], …}

A question is parsed (diseases, symptoms, drugs, checks, foods it names), its intent predicted by the
learned intent model among the intents its terms allow, and answered from named graph queries only.
Every answer cites the graph facts it comes from; with no fact, the answer is "I don't know".
"""

from __future__ import annotations

from typing import Any

from graph import GraphStore
from ingest.reference import stable_code
from ontology.errors import NothingUnderstood

DONT_KNOW = "知识图谱中没有这方面的信息。 I don't know: the knowledge graph has no fact for this."

DISEASE_PROPERTY = {
    "disease_cause": ("cause", "病因 cause"),
    "disease_prevention": ("prevention", "预防 prevention"),
    "disease_course": ("course", "治疗周期 course"),
    "disease_treatment": ("treatment", "治疗 treatment"),
    "disease_cure_rate": ("cure_rate", "治愈率 cure rate"),
    "disease_susceptible": ("susceptible", "易感人群 susceptible groups"),
    "disease_description": ("description", "简介 description"),
    "disease_cost": ("cost", "费用 cost"),
    "disease_insurance": ("insurance_covered", "医保 insurance"),
    "disease_transmission": ("transmission", "传播途径 transmission"),
    "disease_nursing": ("nursing", "护理 nursing"),
    "disease_department": ("departments", "就诊科室 department"),
}
DISEASE_RELATION = {
    "disease_symptom": ("disease_symptoms", "has_symptom", "症状 symptoms"),
    "disease_complication": ("disease_complications", "complication", "并发症 complications"),
    "disease_good_food": ("disease_good_foods", "good_food", "宜吃 good to eat"),
    "disease_avoid_food": ("disease_avoid_foods", "avoid_food", "忌吃 avoid"),
    "disease_drug": ("disease_drugs", "treated_with", "常用药物 drugs"),
    "disease_check": ("disease_checks", "checked_by", "检查 checks"),
}
TERM_RELATION = {
    "symptom_disease": ("SYMPTOM", [("symptom_diseases", "has_symptom")], "可能的疾病 diseases with this symptom"),
    "drug_disease": ("DRUG", [("drug_diseases", "treated_with")], "用于 used for"),
    "check_disease": ("CHECK", [("check_diseases", "checked_by")], "用于诊断 used to diagnose"),
    "food_disease": ("FOOD", [("food_good_for", "good_food"), ("food_avoid_for", "avoid_food")],
                     "相关疾病 diseases (宜吃/忌吃)"),
}
DRUG_FACTS = ("drug_usage", "drug_contraindication")
TERM_INTENTS = {
    "DISEASE": {*DISEASE_PROPERTY, *DISEASE_RELATION},
    "SYMPTOM": {"symptom_disease"}, "DRUG": {"drug_disease", *DRUG_FACTS}, "CHECK": {"check_disease"},
    "FOOD": {"food_disease"},
}
"""Which intents a question can have, given the kind of term it names."""
MAX_LISTED = 10


class QuestionAnswering:
    def __init__(self, store: GraphStore, parser: Any, intents: Any) -> None:
        self.store, self.parser, self.intents = store, parser, intents

    def ask(self, question: str) -> dict[str, Any]:
        complaint = self.parser.parse(question)
        terms: dict[str, list[tuple[str, str]]] = {}
        for f in complaint.findings:
            if f.label in TERM_INTENTS and not f.negated:
                terms.setdefault(f.label, [])
                if (f.concept, f.surface) not in terms[f.label]:
                    terms[f.label].append((f.concept, f.surface))
        allowed = set().union(*(TERM_INTENTS[label] for label in terms)) if terms else set()
        if not allowed:
            raise NothingUnderstood("没有识别出疾病、症状、药品、检查或食物 no disease, symptom, drug, check or food "
                                    "recognised in the question", text=question[:100])
        proba = dict(zip(self.intents.classes_, self.intents.predict_proba([complaint])[0], strict=True))
        intent, confidence = max(((i, p) for i, p in proba.items() if i in allowed), key=lambda ip: (ip[1], ip[0]))
        answer = self._answer(intent, terms)
        return {"question": question, "intent": intent, "intent_confidence": round(confidence, 3),
                "terms": {label: [s for _, s in found] for label, found in terms.items()}, **answer}

    def _answer(self, intent: str, terms: dict[str, list[tuple[str, str]]]) -> dict[str, Any]:
        if intent in DISEASE_PROPERTY or intent in DISEASE_RELATION:
            return self._disease(intent, [code for code, _ in terms.get("DISEASE", [])])
        if intent in TERM_RELATION:
            label, queries, title = TERM_RELATION[intent]
            keys = [self._key(label, concept) for concept, _ in terms.get(label, [])]
            facts, lines = [], []
            for query, edge in queries:
                rows = self.store.query(query, terms=keys)
                rows.sort(key=lambda r: (-(r["prevalence"] or 0), r["key"]))
                for r in rows[:MAX_LISTED]:
                    facts.append({"subject": r["key"], "relation": edge, "object": r["term"],
                                  "text": f"{r['name']} —{edge}→ {r['term']}"})
                if rows:
                    lines.append(("宜吃 " if edge == "good_food" else "忌吃 " if edge == "avoid_food" else "")
                                 + "、".join(r["name"] for r in rows[:MAX_LISTED])
                                 + (f" 等 {len(rows)} 种" if len(rows) > MAX_LISTED else ""))
            return self._result(f"{title}：" + "；".join(lines) if lines else None, facts)
        return self._drug(intent, [concept for concept, _ in terms.get("DRUG", [])])

    def _key(self, label: str, concept: str) -> str:
        # The parser names symptoms by their canonical name; their graph key derives from it.
        return stable_code("SYM", concept) if label == "SYMPTOM" else concept

    def _disease(self, intent: str, codes: list[str]) -> dict[str, Any]:
        facts, lines = [], []
        if intent in DISEASE_PROPERTY:
            prop, title = DISEASE_PROPERTY[intent]
            for row in self.store.query("disease_facts", diseases=codes):
                value = row.get(prop)
                if prop == "departments":
                    value = "、".join(value) if value else None
                elif prop == "insurance_covered" and value is not None:
                    value = "是，属于基本医疗保险范围 yes" if value else "否 no"
                if value in (None, ""):
                    continue
                facts.append({"subject": row["key"], "relation": prop, "object": value,
                              "source": row["kb_source"], "text": f"{row['name']}.{prop} = {value}"})
                lines.append(f"{row['name']} {title}：{value}")
        else:
            query, edge, title = DISEASE_RELATION[intent]
            by_disease: dict[str, list[dict[str, Any]]] = {}
            for r in self.store.query(query, diseases=codes):
                by_disease.setdefault(r["disease"], []).append(r)
            names = {r["key"]: r["name"] for r in self.store.query("disease_facts", diseases=codes)}
            for code, rows in by_disease.items():
                for r in rows[:MAX_LISTED * 2]:
                    facts.append({"subject": code, "relation": edge, "object": r["key"],
                                  "text": f"{names.get(code, code)} —{edge}→ {r['name']}"})
                lines.append(f"{names.get(code, code)} {title}：" + "、".join(r["name"] for r in rows[:MAX_LISTED * 2]))
            if intent in ("disease_good_food", "disease_avoid_food"):
                for row in self.store.query("disease_facts", diseases=codes):
                    if row["diet_advice"]:
                        facts.append({"subject": row["key"], "relation": "diet_advice", "object": row["diet_advice"],
                                      "text": f"{row['name']}.diet_advice"})
                        lines.append(f"饮食建议 diet advice：{row['diet_advice']}")
        return self._result("\n".join(lines) if lines else None, facts)

    def _drug(self, intent: str, keys: list[str]) -> dict[str, Any]:
        facts, lines = [], []
        for row in self.store.query("drug_facts", drugs=keys):
            parts = []
            if intent == "drug_usage" and row["max_daily_dose"] is not None:
                parts.append(f"成人每日最大剂量 max daily dose {row['max_daily_dose']:g} {row['unit'] or ''}".strip())
                facts.append({"subject": row["key"], "relation": "max_daily_dose", "object": row["max_daily_dose"],
                              "text": f"{row['name']}.max_daily_dose = {row['max_daily_dose']:g}"})
            if intent == "drug_contraindication":
                if row["pregnancy_contraindicated"] is not None:
                    parts.append("孕妇禁用 contraindicated in pregnancy" if row["pregnancy_contraindicated"]
                                 else "说明书未列孕妇禁用 not listed as contraindicated in pregnancy")
                    facts.append({"subject": row["key"], "relation": "pregnancy_contraindicated",
                                  "object": row["pregnancy_contraindicated"],
                                  "text": f"{row['name']}.pregnancy_contraindicated"})
                if row["min_age"]:
                    parts.append(f"{row['min_age']} 岁以下不宜使用 not below age {row['min_age']}")
                    facts.append({"subject": row["key"], "relation": "min_age", "object": row["min_age"],
                                  "text": f"{row['name']}.min_age = {row['min_age']}"})
            if parts:
                lines.append(f"{row['name']}：" + "；".join(parts) + "。请遵医嘱或药品说明书。")
        return self._result("\n".join(lines) if lines else None, facts)

    @staticmethod
    def _result(text: str | None, facts: list[dict[str, Any]]) -> dict[str, Any]:
        if not text or not facts:
            return {"known": False, "answer": DONT_KNOW, "facts": []}
        return {"known": True, "answer": text, "facts": facts}
