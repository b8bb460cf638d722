"""ComplaintParser: dictionary entities, negation, severity, durations, temperature, age, sex, pregnancy, errors.

Most tests run on the built-in lexicon and vocabularies with a pinned set of symptoms and one condition, so they
keep their meaning as the knowledge YAML grows; one test checks every symptom surface of the built-in KB itself.
"""

from __future__ import annotations

import dataclasses
import re

import pytest

from models.triage import Complaint, ComplaintParser, chinese_number, get_parser
from models.triage.nlp import MAX_CHARS
from ontology.errors import EmptyQuestion, KnowledgeError, NotChinese, QuestionTooLong
from ontology.knowledge import Condition, KnowledgeBase, Symptom, SymptomWeight, load_knowledge

PINNED = (
    Symptom("发热", "Fever", "全身", ("发烧", "高烧", "低烧")),
    Symptom("咳嗽", "Cough", "胸部", ("咳", "干咳", "老是咳")),
    Symptom("胸痛", "Chest pain", "胸部", ("胸口疼", "胸口痛", "心口疼", "胸闷痛")),
    Symptom("胸闷", "Chest tightness", "胸部", ("胸口闷",)),
    Symptom("出汗", "Sweating", "全身", ("冒冷汗", "出冷汗")),
    Symptom("头痛", "Headache", "头部", ("头疼", "脑袋疼")),
    Symptom("呕吐", "Vomiting", "腹部", ("吐了", "吐")),
    Symptom("流涕", "Runny nose", "鼻", ("流鼻涕",)),
    Symptom("腹泻", "Diarrhoea", "腹部", ("拉肚子", "拉稀")),
)


@pytest.fixture(scope="module")
def builtin() -> KnowledgeBase:
    return load_knowledge()


@pytest.fixture(scope="module")
def kb(builtin: KnowledgeBase) -> KnowledgeBase:
    cold = Condition("J06.9", "急性上呼吸道感染", synonyms=("感冒",), subject_code="03",
                     symptoms=(SymptomWeight("流涕", 0.8), SymptomWeight("发热", 0.4)), checks=("血常规",))
    return dataclasses.replace(builtin, symptoms=PINNED, conditions=(cold,))


@pytest.fixture(scope="module")
def parser(kb: KnowledgeBase) -> ComplaintParser:
    return get_parser(kb)


def symptoms(c: Complaint) -> dict[str, bool]:
    """canonical symptom → negated"""
    return {f.concept: f.negated for f in c.mentions("SYMPTOM")}


def severity(kb: KnowledgeBase, word: str) -> str:
    return next(level for level, words in kb.lexicon.severity.items() if word in words)


# --- dictionary entities ----------------------------------------------------------------------------------------

def test_every_symptom_surface_of_the_builtin_kb_maps_to_its_canonical_name(builtin: KnowledgeBase) -> None:
    p = get_parser(builtin)
    surfaces = {w for s in builtin.symptoms for w in (s.name, *s.synonyms) if not re.search(r"[(（/、]", w)}
    assert surfaces
    for surface in sorted(surfaces):
        found = p.parse(surface, check=False).mentions("SYMPTOM")
        assert [(f.concept, f.surface) for f in found] == [(builtin.symptom_of(surface).name, surface)], surface


@pytest.mark.parametrize(("text", "expected"), [
    ("我发烧了", {"发热"}), ("胸口疼，冒冷汗", {"胸痛", "出汗"}), ("老是咳", {"咳嗽"}), ("拉稀还吐了", {"腹泻", "呕吐"}),
])
def test_synonyms_become_canonical_symptoms(parser: ComplaintParser, text: str, expected: set[str]) -> None:
    assert parser.parse(text).present_symptoms() == expected


def test_findings_carry_surface_and_offsets(parser: ComplaintParser) -> None:
    text = "  我妈胸口疼  "
    c = parser.parse(text)
    assert c.text == text.strip()
    (f,) = c.mentions("SYMPTOM")
    assert (f.label, f.concept, f.surface) == ("SYMPTOM", "胸痛", "胸口疼")
    assert c.text[f.start:f.end] == "胸口疼"


