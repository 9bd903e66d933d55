"""Search benchmark: query latency, index size and the cost of indexing on writes.

    .venv/bin/python -m bench.search --messages 200000        # SQLite and MariaDB+Mroonga
    .venv/bin/python -m bench.search --engines sqlite --messages 1000000

For each engine: ``messages`` rows in 1,000 group conversations (Chinese and
English words), a user who is a member of 100 of them, then p50/p99 of the
search query (``chat.store.search_sql.search_ids`` plus the page's rows, as the
API runs it) for a two-character Chinese word, an English prefix and two terms;
the index's size against the messages table's; and the rate of batched
message inserts (1,000 per transaction, as the committer writes) with the
index's triggers on, as a ratio to the same inserts with them off. MariaDB runs
on a private ``mariadbd`` with Mroonga (tests/mroonga.py); the shared one is not
touched.
"""
from __future__ import annotations

import argparse
import json
import random
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
    return create_app("testing", SQLALCHEMY_DATABASE_URI=url, REDIS_URL=None)


def _migrate(url: str) -> None:
    from flask_migrate import upgrade
    app = _app(url)
    with app.app_context():
        upgrade()


def _fill(url: str, count: int, timed: int, seed: int = 7) -> float:
    """Insert ``count`` messages in batches; returns messages per second of the first
    ``timed`` ones (so that runs of different sizes compare)."""
    from chat.extensions import db
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
            row = conn.execute(text(
                "SELECT data_length + index_length FROM information_schema.TABLES "
                "WHERE table_schema = DATABASE() AND table_name = 'messages'")).scalar()
            table = int(row or 0)
            index = sum(p.stat().st_size for p in datadir.rglob("*.mrn*")) if datadir else 0
    return {"messages_bytes": table, "index_bytes": index,
            "index_to_messages": round(index / table, 2) if table else None}


def run_engine(engine: str, count: int, runs: int, windows: list[int]) -> dict:
    """Build, fill (with and without the index), measure; returns the figures."""
    result: dict = {"engine": engine, "messages": count}
    server = None
    folder = Path(tempfile.mkdtemp(prefix="chat-search-bench-"))
    try:
        if engine == "sqlite":
            urls = [f"sqlite:///{folder}/on.db", f"sqlite:///{folder}/off.db"]
            datadir = None
        else:
            from tests.mroonga import PrivateMariaDB
            import sqlalchemy
            server = PrivateMariaDB().start()
            engine_ = sqlalchemy.create_engine(server.url + "/")
            with engine_.connect() as conn:
                conn.exec_driver_sql("CREATE DATABASE chat_off CHARACTER SET utf8mb4 "
                                     "COLLATE utf8mb4_bin")
            engine_.dispose()
            urls = [server.database_url, server.url + "/chat_off?charset=utf8mb4"]
            datadir = server.folder / "data"
        for url in urls:
            _migrate(url)
        _drop_triggers(urls[1])
        timed = min(count, 100_000)
        off = _fill(urls[1], timed, timed)
        on = _fill(urls[0], count, timed)
        result["insert_rate_index_on"] = round(on)
        result["insert_rate_index_off"] = round(off)
        result["insert_ratio"] = round(on / off, 2)
        result["latency"] = {f"window_{w}": _latency(urls[0], runs, w) for w in windows}
        result["size"] = _sizes(urls[0], datadir)
    finally:
        if server is not None:
            server.stop()
    return result


def main() -> None:
    """Run the chosen engines and print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--engines", default="sqlite,mroonga")
    parser.add_argument("--out", default="")
    parser.add_argument("--windows", default="2000,200,1",
                        help="CHAT_SEARCH_WINDOW values to time (1: almost always the index)")
    args = parser.parse_args()
    results = [run_engine(e, args.messages, args.runs,
                          [int(w) for w in args.windows.split(",")]) for e in args.engines.split(",")]
    text_out = json.dumps(results, indent=2, ensure_ascii=False)
    print(text_out)
    if args.out:
        Path(args.out).write_text(text_out + "\n")


if __name__ == "__main__":
    main()
