"""Groups: create, find, join and leave; the owner edits, removes, hands over and deletes."""
from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from ..errors import BadRequest, Conflict, Forbidden, NotFound
from ..extensions import db
from ..store.models import (Group, Invitation, Membership, Message, ReadCursor, User,
                            group_conv_key, utcnow)
from ..store.queries import like_contains
from . import policy, validation
from .events import Events
from .i18n import N_
from .lookups import follows, get_user, is_blocked, membership, visible_group
from .notices import Notices
from .shapes import iso, user_json


def member_count(group_id: int) -> int:
    """How many members the group has."""
    return db.session.scalar(select(func.count()).select_from(Membership)
                             .where(Membership.group_id == group_id))


def group_json(group: Group, viewer_id: int | None = None, count: int | None = None) -> dict:
    """A group as the API shows it, plus the viewer's role (or null)."""
    data = {"id": group.id, "name": group.name, "description": group.description,
            "icon": group.icon, "owner_id": group.owner_id,
            "member_count": member_count(group.id) if count is None else count,
            "created_at": iso(group.created_at), "visibility": group.visibility}
    if viewer_id is not None:
        mine = membership(group.id, viewer_id)
        data["role"] = mine.role if mine else None
    return data


def _last_message_id(group_id: int) -> int:
    return db.session.scalar(select(func.max(Message.id))
                             .where(Message.conv_key == group_conv_key(group_id))) or 0


def _require_owner(group: Group, actor_id: int) -> None:
    if group.owner_id != actor_id:
        raise Forbidden(N_("only the group's owner can do that"))


