"""The committer's SQL (``chat.store.committer_sql``) on SQLite and on MariaDB alike:
ids in commit order, the hand-rendered INSERT, the one-round-trip lookup."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest

from chat.extensions import db
from chat.store.committer_sql import MessageStore, as_datetime, db_time
from chat.store.committer_writes import NewId
from chat.store.models import group_conv_key, private_conv_key, utcnow
from tests.inprocess import add_group, add_user, block, follow, username


@pytest.fixture
def store(in_app):
    """The committer's bare connection, and a second one (another process) if asked."""
    opened: list[MessageStore] = []

    def _open(reads_only: bool = False) -> MessageStore:
        opened.append(MessageStore(db.engine, reads_only=reads_only))
        return opened[-1]
    yield _open
    for s in opened:
        s.rollback()
        s.discard()  # as the committer does: its connections never go back to the pool


def write(store: MessageStore, *messages: tuple) -> list[int]:
    """Store (sender, recipient, group, content, client_id, when) messages; their ids."""
    first = store.allocate_ids(len(messages))
    rows = []
    for offset, (sender, to, group, content, cid, when) in enumerate(messages):
        key = group_conv_key(group) if group else private_conv_key(sender, to)
        rows.append((first + offset, key, sender, to, group, content, cid, db_time(when)))
    store.insert_messages(rows)
    store.commit()
    return [r[0] for r in rows]


def test_ids_are_consecutive_and_follow_commit_order(store):
    one, two = store(), store()
    first = one.allocate_ids(3)
    assert one.allocate_ids(2) == first + 3
    one.commit()
    assert two.allocate_ids(1) == first + 5  # the next process continues after the commit
    two.rollback()
    assert one.allocate_ids(1) == first + 5  # an allocation rolled back was never used


@pytest.mark.parametrize("content", [
    "plain", "it's", 'say "hi"', "back\\slash\\", "\\'; DROP TABLE messages; --",
    "emoji 😀 and 你好", "new\nline\ttab", "nul \x00 inside", "%s %(x)s ?", "x" * 70000,
], ids=["plain", "quote", "double-quote", "backslash", "injection", "emoji", "control",
        "nul", "placeholders", "long"])
def test_content_round_trips_exactly(store, content):
    s = store()
    alice, bob = add_user(), add_user()
    when = utcnow()
    [mid] = write(s, (alice, bob, None, content, f"c-{uuid.uuid4().hex[:8]}", when))
    [row] = s.rows("SELECT content, created_at FROM messages WHERE id = %s", [mid])
    assert row[0] == content
    assert as_datetime(row[1]) == when  # microseconds kept
    s.rollback()


def test_messages_by_id_returns_what_an_ack_needs(store):
    s = store()
    owner = add_user()
    gid = add_group(owner)
    when = utcnow()
    ids = write(s, (owner, None, gid, "g", "k1", when), (owner, owner, None, "self", None, when))
    rows = {r[0]: r for r in s.messages_by_id(ids + [10**12])}
    assert set(rows) == set(ids)
    assert rows[ids[0]][1:5] == (owner, None, gid, "k1")
    assert rows[ids[1]][1:5] == (owner, owner, None, None)
    s.rollback()


def test_a_second_message_under_one_client_id_is_refused(store):
    s = store()
    alice, bob = add_user(), add_user()
    write(s, (alice, bob, None, "first", "dup", utcnow()))
    first = s.allocate_ids(1)
    with pytest.raises(s.IntegrityError):
        s.insert_messages([(first, private_conv_key(alice, bob), alice, bob, None, "again",
                            "dup", db_time(utcnow()))])
    s.rollback()
    write(s, (bob, alice, None, "same key, other sender", "dup", utcnow()))


def _update_row(update_id: int, key: str, message_id: int, actor: int, cid: str) -> tuple:
    return (update_id, key, message_id, "reaction", actor, cid, '{"emoji": "x"}',
            db_time(utcnow()))


