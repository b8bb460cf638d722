"""Which clinical subject (诊疗科目) should see a complaint, and what a health question asks.

Both models are scikit-learn: character 1–3-gram TF-IDF of the text plus what the parser understood (canonical
symptoms present or denied, diseases, drugs…, age group, sex, pregnancy, fever) into a multinomial logistic
regression, so the probabilities can be read as probabilities. The intent model sees the text with recognised
entities replaced by a placeholder per label ("感冒吃什么药" → "¤吃什么药"): the phrasing decides the intent, the
entity only its type.

    models = load_or_train(kb, Path("var/models"))       # trains in seconds when the KB changed
    models.department.top("我妈70了，胸口疼冒冷汗", k=3)    # [Ranked("03", "内科", 0.91, "high"), …]
    models.intent.predict(["感冒吃什么药"])                  # ["disease_drug"]
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import platform
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, Self

import joblib
import numpy as np
import scipy.sparse as sp
import sklearn
from sklearn.feature_extraction import DictVectorizer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from models.triage.nlp import Complaint, ComplaintParser, get_parser, kb_terms
from models.triage.training import (
    EVAL_TEMPLATES,
    GENERATOR_VERSION,
    TRAIN_TEMPLATES,
    complaint_examples,
    question_examples,
)
from ontology.knowledge import KnowledgeBase, load_knowledge
from ontology.vocab import vocab

FORMAT = 1
PER_CONDITION, PER_TEMPLATE = 60, 20
"""Generated training examples per condition (complaints) and per template (questions): accuracy on real
complaints levels off from about 60 per condition, training time does not."""
HIGH, MEDIUM = 0.6, 0.3
"""Confidence bands of a prediction's probability: ≥ HIGH is "high", ≥ MEDIUM "medium", else "low"."""

PLACEHOLDERS = {"SYMPTOM": "§", "DISEASE": "¤", "DRUG": "¥", "CHECK": "¢", "FOOD": "£", "DEPARTMENT": "©",
                "BODY_PART": "®"}
_AGE_GROUPS = ((1, "infant"), (6, "preschool"), (14, "child"), (18, "adolescent"), (45, "adult"), (65, "middle"),
               (200, "elderly"))


@dataclass(frozen=True)
class Ranked:
    """One candidate answer: the label (subject code or intent), its display name and probability."""

    label: str
    name: str
    probability: float

    @property
    def confidence(self) -> str:
        """``high`` / ``medium`` / ``low``: how far to trust this answer on its own."""
        return "high" if self.probability >= HIGH else "medium" if self.probability >= MEDIUM else "low"


class Models(NamedTuple):
    department: DepartmentClassifier
    intent: IntentClassifier


def features(c: Complaint) -> dict[str, float]:
    """What the parser understood, as sparse named features."""
    out: dict[str, float] = {}
    for f in c.findings:
        out[f"{f.label}={f.concept}" + ("!neg" if f.negated else "")] = 1.0
        if not f.negated:
            out[f"has:{f.label}"] = 1.0
    if c.age_years is not None:
        out["age:" + next(name for limit, name in _AGE_GROUPS if c.age_years < limit)] = 1.0
    if c.sex:
        out[f"sex:{c.sex}"] = 1.0
    if c.pregnant is not None:
        out[f"pregnant:{c.pregnant}"] = 1.0
    if c.temperature_c is not None and c.temperature_c >= 37.3:
        out["fever:high" if c.temperature_c >= 39 else "fever"] = 1.0
    if c.duration_days is not None:
        out["course:" + ("acute" if c.duration_days <= 7 else "subacute" if c.duration_days <= 30 else "chronic")] = 1.0
    return out


def masked(c: Complaint) -> str:
    """The text with each recognised entity replaced by its label's placeholder."""
    text, pos, parts = c.text, 0, []
    for f in c.findings:
        parts += [text[pos:f.start], PLACEHOLDERS[f.label]]
        pos = f.end
    return "".join(parts) + text[pos:]


def kb_fingerprint(kb: KnowledgeBase) -> str:
    """A hash of everything the models learn from: the KB content, the vocabularies' terms and the generator."""
    digest = hashlib.sha256()
    for part in (repr(kb), repr(sorted((k, sorted(v.items())) for k, v in kb_terms(kb).items())),
                 GENERATOR_VERSION, str(FORMAT)):
        digest.update(part.encode("utf-8"))
    return digest.hexdigest()[:16]


