"""Load the OWL ontology (owlready2) and expose it as a small, typed schema model.

The rest of the platform reads classes, properties, edge types, keys and labels only from here.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path

import owlready2
import rdflib
from rdflib.collection import Collection

from ontology.errors import OntologyLoadError, UnknownTerm, did_you_mean

ONTOLOGY_PATH = Path(__file__).with_name("healthgraph.ttl")
ONTOLOGY_IRI = "https://healthgraph.example/ontology"
NS = ONTOLOGY_IRI + "#"

DATATYPES: dict[type, str] = {
    str: "string", int: "integer", float: "double", bool: "boolean",
    dt.date: "date", dt.datetime: "dateTime",
}
"""owlready2's Python type for each XSD range → our datatype name."""

KEY_SEPARATOR = ":"


@dataclass(frozen=True)
class Label:
    zh: str
    en: str

    def __str__(self) -> str:
        return f"{self.zh} {self.en}"


@dataclass(frozen=True)
class Property:
    """A data property: a typed attribute of nodes."""

    name: str
    datatype: str
    functional: bool
    domain: frozenset[str]
    label: Label
    sensitivity: str | None = None
    allowed_values: tuple[str, ...] = ()
    pattern: str | None = None
    system: bool = False
    basis: str | None = None
    encrypted: bool = False
    """Stored only as ciphertext (``hg:encrypted``): the graph layer seals and opens it."""
    digest_of: str | None = None
    """The encrypted property this one holds the keyed digest of (``hg:digestOf``), for equality lookups."""

    @property
    def is_list(self) -> bool:
        return not self.functional

    @cached_property
    def regex(self) -> re.Pattern[str] | None:
        return re.compile(self.pattern) if self.pattern else None


@dataclass(frozen=True)
class EdgeType:
    """An object property: a typed, directed edge between nodes."""

    name: str
    domain: frozenset[str]
    range: frozenset[str]
    functional: bool
    label: Label


@dataclass(frozen=True)
class ClassDef:
    name: str
    parent: str | None
    table: str
    label: Label
    key: tuple[str, ...]
    required: frozenset[str]
    basis: str | None = None
    searchable: bool = False
    """Indexed for public search (directory and knowledge), minus its sensitive properties."""


@dataclass(frozen=True)
class SensitivityLabel:
    name: str
    label: Label
    icd10_pattern: str
    basis: str | None


