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
from collections import defaultdict
from pathlib import Path
from typing import Any

import pandas as pd


class ProvinceWriter:
    def __init__(self) -> None:
        self.nodes: dict[str, list[pd.DataFrame]] = defaultdict(list)
        self.edges: dict[str, list[pd.DataFrame]] = defaultdict(list)
        self.extra_files: dict[str, list[dict[str, Any]]] = {}

    def add_nodes(self, table: str, frame: pd.DataFrame | list[dict[str, Any]]) -> None:
        frame = pd.DataFrame(frame) if isinstance(frame, list) else frame
        if len(frame):
            self.nodes[table].append(frame)

    def add_edges(self, edge: str, src: Any, dst: Any, src_class: Any, dst_class: Any) -> None:
        frame = pd.DataFrame({"src": src, "dst": dst, "src_class": src_class, "dst_class": dst_class})
        if len(frame):
            self.edges[edge].append(frame)

    def add_extra(self, relative_path: str, records: list[dict[str, Any]]) -> None:
        self.extra_files[relative_path] = records

    def write(self, out: Path, manifest: dict[str, Any], ground_truth: dict[str, Any]) -> dict[str, int]:
        (out / "nodes").mkdir(parents=True, exist_ok=True)
        (out / "edges").mkdir(parents=True, exist_ok=True)
        counts: dict[str, int] = {}
        for table, frames in sorted(self.nodes.items()):
            frame = pd.concat(frames, ignore_index=True)
            frame.to_parquet(out / "nodes" / f"{table}.parquet", index=False)
            counts[table] = len(frame)
        for edge, frames in sorted(self.edges.items()):
            frame = pd.concat(frames, ignore_index=True)
            frame.to_parquet(out / "edges" / f"{edge}.parquet", index=False)
            counts[edge] = len(frame)
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
