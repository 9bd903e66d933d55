"""Search and opening a message in context (docs/protocol.md, Search), against real servers:
``around_id`` on the shared MariaDB and on SQLite; search itself on SQLite (FTS5) and
on a private MariaDB with the Mroonga engine."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.support import ROOT


def _send(a, b, text: str) -> int:
    r = a.post("/api/messages", json={"recipient_id": b.user_id, "content": text})
    assert r.status_code == 201, r.text
    return r.json()["id"]


# -- around_id --------------------------------------------------------------------------------


def test_around_id_holds_the_message_with_older_before_and_newer_after(pair):
    a, b = pair
    ids = [_send(a, b, f"m{i}") for i in range(9)]
    page = b.get(f"/api/messages/{a.user_id}", params={"around_id": ids[4], "limit": 4}).json()
    # (4-1)//2 = 1 older, then the message, then 2 newer
    assert [m["id"] for m in page["messages"]] == ids[3:7]
    assert page["has_more"] is True and page["has_newer"] is True
    whole = b.get(f"/api/messages/{a.user_id}", params={"around_id": ids[4], "limit": 9}).json()
    assert [m["id"] for m in whole["messages"]] == ids
    assert whole["has_more"] is False and whole["has_newer"] is False


def test_around_id_fills_from_the_other_side_where_one_runs_short(pair):
    a, b = pair
    ids = [_send(a, b, f"m{i}") for i in range(6)]
    near_end = a.get(f"/api/messages/{b.user_id}", params={"around_id": ids[5], "limit": 3})
    assert [m["id"] for m in near_end.json()["messages"]] == ids[3:]
    assert near_end.json()["has_more"] is True and near_end.json()["has_newer"] is False
    near_start = a.get(f"/api/messages/{b.user_id}", params={"around_id": ids[0], "limit": 4})
    assert [m["id"] for m in near_start.json()["messages"]] == ids[:4]
    assert near_start.json()["has_more"] is False and near_start.json()["has_newer"] is True


def test_around_id_in_a_group(user):
    owner, member = user("own"), user("mem")
    member.follow_each_other(owner)
    gid = owner.post("/api/groups", json={"name": "around"}).json()["id"]
    assert owner.put(f"/api/groups/{gid}/members/{member.user_id}").status_code == 200
    ids = [owner.post("/api/messages", json={"group_id": gid, "content": f"g{i}"}).json()["id"]
           for i in range(5)]
    page = member.get(f"/api/groups/{gid}/messages", params={"around_id": ids[2], "limit": 3})
    assert [m["id"] for m in page.json()["messages"]] == ids[1:4]


def test_around_id_of_another_conversation_or_none_is_404(user):
    a, b, c = user("a"), user("b"), user("c")
    a.follow_each_other(b)
    a.follow_each_other(c)
    _send(a, b, "ours")
    theirs = _send(a, c, "not yours")
    r = b.get(f"/api/messages/{a.user_id}", params={"around_id": theirs})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert b.get(f"/api/messages/{a.user_id}",
                 params={"around_id": theirs + 10_000}).status_code == 404
    assert b.get(f"/api/messages/{a.user_id}",
                 params={"around_id": "x"}).status_code == 400


# -- search -----------------------------------------------------------------------------------

# Search first walks the newest message ids one by one, then asks the index for older ones:
# a window of 3 makes most tests below go through both.
WINDOW = 3


@pytest.fixture(scope="module")
def mroonga_server(redis_prefix):
    """The chat server on a private MariaDB that has the Mroonga engine."""
    from tests import mroonga
    from tests.conftest import mysql_env
    from tests.support import ServerProcess, migrate, need
    need(mroonga.available(), "MariaDB with the Mroonga plugin (mariadb-plugin-mroonga)")
    database = mroonga.PrivateMariaDB().start()
    try:
        migrate(database.database_url)
        proc = ServerProcess(mysql_env(database.database_url, redis_prefix,
                                       CHAT_SEARCH_WINDOW=WINDOW,
                                       CHAT_SEARCH_INDEX_INTERVAL_MS=50)).start()
        proc.database = database
        yield proc
        proc.stop()
    finally:
        database.stop()


@pytest.fixture(scope="module")
def sqlite_search_server(sqlite_module_url):
    """The chat server on SQLite (FTS5 trigram), with the same small scan window."""
    from tests.support import ServerProcess
    proc = ServerProcess({"DATABASE_URL": sqlite_module_url, "REDIS_URL": "",
                          "CHAT_SEARCH_WINDOW": str(WINDOW)}).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module", params=["sqlite", "mroonga"])
def search_server(request):
    """Search on the embedded default (FTS5 trigram) and on MariaDB with Mroonga."""
    return request.getfixturevalue("sqlite_search_server" if request.param == "sqlite"
                                   else "mroonga_server")


@pytest.fixture
def people(search_server):
    """Alice, Bob and Carol on ``search_server``; Alice and Bob follow each other."""
    from tests.support import Api
    a, b, c = (Api.new_user(search_server.base, stem) for stem in ("alice", "bob", "carol"))
    a.follow_each_other(b)
    a.follow_each_other(c)
    return a, b, c


def _find(api, q: str, expect: int = 200, **params) -> dict:
    r = api.get("/api/search", params={"q": q, **params})
    assert r.status_code == expect, r.text
    return r.json()


def _found(api, q: str, **params) -> list[tuple[str, list]]:
    return [(m["content"], m["highlights"]) for m in _find(api, q, **params)["messages"]]


def test_chinese_matches_inside_words_and_one_character_works(people):
    a, b, _ = people
    _send(a, b, "早上八点，地铁站见")
    _send(b, a, "明天见")
    assert _found(b, "地铁") == [("早上八点，地铁站见", [[5, 7]])]
    assert _found(a, "铁") == [("早上八点，地铁站见", [[6, 7]])]
    assert [c for c, _ in _found(a, "见")] == ["明天见", "早上八点，地铁站见"]  # newest first
    assert _found(a, "地下") == []


def test_latin_words_match_by_prefix_ignoring_case(people):
    a, b, _ = people
    _send(a, b, "The Deployment is done")
    _send(a, b, "redeploy later")
    assert _found(b, "deplo") == [("The Deployment is done", [[4, 9]])]
    assert _found(b, "DEPLOYMENT") == [("The Deployment is done", [[4, 14]])]
    assert _found(b, "ploy") == []  # not at a word start
    assert _found(b, "re") == [("redeploy later", [[0, 2]])]


def test_phrases_terms_and_mixed_scripts(people):
    a, b, _ = people
    _send(a, b, "please deploy now")
    _send(a, b, "now deploy, please")
    _send(a, b, "周五 demo 会议")
    _send(a, b, "周五休息")
    assert _found(b, '"deploy now"') == [("please deploy now", [[7, 17]])]
    assert [c for c, _ in _found(b, "now deploy")] == ["now deploy, please",
                                                       "please deploy now"]
    assert _found(b, "周五 demo") == [("周五 demo 会议", [[0, 2], [3, 7]])]
    assert _found(b, "demo 周五") == [("周五 demo 会议", [[0, 2], [3, 7]])]


def test_operator_characters_are_plain_text(people):
    a, b, _ = people
    _send(a, b, 'a+b (c) @x ~y "z -w* <v>')
    for q in ("(c)", "@x", "~y", '"z', "-w*", "<v>", "a+b", "+b"):
        assert [c for c, _ in _found(b, q)] == ['a+b (c) @x ~y "z -w* <v>'], q
    for q in ("+ - * ~ < > ( ) @", '"', '""', "*", "OR", "AND NOT", "\\", "'", "%", "_"):
        _find(b, q)  # never an error


def test_pieces_that_start_inside_a_run_of_symbols_are_found_beyond_the_window(people):
    """The index keeps a run of symbols as one token: a piece that starts inside one, or is
    symbols alone, is still found among older messages (past the walked window)."""
    a, b, _ = people
    old = _send(a, b, "##tag x--1 ++x")
    for i in range(WINDOW + 1):  # the message leaves the window: only the index has it
        _send(a, b, f"filler {i}")
    for q in ("#tag", "-1", "+x", "##", "--", "#ta"):
        assert [m["id"] for m in _find(b, q)["messages"]] == [old], q


def test_words_match_by_prefix_beyond_the_window_even_when_the_word_itself_exists(people):
    """Past the walked window only the index answers: a word must still find the longer
    words that start with it when some message holds the word itself (Groonga tries a
    phrase's last word by prefix only when the word as it is has no hit at all)."""
    a, b, _ = people
    old = {text: _send(a, b, text) for text in (
        "deploy now", "deployment done", "deplo", "x--1 y---", "地铁站见", "在地铁", "привет мир",
        "приветствие", "周五demonstration", "İstanbul trip", "nai\u0308ve plan", "t\x00b")}
    for i in range(WINDOW + 1):
        _send(a, b, f"filler {i}")

    def contents(q: str) -> set[str]:
        return {m["content"] for m in _find(b, q)["messages"]}
    assert contents("deploy") == {"deploy now", "deployment done"}
    assert contents("deplo") == {"deploy now", "deployment done", "deplo"}
    assert contents('"deploy no"') == {"deploy now"}
    assert contents("y--") == {"x--1 y---"}
    assert contents("铁") == {"地铁站见", "在地铁"}
    assert contents("地铁站") == {"地铁站见"}
    assert contents("привет") == {"привет мир", "приветствие"}
    assert contents("周五demo") == {"周五demonstration"}
    assert contents("İstanbul") == {"İstanbul trip"}
    assert contents("nai\u0308ve") == {"nai\u0308ve plan"}  # a combining accent
    assert contents("t\x00b") == {"t\x00b"}
    assert contents("t") >= {"t\x00b"}
    assert contents("eploy") == set()  # still only at a word's start
    assert len(old) == 12


def test_bad_queries_are_400(people):
    a, b, _ = people
    for q in ("", "   ", "\u3000", "x" * 201, "中" * 201):
        r = a.get("/api/search", params={"q": q})
        assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request", q
    assert a.get("/api/search").status_code == 400
    assert _find(a, "  " + "中" * 200 + "  ")["messages"] == []
    assert a.get("/api/search", params={"q": "x", "limit": 101}).status_code == 400
    assert a.get("/api/search", params={"q": "x", "user_id": b.user_id,
                                        "group_id": 1}).status_code == 400
    # What is searched answers before the query's other fields.
    _, _, c = people
    gid = c.post("/api/groups", json={"name": "not for alice"}).json()["id"]
    for bad in ({"q": ""}, {"q": "x" * 201}, {"q": "x", "limit": "0"}, {"q": "x", "limit": "y"}):
        assert a.get("/api/search", params={**bad, "group_id": gid}).status_code == 403, bad
        assert a.get("/api/search", params={**bad, "user_id": 10**9}).status_code == 404, bad
        assert a.get("/api/search", params={**bad, "user_id": b.user_id}).status_code == 400
    assert a.get("/api/search", params={"q": "x", "group_id": gid, "before_id": "z"}
                 ).status_code == 400  # a cursor is an id: checked first


def test_only_conversations_the_user_can_read_now(people):
    a, b, c = people
    gid = a.post("/api/groups", json={"name": "readers"}).json()["id"]
    assert a.put(f"/api/groups/{gid}/members/{c.user_id}").status_code == 200
    assert a.post("/api/messages", json={"group_id": gid, "content": "secret plan"}).ok
    _send(a, b, "secret for bob")
    assert [m["content"] for m in _find(c, "secret")["messages"]] == ["secret plan"]
    assert [m["content"] for m in _find(b, "secret")["messages"]] == ["secret for bob"]
    assert len(_find(a, "secret")["messages"]) == 2
    assert c.delete(f"/api/groups/{gid}/members/{c.user_id}").status_code == 200
    assert _find(c, "secret")["messages"] == []
    assert c.get("/api/search", params={"q": "secret", "group_id": gid}).status_code in (403,
                                                                                          404)
    only_group = _find(a, "secret", group_id=gid)["messages"]
    assert [m["content"] for m in only_group] == ["secret plan"]
    only_bob = _find(a, "secret", user_id=b.user_id)["messages"]
    assert [m["content"] for m in only_bob] == ["secret for bob"]


def test_a_member_of_few_of_many_groups_still_gets_a_full_page(people):
    a, b, c = people
    mine = a.post("/api/groups", json={"name": "mine"}).json()["id"]
    assert a.put(f"/api/groups/{mine}/members/{c.user_id}").status_code == 200
    for i in range(5):
        assert a.post("/api/messages", json={"group_id": mine, "content": f"needle {i}"}).ok
    for g in range(12):  # newer matches in groups Carol is not in
        other = a.post("/api/groups", json={"name": f"other{g}"}).json()["id"]
        for i in range(2):
            assert a.post("/api/messages", json={"group_id": other,
                                                 "content": f"needle x{g}{i}"}).ok
    page = _find(c, "needle", limit=3)
    assert [m["content"] for m in page["messages"]] == ["needle 4", "needle 3", "needle 2"]
    assert page["has_more"] is True
    rest = _find(c, "needle", limit=3, before_id=page["messages"][-1]["id"])
    assert [m["content"] for m in rest["messages"]] == ["needle 1", "needle 0"]
    assert rest["has_more"] is False


def test_edits_reindex_and_recalls_remove(people):
    a, b, _ = people
    mid = _send(a, b, "meet at the library")
    assert a.patch(f"/api/messages/{mid}", json={"content": "meet at the station"}).ok
    assert _found(b, "library") == []
    found = _find(b, "station")["messages"]
    assert [m["id"] for m in found] == [mid] and found[0]["edited_at"] is not None
    assert a.delete(f"/api/messages/{mid}").ok
    assert _found(b, "station") == [] and _found(b, "meet") == []


def test_a_result_opens_in_context(people):
    a, b, _ = people
    ids = [_send(a, b, f"line {i}") for i in range(5)]
    hit = _find(b, "line", limit=1)["messages"][0]
    assert hit["id"] == ids[-1]
    page = b.get(f"/api/messages/{a.user_id}", params={"around_id": ids[2], "limit": 3}).json()
    assert [m["id"] for m in page["messages"]] == ids[1:4]


def test_search_without_the_engine_answers_503_and_history_still_works(pair):
    """On the shared MariaDB (no Mroonga loaded there) search says why; SQLite always has it."""
    a, b = pair
    r = a.get("/api/search", params={"q": "hello"})
    if r.status_code == 503:
        assert "Mroonga" in r.json()["error"]["message"]
    else:
        assert r.status_code == 200
    _send(a, b, "still fine")
    assert b.get(f"/api/messages/{a.user_id}").json()["messages"][-1]["content"] == "still fine"


# -- the indexer (MariaDB: new messages join the index after their commit) ---------------------

def _lag(server) -> float:
    from tests.test_hardening import metric
    return metric(server, "chat_search_index_lag")


def test_new_messages_reach_the_index_soon_after_their_ack(mroonga_server):
    import sqlalchemy

    from tests.support import Api
    a, b = (Api.new_user(mroonga_server.base, stem) for stem in ("ivy", "jon"))
    a.follow_each_other(b)
    mid = _send(a, b, "indexed 地铁 soon")
    engine = sqlalchemy.create_engine(mroonga_server.database.database_url)
    deadline = time.monotonic() + 5
    while True:
        with engine.connect() as conn:
            indexed = conn.exec_driver_sql(
                "SELECT content FROM message_search WHERE id = %s", (mid,)).scalar()
        if indexed is not None and _lag(mroonga_server) == 0:
            break
        assert time.monotonic() < deadline, "the indexer did not reach the message in 5 s"
        time.sleep(0.05)
    engine.dispose()
    assert indexed == "indexed 地铁 soon"
    for filler in range(WINDOW + 2):  # push it below the walked window: only the index has it
        _send(a, b, f"filler {filler}")
    assert [m["id"] for m in _find(b, "地铁")["messages"]] == [mid]


@pytest.fixture(scope="module")
def unindexed_server(mroonga_server, redis_prefix):
    """A server whose indexer is off, on a database of its own on the Mroonga MariaDB."""
    import sqlalchemy

    from tests.conftest import mysql_env
    from tests.support import ServerProcess, migrate
    engine = sqlalchemy.create_engine(mroonga_server.database.url + "/")
    with engine.connect() as conn:
        conn.exec_driver_sql("CREATE DATABASE unindexed CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    engine.dispose()
    url = mroonga_server.database.url + "/unindexed?charset=utf8mb4"
    migrate(url)
    proc = ServerProcess(mysql_env(url, redis_prefix, CHAT_SEARCH_WINDOW=WINDOW,
                                   CHAT_SEARCH_INDEX_INTERVAL_MS=0)).start()
    proc.database_url = url
    yield proc
    proc.stop()


def test_messages_the_indexer_has_not_reached_are_found_and_reindex_catches_up(unindexed_server):
    from tests.support import Api
    a, b = (Api.new_user(unindexed_server.base, stem) for stem in ("kim", "lee"))
    a.follow_each_other(b)
    old = [_send(a, b, f"needle {i} 周五 demo") for i in range(3)]
    for filler in range(WINDOW + 3):
        _send(a, b, f"filler {filler}")
    assert _lag(unindexed_server) >= len(old) + WINDOW + 3
    found = [m["id"] for m in _find(b, "周五 demo")["messages"]]
    assert found == old[::-1]  # walked one by one: nothing is missing while the index lags
    done = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "search-reindex"],
                          cwd=ROOT, env=unindexed_server.env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "rebuilt up to message id" in done.stdout
    assert _lag(unindexed_server) == 0
    assert [m["id"] for m in _find(b, "周五 demo")["messages"]] == old[::-1]
    assert [m["id"] for m in _find(b, "needle", limit=2)["messages"]] == old[:0:-1]


def test_the_indexer_never_holds_up_new_messages_only_edits_of_what_it_indexes(unindexed_server):
    """The indexer's round locks the rows it copies (an edit racing it waits, so the older
    text never wins) and nothing else: a new message is stored while a round is open."""
    import pymysql
    import sqlalchemy

    from chat.store import search_sql
    from tests.support import Api
    a, b = (Api.new_user(unindexed_server.base, stem) for stem in ("max", "ned"))
    a.follow_each_other(b)
    pending = [_send(a, b, f"pending {i}") for i in range(3)]
    url = sqlalchemy.engine.make_url(unindexed_server.database_url)
    seen = {}

    def probe() -> None:
        other = pymysql.connect(host=url.host, port=url.port, user=url.username,
                                database=url.database, autocommit=False)
        try:
            cur = other.cursor()
            cur.execute("SET SESSION innodb_lock_wait_timeout = 1")
            cur.execute("INSERT INTO messages (id, conv_key, sender_id, recipient_id, content, "
                        "created_at) VALUES (%s, 'probe', %s, %s, 'new', NOW())",
                        (pending[-1] + 1000, a.user_id, b.user_id))
            seen["insert"] = "stored"
            try:
                cur.execute("UPDATE messages SET content = 'edited' WHERE id = %s", (pending[0],))
                seen["edit"] = "not held"
            except pymysql.err.OperationalError as err:
                seen["edit"] = "waits" if err.args[0] == 1205 else repr(err)
        except pymysql.err.OperationalError as err:
            seen["insert"] = repr(err)
        finally:
            other.rollback()
            other.close()

    # The server's round (``index_round``), its transaction held open while another
    # connection stores a new message and edits one the round copied.
    engine = sqlalchemy.create_engine(unindexed_server.database_url)
    try:
        with engine.execution_options(isolation_level="READ COMMITTED").begin() as conn:
            done = search_sql.index_next(conn, 500)
            probe()
    finally:
        engine.dispose()
    assert done >= len(pending)
    assert seen == {"insert": "stored", "edit": "waits"}


def test_the_word_token_migration_rebuilds_the_index_in_place(mroonga_server):
    """Migration 0009 moves an index of bigrams to word tokens, keeping what was indexed
    (a prefix of a word is found without the messages being read again), and back."""
    import sqlalchemy
    from flask_migrate import downgrade, upgrade

    from app import create_app
    server = sqlalchemy.create_engine(mroonga_server.database.url + "/")
    with server.connect() as conn:
        conn.exec_driver_sql("CREATE DATABASE tokens CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    url = mroonga_server.database.url + "/tokens?charset=utf8mb4"
    app = create_app("testing", SQLALCHEMY_DATABASE_URI=url, REDIS_URL=None)
    engine = sqlalchemy.create_engine(url)

    def index() -> tuple[str, list]:
        with engine.connect() as conn:
            table = conn.exec_driver_sql("SHOW CREATE TABLE message_search").one()[1]
            found = conn.exec_driver_sql(
                "SELECT id FROM message_search WHERE MATCH(content) "
                "AGAINST('+\"deplo\" +\"地铁\"' IN BOOLEAN MODE)").scalars().all()
        return table, found
    try:
        with app.app_context():
            upgrade(revision="0008")
            with engine.begin() as conn:  # as an install migrated before 0009 has it
                conn.exec_driver_sql(  # (0006 creates the table as search_sql says today)
                    "ALTER TABLE message_search DROP INDEX ft_content, ADD FULLTEXT INDEX "
                    "ft_content (content) COMMENT 'tokenizer \"TokenBigramSplitSymbolAlphaDigit"
                    "\", normalizer \"NormalizerAuto\"'")
                conn.exec_driver_sql("REPLACE INTO message_search (id, content) VALUES "
                                     "(7, 'Deployment at the 地铁 station')")
            assert "TokenBigramSplitSymbolAlphaDigit" in index()[0]
            upgrade()
            table, found = index()
            assert '"TokenBigram"' in table and found == [7]
            downgrade(revision="0008")
            table, found = index()
            assert "TokenBigramSplitSymbolAlphaDigit" in table and found == [7]
    finally:
        engine.dispose()
        with server.connect() as conn:
            conn.exec_driver_sql("DROP DATABASE tokens")
        server.dispose()


def test_a_round_is_one_query_that_steps_aside_while_another_process_holds_the_index(
        unindexed_server):
    """The server's round (``Search.index_pending``) sends its transaction as one query; a
    round that finds the position held by another process's round gives up at once and
    changes nothing, and the next round indexes what was left."""
    import pymysql
    import sqlalchemy

    from chat.extensions import db
    from chat.service.search import Search
    from chat.store import reads
    from tests.inprocess import make_app, running
    from tests.support import Api
    a, b = (Api.new_user(unindexed_server.base, stem) for stem in ("ola", "pia"))
    a.follow_each_other(b)
    pending = [_send(a, b, f"held {i}") for i in range(3)]
    url = sqlalchemy.engine.make_url(unindexed_server.database_url)
    lag = _lag(unindexed_server)
    assert lag >= len(pending)
    holder = pymysql.connect(host=url.host, port=url.port, user=url.username,
                             database=url.database, autocommit=False)
    with running(make_app(unindexed_server.database_url)):
        engine = reads.engine()
        engine.dispose()  # one pooled connection: the one watched
        with engine.connect() as conn:
            raw = conn.connection.dbapi_connection
        sent = []
        query = raw.query
        raw.query = lambda sql, unbuffered=False: (sent.append(sql), query(sql, unbuffered))[1]
        try:
            holder.cursor().execute("SELECT last_id FROM message_search_position WHERE id = 1 "
                                    "FOR UPDATE")
            started = time.monotonic()
            assert Search().index_pending(db.engine) == 0
            assert time.monotonic() - started < 1  # no lock wait
            assert _lag(unindexed_server) == lag
            holder.rollback()
            assert Search().index_pending(db.engine) >= len(pending)
        finally:
            del raw.query
            holder.close()
    assert len(sent) == 2  # a round each, its statements and its COMMIT in one query
    assert all(sql.startswith("SET TRANSACTION ISOLATION LEVEL READ COMMITTED;")
               and sql.endswith("COMMIT") for sql in sent)
    assert _lag(unindexed_server) == 0


def test_a_process_that_committed_nothing_still_indexes_what_another_left(unindexed_server,
                                                                          redis_prefix):
    """An indexer runs its round soon after its own process commits, and at least every
    second when it did not: messages committed by a process that does not index (or that
    stopped before its round) are indexed by another."""
    from tests.conftest import mysql_env
    from tests.support import Api, ServerProcess
    a, b = (Api.new_user(unindexed_server.base, stem) for stem in ("max", "nia"))
    a.follow_each_other(b)
    indexer = ServerProcess(mysql_env(unindexed_server.database_url, redis_prefix,
                                      CHAT_SEARCH_WINDOW=WINDOW,
                                      CHAT_SEARCH_INDEX_INTERVAL_MS=50)).start()

    def caught_up() -> None:
        deadline = time.monotonic() + 10
        while _lag(unindexed_server) > 0:
            assert time.monotonic() < deadline, "no round of the idle indexer in 10 s"
            time.sleep(0.1)
    try:
        caught_up()  # its first round, at start
        for i in range(2):  # committed by the process that does not index, after that
            _send(a, b, f"left behind {i} 周六")
            caught_up()
    finally:
        indexer.stop()


def test_the_indexer_waits_longer_while_its_rounds_find_little():
    """A round costs a query however little it indexes: while rounds find fewer messages
    than their target the next one waits longer (at most a second, or the configured
    interval if that is longer); busy, the indexer keeps to its interval."""
    from chat.runtime import INDEX_IDLE_ROUND, INDEX_ROUND_TARGET, index_pause
    assert index_pause(0.05, INDEX_ROUND_TARGET) == 0.05
    assert index_pause(0.05, 100 * INDEX_ROUND_TARGET) == 0.05
    assert 0.05 < index_pause(0.05, INDEX_ROUND_TARGET // 2) < INDEX_IDLE_ROUND
    assert index_pause(0.05, INDEX_ROUND_TARGET // 5) > index_pause(0.05, INDEX_ROUND_TARGET // 2)
    assert index_pause(0.05, 0) == INDEX_IDLE_ROUND  # nothing new, or another process's turn
    assert index_pause(2.0, 0) == 2.0  # never more often than configured
