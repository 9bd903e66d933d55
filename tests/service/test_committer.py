"""The message committer's phases (``chat.service.committer``): collapse, check, write,
answer (the stranger rule, its last check, has ``test_stranger.py``).

A real ``MessageCommitter`` greenlet on a real database (a SQLite file; MariaDB
where its SQL differs), watched through ``tests.service.harness``.
"""
from __future__ import annotations

import pytest

from chat.errors import BadRequest, ChatError
from chat.service.committer import NOT_IN_TIME
from chat.service.outgoing import Outgoing
from tests.inprocess import add_group, add_user, block, follow_each_other, make_app, running
from tests.service.harness import Harness, stored
from tests.support import free_port


# -- phase 1: collapse, and resends ----------------------------------------------------------


def test_repeats_of_one_client_id_in_a_batch_are_one_message_with_one_ack(harness):
    h = harness()
    alice, bob = add_user(), add_user()
    follow_each_other(alice, bob)
    first, again, third = (h.submit(alice, to=bob, content=f"try {n}", client_id="c1")
                           for n in range(3))
    acks = [o.ack for o in (first, again, third)]
    assert acks[0] == acks[1] == acks[2]
    assert [o.get()[2] for o in (first, again, third)] == [True, False, False]  # created
    rows = stored(sender_id=alice)
    assert [(r.client_id, r.content) for r in rows] == [("c1", "try 0")]
    assert len(h.events()) == 2  # published once: to bob and to alice's other tabs


def test_the_same_client_id_from_two_senders_is_two_messages(harness):
    h = harness()
    alice, bob = add_user(), add_user()
    follow_each_other(alice, bob)
    a, b = h.submit(alice, to=bob, client_id="same"), h.submit(bob, to=alice, client_id="same")
    assert a.ack["id"] != b.ack["id"]
    assert len(stored(client_id="same")) == 2


def test_a_resent_stored_client_id_gets_the_stored_ack_and_creates_nothing(harness):
    h = harness()
    alice, bob = add_user(), add_user()
    follow_each_other(alice, bob)
    original = h.submit(alice, to=bob, content="first", client_id="c1").ack
    events = len(h.events())
    resend = h.submit(alice, to=bob, content="different text", client_id="c1")
    ack, err, created, _ = resend.get()
    assert err is None and not created
    assert ack["id"] == original["id"] and ack["created_at"] == original["created_at"]
    assert [r.content for r in stored(sender_id=alice)] == ["first"]
    assert len(h.events()) == events  # nobody is told twice


def test_a_resend_of_a_refused_message_is_checked_again(harness):
    h = harness()
    alice, bob = add_user(), add_user()
    follow_each_other(alice, bob)
    assert h.submit(alice, to=bob, content=" ", client_id="c1").error.status == 400
    assert h.submit(alice, to=bob, content="fixed", client_id="c1").ack["client_id"] == "c1"


# -- phase 2: who may send what, in docs/protocol.md's order ----------------------------------------


def test_an_unknown_recipient_or_group_is_404(harness):
    h = harness()
    alice = add_user()
    to_nobody, to_no_group = h.submit(alice, to=10**9), h.submit(alice, group=10**9)
    assert (to_nobody.error.status, to_nobody.error.code) == (404, "not_found")
    assert to_no_group.error.status == 404
    assert stored(sender_id=alice) == []


def test_a_non_member_or_a_blocked_sender_is_403(harness):
    h = harness()
    alice, bob, owner = add_user(), add_user(), add_user()
    group = add_group(owner)
    block(bob, alice)
    to_group, to_blocker = h.submit(alice, group=group), h.submit(alice, to=bob)
    assert (to_group.error.status, to_group.error.code) == (403, "forbidden")
    assert to_blocker.error.status == 403
    assert stored(sender_id=alice) == []


@pytest.mark.parametrize("content, client_id", [
    ("", None), ("   ", None), (None, None), (42, None), ("x" * 5001, None),
    ("ok", "x" * 65), ("ok", 7), ("ok", ""),
], ids=["empty", "white-space", "missing", "number", "too-long", "client-id-too-long",
        "client-id-number", "client-id-empty"])
