"""The one send call (``chat.service.sending``): what it refuses before the committer sees it.

The app's own ``Sending`` with its real committer, on a SQLite file.
"""
from __future__ import annotations

import pytest
from gevent.event import AsyncResult

from chat.errors import BadRequest, ChatError, ServerBusy
from tests.inprocess import add_group, add_user, follow_each_other


@pytest.fixture
def committer(services):
    """The app's committer (stopped after the test by the ``services`` fixture)."""
    return services.committer


BAD_IDS = [None, 0, -1, 2**53, "7", 7.0, True, [7], {"id": 7}]
BAD_ID_NAMES = ["none", "zero", "negative", "too-big", "string", "float", "bool", "list", "dict"]


@pytest.mark.parametrize("bad", BAD_IDS, ids=BAD_ID_NAMES)
def test_a_malformed_recipient_id_is_400_before_anything(services, runtime, committer, bad):
    runtime.draining = True  # even while draining: the frame itself is wrong first
    with pytest.raises(BadRequest) as err:
        services.sending.send(1, recipient_id=bad, fields={"content": "", "client_id": None})
    assert "recipient_id" in err.value.message
    with pytest.raises(BadRequest):
        services.sending.submit(1, recipient_id=bad, fields={"content": "hi", "client_id": None}, origin=None,
                                answer=lambda *a: pytest.fail("reply must not be called"))
    assert committer.queue.empty() and committer.stats.messages_in == 0


@pytest.mark.parametrize("bad", BAD_IDS[1:], ids=BAD_ID_NAMES[1:])
def test_a_malformed_group_id_is_400_before_anything(services, committer, bad):
    with pytest.raises(BadRequest) as err:
        services.sending.send(1, group_id=bad, fields={"content": "hi", "client_id": None})
    assert "group_id" in err.value.message
    assert committer.stats.messages_in == 0


def test_while_draining_a_well_formed_send_is_503_and_not_queued(services, runtime, committer):
    runtime.draining = True
    with pytest.raises(ServerBusy) as err:
        services.sending.send(1, recipient_id=2, fields={"content": "hi", "client_id": "c1"})
    assert err.value.status == 503 and "same client_id" in err.value.message
    with pytest.raises(ServerBusy):
        services.sending.submit(1, group_id=3, fields={"content": "hi", "client_id": "c1"}, origin=None,
                                answer=lambda *a: pytest.fail("reply must not be called"))
    assert committer.stats.messages_in == 0


def test_send_waits_for_the_ack_and_a_resend_is_not_created_again(services, committer):
    alice, bob = add_user(), add_user()
    follow_each_other(alice, bob)
    ack, created = services.sending.send(alice, recipient_id=bob, fields={"content": "hi", "client_id": "s1"})
    assert created and ack["kind"] == "ack" and ack["recipient_id"] == bob
    assert services.sending.send(alice, recipient_id=bob, fields={"content": "hi again",
                                 "client_id": "s1"}) == (ack, False)


def test_send_raises_what_the_committer_refused(services, committer):
    alice, owner = add_user(), add_user()
    group = add_group(owner)
    with pytest.raises(ChatError) as err:
        services.sending.send(alice, group_id=group, fields={"content": "", "client_id": None})
    assert err.value.status == 403  # permission before fields


def test_submit_calls_reply_once_with_the_ack(services, committer):
    alice, bob = add_user(), add_user()
    follow_each_other(alice, bob)
    calls = []
    done = AsyncResult()

    def reply(ack, err, created, batch):
        calls.append((ack, err, created))
        done.set()
    services.sending.submit(alice, recipient_id=bob, fields={"content": "hi", "client_id": "r1"},
                            origin="conn-1", answer=reply)
    done.get(timeout=10)
    committer.drain(5)
    assert len(calls) == 1
    ack, err, created = calls[0]
    assert err is None and created and ack["client_id"] == "r1"
