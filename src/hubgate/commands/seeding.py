"""`hubgate bundle import --data`: load an air-gapped bundle into a server's own store.

The client package (`hubgate.client`) never imports server code; the entry point hands this
function to the client command, which calls it only when `--data` or `--config` is given.
"""

from __future__ import annotations

import os
from pathlib import Path

from hubgate.client import bundle as bundles
from hubgate.client.commands import say
from hubgate.config import Settings
from hubgate.hub import Hub
from hubgate.mirror.seed import Seed, seed


def import_bundle(bundle: Path, data: Path | None, config: Path | None, private: bool) -> int:
    os.umask(0o077)  # the server's data folder is its owner's alone, as every server command keeps it
    hub = Hub(Settings.load(data=data, config=config))
    try:
        with bundles.unpacked(bundle, hub.settings.tmp_dir) as (the_lock, files):
            seeds = [Seed(r.ref, r.request.revision, r.commit, [(f.path, f.size, f.sha256, f.blob, f.lfs) for f in r.files])
                     for r in the_lock.repos]
            seed(lambda ref: hub.repos.open(ref) is not None or hub.accounts.namespace_kind(ref.namespace) is not None,
                 hub.blobs, hub.metadata, seeds, files, private=private)
    finally:
        hub.close()
    say(f"{bundle}: {len(the_lock.repos)} repos imported into {hub.settings.data}; `hubgate serve --offline` serves them")
    return 0
