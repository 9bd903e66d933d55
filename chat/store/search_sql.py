"""The full-text index of messages and the one search query, per database.

* SQLite (the embedded default): an FTS5 table with the ``trigram`` tokenizer,
  external content (``messages`` holds the text), kept by triggers on
  ``messages``. Trigrams find any substring of 3+ characters in any script; a
  shorter piece (one or two Chinese characters, a one-letter prefix) cannot use
  the index, so it is checked on the rows the other pieces and the permission
  join leave (a scan of the user's conversations, newest first, stopping at the
  page's end).
* MariaDB: a table of the Mroonga engine (Groonga: a run of letters, digits or
  symbols is a token, searched by prefix at a phrase's end; scripts without spaces
  in bigrams; case and width folded) beside ``messages``. New messages
  are indexed after their commit, in batches, by an indexer (``index_round``,
  run by every server process; one at a time takes a round), so Mroonga's
  work is not in the send path's transaction; edits and recalls by triggers.
  ``message_search_position`` says up to which id every message is indexed:
  search walks every message above it one by one, so a message is found from
  its ack on, whatever the indexer's lag. Mroonga is a plugin: without it the
  tables are absent and search says so (503) while everything else works.

On both, the engine only narrows the candidates (a superset); the exact rule
(a Latin word matches by prefix, CJK anywhere, phrases with any white space
between words, recalled messages never) is checked on ``messages.content`` in
the same query, before ``LIMIT``, so a page is always full when matches exist.
"""
from __future__ import annotations

import json
import re
import sqlite3
import unicodedata
from typing import Any, Callable

from sqlalchemy import text
from sqlalchemy.engine import Connection

TABLE = "message_search"

# Mroonga: a run of letters, of digits or of symbols is one token, and scripts written
# without spaces (Chinese, Japanese, Korean, Thai, ...) are cut into bigrams; Groonga's
# normalizer folds case, width and compatibility forms. Cutting every run into bigrams
# (``TokenBigramSplitSymbolAlphaDigit``, migration 0009) cost MariaDB 2.7 times the work
# per Latin message, on every send.
MROONGA_TABLE = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} (id BIGINT NOT NULL PRIMARY KEY, "
    "content MEDIUMTEXT NOT NULL, FULLTEXT INDEX ft_content (content) COMMENT "
    "'tokenizer \"TokenBigram\", normalizer \"NormalizerAuto\"') "
    "ENGINE=Mroonga DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin")
POSITION = f"{TABLE}_position"
# Every message with an id up to last_id is in the index (one row, id 1).
MROONGA_POSITION = (f"CREATE TABLE IF NOT EXISTS {POSITION} (id TINYINT NOT NULL PRIMARY KEY, "
                    "last_id BIGINT NOT NULL) ENGINE=InnoDB")
# One statement each (MariaDB has no FOR EACH ROW ... WHEN): a recalled message leaves the
# index, an edited one is indexed again. Mroonga is not transactional; a row left by a
# rolled-back change is harmless because every match is checked against ``messages``.
# New messages have no trigger: the indexer adds them after their commit (``index_round``).
MROONGA_TRIGGERS = (
    f"CREATE TRIGGER {TABLE}_au AFTER UPDATE ON messages FOR EACH ROW "
    f"REPLACE INTO {TABLE} (id, content) SELECT NEW.id, "
    "IF(NEW.recalled = 0, NEW.content, '') FROM DUAL "
    "WHERE NEW.content <> OLD.content OR NEW.recalled <> OLD.recalled",
    f"CREATE TRIGGER {TABLE}_ad AFTER DELETE ON messages FOR EACH ROW "
    f"DELETE FROM {TABLE} WHERE id = OLD.id",
)
# The insert trigger of the first version (migration 0008 drops it).
MROONGA_INSERT_TRIGGER = f"{TABLE}_ai"

# SQLite: external content, so the text is stored once (in messages). The delete command of
# an external-content table must be given exactly what was indexed: only rows that are not
# recalled are in the index.
SQLITE_TABLE = (f"CREATE VIRTUAL TABLE IF NOT EXISTS {TABLE} USING fts5(content, "
                "content='messages', content_rowid='id', tokenize='trigram')")
