"""The shared analyzer: segmentation with our dictionaries, synonyms, stop words, English and pinyin."""

from __future__ import annotations

from pathlib import Path

from search.analyzer import STOP_WORDS, Analyzer, default_analyzer, load_synonyms, ontology_terms, store_terms


def test_user_dictionary_keeps_terms_whole() -> None:
    plain, custom = Analyzer(), Analyzer(["甲乙丙丁病"])
    assert "甲乙丙丁病" not in plain.tokens("患有甲乙丙丁病")
    assert "甲乙丙丁病" in custom.tokens("患有甲乙丙丁病")


def test_ontology_terms_come_from_labels_and_vocabularies(onto) -> None:
    terms = ontology_terms(onto)
    assert {onto.cls("Institution").label.zh, onto.prop("notifiable_class").label.zh} <= terms
    assert {"阿莫西林", "卡介苗", "急性心肌梗死"} <= terms                     # drugs, vaccines, icd10 names
    assert "细菌性痢疾" in terms and "志贺菌病" in terms                        # 志贺菌病[细菌性痢疾] is split
    assert all(2 <= len(t) <= 20 for t in terms)


def test_search_mode_emits_whole_terms_and_their_parts(analyzer: Analyzer) -> None:
    tokens = analyzer.tokens("急性心肌梗死")
    assert {"急性心肌梗死", "心肌梗死", "急性", "心肌", "梗死"} <= set(tokens)
    # a query for the inner term must meet a document holding only the longer one
    assert set(analyzer.query_tokens("心肌梗死")) & set(tokens) >= {"心肌梗死"}


def test_synonyms_expand_queries_not_documents(analyzer: Analyzer) -> None:
    assert "腹泻" not in analyzer.tokens("拉肚子")
    assert {"拉肚子", "腹泻", "拉稀"} <= set(analyzer.query_tokens("拉肚子"))   # 拉稀 joins through 腹泻
    assert {"心梗", "心肌梗死"} <= set(analyzer.query_tokens("心梗"))
    assert "发烧" in analyzer.query_tokens("发热")                               # both directions


def test_synonym_groups_merge_rows_sharing_a_term(tmp_path: Path) -> None:
    path = tmp_path / "syn.csv"
    path.write_text("colloquial,clinical\n甲,乙\n丙,乙\n丁,戊\n", encoding="utf-8")
    groups = load_synonyms(path)
    assert groups["甲"] == groups["丙"] == frozenset("甲乙丙")
    assert groups["丁"] == frozenset("丁戊")


def test_project_synonyms_file_is_well_formed() -> None:
    groups = load_synonyms()
    assert len({g for g in groups.values()}) >= 35
    assert all(len(g) >= 2 and all(t.strip() == t and t for t in g) for g in groups.values())


def test_stop_words_and_punctuation_are_dropped(analyzer: Analyzer) -> None:
    tokens = analyzer.tokens("我有点发烧了，怎么办？")
    assert "发烧" in tokens
    assert not set(tokens) & STOP_WORDS
    assert all(any(ch.isalnum() for ch in t) for t in tokens)
    assert analyzer.tokens("的了吗") == [] and analyzer.tokens(None) == [] and analyzer.query_tokens("") == []


def test_english_is_lower_cased_and_full_width_normalised(analyzer: Analyzer) -> None:
    assert analyzer.tokens("Acute MYOCARDIAL Infarction") == ["acute", "myocardial", "infarction"]
    assert analyzer.tokens("ＣＯＶＩＤ－１９") == ["covid", "19"]
    assert analyzer.tokens("The flu of 2024") == ["flu", "2024"]


def test_mixed_text_keeps_order(analyzer: Analyzer) -> None:
    tokens = analyzer.tokens("浙江省人民医院 Hospital 发热门诊")
    assert tokens.index("浙江省") < tokens.index("hospital") < tokens.index("发热")
    assert analyzer.analyze("浙江省人民医院 Hospital") == " ".join(analyzer.tokens("浙江省人民医院 Hospital"))


def test_pinyin_is_added_to_documents_only() -> None:
    a = Analyzer(pinyin=True)
    assert "fashao" in a.tokens("发烧")
    assert "fashao" not in a.query_tokens("发烧")
    assert "fashao" in a.query_tokens("fashao")        # a pinyin query meets the indexed pinyin


def test_default_analyzer_is_built_once() -> None:
    assert default_analyzer() is default_analyzer()


def test_knowledge_base_names_join_the_dictionary_but_never_people(store) -> None:
    terms = store_terms(store)
    institution = next(iter(store.node_classes("Institution").items()))
    name = store.get(str(institution[1]), str(institution[0]))["name"]
    assert any(part in terms for part in name.split())
    resident = next(iter(store.node_classes("Resident").items()))
    person = store.get(str(resident[1]), str(resident[0]))["name"]
    assert person not in terms