def _stored_ids(table: str, ids: list[int]) -> list[int]:
    from sqlalchemy import text
    db.session.remove()
    marks = ",".join(str(int(i)) for i in ids)
    return list(db.session.execute(text(f"SELECT id FROM {table} WHERE id IN ({marks}) "
                                        "ORDER BY id")).scalars())


@pytest.mark.parametrize("keep_at_most", [1_000_000, 10], ids=["together", "in-parts"])
def test_writes_kept_for_one_round_trip_all_land(store, keep_at_most):
    """What a batch writes after its ids (messages, updates, states) goes out together
    on MariaDB (in parts past a size, so a query stays under the server's packet limit);
    text that looks like SQL or like placeholders stays text."""
    s = store()
    s.KEEP_AT_MOST = keep_at_most
    alice, bob = add_user(), add_user()
    key = private_conv_key(alice, bob)
    first = s.allocate_ids(4)
    tricky = ["one; DELETE FROM messages; --", "%s %(x)s '; ?"]
    queries = []
    assert s.multi_statements == (s.dialect == "mysql")
    if s.multi_statements:  # count what reaches the server: one query, or one per part
        conn = s.raw.driver_connection
        send = conn._execute_command
        conn._execute_command = lambda command, sql: (queries.append(sql), send(command, sql))[1]
    with s.in_one_round_trip():
        s.insert_messages([(first + n, key, alice, bob, None, text, f"k{n}", db_time(utcnow()))
                           for n, text in enumerate(tricky)])
        s.insert_updates([_update_row(first + 2, key, first, bob, "u1"),
                          _update_row(first + 3, key, first + 1, bob, "u2")])
        s.save_states([(first, "edited; --", None, False, None, None, None, False)])
        s.commit_with_writes()
    if s.multi_statements:  # in parts: the two update rows are two statements, too
        assert len(queries) == (1 if keep_at_most > 100 else 4)  # the COMMIT rides along
        del conn._execute_command
    assert _stored_ids("messages", [first, first + 1]) == [first, first + 1]
    assert _stored_ids("message_updates", [first + 2, first + 3]) == [first + 2, first + 3]
    by_id = {r[0]: r[5] for r in s.targets([first, first + 1], lock=False).values()}
    assert by_id == {first: "edited; --", first + 1: tricky[1]}
    s.rollback()


def test_a_duplicate_key_in_one_round_trip_raises_and_nothing_after_it_runs(store):
    s = store()
    alice, bob = add_user(), add_user()
    key = private_conv_key(alice, bob)
    write(s, (alice, bob, None, "first", "dup", utcnow()))
    first = s.allocate_ids(2)
    with pytest.raises(s.IntegrityError):
        with s.in_one_round_trip():
            s.insert_messages([(first, key, alice, bob, None, "again", "dup",
                                db_time(utcnow()))])
            s.insert_updates([_update_row(first + 1, key, first, bob, "u2")])
            s.commit_with_writes()  # after the failing INSERT: never run
    s.rollback()
    assert _stored_ids("messages", [first]) == []
    assert _stored_ids("message_updates", [first + 1]) == []
    write(s, (alice, bob, None, "the connection still works", "next", utcnow()))