SQLITE_TRIGGERS = (
    f"CREATE TRIGGER IF NOT EXISTS {TABLE}_ai AFTER INSERT ON messages "
    f"WHEN NEW.recalled = 0 BEGIN "
    f"INSERT INTO {TABLE}(rowid, content) VALUES (NEW.id, NEW.content); END",
    f"CREATE TRIGGER IF NOT EXISTS {TABLE}_au AFTER UPDATE OF content, recalled ON messages "
    f"BEGIN "
    f"INSERT INTO {TABLE}({TABLE}, rowid, content) SELECT 'delete', OLD.id, OLD.content "
    "WHERE OLD.recalled = 0; "
    f"INSERT INTO {TABLE}(rowid, content) SELECT NEW.id, NEW.content WHERE NEW.recalled = 0; "
    "END",
    f"CREATE TRIGGER IF NOT EXISTS {TABLE}_ad AFTER DELETE ON messages "
    f"WHEN OLD.recalled = 0 BEGIN "
    f"INSERT INTO {TABLE}({TABLE}, rowid, content) VALUES ('delete', OLD.id, OLD.content); END",
)

# A Latin-script word matches only at a word start: not after a letter or digit of a
# script written with spaces. The same rule as ``chat.service.search.is_word_char``.
_PCRE_WORD_START = (r"(?<![\p{L}\p{N}](?<![\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}]))")


def not_search_index(name: str | None, type_: str, parent_names: dict) -> bool:
    """Alembic's ``include_name``: the index's tables and triggers are made by migration 0006
    and the rebuild command, not by the models, so autogenerate must not drop them."""
    return not (type_ == "table" and (name or "").startswith(TABLE))


def dialect(conn: Connection) -> str:
    """``sqlite`` or ``mysql`` (MariaDB)."""
    return conn.dialect.name


def is_mariadb(conn: Connection) -> bool:
    """True on MySQL/MariaDB."""
    return dialect(conn) in ("mysql", "mariadb")


def mroonga_loaded(conn: Connection) -> bool:
    """Whether the server has the Mroonga engine (the plugin is loaded)."""
    rows = conn.execute(text("SELECT SUPPORT FROM information_schema.ENGINES "
                             "WHERE ENGINE = 'Mroonga'")).all()
    return bool(rows) and rows[0][0] in ("YES", "DEFAULT")


def index_missing(conn: Connection) -> str | None:
    """Why search cannot run on this database (``None`` when it can)."""
    if is_mariadb(conn):
        if not mroonga_loaded(conn):
            return ("the Mroonga engine is not loaded in MariaDB (install "
                    "mariadb-plugin-mroonga and load ha_mroonga, then run "
                    "flask --app app search-reindex)")
        found = dict(conn.execute(text(
            "SELECT TABLE_NAME, ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = "
            "DATABASE() AND TABLE_NAME IN (:t, :p)"), {"t": TABLE, "p": POSITION}).all())
        if (found.get(TABLE) or "").lower() != "mroonga" or POSITION not in found:
            return "the search index is missing: run flask --app app search-reindex"
        return None
    found = conn.execute(text("SELECT 1 FROM sqlite_master WHERE name = :t"),
                         {"t": TABLE}).all()
    return None if found else "the search index is missing: run flask --app app search-reindex"


def create_index(conn: Connection) -> bool:
    """Create the index's tables and triggers where the engine allows; False when not."""
    if is_mariadb(conn):
        if not mroonga_loaded(conn):
            return False
        conn.execute(text(MROONGA_TABLE))
        conn.execute(text(MROONGA_POSITION))
        conn.execute(text(f"INSERT IGNORE INTO {POSITION} (id, last_id) VALUES (1, 0)"))
        have = {r[0] for r in conn.execute(text(
            "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS "
            "WHERE TRIGGER_SCHEMA = DATABASE() AND EVENT_OBJECT_TABLE = 'messages'"))}
        for statement in MROONGA_TRIGGERS:
            name = statement.split()[2]
            if name not in have:
                conn.execute(text(statement))
        conn.execute(text(f"DROP TRIGGER IF EXISTS {MROONGA_INSERT_TRIGGER}"))
        return True
    conn.execute(text(SQLITE_TABLE))
    for statement in SQLITE_TRIGGERS:
        conn.execute(text(statement))
    return True


