"""Training data generated from the knowledge base, deterministic for a seed.

Two kinds, both labelled:

- colloquial complaints per condition, labelled with the condition's clinical subject (诊疗科目 code):
  symptoms sampled by their weights, said in residents' words (synonyms), with who is ill, for how long, how badly,
  sometimes a symptom of a rival condition denied, sometimes a guess at the disease. A child under 14 with an
  internal-medicine (内科 03) condition is labelled 儿科 (07): Chinese hospitals send children there;
- questions per QA intent from phrasing templates with the entity slots filled from the knowledge base.
  ``TRAIN_TEMPLATES`` (8 per intent) are for training; ``EVAL_TEMPLATES`` (3 different ones per intent) are held
  aside so that intent accuracy is measured on phrasings the model never saw.

    texts = complaint_examples(kb, per_condition=60, seed=0)    # [Example("我妈70了，胸口疼…", "03", "I21"), …]
    qs = question_examples(kb, EVAL_TEMPLATES, per_template=10, seed=1)
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from models.triage.nlp import plain_names
from ontology.knowledge import Condition, KnowledgeBase
from ontology.vocab import vocab

GENERATOR_VERSION = "1"
CHILD_AGE = 14
"""Under this age an internal-medicine complaint goes to paediatrics (儿科)."""
INTERNAL_MEDICINE, PAEDIATRICS = "03", "07"
"""Bump when generated data changes meaning, so saved models are retrained (part of the KB fingerprint)."""

INTENTS: tuple[str, ...] = (
    "disease_symptom", "symptom_disease", "disease_cause", "disease_complication", "disease_good_food",
    "disease_avoid_food", "food_disease", "disease_drug", "drug_disease", "disease_check", "check_disease",
    "disease_prevention", "disease_course", "disease_treatment", "disease_cure_rate", "disease_susceptible",
    "disease_description", "disease_department", "disease_cost", "disease_insurance", "disease_transmission",
    "disease_nursing", "drug_usage", "drug_contraindication",
)
"""The question-answering intents, each answered from one relation or property of the knowledge graph."""


@dataclass(frozen=True)
class Example:
    text: str
    label: str
    source: str = ""
    """The condition code (complaints) or the template (questions) the example came from."""


TRAIN_TEMPLATES: dict[str, tuple[str, ...]] = {
    "disease_symptom": ("{disease}有什么症状", "{disease}有哪些表现", "{disease}的临床表现有哪些", "{disease}的症状是什么",
                        "{disease}有啥症状", "怎么知道自己得了{disease}", "{disease}早期有什么征兆",
                        "{disease}会出现哪些不舒服"),
    "symptom_disease": ("{symptom}是什么病", "{symptom}是怎么回事", "老是{symptom}是什么原因", "{symptom}可能是什么病",
                        "经常{symptom}是得了什么病", "{symptom}是哪里出问题了", "为什么会{symptom}",
                        "最近总是{symptom}怎么回事"),
    "disease_cause": ("{disease}是什么原因引起的", "为什么会得{disease}", "{disease}的病因是什么", "{disease}是怎么得的",
                      "怎么会得{disease}", "{disease}是什么导致的", "得{disease}的原因有哪些", "{disease}是怎么引起的"),
    "disease_complication": ("{disease}有什么并发症", "{disease}会引起哪些并发症", "{disease}会导致什么后果",
                             "{disease}会引发其他病吗", "{disease}不治会怎么样", "{disease}严重了会怎样",
                             "{disease}能引起什么病", "{disease}的并发症有哪些"),
    "disease_good_food": ("{disease}吃什么好", "{disease}应该多吃什么", "{disease}吃什么食物好", "得了{disease}饮食上吃什么",
                          "{disease}病人适合吃什么", "{disease}吃什么有好处", "{disease}推荐吃什么",
                          "{disease}能吃哪些东西"),
    "disease_avoid_food": ("{disease}不能吃什么", "{disease}忌吃什么", "{disease}要忌口吗", "{disease}哪些东西不能吃",
                           "得了{disease}不要吃什么", "{disease}饮食禁忌", "{disease}最好别吃什么", "{disease}要少吃什么"),
    "food_disease": ("{food}对什么病有好处", "吃{food}有什么好处", "{food}适合什么病人吃", "哪些病不能吃{food}",
                     "{food}有什么营养价值", "什么人不适合吃{food}", "{food}能治病吗", "多吃{food}对身体好吗"),
    "disease_drug": ("{disease}吃什么药", "{disease}用什么药", "{disease}吃什么药好得快", "治{disease}的药有哪些",
                     "{disease}该吃什么药", "{disease}有什么特效药", "{disease}需要吃药吗", "{disease}常用药有哪些"),
    "drug_disease": ("{drug}能治什么病", "{drug}是治什么的", "{drug}的作用是什么", "{drug}主治什么", "{drug}有什么用",
                     "{drug}治疗哪些病", "{drug}的适应症", "{drug}是干什么用的"),
    "disease_check": ("{disease}要做什么检查", "{disease}需要查什么", "怎么确诊{disease}", "{disease}查什么项目",
                      "检查{disease}要做哪些化验", "{disease}怎么诊断", "{disease}要抽血吗", "怀疑{disease}去医院查什么"),
    "check_disease": ("{check}能查出什么病", "{check}是检查什么的", "{check}能检查出什么", "为什么要做{check}",
                      "{check}查的是什么", "{check}有什么用", "做{check}能看出哪些问题", "{check}异常说明什么"),
    "disease_prevention": ("怎么预防{disease}", "{disease}如何预防", "怎样才能不得{disease}", "{disease}的预防措施",
                           "怎么避免得{disease}", "预防{disease}要注意什么", "{disease}能预防吗", "如何防止{disease}"),
    "disease_course": ("{disease}多久能好", "{disease}要治多长时间", "{disease}几天能好", "{disease}的病程多长",
                       "{disease}一般多久恢复", "{disease}好得慢吗", "{disease}持续多久", "{disease}要多久才能痊愈"),
    "disease_treatment": ("{disease}怎么治", "{disease}怎么治疗", "{disease}怎么办", "{disease}有什么治疗方法",
                          "得了{disease}该怎么办", "{disease}如何治疗", "{disease}的治疗方案", "{disease}怎么处理"),
    "disease_cure_rate": ("{disease}能治好吗", "{disease}能治愈吗", "{disease}的治愈率高吗", "{disease}可以根治吗",
                          "{disease}治好的几率大吗", "{disease}会不会好", "{disease}能彻底好吗", "{disease}好治吗"),
    "disease_susceptible": ("什么人容易得{disease}", "哪些人容易患{disease}", "{disease}的易感人群", "{disease}好发于什么人",
                            "谁容易得{disease}", "{disease}多发于哪些人群", "小孩容易得{disease}吗",
                            "什么年龄容易得{disease}"),
    "disease_description": ("{disease}是什么", "什么是{disease}", "{disease}是什么病", "介绍一下{disease}",
                            "{disease}是怎样的一种病", "{disease}严重吗", "{disease}是什么意思", "{disease}属于什么病"),
    "disease_department": ("{disease}挂什么科", "{disease}看什么科", "{disease}去哪个科室", "得了{disease}挂哪个科",
                           "{disease}应该看哪个科", "{disease}属于哪个科", "{disease}去医院挂号挂什么",
                           "{disease}看内科还是外科"),
    "disease_cost": ("{disease}要花多少钱", "治{disease}要多少钱", "{disease}的治疗费用", "{disease}治疗贵吗",
                     "看{disease}大概花多少", "{disease}住院要多少钱", "{disease}手术费多少", "{disease}花费高吗"),
    "disease_insurance": ("{disease}能报销吗", "{disease}医保报销吗", "{disease}在医保范围内吗", "{disease}可以用医保吗",
                          "{disease}能走医保吗", "{disease}医保能报多少", "{disease}属于医保吗", "治{disease}的费用能报吗"),
    "disease_transmission": ("{disease}传染吗", "{disease}会传染人吗", "{disease}怎么传染的", "{disease}的传播途径",
                             "{disease}会不会传染给家人", "{disease}通过什么传播", "{disease}有传染性吗",
                             "和{disease}病人接触会被传染吗"),
    "disease_nursing": ("{disease}怎么护理", "{disease}病人怎么照顾", "{disease}在家怎么护理", "{disease}护理要注意什么",
                        "家人得了{disease}怎么照顾", "{disease}日常生活要注意什么", "{disease}术后护理",
                        "{disease}患者护理方法"),
    "drug_usage": ("{drug}怎么吃", "{drug}一次吃几片", "{drug}的用法用量", "{drug}一天吃几次", "{drug}饭前吃还是饭后吃",
                   "{drug}怎么服用", "{drug}吃多少合适", "{drug}能吃多久"),
    "drug_contraindication": ("{drug}有什么禁忌", "哪些人不能吃{drug}", "孕妇能吃{drug}吗", "{drug}的副作用有哪些",
                              "{drug}有什么注意事项", "吃{drug}要注意什么", "{drug}不能和什么一起吃", "小孩能吃{drug}吗"),
}
"""Phrasings the intent classifier is trained on."""

EVAL_TEMPLATES: dict[str, tuple[str, ...]] = {
    "disease_symptom": ("{disease}一般会有哪些症状表现", "得{disease}的人身体上会有什么感觉", "{disease}发作时是什么样子"),
    "symptom_disease": ("一直{symptom}会是什么疾病", "{symptom}要警惕哪些病", "{symptom}是不是生病了"),
    "disease_cause": ("{disease}的发病原因", "什么因素会诱发{disease}", "{disease}到底是怎么来的"),
    "disease_complication": ("{disease}拖久了会出现什么问题", "{disease}会连带出哪些疾病", "{disease}有哪些危害"),
    "disease_good_food": ("{disease}的食疗方法", "{disease}患者宜吃什么", "{disease}补充什么营养好"),
    "disease_avoid_food": ("{disease}需要避开哪些食物", "{disease}患者吃东西要忌讳什么", "有{disease}的人什么不宜吃"),
    "food_disease": ("{food}对哪些疾病有益", "生病的人可以吃{food}吗", "{food}有什么功效"),
    "disease_drug": ("{disease}一般开什么药", "{disease}用药推荐", "得了{disease}要服用哪种药物"),
    "drug_disease": ("{drug}对什么病有效", "{drug}用来治疗什么", "{drug}的功效和用途"),
    "disease_check": ("{disease}需要做哪些检测", "确定是不是{disease}要查哪些", "{disease}的诊断方法有哪些"),
    "check_disease": ("{check}可以发现哪些疾病", "医生让我做{check}是查什么", "{check}的检查目的"),
    "disease_prevention": ("有什么办法可以防{disease}", "平时怎么做能远离{disease}", "{disease}的预防方法有哪些"),
    "disease_course": ("{disease}大概多少天能康复", "{disease}一般要拖多久", "{disease}的恢复期是多长"),
    "disease_treatment": ("{disease}该如何医治", "{disease}有哪些治疗手段", "{disease}怎么调理才好"),
    "disease_cure_rate": ("{disease}有多大希望治好", "{disease}康复的可能性有多大", "{disease}是不是治不好"),
    "disease_susceptible": ("{disease}的高危人群有哪些", "哪类人更容易患上{disease}", "{disease}偏爱什么样的人"),
    "disease_description": ("能讲讲{disease}吗", "{disease}是一种什么疾病", "请解释一下{disease}"),
    "disease_department": ("{disease}需要找哪个科室的医生", "{disease}就诊应该去哪个科", "看{disease}挂号选什么科"),
    "disease_cost": ("治好{disease}得准备多少钱", "{disease}的医疗开销大吗", "{disease}看病一般花费多少"),
    "disease_insurance": ("{disease}纳入医保了吗", "{disease}是否可以用医保卡", "看{disease}医保给不给报"),
    "disease_transmission": ("{disease}是通过什么途径传给别人的", "{disease}会传给孩子吗", "{disease}具有传染性吗"),
    "disease_nursing": ("照顾{disease}病人有哪些注意事项", "{disease}患者家属该怎么照料", "{disease}出院后怎么护理"),
    "drug_usage": ("{drug}的正确服用方法", "{drug}每次服用多少剂量", "{drug}应该什么时候吃"),
    "drug_contraindication": ("{drug}有哪些不良反应", "什么情况下禁用{drug}", "哺乳期可以服用{drug}吗"),
}
"""Different phrasings, held aside: never used for training, only to measure intent accuracy."""

_PREFIXES = ("", "", "", "", "请问", "医生，", "你好，", "想问下", "我想知道", "咨询一下，")
_SUFFIXES = ("", "", "？", "?", "呢", "啊", "。")
_DURATIONS = ("{n}天了", "{n}天", "快一周了", "一个星期了", "半个月了", "好几天了", "两三天了", "{n}个月了", "最近")
_ONSETS = ("昨天开始", "前天开始", "这两天", "最近", "今天早上起来", "{n}天前开始")
_JOINERS = ("，", "，", "、", "，还", "，而且", "，还有点", "，伴")
_DENIALS = ("，没有{s}", "，没有{s}", "，也没有{s}", "，但是没有{s}", "，不{s}", "，没{s}")
_GUESSES = ("，是不是{d}", "，会不会是{d}", "，怀疑是{d}")
_ENDINGS = ("", "", "", "。", "，怎么办", "，挂什么科", "，需要去医院吗", "，严重吗", "，是什么病", "，吃什么药好")
_CN = "零一二三四五六七八九"


def complaint_examples(kb: KnowledgeBase, per_condition: int = 60, seed: int = 0,
                       conditions: Sequence[Condition] | None = None, *, children_to_paediatrics: bool = True
                       ) -> list[Example]:
    """Colloquial complaints, ``per_condition`` for each condition, labelled with its subject code (儿科 for a
    child's internal-medicine complaint unless ``children_to_paediatrics`` is False)."""
    rng = np.random.default_rng(seed)
    conditions = list(conditions if conditions is not None else kb.conditions)
    everyone = sorted({s.name for c in kb.conditions for s in c.symptoms} or {s.name for s in kb.symptoms})
    surfaces = {s.name: (s.name, *s.synonyms) for s in kb.symptoms}
    # only words that go before a symptom ("有点咳嗽"); "疼得厉害" kinds would read wrongly in front of one
    severity = [w for words in kb.lexicon.severity.values() for w in words
                if len(w) > 1 and not w.endswith(("疼", "痛", "厉害")) and not w.startswith("一")]
    out = []
    for c in conditions:
        own = {s.name for s in c.symptoms}
        rivals = [s for s in everyone if s not in own]
        for _ in range(per_condition):
            text, age = _complaint(rng, c, surfaces, rivals, severity)
            child = children_to_paediatrics and age < CHILD_AGE and c.subject_code == INTERNAL_MEDICINE
            out.append(Example(text, PAEDIATRICS if child else c.subject_code, c.code))
    return out


def question_examples(kb: KnowledgeBase, templates: Mapping[str, Sequence[str]] | None = None,
                      per_template: int = 20, seed: int = 0) -> list[Example]:
    """Questions labelled with their intent: each template filled ``per_template`` times from the KB's entities."""
    rng = np.random.default_rng(seed)
    slots = entity_slots(kb)
    out = []
    for intent, phrasings in (templates or TRAIN_TEMPLATES).items():
        for template in phrasings:
            for _ in range(per_template):
                text = re.sub(r"\{(\w+)\}", lambda m: _pick(rng, slots[m.group(1)]), template)
                suffixes = _SUFFIXES if not text.endswith(("吗", "呢")) else ("", "？", "?")
                out.append(Example(_pick(rng, _PREFIXES) + text + _pick(rng, suffixes), intent, template))
    return out


def entity_slots(kb: KnowledgeBase) -> dict[str, list[str]]:
    """Names to fill template slots with: {disease}, {symptom}, {drug}, {food}, {check}."""
    def clean(names: list[str]) -> list[str]:
        return sorted({p for n in names for p in plain_names(n) if len(p) > 1})

    return {
        "disease": clean([n for c in kb.conditions for n in (c.name, *c.synonyms)]) or ["感冒"],
        "symptom": clean([n for s in kb.symptoms for n in (s.name, *s.synonyms)]) or ["头疼"],
        "drug": clean([d for c in kb.conditions for d in c.drugs] + list(vocab("drugs")["name_zh"])),
        "food": clean([f for c in kb.conditions for f in c.good_food + c.avoid_food]
                      + list(vocab("food_products")["name_zh"])),
        "check": clean([t for c in kb.conditions for t in c.checks] + list(vocab("lab_tests")["name_zh"])),
    }


def _complaint(rng: np.random.Generator, c: Condition, surfaces: Mapping[str, tuple[str, ...]],
               rivals: list[str], severity: list[str]) -> tuple[str, float]:
    """A complaint and the age of the person it is about."""
    names = [s.name for s in c.symptoms if rng.random() < s.weight]
    if not names and c.symptoms:
        weights = np.array([s.weight for s in c.symptoms])
        names = [c.symptoms[int(rng.choice(len(weights), p=weights / weights.sum()))].name]
    order = rng.permutation(len(names))
    said = [_say(rng, surfaces.get(names[i], (names[i],)), severity) for i in order]
    if not said:  # a condition without symptoms: only its name can be said
        said = [_pick(rng, (c.name, *c.synonyms)) + "了"]
    fever = {"发热": (37.5, 39.0), "高热": (39.0, 41.0)}
    for name in (n for n in names if n in fever):
        if rng.random() < 0.3:
            said.append(f"烧到{_number(rng, round(float(rng.uniform(*fever[name])), 1))}度")
    body = said[0]
    for phrase in said[1:]:
        body += _pick(rng, _JOINERS) + phrase

    n = int(rng.integers(1, 8))
    when = rng.random()
    if when < 0.4:
        body += "，" + _pick(rng, _DURATIONS).format(n=_number(rng, n))
    elif when < 0.7:
        body = _pick(rng, _ONSETS).format(n=_number(rng, n)) + body
    if rivals and rng.random() < 0.3:
        body += _pick(rng, _DENIALS).format(s=_pick(rng, surfaces.get(_pick(rng, rivals), ("发烧",))))
    if rng.random() < 0.12:
        body += _pick(rng, _GUESSES).format(d=_pick(rng, (c.name, *c.synonyms)))
    who, age = _subject(rng, c)
    return (who + ("，" if who and rng.random() < 0.5 else "") + body + _pick(rng, _ENDINGS)).strip("，"), age


def _say(rng: np.random.Generator, surfaces: tuple[str, ...], severity: list[str]) -> str:
    # residents say the colloquial word far more often than the clinical name
    word = surfaces[0] if len(surfaces) == 1 or rng.random() < 0.25 else _pick(rng, surfaces[1:])
    if severity and rng.random() < 0.2:
        word = _pick(rng, severity) + word
    return word


def _subject(rng: np.random.Generator, c: Condition) -> tuple[str, float]:
    """Who is ill (and their age), consistent with the condition's age window and sex."""
    low, high = max(c.min_age, 0), max(min(c.max_age, 90), max(c.min_age, 0))
    age = float(rng.uniform(low, high + 1))
    sex = c.sex or _pick(rng, ("1", "2"))
    male = sex == "1"
    if age < 1:
        m = _number(rng, max(1, int(age * 12)))
        return _pick(rng, (f"宝宝{m}个月", f"{m}个月大的宝宝", f"我家宝宝{m}个月了", "宝宝", "孩子刚满月")), age
    a = _number(rng, int(age))
    if age < 14:
        return _pick(rng, (f"孩子{a}岁", f"我{'儿子' if male else '女儿'}{a}岁", f"{a}岁的孩子", "小孩",
                           f"{'男' if male else '女'}孩{a}岁")), age
    if age < 60:
        return _pick(rng, ("", "我", f"{'男' if male else '女'}，{a}岁", f"我今年{a}岁",
                           "我老公" if male else "我老婆", f"{a}岁{'男' if male else '女'}性")), age
    return _pick(rng, (f"我{'爸' if male else '妈'}{a}了", "爷爷" if male else "奶奶", f"老人{a}岁",
                       f"我{a}岁", f"{'老爷子' if male else '老太太'}{a}岁")), age


def _number(rng: np.random.Generator, n: float) -> str:
    """A number the way people type it: digits or Chinese numerals."""
    if rng.random() < 0.5 or n != int(n) or not 0 <= n < 100:
        return f"{n:g}"
    n = int(n)
    if n < 10:
        return _pick(rng, (_CN[n], "两")) if n == 2 else _CN[n]
    tens, ones = divmod(n, 10)
    return ("" if tens == 1 else _CN[tens]) + "十" + (_CN[ones] if ones else "")


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]
