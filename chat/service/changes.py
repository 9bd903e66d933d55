"""Edits, recalls and reactions (docs/protocol.md 3.9): checked and applied in the batch.

Each change is checked in the protocol's order: the message exists for the
actor (404: existence is not revealed to someone who cannot see it), the actor
may change it (403), the change's own fields (400), then the per-message limit
(409 for a 21st emoji). Changes are applied one after another to the message's
state as the batch goes (two reactions to one message in one batch both count);
one that changes nothing is a success with no update.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import orjson

from ..errors import Conflict, Forbidden, NotFound
from ..store.committer_sql import as_datetime
from . import validation
from .emoji import reaction_emoji
from .outgoing import Change
from .rich import EVERYONE, excerpt
from .settings import ServiceSettings
from .shapes import iso, reactions_list
from .i18n import N_

EDIT, RECALL, REACTION = "edit", "recall", "reaction"
MAX_EMOJI = 20


@dataclass(slots=True)
class MessageState:
    """A message as the batch's changes leave it."""

    id: int
    conv_key: str
    sender_id: int
    recipient_id: int | None
    group_id: int | None
    content: str
    created_at: datetime
    recalled: bool
    reactions: list  # [[emoji, [user ids]], ...]
    attachments: str | None
    mentions: str | None
    mention_all: bool
    edited_at: datetime | None
    changed: bool = False
    edited: bool = False
    recalled_now: bool = False
    forgotten_mentions: list = field(default_factory=list)  # deleted with a recall

    @classmethod
    def from_row(cls, row: tuple) -> "MessageState":
        """From ``MessageStore.targets``' row."""
        (mid, conv_key, sender, recipient, group, content, created, recalled, reactions,
         attachments, mentions, mention_all, edited) = row
        return cls(int(mid), conv_key, int(sender), recipient, group, content,
                   as_datetime(created), bool(recalled),
                   orjson.loads(reactions) if reactions else [], attachments, mentions,
                   bool(mention_all), as_datetime(edited) if edited else None)

    def stored(self) -> tuple:
        """The row's new state, in ``MessageStore.save_states`` order."""
        return (self.id, self.content, self.edited_at, self.recalled,
                orjson.dumps(self.reactions).decode() if self.reactions else None,
                self.attachments, self.mentions, self.mention_all)

    def mention_keys(self) -> list[tuple]:
        """(user, conv_key, message_id) of the mentions it made (forgotten on recall)."""
        users = orjson.loads(self.mentions) if self.mentions else []
        if self.mention_all:
            users.append(EVERYONE)
        return [(uid, self.conv_key, self.id) for uid in users]


@dataclass(slots=True)
class Applied:
    """A change, checked: its update's payload (None when it changed nothing, and then it
    is acked with the message's id and makes no update)."""

    change: Change
    state: MessageState
    payload: dict | None = None


def can_see(state: MessageState, actor_id: int, members: set[tuple[int, int]]) -> bool:
    """Whether the actor may see the message: one of the pair, or a member of the group now."""
    if state.group_id is not None:
        return (state.group_id, actor_id) in members
    return actor_id in (state.sender_id, state.recipient_id)


class ChangeRules:
    """Decides and applies one change at a time."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings

    def apply(self, change: Change, state: MessageState | None, members: set[tuple[int, int]],
              owners: dict[int, int], now: datetime) -> Applied | None:
        """The applied change, or None when it changed nothing; raises ChatError."""
        if state is None or not can_see(state, change.actor_id, members):
            raise NotFound(N_("no such message"))
        if change.kind == EDIT:
            return self._edit(change, state, now)
        if change.kind == RECALL:
            return self._recall(change, state, owners, now)
        return self._react(change, state)

    def _within(self, window: int, state: MessageState, now: datetime) -> bool:
        return window <= 0 or now - state.created_at <= timedelta(seconds=window)

    def _edit(self, change: Change, state: MessageState, now: datetime) -> Applied | None:
        if change.actor_id != state.sender_id:
            raise Forbidden(N_("only the sender can edit a message"))
        if state.recalled:
            raise Forbidden(N_("a message taken back cannot be edited"))
        if not self._within(self.settings.edit_window, state, now):
            raise Forbidden(N_("it is too late to edit this message"))
        content = validation.content(change.content, self.settings.max_content,
                                     may_be_empty=bool(state.attachments))
        validation.client_id(change.client_id)
        if content == state.content:
            return None
        state.content, state.edited_at = content, now
        state.changed = state.edited = True
        return Applied(change, state, {"content": content, "edited_at": iso(now)})

    def _recall(self, change: Change, state: MessageState, owners: dict[int, int],
                now: datetime) -> Applied | None:
        own = (change.actor_id == state.sender_id
               and self._within(self.settings.recall_window, state, now))
        owner = state.group_id is not None and owners.get(state.group_id) == change.actor_id
        if not (own or owner):
            if change.actor_id == state.sender_id:
                raise Forbidden(N_("it is too late to take this message back"))
            raise Forbidden(N_("only the sender or the group's owner can take a message back"))
        validation.client_id(change.client_id)
        if state.recalled:
            return None  # final, and recalling again is a success that changes nothing
        state.recalled, state.recalled_now, state.changed = True, True, True
        # Taken back: the row keeps nothing of what was said (text, files, mentions).
        state.forgotten_mentions = state.mention_keys()
        state.content, state.reactions, state.attachments = "", [], None
        state.mentions, state.mention_all = None, False
        return Applied(change, state, {})

    def _react(self, change: Change, state: MessageState) -> Applied | None:
        if state.recalled:
            raise Forbidden(N_("a message taken back cannot be reacted to"))
        emoji = reaction_emoji(change.emoji)
        on = True if change.on is None else validation.flag(change.on, "on")
        validation.client_id(change.client_id)
        entry = next((e for e in state.reactions if e[0] == emoji), None)
        user = change.actor_id
        if on:
            if entry is not None and user in entry[1]:
                return None
            if entry is None:
                if len(state.reactions) >= MAX_EMOJI:
                    raise Conflict(N_("a message has at most 20 different emoji"))
                entry = [emoji, []]
                state.reactions.append(entry)
            entry[1].append(user)
        else:
            if entry is None or user not in entry[1]:
                return None
            entry[1].remove(user)
            if not entry[1]:
                state.reactions.remove(entry)
        state.changed = True
        return Applied(change, state, {"emoji": emoji, "on": on,
                                       "reactions": reactions_list(state.reactions)})


def reply_refresh(state: MessageState) -> tuple:
    """What the replies to an edited or recalled message now quote (``refresh_replies``)."""
    return (state.id, "" if state.recalled else excerpt(state.content), state.recalled)
