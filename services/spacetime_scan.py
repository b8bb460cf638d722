"""Prospective space-time permutation scan: is an outbreak going on right now, and where?

For surveillance staff who run a scan every day over case-only data (syndromic counts, notifiable
disease reports, laboratory positives): no population at risk is needed. This is the space-time
permutation scan statistic of Kulldorff et al. (PLoS Medicine 2005), SaTScan's "space-time
permutation" model, in its prospective form.

How it works. Cases are counted by location (a GB/T 2260 county code) and day. If where a case
falls ill and when are independent, the expected count of a location on a day is (cases at the
location, all days) × (cases on the day, all locations) / (all cases); the model thereby adjusts
for purely spatial differences (bigger counties, better reporting) and purely temporal ones
(weekends, seasons) and flags only their interaction. A window is a cylinder: a circle around a
location's centroid, grown one distance at a time to take in its nearest neighbours (equidistant
neighbours join together, so every window is a true circle), up to a maximum size, × the last
1..``max_days`` days of the study. Prospective: only cylinders still open on the study end day
are scored, so a cluster that ended last week is history, not an alert. Each cylinder gets the
Poisson generalized likelihood ratio, and the cylinder with the largest is the most likely
cluster. Its p-value is its rank among the maxima of ``replications`` data sets in which the
cases' days are shuffled among them (each case keeps its location), so both margins, and hence
every expected count, stay fixed. Secondary clusters that share no location with a more likely
one are ranked against the same maxima (conservative, as in SaTScan).

The recurrence interval restates the p-value for a scan run once a day: a cluster this unusual
would arise by chance once every 1/p days. Alert on it (e.g. ≥ 100 days, or a year), not on p.

Example::

    result = scan(cases, centroids, end=dt.date(2024, 6, 30))   # cases: location, day[, case]
    for cluster in result.clusters:
        if cluster.recurrence_days >= 365:
            print(cluster.locations, cluster.start, cluster.observed, cluster.expected)

``centroids`` defines the study region: every location in it can be part of a circle, with or
without cases. Coordinates are planar (x, y) or, with ``geometry="lonlat"``, (longitude,
latitude) in degrees with great-circle distances in kilometres.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import xlogy

from ontology.errors import QueryParameterError, did_you_mean

__all__ = ["BASIS", "Cluster", "ScanParameters", "ScanResult", "expected_counts", "log_likelihood_ratio", "scan"]

BASIS = ("Kulldorff M, Heffernan R, Hartman J, Assunção R, Mostashari F. A space-time permutation scan statistic "
         "for disease outbreak detection. PLoS Med 2005;2(3):e59; defaults (50% of cases, 999 replications, "
         "recurrence interval) as in SaTScan")
NOT_MODELLED = [
    "non-circular windows (ellipses, road or adjacency networks)",
    "Gumbel-approximated p-values below 1/(replications+1)",
    "adjustment for the number of locations or syndromes scanned in parallel",
]
DEFAULT_SEED = 12345678
"""SaTScan's default random seed: the same data give the same p-values unless a seed is chosen."""
EARTH_RADIUS_KM = 6371.0088
"""IUGG mean Earth radius, for great-circle distances between lon/lat centroids."""
GEOMETRIES = ("planar", "lonlat")

_DIVISION_CODE = re.compile(r"\d{6}")
_WORKERS = min(4, os.cpu_count() or 1)  # numpy releases the GIL in the array work of each batch
_BATCH_CELLS = 500_000  # location × neighbour × day counts per batch of replications: small batches stay in cache


@dataclass(frozen=True)
class ScanParameters:
    """The settings a scan ran with, reported back with its result."""

    start: dt.date
    end: dt.date
    """The study end day: every window scored ends on it."""
    max_days: int
    max_share_of_cases: float
    """A circle holds at most this share of all cases in the study period (SaTScan's default 50%)."""
    max_share_of_locations: float | None
    max_radius: float | None
    """In the coordinates' unit (planar) or kilometres (lonlat)."""
    geometry: str
    replications: int
    min_cases: int
    max_clusters: int
    seed: int | None
    """None when the caller passed its own numpy Generator."""