class TextClassifier:
    """TF-IDF (char 1–3-grams) + parser features → logistic regression. Use a subclass."""

    kind: ClassVar[str] = "text"
    mask_entities: ClassVar[bool] = False

    def __init__(self, parser: ComplaintParser | None = None, *, C: float = 30.0, feature_weight: float = 0.5,
                 max_features: int | None = 200_000) -> None:
        self.parser = parser or get_parser()
        self.C, self.feature_weight, self.max_features = C, feature_weight, max_features
        self.tfidf: TfidfVectorizer | None = None
        self.vectorizer: DictVectorizer | None = None
        self.model: LogisticRegression | None = None
        self.classes_: tuple[str, ...] = ()
        self.meta: dict[str, Any] = {}
        self.metrics: dict[str, dict[str, float]] = {}

    def fit(self, texts: Sequence[str | Complaint], labels: Sequence[str], *, data: str = "",
            kb_fingerprint: str = "") -> Self:
        """Train on texts (or parsed complaints) and their labels; ``data`` says where they came from (model card)."""
        if len(texts) != len(labels) or not texts:
            raise ValueError(f"need as many labels as texts, and at least one (got {len(texts)} and {len(labels)})")
        started = time.perf_counter()
        parsed = self._parse(texts)
        self.tfidf = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True, lowercase=True,
                                     max_features=self.max_features)
        self.vectorizer = DictVectorizer()
        x = sp.hstack([self.tfidf.fit_transform([self._text(c) for c in parsed]),
                       self.feature_weight * self.vectorizer.fit_transform([features(c) for c in parsed])]).tocsr()
        y = np.asarray(labels, dtype=object)
        self.classes_ = tuple(sorted(set(y)))
        if len(self.classes_) > 1:
            self.model = LogisticRegression(C=self.C, solver="saga", tol=1e-3, max_iter=1000, random_state=0)
            self.model.fit(x, y)
            self.classes_ = tuple(self.model.classes_)
        else:
            self.model = None  # one label only: nothing to learn, every answer is that label
        self.meta = {"trained_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                     "training_seconds": round(time.perf_counter() - started, 2), "training_size": len(texts),
                     "training_data": data, "kb_fingerprint": kb_fingerprint,
                     "label_counts": {k: int(v) for k, v in zip(*np.unique(y, return_counts=True), strict=True)}}
        self.metrics = {}
        return self

    def predict_proba(self, texts: Sequence[str | Complaint]) -> np.ndarray:
        """Probabilities, one row per text, columns in ``classes_`` order."""
        if not self.classes_:
            raise RuntimeError("model not trained: call fit() or load() first")
        parsed = self._parse(texts)
        if self.model is None:
            return np.ones((len(parsed), 1))
        return self.model.predict_proba(self._matrix(parsed))

    def predict(self, texts: Sequence[str | Complaint]) -> list[str]:
        proba = self.predict_proba(texts)
        return [self.classes_[i] for i in proba.argmax(axis=1)]

    def top(self, text: str | Complaint, k: int = 3) -> list[Ranked]:
        """The k most likely labels, most likely first, with probabilities and a confidence band."""
        proba = self.predict_proba([text])[0]
        order = np.argsort(-proba, kind="stable")[:k]
        return [Ranked(self.classes_[i], self.name_of(self.classes_[i]), float(proba[i])) for i in order]

    def name_of(self, label: str) -> str:
        return label

    def evaluate(self, texts: Sequence[str | Complaint], labels: Sequence[str], *, name: str = "held_out",
                 data: str = "") -> dict[str, float]:
        """Top-1 / top-3 accuracy, expected calibration error and macro-F1 on labelled texts; kept for the card."""
        proba = self.predict_proba(texts)
        y = np.asarray(labels, dtype=object)
        ranks = np.argsort(-proba, axis=1, kind="stable")
        classes = np.asarray(self.classes_, dtype=object)
        top1 = classes[ranks[:, 0]]
        hit3 = (classes[ranks[:, :3]] == y[:, None]).any(axis=1)
        result = {"n": len(y), "accuracy": round(float((top1 == y).mean()), 4),
                  "top3_accuracy": round(float(hit3.mean()), 4),
                  "macro_f1": round(_macro_f1(y, top1), 4),
                  "ece": round(expected_calibration_error(proba.max(axis=1), top1 == y), 4)}
        self.metrics[name] = result | ({"data": data} if data else {})
        return result

    def card(self) -> dict[str, Any]:
        """The model card: what the model is, what it learnt from, how well it did on held-out data, and limits."""
        return {
            "model": {"name": type(self).__name__, "task": self.kind, "format": FORMAT,
                      "algorithm": "LogisticRegression (multinomial, saga) on char 1-3-gram TF-IDF"
                                   + (" of entity-masked text" if self.mask_entities else "")
                                   + " + ComplaintParser features (concepts present/negated, age group, sex, "
                                     "pregnancy, fever, course)",
                      "hyperparameters": {"C": self.C, "feature_weight": self.feature_weight,
                                          "max_features": self.max_features},
                      "labels": {c: self.name_of(c) for c in self.classes_}},
            "training_data": {"description": self.meta.get("training_data", ""),
                              "size": self.meta.get("training_size", 0),
                              "label_counts": self.meta.get("label_counts", {}),
                              "kb_fingerprint": self.meta.get("kb_fingerprint", "")},
            "date_trained": self.meta.get("trained_at", ""),
            "training_seconds": self.meta.get("training_seconds"),
            "sklearn_version": sklearn.__version__,
            "python_version": platform.python_version(),
            "metrics": self.metrics,
            "intended_use": self.intended_use,
            "limitations": list(self.limitations),
        }

    intended_use: ClassVar[str] = ""
    limitations: ClassVar[tuple[str, ...]] = ()

    def save(self, path: str | Path) -> Path:
        """Write the model (joblib: only scikit-learn objects and plain data) and its card beside it."""
        if not self.classes_:
            raise RuntimeError("model not trained: nothing to save")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        joblib.dump({"format": FORMAT, "kind": self.kind, "class": type(self).__name__, "tfidf": self.tfidf,
                     "vectorizer": self.vectorizer, "model": self.model, "classes": self.classes_,
                     "options": {"C": self.C, "feature_weight": self.feature_weight,
                                 "max_features": self.max_features},
                     "meta": self.meta, "metrics": self.metrics}, path, compress=3)
        return path

    @classmethod
    def load(cls, path: str | Path, parser: ComplaintParser | None = None) -> Self:
        """Read a model saved by ``save``. Only load files you wrote yourself: joblib runs code from the file.

        ``parser`` must be built from the same knowledge base the model was trained with (default: built-in).
        """
        data = joblib.load(Path(path))
        if data.get("format") != FORMAT or data.get("kind") != cls.kind:
            raise ValueError(f"{path} holds a {data.get('kind')!r} model of format {data.get('format')}, "
                             f"not a {cls.kind!r} model of format {FORMAT}")
        model = cls(parser, **data["options"])
        model.tfidf, model.vectorizer, model.model = data["tfidf"], data["vectorizer"], data["model"]
        model.classes_, model.meta, model.metrics = tuple(data["classes"]), data["meta"], data["metrics"]
        return model

    def _parse(self, texts: Iterable[str | Complaint]) -> list[Complaint]:
        return [t if isinstance(t, Complaint) else self.parser.parse(t, check=False) for t in texts]

    def _text(self, c: Complaint) -> str:
        return masked(c) if self.mask_entities else c.text

    def _matrix(self, parsed: list[Complaint]) -> sp.csr_matrix:
        assert self.tfidf is not None and self.vectorizer is not None
        return sp.hstack([self.tfidf.transform([self._text(c) for c in parsed]),
                          self.feature_weight * self.vectorizer.transform([features(c) for c in parsed])]).tocsr()


