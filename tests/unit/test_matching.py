"""Person matching: normalisation, comparison levels, the deterministic rule, Python ≡ Splink weights, blocking."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.matching import MatchModel, PersonMatcher, normalise
from models.matching.comparisons import PERSON
from models.matching.evaluate import ordered, province_truth, true_pairs
from models.matching.model import MATCH
from ontology.identifiers import id_check_char


def make_id(division: str, birth: str, seq: str) -> str:
    body = division + birth.replace("-", "") + seq
    return body + id_check_char(body)


ID = make_id("330782", "1985-06-08", "261")  # odd sequence digit → male (GB/T 2261.1 code "1")
BASE = {"key": "PHIS:1", "name": "王伟", "sex": "1", "birth_date": "1985-06-08", "id_number": ID,
        "phone": "15615003036", "address": "义乌市兴隆镇人民路386号", "division_code": "330782"}


@pytest.fixture(scope="module")
def model() -> MatchModel:
    return MatchModel.load()


def level(c, field: str) -> str:
    return next(f.level for f in c.fields if f.field == field)


def test_normalise_full_width_pinyin_and_legacy_id_upgrade():
    legacy = ID[:6] + ID[8:17]  # GB 11643-1989 15-digit form: 2-digit year, no check digit
    n = normalise({**BASE, "name": " 王　伟 ", "id_number": legacy, "phone": "１５６１５００３０３６",
                   "birth_date": pd.Timestamp("1985-06-08")})
    assert n["name"] == "王伟" and n["name_py"] == "wangwei" and n["surname_py"] == "wang" and n["given_py"] == "wei"
    assert n["id18"] == ID and n["id_valid"] and n["id_consistent"]
    assert n["phone"] == "15615003036"
    assert n["birth_date"] == "1985-06-08" and n["birth_swapped"] == "1985-08-06"
    assert normalise({**BASE, "birth_date": "1985-06-20"})["birth_swapped"] is None  # day 20 cannot be a month
    assert normalise({**BASE, "birth_date": "1985-06-08"})["birth_md"] == "06-08"
    assert normalise({**BASE, "name": "欧阳娜娜"})["surname_py"] == "ouyang"
    assert normalise({**BASE, "sex": "9"})["sex"] is None  # GB/T 2261.1: 9 = not stated
    bad = normalise({**BASE, "id_number": ID[:10] + str((int(ID[10]) + 1) % 10) + ID[11:]})
    assert not bad["id_valid"]


def test_swapped_birth_date_is_precomputed():
    n = normalise({**BASE, "birth_date": "1985-06-03"})
    assert n["birth_swapped"] == "1985-03-06"


def test_homophone_scores_pinyin_not_else(model):
    c = model.compare(BASE, {**BASE, "key": "H:1", "name": "王玮"})
    assert level(c, "name") == "pinyin"
    other = model.compare(BASE, {**BASE, "key": "H:2", "name": "王芳芳"})
    assert level(other, "name") == "surname"
    pin = next(f.weight for f in c.fields if f.field == "name")
    assert pin > 0 > next(f.weight for f in other.fields if f.field == "name")


def test_traditional_and_variant_characters_compare_as_the_same_name(model):
    written = {**BASE, "name": "王偉"}
    c = model.compare(BASE, {**written, "key": "H:1"})
    assert level(c, "name") == "exact", "王偉 and 王伟 are one name written two ways"
    assert normalise({**BASE, "name": "陳麗華"})["name"] == "陈丽华"


def test_transposed_birth_date_and_one_digit_off_id(model):
    typo = ID[:12] + str((int(ID[12]) + 3) % 10) + ID[13:]
    c = model.compare({**BASE, "birth_date": "1985-06-03", "id_number": None},
                      {**BASE, "key": "H:1", "birth_date": "1985-03-06", "id_number": typo})
    assert level(c, "birth_date") == "transposed"
    assert level(c, "id_number") == "null"
    d = model.compare(BASE, {**BASE, "key": "H:1", "id_number": typo})
    assert level(d, "id_number") == "one_digit_off" and not d.deterministic
    assert level(model.compare(BASE, {**BASE, "key": "H:1", "address": BASE["address"][3:]}),
                 "phone_address") == "both"


def test_weights_probability_and_to_dict(model):
    c = model.compare(BASE, {**BASE, "key": "H:1"})
    assert math.isclose(c.weight, model.prior_weight + sum(f.weight for f in c.fields))
    assert math.isclose(c.probability, 2 ** c.weight / (1 + 2 ** c.weight))
    d = c.to_dict()
    assert d["key"] == "H:1" and d["fields"][0]["field"] == "name" and isinstance(d["fields"][0]["weight"], float)


def test_deterministic_rule_and_newborn_exception(model):
    same = model.compare(BASE, {**BASE, "key": "H:1", "name": "张三", "phone": None, "address": None})
    assert same.deterministic and same.decision == MATCH
    legacy = model.compare(BASE, {**BASE, "key": "H:2", "id_number": ID[:6] + ID[8:17]})
    assert legacy.deterministic
    # A newborn daughter registered under her father's id: sex and birth date contradict the id.
    baby = {**BASE, "key": "H:3", "name": "王小妹", "sex": "2", "birth_date": "2024-03-01"}
    c = model.compare(BASE, baby)
    assert not c.deterministic and c.decision != MATCH
    # An invalid check digit never links deterministically, even when both sides carry the same string.
    wrong = ID[:17] + ("0" if ID[17] != "0" else "1")
    assert not model.compare({**BASE, "id_number": wrong}, {**BASE, "key": "H:4", "id_number": wrong}).deterministic


def test_saved_model_round_trip_and_drift_check(model, tmp_path: Path):
    path = tmp_path / "m.json"
    model.save(path)
    again = MatchModel.load(path)
    assert again.weights == model.weights and again.match_threshold == model.match_threshold
    data = again.to_json()
    data["comparisons"][0]["levels"][2]["sql"] = '"name_l" = "name_r"'
    with pytest.raises(ValueError):
        MatchModel.from_json(data)
    assert 0 < model.possible_threshold <= model.match_threshold < 1
    assert model.model_card["test_metrics"]["f1"] >= 0.99


@pytest.fixture(scope="module")
def records(province: Path):
    res, truth, _ = province_truth(province)
    return res, truth


def test_python_weights_equal_splink_predict(model, records):
    res, _ = records
    linker = model.splink_linker(res)
    from models.matching.model import quiet_splink

    with quiet_splink():
        pred = linker.inference.predict().as_pandas_dataframe()
    assert len(pred) > 300
    rng = np.random.default_rng(3)
    sample = pred.iloc[rng.choice(len(pred), 300, replace=False)]
    by_key = res.set_index("key").to_dict("index")
    diffs = []
    for row in sample.itertuples():
        a = {"key": row.unique_id_l, **by_key[row.unique_id_l]}
        b = {"key": row.unique_id_r, **by_key[row.unique_id_r]}
        diffs.append(abs(model.compare(a, b).weight - row.match_weight))
    assert max(diffs) < 1e-6
    # Both sides really exercised different levels, not one constant weight.
    assert sample["match_weight"].std() > 1


def test_blocking_recall(model, records):
    res, truth = records
    matcher = PersonMatcher(model)
    matcher.add(res)
    assert len(matcher) == len(res)
    pairs = true_pairs(truth.set_index("key")["person"])
    rows = res.set_index("key").to_dict("index")
    found = sum(1 for a, b in pairs if b in matcher.candidates({"key": a, **rows[a]}))
    assert found / len(pairs) >= 0.995


def test_realtime_match_ranks_true_duplicate_first_and_remove(model, records):
    res, truth = records
    matcher = PersonMatcher(model)
    matcher.add(res)
    person = truth.groupby("person")["key"].apply(list)
    multi = person[person.str.len() > 1].iloc[:50]
    rows = res.set_index("key").to_dict("index")
    for keys in multi:
        probe = {"key": keys[0], **rows[keys[0]]}
        got = matcher.match(probe, limit=5)
        assert all(c.key != keys[0] for c in got)
        assert got and got[0].key in keys[1:]
        assert [c.weight for c in got] == sorted((c.weight for c in got), reverse=True) or got[0].deterministic
    victim = multi.iloc[0][1]
    matcher.remove(victim)
    assert victim not in matcher.candidates({"key": multi.iloc[0][0], **rows[multi.iloc[0][0]]})
    assert len(matcher) == len(res) - 1
    assert ordered("b", "a") == ("a", "b")


def test_person_config_sql_and_python_levels_are_paired():
    for spec in PERSON.comparisons:
        assert spec.levels[0].is_null and spec.levels[-1].sql == "ELSE"
        assert len({lv.label for lv in spec.levels}) == len(spec.levels)
