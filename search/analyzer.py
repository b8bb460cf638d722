"""The one text analyzer both search engines share: jieba search-mode segmentation in Python.

Chinese analysis plugins are not available for OpenSearch here, and tantivy has none built in, so
text is segmented once, in Python, and handed to each engine as whitespace-separated tokens. Both
engines then index exactly the same terms and their BM25 statistics agree.

    >>> a = default_analyzer()
    >>> a.tokens("急性心肌梗死 Acute MI")          # doctest: +SKIP
    ['急性', '心肌', '梗死', '心肌梗死', '急性心肌梗死', 'acute', 'mi']

What it does, in order: NFKC normalisation (full-width letters and digits become ASCII), jieba
search-mode segmentation with user dictionaries (ontology labels, vocabulary names, knowledge-base
names), lower-casing, dropping punctuation and stop words, and optionally pinyin. Synonyms
(``synonyms.csv``: colloquial ↔ clinical terms) are expanded at **query** time only, see
``query_tokens``.
"""

from __future__ import annotations

import csv
import logging
import re
import unicodedata
import warnings
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import ontology
from ontology.model import Ontology, load_ontology

if TYPE_CHECKING:
    import jieba

    from graph import GraphStore

SYNONYMS_PATH = Path(__file__).with_name("synonyms.csv")
VOCAB_DIR = Path(ontology.__file__).with_name("vocab")

STOP_WORDS: frozenset[str] = frozenset(
    "的 了 吗 呢 吧 啊 呀 着 过 和 与 及 或 是 在 有 我 你 他 她 它 我们 你们 他们 这 那 这个 那个 "
    "有点 有些 一点 一下 怎么 怎么办 什么 为什么 哪里 哪个 请问 还是 就是 还有 以及 "
    "a an the of and or to in on for with by at is are was be".split()
)
"""Words too common to tell documents apart. Our own short list, tuned to health questions."""

MAX_TOKEN = 64
"""Longer tokens are dropped: no real term is that long, and Lucene's whitespace tokenizer would split it."""

_SPLIT_TERM = re.compile(r"[\s,，、;；:：/()（）\[\]【】<>《》\"'“”]+")


@cache
def _base_tokenizer() -> jieba.Tokenizer:
    """jieba's main dictionary, loaded once per process (about a second); analyzers copy it."""
    with warnings.catch_warnings():
        # jieba 0.42 has invalid escape sequences and may import pkg_resources: noise, not our bug
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", SyntaxWarning)
        warnings.simplefilter("ignore", UserWarning)
        import jieba
    logging.getLogger("jieba").setLevel(logging.WARNING)
    tokenizer = jieba.Tokenizer()
    tokenizer.initialize()
    return tokenizer


def _private_tokenizer(words: Iterable[str]) -> jieba.Tokenizer:
    """A tokenizer of our own (never jieba's global one) with the user words added."""
    base = _base_tokenizer()
    tokenizer = type(base)()
    tokenizer.FREQ, tokenizer.total, tokenizer.initialized = dict(base.FREQ), base.total, True
    for word in sorted(set(words)):
        tokenizer.add_word(word)  # no frequency: jieba picks one that keeps the word whole
    return tokenizer


def load_synonyms(path: Path = SYNONYMS_PATH) -> dict[str, frozenset[str]]:
    """term → every term of its group (itself included). Rows sharing a term join one group."""
    groups: list[set[str]] = []
    with path.open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            terms = {_normalise(row["colloquial"]).strip(), _normalise(row["clinical"]).strip()}
            joined = [g for g in groups if g & terms]
            merged = terms.union(*joined)
            groups = [g for g in groups if not g & terms] + [merged]
    return {t: frozenset(g) for g in groups for t in g}


def ontology_terms(onto: Ontology, vocab_dir: Path = VOCAB_DIR) -> set[str]:
    """Chinese terms the ontology declares: class and property labels, and vocabulary names."""
    labels = [c.label.zh for c in onto.classes.values()] + [p.label.zh for p in onto.properties.values()]
    names: list[str] = []
    for path in sorted(vocab_dir.glob("*.csv")):
        with path.open(encoding="utf-8", newline="") as f:
            names += [row["name_zh"] for row in csv.DictReader(f) if row.get("name_zh")]
    return _dictionary_words(labels + names)


