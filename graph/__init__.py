"""The typed property graph: the GraphStore protocol, its engines and the named-query catalog.

Services reach the graph only through ``open_graph()`` and the store's typed methods.
"""

from __future__ import annotations

from pathlib import Path

from graph.catalog import QUERIES, NamedQuery, named_query
from graph.store import GraphStore, Provenance, WriteResult
from ontology.errors import GraphError, NodeNotFound, StoreLocked, UnknownQuery
from ontology.model import Ontology, load_ontology

__all__ = [
    "QUERIES", "GraphError", "GraphStore", "NamedQuery", "NodeNotFound", "Provenance", "StoreLocked",
    "UnknownQuery", "WriteResult", "named_query", "open_graph", "schema_ddl",
]


def open_graph(path: str | Path, *, engine: str = "ladybug", onto: Ontology | None = None) -> GraphStore:
    """Open (creating if needed) the graph store with the schema generated from the ontology."""
    onto = onto or load_ontology()
    if engine == "ladybug":
        from graph.ladybug import LadybugStore

        return LadybugStore(path, onto)
    raise GraphError(f"unknown graph engine '{engine}' (valid: ladybug; neo4j arrives with the engines work)")


def schema_ddl(onto: Ontology) -> dict[str, str]:
    """Each dialect's schema statements rendered from the ontology (for ontology/generated/)."""
    from graph.dialect import LadybugDialect

    return {"ladybug": "\n".join(LadybugDialect().schema_statements(onto)) + "\n"}
