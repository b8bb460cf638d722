"""Understand one Chinese complaint: which symptoms, diseases, drugs, checks… and what is said about them.

A spaCy ``zh`` pipeline (jieba segmentation) with a dictionary entity ruler built from the knowledge base,
plus rules for negation, severity, duration, temperature, age, sex and pregnancy:

    parser = get_parser()                         # one per process, built once (about a second)
    c = parser.parse("我妈70了，胸口疼冒冷汗，不发烧")
    c.present_symptoms()                          # {"胸痛", "出汗"}
    c.negated_symptoms(), c.age_years, c.sex      # {"发热"}, 70.0, "2"

Dictionary terms are matched on characters, not on jieba's tokens, so a term is found however jieba cuts
the sentence; the terms are also added to a private jieba dictionary so ``doc.ents`` line up with tokens.
"""

from __future__ import annotations

import logging
import re
import threading
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import spacy
from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.util import filter_spans

from ontology.errors import EmptyQuestion, NotChinese, QuestionTooLong
from ontology.knowledge import KnowledgeBase, load_knowledge
from ontology.vocab import vocab

LABELS = ("SYMPTOM", "DISEASE", "DRUG", "CHECK", "FOOD", "DEPARTMENT", "BODY_PART")
"""Entity labels, in priority order: a surface listed under two labels keeps the first."""

MAX_CHARS = 500
MATCHES_KEY = "healthgraph.terms"
"""``doc.user_data`` key holding the exact character-level matches (a tuple of ``Match``)."""

# Words that start with a negation cue yet deny nothing after them ("pseudo-negations" in NegEx terms).
PSEUDO_NEGATIONS = (
    "不但", "不仅", "不光", "不只", "不止", "不停", "不断", "不过", "不少", "不久", "不知", "不知道", "不清楚",
    "不确定", "不一定", "不明", "不适", "不舒服", "不好", "不行", "不住", "不见好", "不对劲", "不会是", "受不了",
    "没想到", "没多久", "没过多久", "没办法", "没用", "没效果", "没好", "没见好", "无明显诱因", "无缘无故", "无法",
    "无论", "无意", "无聊", "无关", "未见好转", "未来", "不了", "无力", "没劲", "没精神", "没胃口", "没力气", "不想吃",
    "吃不下", "不孕",
)
# A complement after 不 in "睡不着", "吃不下", "看不清": 不 there says "cannot", not "does not have".
_COMPLEMENTS = frozenset("着下了上来去动住清好到开出起完见懂进")
_CLAUSE_BREAK = re.compile(r"[，。；！？,;!?\n\r：:]|(?<!\d)\.|(?<=\d)\.(?!\d)|但是|可是|但|只是|就是|而是|不过|然而|却")
_CONNECTIVES = ("伴有", "伴随", "同时", "以及", "而且", "加上", "还有", "伴", "还", "也", "又", "和", "并", "且", "、",
                "跟", "及")

RELATIONS: dict[str, tuple[str, str | None]] = {
    **{w: ("母亲", "2") for w in ("我妈", "妈妈", "老妈", "母亲", "我娘", "俺娘", "老母亲")},
    **{w: ("父亲", "1") for w in ("我爸", "爸爸", "老爸", "父亲", "俺爹", "老父亲")},
    **{w: ("祖母", "2") for w in ("奶奶", "外婆", "姥姥")},
    **{w: ("祖父", "1") for w in ("爷爷", "外公", "姥爷")},
    **{w: ("妻子", "2") for w in ("老婆", "媳妇", "妻子", "太太")},
    **{w: ("丈夫", "1") for w in ("老公", "丈夫", "我先生")},
    **{w: ("女儿", "2") for w in ("女儿", "闺女", "孙女", "外孙女")},
    **{w: ("儿子", "1") for w in ("儿子", "孙子", "外孙")},
    **{w: ("姐妹", "2") for w in ("姐姐", "妹妹", "女朋友", "女友", "婆婆", "岳母", "丈母娘", "姑姑", "阿姨", "小姨")},
    **{w: ("兄弟", "1") for w in ("哥哥", "弟弟", "男朋友", "男友", "公公", "岳父", "老丈人", "叔叔", "舅舅", "伯伯")},
    **{w: ("孩子", None) for w in ("孩子", "宝宝", "小孩", "小朋友", "娃", "婴儿", "新生儿")},
    **{w: ("老人", None) for w in ("老人", "老人家")},
    **{w: ("老人", "1") for w in ("老头", "老爷子", "老大爷", "大爷")},
    **{w: ("老人", "2") for w in ("老太太", "老太", "老大娘", "大娘")},
    **{w: ("配偶", None) for w in ("爱人", "老伴")},
}
"""Who the complaint is about → (canonical relation, sex "1"/"2" or None). The subject, not the speaker."""

