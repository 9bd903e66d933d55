"""The message committer's SQL, on one bare DB-API connection.

SQLAlchemy Core costs several hundred microseconds of CPU per statement here
(cache keys, parameter and result processing), more than MariaDB takes to answer;
the committer runs about ten statements per batch, in the hottest loop of the
server. So this module writes them by hand, once for MySQL/MariaDB (PyMySQL,
``%s``) and SQLite (``?``). On MySQL, pairs of (sender, client_id) are looked up
as a row list, ``(a, b) IN ((..), (..))``: a range read of one index entry per
pair (two plain ``IN`` lists would make MariaDB probe every combination of their
values); pairs that are a table's primary key (follows, memberships) as a derived
table joined on that key (see ``lookup``).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Sequence

from .committer_writes import MessageWrites, NewId, new_id_literal
from .driver import allow_multi_statements


def as_datetime(value: Any) -> datetime:
    """A DATETIME as the driver returned it (SQLite gives text) as a naive datetime."""
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def db_time(moment: datetime) -> str:
    """A naive UTC datetime as both databases store it (microseconds kept)."""
    # isoformat pads the year to four digits; strftime("%Y") wrote year 50 as "50-...",
    # which MariaDB reads as 2050 and SQLite sorts after "2026-...".
    return moment.isoformat(" ", "microseconds")


def _by_id(rows: Sequence[tuple]) -> dict[int, tuple]:
    return {int(r[0]): r for r in rows}


def _changes_found(rows: Sequence[tuple],
                   keys: set[tuple[int, str]]) -> dict[tuple[int, str], tuple]:
    found = {}
    for actor, cid, update_id, message_id in rows:
        if (int(actor), cid) in keys:
            found[(int(actor), cid)] = (int(update_id), int(message_id))
    return found


ROW_LOCK_WAIT = 5  # seconds a committer's statement waits for a row lock (MySQL)


class MessageStore(MessageWrites):
    """One DB-API connection of the pool, used by the committer greenlet only."""

    def __init__(self, engine, reads_only: bool = False) -> None:
        self.raw = engine.raw_connection()  # pinged first when it sat idle (store.pool)
        name = engine.dialect.name
        self.dialect = "mysql" if name in ("mysql", "mariadb") else name
        if self.dialect not in ("mysql", "sqlite"):
            raise NotImplementedError(f"no message store for {name}")
        self.mark = "%s" if self.dialect == "mysql" else "?"
        self.multi_statements = False
        if self.dialect == "mysql":
            # Read committed: no gap locks, so locking the rows a batch changes (even ids
            # that do not exist) never holds up another process's INSERT of new messages.
            self.run("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
            # The writer may wait for a message's row lock while it holds the sequence row
            # that every process's writer waits for: a long transaction on that message
            # (a group's deletion) fails this batch after 5 s, not every process's.
            self.run(f"SET SESSION innodb_lock_wait_timeout = {ROW_LOCK_WAIT}")
            self.multi_statements = allow_multi_statements(self.raw.driver_connection)
            # The statements name a batch's ids ``@chat_first + k`` until the query runs.
            self.raw.driver_connection.encoders[NewId] = new_id_literal
        # A connection that only reads (the checker's) runs each statement in a
        # transaction of its own, as READ COMMITTED reads anyway: no ROLLBACK after them.
        self.autocommit = reads_only and self.dialect == "mysql"
        if self.autocommit:
            self.raw.driver_connection.autocommit(True)
        self.Error = engine.dialect.loaded_dbapi.Error
        self.IntegrityError = engine.dialect.loaded_dbapi.IntegrityError
        self.closed = False

    # -- plumbing -------------------------------------------------------------

    def _marks(self, count: int) -> str:
        return ",".join([self.mark] * count)

    def _sql(self, text: str) -> str:
        return text if self.mark == "%s" else text.replace("%s", "?")

    def rows(self, sql: str, params: Sequence = ()) -> list[tuple]:
        """Run a query and fetch every row."""
        cur = self.raw.cursor()
        try:
            cur.execute(self._sql(sql), params)
            return cur.fetchall()
        finally:
            cur.close()

    def run(self, sql: str, params: Sequence = ()) -> None:
        """Run a statement."""
        cur = self.raw.cursor()
        try:
            cur.execute(self._sql(sql), params)
        finally:
            cur.close()

    def commit(self) -> None:
        """Commit the transaction."""
        self.raw.commit()

    def rollback(self) -> None:
        """End the transaction (also a read-only one, so no snapshot is kept open)."""
        self.raw.rollback()

    def discard(self) -> None:
        """Throw the connection away (after an error: it may be dead)."""
        self.closed = True
        try:
            self.raw.invalidate()
        except Exception:
            pass

    # -- lookups --------------------------------------------------------------

    def lookup(self, *, client_keys: set[tuple[int, str]], user_ids: Sequence[int],
               block_pairs: set[tuple[int, int]], follow_pairs: set[tuple[int, int]],
               group_ids: Sequence[int], member_pairs: set[tuple[int, int]],
               change_keys: set[tuple[int, str]] = frozenset(),
               targets: Sequence[int] = (),
               changed_by: set[tuple[int, int]] = frozenset()) -> dict:
        """Everything a batch must know, in one round trip (a UNION ALL of index lookups;
        on MySQL with the ``targets`` read beside it, a second statement of one query).

        ``targets``: messages replied to or changed, read unlocked (``targets``);
        ``changed_by``: (message id, actor) of each change: the message's group (owner,
        visibility) and whether the actor is a member of it, found through the message
        (the message ids must be among ``targets``: the memberships are kept for the
        groups that read finds).

        Returns ``{"stored": {(sender, client_id): id}, "names": {id: name},
        "blocks": pairs, "follows": pairs, "groups": {id: owner id}, "members": pairs,
        "stored_changes": {(actor, client_id): update id}, "targets": {id: row}}``.
        """
        parts: list[str] = []
        params: list = []

        def branch(sql: str, *lists) -> None:
            parts.append(sql.format(*[self._marks(len(v)) for v in lists]))
            for values in lists:
                params.extend(values)

        def pairs_table(pairs: set[tuple]) -> str:
            # The pairs as a derived table ``k`` (a, b) to join on, their values bound.
            mark = self.mark
            for a, b in sorted(pairs):
                params.extend((a, b))
            return (f"(SELECT {mark} AS a, {mark} AS b"
                    + f" UNION ALL SELECT {mark}, {mark}" * (len(pairs) - 1) + ") k")

        def pairs_branch(select: str, columns: tuple[str, str], pairs: set[tuple]) -> None:
            # MySQL: a row IN list is one index dive per pair. Two plain IN lists would be
            # one per combination (senders x client_ids): 20 ms instead of 2 for 400 keys.
            # SQLite has no row-value lists; its two IN lists are filtered here anyway.
            if self.dialect == "mysql":
                pair = f"({self.mark},{self.mark})"
                parts.append(f"{select} WHERE ({columns[0]}, {columns[1]}) IN "
                             f"({','.join([pair] * len(pairs))})")
                for a, b in sorted(pairs):
                    params.extend((a, b))
            else:
                branch(f"{select} WHERE {columns[0]} IN ({{}}) AND {columns[1]} IN ({{}})",
                       sorted({a for a, _ in pairs}), sorted({b for _, b in pairs}))

        def key_pairs_branch(tag: str, table: str, columns: tuple[str, str],
                             pairs: set[tuple]) -> None:
            # A table whose primary key is the pair (follows, memberships). MySQL: the pairs
            # as a derived table joined on that key, one lookup each. As a row IN list they
            # were compared with every row read, one by one, and MariaDB reads a small
            # table whole: 430 follow pairs of a batch of 500 took 89 ms (the lookup
            # dominated the send path past 10,000 msgs/s), joined 1.7 ms.
            if self.dialect != "mysql":
                pairs_branch(f"SELECT '{tag}', {columns[0]}, {columns[1]}, NULL FROM {table}",
                             columns, pairs)
                return
            parts.append(f"SELECT '{tag}', t.{columns[0]}, t.{columns[1]}, NULL FROM "
                         f"{pairs_table(pairs)} "
                         f"JOIN {table} t ON t.{columns[0]} = k.a AND t.{columns[1]} = k.b")

        # The UNION's text column takes client_id (a no-pad collation on MySQL, migration
        # 0002) and username (utf8mb4_bin): MySQL refuses to mix two collations there.
        def as_text(column: str) -> str:
            return f"CONVERT({column} USING utf8mb4)" if self.dialect == "mysql" else column

        if client_keys:
            pairs_branch(f"SELECT 'd', id, sender_id, {as_text('client_id')} FROM messages",
                         ("sender_id", "client_id"), client_keys)
        if change_keys:
            pairs_branch(f"SELECT 'c', id, actor_id, {as_text('client_id')} FROM "
                         "message_updates", ("actor_id", "client_id"), change_keys)
        if user_ids:
            branch(f"SELECT 'u', id, 0, {as_text('username')} FROM users WHERE id IN ({{}})",
                   sorted(user_ids))
        if block_pairs:
            branch("SELECT 'b', blocker_id, blocked_id, NULL FROM blocks WHERE blocker_id IN ({})",
                   sorted({a for a, _ in block_pairs}))
        if follow_pairs:
            key_pairs_branch("f", "follows", ("follower_id", "followee_id"), follow_pairs)
        if group_ids:
            branch(f"SELECT 'g', id, owner_id, {as_text('visibility')} FROM chat_groups "
                   "WHERE id IN ({})",
                   sorted(group_ids))
        if member_pairs:  # (group_id, user_id): the primary key's order
            key_pairs_branch("m", "memberships", ("group_id", "user_id"), member_pairs)
        if changed_by:  # the changed messages' groups, and their actors' memberships
            branch(f"SELECT 'g', g.id, g.owner_id, {as_text('g.visibility')} FROM chat_groups g "
                   "WHERE g.id IN (SELECT group_id FROM messages WHERE id IN ({}))",
                   sorted({m for m, _ in changed_by}))
            # One lookup per (message, actor) pair, not one per message x actor: 50
            # messages of a big group changed by 200 members would be 10,000 rows.
            parts.append(f"SELECT 'm', s.group_id, s.user_id, NULL FROM "
                         f"{pairs_table(changed_by)} JOIN messages t ON t.id = k.a "
                         "JOIN memberships s ON s.group_id = t.group_id AND s.user_id = k.b")
        found: dict = {"stored": {}, "names": {}, "blocks": set(), "follows": set(),
                       "groups": {}, "members": set(), "private": set(), "stored_changes": {},
                       "targets": {}}
        queries = [self._targets_query(targets, lock=False)] if targets else []
        if parts:
            queries.append((" UNION ALL ".join(parts), params))
        results = self.rows_together(queries)
        if targets:
            found["targets"] = _by_id(results.pop(0))
        if not parts:
            return found
        # An actor's membership counts in the group of the message it changes only.
        member_pairs = member_pairs | {
            (found["targets"][m][4], actor) for m, actor in changed_by
            if m in found["targets"] and found["targets"][m][4] is not None}
        for tag, a, b, c in results[0]:
            a, b = int(a), int(b)
            if tag == "d":
                if (b, c) in client_keys:
                    found["stored"][(b, c)] = a
            elif tag == "c":
                if (b, c) in change_keys:
                    found["stored_changes"][(b, c)] = a
            elif tag == "u":
                found["names"][a] = c
            elif tag == "b":
                found["blocks"].add((a, b))
            elif tag == "f":
                found["follows"].add((a, b))
            elif tag == "g":
                found["groups"][a] = b  # group id -> owner id
                if c == "private":
                    found["private"].add(a)
            elif tag == "m":
                found["members"].add((a, b))
        found["blocks"] &= block_pairs
        found["follows"] &= follow_pairs
        found["members"] &= member_pairs
        return found

    def stored_client_ids(self, client_keys: set[tuple[int, str]]) -> dict[tuple[int, str], int]:
        """``{(sender, client_id): id}`` of the keys already stored."""
        return self.lookup(client_keys=client_keys, user_ids=[], block_pairs=set(),
                           follow_pairs=set(), group_ids=[], member_pairs=set())["stored"]

    def targets(self, ids: Sequence[int], lock: bool) -> dict[int, tuple]:
        """The current state of messages that a batch replies to or changes, by id:
        (id, conv_key, sender_id, recipient_id, group_id, content, created_at, recalled,
        reactions, attachments, mentions, mention_all, edited_at).

        ``lock``: FOR UPDATE on MySQL, so that changes to one message from several
        processes apply one after the other (the read, then the write of its
        reactions summary, under the row's lock until COMMIT).
        """
        if not ids:
            return {}
        return _by_id(self.rows(*self._targets_query(ids, lock)))

    def invited(self, pairs: set[tuple[int, int]]) -> set[tuple[int, int]]:
        """Which (group id, user id) pairs are invitations (a rare read: a non-member
        writing to a private group)."""
        if not pairs:
            return set()
        groups, users = sorted({g for g, _ in pairs}), sorted({u for _, u in pairs})
        found = self.rows(f"SELECT group_id, user_id FROM invitations WHERE group_id IN "
                          f"({self._marks(len(groups))}) AND user_id IN "
                          f"({self._marks(len(users))})", [*groups, *users])
        return {(int(g), int(u)) for g, u in found} & pairs

    def stored_changes(self, keys: set[tuple[int, str]]) -> dict[tuple[int, str], tuple]:
        """``{(actor, client_id): (update id, message id)}`` of change keys already used."""
        if not keys:
            return {}
        return _changes_found(self.rows(*self._stored_changes_query(keys)), keys)

    def current_targets(self, changed: Sequence[int], quoted: Sequence[int],
                        change_keys: set[tuple[int, str]]) -> tuple[dict[int, tuple], dict]:
        """The writer's reads before it applies a batch's changes, in this order and in one
        round trip where the connection allows: the changed messages locked (``targets``
        with ``lock``), the quoted ones unlocked, then the change keys already used
        (``stored_changes``), read under those locks. Returns (targets by id, used keys)."""
        queries = []
        if changed:
            queries.append(self._targets_query(changed, lock=True))
        if quoted:
            queries.append(self._targets_query(quoted, lock=False))
        if change_keys:
            queries.append(self._stored_changes_query(change_keys))
        results = self.rows_together(queries)
        found = _changes_found(results.pop(), change_keys) if change_keys else {}
        current: dict[int, tuple] = {}
        for rows in results:
            current.update(_by_id(rows))
        return current, found

    def rows_together(self, queries: list[tuple[str, Sequence]]) -> list[list[tuple]]:
        """Each query's rows, the queries run in order and, on MySQL, sent as one
        multi-statement query (one round trip)."""
        if not self.multi_statements or len(queries) < 2:
            return [list(self.rows(sql, params)) for sql, params in queries]
        cur = self.raw.cursor()
        try:
            cur.execute(";".join(cur.mogrify(sql, params) for sql, params in queries))
            results = [list(cur.fetchall())]
            while cur.nextset():
                results.append(list(cur.fetchall()))
            return results
        finally:
            cur.close()

    def _targets_query(self, ids: Sequence[int], lock: bool) -> tuple[str, list]:
        sql = (f"SELECT id, conv_key, sender_id, recipient_id, group_id, content, created_at, "
               f"recalled, reactions, attachments, mentions, mention_all, edited_at "
               f"FROM messages WHERE id IN ({self._marks(len(ids))})")
        if lock and self.dialect == "mysql":
            sql += " FOR UPDATE"
        return sql, sorted(ids)

    def _stored_changes_query(self, keys: set[tuple[int, str]]) -> tuple[str, list]:
        if self.dialect == "mysql":
            pair = f"({self.mark},{self.mark})"
            sql = (f"SELECT actor_id, client_id, id, message_id FROM message_updates WHERE "
                   f"(actor_id, client_id) IN ({','.join([pair] * len(keys))})")
            return sql, [v for key in sorted(keys) for v in key]
        actors, cids = sorted({a for a, _ in keys}), sorted({c for _, c in keys})
        sql = (f"SELECT actor_id, client_id, id, message_id FROM message_updates WHERE "
               f"actor_id IN ({self._marks(len(actors))}) AND client_id IN "
               f"({self._marks(len(cids))})")
        return sql, [*actors, *cids]

    def messages_by_id(self, ids: Sequence[int]) -> list[tuple]:
        """(id, sender_id, recipient_id, group_id, client_id, created_at) of stored messages."""
        return self.rows(f"SELECT id, sender_id, recipient_id, group_id, client_id, created_at "
                         f"FROM messages WHERE id IN ({self._marks(len(ids))})", list(ids))

    def messages_between(self, low: int, high: int) -> list[tuple]:
        """Full rows (``queries``' message columns, as ``Row`` takes them) of ids low..high."""
        return self.rows(
            "SELECT m.id, m.sender_id, m.recipient_id, m.group_id, m.content, m.client_id, "
            "m.created_at, u.username, m.reply_to_id, m.reply_sender_id, m.reply_excerpt, "
            "m.reply_recalled, m.mentions, m.mention_all, m.attachments, m.reactions, "
            "m.edited_at, m.recalled FROM messages m JOIN users u ON u.id = m.sender_id "
            "WHERE m.id BETWEEN %s AND %s ORDER BY m.id", [low, high])

    def updates_between(self, low: int, high: int) -> list[tuple]:
        """(id, kind, message_id, actor_id, payload, created_at, sender_id, recipient_id,
        group_id) of the updates with ids low..high."""
        return self.rows(
            "SELECT u.id, u.kind, u.message_id, u.actor_id, u.payload, u.created_at, "
            "m.sender_id, m.recipient_id, m.group_id FROM message_updates u "
            "JOIN messages m ON m.id = u.message_id WHERE u.id BETWEEN %s AND %s "
            "ORDER BY u.id", [low, high])

    def last_id(self) -> int:
        """The last id handed out and committed (the sequence row, read without its lock)."""
        return int(self.rows("SELECT last_id FROM message_sequence WHERE id = 1")[0][0])

    def senders_since(self, conv_keys: Sequence[str], senders: Sequence[int],
                      since: datetime) -> set[tuple[str, int]]:
        """(conversation, sender) pairs with a message since ``since``."""
        found = self.rows(
            f"SELECT DISTINCT conv_key, sender_id FROM messages WHERE conv_key IN "
            f"({self._marks(len(conv_keys))}) AND sender_id IN ({self._marks(len(senders))}) "
            f"AND created_at >= %s", [*conv_keys, *senders, db_time(since)])
        return {tuple(r) for r in found}

    def counts_sent(self, pairs: set[tuple[str, int]],
                    since: datetime) -> dict[tuple[str, int], int]:
        """How many messages each (conversation, sender) pair has sent since ``since``."""
        if not pairs:
            return {}
        conv_keys = sorted({c for c, _ in pairs})
        senders = sorted({s for _, s in pairs})
        found = self.rows(
            f"SELECT conv_key, sender_id, COUNT(*) FROM messages WHERE conv_key IN "
            f"({self._marks(len(conv_keys))}) AND sender_id IN ({self._marks(len(senders))}) "
            f"AND created_at >= %s GROUP BY conv_key, sender_id",
            [*conv_keys, *senders, db_time(since)])
        return {(c, int(s)): int(n) for c, s, n in found if (c, int(s)) in pairs}

    def count_sent(self, conv_key: str, sender_id: int, since: datetime) -> int:
        """How many messages a sender wrote in a conversation since ``since``."""
        return self.rows("SELECT COUNT(*) FROM messages WHERE conv_key = %s AND sender_id = %s "
                         "AND created_at >= %s", [conv_key, sender_id, db_time(since)])[0][0]
