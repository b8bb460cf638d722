"""Trace-back options on small supply networks built in memory: case weights, negative controls,
cross-contamination inside a station (only where dates allow) and kill steps."""

from __future__ import annotations

import datetime as dt

from services.food_trace import CROSS_ALL, Network, Options, rank_sources

DAY = dt.datetime(2025, 6, 1)


def _d(key: str, lot: str, src: str, dst: str, day: int) -> dict:
    return {"delivery": key, "lot": lot, "from_key": src, "to_key": dst, "occurred_at": DAY + dt.timedelta(days=day),
            "quantity": 1.0}


def _meal(person: str, venue: str, day: int) -> dict:
    return {"resident": person, "venue": venue, "occurred_at": DAY + dt.timedelta(days=day)}


def _network(x_arrives: int) -> Network:
    """Producer P makes lot X, producer Q makes lot Y. Distributor D receives X on day ``x_arrives`` and
    Y on day 1; D sends only Y on to venues V1 and V2 on day 3, where the cases eat on day 5."""
    return Network(
        deliveries=[_d("dx", "X", "P", "D", x_arrives), _d("dy", "Y", "Q", "D", 1),
                    _d("d1", "Y", "D", "V1", 3), _d("d2", "Y", "D", "V2", 3)],
        producer={"X": "P", "Y": "Q"}, made_from={})


def _scores(ranked: list) -> dict[str, float]:
    return {c.key: c.score for c in ranked if c.kind == "station"}


CASES = [_meal("c1", "V1", 5), _meal("c2", "V2", 5)]


def test_without_cross_contamination_only_the_lot_served_is_followed() -> None:
    scores = _scores(rank_sources(_network(x_arrives=2), CASES)[0])
    assert scores["Q"] == 1.0 and "P" not in scores


def test_cross_contamination_reaches_lots_that_arrived_before_the_served_lot_left() -> None:
    crossing = Options(cross=frozenset({"D"}))
    scores = _scores(rank_sources(_network(x_arrives=2), CASES, options=crossing)[0])
    assert scores["P"] == 1.0 and scores["Q"] == 1.0, "X was at D before Y left: it may have contaminated Y"
    late = _scores(rank_sources(_network(x_arrives=4), CASES, options=crossing)[0])
    assert "P" not in late, "X arrived after Y left D: the dates rule it out"
    everywhere = _scores(rank_sources(_network(x_arrives=2), CASES, options=Options(cross=frozenset({CROSS_ALL})))[0])
    assert everywhere == scores


def test_a_kill_step_stops_the_trace() -> None:
    killed = _scores(rank_sources(_network(x_arrives=2), CASES, options=Options(kill=frozenset({"D"})))[0])
    assert killed["D"] == 1.0, "the kill step itself stays a candidate (contamination after processing)"
    assert "Q" not in killed and "P" not in killed


def test_case_weights_and_negative_controls() -> None:
    network = Network(deliveries=[_d("a1", "A", "PA", "V1", 1), _d("b1", "B", "PB", "V2", 1)],
                      producer={"A": "PA", "B": "PB"}, made_from={})
    cases = [_meal("confirmed", "V1", 3), _meal("probable", "V2", 3)]
    even = _scores(rank_sources(network, cases)[0])
    assert even["PA"] == even["PB"] == 0.5
    weighted = rank_sources(network, cases, options=Options(weights={"probable": 0.25}))[0]
    assert _scores(weighted)["PA"] == 1 / 1.25 and _scores(weighted)["PB"] == 0.25 / 1.25
    controls = [_meal("well-1", "V1", 3), _meal("well-2", "V1", 3)]
    ranked, _ = rank_sources(network, cases, controls=controls)
    stations = [c for c in ranked if c.kind == "station" and c.key in ("PA", "PB")]
    assert [c.key for c in stations] == ["PB", "PA"], "at equal scores, the point controls also reached ranks last"
    assert {c.key: c.controls for c in stations} == {"PA": 1.0, "PB": 0.0}