def test_permission_comes_before_the_fields(harness, content, client_id):
    h = harness()
    alice, bob, owner = add_user(), add_user(), add_user()
    group = add_group(owner, bob)
    block(owner, alice)
    outsider = h.submit(alice, group=group, content=content, client_id=client_id)
    blocked = h.submit(alice, to=owner, content=content, client_id=client_id)
    nobody = h.submit(alice, to=10**9, content=content, client_id=client_id)
    member = h.submit(bob, group=group, content=content, client_id=client_id)
    assert outsider.error.status == 403 and blocked.error.status == 403
    assert nobody.error.status == 404
    assert isinstance(member.error, BadRequest)  # allowed to write: now the fields answer


def test_content_is_stored_exactly_as_sent(harness):
    h = harness()
    alice, bob = add_user(), add_user()
    follow_each_other(alice, bob)
    text = "  <b>hi</b> 'quoted' \\ 😀 你好\n  "
    ack = h.submit(alice, to=bob, content=text).ack
    assert stored(id=ack["id"])[0].content == text


def test_refusals_in_a_batch_do_not_hold_up_the_rest(harness):
    h = harness()
    alice, bob = add_user(), add_user()
    follow_each_other(alice, bob)
    outcomes = [h.submit(alice, to=bob, content="one"), h.submit(alice, to=10**9),
                h.submit(alice, to=bob, content=""), h.submit(alice, to=bob, content="two")]
    assert outcomes[0].ack["id"] + 1 == outcomes[3].ack["id"]
    assert [outcomes[1].error.status, outcomes[2].error.status] == [404, 400]
    assert [r.content for r in stored(sender_id=alice)] == ["one", "two"]
    assert h.stats.errors == {"not_found": 1, "bad_request": 1}


# -- phases 3 and 4: write, answer, publish ----------------------------------------------------


def test_ids_follow_submission_order_and_acks_carry_what_was_stored(harness):
    h = harness()
    alice, bob = add_user(), add_user()
    follow_each_other(alice, bob)
    group = add_group(alice, bob)
    private = h.submit(alice, to=bob, content="p", client_id="p1")
    in_group = h.submit(alice, group=group, content="g", client_id="g1")
    ack_p, ack_g = private.ack, in_group.ack
    assert ack_g["id"] == ack_p["id"] + 1
    assert ack_p == {"kind": "ack", "code": 200, "id": ack_p["id"], "client_id": "p1",
                     "created_at": ack_p["created_at"], "recipient_id": bob, "group_id": None,
                     "online": False, "content": "recipient offline"}
    assert ack_g["group_id"] == group and ack_g["content"] == "sent" and "online" not in ack_g
    row = stored(id=ack_p["id"])[0]
    assert (row.sender_id, row.recipient_id, row.group_id, row.conv_key) == (
        alice, bob, None, f"p:{min(alice, bob)}:{max(alice, bob)}")


def test_online_says_whether_the_recipient_has_a_live_connection(harness):
    h = harness()
    alice, bob = add_user(), add_user()
    follow_each_other(alice, bob)
    assert h.submit(alice, to=bob).ack["online"] is False
    h.connect(bob)
    assert h.submit(alice, to=bob).ack["online"] is True
    mine, _ = h.connect(alice)
    note = h.submit(alice, to=alice, conn=mine).ack  # a note to self: another tab?
    assert note["online"] is False
    h.connect(alice)
    assert h.submit(alice, to=alice, conn=mine).ack["online"] is True


def test_each_message_is_published_once_to_the_right_channels(harness):
    h = harness()
    alice, bob = add_user(), add_user()
    follow_each_other(alice, bob)
    group = add_group(alice, bob)
    conn, _ = h.connect(alice)
    ack = h.submit(alice, to=bob, content="p", conn=conn).ack
    h.submit(alice, to=alice, content="self", conn=conn).ack
    h.submit(alice, group=group, content="g", conn=conn).ack
    events = [(channel, exclude, frame["content"]) for _, channel, exclude, frame in h.events()]
    assert events == [(f"user:{alice}", conn.id, "p"), (f"user:{bob}", None, "p"),
                      (f"user:{alice}", conn.id, "self"),
                      (f"group:{group}", conn.id, "g")]
    frame = h.events()[0][3]
    assert frame["id"] == ack["id"] and frame["from"] == f"{alice}->{bob}"


