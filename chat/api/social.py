"""/api/users: find people, profiles, follow and block."""
from __future__ import annotations

from . import answers, bp
from .inputs import UserSearch
from .operation import operation
from .request import me, services


@bp.get("/users")
@operation({200: answers.UserList}, query=UserSearch)
def find_users(query: UserSearch):
    """Find users by name."""
    return {"users": services().social.search(query.q)}


@bp.get("/users/<user_id>")
@operation({200: answers.Profile})
def user_profile(user_id: int):
    """A profile with following / followed_by seen from the caller."""
    return services().social.profile(me(), user_id)


@bp.put("/users/<user_id>/follow")
@operation({200: answers.Profile})
def follow(user_id: int):
    """Follow a user."""
    return services().social.follow(me(), user_id)


@bp.delete("/users/<user_id>/follow")
@operation({200: answers.Profile})
def unfollow(user_id: int):
    """Unfollow a user."""
    return services().social.unfollow(me(), user_id)


@bp.put("/users/<user_id>/block")
@operation({200: answers.Profile})
def block(user_id: int):
    """Block a user."""
    return services().social.block(me(), user_id)


@bp.delete("/users/<user_id>/block")
@operation({200: answers.Profile})
def unblock(user_id: int):
    """Unblock a user."""
    return services().social.unblock(me(), user_id)
