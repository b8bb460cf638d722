"""Triage models benchmark: department and intent accuracy against a TF-IDF + linear SVM baseline, parse latency.

    python benchmarks/bench_triage_models.py
    python benchmarks/bench_triage_models.py --kb path/to/knowledge --shared-data /data/shared

What it measures (every "ours" and "baseline" row of one block is trained on the same texts):

- department top-1/top-3: (a) trained on KB-generated complaints, tested on the held-aside real complaints in
  tests/data/triage/labelled_complaints.yaml; (b) the Toyhom internal-medicine dialogues (title + ask → department),
  a seeded stratified 80/20 split;
- intent accuracy: trained on the training templates, tested on the held-aside phrasings; and KUAKE-QIC (11
  search-intent classes), a seeded stratified 80/20 split (reference: char TF-IDF + linear SVM ≈ 0.77 on its
  official dev set, which is not available here);
- parse latency p50/p95 over 1,000 generated complaints after warm-up, with the built-in dictionaries and, when the
  external medical dictionaries are present, with them added through ``extra``.

External data is read from ``$HEALTHGRAPH_SHARED_DATA`` or ``<repo>/../shared/data`` (``triage/``, ``medical-dict/``)
and never copied. Missing files skip their block with a message. Writes benchmarks/results/triage_models.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from rich.console import Console
from rich.table import Table
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.svm import LinearSVC

from models.triage import (
    EVAL_TEMPLATES,
    TRAIN_TEMPLATES,
    ComplaintParser,
    DepartmentClassifier,
    IntentClassifier,
    complaint_examples,
    get_parser,
    question_examples,
    train_default,
)
from models.triage.classifier import PER_CONDITION, PER_TEMPLATE, TextClassifier, expected_calibration_error
from ontology.knowledge import KnowledgeBase, load_knowledge

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "triage_models.json"
LABELLED = REPO / "tests" / "data" / "triage" / "labelled_complaints.yaml"
SEED = 0
SECONDS_NOTE = ("s = fit + predict; ours on KB-generated data was fitted by train_default beforehand (predict only). "
                "ECE: expected calibration error of ours (the SVM gives no probabilities).")
console = Console(width=150)


def shared_data(given: str | None) -> Path:
    return Path(given or os.environ.get("HEALTHGRAPH_SHARED_DATA") or REPO.parent / "shared" / "data")


def baseline() -> Pipeline:
    """The reference model: char 1–3-gram TF-IDF + linear SVM."""
    return make_pipeline(TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True), LinearSVC(C=1.0))


def scores(ranking: np.ndarray, classes: Sequence[str], truth: Sequence[str], *,
           probabilities: bool = False) -> dict[str, float | None]:
    """Top-1 / top-3 accuracy and macro-F1 from per-class scores (higher is better); the expected calibration
    error too when the scores are probabilities."""
    order = np.argsort(-ranking, axis=1, kind="stable")
    labels = np.asarray(classes, dtype=object)
    y = np.asarray(truth, dtype=object)
    top1 = labels[order[:, 0]]
    f1 = []
    for c in set(y):
        tp, fp, fn = ((top1 == c) & (y == c)).sum(), ((top1 == c) & (y != c)).sum(), ((top1 != c) & (y == c)).sum()
        f1.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    ece = expected_calibration_error(ranking.max(axis=1), top1 == y) if probabilities else None
    return {"n": len(y), "top1": round(float((top1 == y).mean()), 4),
            "top3": round(float((labels[order[:, :3]] == y[:, None]).any(axis=1).mean()), 4),
            "macro_f1": round(float(np.mean(f1)), 4), "ece": None if ece is None else round(ece, 4)}


def compare(block: str, data: str, model: TextClassifier, train: tuple[list[str], list[str]],
            test: tuple[list[str], list[str]], *, fitted: bool = False) -> list[dict[str, Any]]:
    """Ours and the baseline trained on the same texts, scored on the same test texts."""
    rows = []
    t = time.perf_counter()
    if not fitted:
        model.fit(*train, data=data)
    ours = scores(model.predict_proba(test[0]), model.classes_, test[1], probabilities=True)
    rows.append({"block": block, "data": data, "model": f"ours: {type(model).__name__}", "n_train": len(train[0]),
                 "seconds": round(time.perf_counter() - t, 1), **ours})
    t = time.perf_counter()
    svm = baseline().fit(*train)
    base = scores(svm.decision_function(test[0]).reshape(len(test[0]), -1), list(svm.classes_), test[1])
    rows.append({"block": block, "data": data, "model": "baseline: char TF-IDF + LinearSVC",
                 "n_train": len(train[0]), "seconds": round(time.perf_counter() - t, 1), **base})
    return rows


def split(texts: list[str], labels: list[str]) -> tuple[tuple[list[str], list[str]], tuple[list[str], list[str]]]:
    """A fixed, seeded, stratified 80/20 split (labels with a single example stay in training)."""
    counts = pd.Series(labels).value_counts()
    keep = [i for i, y in enumerate(labels) if counts[y] >= 2]
    rest = [i for i, y in enumerate(labels) if counts[y] < 2]
    train_i, test_i = train_test_split(keep, test_size=0.2, random_state=SEED, stratify=[labels[i] for i in keep])
    train_i = sorted(train_i + rest)
    return ([texts[i] for i in train_i], [labels[i] for i in train_i]), \
        ([texts[i] for i in sorted(test_i)], [labels[i] for i in sorted(test_i)])


def external_dictionaries(root: Path) -> dict[str, list[str]] | None:
    """Term lists of an external medical knowledge graph (one term a line), by parser label."""
    folder = root / "medical-dict"
    files = {"DISEASE": "disease.txt", "SYMPTOM": "symptom.txt", "DRUG": "drug.txt", "CHECK": "check.txt",
             "FOOD": "food.txt", "DEPARTMENT": "department.txt"}
    if not all((folder / f).exists() for f in files.values()):
        return None
    return {label: [w.strip() for w in (folder / f).read_text(encoding="utf-8").splitlines() if w.strip()]
            for label, f in files.items()}


def latency(parser: ComplaintParser, texts: list[str]) -> dict[str, float]:
    for text in texts[:200]:
        parser.parse(text)
    times = []
    for text in texts:
        t = time.perf_counter()
        parser.parse(text)
        times.append((time.perf_counter() - t) * 1000)
    return {"n": len(times), "p50_ms": round(float(np.percentile(times, 50)), 3),
            "p95_ms": round(float(np.percentile(times, 95)), 3), "max_ms": round(max(times), 3)}


def department_blocks(kb: KnowledgeBase, models: Any, root: Path, kg_parser: ComplaintParser | None) -> list[dict]:
    rows: list[dict] = []
    generated = complaint_examples(kb, per_condition=PER_CONDITION, seed=SEED)  # what train_default trained on
    train = ([e.text for e in generated], [e.label for e in generated])
    if LABELLED.exists():
        items = yaml.safe_load(LABELLED.read_text(encoding="utf-8")) or []
        test = ([str(i["text"]) for i in items], [str(i["subject_code"]) for i in items])
        rows += compare("department (a)", f"KB-generated → {LABELLED.relative_to(REPO)}", models.department, train,
                        test, fitted=True)
    else:
        console.print(f"[yellow]skip department (a): {LABELLED.relative_to(REPO)} not found[/]")

    path = root / "triage" / "toyhom-internal-medicine-train.csv"
    if path.exists():
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        texts = (frame["title"] + "。" + frame["ask"]).tolist()
        train, test = split(texts, frame["department"].tolist())
        rows += compare("department (b)", "Toyhom internal medicine 80/20", DepartmentClassifier(get_parser(kb)),
                        train, test)
        if kg_parser is not None:
            rows += compare("department (b)", "Toyhom internal medicine 80/20, + external dictionaries",
                            DepartmentClassifier(kg_parser), train, test)[:1]
    else:
        console.print(f"[yellow]skip department (b): {path} not found[/]")
    return rows


def intent_blocks(kb: KnowledgeBase, models: Any, root: Path, kg_parser: ComplaintParser | None) -> list[dict]:
    questions = question_examples(kb, TRAIN_TEMPLATES, per_template=PER_TEMPLATE, seed=SEED)
    aside = question_examples(kb, EVAL_TEMPLATES, per_template=PER_TEMPLATE // 2, seed=SEED + 1)
    rows = compare("intent", "training templates → held-aside phrasings", models.intent,
                   ([e.text for e in questions], [e.label for e in questions]),
                   ([e.text for e in aside], [e.label for e in aside]), fitted=True)
    path = root / "triage" / "kuake-qic-train.json"
    if path.exists():
        items = json.loads(path.read_text(encoding="utf-8"))
        train, test = split([i["query"] for i in items], [i["label"] for i in items])
        rows += compare("intent", "KUAKE-QIC 80/20", IntentClassifier(get_parser(kb)), train, test)
        if kg_parser is not None:
            rows += compare("intent", "KUAKE-QIC 80/20, + external dictionaries", IntentClassifier(kg_parser),
                            train, test)[:1]
    else:
        console.print(f"[yellow]skip KUAKE-QIC: {path} not found[/]")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kb", help="knowledge base folder (default: the built-in one)")
    ap.add_argument("--shared-data", help="external data root (default: $HEALTHGRAPH_SHARED_DATA or ../shared/data)")
    args = ap.parse_args()
    kb = load_knowledge(Path(args.kb) if args.kb else None)
    root = shared_data(args.shared_data)

    t = time.perf_counter()
    parser = get_parser(kb)
    parser_seconds = time.perf_counter() - t
    t = time.perf_counter()
    models = train_default(kb)
    train_seconds = time.perf_counter() - t

    kg_parser, kg_seconds = None, None
    terms = external_dictionaries(root)
    if terms is not None:
        t = time.perf_counter()
        kg_parser = ComplaintParser(kb, extra=terms)
        kg_seconds = round(time.perf_counter() - t, 2)
    else:
        console.print(f"[yellow]no external dictionaries under {root / 'medical-dict'}[/]")

    rows = department_blocks(kb, models, root, kg_parser) + intent_blocks(kb, models, root, kg_parser)
    texts = [e.text for e in complaint_examples(kb, per_condition=max(1, 1000 // max(len(kb.conditions), 1) + 1),
                                                seed=SEED + 7)][:1000]
    timing = {"builtin": latency(parser, texts) | {"terms": len(parser), "build_s": round(parser_seconds, 2)}}
    if kg_parser is not None:
        timing["external_dictionaries"] = latency(kg_parser, texts) | {"terms": len(kg_parser), "build_s": kg_seconds}

    table = Table(title=f"Triage models (KB: {len(kb.conditions)} conditions, {len(kb.symptoms)} symptoms)",
                  caption=SECONDS_NOTE)
    for col in ("block", "data", "model", "train", "test", "top-1", "top-3", "macro-F1", "ECE", "s"):
        table.add_column(col, justify="left" if col in ("block", "data", "model") else "right")
    for r in rows:
        table.add_row(r["block"], r["data"], r["model"], str(r["n_train"]), str(r["n"]), f"{r['top1']:.3f}",
                      f"{r['top3']:.3f}", f"{r['macro_f1']:.3f}", "" if r["ece"] is None else f"{r['ece']:.3f}",
                      f"{r['seconds']:.1f}")
    console.print(table)
    lat = Table(title="Parse latency (1,000 complaints after warm-up)")
    for col in ("dictionaries", "terms", "build s", "p50 ms", "p95 ms", "max ms"):
        lat.add_column(col, justify="right" if col != "dictionaries" else "left")
    for name, r in timing.items():
        lat.add_row(name, str(r["terms"]), str(r["build_s"]), str(r["p50_ms"]), str(r["p95_ms"]), str(r["max_ms"]))
    console.print(lat)
    console.print(f"train_default (both models on generated data, evaluation included): {train_seconds:.1f} s")
    for model in models:
        for name, m in model.metrics.items():
            console.print(f"  {model.kind} card, {name}: top-1 {m['accuracy']:.3f}, top-3 {m['top3_accuracy']:.3f}, "
                          f"ECE {m['ece']:.3f} (n={m['n']})")

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "kb": {"conditions": len(kb.conditions), "symptoms": len(kb.symptoms),
               "subjects": len({c.subject_code for c in kb.conditions})},
        "accuracy": rows, "parse_latency": timing, "train_default_s": round(train_seconds, 2),
        "cards": {"department": models.department.metrics, "intent": models.intent.metrics},
        "machine": {"cpus": os.cpu_count()}, "notes": SECONDS_NOTE,
    }, ensure_ascii=False, indent=2), encoding="utf-8")
    console.print(f"wrote {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