def test_every_ack_of_a_batch_is_given_before_any_delivery(harness):
    h = harness()
    alice, bob, carol = add_user(), add_user(), add_user()
    follow_each_other(alice, bob)
    follow_each_other(carol, bob)
    outcomes = [h.submit(sender, to=bob, content=f"{n}")
                for n in range(3) for sender in (alice, carol)]
    for o in outcomes:
        o.ack
    kinds = [entry[0] for entry in h.log]
    assert kinds == ["ack"] * 6 + ["event"] * 12
    assert all(o.get()[3] for o in outcomes)  # each answered inside the delivery batch


def test_a_batch_reaches_each_connection_in_one_write(harness):
    h = harness()
    alice, bob = add_user(), add_user()
    follow_each_other(alice, bob)
    sender, sender_peer = h.connect(alice)
    other_tab, other_tab_peer = h.connect(alice)
    recipient, recipient_peer = h.connect(bob)
    outcomes = [h.submit(alice, to=bob, content=f"m{n}", client_id=f"c{n}", conn=sender)
                for n in range(5)]
    ids = [o.ack["id"] for o in outcomes]
    assert [sender_peer.json()["id"] for _ in ids] == ids  # the acks
    assert [recipient_peer.json()["content"] for _ in ids] == [f"m{n}" for n in range(5)]
    assert [other_tab_peer.json()["client_id"] for _ in ids] == [f"c{n}" for n in range(5)]
    assert sender.transport.writes == recipient.transport.writes == 1
    assert other_tab.transport.writes == 1


def test_with_the_database_down_every_message_is_503_and_the_committer_goes_on():
    dead = f"mysql+pymysql://root@127.0.0.1:{free_port()}/none"
    options = {"connect_args": {"connect_timeout": 1}}
    with running(make_app(dead, SQLALCHEMY_ENGINE_OPTIONS=options)) as app:
        h = Harness(app)
        try:
            outcomes = [h.submit(1, to=2, client_id=f"c{n}") for n in range(3)]
            assert [(o.error.status, o.error.code) for o in outcomes] == [(503, "server_busy")] * 3
            assert h.submit(1, group=3).error.status == 503  # the next batch is answered too
            assert h.events() == [] and h.counters.values == {}
        finally:
            h.close()


def test_submit_and_wait_returns_the_ack_or_raises(harness):
    h = harness()
    alice, bob = add_user(), add_user()
    follow_each_other(alice, bob)
    item = Outgoing(alice, bob, None, "hi", "w1", None, None)
    ack, created = h.committer.submit_and_wait(item)
    assert created and ack["client_id"] == "w1"
    again = Outgoing(alice, bob, None, "hi", "w1", None, None)
    assert h.committer.submit_and_wait(again) == (ack, False)
    with pytest.raises(ChatError) as err:
        h.committer.submit_and_wait(Outgoing(alice, 10**9, None, "hi", None, None, None))
    assert err.value.status == 404


def test_drain_waits_until_the_queue_is_stored(harness):
    h = harness()
    alice, bob = add_user(), add_user()
    follow_each_other(alice, bob)
    outcomes = [h.submit(alice, to=bob, content=f"{n}") for n in range(20)]
    assert h.committer.drain(timeout=10)
    assert all(o.result.ready() for o in outcomes)
    assert len(stored(sender_id=alice)) == 20