_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "俩": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8,
           "九": 9}
_NUM = r"(?:\d+(?:\.\d+)?|[零〇一二两俩三四五六七八九十百几]+(?:点[零〇一二三四五六七八九]+)?|半)"
_KID = r"(?:宝宝|孩子|小孩|婴儿|宝|娃|儿子|女儿|男孩|女孩|男宝|女宝|小宝)"
_AGE_YEARS = re.compile(rf"(?P<num>{_NUM})(?P<more>多|来)?周?岁(?P<half>半)?(?P<more2>多)?")
_AGE_YOUNG = re.compile(rf"(?P<num>{_NUM})(?P<more>多)?(?:个)?(?P<half>半)?(?P<unit>月|周|天)(?P<half2>半)?"
                        rf"(?=大|的?{_KID})")
_AGE_BORN = re.compile(rf"(?:出生|生下来|满)(?P<num>{_NUM})(?P<more>多)?(?:个)?(?P<half>半)?(?P<unit>月|周|天)"
                       r"(?P<half2>半)?")
_AGE_AFTER_SUBJECT = re.compile(rf"(?:今年|已经|才|刚满|刚|都|现在|快|满)?(?P<num>{_NUM})(?P<more>多)?"
                                rf"(?P<unit>个月)?(?=了|大|[，,。;；\s]|$)")
_TEMP_UNIT = re.compile(rf"(?P<num>{_NUM})(?P<more>多)?(?:度|℃|°c|°|摄氏度)(?P<tenth>[0-9零一二三四五六七八九])?(?P<more2>多)?")
_TEMP_CUE = re.compile(rf"(?:体温|烧到|烧了|发烧到|高烧|低烧|发热|发烧|量了|温度|烧)(?:是|有|达|达到|到|到了|都|已经|一直|在)?"
                       rf"(?P<num>{_NUM})(?![0-9个天周月年小时岁次多度℃°])")
_PREGNANT_TERM = re.compile(rf"(?<![避备不])(?:怀孕|孕|妊娠)了?(?P<num>{_NUM})(?:多)?(?:个)?(?:月|周)")
_DURATION = re.compile(
    rf"(?P<pre>好)?(?P<num>{_NUM})(?P<more>多|来|余)?(?P<ge>个)?(?P<more2>多)?(?P<half>半)?"
    r"(?P<unit>分钟|小时|钟头|天|日|周|星期|礼拜|月|年)(?P<half2>半)?(?P<more3>多|余)?")
_NOT_DURATION_AFTER = re.compile(rf"^(?:到晚|两头|四季|份|号|[\u4e00-\u9fff]?{_NUM}(?:次|顿|片|粒|袋|支|回|遍))")
_RELATIVE_DAYS = {"大前天": 3.0, "前天": 2.0, "昨天": 1.0, "昨晚": 1.0, "昨日": 1.0, "上周": 7.0, "上星期": 7.0,
                  "上个星期": 7.0, "上个月": 30.0, "去年": 365.0}
_UNIT_DAYS = {"分钟": 1 / 1440, "小时": 1 / 24, "钟头": 1 / 24, "天": 1.0, "日": 1.0, "周": 7.0, "星期": 7.0,
              "礼拜": 7.0, "月": 30.0, "年": 365.0}
_FEMALE_HINTS = ("她", "月经", "例假", "大姨妈", "痛经", "白带", "验孕", "阴道", "子宫", "卵巢", "乳房")
"""Said of a woman when nothing else tells the sex (a fallback after relations, sex words and pregnancy)."""
_PREGNANCY_UNSURE = ("备孕", "想怀孕", "准备怀孕", "打算怀孕", "计划怀孕", "怕怀孕", "避免怀孕", "会不会怀孕", "能怀孕",
                     "可以怀孕", "容易怀孕", "避孕")
_FULLWIDTH = ({c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)} | {c: c - 0xFEE0 + 32 for c in range(0xFF21, 0xFF3B)}
              | {c: c + 32 for c in range(65, 91)} | {0x3000: 0x20})
