"""/api/groups: create, find, show, edit, delete; members join, leave, are added, removed."""
from __future__ import annotations

from flask import request

from ..identity import api_login_required
from ..service.validation import BadRequest
from . import bp
from .request import body, me, path_id, require, services

_EDITABLE = {"name", "description", "icon", "owner_id"}


@bp.post("/groups")
@api_login_required
def create_group():
    """Create a group owned by the caller."""
    data = body()
    require(data, "name")
    return services().groups.create(me(), data["name"], data.get("description"),
                                    data.get("icon")), 201


@bp.get("/groups")
@api_login_required
def list_groups():
    """The caller's groups; with ``?q=`` every group whose name matches."""
    if request.args.get("q") is not None:
        return {"groups": services().groups.search(me(), request.args.get("q"))}
    return {"groups": services().groups.list_mine(me())}


@bp.get("/groups/<group_id>")
@api_login_required
def show_group(group_id: str):
    """A group."""
    return services().groups.show(me(), path_id(group_id, "group_id"))


@bp.patch("/groups/<group_id>")
@api_login_required
def edit_group(group_id: str):
    """Edit name, description, icon or owner (owner only)."""
    data = body()
    unknown = set(data) - _EDITABLE
    if unknown:
        raise BadRequest(f"unknown field {sorted(unknown)[0]!r}")
    return services().groups.update(me(), path_id(group_id, "group_id"), data)


@bp.delete("/groups/<group_id>")
@api_login_required
def delete_group(group_id: str):
    """Delete a group (owner only)."""
    return services().groups.delete_group(me(), path_id(group_id, "group_id"))


@bp.get("/groups/<group_id>/members")
@api_login_required
def group_members(group_id: str):
    """The members of a group (members only)."""
    return {"members": services().groups.members(me(), path_id(group_id, "group_id"))}


@bp.put("/groups/<group_id>/members/<user_id>")
@api_login_required
def add_member(group_id: str, user_id: str):
    """Join (yourself) or add (owner): 202 when the person was invited instead."""
    result = services().groups.add_member(me(), path_id(group_id, "group_id"),
                                          path_id(user_id, "user_id"))
    return result, 202 if result.get("invited") else 200


@bp.delete("/groups/<group_id>/members/<user_id>")
@api_login_required
def remove_member(group_id: str, user_id: str):
    """Leave (yourself), remove (owner), or decline an invitation (yourself)."""
    return services().groups.remove_member(me(), path_id(group_id, "group_id"),
                                           path_id(user_id, "user_id"))
