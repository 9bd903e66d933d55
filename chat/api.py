"""The JSON API under /api (PROTOCOL.md section 4): parse, call the service, answer."""
from __future__ import annotations

import orjson
from flask import Blueprint, request
from flask_login import current_user, logout_user

from . import validation
from .auth import api_login_required
from .errors import BadRequest, RateLimited, ServerBusy
from .openapi import build_openapi
from .service import accounts, groups, messages, notices, runtime, social

bp = Blueprint("api", __name__, url_prefix="/api")


def body() -> dict:
    """The request's JSON object; an empty body is ``{}``; anything else is 400."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    return data


def require(data: dict, *fields: str) -> None:
    """400 when a required field is missing or null."""
    for name in fields:
        if data.get(name) is None:
            raise BadRequest(f"{name} is required")


def page_args() -> tuple[int | None, int]:
    """``before_id`` and ``limit`` from the query string."""
    before = validation.query_int(request.args, "before_id", low=0, high=validation.MAX_ID,
                                  default=None)
    size = validation.query_int(request.args, "limit", low=1, high=100, default=10)
    return before, size


def path_id(value: str, field: str) -> int:
    """An id from the URL: digits only, 1..2^53-1."""
    if not value.isascii() or not value.isdigit() or len(value) > 16:
        raise BadRequest(f"{field} must be a positive integer id")
    return validation.entity_id(int(value), field)


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI 3 document of this API."""
    return build_openapi()


# -- accounts ---------------------------------------------------------------

@bp.post("/register")
def register():
    """Create an account."""
    data = body()
    require(data, "username", "password")
    return accounts.user_json(accounts.register(data["username"], data["password"])), 201


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
    user = accounts.authenticate(data["username"], data["password"])
    cred = accounts.issue_credential(user.id, "api", name or "")
    return {"token": cred.secret, "user_id": user.id, "id": cred.token_id}, 201


@bp.get("/tokens")
@api_login_required
def list_tokens():
    """The caller's live API tokens (ids and names, never secrets)."""
    return {"tokens": accounts.list_tokens(current_user.id)}


@bp.delete("/tokens/current")
@api_login_required
def revoke_current_token():
    """Revoke the token (or end the session) that made this call."""
    accounts.revoke(current_user.auth_token_id, current_user.id)
    if not request.headers.get("Authorization"):
        logout_user()
    return {"revoked": True}


@bp.delete("/tokens/<token_id>")
@api_login_required
def revoke_token(token_id: str):
    """Revoke one of the caller's tokens; another user's token is 404."""
    accounts.revoke(path_id(token_id, "token_id"), current_user.id)
    return {"revoked": True}


@bp.get("/me")
@api_login_required
def me():
    """The current user."""
    return accounts.user_json(current_user)


@bp.post("/me/password")
@api_login_required
def change_password():
    """Change the password; every other session and token of the user ends."""
    data = body()
    require(data, "current_password", "new_password")
    accounts.change_password(current_user, data["current_password"], data["new_password"])
    return {"changed": True}


# -- users, follows, blocks -------------------------------------------------

@bp.get("/users")
@api_login_required
def find_users():
    """Find users by name."""
    return {"users": social.search(request.args.get("q"))}


@bp.get("/users/<user_id>")
@api_login_required
def user_profile(user_id: str):
    """A profile with following / followed_by seen from the caller."""
    return social.profile(current_user.id, path_id(user_id, "user_id"))


@bp.put("/users/<user_id>/follow")
@api_login_required
def follow(user_id: str):
    """Follow a user."""
    return social.follow(current_user.id, path_id(user_id, "user_id"))


@bp.delete("/users/<user_id>/follow")
@api_login_required
def unfollow(user_id: str):
    """Unfollow a user."""
    return social.unfollow(current_user.id, path_id(user_id, "user_id"))


@bp.put("/users/<user_id>/block")
@api_login_required
def block(user_id: str):
    """Block a user."""
    return social.block(current_user.id, path_id(user_id, "user_id"))


@bp.delete("/users/<user_id>/block")
@api_login_required
def unblock(user_id: str):
    """Unblock a user."""
    return social.unblock(current_user.id, path_id(user_id, "user_id"))


# -- messages ---------------------------------------------------------------

@bp.get("/conversations")
@api_login_required
def conversations():
    """Private chats and groups, newest first, with last message and unread count."""
    return {"conversations": messages.conversations(current_user.id)}


@bp.get("/messages/<user_id>")
@api_login_required
def private_history(user_id: str):
    """A page of the private chat with a user."""
    before, size = page_args()
    page = messages.history(current_user.id, path_id(user_id, "user_id"), False,
                            before_id=before, limit=size)
    return {"messages": page["messages"], "has_more": page["has_more"]}


@bp.get("/groups/<group_id>/messages")
@api_login_required
def group_history(group_id: str):
    """A page of a group's chat (members only)."""
    before, size = page_args()
    page = messages.history(current_user.id, path_id(group_id, "group_id"), True,
                            before_id=before, limit=size)
    return {"messages": page["messages"], "has_more": page["has_more"]}


