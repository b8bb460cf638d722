"""The anonymisation engine on small tables: hand-worked optima, a brute-force cross-check of the lattice search on
random data, the EMD formulas against a transport LP, and the error cases."""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import linprog

from ontology.errors import HealthGraphError
from services.anonymity import (
    DistinctLDiversity,
    EntropyLDiversity,
    EqualDistanceTCloseness,
    HierarchicalTCloseness,
    Hierarchy,
    HierarchyInvalid,
    HierarchyMissingValue,
    HierarchyNotMonotone,
    InvalidConfiguration,
    InvalidPrivacyModel,
    KAnonymity,
    NoSolution,
    anonymize,
    date_hierarchy,
    division_hierarchy,
    interval_hierarchy,
    suppression_hierarchy,
)
from services.anonymity.models import SensitiveDomain
from services.anonymity.verify import _tree_emd

# ---------------------------------------------------------------------- hierarchies


def test_csv_round_trip(tmp_path):
    path = tmp_path / "sex.csv"
    path.write_text("\ufeffMale;*\r\n\r\nFemale;*\r\n", encoding="utf-8")
    sex = Hierarchy.from_csv(path)
    assert sex.name == "sex" and sex.values == ("Male", "Female") and sex.height == 2
    assert sex.generalise("Female", 1) == "*"
    sex.to_csv(tmp_path / "copy.csv")
    assert Hierarchy.from_csv(tmp_path / "copy.csv").rows == sex.rows


def test_builders():
    age = interval_hierarchy([39, 40, 7], widths=(5, 10, 20), name="age")
    assert age.rows[0] == ("39", "35-39", "30-39", "20-39", "*")
    assert age.generalise(7, 2) == "0-9"
    day = date_hierarchy(["2024-03-07", dt.date(2023, 12, 31)], name="visit")
    assert day.rows == (("2024-03-07", "2024-03", "2024", "*"), ("2023-12-31", "2023-12", "2023", "*"))
    where = division_hierarchy(["330106", "110101"], name="division")
    assert where.rows[0] == ("330106", "330100", "330000", "*")
    assert suppression_hierarchy(["a", "b", "a"]).rows == (("a", "*"), ("b", "*"))


@pytest.mark.parametrize("build", [
    lambda: interval_hierarchy([1, 2], widths=(10, 25)),
    lambda: interval_hierarchy(["x"], widths=(5,)),
    lambda: date_hierarchy(["not a date"]),
    lambda: division_hierarchy(["33010"]),
    lambda: Hierarchy([["a", "*"], ["b", "x", "*"]]),
    lambda: Hierarchy([["a", "A", "*"], ["a", "B", "*"]]),
    lambda: Hierarchy([]),
], ids=["widths-not-nested", "not-integer", "not-date", "short-division", "ragged", "conflicting-duplicate", "empty"])
def test_invalid_hierarchies(build):
    with pytest.raises(HierarchyInvalid) as caught:
        build()
    assert caught.value.code == "HG-1201" and isinstance(caught.value, HealthGraphError)


def test_identical_duplicate_rows_are_merged():
    assert len(Hierarchy([["a", "*"], ["a", "*"], ["b", "*"]])) == 2


def test_non_monotone_hierarchy():
    with pytest.raises(HierarchyNotMonotone) as caught:
        Hierarchy([["a", "X", "P"], ["b", "X", "Q"], ["c", "Y", "*"]], name="grade")
    error = caught.value
    assert error.code == "HG-1203" and "层级不单调" in error.message and "'X'" in error.message
    assert error.details["generalisations"] == ["P", "Q"]


def test_missing_hierarchy_value():
    data = pd.DataFrame({"age": [30, 31, 99], "sex": ["M", "F", "M"]})
    hierarchies = {"age": interval_hierarchy([30, 31], (10,), name="age"), "sex": suppression_hierarchy(["M", "F"])}
    with pytest.raises(HierarchyMissingValue) as caught:
        anonymize(data, hierarchies, KAnonymity(1))
    error = caught.value
    assert error.code == "HG-1202" and error.details == {"column": "age", "values": ["99"], "records": 1}
    assert str(error).startswith("HG-1202 层级缺少取值 hierarchy lacks value '99' for column 'age'")


# ---------------------------------------------------------------------- bad calls

SMALL = pd.DataFrame({"age": [21, 22, 23, 24, 31, 32], "sex": list("MMFFMM"), "diag": list("abcabc")})


def small_hierarchies() -> dict[str, Hierarchy]:
    return {"age": interval_hierarchy(SMALL["age"], (10,), name="age"), "sex": suppression_hierarchy(SMALL["sex"])}