_BRACKETED = re.compile(r"[(\[【][^)\]】]*[)\]】]")
_FORM_SUFFIXES = ("吸入气雾剂", "肠溶片", "缓释片", "缓释胶囊", "气雾剂", "注射液", "胶囊", "颗粒", "片")


@dataclass(frozen=True)
class Finding:
    """One recognised term: ``concept`` is the canonical symptom name, the condition code or the vocabulary code."""

    label: str
    concept: str
    surface: str
    start: int
    end: int
    negated: bool = False
    severity: str | None = None
    """A key of the lexicon's severity table (``severe``, ``mild``…), or None when not said."""
    duration_days: float | None = None


@dataclass(frozen=True)
class Complaint:
    """What a complaint says. ``sex`` is "1" male / "2" female (GB/T 2261.1) of the person it is about."""

    text: str
    findings: tuple[Finding, ...]
    age_years: float | None = None
    sex: str | None = None
    pregnant: bool | None = None
    temperature_c: float | None = None
    duration_days: float | None = None
    subject: str | None = None
    """Whom the complaint is about when not the speaker (母亲, 儿子, 孩子…), else None."""

    def mentions(self, label: str) -> tuple[Finding, ...]:
        """Findings of one label (``SYMPTOM``, ``DISEASE``…), negated ones included."""
        return tuple(f for f in self.findings if f.label == label)

    def present_symptoms(self) -> set[str]:
        """Canonical names of the symptoms the complaint has (not negated)."""
        return {f.concept for f in self.findings if f.label == "SYMPTOM" and not f.negated}

    def negated_symptoms(self) -> set[str]:
        """Canonical names of symptoms said to be absent and never said to be present."""
        return {f.concept for f in self.findings if f.label == "SYMPTOM" and f.negated} - self.present_symptoms()


class Match(NamedTuple):
    start: int
    end: int
    value: Any


class TermIndex:
    """Exact dictionary matching on characters; overlapping matches resolve longest first, then leftmost."""

    def __init__(self, terms: Mapping[str, Any] | None = None) -> None:
        self._terms: dict[str, Any] = {}
        self._lengths: dict[str, list[int]] = {}
        for surface, value in (terms or {}).items():
            self.add(surface, value)

    def __len__(self) -> int:
        return len(self._terms)

    def add(self, surface: str, value: Any) -> bool:
        """Add a term unless already there (the first definition wins); True when added."""
        if not surface or surface in self._terms:
            return False
        self._terms[surface] = value
        lengths = self._lengths.setdefault(surface[0], [])
        if len(surface) not in lengths:
            lengths.append(len(surface))
            lengths.sort(reverse=True)
        return True

    def candidates(self, text: str) -> list[Match]:
        """Every occurrence of every term, overlapping ones included."""
        terms, out, size = self._terms, [], len(text)
        for i, ch in enumerate(text):
            for n in self._lengths.get(ch, ()):
                if i + n > size:
                    continue
                value = terms.get(text[i:i + n])
                if value is not None:
                    out.append(Match(i, i + n, value))
        return out


def resolve(matches: Iterable[Match], blocked: Iterable[tuple[int, int]] = (),
            boundaries: set[int] | frozenset[int] = frozenset()) -> list[Match]:
    """Non-overlapping matches in text order: the longest wins, then one that starts and ends on ``boundaries``
    (token edges), then the leftmost; none overlaps ``blocked``."""
    taken: set[int] = {i for s, e in blocked for i in range(s, e)}
    kept = []
    for m in sorted(matches, key=lambda m: (m.start - m.end, not {m.start, m.end} <= boundaries, m.start)):
        span = range(m.start, m.end)
        if not taken.intersection(span):
            taken.update(span)
            kept.append(m)
    return sorted(kept)


class Markers:
    """Several small dictionaries (negation cues, severity words, relations…) scanned in one pass."""

    def __init__(self, kinds: Mapping[str, Mapping[str, Any]]) -> None:
        self._index = TermIndex()
        merged: dict[str, dict[str, Any]] = {}
        for kind, terms in kinds.items():
            for surface, value in terms.items():
                merged.setdefault(_normalise(surface), {})[kind] = value
        for surface, values in merged.items():
            self._index.add(surface, values)

    def scan(self, text: str) -> Scan:
        return Scan(self._index.candidates(text))


class Scan:
    """The markers found in one text, asked for by kind."""

    def __init__(self, candidates: list[Match]) -> None:
        self._candidates = candidates

    def find(self, kind: str, blocked: Iterable[tuple[int, int]] = ()) -> list[Match]:
        """Matches of one kind, longest first, none overlapping a ``blocked`` range."""
        return resolve((Match(m.start, m.end, m.value[kind]) for m in self._candidates if kind in m.value), blocked)