def drop_index(conn: Connection) -> None:
    """Remove the index's tables and triggers."""
    for suffix in ("ai", "au", "ad"):
        conn.execute(text(f"DROP TRIGGER IF EXISTS {TABLE}_{suffix}"))
    conn.execute(text(f"DROP TABLE IF EXISTS {TABLE}"))
    if is_mariadb(conn):
        conn.execute(text(f"DROP TABLE IF EXISTS {POSITION}"))


def clear_index(conn: Connection) -> None:
    """Empty the index (a rebuild from the first message starts here)."""
    if is_mariadb(conn):
        # Under the position row's lock, so no indexer round is half-way through; a DELETE,
        # not TRUNCATE, whose implicit commit would let one start before the table is empty.
        conn.execute(text(f"SELECT last_id FROM {POSITION} WHERE id = 1 FOR UPDATE"))
        conn.execute(text(f"DELETE FROM {TABLE}"))
        conn.execute(text(f"UPDATE {POSITION} SET last_id = 0 WHERE id = 1"))
    else:
        conn.execute(text(f"INSERT INTO {TABLE}({TABLE}) VALUES ('delete-all')"))


def reindex_batch(conn: Connection, after_id: int, size: int) -> int | None:
    """Index the next ``size`` messages after ``after_id``; returns the last id done
    (``None`` when none were left). Each batch is its own transaction, so a rebuild that
    stopped goes on from the last id it printed."""
    last = conn.execute(text(
        "SELECT MAX(id) FROM (SELECT id FROM messages WHERE id > :after ORDER BY id "
        "LIMIT :n) page"), {"after": after_id, "n": size}).scalar()
    if last is None:
        return None
    span = {"after": after_id, "last": last}
    if is_mariadb(conn):
        # REPLACE: a batch done twice is harmless. The shared locks make an edit of one of
        # these rows wait (or be waited for), so its trigger's newer text is never
        # overwritten by the older text this read saw.
        conn.execute(text(f"REPLACE INTO {TABLE} (id, content) SELECT id, content FROM "
                          "messages WHERE id > :after AND id <= :last AND recalled = 0 "
                          "LOCK IN SHARE MODE"), span)
        conn.execute(text(f"UPDATE {POSITION} SET last_id = GREATEST(last_id, :last) "
                          "WHERE id = 1"), span)
    else:
        conn.execute(text(f"INSERT INTO {TABLE}(rowid, content) SELECT id, content FROM "
                          "messages WHERE id > :after AND id <= :last AND recalled = 0"), span)
    return last


def index_round(size: int) -> list[tuple[Any, dict]]:
    """One round of the indexer (MariaDB), as statements to run in order in one READ
    COMMITTED transaction: take the position row unless another process holds it, index
    up to ``size`` messages after it and move it. The last statement's one row is
    ``(after_id, last_id)``: both ``None`` when another process held the round, ``last_id``
    alone when nothing was new.

    Ids are handed out under the sequence row's lock, held to COMMIT, so when id N is
    visible every smaller id is committed or never will be: the position never passes a
    message still to come. READ COMMITTED: the locking read of the messages copied locks
    those rows alone (an edit of one waits, so its trigger's newer text is never
    overwritten by the older text this round read); at REPEATABLE READ it also locked the
    gap after the newest message, and every new message's INSERT waited for the round.
    The values travel in session variables, so that the round is one query (one round
    trip, ``store.reads.rows_in_one_transaction``); they are reset first, since a pooled
    connection keeps them.
    """
    return [
        (_ROUND_RESET, {}), (_ROUND_TAKE, {}), (_ROUND_LAST, {"n": int(size)}),
        (_ROUND_COPY, {}), (_ROUND_MOVE, {}), (_ROUND_RESULT, {}),
    ]


_ROUND_RESET = text("SET @chat_index_after = NULL, @chat_index_last = NULL")
# No row (another process holds it: SKIP LOCKED) leaves @chat_index_after NULL, and every
# statement after it then touches nothing (``id > NULL`` holds for no row).
_ROUND_TAKE = text(f"SELECT last_id INTO @chat_index_after FROM {POSITION} WHERE id = 1 "
                   "FOR UPDATE SKIP LOCKED")
