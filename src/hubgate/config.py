"""Settings: defaults < TOML config file < `HUBGATE_*` environment < command-line options.

One validated model: unknown keys, bad types and bad values are refused (see `config_sources`,
which reads the layers and words the refusals). Each field's `description` says what it expects.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from hubgate import constants
from hubgate.config_sources import Layers, load_layers


def _http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")) or len(value) < 9:
        raise ValueError("an http:// or https:// URL")
    return value


def _database_url(value: str) -> str:
    expected = "an SQLAlchemy URL such as postgresql+psycopg://user@host/db or sqlite:////path/hubgate.db"
    try:
        url = make_url(value)
    except ArgumentError:
        raise ValueError(expected) from None
    if url.drivername not in ("postgresql", "postgresql+psycopg", "sqlite", "sqlite+pysqlite"):
        raise ValueError(f"{expected} (hubgate runs on PostgreSQL through psycopg, or on SQLite)")
    return value


SECRET_KEY_FORMAT = re.compile(r"[!-~]{32,512}")


def _secret_key(value: str) -> str:
    if not SECRET_KEY_FORMAT.fullmatch(value):
        raise ValueError("32 to 512 printable ASCII characters without spaces, such as the output of `openssl rand -hex 32`")
    return value


def _env_name(value: str) -> str:
    if not value or not value.replace("_", "A").isalnum() or value[0].isdigit():
        raise ValueError("the name of an environment variable, such as HF_TOKEN")
    return value


def _accel_prefix(value: str) -> str:
    if not re.fullmatch(r"/(?:[A-Za-z0-9._~-]+/)+", value) or "/../" in value or "/./" in value:
        raise ValueError("a URL path starting and ending with /, such as /_hubgate_blobs/")
    return value


HttpUrl = Annotated[str, AfterValidator(_http_url)]
Seconds = Annotated[float, Field(ge=0, description="a number of seconds, 0 or more")]


class UpstreamConfig(BaseModel):
    """An upstream hub to mirror (huggingface.co, hf-mirror.com, another hubgate)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="a short name for logs and status, such as hub")
    url: HttpUrl = Field(description="an http:// or https:// URL")
    # Name of the environment variable holding the server-side token for this upstream.
    token_env: Annotated[str, AfterValidator(_env_name)] | None = None
    # Send a client's own upstream token (a non-hubgate Bearer token) to this upstream, and only
    # to this one, for gated or private repos (Lorax-style passthrough).
    passthrough: bool = False
    timeout: float = Field(30.0, gt=0, description="a number of seconds, more than 0")

    @property
    def token(self) -> str | None:
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


class XetSettings(BaseModel):
    """Plain copies of files uploaded through Xet (the `[xet]` table of the config file).

    A client without hf_xet (plain HTTP, git-lfs) gets a Xet file rebuilt from its xorbs; the first
    whole download also keeps the rebuilt bytes as a blob (verified against the file's SHA-256), so
    later downloads are served like an LFS file. Those copies are a cache, capped here."""

    model_config = ConfigDict(extra="forbid")

    # Largest total size of the plain copies in bytes (0: make none); least recently used first out.
    plain_copy_max_bytes: int = Field(64 * 1024**3, ge=0, description="a number of bytes, 0 (no copies) or more")
    # Seconds after its last use a plain copy may be evicted (a client may still be downloading it,
    # from the S3 bucket or with a presigned URL).
    plain_copy_idle: Seconds = 900.0


class MirrorSettings(BaseModel):
    """How the pull-through cache behaves (the `[mirror]` table of the config file)."""

    model_config = ConfigDict(extra="forbid")

    # Seconds a branch or tag -> commit mapping is trusted before asking upstream again.
    revision_ttl: Seconds = 60.0
    # Seconds an upstream 404 is remembered.
    negative_ttl: Seconds = 30.0
    # Largest size of the mirror's file cache in bytes (0: unlimited); least recently used first out.
    cache_max_bytes: int = Field(0, ge=0, description="a number of bytes, 0 (unlimited) or more")
    # Who may read private or gated upstream repos fetched with the server's token:
    # "authenticated" (any local user) or "admin".
    restricted_access: Literal["authenticated", "admin"] = "authenticated"
    # Whether callers without a token may read through the mirror at all.
    anonymous_read: bool = True
    # Repo patterns (`acme/*`, `datasets/acme/tts-*`): with `allow`, only those are mirrored;
    # `deny` refuses its matches with a 403, cached copies included.
    allow: list[str] = Field(default_factory=list)
    deny: list[str] = Field(default_factory=list)
    # Replicas on S3 only: the address other replicas reach this one at, to stream a file it is
    # fetching (default: the address a request reached it at, e.g. http://10.0.0.5:8000).
    internal_url: HttpUrl | None = None
    # Replicas on S3 only: seconds after its last use a cached file may be evicted (another
    # replica may still be sending it from the bucket, or a client hold a presigned URL to it).
    evict_grace: Seconds = 900.0