class DepartmentClassifier(TextClassifier):
    """Predicts the clinical subject (诊疗科目 code, ``clinical_subjects.csv``) a complaint belongs to."""

    kind = "department"
    intended_use = ("把居民的症状描述分到诊疗科目，给出前几个候选和概率，辅助导诊；不是诊断。"
                    "Route a resident's complaint to a clinical subject (top-k with probabilities) to help "
                    "triage; not a diagnosis. Check red flags before and independently of this model.")
    limitations = (
        "Trained on complaints generated from the knowledge base, not on real patients: real wording, "
        "comorbidity and vague complaints are harder than the held-out metrics suggest (see "
        "benchmarks/bench_triage_models.py for accuracy on real labelled complaints).",
        "Knows only the conditions in the knowledge base; a complaint of another disease is forced into one "
        "of the known subjects. Low confidence ('low') should route to general practice (全科医疗科).",
        "Class balance follows the number of conditions per subject, not real visit frequencies.",
        "Simplified Chinese only; negation, age and duration come from rules with known gaps.",
    )

    def name_of(self, label: str) -> str:
        return _subject_names().get(label, label)


class IntentClassifier(TextClassifier):
    """Predicts what a health question asks (one of ``training.INTENTS`` when trained by ``train_default``)."""

    kind = "intent"
    mask_entities = True
    intended_use = ("识别健康问答的问题类型，以便从知识图谱取答案。"
                    "Tell what a health question asks so the answer can be read from the knowledge graph.")
    limitations = (
        "Trained on template questions; accuracy is measured on separate held-aside phrasings, which are still "
        "cleaner than real questions.",
        "One intent per question: a question asking two things gets the more likely one.",
        "Entity types come from the parser's dictionaries: a disease it does not know reads as plain text, "
        "which makes disease questions harder to tell apart.",
    )


