"""The ChatError family, raised anywhere and rendered once: as HTML, as JSON or as a frame."""
from __future__ import annotations

import logging

from flask import Flask, render_template, request
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

log = logging.getLogger("chat.errors")

# The database is down, or so busy that no pooled connection came free in time.
DATABASE_UNAVAILABLE = (DBAPIError, PoolTimeout)

# Our error names for HTTP statuses that have no ChatError of their own.
_STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                 405: "method_not_allowed", 408: "request_timeout", 409: "conflict",
                 413: "too_large",
                 415: "unsupported_media_type", 429: "rate_limited", 500: "internal_error",
                 503: "server_busy"}


class ChatError(Exception):
    """An expected failure with an HTTP status and one of docs/protocol.md's error names."""

    status = 400
    code = "bad_request"
    default_message = "bad request"

    def __init__(self, message: str | None = None):
        super().__init__(message or self.default_message)
        self.message = message or self.default_message

    def to_json(self) -> dict:
        """The HTTP error body."""
        return {"error": {"code": self.code, "message": self.message}}

    def to_frame(self, ref=None) -> dict:
        """The WebSocket error frame; ``ref`` names the frame it answers."""
        frame = {"kind": "error", "code": self.status, "error": self.code,
                 "content": self.message}
        if ref is not None:
            frame["ref"] = ref
        return frame


class BadRequest(ChatError):
    """Malformed or invalid input."""


class Unauthorized(ChatError):
    """No valid session or token, or wrong credentials."""

    status, code, default_message = 401, "unauthorized", "log in first"


class Forbidden(ChatError):
    """The user may not do this."""

    status, code, default_message = 403, "forbidden", "not allowed"


class NotFound(ChatError):
    """No such user, group or thing."""

    status, code, default_message = 404, "not_found", "not found"


class Conflict(ChatError):
    """The state does not allow it (name taken, owner leaving...)."""

    status, code, default_message = 409, "conflict", "conflict"


class StrangerLimit(ChatError):
    """The seed's rule: three messages to someone who has not written back."""

    status, code = 429, "stranger_limit"
    default_message = "you can send 3 messages until they reply or you follow each other"


class RateLimited(ChatError):
    """Too many frames or attempts in the window."""

    status, code, default_message = 429, "rate_limited", "too many requests, slow down"


class TooLarge(ChatError):
    """An upload over the size limit or the quota (docs/protocol.md 3.4)."""

    status, code, default_message = 413, "too_large", "too large"


class ServerBusy(ChatError):
    """A part we need (the database) is down; nothing was stored."""

    status, code = 503, "server_busy"
    default_message = "the server is busy; nothing was stored, retry with the same client_id"


class UploadBusy(ServerBusy):
    """Another upload of the same user held the quota's turn too long; nothing was kept."""

    default_message = "another upload of yours is being stored; nothing was kept, try again"


def wants_json() -> bool:
    """API, health and WebSocket requests are answered in JSON; pages in HTML."""
    path = request.path
    return path.startswith(("/api/", "/ws", "/healthz", "/metrics")) or path == "/api"


def register_error_handlers(app: Flask) -> None:
    """Render ChatError and HTTP errors once for JSON and once for HTML."""

    @app.errorhandler(ChatError)
    def handle_chat_error(err: ChatError):
        if wants_json():
            return err.to_json(), err.status
        # Forms answer their own refusals (chat.web.forms); anything else is a page.
        return render_template("errors/error.html", status=err.status,
                               message=err.message), err.status

    @app.errorhandler(HTTPException)
    def handle_http_error(err: HTTPException):
        status = err.code or 500
        message = err.description or err.name
        if wants_json():
            return {"error": {"code": _STATUS_CODES.get(status, "error"),
                              "message": message}}, status
        return render_template("errors/error.html", status=status, message=message), status

    def handle_database_down(err: Exception):
        # The database (or the connection to it) failed: nothing was stored.
        log.warning("event=db_unavailable path=%s error=%s", request.path,
                    type(getattr(err, "orig", err)).__name__)
        return handle_chat_error(ServerBusy())

    for kind in DATABASE_UNAVAILABLE:
        app.register_error_handler(kind, handle_database_down)

    @app.errorhandler(Exception)
    def handle_unexpected(err: Exception):
        log.exception("unhandled error path=%s", request.path)
        if wants_json():
            return {"error": {"code": "internal_error",
                              "message": "internal error"}}, 500
        return render_template("errors/error.html", status=500,
                               message="Something went wrong on our side."), 500