def test_the_writers_reads_before_its_changes_come_back_together(store):
    """The changed messages (locked), the quoted ones and the change keys already used:
    one round trip on MariaDB, the same answers as three reads."""
    s, other = store(), store()
    alice, bob = add_user(), add_user()
    key = private_conv_key(alice, bob)
    changed, quoted, plain = write(s, *[(alice, bob, None, f"m{n}", f"t{n}-{key}", utcnow())
                                        for n in range(3)])
    update_id = s.allocate_ids(1)
    s.insert_updates([_update_row(update_id, key, changed, bob, f"r-{key}")])
    s.commit()
    keys = {(bob, f"r-{key}"), (alice, f"r-{key}"), (bob, "never")}
    queries = []
    if s.multi_statements:
        conn = s.raw.driver_connection
        send = conn._execute_command
        conn._execute_command = lambda command, sql: (queries.append(sql), send(command, sql))[1]
    current, used = s.current_targets([changed], [quoted], keys)
    if s.multi_statements:
        del conn._execute_command
        assert len(queries) == 1
    assert sorted(current) == [changed, quoted]
    assert current[quoted] == s.targets([quoted], lock=False)[quoted]
    assert used == s.stored_changes(keys) == {(bob, f"r-{key}"): (update_id, changed)}
    assert s.current_targets([], [plain], set()) == (s.targets([plain], lock=False), {})
    if s.dialect == "mysql":  # the changed message's row stays locked until the COMMIT
        other.run("SET SESSION innodb_lock_wait_timeout = 1")
        with pytest.raises(other.Error):
            other.rows("SELECT id FROM messages WHERE id = %s FOR UPDATE", [changed])
        other.rollback()
    s.rollback()


@pytest.mark.parametrize("db_app", ["mariadb"], indirect=True)
@pytest.mark.parametrize("keep_at_most", [1_000_000, 10], ids=["together", "in-parts"])
def test_ids_allocated_by_the_write_query_follow_commit_order(store, keep_at_most):
    """On MariaDB the write's own query allocates its ids (``NewId``): every row gets its
    id, the next writer continues after the COMMIT, and a write that fails gives its ids
    back (the sequence row's change is rolled back with it)."""
    one, two = store(), store()
    one.KEEP_AT_MOST = keep_at_most
    alice, bob = add_user(), add_user()
    key = private_conv_key(alice, bob)
    assert one.ids_in_query
    with one.in_one_round_trip():
        one.allocate_ids_in_query(3)
        one.insert_messages([(NewId(n), key, alice, bob, None, f"m{n}", f"q{n}-{key}",
                              db_time(utcnow())) for n in range(2)])
        one.insert_updates([_update_row(NewId(2), key, NewId(0), bob, f"u-{key}")])
        one.insert_mentions([(bob, key, NewId(1), alice)])
        one.commit_with_writes()
    first = one.first_id
    assert _stored_ids("messages", [first, first + 1]) == [first, first + 1]
    assert _stored_ids("message_updates", [first + 2]) == [first + 2]
    assert two.rows("SELECT message_id FROM mentions WHERE user_id = %s", [bob]) == \
        ((first + 1,),)
    with pytest.raises(two.IntegrityError), two.in_one_round_trip():
        two.allocate_ids_in_query(1)
        two.insert_messages([(NewId(0), key, alice, bob, None, "again", f"q0-{key}",
                              db_time(utcnow()))])
        two.commit_with_writes()
    two.rollback()
    assert two.allocate_ids(1) == first + 3  # the failed write's id is handed out again
    two.rollback()


@pytest.mark.parametrize("db_app", ["mariadb"], indirect=True)
def test_a_reads_only_store_leaves_no_transaction_open_after_a_read(store):
    """The checker's connection: each read is a transaction of its own, so nothing stays
    open between batches (no ROLLBACK needed), and it still sees each new COMMIT."""
    reader, writer = store(reads_only=True), store()
    alice, bob = add_user(), add_user()
    assert reader.stored_client_ids({(alice, "r1")}) == {}
    assert reader.rows("SELECT @@in_transaction")[0][0] == 0
    [mid] = write(writer, (alice, bob, None, "x", "r1", utcnow()))
    assert reader.stored_client_ids({(alice, "r1")}) == {(alice, "r1"): mid}
    writer.stored_client_ids({(alice, "r1")})  # the writer's kind: open until it ends
    assert writer.rows("SELECT @@in_transaction")[0][0] == 1


