"""/api/register, /api/tokens, /api/me: accounts and credentials for scripts."""
from __future__ import annotations

from flask import request
from flask_login import current_user, logout_user

from ..service.accounts import TICKET_TTL
from ..service.shapes import user_json
from . import answers, bp
from ..service.prefs import change_me, me_json
from .inputs import Login, MeEdit, PasswordChange, Registration
from .operation import operation
from .request import me, services


@bp.post("/register")
@operation({201: answers.User}, body=Registration, public=True)
def register(body: Registration):
    """Create an account."""
    user = services().accounts.register(body.username, body.password, request.remote_addr)
    return user_json(user), 201


@bp.post("/tokens")
@operation({201: answers.Token}, body=Login, whole=True, public=True)
def create_token(body: Login):
    """Log in for scripts: a bearer token for username and password."""
    accounts = services().accounts
    user = accounts.authenticate(body.username, body.password, request.remote_addr)
    cred = accounts.issue_credential(user.id, "api", body.name or "")
    return {"token": cred.secret, "user_id": user.id, "id": cred.token_id}, 201


@bp.get("/tokens")
@operation({200: answers.TokenList})
def list_tokens():
    """The caller's live API tokens (ids and names, never secrets)."""
    return {"tokens": services().accounts.list_tokens(me())}


@bp.delete("/tokens/current")
@operation({200: answers.Revoked})
def revoke_current_token():
    """Revoke the token (or end the session) that made this call."""
    services().accounts.revoke(current_user.auth_token_id, me())
    if not request.headers.get("Authorization"):
        logout_user()
    return {"revoked": True}


@bp.delete("/tokens/<token_id>")
@operation({200: answers.Revoked})
def revoke_token(token_id: int):
    """Revoke one of the caller's tokens; another user's token is 404."""
    services().accounts.revoke(token_id, me())
    return {"revoked": True}


@bp.post("/ws-ticket")
@operation({201: answers.Ticket})
def ws_ticket():
    """A single-use ticket that opens one WebSocket within 30 s: ``/ws?ticket=...``."""
    ticket = services().accounts.issue_ticket(me(), current_user.auth_token_id)
    return {"ticket": ticket, "expires_in": TICKET_TTL}, 201


@bp.get("/me")
@operation({200: answers.Me})
def whoami():
    """The current user, with their own settings."""
    return me_json(me())


@bp.patch("/me")
@operation({200: answers.Me}, body=MeEdit, whole=True)
def edit_me(body: MeEdit):
    """Change one's own settings: ``show_presence``, ``push_previews``."""
    return change_me(me(), body.model_dump())


@bp.post("/me/password")
@operation({200: answers.Changed}, body=PasswordChange)
def change_password(body: PasswordChange):
    """Change the password; every other session and token of the user ends."""
    services().accounts.change_password(current_user, body.current_password, body.new_password,
                                        request.remote_addr)
    return {"changed": True}