@dataclass
class Cluster:
    """A space-time cylinder: a circle of locations over the days from ``start`` to ``end``."""

    centre: str
    locations: list[str]
    """Nearest first, the centre itself first of all."""
    radius: float
    start: dt.date
    end: dt.date
    observed: int
    expected: float
    ratio: float
    """observed / expected."""
    llr: float
    """Log of the generalized likelihood ratio."""
    p_value: float
    recurrence_days: float
    """1/p: how often a cluster this unusual arises by chance in a scan run once a day."""
    cases: list[Any]
    """The ``case`` ids (or the frame's index labels) of the cases inside."""


@dataclass
class ScanResult:
    """What a scan found, and how it was run."""

    clusters: list[Cluster]
    """The most likely cluster first, then secondary clusters sharing no location with a higher one."""
    replications: int
    parameters: ScanParameters
    total_cases: int
    """Cases in the study period, from ``start`` to ``end``."""
    excluded_cases: int
    """Cases outside the study period (e.g. after ``end`` when replaying a past day)."""
    null_maxima: np.ndarray = field(repr=False, compare=False)
    """The largest log likelihood ratio of each shuffled data set: the null distribution of every p-value."""
    basis: str = BASIS
    not_modelled: list[str] = field(default_factory=lambda: list(NOT_MODELLED))

    @property
    def most_likely(self) -> Cluster | None:
        return self.clusters[0] if self.clusters else None


def expected_counts(counts: np.ndarray) -> np.ndarray:
    """Expected location × day counts under the null: row total × column total / grand total."""
    counts = np.asarray(counts, dtype=float)
    total = counts.sum()
    if total <= 0:
        raise QueryParameterError("病例为空 no cases to scan")
    return np.outer(counts.sum(axis=1), counts.sum(axis=0)) / total


def log_likelihood_ratio(observed: Any, expected: Any, total: float) -> np.ndarray:
    """log GLR = c·log(c/μ) + (C−c)·log((C−c)/(C−μ)) where c > μ, else 0 (Kulldorff et al. 2005)."""
    c = np.asarray(observed, dtype=float)
    mu = np.asarray(expected, dtype=float)
    high = c > mu
    with np.errstate(divide="ignore", invalid="ignore"):
        llr = xlogy(c, c / mu) + xlogy(total - c, (total - c) / (total - mu))
    return np.where(high, np.maximum(llr, 0.0), 0.0)


