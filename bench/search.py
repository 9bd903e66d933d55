"""Search benchmark: query latency, index size and the cost of indexing on writes.

    .venv/bin/python -m bench.search --messages 1000000 --data /tmp/chat-search-1m
    .venv/bin/python -m bench.search --messages 1000000 --data /tmp/chat-search-1m --reuse

For each engine: ``messages`` rows in 1,000 group conversations (Chinese and
English words), a user who is a member of 100 of them, then p50/p99 of the
search query (``chat.store.search_sql.search_ids`` plus the page's rows, as the
API runs it) for a two-character Chinese word, an English prefix and two terms;
the index's size against the messages table's; and the rate of batched
message inserts (1,000 per transaction, as the committer writes) with the
index on (kept by its triggers, or on MariaDB by the indexer's statements after each
batch), as a ratio to the same inserts without it (``--timed``
messages into fresh databases). MariaDB runs on a private ``mariadbd`` with
Mroonga (tests/mroonga.py); the shared one is not touched.

The searched data set is written in bulk (raw multi-row inserts, the index
built once at the end) into ``--data``; ``--reuse`` searches the data set left
there by an earlier run of the same size instead of writing it again.
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path

from sqlalchemy import text

CHINESE = ["地铁", "周五", "会议", "项目", "上线", "早上", "晚饭", "北京", "上海", "时间",
           "问题", "测试", "发布", "数据", "地址", "朋友", "电话", "明天", "今天", "周末"]
ENGLISH = ["deployment", "release", "meeting", "server", "database", "friday", "address",
           "dinner", "station", "project", "review", "merge", "build", "error", "search",
           "ticket", "design", "budget", "report", "coffee"]
CONVERSATIONS, MEMBER_OF, BATCH = 1000, 100, 1000
QUERIES = {"chinese_2": "地铁", "english_prefix": "deplo", "two_terms": "release 周五"}


def _content(rng: random.Random) -> str:
    words = [rng.choice(CHINESE) if rng.random() < 0.5 else rng.choice(ENGLISH)
             for _ in range(rng.randint(4, 12))]
    return " ".join(words) if rng.random() < 0.5 else "".join(words)


def _app(url: str):
    from app import create_app
    return create_app("testing", SQLALCHEMY_DATABASE_URI=url, REDIS_URL=None,
                      CHAT_DB_TIMEOUT=0)  # the bulk index build runs for minutes


def _migrate(url: str) -> None:
    from flask_migrate import upgrade
    app = _app(url)
    with app.app_context():
        upgrade()


def _fill(url: str, count: int, timed: int, seed: int = 7, index: bool = False) -> float:
    """Insert ``count`` messages in batches; returns messages per second of the first
    ``timed`` ones (so that runs of different sizes compare). ``index``: on MariaDB, the
    server's indexer's work after each batch is counted too (SQLite's triggers index
    inside the INSERT)."""
    from chat.extensions import db
    from chat.store import search_sql
    rng = random.Random(seed)
    app = _app(url)
    now = datetime(2026, 1, 1)
    with app.app_context():
        start = time.perf_counter()
        rate = 0.0
        for first in range(1, count + 1, BATCH):
            if first > timed and not rate:
                rate = (first - 1) / (time.perf_counter() - start)
            rows = []
            for mid in range(first, min(first + BATCH, count + 1)):
                group = rng.randint(1, CONVERSATIONS)
                rows.append({"id": mid, "k": f"g:{group}", "s": rng.randint(1, 50), "g": group,
                             "c": _content(rng), "t": now})
            db.session.execute(text(
                "INSERT INTO messages (id, conv_key, sender_id, recipient_id, group_id, "
                "content, created_at, reply_recalled, mention_all, recalled) VALUES "
                "(:id, :k, :s, NULL, :g, :c, :t, 0, 0, 0)"), rows)
            db.session.commit()
            if index and search_sql.is_mariadb(db.session.connection()):
                while search_sql.index_next(db.session.connection(), 500):
                    db.session.commit()
                db.session.commit()
        rate = rate or count / (time.perf_counter() - start)
        me = 1
        if db.session.connection().dialect.name != "sqlite":  # no user or group rows here
            db.session.execute(text("SET SESSION foreign_key_checks = 0"))
        db.session.execute(text("INSERT INTO read_cursors (user_id, conv_key, group_id, "
                                "last_read_id) VALUES (:u, :k, :g, 0)"),
                           [{"u": me, "k": f"g:{g}", "g": g}
                            for g in range(1, CONVERSATIONS + 1, CONVERSATIONS // MEMBER_OF)])
        db.session.commit()
    return rate


def _rows(count: int, seed: int = 7):
    """The data set's messages as tuples, in id order (the same for every engine)."""
    rng = random.Random(seed)
    now = datetime(2026, 1, 1)
    for mid in range(1, count + 1):
        group = rng.randint(1, CONVERSATIONS)
        yield (mid, f"g:{group}", rng.randint(1, 50), None, group, _content(rng), now, 0, 0, 0)


