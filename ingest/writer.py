"""Collects generated records per class and edge type and writes them as a province folder.

Layout of a province folder (what ``healthgraph load`` reads):

    nodes/<Class>.parquet             one file per table root; a `class` column names subclasses
    nodes/<Class>.<part>.jsonl        extra sources (e.g. a legacy export with bad records)
    edges/<edge>.parquet              src, dst, src_class, dst_class
    ground_truth.json                 what the generator planted (duplicates, anomalies, events)
    manifest.json                     generator, seed, parameters, row counts
"""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

Part = pd.DataFrame | Path
"""A frame kept in memory, or the Parquet file it was spilled to."""


class ProvinceWriter:
    """Collects frames per node table and edge type; ``write`` puts each in one Parquet file.

    With ``spill`` set, frames are kept in memory up to ``spill_rows`` rows in all; every frame added
    after that goes to a Parquet part file in that folder at once, and ``write`` streams the parts of a
    file into it one at a time. Memory then holds the generator's own working frames, not everything
    generated so far (a province of ten million encounters is several times this machine's memory as
    pandas frames), while a small province is written as fast as without spilling (a part costs a
    second conversion and a read).
    """

    def __init__(self, spill: Path | None = None, *, spill_rows: int = 2_000_000) -> None:
        self.spill, self.spill_rows, self.held_rows = spill, spill_rows, 0
        self.nodes: dict[str, list[Part]] = defaultdict(list)
        self.edges: dict[str, list[Part]] = defaultdict(list)
        self.extra_files: dict[str, list[dict[str, Any]]] = {}

    def add_nodes(self, table: str, frame: pd.DataFrame | list[dict[str, Any]]) -> None:
        frame = pd.DataFrame(frame) if isinstance(frame, list) else frame
        if len(frame):
            self._keep(self.nodes[table], f"nodes.{table}", frame)

    def add_edges(self, edge: str, src: Any, dst: Any, src_class: Any, dst_class: Any) -> None:
        frame = pd.DataFrame({"src": src, "dst": dst, "src_class": src_class, "dst_class": dst_class})
        if len(frame):
            self._keep(self.edges[edge], f"edges.{edge}", frame)

    def _keep(self, parts: list[Part], name: str, frame: pd.DataFrame) -> None:
        if self.spill is None or self.held_rows + len(frame) <= self.spill_rows:
            self.held_rows += len(frame)
            parts.append(frame)
            return
        self.spill.mkdir(parents=True, exist_ok=True)
        path = self.spill / f"{name}.{len(parts):05d}.parquet"
        frame.to_parquet(path, index=False)
        parts.append(path)

    def add_extra(self, relative_path: str, records: list[dict[str, Any]]) -> None:
        self.extra_files[relative_path] = records

    def write(self, out: Path, manifest: dict[str, Any], ground_truth: dict[str, Any]) -> dict[str, int]:
        (out / "nodes").mkdir(parents=True, exist_ok=True)
        (out / "edges").mkdir(parents=True, exist_ok=True)
        counts: dict[str, int] = {}
        for folder, collected in (("nodes", self.nodes), ("edges", self.edges)):
            for name, parts in sorted(collected.items()):
                counts[name] = _write_parts(parts, out / folder / f"{name}.parquet")
        if self.spill is not None:
            shutil.rmtree(self.spill, ignore_errors=True)
        for rel, records in sorted(self.extra_files.items()):
            path = out / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("w", encoding="utf-8") as fh:
                for rec in records:
                    fh.write(json.dumps(rec, ensure_ascii=False, default=str) + "\n")
            counts[rel] = len(records)
        manifest = {**manifest, "counts": counts}
        (out / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2, default=str),
                                           encoding="utf-8")
        (out / "ground_truth.json").write_text(json.dumps(ground_truth, ensure_ascii=False, indent=1, default=str),
                                               encoding="utf-8")
        return counts


def _write_parts(parts: list[Part], path: Path) -> int:
    """One Parquet file from frames in memory (concatenated) or with spilled parts (streamed); returns its rows."""
    if all(isinstance(part, pd.DataFrame) for part in parts):
        frame = pd.concat(parts, ignore_index=True)
        frame.to_parquet(path, index=False)
        return len(frame)
    # The parts of one file may differ in columns and types (a column all null in one part, integers
    # in one and floats in another): the file takes their union, as pd.concat would.
    schemas = [pa.Schema.from_pandas(part, preserve_index=False) if isinstance(part, pd.DataFrame)
               else pq.read_schema(part) for part in parts]
    bare = [schema.remove_metadata() for schema in schemas]
    order = list(dict.fromkeys(name for schema in bare for name in schema.names))
    unified = pa.unify_schemas(bare, promote_options="permissive")
    unified = pa.schema([unified.field(name) for name in order])
    if all(schema.equals(unified) for schema in bare):  # pandas' own dtypes (nullable integers) then survive
        unified = schemas[0]
    rows = 0
    with pq.ParquetWriter(path, unified) as out:
        for part in parts:
            table = (pa.Table.from_pandas(part, preserve_index=False) if isinstance(part, pd.DataFrame)
                     else pq.read_table(part))
            columns = [table.column(f.name).cast(f.type) if f.name in table.column_names
                       else pa.nulls(table.num_rows, f.type) for f in unified]
            out.write_table(pa.Table.from_arrays(columns, schema=unified))
            rows += table.num_rows
    return rows