def test_a_slow_publish_does_not_hold_up_the_next_write_and_acks_keep_commit_order(harness):
    import gevent
    from gevent.event import Event

    h = harness()
    alice, bob = add_user(), add_user()
    follow_each_other(alice, bob)
    gate, first_publish = Event(), True
    publish = h.committer._answer_and_publish

    def slow(job):
        nonlocal first_publish
        if first_publish:
            first_publish = False
            gate.wait()  # a publish that takes its time (a slow socket, Redis)
        publish(job)
    h.committer._answer_and_publish = slow
    first = h.submit(alice, to=bob, content="first", client_id="s1")
    gevent.sleep(0.1)  # stored; its publish is held
    second = h.submit(alice, to=bob, content="second", client_id="s2")
    for _ in range(50):  # the writer went on: the second message is stored meanwhile
        if len(stored(sender_id=alice)) == 2:
            break
        gevent.sleep(0.02)
    assert [r.client_id for r in stored(sender_id=alice)] == ["s1", "s2"]
    assert not first.result.ready() and not second.result.ready()  # no ack overtakes
    assert not h.committer.drain(timeout=0.2)  # a graceful stop waits for the publish too
    gate.set()
    assert (first.ack["client_id"], second.ack["client_id"]) == ("s1", "s2")
    acks = [entry[1] for entry in h.log if entry[0] == "ack"]
    assert acks == [first.ack["id"], second.ack["id"]]
    delivered = [e[3]["client_id"] for e in h.events() if e[3] and e[3].get("kind") == "message"]
    assert delivered == ["s1", "s1", "s2", "s2"]  # each to bob and to alice's other tabs


# -- MariaDB: the statements themselves --------------------------------------------------------


@pytest.fixture
def mysql_app(mysql_url):
    with running(make_app(mysql_url)) as app:
        yield app


@pytest.fixture
def mysql_harness(mysql_app):
    """A committer on MariaDB, stopped after the test."""
    h = Harness(mysql_app)
    yield h
    h.close()


def test_on_mariadb_a_batch_is_one_insert(mysql_harness):
    h = mysql_harness
    owner, member = add_user(), add_user()
    group = add_group(owner, member)
    assert h.submit(owner, group=group, content="warm-up").ack  # opens the connection
    store = h.committer.store

    def inserts() -> int:
        count = int(store.rows("SHOW SESSION STATUS LIKE 'Com_insert'")[0][1])
        store.rollback()
        return count
    before = inserts()
    outcomes = [h.submit(sender, group=group, content=f"it's \\ {n} 😀")
                for n in range(10) for sender in (owner, member)]
    ids = [o.ack["id"] for o in outcomes]
    assert inserts() - before == 1
    assert ids == list(range(ids[0], ids[0] + 20))
    assert [r.content for r in stored(group_id=group)][1:] == [
        f"it's \\ {n} 😀" for n in range(10) for _ in (owner, member)]


def test_on_mariadb_client_ids_that_differ_only_by_trailing_space_are_two_keys(mysql_harness):
    h = mysql_harness
    alice, bob = add_user(), add_user()
    follow_each_other(alice, bob)
    plain = h.submit(alice, to=bob, client_id="a1").ack
    h.committer.store.rollback()
    spaced = h.submit(alice, to=bob, client_id="a1 ").ack
    upper = h.submit(alice, to=bob, client_id="A1").ack
    assert len({plain["id"], spaced["id"], upper["id"]}) == 3


def test_a_message_past_its_deadline_is_refused_unwritten(harness):
    h = harness()
    alice, bob = add_user(), add_user()
    follow_each_other(alice, bob)
    late = h.submit(alice, to=bob, content="too late", client_id="late1", deadline=1e-9)
    on_time = h.submit(alice, to=bob, content="on time", client_id="ok1")
    assert (late.error.status, late.error.message) == (503, NOT_IN_TIME)
    assert on_time.ack["client_id"] == "ok1"
    assert [r.client_id for r in stored(sender_id=alice)] == ["ok1"]  # safe to retry



def test_a_message_that_expires_while_its_checked_batch_waits_is_refused_unwritten(harness):
    """The pipeline checks batch N+1 while batch N is written: a message whose deadline
    passes in between is refused by the writer, unwritten, its stranger count given back."""
    import gevent
    from time import monotonic

    from chat.store.counters import stranger_key

    h = harness()
    alice, bob, carl = add_user(), add_user(), add_user()
    follow_each_other(alice, bob)  # alice and carl are strangers: her message is counted
    gate = h.hold_writes()
    first = h.submit(alice, to=bob, content="first", client_id="p1")
    gevent.sleep(0.1)  # batch 1 is in the writer, held
    late = h.submit(alice, to=carl, content="late", client_id="p2", deadline=monotonic() + 0.2)
    gevent.sleep(0.1)  # batch 2 is checked (and counted) and waits for the writer
    assert h.counters.get(stranger_key(alice, carl)) == 1
    gevent.sleep(0.2)  # its deadline passes
    gate.set()
    assert first.ack["client_id"] == "p1"
    assert (late.error.status, late.error.message) == (503, NOT_IN_TIME)
    assert [r.client_id for r in stored(sender_id=alice)] == ["p1"]  # safe to retry
    assert h.counters.get(stranger_key(alice, carl)) == 0


