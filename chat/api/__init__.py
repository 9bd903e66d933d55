"""The JSON API under /api: parse the request, call the service, answer (views stay thin).

Each view declares what it takes and answers with ``@operation`` (chat.api.operation);
the OpenAPI document at /api/openapi.json is generated from those declarations.
"""
from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api")

# The view modules register their routes on ``bp`` (imported for that effect).
from . import accounts, groups, messages, notices, openapi, social, uploads  # noqa: E402,F401
from . import search  # noqa: E402,F401
from . import conversations, push  # noqa: E402,F401
from .operation import check_answer  # noqa: E402

bp.after_request(check_answer)
