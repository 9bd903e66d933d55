"""Search (docs/protocol.md, Search): the messages a user can read that match a query, newest first.

The query is split here, never handed to an engine's syntax: balanced ``"..."``
are phrases, the rest is split on white space into terms, and every character
(operators, a lone ``"``) is plain text. Each term or phrase is a *needle*:
it matches case-insensitively anywhere, except that a needle starting with a
letter or digit of a script written with spaces (Latin, Cyrillic, ...) must
start a word (``deplo`` finds ``deployment``, not ``redeploy``); Chinese,
Japanese and Korean needles match inside words. All needles must match.
``chat.store.search_sql`` runs the query on the database's full-text engine.
"""
from __future__ import annotations

import json
import logging
import re
from functools import lru_cache
from typing import Any

from ..errors import BadRequest, ChatError
from ..extensions import db
from ..store import queries, reads, replica, search_sql
from . import validation
from .i18n import N_
from .reading import resolve_conversation
from .shapes import message_frame

log = logging.getLogger("chat.search")

QUERY_MAX = 200
LIMIT_MAX = 100
LIMIT_DEFAULT = 20

_CJK_RANGES = ((0x1100, 0x11FF), (0x2E80, 0x9FFF), (0xA960, 0xA97F), (0xAC00, 0xD7FF),
               (0xF900, 0xFAFF), (0xFE30, 0xFE4F), (0xFF00, 0xFFEF), (0x20000, 0x3FFFF))
_PHRASE = re.compile(r'"([^"]*)"')


class SearchUnavailable(ChatError):
    """The database has no full-text engine for search (for example MariaDB without Mroonga)."""

    status, code = 503, "server_busy"
    default_message = "search is not available on this server"


def is_cjk(ch: str) -> bool:
    """A character of Chinese, Japanese or Korean (or their full-width punctuation)."""
    point = ord(ch)
    return any(lo <= point <= hi for lo, hi in _CJK_RANGES)


def is_word_char(ch: str) -> bool:
    """A letter or digit of a script written with spaces between words."""
    return ch.isalnum() and not is_cjk(ch)


def _needle(text: str) -> dict:
    """A term or phrase as the store takes it: its pieces, a regex source (white space
    inside a phrase matches any run of white space), and whether it must start a word."""
    pieces = text.split()
    return {"pieces": pieces, "pattern": r"\s+".join(re.escape(p) for p in pieces),
            "word": is_word_char(pieces[0][0])}


def parse_query(q: Any) -> list[dict]:
    """The needles of a query; 400 unless it is 1 to 200 code points after trimming."""
    if not isinstance(q, str) or not 1 <= len(q.strip()) <= QUERY_MAX:
        raise BadRequest(N_("q must be 1 to 200 characters"))
    texts: list[str] = []
    for i, part in enumerate(_PHRASE.split(q.strip())):
        if i % 2:  # inside a pair of quotes: one phrase
            if part.strip():
                texts.append(" ".join(part.split()))
        else:
            texts.extend(part.split())
    if not texts:  # only empty quotes: search for them as they are
        texts = [q.strip()]
    unique: dict[str, str] = {}
    for t in texts:  # the same term twice, in any case, is one needle
        unique.setdefault(t.casefold(), t)
    return [_needle(t) for t in unique.values()]


@lru_cache(maxsize=256)
def _compiled(spec: str) -> tuple[tuple[re.Pattern, bool], ...]:
    return tuple((search_sql.python_pattern(n["pattern"]), n["word"]) for n in json.loads(spec))


def _spans(content: str, pattern: re.Pattern, word: bool) -> list[tuple[int, int]]:
    """Every place the needle matches in ``content`` (overlapping ones too)."""
    found = []
    pos = 0
    while True:
        hit = pattern.search(content, pos)
        if hit is None:
            return found
        start = hit.start()
        if not word or start == 0 or not is_word_char(content[start - 1]):
            found.append((start, hit.end()))
        pos = start + 1


def matches(content: str | None, spec: str) -> bool:
    """The exact rule (every needle matches); SQLite runs it on each candidate row."""
    if not content:
        return False
    return all(_spans(content, p, w) for p, w in _compiled(spec))