def test_lookup_finds_everything_a_batch_needs_in_one_query(store):
    s = store()
    alice, bob, carol = add_user(), add_user(), add_user()
    gid = add_group(alice, bob)
    block(carol, alice)
    follow(alice, bob)
    follow(carol, bob)  # asked about (alice, carol) and (carol, bob) pairs only below
    [mid] = write(s, (alice, bob, None, "x", "k1", utcnow()))
    update_id = s.allocate_ids(1)
    s.insert_updates([_update_row(update_id, private_conv_key(alice, bob), mid, bob, "r1")])
    s.commit()
    found = s.lookup(client_keys={(alice, "k1"), (alice, "k2"), (bob, "k1")},
                     user_ids=[alice, bob, 10**9],
                     block_pairs={(carol, alice), (bob, alice)},
                     follow_pairs={(alice, bob), (bob, alice), (carol, alice)},
                     group_ids=[gid, 10**9],
                     member_pairs={(gid, alice), (gid, carol)},
                     change_keys={(bob, "r1"), (alice, "r1"), (bob, "k1")})
    assert found == {"stored": {(alice, "k1"): mid},
                     "names": {alice: username(alice), bob: username(bob)},
                     "blocks": {(carol, alice)}, "follows": {(alice, bob)},
                     "groups": {gid: alice}, "members": {(gid, alice)}, "private": set(),
                     "stored_changes": {(bob, "r1"): update_id}, "targets": {}}
    assert s.stored_changes({(bob, "r1")}) == {(bob, "r1"): (update_id, mid)}
    s.rollback()


def test_lookup_reads_the_targets_and_the_changers_groups_with_it(store):
    """The messages a batch replies to or changes come back with the lookup (one round
    trip on MariaDB), and a change's actor counts as a member of that message's group
    only."""
    s = store()
    alice, bob, carol = add_user(), add_user(), add_user()
    gid, other = add_group(alice, bob), add_group(carol)
    [in_group, private] = write(s, (alice, None, gid, "g", f"lk-{gid}", utcnow()),
                                (alice, bob, None, "p", f"lk-{gid}-p", utcnow()))
    queries = []
    if s.multi_statements:
        conn = s.raw.driver_connection
        send = conn._execute_command
        conn._execute_command = lambda command, sql: (queries.append(sql), send(command, sql))[1]
    found = s.lookup(client_keys=set(), user_ids=[], block_pairs=set(), follow_pairs=set(),
                     group_ids=[], member_pairs=set(), targets=[in_group, private, 10**12],
                     changed_by={(in_group, bob), (in_group, carol), (private, bob)})
    if s.multi_statements:
        del conn._execute_command
        assert len(queries) == 1
    assert sorted(found["targets"]) == [in_group, private]
    assert found["targets"][in_group] == s.targets([in_group], lock=False)[in_group]
    assert found["groups"] == {gid: alice} and other not in found["groups"]
    assert found["members"] == {(gid, bob)}  # carol is a member of her own group only
    s.rollback()


def test_lookup_keeps_to_the_pairs_asked_about(store):
    s = store()
    a, b, c, d = (add_user() for _ in range(4))
    follow(a, d)  # a and d each appear in a pair asked about, but not together
    found = s.lookup(client_keys=set(), user_ids=[], block_pairs=set(),
                     follow_pairs={(a, b), (c, d)}, group_ids=[], member_pairs=set())
    assert found["follows"] == set()
    assert s.lookup(client_keys=set(), user_ids=[], block_pairs=set(), follow_pairs=set(),
                    group_ids=[], member_pairs=set())["names"] == {}
    s.rollback()


def test_client_ids_are_compared_exactly(store):
    s = store()
    alice, bob = add_user(), add_user()
    [plain] = write(s, (alice, bob, None, "x", "a1", utcnow()))
    [spaced] = write(s, (alice, bob, None, "y", "a1 ", utcnow()))  # MySQL's PAD SPACE trap
    [upper] = write(s, (alice, bob, None, "z", "A1", utcnow()))
    assert s.stored_client_ids({(alice, "a1"), (alice, "a1 "), (alice, "A1"),
                                (alice, "ａ1")}) == {(alice, "a1"): plain, (alice, "a1 "): spaced,
                                                     (alice, "A1"): upper}
    s.rollback()


