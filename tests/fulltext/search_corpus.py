"""A deterministic corpus for the search tests: institution-like documents with zh/en text and codes."""

from __future__ import annotations

import random

from search import IndexSpec

PLACES = ["杭州", "宁波", "温州", "绍兴", "湖州", "嘉兴", "金华", "衢州", "舟山", "台州", "丽水"]
KINDS = ["人民医院", "中医院", "妇幼保健院", "社区卫生服务中心", "卫生院", "疾病预防控制中心", "儿童医院"]
TERMS = ["急性心肌梗死", "高血压", "糖尿病", "发热", "咳嗽", "腹泻", "肺炎", "流行性感冒", "脑梗死", "哮喘",
         "手足口病", "乙型肝炎", "疫苗接种", "慢性阻塞性肺疾病", "骨折", "胃炎", "心悸", "头痛", "发烧", "拉肚子"]
ENGLISH = ["Hospital", "Clinic", "Acute", "Fever", "Vaccine", "Centre"]
DEPTS = [f"{i:02d}" for i in range(1, 11)]
LEVELS = ["3A", "3B", "2A", "2B", "1A"]

SPEC = IndexSpec.of("corpus", name=("text", 2.0), description="text", dept="keyword", level="keyword",
                    tags="keyword", beds="integer")


def corpus(n: int = 200, seed: int = 5) -> list[dict]:
    """Institution-like documents; every text field stays under 40 tokens so BM25 lengths are exact."""
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        name = f"{rng.choice(PLACES)}{rng.choice(['', '市', '县'])}{rng.choice(['第一', '第二', ''])}{rng.choice(KINDS)}"
        if rng.random() < 0.2:
            name += f" {rng.choice(ENGLISH)}"
        doc = {"id": f"d{i:03d}", "name": name, "dept": rng.choice(DEPTS), "level": rng.choice(LEVELS),
               "beds": rng.randrange(0, 1200)}
        if rng.random() < 0.85:  # some documents have no description: BM25 must still agree
            doc["description"] = "，".join(rng.sample(TERMS, rng.randint(1, 4))) + rng.choice(["", " Acute fever"])
        if rng.random() < 0.5:
            doc["tags"] = rng.sample(["teaching", "rural", "emergency", "chest_pain"], rng.randint(1, 2))
        docs.append(doc)
    return docs