@pytest.mark.parametrize("make", [
    lambda: KAnonymity(0), lambda: KAnonymity(2.5), lambda: DistinctLDiversity("diag", 0),
    lambda: EntropyLDiversity("diag", 0.5), lambda: EqualDistanceTCloseness("diag", 1.5),
    lambda: EqualDistanceTCloseness("", 0.2),
    lambda: HierarchicalTCloseness("diag", 0.2, Hierarchy([["a", "A"], ["b", "B"]])),
], ids=["k0", "k-float", "l0", "entropy-l-below-1", "t-above-1", "no-sensitive", "hierarchy-two-tops"])
def test_invalid_models(make):
    with pytest.raises(InvalidPrivacyModel) as caught:
        make()
    assert caught.value.code == "HG-1204"


@pytest.mark.parametrize("kwargs, error", [
    ({"suppression_limit": 1.5}, InvalidConfiguration),
    ({"metric": "loss"}, InvalidConfiguration),
    ({"suppressed": "drop"}, InvalidConfiguration),
    ({"hierarchies": {"weight": suppression_hierarchy(["1"])}}, InvalidConfiguration),
    ({"data": SMALL.iloc[0:0]}, InvalidConfiguration),
    ({"models": [DistinctLDiversity("age", 2)]}, InvalidPrivacyModel),
    ({"models": [DistinctLDiversity("ward", 2)]}, InvalidPrivacyModel),
    ({"models": []}, InvalidPrivacyModel),
    ({"max_nodes": 5}, InvalidConfiguration),
], ids=["limit", "metric", "suppressed", "unknown-qi", "empty-data", "sensitive-is-qi", "unknown-sensitive",
        "no-models", "lattice-too-large"])
def test_invalid_calls(kwargs, error):
    call = {"data": SMALL, "hierarchies": small_hierarchies(), "models": [KAnonymity(2)], **kwargs}
    with pytest.raises(error) as caught:
        anonymize(**call)
    assert caught.value.code in ("HG-1204", "HG-1205")


# ---------------------------------------------------------------------- hand-worked optima


def test_k_anonymity_by_hand():
    # Only (age decade, sex) makes every class 2 records; the other feasible nodes generalise it further.
    # Loss: the age column's 4 twenties and 2 thirties cost 4·log2(4) + 2·log2(2) = 10 bits; sex is untouched.
    result = anonymize(SMALL, small_hierarchies(), KAnonymity(2))
    assert result.levels == {"age": 1, "sex": 0} and result.loss == pytest.approx(10.0)
    top = 6 * math.log2(6) + 4 * math.log2(6 / 4) + 2 * math.log2(6 / 2)
    assert result.relative_loss == pytest.approx(10 / top)
    assert result.data["age"].tolist() == ["20-29"] * 4 + ["30-39"] * 2
    assert result.class_sizes.to_dict() == {2: 3} and result.suppressed == 0
    assert result.verification.ok and result.verification.achieved == {"2-anonymity": 2.0}


def test_k1_keeps_the_original():
    result = anonymize(SMALL, small_hierarchies(), KAnonymity(1))
    assert result.node == (0, 0) and result.loss == 0 and result.relative_loss == 0
    assert result.data["age"].tolist() == [str(a) for a in SMALL["age"]]


OUTLIER = pd.concat([SMALL, pd.DataFrame({"age": [45], "sex": ["F"], "diag": ["a"]})], ignore_index=True)


def outlier_hierarchies() -> dict[str, Hierarchy]:
    return {"age": interval_hierarchy(OUTLIER["age"], (10,), name="age"),
            "sex": suppression_hierarchy(OUTLIER["sex"])}


@pytest.mark.parametrize("metric, loss", [("entropy", 10.0), ("nm_entropy", 10.0), ("dm_star", 13.0), ("dm", 19.0)])
def test_suppression_by_hand(metric, loss):
    # limit 1/7 allows one record: the lone 45-year-old is suppressed at (decade, sex). Classes 2, 2, 2 and the
    # suppressed 1: DM* = 4+4+4+1, DM = 12 + 1·7; the entropies do not charge a lone suppressed record.
    result = anonymize(OUTLIER, outlier_hierarchies(), KAnonymity(2), suppression_limit=1 / 7, metric=metric)
    assert result.levels == {"age": 1, "sex": 0} and result.loss == pytest.approx(loss)
    assert result.suppressed == 1 and result.max_suppressed == 1
    assert result.suppressed_rows.tolist() == [False] * 6 + [True]
    assert len(result.data) == 6 and list(result.data.index) == list(range(6))