def scan(cases: pd.DataFrame, centroids: Mapping[str, tuple[float, float]], *, end: dt.date | None = None,
         start: dt.date | None = None, max_days: int = 7, max_share_of_cases: float = 0.5,
         max_share_of_locations: float | None = None, max_radius: float | None = None, geometry: str = "planar",
         replications: int = 999, min_cases: int = 2, max_clusters: int = 10,
         seed: int | np.random.Generator = DEFAULT_SEED) -> ScanResult:
    """Scan cases for space-time clusters still going on at ``end`` (default: the last case's day).

    ``cases`` has columns ``location`` (6-digit GB/T 2260 code), ``day`` and optionally ``case``
    (an id reported back). The study period runs from ``start`` (default: the first case's day) to
    ``end``; cases outside it are left out and counted in ``excluded_cases``. A circle may hold at
    most ``max_share_of_cases`` of the cases, and optionally at most ``max_share_of_locations`` of
    the locations and a radius of ``max_radius``; a cluster needs ``min_cases`` cases (in the shuffled
    data too, so the p-value refers to the statistic actually scanned). Up to ``max_clusters`` clusters
    are reported, whatever their p-value. ``seed`` (an int or a numpy Generator) fixes the shuffles.
    """
    _check_parameters(start, end, max_days, max_share_of_cases, max_share_of_locations, max_radius, geometry,
                      replications, min_cases, max_clusters, seed)
    frame, ids, excluded, start, end = _read_cases(cases, start, end)
    if not all(isinstance(code, str) for code in centroids):
        raise QueryParameterError("坐标的键应为地区编码字符串 centroids must be keyed by location code strings")
    codes = sorted(centroids)
    xy = _read_centroids(centroids, codes, set(frame["location"]), geometry)
    where = {code: i for i, code in enumerate(codes)}
    loc = frame["location"].map(where).to_numpy(dtype=np.int64)
    day = frame["day_index"].to_numpy(dtype=np.int64)
    n_days = (end - start).days + 1
    window = min(max_days, n_days)
    total = len(frame)

    by_location = np.bincount(loc, minlength=len(codes))
    by_day = np.bincount(day, minlength=n_days)
    zones = _Zones.build(_distances(xy, geometry), by_location, total, max_share_of_cases, max_share_of_locations,
                         max_radius)
    if not len(zones.centre):
        raise QueryParameterError(
            f"没有符合大小限制的空间窗口 no circle fits the size limits (max_share_of_cases={max_share_of_cases}, "
            f"max_share_of_locations={max_share_of_locations}, max_radius={max_radius}): even a location alone "
            "exceeds them, or shares its centroid with another; raise the limits",
            max_share_of_cases=max_share_of_cases, max_share_of_locations=max_share_of_locations,
            max_radius=max_radius)
    # μ of a cylinder factorises: (cases in its locations, all days) × (cases on its days, all locations) / C.
    recent = np.cumsum(by_day[::-1][:window])
    expected = np.outer(recent, zones.cases) / total
    score = _Scorer(expected, total, min_cases)

    observed = zones.count(_recent_counts(loc[None, :], day[None, :], len(codes), n_days, window))[0]
    llr = score(observed)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    maxima = _null_maxima(loc, day, len(codes), n_days, window, zones, score, replications, rng)

    clusters = []
    for z, t in _non_overlapping(llr, zones, max_clusters):
        members = zones.members(z)
        p = (1 + int(np.count_nonzero(maxima >= llr[t, z]))) / (replications + 1)
        inside = np.isin(loc, members) & (day >= n_days - 1 - t)
        clusters.append(Cluster(
            centre=codes[zones.centre[z]], locations=[codes[i] for i in members], radius=float(zones.radius[z]),
            start=end - dt.timedelta(days=int(t)), end=end, observed=int(observed[t, z]),
            expected=float(expected[t, z]), ratio=float(observed[t, z] / expected[t, z]), llr=float(llr[t, z]),
            p_value=p, recurrence_days=1 / p, cases=ids[inside].tolist()))
    parameters = ScanParameters(start, end, max_days, max_share_of_cases, max_share_of_locations, max_radius,
                                geometry, replications, min_cases, max_clusters,
                                None if isinstance(seed, np.random.Generator) else int(seed))
    return ScanResult(clusters, replications, parameters, total, excluded, maxima)


# --- input ---------------------------------------------------------------------------------------

