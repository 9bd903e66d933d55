"""The message committer's writes, on its bare DB-API connection (see ``committer_sql``).

Messages are written with one multi-row INSERT; what a batch of edits, recalls
and reactions changes is written as one statement per kind of change. On MySQL,
inside ``in_one_round_trip()`` the statements are rendered and kept, then sent
together (a multi-statement query): a batch of replies, mentions and changes
writes up to nine statements, and each round trip waits for the event loop's turn
as well as for the server. The batch's ids are allocated by the same query
(``allocate_ids_in_query``): its statements name them ``@chat_first + k`` (``NewId``),
so the sequence row's lock, which every process's writer waits for, is held for the
server's work only, not across a round trip to this process (unless a batch past
``KEEP_AT_MOST`` is sent in parts).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

_INSERT_IGNORE = {"mysql": "INSERT IGNORE", "sqlite": "INSERT OR IGNORE"}
_PLAIN_COLUMNS = "id, conv_key, sender_id, recipient_id, group_id, content, client_id, created_at"
_RICH_COLUMNS = (_PLAIN_COLUMNS + ", reply_to_id, reply_sender_id, reply_excerpt, reply_recalled, "
                 "mentions, mention_all, attachments")


class NewId:
    """The id ``first + offset`` of a batch whose first id the write's own query
    allocates: rendered as SQL that reads it from the session (``@chat_first``)."""

    __slots__ = ("offset",)

    def __init__(self, offset: int) -> None:
        self.offset = offset

    def __str__(self) -> str:
        return f"@chat_first+{self.offset}"


def new_id_literal(value: NewId, mapping: Any = None) -> str:
    """A ``NewId`` as the driver renders parameters (its encoders' signature)."""
    return str(value)


def _sql_value(value: Any, quote: Any) -> str:
    """One value of a hand-rendered INSERT: NULL, an int we made, a ``NewId``, or quoted
    text."""
    if value is None:
        return "NULL"
    if type(value) is NewId:
        return str(value)
    if value is True or value is False:
        return "1" if value else "0"
    if type(value) is int:
        return str(value)
    return quote(value)


class MessageWrites:
    """The writing half of ``MessageStore`` (``raw``, ``dialect``, ``mark`` and
    ``multi_statements`` come from it)."""

    _kept: list[str] | None = None  # statements rendered inside in_one_round_trip()
    _kept_chars = 0
    _first_at: int | None = None  # which kept statement allocates the ids
    _allocated = 0  # how many
    first_id: int | None = None  # what it answered (``allocate_ids_in_query``)
    # Past this many characters what is kept is sent at once (a query must stay under the
    # server's max_allowed_packet, 16 MiB by default, at four bytes a character).
    KEEP_AT_MOST = 1_000_000

    @contextmanager
    def in_one_round_trip(self) -> Iterator[None]:
        """The writes made inside are sent together when it ends (MySQL with
        multi-statements on; elsewhere each is sent as it is made). An error in one
        (a duplicate key) is raised by the send, and the statements after it are not run."""
        if not self.multi_statements:
            yield
            return
        self._kept, self._kept_chars = [], 0
        try:
            yield
            self._send_kept()
        finally:
            self._kept, self._first_at = None, None

    def commit_with_writes(self) -> None:
        """COMMIT: inside ``in_one_round_trip`` sent after the kept writes, in the same
        query (an error in a write stops the query before it, as it stops the writes
        after it); elsewhere at once."""
        if self._kept is None:
            self.raw.commit()
        else:
            self._kept.append("COMMIT")

    def _send_kept(self) -> None:
        kept, self._kept, self._kept_chars = self._kept, [], 0
        first_at, self._first_at = self._first_at, None
        if not kept:
            return
        cur = self.raw.cursor()
        try:
            cur.execute(";".join(kept))
            index = 0
            while True:  # each statement's result, so that an error is raised here
                if index == first_at:  # its OK packet carries LAST_INSERT_ID(), the last id
                    self.first_id = int(cur.lastrowid) - self._allocated + 1
                if not cur.nextset():
                    break
                index += 1
        finally:
            cur.close()

    def _write(self, sql: str, params: Any = None) -> None:
        """Run a write now, or keep it (rendered) for ``in_one_round_trip``."""
        cur = self.raw.cursor()
        try:
            if self._kept is None:
                if params is None:
                    cur.execute(sql)
                else:
                    cur.execute(self._sql(sql), params)
                return
            rendered = cur.mogrify(sql, params) if params is not None else sql
        finally:
            cur.close()
        if self._kept and self._kept_chars + len(rendered) > self.KEEP_AT_MOST:
            self._send_kept()
        self._kept.append(rendered)
        self._kept_chars += len(rendered)

    def _insert_rows(self, head: str, row: str, rows: list[tuple]) -> None:
        """``head`` (``INSERT .. VALUES``) with one ``row`` template per row: one
        multi-row statement on MySQL (what PyMySQL's executemany sends), executemany
        on SQLite."""
        if not rows:
            return
        if self.dialect == "mysql":
            cur = self.raw.cursor()
            try:
                rendered = [cur.mogrify(row, values) for values in rows]
            finally:
                cur.close()
            start, size = 0, 0
            for end, value in enumerate(rendered):  # statements of KEEP_AT_MOST at most
                if size and size + len(value) > self.KEEP_AT_MOST:
                    self._write(head + ",".join(rendered[start:end]))
                    start, size = end, 0
                size += len(value) + 1
            self._write(head + ",".join(rendered[start:]))
            return
        cur = self.raw.cursor()
        try:
            cur.executemany(self._sql(head + row), rows)
        finally:
            cur.close()

    def allocate_ids(self, count: int) -> int:
        """Reserve ``count`` message ids; returns the first. The row stays locked to COMMIT.

        One round trip: MySQL hands the new value back through LAST_INSERT_ID(expr),
        SQLite through RETURNING.
        """
        cur = self.raw.cursor()
        try:
            if self.dialect == "mysql":
                cur.execute("UPDATE message_sequence SET last_id = LAST_INSERT_ID(last_id + %s) "
                            "WHERE id = 1", [count])
                last = cur.lastrowid
            else:
                cur.execute("UPDATE message_sequence SET last_id = last_id + ? WHERE id = 1 "
                            "RETURNING last_id", [count])
                last = cur.fetchone()[0]
        finally:
            cur.close()
        return last - count + 1

    @property
    def ids_in_query(self) -> bool:
        """Whether the write's own query can allocate its ids (MySQL, multi-statements)."""
        return self.multi_statements

    def allocate_ids_in_query(self, count: int) -> None:
        """Inside ``in_one_round_trip``, first: reserve ``count`` ids in the write's own
        query, named ``NewId(k)`` in its statements; ``first_id`` holds the first once
        the query has run. The sequence row stays locked to the COMMIT."""
        self.first_id, self._allocated = None, int(count)
        self._write("UPDATE message_sequence SET last_id = LAST_INSERT_ID(last_id + "
                    f"{self._allocated}) WHERE id = 1")
        self._first_at = len(self._kept) - 1
        # An OK packet, not a result set to parse: the id comes back in the UPDATE's.
        self._write(f"SET @chat_first = LAST_INSERT_ID() - {self._allocated - 1}")

    def insert_messages(self, rows: list[tuple], rich: bool = False) -> None:
        """One multi-row INSERT; ``rich`` rows carry the reply, mentions and files too.

        On MySQL the VALUES are rendered here: PyMySQL's generic escaping of every
        parameter was a quarter of the committer's time. Numbers are ints we made,
        text goes through the driver's own quoting (``Connection.escape``, which
        follows the server's NO_BACKSLASH_ESCAPES mode).
        """
        columns = _RICH_COLUMNS if rich else _PLAIN_COLUMNS
        insert = f"INSERT INTO messages ({columns}) VALUES "
        cur = self.raw.cursor()
        try:
            if self.dialect == "mysql":
                quote = self.raw.driver_connection.escape
                if rich:
                    values = ",".join(
                        "(" + ",".join(_sql_value(v, quote) for v in row) + ")" for row in rows)
                else:  # the hot path: every value's type is known
                    values = ",".join(
                        f"({mid},'{conv}',{sender},{'NULL' if to is None else to},"
                        f"{'NULL' if group is None else group},{quote(content)},"
                        f"{'NULL' if cid is None else quote(cid)},'{stamp}')"
                        for mid, conv, sender, to, group, content, cid, stamp in rows)
                self._write(insert + values)
            else:
                marks = ", ".join(["?"] * len(rows[0]))
                cur.executemany(insert + f"({marks})", rows)
        finally:
            cur.close()

    def insert_cursors(self, rows: list[tuple]) -> None:
        """Read cursors for new private chats; existing ones are left alone."""
        self._insert_rows(f"{_INSERT_IGNORE[self.dialect]} INTO read_cursors (user_id, conv_key, "
                          f"peer_id, group_id, last_read_id) VALUES ",
                          "(%s, %s, %s, NULL, 0)", rows)

    def insert_mentions(self, rows: list[tuple]) -> None:
        """(user_id or 0 for everyone, conv_key, message_id, sender_id) rows."""
        self._insert_rows(f"{_INSERT_IGNORE[self.dialect]} INTO mentions (user_id, conv_key, "
                          f"message_id, sender_id) VALUES ", "(%s, %s, %s, %s)", rows)

    def hold_uploads(self, ids: list[int]) -> set[int]:
        """Mark these uploads attached and say which still exist, their rows locked until
        COMMIT: the clean-up's DELETE of one of them then waits for this transaction and
        finds the new message holding it, or it went first and the id is missing here.

        The UPDATE comes first: it takes the locks (SQLite: the database's write lock), so
        the SELECT after it reads what is committed now (MySQL: a locking read)."""
        marks = ",".join([self.mark] * len(ids))
        cur = self.raw.cursor()
        try:
            cur.execute(f"UPDATE uploads SET attached = 1 WHERE id IN ({marks})", ids)
            cur.execute(f"SELECT id FROM uploads WHERE id IN ({marks})"
                        + (" FOR UPDATE" if self.dialect == "mysql" else ""), ids)
            return {row[0] for row in cur.fetchall()}
        finally:
            cur.close()

    def insert_upload_links(self, rows: list[tuple]) -> None:
        """(upload_id, message_id) rows: which new message holds which upload (the
        uploads were marked attached by ``hold_uploads``)."""
        self._insert_rows(f"{_INSERT_IGNORE[self.dialect]} INTO upload_links (upload_id, "
                          f"message_id) VALUES ", "(%s, %s)", rows)

    def delete_mentions(self, rows: list[tuple]) -> None:
        """Forget (user_id, conv_key, message_id) mentions (of recalled messages), in one
        statement."""
        if not rows:
            return
        triple = f"({self.mark},{self.mark},{self.mark})"
        listed = ",".join([triple] * len(rows))
        if self.dialect == "sqlite":
            listed = f"VALUES {listed}"
        self._write(f"DELETE FROM mentions WHERE (user_id, conv_key, message_id) IN ({listed})",
                    [v for row in rows for v in row])

    def insert_updates(self, rows: list[tuple]) -> None:
        """(id, conv_key, message_id, kind, actor_id, client_id, payload, created_at) rows."""
        self._insert_rows("INSERT INTO message_updates (id, conv_key, message_id, kind, actor_id, "
                          "client_id, payload, created_at) VALUES ",
                          "(%s, %s, %s, %s, %s, %s, %s, %s)", rows)

    def _update_by_case(self, table: str, key: str, columns: tuple[str, ...],
                        rows: list[tuple]) -> None:
        """One UPDATE for many rows: each column set by ``CASE key WHEN .. THEN ..``.

        ``rows`` are (key, value of each column). PyMySQL's executemany runs an UPDATE
        once per row, one round trip each, in the committer's serial path.
        """
        if not rows:
            return
        whens = " ".join([f"WHEN {self.mark} THEN {self.mark}"] * len(rows))
        sets = ", ".join(f"{column} = CASE {key} {whens} ELSE {column} END"
                         for column in columns)
        params = [v for index in range(1, len(columns) + 1)
                  for row in rows for v in (row[0], row[index])]
        params.extend(row[0] for row in rows)
        marks = ",".join([self.mark] * len(rows))
        self._write(f"UPDATE {table} SET {sets} WHERE {key} IN ({marks})", params)

    def save_states(self, rows: list[tuple]) -> None:
        """The changed messages' current state: (id, content, edited_at, recalled,
        reactions, attachments, mentions, mention_all) rows."""
        self._update_by_case("messages", "id", ("content", "edited_at", "recalled",
                                                "reactions", "attachments", "mentions",
                                                "mention_all"), rows)

    def refresh_replies(self, rows: list[tuple]) -> None:
        """The excerpt kept on the replies to edited or recalled messages:
        (original id, excerpt, recalled) rows."""
        self._update_by_case("messages", "reply_to_id", ("reply_excerpt", "reply_recalled"),
                             rows)

    def scrub_edits(self, message_ids: list[int]) -> None:
        """A recalled message's text is gone everywhere: also from its earlier edits."""
        if not message_ids:
            return
        marks = ",".join([self.mark] * len(message_ids))
        # The text goes; the rest of the edit's frame (its edited_at) stays, as sync shows it.
        self._write("UPDATE message_updates SET payload = JSON_SET(payload, '$.content', '') "
                    f"WHERE kind = 'edit' AND message_id IN ({marks})", list(message_ids))
