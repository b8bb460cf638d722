"""The OWL ontology — the single source of truth for classes, properties, edge types, keys, labels and
sensitivity — its loader, validation of records against it, and the artefacts generated from it."""

from ontology.model import Ontology, load_ontology

__all__ = ["Ontology", "load_ontology"]
