"""Login, registration and logout pages (who a request is: ``chat.identity``)."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user

from ..errors import BadRequest
from ..extensions import db
from ..runtime import services
from ..service.accounts import session_key
from ..service.i18n import N_
from .forms import form_view

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str:
    """Only redirect to a path on this site after login."""
    if not target:
        return url_for("pages.home")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("pages.home")
    return target.rstrip("?") or url_for("pages.home")  # "/?" (an empty query) is just "/"


def start_session(user) -> None:
    """Log the user in with a fresh session (no fixation) backed by a revocable row."""
    session.clear()
    cred = services().accounts.issue_credential(user.id, "session",
                                                request.user_agent.string[:64])
    user.auth_token_id = cred.token_id
    user.auth_session_key = session_key(cred)
    login_user(user)


@bp.route("/login", methods=["GET", "POST"])
@form_view(template="auth/login.html", fields=("username",))
def login():
    """The login form."""
    if current_user.is_authenticated:
        return redirect(url_for("pages.home"))
    if request.method == "POST":
        user = services().accounts.authenticate(request.form.get("username", ""),
                                                request.form.get("password", ""),
                                                request.remote_addr)
        start_session(user)
        return redirect(_safe_next(request.args.get("next")))
    return render_template("auth/login.html", form={"username": ""})


@bp.route("/register", methods=["GET", "POST"])
@form_view(template="auth/register.html", fields=("username",))
def register():
    """The sign-up form; logs the new user in."""
    if current_user.is_authenticated:
        return redirect(url_for("pages.home"))
    if request.method == "POST":
        if request.form.get("password") != request.form.get("password2"):
            raise BadRequest(N_("The two passwords differ."))
        user = services().accounts.register(request.form.get("username"),
                                            request.form.get("password"), request.remote_addr)
        start_session(user)
        flash(_("Welcome, %(name)s!", name=user.username), "ok")
        return redirect(url_for("pages.home"))
    return render_template("auth/register.html", form={"username": ""})


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    """End the session everywhere it is used, its open sockets included."""
    if current_user.auth_token_id:
        services().accounts.revoke(current_user.auth_token_id, current_user.id)
    logout_user()
    session.clear()
    db.session.remove()
    return redirect(url_for("auth.login"))
