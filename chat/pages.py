"""Server-rendered pages: home (conversations), chats, people, profiles, notices, tokens."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from .errors import NotFound
from .service import accounts, groups, messages, notices, social

bp = Blueprint("pages", __name__)


@bp.get("/")
@login_required
def home():
    """The user's conversations, newest first, with unread counts."""
    return render_template("pages/home.html", conversations=messages.conversations(current_user.id))


@bp.get("/chat/u/<int:user_id>")
@login_required
def private_chat(user_id: int):
    """The private chat with one user."""
    peer = social.profile(current_user.id, user_id)
    return render_template("pages/chat.html", kind="private", target_id=peer["id"],
                           title=peer["username"], peer=peer)


@bp.get("/chat/g/<int:group_id>")
@login_required
def group_chat(group_id: int):
    """A group's chat (members only; others are sent to the group page to join)."""
    group = groups.show(current_user.id, group_id)
    if group["role"] is None:
        flash("Join the group to read and write in it.", "error")
        return redirect(url_for("groups.show", group_id=group_id))
    return render_template("pages/chat.html", kind="group", target_id=group["id"],
                           title=group["name"], group=group)


@bp.get("/users")
@login_required
def find_users():
    """Find people by name."""
    query = request.args.get("q", "")
    return render_template("pages/users.html", q=query, users=social.search(query[:32]))


@bp.get("/users/<int:user_id>")
@login_required
def profile(user_id: int):
    """A profile: who follows whom, and follow / unfollow / block."""
    return render_template("pages/profile.html", profile=social.profile(current_user.id, user_id))


_RELATION_ACTIONS = {"follow": social.follow, "unfollow": social.unfollow,
                     "block": social.block, "unblock": social.unblock}
_RELATION_DONE = {"follow": "You follow {name} now.", "unfollow": "You no longer follow {name}.",
                  "block": "{name} is blocked.", "unblock": "{name} is no longer blocked."}


@bp.post("/users/<int:user_id>/<action>")
@login_required
def relation(user_id: int, action: str):
    """Follow, unfollow, block or unblock from a profile page."""
    act = _RELATION_ACTIONS.get(action)
    if act is None:
        raise NotFound()
    result = act(current_user.id, user_id)
    flash(_RELATION_DONE[action].format(name=result["username"]), "ok")
    return redirect(url_for("pages.profile", user_id=user_id))


@bp.get("/notices")
@login_required
def notice_list():
    """The user's notices."""
    data = notices.listing(current_user.id, unread_only=False)
    actor_ids = {n["actor_id"] for n in data["notices"]}
    names = {u["id"]: u["username"] for u in
             (social.profile(current_user.id, a) for a in actor_ids)}
    return render_template("pages/notices.html", notices=data["notices"], names=names)


@bp.post("/notices/read")
@login_required
def notices_read():
    """Mark every notice read."""
    notices.mark_read(current_user.id, None)
    return redirect(url_for("pages.notice_list"))


@bp.route("/settings/tokens", methods=["GET", "POST"])
@login_required
def tokens():
    """API tokens for scripts: create (shown once) and revoke."""
    new_secret = None
    if request.method == "POST":
        name = request.form.get("name", "").strip()[:64] or "script"
        new_secret = accounts.issue_credential(current_user.id, "api", name).secret
        flash("Token created. Copy it now: it is not shown again.", "ok")
    return render_template("pages/tokens.html", tokens=accounts.list_tokens(current_user.id),
                           new_secret=new_secret)


@bp.post("/settings/tokens/<int:token_id>/revoke")
@login_required
def revoke_token(token_id: int):
    """Revoke one of the user's tokens."""
    accounts.revoke(token_id, current_user.id)
    flash("Token revoked.", "ok")
    return redirect(url_for("pages.tokens"))
