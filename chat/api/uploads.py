"""Files and pictures (docs/protocol.md 3.10): upload one, download one or its thumbnail."""
from __future__ import annotations

from flask import Response, current_app, request
from werkzeug.http import parse_options_header

from ..errors import BadRequest
from ..files.names import disposition
from ..files.service import FRAMING, Served
from ..service.i18n import N_
from . import bp
from .answers import File
from .operation import operation
from .request import me, services


@bp.post("/uploads")
@operation({201: File}, upload=True)
def upload():
    """Upload a file or picture: multipart/form-data with one part named file."""
    kind, options = parse_options_header(request.headers.get("Content-Type", ""))
    boundary = options.get("boundary", "")
    if kind != "multipart/form-data" or not boundary or len(boundary) > 200:
        raise BadRequest(N_("send multipart/form-data with one part named file"))
    uploads = services().uploads
    # The body limit of other calls (CHAT_MAX_BODY_BYTES) does not hold here; the upload's
    # own limits are enforced while the file part is read.
    request.max_content_length = uploads.settings.max_bytes + FRAMING
    made = uploads.receive(me(), request.stream, boundary.encode("latin-1"),
                           request.content_length)
    return made, 201


@bp.get("/files/<file_id>")
@operation({200: None, 206: None, 304: None}, download=True)
def download(file_id: int):
    """A file's bytes: inline for pictures, as a download for anything else."""
    return _serve(services().uploads.served(me(), file_id, thumb=False))


@bp.get("/files/<file_id>/thumb")
@operation({200: None, 206: None, 304: None}, download=True)
def thumbnail(file_id: int):
    """A picture's thumbnail (at most 320x320)."""
    return _serve(services().uploads.served(me(), file_id, thumb=True))


def _serve(found: Served) -> Response:
    """Stream the object with the headers docs/protocol.md 3.10 asks for: ETag, Range, nosniff."""
    headers = {
        "ETag": found.etag, "Accept-Ranges": "bytes",
        # Checked again each time: access ends when the message holding it is recalled.
        "Cache-Control": "private, no-cache", "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Content-Disposition": disposition("inline" if found.inline else "attachment",
                                           found.name),
    }
    # Anything that is not a picture is a download of opaque bytes: never rendered here.
    mime = found.mime if found.inline else "application/octet-stream"
    if _matches(request.headers.get("If-None-Match"), found.etag):
        return Response(status=304, headers=headers, direct_passthrough=True)
    storage = services().uploads.storage
    prefix = current_app.config["CHAT_UPLOAD_ACCEL_PREFIX"]
    if prefix and storage.local_path(found.key):
        # nginx sends the file (and answers Range itself) from its internal location.
        headers["X-Accel-Redirect"] = prefix.rstrip("/") + "/" + found.key
        return Response(b"", headers=headers, mimetype=mime, direct_passthrough=True)
    start, end, status = 0, found.size - 1, 200
    wanted = request.range
    if_range = request.headers.get("If-Range")
    # An unreadable Range header is ignored (RFC 9110): the whole file.
    if wanted is not None and (if_range is None or if_range == found.etag):
        span = wanted.range_for_length(found.size)
        if span is None and len(wanted.ranges) == 1:
            headers["Content-Range"] = f"bytes */{found.size}"
            return Response(status=416, headers=headers, direct_passthrough=True)
        if span is not None:  # several ranges: the whole file, as RFC 9110 allows
            start, end, status = span[0], span[1] - 1, 206
            headers["Content-Range"] = f"bytes {start}-{end}/{found.size}"
    body = storage.read(found.key, start, end) if end >= start else iter(())
    response = Response(body, status=status, headers=headers, mimetype=mime,
                        direct_passthrough=True)
    response.content_length = end - start + 1
    return response


def _matches(header: str | None, etag: str) -> bool:
    """Whether an If-None-Match names this file's entity tag (or is '*')."""
    if not header:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return "*" in tags or etag in tags