def store_terms(store: GraphStore, tables: Iterable[str] | None = None) -> set[str]:
    """Names held in a knowledge base: every ``name`` of tables that carry no personal data.

    People's names are never added: a person's table has sensitivity-annotated properties.
    """
    onto = store.onto
    if tables is None:
        tables = [t for t in onto.tables if "name" in onto.table_properties(t)
                  and not any(p.sensitivity for p in onto.table_properties(t).values())]
    names: list[str] = []
    for table in tables:
        names += [n for n in store.nodes(table, ["name"])["name"] if isinstance(n, str)]
    return _dictionary_words(names)


def _dictionary_words(texts: Iterable[str]) -> set[str]:
    """Whole Chinese terms fit for a user dictionary: split at punctuation, 2–20 characters, with a Han character."""
    out = set()
    for text in texts:
        for part in _SPLIT_TERM.split(_normalise(text)):
            if 2 <= len(part) <= 20 and any(_is_han(ch) for ch in part):
                out.add(part)
    return out


def _normalise(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def _is_han(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf"


def _is_word(token: str) -> bool:
    return any(ch.isalnum() for ch in token)


class Analyzer:
    """Text → tokens, the same for documents, queries and both engines. Build once, reuse.

    ``words`` join jieba's dictionary so that terms such as 急性心肌梗死 stay whole (their parts are
    emitted too, search mode). ``synonyms`` map a term to its group, expanded in queries.
    ``pinyin=True`` adds the toneless pinyin of each Chinese token at index time, so ``xinjigengsi``
    finds 心肌梗死.

    Synonyms are expanded at query time rather than index time: editing ``synonyms.csv`` then needs
    no re-indexing, documents keep the statistics of their real text, and the highlight shows the
    word the document actually uses.
    """

    def __init__(self, words: Iterable[str] = (), *, synonyms: dict[str, frozenset[str]] | None = None,
                 stop_words: Iterable[str] = STOP_WORDS, pinyin: bool = False) -> None:
        self.synonyms = dict(synonyms or {})
        self.stop_words = frozenset(stop_words)
        self.pinyin = pinyin
        self._tokenizer = _private_tokenizer([*words, *self.synonyms])

    @classmethod
    def for_ontology(cls, onto: Ontology | None = None, *, store: GraphStore | None = None,
                     pinyin: bool = False) -> Analyzer:
        """The project's analyzer: ontology and vocabulary terms, knowledge-base names when a store is given."""
        onto = onto or load_ontology()
        words = ontology_terms(onto) | (store_terms(store) if store is not None else set())
        return cls(words, synonyms=load_synonyms(), pinyin=pinyin)

    def tokens(self, text: str | None) -> list[str]:
        """Index-side tokens, in text order, repeats kept (they are term frequencies)."""
        out = list(self._segment(text or ""))
        if self.pinyin:
            out += [p for p in map(self._pinyin, out) if p]
        return out

    def analyze(self, text: str | None) -> str:
        """The tokens joined by single spaces: what the engines' whitespace tokenizers index."""
        return " ".join(self.tokens(text))

    def query_tokens(self, text: str | None) -> list[str]:
        """Query-side tokens: distinct, in order, each followed by its synonyms."""
        out: dict[str, None] = {}
        for token in self._segment(text or ""):
            out[token] = None
            for synonym in sorted(self.synonyms.get(token, ())):
                out[synonym] = None
        return list(out)

    def _segment(self, text: str) -> Iterator[str]:
        for raw in self._tokenizer.cut_for_search(_normalise(text)):
            token = raw.strip().lower()
            if token and len(token) <= MAX_TOKEN and _is_word(token) and token not in self.stop_words:
                yield token
                yield from self._inner_words(token)

    def _inner_words(self, token: str) -> Iterator[str]:
        """Dictionary words of four or more characters inside a longer word.

        jieba's search mode emits only the 2- and 3-character words inside a long word, so
        急性心肌梗死 alone would not match a query for 心肌梗死.
        """
        freq = self._tokenizer.FREQ
        for size in range(4, len(token)):
            for start in range(len(token) - size + 1):
                part = token[start:start + size]
                if freq.get(part) and part not in self.stop_words:
                    yield part

    @staticmethod
    def _pinyin(token: str) -> str | None:
        if not all(_is_han(ch) for ch in token):
            return None
        from pypinyin import lazy_pinyin

        return "".join(lazy_pinyin(token))


@cache
def default_analyzer(pinyin: bool = False) -> Analyzer:
    """The ontology-only analyzer, built once per process."""
    return Analyzer.for_ontology(pinyin=pinyin)
