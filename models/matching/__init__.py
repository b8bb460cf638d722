"""Person matching for the master person index (平台主索引): an explainable Fellegi–Sunter model whose m/u
weights are trained with Splink (DuckDB), a real-time blocking index + Python scorer over the same comparison
levels, and batch deduplication."""

from models.matching.dedupe import cluster_assignment, dedupe, score_candidates
from models.matching.features import normalise, normalise_frame
from models.matching.index import PersonMatcher
from models.matching.model import Comparison, FieldEvidence, MatchModel, train

__all__ = ["Comparison", "FieldEvidence", "MatchModel", "PersonMatcher", "cluster_assignment", "dedupe",
           "normalise", "normalise_frame", "score_candidates", "train"]