_ROUND_LAST = text("SELECT MAX(id) INTO @chat_index_last FROM (SELECT id FROM messages "
                   "WHERE id > @chat_index_after ORDER BY id LIMIT :n) page")
# REPLACE: a batch done twice is harmless.
_ROUND_COPY = text(f"REPLACE INTO {TABLE} (id, content) SELECT id, content FROM messages "
                   "WHERE id > @chat_index_after AND id <= @chat_index_last AND recalled = 0 "
                   "LOCK IN SHARE MODE")
_ROUND_MOVE = text(f"UPDATE {POSITION} SET last_id = GREATEST(last_id, @chat_index_last) "
                   "WHERE id = 1 AND @chat_index_after IS NOT NULL "
                   "AND @chat_index_last IS NOT NULL")
_ROUND_RESULT = text("SELECT @chat_index_after AS after_id, @chat_index_last AS last_id")


def round_done(row: Any) -> int:
    """How many message ids a round (``index_round``) covered, from its last row."""
    after, last = row
    return 0 if after is None or last is None else int(last) - int(after)


def index_next(conn: Connection, size: int) -> int:
    """One round of the indexer (``index_round``) on ``conn``, whose transaction the caller
    opens (READ COMMITTED) and commits; how many ids it covered (0: nothing new, or
    another process holds the round)."""
    result = None
    for statement, params in index_round(size):
        result = conn.execute(statement, params)
    return round_done(result.one())


def indexed_upto(conn: Connection) -> int | None:
    """The id up to which every message is in the index (MariaDB), else ``None``."""
    if not is_mariadb(conn):
        return None  # SQLite's triggers index each message in its own transaction
    return conn.execute(text(f"SELECT last_id FROM {POSITION} WHERE id = 1")).scalar() or 0


def index_lag(conn: Connection) -> int:
    """How many message ids are above the indexer's position (0 on SQLite)."""
    upto = indexed_upto(conn)
    if upto is None:
        return 0
    newest = conn.execute(text("SELECT MAX(id) FROM messages")).scalar() or 0
    return max(0, int(newest) - upto)


# -- the query -------------------------------------------------------------------------------


def _token_kind(ch: str) -> str:
    """How the index's tokenizer (TokenBigram) groups a character: a run of digits, a run
    of letters, or (wide: Chinese, Japanese, Korean) bigrams."""
    if ch.isdigit():
        return "digit"
    return "wide" if unicodedata.east_asian_width(ch) in ("W", "F") else "letter"


def _groonga_phrase(text: str) -> str:
    # Inside a quoted Groonga phrase only \ and " are special: operators stay text.
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _mroonga_term(piece: str) -> str | None:
    """The piece as a required Groonga term, or ``None`` when it has nothing to narrow by.

    A piece that starts inside a token would not be found: a symbol run may start a piece
    anywhere ("#tag" inside "##tag"), so the term starts at the piece's first letter, digit
    or CJK character (a letter or a digit starts a word where the rule matches, and CJK is
    cut into bigrams). A piece may end inside a word: Groonga tries a phrase's last word
    by prefix only when the word itself is nowhere in the index ("deploy" would not find
    "deployment" once anyone wrote "deploy"), so the piece's last run of letters or digits
    is asked as a prefix (``deplo*``), with what comes before it as a phrase. A run of
    two or more CJK characters stays a phrase (bigrams, never a token's prefix), and text
    beyond ASCII gets both, either one enough. A superset always: the exact rule checks
    every candidate. A piece of symbols alone, or a single letter or digit (a prefix of
    most of the index), narrows nothing: such needles are found by a scan of the
    caller's conversations past the window."""
    start = next((i for i, ch in enumerate(piece) if ch.isalnum()), None)
    if start is None or "\x00" in piece:
        return None  # (Groonga cannot parse a NUL: such a piece is left to the scan)
    body = piece[start:]
    stem = body[:max(i for i, ch in enumerate(body) if ch.isalnum()) + 1]
    kind = _token_kind(stem[-1])
    cut = len(stem)
    while cut and stem[cut - 1].isalnum() and _token_kind(stem[cut - 1]) == kind:
        cut -= 1
    head, last = stem[:cut], stem[cut:]
    if kind == "wide" and len(last) > 1:
        return "+" + _groonga_phrase(body)  # bigrams, each matched whole inside the text
    if len(stem) == 1 and kind != "wide":
        return None  # one letter or digit: a prefix of most of the index, left to the scan
    prefix = "+" + last + "*"  # letters or digits only: nothing of Groonga's syntax
    if any(ch.isalnum() for ch in head):
        prefix = f"+{_groonga_phrase(head)} {prefix}"
    if body.isascii():
        return prefix  # ASCII runs are tokens as they are: a superset of the phrase
    # Elsewhere the normalizer may join or split what str.isalnum() cuts (a combining
    # accent, "İ", "½") or cut a script into bigrams (Thai): the phrase is the other choice.
    return f"+({_groonga_phrase(body)} OR ({prefix}))"


