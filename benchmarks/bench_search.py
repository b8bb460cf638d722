"""Search benchmark: the same generated documents indexed and queried on tantivy and OpenSearch.

    python benchmarks/bench_search.py --docs 100000 --opensearch-url http://127.0.0.1:9200

Measures the shared analysis (jieba, in Python) on its own, then per engine the index rate
(analysis included, documents/s, until searchable) and the latency of ~200 queries (p50, p95,
with one facet), and checks both engines return the same totals. Without --opensearch-url only
tantivy runs. Writes benchmarks/results/search-<docs>.json.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).with_name("results")
PLACES = ["杭州", "宁波", "温州", "绍兴", "湖州", "嘉兴", "金华", "衢州", "舟山", "台州", "丽水", "西湖", "余杭", "鄞州"]
KINDS = ["人民医院", "中医院", "妇幼保健院", "社区卫生服务中心", "卫生院", "疾病预防控制中心", "儿童医院", "口腔医院", "诊所"]
TERMS = ["急性心肌梗死", "高血压", "糖尿病", "发热", "咳嗽", "腹泻", "肺炎", "流行性感冒", "脑梗死", "哮喘", "手足口病",
         "乙型肝炎", "疫苗接种", "慢性阻塞性肺疾病", "骨折", "胃炎", "心悸", "头痛", "发烧", "拉肚子", "门诊", "住院",
         "急诊", "体检", "康复", "随访", "慢病管理", "家庭医生", "签约服务", "健康教育", "Acute", "Fever", "Clinic"]


def documents(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [{
        "id": f"d{i:07d}",
        "name": f"{rng.choice(PLACES)}{rng.choice(['', '市', '县', '区'])}{rng.choice(['第一', '第二', '第三', ''])}"
                f"{rng.choice(KINDS)}",
        "description": "，".join(rng.sample(TERMS, rng.randint(2, 8))),
        "dept": f"{rng.randint(1, 30):02d}", "level": rng.choice(["3A", "3B", "2A", "2B", "1A"]),
        "beds": rng.randrange(0, 2000),
    } for i in range(n)]


def queries(n: int, seed: int) -> list[str]:
    rng = random.Random(seed + 1)
    return [" ".join(rng.sample(PLACES + KINDS + TERMS, rng.randint(1, 3))) for _ in range(n)]


def run(engine: str, docs: list[dict], qs: list[str], batch: int, **kw: Any) -> dict[str, Any]:
    from search import IndexSpec, open_search

    spec = IndexSpec.of("bench", name=("text", 2.0), description="text", dept="keyword", level="keyword",
                        beds="integer")
    idx = open_search(engine, spec=spec, **kw)
    if engine == "opensearch":
        idx.drop()
        idx.ensure(spec)
    t = time.perf_counter()
    for start in range(0, len(docs), batch):
        idx.index(docs[start:start + batch])
    idx.refresh()
    seconds = time.perf_counter() - t
    assert idx.count() == len(docs)
    idx.search(qs[0])                                           # warm-up
    latencies, totals = [], []
    for q in qs:
        t0 = time.perf_counter()
        res = idx.search(q, facets=["level"], size=10)
        latencies.append((time.perf_counter() - t0) * 1000)
        totals.append(res.total)
    latencies.sort()
    if engine == "opensearch":
        idx.drop()
    idx.close()
    return {"index_seconds": seconds, "docs_per_s": len(docs) / seconds,
            "p50_ms": statistics.median(latencies), "p95_ms": latencies[int(0.95 * (len(latencies) - 1))],
            "totals": totals}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--batch", type=int, default=5_000)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--opensearch-url", default=None,
                    help="a running node; without it one is started here (services/servers) when Java is present")
    args = ap.parse_args()

    from search import default_analyzer

    docs, qs = documents(args.docs, args.seed), queries(args.queries, args.seed)
    analyzer = default_analyzer()
    t = time.perf_counter()
    for d in docs:
        analyzer.analyze(d["name"]), analyzer.analyze(d["description"])
    analysis = time.perf_counter() - t
    print(f"HealthGraph search benchmark — {args.docs:,} documents, {len(qs)} queries, seed {args.seed}")
    print(f"  analysis alone (jieba, Python): {analysis:.1f} s, {args.docs / analysis:,.0f} docs/s")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["tantivy"] = run("tantivy", docs, qs, args.batch, path=tmp)
    if args.opensearch_url:
        results["opensearch"] = run("opensearch", docs, qs, args.batch, url=args.opensearch_url)
    else:
        from services import servers

        missing = servers.requirements("opensearch")
        if missing:
            print(f"  OpenSearch skipped: {missing}")
        else:
            with tempfile.TemporaryDirectory() as home:
                node = servers.start("opensearch", Path(home), port=servers.free_port("opensearch"))
                try:
                    results["opensearch"] = run("opensearch", docs, qs, args.batch, url=node.url)
                finally:
                    servers.stop("opensearch", Path(home))
    print(f"  {'engine':<12}{'index s':>10}{'docs/s':>12}{'query p50 ms':>15}{'query p95 ms':>15}")
    for name, r in results.items():
        print(f"  {name:<12}{r['index_seconds']:>10.1f}{r['docs_per_s']:>12,.0f}{r['p50_ms']:>15.2f}{r['p95_ms']:>15.2f}")
    if len(results) == 2:
        same = results["tantivy"]["totals"] == results["opensearch"]["totals"]
        print(f"  same totals on both engines for every query: {same}")
        print(f"  tantivy / OpenSearch: index rate {results['tantivy']['docs_per_s'] / results['opensearch']['docs_per_s']:.2f}×,"
              f" query p95 {results['opensearch']['p95_ms'] / results['tantivy']['p95_ms']:.1f}× faster")
    for r in results.values():
        r.pop("totals")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"search-{args.docs}.json"
    out.write_text(json.dumps({"docs": args.docs, "queries": len(qs), "seed": args.seed,
                               "analysis_seconds": analysis, **results}, indent=2) + "\n", encoding="utf-8")
    print(f"  results → {out}")


if __name__ == "__main__":
    main()
