"""The composition root: one `Hub` per process wires settings to storage and services.

The server and the CLI both build a Hub from the same settings, so they share one code path.
"""

from __future__ import annotations

from functools import cached_property

from hubgate.auth.accounts import Accounts
from hubgate.config import Settings
from hubgate.repos.service import RepoService
from hubgate.signing import Signer
from hubgate.storage.blobs import LocalBlobStore
from hubgate.storage.metadata import MetadataStore


class Hub:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        settings.data.mkdir(parents=True, exist_ok=True)
        self.metadata = MetadataStore(settings.db_url)
        self.blobs = LocalBlobStore(settings.blob_dir, settings.tmp_dir)
        self.accounts = Accounts(self.metadata)
        self.repos = RepoService(self.metadata, self.blobs, settings.lfs_threshold)

    @cached_property
    def signer(self) -> Signer:
        return Signer(self.settings.secret_key())

    def close(self) -> None:
        self.metadata.dispose()
