"""The JSON API under /api: parse the request, call the service, answer (views stay thin).

Each view declares what it takes and answers with ``@operation`` (chat.api.operation);
the OpenAPI document at /api/openapi.json is generated from those declarations.
"""
import io

from flask import Blueprint, current_app
# ``request`` in this package is its module of that name (imported below).
from flask import request as http_request

from ..errors import TooLarge

bp = Blueprint("api", __name__, url_prefix="/api")


@bp.before_request
def refuse_large_bodies() -> None:
    """413 for a body over CHAT_MAX_BODY_BYTES on every call but an upload (which has its
    own limits): Flask's limit holds only where a view reads the body, and a call that
    ignores its body (a follow, a reaction, a delete) was carried out whatever came."""
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if not limit or http_request.endpoint == "api.upload":
        return
    length = http_request.content_length
    if length is None and http_request.headers.get("Transfer-Encoding"):
        _read_chunked_body(http_request.environ, limit)
    elif length is not None and length > limit:
        raise TooLarge()


def _read_chunked_body(environ: dict, limit: int) -> None:
    """Read a chunked body now, up to ``limit`` bytes (413 past it), and hand it on to the
    view as a body of known length. (Werkzeug's own limit on a chunked stream cuts it
    short without an error, or refuses a body of exactly the limit.)"""
    stream, body = environ["wsgi.input"], bytearray()
    while len(body) <= limit:
        chunk = stream.read(limit + 1 - len(body))
        if not chunk:
            break
        body += chunk
    if len(body) > limit:
        raise TooLarge()
    environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(body), str(len(body))


# The view modules register their routes on ``bp`` (imported for that effect).
from . import accounts, groups, messages, notices, openapi, social, uploads  # noqa: E402,F401
from . import search  # noqa: E402,F401
from . import conversations, push  # noqa: E402,F401
from .operation import check_answer  # noqa: E402

bp.after_request(check_answer)
