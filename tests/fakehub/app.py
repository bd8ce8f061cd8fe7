"""The fake huggingface.co: two ASGI apps (the Hub origin and its CDN origin) sharing one State.

Routing is done on the raw request path (`scope["raw_path"]`), as the real Hub must: revisions
arrive as `quote(rev, safe="")` (`refs%2Fpr%2F1`) and tree sub-paths may arrive `%2F`-encoded.
Every response is written with explicit headers (a HEAD answers the true Content-Length).

Hub origin
    GET  /api/{models|datasets|spaces}                       repo listing (paginated)
    GET  /api/{t}s/{repo}[/revision/{rev}]                   repo info (siblings, sha, gated, ...)
    GET  /api/{t}s/{repo}/tree/{rev}[/{path}]                tree, paginated, absolute Link header
    POST /api/{t}s/{repo}/paths-info/{rev}                   form or JSON `paths`, `expand`
    GET  /api/{t}s/{repo}/refs[?include_prs=1]
    GET  /api/{t}s/{repo}/commits/{rev}                      paginated with `?p=N`
    GET  /api/{t}s/{repo}/auth-check
    GET  /api/{t}s/{repo}/xet-read-token/{rev}               Xet connection info (X-Xet-* headers)
    GET  /api/whoami-v2
    HEAD|GET /{prefix}{repo}/resolve/{rev}/{path}            files (200 direct, or 302 to the CDN)
    HEAD|GET /api/resolve-cache/{t}s/{repo}/{sha}/{path}     target of the optional 307 alias
    /_fake/...                                               control (faults, config, request log)

CDN origin
    HEAD|GET /repos/{xx}/{yy}/{sha256}?...&X-Amz-Signature=..&Expires=..   presigned file bytes
    GET  /xet-cas/v{1,2}/reconstructions/{xetHash}           a minimal Xet CAS (Bearer xet token)
    GET  /xet-cas/xorbs/{sha256}/{n}?Expires=..&X-Amz-Signature=..  xorb bytes (Range)
    POST /v1/telemetry                                       hf_xet's transfer telemetry (200)
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import fnmatch
import gzip
import hashlib
import hmac
import itertools
import json
import logging
import mimetypes
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode

from .store import CommitRecord, FileEntry, Repo, RepoStore, format_date, xet_hash_for

log = logging.getLogger("fakehub")

REPO_KINDS = {"models": "model", "datasets": "dataset", "spaces": "space"}
PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}
API_KEYWORDS = {
    "revision", "tree", "paths-info", "refs", "commits", "xet-read-token", "auth-check", "treesize",
    "preupload", "commit", "settings", "discussions", "branch", "tag", "xet-write-token", "lfs-files",
}
DEFAULT_TOKENS = {"hf_good": "alice", "hf_other": "bob"}
GZIP_MIN_SIZE = 1000
XET_CHUNK = 64 * 1024
XET_XORB_CHUNKS = 1024

DEFAULT_CONFIG: dict[str, Any] = {
    "tokens": DEFAULT_TOKENS,
    "page_size": 50,  # tree entries / commits / repos per page
    "cdn_url_ttl": 3600,  # seconds a presigned CDN url stays valid (<= 0: expired at once)
    "xet": True,  # send Xet metadata (X-Xet-Hash, Link xet-auth, tree xetHash) for LFS files of Xet repos
    "gzip": True,  # gzip regular text files on GET when the client accepts it (chunked, no Content-Length)
    "resolve_cache": False,  # answer resolve of regular files with a relative 307 to /api/resolve-cache/...
    "chunk_size": 1024 * 1024,  # body chunk size for file bytes (read off the event loop)
    # A mirror that answers only what clients call: info only with a revision, `tree/{rev}` 301 to
    # `tree/{rev}/`, 401 RepoNotFound for a missing file or revision, LFS bytes straight from the
    # resolve URL without X-Linked-Etag, no Content-Length on GET, Range ignored, unquoted ETags.
    "partial": False,
}


ANSWERING = ("status", "not_found", "redirect_loop")  # the fault answers instead of the fake
BODY_FAULTS = ("throttle", "drop", "corrupt")  # applied to file bytes only (GET bodies of files/xorbs)


class DropConnection(Exception):
    """Raised after a partial body: uvicorn then closes the socket mid-transfer."""


class _QuietDrops(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, DropConnection)


logging.getLogger("uvicorn.error").addFilter(_QuietDrops())


# ------------------------------------------------------------------------------------------------
# state: config, faults, request log
@dataclass
class Fault:
    """One switchable misbehaviour.

    action: "status" (answer `status`, default 503, with `headers`/`body`), "not_found" (bare 404,
    no X-Error-Code), "redirect_loop" (302 to itself, forever), "delay" (`seconds` before the
    headers), "throttle" (`bytes_per_second` for the body), "drop" (close the socket after
    `after_bytes` body bytes), "corrupt" (flip the bytes at file `offsets`, default the middle one;
    headers unchanged), "hold" (wait before the headers until `/_fake/release/{id}` or a reset, at
    most `seconds`, default 120; `state()["held"]` counts the requests waiting).
    Matching: `on` (list of "api", "resolve", "cdn", "xet"; default all), `method`, `repo`, `file`
    (glob on the repo file path), `sha256`, `path` (regex on the URL path); `after` matching
    requests are let through first, then it applies `count` times (None = forever).
    """

    action: str
    on: list[str] | None = None
    method: str | None = None
    repo: str | None = None
    file: str | None = None
    sha256: str | None = None
    path: str | None = None
    count: int | None = None
    after: int = 0
    status: int = 503
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    seconds: float = 0.0
    bytes_per_second: int = 0
    after_bytes: int = 0
    offsets: list[int] | None = None
    id: int = 0
    hits: int = 0
    seen: int = 0

    ACTIONS = ("status", "not_found", "redirect_loop", "delay", "hold", "throttle", "drop", "corrupt")

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


@dataclass
class BodyMods:
    bytes_per_second: int = 0
    drop_after: int | None = None
    corrupt: list[int] | None = None  # absolute file offsets ([-1] = middle of the file)


class State:
    def __init__(self, store: RepoStore, config: dict[str, Any] | None = None, secret: str | None = None) -> None:
        self.store = store
        self.defaults = {**DEFAULT_CONFIG, **(config or {})}
        self.config = dict(self.defaults)
        self.secret = (secret or secrets.token_hex(16)).encode()
        self.faults: list[Fault] = []
        self.requests: list[dict[str, Any]] = []
        self.cdn_authorization_seen = 0
        self.cdn_paths: dict[str, set[tuple[str, str]]] = {}  # sha256 -> {(repo_id, path)}
        self.xet_index: dict[str, str] = {}  # xet hash -> sha256
        self.hub_url = ""
        self.cdn_url = ""
        self._ids = itertools.count(1)
        self._fault_ids = itertools.count(1)
        self.releases: dict[int, asyncio.Event] = {}  # hold fault id -> set when released
        self.held = 0

    def reset(self) -> None:
        self.faults.clear()
        self.config = dict(self.defaults)
        self.release()

    def release(self, fault_id: int | None = None) -> None:
        for held_id, event in self.releases.items():
            if fault_id is None or held_id == fault_id:
                event.set()

    async def hold(self, fault: Fault) -> None:
        self.held += 1
        try:
            await asyncio.wait_for(self.releases.setdefault(fault.id, asyncio.Event()).wait(), fault.seconds or 120)
        except TimeoutError:
            pass
        finally:
            self.held -= 1

    def add_fault(self, spec: dict[str, Any]) -> Fault:
        spec = dict(spec)
        action = spec.pop("action", None) or spec.pop("kind", None)
        if action not in Fault.ACTIONS:
            raise ValueError(f"unknown fault action {action!r}; one of {Fault.ACTIONS}")
        on = spec.pop("on", None)
        if isinstance(on, str):
            on = None if on == "all" else [on]
        known = set(Fault.__dataclass_fields__) - {"id", "hits", "seen", "action", "on"}
        unknown = set(spec) - known
        if unknown:
            raise ValueError(f"unknown fault fields {sorted(unknown)}")
        fault = Fault(action=action, on=on, id=next(self._fault_ids), **spec)
        self.faults.append(fault)
        return fault

    def matching_faults(self, kind: str, method: str, url_path: str, repo_id: str | None, file: str | None,
                        sha256: str | None, actions: tuple[str, ...]) -> list[Fault]:
        """Faults (among `actions`) that apply to this request; counts them as used. At most one
        answering fault (status/not_found/redirect_loop) is used per request."""
        out = []
        answered = False
        for fault in self.faults:
            if fault.action not in actions or (answered and fault.action in ANSWERING):
                continue
            if fault.on is not None and kind not in fault.on:
                continue
            if fault.method and fault.method.upper() != method:
                continue
            if fault.repo and fault.repo != repo_id:
                continue
            if fault.sha256 and fault.sha256 != sha256:
                continue
            if fault.path and not re.search(fault.path, url_path):
                continue
            if fault.file:
                candidates = {file} if file else set()
                if sha256:
                    candidates |= {p for _, p in self.cdn_paths.get(sha256, ())}
                if not any(c and fnmatch.fnmatch(c, fault.file) for c in candidates):
                    continue
            fault.seen += 1
            if fault.seen <= fault.after:
                continue
            if fault.count is not None and fault.hits >= fault.count:
                continue
            fault.hits += 1
            answered = answered or fault.action in ANSWERING
            out.append(fault)
        return out

    # presigned CDN urls
    def sign(self, sha256: str, expires: int) -> str:
        return hmac.new(self.secret, f"{sha256}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def cdn_location(self, repo: Repo, entry: FileEntry) -> str:
        ttl = int(self.config["cdn_url_ttl"])
        now = int(time.time())
        expires = now + ttl
        filename = entry.path.rsplit("/", 1)[-1]
        query = urlencode({
            "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
            "X-Amz-Content-Sha256": "UNSIGNED-PAYLOAD",
            "X-Amz-Credential": f"FAKEHUBKEY/{time.strftime('%Y%m%d', time.gmtime(now))}/us-east-1/s3/aws4_request",
            "X-Amz-Date": time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now)),
            "X-Amz-Expires": str(max(ttl, 0)),
            "X-Amz-Signature": self.sign(entry.sha256, expires),
            "X-Amz-SignedHeaders": "host",
            "response-content-disposition": f"inline; filename*=UTF-8''{quote(filename)}; filename=\"{filename}\";",
            "x-id": "GetObject",
            "Expires": str(expires),
        })
        self.cdn_paths.setdefault(entry.sha256, set()).add((repo.id, entry.path))
        return f"{self.cdn_url}/repos/{entry.sha256[:2]}/{entry.sha256[2:4]}/{entry.sha256}?{query}"

    def xet_enabled(self, repo: Repo) -> bool:
        return bool(self.config["xet"]) and repo.xet


# ------------------------------------------------------------------------------------------------
# per-request context: parsing, logging, writing the response
class Ctx:
    def __init__(self, state: State, server: str, scope: dict, receive: Any, send: Any) -> None:
        self.state, self.server, self.scope, self._receive, self._send = state, server, scope, receive, send
        self.method: str = scope["method"]
        raw = scope.get("raw_path") or scope["path"].encode()
        self.raw_path = raw.decode("latin-1").split("?", 1)[0]
        self.query_string = scope.get("query_string", b"").decode("latin-1")
        self.query = parse_qs(self.query_string, keep_blank_values=True)
        self.headers: dict[str, str] = {}
        for k, v in scope.get("headers", []):
            key = k.decode("latin-1").lower()
            self.headers[key] = f"{self.headers[key]}, {v.decode('latin-1')}" if key in self.headers else v.decode("latin-1")
        self.segments = [unquote(s) for s in self.raw_path.split("/")[1:]]
        self.mods = BodyMods()
        self.match: tuple[str, str | None, str | None, str | None] = ("", None, None, None)
        self.started = False
        self.entry: dict[str, Any] = {
            "id": next(state._ids), "server": server, "method": self.method, "path": unquote(self.raw_path),
            "raw_path": self.raw_path, "query": self.query_string, "range": self.headers.get("range"),
            "authorization": "authorization" in self.headers, "token": self._token(),
            "user_agent": self.headers.get("user-agent"), "status": None, "bytes": 0, "complete": False,
            "faults": [], "kind": None, "time": time.time(),
        }
        if not self.raw_path.startswith("/_fake"):
            state.requests.append(self.entry)

    def _token(self) -> str | None:
        value = self.headers.get("authorization")
        if not value:
            return None
        scheme, _, cred = value.partition(" ")
        if scheme.lower() == "bearer":
            return cred.strip()
        if scheme.lower() == "basic":
            try:
                return base64.b64decode(cred.strip()).decode().partition(":")[2]
            except ValueError:
                return None
        return value

    def q(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def qbool(self, name: str) -> bool:
        return (self.q(name) or "").lower() in ("1", "true", "yes")

    async def body(self) -> bytes:
        chunks = []
        while True:
            message = await self._receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                return b"".join(chunks)

    async def start(self, status: int, headers: dict[str, str]) -> None:
        hdrs = dict(headers)
        hdrs.setdefault("X-Request-Id", self.headers.get("x-amzn-trace-id") or f"Root=1-{secrets.token_hex(12)}")
        if self.server == "hub":
            hdrs.setdefault("X-Powered-By", "huggingface-moon")
            hdrs.setdefault("Access-Control-Allow-Origin", "*")
            hdrs.setdefault("Access-Control-Expose-Headers", "X-Repo-Commit,X-Request-Id,X-Error-Code,X-Error-Message,"
                                                             "X-Total-Count,ETag,Link,Accept-Ranges,Content-Range,"
                                                             "X-Linked-Size,X-Linked-ETag,X-Xet-Hash")
        self.entry["status"] = status
        self.started = True
        await self._send({"type": "http.response.start", "status": status,
                          "headers": [(k.lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in hdrs.items()]})

    async def write(self, data: bytes, more: bool) -> None:
        self.entry["bytes"] += len(data)
        await self._send({"type": "http.response.body", "body": data, "more_body": more})
        if not more:
            self.entry["complete"] = True

    async def respond(self, status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> None:
        hdrs = dict(headers or {})
        if not any(k.lower() in ("content-length", "transfer-encoding") for k in hdrs):
            hdrs["Content-Length"] = str(len(body))
        await self.start(status, hdrs)
        if self.method == "HEAD":
            await self.write(b"", False)
        else:
            await self.stream(body, 0, len(body))

    async def json(self, data: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(data).encode()
        await self.respond(status, {"Content-Type": "application/json; charset=utf-8", **(headers or {})}, body)

    async def error(self, status: int, message: str, code: str | None = None,
                    headers: dict[str, str] | None = None) -> None:
        hdrs = {"X-Error-Message": message, **(headers or {})}
        if code:
            hdrs["X-Error-Code"] = code
        await self.json({"error": message}, status, hdrs)

    def apply_body_faults(self) -> None:
        """Match throttle/drop/corrupt faults for the file bytes this GET is about to send."""
        if self.method != "GET":
            return
        kind, repo_id, file, sha256 = self.match
        for fault in self.state.matching_faults(kind, self.method, unquote(self.raw_path), repo_id, file, sha256,
                                                BODY_FAULTS):
            self.entry["faults"].append(fault.action)
            if fault.action == "throttle":
                self.mods.bytes_per_second = fault.bytes_per_second
            elif fault.action == "drop":
                self.mods.drop_after = fault.after_bytes
            elif fault.action == "corrupt":
                self.mods.corrupt = fault.offsets or [-1]

    async def stream(self, source: bytes | Path, start: int, end: int, total: int | None = None) -> None:
        """Send source[start:end] as the body, honouring throttle/drop/corrupt modifiers."""
        mods = self.mods
        chunk = int(self.state.config["chunk_size"])
        if mods.bytes_per_second:
            chunk = max(256, min(chunk, mods.bytes_per_second // 20))
        size = total if total is not None else (len(source) if isinstance(source, bytes) else source.stat().st_size)
        corrupt = sorted(size // 2 if o == -1 else o for o in (mods.corrupt or []))
        sent, began = 0, time.monotonic()
        handle = open(source, "rb") if isinstance(source, Path) else None  # noqa: ASYNC230, SIM115 (closed below)
        try:
            if handle is not None:
                handle.seek(start)
            pos = start
            while pos < end:
                n = min(chunk, end - pos)
                if mods.drop_after is not None:
                    n = min(n, mods.drop_after - sent)
                    if n <= 0:
                        raise DropConnection()
                if handle is not None:
                    data = await asyncio.to_thread(handle.read, n) if n >= 256 * 1024 else handle.read(n)
                else:
                    data = source[pos:pos + n]
                if not data:
                    break
                if corrupt:
                    data = flip(data, pos, corrupt)
                pos += len(data)
                sent += len(data)
                if mods.bytes_per_second:
                    ahead = sent / mods.bytes_per_second - (time.monotonic() - began)
                    if ahead > 0:
                        await asyncio.sleep(ahead)
                await self.write(data, True)
            if mods.drop_after is not None and sent >= mods.drop_after and pos < end:
                raise DropConnection()
            await self.write(b"", False)
        finally:
            if handle is not None:
                handle.close()


def flip(data: bytes, pos: int, offsets: list[int]) -> bytes:
    hits = [o - pos for o in offsets if pos <= o < pos + len(data)]
    if not hits:
        return data
    buf = bytearray(data)
    for i in hits:
        buf[i] ^= 0xFF
    return bytes(buf)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None | str:
    """(start, end_exclusive), None for no/ignored range, "unsatisfiable" for 416."""
    if not header:
        return None
    m = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", header)
    if not m or (not m.group(1) and not m.group(2)):
        return None  # multi-range or malformed: ignored, like S3
    if m.group(1):
        start = int(m.group(1))
        end = min(int(m.group(2)) + 1, size) if m.group(2) else size
        if start >= size or (m.group(2) and int(m.group(2)) < start):
            return "unsatisfiable"
        return start, end
    suffix = int(m.group(2))
    if suffix == 0:
        return "unsatisfiable"
    return max(size - suffix, 0), size


# ------------------------------------------------------------------------------------------------
class Base:
    server = ""

    def __init__(self, state: State) -> None:
        self.state = state

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        ctx = Ctx(self.state, self.server, scope, receive, send)
        try:
            await self.dispatch(ctx)
        except DropConnection:
            ctx.entry["dropped"] = True
            raise
        except Exception as exc:  # a bug in the fake: answer 500 and keep serving
            log.exception("fakehub error on %s %s", ctx.method, ctx.raw_path)
            if not ctx.started:
                await ctx.error(500, f"fakehub internal error: {exc!r}")
            else:
                raise

    async def dispatch(self, ctx: Ctx) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    async def apply_faults(self, ctx: Ctx, kind: str, repo_id: str | None = None, file: str | None = None,
                           sha256: str | None = None) -> bool:
        """Apply matching faults; True when a fault has answered the request itself. Body faults
        (throttle, drop, corrupt) are matched later, when file bytes are about to be sent."""
        ctx.entry["kind"] = kind
        ctx.match = (kind, repo_id, file, sha256)
        faults = self.state.matching_faults(kind, ctx.method, unquote(ctx.raw_path), repo_id, file, sha256,
                                            ("delay", "hold", *ANSWERING))
        for fault in faults:
            ctx.entry["faults"].append(fault.action)
            if fault.action == "delay":
                await asyncio.sleep(fault.seconds)
            elif fault.action == "hold":
                await self.state.hold(fault)
        for fault in faults:
            if fault.action == "status":
                body = (fault.body if fault.body is not None else f"fakehub fault: {fault.status}").encode()
                hdrs = {"Content-Type": "text/plain; charset=utf-8", **fault.headers}
                await ctx.respond(fault.status, hdrs, body)
                return True
            if fault.action == "not_found":
                await ctx.respond(404, {"Content-Type": "text/plain; charset=utf-8"}, b"Not Found")
                return True
            if fault.action == "redirect_loop":
                n = int(ctx.q("_loop", "0") or 0) + 1
                params = [(k, v) for k, vs in ctx.query.items() if k != "_loop" for v in vs] + [("_loop", str(n))]
                location = f"{ctx.raw_path}?{urlencode(params)}"
                await ctx.respond(302, {"Location": location, "Content-Type": "text/plain; charset=utf-8"},
                                  f"Found. Redirecting to {location}".encode())
                return True
        return False


# ------------------------------------------------------------------------------------------------
class HubApp(Base):
    server = "hub"

    async def dispatch(self, ctx: Ctx) -> None:
        seg = ctx.segments
        if seg and seg[0] == "_fake":
            return await self.control(ctx, seg[1:])
        if len(seg) >= 1 and seg[0] == "api":
            return await self.api(ctx, seg[1:])
        prefix_type = "model"
        rest = seg
        if seg and seg[0] in ("datasets", "spaces"):
            prefix_type, rest = REPO_KINDS[seg[0]], seg[1:]
        if len(rest) >= 4 and rest[2] == "resolve":
            return await self.resolve(ctx, prefix_type, f"{rest[0]}/{rest[1]}", rest[3], "/".join(rest[4:]))
        if len(rest) >= 3 and rest[1] == "resolve":
            return await self.resolve(ctx, prefix_type, rest[0], rest[2], "/".join(rest[3:]))
        if await self.apply_faults(ctx, "api"):
            return
        await ctx.error(404, "Sorry, we can't find the page you are looking for.")

    # -- auth ------------------------------------------------------------------------------------
    def user(self, ctx: Ctx) -> tuple[str | None, bool]:
        """(user, bad_token)."""
        token = ctx.entry["token"]
        if token is None:
            return None, False
        tokens = self.state.config["tokens"]
        return (tokens[token], False) if token in tokens else (None, True)

    async def check(self, ctx: Ctx, repo_type: str, repo_id: str, *, files: bool) -> Repo | None:
        """Authorize access; answers the error itself and returns None on refusal."""
        user, bad = self.user(ctx)
        if bad:
            await ctx.error(401, "Invalid credentials in Authorization header")
            return None
        repo = self.state.store.get(repo_type, repo_id)
        visible = repo is not None and (not repo.private or (user is not None and (repo.readers is None or user in repo.readers)))
        if repo is None or not visible:
            message = ("Repository not found" if user is None else
                       f"Repository Not Found for url: {self.state.hub_url}{unquote(ctx.raw_path)}.")
            await ctx.error(401 if user is None else 404, message, "RepoNotFound")
            return None
        if repo.disabled:
            await ctx.error(403, "Access to this resource is disabled.")
            return None
        if files and repo.gated and repo.alias_of is None:
            kind = "model" if repo_type == "model" else repo_type
            if user is None:
                await ctx.error(401, f"Access to {kind} {repo.id} is restricted. You must have access to it and be "
                                     "authenticated to access it. Please log in.", "GatedRepo")
                return None
            if user not in repo.granted:
                await ctx.error(403, f"Access to {kind} {repo.id} is restricted and you are not in the authorized "
                                     f"list. Visit {self.state.hub_url}/{PREFIXES[repo_type]}{repo.id} to ask for access.",
                                "GatedRepo")
                return None
        return repo

    async def follow_alias(self, ctx: Ctx, repo: Repo, old_id: str) -> bool:
        if repo.alias_of is None:
            return False
        target = quote(repo.alias_of, safe="/")
        old = quote(old_id, safe="/")
        location = ctx.raw_path.replace(f"/{old}/", f"/{target}/", 1)
        if location == ctx.raw_path and ctx.raw_path.endswith(f"/{old}"):
            location = ctx.raw_path[: -len(old)] + target
        if ctx.query_string:
            location += "?" + ctx.query_string
        await ctx.respond(307, {"Location": location, "Content-Type": "text/plain; charset=utf-8"},
                          f"Temporary Redirect. Redirecting to {location}".encode())
        return True

    # -- /api ------------------------------------------------------------------------------------
    async def api(self, ctx: Ctx, seg: list[str]) -> None:
        if seg[:1] == ["resolve-cache"] and len(seg) >= 2 and seg[1] in REPO_KINDS:
            rest = seg[2:]
            for n in (2, 1):
                if len(rest) > n + 1 and re.fullmatch(r"[0-9a-f]{40}", rest[n]):
                    repo_id = "/".join(rest[:n])
                    if self.state.store.get(REPO_KINDS[seg[1]], repo_id) is not None:
                        return await self.resolve(ctx, REPO_KINDS[seg[1]], repo_id, rest[n], "/".join(rest[n + 1:]),
                                                  cache_alias=True)
        if await self.apply_faults(ctx, "api"):
            return
        if seg == ["whoami-v2"]:
            return await self.whoami(ctx)
        if not seg or seg[0] not in REPO_KINDS:
            return await ctx.error(404, "Sorry, we can't find the page you are looking for.")
        repo_type = REPO_KINDS[seg[0]]
        rest = seg[1:]
        if not rest:
            return await self.list_repos(ctx, repo_type)
        split = split_repo(rest)
        if split is None:
            return await ctx.error(404, "Sorry, we can't find the page you are looking for.")
        repo_id, tail = split
        action = tail[0] if tail else None
        gated_action = action in ("xet-read-token", "auth-check")
        repo = await self.check(ctx, repo_type, repo_id, files=gated_action)
        if repo is None:
            return
        if await self.follow_alias(ctx, repo, repo_id):
            return
        partial = self.state.config["partial"]
        if action is None and partial:
            return await ctx.error(401, "Repository not found", "RepoNotFound")
        if action is None:
            return await self.info(ctx, repo, None)
        if action == "tree" and len(tail) == 2 and partial and not ctx.raw_path.endswith("/"):
            location = ctx.raw_path + "/" + ("?" + ctx.query_string if ctx.query_string else "")
            return await ctx.respond(301, {"Location": location, "Content-Type": "text/plain"}, b"Moved Permanently")
        if action == "revision" and len(tail) >= 2:
            return await self.info(ctx, repo, "/".join(tail[1:]))
        if action == "tree" and len(tail) >= 2:
            return await self.tree(ctx, repo, tail[1], "/".join(tail[2:]).strip("/"))
        if action == "paths-info" and len(tail) >= 2 and ctx.method == "POST":
            return await self.paths_info(ctx, repo, "/".join(tail[1:]))
        if action == "refs":
            return await self.refs(ctx, repo)
        if action == "discussions" and ctx.method == "GET" and len(tail) <= 2:
            return await self.discussions(ctx, repo, tail[1] if len(tail) == 2 else None)
        if action == "commits" and len(tail) >= 2:
            return await self.commits(ctx, repo, "/".join(tail[1:]))
        if action == "auth-check":
            return await ctx.json({})
        if action == "xet-read-token" and len(tail) >= 2:
            return await self.xet_token(ctx, repo, "/".join(tail[1:]))
        await ctx.error(404, "Sorry, we can't find the page you are looking for.")

    async def whoami(self, ctx: Ctx) -> None:
        user, _ = self.user(ctx)
        if user is None:
            return await ctx.error(401, "Invalid credentials in Authorization header")
        await ctx.json({"type": "user", "id": hashlib.md5(user.encode()).hexdigest()[:24], "name": user,
                        "fullname": user.title(), "email": f"{user}@example.com", "emailVerified": True,
                        "isPro": False, "orgs": [], "canPay": False,
                        "auth": {"type": "access_token", "accessToken": {"displayName": "fakehub", "role": "read",
                                                                          "createdAt": format_date_now()}}})

    def _commit_or_none(self, repo: Repo, rev: str | None) -> CommitRecord | None:
        return repo.resolve(rev or "main")

    async def revision_missing(self, ctx: Ctx, rev: str) -> None:
        if self.state.config["partial"]:
            return await ctx.error(401, "Repository not found", "RepoNotFound")
        await ctx.error(404, f"Invalid rev id: {rev}", "RevisionNotFound")

    def repo_json(self, repo: Repo, commit: CommitRecord | None, blobs: bool) -> dict[str, Any]:
        author = repo.id.split("/")[0] if "/" in repo.id else None
        data: dict[str, Any] = {"_id": hashlib.md5(f"{repo.type}/{repo.id}".encode()).hexdigest()[:24], "id": repo.id}
        if repo.type == "model":
            data["modelId"] = repo.id
        data.update({"author": author, "sha": commit.sha if commit else None,
                     "lastModified": commit.date if commit else repo.created_at, "createdAt": repo.created_at,
                     "private": repo.private, "gated": repo.gated or False, "disabled": repo.disabled,
                     "downloads": 0, "likes": 0, "tags": [], "xetEnabled": repo.xet})
        if repo.type == "model":
            data.update({"library_name": None, "pipeline_tag": None, "spaces": []})
        if repo.type == "dataset":
            data.update({"description": "", "citation": None, "cardData": {}})
        if repo.card_data is not None:
            data["cardData"] = repo.card_data
        if repo.type == "space":
            data.update({"sdk": repo.sdk, "runtime": {"stage": "RUNNING", "hardware": {"current": "cpu-basic"}},
                         "subdomain": repo.id.replace("/", "-")})
        siblings = []
        if commit:
            for path, entry in sorted(commit.files.items()):
                sib: dict[str, Any] = {"rfilename": path}
                if blobs:
                    sib.update({"blobId": entry.oid, "size": entry.size})
                    if entry.lfs:
                        sib["lfs"] = {"sha256": entry.sha256, "size": entry.size, "pointerSize": entry.pointer_size}
                siblings.append(sib)
            data["usedStorage"] = sum(e.size for e in commit.files.values())
        data["siblings"] = siblings
        return data

    async def info(self, ctx: Ctx, repo: Repo, rev: str | None) -> None:
        commit = self._commit_or_none(repo, rev)
        if commit is None and (rev is not None or repo.heads):
            return await self.revision_missing(ctx, rev or "main")
        data = self.repo_json(repo, commit, ctx.qbool("blobs"))
        expand = ctx.query.get("expand") or ctx.query.get("expand[]")
        if expand:
            data = {k: v for k, v in data.items() if k in ("_id", "id") or k in expand}
        await ctx.json(data)

    def entry_json(self, repo: Repo, commit: CommitRecord, kind: str, path: str, expand: bool) -> dict[str, Any]:
        if kind == "directory":
            data: dict[str, Any] = {"type": "directory", "oid": commit.dirs[path], "size": 0, "path": path}
        else:
            entry = commit.files[path]
            data = {"type": "file", "oid": entry.oid, "size": entry.size}
            if entry.lfs:
                data["lfs"] = {"oid": entry.sha256, "size": entry.size, "pointerSize": entry.pointer_size}
            if self.state.xet_enabled(repo) and entry.lfs:
                data["xetHash"] = repo.xet_hash(entry)
            data["path"] = path
        if expand:
            last = repo.last_commit_for(commit, path, kind == "directory")
            data["lastCommit"] = {"id": last.sha, "title": last.title, "date": last.date}
            if kind == "file":
                data["securityFileStatus"] = {"status": "safe", "avScan": {"virusFound": False},
                                              "pickleImportScan": None}
        return data

    async def paginated(self, ctx: Ctx, items: list[Any], render: Any, cursor_param: str = "cursor") -> None:
        page_size = max(1, int(ctx.q("limit") or self.state.config["page_size"]))  # `limit`, as the Hub takes
        if cursor_param == "p":
            offset = int(ctx.q("p", "0") or 0) * page_size
        else:
            offset = decode_cursor(ctx.q("cursor"))
        page = items[offset:offset + page_size]
        headers = {}
        if offset + page_size < len(items):
            params = [(k, v) for k, vs in ctx.query.items() if k not in ("cursor", "p") for v in vs]
            if cursor_param == "p":
                params.append(("p", str(offset // page_size + 1)))
            else:
                params.append(("cursor", encode_cursor(offset + page_size)))
            headers["Link"] = f'<{self.state.hub_url}{ctx.raw_path}?{urlencode(params)}>; rel="next"'
        await ctx.json([render(item) for item in page], headers=headers)

    async def tree(self, ctx: Ctx, repo: Repo, rev: str, base: str) -> None:
        commit = repo.resolve(rev)
        if commit is None:
            return await self.revision_missing(ctx, rev)
        if base and base not in commit.dirs:
            return await ctx.error(404, f"Entry not found: {base}", "EntryNotFound",
                                   {"X-Repo-Commit": commit.sha})
        items = list_tree(commit, base, ctx.qbool("recursive"))
        expand = ctx.qbool("expand")
        await self.paginated(ctx, items, lambda it: self.entry_json(repo, commit, it[0], it[1], expand))

    async def paths_info(self, ctx: Ctx, repo: Repo, rev: str) -> None:
        commit = repo.resolve(rev)
        if commit is None:
            return await self.revision_missing(ctx, rev)
        raw = await ctx.body()
        if ctx.headers.get("content-type", "").startswith("application/json"):
            payload = json.loads(raw or b"{}")
            paths, expand = payload.get("paths", []), bool(payload.get("expand"))
        else:
            form = parse_qs(raw.decode(), keep_blank_values=True)
            paths, expand = form.get("paths", []), (form.get("expand", ["false"])[0].lower() in ("1", "true"))
        out = []
        for path in paths:
            path = path.strip("/")
            if path in commit.files:
                out.append(self.entry_json(repo, commit, "file", path, expand))
            elif path in commit.dirs and path:
                out.append(self.entry_json(repo, commit, "directory", path, expand))
        await ctx.json(out)

    async def refs(self, ctx: Ctx, repo: Repo) -> None:
        def refs(table: dict[str, str], kind: str) -> list[dict[str, str]]:
            return [{"name": n, "ref": f"refs/{kind}/{n}", "targetCommit": sha} for n, sha in sorted(table.items())]

        data: dict[str, Any] = {"branches": refs(repo.heads, "heads"), "converts": [], "tags": refs(repo.tags, "tags")}
        if ctx.qbool("include_prs"):
            data["pullRequests"] = refs(repo.prs, "pr")
        await ctx.json(data)

    async def discussions(self, ctx: Ctx, repo: Repo, num: str | None) -> None:
        """The list (50 a page, filtered by type, status and author) or one discussion's details."""
        if num is not None:
            found = next((d for d in repo.discussions if str(d["num"]) == num), None)
            if found is None:
                return await ctx.error(404, "Discussion not found")
            details = {**found, "repo": {"name": repo.id, "type": repo.type}}
            if not ctx.qbool("diff"):
                details.pop("diff", None)
            return await ctx.json(details)
        kind, status, author = ctx.q("type"), ctx.q("status"), ctx.q("author")
        matching = [d for d in repo.discussions
                    if (kind in (None, "all") or (kind == "pull_request") == d["isPullRequest"])
                    and (status in (None, "all") or d["status"] == status)
                    and (author is None or d.get("author", {}).get("name") == author)]
        start = int(ctx.q("p", "0") or 0) * 50
        summaries = [{k: d[k] for k in ("num", "title", "status", "createdAt", "author", "isPullRequest") if k in d}
                     | {"repo": {"name": repo.id, "type": repo.type}} for d in matching[start:start + 50]]
        await ctx.json({"discussions": summaries, "count": len(matching), "start": start, "numItems": len(summaries)})

    async def commits(self, ctx: Ctx, repo: Repo, rev: str) -> None:
        commit = repo.resolve(rev)
        if commit is None:
            return await self.revision_missing(ctx, rev)

        def render(c: CommitRecord) -> dict[str, Any]:
            data = {"id": c.sha, "title": c.title, "message": c.message, "date": c.date,
                    "authors": [{"user": c.author, "avatar": f"{self.state.hub_url}/avatars/{c.author}.svg"}]}
            if "formatted" in (ctx.query.get("expand[]") or []):
                data["formatted"] = {"title": f"<p>{c.title}</p>", "message": f"<p>{c.message}</p>"}
            return data

        await self.paginated(ctx, repo.history(commit), render, cursor_param="p")

    async def list_repos(self, ctx: Ctx, repo_type: str) -> None:
        user, bad = self.user(ctx)
        if bad:
            return await ctx.error(401, "Invalid credentials in Authorization header")
        author, search = ctx.q("author"), ctx.q("search")
        repos = [r for r in self.state.store.list(repo_type)
                 if (not r.private or (user and (r.readers is None or user in r.readers)))
                 and (not author or r.id.split("/")[0] == author) and (not search or search.lower() in r.id.lower())]
        limit = ctx.q("limit")
        if limit:
            repos = repos[: int(limit)]

        def render(r: Repo) -> dict[str, Any]:
            data = self.repo_json(r, r.resolve("main"), False)
            return {k: v for k, v in data.items() if k not in ("siblings", "sha", "usedStorage")}

        await self.paginated(ctx, repos, render)

    async def xet_token(self, ctx: Ctx, repo: Repo, rev: str) -> None:
        commit = repo.resolve(rev)
        if commit is None:
            return await self.revision_missing(ctx, rev)
        exp = int(time.time()) + 3600
        token = "xet_" + self.state.sign(f"read:{repo.id}", exp)[:40]
        cas = f"{self.state.cdn_url}/xet-cas"
        await ctx.json({"accessToken": token, "exp": exp, "casUrl": cas},
                       headers={"X-Xet-Cas-Url": cas, "X-Xet-Access-Token": token, "X-Xet-Token-Expiration": str(exp)})

    # -- files -----------------------------------------------------------------------------------
    async def resolve(self, ctx: Ctx, repo_type: str, repo_id: str, rev: str, path: str,
                      cache_alias: bool = False) -> None:
        if await self.apply_faults(ctx, "resolve", repo_id, path):
            return
        repo = await self.check(ctx, repo_type, repo_id, files=True)
        if repo is None:
            return
        if await self.follow_alias(ctx, repo, repo_id):
            return
        commit = repo.resolve(rev)
        if commit is None:
            return await self.revision_missing(ctx, rev)
        entry = commit.files.get(path)
        partial = self.state.config["partial"]
        if entry is None and partial:
            return await ctx.error(401, "Repository not found", "RepoNotFound")
        if entry is None:
            return await ctx.error(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": commit.sha})
        if partial:  # the bytes themselves, whatever the file, with the validator unquoted
            headers = {"X-Repo-Commit": commit.sha, "ETag": entry.sha256 if entry.lfs else entry.oid,
                       "Content-Type": content_type(path)}
            return await serve_file(ctx, self.state.store.source_path(entry), entry.size, headers, allow_gzip=False,
                                    partial=True)
        common = {"X-Repo-Commit": commit.sha, "Accept-Ranges": "bytes", "Vary": "Origin, Accept-Encoding",
                  "Cross-Origin-Opener-Policy": "same-origin", "Referrer-Policy": "strict-origin-when-cross-origin"}
        if entry.lfs:
            location = self.state.cdn_location(repo, entry)
            headers = {**common, "Location": location, "Content-Type": "text/plain; charset=utf-8",
                       "ETag": f'"{entry.sha256}"', "X-Linked-Etag": f'"{entry.sha256}"',
                       "X-Linked-Size": str(entry.size)}
            if self.state.xet_enabled(repo):
                xet_hash = repo.xet_hash(entry)
                prefix = f"{self.state.hub_url}/api/{repo.type}s/{quote(repo.id, safe='/')}"
                headers["X-Xet-Hash"] = xet_hash or ""
                headers["Link"] = (f'<{prefix}/xet-read-token/{commit.sha}>; rel="xet-auth", '
                                   f'<{self.state.cdn_url}/xet-cas/v1/reconstructions/{xet_hash}>; '
                                   f'rel="xet-reconstruction-info"')
            return await ctx.respond(302, headers, f"Found. Redirecting to {location}".encode())
        if self.state.config["resolve_cache"] and not cache_alias:
            encoded = quote(path)
            original = f"/{PREFIXES[repo.type]}{repo.id}/resolve/{rev}/{path}"
            location = (f"/api/resolve-cache/{repo.type}s/{quote(repo.id, safe='/')}/{commit.sha}/{encoded}?"
                        + urlencode({original: "", "etag": f'"{entry.oid}"'}))
            return await ctx.respond(307, {**common, "Location": location, "ETag": f'"{entry.oid}"',
                                           "Content-Type": "text/plain; charset=utf-8"},
                                     f"Temporary Redirect. Redirecting to {location}".encode())
        filename = path.rsplit("/", 1)[-1]
        headers = {**common, "ETag": f'"{entry.oid}"', "Content-Type": content_type(path),
                   "Content-Disposition": f"inline; filename*=UTF-8''{quote(filename)}; filename=\"{filename}\";",
                   "Last-Modified": http_date_of(commit.date)}
        await serve_file(ctx, self.state.store.source_path(entry), entry.size, headers,
                         allow_gzip=bool(self.state.config["gzip"]))

    # -- control ---------------------------------------------------------------------------------
    async def control(self, ctx: Ctx, seg: list[str]) -> None:
        state = self.state
        what = seg[0] if seg else ""
        body = await ctx.body() if ctx.method in ("POST", "PUT", "PATCH", "DELETE") else b""
        payload = json.loads(body) if body.strip() else None
        if what == "health":
            return await ctx.json({"ok": True, "url": state.hub_url, "cdn": state.cdn_url})
        if what == "requests":
            if ctx.method == "DELETE":
                state.requests.clear()
                return await ctx.json({"cleared": True})
            items = state.requests
            server = ctx.q("server")
            if server:
                items = [r for r in items if r["server"] == server]
            since = ctx.q("since")
            if since:
                items = [r for r in items if r["id"] > int(since)]
            return await ctx.json(items)
        if what == "faults":
            if ctx.method == "DELETE":
                if len(seg) > 1:
                    state.faults[:] = [f for f in state.faults if f.id != int(seg[1])]
                else:
                    state.faults.clear()
                return await ctx.json({"faults": []})
            if ctx.method == "POST":
                specs = payload if isinstance(payload, list) else [payload or {}]
                try:
                    added = [state.add_fault(s) for s in specs]
                except (ValueError, TypeError) as exc:
                    return await ctx.json({"error": str(exc)}, 400)
                return await ctx.json({"ids": [f.id for f in added], "faults": [f.to_json() for f in added]})
            return await ctx.json([f.to_json() for f in state.faults])
        if what == "config":
            if ctx.method == "POST":
                unknown = set(payload or {}) - set(DEFAULT_CONFIG)
                if unknown:
                    return await ctx.json({"error": f"unknown settings {sorted(unknown)}"}, 400)
                state.config.update(payload or {})
            return await ctx.json(state.config)
        if what == "release":
            state.release(int(seg[1]) if len(seg) > 1 else None)
            return await ctx.json({"released": True})
        if what == "reset":
            state.reset()
            if (payload or {}).get("requests", True):
                state.requests.clear()
                state.cdn_authorization_seen = 0
            return await ctx.json({"reset": True})
        if what == "state":
            return await ctx.json({"cdn_authorization_seen": state.cdn_authorization_seen, "held": state.held,
                                   "requests": len(state.requests), "faults": [f.to_json() for f in state.faults],
                                   "config": state.config, "url": state.hub_url, "cdn": state.cdn_url})
        await ctx.json({"error": f"unknown control {what!r}"}, 404)


# ------------------------------------------------------------------------------------------------
class CdnApp(Base):
    server = "cdn"

    async def dispatch(self, ctx: Ctx) -> None:
        seg = ctx.segments
        if seg and seg[0] == "xet-cas":
            xorb_of = seg[2] if len(seg) == 4 and seg[1] == "xorbs" else None
            if await self.apply_faults(ctx, "xet", sha256=xorb_of):
                return
            return await self.xet_cas(ctx, seg[1:])
        if seg[:2] == ["v1", "telemetry"]:  # hf_xet posts transfer telemetry to the CAS host
            ctx.entry["kind"] = "telemetry"
            await ctx.body()
            return await ctx.json({})
        sha256 = seg[3] if len(seg) == 4 and seg[0] == "repos" else None
        if await self.apply_faults(ctx, "cdn", sha256=sha256):
            return
        if "authorization" in ctx.headers:
            self.state.cdn_authorization_seen += 1
            return await self.s3_error(ctx, 403, "AccessDenied",
                                       "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
                                       "Signature query string parameter or the Authorization header should be specified")
        if ctx.method not in ("GET", "HEAD") or sha256 is None:
            return await self.s3_error(ctx, 404, "NoSuchKey", "The specified key does not exist.")
        expires, signature = ctx.q("Expires"), ctx.q("X-Amz-Signature")
        if not expires or not signature or not expires.isdigit() or not hmac.compare_digest(
                signature, self.state.sign(sha256, int(expires))):
            return await self.s3_error(ctx, 403, "SignatureDoesNotMatch",
                                       "The request signature we calculated does not match the signature you provided.")
        if int(expires) <= time.time():
            return await self.s3_error(ctx, 403, "AccessDenied", "Request has expired")
        source = self.state.store.path_for_sha256(sha256)
        if source is None:
            return await self.s3_error(ctx, 404, "NoSuchKey", "The specified key does not exist.")
        size = source.stat().st_size
        headers = {"Content-Type": "application/octet-stream", "ETag": f'"{sha256}"',
                   "Last-Modified": "Tue, 02 Jan 2024 03:04:05 GMT", "x-amz-server-side-encryption": "AES256",
                   "Cache-Control": "public, max-age=604800, immutable, s-maxage=604800", "Via": "1.1 fakehub (CloudFront)"}
        disposition = ctx.q("response-content-disposition")
        if disposition:
            headers["Content-Disposition"] = disposition
        await serve_file(ctx, source, size, headers, allow_gzip=False)

    # -- a minimal Xet CAS -----------------------------------------------------------------------
    # Each LFS file is cut into fixed 64 KiB chunks stored uncompressed (scheme 0) in xorbs of 1024
    # chunks; the reconstruction lists one term per xorb. hf_xet does not check chunk hashes on
    # download, so the stand-in xet/xorb hashes (derived from the sha256) are enough.
    def xet_source(self, xet_hash: str) -> tuple[str, Path] | None:
        index = self.state.xet_index
        if xet_hash not in index:
            for folder in ("blobs", "external"):
                for p in (self.state.store.root / folder).iterdir():
                    if re.fullmatch(r"[0-9a-f]{64}", p.name):
                        index[xet_hash_for(p.name)] = p.name
        sha256 = index.get(xet_hash)
        source = self.state.store.path_for_sha256(sha256) if sha256 else None
        return (sha256, source) if sha256 and source else None

    async def xet_cas(self, ctx: Ctx, seg: list[str]) -> None:
        if len(seg) == 3 and seg[1] == "reconstructions" and seg[0] in ("v1", "v2"):
            token = ctx.entry["token"] or ""
            if not token.startswith("xet_"):
                return await ctx.json({"error": "missing or invalid xet token"}, 401)
            found = self.xet_source(seg[2])
            if found is None:
                return await ctx.json({"error": "file not found"}, 404)
            sha256, source = found
            size = source.stat().st_size
            wanted = parse_range(ctx.headers.get("range"), size)
            if wanted == "unsatisfiable":
                return await ctx.json({"error": "range not satisfiable"}, 416)
            start, end = wanted if isinstance(wanted, tuple) else (0, size)
            return await ctx.json(self.reconstruction(seg[0], sha256, size, start, end))
        if len(seg) == 3 and seg[0] == "xorbs" and ctx.method in ("GET", "HEAD"):
            sha256, index = seg[1], int(seg[2])
            expires, signature = ctx.q("Expires"), ctx.q("X-Amz-Signature")
            if not expires or not signature or not hmac.compare_digest(
                    signature, self.state.sign(f"{sha256}/{index}", int(expires))):
                return await self.s3_error(ctx, 403, "SignatureDoesNotMatch", "Bad signature")
            source = self.state.store.path_for_sha256(sha256)
            if source is None:
                return await self.s3_error(ctx, 404, "NoSuchKey", "The specified key does not exist.")
            ctx.apply_body_faults()
            size = source.stat().st_size
            corrupt = sorted(size // 2 if o == -1 else o for o in (ctx.mods.corrupt or []))
            ctx.mods.corrupt = None  # applied to the file bytes inside the chunks, not to the chunk headers
            data = await asyncio.to_thread(xorb_bytes, source, index, corrupt)

            wanted = parse_range(ctx.headers.get("range"), len(data))
            if wanted == "unsatisfiable":
                return await ctx.respond(416, {"Content-Range": f"bytes */{len(data)}"}, b"")
            if isinstance(wanted, tuple):
                a, b = wanted
                headers = {"Content-Type": "application/octet-stream", "Content-Range": f"bytes {a}-{b - 1}/{len(data)}"}
                return await ctx.respond(206, headers, data[a:b])
            return await ctx.respond(200, {"Content-Type": "application/octet-stream"}, data)
        await ctx.json({"error": "not found"}, 404)

    def reconstruction(self, version: str, sha256: str, size: int, start: int, end: int) -> dict[str, Any]:
        first, last = start // XET_CHUNK, (end - 1) // XET_CHUNK
        terms, fetch = [], {}
        for xorb in range(first // XET_XORB_CHUNKS, last // XET_XORB_CHUNKS + 1):
            lo = max(first, xorb * XET_XORB_CHUNKS) - xorb * XET_XORB_CHUNKS
            hi = min(last + 1, (xorb + 1) * XET_XORB_CHUNKS) - xorb * XET_XORB_CHUNKS
            base = xorb * XET_XORB_CHUNKS
            unpacked = min(size, (base + hi) * XET_CHUNK) - (base + lo) * XET_CHUNK
            xorb_hash = hashlib.sha256(f"fakehub-xorb:{sha256}:{xorb}".encode()).hexdigest()
            terms.append({"hash": xorb_hash, "unpacked_length": unpacked, "range": {"start": lo, "end": hi}})
            byte_lo = lo * (XET_CHUNK + 8)
            byte_hi = byte_lo + unpacked + (hi - lo) * 8 - 1
            expires = int(time.time()) + 3600
            url = (f"{self.state.cdn_url}/xet-cas/xorbs/{sha256}/{xorb}?Expires={expires}"
                   f"&X-Amz-Signature={self.state.sign(f'{sha256}/{xorb}', expires)}")
            if version == "v1":
                fetch[xorb_hash] = [{"range": {"start": lo, "end": hi}, "url": url,
                                     "url_range": {"start": byte_lo, "end": byte_hi}}]
            else:
                fetch[xorb_hash] = [{"url": url, "ranges": [{"chunks": {"start": lo, "end": hi},
                                                               "bytes": {"start": byte_lo, "end": byte_hi}}]}]
        key = "fetch_info" if version == "v1" else "xorbs"
        return {"offset_into_first_range": start - first * XET_CHUNK, "terms": terms, key: fetch}

    async def s3_error(self, ctx: Ctx, status: int, code: str, message: str) -> None:
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
                f"<RequestId>{secrets.token_hex(8).upper()}</RequestId></Error>").encode()
        await ctx.respond(status, {"Content-Type": "application/xml"}, body)


# ------------------------------------------------------------------------------------------------
async def serve_file(ctx: Ctx, source: Path, size: int, headers: dict[str, str], allow_gzip: bool,
                     partial: bool = False) -> None:
    if partial:  # Range ignored, no Content-Length on GET (sent chunked)
        ctx.apply_body_faults()
        await ctx.start(200, headers if ctx.method == "GET" else {**headers, "Content-Length": str(size)})
        if ctx.method == "HEAD":
            return await ctx.write(b"", False)
        return await ctx.stream(source, 0, size, total=size)
    hdrs = {"Accept-Ranges": "bytes", **headers}
    etag = hdrs.get("ETag")
    conditional = ctx.headers.get("if-none-match")
    if etag and conditional and etag in {c.strip().removeprefix("W/") for c in conditional.split(",")}:
        await ctx.start(304, {k: v for k, v in hdrs.items() if k not in ("Content-Type", "Content-Length")})
        return await ctx.write(b"", False)
    wanted = parse_range(ctx.headers.get("range"), size) if ctx.method in ("GET", "HEAD") else None
    if wanted == "unsatisfiable":
        return await ctx.respond(416, {**hdrs, "Content-Range": f"bytes */{size}", "Content-Type": "text/plain"},
                                 b"Range Not Satisfiable")
    ctx.apply_body_faults()
    if isinstance(wanted, tuple):
        start, end = wanted
        hdrs.update({"Content-Range": f"bytes {start}-{end - 1}/{size}", "Content-Length": str(end - start)})
        await ctx.start(206, hdrs)
        if ctx.method == "HEAD":
            return await ctx.write(b"", False)
        return await ctx.stream(source, start, end, total=size)
    accept = ctx.headers.get("accept-encoding", "")
    if (allow_gzip and ctx.method == "GET" and "gzip" in accept and GZIP_MIN_SIZE <= size < 10 * 1024 * 1024):
        data = source.read_bytes()
        if is_text(data):
            if ctx.mods.corrupt:  # corrupt the content, then compress it
                data = flip(data, 0, sorted(size // 2 if o == -1 else o for o in ctx.mods.corrupt))
                ctx.mods.corrupt = None
            compressed = gzip.compress(data, mtime=0)
            hdrs["Content-Encoding"] = "gzip"  # no Content-Length: uvicorn sends it chunked
            hdrs.pop("Content-Length", None)
            await ctx.start(200, hdrs)
            return await ctx.stream(compressed, 0, len(compressed))
    hdrs["Content-Length"] = str(size)
    await ctx.start(200, hdrs)
    if ctx.method == "HEAD":
        return await ctx.write(b"", False)
    await ctx.stream(source, 0, size, total=size)


def xorb_bytes(source: Path, index: int, corrupt: list[int] | None = None) -> bytes:
    """Serialized xorb `index` of a file: chunk header (version 0, u24 sizes, scheme 0) + raw bytes."""
    out = bytearray()
    pos = index * XET_XORB_CHUNKS * XET_CHUNK
    with open(source, "rb") as f:
        f.seek(pos)
        for _ in range(XET_XORB_CHUNKS):
            data = f.read(XET_CHUNK)
            if not data:
                break
            if corrupt:
                data = flip(data, pos, corrupt)
            pos += len(data)
            n = len(data).to_bytes(3, "little")
            out += b"\0" + n + b"\0" + n + data
    return bytes(out)


def is_text(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return b"\0" not in data


def content_type(path: str) -> str:
    guessed = mimetypes.guess_type(path)[0]
    if guessed is None or guessed.startswith("text/") or guessed in ("application/json",):
        return "text/plain; charset=utf-8"
    return guessed


def http_date_of(iso: str) -> str:
    when = datetime.strptime(iso[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    return email.utils.format_datetime(when, usegmt=True)


def format_date_now() -> str:
    return format_date(datetime.now(UTC))


def split_repo(rest: list[str]) -> tuple[str, list[str]] | None:
    if len(rest) >= 2 and (len(rest) == 2 or rest[2] in API_KEYWORDS):
        return f"{rest[0]}/{rest[1]}", rest[2:]
    if len(rest) >= 1 and (len(rest) == 1 or rest[1] in API_KEYWORDS):
        return rest[0], rest[1:]
    return None


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        return int(json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))["offset"])
    except (ValueError, KeyError, TypeError):
        return 0


def list_tree(commit: CommitRecord, base: str, recursive: bool) -> list[tuple[str, str]]:
    """[(kind, path)] under `base` in git order; recursive listings include folders, pre-order."""
    children: dict[str, list[tuple[str, str]]] = {}
    for folder in commit.dirs:
        if folder:
            parent = folder.rsplit("/", 1)[0] if "/" in folder else ""
            children.setdefault(parent, []).append(("directory", folder))
    for path in commit.files:
        parent = path.rsplit("/", 1)[0] if "/" in path else ""
        children.setdefault(parent, []).append(("file", path))

    def order(item: tuple[str, str]) -> bytes:
        name = item[1].rsplit("/", 1)[-1].encode()
        return name + b"/" if item[0] == "directory" else name

    out: list[tuple[str, str]] = []

    def walk(folder: str) -> None:
        for item in sorted(children.get(folder, []), key=order):
            out.append(item)
            if recursive and item[0] == "directory":
                walk(item[1])

    walk(base)
    return out