def test_longest_match_wins(kb: KnowledgeBase) -> None:
    p = ComplaintParser(kb, extra={"DISEASE": {"丙丁症": "T-1", "慢性丙丁症": "T-2"}})
    assert [(f.concept, f.surface) for f in p.parse("我有慢性丙丁症").mentions("DISEASE")] == [("T-2", "慢性丙丁症")]
    c = p.parse("胸闷痛两天")  # 胸闷痛 (a 胸痛 synonym) is longer than 胸闷 inside it
    assert symptoms(c) == {"胸痛": False}
    assert [f.surface for f in c.findings] == ["胸闷痛"]


def test_of_two_equally_long_terms_the_one_jieba_cut_out_wins(kb: KnowledgeBase) -> None:
    p = ComplaintParser(kb, extra={"SYMPTOM": {"没有血色": "面色苍白", "血色素低": "血红蛋白降低"}})
    c = p.parse("也没有血色素低")
    assert [(f.concept, f.negated) for f in c.findings] == [("血红蛋白降低", True)]
    assert [(f.concept, f.negated) for f in p.parse("脸上没有血色").findings] == [("面色苍白", False)]


def test_symptom_beats_the_body_part_inside_it_and_single_characters_need_a_word_of_their_own(
        parser: ComplaintParser) -> None:
    c = parser.parse("头疼")
    assert [f.label for f in c.findings] == ["SYMPTOM"]
    assert not parser.parse("头发掉得多").findings  # 头 inside 头发 is no body part
    assert [f.concept for f in parser.parse("我头很晕").mentions("BODY_PART")] == ["头"]


def test_vocabulary_terms_are_recognised(parser: ComplaintParser) -> None:
    c = parser.parse("吃了阿莫西林，要查血常规吗，挂内科还是儿科")
    assert [f.concept for f in c.mentions("DRUG")] == ["amoxicillin"]
    assert [f.surface for f in c.mentions("CHECK")] == ["血常规"]
    assert [f.concept for f in c.mentions("DEPARTMENT")] == ["03", "07"]


def test_doc_entities_line_up_with_tokens_and_carry_the_concept(parser: ComplaintParser) -> None:
    doc = parser.doc("不发烧但是一直胸口疼")
    assert [(e.text, e.label_, e.ent_id_) for e in doc.ents] == [("发烧", "SYMPTOM", "发热"), ("胸口疼", "SYMPTOM", "胸痛")]
    doc = parser.doc("不发烧  胸口疼 , 出冷汗 吐")
    assert [(e.text, e.ent_id_) for e in doc.ents] == [("发烧", "发热"), ("胸口疼", "胸痛"), ("出冷汗", "出汗"), ("吐", "呕吐")]


def test_terms_from_an_external_knowledge_graph_via_extra(kb: KnowledgeBase) -> None:
    p = ComplaintParser(kb, extra={"DISEASE": {"百日咳": "KG-0042"}, "SYMPTOM": ["鸡鸣样回声"], "DRUG": {"发烧": "x"}})
    c = p.parse("孩子百日咳，有鸡鸣样回声，还发烧")
    assert [(f.concept, f.surface) for f in c.mentions("DISEASE")] == [("KG-0042", "百日咳")]
    assert c.present_symptoms() == {"鸡鸣样回声", "发热"}  # the KB's own 发烧 wins over the extra one
    assert p.add_terms("CHECK", ["百日咳抗体"]) == 1 and p.parse("查百日咳抗体").mentions("CHECK")
    with pytest.raises(ValueError, match="unknown entity label"):
        ComplaintParser(kb, extra={"ILLNESS": ["x"]})


def test_one_parser_per_knowledge_base(kb: KnowledgeBase, builtin: KnowledgeBase) -> None:
    assert get_parser(kb) is get_parser(kb)
    assert get_parser(builtin) is not get_parser(kb)


