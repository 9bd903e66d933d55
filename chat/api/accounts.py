"""/api/register, /api/tokens, /api/me: accounts and credentials for scripts."""
from __future__ import annotations

from flask import request
from flask_login import current_user, logout_user

from ..identity import api_login_required
from ..service.accounts import TICKET_TTL
from ..service.shapes import user_json
from ..service.validation import BadRequest
from . import bp
from .request import body, me, path_id, require, services


@bp.post("/register")
def register():
    """Create an account."""
    data = body()
    require(data, "username", "password")
    user = services().accounts.register(data["username"], data["password"], request.remote_addr)
    return user_json(user), 201


@bp.post("/tokens")
def create_token():
    """Log in for scripts: a bearer token for username and password."""
    data = body()
    require(data, "username", "password")
    if type(data["username"]) is not str or type(data["password"]) is not str:
        raise BadRequest("username and password must be strings")
    name = data.get("name")
    if name is not None and (type(name) is not str or len(name) > 64):
        raise BadRequest("name must be a string of at most 64 characters")
    accounts = services().accounts
    user = accounts.authenticate(data["username"], data["password"], request.remote_addr)
    cred = accounts.issue_credential(user.id, "api", name or "")
    return {"token": cred.secret, "user_id": user.id, "id": cred.token_id}, 201


@bp.get("/tokens")
@api_login_required
def list_tokens():
    """The caller's live API tokens (ids and names, never secrets)."""
    return {"tokens": services().accounts.list_tokens(me())}


@bp.delete("/tokens/current")
@api_login_required
def revoke_current_token():
    """Revoke the token (or end the session) that made this call."""
    services().accounts.revoke(current_user.auth_token_id, me())
    if not request.headers.get("Authorization"):
        logout_user()
    return {"revoked": True}


@bp.delete("/tokens/<token_id>")
@api_login_required
def revoke_token(token_id: str):
    """Revoke one of the caller's tokens; another user's token is 404."""
    services().accounts.revoke(path_id(token_id, "token_id"), me())
    return {"revoked": True}


@bp.post("/ws-ticket")
@api_login_required
def ws_ticket():
    """A single-use ticket that opens one WebSocket within 30 s: ``/ws?ticket=...``."""
    ticket = services().accounts.issue_ticket(me(), current_user.auth_token_id)
    return {"ticket": ticket, "expires_in": TICKET_TTL}, 201


@bp.get("/me")
@api_login_required
def whoami():
    """The current user."""
    return user_json(current_user)


@bp.post("/me/password")
@api_login_required
def change_password():
    """Change the password; every other session and token of the user ends."""
    data = body()
    require(data, "current_password", "new_password")
    services().accounts.change_password(current_user, data["current_password"],
                                        data["new_password"], request.remote_addr)
    return {"changed": True}
