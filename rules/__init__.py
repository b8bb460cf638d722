"""Supervision rule packs as data (YAML): loading with validation (every problem at once, coded
HG-09xx), conditions compiled with ``rule-engine``, evaluation into findings, and the test cases
shipped with each rule. Alerts and their lifecycle live in ``services/supervision.py``."""

from rules.engine import CaseResult, Evaluation, Finding, assert_tests_pass, evaluate, run_tests
from rules.model import PACKS_DIR, Pack, Rule, Severity, load_pack, load_packs, parse_pack

__all__ = ["PACKS_DIR", "CaseResult", "Evaluation", "Finding", "Pack", "Rule", "Severity", "assert_tests_pass",
           "evaluate", "load_pack", "load_packs", "parse_pack", "run_tests"]