def test_who_wrote_when(store):
    s = store()
    alice, bob = add_user(), add_user()
    now = utcnow()
    key = private_conv_key(alice, bob)
    write(s, (alice, bob, None, "old", None, now - timedelta(days=100)),
          (alice, bob, None, "new", None, now - timedelta(days=1)),
          (alice, bob, None, "newer", None, now))
    since = now - timedelta(days=90)
    assert s.count_sent(key, alice, since) == 2
    assert s.count_sent(key, bob, since) == 0
    assert s.senders_since([key], [alice, bob], since) == {(key, alice)}
    assert s.senders_since([key], [bob], since) == set()
    assert s.count_sent(key, alice, now) == 1  # "since" includes that very moment
    s.rollback()


def test_counts_sent_answers_each_pair_asked_about(store):
    s = store()
    alice, bob, carol = add_user(), add_user(), add_user()
    now = utcnow()
    ab, ac = private_conv_key(alice, bob), private_conv_key(alice, carol)
    write(s, (alice, bob, None, "1", None, now), (alice, bob, None, "2", None, now),
          (bob, alice, None, "3", None, now), (carol, alice, None, "4", None, now),
          (alice, bob, None, "old", None, now - timedelta(days=100)))
    since = now - timedelta(days=90)
    # (ac, bob) is in the cross product of the keys and senders, but was not asked about.
    assert s.counts_sent({(ab, alice), (ab, bob), (ac, carol)}, since) == {
        (ab, alice): 2, (ab, bob): 1, (ac, carol): 1}
    assert s.counts_sent(set(), since) == {}
    s.rollback()


def test_insert_cursors_leaves_existing_ones_alone(store):
    s = store()
    alice, bob = add_user(), add_user()
    key = private_conv_key(alice, bob)
    s.insert_cursors([(alice, key, bob), (bob, key, alice)])
    s.commit()
    s.run("UPDATE read_cursors SET last_read_id = 7 WHERE user_id = %s AND conv_key = %s",
          [alice, key])
    s.commit()
    s.insert_cursors([(alice, key, bob), (alice, key, bob)])
    s.commit()
    rows = s.rows("SELECT user_id, peer_id, last_read_id FROM read_cursors WHERE conv_key = %s "
                  "ORDER BY user_id", [key])
    assert sorted(tuple(r) for r in rows) == sorted([(alice, bob, 7), (bob, alice, 0)])
    s.rollback()


def test_db_time_sorts_and_reads_back_in_every_year():
    moments = [datetime(50, 1, 2, 3, 4, 5, 6), datetime(999, 12, 31), datetime(2026, 11, 27, 10)]
    texts = [db_time(m) for m in moments]
    assert texts[0] == "0050-01-02 03:04:05.000006"
    assert texts == sorted(texts)
    assert [as_datetime(t) for t in texts] == moments
    assert as_datetime(moments[2]) is moments[2]


def test_lookup_of_a_full_batch_of_pairs_finds_exactly_the_stored_ones(store):
    # A batch of 500 messages between 500 users asks about hundreds of follow and
    # membership pairs at once (on MySQL: a derived table of the pairs, joined on the key).
    s = store()
    users = [add_user() for _ in range(40)]
    gid = add_group(users[0], *users[1:20])
    asked, stored = set(), set()
    for i, a in enumerate(users):
        for b in users[i + 1:i + 8]:
            asked |= {(a, b), (b, a)}
            if (a + b) % 3 == 0:
                follow(a, b)
                stored.add((a, b))
    found = s.lookup(client_keys=set(), user_ids=[], block_pairs=set(), follow_pairs=asked,
                     group_ids=[], member_pairs={(gid, u) for u in users})
    assert len(asked) > 400 and stored
    assert found["follows"] == stored
    assert found["members"] == {(gid, u) for u in users[:20]}
    s.rollback()
