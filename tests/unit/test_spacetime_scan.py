"""Prospective space-time permutation scan (Kulldorff et al., PLoS Med 2005;2(3):e59)."""

from __future__ import annotations

import datetime as dt
import itertools
import math

import numpy as np
import pandas as pd
import pytest

from ontology.errors import QueryParameterError
from services import spacetime_scan
from services.spacetime_scan import expected_counts, log_likelihood_ratio, scan

FIRST = dt.date(2024, 3, 1)
DAYS = 30
LAST = FIRST + dt.timedelta(days=DAYS - 1)


def grid(seed: int) -> dict[str, tuple[float, float]]:
    """49 county centroids on a 7 × 7 grid, jittered so no two neighbours are equidistant from a centre."""
    rng = np.random.default_rng(seed)
    return {f"{330101 + 7 * r + c}": (c + rng.uniform(-0.25, 0.25), r + rng.uniform(-0.25, 0.25))
            for r in range(7) for c in range(7)}


def background(seed: int, centroids: dict[str, tuple[float, float]], n: int = 600) -> pd.DataFrame:
    """Cases spread uniformly and independently over locations and the 30 days: the null hypothesis."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"location": rng.choice(sorted(centroids), n),
                         "day": [FIRST + dt.timedelta(days=int(d)) for d in rng.integers(0, DAYS, n)],
                         "case": [f"b{i}" for i in range(n)]})


def nearest(centroids: dict[str, tuple[float, float]], centre: str, k: int) -> list[str]:
    codes = sorted(centroids)
    xy = np.array([centroids[c] for c in codes])
    d = np.hypot(*(xy - np.array(centroids[centre])).T)
    assert np.sort(d)[k] > np.sort(d)[k - 1]  # the k nearest are a true circle
    return [codes[i] for i in np.argsort(d)[:k]]


def outbreak(locations: list[str], last_day: dt.date, days: int = 3, per_cell: int = 2) -> pd.DataFrame:
    rows = [(loc, last_day - dt.timedelta(days=k), f"p{loc}-{k}-{j}")
            for loc in locations for k in range(days) for j in range(per_cell)]
    return pd.DataFrame(rows, columns=["location", "day", "case"])


# --- detection -----------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(5))
def test_planted_outbreak_is_the_most_likely_cluster(seed: int) -> None:
    # 600 background cases (≈ 0.41 per location-day) plus 2 extra cases a day in a location and its
    # two nearest neighbours on the last 3 days: 18 planted cases where ≈ 3.7 are expected.
    centroids = grid(seed)
    planted = nearest(centroids, "330125", 3)
    extra = outbreak(planted, LAST)
    cases = pd.concat([background(seed, centroids), extra], ignore_index=True)
    result = scan(cases, centroids, seed=seed)
    top = result.most_likely
    assert top is not None and top.p_value <= 0.01 and top.recurrence_days >= 100
    # The scan chooses the circle and window by likelihood, so background cases next to the outbreak may
    # ride along; what must hold: every planted case is inside (so every planted location and day), the
    # window starts at most one day early, and the cluster stays local and mostly planted. Seeds 0–9
    # gave exactly the 3 planted locations in 7 of 10, at worst 8 locations with 49% planted cases.
    assert set(extra["case"]) <= set(top.cases)
    assert set(planted) <= set(top.locations) and len(top.locations) <= 8
    assert top.end == LAST and LAST - dt.timedelta(days=3) <= top.start <= LAST - dt.timedelta(days=2)
    assert len(extra) / top.observed >= 0.4
    # Observed and expected recomputed from the case table: μ = (cases there, all days) × (cases then, anywhere) / C.
    there, then = cases["location"].isin(top.locations), cases["day"] >= top.start
    assert top.observed == (there & then).sum() == len(top.cases)
    assert top.expected == pytest.approx(there.sum() * then.sum() / len(cases), rel=1e-12)
    assert top.llr == pytest.approx(float(log_likelihood_ratio(top.observed, top.expected, len(cases))), rel=1e-9)
    # Secondary clusters share no location with a more likely one and come in order.
    seen: set[str] = set()
    for cluster in result.clusters:
        assert not seen & set(cluster.locations)
        seen |= set(cluster.locations)
    assert [c.llr for c in result.clusters] == sorted((c.llr for c in result.clusters), reverse=True)


def test_p_values_under_the_null_are_calibrated() -> None:
    # Locations and days drawn independently are exchangeable with their day-shuffled copies, so the
    # Monte Carlo p-value is uniform on {1/100, …, 1}: P(p ≤ 0.05) = 0.05 and E[p] = 0.505. Over 20 data
    # sets, ≥ 5 hits has probability 0.003 and a mean outside [0.3, 0.7] is beyond 3 standard errors
    # (0.29/√20); a scan scored against the wrong null (too small or too conservative) fails one of them.
    p = []
    for seed in range(100, 120):
        centroids = grid(seed)
        p.append(scan(background(seed, centroids, n=300), centroids, replications=99, seed=seed).most_likely.p_value)
    assert sum(x <= 0.05 for x in p) / len(p) <= 0.2
    assert 0.3 <= np.mean(p) <= 0.7


# --- the statistic by hand -------------------------------------------------------------------------

def test_expected_counts_keep_both_margins() -> None:
    counts = np.random.default_rng(3).poisson(2.0, (12, 9))
    mu = expected_counts(counts)
    assert mu.sum() == pytest.approx(counts.sum())
    np.testing.assert_allclose(mu.sum(axis=1), counts.sum(axis=1))
    np.testing.assert_allclose(mu.sum(axis=0), counts.sum(axis=0))


def test_glr_is_one_unless_observed_exceeds_expected() -> None:
    assert log_likelihood_ratio([0, 2, 4, 3], [1.6, 2.8, 4.0, 3.0], 10).tolist() == [0, 0, 0, 0]
    # 4·ln(4/2.4) + 6·ln(6/7.6) = 2.043302 − 1.418332
    assert float(log_likelihood_ratio(4, 2.4, 10)) == pytest.approx(0.6249698, abs=1e-7)
    assert float(log_likelihood_ratio(10, 6, 10)) == pytest.approx(10 * math.log(10 / 6))  # all cases: (C−c)=0


# Two counties 5 km apart over three days, C = 10 cases:
#            5/1  5/2  5/3   all days
#   110101    1    1    4       6
#   110102    2    2    0       4
#   all       3    3    4      10
HAND = {"110101": (0.0, 0.0), "110102": (3.0, 4.0)}
HAND_COUNTS = {("110101", 0): 1, ("110101", 1): 1, ("110101", 2): 4, ("110102", 0): 2, ("110102", 1): 2}


def hand_cases() -> pd.DataFrame:
    rows = [(loc, dt.date(2024, 5, 1) + dt.timedelta(days=d), f"{loc}/{d}/{i}")
            for (loc, d), n in HAND_COUNTS.items() for i in range(n)]
    return pd.DataFrame(rows, columns=["location", "day", "case"])


def test_hand_computed_example() -> None:
    # With at most 60% of the cases in a circle, the windows are each county alone (the pair holds all 10).
    # 110101: 5/3 c=4, μ=6·4/10=2.4, llr = 4 ln(4/2.4) + 6 ln(6/7.6) = 0.62497
    #         5/2–5/3 c=5, μ=6·7/10=4.2, llr = 5 ln(5/4.2) + 5 ln(5/5.8) = 0.12967;  5/1–5/3 c=6=μ → 0
    # 110102: c=0 < 1.6, c=2 < 2.8, c=4 = 4 → all 0, so it is no secondary cluster.
    result = scan(hand_cases(), HAND, max_days=3, max_share_of_cases=0.6, replications=99, seed=1)
    assert len(result.clusters) == 1
    top = result.clusters[0]
    assert (top.centre, top.locations, top.start, top.end) == ("110101", ["110101"], dt.date(2024, 5, 3),
                                                               dt.date(2024, 5, 3))
    assert (top.observed, top.expected, top.radius) == (4, pytest.approx(2.4), 0.0)
    assert top.ratio == pytest.approx(4 / 2.4)
    assert top.llr == pytest.approx(4 * math.log(4 / 2.4) + 6 * math.log(6 / 7.6), abs=1e-9)
    assert top.llr == pytest.approx(0.6249698, abs=1e-7)
    assert sorted(top.cases) == ["110101/2/0", "110101/2/1", "110101/2/2", "110101/2/3"]
    assert result.total_cases == 10 and result.excluded_cases == 0
    # Without a case column the frame's index labels are reported (rows 2–5 are 110101 on 5/3).
    anonymous = scan(hand_cases().drop(columns="case"), HAND, max_days=3, max_share_of_cases=0.6, replications=9)
    assert anonymous.most_likely.cases == [2, 3, 4, 5]


def test_hand_example_p_value_matches_exact_permutation_distribution() -> None:
    # Shuffling the days keeps 6 cases in 110101 and the day totals (3, 3, 4), so 110101's day counts
    # (a1, a2, a3) are multivariate hypergeometric: P = C(3,a1)·C(3,a2)·C(4,a3) / C(10,6). Enumerate them,
    # score the six cylinders from the formula, and compare P(max ≥ observed) with 9,999 replications.
    def llr(c: int, mu: float) -> float:
        return c * math.log(c / mu) + (10 - c) * math.log((10 - c) / (10 - mu)) if c > mu and c >= 2 else 0.0

    observed = 4 * math.log(4 / 2.4) + 6 * math.log(6 / 7.6)
    exact = 0.0
    for a1, a2 in itertools.product(range(4), range(4)):
        a3 = 6 - a1 - a2
        if not 0 <= a3 <= 4:
            continue
        b = (3 - a1, 3 - a2, 4 - a3)
        best = max(llr(a3, 2.4), llr(a2 + a3, 4.2), llr(b[2], 1.6), llr(b[1] + b[2], 2.8))
        if best >= observed - 1e-9:
            exact += math.comb(3, a1) * math.comb(3, a2) * math.comb(4, a3) / math.comb(10, 6)
    # By hand: (1,1,4), (2,0,4), (0,2,4) tie the observed 110101 on 5/3; (0,3,3) gives 110101 on 5/2–5/3
    # c=6, μ=4.2: 0.654; (3,3,0) gives 110102 on 5/3 c=4, μ=1.6: 1.646. Weights 9+3+3+4+1 = 20 of 210.
    assert exact == pytest.approx(20 / 210)
    result = scan(hand_cases(), HAND, max_days=3, max_share_of_cases=0.6, replications=9_999, seed=2)
    se = math.sqrt(exact * (1 - exact) / 9_999)
    assert abs(result.most_likely.p_value - exact) < 4 * se


# --- prospective ----------------------------------------------------------------------------------

def test_an_outbreak_that_ended_is_not_current() -> None:
    centroids = grid(0)
    planted = nearest(centroids, "330125", 3)
    ended = LAST - dt.timedelta(days=8)
    extra = outbreak(planted, ended)
    cases = pd.concat([background(0, centroids), extra], ignore_index=True)

    today = scan(cases, centroids, seed=0)  # every window ends on LAST and is at most 7 days long
    assert all(c.end == LAST and c.start > ended for c in today.clusters)
    assert not any(set(planted) & set(c.locations) for c in today.clusters if c.p_value <= 0.05)
    assert not set(extra["case"]) & {case for c in today.clusters for case in c.cases}

    # Replaying the day the outbreak ended finds it; later cases did not exist yet and are left out.
    then = scan(cases, centroids, end=ended, seed=0)
    assert then.most_likely.p_value <= 0.01 and set(planted) <= set(then.most_likely.locations)
    assert then.excluded_cases == (cases["day"] > ended).sum() > 0
    assert then.parameters.end == ended


def test_great_circle_distances_in_kilometres() -> None:
    # One degree of latitude on the IUGG mean sphere (R = 6371.0088 km) is 111.195 km.
    centroids = {"330102": (120.0, 30.0), "330105": (120.0, 31.0), "330106": (125.0, 30.0)}
    rows = ([("330102", LAST, f"a{i}") for i in range(6)] + [("330105", LAST, f"b{i}") for i in range(6)]
            + [("330106", LAST - dt.timedelta(days=d), f"c{d}") for d in range(1, 20)]
            + [("330102", FIRST, "a-old"), ("330105", FIRST, "b-old")])
    cases = pd.DataFrame(rows, columns=["location", "day", "case"])
    top = scan(cases, centroids, geometry="lonlat", max_share_of_cases=0.6, replications=99).most_likely
    assert sorted(top.locations) == ["330102", "330105"]
    assert top.radius == pytest.approx(math.pi / 180 * 6371.0088, rel=1e-9)
    near = scan(cases, centroids, geometry="lonlat", max_share_of_cases=0.6, max_radius=100, replications=99)
    assert all(len(c.locations) == 1 for c in near.clusters)


# --- reproducibility --------------------------------------------------------------------------------

def test_same_seed_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    centroids = grid(1)
    cases = pd.concat([background(1, centroids), outbreak(nearest(centroids, "330117", 2), LAST)],
                      ignore_index=True)
    first = scan(cases, centroids, replications=199, seed=42)
    monkeypatch.setattr(spacetime_scan, "_WORKERS", 1)  # shuffles are drawn in order, whatever runs them
    second = scan(cases, centroids, replications=199, seed=42)
    assert first == second and np.array_equal(first.null_maxima, second.null_maxima)
    other = scan(cases, centroids, replications=199, seed=43)
    assert not np.array_equal(first.null_maxima, other.null_maxima)
    own = scan(cases, centroids, replications=199, seed=np.random.default_rng(42))
    assert np.array_equal(own.null_maxima, first.null_maxima) and own.parameters.seed is None
    assert first.parameters.seed == 42 and "PLoS Med 2005" in first.basis


# --- errors ---------------------------------------------------------------------------------------

def bad(**change: object) -> dict[str, object]:
    args: dict[str, object] = {"cases": hand_cases(), "centroids": HAND}
    args.update(change)
    return args


@pytest.mark.parametrize(("args", "says"), [
    (bad(cases=hand_cases().iloc[:0]), "病例为空 no cases to scan"),
    (bad(centroids={"110101": (0.0, 0.0), "110103": (1.0, 1.0)}), "no centroid for location(s) 110102"),
    (bad(cases=hand_cases().assign(location=110101)), "6-digit GB/T 2260"),
    (bad(cases=hand_cases().drop(columns="day")), "lack column(s) day"),
    (bad(cases=hand_cases().assign(day="2024-05-01")), "day must be a datetime.date in row(s) [0, 1, 2, 3, 4] …"),
    (bad(cases=hand_cases().assign(day=pd.NaT)), "day is missing in row(s) [0, 1, 2, 3, 4]"),
    (bad(max_days=0, replications=-1, geometry="latlon", max_share_of_cases=1.5),
     "max_days 应为不小于 1 的整数 must be an integer ≥ 1 (got 0)"),
    (bad(geometry="lon/lat"), "(did you mean 'lonlat'?)"),
    (bad(start=dt.date(2024, 5, 3), end=dt.date(2024, 5, 1)), "start 2024-05-03 is after end 2024-05-01"),
    (bad(end=dt.date(2024, 4, 1)), "no cases on or before end 2024-04-01"),
    (bad(centroids={"110101": (0.0, 0.0), "110102": (200.0, 0.0)}, geometry="lonlat"), "within ±180°"),
    (bad(max_share_of_cases=0.3), "no circle fits the size limits"),
])
def test_errors_say_what_and_carry_the_query_parameter_code(args: dict[str, object], says: str) -> None:
    with pytest.raises(QueryParameterError) as err:
        scan(**args)  # type: ignore[arg-type]
    assert err.value.code == "HG-0203" and str(err.value).startswith("HG-0203 ")
    assert says in err.value.message


def test_every_bad_parameter_is_reported_at_once() -> None:
    with pytest.raises(QueryParameterError) as err:
        scan(**bad(max_days=0, replications=-1, geometry="latlon", max_share_of_cases=1.5))  # type: ignore[arg-type]
    assert [p.split()[0] for p in err.value.details["problems"]] == [
        "max_days", "replications", "max_share_of_cases", "geometry"]
