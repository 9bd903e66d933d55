"""A message on its way in (``chat.service.outgoing``): its idempotency key and defaults."""
from __future__ import annotations

from chat.service.outgoing import Outgoing


def outgoing(client_id) -> Outgoing:
    return Outgoing(1, 2, None, "hi", client_id, None, lambda *a: None)


def test_only_a_well_formed_client_id_is_a_key():
    assert outgoing("c1").key == "c1" and outgoing("x" * 64).key == "x" * 64
    assert [outgoing(v).key for v in (None, "", "x" * 65, 7, "\ud800")] == [None] * 5


def test_each_message_has_its_own_list_of_repeats_and_no_deadline_yet():
    one, two = outgoing("a"), outgoing("b")
    one.duplicates.append(two)
    assert two.duplicates == [] and one.deadline == two.deadline == 0.0
    assert (one.id, one.conv_key, one.counted, one.online) == (0, "", None, None)
