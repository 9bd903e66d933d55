"""Files and pictures (docs/protocol.md 3.10): storage backends, the upload service, clean-up."""
from __future__ import annotations

from .storage import LocalStorage, Storage


def make_storage(config) -> Storage:
    """The configured backend: S3 when CHAT_S3_BUCKET is set, else the local folder."""
    bucket = config.get("CHAT_S3_BUCKET")
    if bucket:
        from .s3 import S3Storage
        return S3Storage(bucket, config.get("CHAT_S3_ENDPOINT"), config.get("CHAT_S3_REGION"))
    return LocalStorage(config["CHAT_UPLOAD_DIR"])
