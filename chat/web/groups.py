"""Group pages: find, create, join and leave; settings for the owner."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import select

from ..errors import BadRequest, NotFound
from ..extensions import db
from ..runtime import services
from ..service.i18n import N_
from ..store.models import User
from .forms import form_view

bp = Blueprint("groups", __name__, url_prefix="/groups")

_GROUP_FIELDS = ("name", "description", "icon")


@bp.get("/")
@login_required
def index():
    """My groups, and a search over all groups."""
    query = request.args.get("q")
    found = services().groups.search(current_user.id, query[:64]) if query else None
    return render_template("groups/index.html",
                           mine=services().groups.list_mine(current_user.id),
                           q=query or "", found=found)


@bp.route("/new", methods=["GET", "POST"])
@login_required
@form_view(template="groups/new.html", fields=_GROUP_FIELDS)
def create():
    """Create a group; a refused form comes back filled in, with the reason."""
    form = {k: request.form.get(k, "") for k in _GROUP_FIELDS}
    if request.method == "POST":
        group = services().groups.create(current_user.id, form["name"], form["description"],
                                         form["icon"],
                                         "private" if request.form.get("private") else "public")
        flash(_("Group “%(name)s” created.", name=group["name"]), "ok")
        return redirect(url_for("pages.group_chat", group_id=group["id"]))
    return render_template("groups/new.html", form=form)


@bp.get("/<int:group_id>")
@login_required
def show(group_id: int):
    """A group: details, members (for members), and the owner's settings."""
    group = services().groups.show(current_user.id, group_id)
    members = services().groups.members(current_user.id, group_id) if group["role"] else []
    return render_template("groups/show.html", group=group, members=members)


@bp.post("/<int:group_id>/join")
@login_required
@form_view(fallback="groups.show")
def join(group_id: int):
    """Join a group."""
    services().groups.add_member(current_user.id, group_id, current_user.id)
    flash(_("You joined the group."), "ok")
    return redirect(url_for("pages.group_chat", group_id=group_id))


@bp.post("/<int:group_id>/leave")
@login_required
@form_view(fallback="groups.show")
def leave(group_id: int):
    """Leave a group."""
    services().groups.remove_member(current_user.id, group_id, current_user.id)
    flash(_("You left the group."), "ok")
    return redirect(url_for("groups.index"))


@bp.post("/<int:group_id>/edit")
@login_required
@form_view(fallback="groups.show")
def edit(group_id: int):
    """Edit name, description and icon (owner)."""
    services().groups.update(current_user.id, group_id, {
        "name": request.form.get("name"), "description": request.form.get("description"),
        "icon": request.form.get("icon")})
    flash(_("Group saved."), "ok")
    return redirect(url_for("groups.show", group_id=group_id))


def _user_by_name(name: str | None) -> User:
    """The user called ``name`` (case-insensitively); a readable 404 otherwise."""
    name = (name or "").strip()
    user = db.session.scalar(select(User).where(User.username_key == name.lower()))
    if user is None:
        raise NotFound(_("There is no user called “%(name)s”.", name=name))
    return user


@bp.post("/<int:group_id>/members")
@login_required
@form_view(fallback="groups.show")
def add_member(group_id: int):
    """Add a member by username (owner); someone who does not follow you is invited."""
    user = _user_by_name(request.form.get("username"))
    result = services().groups.add_member(current_user.id, group_id, user.id)
    if result.get("invited"):
        flash(_("%(name)s was invited.", name=user.username), "ok")
    else:
        flash(_("%(name)s was added.", name=user.username), "ok")
    return redirect(url_for("groups.show", group_id=group_id))


@bp.post("/<int:group_id>/members/<int:user_id>/remove")
@login_required
@form_view(fallback="groups.show")
def remove_member(group_id: int, user_id: int):
    """Remove a member, or withdraw an invitation (owner)."""
    invited = services().groups.invitation(group_id, user_id) is not None
    services().groups.remove_member(current_user.id, group_id, user_id)
    if invited:
        flash(_("Invitation withdrawn."), "ok")
    else:
        flash(_("Member removed."), "ok")
    return redirect(url_for("groups.show", group_id=group_id))


@bp.post("/<int:group_id>/transfer")
@login_required
@form_view(fallback="groups.show")
def transfer(group_id: int):
    """Hand the group over to another member (owner)."""
    new_owner = request.form.get("owner_id", "")
    if not new_owner.isdigit():
        raise BadRequest(N_("Choose a member."))
    services().groups.update(current_user.id, group_id, {"owner_id": int(new_owner)})
    flash(_("The group has a new owner."), "ok")
    return redirect(url_for("groups.show", group_id=group_id))


@bp.post("/<int:group_id>/delete")
@login_required
@form_view(fallback="groups.show")
def delete(group_id: int):
    """Delete the group (owner)."""
    services().groups.delete_group(current_user.id, group_id)
    flash(_("Group deleted."), "ok")
    return redirect(url_for("groups.index"))