class AuthSettings(BaseModel):
    """Limits on failed authentications (the `[auth]` table of the config file)."""

    # Failed authentications one client address may make per window before it is answered 429
    # (0: no limit); counted in the database, so across every worker process.
    max_failures: int = Field(default=60, ge=0)
    failure_window: float = Field(default=60.0, gt=0)


class HttpSettings(BaseModel):
    """How connections are bounded (the `[http]` table of the config file)."""

    model_config = ConfigDict(extra="forbid")

    # Seconds a client has to send a request's headers, from connecting or from the previous answer.
    header_timeout: float = Field(30.0, gt=0, description="a number of seconds, more than 0")
    # Seconds a request body may stall before the connection is closed.
    body_timeout: float = Field(60.0, gt=0, description="a number of seconds, more than 0")
    # Seconds an answer may wait for a client that reads nothing before the connection is dropped.
    send_timeout: float = Field(60.0, gt=0, description="a number of seconds, more than 0")
    # Seconds an idle keep-alive connection is kept open.
    keep_alive: int = Field(30, ge=0, description="a whole number of seconds, 0 or more")
    # Most connections open at once from one client address (0: no cap); trusted proxies are exempt.
    max_connections_per_client: int = Field(64, ge=0, description="a number of connections, 0 (no cap) or more")
    # Addresses of reverse proxies whose X-Forwarded-For/-Proto headers are believed ("*": any).
    trusted_proxies: list[str] = Field(default_factory=list)
    # X-Accel-Redirect mode (nginx in front): a file stored in the local blob folder is answered
    # with its headers, an empty body and `X-Accel-Redirect: <prefix><path in the blob folder>`,
    # and nginx sends the bytes from an `internal` location aliasing that folder (None: off).
    accel_redirect_prefix: Annotated[str, AfterValidator(_accel_prefix)] | None = None

    @model_validator(mode="after")
    def _accel_behind_proxy(self) -> HttpSettings:
        if self.accel_redirect_prefix is not None and not self.trusted_proxies:
            raise ValueError(
                "trusted_proxies to list the nginx in front when accel_redirect_prefix is set"
                " (a client reaching hubgate directly would get empty bodies)"
            )
        return self


