"""The application's one settings object (environment prefix ``HEALTHGRAPH_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where data lives, which engines to use and where to serve. Read once, when the app starts."""

    model_config = SettingsConfigDict(env_prefix="HEALTHGRAPH_", extra="ignore")

    data_dir: Path = Field(Path("var"), description="Folder for the graph, generated data, quarantine and audit")
    graph_engine: Literal["ladybug"] = Field("ladybug", description="Graph engine (neo4j arrives with the engines work)")
    host: str = "127.0.0.1"
    port: int = 8000
    residents: int = Field(10_000, description="Size of the demo province")
    seed: int = 7

    @property
    def graph_path(self) -> Path:
        return self.data_dir / "graph.lbdb"

    @property
    def province_dir(self) -> Path:
        return self.data_dir / "province"

    @property
    def quarantine_dir(self) -> Path:
        return self.data_dir / "quarantine"

    @property
    def audit_path(self) -> Path:
        return self.data_dir / "audit" / "access.jsonl"
