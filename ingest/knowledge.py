"""Import medical knowledge into the graph: the built-in knowledge base, and external knowledge
graphs in the common Chinese medical-KG JSON format (one disease per record).

    healthgraph kb import                       # the built-in knowledge base (make demo does this)
    healthgraph kb import path/to/medical-kg/   # a folder of .json/.jsonl files, or one file

Two record shapes are read: the flat one (``name, desc, symptom, acompany, cure_department, check,
common_drug, do_eat, not_eat, …``) and the nested crawl (``gaishu_info{…}, symptom_data{…},
food_info{…}, inspect_info, …``), in JSON lines, a JSON list or a JSON object of records.

Cleaning as we load, with every decision counted and every rejected record kept with its reason:
truncated names ("…") are rejected for diseases and completed for symptoms when one known name
fits; a disease named twice is merged; names the built-in knowledge base knows (a name or a
synonym: 感冒 → 急性上呼吸道感染) attach to its condition instead of making a second node, and
add only relations, never overwrite its curated facts. The result is written as a folder in the
province layout and loaded by ``ingest.load`` (ontology validation, quarantine, reconciliation,
idempotent re-runs).
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from graph.store import GraphStore
from ingest.load import LoadReport, Progress, load_folder
from ingest.reference import condition_row, disease_frame, drug_frame, lab_test_frame, stable_code
from ingest.writer import ProvinceWriter
from ontology.errors import KnowledgeImportError
from ontology.knowledge import Condition, KnowledgeBase, SymptomWeight, load_knowledge

BUILTIN = "builtin"
DEFAULT_SYMPTOM_WEIGHT = 0.3
"""External knowledge graphs list symptoms without frequencies: each counts as 'sometimes' (0.3),
weaker evidence than the built-in knowledge base's estimates (chosen with triage's prior scale on
generated complaints held out from training; see services/triage.py)."""
DEFAULT_PREVALENCE = 0.001

DEPARTMENT_SUBJECTS = {
    "内科": "03", "外科": "04", "妇产科": "05", "妇科": "05", "产科": "05", "儿科": "07", "小儿外科": "08",
    "眼科": "10", "耳鼻喉科": "11", "耳鼻咽喉科": "11", "五官科": "11", "口腔科": "12", "皮肤性病科": "13",
    "皮肤科": "13", "医疗美容科": "14", "整形美容科": "14", "精神科": "15", "心理科": "15", "精神心理科": "15",
    "传染科": "16", "感染科": "16", "结核病科": "17", "肿瘤科": "19", "急诊科": "20", "急诊医学科": "20",
    "康复科": "21", "康复医学科": "21", "运动医学科": "22", "职业病科": "23", "麻醉科": "26", "疼痛科": "27",
    "重症医学科": "28", "中医科": "50", "中西医结合科": "52", "男科": "04", "生殖健康": "05", "营养科": "69",
    "其他科室": "69", "其他综合": "69",
}
"""Department names as knowledge graphs and hospitals use them → 诊疗科目 code (医疗机构诊疗科目名录,
卫医发〔1994〕第27号); the most specific known name wins."""

_TRUNCATED = re.compile(r"(…|\.\.\.)$")
_SPACES = re.compile(r"[\r\n\t ]+")


@dataclass
class ImportReport:
    source: str
    records_read: int = 0
    conditions: int = 0
    merged_duplicates: int = 0
    matched_builtin: int = 0
    symptoms_completed: int = 0
    symptoms_dropped: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    load: LoadReport | None = None

    @property
    def reconciles(self) -> bool:
        """Every record read became a condition, was merged into one, or was rejected."""
        return self.records_read == self.conditions + self.merged_duplicates + len(self.rejected)

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k not in ("load", "rejected")}
        out["rejected"] = len(self.rejected)
        out["reconciles"] = self.reconciles
        if self.load is not None:
            out["load"] = {"batch_id": self.load.batch_id, **self.load.totals(),
                           "quarantine_dir": self.load.quarantine_dir}
        return out


# ---------------------------------------------------------------------- reading
def _records(path: Path) -> Iterator[tuple[str, int, dict[str, Any]]]:
    files = sorted(p for p in path.rglob("*") if p.suffix in (".json", ".jsonl")) if path.is_dir() else [path]
    if not files:
        raise KnowledgeImportError(f"找不到知识文件 no .json/.jsonl files under {path}", path=str(path))
    for file in files:
        text = file.read_text(encoding="utf-8-sig")
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None
        if isinstance(data, dict) and ("name" in data or "gaishu_info" in data):
            data = [data]
        if isinstance(data, dict):
            data = list(data.values())
        if isinstance(data, list):
            for i, rec in enumerate(data):
                yield file.name, i + 1, rec
            continue
        for i, line in enumerate(text.splitlines()):
            if line.strip():
                try:
                    yield file.name, i + 1, json.loads(line)
                except json.JSONDecodeError as exc:
                    yield file.name, i + 1, {"__error__": f"invalid JSON: {exc.msg}"}


def _text(value: Any) -> str:
    if isinstance(value, list):
        value = "；".join(str(v) for v in value if v)
    return _SPACES.sub(" ", str(value or "")).strip()


def _names(value: Any) -> list[str]:
    if isinstance(value, str):
        value = re.split(r"[,，、;；]", value)
    seen: dict[str, None] = {}
    for v in value or ():
        name = _SPACES.sub("", str(v)).strip()
        if name:
            seen.setdefault(name, None)
    return list(seen)


def _share(value: Any) -> float | None:
    """'0.5%' or '0.1%--0.3%' → 0.005 / 0.002: the mean of the percentages named."""
    found = [float(x) for x in re.findall(r"(\d+(?:\.\d+)?)\s*%", str(value or ""))]
    if not found:
        return None
    share = sum(found) / len(found) / 100
    return min(max(share, 1e-6), 1.0)


def _insurance(value: Any) -> bool | None:
    text = _text(value)
    return True if text.startswith("是") else False if text.startswith("否") else None


def _subject(departments: list[str]) -> str:
    """The most specific level with a known name (儿科 > 小儿内科, whose name only looks internal)."""
    for name in reversed(departments):
        if name in DEPARTMENT_SUBJECTS:
            return DEPARTMENT_SUBJECTS[name]
    for name in reversed(departments):
        for known, code in DEPARTMENT_SUBJECTS.items():
            if name.endswith(known) or (len(known) > 2 and known in name):
                return code
    return "69"


_CHILD = re.compile(r"^(小儿|儿童|婴幼儿|婴儿|新生儿|幼儿|先天性)")
_ELDERLY = re.compile(r"^(老年|老人|老年性)")
_FEMALE = re.compile(r"(妊娠|产后|产褥|孕|乳腺|卵巢|子宫|宫颈|阴道|外阴|月经|痛经|闭经|盆腔|输卵管|女性)")
_MALE = re.compile(r"(前列腺|睾丸|阴茎|阴囊|精索|男性|男子)")


def _fit(name: str, susceptible: str) -> tuple[str, int, int]:
    """Sex and age range a condition fits, read from its name (小儿…, 妊娠…, 前列腺…) and its
    susceptible groups: imported records state them only in words."""
    sex = "2" if _FEMALE.search(name) else "1" if _MALE.search(name) else ""
    if _CHILD.search(name):
        return sex, 0, 14 if not name.startswith("新生儿") else 1
    if _ELDERLY.search(name):
        return sex, 60, 120
    if re.search(r"(小儿|儿童|婴幼儿)", susceptible) and not re.search(r"(成人|老年|青年|中年|女性|男性)", susceptible):
        return sex, 0, 18
    return sex, 0, 120


def _fields(rec: dict[str, Any]) -> dict[str, Any]:
    """One record, flat or nested, as Condition fields (names still raw)."""
    if "gaishu_info" in rec:
        g, food, sym = rec.get("gaishu_info") or {}, rec.get("food_info") or {}, rec.get("symptom_data") or {}
        return {
            "name": g.get("name"), "description": g.get("desc"), "departments": g.get("belongs_to_department"),
            "symptoms": sym.get("symptoms"), "complications": g.get("has_complication"),
            "treatment": g.get("treat_way"), "course": g.get("treat_cycle"), "cure_rate": g.get("cure_prob"),
            "susceptible": g.get("susceptible_people"), "prevalence": g.get("disease_ratio"),
            "cause": rec.get("cause_info"), "prevention": rec.get("prevent_info"), "checks": rec.get("inspect_info"),
            "drugs": g.get("common_drug"), "good_food": food.get("good_food"), "avoid_food": food.get("avoid_food"),
            "diet_advice": " ".join(_text(food.get(k)) for k in ("good_diet_text", "avoid_diet_text")),
            "cost": g.get("treat_cost"), "insurance": g.get("medical_insurance"),
            "transmission": g.get("transmission_way"), "nursing": rec.get("nursing_info"),
        }
    return {
        "name": rec.get("name"), "description": rec.get("desc"),
        "departments": rec.get("cure_department") or rec.get("category"), "symptoms": rec.get("symptom"),
        "complications": rec.get("acompany"), "treatment": rec.get("cure_way"), "course": rec.get("cure_lasttime"),
        "cure_rate": rec.get("cured_prob"), "susceptible": rec.get("easy_get"), "prevalence": rec.get("get_prob"),
        "cause": rec.get("cause"), "prevention": rec.get("prevent"), "checks": rec.get("check"),
        "drugs": [*_names(rec.get("common_drug")), *_names(rec.get("recommand_drug"))],
        "good_food": [*_names(rec.get("do_eat")), *_names(rec.get("recommand_eat"))],
        "avoid_food": rec.get("not_eat"), "diet_advice": "", "cost": rec.get("cost_money"),
        "insurance": rec.get("yibao_status"), "transmission": rec.get("get_way"), "nursing": rec.get("nursing"),
    }


def read_medical_kg(path: str | Path, kb: KnowledgeBase | None = None) -> tuple[list[Condition], ImportReport]:
    """Read an external knowledge graph into conditions, cleaning as described in the module doc."""
    path = Path(path)
    if not path.exists():
        raise KnowledgeImportError(f"路径不存在 no such file or folder: {path}", path=str(path))
    kb = kb or load_knowledge()
    report = ImportReport(source=path.name)
    builtin_by_name = {n: c for c in kb.conditions for n in (c.name, *c.synonyms)}
    raw: dict[str, dict[str, Any]] = {}
    reasons: Counter[str] = Counter()

    def reject(file: str, line: int, reason: str, name: Any) -> None:
        reasons[reason] += 1
        report.rejected.append({"file": file, "record": line, "reason": reason, "name": name})

    for file, line, rec in _records(path):
        report.records_read += 1
        if not isinstance(rec, dict) or "__error__" in rec:
            reject(file, line, "unreadable", (rec or {}).get("__error__") if isinstance(rec, dict) else None)
            continue
        f = _fields(rec)
        name = _SPACES.sub("", str(f["name"] or ""))
        if not name:
            reject(file, line, "missing_name", None)
        elif _TRUNCATED.search(name):
            reject(file, line, "truncated_name", name)
        elif not re.search(r"[\u4e00-\u9fff]", name):
            reject(file, line, "not_chinese_name", name)
        elif name in raw:
            report.merged_duplicates += 1
            old = raw[name]
            for key, value in f.items():
                if isinstance(value, list):
                    old[key] = [*(old.get(key) or []), *value]
                elif not old.get(key):
                    old[key] = value
        else:
            raw[name] = {**f, "name": name}

    symptom_names = {s for f in raw.values() for s in _names(f["symptoms"]) if not _TRUNCATED.search(s)}
    symptom_names |= {surface for s in kb.symptoms for surface in (s.name, *s.synonyms)}
    conditions = []
    for name, f in raw.items():
        builtin = builtin_by_name.get(name)
        symptoms = []
        for s in _names(f["symptoms"]):
            if _TRUNCATED.search(s):
                stem = _TRUNCATED.sub("", s)
                fits = sorted(n for n in symptom_names if n.startswith(stem))
                if len(fits) != 1:
                    report.symptoms_dropped += 1
                    continue
                report.symptoms_completed += 1
                s = fits[0]
            canonical = kb.symptom_of(s)
            symptoms.append(canonical.name if canonical else s)
        departments = _names(f["departments"])
        sex, min_age, max_age = _fit(name, _text(f["susceptible"]))
        condition = Condition(
            code=builtin.code if builtin else stable_code("KG", name), name=builtin.name if builtin else name,
            subject_code=builtin.subject_code if builtin else _subject(departments),
            departments=tuple(departments), prevalence=_share(f["prevalence"]) or DEFAULT_PREVALENCE,
            sex=sex, min_age=min_age, max_age=max_age,
            symptoms=tuple(SymptomWeight(s, DEFAULT_SYMPTOM_WEIGHT) for s in dict.fromkeys(symptoms)),
            checks=tuple(_names(f["checks"])), drugs=tuple(_names(f["drugs"])),
            good_food=tuple(_names(f["good_food"])), avoid_food=tuple(_names(f["avoid_food"])),
            complications=tuple(_names(f["complications"])),
            **{k: _text(f[k]) for k in ("description", "cause", "prevention", "treatment", "course", "cure_rate",
                                        "susceptible", "transmission", "nursing", "diet_advice", "cost")},
            insurance=_insurance(f["insurance"]), source=path.name)
        report.matched_builtin += builtin is not None
        conditions.append(condition)
    report.conditions = len(conditions)
    report.reasons = dict(reasons)
    return conditions, report


# ---------------------------------------------------------------------- writing
def knowledge_folder(conditions: list[Condition], out: Path, kb: KnowledgeBase, *, source: str,
                     with_builtin: bool) -> dict[str, int]:
    """Write conditions, their related terms and relations as a folder ``ingest.load`` reads."""
    w = ProvinceWriter()
    write_knowledge(w, conditions, kb, source=source, with_builtin=with_builtin)
    out.mkdir(parents=True, exist_ok=True)
    return w.write(out, {"generator": "healthgraph kb import", "source": source}, {})


def write_knowledge(w: ProvinceWriter, conditions: list[Condition], kb: KnowledgeBase, *, source: str,
                    with_builtin: bool) -> None:
    """Add conditions, their related terms and relations to a writer (the synthetic province adds the
    built-in knowledge base this way, so importing it later changes nothing)."""
    builtin_codes = {c.code for c in kb.conditions}
    drugs, tests = drug_frame(), lab_test_frame()
    drug_code = dict(zip(drugs["name"], drugs["code"], strict=True))
    test_code = dict(zip(tests["name"], tests["code"], strict=True))
    w.add_nodes("Drug", drugs)
    w.add_nodes("LabTest", tests)
    if with_builtin:
        w.add_nodes("Disease", disease_frame(kb).assign(**{"class": "Disease"}))
        w.add_nodes("Symptom", [{"code": stable_code("SYM", s.name), "name": s.name, "name_en": s.name_en or None,
                                 "body_part": s.body_part or None, "synonyms": list(s.synonyms) or None,
                                 "kb_source": BUILTIN} for s in kb.symptoms])
        w.add_nodes("KnowledgeArticle", [{"code": a.id, "name": a.title, "name_en": a.title_en, "topic": a.topic,
                                          "body": a.body, "kb_source": BUILTIN} for a in kb.articles])
        known = set(disease_frame(kb)["code"])
        pairs = [(a.id, c) for a in kb.articles for c in a.conditions if c in known]
        w.add_edges("about", [p[0] for p in pairs], [p[1] for p in pairs], "KnowledgeArticle", "Disease")
    new = [c for c in conditions if c.code not in builtin_codes]
    if new:
        w.add_nodes("Disease", [condition_row(c) for c in new])
    builtin_symptoms = {s.name for s in kb.symptoms}
    extra_symptoms = sorted({s.name for c in conditions for s in c.symptoms} - builtin_symptoms)
    w.add_nodes("Symptom", [{"code": stable_code("SYM", s), "name": s, "kb_source": source} for s in extra_symptoms])
    names = {n: c.code for c in [*kb.conditions, *conditions] for n in (c.name, *c.synonyms)}

    new_drugs = sorted({d for c in conditions for d in c.drugs} - set(drug_code))
    new_tests = sorted({t for c in conditions for t in c.checks} - set(test_code))
    foods = sorted({f for c in conditions for f in (*c.good_food, *c.avoid_food)})
    w.add_nodes("Drug", [{"code": stable_code("DRUG", d), "name": d} for d in new_drugs])
    w.add_nodes("LabTest", [{"code": stable_code("TEST", t), "name": t} for t in new_tests])
    w.add_nodes("Food", [{"code": stable_code("FOOD", f), "name": f, "kb_source": source} for f in foods])
    drug_code |= {d: stable_code("DRUG", d) for d in new_drugs}
    test_code |= {t: stable_code("TEST", t) for t in new_tests}

    def relate(edge: str, target_class: str, targets: dict[str, str] | None, pick: Any) -> None:
        rows = [(c.code, targets[t] if targets is not None else stable_code("FOOD", t))
                for c in conditions for t in pick(c) if targets is None or t in targets]
        if rows:
            w.add_edges(edge, [r[0] for r in rows], [r[1] for r in rows], "Disease", target_class)

    relate("has_symptom", "Symptom", {s: stable_code("SYM", s) for c in conditions for s in
                                      (x.name for x in c.symptoms)}, lambda c: [s.name for s in c.symptoms])
    relate("treated_with", "Drug", drug_code, lambda c: c.drugs)
    relate("checked_by", "LabTest", test_code, lambda c: c.checks)
    relate("good_food", "Food", None, lambda c: c.good_food)
    relate("avoid_food", "Food", None, lambda c: c.avoid_food)
    relate("complication", "Disease", names, lambda c: [n for n in c.complications if names.get(n) != c.code])


def import_knowledge(store: GraphStore, path: str | Path | None = None, *, work_dir: str | Path,
                     quarantine_root: str | Path, progress: Progress | None = None) -> ImportReport:
    """Import the built-in knowledge base (``path=None``) or an external knowledge graph."""
    started = time.perf_counter()
    kb = load_knowledge()
    if path is None:
        conditions, report = list(kb.conditions), ImportReport(source=BUILTIN)
        report.records_read = report.conditions = len(conditions)
    else:
        conditions, report = read_medical_kg(path, kb)
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", report.source) or "knowledge"
    out = Path(work_dir) / slug
    if out.exists():
        for old in out.rglob("*.parquet"):
            old.unlink()
    knowledge_folder(conditions, out, kb, source=report.source, with_builtin=path is None)
    with (out / "rejected.jsonl").open("w", encoding="utf-8") as fh:
        for r in report.rejected:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    report.load = load_folder(store, out, quarantine_root=quarantine_root, source=f"knowledge:{report.source}",
                              progress=progress)
    report.seconds = time.perf_counter() - started
    return report

