"""The typed property graph: the GraphStore protocol, its engines and the named-query catalog.

Services reach the graph only through ``open_graph()`` and the store's typed methods.
"""

from __future__ import annotations

from pathlib import Path

from graph.catalog import QUERIES, NamedQuery, named_query
from graph.protect import FieldProtector, PlainFields
from graph.store import GraphStore, Provenance, WriteResult
from ontology.errors import GraphError, NodeNotFound, StoreLocked, UnknownQuery, did_you_mean
from ontology.model import Ontology, load_ontology

__all__ = [
    "QUERIES", "FieldProtector", "GraphError", "GraphStore", "NamedQuery", "NodeNotFound", "PlainFields", "Provenance",
    "StoreLocked",
    "UnknownQuery", "WriteResult", "named_query", "open_graph", "schema_ddl",
]


ENGINES = ("ladybug", "neo4j")


def open_graph(target: str | Path, *, engine: str = "ladybug", onto: Ontology | None = None,
               auth: tuple[str, str] | None = None, database: str = "neo4j",
               protector: FieldProtector | None = None, buffer_pool_mb: int = 1024) -> GraphStore:
    """Open the graph store and create the schema generated from the ontology (idempotent).

    ``target`` is a folder path for the embedded engine (``ladybug``) and a Bolt URI for
    ``neo4j`` (``auth`` and ``database`` apply to Neo4j only). ``protector`` seals the ontology's
    encrypted properties (the platform passes its SM4-GCM keys; without one they are stored as given).
    ``buffer_pool_mb`` sizes the embedded engine's buffer pool.
    """
    onto = onto or load_ontology()
    if engine == "ladybug":
        from graph.ladybug import LadybugStore

        return LadybugStore(target, onto, protector=protector, buffer_pool_mb=buffer_pool_mb)
    if engine == "neo4j":
        from graph.neo4j import Neo4jStore

        return Neo4jStore(str(target), onto, auth=auth, database=database, protector=protector)
    raise GraphError(f"unknown graph engine '{engine}' {did_you_mean(engine, ENGINES)}")


def schema_ddl(onto: Ontology) -> dict[str, str]:
    """Each dialect's schema statements rendered from the ontology (for ontology/generated/)."""
    from graph.dialect import LadybugDialect, Neo4jDialect

    return {d.name: "\n".join(s.rstrip(";") + ";" for s in d.schema_statements(onto)) + "\n"
            for d in (LadybugDialect(), Neo4jDialect())}