def test_suppressed_rows_marked():
    result = anonymize(OUTLIER, outlier_hierarchies(), KAnonymity(2), suppression_limit=0.15, suppressed="mark")
    assert len(result.data) == 7
    assert result.data.iloc[6][["age", "sex"]].tolist() == ["*", "*"] and result.data.iloc[6]["diag"] == "a"
    assert result.verification.ok and result.verification.released == 6


def test_without_suppression_generalises_further():
    # Without suppression the 45-year-old forces age to '*': (*, sex) gives classes of 4 and 3.
    result = anonymize(OUTLIER, outlier_hierarchies(), KAnonymity(2))
    assert result.levels == {"age": 2, "sex": 0} and result.loss == pytest.approx(7 * math.log2(7))


def test_no_solution():
    with pytest.raises(NoSolution) as caught:
        anonymize(OUTLIER, outlier_hierarchies(), KAnonymity(8))
    error = caught.value
    assert error.code == "HG-1206" and error.details["min_suppressed"] == 7 and "无可行匿名方案" in error.message


def test_l_diversity_by_hand():
    # diag a,b,c,a,b,c: (decade, sex) classes hold {a,b}, {c,a}, {b,c}: distinct-2 holds there, distinct-3 needs age '*'.
    two = anonymize(SMALL, small_hierarchies(), DistinctLDiversity("diag", 2))
    assert two.levels == {"age": 1, "sex": 0}
    three = anonymize(SMALL, small_hierarchies(), EntropyLDiversity("diag", 3))
    assert three.levels == {"age": 2, "sex": 1} and three.verification.achieved["entropy-3-diversity(diag)"] == (
        pytest.approx(3.0))


TREE = Hierarchy([["a", "AB", "*"], ["b", "AB", "*"], ["c", "CD", "*"], ["d", "CD", "*"]], name="diag")


@pytest.mark.parametrize("members, hierarchical, equal", [(["a", "b"], 0.5, 0.5), (["a", "c"], 0.25, 0.5),
                                                          (["a", "a"], 0.625, 0.75)])
def test_emd_by_hand(members, hierarchical, equal):
    # Overall one each of a, b, c, d. {a, b}: all mass must cross the root (cost 1) → 0.5. {a, c}: the surplus
    # moves within AB and CD (cost ½ each) → 0.25. {a, a}: ¼ to b at ½, ½ across the root at 1 → 0.625.
    domain = SensitiveDomain("diag", ("a", "b", "c", "d"), np.array([1, 1, 1, 1]))
    histogram = np.array([[members.count(v) for v in "abcd"]])
    sizes = np.array([2])
    for model, emd in ((HierarchicalTCloseness("diag", hierarchical, TREE), hierarchical),
                       (EqualDistanceTCloseness("diag", equal), equal)):
        assert not model.check(domain)(sizes, histogram)[0]
        tighter = type(model)(**{**model.__dict__, "t": emd - 1e-6})
        assert tighter.check(domain)(sizes, histogram)[0]
    share = pd.DataFrame([[members.count(v) / 2 - 0.25 for v in "abcd"]], columns=list("abcd"))
    assert _tree_emd(share, TREE).iloc[0] == pytest.approx(hierarchical)


def test_hierarchical_emd_matches_transport_lp():
    # Li et al.'s closed form (the search) and the tree-edge form (the verification) against the EMD from first
    # principles: the optimal transport LP with ground distance level(lowest common ancestor) / top level.
    tree = Hierarchy([[v, g, s, "*"] for v, g, s in [("a", "G1", "S1"), ("b", "G1", "S1"), ("c", "G2", "S1"),
                                                    ("d", "G3", "S2"), ("e", "G3", "S2"), ("f", "G4", "S2")]],
                     name="s")
    values = list("abcdef")
    distance = np.array([[next(level for level in range(4) if tree.generalise(u, level) == tree.generalise(v, level))
                          / 3 for v in values] for u in values])
    rng = np.random.default_rng(7)
    overall = rng.integers(1, 9, size=6)
    domain = SensitiveDomain("s", tuple(values), overall)
    for _ in range(40):
        counts = rng.integers(0, 6, size=6)
        counts[rng.integers(0, 6)] += 1
        p, q = counts / counts.sum(), overall / overall.sum()
        flows = linprog(distance.ravel(), A_eq=_transport_constraints(6), b_eq=np.concatenate([p, q]),
                        bounds=(0, None), method="highs")
        emd = flows.fun
        check = HierarchicalTCloseness("s", min(1.0, emd * (1 + 1e-7) + 1e-9), tree).check(domain)
        assert not check(np.array([counts.sum()]), counts[None, :])[0]
        if emd > 1e-6:
            check = HierarchicalTCloseness("s", emd * (1 - 1e-6), tree).check(domain)
            assert check(np.array([counts.sum()]), counts[None, :])[0]
        share = pd.DataFrame([p - q], columns=values)
        assert _tree_emd(share, tree).iloc[0] == pytest.approx(emd, abs=1e-9)