def _check_parameters(start: Any, end: Any, max_days: Any, max_share_of_cases: Any, max_share_of_locations: Any,
                      max_radius: Any, geometry: Any, replications: Any, min_cases: Any, max_clusters: Any,
                      seed: Any) -> None:
    """Every bad parameter at once, each with what was given and what is allowed."""
    problems = []

    def count(name: str, value: Any, least: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < least:
            problems.append(f"{name} 应为不小于 {least} 的整数 must be an integer ≥ {least} (got {value!r})")

    def share(name: str, value: Any, optional: bool) -> None:
        if value is None and optional:
            return
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
            problems.append(f"{name} 应在 (0, 1] 之间 must be a share in (0, 1] (got {value!r})")

    count("max_days", max_days, 1)
    count("replications", replications, 1)
    count("min_cases", min_cases, 1)
    count("max_clusters", max_clusters, 1)
    share("max_share_of_cases", max_share_of_cases, False)
    share("max_share_of_locations", max_share_of_locations, True)
    if max_radius is not None and (isinstance(max_radius, bool) or not isinstance(max_radius, int | float)
                                   or not 0 < max_radius < math.inf):
        problems.append(f"max_radius 应为正数 must be a positive number or None (got {max_radius!r})")
    if geometry not in GEOMETRIES:
        problems.append(f"geometry 坐标类型未知 unknown geometry {geometry!r} {did_you_mean(str(geometry), GEOMETRIES)}")
    for name, value in (("start", start), ("end", end)):
        if value is not None and not isinstance(value, dt.date):
            problems.append(f"{name} 应为日期 must be a datetime.date (got {value!r})")
    if isinstance(start, dt.date) and isinstance(end, dt.date) and _as_date(start) > _as_date(end):
        problems.append(f"start 晚于 end start {start} is after end {end}")
    if not isinstance(seed, np.random.Generator) and (isinstance(seed, bool) or not isinstance(seed, int | np.integer)
                                                      or seed < 0):
        problems.append(f"seed 应为非负整数或 numpy Generator must be an int ≥ 0 or a numpy Generator (got {seed!r})")
    if problems:
        raise QueryParameterError("扫描参数错误 bad scan parameters: " + "; ".join(problems), problems=problems)


def _as_date(value: dt.date) -> dt.date:
    return value.date() if isinstance(value, dt.datetime) else value


def _read_cases(cases: Any, start: dt.date | None, end: dt.date | None
                ) -> tuple[pd.DataFrame, np.ndarray, int, dt.date, dt.date]:
    """The cases in the study period with a day index, their ids, how many were left out, and the period."""
    if not isinstance(cases, pd.DataFrame):
        raise QueryParameterError(f"病例应为 DataFrame cases must be a pandas DataFrame (got {type(cases).__name__})")
    missing = [c for c in ("location", "day") if c not in cases.columns]
    if missing:
        raise QueryParameterError(f"病例表缺少列 cases lack column(s) {', '.join(missing)} "
                                  f"(have: {', '.join(map(str, cases.columns))})", missing=missing)
    if cases.empty:
        raise QueryParameterError("病例为空 no cases to scan")
    codes = cases["location"]
    bad = sorted({repr(c) for c in codes if not (isinstance(c, str) and _DIVISION_CODE.fullmatch(c))})
    if bad:
        raise QueryParameterError(
            f"地区编码应为6位 GB/T 2260 字符串 location must be a 6-digit GB/T 2260 code string: {', '.join(bad[:5])}"
            + (" …" if len(bad) > 5 else ""), locations=bad)
    days = cases["day"]
    if not pd.api.types.is_datetime64_any_dtype(days):
        wrong = [not isinstance(d, dt.date) for d in days]
        if any(wrong):
            rows = cases.index[wrong].tolist()
            raise QueryParameterError(
                f"病例日期无效 day must be a datetime.date in row(s) {rows[:5]}{' …' if len(rows) > 5 else ''} "
                f"(got {days[wrong].iloc[0]!r}); convert text with pd.to_datetime(..., format=...)", rows=rows)
    days = pd.to_datetime(days)
    if days.isna().any():
        rows = cases.index[days.isna()].tolist()
        raise QueryParameterError(f"病例日期缺失 day is missing in row(s) {rows[:5]}", rows=rows)
    days = days.to_numpy().astype("datetime64[D]")
    end = _as_date(end) if end is not None else days.max().astype(dt.date)
    keep = days <= np.datetime64(end)
    if start is None:
        if not keep.any():
            raise QueryParameterError(f"研究期内无病例 no cases on or before end {end}", end=str(end))
        start = days[keep].min().astype(dt.date)
    start = _as_date(start)
    keep &= days >= np.datetime64(start)
    if not keep.any():
        raise QueryParameterError(f"研究期内无病例 no cases between {start} and {end}", start=str(start), end=str(end))
    frame = pd.DataFrame({"location": codes.to_numpy()[keep],
                          "day_index": (days[keep] - np.datetime64(start)).astype(np.int64)})
    ids = (cases["case"] if "case" in cases.columns else cases.index.to_series()).to_numpy()[keep]
    return frame, ids, int((~keep).sum()), start, end


def _read_centroids(centroids: Mapping[str, tuple[float, float]], codes: list[str], used: set[str],
                    geometry: str) -> np.ndarray:
    unknown = sorted(used - set(codes))
    if unknown:
        hint = did_you_mean(unknown[0], codes) if codes else "(no centroids given)"
        raise QueryParameterError(
            f"地区无坐标 no centroid for location(s) {', '.join(unknown[:5])}{' …' if len(unknown) > 5 else ''} "
            f"{hint}; add them to centroids", locations=unknown)
    try:
        xy = np.array([[float(v) for v in centroids[c]] for c in codes], dtype=float).reshape(len(codes), 2)
    except (TypeError, ValueError):
        raise QueryParameterError("坐标应为 (x, y) 数对 each centroid must be an (x, y) pair of numbers") from None
    bad = [c for c, (x, y) in zip(codes, xy, strict=True) if not (math.isfinite(x) and math.isfinite(y))
           or geometry == "lonlat" and not (-180 <= x <= 180 and -90 <= y <= 90)]
    if bad:
        raise QueryParameterError(
            f"坐标无效 invalid centroid for {', '.join(bad[:5])}: must be finite"
            + (", (longitude, latitude) within ±180°, ±90°" if geometry == "lonlat" else ""), locations=bad)
    return xy


def _distances(xy: np.ndarray, geometry: str) -> np.ndarray:
    if geometry == "planar":
        return np.hypot(xy[:, None, 0] - xy[None, :, 0], xy[:, None, 1] - xy[None, :, 1])
    lon, lat = np.radians(xy[:, 0]), np.radians(xy[:, 1])
    h = (np.sin((lat[:, None] - lat[None, :]) / 2) ** 2
         + np.cos(lat[:, None]) * np.cos(lat[None, :]) * np.sin((lon[:, None] - lon[None, :]) / 2) ** 2)
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


# --- windows and scores --------------------------------------------------------------------------

@dataclass
class _Zones:
    """The circles: zone z is the ``size[z]`` locations nearest to location ``centre[z]``."""

    order: np.ndarray
    """Location × rank: the locations by distance from each centre, cut at the largest zone."""
    centre: np.ndarray
    size: np.ndarray
    radius: np.ndarray
    cases: np.ndarray
    """Cases of the zone's locations over the whole study period."""

    @classmethod
    def build(cls, dist: np.ndarray, by_location: np.ndarray, total: int, max_share_of_cases: float,
              max_share_of_locations: float | None, max_radius: float | None) -> _Zones:
        n = len(dist)
        key = dist.copy()
        np.fill_diagonal(key, -1.0)  # the centre comes first even if another centroid coincides with it
        order = np.argsort(key, axis=1, kind="stable")
        ranked = np.take_along_axis(dist, order, axis=1)
        held = np.cumsum(by_location[order], axis=1)
        # A circle cannot split equidistant locations: a zone may end only where the next one is farther.
        fits = np.ones((n, n), dtype=bool)
        fits[:, :-1] = ranked[:, 1:] > ranked[:, :-1] + 1e-9 * np.maximum(ranked[:, 1:], 1.0)
        fits &= held <= max_share_of_cases * total + 1e-9
        if max_share_of_locations is not None:
            fits[:, int(math.floor(max_share_of_locations * n + 1e-9)):] = False
        if max_radius is not None:
            fits &= ranked <= max_radius
        centre, rank = np.nonzero(fits)
        width = int(rank.max()) + 1 if len(rank) else 0
        return cls(order[:, :width], centre, rank + 1, ranked[centre, rank], held[centre, rank])

    def count(self, recent: np.ndarray) -> np.ndarray:
        """Replications × t × zones: cases in each zone over the last t days, from the same per location."""
        reps, days, n = recent.shape
        width = self.order.shape[1]
        held = np.cumsum(recent[:, :, self.order], axis=3, dtype=np.int32).reshape(reps, days, n * width)
        return held[:, :, self.centre * width + self.size - 1]

    def members(self, z: int) -> np.ndarray:
        return self.order[self.centre[z], :self.size[z]]

    def overlapping(self, locations: np.ndarray) -> np.ndarray:
        """Zones holding any of ``locations``."""
        hit = np.logical_or.accumulate(np.isin(self.order, locations), axis=1)
        return hit[self.centre, self.size - 1]


class _Scorer:
    """log GLR of every cylinder for integer counts, with every term that depends only on μ computed once.

    c·log(c/μ) + (C−c)·log((C−c)/(C−μ)) = [c·log c + (C−c)·log(C−c)] − c·log μ − (C−c)·log(C−μ):
    the bracket is a table over c = 0..C, the logs of μ are fixed because shuffling days keeps both
    margins. The same arithmetic scores the observed and the shuffled data, so equal counts tie exactly.
    """

    def __init__(self, expected: np.ndarray, total: int, min_cases: int) -> None:
        c = np.arange(total + 1, dtype=float)
        self.table = xlogy(c, c) + xlogy(total - c, total - c)
        with np.errstate(divide="ignore"):
            log_mu = np.where(expected > 0, np.log(expected), 0.0)
            log_rest = np.where(total - expected > 0, np.log(total - expected), 0.0)
        # − c·log μ − (C−c)·log(C−μ) = − c·(log μ − log(C−μ)) − C·log(C−μ)
        self.slope, self.offset = log_mu - log_rest, total * log_rest
        # c > μ and c ≥ min_cases, for integer c
        self.floor = np.maximum(expected, min_cases - 1)

    def __call__(self, c: np.ndarray) -> np.ndarray:
        llr = np.take(self.table, c)
        llr -= c * self.slope
        llr -= self.offset
        np.putmask(llr, c <= self.floor, 0.0)
        return np.maximum(llr, 0.0, out=llr)


def _recent_counts(loc: np.ndarray, day: np.ndarray, n_locations: int, n_days: int, window: int) -> np.ndarray:
    """Replications × t × locations: each location's cases over the last t days, t = 1..window."""
    reps = loc.shape[0]
    back = n_days - 1 - day
    inside = back < window
    cell = (np.arange(reps)[:, None] * window + back) * n_locations + loc
    counts = np.bincount(cell[inside], minlength=reps * window * n_locations)
    return np.cumsum(counts.reshape(reps, window, n_locations), axis=1, dtype=np.int32)


def _null_maxima(loc: np.ndarray, day: np.ndarray, n_locations: int, n_days: int, window: int, zones: _Zones,
                 score: Callable[[np.ndarray], np.ndarray], replications: int,
                 rng: np.random.Generator) -> np.ndarray:
    """The largest log GLR of each data set with the cases' days shuffled (locations kept)."""
    batch = max(1, min(replications, _BATCH_CELLS // max(1, zones.order.size * window)))
    sizes = [min(batch, replications - first) for first in range(0, replications, batch)]

    def simulate(shuffled: np.ndarray) -> np.ndarray:
        recent = _recent_counts(np.broadcast_to(loc, shuffled.shape), shuffled, n_locations, n_days, window)
        return score(zones.count(recent)).max(axis=(1, 2))

    # Shuffles are drawn in order in this thread, so a seed gives the same maxima however many workers run;
    # a few batches at a time keep the shuffled days in memory small.
    maxima = []
    day = day.astype(np.int32)
    with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
        for first in range(0, len(sizes), 2 * _WORKERS):
            shuffled = [rng.permuted(np.broadcast_to(day, (reps, len(day))), axis=1)
                        for reps in sizes[first:first + 2 * _WORKERS]]
            maxima.extend(pool.map(simulate, shuffled))
    return np.concatenate(maxima)


def _non_overlapping(llr: np.ndarray, zones: _Zones, limit: int) -> list[tuple[int, int]]:
    """(zone, days − 1) of the best cylinders, best first, none sharing a location with a better one."""
    best_t = np.argmax(llr, axis=0)
    best = llr[best_t, np.arange(len(best_t))]
    picked: list[tuple[int, int]] = []
    while len(picked) < limit:
        z = int(np.argmax(best))
        if best[z] <= 0:
            break
        picked.append((z, int(best_t[z])))
        best[zones.overlapping(zones.members(z))] = -np.inf
    return picked
