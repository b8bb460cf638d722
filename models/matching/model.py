"""The Fellegi–Sunter match model: m/u per level trained with Splink (DuckDB), scored in Python or by Splink."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from models.matching.comparisons import CONFIGS, MatchConfig

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "person_matcher.json"
MATCH, POSSIBLE, NON_MATCH = "MATCH", "POSSIBLE_MATCH", "NON_MATCH"


@dataclass(frozen=True)
class FieldEvidence:
    field: str
    level: str
    weight: float            # log2 Bayes factor m/u of the level; 0.0 for null
    left: str | None
    right: str | None


@dataclass(frozen=True)
class Comparison:
    key: str
    weight: float            # prior log2 odds + sum of field weights
    probability: float       # 2**w / (1 + 2**w)
    deterministic: bool      # same valid 18-digit id, consistent with both records' sex and birth date
    fields: tuple[FieldEvidence, ...]
    decision: str = NON_MATCH   # MATCH / POSSIBLE_MATCH / NON_MATCH under the model's thresholds and rules

    def to_dict(self) -> dict:
        return asdict(self) | {"fields": [asdict(f) for f in self.fields]}


def probability_of(weight: float) -> float:
    if weight >= 0:
        return 1.0 / (1.0 + 2.0 ** -weight)
    odds = 2.0 ** weight
    return odds / (1.0 + odds)


def _evidence_value(record: dict, show: str) -> str | None:
    values = [record.get(c) for c in show.split("+")]
    if all(v is None for v in values):
        return None
    return " | ".join("" if v is None else str(v) for v in values)


@dataclass
class MatchModel:
    """Comparison definitions (by config name) + trained m/u per level + prior + thresholds + model card."""

    config_name: str
    m: list[list[float | None]]       # per comparison, per level (None for the null level)
    u: list[list[float | None]]
    probability_two_random_records_match: float
    match_threshold: float = 0.99
    possible_threshold: float = 0.5
    model_card: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.config: MatchConfig = CONFIGS[self.config_name]
        for spec, ms, us in zip(self.config.comparisons, self.m, self.u, strict=True):
            if len(ms) != len(spec.levels) or len(us) != len(spec.levels):
                raise ValueError(f"model has {len(ms)} levels for {spec.field}, the config {len(spec.levels)}")
        self.weights: list[list[float]] = [
            [0.0 if lv.is_null else math.log2(mi / ui) for lv, mi, ui in zip(spec.levels, ms, us, strict=True)]
            for spec, ms, us in zip(self.config.comparisons, self.m, self.u, strict=True)]
        p = self.probability_two_random_records_match
        self.prior_weight = math.log2(p / (1.0 - p))
        # Flattened for the hot path: (levels' predicates, weights) per comparison.
        self._plan = [(tuple(lv.test for lv in spec.levels), tuple(ws))
                      for spec, ws in zip(self.config.comparisons, self.weights, strict=True)]
        fields = [spec.field for spec in self.config.comparisons]
        labels = [[lv.label for lv in spec.levels] for spec in self.config.comparisons]
        # comparison index → level indices that allow an automatic MATCH
        self._required = {fields.index(f): frozenset(i for i, lab in enumerate(labels[fields.index(f)]) if lab in ok)
                          for f, ok in self.config.match_requires}

    # ---- persistence -------------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        comparisons = []
        for spec, ms, us, ws in zip(self.config.comparisons, self.m, self.u, self.weights, strict=True):
            comparisons.append({"field": spec.field, "levels": [
                {"label": lv.label, "sql": lv.sql, "is_null": lv.is_null, "m": mi, "u": ui, "weight": round(w, 4)}
                for lv, mi, ui, w in zip(spec.levels, ms, us, ws, strict=True)]})
        return {"format": "healthgraph.person_matcher/1", "config": self.config_name,
                "probability_two_random_records_match": self.probability_two_random_records_match,
                "prior_weight": round(self.prior_weight, 4),
                "match_threshold": self.match_threshold, "possible_threshold": self.possible_threshold,
                "blocking": [list(r) for r in self.config.blocking],
                "comparisons": comparisons, "model_card": self.model_card}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MatchModel:
        config = CONFIGS[data["config"]]
        m, u = [], []
        for spec, comp in zip(config.comparisons, data["comparisons"], strict=True):
            got = [(lv["label"], lv["sql"]) for lv in comp["levels"]]
            want = [(lv.label, lv.sql) for lv in spec.levels]
            if comp["field"] != spec.field or got != want:
                raise ValueError(f"saved levels for {comp['field']} differ from the code's; retrain the model")
            m.append([lv["m"] for lv in comp["levels"]])
            u.append([lv["u"] for lv in comp["levels"]])
        return cls(data["config"], m, u, data["probability_two_random_records_match"], data["match_threshold"],
                   data["possible_threshold"], data.get("model_card", {}))

    @classmethod
    def load(cls, path: str | Path | None = None) -> MatchModel:
        return cls.from_json(json.loads(Path(path or DEFAULT_PATH).read_text(encoding="utf-8")))

    # ---- scoring -------------------------------------------------------------------------------------------
    def decide(self, probability: float, deterministic: bool, capped: bool = False) -> str:
        if deterministic or (probability >= self.match_threshold and not capped):
            return MATCH
        return POSSIBLE if probability >= self.possible_threshold else NON_MATCH

    def assess(self, a: dict, b: dict) -> tuple[float, bool]:
        """(total match weight, capped below MATCH) of two normalised records — the batch hot path."""
        w = self.prior_weight
        capped = False
        required = self._required
        for ci, (tests, weights) in enumerate(self._plan):
            for li, (test, lw) in enumerate(zip(tests, weights)):  # noqa: B905 - same length by construction
                if test(a, b):
                    w += lw
                    if ci in required and li not in required[ci]:
                        capped = True
                    break
        return w, capped

    def weight_of(self, a: dict, b: dict) -> float:
        return self.assess(a, b)[0]

    def is_deterministic(self, a: dict, b: dict) -> bool:
        return bool(self.config.deterministic and self.config.deterministic(a, b))

    def score(self, a: dict, b: dict, key: str | None = None) -> Comparison:
        """Explain the comparison of two normalised records; ``key`` defaults to b's key."""
        w = self.prior_weight
        evidence = []
        capped = False
        for ci, (spec, (tests, weights)) in enumerate(zip(self.config.comparisons, self._plan, strict=True)):
            for li, (lv, test, lw) in enumerate(zip(spec.levels, tests, weights, strict=True)):
                if test(a, b):
                    w += lw
                    capped = capped or (ci in self._required and li not in self._required[ci])
                    evidence.append(FieldEvidence(spec.field, lv.label, lw, _evidence_value(a, spec.show),
                                                  _evidence_value(b, spec.show)))
                    break
        p = probability_of(w)
        det = self.is_deterministic(a, b)
        return Comparison(key if key is not None else b.get("key"), w, p, det, tuple(evidence), self.decide(p, det, capped))

    def compare(self, a: dict, b: dict) -> Comparison:
        """Compare two raw records (normalised here)."""
        return self.score(self.config.normalise(a), self.config.normalise(b))

    # ---- Splink --------------------------------------------------------------------------------------------
    def splink_settings(self) -> dict[str, Any]:
        """A Splink settings dict carrying this model's levels and fixed m/u, for predict/cluster with Splink."""
        settings = settings_for(self.config)
        for comp, ms, us in zip(settings["comparisons"], self.m, self.u, strict=True):
            for lv, mi, ui in zip(comp["comparison_levels"], ms, us, strict=True):
                if not lv.get("is_null_level"):
                    lv.update(m_probability=mi, u_probability=ui)
        settings["probability_two_random_records_match"] = self.probability_two_random_records_match
        return settings

    def splink_linker(self, frames: pd.DataFrame | Sequence[pd.DataFrame], *, normalised: bool = False):
        """A Splink Linker over raw (or already normalised) records with this model's parameters."""
        from splink import DuckDBAPI, Linker

        frames = [frames] if isinstance(frames, pd.DataFrame) else list(frames)
        db = DuckDBAPI()
        tables = [db.register(_splink_frame(f if normalised else normalise_records(f, self.config)))
                  for f in frames]
        with quiet_splink():
            return Linker(tables if len(tables) > 1 else tables[0], self.splink_settings(), log_level=None)


