"""The front page, health, the OpenAPI description, identity (`whoami-v2`), YAML validation and the client's
daily probes."""

from __future__ import annotations

from importlib.resources import files

from starlette.responses import HTMLResponse, Response

from hubgate import __version__
from hubgate.auth.gate import Action
from hubgate.http.call import Call
from hubgate.http.responses import json_response
from hubgate.http.routing import RouteTable
from hubgate.metrics import CONTENT_TYPE as METRICS_TYPE
from hubgate.repos.modelcard import metadata_errors

table = RouteTable()


HOME = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>hubgate {__version__}</title></head>
<body><h1>hubgate {__version__}</h1>
<p>A self-hosted gateway to the Hugging Face Hub. Point clients at it with <code>HF_ENDPOINT</code> set to this address.</p>
<ul>
<li><a href="/healthz">Health</a>, <a href="/readyz">readiness</a></li>
<li><a href="/api/mirror/status">Mirror status</a> (server administrators)</li>
<li><a href="https://huggingface.co/docs/huggingface_hub">huggingface_hub documentation</a></li>
</ul></body></html>
"""


@table.add("GET", r"/", action=Action.PUBLIC)
def home(call: Call) -> Response:
    return HTMLResponse(HOME)


@table.add("GET", r"/healthz", action=Action.PUBLIC)
def healthz(call: Call) -> Response:
    return json_response({"status": "ok"})


@table.add("GET", r"/readyz", action=Action.PUBLIC)
def readyz(call: Call) -> Response:
    """200 when the database and the blob store answer, else 503 naming which do not (for load balancers)."""
    checks = {name: "ok" if ok else "failing" for name, ok in call.hub.readiness().items()}
    failing = [name for name, state in checks.items() if state != "ok"]
    if failing:
        return json_response({"error": f"Not ready: {', '.join(failing)} failing", "checks": checks}, status=503,
                             headers={"Retry-After": "5"})
    return json_response({"status": "ready", "checks": checks})


@table.add("GET", r"/metrics", action=Action.ADMIN)
def metrics(call: Call) -> Response:
    """Prometheus metrics (server administrators: scrape with an admin's read token)."""
    return Response(call.hub.metrics.exposition(), media_type=METRICS_TYPE)


@table.add("GET", r"/openapi.json", action=Action.PUBLIC)
def openapi(call: Call) -> Response:
    """The OpenAPI description of what this server serves (`hubgate/http/openapi.json`)."""
    return Response((files("hubgate.http") / "openapi.json").read_bytes(), media_type="application/json")


@table.add("GET", r"/api/whoami-v2", action=Action.AUTHENTICATED)
def whoami(call: Call) -> Response:
    who = call.principal
    assert who is not None
    access_token: dict[str, object] = {"displayName": who.token_name, "role": who.scope.role}
    if who.scope.fine_grained:
        access_token["fineGrained"] = who.scope.whoami()
    return json_response(
        {
            "type": "user",
            "id": who.name,
            "name": who.name,
            "fullname": who.fullname,
            "email": who.email,
            "isPro": False,
            "canPay": False,
            "emailVerified": who.email is not None,
            "orgs": [{"type": "org", "name": org, "fullname": org, "roleInOrg": role} for org, role in sorted(who.orgs.items())],
            "auth": {
                "type": "access_token",
                "accessToken": access_token,
            },
        }
    )


@table.add("POST", r"/api/validate-yaml", action=Action.PUBLIC, body="json")
def validate_yaml(call: Call) -> Response:
    content = (call.body or {}).get("content", "") if isinstance(call.body, dict) else ""
    if not isinstance(content, str):
        return json_response({"errors": [{"message": "content must be a string"}]}, status=400)
    errors = metadata_errors(content)
    if errors:
        return json_response({"errors": [{"message": e} for e in errors]}, status=400)
    return json_response({"errors": [], "warnings": []})


@table.add("GET", r"/api/agent-harnesses", action=Action.PUBLIC)
def agent_harnesses(call: Call) -> Response:
    return json_response({"standardEnvVars": [], "harnesses": {}})