def _resend_while_the_original_is_written(h: Harness) -> None:
    """The resend is checked before the original's COMMIT (so it looks new); the writer's
    INSERT meets the duplicate key and answers it from the store: one row, one id."""
    import gevent

    alice, bob = add_user(), add_user()
    follow_each_other(alice, bob)
    gate = h.hold_writes()
    original = h.submit(alice, to=bob, content="once", client_id="dup1")
    gevent.sleep(0.1)  # the original is in the writer, not committed
    resend = h.submit(alice, to=bob, content="once", client_id="dup1")
    other = h.submit(alice, to=bob, content="another", client_id="dup2")
    gevent.sleep(0.1)  # the resend's batch is checked and waits
    gate.set()
    assert resend.ack["id"] == original.ack["id"]
    assert other.ack["client_id"] == "dup2"
    assert [r.client_id for r in stored(sender_id=alice)] == ["dup1", "dup2"]


def test_a_resend_checked_while_its_original_is_written_gets_the_originals_ack(harness):
    _resend_while_the_original_is_written(harness())


def test_on_mariadb_a_resend_checked_while_its_original_is_written_gets_its_ack(mysql_harness):
    _resend_while_the_original_is_written(mysql_harness)


def _a_change_resent_while_its_original_is_written(h: Harness) -> None:
    """The resend is checked before the original's COMMIT (so its key looks new); the
    writer, under the message's lock, finds the original and answers with its ack."""
    import gevent

    alice, bob = add_user(), add_user()
    follow_each_other(alice, bob)
    message = h.submit(alice, to=bob, content="hello", client_id="m1").ack["id"]
    gate = h.hold_writes()
    original = h.change(bob, "reaction", message, "r1", emoji="👍")
    gevent.sleep(0.1)  # the original is in the writer, not committed
    resend = h.change(bob, "reaction", message, "r1", emoji="👍")
    gevent.sleep(0.1)  # the resend is checked and waits
    gate.set()
    first, again = original.ack, resend.ack
    assert again["id"] == first["id"] != message, "the same ack: the update's id"
    assert resend.get()[2] is False  # created nothing


def test_a_change_resent_while_its_original_is_written_gets_the_originals_ack(harness):
    _a_change_resent_while_its_original_is_written(harness())


def test_on_mariadb_a_change_resent_while_its_original_is_written_gets_its_ack(mysql_harness):
    _a_change_resent_while_its_original_is_written(mysql_harness)


def _changes_checked_while_the_batch_before_changes_their_message(h: Harness) -> None:
    """Batch N+1 is checked while batch N is written: its changes and replies must still
    see the message as batch N left it (a removal of a reaction that N added removes it;
    a reply to a message that N edited quotes the new text)."""
    import gevent

    alice, bob = add_user(), add_user()
    follow_each_other(alice, bob)
    original = h.submit(alice, to=bob, content="old text", client_id="m1").ack["id"]
    gate = h.hold_writes()
    react = h.change(bob, "reaction", original, "r1", emoji="👍")
    edit = h.change(alice, "edit", original, "e1", content="new text")
    gevent.sleep(0.1)  # batch 1 (the reaction, the edit) is in the writer, held
    unreact = h.change(bob, "reaction", original, "r2", emoji="👍", on=False)
    message = h.submit(bob, to=alice, content="a message beside", client_id="a1")
    gevent.sleep(0.1)  # batch 2 is checked against the old state, and waits
    gate.set()
    assert react.ack["id"] != original and edit.ack["id"] != original  # both changed it
    removed = unreact.ack
    assert removed["message_id"] == original and removed["id"] > edit.ack["id"], \
        "the removal changed the message (an update), not nothing"
    assert message.ack["client_id"] == "a1"
    [row] = stored(id=original)
    assert row.content == "new text" and not row.reactions


