"""Understand a Chinese complaint or health question: what it says, which clinical subject, which QA intent.

    from models.triage import get_parser, load_or_train

    c = get_parser().parse("我妈70了，胸口疼冒冷汗，不发烧")   # Complaint: findings, age 70, sex "2", …
    c.present_symptoms(), c.negated_symptoms()                  # {"胸痛", "出汗"}, {"发热"}
    models = load_or_train(out_dir="var/models/triage")         # trains in seconds when the KB changed
    models.department.top(c, k=3)                               # [Ranked("03", "内科", 0.93), …]
    models.intent.predict(["感冒吃什么药"])                       # ["disease_drug"]

- ``nlp``: ``ComplaintParser`` (spaCy zh + jieba + a dictionary entity ruler from the knowledge base, plus rules
  for negation, severity, duration, temperature, age, sex, pregnancy) → ``Complaint`` / ``Finding``
- ``training``: deterministic training data generated from the knowledge base; ``INTENTS``; the training and the
  held-aside question templates
- ``classifier``: ``DepartmentClassifier``, ``IntentClassifier`` (TF-IDF + parser features → logistic regression),
  ``train_default``, ``load_or_train``, model cards

Input errors: ``EmptyQuestion`` (HG-1003), ``QuestionTooLong`` (HG-1004), ``NotChinese`` (HG-1005); deciding that
nothing was understood (``NothingUnderstood``, HG-1006) is the caller's call.
"""

from models.triage.classifier import (
    DepartmentClassifier,
    IntentClassifier,
    Models,
    Ranked,
    kb_fingerprint,
    load_or_train,
    train_default,
)
from models.triage.nlp import LABELS, MAX_CHARS, Complaint, ComplaintParser, Finding, chinese_number, get_parser
from models.triage.training import (
    EVAL_TEMPLATES,
    INTENTS,
    TRAIN_TEMPLATES,
    Example,
    complaint_examples,
    question_examples,
)

__all__ = [
    "EVAL_TEMPLATES", "INTENTS", "LABELS", "MAX_CHARS", "TRAIN_TEMPLATES", "Complaint", "ComplaintParser",
    "DepartmentClassifier", "Example", "Finding", "IntentClassifier", "Models", "Ranked", "chinese_number",
    "complaint_examples", "get_parser", "kb_fingerprint", "load_or_train", "question_examples", "train_default",
]
