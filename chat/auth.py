"""Identity: who is making this request (session or bearer token), CSRF, login pages."""
from __future__ import annotations

from functools import wraps
from urllib.parse import urlsplit

from flask import (Blueprint, current_app, flash, g, redirect, render_template, request,
                   session, url_for)
from flask_login import current_user, login_required, login_user, logout_user

from .errors import ChatError, Unauthorized
from .extensions import csrf, db, login_manager
from .i18n import translate
from .service import accounts

bp = Blueprint("auth", __name__)

login_manager.login_view = "auth.login"
login_manager.session_protection = "basic"
login_manager.login_message = None

_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def bearer_token() -> str | None:
    """The token of an ``Authorization: Bearer`` header, or on /ws a ``?token=``."""
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    if request.path == "/ws":
        return request.args.get("token") or None
    return None


@login_manager.user_loader
def load_session_user(key: str):
    """The session's user, unless the request carries a bearer token (which then wins)."""
    if bearer_token() is not None:
        return None
    found = accounts.resolve_session_key(key)
    if found is None:
        return None
    user, token_id = found
    user.auth_token_id, user.auth_session_key = token_id, key
    g.auth_kind = "session"
    return user


@login_manager.request_loader
def load_token_user(req):
    """The user of a bearer token (scripts, and WebSockets opened with ``?token=``)."""
    token = bearer_token()
    if token is None:
        return None
    found = accounts.resolve_secret(token)
    if found is None:
        return None
    user, token_id = found
    user.auth_token_id = token_id
    g.auth_kind = "token"
    return user


@login_manager.unauthorized_handler
def unauthorized():
    """JSON 401 for the API; the login page for pages."""
    if request.path.startswith(("/api/", "/ws")):
        raise Unauthorized()
    return redirect(url_for("auth.login", next=request.full_path))


def check_csrf() -> None:
    """CSRF on every write made with the session cookie; bearer-token calls are exempt."""
    if request.method not in _WRITE_METHODS:
        return
    if bearer_token() is not None:
        return
    has_session_cookie = current_app.config["SESSION_COOKIE_NAME"] in request.cookies
    if request.path.startswith("/api/") and not has_session_cookie:
        return  # a script without cookies: nothing a foreign site could ride on
    csrf.protect()


def api_login_required(view):
    """Like ``login_required`` but always answers 401 JSON."""
    @wraps(view)
    def wrapper(*args, **kwargs):
        if not current_user.is_authenticated:
            raise Unauthorized()
        return view(*args, **kwargs)
    return wrapper


def _safe_next(target: str | None) -> str:
    """Only redirect to a path on this site after login."""
    if not target:
        return url_for("pages.home")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("pages.home")
    return target


def start_session(user) -> None:
    """Log the user in with a fresh session (no fixation) backed by a revocable row."""
    session.clear()
    cred = accounts.issue_credential(user.id, "session", request.user_agent.string[:64])
    user.auth_token_id = cred.token_id
    user.auth_session_key = accounts.session_key(cred)
    login_user(user)


@bp.route("/login", methods=["GET", "POST"])
def login():
    """The login form."""
    if current_user.is_authenticated:
        return redirect(url_for("pages.home"))
    username = request.form.get("username", "")
    if request.method == "POST":
        try:
            user = accounts.authenticate(username, request.form.get("password", ""))
        except ChatError as err:
            # Wrong password or too many tries: the form again, with the reason.
            if err.status not in (400, 401, 429):
                raise
            flash(translate(err.message), "error")
            return render_template("auth/login.html", username=username), err.status
        start_session(user)
        return redirect(_safe_next(request.args.get("next")))
    return render_template("auth/login.html", username=username)


@bp.route("/register", methods=["GET", "POST"])
def register():
    """The sign-up form; logs the new user in."""
    if current_user.is_authenticated:
        return redirect(url_for("pages.home"))
    if request.method == "POST":
        if request.form.get("password") != request.form.get("password2"):
            flash(translate("The two passwords differ."), "error")
            return render_template("auth/register.html",
                                   username=request.form.get("username", "")), 400
        try:
            user = accounts.register(request.form.get("username"), request.form.get("password"))
        except ChatError as err:
            # Name taken or not allowed, password too short: the form again, with the reason.
            if err.status not in (400, 409, 429):
                raise
            flash(translate(err.message), "error")
            return render_template("auth/register.html",
                                   username=request.form.get("username", "")), err.status
        start_session(user)
        flash(translate("Welcome, {name}!", name=user.username), "ok")
        return redirect(url_for("pages.home"))
    return render_template("auth/register.html", username="")


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    """End the session everywhere it is used, its open sockets included."""
    if current_user.auth_token_id:
        accounts.revoke(current_user.auth_token_id, current_user.id)
    logout_user()
    session.clear()
    db.session.remove()
    return redirect(url_for("auth.login"))