def normalise_records(records: pd.DataFrame | list[dict], config: MatchConfig) -> pd.DataFrame:
    from models.matching.features import normalise_frame

    return normalise_frame(records, config.normalise)


def _splink_frame(norm: pd.DataFrame) -> pd.DataFrame:
    return norm.rename(columns={"key": "unique_id"})


def settings_for(config: MatchConfig) -> dict[str, Any]:
    from splink import block_on

    comparisons = [{"output_column_name": spec.field, "comparison_levels": [
        {"sql_condition": lv.sql, "label_for_charts": lv.label, **({"is_null_level": True} if lv.is_null else {})}
        for lv in spec.levels]} for spec in config.comparisons]
    return {"link_type": config.link_type, "unique_id_column_name": "unique_id", "comparisons": comparisons,
            "blocking_rules_to_generate_predictions": [block_on(*r) for r in config.blocking],
            "retain_matching_columns": False, "retain_intermediate_calculation_columns": False}


@contextlib.contextmanager
def quiet_splink() -> Iterator[None]:
    """Splink logs progress at INFO and some libraries warn; neither belongs in our output or tests."""
    logger = logging.getLogger("splink")
    old = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(old)


def train(records: pd.DataFrame | Sequence[pd.DataFrame], *, config: str | MatchConfig = "person",
          u_max_pairs: float = 1e7, seed: int = 1, em_max_pairs: float | None = None,
          match_threshold: float = 0.99, possible_threshold: float = 0.5, unobserved_m: float = 1e-4,
          model_card: dict[str, Any] | None = None) -> MatchModel:
    """Unsupervised Splink training: prior from deterministic rules, u by random sampling, m by EM over the
    config's training blocking rules. Labels are never read here.

    A level EM never observed among matches (e.g. a name that disagrees, when no true match in the data ever
    does) is left untrained by Splink, which then falls back to arbitrary default m values; we set such levels to
    ``unobserved_m`` (≈ the rule-of-three upper bound for zero events in ~30k matched pairs) and list them in the
    model card."""
    from splink import DuckDBAPI, Linker, block_on

    cfg = CONFIGS[config] if isinstance(config, str) else config
    frames = [records] if isinstance(records, pd.DataFrame) else list(records)
    norms = [_splink_frame(normalise_records(f, cfg)) for f in frames]
    db = DuckDBAPI()
    tables = [db.register(n) for n in norms]
    with quiet_splink():
        linker = Linker(tables if len(tables) > 1 else tables[0], settings_for(cfg), log_level=None)
        linker.training.estimate_probability_two_random_records_match(
            [block_on(*r) for r in cfg.prior_rules], recall=cfg.prior_recall)
        linker.training.estimate_u_using_random_sampling(max_pairs=u_max_pairs, seed=seed)
        for rule in cfg.training_blocking:
            linker.training.estimate_parameters_using_expectation_maximisation(block_on(*rule), max_pairs=em_max_pairs)
        trained = linker.misc.save_model_to_json()
    settings_obj = linker._settings_obj  # Splink's effective values for levels it never observed (1e-6 etc.)
    m: list[list[float | None]] = []
    u: list[list[float | None]] = []
    unobserved = []
    for spec, comp, comp_obj in zip(cfg.comparisons, trained["comparisons"], settings_obj.comparisons, strict=True):
        ms, us = [], []
        for lv, lv_obj, level in zip(comp["comparison_levels"], comp_obj.comparison_levels, spec.levels, strict=True):
            if lv.get("is_null_level"):
                ms.append(None)
                us.append(None)
                continue
            if "m_probability" in lv:
                ms.append(float(lv["m_probability"]))
            else:
                ms.append(unobserved_m)
                unobserved.append(f"{spec.field}.{level.label}")
            us.append(float(lv.get("u_probability", lv_obj.u_probability)))
        m.append(ms)
        u.append(us)
    card = {"trained_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "trainer": "splink " + _splink_version() + " (DuckDB): u by random sampling, m by EM",
            "training_records": int(sum(len(n) for n in norms)), "u_max_pairs": u_max_pairs, "u_seed": seed,
            "em_blocking_rules": [list(r) for r in cfg.training_blocking],
            "unobserved_levels_m": {"m": unobserved_m, "levels": unobserved}, **(model_card or {})}
    return MatchModel(cfg.name, m, u, float(trained["probability_two_random_records_match"]),
                      match_threshold, possible_threshold, card)


def _splink_version() -> str:
    import splink

    return splink.__version__
