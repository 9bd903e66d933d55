"""Who may do what (``chat.service.policy``): each rule's answer, table by table."""
from __future__ import annotations

import pytest

from chat.errors import ChatError, Forbidden, NotFound
from chat.service import policy


@pytest.mark.parametrize("exists, blocked, expected", [
    (True, False, None),
    (True, True, (403, "this user has blocked you")),
    (False, False, (404, "no such user")),
    (False, True, (404, "no such user")),  # existence is answered first
])
def test_private_write(exists, blocked, expected):
    error = policy.private_write(recipient_exists=exists, blocked_by_recipient=blocked)
    assert (None if error is None else (error.status, error.message)) == expected


@pytest.mark.parametrize("exists, member, expected", [
    (True, True, None),
    (True, False, (403, "you are not a member of this group")),
    (False, False, (404, "no such group")),
    (False, True, (404, "no such group")),
])
def test_group_write(exists, member, expected):
    error = policy.group_write(group_exists=exists, is_member=member)
    assert (None if error is None else (error.status, error.message)) == expected


def test_the_errors_are_the_protocol_codes():
    assert isinstance(policy.private_write(recipient_exists=False, blocked_by_recipient=False),
                      NotFound)
    assert policy.group_write(group_exists=True, is_member=False).to_frame("c1") == {
        "kind": "error", "code": 403, "error": "forbidden",
        "content": "you are not a member of this group", "ref": "c1"}


def test_check_raises_the_rules_error_and_passes_none():
    policy.check(None)
    with pytest.raises(Forbidden):
        policy.check(policy.group_write(group_exists=True, is_member=False))
    with pytest.raises(ChatError) as err:
        policy.check(policy.private_write(recipient_exists=False, blocked_by_recipient=True))
    assert err.value.status == 404
