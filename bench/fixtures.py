"""The benchmark's own database and users, built fast.

A database of its own on the shared MariaDB (``chat_bench`` by default, dropped
and created again for every run, schema from the migrations), and a Redis
prefix of its own. A few users are registered through the HTTP API; the
thousands the scenarios need are inserted in bulk with the same password hash
and a token each (``auth_tokens`` keeps the SHA-256 of the token), since
hashing 10,000 passwords one by one would take minutes.
"""
from __future__ import annotations

import hashlib
import json
import secrets
import time
from datetime import datetime, timezone

import pymysql

ROOT_URL = "mysql+pymysql://root@127.0.0.1:3306"


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class BenchDB:
    """The benchmark database: schema, bulk users, follows, groups, history rows."""

    def __init__(self, name: str = "chat_bench", host: str = "127.0.0.1", port: int = 3306,
                 user: str = "root", password: str = "") -> None:
        self.name = name
        self.host, self.port, self.user, self.password = host, port, user, password
        self.users: list[tuple[int, str]] = []  # the bulk pool: (user id, token)
        self.next_user = 0
        self.search_index = True  # False: dropped after the migrations

    @property
    def url(self) -> str:
        auth = self.user + (f":{self.password}" if self.password else "")
        return f"mysql+pymysql://{auth}@{self.host}:{self.port}/{self.name}?charset=utf8mb4"

    def connect(self, database: bool = True, multi_statements: bool = False):
        from pymysql.constants import CLIENT
        return pymysql.connect(host=self.host, port=self.port, user=self.user,
                               password=self.password, database=self.name if database else None,
                               charset="utf8mb4", autocommit=False,
                               client_flag=CLIENT.MULTI_STATEMENTS if multi_statements else 0)

    # -- schema -----------------------------------------------------------------

    def recreate(self) -> None:
        """Drop the benchmark database if it exists (it is ours) and build it anew."""
        conn = self.connect(database=False)
        try:
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{self.name}`")
                cur.execute(f"CREATE DATABASE `{self.name}` CHARACTER SET utf8mb4 "
                            "COLLATE utf8mb4_bin")
            conn.commit()
        finally:
            conn.close()
        self.migrate()

    def migrate(self) -> None:
        """The schema, by the project's migrations (as production builds it)."""
        from flask_migrate import upgrade

        from app import create_app
        app = create_app("testing", SQLALCHEMY_DATABASE_URI=self.url, REDIS_URL=None)
        with app.app_context():
            upgrade()
            from chat.extensions import db
            if not self.search_index:  # --no-search-index: what keeping the index costs
                from chat.store import search_sql
                search_sql.drop_index(db.session.connection())
                db.session.commit()
            db.engine.dispose()

    def drop(self) -> None:
        """Remove the benchmark database."""
        conn = self.connect(database=False)
        try:
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{self.name}`")
            conn.commit()
        finally:
            conn.close()

    # -- users ------------------------------------------------------------------

    def password_hash_of(self, user_id: int) -> str:
        """The stored hash of a user registered through the API (reused for the pool)."""
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT password_hash FROM users WHERE id=%s", (user_id,))
                return cur.fetchone()[0]
        finally:
            conn.close()

    def create_pool(self, count: int, password_hash: str) -> None:
        """``count`` users with a token each, in bulk."""
        now = _now()
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT COALESCE(MAX(id), 0) FROM users")
                base = cur.fetchone()[0] + 1
                rows, tokens, pool = [], [], []
                for i in range(count):
                    uid = base + i
                    name = f"bench{uid}"
                    token = secrets.token_urlsafe(32)
                    rows.append((uid, name, name, password_hash, now))
                    tokens.append((uid, hashlib.sha256(token.encode()).hexdigest(), "api",
                                   "bench", now))
                    pool.append((uid, token))
                for start in range(0, count, 2000):
                    cur.executemany("INSERT INTO users (id, username, username_key, "
                                    "password_hash, created_at) VALUES (%s,%s,%s,%s,%s)",
                                    rows[start:start + 2000])
                    cur.executemany("INSERT INTO auth_tokens (user_id, token_hash, kind, name, "
                                    "created_at) VALUES (%s,%s,%s,%s,%s)",
                                    tokens[start:start + 2000])
            conn.commit()
        finally:
            conn.close()
        self.users.extend(pool)

    def take(self, count: int) -> list[tuple[int, str]]:
        """The next ``count`` users of the pool (each scenario gets users of its own)."""
        if self.next_user + count > len(self.users):
            raise RuntimeError(f"user pool too small: need {count} more, "
                               f"{len(self.users) - self.next_user} left")
        block = self.users[self.next_user:self.next_user + count]
        self.next_user += count
        return block

    def follow_both_ways(self, pairs: list[tuple[int, int]]) -> None:
        """Mutual follows, so that the stranger rule stays out of the way."""
        now = _now()
        rows = [(a, b, now) for a, b in pairs] + [(b, a, now) for a, b in pairs]
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                for start in range(0, len(rows), 5000):
                    cur.executemany("INSERT IGNORE INTO follows (follower_id, followee_id, "
                                    "created_at) VALUES (%s,%s,%s)", rows[start:start + 5000])
            conn.commit()
        finally:
            conn.close()

    def create_group(self, name: str, member_ids: list[int]) -> int:
        """A group owned by the first member, with memberships and read cursors."""
        now = _now()
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("INSERT INTO chat_groups (name, description, icon, owner_id, "
                            "created_at) VALUES (%s,%s,%s,%s,%s)",
                            (name[:64], "benchmark group", "", member_ids[0], now))
                gid = cur.lastrowid
                cur.executemany("INSERT INTO memberships (group_id, user_id, role, joined_at) "
                                "VALUES (%s,%s,%s,%s)",
                                [(gid, uid, "owner" if i == 0 else "member", now)
                                 for i, uid in enumerate(member_ids)])
                cur.execute("SELECT last_id FROM message_sequence WHERE id=1")
                last = cur.fetchone()[0]
                cur.executemany("INSERT INTO read_cursors (user_id, conv_key, peer_id, group_id, "
                                "last_read_id) VALUES (%s,%s,NULL,%s,%s)",
                                [(uid, f"g:{gid}", gid, last) for uid in member_ids])
            conn.commit()
            return gid
        finally:
            conn.close()

    def create_pair_groups(self, pairs: list[tuple[int, int]]) -> list[int]:
        """A group of two for each pair (owned by the first), in bulk; their ids, in order."""
        now = _now()
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                # The ids are chosen here, as for the users: the database is ours alone.
                cur.execute("SELECT COALESCE(MAX(id), 0) FROM chat_groups")
                base = cur.fetchone()[0] + 1
                ids = [base + i for i in range(len(pairs))]
                cur.execute("SELECT last_id FROM message_sequence WHERE id=1")
                last = cur.fetchone()[0]
                groups, members, cursors = [], [], []
                for gid, (a, b) in zip(ids, pairs):
                    groups.append((gid, f"pair {a}-{b}", "benchmark pair", "", a, now))
                    members += [(gid, a, "owner", now), (gid, b, "member", now)]
                    cursors += [(a, f"g:{gid}", gid, last), (b, f"g:{gid}", gid, last)]
                for start in range(0, len(groups), 2000):
                    cur.executemany("INSERT INTO chat_groups (id, name, description, icon, "
                                    "owner_id, created_at) VALUES (%s,%s,%s,%s,%s,%s)",
                                    groups[start:start + 2000])
                for start in range(0, len(members), 5000):
                    cur.executemany("INSERT INTO memberships (group_id, user_id, role, "
                                    "joined_at) VALUES (%s,%s,%s,%s)",
                                    members[start:start + 5000])
                    cur.executemany("INSERT INTO read_cursors (user_id, conv_key, peer_id, "
                                    "group_id, last_read_id) VALUES (%s,%s,NULL,%s,%s)",
                                    cursors[start:start + 5000])
            conn.commit()
            return ids
        finally:
            conn.close()

    # -- history ----------------------------------------------------------------

    def fill_history(self, total: int, every: int, user_a: int, user_b: int,
                     filler_base: int, filler_pairs: int = 500, chunk: int = 100_000) -> dict:
        """``total`` messages; one in ``every`` is in the conversation of ``user_a`` and ``user_b``
        (with replies and reactions).

        The rest are spread over ``filler_pairs`` private chats of pool users (with no
        read cursors, so nobody's hello or sync sees them). Ids come after the
        current ``message_sequence.last_id``, which is moved past them.
        """
        lo, hi = sorted((user_a, user_b))
        conv = f"p:{lo}:{hi}"
        # In the measured conversation, one message in five answers the one before it and
        # one in three carries reactions, so a page reads replies and reactions too.
        in_conv, n = f"s.seq % {every} = 0", f"(s.seq DIV {every})"
        reactions = json.dumps([["\U0001f44d", [user_a, user_b]], ["\U0001f389", [user_a]]],
                               ensure_ascii=False)  # utf8mb4 connection; no quote inside
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT last_id FROM message_sequence WHERE id=1 FOR UPDATE")
                base = cur.fetchone()[0]
                for start in range(1, total + 1, chunk):
                    end = min(total, start + chunk - 1)
                    cur.execute(
                        f"""INSERT INTO messages (id, conv_key, sender_id, recipient_id, group_id,
                                content, client_id, created_at, reply_to_id, reply_sender_id,
                                reply_excerpt, reactions)
                        SELECT {base} + s.seq,
                          IF(s.seq % {every} = 0, '{conv}',
                             CONCAT('p:', {filler_base} + 2 * (s.seq % {filler_pairs}), ':',
                                    {filler_base} + 2 * (s.seq % {filler_pairs}) + 1)),
                          IF(s.seq % {every} = 0,
                             IF((s.seq DIV {every}) % 2 = 0, {user_a}, {user_b}),
                             {filler_base} + 2 * (s.seq % {filler_pairs}) + (s.seq % 2)),
                          IF(s.seq % {every} = 0,
                             IF((s.seq DIV {every}) % 2 = 0, {user_b}, {user_a}),
                             {filler_base} + 2 * (s.seq % {filler_pairs}) + 1 - (s.seq % 2)),
                          NULL,
                          CONCAT('history message ', s.seq, ': lorem ipsum dolor sit amet'),
                          NULL,
                          NOW(6) - INTERVAL ({total} - s.seq) SECOND,
                          IF({in_conv} AND {n} % 5 = 1, {base} + s.seq - {every}, NULL),
                          IF({in_conv} AND {n} % 5 = 1,
                             IF((s.seq DIV {every}) % 2 = 0, {user_b}, {user_a}), NULL),
                          IF({in_conv} AND {n} % 5 = 1,
                             CONCAT('history message ', s.seq - {every}), NULL),
                          IF({in_conv} AND {n} % 3 = 0, '{reactions}', NULL)
                        FROM seq_{start}_to_{end} AS s""")
                    conn.commit()
                cur.execute("UPDATE message_sequence SET last_id=%s WHERE id=1", (base + total,))
                cur.execute("SELECT MIN(id), MAX(id), COUNT(*) FROM messages WHERE conv_key=%s",
                            (conv,))
                first, last, count = cur.fetchone()
                for uid, peer in ((user_a, user_b), (user_b, user_a)):
                    cur.execute("INSERT INTO read_cursors (user_id, conv_key, peer_id, group_id, "
                                "last_read_id) VALUES (%s,%s,%s,NULL,%s) ON DUPLICATE KEY "
                                "UPDATE last_read_id=VALUES(last_read_id)",
                                (uid, conv, peer, last))
            conn.commit()
            indexed = self._index_for_search(conn, base + total)
            with conn.cursor() as cur:
                cur.execute("ANALYZE TABLE messages")
                cur.fetchall()
                cur.execute("SELECT COUNT(*) FROM messages")
                table = cur.fetchone()[0]
        finally:
            conn.close()
        return {"first_id": first, "last_id": last, "conversation_messages": count,
                "table_messages": table, "search_indexed": indexed}

    def index_backlog(self) -> int:
        """Index for search what the last scenario's server left unindexed (its indexer
        falls behind while a rate search drives it past what it can index, and the server
        is stopped with the backlog): how many messages were indexed. Each scenario then
        starts as the first did, with the index caught up."""
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT COALESCE(MAX(id), 0) FROM messages")
                upto = cur.fetchone()[0]
            return self._index_for_search(conn, upto)
        finally:
            conn.close()

    def settle(self, flush: bool, at_most: float = 60.0,
               dirty_share: float = 0.02) -> tuple[int, float]:
        """With ``flush`` (the run's own mariadbd only: a global setting is changed for the
        while), have InnoDB write back what the last scenario left dirty in its buffer
        pool, until at most ``dirty_share`` of it is dirty or ``at_most`` seconds: a rate
        search's hundreds of thousands of INSERTs leave it flushing for minutes at its
        idle pace, which slows every COMMIT of the scenario that follows. Returns (dirty
        pages found, seconds waited)."""
        conn = self.connect()
        try:
            def pages() -> tuple[int, int]:
                with conn.cursor() as cur:
                    cur.execute("SHOW GLOBAL STATUS WHERE Variable_name IN "
                                "('Innodb_buffer_pool_pages_dirty', "
                                "'Innodb_buffer_pool_pages_total')")
                    found = dict(cur.fetchall())
                return (int(found.get("Innodb_buffer_pool_pages_dirty", 0)),
                        int(found.get("Innodb_buffer_pool_pages_total", 1)))
            start = time.time()
            dirty, total = pages()
            first = dirty
            if not flush or dirty <= dirty_share * total:
                return first, 0.0
            with conn.cursor() as cur:
                cur.execute("SELECT @@GLOBAL.innodb_max_dirty_pages_pct")
                kept = cur.fetchone()[0]
                cur.execute("SET GLOBAL innodb_max_dirty_pages_pct = 0")  # flush now
            try:
                while dirty > dirty_share * total and time.time() - start < at_most:
                    time.sleep(0.5)
                    dirty, total = pages()
            finally:
                with conn.cursor() as cur:
                    cur.execute("SET GLOBAL innodb_max_dirty_pages_pct = %s", (kept,))
            return first, time.time() - start
        finally:
            conn.close()

    @staticmethod
    def _index_for_search(conn, upto: int, chunk: int = 50_000) -> int:
        """Index the messages above the search position up to ``upto`` and move it, as
        ``flask search-reindex`` does (``chat.store.search_sql.reindex_batch``), in
        bulk. Without it the server measured next would spend the measurement indexing
        a million rows written behind its back (MariaDB's core busy), which no running
        install does: its messages are indexed as they come. How many were indexed
        (0 when the index is off, ``--no-search-index``)."""
        with conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM information_schema.tables WHERE "
                        "table_schema = DATABASE() AND table_name = 'message_search_position'")
            if not cur.fetchone()[0]:
                return 0
            cur.execute("SELECT last_id FROM message_search_position WHERE id = 1 FOR UPDATE")
            after = cur.fetchone()[0]
            done = 0
            for low in range(after, upto, chunk):
                high = min(upto, low + chunk)
                done += cur.execute("REPLACE INTO message_search (id, content) SELECT id, "
                                    "content FROM messages WHERE id > %s AND id <= %s AND "
                                    "recalled = 0", (low, high))
            cur.execute("UPDATE message_search_position SET last_id = GREATEST(last_id, %s) "
                        "WHERE id = 1", (upto,))
        conn.commit()
        return done

    def message_count(self) -> int:
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT COUNT(*) FROM messages")
                return cur.fetchone()[0]
        finally:
            conn.close()


