"""What one Redis and one MariaDB hold on this machine: the inputs of docs/scaling.md.

    .venv/bin/python -m bench.capacity            # about 2 minutes
    .venv/bin/python -m bench.capacity --quick    # about 30 s

1. **Redis**: a private ``redis-server`` pinned to one CPU, a subscriber listening on
   the channel (as another process of ours would be), ``redis-benchmark`` on the other
   CPU sending ``PUBLISH`` of a 315-byte message frame (a typical chat message with its
   envelope), pipelined as our bus does. Figure: PUBLISH/s one Redis process (one
   shard of a cluster) takes, and its CPU.
2. **MariaDB**: a private ``mariadbd`` on ``deploy/mariadb.cnf`` (bench/privdb.py), the
   project's schema by its migrations, and the committer's own statements: one
   transaction per batch that takes ids from the ``message_sequence`` row
   (``UPDATE ... LAST_INSERT_ID``), inserts the batch in one multi-row ``INSERT`` and
   commits (a flush of the redo log each time). Writers 1 and 4 (4 writers queue on
   the sequence row, as 4 server processes do), batch sizes 1 to 500. Figure: inserted
   messages/s and commits/s. Then the same without the search index, once with the
   three statements as three round trips (the sequence row locked across two of them)
   and once as the committer sends them now: one multi-statement query, ids named
   ``@chat_first + k``, so the row is locked for the server's work only.

Results go to ``bench/results/capacity.json`` (and ``capacity-quick.json``).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pymysql

from bench import procstat
from bench.fixtures import BenchDB
from bench.ports import free_port
from bench.privdb import PrivateMariaDB

RESULTS = Path(__file__).resolve().parent / "results"
FRAME = ('{"kind":"message","id":123456789,"sender_id":4242,"recipient_id":4343,'
         '"group_id":null,"content":"' + "x" * 160 + '","created_at":"2026-12-03T06:00:00Z",'
         '"client_id":"c-123"}')


def say(message: str) -> None:
    print(f"[capacity] {message}", flush=True)


def redis_publish(seconds: int) -> dict:
    """PUBLISH/s of one private redis-server on CPU 0 with one subscriber."""
    folder = Path(tempfile.mkdtemp(prefix="chat-capacity-redis-"))
    port = free_port()
    server = subprocess.Popen(["taskset", "-c", "0", "redis-server", "--port", str(port),
                               "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                               "--dir", str(folder)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.time() + 10
        while subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True,
                             text=True).stdout.strip() != "PONG":
            if time.time() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.1)
        listener = subprocess.Popen(["taskset", "-c", "1", "redis-cli", "-p", str(port),
                                     "subscribe", "chat:u:4343"], stdout=subprocess.DEVNULL)
        time.sleep(0.3)
        rows = {}
        for pipeline in (1, 16):
            n = 20_000 * seconds if pipeline > 1 else 5_000 * seconds
            cpu0 = procstat.cpu_seconds(server.pid)
            t = time.monotonic()
            out = subprocess.run(["taskset", "-c", "1", "redis-benchmark", "-p", str(port),
                                  "-c", "20", "-n", str(n), "-P", str(pipeline), "-q",
                                  "PUBLISH", "chat:u:4343", FRAME],
                                 capture_output=True, text=True).stdout
            wall = time.monotonic() - t
            cpu = (procstat.cpu_seconds(server.pid) - cpu0) / wall
            rate = float(re.findall(r"([\d.]+) requests per second", out)[-1])
            rows[f"pipeline_{pipeline}"] = {"publish_per_s": round(rate),
                                            "redis_cpu": round(cpu, 2)}
            say(f"PUBLISH, pipeline {pipeline}: {rate:,.0f}/s, redis-server CPU {cpu:.2f}")
        listener.terminate()
        return {"frame_bytes": len(FRAME), "subscribers": 1, **rows}
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


def _writer(url_db: BenchDB, batch: int, stop: threading.Event, counts: list, index: int,
            sender: int, one_query: bool) -> None:
    conn = url_db.connect(multi_statements=one_query)
    quote = conn.escape
    cur = conn.cursor()
    n = 0
    run = os.urandom(4).hex()  # client_ids unique across runs: ids are not known beforehand
    try:
        while not stop.is_set():
            if one_query:  # as chat.store.committer_writes.allocate_ids_in_query does
                stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
                values = ",".join(
                    f"(@chat_first+{i},'p:{sender}:{sender + 1}',{sender},{sender + 1},NULL,"
                    f"{quote('x' * 64)},{quote(f'{index}-{run}-{n}-{i}')},'{stamp}')"
                    for i in range(batch))
                cur.execute(
                    f"UPDATE message_sequence SET last_id = LAST_INSERT_ID(last_id + {batch}) "
                    f"WHERE id = 1;SET @chat_first = LAST_INSERT_ID() - {batch - 1};"
                    "INSERT INTO messages (id, conv_key, sender_id, recipient_id, group_id, "
                    "content, client_id, created_at) VALUES " + values + ";COMMIT")
                while cur.nextset():
                    pass
                n += 1
                continue
            cur.execute("UPDATE message_sequence SET last_id = LAST_INSERT_ID(last_id + %s) "
                        "WHERE id = 1", [batch])
            first = cur.lastrowid - batch + 1
            stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
            values = ",".join(
                f"({first + i},'p:{sender}:{sender + 1}',{sender},{sender + 1},NULL,"
                f"{quote('x' * 64)},{quote(f'{index}-{first + i}')},'{stamp}')"
                for i in range(batch))
            cur.execute("INSERT INTO messages (id, conv_key, sender_id, recipient_id, group_id, "
                        "content, client_id, created_at) VALUES " + values)
            conn.commit()
            n += 1
    finally:
        counts[index] = n
        conn.close()


def _measure(db: BenchDB, server: PrivateMariaDB, w: int, batch: int, seconds: int,
             one_query: bool = False) -> dict:
    """``w`` writers committing batches of ``batch`` messages for ``seconds`` (each batch
    one multi-statement query if ``one_query``)."""
    stop = threading.Event()
    counts = [0] * w
    threads = [threading.Thread(target=_writer,
                                args=(db, batch, stop, counts, i, 1000 + 2 * i, one_query))
               for i in range(w)]
    cpu0 = procstat.cpu_seconds(server.pid)
    t = time.monotonic()
    [th.start() for th in threads]
    time.sleep(seconds)
    stop.set()
    [th.join() for th in threads]
    wall = time.monotonic() - t
    cpu = (procstat.cpu_seconds(server.pid) - cpu0) / wall
    commits = sum(counts)
    row = {"writers": w, "batch": batch, "commits_per_s": round(commits / wall),
           "messages_per_s": round(commits * batch / wall), "mariadb_cpu": round(cpu, 2),
           "one_query": one_query}
    say(f"{w} writer(s), batches of {batch}{', one query each' if one_query else ''}: "
        f"{row['messages_per_s']:,} messages/s, {row['commits_per_s']:,} commits/s, "
        f"mariadbd CPU {cpu:.2f}")
    return row


def mariadb_inserts(seconds: int, batches: list[int], writers: list[int]) -> dict:
    """Inserted messages/s on a private mariadbd with deploy/mariadb.cnf."""
    server = PrivateMariaDB().start()
    db = BenchDB("chat_capacity", port=server.port)
    try:
        db.recreate()
        # The server indexes new messages after their commit (its indexer); this measures
        # the database's own cost of the index, so a trigger indexes each inserted row here.
        with db.connect() as conn, conn.cursor() as cur:
            cur.execute("CREATE TRIGGER IF NOT EXISTS message_search_ai AFTER INSERT ON "
                        "messages FOR EACH ROW INSERT INTO message_search (id, content) "
                        "SELECT NEW.id, NEW.content FROM DUAL WHERE NEW.recalled = 0")
        rows = []
        for w in writers:
            for batch in batches:
                rows.append({**_measure(db, server, w, batch, seconds), "search_index": True})
        # The same with the search index's triggers dropped: what keeping the index costs.
        with db.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE "
                        "TRIGGER_SCHEMA = DATABASE() AND EVENT_OBJECT_TABLE = 'messages'")
            for (name,) in cur.fetchall():
                cur.execute(f"DROP TRIGGER `{name}`")
        for one_query in (False, True):
            for w, batch in ((1, 1), (4, 1), (1, 100), (4, 100)):
                row = _measure(db, server, w, batch, seconds, one_query)
                rows.append({**row, "search_index": False})
        with pymysql.connect(host="127.0.0.1", port=server.port, user="root") as conn:
            with conn.cursor() as cur:
                cur.execute("SELECT @@innodb_log_file_size, @@innodb_buffer_pool_size, "
                            "@@innodb_flush_log_at_trx_commit")
                log, pool, flush = cur.fetchone()
        return {"settings": {"innodb_log_file_size": log, "innodb_buffer_pool_size": pool,
                             "innodb_flush_log_at_trx_commit": flush}, "runs": rows}
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.capacity",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    seconds = 3 if args.quick else 10
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    result = {"started": started, "machine": {"nproc": os.cpu_count(),
                                              "loadavg_start": os.getloadavg()},
              "redis": redis_publish(seconds),
              "mariadb": mariadb_inserts(seconds, [1, 10, 100, 500] if not args.quick
                                         else [1, 100], [1, 4])}
    result["machine"]["loadavg_end"] = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"capacity{'-quick' if args.quick else ''}.json"
    out.write_text(json.dumps(result, indent=1))
    say(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
