"""The application's one settings object (environment prefix ``HEALTHGRAPH_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where data lives, which engines to use and where to serve. Read once, when the app starts."""

    model_config = SettingsConfigDict(env_prefix="HEALTHGRAPH_", extra="ignore", populate_by_name=True)

    data_dir: Path = Field(Path("var"), description="Folder for the graph, generated data, quarantine and audit")
    graph_engine: Literal["ladybug", "neo4j"] = Field(
        "ladybug", validation_alias=AliasChoices("HEALTHGRAPH_GRAPH", "HEALTHGRAPH_GRAPH_ENGINE"),
        description="Graph engine: embedded LadybugDB (default) or a Neo4j 5 server")
    graph_buffer_pool_mb: int = Field(
        1024, ge=64, description="LadybugDB's buffer pool (MiB): pages it caches and the memory its queries may "
        "hold; raise it for provinces of a million residents and more (docs/engines.md)")
    neo4j_uri: str = Field("bolt://127.0.0.1:7687", description="Bolt URI when graph_engine is neo4j")
    neo4j_user: str | None = Field(None, description="Neo4j user (None: the server runs without auth)")
    neo4j_password: SecretStr | None = None
    neo4j_database: str = "neo4j"
    search_engine: Literal["tantivy", "opensearch"] = Field(
        "tantivy", validation_alias=AliasChoices("HEALTHGRAPH_SEARCH", "HEALTHGRAPH_SEARCH_ENGINE"),
        description="Search engine: embedded tantivy (default) or an OpenSearch 2 server")
    opensearch_url: str = Field("http://127.0.0.1:9200", description="OpenSearch URL when search_engine is opensearch")
    host: str = "127.0.0.1"
    port: int = 8000
    webhook_attempts: int = Field(5, ge=1, le=20, description="Tries per webhook delivery before it is a dead letter")
    webhook_backoff: float = Field(1.0, gt=0, description="Seconds before the first webhook retry (doubles each try)")
    webhook_max_backoff: float = Field(60.0, gt=0, description="Longest wait between webhook retries (seconds)")
    access_max_failures: int = Field(5, ge=1, le=100, description="Failed logins in a row before the lockout")
    access_lockout_minutes: float = Field(15, gt=0, description="How long a locked-out account stays locked")
    access_token_minutes: float = Field(15, gt=0, le=60, description="Lifetime of an access token (JWT)")
    access_idle_minutes: float = Field(30, gt=0, description="A session ends after this long without a request")
    access_session_hours: float = Field(8, gt=0, le=24, description="A session ends this long after login, in use or not")
    encrypt_fields: bool = Field(True, description="Store the ontology's encrypted identifiers (id number, phone) "
                                 "as SM4-GCM ciphertext with HMAC-SM3 digests (keys under <data_dir>/keys)")
    residents: int = Field(10_000, description="Size of the demo province")
    seed: int = 7

    @property
    def graph_path(self) -> Path:
        return self.data_dir / "graph.lbdb"

    @property
    def servers_dir(self) -> Path:
        """Run folders (data, log, pid) of engine servers started by `healthgraph services start`."""
        return self.data_dir / "servers"

    def open_graph(self, onto: Any = None) -> Any:
        """The configured graph store (embedded file or Neo4j server), sealing designated identifiers."""
        from graph import open_graph

        protector = self.field_protection() if self.encrypt_fields else None
        if self.graph_engine == "neo4j":
            auth = (self.neo4j_user, self.neo4j_password.get_secret_value() if self.neo4j_password else "") \
                if self.neo4j_user else None
            return open_graph(self.neo4j_uri, engine="neo4j", onto=onto, auth=auth, database=self.neo4j_database,
                              protector=protector)
        return open_graph(self.graph_path, engine="ladybug", onto=onto, protector=protector,
                          buffer_pool_mb=self.graph_buffer_pool_mb)

    @property
    def field_keyring_path(self) -> Path:
        """The SM4 keyring of field encryption (created on first use, mode 0600; ``healthgraph keys rotate``)."""
        return self.data_dir / "keys" / "fields-sm4.json"

    @property
    def field_digest_key_path(self) -> Path:
        """The HMAC-SM3 key of the digests that let the graph look up encrypted identifiers."""
        return self.data_dir / "keys" / "fields-digest.key"

    def field_protection(self) -> Any:
        """SM4-GCM sealing and HMAC-SM3 digests of the ontology's encrypted properties."""
        from services.security.fields import FieldProtection

        return FieldProtection.at(self.field_keyring_path, self.field_digest_key_path)

    @property
    def province_dir(self) -> Path:
        return self.data_dir / "province"

    @property
    def models_dir(self) -> Path:
        """Learned models trained for this platform (triage department and question intent)."""
        return self.data_dir / "models"

    @property
    def quarantine_dir(self) -> Path:
        return self.data_dir / "quarantine"

    @property
    def webhooks_path(self) -> Path:
        """Webhook subscriptions and dead letters (JSON, shared by the server and the CLI)."""
        return self.data_dir / "webhooks.json"

    def webhooks(self) -> Any:
        """A webhook hub over :attr:`webhooks_path` with the configured retry policy."""
        from services.webhooks import WebhookHub

        return WebhookHub(self.webhooks_path, attempts=self.webhook_attempts, backoff=self.webhook_backoff,
                          max_backoff=self.webhook_max_backoff)

    @property
    def audit_path(self) -> Path:
        return self.data_dir / "audit" / "access.jsonl"

    @property
    def audit_key_path(self) -> Path:
        """The SM2 key that signs the audit log's checkpoints (created on first use, mode 0600)."""
        return self.data_dir / "keys" / "audit-sm2.pem"

    def platform_key(self) -> Any:
        """The platform's SM2 key (:attr:`audit_key_path`): signs audit checkpoints, key operations, alerts and
        research exports."""
        from services.security import SM2KeyPair

        return SM2KeyPair.load(self.audit_key_path, create=True)

    def audit_log(self) -> Any:
        """The access audit: an SM3 hash chain with SM2-signed checkpoints that fails closed."""
        from services.security import ChainedAuditLog

        return ChainedAuditLog(self.audit_path, self.platform_key())

    @property
    def access_dir(self) -> Path:
        """Users, clients, consents and revoked tokens (JSON, shared by the server and the CLI)."""
        return self.data_dir / "access"

    @property
    def access_key_path(self) -> Path:
        """The key that signs access tokens (created on first use, mode 0600)."""
        return self.data_dir / "keys" / "access-jwt.key"

    def access(self, clock: Any = None) -> Any:
        """The access service (logins, tokens, sessions) over :attr:`access_dir` with the configured limits."""
        import time

        from services.access.service import AccessService, Limits, load_key

        limits = Limits(max_failures=self.access_max_failures, lockout_seconds=self.access_lockout_minutes * 60,
                        token_seconds=self.access_token_minutes * 60, idle_seconds=self.access_idle_minutes * 60,
                        session_seconds=self.access_session_hours * 3600)
        return AccessService(self.access_dir, load_key(self.access_key_path), limits=limits, clock=clock or time.time)
