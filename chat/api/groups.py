"""/api/groups: create, find, show, edit, delete; members join, leave, are added, removed."""
from __future__ import annotations

from . import answers, bp
from .inputs import GroupEdit, GroupSearch, NewGroup
from .operation import operation
from .request import me, services


@bp.post("/groups")
@operation({201: answers.Group}, body=NewGroup)
def create_group(body: NewGroup):
    """Create a group owned by the caller."""
    return services().groups.create(me(), body.name, body.description, body.icon,
                                   body.visibility), 201


@bp.get("/groups")
@operation({200: answers.GroupList}, query=GroupSearch)
def list_groups(query: GroupSearch):
    """The caller's groups; with ``?q=`` every public group (and private one of the
    caller's) whose name matches."""
    if query.q is not None:
        return {"groups": services().groups.search(me(), query.q)}
    return {"groups": services().groups.list_mine(me())}


@bp.get("/groups/<group_id>")
@operation({200: answers.Group})
def show_group(group_id: int):
    """A group."""
    return services().groups.show(me(), group_id)


@bp.patch("/groups/<group_id>")
@operation({200: answers.Group}, body=GroupEdit)
def edit_group(group_id: int, body: GroupEdit):
    """Edit name, description, icon or owner (owner only)."""
    return services().groups.update(me(), group_id, body.model_dump())


@bp.delete("/groups/<group_id>")
@operation({200: answers.Deleted})
def delete_group(group_id: int):
    """Delete a group (owner only)."""
    return services().groups.delete_group(me(), group_id)


@bp.get("/groups/<group_id>/members")
@operation({200: answers.MemberList})
def group_members(group_id: int):
    """The members of a group (members only)."""
    return {"members": services().groups.members(me(), group_id)}


@bp.put("/groups/<group_id>/members/<user_id>")
@operation({200: answers.Group, 202: answers.Invited})
def add_member(group_id: int, user_id: int):
    """Join (yourself) or add (owner): 202 when the person was invited instead."""
    result = services().groups.add_member(me(), group_id, user_id)
    return result, 202 if result.get("invited") else 200


@bp.delete("/groups/<group_id>/members/<user_id>")
@operation({200: answers.Group})
def remove_member(group_id: int, user_id: int):
    """Leave (yourself), remove (owner), or decline an invitation (yourself)."""
    return services().groups.remove_member(me(), group_id, user_id)
