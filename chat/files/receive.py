"""Reading the one ``file`` part of a multipart upload, straight to a spool file on disk.

The size limit is enforced while reading: the request is refused as soon as it
passes, without reading the rest. The first bytes are kept to tell the type.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from typing import BinaryIO

from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

from ..errors import BadRequest
from ..service.i18n import N_

READ_CHUNK = 64 * 1024
HEAD_BYTES = 64


class TooBig(Exception):
    """The file went past the bytes it was allowed."""


@dataclass
class Received:
    """The file part, spooled to ``path`` (the caller removes it)."""

    path: str
    filename: str
    size: int
    head: bytes
    sha256: str


def read_file_part(stream: BinaryIO, boundary: bytes, allowed: int, spool_dir: str) -> Received:
    """Spool the ``file`` part; TooBig past ``allowed`` bytes, 400 when malformed or missing."""
    decoder = MultipartDecoder(boundary, max_form_memory_size=1024 * 1024, max_parts=20)
    fd, path = tempfile.mkstemp(prefix="upload-", dir=spool_dir)
    out = os.fdopen(fd, "wb")
    found: Received | None = None
    in_file = done = False
    digest = hashlib.sha256()
    try:
        while not done:
            try:
                event = decoder.next_event()
            except ValueError as err:
                raise BadRequest(N_("the upload is not valid multipart/form-data")) from err
            if isinstance(event, NeedData):
                chunk = stream.read(READ_CHUNK)
                decoder.receive_data(chunk or None)
            elif isinstance(event, Epilogue):
                done = True
            elif isinstance(event, File) and event.name == "file" and found is None:
                found = Received(path, event.filename or "", 0, b"", "")
                in_file = True
            elif isinstance(event, (File, Field)):
                in_file = False
            elif isinstance(event, Data) and in_file and found is not None:
                found.size += len(event.data)
                if found.size > allowed:
                    raise TooBig()
                if len(found.head) < HEAD_BYTES:
                    found.head = (found.head + event.data)[:HEAD_BYTES]
                digest.update(event.data)
                out.write(event.data)
                # The rest of the body (an epilogue, other parts) is not needed.
                done = not event.more_data
        out.close()
        if found is None:
            raise BadRequest(N_("send the file in a form part named file"))
        found.sha256 = digest.hexdigest()
        return found
    except BaseException:
        out.close()
        os.unlink(path)
        raise