class TermRuler:
    """The pipeline's entity ruler: dictionary terms found on characters, aligned to tokens for ``doc.ents``.

    A single-character term (头, 吐, 咳) counts unless jieba put it inside a dictionary word: 头 is found in
    "头很疼" and "我头很疼" (我头 is no word) but not in "头发"; longer terms are found anywhere.
    """

    def __init__(self) -> None:
        self.index = TermIndex()
        self.words: Mapping[str, int] = {}
        """The segmenter's dictionary (word → frequency, 0 for mere prefixes)."""

    def add(self, label: str, terms: Mapping[str, str]) -> list[str]:
        """Add surface → concept terms under one label; returns the surfaces that were new."""
        return [s for s, concept in ((_normalise(s), c) for s, c in terms.items()) if self.index.add(s, (label, concept))]

    def __call__(self, doc: Doc) -> Doc:
        text = doc.text  # spaCy joins the tokens on every call: once is enough
        words, token_of, edges = [], [], set()  # token texts, character → token ("expand" alignment), token edges
        for t in doc:
            words.append(t.text)
            token_of += [t.i] * len(t.text_with_ws)
            edges.update((t.idx, t.idx + len(t.text)))
        found = [m for m in self.index.candidates(text)
                 if m.end - m.start > 1 or self._free_char(words[token_of[m.start]])]
        # of two equally long overlapping terms, the one jieba also cut out wins: 没有|血色素低, not 没有血色|素低
        matches = tuple(resolve(found, boundaries=edges))
        doc.user_data[MATCHES_KEY] = matches
        doc.ents = filter_spans([Span(doc, token_of[m.start], token_of[m.end - 1] + 1, label=m.value[0],
                                      span_id=m.value[1]) for m in matches])
        return doc

    def _free_char(self, token: str) -> bool:
        return len(token) == 1 or not self.words.get(token)


@Language.factory("healthgraph_term_ruler")
def _make_term_ruler(nlp: Language, name: str) -> TermRuler:
    return TermRuler()


