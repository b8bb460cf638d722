"""The built-in medical knowledge base the project owns, written by us from medical facts.

Five YAML files beside this module, each entry with zh/en names and, where a threshold or a
red flag is clinical, the guideline it comes from:

- ``conditions.yaml``: the common conditions a province sees (ICD-10 code, symptoms with how often
  each occurs, clinical subject, urgency, prevalence, age/sex fit, checks, drugs, diet, prevention…)
- ``symptoms.yaml``: symptoms with body part and colloquial synonyms (发烧 = 发热)
- ``redflags.yaml``: emergency presentations that answer "call 120 / go to emergency" first
- ``lexicon.yaml``: negation cues, severity words, pregnancy and age words for the complaint parser
- ``articles.yaml``: short health-education articles

    kb = load_knowledge()                 # validated once, cached
    kb.condition("J06.9").symptoms        # (SymptomWeight("发热", 0.6), …)
    kb.symptom_of("发烧").name             # "发热"

External knowledge graphs in the common JSON format are converted to the same ``Condition``
records by ``ingest.knowledge``; both land in the graph through one loader.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from ontology.errors import KnowledgeBaseInvalid
from ontology.vocab import vocab

KNOWLEDGE_DIR = Path(__file__).parent
URGENCY = ("emergency", "urgent", "routine")
"""How soon to be seen: now (急诊), within a day (尽快就诊), or at a routine appointment (门诊)."""


@dataclass(frozen=True)
class SymptomWeight:
    name: str
    weight: float
    """How often the condition shows this symptom, 0–1 (an estimate of P(symptom | condition))."""


@dataclass(frozen=True)
class Symptom:
    name: str
    name_en: str
    body_part: str = ""
    synonyms: tuple[str, ...] = ()


@dataclass(frozen=True)
class Condition:
    """One disease or condition with the facts triage and question answering use."""

    code: str
    name: str
    name_en: str = ""
    synonyms: tuple[str, ...] = ()
    subject_code: str = ""
    departments: tuple[str, ...] = ()
    urgency: str = "routine"
    prevalence: float = 0.001
    sex: str = ""
    min_age: int = 0
    max_age: int = 120
    symptoms: tuple[SymptomWeight, ...] = ()
    checks: tuple[str, ...] = ()
    drugs: tuple[str, ...] = ()
    good_food: tuple[str, ...] = ()
    avoid_food: tuple[str, ...] = ()
    complications: tuple[str, ...] = ()
    description: str = ""
    cause: str = ""
    prevention: str = ""
    treatment: str = ""
    course: str = ""
    cure_rate: str = ""
    susceptible: str = ""
    transmission: str = ""
    nursing: str = ""
    diet_advice: str = ""
    cost: str = ""
    insurance: bool | None = None
    source: str = "builtin"


@dataclass(frozen=True)
class RedFlag:
    """An emergency presentation: any one of ``all_of`` sets fully present (and not negated), or a
    phrase pattern, within the age window when one is given."""

    id: str
    title: str
    title_en: str
    advice: str
    advice_en: str
    basis: str
    all_of: tuple[tuple[str, ...], ...] = ()
    phrases: tuple[str, ...] = ()
    max_age_months: int | None = None
    min_age_months: int | None = None
    min_temperature: float | None = None


@dataclass(frozen=True)
class Article:
    id: str
    title: str
    title_en: str
    topic: str
    body: str
    conditions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Lexicon:
    negations: tuple[str, ...] = ()
    severity: dict[str, tuple[str, ...]] = field(default_factory=dict)
    pregnancy: tuple[str, ...] = ()
    age_words: dict[str, tuple[int, int]] = field(default_factory=dict)
    sex_words: dict[str, str] = field(default_factory=dict)
    body_parts: tuple[str, ...] = ()


@dataclass(frozen=True)
class KnowledgeBase:
    conditions: tuple[Condition, ...]
    symptoms: tuple[Symptom, ...]
    red_flags: tuple[RedFlag, ...]
    lexicon: Lexicon
    articles: tuple[Article, ...]

    def condition(self, code: str) -> Condition:
        return next(c for c in self.conditions if c.code == code)

    def __post_init__(self) -> None:
        index: dict[str, Symptom] = {}
        for s in self.symptoms:
            for surface in (s.name, *s.synonyms):
                index.setdefault(surface, s)
        object.__setattr__(self, "_symptoms_by_surface", index)

    def symptom_of(self, surface: str) -> Symptom | None:
        """The symptom a name or colloquial synonym stands for."""
        return self._symptoms_by_surface.get(surface)  # type: ignore[attr-defined]


def _tuple(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value or ())


def _read(name: str, directory: Path) -> Any:
    with open(directory / f"{name}.yaml", encoding="utf-8") as f:
        return yaml.safe_load(f) or []


def _build(cls: type, row: dict[str, Any], where: str, problems: list[str], **convert: Any) -> Any:
    known = cls.__dataclass_fields__
    unknown = sorted(set(row) - set(known))
    if unknown:
        problems.append(f"{where}: unknown field(s) {unknown} (valid: {sorted(known)})")
        row = {k: v for k, v in row.items() if k in known}
    try:
        return cls(**{k: convert[k](v) if k in convert else v for k, v in row.items()})
    except (TypeError, ValueError) as exc:
        problems.append(f"{where}: {exc}")
        return None


def load_knowledge(directory: Path | None = None) -> KnowledgeBase:
    """Read and check the built-in knowledge base; every problem is reported at once (HG-1001)."""
    directory = directory or KNOWLEDGE_DIR
    return _load(directory.resolve())


@cache
def _load(directory: Path) -> KnowledgeBase:
    problems: list[str] = []
    subjects = set(vocab("clinical_subjects")["code"])
    symptoms = tuple(s for i, row in enumerate(_read("symptoms", directory)) if (
        s := _build(Symptom, row, f"symptoms.yaml #{i + 1}", problems, synonyms=_tuple)))
    known_symptoms = {surface for s in symptoms for surface in (s.name, *s.synonyms)}
    names = [s.name for s in symptoms]
    if len(set(names)) != len(names):
        problems.append(f"symptoms.yaml: duplicate names {sorted({n for n in names if names.count(n) > 1})}")

    def weights(value: Any) -> tuple[SymptomWeight, ...]:
        return tuple(SymptomWeight(str(v["name"]), float(v["weight"])) for v in value or ())

    conditions = []
    for i, row in enumerate(_read("conditions", directory)):
        where = f"conditions.yaml #{i + 1} {row.get('code', '?')}"
        c = _build(Condition, row, where, problems, symptoms=weights, synonyms=_tuple, departments=_tuple,
                   checks=_tuple, drugs=_tuple, good_food=_tuple, avoid_food=_tuple, complications=_tuple,
                   subject_code=str, sex=lambda v: str(v or ""))
        if c is None:
            continue
        if c.subject_code not in subjects:
            problems.append(f"{where}: subject_code {c.subject_code!r} is not in clinical_subjects.csv")
        if c.urgency not in URGENCY:
            problems.append(f"{where}: urgency {c.urgency!r} must be one of {URGENCY}")
        if c.sex not in ("", "1", "2"):
            problems.append(f"{where}: sex must be '', '1' (male) or '2' (female), got {c.sex!r}")
        if not 0 < c.prevalence <= 1:
            problems.append(f"{where}: prevalence must be in (0, 1], got {c.prevalence}")
        for s in c.symptoms:
            if s.name not in known_symptoms:
                problems.append(f"{where}: symptom {s.name!r} is not in symptoms.yaml")
            if not 0 < s.weight <= 1:
                problems.append(f"{where}: symptom {s.name!r} weight must be in (0, 1], got {s.weight}")
        conditions.append(c)
    codes = [c.code for c in conditions]
    if len(set(codes)) != len(codes):
        problems.append(f"conditions.yaml: duplicate codes {sorted({c for c in codes if codes.count(c) > 1})}")

    red_flags = []
    for i, row in enumerate(_read("redflags", directory)):
        where = f"redflags.yaml #{i + 1} {row.get('id', '?')}"
        rf = _build(RedFlag, row, where, problems, phrases=_tuple,
                    all_of=lambda v: tuple(tuple(str(s) for s in group) for group in v or ()))
        if rf is None:
            continue
        if not rf.basis:
            problems.append(f"{where}: a red flag needs its clinical basis (guideline and section)")
        if not rf.all_of and not rf.phrases:
            problems.append(f"{where}: needs all_of symptom sets or phrases")
        for group in rf.all_of:
            for s in group:
                if s not in known_symptoms:
                    problems.append(f"{where}: symptom {s!r} is not in symptoms.yaml")
        red_flags.append(rf)

    raw_lexicon = _read("lexicon", directory) or {}
    lexicon = _build(Lexicon, raw_lexicon, "lexicon.yaml", problems, negations=_tuple, pregnancy=_tuple,
                     body_parts=_tuple,
                     severity=lambda v: {k: _tuple(w) for k, w in (v or {}).items()},
                     age_words=lambda v: {k: (int(a), int(b)) for k, (a, b) in (v or {}).items()},
                     sex_words=lambda v: {k: str(s) for k, s in (v or {}).items()}) or Lexicon()
    articles = tuple(a for i, row in enumerate(_read("articles", directory)) if (
        a := _build(Article, row, f"articles.yaml #{i + 1}", problems, conditions=_tuple)))
    if problems:
        raise KnowledgeBaseInvalid(f"知识库有 {len(problems)} 处问题 knowledge base has {len(problems)} problem(s): "
                                   + "; ".join(problems[:5]), problems=problems)
    return KnowledgeBase(tuple(conditions), symptoms, tuple(red_flags), lexicon, articles)
