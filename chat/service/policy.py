"""Who may do what: each rule once, whatever way the request came in.

Each function takes the facts (found one at a time through the ORM, or for a
whole batch of messages in one query by the committer) and returns the error to
answer, or ``None``. The checks run in the order docs/protocol.md 3.4 sets:
existence and permission come before the other fields, and a group is checked
before a user named in it.
"""
from __future__ import annotations

from ..errors import ChatError, Forbidden, NotFound
from .i18n import N_

NO_SUCH_USER = N_("no such user")
NO_SUCH_GROUP = N_("no such group")
BLOCKED = N_("this user has blocked you")
NOT_A_MEMBER = N_("you are not a member of this group")


def private_write(*, recipient_exists: bool, blocked_by_recipient: bool) -> ChatError | None:
    """May the sender write to this user (a message, typing, a follow)?"""
    if not recipient_exists:
        return NotFound(NO_SUCH_USER)
    if blocked_by_recipient:
        return Forbidden(BLOCKED)
    return None


def group_write(*, group_exists: bool, is_member: bool) -> ChatError | None:
    """May the sender write in (or read) this group?"""
    if not group_exists:
        return NotFound(NO_SUCH_GROUP)
    if not is_member:
        return Forbidden(NOT_A_MEMBER)
    return None


def check(error: ChatError | None) -> None:
    """Raise the rule's error, if any (for the one-at-a-time paths)."""
    if error is not None:
        raise error