class ComplaintParser:
    """Parse complaints and questions against a knowledge base (plus optional external dictionaries).

    ``extra`` adds terms by label, e.g. names imported from an external knowledge graph::

        ComplaintParser(kb, extra={"DISEASE": {"百日咳": "KG-123"}, "SYMPTOM": ["鸡鸣样回声"]})

    A mapping gives surface → concept; a plain list uses each name as its own concept. The knowledge base's
    own terms win over extra ones with the same surface. Build once and reuse (``get_parser``).
    """

    def __init__(self, kb: KnowledgeBase | None = None,
                 extra: Mapping[str, Mapping[str, str] | Iterable[str]] | None = None) -> None:
        self.kb = kb or load_knowledge()
        lexicon = self.kb.lexicon
        _quiet_jieba()
        self.nlp = spacy.blank("zh", config={"nlp": {"tokenizer": {"segmenter": "jieba"}}})
        # A private jieba dictionary: jieba's global one is shared by the whole process and must stay as is.
        self.nlp.tokenizer.jieba_seg = _private_jieba(self.nlp.tokenizer.jieba_seg)
        self.ruler: TermRuler = self.nlp.add_pipe("healthgraph_term_ruler")
        self.ruler.words = self.nlp.tokenizer.jieba_seg.FREQ
        for label, terms in kb_terms(self.kb).items():
            self.add_terms(label, terms)
        for label, terms in (extra or {}).items():
            self.add_terms(label, terms)

        negations = {_normalise(w): "neg" for w in lexicon.negations} | {w: "pseudo" for w in PSEUDO_NEGATIONS}
        self._markers = Markers({
            "negation": negations,
            "severity": {w: level for level, words in lexicon.severity.items() for w in words},
            "pregnancy": {w: True for w in lexicon.pregnancy} | {w: None for w in _PREGNANCY_UNSURE},
            "age": dict(lexicon.age_words), "sex": dict(lexicon.sex_words), "relation": RELATIONS,
            "days": _RELATIVE_DAYS, "connective": {w: True for w in _CONNECTIVES},
            "female": {w: "2" for w in _FEMALE_HINTS}})

    def add_terms(self, label: str, terms: Mapping[str, str] | Iterable[str]) -> int:
        """Add dictionary terms under a label at run time; returns how many were new."""
        if label not in LABELS:
            raise ValueError(f"unknown entity label {label!r} (valid: {', '.join(LABELS)})")
        mapping = dict(terms) if isinstance(terms, Mapping) else {t: t for t in ([terms] if isinstance(terms, str)
                                                                                    else terms)}
        added = self.ruler.add(label, {s.strip(): str(c) for s, c in mapping.items() if s and s.strip()})
        segmenter = self.nlp.tokenizer.jieba_seg
        for surface in added:
            if len(surface) > 1:
                segmenter.add_word(surface, freq=_jieba_freq(segmenter, surface))
        return len(added)

    def __len__(self) -> int:
        return len(self.ruler.index)

    def doc(self, text: str) -> Doc:
        """The spaCy doc of a text (normalised as ``parse`` does): tokens and ``doc.ents``."""
        return self.nlp(_normalise(text))

    def parse(self, text: str, *, check: bool = True) -> Complaint:
        """Understand one complaint or question.

        Raises ``EmptyQuestion`` (HG-1003), ``QuestionTooLong`` (HG-1004) and ``NotChinese`` (HG-1005) unless
        ``check`` is False (bulk featurising of training text). Recognising nothing is not an error here.
        """
        text = (text or "").strip()
        if check:
            _check(text)
        norm = _normalise(text)
        doc = self.nlp(norm)
        entities: list[Match] = list(doc.user_data[MATCHES_KEY])
        taken = [(m.start, m.end) for m in entities]
        clause = _clauses(norm)

        markers = self._markers.scan(norm)
        cues = [m for m in markers.find("negation", taken) if m.value == "neg" and _is_negation(norm, m, entities)]
        severity = markers.find("severity", taken)
        connectives = markers.find("connective", taken)
        ages, temperatures, pregnant_spans, durations = _numbers(norm)
        # who: read even inside a term (怀孕 may be listed as a synonym of 停经); "宝宝5个月" is an age, not a duration
        relations = [r for r in markers.find("relation") if not _speaker(norm, r, clause)]
        subject = relations[0] if relations else None
        stated = _age_after_subject(norm, subject) if subject else None
        if stated:
            durations = [d for d in durations if d[1] <= stated[0] or d[0] >= stated[1]]
        durations += [(m.start, m.end, m.value) for m in markers.find("days", taken)]
        # "咳嗽，三天了": a duration alone in its clause belongs to the findings of the clause before it
        with_findings = sorted({clause[m.start] for m in entities})
        owner = {d[0]: max((k for k in with_findings if k <= clause[d[0]]), default=clause[d[0]]) for d in durations}

        findings = []
        every_severity = markers.find("severity")
        for i, m in enumerate(entities):
            label, concept = m.value
            negated = any(c.end <= m.start and clause[c.start] == clause[m.start] for c in cues)
            before = entities[i - 1] if i and clause[entities[i - 1].start] == clause[m.start] else None
            after = entities[i + 1] if i + 1 < len(entities) and clause[entities[i + 1].start] == clause[m.start] \
                else None
            inside = [w for w in every_severity if m.start <= w.start and w.end <= m.end]  # a term like 剧烈头痛
            findings.append(Finding(
                label, concept, text[m.start:m.end], m.start, m.end, negated,
                inside[0].value if inside else _severity_of(norm, m, before, after, severity, connectives, clause),
                _nearest(m, [d for d in durations if owner[d[0]] == clause[m.start]])))

        age = _age(ages, subject, stated, markers.find("age"))
        pregnant = _pregnant(markers.find("pregnancy"), pregnant_spans, cues, clause)
        sex = subject.value[1] if subject and subject.value[1] else None
        if sex is None:
            words = [w for w in markers.find("sex")
                     if not any(r.start <= w.start < r.end for r in relations)]
            sex = words[0].value if words else ("2" if pregnant or markers.find("female") else None)
        present = [f.duration_days for f in findings if f.label == "SYMPTOM" and not f.negated and f.duration_days]
        return Complaint(
            text=text, findings=tuple(findings), age_years=age, sex=sex, pregnant=pregnant,
            temperature_c=max(temperatures) if temperatures else None,
            duration_days=max(present) if present else max((d[2] for d in durations), default=None),
            subject=subject.value[0] if subject else None)


