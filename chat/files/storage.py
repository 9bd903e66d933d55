"""Where uploaded bytes live: one small interface, a local folder behind it by default.

Keys are made by the server (``<shard>/<id>-<random>``), never from a user's
file name, so no key can climb out of the folder or name another's object.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterator, Protocol

CHUNK = 64 * 1024


class Storage(Protocol):
    """The operations the upload service needs from a backend."""

    def put(self, key: str, path: str, mime: str) -> None:
        """Keep the finished file at ``path`` under ``key`` (the path may be moved away)."""

    def read(self, key: str, start: int, end: int) -> Iterator[bytes]:
        """Bytes ``start`` .. ``end`` inclusive of the object ``key``, in chunks."""

    def delete(self, key: str) -> None:
        """Forget ``key`` (no error when it is already gone)."""

    def local_path(self, key: str) -> str | None:
        """The file on this machine holding ``key`` (local backend only, else None)."""


def shard_key(upload_id: int, token: str, suffix: str = "") -> str:
    """A storage key spread over 256 folders by id, so no folder grows huge."""
    return f"{upload_id % 256:02x}/{upload_id}-{token}{suffix}"


class LocalStorage:
    """Files in a folder on this machine (``instance/uploads`` by default)."""

    def __init__(self, root: str) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents:  # keys are ours, but never leave the folder
            raise ValueError("bad storage key")
        return path

    def put(self, key: str, path: str, mime: str) -> None:
        """Move the spooled file into place (a rename when on the same disk)."""
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(path, target)

    def read(self, key: str, start: int, end: int) -> Iterator[bytes]:
        """Stream a byte range from disk."""
        with open(self._path(key), "rb") as handle:
            handle.seek(start)
            left = end - start + 1
            while left > 0:
                chunk = handle.read(min(CHUNK, left))
                if not chunk:
                    break
                left -= len(chunk)
                yield chunk

    def delete(self, key: str) -> None:
        """Remove the file if it is there."""
        try:
            os.unlink(self._path(key))
        except FileNotFoundError:
            pass

    def local_path(self, key: str) -> str | None:
        """The file's path (for nginx's X-Accel-Redirect)."""
        return str(self._path(key))
