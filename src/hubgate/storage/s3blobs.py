"""Content-addressed blobs in an S3 bucket (AWS, SeaweedFS, Ceph RGW, MinIO), keyed by SHA256.

Keys: `<prefix>blobs/ab/cd/<sha256>` (published), `<prefix>tmp/<random>` (multipart uploads in
progress), `<prefix>quarantine/<sha256>.<time>` (moved aside by fsck).

A writer hashes as it streams. A blob smaller than one part is sent at commit, after the hash is
checked, with one conditional PUT (`If-None-Match: *`) to its final key. A larger one goes up as
a multipart upload: straight to its final key when the writer was told the sha256 to expect (an
LFS upload, a mirrored file, a plain copy of a Xet file), completed only after the hash checks and
only if the key is still absent (`If-None-Match: *` on CompleteMultipartUpload: of two replicas
racing, one publishes, the other's upload is aborted); otherwise under a temporary key, then copied
with the same condition (CopyObject; above its 5 GiB limit, a HEAD check and a multipart copy).
Either way nothing unverified is ever visible under `blobs/` (an unfinished multipart upload is no
object), and a writer killed midway leaves only an unfinished upload or a temporary object, both
removed by `remove_partial_writes` once a day old.

Publishing a blob that exists already renews its LastModified (copied onto itself), as a local
rename renews the file's mtime, so garbage collection keeps a blob a commit is about to use.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
import uuid
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, BinaryIO, cast

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from hubgate import constants
from hubgate.config import BlobSettings
from hubgate.crashpoints import NO_CRASH, CrashPoints
from hubgate.storage.blobs import StoredBlob, blob_key, check_received, copy_in, is_sha256

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_s3.type_defs import CompletedMultipartUploadTypeDef

# Unfinished uploads and temporary objects older than this belong to writers that died.
STALE_AFTER = 86400.0


def _status(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def s3_client(settings: BlobSettings) -> S3Client:
    # Over plain http:// botocore would SHA256-sign every body and add CRC32s: the writers
    # hash the bytes themselves, so that is CPU spent twice (see docs/benchmarks.md).
    config = Config(
        signature_version="s3v4",
        s3={"payload_signing_enabled": False, "addressing_style": "path"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"max_attempts": 4, "mode": "standard"},
        max_pool_connections=32,
    )
    return boto3.client(
        "s3", endpoint_url=settings.endpoint_url, region_name=settings.region, config=config,
        aws_access_key_id=settings.access_key_id, aws_secret_access_key=settings.secret_access_key,
    )


COPY_OBJECT_MAX = 5 * 1024**3  # the largest object one CopyObject request may copy


class S3BlobWriter:
    def __init__(self, store: S3BlobStore, expected_sha256: str | None = None) -> None:
        self._store = store
        self._hash = hashlib.sha256()
        self._size = 0
        self._buffer = bytearray()
        # Told its hash, the upload goes to the blob's own key (invisible until completed).
        self._final = expected_sha256 if expected_sha256 is not None and is_sha256(expected_sha256) else None
        self._tmp_key = store.key_for(self._final) if self._final else f"{store.prefix}tmp/{uuid.uuid4().hex}"
        self._upload_id: str | None = None
        self._parts: list[tuple[int, str]] = []
        self._completed = False
        self._done = False

    @property
    def size(self) -> int:
        return self._size

    def write(self, data: bytes | memoryview) -> None:
        self._hash.update(data)
        self._size += len(data)
        self._buffer += data
        while len(self._buffer) >= self._store.part_size:
            self._send_part(self._store.part_size)

    def _send_part(self, length: int) -> None:
        client, bucket = self._store.client, self._store.bucket
        if self._upload_id is None:
            self._upload_id = client.create_multipart_upload(Bucket=bucket, Key=self._tmp_key)["UploadId"]
        number = len(self._parts) + 1
        body = bytes(self._buffer[:length])
        del self._buffer[:length]
        answer = client.upload_part(Bucket=bucket, Key=self._tmp_key, UploadId=self._upload_id, PartNumber=number, Body=body)
        self._parts.append((number, answer["ETag"]))

    def commit(self, expected_sha256: str | None = None, expected_size: int | None = None) -> str:
        digest = self._hash.hexdigest()
        try:
            check_received(digest, self._size, expected_sha256, expected_size)
            self._store.crash.hit("blob-written")
            if self._upload_id is None:
                self._store.put_new(digest, bytes(self._buffer))
            else:
                if self._buffer:
                    self._send_part(len(self._buffer))
                parts: CompletedMultipartUploadTypeDef = {"Parts": [{"PartNumber": n, "ETag": e} for n, e in self._parts]}
                if self._final == digest:  # the upload is at the blob's key: completed unless it exists
                    try:
                        self._store.client.complete_multipart_upload(
                            Bucket=self._store.bucket, Key=self._tmp_key, UploadId=self._upload_id,
                            MultipartUpload=parts, IfNoneMatch="*")
                    except ClientError as exc:
                        if _status(exc) not in (409, 412):
                            raise
                        self._store.renew(digest)  # published by another writer: this upload is aborted
                        return digest
                    self._upload_id, self._done = None, True
                    return digest
                self._store.client.complete_multipart_upload(
                    Bucket=self._store.bucket, Key=self._tmp_key, UploadId=self._upload_id, MultipartUpload=parts)
                self._completed = True
                self._store.publish_copy(self._tmp_key, digest, self._size)
            return digest
        finally:
            self.abort()

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        self._buffer = bytearray()
        client, bucket = self._store.client, self._store.bucket
        if self._completed:
            client.delete_object(Bucket=bucket, Key=self._tmp_key)
        elif self._upload_id is not None:
            client.abort_multipart_upload(Bucket=bucket, Key=self._tmp_key, UploadId=self._upload_id)

    def __enter__(self) -> S3BlobWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()


class S3BlobStore:
    """Blobs as objects of one bucket; every replica may share it."""

    on_disk = False

    def __init__(self, settings: BlobSettings, crash: CrashPoints = NO_CRASH) -> None:
        assert settings.bucket is not None  # checked by BlobSettings
        self.client = s3_client(settings)
        self.bucket = settings.bucket
        self.prefix = settings.prefix
        self.part_size = settings.part_size
        self.crash = crash
        self._redirect = settings.serve == "redirect"
        self._presign_ttl = settings.presign_ttl

    def check(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as exc:
            raise ConnectionError(f"bucket {self.bucket}: {exc}") from None

    def key_for(self, sha256: str) -> str:
        return f"{self.prefix}blobs/{blob_key(sha256)}"

    def _head(self, key: str) -> tuple[int, float] | None:
        try:
            answer = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _status(exc) == 404:
                return None
            raise
        return answer["ContentLength"], answer["LastModified"].timestamp()

    def exists(self, sha256: str) -> bool:
        return self._head(self.key_for(sha256)) is not None

    def size(self, sha256: str) -> int | None:
        found = self._head(self.key_for(sha256))
        return found[0] if found else None

    def open(self, sha256: str) -> BinaryIO:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.key_for(sha256))["Body"]
        except ClientError as exc:
            if _status(exc) == 404:
                raise FileNotFoundError(sha256) from None
            raise
        return cast(BinaryIO, body)  # botocore's StreamingBody is an io.IOBase with read()

    def read(self, sha256: str, start: int, end: int, piece: int = constants.STREAM_CHUNK) -> Generator[bytes, None, None]:
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self.key_for(sha256), Range=f"bytes={start}-{end}")
        except ClientError as exc:
            if _status(exc) == 404:  # as a local file would be: gone (evicted, collected)
                raise FileNotFoundError(sha256) from None
            raise
        body = answer["Body"]
        try:
            yield from body.iter_chunks(piece)
        finally:
            body.close()

    def presigned_url(self, sha256: str) -> str | None:
        if not self._redirect:
            return None
        return self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self.key_for(sha256)}, ExpiresIn=self._presign_ttl,
        )

    def writer(self, expected_sha256: str | None = None) -> S3BlobWriter:
        return S3BlobWriter(self, expected_sha256)

    # -- publishing ---------------------------------------------------------------------
    def put_new(self, sha256: str, data: bytes) -> None:
        """Create the blob unless it exists (`If-None-Match: *`: one of two racing replicas wins)."""
        try:
            self.client.put_object(Bucket=self.bucket, Key=self.key_for(sha256), Body=data, IfNoneMatch="*")
        except ClientError as exc:
            if _status(exc) not in (409, 412):
                raise
            self.renew(sha256)

    def publish_copy(self, tmp_key: str, sha256: str, size: int) -> None:
        """Copy a verified temporary object to its final key unless it is there already: one
        conditional CopyObject; above its size limit a HEAD check, then a multipart copy (two
        replicas racing may then both copy: the same bytes, content-addressed, never a partial object)."""
        final = self.key_for(sha256)
        if size <= COPY_OBJECT_MAX:
            try:
                self.client.copy_object(Bucket=self.bucket, Key=final, CopySource={"Bucket": self.bucket, "Key": tmp_key},
                                        IfNoneMatch="*")
            except ClientError as exc:
                if _status(exc) not in (409, 412):
                    raise
                self.renew(sha256)
            return
        if self._head(final) is not None:
            self.renew(sha256)
            return
        self.client.copy({"Bucket": self.bucket, "Key": tmp_key}, self.bucket, final)

    def renew(self, sha256: str) -> None:
        key = self.key_for(sha256)
        self.client.copy_object(
            Bucket=self.bucket, Key=key, CopySource={"Bucket": self.bucket, "Key": key}, MetadataDirective="REPLACE",
        )

    def publish(self, source: BinaryIO, sha256: str) -> None:
        copy_in(self.writer(sha256), source, sha256, self.part_size)

    # -- maintenance --------------------------------------------------------------------
    def delete(self, sha256: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.key_for(sha256))

    def remove_partial_writes(self) -> int:
        """Abort multipart uploads and delete temporary objects left by writers that died: any a
        day old (replicas share the bucket, so age is all that tells a dead writer's apart)."""
        cutoff = time.time() - STALE_AFTER
        removed = 0
        tmp = f"{self.prefix}tmp/"
        for folder in (tmp, f"{self.prefix}blobs/"):  # uploads to temporary keys, and to blobs' own keys
            for page in self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=folder):
                for upload in page.get("Uploads", []):
                    if upload["Initiated"].timestamp() < cutoff:
                        self.client.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
                        removed += 1
        for listing in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=tmp):
            for item in listing.get("Contents", []):
                if item["LastModified"].timestamp() < cutoff:
                    self.client.delete_object(Bucket=self.bucket, Key=item["Key"])
                    removed += 1
        return removed

    def scan(self) -> Iterator[StoredBlob]:
        folder = f"{self.prefix}blobs/"
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=folder):
            for item in page.get("Contents", []):
                name = item["Key"].rsplit("/", 1)[-1]
                if is_sha256(name) and item["Key"] == self.key_for(name):
                    yield StoredBlob(name, item["Size"], item["LastModified"].timestamp())

    def delete_if_older(self, sha256: str, cutoff: float) -> bool:
        """Delete the blob unless renewed at or after `cutoff`.

        Not one step: a writer renewing the blob between this HEAD and the DELETE loses it (S3
        has no delete conditional on LastModified for ordinary buckets). The window is one round
        trip, and gc's grace period (which the commit's own blob checks run inside) narrows it
        to a commit that began writing more than `grace` seconds before it ends."""
        found = self._head(self.key_for(sha256))
        if found is None or found[1] >= cutoff:
            return False
        self.crash.hit("gc-unlinking")
        self.delete(sha256)
        return True

    def quarantine(self, sha256: str, reason: str) -> None:
        key = self.key_for(sha256)
        if self._head(key) is None:
            return
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        aside = f"{self.prefix}quarantine/{sha256}.{stamp}"
        self.client.copy({"Bucket": self.bucket, "Key": key}, self.bucket, aside)
        self.client.put_object(Bucket=self.bucket, Key=f"{aside}.reason", Body=(reason + "\n").encode())
        self.delete(sha256)

    def recover_deletes(self) -> int:
        return 0  # a delete is one request: nothing is ever half done