@dataclass
class Ontology:
    """The schema: classes (with their table roots), data properties and edge types."""

    iri: str
    version: str
    source_hash: str
    classes: dict[str, ClassDef]
    properties: dict[str, Property]
    edges: dict[str, EdgeType]
    sensitivity_labels: dict[str, SensitivityLabel]
    _descendants: dict[str, frozenset[str]] = field(repr=False)
    _ancestors: dict[str, tuple[str, ...]] = field(repr=False)
    _table_properties: dict[str, dict[str, Property]] = field(default_factory=dict, repr=False)

    # ---- classes
    def cls(self, name: str) -> ClassDef:
        try:
            return self.classes[name]
        except KeyError:
            raise UnknownTerm(f"unknown class '{name}' {did_you_mean(name, self.classes)}", term=name) from None

    def prop(self, name: str) -> Property:
        try:
            return self.properties[name]
        except KeyError:
            raise UnknownTerm(f"unknown property '{name}' {did_you_mean(name, self.properties)}", term=name) from None

    def edge(self, name: str) -> EdgeType:
        try:
            return self.edges[name]
        except KeyError:
            raise UnknownTerm(f"unknown edge type '{name}' {did_you_mean(name, self.edges)}", term=name) from None

    @property
    def tables(self) -> list[str]:
        """Table roots, in declaration-independent (sorted) order."""
        return sorted({c.table for c in self.classes.values()})

    @property
    def searchable_tables(self) -> list[str]:
        """Table roots indexed for public search (``hg:searchable``)."""
        return [t for t in self.tables if self.classes[t].searchable]

    def descendants(self, name: str) -> frozenset[str]:
        """The class and every subclass of it: asking for Institution includes Hospital."""
        self.cls(name)
        return self._descendants[name]

    def ancestors(self, name: str) -> tuple[str, ...]:
        """The class and its superclasses up to its table root, most specific first."""
        self.cls(name)
        return self._ancestors[name]

    def is_a(self, name: str, other: str) -> bool:
        return other in self.ancestors(name)

    def classes_of_table(self, table: str) -> frozenset[str]:
        return self.descendants(table)

    def properties_of(self, name: str) -> dict[str, Property]:
        """Properties a record of this class may carry (declared on it or an ancestor), system ones included."""
        lineage = set(self.ancestors(name)) | {"Entity"}
        return {p.name: p for p in self.properties.values() if p.domain & lineage}

    def table_properties(self, table: str) -> dict[str, Property]:
        """Every property any class stored in ``table`` may carry: the table's columns."""
        if table not in self._table_properties:  # asked on every read and write; the ontology never changes once loaded
            out: dict[str, Property] = {}
            for c in sorted(self.descendants(table)):
                out.update(self.properties_of(c))
            self._table_properties[table] = dict(sorted(out.items(), key=lambda kv: (kv[1].system, kv[0])))
        return dict(self._table_properties[table])

    def required_of(self, name: str) -> frozenset[str]:
        req: set[str] = set()
        for a in self.ancestors(name):
            req |= self.classes[a].required
        return frozenset(req | set(self.classes[self.classes[name].table].key))

    def key_of(self, name: str) -> tuple[str, ...]:
        return self.classes[self.classes[name].table].key

    # ---- edges
    def edge_table_pairs(self, edge: str) -> list[tuple[str, str]]:
        """(from table, to table) pairs an edge type connects, for schema-first engines."""
        e = self.edge(edge)
        src = sorted({self.classes[c].table for c in e.domain})
        dst = sorted({self.classes[c].table for c in e.range})
        return [(s, d) for s in src for d in dst]

    def edge_allows(self, edge: str, src_class: str, dst_class: str) -> bool:
        e = self.edge(edge)
        return bool(set(self.ancestors(src_class)) & e.domain) and bool(set(self.ancestors(dst_class)) & e.range)

    def label_of(self, term: str) -> Label:
        for table in (self.classes, self.properties, self.edges):
            if term in table:
                return table[term].label
        raise UnknownTerm(f"unknown term '{term}'", term=term)


def _label(entity: object) -> Label:
    zh = en = None
    for lit in getattr(entity, "label", []):
        lang = getattr(lit, "lang", None)
        if lang == "zh":
            zh = str(lit)
        elif lang == "en":
            en = str(lit)
    name = entity.name  # type: ignore[attr-defined]
    return Label(zh or name, en or name)


def _classes_in(expr: object) -> frozenset[str]:
    if isinstance(expr, owlready2.ThingClass):
        return frozenset({expr.name})
    if isinstance(expr, owlready2.Or):
        return frozenset(c.name for c in expr.Classes)
    raise OntologyLoadError(f"unsupported domain/range expression {expr!r}: use a class or owl:unionOf classes")


def _annotation(world: owlready2.World, entity: object, name: str) -> str | None:
    values = world[NS + name][entity]
    return str(values[0]) if values else None


def load_world(path: Path = ONTOLOGY_PATH) -> tuple[owlready2.World, owlready2.Ontology, rdflib.Graph, bytes]:
    """Parse the Turtle source with rdflib and load it into a fresh owlready2 World."""
    source = path.read_bytes()
    try:
        graph = rdflib.Graph()
        graph.parse(data=source, format="turtle")
        world = owlready2.World()
        onto = world.get_ontology(ONTOLOGY_IRI).load(
            fileobj=io.BytesIO(graph.serialize(format="nt", encoding="utf-8")), format="ntriples"
        )
    except Exception as exc:  # rdflib and owlready2 raise many types; report them as one
        raise OntologyLoadError(f"cannot load ontology {path}: {exc}", path=str(path)) from exc
    return world, onto, graph, source


def _keys(graph: rdflib.Graph) -> dict[str, tuple[str, ...]]:
    """owl:hasKey lists, in their declared order (RDF collections keep order; SPARQL paths do not)."""
    out = {}
    for cls, head in graph.subject_objects(rdflib.OWL.hasKey):
        out[str(cls).removeprefix(NS)] = tuple(str(p).removeprefix(NS) for p in Collection(graph, head))
    return out