def train_default(kb: KnowledgeBase | None = None, out_dir: str | Path | None = None, *,
                  per_condition: int = PER_CONDITION, per_template: int = PER_TEMPLATE, seed: int = 0) -> Models:
    """Train both models on data generated from the KB; with ``out_dir``, save models and cards there."""
    kb = kb or load_knowledge()
    parser = get_parser(kb)
    fingerprint = kb_fingerprint(kb)

    department = DepartmentClassifier(parser)
    train = complaint_examples(kb, per_condition=per_condition, seed=seed)
    department.fit([e.text for e in train], [e.label for e in train], kb_fingerprint=fingerprint,
                   data=f"{len(train)} complaints generated from the knowledge base ({len(kb.conditions)} conditions, "
                        f"{per_condition} each, seed {seed}), labelled with the condition's subject_code "
                        "(儿科 07 for a child under 14 with an internal-medicine condition)")
    held = complaint_examples(kb, per_condition=max(per_condition // 4, 5), seed=seed + 1)
    department.evaluate([e.text for e in held], [e.label for e in held], name="held_out_generated",
                        data=f"{len(held)} complaints generated with another seed ({seed + 1})")

    intent = IntentClassifier(parser)
    questions = question_examples(kb, TRAIN_TEMPLATES, per_template=per_template, seed=seed)
    intent.fit([e.text for e in questions], [e.label for e in questions], kb_fingerprint=fingerprint,
               data=f"{len(questions)} questions from {sum(map(len, TRAIN_TEMPLATES.values()))} templates "
                    f"({len(TRAIN_TEMPLATES)} intents), slots filled from the knowledge base, seed {seed}")
    aside = question_examples(kb, EVAL_TEMPLATES, per_template=max(per_template // 2, 5), seed=seed + 1)
    intent.evaluate([e.text for e in aside], [e.label for e in aside], name="held_aside_phrasings",
                    data=f"{len(aside)} questions from {sum(map(len, EVAL_TEMPLATES.values()))} phrasings never "
                         "used in training")

    if out_dir is not None:
        out = Path(out_dir)
        for model in (department, intent):
            model.save(out / f"{model.kind}.joblib")
            (out / f"{model.kind}.card.json").write_text(json.dumps(model.card(), ensure_ascii=False, indent=2),
                                                         encoding="utf-8")
    return Models(department, intent)


def load_or_train(kb: KnowledgeBase | None = None, out_dir: str | Path = "var/models/triage", **options: Any) -> Models:
    """The saved models when they were trained on this very KB (same fingerprint) with this scikit-learn;
    otherwise train, save and return new ones."""
    kb = kb or load_knowledge()
    out = Path(out_dir)
    fingerprint = kb_fingerprint(kb)
    try:
        cards = [json.loads((out / f"{kind}.card.json").read_text(encoding="utf-8"))
                 for kind in ("department", "intent")]
        if all(c["training_data"]["kb_fingerprint"] == fingerprint and c["sklearn_version"] == sklearn.__version__
               for c in cards):
            parser = get_parser(kb)
            return Models(DepartmentClassifier.load(out / "department.joblib", parser),
                          IntentClassifier.load(out / "intent.joblib", parser))
    except (OSError, KeyError, ValueError, EOFError):
        pass  # missing, partial or foreign files: train afresh
    return train_default(kb, out, **options)


def _subject_names() -> dict[str, str]:
    frame = vocab("clinical_subjects")
    return dict(zip(frame["code"], frame["name_zh"], strict=True))


def _macro_f1(y: np.ndarray, pred: np.ndarray) -> float:
    scores = []
    for label in set(y):
        tp = float(((pred == label) & (y == label)).sum())
        fp = float(((pred == label) & (y != label)).sum())
        fn = float(((pred != label) & (y == label)).sum())
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return float(np.mean(scores)) if scores else 0.0


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: the gap between confidence and accuracy, averaged over 10 confidence bins."""
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            total += inside.mean() * abs(confidence[inside].mean() - correct[inside].mean())
    return float(total)