def _transport_constraints(size: int) -> np.ndarray:
    rows = np.zeros((2 * size, size * size))
    for i in range(size):
        rows[i, i * size:(i + 1) * size] = 1
        rows[size + i, i::size] = 1
    return rows


# ---------------------------------------------------------------------- brute force on random tables


def random_table(seed: int, n: int) -> tuple[pd.DataFrame, dict[str, Hierarchy], Hierarchy]:
    rng = np.random.default_rng(seed)
    data = pd.DataFrame({
        "age": rng.integers(20, 60, n),
        "zone": rng.choice(["330102", "330106", "330203", "330211", "110101"], n),
        "sex": rng.choice(["F", "M"], n),
        "diag": rng.choice(list("abcdef"), n, p=[0.3, 0.25, 0.2, 0.1, 0.1, 0.05]),
    })
    hierarchies = {"age": interval_hierarchy(range(20, 60), (10, 20), name="age"),
                   "zone": division_hierarchy(data["zone"], name="zone"), "sex": suppression_hierarchy(["F", "M"])}
    diag = Hierarchy([[v, "AB" if v in "ab" else "CDEF", "*"] for v in "abcdef"], name="diag")
    return data, hierarchies, diag


def brute_force(data, hierarchies, models, limit, metric):
    """Every node, straight from the definitions: (loss, height, node) of the best feasible one, or None."""
    quasi, n = list(hierarchies), len(data)
    allowed = math.floor(limit * n + 1e-9)
    columns = {c: data[c].astype(str).tolist() for c in data.columns}
    best = None
    for node in itertools.product(*(range(hierarchies[c].height) for c in quasi)):
        shown = {c: [hierarchies[c].generalise(v, level) for v in columns[c]] for c, level in zip(quasi, node, strict=True)}
        groups: dict[tuple[str, ...], list[int]] = {}
        for row in range(n):
            groups.setdefault(tuple(shown[c][row] for c in quasi), []).append(row)
        bad = [g for g in groups.values() if not all(_holds(m, g, columns) for m in models)]
        hidden = sorted(i for g in bad for i in g)
        if len(hidden) > allowed:
            continue
        loss = _loss(metric, columns, shown, list(groups.values()), bad, hidden, quasi)
        key = (round(loss, 9), sum(node), node)
        best = key if best is None or key < best else best
    return best


def _holds(model, members: list[int], columns: dict[str, list[str]]) -> bool:
    if isinstance(model, KAnonymity):
        return len(members) >= model.k
    values = Counter(columns[model.sensitive][i] for i in members)
    if isinstance(model, DistinctLDiversity):
        return len(values) >= model.l
    p = {v: c / len(members) for v, c in values.items()}
    if isinstance(model, EntropyLDiversity):
        return -sum(x * math.log(x) for x in p.values()) >= math.log(model.l) - 1e-9
    overall = Counter(columns[model.sensitive])
    excess = {v: p.get(v, 0.0) - c / len(columns[model.sensitive]) for v, c in overall.items()}
    if isinstance(model, EqualDistanceTCloseness):
        return sum(abs(x) for x in excess.values()) / 2 <= model.t + 1e-9
    return _tree_distance(excess, model.hierarchy) <= model.t + 1e-9


def _loss(metric, columns, shown, groups, bad, hidden, quasi) -> float:
    n = len(columns[quasi[0]])
    sizes = [len(g) for g in groups]
    bad_sizes = [len(g) for g in bad]
    if metric == "dm_star":
        return float(sum(s * s for s in sizes))
    if metric == "dm":
        return float(sum(s * s for s in sizes) - sum(s * s for s in bad_sizes) + n * sum(bad_sizes))
    loss = 0.0
    for column in quasi:
        a, b = Counter(columns[column]), Counter(shown[column])
        loss += sum(math.log2(b[g] / a[v]) for v, g in zip(columns[column], shown[column], strict=True))
        if metric == "nm_entropy" and hidden:
            counts = Counter(shown[column][i] for i in hidden)
            loss += sum(c * math.log2(len(hidden) / c) for c in counts.values())
    return loss


