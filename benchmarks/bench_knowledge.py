"""Guided triage and knowledge search end to end, on a generated province that carries the built-in
knowledge base (and, when present, the 8.8k-disease external knowledge graph imported on top).

    python benchmarks/bench_knowledge.py --residents 10000 [--opensearch-url http://127.0.0.1:9200]

Figures, printed side by side and saved to benchmarks/results/knowledge.json:
- KB import: the built-in knowledge base, and the external knowledge graph (seconds, records, rejected);
- triage accuracy on the held-aside labelled complaints (tests/data/triage/labelled_complaints.yaml):
  condition top-1/top-3 and department top-1/top-3 of the whole pipeline on the complaints it ranks
  (those a red flag answers as emergencies are counted apart), beside a baseline that only sees text
  (char 1–3-gram TF-IDF + linear SVM trained on the same generated complaints);
- red-flag recall and precision on tests/data/triage/redflag_complaints.yaml;
- latency p50/p95 of triage (with doctor recommendation) and of question answering (goal p95 ≤ 100 ms);
- knowledge search p50/p95 over every searchable class (the directory's grouped search) on tantivy and,
  with --opensearch-url, OpenSearch.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).with_name("results")
DATA = ROOT / "tests" / "data" / "triage"
SHARED = Path(os.environ.get("HEALTHGRAPH_SHARED_DATA", ROOT / ".." / "shared" / "data"))
console = Console(width=140)


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"p50_ms": statistics.median(ordered) * 1000,
            "p95_ms": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] * 1000, "n": len(ordered)}


def _timed(fn: Any, items: list[Any]) -> dict[str, float]:
    samples = []
    for item in items:
        t = time.perf_counter()
        try:
            fn(item)
        except Exception:  # noqa: BLE001 - coded answers to unrecognised input still count as answers
            pass
        samples.append(time.perf_counter() - t)
    return _percentiles(samples)


def accuracy(triage: Any, labelled: list[dict[str, Any]]) -> dict[str, Any]:
    """Condition and department top-1/top-3 of the whole pipeline on held-aside complaints."""
    hits = {"condition_top1": 0, "condition_top3": 0, "department_top1": 0, "department_top3": 0}
    emergencies: list[str] = []
    for case in labelled:
        try:
            a = triage.assess(case["text"], age_years=case.get("age_years"), sex=case.get("sex"), doctors=0)
        except Exception:  # noqa: BLE001 - counted as a miss
            continue
        if a["action"] == "emergency":  # red flags answer before any ranking: scored apart
            emergencies.append(case["text"])
            continue
        codes = [c["code"] for c in a["conditions"]]
        subjects = [d["subject_code"] for d in a["departments"]]
        hits["condition_top1"] += codes[:1] == [case["condition"]]
        hits["condition_top3"] += case["condition"] in codes[:3]
        hits["department_top1"] += subjects[:1] == [case["subject_code"]]
        hits["department_top3"] += case["subject_code"] in subjects[:3]
    n = len(labelled) - len(emergencies)
    return {**{k: v / n for k, v in hits.items()}, "n": n, "answered_as_emergency": len(emergencies),
            "emergency_texts": emergencies}


def baseline(kb: Any, labelled: list[dict[str, Any]]) -> dict[str, float]:
    """Text only: char 1–3-gram TF-IDF + linear SVM on the same generated complaints."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import LinearSVC

    from models.triage import complaint_examples

    train = complaint_examples(kb, per_condition=100, seed=0)
    model = make_pipeline(TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True), LinearSVC())
    model.fit([e.text for e in train], [e.label for e in train])
    scores = model.decision_function([c["text"] for c in labelled])
    classes = list(model.classes_)
    top1 = top3 = 0
    for case, row in zip(labelled, scores, strict=True):
        order = [classes[i] for i in row.argsort()[::-1]]
        top1 += order[0] == case["subject_code"]
        top3 += case["subject_code"] in order[:3]
    return {"department_top1": top1 / len(labelled), "department_top3": top3 / len(labelled)}


