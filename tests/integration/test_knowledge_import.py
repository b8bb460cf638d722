"""Knowledge import: the built-in knowledge base and external medical knowledge graphs (both record
shapes), cleaned as they load, reconciled, quarantined and idempotent."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from graph import open_graph
from ingest.knowledge import import_knowledge, read_medical_kg
from ingest.reference import stable_code
from ontology.errors import KnowledgeImportError
from ontology.knowledge import load_knowledge

SHARED = Path(os.environ.get("HEALTHGRAPH_SHARED_DATA", Path(__file__).resolve().parents[2] / ".." / "shared" / "data"))
MEDICAL_KG = SHARED / "medical-kg"


def _builtin_with_synonym() -> tuple[str, str]:
    kb = load_knowledge()
    c = next(c for c in kb.conditions if c.synonyms)
    return c.code, c.synonyms[0]


@pytest.fixture
def external(tmp_path: Path) -> Path:
    """Both record shapes, with every kind of problem the importer must handle."""
    code, synonym = _builtin_with_synonym()
    folder = tmp_path / "kg"
    folder.mkdir()
    flat = [
        {"name": "测试病甲", "desc": "第一种测试疾病。", "symptom": ["咳嗽", "测试症状一", "独特症…", "测试症…"],
         "cure_department": ["内科", "呼吸内科"], "check": ["血常规", "测试检查"], "common_drug": ["测试药A"],
         "do_eat": ["梨"], "not_eat": ["辣椒"], "acompany": ["测试病乙"], "get_prob": "0.2%", "yibao_status": "是"},
        {"name": "测试病甲", "symptom": ["测试症状二"], "cause": "合并进来的病因。"},   # duplicate: merged
        {"name": "截断的病名…", "symptom": ["咳嗽"]},                                    # truncated: rejected
        {"name": synonym, "symptom": ["测试症状三"], "desc": "不应覆盖内置描述"},          # a built-in synonym
        {"name": "小儿测试病丙", "symptom": ["发热"]},                                    # age fit from the name
        {"name": "前列腺测试病", "symptom": ["尿频"], "easy_get": "中老年男性"},             # sex fit from the name
    ]
    (folder / "flat.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in flat) + "\n{bad json\n",
                                       encoding="utf-8")
    nested = {"0": {"gaishu_info": {"name": "测试病乙", "desc": "嵌套格式。", "belongs_to_department": ["儿科", "小儿内科"],
                                    "has_complication": ["测试病甲"], "common_drug": ["测试药B"], "disease_ratio": "0.1%--0.3%",
                                    "medical_insurance": "否", "susceptible_people": "儿童", "transmission_way": "无传染性"},
                    "cause_info": "嵌套病因", "prevent_info": "嵌套预防", "symptom_data": {"symptoms": ["发热", "测试症状一", "独特症状甲"]},
                    "inspect_info": ["测试检查"], "nursing_info": "护理要点",
                    "food_info": {"good_food": ["梨"], "avoid_food": [], "good_diet_text": "宜清淡", "avoid_diet_text": ""}},
              "1": {"gaishu_info": {"name": ""}}}
    (folder / "nested.json").write_text(json.dumps(nested, ensure_ascii=False), encoding="utf-8")
    return folder


def test_reader_cleans_merges_and_reconciles(external: Path) -> None:
    code, synonym = _builtin_with_synonym()
    conditions, report = read_medical_kg(external)
    by_name = {c.name: c for c in conditions}
    assert report.records_read == 9 and report.reconciles
    assert report.merged_duplicates == 1 and report.reasons == {"truncated_name": 1, "unreadable": 1,
                                                                "missing_name": 1}
    a = by_name["测试病甲"]
    assert a.cause == "合并进来的病因。" and {s.name for s in a.symptoms} >= {"咳嗽", "测试症状一", "测试症状二"}
    # 独特症… has one completion among the names the file uses; 测试症… has three, so it is dropped
    assert report.symptoms_completed == 1 and "独特症状甲" in {s.name for s in a.symptoms}
    assert report.symptoms_dropped == 1
    assert a.subject_code == "03" and a.prevalence == pytest.approx(0.002) and a.insurance is True
    b = by_name["测试病乙"]
    assert b.subject_code == "07" and b.prevalence == pytest.approx(0.002) and b.insurance is False
    assert b.diet_advice == "宜清淡" and b.checks == ("测试检查",) and b.symptoms[0].name == "发热"
    assert (by_name["小儿测试病丙"].min_age, by_name["小儿测试病丙"].max_age) == (0, 14)
    assert by_name["前列腺测试病"].sex == "1" and by_name["测试病甲"].sex == ""
    matched = next(c for c in conditions if c.code == code)
    assert report.matched_builtin == 1 and matched.name == load_knowledge().condition(code).name


def test_import_is_validated_idempotent_and_never_overwrites_builtin_facts(external: Path, tmp_path: Path) -> None:
    code, _ = _builtin_with_synonym()
    store = open_graph(tmp_path / "graph.lbdb")
    try:
        builtin = import_knowledge(store, None, work_dir=tmp_path / "work", quarantine_root=tmp_path / "q")
        assert builtin.reconciles and builtin.load.reconciles and builtin.load.totals()["quarantined"] == 0
        before = store.get("Disease", code)
        first = import_knowledge(store, external, work_dir=tmp_path / "work", quarantine_root=tmp_path / "q")
        assert first.load.totals()["inserted"] > 0 and first.load.reconciles
        after = store.get("Disease", code)
        assert {k: after[k] for k in ("description", "name", "symptom_weights")} == \
               {k: before[k] for k in ("description", "name", "symptom_weights")}
        symptoms = {r["name"] for r in store.query("disease_symptoms", diseases=[code])}
        assert "测试症状三" in symptoms  # the external graph added a relation to the built-in condition
        a = stable_code("KG", "测试病甲")
        assert {r["name"] for r in store.query("disease_complications", diseases=[stable_code("KG", "测试病乙")])} \
            == {"测试病甲"}
        assert {r["name"] for r in store.query("disease_drugs", diseases=[a])} == {"测试药A"}
        assert {r["name"] for r in store.query("disease_good_foods", diseases=[a])} == {"梨"}
        rejected = (tmp_path / "work" / "kg" / "rejected.jsonl").read_text(encoding="utf-8").splitlines()
        assert sorted(json.loads(r)["reason"] for r in rejected) == ["missing_name", "truncated_name", "unreadable"]
        again = import_knowledge(store, external, work_dir=tmp_path / "work", quarantine_root=tmp_path / "q")
        assert again.load.totals()["inserted"] == again.load.totals()["updated"] == 0
        assert again.load.batch_id == first.load.batch_id
    finally:
        store.close()


def test_missing_path_is_a_coded_error(tmp_path: Path) -> None:
    with pytest.raises(KnowledgeImportError) as err:
        read_medical_kg(tmp_path / "nowhere")
    assert err.value.code == "HG-1002"


@pytest.mark.skipif(not MEDICAL_KG.exists(), reason="external medical-kg data not available (../shared/data)")
def test_the_8_8k_disease_knowledge_graph_imports_cleanly(tmp_path: Path) -> None:
    store = open_graph(tmp_path / "graph.lbdb")
    try:
        import_knowledge(store, None, work_dir=tmp_path / "work", quarantine_root=tmp_path / "q")
        started = time.perf_counter()
        report = import_knowledge(store, MEDICAL_KG, work_dir=tmp_path / "work", quarantine_root=tmp_path / "q")
        seconds = time.perf_counter() - started
        print(f"medical-kg import: {report.records_read} records in {seconds:.1f} s")
        assert report.reconciles and report.load.reconciles
        assert report.records_read > 8_000 and report.conditions > 8_000
        assert report.merged_duplicates >= 1 and report.symptoms_dropped > 0  # the crawl's "…" symptoms
        counts = store.counts()
        assert counts["Disease"] >= report.conditions and counts["has_symptom"] > 50_000
    finally:
        store.close()