def delete_redis_prefix(url: str, prefix: str) -> int:
    """Remove the keys this run wrote (never FLUSHDB: the server is shared)."""
    import redis
    client = redis.Redis.from_url(url)
    removed = 0
    for key in client.scan_iter(match=prefix + "*", count=1000):
        removed += client.delete(key)
    return removed


class ApiUser:
    """A user made through the HTTP API: register, log in for a token (as a script would)."""

    def __init__(self, base: str, username: str, password: str) -> None:
        self.base = base
        self.username = username
        self.call("POST", "/api/register", {"username": username, "password": password},
                  expect=201)
        body = self.call("POST", "/api/tokens", {"username": username, "password": password},
                         expect=201)
        self.token: str = body["token"]
        self.user_id: int = body["user_id"]

    def call(self, method: str, path: str, body=None, expect: int = 200) -> dict:
        import json
        import urllib.request
        req = urllib.request.Request(self.base + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else None)
        req.add_header("Content-Type", "application/json")
        if getattr(self, "token", None):
            req.add_header("Authorization", f"Bearer {self.token}")
        with urllib.request.urlopen(req, timeout=30) as resp:
            if resp.status != expect:
                raise RuntimeError(f"{method} {path}: {resp.status}, wanted {expect}")
            return json.loads(resp.read() or b"{}")

    def follow(self, other: "ApiUser") -> None:
        """PUT /api/users/<id>/follow."""
        self.call("PUT", f"/api/users/{other.user_id}/follow")