def _fts5_term(piece: str) -> str:
    return '"' + piece.replace('"', '""') + '"'


# The newest this many messages (of every conversation, or of the one searched) are checked
# one by one, newest first, before the index is asked (CHAT_SEARCH_WINDOW): a common word
# then costs a short walk down the primary key that stops at the page's end, instead of
# the engine's whole list of matches joined and sorted.
RECENT_WINDOW = 20000


def _like_safe(conn: Connection, piece: str) -> bool:
    # LIKE is a safe pre-filter only where it ignores case as the rule does: SQLite's LIKE
    # folds ASCII only, and MariaDB's is exact on our binary collation; text without case
    # (Chinese, digits, symbols) is safe on both.
    return piece.lower() == piece.upper() or (piece.isascii() and not is_mariadb(conn))


def _like(piece: str) -> str:
    """A LIKE pattern (``ESCAPE '!'``, the same on both databases) holding ``piece``."""
    return "%" + piece.replace("!", "!!").replace("%", "!%").replace("_", "!_") + "%"


def _exact(conn: Connection, needles: list[dict], params: dict,
           matches: Callable[[str, str], bool]) -> list[str]:
    """The conditions that hold for exactly the matching messages (checked on ``m``)."""
    where = ["m.recalled = 0"]
    for i, piece in enumerate(p for n in needles for p in n["pieces"]):
        if _like_safe(conn, piece):  # cheap, in C, before the exact rule
            where.append(f"m.content LIKE :like{i} ESCAPE '!'")
            params[f"like{i}"] = _like(piece)
    if is_mariadb(conn):
        for i, needle in enumerate(needles):
            prefix = _PCRE_WORD_START if needle["word"] else ""
            where.append(f"m.content REGEXP :re{i}")
            params[f"re{i}"] = "(?i)" + prefix + needle["pattern"]
    else:
        raw = conn.connection.driver_connection
        if isinstance(raw, sqlite3.Connection):
            raw.create_function("chat_search_match", 2, matches, deterministic=True)
        params["spec"] = json.dumps(needles)
        where.append("chat_search_match(m.content, :spec)")
    return where


def _window_floor(conn: Connection, conv_key: str | None, top: int | None,
                  window: int) -> int | None:
    """The lowest id of the window ``[floor, top)``, or ``None`` when it holds every message.

    Over all conversations, the window is the ``window`` ids below ``top`` (ids come from
    one sequence, so that is about as many messages; ``MAX(id)`` is one index lookup,
    where counting 20,000 rows down the clustered primary key took 6 ms on MariaDB at 1M).
    In one conversation, it is its ``window`` newest messages, counted on the
    ``(conv_key, id)`` index alone."""
    if conv_key is None:
        if top is None:
            top = (conn.execute(text("SELECT MAX(id) FROM messages")).scalar() or 0) + 1
        return top - window if top - window > 1 else None
    where, params = ["conv_key = :key"], {"off": window - 1, "key": conv_key}
    if top is not None:
        where.append("id < :top")
        params["top"] = top
    return conn.execute(text(
        f"SELECT id FROM messages WHERE {' AND '.join(where)} ORDER BY id DESC "
        "LIMIT 1 OFFSET :off"), params).scalar()


