"""The JSON API under /api: parse the request, call the service, answer (views stay thin)."""
from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api")

# The view modules register their routes on ``bp`` (imported for that effect).
from . import accounts, groups, messages, notices, openapi, social  # noqa: E402,F401