def build(world: owlready2.World, onto: owlready2.Ontology, graph: rdflib.Graph, source: bytes) -> Ontology:
    entity = world[NS + "Entity"]
    if entity is None:
        raise OntologyLoadError("the ontology has no hg:Entity root class")

    keys = _keys(graph)

    classes: dict[str, ClassDef] = {}
    descendants: dict[str, frozenset[str]] = {}
    ancestors: dict[str, tuple[str, ...]] = {}
    for c in onto.classes():
        if c is entity or entity not in c.ancestors():
            continue
        lineage = [a for a in _mro(c) if a is not entity and entity in a.ancestors()]
        root = lineage[-1]
        required = frozenset(
            r.property.name for r in c.is_a
            if isinstance(r, owlready2.Restriction) and r.type == owlready2.MIN and (r.cardinality or 0) >= 1
        )
        parents = [p for p in c.is_a if isinstance(p, owlready2.ThingClass) and p is not entity]
        classes[c.name] = ClassDef(
            name=c.name, parent=parents[0].name if parents else None, table=root.name, label=_label(c),
            key=keys.get(c.name, ()), required=required, basis=_annotation(world, c, "basis"),
            searchable=str(_annotation(world, c, "searchable")).lower() == "true",
        )
        descendants[c.name] = frozenset(d.name for d in c.descendants())
        ancestors[c.name] = tuple(a.name for a in lineage)

    properties: dict[str, Property] = {}
    for p in onto.data_properties():
        rng = p.range[0] if p.range else None
        if rng not in DATATYPES:
            raise OntologyLoadError(f"data property '{p.name}' has unsupported range {rng!r}")
        allowed = _annotation(world, p, "allowedValues")
        domain = frozenset().union(*(_classes_in(d) for d in p.domain)) if p.domain else frozenset({"Entity"})
        properties[p.name] = Property(
            name=p.name, datatype=DATATYPES[rng], functional=owlready2.FunctionalProperty in p.is_a,
            domain=domain, label=_label(p), sensitivity=_annotation(world, p, "sensitivity"),
            allowed_values=tuple(allowed.split()) if allowed else (), pattern=_annotation(world, p, "pattern"),
            system=_annotation(world, p, "system") in ("true", "True"), basis=_annotation(world, p, "basis"),
            encrypted=_annotation(world, p, "encrypted") in ("true", "True"), digest_of=_annotation(world, p, "digestOf"),
        )

    for prop in properties.values():
        target = properties.get(prop.digest_of or "")
        if prop.digest_of and (target is None or not target.encrypted or not prop.system
                               or target.domain != prop.domain):
            raise OntologyLoadError(f"'{prop.name}' digests '{prop.digest_of}', which must be an encrypted property "
                                    "with the same domain (and the digest a system property)")

    edges: dict[str, EdgeType] = {}
    for p in onto.object_properties():
        if not p.domain or not p.range:
            raise OntologyLoadError(f"edge type '{p.name}' needs both rdfs:domain and rdfs:range")
        edges[p.name] = EdgeType(
            name=p.name, domain=frozenset().union(*(_classes_in(d) for d in p.domain)),
            range=frozenset().union(*(_classes_in(r) for r in p.range)),
            functional=owlready2.FunctionalProperty in p.is_a, label=_label(p),
        )

    labels: dict[str, SensitivityLabel] = {}
    label_cls = world[NS + "SensitivityLabel"]
    if label_cls is not None:
        for ind in label_cls.instances():
            labels[ind.name] = SensitivityLabel(
                name=ind.name, label=_label(ind), icd10_pattern=_annotation(world, ind, "icd10Pattern") or "",
                basis=_annotation(world, ind, "basis"),
            )

    version = (onto.metadata.versionInfo or ["0"])[0]
    return Ontology(
        iri=ONTOLOGY_IRI, version=str(version), source_hash=hashlib.sha256(source).hexdigest(),
        classes=dict(sorted(classes.items())), properties=dict(sorted(properties.items())),
        edges=dict(sorted(edges.items())), sensitivity_labels=dict(sorted(labels.items())),
        _descendants=descendants, _ancestors=ancestors,
    )


def _mro(c: owlready2.ThingClass) -> list[owlready2.ThingClass]:
    """The class and its named superclasses, most specific first (single inheritance here)."""
    out = [c]
    while True:
        parents = [p for p in out[-1].is_a if isinstance(p, owlready2.ThingClass)]
        if not parents or parents[0] is owlready2.Thing:
            return out
        out.append(parents[0])


@cache
def load_ontology(path: Path = ONTOLOGY_PATH) -> Ontology:
    """The platform's ontology, loaded once per process."""
    return build(*load_world(path))
