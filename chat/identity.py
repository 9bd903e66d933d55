"""Who is making this request: a browser session or a bearer token, and CSRF for sessions.

Used by all three ways in (pages, the JSON API, the WebSocket). Identity comes
only from a session or a token, never from a parameter naming a user.
"""
from __future__ import annotations

from functools import wraps

from flask import Flask, Request, current_app, g, redirect, request, url_for
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_login import current_user
from flask_wtf.csrf import CSRFError, validate_csrf
from wtforms import ValidationError

from .errors import RateLimited, Unauthorized
from .extensions import csrf, login_manager
from .runtime import runtime, services

login_manager.login_view = "auth.login"
login_manager.session_protection = "basic"
login_manager.login_message = None

_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, but a request without the cookie (a script, a
    socket opened with a token) gets its empty session without a signer being built
    for it: three in a hundred of a connect's CPU."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        """An empty session when there is no cookie, else Flask's own."""
        if app.secret_key and self.get_cookie_name(app) not in request.cookies:
            return self.session_class()
        return super().open_session(app, request)


def bearer_token() -> str | None:
    """The token of an ``Authorization: Bearer`` header, or on /ws a ``?token=``."""
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    if request.path == "/ws":
        return request.args.get("token") or None
    return None


def ws_ticket() -> str | None:
    """On /ws, a single-use ``?ticket=`` (from ``POST /api/ws-ticket``)."""
    if request.path == "/ws":
        return request.args.get("ticket") or None
    return None


def script_credential() -> bool:
    """Whether the request names a credential of its own (a token, or a ticket on /ws)."""
    return bearer_token() is not None or ws_ticket() is not None


@login_manager.user_loader
def load_session_user(key: str):
    """The session's user, unless the request carries a token or ticket (which then wins)."""
    if script_credential():
        return None
    found = services().accounts.resolve_session_key(key)
    if found is None:
        return None
    user, token_id = found
    user.auth_token_id, user.auth_session_key = token_id, key
    g.auth_kind = "session"
    return user


def socket_will_open() -> bool:
    """Whether this request asks for a WebSocket that this process would take now (not
    stopping, not full): only then is the hello worth reading with the token."""
    if request.path != "/ws" or request.headers.get("Upgrade", "").lower() != "websocket":
        return False
    chat = runtime()
    return not chat.draining and not chat.full()


@login_manager.request_loader
def load_token_user(req):
    """The user of a bearer token (scripts, WebSockets opened with ``?token=``) or of a
    WebSocket ticket (``?ticket=``, good once)."""
    token = bearer_token()
    hello = None
    if token is not None and socket_will_open():
        # A socket's first frame needs the user's hello rows: read with the token.
        found, hello = services().accounts.resolve_secret_with_hello(token)
    elif token is not None:
        found = services().accounts.resolve_secret(token)
    elif ws_ticket() is not None:
        found = services().accounts.redeem_ticket(ws_ticket())
    else:
        return None
    if found is None:
        return None
    user, token_id = found
    user.auth_token_id, user.hello_rows = token_id, hello
    g.auth_kind = "token"
    return user


@login_manager.unauthorized_handler
def unauthorized():
    """JSON 401 for the API; the login page for pages."""
    if request.path.startswith(("/api/", "/ws")):
        raise Unauthorized()
    # request.full_path ends in a bare "?" when there is no query: leave it out.
    query = request.query_string.decode("latin-1")
    return redirect(url_for("auth.login", next=request.path + (f"?{query}" if query else "")))


def check_csrf() -> None:
    """CSRF on every write made with the session cookie; bearer-token calls are exempt."""
    if request.method not in _WRITE_METHODS:
        return
    if bearer_token() is not None:
        return
    has_session_cookie = current_app.config["SESSION_COOKIE_NAME"] in request.cookies
    if request.path.startswith("/api/") and not has_session_cookie:
        return  # a script without cookies: nothing a foreign site could ride on
    if request.path == "/api/uploads":
        # The token comes in the header: looking in the form would read the whole file
        # before its size limit could be applied.
        try:
            validate_csrf(request.headers.get("X-CSRFToken"))
        except ValidationError as err:
            raise CSRFError(err.args[0]) from None
        return
    csrf.protect()


def check_flood() -> None:
    """Every state-changing call of a signed-in user counts against the flood limit.

    The same per-user limit as the socket's frames (CHAT_RATE_PER_MINUTE): follows,
    blocks, group changes, read cursors, messages. Anonymous calls (login, sign-up)
    have their own per-address limit in the accounts service.
    """
    if request.method not in _WRITE_METHODS or not current_user.is_authenticated:
        return
    spend_flood_allowance()


def spend_flood_allowance() -> None:
    """Count this call against the signed-in caller's flood limit (429 past it)."""
    if not services().flood.hit(current_user.id):
        raise RateLimited()


def api_login_required(view):
    """Like ``login_required`` but always answers 401 JSON."""
    @wraps(view)
    def wrapper(*args, **kwargs):
        if not current_user.is_authenticated:
            raise Unauthorized()
        return view(*args, **kwargs)
    return wrapper
