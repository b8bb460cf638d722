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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from graph.store import STORED_PAGE_ROWS, GraphStore
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


def write_import_files(store: GraphStore, folder: Path, progress: Callable[[str, int], None] | None = None, *,
                       page_rows: int | None = None) -> ImportFiles:
    """Write every non-empty table and relationship of ``store`` as the importer's CSV files in ``folder``,
    reading ``page_rows`` nodes (or relationships of as many source nodes) at a time (default
    ``STORED_PAGE_ROWS``).

    ``progress(name, rows)`` is called after each file. Raises GraphCopyFailed (HG-0208) for a value the
    importer would read differently from what is stored: a list element holding the array delimiter.
    """
    folder.mkdir(parents=True, exist_ok=True)
    page_rows = page_rows or STORED_PAGE_ROWS
    onto = store.onto
    files = ImportFiles(folder)
    empty = store.empty_tables()
    for table in onto.tables:
        if table in empty:
            continue
        properties = onto.table_properties(table)
        path = folder / f"{table}.csv.gz"
        rows, multiline = _write((node_columns(table, page, properties) for page in store.stored_nodes(table, page_rows)), path)
        files.nodes[table], files.rows[table] = path, rows
        files.multiline |= multiline
        if progress:
            progress(table, rows)
    for edge in onto.edges:
        if edge in empty:
            continue
        for source, target in onto.edge_table_pairs(edge):
            path = folder / f"{edge}.{source}.{target}.csv.gz"
            rows, multiline = _write((edge_columns(source, target, page)
                                      for page in store.stored_edges(edge, source, target, page_rows)), path)
            if rows == 0:
                path.unlink()
                continue
            files.relationships.append((edge, path))
            files.rows[edge] = files.rows.get(edge, 0) + rows
            files.multiline |= multiline
            if progress:
                progress(f"{edge} {source}→{target}", rows)
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


def _write(pages: Iterator[pa.Table], path: Path) -> tuple[int, bool]:
    """Write pages of rows as one gzipped CSV file (header first, strings quoted, nulls as empty fields); the
    rows written and whether a text held a line break. Gzipped, the files take a sixth of their plain size
    beside the store being built (312 MB against 2 GB at 997k encounters)."""
    rows, multiline, writer, schema = 0, False, None, None
    with gzip.open(path, "wb", compresslevel=1) as out:  # level 1: several times faster than the default, nearly as small
        for page in pages:
            if writer is None:
                schema = page.schema
                writer = pacsv.CSVWriter(out, schema, write_options=pacsv.WriteOptions(quoting_style="needed"))
            writer.write_table(page.cast(schema))
            rows += page.num_rows
            multiline |= any(pc.any(pc.match_substring_regex(page.column(i), r"[\r\n]")).as_py() or False
                             for i, t in enumerate(page.schema.types)
                             if pa.types.is_string(t) or pa.types.is_large_string(t))
        if writer is not None:
            writer.close()
    return rows, multiline
