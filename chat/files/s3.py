"""The S3-compatible backend (AWS S3, MinIO, Ceph...): for several machines serving one chat.

Credentials come the standard AWS way (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY,
a profile, or an instance role); CHAT_S3_ENDPOINT points at a non-AWS server.
"""
from __future__ import annotations

from typing import Iterator

from .storage import CHUNK


class S3Storage:
    """Objects in one bucket, through boto3."""

    def __init__(self, bucket: str, endpoint: str | None = None,
                 region: str | None = None) -> None:
        import boto3  # only needed when this backend is chosen
        from botocore.config import Config

        self.bucket = bucket
        self.client = boto3.client(
            "s3", endpoint_url=endpoint or None, region_name=region or None,
            config=Config(retries={"max_attempts": 3, "mode": "standard"},
                          s3={"addressing_style": "path"}))

    def put(self, key: str, path: str, mime: str) -> None:
        """Upload the spooled file (multipart for big ones, boto3 decides)."""
        self.client.upload_file(path, self.bucket, key, ExtraArgs={"ContentType": mime})

    def read(self, key: str, start: int, end: int) -> Iterator[bytes]:
        """Stream a byte range of the object."""
        got = self.client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes={start}-{end}")
        body = got["Body"]
        try:
            yield from body.iter_chunks(CHUNK)
        finally:
            body.close()

    def delete(self, key: str) -> None:
        """Delete the object (S3 answers success for a missing key too)."""
        self.client.delete_object(Bucket=self.bucket, Key=key)

    def local_path(self, key: str) -> str | None:
        """Not on this machine."""
        return None
