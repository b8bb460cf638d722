"""A whole graph as the input files of Neo4j's offline bulk importer (``neo4j-admin database import``).

Through Bolt a province loads into Neo4j at ≈ 10k rows/s here: 4.5 h for 10M encounters
(docs/engines.md). The bulk importer writes Neo4j's store files directly instead. This module
writes its input: one gzipped CSV file per node table and one per relationship type and table pair, read
from a source store as stored (sealed fields stay sealed; nothing is opened), with typed headers
generated from the ontology, so that the copy is the graph ``Neo4jStore`` would have written:
one label per table root, absent properties for nulls, dates as Date, date-times as LocalDateTime,
lists as string arrays.

``services.servers.copy_graph_to_neo4j`` runs the importer and creates the ontology's constraints
and indexes when the new database first opens.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from graph.store import GraphStore
from ontology.errors import GraphCopyFailed
from ontology.model import Property

ARRAY_DELIMITER = ";"
"""Between the elements of a list property in a CSV field (the importer's ``--array-delimiter``)."""
HEADER_TYPES = {"string": "string", "integer": "long", "double": "double", "boolean": "boolean", "date": "date",
                "dateTime": "localdatetime"}
"""The importer's field type for each ontology datatype."""


@dataclass
class ImportFiles:
    """What ``write_import_files`` wrote: files per label and per relationship type, and row counts."""

    folder: Path
    nodes: dict[str, Path] = field(default_factory=dict)
    relationships: list[tuple[str, Path]] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    """Rows written per table and per relationship type (summed over its table pairs)."""
    multiline: bool = False
    """Whether a text holds a line break (the importer then reads fields across lines, more slowly)."""

    @property
    def node_count(self) -> int:
        return sum(n for name, n in self.rows.items() if name in self.nodes)

    @property
    def relationship_count(self) -> int:
        return sum(n for name, n in self.rows.items() if name not in self.nodes)

    def arguments(self) -> list[str]:
        """The importer's options naming these files."""
        args = [f"--nodes={label}={path}" for label, path in self.nodes.items()]
        args += [f"--relationships={edge}={path}" for edge, path in self.relationships]
        return [*args, f"--array-delimiter={ARRAY_DELIMITER}", f"--multiline-fields={str(self.multiline).lower()}"]


def write_import_files(store: GraphStore, folder: Path,
                       progress: Callable[[str, int], None] | None = None) -> ImportFiles:
    """Write every non-empty table and relationship of ``store`` as the importer's CSV files in ``folder``.

    ``progress(name, rows)`` is called after each file. Raises GraphCopyFailed (HG-0208) for a value the
    importer would read differently from what is stored: a list element holding the array delimiter.
    """
    folder.mkdir(parents=True, exist_ok=True)
    onto = store.onto
    files = ImportFiles(folder)
    empty = store.empty_tables()
    for table in onto.tables:
        if table in empty:
            continue
        rows = store.stored_nodes(table)
        files.multiline |= _write(node_columns(table, rows, onto.table_properties(table)), folder / f"{table}.csv.gz")
        files.nodes[table] = folder / f"{table}.csv.gz"
        files.rows[table] = rows.num_rows
        if progress:
            progress(table, rows.num_rows)
    for edge in onto.edges:
        if edge in empty:
            continue
        for source, target in onto.edge_table_pairs(edge):
            rows = store.stored_edges(edge, source, target)
            if rows.num_rows == 0:
                continue
            path = folder / f"{edge}.{source}.{target}.csv.gz"
            files.multiline |= _write(edge_columns(source, target, rows), path)
            files.relationships.append((edge, path))
            files.rows[edge] = files.rows.get(edge, 0) + rows.num_rows
            if progress:
                progress(f"{edge} {source}→{target}", rows.num_rows)
    return files


def node_columns(table: str, rows: pa.Table, properties: dict[str, Property]) -> pa.Table:
    """A table's stored rows with the importer's header names and field text: the key is the node's
    id within its table's id space, and each property carries its type."""
    names, columns = [], []
    for name in rows.column_names:
        if name == "key":
            names.append(f"key:ID({table})")
        elif name == "class":
            names.append("class")
        else:
            prop = properties[name]
            names.append(f"{name}:{HEADER_TYPES[prop.datatype]}{'[]' if prop.is_list else ''}")
        columns.append(_field_text(f"{table}.{name}", rows.column(name)))
    return pa.table(columns, names=names)


def edge_columns(source: str, target: str, rows: pa.Table) -> pa.Table:
    """Relationships keyed by their end nodes' ids in the source and target tables' id spaces."""
    return pa.table([rows.column("source"), rows.column("target"), rows.column("batch_id")],
                    names=[f":START_ID({source})", f":END_ID({target})", "batch_id"])


def _field_text(name: str, column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Values as the importer reads them: ISO date-times with a 'T' (Arrow's CSV writer puts a space)
    and lists joined by the array delimiter."""
    if pa.types.is_timestamp(column.type):
        return pc.strftime(column, format="%Y-%m-%dT%H:%M:%S")
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        elements = pc.list_flatten(column)
        clash = pc.any(pc.match_substring(elements, ARRAY_DELIMITER)).as_py() if len(elements) else False
        if clash:
            raise GraphCopyFailed(f"{name}: a list element holds the importer's array delimiter "
                                  f"{ARRAY_DELIMITER!r}; it would be split into two elements", field=name)
        return pc.binary_join(column, ARRAY_DELIMITER)
    return column


def _write(columns: pa.Table, path: Path) -> bool:
    """Write one gzipped CSV file (header first, strings quoted, nulls as empty fields); whether a text held a
    line break. Gzipped, the files take a sixth of their plain size beside the store being built (312 MB
    against 2 GB at 997k encounters)."""
    with gzip.open(path, "wb", compresslevel=1) as out:  # level 1: several times faster than the default, nearly as small
        pacsv.write_csv(columns, out, pacsv.WriteOptions(quoting_style="needed"))
    return any(pc.any(pc.match_substring_regex(columns.column(i), r"[\r\n]")).as_py() or False
               for i, t in enumerate(columns.schema.types) if pa.types.is_string(t) or pa.types.is_large_string(t))