def highlights(content: str, needles: list[dict]) -> list[list[int]]:
    """``[[start, end], ...]``: code point offsets of every match, merged where they touch."""
    spans = sorted(s for p, w in _compiled(json.dumps(needles)) for s in _spans(content, p, w))
    merged: list[list[int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return merged


class Search:
    """Full-text search over the messages a user can read."""

    def __init__(self, window: int = 20000) -> None:
        self.window = max(1, window)
        self.ready = False  # once the index was found, it stays (no query per search)

    def unavailable(self) -> str | None:
        """Why search cannot run here, or ``None``."""
        if self.ready:
            return None
        reason = search_sql.index_missing(db.session.connection())
        self.ready = reason is None
        return reason

    def index_pending(self, engine, batch: int = 500) -> int:
        """Add messages committed since the last round to the index (MariaDB); how many
        message ids it covered (0 on SQLite, whose triggers index at once).

        Small batches: each holds shared locks on its rows while Mroonga indexes them
        (about 10 ms for 500), and a reaction to one of those newest messages waits.
        Each round is one query on an autocommit connection (``search_sql.index_round``):
        a round through SQLAlchemy's engine cost about a millisecond of the event loop's
        time, twenty times a second while messages flow. Needs an app context."""
        if engine.dialect.name == "sqlite":
            return 0  # SQLite's triggers index at once
        if not self.ready:  # no index (no Mroonga): nothing to keep
            with engine.connect() as conn:
                self.ready = search_sql.index_missing(conn) is None
            if not self.ready:
                return 0
        total = 0
        while True:
            sets = reads.rows_in_one_transaction(search_sql.index_round(batch),
                                                 "READ COMMITTED")
            done = search_sql.round_done(sets[-1][0])
            total += done
            if done < batch:  # caught up, or another process holds the round
                return total

    def index_lag(self, engine) -> int:
        """Message ids not yet in the index (for /metrics)."""
        with engine.connect() as conn:
            return search_sql.index_lag(conn) if self.ready else 0

    def log_status(self) -> None:
        """Say at start whether search works (and why not)."""
        reason = self.unavailable()
        if reason is None:
            log.info("event=search_ready engine=%s", _engine_name())
        else:
            log.warning("event=search_unavailable reason=%r", reason)
        db.session.rollback()

    def search(self, user_id: int, q: Any, user: Any = None, group: Any = None,
               before_id: Any = None, limit_text: str | None = None) -> dict:
        """``{"messages", "has_more"}``: matches newest first, each with ``highlights``;
        ``limit_text`` as the query string gives it."""
        # docs/protocol.md 3.4: ids, then the conversation searched, then q and the limit.
        before = validation.cursor(before_id, "before_id")
        if user is not None and group is not None:
            raise BadRequest(N_("give user_id or group_id, not both"))
        key = None
        if user is not None or group is not None:
            key = resolve_conversation(user_id, group if group is not None else user,
                                       group is not None)[0]
        needles = parse_query(q)
        size = (LIMIT_DEFAULT if limit_text is None else
                validation.query_number(limit_text, "limit", low=1, high=LIMIT_MAX))
        reason = self.unavailable()
        if reason is not None:
            raise SearchUnavailable(reason)
        # The matching and the rows on the replica when it holds everything (store.replica).
        ids, rows = replica.read(lambda: self._find(user_id, needles, key, before, size))
        found = []
        for row in rows:
            frame = message_frame(row)
            frame["highlights"] = highlights(frame["content"], needles)
            found.append(frame)
        return {"messages": found, "has_more": len(ids) > size}

    def _find(self, user_id: int, needles: list[dict], key: str | None, before: int | None,
              size: int) -> tuple[list[int], list]:
        """The ids of up to ``size + 1`` matches and the rows of the first ``size``."""
        ids = search_sql.search_ids(replica.connection(), user_id, needles, key, before,
                                    size + 1, matches, self.window)
        rows = sorted(queries.message_rows_by_id(ids[:size]), key=lambda r: r.id, reverse=True)
        return ids, rows


def _engine_name() -> str:
    return "mroonga" if search_sql.is_mariadb(db.session.connection()) else "fts5-trigram"