def red_flags(triage: Any, cases: list[dict[str, Any]]) -> dict[str, float]:
    tp = fn = fp = tn = 0
    for case in cases:
        complaint = triage.parser.parse(case["text"])
        fired = {f["id"] for f in triage.red_flags(complaint, case.get("age_years", complaint.age_years))}
        if case.get("expect"):
            tp += case["expect"] in fired
            fn += case["expect"] not in fired
        else:
            fp += bool(fired)
            tn += not fired
    return {"recall": tp / max(tp + fn, 1), "precision": tp / max(tp + fp, 1), "positives": tp + fn,
            "negatives": fp + tn, "false_alarms": fp}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--residents", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--opensearch-url", default=None)
    ns = parser.parse_args()

    from graph import open_graph
    from ingest.knowledge import import_knowledge
    from ingest.load import load_folder
    from ingest.synthetic import generate
    from ontology.knowledge import load_knowledge
    from services.directory import Directory
    from services.knowledge import QuestionAnswering
    from services.settings import Settings
    from services.triage import Triage

    kb = load_knowledge()
    labelled = yaml.safe_load((DATA / "labelled_complaints.yaml").read_text("utf-8"))
    flags = yaml.safe_load((DATA / "redflag_complaints.yaml").read_text("utf-8"))
    out: dict[str, Any] = {"residents": ns.residents}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with console.status("generating and loading the province"):
            generate(work / "province", residents=ns.residents, seed=ns.seed)
            store = open_graph(work / "graph.lbdb")
            load_folder(store, work / "province", quarantine_root=work / "q")
        t = time.perf_counter()
        builtin = import_knowledge(store, None, work_dir=work / "kb", quarantine_root=work / "q")
        out["import_builtin"] = {"seconds": time.perf_counter() - t, **builtin.to_dict()}
        settings = Settings(data_dir=work / "var")

        def measure(label: str) -> dict[str, Any]:
            triage = Triage.open(store, models_dir=settings.models_dir)
            t = time.perf_counter()
            triage.assess("我头疼，有点发烧", doctors=0)  # builds the parser, knowledge model and models
            warm_s = time.perf_counter() - t
            qa = QuestionAnswering(store, triage.parser, triage.models.intent)
            result: dict[str, Any] = {"first_answer_s": warm_s, "accuracy": accuracy(triage, labelled),
                                      "conditions": len(triage.model.conditions)}
            texts = [c["text"] for c in labelled]
            rng = random.Random(ns.seed)
            sample = [rng.choice(texts) for _ in range(ns.queries)]
            result["triage_latency"] = _timed(lambda x: triage.assess(x, division="330106"), sample)
            questions = [f"{c.synonyms[0] if c.synonyms else c.name}{q}" for c in kb.conditions
                         for q in ("吃什么药", "有什么症状", "怎么预防", "要做什么检查", "不能吃什么")]
            result["ask_latency"] = _timed(qa.ask, [rng.choice(questions) for _ in range(ns.queries)])
            if label == "builtin":
                result["red_flags"] = red_flags(triage, flags)
            console.print(f"[green]✓[/] {label}: {json.dumps(result['accuracy'], ensure_ascii=False)}")
            return result

        out["builtin"] = measure("builtin")
        ranked = [c for c in labelled if c["text"] not in set(out["builtin"]["accuracy"]["emergency_texts"])]
        out["baseline"] = baseline(kb, ranked)
        kg = SHARED / "medical-kg"
        if kg.exists():
            t = time.perf_counter()
            external = import_knowledge(store, kg, work_dir=work / "kb", quarantine_root=work / "q")
            out["import_external"] = {"seconds": time.perf_counter() - t, **external.to_dict()}
            out["with_external"] = measure("with external KG")
        engines = [("tantivy", {})] + ([("opensearch", {"opensearch_url": ns.opensearch_url})]
                                       if ns.opensearch_url else [])
        words = [c.name for c in kb.conditions] + [s.name for s in kb.symptoms] + ["医院", "儿科", "饮食", "预防"]
        out["search"] = {}
        for engine, extra in engines:
            s = Settings(data_dir=work / f"search-{engine}", search_engine=engine, **extra)
            directory = Directory.open(s, store)
            t = time.perf_counter()
            counts = directory.rebuild(store)
            index_s = time.perf_counter() - t
            rng = random.Random(ns.seed)
            latency = _timed(lambda q, d=directory: d.search(q, size=5), [rng.choice(words) for _ in range(200)])
            out["search"][engine] = {"documents": sum(counts.values()), "index_s": index_s, **latency}
            directory.close()
        store.close()

    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "knowledge.json").write_text(json.dumps(out, ensure_ascii=False, indent=1, default=str), "utf-8")
    _print(out)


def _print(out: dict[str, Any]) -> None:
    table = Table(title=f"triage and knowledge · province of {out['residents']:,} residents")
    table.add_column("measure")
    columns = [k for k in ("builtin", "with_external") if k in out]
    for col in columns:
        table.add_column(col, justify="right")
    table.add_column("text-only baseline", justify="right")
    for key in ("condition_top1", "condition_top3", "department_top1", "department_top3"):
        table.add_row(key, *(f"{out[c]['accuracy'][key]:.3f}" for c in columns),
                      f"{out['baseline'][key]:.3f}" if key in out["baseline"] else "")
    for key in ("triage_latency", "ask_latency"):
        table.add_row(f"{key} p50 / p95 ms", *(f"{out[c][key]['p50_ms']:.1f} / {out[c][key]['p95_ms']:.1f}"
                                               for c in columns), "")
    table.add_row("conditions in the model", *(f"{out[c]['conditions']:,}" for c in columns), "")
    console.print(table)
    rf = out["builtin"]["red_flags"]
    console.print(f"red flags: recall {rf['recall']:.3f} · precision {rf['precision']:.3f} "
                  f"({rf['positives']} positives, {rf['negatives']} negatives, {rf['false_alarms']} false alarms)")
    for key in ("import_builtin", "import_external"):
        if key in out:
            r = out[key]
            console.print(f"{key}: {r['seconds']:.1f} s · read {r['records_read']:,} · conditions {r['conditions']:,}"
                          f" · rejected {r['rejected']:,}")
    for engine, r in out["search"].items():
        console.print(f"search on {engine}: {r['documents']:,} documents indexed in {r['index_s']:.1f} s · "
                      f"p50 {r['p50_ms']:.1f} ms · p95 {r['p95_ms']:.1f} ms (goal ≤ 20 ms)")


if __name__ == "__main__":
    main()