def _bulk_fill(url: str, count: int) -> float:
    """Write ``count`` messages with the index off, then build it once; returns seconds."""
    from chat.extensions import db
    from chat.store import search_sql
    start = time.perf_counter()
    with _app(url).app_context():
        conn = db.session.connection()
        search_sql.drop_index(conn)
        db.session.commit()
        raw = db.session.connection().connection.driver_connection
        sqlite = conn.dialect.name == "sqlite"
        cur = raw.cursor()
        if sqlite:
            cur.execute("PRAGMA synchronous = OFF")
        else:
            cur.execute("SET SESSION foreign_key_checks = 0, unique_checks = 0")
        mark = "?" if sqlite else "%s"
        insert = ("INSERT INTO messages (id, conv_key, sender_id, recipient_id, group_id, "
                  "content, created_at, reply_recalled, mention_all, recalled) VALUES "
                  f"({', '.join([mark] * 10)})")  # only markers: PyMySQL sends one multi-row INSERT
        batch: list = []
        for row in _rows(count):
            batch.append(row)
            if len(batch) == 5000:
                cur.executemany(insert, batch)
                batch = []
        if batch:
            cur.executemany(insert, batch)
        cur.executemany(
            f"INSERT INTO read_cursors (user_id, conv_key, group_id, last_read_id) "
            f"VALUES ({mark}, {mark}, {mark}, {mark})",
            [(1, f"g:{g}", g, 0) for g in range(1, CONVERSATIONS + 1, CONVERSATIONS // MEMBER_OF)])
        raw.commit()
        conn = db.session.connection()
        search_sql.create_index(conn)
        search_sql.clear_index(conn)
        after = 0
        while after is not None:
            after = search_sql.reindex_batch(db.session.connection(), after, 200_000)
            db.session.commit()
    return time.perf_counter() - start


def _drop_triggers(url: str) -> None:
    from chat.extensions import db
    from chat.store import search_sql
    with _app(url).app_context():
        search_sql.drop_index(db.session.connection())
        db.session.commit()


def _latency(url: str, runs: int, window: int) -> dict:
    from chat.extensions import db
    from chat.service.search import highlights, matches, parse_query
    from chat.store import queries, search_sql
    out = {}
    with _app(url).app_context():
        for name, q in QUERIES.items():
            needles = parse_query(q)
            times, found = [], 0
            for _ in range(runs):
                t0 = time.perf_counter()
                ids = search_sql.search_ids(db.session.connection(), 1, needles, None, None, 21,
                                            matches, window)
                for row in queries.message_rows_by_id(ids[:20]):
                    highlights(row.content, needles)
                times.append((time.perf_counter() - t0) * 1000)
                found = len(ids)
                db.session.rollback()
            times.sort()
            out[name] = {"q": q, "p50_ms": round(statistics.median(times), 2),
                         "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))], 2),
                         "found": found}
    return out


def _sizes(url: str, datadir: Path | None) -> dict:
    from chat.extensions import db
    with _app(url).app_context():
        conn = db.session.connection()
        if conn.dialect.name == "sqlite":
            rows = {r[0]: r[1] for r in conn.execute(text(
                "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"))}
            index = sum(v for k, v in rows.items() if k.startswith("message_search"))
            table = sum(v for k, v in rows.items()
                        if k == "messages" or k.startswith(("ix_messages", "sqlite_autoindex_messages")))
        else:
            conn.execute(text("ANALYZE TABLE messages")).all()  # fresh data_length
            row = conn.execute(text(
                "SELECT data_length + index_length FROM information_schema.TABLES "
                "WHERE table_schema = DATABASE() AND table_name = 'messages'")).scalar()
            table = int(row or 0)
            # Groonga's files are allocated sparsely: count the blocks in use.
            index = (sum(p.stat().st_blocks * 512 for p in datadir.rglob("chat.mrn*"))
                     if datadir else 0)
    return {"messages_bytes": table, "index_bytes": index,
            "index_to_messages": round(index / table, 2) if table else None}


def _dataset(folder: Path, engine: str, count: int, reuse: bool) -> Path | None:
    """Where the searched data set of ``engine`` lives; ``None`` when it must be written."""
    marker = folder / f"{engine}.json"
    if reuse and marker.exists() and json.loads(marker.read_text()).get("messages") == count:
        return marker
    if engine == "sqlite":
        (folder / "search.db").unlink(missing_ok=True)
    else:
        shutil.rmtree(folder / "mariadb", ignore_errors=True)
    marker.unlink(missing_ok=True)
    return None


def run_engine(engine: str, count: int, runs: int, windows: list[int], data: Path,
               reuse: bool, timed: int) -> dict:
    """Build or reuse the data set, measure latency and size, then the insert ratio."""
    result: dict = {"engine": engine, "messages": count}
    server = None
    scratch = Path(tempfile.mkdtemp(prefix="chat-search-bench-"))
    data.mkdir(parents=True, exist_ok=True)
    marker = _dataset(data, engine, count, reuse)
    try:
        if engine == "sqlite":
            url = f"sqlite:///{data}/search.db"
            pair = [f"sqlite:///{scratch}/on.db", f"sqlite:///{scratch}/off.db"]
            datadir = None
        else:
            import sqlalchemy

            from tests.mroonga import PrivateMariaDB
            server = PrivateMariaDB(data / "mariadb", buffer_pool="1G").start()
            engine_ = sqlalchemy.create_engine(server.url + "/")
            with engine_.connect() as conn:
                for name in ("chat_on", "chat_off"):
                    conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
                    conn.exec_driver_sql(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 "
                                         "COLLATE utf8mb4_bin")
            engine_.dispose()
            url = server.database_url
            pair = [server.url + "/chat_on?charset=utf8mb4",
                    server.url + "/chat_off?charset=utf8mb4"]
            datadir = server.folder / "data"
        if marker is None:
            _migrate(url)
            result["bulk_fill_s"] = round(_bulk_fill(url, count), 1)
            (data / f"{engine}.json").write_text(json.dumps({"messages": count}))
        result["latency"] = {f"window_{w}": _latency(url, runs, w) for w in windows}
        result["size"] = _sizes(url, datadir)
        if timed:
            for u in pair:
                _migrate(u)
            _drop_triggers(pair[1])
            off = _fill(pair[1], timed, timed)
            on = _fill(pair[0], timed, timed, index=True)
            result["insert_rate_index_on"] = round(on)
            result["insert_rate_index_off"] = round(off)
            result["insert_ratio"] = round(on / off, 2)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    return result


def main() -> None:
    """Run the chosen engines and print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--engines", default="sqlite,mroonga")
    parser.add_argument("--out", default="")
    parser.add_argument("--windows", default="20000,1",
                        help="CHAT_SEARCH_WINDOW values to time (1: almost always the index)")
    parser.add_argument("--data", default="/tmp/chat-search-bench",
                        help="folder that keeps the searched data set between runs")
    parser.add_argument("--reuse", action="store_true",
                        help="search the data set an earlier run of the same size left in --data")
    parser.add_argument("--timed", type=int, default=50_000,
                        help="messages inserted one batch at a time for the on/off ratio (0: skip)")
    args = parser.parse_args()
    results = [run_engine(e, args.messages, args.runs, [int(w) for w in args.windows.split(",")],
                          Path(args.data), args.reuse, args.timed)
               for e in args.engines.split(",")]
    text_out = json.dumps(results, indent=2, ensure_ascii=False)
    print(text_out)
    if args.out:
        Path(args.out).write_text(text_out + "\n")


if __name__ == "__main__":
    main()