def kb_terms(kb: KnowledgeBase) -> dict[str, dict[str, str]]:
    """label → {surface: concept} from the knowledge base and the project vocabularies."""
    terms: dict[str, dict[str, str]] = {label: {} for label in LABELS}

    def put(label: str, surface: str, concept: str) -> None:
        for name in plain_names(surface):
            terms[label].setdefault(name, concept)

    for s in kb.symptoms:
        for surface in (s.name, *s.synonyms):
            put("SYMPTOM", surface, s.name)
    for c in kb.conditions:
        for surface in (c.name, *c.synonyms):
            put("DISEASE", surface, c.code)
    for frame, label in ((vocab("drugs"), "DRUG"), (vocab("lab_tests"), "CHECK"), (vocab("food_products"), "FOOD"),
                         (vocab("clinical_subjects"), "DEPARTMENT")):
        for code, name in zip(frame["code"], frame["name_zh"], strict=True):
            put(label, name, code)
            if label == "DRUG":
                for suffix in _FORM_SUFFIXES:
                    if name.endswith(suffix) and len(name) > len(suffix) + 1:
                        put(label, name[:-len(suffix)], code)
    for c in kb.conditions:
        for label, names in (("DRUG", c.drugs), ("CHECK", c.checks), ("FOOD", c.good_food + c.avoid_food),
                             ("DEPARTMENT", c.departments)):
            for name in names:
                put(label, name, name)
    for part in (*kb.lexicon.body_parts, *(s.body_part for s in kb.symptoms)):
        put("BODY_PART", part, part)
    return terms


_PARSERS: dict[int, tuple[KnowledgeBase, ComplaintParser]] = {}
_PARSERS_LOCK = threading.Lock()


def get_parser(kb: KnowledgeBase | None = None) -> ComplaintParser:
    """The process's parser for a knowledge base (default: the built-in one), built on first use."""
    kb = kb or load_knowledge()
    with _PARSERS_LOCK:
        hit = _PARSERS.get(id(kb))
        if hit is None or hit[0] is not kb:
            hit = _PARSERS[id(kb)] = (kb, ComplaintParser(kb))
        return hit[1]


def chinese_number(s: str) -> float | None:
    """"39" → 39, "三十九" → 39, "三十八点五" → 38.5, "两三" → 2.5, "十几" → 15, "半" → 0.5; None if not a number."""
    s = s.strip()
    if not s:
        return None
    try:
        return float(s)
    except ValueError:
        pass
    if "点" in s:
        whole, _, frac = s.partition("点")
        w = chinese_number(whole)
        if w is None or not frac or any(ch not in _DIGITS for ch in frac):
            return None
        return w + float("0." + "".join(str(_DIGITS[ch]) for ch in frac))
    if s == "半":
        return 0.5
    if s in ("几", "好几"):
        return 3.0
    if len(s) == 2 and all(ch in _DIGITS for ch in s) and _DIGITS[s[1]] == _DIGITS[s[0]] + 1:
        return (_DIGITS[s[0]] + _DIGITS[s[1]]) / 2  # 两三天, 七八个月: a range
    total, current = 0.0, 0.0
    for ch in s:
        if ch in _DIGITS:
            current = _DIGITS[ch]
        elif ch == "几":
            current = 5
        elif ch in ("十", "百"):
            total += (current or 1) * (10 if ch == "十" else 100)
            current = 0
        else:
            return None
    return total + current


def _normalise(text: str) -> str:
    """Full-width ASCII to half-width and A–Z to a–z; the length never changes, so offsets stay valid."""
    return text.translate(_FULLWIDTH)


def plain_names(surface: str) -> list[str]:
    """The names in one vocabulary entry, notes dropped: "生鱼片/鱼生(淡水鱼)" → ["生鱼片", "鱼生"],
    "未特指的人类免疫缺陷病毒[HIV]病" → ["未特指的人类免疫缺陷病毒病"]."""
    base = _BRACKETED.sub("", _normalise(surface).strip())
    base = re.split(r"[(\[【]", base)[0]  # an unclosed note
    return [p.strip() for p in re.split(r"[/、]", base) if p.strip()]


def _check(text: str) -> None:
    if not text:
        raise EmptyQuestion("请描述症状或问题 please describe the symptoms or ask a question")
    if len(text) > MAX_CHARS:
        raise QuestionTooLong(f"内容过长（{len(text)} 字，上限 {MAX_CHARS} 字）"
                              f"too long ({len(text)} characters, limit {MAX_CHARS})",
                              length=len(text), limit=MAX_CHARS)
    if not any(_is_cjk(ch) for ch in text):
        raise NotChinese("请用中文描述症状 please describe the symptoms in Chinese")


