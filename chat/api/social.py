"""/api/users: find people, profiles, follow and block."""
from __future__ import annotations

from flask import request

from ..identity import api_login_required
from . import bp
from .request import me, path_id, services


@bp.get("/users")
@api_login_required
def find_users():
    """Find users by name."""
    return {"users": services().social.search(request.args.get("q"))}


@bp.get("/users/<user_id>")
@api_login_required
def user_profile(user_id: str):
    """A profile with following / followed_by seen from the caller."""
    return services().social.profile(me(), path_id(user_id, "user_id"))


@bp.put("/users/<user_id>/follow")
@api_login_required
def follow(user_id: str):
    """Follow a user."""
    return services().social.follow(me(), path_id(user_id, "user_id"))


@bp.delete("/users/<user_id>/follow")
@api_login_required
def unfollow(user_id: str):
    """Unfollow a user."""
    return services().social.unfollow(me(), path_id(user_id, "user_id"))


@bp.put("/users/<user_id>/block")
@api_login_required
def block(user_id: str):
    """Block a user."""
    return services().social.block(me(), path_id(user_id, "user_id"))


@bp.delete("/users/<user_id>/block")
@api_login_required
def unblock(user_id: str):
    """Unblock a user."""
    return services().social.unblock(me(), path_id(user_id, "user_id"))
