"""Settings: defaults < TOML config file < `HUBGATE_*` environment < command-line options."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from hubgate import constants


class UpstreamConfig(BaseModel):
    """An upstream hub to mirror (huggingface.co, hf-mirror.com, another hubgate)."""

    name: str
    url: str
    # Name of the environment variable holding the server-side token for this upstream.
    token_env: str | None = None
    # Send a client's own upstream token (a non-hubgate Bearer token) to this upstream, and only
    # to this one, for gated or private repos (Lorax-style passthrough).
    passthrough: bool = False
    timeout: float = 30.0

    @property
    def token(self) -> str | None:
        import os

        return os.environ.get(self.token_env) if self.token_env else None


class GcSettings(BaseModel):
    """Garbage collection of unreferenced content (the `[gc]` table of the config file)."""

    # Seconds between collections run by the server (0: only `hubgate gc`).
    interval: float = 86400.0
    # Blobs written less than this many seconds ago are never collected: longer than any upload
    # or inline commit takes between writing a file's bytes and committing it.
    grace: float = 3600.0
    # LFS uploads no commit uses are kept this many seconds for the commit that will use them.
    upload_grace: float = 86400.0


class MirrorSettings(BaseModel):
    """How the pull-through cache behaves (the `[mirror]` table of the config file)."""

    # Seconds a branch or tag -> commit mapping is trusted before asking upstream again.
    revision_ttl: float = 60.0
    # Seconds an upstream 404 is remembered.
    negative_ttl: float = 30.0
    # Largest size of the mirror's file cache in bytes (0: unlimited); least recently used first out.
    cache_max_bytes: int = 0
    # Who may read private or gated upstream repos fetched with the server's token:
    # "authenticated" (any local user) or "admin".
    restricted_access: Literal["authenticated", "admin"] = "authenticated"


class AuthSettings(BaseModel):
    """Limits on failed authentications (the `[auth]` table of the config file)."""

    # Failed authentications one client address may make per window before it is answered 429
    # (0: no limit); counted in the database, so across every worker process.
    max_failures: int = Field(default=60, ge=0)
    failure_window: float = Field(default=60.0, gt=0)


class HttpSettings(BaseModel):
    """How connections are bounded (the `[http]` table of the config file)."""

    # Seconds a client has to send a request's headers, from connecting or from the previous answer.
    header_timeout: float = 30.0
    # Seconds a request body may stall before the connection is closed.
    body_timeout: float = 60.0
    # Seconds an answer may wait for a client that reads nothing before the connection is dropped.
    send_timeout: float = 60.0
    # Seconds an idle keep-alive connection is kept open.
    keep_alive: int = 30
    # Most connections open at once from one client address (0: no cap); trusted proxies are exempt.
    max_connections_per_client: int = 64
    # Addresses of reverse proxies whose X-Forwarded-For/-Proto headers are believed ("*": any).
    trusted_proxies: list[str] = Field(default_factory=list)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=constants.ENV_PREFIX, extra="ignore")

    host: str = constants.DEFAULT_HOST
    port: int = constants.DEFAULT_PORT
    data: Path = Path(constants.DEFAULT_DATA_DIR)
    config: Path | None = None
    # SQLAlchemy URL of the metadata store; default: SQLite inside the data folder.
    database_url: str | None = None
    # Externally visible base URL (used in URLs handed to clients); default: the request's own.
    public_url: str | None = None
    workers: int = 1
    log_level: str = "info"
    lfs_threshold: int = constants.DEFAULT_LFS_THRESHOLD
    max_commit_bytes: int = constants.DEFAULT_MAX_COMMIT_BYTES
    # huggingface_hub >= 1.20 sends every "lfs" file to a Xet CAS, which hubgate does not have
    # yet, so such clients are told to send files inline ("regular"). Set this when every such
    # client runs with HF_HUB_DISABLE_XET=1 to give them the LFS batch path instead.
    lfs_for_xet_clients: bool = False
    # Upstream hubs, tried in order (`[[upstream]]` tables in the config file).
    upstream: list[UpstreamConfig] = Field(default_factory=list)
    mirror: MirrorSettings = Field(default_factory=MirrorSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    gc: GcSettings = Field(default_factory=GcSettings)
    # Never contact an upstream; serve what is cached.
    offline: bool = False
    # Days the audit log (data/audit/) keeps its records; 0 keeps them forever.
    audit_retention_days: int = 365
    # TESTS ONLY: crash points where the server kills itself (see hubgate/crashpoints.py).
    crash_at: str = ""

    @property
    def passthrough(self) -> bool:
        """Whether any upstream takes clients' own tokens."""
        return any(u.passthrough for u in self.upstream)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlFromConfigOption(settings_cls, init_settings, env_settings))

    @classmethod
    def load(cls, **options: Any) -> Settings:
        """Build settings from command-line `options` (None means 'not given')."""
        return cls(**{k: v for k, v in options.items() if v is not None})

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data / 'hubgate.db').resolve()}"

    @property
    def blob_dir(self) -> Path:
        return self.data / "blobs"

    @property
    def tmp_dir(self) -> Path:
        return self.data / "tmp"

    def secret_key(self) -> bytes:
        """Key that signs presigned URLs; created once per data folder (0600, first starter wins)."""
        path = self.data / "secret.key"
        if not path.exists():
            self.data.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"secret.key.{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32))
            try:
                os.link(tmp, path)  # atomic, and fails if another process got there first
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        return bytes.fromhex(path.read_text().strip())


class _TomlFromConfigOption(TomlConfigSettingsSource):
    """Reads the TOML file named by the `config` option or `HUBGATE_CONFIG`."""

    def __init__(self, settings_cls: type[BaseSettings], *earlier: PydanticBaseSettingsSource):
        path = None
        for source in earlier:
            value = source().get("config")
            if value:
                path = Path(value)
                break
        super().__init__(settings_cls, toml_file=path)
