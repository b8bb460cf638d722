"""Render what is generated from the ontology: typed record classes (pydantic) and label maps.

Backend schema (DDL) is rendered by each graph dialect; ``healthgraph ontology generate`` writes
all artefacts into ontology/generated/ with a provenance header, and a test fails when any of
them is stale.
"""

from __future__ import annotations

import json
from pathlib import Path

from ontology.model import Ontology

GENERATED_DIR = Path(__file__).with_name("generated")

_PY_TYPES = {"string": "str", "integer": "int", "double": "float", "boolean": "bool",
             "date": "dt.date", "dateTime": "dt.datetime"}


def provenance_header(onto: Ontology, comment: str = "#") -> str:
    return "\n".join(f"{comment} {line}" for line in (
        "GENERATED FROM THE ONTOLOGY — do not edit; run `healthgraph ontology generate`.",
        f"ontology: {onto.iri}",
        f"version: {onto.version}",
        f"source sha256: {onto.source_hash}",
    )) + "\n"


def render_records(onto: Ontology) -> str:
    """Pydantic models, one per class, following the class hierarchy; required fields per owl:minCardinality."""
    lines = [provenance_header(onto), '"""Typed record classes generated from ontology/healthgraph.ttl."""', "",
             "from __future__ import annotations", "", "import datetime as dt", "from typing import ClassVar, Literal",
             "", "from pydantic import BaseModel, ConfigDict", "", "",
             "class Record(BaseModel):",
             '    """Base of every record: unknown fields are errors, values are validated on assignment."""', "",
             '    model_config = ConfigDict(extra="forbid", validate_assignment=True)',
             "    ontology_class: ClassVar[str] = \"Entity\"",
             "    table: ClassVar[str] = \"\"",
             "    key_properties: ClassVar[tuple[str, ...]] = ()", "",
             "    def key(self) -> str:",
             '        """The graph key: the owl:hasKey properties joined by \':\'."""',
             '        return ":".join(str(getattr(self, p)) for p in self.key_properties)', ""]
    emitted: set[str] = set()

    def emit(name: str) -> None:
        if name in emitted:
            return
        c = onto.classes[name]
        if c.parent:
            emit(c.parent)
        emitted.add(name)
        base = c.parent or "Record"
        required = onto.required_of(name)
        own = {p.name: p for p in onto.properties.values() if name in p.domain and not p.system}
        lines.extend(["", f"class {name}({base}):", f'    """{c.label.zh} {c.label.en}."""', "",
                      f'    ontology_class: ClassVar[str] = "{name}"',
                      f'    table: ClassVar[str] = "{c.table}"',
                      f"    key_properties: ClassVar[tuple[str, ...]] = {onto.key_of(name)!r}"])
        inherited_required = {r for r in required if r not in own}
        for pname, prop in sorted(own.items()):
            if prop.allowed_values:
                typ = "Literal[" + ", ".join(repr(v) for v in prop.allowed_values) + "]"
            else:
                typ = _PY_TYPES[prop.datatype]
            if prop.is_list:
                typ = f"list[{typ}]"
            if pname in required:
                lines.append(f"    {pname}: {typ}")
            else:
                lines.append(f"    {pname}: {typ} | None = None")
        for pname in sorted(inherited_required):
            prop = onto.properties[pname]
            typ = _PY_TYPES[prop.datatype] if not prop.allowed_values else \
                "Literal[" + ", ".join(repr(v) for v in prop.allowed_values) + "]"
            lines.append(f"    {pname}: {typ}  # required on {name}")

    for name in onto.classes:
        emit(name)
    lines.append("")
    lines.append("RECORD_CLASSES: dict[str, type[Record]] = {")
    lines.extend(f'    "{name}": {name},' for name in onto.classes)
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_labels(onto: Ontology) -> str:
    """zh/en labels for every class, property, edge type and sensitivity label (for UIs and messages)."""
    data = {
        "_provenance": {"ontology": onto.iri, "version": onto.version, "source_sha256": onto.source_hash,
                        "note": "GENERATED FROM THE ONTOLOGY — do not edit"},
        "classes": {n: {"zh": c.label.zh, "en": c.label.en} for n, c in onto.classes.items()},
        "properties": {n: {"zh": p.label.zh, "en": p.label.en} for n, p in onto.properties.items()},
        "edges": {n: {"zh": e.label.zh, "en": e.label.en} for n, e in onto.edges.items()},
        "sensitivity_labels": {n: {"zh": s.label.zh, "en": s.label.en} for n, s in onto.sensitivity_labels.items()},
    }
    return json.dumps(data, ensure_ascii=False, indent=1) + "\n"


def artefacts(onto: Ontology, ddl: dict[str, str]) -> dict[str, str]:
    """File name → content for everything generated, DDL rendered by the dialects passed in."""
    out = {"records.py": render_records(onto), "labels.json": render_labels(onto)}
    for dialect, statements in ddl.items():
        out[f"{dialect}_schema.cypher"] = provenance_header(onto, "//") + statements
    return out


def write_artefacts(onto: Ontology, ddl: dict[str, str], directory: Path = GENERATED_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in artefacts(onto, ddl).items():
        path = directory / name
        path.write_text(content, encoding="utf-8")
        written.append(path)
    return written


def stale_artefacts(onto: Ontology, ddl: dict[str, str], directory: Path = GENERATED_DIR) -> list[str]:
    """Names of generated files missing or different from what the ontology renders now."""
    stale = []
    for name, content in artefacts(onto, ddl).items():
        path = directory / name
        if not path.exists() or path.read_text(encoding="utf-8") != content:
            stale.append(name)
    return stale