def _is_cjk(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf" or "\U00020000" <= ch <= "\U0002a6df"


def _clauses(text: str) -> list[int]:
    """Clause number of every character (plus one past the end)."""
    ids, k, pos = [], 0, 0
    for m in _CLAUSE_BREAK.finditer(text):
        ids += [k] * (m.start() - pos)
        k += 1
        ids += [k] * (m.end() - m.start())
        pos = m.end()
    ids += [k] * (len(text) - pos + 1)
    return ids


def _is_negation(text: str, cue: Match, entities: list[Match]) -> bool:
    before = text[cue.start - 1] if cue.start else ""
    after = text[cue.end] if cue.end < len(text) else ""
    if before and text[cue.start] in "不没" and before == text[cue.start + 1:cue.start + 2]:
        return False  # 是不是, 有没有: a question, not a denial
    if text[cue.start] == "不" and cue.end - cue.start == 1 and after in _COMPLEMENTS and _is_cjk(before or "a"):
        return any(e.start == cue.end for e in entities)  # 睡不着 is no denial; 不出汗 is
    return True


def _pregnant(words: list[Match], spans: list[tuple[int, int]], cues: list[Match], clause: list[int]) -> bool | None:
    """True when pregnancy is said, False when only denied ("没怀孕"), None when unsaid or unsure ("备孕")."""
    mentions = [(m.start, m.end) for m in words if m.value] + spans
    if not mentions:
        return None
    if any(not any(c.end <= s and clause[c.start] == clause[s] for c in cues) for s, _ in mentions):
        return True
    return None if any(m.value is None for m in words) else False


def _speaker(text: str, relation: Match, clause: list[int]) -> bool:
    """"我是他妈妈": the relation word describes who is speaking, not whom the complaint is about."""
    start = relation.start
    while start > 0 and clause[start - 1] == clause[relation.start] and relation.start - start < 4:
        start -= 1
    return "是" in text[start:relation.start]


def _severity_of(text: str, m: Match, before: Match | None, after: Match | None, severity: list[Match],
                 connectives: list[Match], clause: list[int]) -> str | None:
    """The severity word that belongs to this finding: between it and its clause neighbours, nearest first.

    A word in the gap before the next finding belongs to this one when a connective (还, 伴, 、…) follows it or
    得 precedes it ("头疼得厉害还发烧"); otherwise a word right before a finding modifies that finding.
    """
    best: tuple[int, str] | None = None
    for w in severity:
        if clause[w.start] != clause[m.start]:
            continue
        if w.end <= m.start and (before is None or w.start >= before.end):  # in the gap before this finding
            gap = text[before.end:w.start] if before else ""
            owned_by_before = before is not None and (
                "得" in gap or any(w.end <= c.start < m.start for c in connectives))
            if owned_by_before and not any(before.end <= c.start < w.start for c in connectives):
                continue
            distance = m.start - w.end
        elif w.start >= m.end and (after is None or w.end <= after.start):  # in the gap after it
            joined = any(w.end <= c.start < after.start for c in connectives) if after else True
            if after is not None and not joined and "得" not in text[m.end:w.start]:
                continue
            distance = w.start - m.end
        else:
            continue
        if best is None or distance < best[0]:
            best = (distance, w.value)
    return best[1] if best else None


def _nearest(m: Match, durations: list[tuple[int, int, float]]) -> float | None:
    """The duration closest to the finding in its clause; on a tie the one after it ("咳嗽三天")."""
    best = None
    for start, end, days in durations:
        key = (start - m.end, 0) if start >= m.end else (m.start - end, 1)
        if best is None or key < best[0]:
            best = (key, days)
    return best[1] if best else None


def _numbers(text: str) -> tuple[list[tuple[int, int, float]], list[float], list[tuple[int, int]],
                                 list[tuple[int, int, float]]]:
    """Ages (start, end, years), temperatures (°C), pregnancy spans and durations (start, end, days)."""
    used: list[tuple[int, int]] = []

    def free(s: int, e: int) -> bool:
        return not any(s < ue and us < e for us, ue in used)

    ages = []
    for m in _AGE_YEARS.finditer(text):
        n = None if m["num"] == "几" else chinese_number(m["num"])  # 几岁 asks, it does not tell
        if n is not None and 0 <= n <= 120:
            n += _more(n, m["more"]) + (0.5 if m["half"] or m["more2"] else 0)
            ages.append((m.start(), m.end(), n))
            used.append(m.span())
    for m in (*_AGE_YOUNG.finditer(text), *_AGE_BORN.finditer(text)):
        n = chinese_number(m["num"])
        if n is not None and free(*m.span()):
            n += 0.5 if m["half"] or m["half2"] or m["more"] else 0
            ages.append((m.start(), m.end(), n * {"月": 1 / 12, "周": 7 / 365, "天": 1 / 365}[m["unit"]]))
            used.append(m.span())

    temperatures = []
    for regex in (_TEMP_UNIT, _TEMP_CUE):
        for m in regex.finditer(text):
            n = chinese_number(m["num"])
            if n is None or not free(*m.span()):
                continue
            if m.re is _TEMP_UNIT and m["tenth"]:
                n += (chinese_number(m["tenth"]) or 0) / 10
            elif m.re is _TEMP_UNIT and (m["more"] or m["more2"]):
                n += 0.5
            if 34 <= n <= 43:
                temperatures.append(round(n, 1))
                used.append(m.span())

    pregnant = []
    for m in _PREGNANT_TERM.finditer(text):
        if free(*m.span()):
            pregnant.append(m.span())
            used.append(m.span())

    durations = []
    for m in _DURATION.finditer(text):
        s, e = m.span()
        if not free(s, e) or _NOT_DURATION_AFTER.match(text[e:]) or text[max(0, s - 1):s] == "每":
            continue
        n = chinese_number(m["num"])
        unit = m["unit"]
        if n is None or (unit == "年" and n >= 1900) or (unit == "日" and text[max(0, s - 3):s].find("月") >= 0):
            continue
        if unit == "月" and not (m["ge"] or m["num"] == "半" or m["more3"] or text[e:e + 1] == "了"):
            continue  # 三月 alone is March
        if m["pre"] and m["num"] == "几":
            n = 4.0
        n += _more(n, m["more"]) + (0.5 if m["more2"] or m["half"] or m["half2"] or m["more3"] else 0)
        durations.append((s, e, n * _UNIT_DAYS[unit]))
    return ages, temperatures, pregnant, durations


def _more(n: float, more: str | None) -> float:
    """多/来 after a round number: 十多 ≈ 15, 二十多 ≈ 25, 一百多 ≈ 150."""
    if not more:
        return 0.0
    if n >= 100 and n % 100 == 0:
        return 50.0
    return 5.0 if n >= 10 and n % 10 == 0 else 0.5


def _age_after_subject(text: str, subject: Match) -> tuple[int, int, float] | None:
    """An age without a unit right after the relation word: "我妈70了", "宝宝5个月" → (start, end, years)."""
    m = _AGE_AFTER_SUBJECT.match(text, subject.end)
    n = chinese_number(m["num"]) if m else None
    if m is None or n is None or not 0 < n <= 120:
        return None
    years = (n + (0.5 if m["more"] else 0)) / 12 if m["unit"] else n + _more(n, m["more"])
    return m.start(), m.end(), years


def _age(ages: list[tuple[int, int, float]], subject: Match | None, stated: tuple[int, int, float] | None,
         age_words: list[Match]) -> float | None:
    """The subject's age: a number right after the subject's relation word, else the first age given, else the
    midpoint of an age word's range (宝宝 0–3 → 1.5)."""
    if subject is not None:
        after = [a for a in ages if a[0] >= subject.end]
        if after and after[0][0] - subject.end <= 4:
            return round(after[0][2], 3)
        if stated:
            return round(stated[2], 3)
    if ages:
        return round(ages[0][2], 3)
    if age_words:
        low, high = age_words[0].value
        return (low + high) / 2
    return None


def _jieba_freq(segmenter: Any, word: str) -> int:
    # Enough to keep the word whole against its parts and neighbours; cheaper than jieba's suggest_freq.
    return max(segmenter.FREQ.get(word, 0), 10 ** 5)


def _quiet_jieba() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # jieba 0.42 has invalid escape sequences: noise, not our bug
        import jieba  # noqa: F401  (imported first: importing it resets its logger to DEBUG)
    logging.getLogger("jieba").setLevel(logging.WARNING)


def _private_jieba(jieba: Any) -> Any:
    """A new jieba tokenizer with a copy of the main dictionary spaCy already loaded into jieba's global one."""
    jieba.dt.check_initialized()
    tokenizer = jieba.Tokenizer()
    tokenizer.FREQ, tokenizer.total, tokenizer.initialized = dict(jieba.dt.FREQ), jieba.dt.total, True
    return tokenizer
