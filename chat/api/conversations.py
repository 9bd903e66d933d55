"""/api/conversations/...: the caller's own settings of a conversation (mute, pin, archive)."""
from __future__ import annotations

from . import answers, bp
from .inputs import ConversationEdit
from .operation import operation
from .request import me, services


@bp.patch("/conversations/private/<user_id>")
@operation({200: answers.PrivateConversation}, body=ConversationEdit)
def edit_private_conversation(user_id: int, body: ConversationEdit):
    """Mute, pin or archive the private chat with a user (for the caller only)."""
    return services().prefs.change(me(), user_id, False, body.model_dump())


@bp.patch("/conversations/group/<group_id>")
@operation({200: answers.GroupConversation}, body=ConversationEdit)
def edit_group_conversation(group_id: int, body: ConversationEdit):
    """Mute, pin or archive a group's chat (members only; for the caller only)."""
    return services().prefs.change(me(), group_id, True, body.model_dump())
