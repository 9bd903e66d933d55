"""Server-rendered pages: the two-pane chat, people, profiles, notices, tokens, language."""
from __future__ import annotations

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_from_directory,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_required

from ..errors import NotFound
from ..runtime import services
from ..service.i18n import N_
from ..service.prefs import change_me, me_json
from . import i18n
from .forms import back_to, form_view

bp = Blueprint("pages", __name__)
bp.app_context_processor(i18n.template_context)
bp.add_app_template_filter(i18n.time_text, "time_text")


@bp.after_app_request
def vary_on_language(response):
    """Pages speak the language of Accept-Language (or the lang cookie): caches must know."""
    if response.mimetype == "text/html":
        response.vary.add("Accept-Language")
    return response


# -- language -------------------------------------------------------------------

@bp.post("/lang")
def set_language():
    """Switch the interface language; remembered in a cookie for a year."""
    lang = request.form.get("lang", "")
    response = redirect(back_to(url_for("pages.home")))
    if lang in i18n.LANGUAGES:
        response.set_cookie(i18n.COOKIE, lang, max_age=i18n.COOKIE_MAX_AGE, samesite="Lax",
                            httponly=True, secure=request.is_secure)
    return response


# -- the chat -------------------------------------------------------------------

def _chat_page(kind: str | None = None, target: dict | None = None):
    """The two-pane chat: the conversation list, and the open conversation if any."""
    convs = services().reading.conversations(current_user.id)
    last_id = max((c["last_message"]["id"] for c in convs if c["last_message"]), default=0)
    return render_template("pages/chat.html", conversations=convs, last_id=last_id,
                           kind=kind, target=target)


@bp.get("/")
@login_required
def home():
    """The conversation list (on a wide screen next to an empty conversation pane)."""
    return _chat_page()


@bp.get("/chat/u/<int:user_id>")
@login_required
def private_chat(user_id: int):
    """The private chat with one user."""
    peer = services().social.profile(current_user.id, user_id)
    return _chat_page("private", {"id": peer["id"], "name": peer["username"],
                                  "self": peer["id"] == current_user.id})


@bp.get("/chat/g/<int:group_id>")
@login_required
def group_chat(group_id: int):
    """A group's chat (members only; others are sent to the group page to join)."""
    group = services().groups.show(current_user.id, group_id)
    if group["role"] is None:
        flash(_("Join the group to read and write in it."), "error")
        return redirect(url_for("groups.show", group_id=group_id))
    return _chat_page("group", {"id": group["id"], "name": group["name"],
                                "member_count": group["member_count"]})


# -- people ---------------------------------------------------------------------

@bp.get("/users")
@login_required
def find_users():
    """Find people by name."""
    query = request.args.get("q", "")
    return render_template("pages/users.html", q=query,
                           users=services().social.search(query[:32]))


@bp.get("/users/<int:user_id>")
@login_required
def profile(user_id: int):
    """A profile: who follows whom, and follow / unfollow / block."""
    profile_data = services().social.profile(current_user.id, user_id)
    return render_template("pages/profile.html", profile=profile_data)


_RELATION_ACTIONS = ("follow", "unfollow", "block", "unblock")
_RELATION_DONE = {"follow": N_("You follow %(name)s now."),
                  "unfollow": N_("You no longer follow %(name)s."),
                  "block": N_("%(name)s is blocked."),
                  "unblock": N_("%(name)s is no longer blocked.")}


@bp.post("/users/<int:user_id>/<action>")
@login_required
@form_view(fallback="pages.profile")
def relation(user_id: int, action: str):
    """Follow, unfollow, block or unblock from a profile page."""
    if action not in _RELATION_ACTIONS:
        raise NotFound()
    result = getattr(services().social, action)(current_user.id, user_id)
    flash(i18n.translate(_RELATION_DONE[action], name=result["username"]), "ok")
    return redirect(url_for("pages.profile", user_id=user_id))


# -- notices --------------------------------------------------------------------

@bp.get("/notices")
@login_required
def notice_list():
    """The user's notices, newest first."""
    data = services().notices.listing(current_user.id, unread_only=False)
    return render_template("pages/notices.html", notices=data["notices"],
                           unread=data["unread"])


@bp.post("/notices/read")
@login_required
def notices_read():
    """Mark every notice read."""
    services().notices.mark_read(current_user.id, None)
    flash(_("Notices marked read."), "ok")
    return redirect(url_for("pages.notice_list"))


# -- settings -------------------------------------------------------------------

@bp.route("/settings", methods=["GET", "POST"])
@login_required
def settings():
    """Privacy and notifications: presence, previews (saved here), desktop alerts (browser)."""
    if request.method == "POST":
        change_me(current_user.id, {"show_presence": "show_presence" in request.form,
                                    "push_previews": "push_previews" in request.form})
        flash(_("Settings saved."), "ok")
        return redirect(url_for("pages.settings"))
    return render_template("pages/settings.html", me=me_json(current_user.id))


@bp.get("/sw.js")
def service_worker():
    """The service worker (Web Push), from the site's root so that its scope is every page."""
    response = send_from_directory(current_app.static_folder, "sw.js",
                                   mimetype="text/javascript", max_age=0)
    response.headers["Service-Worker-Allowed"] = "/"
    return response


# -- API tokens -----------------------------------------------------------------

@bp.route("/settings/tokens", methods=["GET", "POST"])
@login_required
def tokens():
    """API tokens for scripts: create (shown once) and revoke."""
    new_secret = None
    if request.method == "POST":
        name = request.form.get("name", "").strip()[:64] or "script"
        new_secret = services().accounts.issue_credential(current_user.id, "api", name).secret
        flash(_("Token created. Copy it now: it is not shown again."), "ok")
    return render_template("pages/tokens.html",
                           tokens=services().accounts.list_tokens(current_user.id),
                           sessions=services().accounts.list_sessions(current_user.id),
                           current_session=current_user.auth_token_id,
                           new_secret=new_secret)


@bp.post("/settings/tokens/<int:token_id>/revoke")
@login_required
@form_view(fallback="pages.tokens")
def revoke_token(token_id: int):
    """Revoke one of the user's tokens, or sign out one of their sessions elsewhere."""
    services().accounts.revoke(token_id, current_user.id)
    flash(_("Revoked: it no longer works, and its open connections were closed."), "ok")
    return redirect(url_for("pages.tokens"))