# --- negation, severity ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("不发烧", {"发热": True}),
    ("没有胸痛", {"胸痛": True}),
    ("否认胸闷", {"胸闷": True}),
    ("不咳嗽也不发烧", {"咳嗽": True, "发热": True}),
    ("没有胸痛和出汗", {"胸痛": True, "出汗": True}),
    ("不但咳嗽还发烧", {"咳嗽": False, "发热": False}),
    ("发烧但是不咳嗽", {"发热": False, "咳嗽": True}),
    ("不发烧，咳嗽", {"发热": True, "咳嗽": False}),
    ("没发烧可是一直咳", {"发热": True, "咳嗽": False}),
    ("是不是发烧了", {"发热": False}),
    ("是不是感冒了", {}),
    ("晚上睡不着还头疼", {"头痛": False}),
    ("我不出冷汗", {"出汗": True}),
])
def test_negation_is_scoped_to_the_clause(parser: ComplaintParser, text: str, expected: dict[str, bool]) -> None:
    assert symptoms(parser.parse(text)) == expected


def test_diseases_are_negated_too(parser: ComplaintParser) -> None:
    assert [(f.concept, f.negated) for f in parser.parse("不是感冒").findings] == [("J06.9", True)]
    assert [(f.concept, f.negated) for f in parser.parse("是不是感冒").findings] == [("J06.9", False)]


def test_present_and_negated_symptoms(parser: ComplaintParser) -> None:
    c = parser.parse("咳嗽三天，不发烧，没有胸痛")
    assert c.present_symptoms() == {"咳嗽"}
    assert c.negated_symptoms() == {"发热", "胸痛"}
    assert parser.parse("不发烧，后来又发烧了").negated_symptoms() == set()  # said present once: present


def test_severity_belongs_to_its_finding(kb: KnowledgeBase, parser: ComplaintParser) -> None:
    c = parser.parse("剧烈头痛伴呕吐")
    assert [(f.concept, f.severity) for f in c.findings] == [("头痛", severity(kb, "剧烈")), ("呕吐", None)]
    c = parser.parse("头疼得厉害还发烧")
    assert [(f.concept, f.severity) for f in c.findings] == [("头痛", severity(kb, "厉害")), ("发热", None)]
    assert parser.parse("有点流鼻涕").findings[0].severity == severity(kb, "有点")
    assert parser.parse("流鼻涕").findings[0].severity is None


# --- numbers ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "number"), [
    ("39", 39), ("38.5", 38.5), ("三十九", 39), ("十", 10), ("十五", 15), ("二十", 20), ("一百零二", 102),
    ("两", 2), ("三十八点五", 38.5), ("两三", 2.5), ("半", 0.5), ("猫", None),
])
def test_chinese_numbers(text: str, number: float | None) -> None:
    assert chinese_number(text) == number


@pytest.mark.parametrize(("text", "days"), [
    ("咳嗽三天了", 3), ("发烧2周", 14), ("拉肚子半个月", 15), ("头疼两三天", 2.5), ("咳嗽一个半月", 45),
    ("头疼3个小时", 0.125), ("昨天开始拉肚子", 1), ("咳嗽，三天了", 3),
])
def test_durations(parser: ComplaintParser, text: str, days: float) -> None:
    c = parser.parse(text)
    assert c.duration_days == pytest.approx(days)
    assert c.findings[0].duration_days == pytest.approx(days)


def test_duration_with_more_and_per_finding(parser: ComplaintParser) -> None:
    assert 365 < parser.parse("老是咳，一年多了").duration_days < 730
    assert 10 < parser.parse("头疼十多天").duration_days < 20
    c = parser.parse("咳嗽三天，发烧一天")
    assert [(f.concept, f.duration_days) for f in c.findings] == [("咳嗽", 3), ("发热", 1)]
    assert c.duration_days == 3
    assert parser.parse("发烧，药一天吃三次").duration_days is None  # a dosing frequency, not how long
    assert parser.parse("三月份开始咳嗽").duration_days is None  # 三月 is March
    assert parser.parse("宝宝5个月，拉肚子一天七八次").duration_days is None  # an age and a frequency


@pytest.mark.parametrize(("text", "celsius"), [
    ("烧到39度", 39.0), ("体温38.5℃", 38.5), ("三十九度", 39.0), ("烧到39度5", 39.5), ("体温三十八点五", 38.5),
    ("发烧38.2", 38.2), ("烧到３９度", 39.0), ("发烧三天", None), ("我39岁", None),
])
def test_body_temperature(parser: ComplaintParser, text: str, celsius: float | None) -> None:
    assert parser.parse(text).temperature_c == celsius