def search_ids(conn: Connection, me: int, needles: list[dict], conv_key: str | None,
               before_id: int | None, count: int,
               matches: Callable[[str, str], bool], window: int = RECENT_WINDOW) -> list[int]:
    """Ids of the newest ``count`` messages the user can read (read cursors: their private
    chats and the groups they are a member of now) that match every needle, newest first.

    ``needles``: ``{"pieces": [text without white space, ...], "pattern": regex source,
    "word": bool}`` (see ``chat.service.search``); ``matches(content, spec)`` is the exact
    rule, run by SQLite as a function on each candidate row. First the newest ``window``
    messages are walked newest first (permission and the exact rule on each, stopping at
    the page's end); only if they hold fewer than ``count`` matches is the full-text index
    asked for older ones.
    """
    params: dict[str, Any] = {"me": me, "n": count}
    readable = "m.conv_key IN (SELECT rc.conv_key FROM read_cursors rc WHERE rc.user_id = :me)"
    scope = [readable]
    if conv_key is not None:
        scope.append("m.conv_key = :key")
        params["key"] = conv_key
    if before_id is not None:
        scope.append("m.id < :before")
        params["before"] = before_id
    exact = " AND ".join(_exact(conn, needles, params, matches))
    floor = _window_floor(conn, conv_key, before_id, window)
    upto = indexed_upto(conn)
    if floor is not None and upto is not None and floor > upto + 1:
        floor = upto + 1  # what the indexer has not reached yet is walked too
    recent = scope + ([] if floor is None else ["m.id >= :floor"])
    params["floor"] = floor
    walk = "messages m"
    if conv_key is None:
        # Walk the primary key down from the newest and stop at the page's end. Left alone,
        # both planners take the (conv_key, id) index once per conversation and sort every
        # readable message of the window (measured at 1M rows: 2-20 ms against 0.4 ms).
        if is_mariadb(conn):
            walk = "messages m FORCE INDEX (PRIMARY)"
        else:  # a unary + keeps SQLite from using an index on the column
            recent = ["+" + readable if c == readable else c for c in recent]
    found = [r[0] for r in conn.execute(text(
        f"SELECT m.id FROM {walk} WHERE {' AND '.join(recent)} AND {exact} "
        "ORDER BY m.id DESC LIMIT :n"), params)]
    if len(found) >= count or floor is None or floor <= 1:
        return found  # a full page, or the walk covered every message
    params["n"] = count - len(found)
    older = " AND ".join(scope) + " AND m.id < :floor"
    pieces = [p for n in needles for p in n["pieces"]]
    mariadb = is_mariadb(conn)
    terms = [t for t in map(_mroonga_term, pieces) if t] if mariadb else []
    if terms:
        params["ft"] = " ".join(terms)
        sql = (f"SELECT m.id FROM {TABLE} s JOIN messages m ON m.id = s.id "
               f"WHERE MATCH(s.content) AGAINST(:ft IN BOOLEAN MODE) AND {older} "
               f"AND {exact} ORDER BY m.id DESC LIMIT :n")
    else:  # SQLite's trigrams narrow where they can; the rest is a scan of the user's
        # conversations (pieces under 3 characters on SQLite, symbols alone on Mroonga)
        long_pieces = [] if mariadb else [p for p in pieces  # FTS5 takes no NUL either
                                          if len(p) >= 3 and "\x00" not in p]
        indexed = ""
        if long_pieces:  # trigrams need 3 characters; shorter pieces rely on the scan
            indexed = f" AND m.id IN (SELECT rowid FROM {TABLE} WHERE {TABLE} MATCH :fts)"
            params["fts"] = " AND ".join(_fts5_term(p) for p in long_pieces)
        sql = (f"SELECT m.id FROM messages m WHERE {older}{indexed} AND {exact} "
               "ORDER BY m.id DESC LIMIT :n")
    return found + [r[0] for r in conn.execute(text(sql), params)]


def python_pattern(pattern: str) -> re.Pattern:
    """The needle's pattern for Python (the same source serves PCRE)."""
    return re.compile(pattern, re.IGNORECASE)
