"""Department and intent classifiers: predictions, held-aside intent accuracy, save/load, retraining, model cards.

Trained on a small knowledge base defined here (seven conditions in seven clinical subjects, the built-in lexicon)
so that the expectations do not move as the knowledge YAML grows; one test trains on the built-in KB itself.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
import sklearn

from models.triage import (
    EVAL_TEMPLATES,
    INTENTS,
    TRAIN_TEMPLATES,
    DepartmentClassifier,
    IntentClassifier,
    Models,
    Ranked,
    complaint_examples,
    get_parser,
    kb_fingerprint,
    load_or_train,
    question_examples,
    train_default,
)
from models.triage.classifier import expected_calibration_error
from ontology.knowledge import Condition, KnowledgeBase, Symptom, SymptomWeight, load_knowledge

SMALL = {"per_condition": 60, "per_template": 10}
INTENT_FLOOR = 0.60
"""Held-aside phrasing accuracy measured 0.69–0.72 here (three seeds; 24 intents, chance 0.04), minus a margin."""


def _symptom(name: str, *synonyms: str) -> Symptom:
    return Symptom(name, name, "", synonyms)


def _condition(code: str, name: str, subject: str, *symptoms: tuple[str, float], **kw: object) -> Condition:
    return Condition(code, name, subject_code=subject, symptoms=tuple(SymptomWeight(n, w) for n, w in symptoms),
                     **kw)  # type: ignore[arg-type]


SYMPTOMS = (
    _symptom("发热", "发烧", "高烧"), _symptom("咳嗽", "咳", "干咳"), _symptom("流涕", "流鼻涕"),
    _symptom("咽痛", "嗓子疼"), _symptom("眼红", "眼睛红", "红眼"), _symptom("眼痒", "眼睛痒"),
    _symptom("皮疹", "起疹子", "出疹子"), _symptom("皮肤瘙痒", "身上痒", "皮肤痒"), _symptom("牙痛", "牙疼"),
    _symptom("耳痛", "耳朵疼"), _symptom("耳鸣", "耳朵嗡嗡响"), _symptom("喘息", "喘", "呼哧呼哧"),
    _symptom("阴道出血", "见红", "下面出血"), _symptom("腹痛", "肚子疼"), _symptom("牙龈出血", "刷牙出血"),
)
CONDITIONS = (
    _condition("J06.9", "急性上呼吸道感染", "03", ("流涕", 0.8), ("咽痛", 0.6), ("咳嗽", 0.5), ("发热", 0.4),
               synonyms=("感冒",)),
    _condition("H10.9", "结膜炎", "10", ("眼红", 0.9), ("眼痒", 0.6), synonyms=("红眼病",)),
    _condition("L30.9", "湿疹", "13", ("皮疹", 0.9), ("皮肤瘙痒", 0.9)),
    _condition("K02.9", "龋齿", "12", ("牙痛", 0.9), ("牙龈出血", 0.2), synonyms=("蛀牙",)),
    _condition("H66.9", "中耳炎", "11", ("耳痛", 0.9), ("耳鸣", 0.4), ("发热", 0.3)),
    _condition("J21.9", "毛细支气管炎", "07", ("喘息", 0.9), ("咳嗽", 0.8), ("发热", 0.4), max_age=2),
    _condition("O20.0", "先兆流产", "05", ("阴道出血", 0.9), ("腹痛", 0.6), sex="2", min_age=16, max_age=45),
)
CLEAR = {  # complaints a person would file under one subject without hesitation
    "03": "嗓子疼，流鼻涕，有点咳嗽", "10": "眼睛红，眼睛痒", "13": "身上起疹子，皮肤痒得厉害", "12": "牙疼好几天了",
    "11": "耳朵疼，还耳朵嗡嗡响", "07": "宝宝8个月，喘得厉害还咳嗽", "05": "怀孕两个月，下面出血，肚子疼",
}


@pytest.fixture(scope="module")
def kb() -> KnowledgeBase:
    return dataclasses.replace(load_knowledge(), symptoms=SYMPTOMS, conditions=CONDITIONS)


@pytest.fixture(scope="module")
def models(kb: KnowledgeBase, tmp_path_factory: pytest.TempPathFactory) -> Models:
    return train_default(kb, tmp_path_factory.mktemp("models"), **SMALL)


def test_department_top3_on_clear_complaints(models: Models) -> None:
    for subject, text in CLEAR.items():
        ranked = models.department.top(text, k=3)
        assert subject in [r.label for r in ranked], (text, ranked)
        assert sum(r.probability for r in ranked) <= 1 + 1e-9
        assert [r.probability for r in ranked] == sorted((r.probability for r in ranked), reverse=True)
    assert sum(models.department.top(text, k=1)[0].label == s for s, text in CLEAR.items()) >= len(CLEAR) - 1


def test_department_names_and_probabilities(models: Models) -> None:
    top = models.department.top("眼睛红，眼睛痒", k=len(CONDITIONS))
    assert (top[0].label, top[0].name) == ("10", "眼科")
    assert sum(r.probability for r in top) == pytest.approx(1.0)
    proba = models.department.predict_proba(list(CLEAR.values()))
    assert proba.shape == (len(CLEAR), len(models.department.classes_))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_denied_symptoms_count_against_their_subject(models: Models) -> None:
    def eye(text: str) -> float:
        return dict(zip(models.department.classes_, models.department.predict_proba([text])[0], strict=True))["10"]
    assert eye("发烧，咳嗽，眼睛红") > eye("发烧，咳嗽，眼睛不红")


def test_intent_on_held_aside_phrasings(models: Models, kb: KnowledgeBase) -> None:
    assert set(TRAIN_TEMPLATES) == set(EVAL_TEMPLATES) == set(INTENTS) and len(INTENTS) == 24
    train = {t for ts in TRAIN_TEMPLATES.values() for t in ts}
    assert not train & {t for ts in EVAL_TEMPLATES.values() for t in ts}
    aside = question_examples(kb, EVAL_TEMPLATES, per_template=10, seed=5)
    accuracy = np.mean([p == e.label for p, e in zip(models.intent.predict([e.text for e in aside]), aside,
                                                     strict=True)])
    assert accuracy >= INTENT_FLOOR
    assert models.intent.metrics["held_aside_phrasings"]["accuracy"] >= INTENT_FLOOR


@pytest.mark.parametrize(("question", "intent"), [
    ("感冒吃什么药", "disease_drug"), ("阿莫西林能治什么病", "drug_disease"), ("湿疹挂什么科", "disease_department"),
    ("结膜炎传染吗", "disease_transmission"), ("牙疼是什么病", "symptom_disease"),
])
def test_intent_on_plain_questions(models: Models, question: str, intent: str) -> None:
    assert models.intent.predict([question]) == [intent]


def test_generated_data_is_deterministic(kb: KnowledgeBase) -> None:
    assert complaint_examples(kb, 5, seed=3) == complaint_examples(kb, 5, seed=3)
    assert complaint_examples(kb, 5, seed=3) != complaint_examples(kb, 5, seed=4)
    assert question_examples(kb, per_template=2, seed=3) == question_examples(kb, per_template=2, seed=3)
    assert {e.label for e in complaint_examples(kb, 5)} == {c.subject_code for c in CONDITIONS}


def test_children_with_an_internal_medicine_condition_are_labelled_paediatrics(kb: KnowledgeBase) -> None:
    cold = [c for c in CONDITIONS if c.subject_code == "03"]
    examples = complaint_examples(kb, 200, seed=1, conditions=cold)
    assert {e.label for e in examples} == {"03", "07"}
    parser = get_parser(kb)
    for e in examples:
        c = parser.parse(e.text)
        if c.age_years is not None:
            assert (e.label == "07") == (c.age_years < 14), e.text
    assert {e.label for e in complaint_examples(kb, 200, seed=1, conditions=cold, children_to_paediatrics=False)} \
        == {"03"}


def test_save_load_round_trip_gives_identical_probabilities(models: Models, kb: KnowledgeBase, tmp_path: Path) -> None:
    texts = list(CLEAR.values()) + ["感冒吃什么药", "阿莫西林一天吃几次"]
    for model, cls in ((models.department, DepartmentClassifier), (models.intent, IntentClassifier)):
        loaded = cls.load(model.save(tmp_path / f"{model.kind}.joblib"), get_parser(kb))
        assert loaded.classes_ == model.classes_
        assert np.array_equal(loaded.predict_proba(texts), model.predict_proba(texts))
        assert loaded.card() == model.card()
    with pytest.raises(ValueError, match="not a 'department' model"):
        DepartmentClassifier.load(tmp_path / "intent.joblib", get_parser(kb))


def test_card_has_the_required_fields(models: Models, tmp_path_factory: pytest.TempPathFactory) -> None:
    for model in models:
        card = model.card()
        assert card["model"]["name"] == type(model).__name__ and "LogisticRegression" in card["model"]["algorithm"]
        assert card["training_data"]["description"] and card["training_data"]["size"] > 0
        assert dt.datetime.fromisoformat(card["date_trained"]).tzinfo is not None
        assert card["sklearn_version"] == sklearn.__version__
        (held,) = card["metrics"].values()
        assert 0 < held["accuracy"] <= 1 and held["n"] > 0 and held["data"]
        assert card["limitations"] and all(isinstance(x, str) and x for x in card["limitations"])
        json.dumps(card)  # plain data only


def test_load_or_train_reuses_a_matching_model_and_retrains_when_the_kb_changes(kb: KnowledgeBase,
                                                                                tmp_path: Path) -> None:
    first = load_or_train(kb, tmp_path, **SMALL)
    written = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    assert set(written) == {"department.joblib", "intent.joblib", "department.card.json", "intent.card.json"}
    card = json.loads((tmp_path / "department.card.json").read_text(encoding="utf-8"))
    assert card["training_data"]["kb_fingerprint"] == kb_fingerprint(kb)

    again = load_or_train(kb, tmp_path, **SMALL)
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == written
    assert again.department.meta == first.department.meta

    changed = dataclasses.replace(kb, conditions=CONDITIONS[:-1] + (
        dataclasses.replace(CONDITIONS[-1], synonyms=("流产先兆",)),))
    assert kb_fingerprint(changed) != kb_fingerprint(kb)
    assert kb_fingerprint(dataclasses.replace(kb)) == kb_fingerprint(kb)
    retrained = load_or_train(changed, tmp_path, **SMALL)
    assert retrained.department.meta["kb_fingerprint"] == kb_fingerprint(changed)
    card = json.loads((tmp_path / "intent.card.json").read_text(encoding="utf-8"))
    assert card["training_data"]["kb_fingerprint"] == kb_fingerprint(changed)


def test_a_single_subject_and_misuse(kb: KnowledgeBase) -> None:
    one = DepartmentClassifier(get_parser(kb)).fit(["发烧", "咳嗽"], ["03", "03"])
    assert one.top("发烧") == [Ranked("03", "内科", 1.0)]
    with pytest.raises(ValueError):
        DepartmentClassifier(get_parser(kb)).fit(["发烧"], ["03", "07"])
    with pytest.raises(RuntimeError):
        IntentClassifier(get_parser(kb)).predict(["感冒吃什么药"])
    assert [Ranked("x", "x", p).confidence for p in (0.9, 0.4, 0.1)] == ["high", "medium", "low"]


def test_expected_calibration_error() -> None:
    confidence = np.array([0.9] * 10 + [0.6] * 10)
    calibrated = np.array([True] * 9 + [False] + [True] * 6 + [False] * 4)
    assert expected_calibration_error(confidence, calibrated) == pytest.approx(0.0)
    assert expected_calibration_error(confidence, np.zeros(20, dtype=bool)) == pytest.approx(0.75)


def test_builtin_kb_clear_complaints_land_in_the_top3() -> None:
    builtin = load_knowledge()
    department = train_default(builtin, per_condition=40, per_template=2).department
    named = [c for c in builtin.conditions if len(c.symptoms) >= 2]
    hits = 0
    for c in named:
        heaviest = sorted(c.symptoms, key=lambda s: -s.weight)[:3]
        text = "，".join(s.name for s in heaviest)
        hits += c.subject_code in [r.label for r in department.top(text, k=3)]
    assert hits >= 0.8 * len(named)
