"""Property-based review of the API (issue 6, "How it is tested"): generated repo ids, paths,
revisions, Range headers and commit payloads, and a schemathesis run over the OpenAPI description
the server publishes. Every answer is a 2xx/3xx, or a 4xx that says what went wrong (an
`X-Error-Code` or a JSON `{"error": ...}`): never a 5xx, never a dropped connection.

The default run is bounded (HUBGATE_FUZZ_EXAMPLES examples per test, 20 unless set); set it
higher for a longer review, e.g. HUBGATE_FUZZ_EXAMPLES=2000.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from importlib.resources import files
from urllib.parse import quote

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import Server, start_server

EXAMPLES = int(os.environ.get("HUBGATE_FUZZ_EXAMPLES", "20"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 20,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
REPO = "fz/target"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, httpx.Client]]:
    """A server of its own (the fuzzing writes), with fz/target holding a file and fz/private."""
    with start_server(tmp_path_factory.mktemp("fuzz")) as srv:
        srv.add_user("fz")
        token = srv.token("fz")
        with httpx.Client(base_url=srv.url, timeout=60, headers={"Authorization": f"Bearer {token}"}) as client:
            for name, private in (("target", False), ("private", True)):
                client.post("/api/repos/create", json={"name": name, "private": private}).raise_for_status()
            header = json.dumps({"key": "header", "value": {"summary": "seed"}})
            content = base64.b64encode(b"0123456789" * 10).decode()
            line = json.dumps({"key": "file", "value": {"path": "dir/file.txt", "content": content}})
            client.post(f"/api/models/{REPO}/commit/main", content=f"{header}\n{line}\n").raise_for_status()
            yield srv, client


def clean(response: httpx.Response) -> None:
    """A success, or an error that says what went wrong; never a server error."""
    status = response.status_code
    assert status < 500, (status, response.request.method, str(response.request.url)[:300], response.text[:300])
    if status >= 400 and response.request.method != "HEAD" and "x-error-code" not in response.headers:
        body = response.json()
        assert isinstance(body, dict) and isinstance(body.get("error"), str), (status, response.text[:300])


texts = st.text(st.characters(codec="utf-8"), max_size=120)
segments = st.one_of(texts, st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True),
                     st.sampled_from([".git", ".GIT", "GIT~1", "..", ".", "-x", "x.git\n", "datasets", "a--b", "%2F"]))


@FUZZ
@given(namespace=segments, name=segments)
def test_repo_ids(hub: tuple[Server, httpx.Client], namespace: str, name: str) -> None:
    _, client = hub
    repo = f"{quote(namespace, safe='')}/{quote(name, safe='')}"
    for path in (f"/api/models/{repo}", f"/api/datasets/{repo}/tree/main", f"/{repo}/resolve/main/x.txt",
                 f"/api/models/{repo}/refs", f"/{repo}.git/info/lfs/objects/batch"):
        method = "POST" if path.endswith("batch") else "GET"
        clean(client.request(method, path, json={"operation": "download", "objects": []} if method == "POST" else None))
    clean(client.post("/api/repos/create", json={"name": name, "organization": namespace}))


@FUZZ
@given(path=st.one_of(texts, st.lists(segments, min_size=1, max_size=4).map("/".join)))
def test_paths(hub: tuple[Server, httpx.Client], path: str) -> None:
    _, client = hub
    encoded = quote(path, safe="/")
    clean(client.get(f"/{REPO}/resolve/main/{encoded}"))
    clean(client.head(f"/{REPO}/resolve/main/{encoded}"))
    clean(client.get(f"/api/models/{REPO}/tree/main/{encoded}"))
    clean(client.post(f"/api/models/{REPO}/paths-info/main", json={"paths": [path]}))
    clean(client.post(f"/api/models/{REPO}/preupload/main", json={"files": [{"path": path, "size": 3}]}))
    header = {"key": "header", "value": {"summary": "fuzz"}}
    for op in ({"key": "file", "value": {"path": path, "content": "YWJj"}}, {"key": "deletedFile", "value": {"path": path}},
               {"key": "deletedFolder", "value": {"path": path}}):
        clean(client.post(f"/api/models/{REPO}/commit/fuzz-paths", content=_ndjson(header, op)))


@FUZZ
@given(revision=st.one_of(texts, segments, st.from_regex(r"[0-9a-f]{40}", fullmatch=True)))
def test_revisions(hub: tuple[Server, httpx.Client], revision: str) -> None:
    _, client = hub
    rev = quote(revision, safe="")
    for path in (f"/api/models/{REPO}/revision/{rev}", f"/api/models/{REPO}/tree/{rev}",
                 f"/api/models/{REPO}/commits/{rev}", f"/{REPO}/resolve/{rev}/dir/file.txt"):
        clean(client.get(path))
    created = client.post(f"/api/models/{REPO}/branch/{rev}", json={"startingPoint": revision})
    clean(created)
    clean(client.post(f"/api/models/{REPO}/tag/main", json={"tag": revision}))
    clean(client.delete(f"/api/models/{REPO}/tag/{rev}"))
    if created.status_code == 200:
        clean(client.delete(f"/api/models/{REPO}/branch/{rev}"))


@FUZZ
@given(header=st.one_of(st.text(st.characters(min_codepoint=32, max_codepoint=255, exclude_characters="\x7f"), max_size=60),
                        st.builds(lambda a, b: f"bytes={a}-{b}", st.one_of(st.integers(-5, 200), st.just("")),
                                  st.one_of(st.integers(-5, 200), st.just(""), st.text("0123456789_+ ", max_size=6))))
                .map(lambda h: h.strip() or "bytes="))  # a value h11 itself refuses to send is no test
def test_ranges(hub: tuple[Server, httpx.Client], header: str) -> None:
    _, client = hub
    response = client.get(f"/{REPO}/resolve/main/dir/file.txt", headers={"Range": header.encode("latin-1")})
    clean(response)
    if response.status_code == 206:
        first, last = map(int, response.headers["content-range"].split(" ")[1].split("/")[0].split("-"))
        assert response.content == (b"0123456789" * 10)[first : last + 1]


def _ndjson(*lines: object) -> bytes:
    return b"".join((line if isinstance(line, bytes) else json.dumps(line).encode()) + b"\n" for line in lines)


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), texts),
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.sampled_from(["key", "value", "path", "content", "encoding", "oid",
                                                                "size", "algo", "summary", "parentCommit"]) | texts,
                                               children, max_size=5)),
    max_leaves=12,
)
operations = st.fixed_dictionaries({
    "key": st.sampled_from(["file", "lfsFile", "deletedFile", "deletedFolder", "header", "bogus"]) | texts,
    "value": st.fixed_dictionaries({"path": segments}, optional={"content": st.sampled_from(["YWJj", "", "!!", "YQ=="]) | texts,
                                                               "oid": st.from_regex(r"[0-9a-f]{64}", fullmatch=True) | texts,
                                                               "size": st.integers(-2, 10**12) | json_values,
                                                               "encoding": st.sampled_from(["base64", "utf-8"])}),
})


@FUZZ
@given(lines=st.lists(st.one_of(operations, json_values, st.binary(max_size=80)), max_size=5), with_header=st.booleans())
def test_commit_payloads(hub: tuple[Server, httpx.Client], lines: list[object], with_header: bool) -> None:
    _, client = hub
    header = {"key": "header", "value": {"summary": "fuzz"}}
    body = _ndjson(*([header] if with_header else []), *lines)
    clean(client.post(f"/api/models/{REPO}/commit/fuzz-commits", content=body))


@pytest.fixture(scope="module", autouse=True)
def fuzz_branches(hub: tuple[Server, httpx.Client]) -> None:
    _, client = hub
    for branch in ("fuzz-paths", "fuzz-commits"):
        client.post(f"/api/models/{REPO}/branch/{branch}", json={}).raise_for_status()


# -- schemathesis over the published OpenAPI description -------------------------------------------

schemathesis.serializer.alias("application/x-ndjson", "text/plain")  # commit bodies: generated text
SCHEMA = schemathesis.openapi.from_dict(json.loads((files("hubgate.http") / "openapi.json").read_text()))


def test_the_description_is_served(hub: tuple[Server, httpx.Client]) -> None:
    _, client = hub
    response = client.get("/openapi.json")
    assert response.status_code == 200 and response.json() == SCHEMA.raw_schema


@SCHEMA.parametrize()
@settings(max_examples=max(3, EXAMPLES // 5), deadline=None, derandomize=EXAMPLES <= 20,
          suppress_health_check=list(HealthCheck))
def test_schemathesis(hub: tuple[Server, httpx.Client], case: schemathesis.Case) -> None:
    server, client = hub
    if case.path_parameters and case.path_parameters.get("namespace") is not None and case.operation.method.upper() != "GET":
        case.path_parameters["namespace"] = "fz"  # writes stay in the fuzzing user's own namespace
    response = case.call(base_url=server.url, headers={"Authorization": client.headers["Authorization"]}, timeout=60)
    assert response.status_code < 500, (response.status_code, case.method, case.formatted_path, response.text[:300])
    if response.status_code >= 400 and case.method.upper() != "HEAD" and "x-error-code" not in response.headers:
        body = response.json()
        assert isinstance(body, dict) and isinstance(body.get("error"), str), response.text[:300]


SAMPLES = {"repo_type": "models", "namespace": "ns", "name": "nm", "revision": "main", "path": "f.txt", "branch": "b",
           "file_prefix": "datasets", "oid": "a" * 64, "token_id": "1", "upstream": "up", "user": "u", "status": "pending",
           "num": "1"}


def test_the_description_covers_every_route() -> None:
    """Each route answers at least one described operation, and each operation reaches a route.

    A new route needs its operation in src/hubgate/http/openapi.json (same shape as its neighbours).
    """
    from hubgate.http.routes import ALL

    described = [(method.upper(), template.format(**SAMPLES)) for template, item in SCHEMA.raw_schema["paths"].items()
                 for method in item]
    for method, url in described:
        assert any(method in route.methods and route.pattern.match(url) for route in ALL), (method, url)
    for route in ALL:
        assert any(method in route.methods and route.pattern.match(url) for method, url in described), (
            f"{sorted(route.methods)} {route.pattern.pattern} is missing from src/hubgate/http/openapi.json")