class BlobSettings(BaseModel):
    """Where blobs live (the `[blobs]` table of the config file): local files or an S3 bucket."""

    model_config = ConfigDict(extra="forbid")

    backend: Literal["local", "s3"] = "local"
    # S3 only: the endpoint (default: AWS's own for `region`), bucket, region and key prefix.
    endpoint_url: HttpUrl | None = None
    bucket: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", description="an S3 bucket name")
    region: str = Field("us-east-1", min_length=1, description="an S3 region such as us-east-1")
    prefix: str = Field("", pattern=r"^([A-Za-z0-9._-]+/)*$", description="empty or a key prefix ending in /")
    # "proxy": hubgate streams the bytes; "redirect": clients get a short-lived presigned URL.
    serve: Literal["proxy", "redirect"] = "proxy"
    presign_ttl: int = Field(300, ge=1, le=604800, description="a number of seconds from 1 to 604800")
    # Credentials; default: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (boto3's usual chain).
    access_key_id: str | None = None
    secret_access_key: str | None = None
    # Bytes per multipart part (memory held per upload in progress).
    part_size: int = Field(16 * 1024 * 1024, ge=5 * 1024 * 1024, description="a number of bytes, 5 MiB or more")

    @model_validator(mode="after")
    def _s3_needs_bucket(self) -> BlobSettings:
        if self.backend == "s3" and not self.bucket:
            raise ValueError("a bucket (blobs.bucket) when backend is s3")
        return self


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field(constants.DEFAULT_HOST, min_length=1, description="an address such as 127.0.0.1 or 0.0.0.0")
    port: int = Field(constants.DEFAULT_PORT, ge=0, le=65535, description="a port number from 0 to 65535")
    data: Path = Field(Path(constants.DEFAULT_DATA_DIR), description="a folder (created if its parent exists)")
    config: Path | None = None
    # SQLAlchemy URL of the metadata store; default: SQLite inside the data folder.
    database_url: Annotated[str, AfterValidator(_database_url)] | None = None
    # Database connections each process keeps open (as many more may open for a burst).
    db_pool_size: int = Field(5, ge=1, le=100, description="a number of connections from 1 to 100")
    # The server key (signs presigned links, encrypts stored upstream tokens); every replica of one
    # deployment needs the same. Default: a random key kept in the data folder's secret.key.
    secret_key: Annotated[str, AfterValidator(_secret_key)] | None = Field(None, repr=False)
    # Externally visible base URL (used in URLs handed to clients); default: the request's own.
    public_url: HttpUrl | None = None
    workers: int = Field(1, ge=1, le=64, description="a number of processes from 1 to 64")
    log_level: Literal["critical", "error", "warning", "info", "debug", "trace"] = "info"
    # "text" (one readable line per event) or "json" (one JSON object per line).
    log_format: Literal["text", "json"] = "text"
    lfs_threshold: int = Field(constants.DEFAULT_LFS_THRESHOLD, ge=1, description="a number of bytes, 1 or more")
    max_commit_bytes: int = Field(constants.DEFAULT_MAX_COMMIT_BYTES, ge=1, description="a number of bytes, 1 or more")
    # Upstream hubs, tried in order (`[[upstream]]` tables in the config file).
    upstream: list[UpstreamConfig] = Field(default_factory=list)
    mirror: MirrorSettings = Field(default_factory=MirrorSettings)
    xet: XetSettings = Field(default_factory=XetSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    gc: GcSettings = Field(default_factory=GcSettings)
    blobs: BlobSettings = Field(default_factory=BlobSettings)
    # Never contact an upstream; serve what is cached.
    offline: bool = False
    # Days the audit log (data/audit/) keeps its records; 0 keeps them forever.
    audit_retention_days: int = 365
    # TESTS ONLY: crash points where the server kills itself (see hubgate/crashpoints.py).
    crash_at: str = ""
    # TESTS ONLY: uvicorn's httptools protocol instead of hubgate's guarded h11 one (which enforces
    # the [http] limits), to test the zero-copy path under both (tests/test_zerocopy.py).
    uvicorn_http: Literal["guarded-h11", "httptools"] = "guarded-h11"

    @property
    def passthrough(self) -> bool:
        """Whether any upstream takes clients' own tokens."""
        return any(u.passthrough for u in self.upstream)

    @field_validator("data")
    @classmethod
    def _data_folder(cls, data: Path) -> Path:
        if data.exists() and not data.is_dir():
            raise ValueError("a folder, not a file")
        if not data.exists() and not data.absolute().parent.is_dir():
            raise ValueError(f"a folder inside an existing one ({data.absolute().parent} does not exist)")
        return data

    @field_validator("upstream")
    @classmethod
    def _distinct_names(cls, upstreams: list[UpstreamConfig]) -> list[UpstreamConfig]:
        names = [u.name for u in upstreams]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"upstreams with distinct names ({', '.join(twice)} used twice)")
        return upstreams

    def unset_tokens(self, layers: Layers) -> list[str]:
        """What only a server or mirror pull refuses: a `token_env` naming an unset variable
        (offline, no upstream is asked anything, so no token is needed)."""
        if self.offline:
            return []
        return [
            f"{layers.prefix(('upstream', index, 'token_env'))}{upstream.token_env} is not set in the environment; "
            f"expected it to hold the token for {upstream.name} (or remove token_env)"
            for index, upstream in enumerate(self.upstream)
            if upstream.token_env and not upstream.token
        ]

    @classmethod
    def load(cls, **options: Any) -> Settings:
        """Build settings from command-line `options` (None means 'not given'); ConfigError if invalid."""
        return cls.from_layers(load_layers(cls, options))

    @classmethod
    def from_layers(cls, layers: Layers) -> Settings:
        return layers.validate(cls)

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data / 'hubgate.db').resolve()}"

    @property
    def blob_dir(self) -> Path:
        return self.data / "blobs"

    @property
    def tmp_dir(self) -> Path:
        return self.data / "tmp"

    def signing_key(self) -> bytes:
        """The server key: `secret_key` (config or HUBGATE_SECRET_KEY), else the data folder's
        secret.key, created once (0600, first starter wins)."""
        if self.secret_key is not None:
            return self.secret_key.encode("ascii")
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

