"""The ASGI application: match a route on the raw path, identify the caller, run the handler."""

from __future__ import annotations

import base64
import binascii
import json
import logging
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from hubgate import constants
from hubgate.auth.accounts import Principal
from hubgate.auth.castokens import is_cas_token
from hubgate.auth.gate import CAS_ACTIONS, REPO_ACTIONS, Action, Subject
from hubgate.errors import (
    BadRequest,
    GatedRepo,
    HubError,
    InvalidCredentials,
    NotFound,
    PayloadTooLarge,
    RepoMoved,
    ServiceUnavailable,
)
from hubgate.http.access import AccessLine, request_id
from hubgate.http.auditing import RequestTrail
from hubgate.http.call import Call, base_url
from hubgate.http.headers import make_safe
from hubgate.http.resources import out_of_resources
from hubgate.http.responses import break_connection, error_response
from hubgate.http.routes import ALL
from hubgate.http.routing import Route, match
from hubgate.hub import Hub
from hubgate.ids import RepoRef
from hubgate.mirror.fetcher import TransferFailed

log = logging.getLogger("hubgate.http")
ROUTE_NAME = "hubgate.route"  # scope key


class HubgateApp:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.routes: list[Route] = ALL
        leases = hub.mirror.leases if hub.mirror is not None else None
        self._learn_address = leases is not None and not leases.url

    def _own_address(self, scope: Scope) -> None:
        """Where other replicas reach this one, unless configured: the address a request reached it at."""
        server = scope.get("server")
        leases = self.hub.mirror.leases if self.hub.mirror is not None else None
        if leases is None or not server or server[1] is None:
            return
        host, port = server
        leases.url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
        self._learn_address = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if scope["type"] != "http":
            return
        if self._learn_address:
            self._own_address(scope)
        request = Request(scope, receive)
        trail = RequestTrail(request)
        access = AccessLine(request, request_id(request))
        try:
            response = await self._handle(request, trail)
        except HubError as error:
            access.refusal = error.message
            trail.auth_failed = isinstance(error, InvalidCredentials)
            if isinstance(error, GatedRepo):
                error.visit(base_url(request, self.hub.settings))
            if isinstance(error, RepoMoved):
                raw = request.scope.get("raw_path") or request.scope["path"].encode()
                error.point(raw.decode("latin-1"), request.scope.get("query_string", b"").decode("latin-1"))
            response = error_response(error)
        except ClientDisconnect:  # the client left mid-upload: nothing was applied, nobody to answer
            log.info("client left during %s %s", request.method, request.url.path)
            access.user = trail.principal.name if trail.principal else None
            access.emit(499, 0)  # nginx's "client closed request"
            return
        except Exception as exc:  # the one place that turns a bug into a 500
            if out_of_resources(exc):  # not a bug: this request may succeed in a moment
                log.warning("out of resources on %s %s: %s", request.method, request.url.path, exc)
                response = error_response(ServiceUnavailable())
            else:
                log.exception("Unhandled error on %s %s", request.method, request.url.path)
                response = error_response(HubError("Internal server error", status=500))
        response.headers["X-Request-Id"] = access.request_id  # the id the access line names
        response.raw_headers = make_safe(response.raw_headers)  # values built from input: never refused
        try:
            await response(scope, receive, trail.counting(send))
        except TransferFailed as exc:  # the headers are out: the client must see a broken download
            log.warning("%s %s broken off: %s", request.method, request.url.path, exc)
            if not await break_connection(send, receive):
                raise
        finally:
            try:
                trail.record(self.hub.audit)
            except OSError as exc:  # out of files or disk: the answer went out, the connection must not break
                log.error("audit record of %s %s lost: %s", request.method, request.url.path, exc)
            access.user = trail.principal.name if trail.principal else trail.on_behalf_of[0]
            sent = max(trail.sent, trail.declared_length or 0) if trail.complete else trail.sent  # sendfile: past the counter
            access.emit(trail.status, sent)
            self.hub.metrics.answered(scope.get(ROUTE_NAME, "none"), request.method, trail.status, sent,
                                      getattr(response, "served_by", None), trail.auth_failed)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if "state" in scope:  # the server's connection guard reads its limits from here
                    scope["state"][constants.HTTP_LIMITS_STATE] = self.hub.settings.http
                self.hub.start_background()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.hub.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _handle(self, request: Request, trail: RequestTrail) -> Response:
        raw_path = request.scope.get("raw_path") or request.scope["path"].encode()
        found = match(self.routes, request.method, raw_path.decode("latin-1"))
        if found is None:
            raise NotFound(f"Not found: {request.url.path}")
        if found is False:
            raise HubError(f"Method {request.method} not allowed here", status=405)
        route, params = found  # type: ignore[misc]
        request.scope[ROUTE_NAME] = route.handler.__name__  # the metrics' route label
        token = bearer_token(request.headers.get("authorization"))
        cas_token = token if token is not None and is_cas_token(token) else None
        principal, upstream_token = (None, None) if cas_token is not None else await self._principal(request, token)
        trail.principal, trail.params = principal, params
        body = await self._body(request, route.body)
        call = Call(request, self.hub, params, principal, body, upstream_token, audit=trail.details, cas_token=cas_token)
        await run_in_threadpool(self._authorize, route, call, trail)
        response: Response = await route.handler(call) if route.is_async else await run_in_threadpool(route.handler, call)
        return response

    def _authorize(self, route: Route, call: Call, trail: RequestTrail) -> None:
        """The one access check, before any handler runs."""
        try:
            action = route.action if isinstance(route.action, Action) else route.action(call)
        except HubError:
            trail.undecided = True  # audited as refused: a malformed request is no excuse to go unrecorded
            raise
        trail.action = action
        if action in CAS_ACTIONS:
            call.cas_grant = grant = self.hub.gate.authorize_cas(call.cas_token, action)
            trail.subject = Subject(ref=RepoRef.parse(grant.repo_type, grant.repo_id))  # audited with its repo
            trail.on_behalf_of = (grant.user, grant.token_id)  # and whoever the hub gave the CAS token to
            return
        if action in REPO_ACTIONS and route.subject is None:
            subject = Subject(ref=call.repo_ref, revision=call.params.get("rev"), path=call.params.get("path"))
        else:
            subject = route.subject(call) if route.subject is not None else Subject()
        trail.subject = subject
        call.authorized = self.hub.gate.authorize(call.principal, action, subject, call.upstream_token)

    async def _principal(self, request: Request, token: str | None) -> tuple[Principal | None, str | None]:
        """The hubgate user behind the token, or (passthrough) the client's own upstream token."""
        if token is None:
            return None, None
        settings = self.hub.settings
        if not token.startswith(constants.TOKEN_PREFIX) and settings.passthrough:
            return None, token
        client = request.client.host if request.client else None
        return await run_in_threadpool(self.hub.accounts.principal, token, client), None

    async def _body(self, request: Request, kind: str | None) -> Any:
        if kind in (None, "stream"):
            return None
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > constants.MAX_JSON_BODY:
            raise PayloadTooLarge(f"Request body larger than {constants.MAX_JSON_BODY} bytes")
        raw = bytearray()
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > constants.MAX_JSON_BODY:
                raise PayloadTooLarge(f"Request body larger than {constants.MAX_JSON_BODY} bytes")
        content_type = request.headers.get("content-type", "")
        if kind == "form" and "json" not in content_type:
            return await _form(request, bytes(raw))
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BadRequest(f"Malformed JSON body: {exc}") from exc
        except RecursionError as exc:
            raise BadRequest("Malformed JSON body: nested too deeply") from exc


async def _form(request: Request, raw: bytes) -> dict[str, Any]:
    """Parse an already-read form body (urlencoded or multipart, no files) with Starlette's parser."""
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": raw, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=0, max_fields=10_000)
    except MultiPartException as exc:
        raise BadRequest(f"Malformed form body: {exc.message}") from exc
    return {key: form.getlist(key) if key == "paths" else form.get(key) for key in form}


def bearer_token(header: str | None) -> str | None:
    """The token of `Bearer T` or of HTTP Basic auth (any user name, token as password)."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        return value or None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise InvalidCredentials() from exc
        return decoded.partition(":")[2] or None
    raise InvalidCredentials()


def create_app(hub: Hub) -> HubgateApp:
    return HubgateApp(hub)