@pytest.mark.parametrize(("text", "years"), [
    ("35岁，头疼", 35), ("3个月大的宝宝发烧", 0.25), ("八个月的宝宝拉肚子", 8 / 12), ("我妈70了，胸口疼", 70),
    ("女儿两岁半，咳嗽", 2.5), ("宝宝十个月了，发烧", 10 / 12), ("我35岁，儿子3岁，发烧", 3), ("头疼", None),
    ("孩子出生40天，发烧", 40 / 365), ("8个月宝宝发烧", 8 / 12),
])
def test_age(parser: ComplaintParser, text: str, years: float | None) -> None:
    assert parser.parse(text).age_years == (pytest.approx(years, abs=1e-3) if years is not None else None)


def test_age_with_more_and_age_words(kb: KnowledgeBase, parser: ComplaintParser) -> None:
    assert 70 < parser.parse("我爸七十多岁，头晕").age_years < 80
    low, high = kb.lexicon.age_words["宝宝"]
    assert parser.parse("宝宝发烧").age_years == (low + high) / 2  # an age word alone: its range's midpoint
    assert parser.parse("宝宝3岁，发烧").age_years == 3  # a number beats the word


# --- who, pregnancy ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "sex"), [
    ("我妈胸口疼", "2"), ("奶奶咳嗽", "2"), ("我老婆发烧", "2"), ("我爸头疼", "1"), ("爷爷拉肚子", "1"),
    ("我儿子发烧", "1"), ("我是女的，我儿子发烧", "1"), ("女，35岁，头疼", "2"), ("我是他妈妈，孩子发烧", None),
    ("老头胸口疼", "1"), ("月经推迟了十来天，肚子疼", "2"), ("头疼", None),
])
def test_sex_is_the_subjects(parser: ComplaintParser, text: str, sex: str | None) -> None:
    assert parser.parse(text).sex == sex


def test_subject_of_the_complaint(parser: ComplaintParser) -> None:
    c = parser.parse("我儿子发烧")
    assert (c.subject, c.sex) == ("儿子", "1")
    assert parser.parse("我发烧").subject is None


@pytest.mark.parametrize(("text", "pregnant"), [
    ("怀孕12周，拉肚子", True), ("孕8周，头疼", True), ("我是孕妇，能吃药吗", True), ("没怀孕，但是想吐", False),
    ("没有怀孕", False), ("在备孕，头疼", None), ("吃了避孕药", None), ("头疼", None),
])
def test_pregnancy(parser: ComplaintParser, text: str, pregnant: bool | None) -> None:
    c = parser.parse(text)
    assert c.pregnant is pregnant
    if pregnant:
        assert c.sex == "2"


def test_pregnancy_weeks_are_not_a_duration(parser: ComplaintParser) -> None:
    c = parser.parse("怀孕12周，拉肚子两天")
    assert c.duration_days == 2


# --- input checks ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "error", "code"), [
    ("", EmptyQuestion, "HG-1003"), ("   \n", EmptyQuestion, "HG-1003"),
    ("痛" * (MAX_CHARS + 1), QuestionTooLong, "HG-1004"), ("fever 39 since monday", NotChinese, "HG-1005"),
    ("123？！", NotChinese, "HG-1005"),
])
def test_input_errors_have_stable_codes(parser: ComplaintParser, text: str, error: type[KnowledgeError],
                                        code: str) -> None:
    with pytest.raises(error) as caught:
        parser.parse(text)
    assert caught.value.code == code and caught.value.http_status == 422
    assert re.search(r"[\u4e00-\u9fff]", caught.value.message) and re.search(r"[a-z]", caught.value.message)


def test_limits_are_inclusive_and_checks_can_be_skipped(parser: ComplaintParser) -> None:
    assert parser.parse("痛" * MAX_CHARS).text == "痛" * MAX_CHARS
    assert parser.parse("", check=False).findings == ()
    assert parser.parse("fever", check=False).findings == ()
    assert parser.parse("发烧" * 400, check=False).present_symptoms() == {"发热"}
