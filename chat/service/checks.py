"""Phase 2 of a committer batch: who may send what, and who may change which message.

One query (``MessageStore.lookup``) answers the whole batch: resent client_ids
(of messages and of changes), recipients, groups and their owners, blocks,
memberships (of senders, of the people mentioned, of those changing group
messages) and follows. When the batch replies to or changes messages, those
messages are read with it (in the same round trip on MySQL). Each message is then
checked in docs/protocol.md's order (3.4, which error comes first); the stranger
rule comes after (``stranger``). Changes are applied by the
writer (``apply_changes``), to their messages read again under locks, so that the
check of a batch can run while the batch before it is written.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..errors import ChatError
from ..store.committer_sql import MessageStore
from ..store.models import group_conv_key, private_conv_key, utcnow
from . import policy, rich
from .changes import Applied, ChangeRules, MessageState
from .outgoing import Change, Outgoing
from .settings import ServiceSettings


@dataclass(slots=True)
class Checked:
    """What a batch may write, and what the lookup found that the rest needs."""

    messages: list[Outgoing] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)  # applied by the writer
    mutual: set[tuple[int, int]] = field(default_factory=set)
    stored: dict[tuple[int, str], int] = field(default_factory=dict)
    stored_changes: dict[tuple[int, str], tuple] = field(default_factory=dict)
    targets: dict[int, tuple] = field(default_factory=dict)  # as read by the check
    members: set[tuple[int, int]] = field(default_factory=set)
    owners: dict[int, int] = field(default_factory=dict)  # group id -> owner id


class BatchChecks:
    """Checks a batch; refusals are answered through ``fail`` as they are found."""

    def __init__(self, settings: ServiceSettings, names: dict[int, str],
                 fail: Callable[[object, ChatError], None],
                 files: rich.FileResolver = rich.no_files) -> None:
        self.settings = settings
        self.names = names  # user id -> name, kept by the committer (names never change)
        self.fail = fail
        self.files = files
        self.rules = ChangeRules(settings)

    def check(self, store: MessageStore, messages: list[Outgoing],
              changes: list[Change]) -> Checked:
        """Everything the batch may write, after its resends are set apart; its changes
        are applied later, by ``apply_changes`` under their messages' locks."""
        ids = {m.reply_to for m in messages if m.reply_to is not None}
        ids |= {c.message_id for c in changes}
        private = [m for m in messages if m.recipient_id is not None]
        groups = [m for m in messages if m.group_id is not None]
        pairs = {(m.sender_id, m.recipient_id) for m in private if m.recipient_id != m.sender_id}
        found = store.lookup(
            client_keys={(m.sender_id, m.key) for m in messages if m.key is not None},
            user_ids=[u for u in {m.sender_id for m in messages}
                      | {m.recipient_id for m in private} if u not in self.names],
            block_pairs={(b, a) for a, b in pairs},
            follow_pairs=pairs | {(b, a) for a, b in pairs},
            group_ids=list({m.group_id for m in groups}),
            change_keys={(c.actor_id, c.key) for c in changes if c.key is not None},
            member_pairs={(m.group_id, m.sender_id) for m in groups}
            | {(m.group_id, uid) for m in groups for uid in m.mentions},
            # Read without locks: the writer reads the changed and quoted messages again,
            # locked, just before it writes (a conversation and its group never change).
            targets=sorted(ids),
            # A change to a group message: its actor must be a member of that group.
            changed_by={(c.message_id, c.actor_id) for c in changes})
        targets = found["targets"]
        # Someone invited to a private group knows it exists: 403, not 404 (a rare read).
        found["invited"] = store.invited({
            (m.group_id, m.sender_id) for m in groups if m.group_id in found["private"]
            and (m.group_id, m.sender_id) not in found["members"]})
        self.names.update(found["names"])
        follows = found["follows"]
        result = Checked(mutual={(a, b) for a, b in pairs
                                 if (a, b) in follows and (b, a) in follows},
                         stored=found["stored"],
                         # A resend of a stored change (rare) needs its message's id too.
                         stored_changes=store.stored_changes(set(found["stored_changes"])),
                         targets=targets, members=found["members"], owners=found["groups"])
        files = self.files(sorted({f for m in messages for f in m.attachments}))
        for message in messages:
            if (message.sender_id, message.key) in result.stored:
                continue  # answered from the store by the committer
            error = self._message_error(message, found, targets, files)
            if error is not None:
                self.fail(message, error)
            else:
                result.messages.append(message)
        result.changes = [c for c in changes if (c.actor_id, c.key) not in result.stored_changes]
        return result

    def apply_changes(self, checked: Checked, current: dict[int, tuple]) -> list[Applied]:
        """On the writer, with ``current`` the changed and quoted messages read again under
        their locks: each change applied in order to its message as it is now (refusals
        answered through ``fail``), and each reply quoting its message as it is now (an
        edit or recall that committed since the check would otherwise be missed)."""
        for message in checked.messages:
            target = current.get(message.reply_to) if message.reply_to is not None else None
            if target is not None:
                message.reply = rich.quote(target)
        changed = {c.message_id for c in checked.changes}
        states = {mid: MessageState.from_row(row) for mid, row in current.items()
                  if mid in changed}
        applied: list[Applied] = []
        now = utcnow()
        for change in checked.changes:
            try:
                each = self.rules.apply(change, states.get(change.message_id), checked.members,
                                        checked.owners, now)
            except ChatError as error:
                self.fail(change, error)
                continue
            if each is None:
                change.id = 0  # nothing changed: acked with the message's id
                each = Applied(change, states[change.message_id], None)
            applied.append(each)
        return applied

    def _message_error(self, item: Outgoing, found: dict, targets: dict[int, tuple],
                       files: dict) -> ChatError | None:
        """One message: permission, what it names, then its own fields."""
        if item.recipient_id is not None:
            item.conv_key = private_conv_key(item.sender_id, item.recipient_id)
            error = policy.private_write(
                recipient_exists=item.recipient_id in self.names,
                blocked_by_recipient=(item.recipient_id, item.sender_id) in found["blocks"])
        else:
            item.conv_key = group_conv_key(item.group_id)
            is_member = (item.group_id, item.sender_id) in found["members"]
            # A private group is hidden from non-members (docs/protocol.md, Attention): 404,
            # not 403, but for those invited to it.
            error = policy.group_write(
                group_exists=item.group_id in found["groups"]
                and (is_member or item.group_id not in found["private"]
                     or (item.group_id, item.sender_id) in found["invited"]),
                is_member=is_member)
        if error is None:
            error = rich.reference_error(item, targets, found["groups"].get(item.group_id),
                                         files)
        if error is None:
            error = rich.field_error(item, found["members"], self.settings.max_content, files)
        return error