class Groups:
    """Group lifecycle and membership; members' processes learn of changes after commit."""

    def __init__(self, notices: Notices, events: Events) -> None:
        self.notices = notices
        self.events = events

    @staticmethod
    def _enrol(group: Group, user_id: int, role: str) -> None:
        """Add a member; only what arrives after joining counts as unread."""
        db.session.add(Membership(group_id=group.id, user_id=user_id, role=role,
                                  joined_at=utcnow()))
        db.session.merge(ReadCursor(user_id=user_id, conv_key=group_conv_key(group.id),
                                    group_id=group.id, last_read_id=_last_message_id(group.id)))

    @staticmethod
    def _unenrol(group_id: int, user_id: int) -> None:
        db.session.execute(delete(Membership).where(Membership.group_id == group_id,
                                                    Membership.user_id == user_id))
        db.session.execute(delete(ReadCursor).where(
            ReadCursor.user_id == user_id, ReadCursor.conv_key == group_conv_key(group_id)))

    def create(self, owner_id: int, name: Any, description: Any = None, icon: Any = None,
               visibility: Any = None) -> dict:
        """Create a group (public unless asked); the creator owns it and is its first member."""
        group = Group(name=validation.text_field(name, "name", validation.GROUP_NAME_MAX,
                                                 required=True).strip(),
                      description=validation.text_field(description, "description",
                                                        validation.GROUP_DESCRIPTION_MAX,
                                                        required=False),
                      icon=validation.icon_url(icon), owner_id=owner_id, created_at=utcnow(),
                      visibility=validation.visibility(visibility))
        db.session.add(group)
        db.session.flush()
        self._enrol(group, owner_id, "owner")
        self.events.membership_after_commit(owner_id, group.id, True)
        db.session.commit()
        return group_json(group, owner_id, count=1)

    @staticmethod
    def show(viewer_id: int, group_id: Any) -> dict:
        """Any user may see a public group (to find and join it); a private one only its
        members and invitees."""
        return group_json(visible_group(viewer_id, group_id), viewer_id)

    @staticmethod
    def list_mine(user_id: int) -> list[dict]:
        """The groups the user belongs to, by name, with the user's role."""
        rows = db.session.execute(
            select(Group, Membership.role).join(Membership, Membership.group_id == Group.id)
            .where(Membership.user_id == user_id).order_by(func.lower(Group.name), Group.id)).all()
        counts = dict(db.session.execute(
            select(Membership.group_id, func.count()).where(
                Membership.group_id.in_([g.id for g, _ in rows])).group_by(Membership.group_id)
        ).all()) if rows else {}
        return [{**group_json(g, count=counts.get(g.id, 0)), "role": role} for g, role in rows]

    @staticmethod
    def search(viewer_id: int, query: str | None, limit: int = 50) -> list[dict]:
        """Public groups, and private ones the viewer belongs to, whose name contains
        ``query``."""
        text = (query or "").strip()
        if len(text) > 64:
            raise BadRequest(N_("q is longer than 64 characters"))
        mine = select(Membership.group_id).where(Membership.user_id == viewer_id)
        stmt = (select(Group).where(func.lower(Group.name).like(like_contains(text.lower()),
                                                                escape="\\"),
                                    (Group.visibility == "public") | Group.id.in_(mine))
                .order_by(Group.name, Group.id).limit(limit))
        return [group_json(g, viewer_id) for g in db.session.scalars(stmt)]

    @staticmethod
    def update(actor_id: int, group_id: Any, fields: dict) -> dict:
        """Edit name, description, icon, or hand the group over (``owner_id``); owner only."""
        group = visible_group(actor_id, group_id)
        _require_owner(group, actor_id)
        if fields.get("name") is not None:
            group.name = validation.text_field(fields["name"], "name", validation.GROUP_NAME_MAX,
                                               required=True).strip()
        if fields.get("description") is not None:
            group.description = validation.text_field(
                fields["description"], "description", validation.GROUP_DESCRIPTION_MAX,
                required=False)
        if fields.get("icon") is not None:
            group.icon = validation.icon_url(fields["icon"])
        if fields.get("owner_id") is not None:
            new_owner = validation.entity_id(fields["owner_id"], "owner_id")
            if new_owner != group.owner_id:
                target = membership(group.id, new_owner)
                if target is None:
                    raise BadRequest(N_("the new owner must be a member of the group"))
                membership(group.id, group.owner_id).role = "member"
                target.role = "owner"
                group.owner_id = new_owner
        db.session.commit()
        return group_json(group, actor_id)

    def delete_group(self, actor_id: int, group_id: Any) -> dict:
        """Delete a group with its messages; every other member gets ``group_deleted``."""
        group = visible_group(actor_id, group_id)
        _require_owner(group, actor_id)
        member_ids = list(db.session.scalars(select(Membership.user_id)
                                             .where(Membership.group_id == group.id)))
        for uid in member_ids:
            self.notices.add(uid, "group_deleted", actor_id, group.id, group.name,
                             member=(group.id, False))
        self.events.membership_after_commit(actor_id, group.id, False)
        key = group_conv_key(group.id)
        db.session.execute(delete(ReadCursor).where(ReadCursor.conv_key == key))
        db.session.execute(delete(Message).where(Message.conv_key == key))
        db.session.execute(delete(Membership).where(Membership.group_id == group.id))
        db.session.execute(delete(Invitation).where(Invitation.group_id == group.id))
        db.session.delete(group)
        db.session.commit()
        return {"deleted": True, "id": group.id}

    @staticmethod
    def members(viewer_id: int, group_id: Any) -> list[dict]:
        """The group's members (owner first); only members may look."""
        group = visible_group(viewer_id, group_id)
        if membership(group.id, viewer_id) is None:
            raise Forbidden(N_("only members can see who is in the group"))
        rows = db.session.execute(
            select(User, Membership.role, Membership.joined_at)
            .join(Membership, Membership.user_id == User.id)
            .where(Membership.group_id == group.id)
            .order_by((Membership.role != "owner"), User.username_key))
        return [{**user_json(u), "role": role, "joined_at": iso(joined)}
                for u, role, joined in rows]

    def add_member(self, actor_id: int, group_id: Any, user_id: Any) -> dict:
        """Join (yourself), or add someone (owner only); idempotent.

        Nobody is put in a group without saying yes (docs/protocol.md, Attention): someone the
        owner adds who does not follow the owner is invited instead (``{"invited":
        true}``, and a ``group_invited`` notice), and joins by adding themself. A private
        group is joined only by invitation: whoever its owner adds is invited.
        """
        group = visible_group(actor_id, group_id)
        target = get_user(user_id)
        if target.id == actor_id:
            return self._join(group, actor_id)
        _require_owner(group, actor_id)
        policy.check(policy.private_write(
            recipient_exists=True, blocked_by_recipient=is_blocked(target.id, actor_id)))
        if membership(group.id, target.id) is not None:
            return group_json(group, actor_id)
        if group.visibility == "private" or not follows(target.id, group.owner_id):
            return self._invite(group, actor_id, target.id)
        self._enrol(group, target.id, "member")
        db.session.execute(delete(Invitation).where(Invitation.group_id == group.id,
                                                    Invitation.user_id == target.id))
        self.notices.add(target.id, "group_added", actor_id, group.id, group.name,
                         member=(group.id, True))
        self._commit_idempotent()
        return group_json(group, actor_id)

    def _join(self, group: Group, user_id: int) -> dict:
        """The user joins (a public group, or one they were invited to)."""
        if membership(group.id, user_id) is None:
            if group.visibility == "private" and self.invitation(group.id, user_id) is None:
                raise NotFound(policy.NO_SUCH_GROUP)  # (visible_group let only invitees by)
            self._enrol(group, user_id, "member")
            db.session.execute(delete(Invitation).where(Invitation.group_id == group.id,
                                                        Invitation.user_id == user_id))
            self.events.membership_after_commit(user_id, group.id, True)
            self._commit_idempotent()
        return group_json(group, user_id)

    def _invite(self, group: Group, actor_id: int, user_id: int) -> dict:
        """Invite (once: asking again changes nothing and makes no second notice)."""
        if db.session.get(Invitation, (group.id, user_id)) is None:
            db.session.add(Invitation(group_id=group.id, user_id=user_id, inviter_id=actor_id,
                                      created_at=utcnow()))
            self.notices.add(user_id, "group_invited", actor_id, group.id, group.name)
            self._commit_idempotent()
        return {"invited": True, "group_id": group.id, "user_id": user_id}

    @staticmethod
    def _commit_idempotent() -> None:
        try:
            db.session.commit()
        except IntegrityError:  # the same change twice at once: same end state
            db.session.rollback()

    @staticmethod
    def invitation(group_id: int, user_id: int) -> Invitation | None:
        """The user's pending invitation to the group, if any."""
        return db.session.get(Invitation, (group_id, user_id))

    def remove_member(self, actor_id: int, group_id: Any, user_id: Any) -> dict:
        """Leave (yourself) or remove someone (owner only); decline an invitation (yourself).

        Authorization comes first (docs/protocol.md 3.4): a member removing the owner is 403;
        only the owner leaving their own group hears that the owner cannot leave.
        """
        group = visible_group(actor_id, group_id)
        target = get_user(user_id)
        if target.id != actor_id:
            _require_owner(group, actor_id)
        if target.id == group.owner_id:
            raise Conflict(N_("the owner cannot leave; hand the group over or delete it"))
        if membership(group.id, target.id) is None:
            pending = self.invitation(group.id, target.id)
            if pending is None:
                raise NotFound(N_("that user is not a member of the group"))
            db.session.delete(pending)  # declined (or withdrawn by the owner)
            db.session.commit()
            return group_json(group, actor_id)
        self._unenrol(group.id, target.id)
        if target.id == actor_id:
            self.events.membership_after_commit(actor_id, group.id, False)
        else:
            self.notices.add(target.id, "group_removed", actor_id, group.id, group.name,
                             member=(group.id, False))
        db.session.commit()
        return group_json(group, actor_id)
