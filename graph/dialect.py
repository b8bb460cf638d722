"""Per-engine syntax: schema statements generated from the ontology, bulk-load and path syntax.

The executor (a GraphStore backend) owns connections and transactions; the dialect owns every
difference in what is written. Identifiers in statements come only from the ontology.
"""

from __future__ import annotations

from ontology.model import Ontology, Property

EDGE_PROVENANCE = ("batch_id",)
"""What every edge carries: its batch, whose IngestBatch node holds the source and time. Nodes carry
source, batch_id, ingested_at and content_hash themselves (ontology system properties)."""


class Dialect:
    name = "abstract"
    scans = False
    """Whether the engine answers scan-declared queries from table scans (``graph/scan.py``)."""

    def schema_statements(self, onto: Ontology) -> list[str]:
        raise NotImplementedError

    def path_pattern(self, max_hops: int) -> str:
        """A bounded variable-length pattern where no edge repeats (Neo4j's default semantics)."""
        raise NotImplementedError

    def edge_type(self, variable: str) -> str:
        """The expression giving an edge's type name."""
        raise NotImplementedError

    def page(self, variable: str) -> tuple[str, str] | None:
        """How to read a table's nodes a page at a time: a condition keeping the nodes bound to ``variable``
        whose position lies in [``$page_from``, ``$page_to``), and the aggregate giving the end of the
        positions. None: the engine reads a whole table as fast in one result."""
        return None


class LadybugDialect(Dialect):
    """LadybugDB (Kùzu lineage): schema-first tables, one node table per ontology table root."""

    name = "ladybug"
    scans = True
    TYPES = {"string": "STRING", "integer": "INT64", "double": "DOUBLE", "boolean": "BOOLEAN",
             "date": "DATE", "dateTime": "TIMESTAMP"}

    def column_type(self, prop: Property) -> str:
        base = self.TYPES[prop.datatype]
        return f"{base}[]" if prop.is_list else base

    def schema_statements(self, onto: Ontology) -> list[str]:
        out = []
        for table in onto.tables:
            cols = ["key STRING", "class STRING"]
            cols += [f"{p.name} {self.column_type(p)}" for p in onto.table_properties(table).values()]
            out.append(f"CREATE NODE TABLE IF NOT EXISTS {table}({', '.join(cols)}, PRIMARY KEY(key));")
        for edge in onto.edges:
            pairs = ", ".join(f"FROM {s} TO {d}" for s, d in onto.edge_table_pairs(edge))
            prov = ", ".join(f"{p} STRING" for p in EDGE_PROVENANCE)
            out.append(f"CREATE REL TABLE IF NOT EXISTS {edge}({pairs}, {prov});")
        return out

    def copy_edges(self, edge: str, variable: str, src_table: str, dst_table: str, multi_pair: bool) -> str:
        options = f" (from='{src_table}', to='{dst_table}')" if multi_pair else ""
        return f"COPY {edge} FROM {variable}{options}"

    def path_pattern(self, max_hops: int) -> str:
        # Ladybug repeats edges by default; TRAIL gives Neo4j's semantics (ACYCLIC returned wrong rows).
        return f"* TRAIL 1..{int(max_hops)}"

    def edge_type(self, variable: str) -> str:
        return f"label({variable})"

    def page(self, variable: str) -> tuple[str, str]:
        # The result of a statement sits whole in the buffer pool: a 10M-row table in one result needed an
        # 8 GiB pool. A page by node offset costs a scan of the offsets (0.16 s at 1M nodes) besides its rows.
        offset = f"offset(id({variable}))"
        return f"{offset} >= $page_from AND {offset} < $page_to", f"max({offset}) + 1"

    def node_scan(self, table: str, properties: list[str], window: str | None, required: list[str],
                  bounded: bool = True, paged: bool = False) -> str:
        """Each node's offset in its table as ``_id``, and its properties; with a window, only nodes whose
        ``window`` property lies in [``$window_from``, ``$window_to``) (or, not ``bounded``, has a value),
        only those whose ``required[i]`` property equals ``$required_i``, and, ``paged``, only those of one
        page of offsets (``page``)."""
        where = [self.page("n")[0]] if paged else []
        if window:
            where.append(f"n.`{window}` >= $window_from AND n.`{window}` < $window_to" if bounded
                         else f"n.`{window}` IS NOT NULL")
        where += [f"n.`{prop}` = $required_{i}" for i, prop in enumerate(required)]
        returned = ", ".join(["offset(id(n)) AS _id", *(f"n.`{p}` AS `{p}`" for p in properties)])
        return f"MATCH (n:{table}){' WHERE ' + ' AND '.join(where) if where else ''} RETURN {returned}"

    def edge_scan(self, edge: str, source: str, target: str) -> str:
        """The source and target offsets of each relationship of one type between two tables."""
        # The constant column is for LadybugDB 0.22's native Arrow path, which returns no rows for a result
        # of node offsets alone (tests/unit/test_ladybug_native.py pins both faults the store works around).
        return (f"MATCH (a:{source})-[:{edge}]->(b:{target}) "
                f"RETURN offset(id(a)) AS source, offset(id(b)) AS target, 1 AS relationships")


class Neo4jDialect(Dialect):
    """Neo4j 5 (Cypher 5): schema-optional; the store gives each node its table root's label.

    The ontology's keys become uniqueness constraints; ``class``, every coded property (one with an
    ``hg:pattern``) and every digest of an encrypted property get range indexes, so lookups by key,
    by code and by id number avoid label scans.
    """

    name = "neo4j"

    def schema_statements(self, onto: Ontology) -> list[str]:
        out = []
        for table in onto.tables:
            out.append(f"CREATE CONSTRAINT {table.lower()}_key IF NOT EXISTS FOR (n:{table}) REQUIRE n.key IS UNIQUE")
            indexed = ["class"] + [p.name for p in onto.table_properties(table).values() if p.pattern or p.digest_of]
            for prop in indexed:
                out.append(f"CREATE INDEX {table.lower()}_{prop.lower()} IF NOT EXISTS FOR (n:{table}) ON (n.{prop})")
        return out

    def merge_nodes(self, table: str, datetimes: tuple[str, ...] = ()) -> str:
        """``datetimes`` arrive as ISO text and become LocalDateTime here: the driver turns each Python
        datetime into one in pure Python (≈ 0.1 ms a value, measured), text costs the server little."""
        # SET += with a null value removes the property: absent and null are one thing in the graph.
        if not datetimes:
            return f"UNWIND $rows AS r MERGE (n:{table} {{key: r.key}}) SET n += r"
        parsed = ", ".join(f"{name}: localdatetime(r.{name})" for name in datetimes)
        return f"UNWIND $rows AS r MERGE (n:{table} {{key: r.key}}) SET n += r {{.*, {parsed}}}"

    def merge_edges(self, edge: str, src_table: str, dst_table: str) -> str:
        return (f"UNWIND $rows AS r MATCH (a:{src_table} {{key: r.src}}) MATCH (b:{dst_table} {{key: r.dst}}) "
                f"MERGE (a)-[e:{edge}]->(b) ON CREATE SET e.batch_id = r.batch_id")

    def path_pattern(self, max_hops: int) -> str:
        # Neo4j never repeats a relationship within one MATCH (relationship isomorphism).
        return f"*1..{int(max_hops)}"

    def edge_type(self, variable: str) -> str:
        return f"type({variable})"
