"""``healthgraph ontology check``: structural rules every platform ontology must meet, and the
OWL reasoner's consistency check (Pellet through owlready2, when Java is present; HermiT lacks xsd:date)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import owlready2

from ontology.model import ONTOLOGY_PATH, Ontology, build, load_world

# Words the query languages reserve (Cypher/openCypher and LadybugDB), plus our own columns.
RESERVED = frozenset({
    "key", "class", "primary", "match", "return", "where", "order", "by", "limit", "skip", "create", "delete",
    "set", "remove", "merge", "with", "unwind", "as", "and", "or", "not", "in", "is", "null", "true", "false",
    "case", "when", "then", "else", "end", "count", "exists", "table", "node", "rel", "from", "to", "copy",
    "load", "call", "union", "all", "distinct", "optional", "desc", "asc", "contains", "starts", "ends", "group",
})
_IDENT = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


@dataclass
class CheckReport:
    problems: list[str] = field(default_factory=list)
    reasoner: str = "not run"
    classes: int = 0
    properties: int = 0
    edges: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def structural_problems(onto: Ontology) -> list[str]:
    problems = []
    for name, c in onto.classes.items():
        if not _IDENT.fullmatch(name):
            problems.append(f"class '{name}' is not a plain identifier")
        if c.label.zh == name:
            problems.append(f"class '{name}' has no Chinese label (rdfs:label @zh)")
        if name == c.table and not c.key:
            problems.append(f"table root '{name}' declares no owl:hasKey")
        for k in onto.key_of(name):
            prop = onto.properties.get(k)
            if prop is None:
                problems.append(f"key property '{k}' of {name} is not a data property")
            elif not prop.functional:
                problems.append(f"key property '{k}' of {name} must be functional (one value)")
            elif k not in onto.properties_of(name):
                problems.append(f"key property '{k}' is not in the domain of {name}")
    for name, p in onto.properties.items():
        if name.lower() in RESERVED:
            problems.append(f"property '{name}' is a reserved word in the query languages; rename it")
        if p.label.zh == name:
            problems.append(f"property '{name}' has no Chinese label (rdfs:label @zh)")
        for d in p.domain - {"Entity"}:
            if d not in onto.classes:
                problems.append(f"property '{name}' has unknown domain class '{d}'")
        if p.pattern:
            try:
                re.compile(p.pattern)
            except re.error as exc:
                problems.append(f"property '{name}' has an invalid hg:pattern: {exc}")
    for name, e in onto.edges.items():
        if name.lower() in RESERVED:
            problems.append(f"edge type '{name}' is a reserved word; rename it")
        if e.label.zh == name:
            problems.append(f"edge type '{name}' has no Chinese label (rdfs:label @zh)")
        for c in e.domain | e.range:
            if c not in onto.classes:
                problems.append(f"edge type '{name}' refers to unknown class '{c}'")
        if name in onto.properties:
            problems.append(f"'{name}' is both an edge type and a data property")
    for s in onto.sensitivity_labels.values():
        try:
            re.compile(s.icd10_pattern)
        except re.error as exc:
            problems.append(f"sensitivity label '{s.name}' has an invalid pattern: {exc}")
    return problems


def check(path: Path = ONTOLOGY_PATH, *, reason: bool = True) -> CheckReport:
    world, onto_owl, graph, source = load_world(path)
    onto = build(world, onto_owl, graph, source)
    report = CheckReport(problems=structural_problems(onto), classes=len(onto.classes),
                         properties=len(onto.properties), edges=len(onto.edges))
    java = find_java(minimum=21) if reason else None
    if java:
        owlready2.JAVA_EXE = java
        try:
            with onto_owl:
                owlready2.sync_reasoner_pellet(world, infer_property_values=False, infer_data_property_values=False, debug=0)
            inconsistent = list(world.inconsistent_classes())
            report.reasoner = "Pellet: consistent" if not inconsistent else "Pellet: inconsistent"
            report.problems += [f"class '{c.name}' is unsatisfiable" for c in inconsistent]
        except owlready2.OwlReadyInconsistentOntologyError:
            report.reasoner = "Pellet: inconsistent"
            report.problems.append("the ontology is inconsistent (Pellet)")
    elif reason:
        report.reasoner = "skipped: no Java ≥ 21 found (owlready2's Pellet needs it); structural checks only"
    return report


def find_java(minimum: int) -> str | None:
    """The newest java executable of at least ``minimum`` major version, from JAVA_HOME, PATH or /usr/lib/jvm."""
    candidates = [Path(os.environ["JAVA_HOME"]) / "bin" / "java"] if os.environ.get("JAVA_HOME") else []
    candidates += [Path(p) for p in [shutil.which("java")] if p]
    candidates += sorted(Path("/usr/lib/jvm").glob("*/bin/java"))
    best: tuple[int, str] | None = None
    for exe in candidates:
        if not exe.exists():
            continue
        try:
            out = subprocess.run([str(exe), "-version"], capture_output=True, text=True, timeout=20).stderr
        except (OSError, subprocess.TimeoutExpired):
            continue
        m = re.search(r'version "(\d+)', out)
        if m and int(m.group(1)) >= minimum and (best is None or int(m.group(1)) > best[0]):
            best = (int(m.group(1)), str(exe))
    return best[1] if best else None
