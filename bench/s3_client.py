"""S3 client library choice for `[blobs] backend = "s3"`: throughput and client CPU per GiB of
boto3 (configured as hubgate.storage.s3blobs does) against the MinIO Python SDK.

Needs a running S3 server (e.g. SeaweedFS `weed mini`, docs/benchmarks.md) and `pip install minio`:
    python bench/s3_client.py ENDPOINT ACCESS_KEY SECRET_KEY BUCKET [MiB] [runs]
Each run PUTs one object of MiB mebibytes in 16 MiB parts, then GETs it as one stream.
"""

from __future__ import annotations

import io
import os
import resource
import sys
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from boto3.s3.transfer import TransferConfig
from minio import Minio

from hubgate.config import BlobSettings
from hubgate.storage.s3blobs import s3_client

PART = 16 * 1024 * 1024
# One part after the other, as hubgate's writer sends them and as MinIO's put_object does.
SEQUENTIAL = TransferConfig(multipart_threshold=PART, multipart_chunksize=PART, use_threads=False)


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(action: Callable[[], None], size: int) -> tuple[float, float]:
    """(MiB/s, client CPU seconds per GiB) of one call."""
    wall, used = time.perf_counter(), cpu()
    action()
    wall, used = time.perf_counter() - wall, cpu() - used
    return size / wall / 2**20, used * 2**30 / size


def main() -> None:
    endpoint, key, secret, bucket = sys.argv[1:5]
    size = int(sys.argv[5] if len(sys.argv) > 5 else 256) * 2**20
    runs = int(sys.argv[6] if len(sys.argv) > 6 else 2)
    data = os.urandom(size)
    boto = s3_client(BlobSettings(backend="s3", endpoint_url=endpoint, bucket=bucket,
                                  access_key_id=key, secret_access_key=secret))
    parts = urlsplit(endpoint)
    minio = Minio(parts.netloc, access_key=key, secret_key=secret, secure=parts.scheme == "https")

    def boto_put() -> None:
        boto.upload_fileobj(io.BytesIO(data), bucket, "bench/boto3", Config=SEQUENTIAL)

    def boto_get() -> None:
        body = boto.get_object(Bucket=bucket, Key="bench/boto3")["Body"]
        assert sum(len(chunk) for chunk in body.iter_chunks(2**20)) == size

    def minio_put() -> None:
        minio.put_object(bucket, "bench/minio", io.BytesIO(data), size, part_size=PART)

    def minio_get() -> None:
        answer = minio.get_object(bucket, "bench/minio")
        try:
            assert sum(len(chunk) for chunk in answer.stream(2**20)) == size
        finally:
            answer.close()
            answer.release_conn()

    print(f"{size >> 20} MiB object, {runs} runs: MiB/s and client CPU s/GiB")
    for name, put, get in (("boto3", boto_put, boto_get), ("minio", minio_put, minio_get)):
        for run in range(runs):
            (put_rate, put_cpu), (get_rate, get_cpu) = measure(put, size), measure(get, size)
            print(f"{name} run {run + 1}: PUT {put_rate:.0f} MiB/s {put_cpu:.2f} CPU-s/GiB;"
                  f" GET {get_rate:.0f} MiB/s {get_cpu:.2f} CPU-s/GiB")


if __name__ == "__main__":
    main()