def _a_reply_checked_while_its_message_is_edited(h: Harness) -> None:
    import gevent

    alice, bob = add_user(), add_user()
    follow_each_other(alice, bob)
    original = h.submit(alice, to=bob, content="old text", client_id="m1").ack["id"]
    gate = h.hold_writes()
    h.change(alice, "edit", original, "e1", content="new text")
    gevent.sleep(0.1)  # the edit is in the writer, held
    reply = h.submit(bob, to=alice, content="answer", client_id="a1", reply_to=original)
    gevent.sleep(0.1)  # the reply is checked (the old text quoted), and waits
    gate.set()
    [row] = stored(id=reply.ack["id"])
    assert (row.reply_to_id, row.reply_excerpt) == (original, "new text")


def test_changes_checked_while_the_batch_before_changes_their_message(harness):
    _changes_checked_while_the_batch_before_changes_their_message(harness())


def test_on_mariadb_changes_checked_while_the_batch_before_changes_their_message(mysql_harness):
    _changes_checked_while_the_batch_before_changes_their_message(mysql_harness)


def test_a_reply_checked_while_its_message_is_edited_quotes_the_new_text(harness):
    _a_reply_checked_while_its_message_is_edited(harness())


def test_on_mariadb_a_reply_checked_while_its_message_is_edited_quotes_the_new_text(mysql_harness):
    _a_reply_checked_while_its_message_is_edited(mysql_harness)


def _a_file_deleted_while_the_write_waits(h: Harness) -> None:
    """A clean-up that deletes a file between a message's check and its write (the write
    stalled past the clean-up's margin): the message is refused with the check's 404, the
    rest of the batch is stored, and no message is left holding a file that is gone."""
    import gevent
    from sqlalchemy import text

    from chat.extensions import db
    from chat.files.models import Upload

    alice, bob = add_user(), add_user()
    follow_each_other(alice, bob)
    kept, doomed = (Upload(owner_id=alice, name=n, size=1, mime="application/octet-stream",
                           kind="file", storage_key=n, digest="0" * 64) for n in ("k", "d"))
    db.session.add_all([kept, doomed])
    db.session.commit()
    files = {u.id: (alice, {"id": u.id, "name": u.name}) for u in (kept, doomed)}
    h.committer.checks.files = lambda ids: {i: files[i] for i in ids if i in files}
    gate = h.hold_writes()
    h.submit(alice, to=bob, content="first", client_id="f0")
    gevent.sleep(0.1)  # batch 1 is in the writer, held
    outcomes = {key: h.submit(alice, to=bob, content=key, client_id=key, attachments=ids)
                for key, ids in (("both", [kept.id, doomed.id]), ("kept", [kept.id]),
                                 ("none", []))}
    gevent.sleep(0.1)  # batch 2 is checked (its files were there) and waits
    with db.engine.begin() as conn:  # the clean-up's DELETE, in between
        conn.execute(text("DELETE FROM uploads WHERE id = :id"), {"id": doomed.id})
    gate.set()
    refused = outcomes["both"].error
    assert (refused.status, refused.message) == (404, "no such upload")
    assert outcomes["kept"].ack["client_id"] == "kept"
    assert outcomes["none"].ack["client_id"] == "none"
    assert [r.client_id for r in stored(sender_id=alice)] == ["f0", "kept", "none"]
    with db.engine.connect() as conn:
        links = conn.execute(text("SELECT upload_id FROM upload_links")).scalars().all()
        attached = conn.execute(text("SELECT attached FROM uploads WHERE id = :id"),
                                {"id": kept.id}).scalar()
    assert links == [kept.id] and attached


def test_a_file_deleted_while_its_message_waits_for_the_write_is_404(harness):
    _a_file_deleted_while_the_write_waits(harness())


def test_on_mariadb_a_file_deleted_while_its_message_waits_for_the_write_is_404(mysql_harness):
    _a_file_deleted_while_the_write_waits(mysql_harness)