@bp.post("/messages")
@api_login_required
def send_message():
    """Send without a WebSocket: same rules, same ack, delivered live."""
    data = body()
    chat = runtime.chat()
    if chat.draining:
        raise ServerBusy("the server is restarting; retry with the same client_id")
    if not chat.flood.hit(current_user.id):
        raise RateLimited()
    has_user, has_group = data.get("recipient_id") is not None, data.get("group_id") is not None
    if has_user == has_group:
        raise BadRequest("give exactly one of recipient_id and group_id")
    target = {"recipient_id": validation.entity_id(data["recipient_id"], "recipient_id"),
              "group_id": None} if has_user else {
        "recipient_id": None, "group_id": validation.entity_id(data["group_id"], "group_id")}
    ack, created = chat.committer.send_and_wait(dict(
        sender_id=current_user.id, content=validation.content(
            data.get("content"), runtime.config()["CHAT_MAX_CONTENT"]),
        client_id=validation.client_id(data.get("client_id")), origin=None, **target))
    return ack, 201 if created else 200


@bp.get("/unread")
@api_login_required
def unread():
    """What is unread, by conversation; marks nothing read."""
    return messages.unread_summary(current_user.id)


@bp.post("/read")
@api_login_required
def mark_read():
    """Move a read cursor; pushes the same ``read`` frames as type 5."""
    data = body()
    has_user, has_group = data.get("recipient_id") is not None, data.get("group_id") is not None
    if has_user == has_group:
        raise BadRequest("give exactly one of recipient_id and group_id")
    require(data, "last_read_id")
    target = data["recipient_id"] if has_user else data["group_id"]
    return messages.mark_read(current_user.id, target, has_group, data["last_read_id"])


@bp.get("/sync")
@api_login_required
def sync():
    """Every message the caller can see after ``since_id``."""
    since = validation.query_int(request.args, "since_id", low=0, high=validation.MAX_ID,
                                 default=None)
    if since is None:
        raise BadRequest("since_id is required")
    size = validation.query_int(request.args, "limit", low=1, high=1000, default=500)
    return messages.sync(current_user.id, since, size)


# -- groups -----------------------------------------------------------------

@bp.post("/groups")
@api_login_required
def create_group():
    """Create a group owned by the caller."""
    data = body()
    require(data, "name")
    return groups.create(current_user.id, data["name"], data.get("description"),
                         data.get("icon")), 201


@bp.get("/groups")
@api_login_required
def list_groups():
    """The caller's groups; with ``?q=`` every group whose name matches."""
    if request.args.get("q") is not None:
        return {"groups": groups.search(current_user.id, request.args.get("q"))}
    return {"groups": groups.list_mine(current_user.id)}


@bp.get("/groups/<group_id>")
@api_login_required
def show_group(group_id: str):
    """A group."""
    return groups.show(current_user.id, path_id(group_id, "group_id"))


@bp.patch("/groups/<group_id>")
@api_login_required
def edit_group(group_id: str):
    """Edit name, description, icon or owner (owner only)."""
    data = body()
    known = {"name", "description", "icon", "owner_id"}
    unknown = set(data) - known
    if unknown:
        raise BadRequest(f"unknown field {sorted(unknown)[0]!r}")
    return groups.update(current_user.id, path_id(group_id, "group_id"), data)


@bp.delete("/groups/<group_id>")
@api_login_required
def delete_group(group_id: str):
    """Delete a group (owner only)."""
    return groups.delete_group(current_user.id, path_id(group_id, "group_id"))


@bp.get("/groups/<group_id>/members")
@api_login_required
def group_members(group_id: str):
    """The members of a group (members only)."""
    return {"members": groups.members(current_user.id, path_id(group_id, "group_id"))}


@bp.put("/groups/<group_id>/members/<user_id>")
@api_login_required
def add_member(group_id: str, user_id: str):
    """Join (yourself) or add (owner)."""
    return groups.add_member(current_user.id, path_id(group_id, "group_id"),
                             path_id(user_id, "user_id"))


@bp.delete("/groups/<group_id>/members/<user_id>")
@api_login_required
def remove_member(group_id: str, user_id: str):
    """Leave (yourself) or remove (owner)."""
    return groups.remove_member(current_user.id, path_id(group_id, "group_id"),
                                path_id(user_id, "user_id"))


# -- notices ----------------------------------------------------------------

@bp.get("/notices")
@api_login_required
def list_notices():
    """The caller's notices, newest first (``?unread=1``: only unread)."""
    flag = request.args.get("unread", "")
    if flag not in ("", "0", "1", "true", "false"):
        raise BadRequest("unread must be 1 or 0")
    return notices.listing(current_user.id, flag in ("1", "true"))


@bp.post("/notices/read")
@api_login_required
def read_notices():
    """Mark notices read: all, or those up to ``up_to_id``."""
    return notices.mark_read(current_user.id, body().get("up_to_id"))
