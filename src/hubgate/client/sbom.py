"""A CycloneDX 1.5 document of a lock: one component per locked repo, one file component per file.

Package URLs follow the purl `huggingface` type: `pkg:huggingface/<namespace>/<name>@<commit>`,
with `repository_url` when the lock names endpoints other than huggingface.co. The document
depends on the lock alone (its serial number too), so it diffs as cleanly as the lock.
"""

from __future__ import annotations

import json
import uuid
from urllib.parse import quote

from hubgate import __version__
from hubgate.client.lockfile import Lock, LockedRepo, dumps
from hubgate.client.remote import DEFAULT_ENDPOINT


def purl(repo: LockedRepo, endpoint: str | None) -> str:
    qualifiers = []
    if endpoint and endpoint.rstrip("/") != DEFAULT_ENDPOINT:
        qualifiers.append(f"repository_url={quote(endpoint.split('#', 1)[0].rstrip('/'), safe='')}")
    if repo.ref.type != "model":
        qualifiers.append(f"repository_type={repo.ref.type}")
    tail = ("?" + "&".join(qualifiers)) if qualifiers else ""
    return f"pkg:huggingface/{quote(repo.ref.namespace)}/{quote(repo.ref.name)}@{repo.commit}{tail}"


def sbom(lock: Lock) -> str:
    endpoint = lock.endpoints[0] if lock.endpoints else None
    components = []
    for repo in lock.repos:
        ref = purl(repo, endpoint)
        components.append({
            "type": "machine-learning-model" if repo.ref.type == "model" else "data",
            "bom-ref": ref,
            "group": repo.ref.namespace,
            "name": repo.ref.name,
            "version": repo.commit,
            "purl": ref,
            "properties": [{"name": "hubgate:revision", "value": repo.request.revision},
                           {"name": "hubgate:repo-type", "value": repo.ref.type}],
            "components": [{
                "type": "file",
                "bom-ref": f"{ref}#{quote(f.path)}",
                "name": f.path,
                "hashes": [{"alg": "SHA-256", "content": f.sha256}],
                "properties": [{"name": "hubgate:size", "value": str(f.size)},
                               {"name": "hubgate:git-blob", "value": f.blob}],
            } for f in repo.files],
        })
    document = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, 'hubgate-lock:' + dumps(lock))}",
        "version": 1,
        "metadata": {"tools": {"components": [{"type": "application", "name": "hubgate", "version": __version__}]}},
        "components": components,
    }
    return json.dumps(document, indent=2) + "\n"