def _tree_distance(excess: dict[str, float], tree: Hierarchy) -> float:
    """EMD under a tree metric: each edge (weight 1 / (2·top level)) carries the net excess of the leaves below."""
    total = 0.0
    for level in range(tree.max_level):
        below: dict[str, float] = {}
        for value, mass in excess.items():
            node = tree.generalise(value, level)
            below[node] = below.get(node, 0.0) + mass
        total += sum(abs(mass) for mass in below.values()) / (2 * tree.max_level)
    return total


CASES = [
    ([KAnonymity(3)], 0.0, "entropy"),
    ([KAnonymity(4)], 0.1, "entropy"),
    ([KAnonymity(2), DistinctLDiversity("diag", 2)], 0.05, "nm_entropy"),
    ([EntropyLDiversity("diag", 2.5)], 0.1, "nm_entropy"),
    ([EntropyLDiversity("diag", 2)], 0.0, "dm"),
    ([EqualDistanceTCloseness("diag", 0.35), KAnonymity(2)], 0.1, "dm_star"),
    ([EqualDistanceTCloseness("diag", 0.3)], 0.0, "entropy"),
    ([KAnonymity(3)], 0.1, "dm"),
    ([KAnonymity(40)], 0.0, "dm_star"),
]


@pytest.mark.parametrize("seed, n", [(1, 30), (2, 80), (3, 200), (4, 500)])
@pytest.mark.parametrize("case", range(len(CASES) + 2))
def test_search_matches_brute_force(seed, n, case):
    data, hierarchies, diag = random_table(seed, n)
    extra = [([HierarchicalTCloseness("diag", 0.25, diag)], 0.1, "entropy"),
             ([HierarchicalTCloseness("diag", 0.2, diag), KAnonymity(2)], 0.0, "nm_entropy")]
    models, limit, metric = (CASES + extra)[case]
    expected = brute_force(data, hierarchies, models, limit, metric)
    if expected is None:
        with pytest.raises(NoSolution):
            anonymize(data, hierarchies, models, limit, metric)
        return
    result = anonymize(data, hierarchies, models, limit, metric)
    assert (result.node, result.loss) == (expected[2], pytest.approx(expected[0], rel=1e-9, abs=1e-9))
    assert result.verification.ok and result.suppressed <= result.max_suppressed
    # the released classes, regrouped here, satisfy the models (t against the distribution of all records)
    released = data.loc[~result.suppressed_rows.to_numpy()]
    columns = {c: data[c].astype(str).tolist() for c in data.columns}
    positions = np.flatnonzero(~result.suppressed_rows.to_numpy())
    for members in result.data.groupby(list(hierarchies), sort=False).indices.values():
        assert all(_holds(m, positions[members].tolist(), columns) for m in models)
    assert len(released) == len(result.data)


def test_many_wide_columns_need_several_keys():
    # 300^8 combinations overflow one int64 class key, so the classes are keyed by two. 30 rows appear twice and
    # 5 once; with room to suppress 5 the original data is 2-anonymous: DM* = 30·2² + 5·1².
    rng = np.random.default_rng(5)
    values = [f"v{j}" for j in range(300)]
    rows = rng.choice(values, (35, 8))
    data = pd.DataFrame(np.vstack([rows, rows[:30]]), columns=[f"q{i}" for i in range(8)])
    hierarchies = {c: suppression_hierarchy(values, name=c) for c in data.columns}
    result = anonymize(data, hierarchies, KAnonymity(2), suppression_limit=5 / 65, metric="dm_star")
    assert result.node == (0,) * 8 and result.loss == 125 and result.suppressed == 5 and result.verification.ok


# ---------------------------------------------------------------------- pycanon, when installed


def test_pycanon_agrees(pycanon):
    data, hierarchies, _ = random_table(11, 400)
    models = [KAnonymity(3), EntropyLDiversity("diag", 2), EqualDistanceTCloseness("diag", 0.3)]
    result = anonymize(data, hierarchies, models)
    quasi = list(hierarchies)
    achieved = result.verification.achieved
    theirs = pycanon(result.data, quasi, ["diag"])
    assert theirs["k"] == achieved["3-anonymity"] >= 3
    assert theirs["l_entropy"] in (math.floor(achieved["entropy-2-diversity(diag)"] - 1e-9),
                                   math.floor(achieved["entropy-2-diversity(diag)"] + 1e-9))
    assert theirs["t"] == pytest.approx(achieved["0.3-closeness(diag, equal distance)"])
