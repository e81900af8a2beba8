"""The hub's settings, read once from `HUB_*` environment variables (or a `.env` file)."""

from __future__ import annotations

import re
from datetime import date
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The repository root: contracts, policies and the dbt project are read from here.
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Typed settings; every field can be set as `HUB_<NAME>`."""

    model_config = SettingsConfigDict(env_prefix="HUB_", env_file=".env", extra="ignore")

    # ---------- warehouse
    home: Path = Path(".hub")  # embedded PostgreSQL, signing keys, dbt and Prefect state
    database_url: SecretStr | None = None  # unset: start the embedded PostgreSQL under `home`
    # Streaming standbys of the warehouse that serve dataset reads (rows, exports, change
    # feeds): one or more postgresql:// URLs separated by spaces (docs/replicas.md).
    # Everything that writes (audit, grants, tokens) stays on database_url.
    read_database_url: SecretStr | None = None
    # How long a read waits for a standby to replay the version the primary has published
    # before it is read from the primary instead; and how long a standby that failed or
    # lagged past that wait is left out before it is tried again.
    read_replica_wait_ms: int = Field(default=500, ge=0)
    read_replica_retry_seconds: float = Field(default=10.0, ge=0)

    # ---------- calendar
    # The day the hub compares dates against (grant validity, expiry, deprecation), as
    # YYYY-MM-DD; unset: the real day (UTC). For tests and rehearsals (hub/clock.py).
    clock: date | None = None

    # ---------- project files
    contracts_dir: Path = PROJECT_ROOT / "contracts"
    policies_dir: Path = PROJECT_ROOT / "access_policies"
    dbt_project_dir: Path = PROJECT_ROOT / "dbt_project"
    sample_data_dir: Path = PROJECT_ROOT / "data"
    # Prefect deployments: POST /contracts says which one (if any) publishes a dataset
    deployments_file: Path = PROJECT_ROOT / "deploy" / "prefect.yaml"

    # ---------- demo
    # When a source's connection variable is unset, provision the department's sample
    # system (a separate database on the warehouse server) from the bundled data.
    demo_sources: bool = True

    # ---------- sources
    # Hosts a source may be on although they are loopback or link-local (SSRF guard):
    # comma-separated, e.g. "127.0.0.1,localhost". Demo sources on loopback are allowed
    # while demo_sources is on.
    source_allowed_hosts: str = ""
    drop_dir: Path | None = None  # root of local file drops; default HOME/dropzone
    mqtt_url: str = "mqtt://127.0.0.1:1883"  # broker the demo replays sensor feeds into
    source_concurrency: int = 2  # concurrent ingests per source system

    # ---------- Prefect workers (docs/workers.md)
    # A deployed run says it is alive this often; three missed, the server marks it
    # Crashed and runs its deployment again on any worker (the automations `hub deploy` makes).
    run_heartbeat_seconds: float = Field(default=10.0, gt=0)
    # A run a worker took (Pending) that has not started (Running) in this long is marked
    # Crashed and run again: its worker died while starting it. Generous: a loaded machine
    # takes tens of seconds to start a run's process. Prefect's least window is 10 s.
    run_start_seconds: float = Field(default=300.0, ge=10)
    # Where workers have the checkout they run the deployments from (`hub deploy`).
    project_dir: Path = PROJECT_ROOT

    # ---------- API and OAuth2
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    issuer: str | None = None  # unset: the address `hub serve` listens on (token_issuer)
    audience: str = "civic-data-hub"
    token_ttl_seconds: int = 900
    # The console: a public OAuth2 client (no secret) that signs people in with the
    # authorization code grant and PKCE, redirecting only to these URIs.
    console_client_id: str = "console"
    console_redirect_uris: str | None = None  # unset: <token_issuer>/console/callback
    auth_code_ttl_seconds: int = 60
    # Failed sign-ins allowed per username and per address within the window; beyond them
    # sign-in is refused without checking the password until the window moves on.
    signin_failures_per_user: int = 5
    signin_failures_per_address: int = 20
    signin_window_seconds: int = 300
    pseudonym_key: SecretStr | None = None  # unset: a random key kept under `home`
    max_rows_per_page: int = 1000
    # The deepest `offset` a page may ask for: deeper pages follow next_cursor (keyset
    # paging on the key index costs the same at any depth; an offset reads every row it
    # skips).
    max_offset: int = Field(default=10_000, ge=0)
    max_export_rows: int = 1_000_000  # GET /datasets/{id}/export, streamed
    max_export_bytes: int = 512 * 1024 * 1024
    # Published versions kept for GET /datasets/{id}/changes (0: no change feed); older
    # ones are dropped when a new version is published.
    change_feed_versions: int = Field(default=10, ge=0)

    # ---------- the city's identity provider (optional): its tokens are accepted too
    idp_issuer: str | None = None
    idp_jwks_url: str | None = None
    idp_audience: str | None = None  # default: the hub's own audience
    idp_role_claim: str = "roles"
    idp_role_map: dict[str, str] = {}  # JSON: provider role -> hub role in access_policies/
    # JSON: provider claim -> hub attribute, e.g. {"council_district": "district"}
    idp_attribute_map: dict[str, str] = {}
    statement_timeout_ms: int = 5000  # every query a caller can shape
    rate_limit_per_minute: int = Field(default=1200, ge=1)  # per client, all instances
    # Where every `hub serve` instance keeps the shared rate limits and failed sign-ins:
    # unset, the warehouse (hub.rate_limits); set (redis://host:6379/0), that Redis.
    redis_url: SecretStr | None = None
    redis_prefix: str = "hub"  # key prefix in Redis: one per warehouse sharing a Redis
    # On SIGTERM or SIGINT, `hub serve` answers the requests in flight for this long, then
    # closes what is left (docs/production.md#stopping).
    shutdown_grace_seconds: float = Field(default=5.0, gt=0)
    # On SIGTERM or SIGINT, `hub worker` lets its runs in flight end for this long, then
    # hands the rest back to the pool (docs/workers.md#stopping-a-worker).
    worker_grace_seconds: float = Field(default=60.0, ge=0)

    # ---------- open data: the DCAT-AP catalog and residents' feedback (docs/open-catalog.md)
    open_publisher: str = "Civic Data Hub"  # the catalog's publisher: the city's name
    # The licence of the open datasets' distributions (a URI, e.g. the EU licence vocabulary's)
    open_licence: str = "http://publications.europa.eu/resource/authority/licence/CC_BY_4_0"
    feedback_max_chars: int = Field(default=2000, ge=1)  # longer messages are refused (413)
    feedback_per_hour: int = Field(default=10, ge=1)  # posts per address, all instances

    # ---------- audit
    app_role: str = "hub_app"  # the API reads and appends audit rows as this database role
    audit_seal_seconds: float = 2.0  # how often `hub serve` chains and signs new audit rows
    audit_retention_days: int = 365  # `hub audit archive` moves older entries to files
    # Benchmarks only (bench/api.py measures the audit's cost): with false, reads are not
    # recorded one by one; the API records that audit was off when it starts.
    audit_reads: bool = True

    # ---------- backups (docs/operations.md#backups)
    backup_key: SecretStr | None = None  # the passphrase backups are encrypted with
    backup_key_file: Path | None = None  # or a file holding it (mode 0600, not beside backups)
    backup_url: str | None = None  # a folder or fsspec URL; unset: HOME/backups
    backup_keep: str = "7/4/12"  # daily/weekly/monthly backups retention keeps

    # ---------- TLS for `hub serve` (both set: https, Secure cookies, HSTS)
    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None

    @field_validator("read_database_url")
    @classmethod
    def _read_urls_are_urls(cls, value: SecretStr | None) -> SecretStr | None:
        # Spaces separate the standbys (a libpq multi-host URL has commas of its own).
        for url in value.get_secret_value().split() if value else []:
            if not url.startswith(("postgresql://", "postgres://")):
                raise ValueError("give one or more postgresql://user@host:port/db URLs of "
                                 "standbys, separated by spaces")
        return value

    def read_urls(self) -> list[str]:
        """The read replicas' URLs (none: every read goes to the primary)."""
        text = self.read_database_url.get_secret_value() if self.read_database_url else ""
        return text.split()

    def allowed_hosts(self) -> tuple[str, ...]:
        hosts = [h.strip().lower() for h in self.source_allowed_hosts.split(",") if h.strip()]
        return tuple(hosts + (["127.0.0.1", "localhost"] if self.demo_sources else []))

    def drop_root(self) -> Path:
        return (self.drop_dir or self.home / "dropzone").resolve()

    @property
    def token_issuer(self) -> str:
        """The issuer in tokens and metadata: HUB_ISSUER, else where the API listens."""
        scheme = "https" if self.tls_enabled else "http"
        return self.issuer or f"{scheme}://{self.api_host}:{self.api_port}"

    @property
    def tls_enabled(self) -> bool:
        return self.tls_certfile is not None and self.tls_keyfile is not None

    def redirect_uris(self) -> set[str]:
        text = self.console_redirect_uris or f"{self.token_issuer}/console/callback"
        return {u.strip() for u in text.split(",") if u.strip()}

    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"

    @property
    def backup_destination(self) -> str:
        return self.backup_url or str(self.home / "backups")

    @property
    def audit_archive_dir(self) -> Path:
        return self.home / "audit-archive"


# user:password@ in a URL: never echoed back to a terminal or a log.
_CREDENTIALS = re.compile(r"://[^/@\s]*@")


def masked_url(text: str) -> str:
    """`text` without the credentials of any URL in it."""
    return _CREDENTIALS.sub("://", text)


@lru_cache
def get_settings() -> Settings:
    return Settings()
