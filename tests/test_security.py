"""Security: headers, identity only from a session or a token, nobody touches what is not theirs."""
from __future__ import annotations

import re
import time

import requests
import websocket

from chat.service import limits
from tests.conftest import mysql_env
from tests.support import PASSWORD, WS, Api, ServerProcess
from tests.test_csrf import browser_login


def test_security_headers_on_pages_and_api(server, api):
    alice = api()
    s, _ = browser_login(server, alice)
    for url in (server.base + "/login", server.base + "/", server.base + "/api/me"):
        r = s.get(url)
        csp = r.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
        assert f"connect-src 'self' ws://{server.base.split('//')[1]}" in csp
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["X-Frame-Options"] == "DENY"
        assert r.headers["Referrer-Policy"] == "same-origin"
    cookie = s.get(server.base + "/login").headers.get("Set-Cookie", "")
    session_cookie = [c for c in s.cookies if c.name == "session"][0]
    assert session_cookie.has_nonstandard_attr("HttpOnly")
    assert "SameSite=Lax" in cookie or session_cookie.get_nonstandard_attr("SameSite") == "Lax"


def test_a_token_in_the_query_string_is_not_an_identity_over_http(server, api):
    alice = api()
    assert requests.get(server.base + f"/api/me?token={alice.token}").status_code == 401
    r = requests.get(server.base + "/api/me", headers={"Authorization": f"Token {alice.token}"})
    assert r.status_code == 401
    r = requests.get(server.base + "/api/me", headers={"X-User-Id": str(alice.user_id)})
    assert r.status_code == 401


def test_nobody_marks_or_reads_another_users_notices_or_cursors(api):
    alice, bob, eve = api("alice"), api("bob"), api("eve")
    alice.follow_each_other(bob)
    notes = alice.get("/api/notices").json()["notices"]
    assert notes
    assert eve.post("/api/notices/read", json={"up_to_id": notes[0]["id"]}).json() == {
        "marked": 0}
    assert [n["read"] for n in alice.get("/api/notices").json()["notices"]] == [False]
    assert eve.get("/api/notices").json()["notices"] == []
    m = alice.post("/api/messages", json={"recipient_id": bob.user_id, "content": "x"}).json()
    # Eve moving "her" cursor in a chat with alice does not touch bob's cursor.
    eve.post("/api/read", json={"recipient_id": alice.user_id, "last_read_id": m["id"]})
    assert bob.get("/api/unread").json()["total"] == 1


def test_a_session_socket_is_closed_when_that_session_logs_out(server, api):
    alice = api()
    s, token = browser_login(server, alice)
    host = server.base.split("//")[1]
    cookie = "; ".join(f"{c.name}={c.value}" for c in s.cookies)
    # A browser socket: the session cookie and our own origin.
    ws = websocket.create_connection(server.ws_url, header=[f"Cookie: {cookie}"],
                                     origin=f"http://{host}", timeout=10)
    assert '"hello"' in ws.recv()
    # The same cookie without an Origin (not a browser) is refused: only a token works there.
    r = requests.get(server.base + "/ws", headers={
        "Cookie": cookie, "Upgrade": "websocket", "Connection": "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13"})
    assert r.status_code == 401
    # Another session of the same user stays open.
    other = WSKeeper(server, alice)
    s.post(server.base + "/logout", data={"csrf_token": token})
    opcode, data = ws.recv_data(control_frame=True)
    while opcode != websocket.ABNF.OPCODE_CLOSE:
        opcode, data = ws.recv_data(control_frame=True)
    assert int.from_bytes(data[:2], "big") == 1008
    assert other.still_open()


class WSKeeper:
    """A token socket kept open to show that other credentials are not affected."""

    def __init__(self, server, user: Api) -> None:
        self.ws = websocket.create_connection(server.ws_url, timeout=10,
                                              header=[f"Authorization: Bearer {user.token}"])
        self.ws.recv()

    def still_open(self) -> bool:
        time.sleep(0.3)
        self.ws.send('{"type":0}')
        ok = '"pong"' in self.ws.recv()
        self.ws.close()
        return ok


def test_error_pages_and_answers_leak_nothing(server, api):
    alice = api()
    r = alice.get("/api/users/not-a-number")
    assert r.status_code == 400 and "Traceback" not in r.text
    page = requests.get(server.base + "/definitely/not/here")
    assert page.status_code == 404 and "Traceback" not in page.text
    wrong = requests.post(server.base + "/api/tokens", json={"username": alice.username,
                                                             "password": PASSWORD + "x"})
    nobody = requests.post(server.base + "/api/tokens", json={"username": "nobody-" +
                                                              alice.username,
                                                              "password": PASSWORD})
    # The same answer whether or not the user exists.
    assert wrong.json() == nobody.json()


def test_passwords_are_stored_hashed(mysql_url, api):
    import sqlalchemy
    alice = api()
    engine = sqlalchemy.create_engine(mysql_url)
    with engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT password_hash FROM users WHERE id = %s",
                                      (alice.user_id,)).scalar()
        token_hashes = [r[0] for r in conn.exec_driver_sql(
            "SELECT token_hash FROM auth_tokens WHERE user_id = %s", (alice.user_id,))]
    engine.dispose()
    assert PASSWORD not in stored and re.match(r"(scrypt|pbkdf2)", stored)
    assert alice.token not in token_hashes and all(len(h) == 64 for h in token_hashes)


def _origin_answer(proc, token: str, origin: str, forwarded: dict) -> int:
    """The status of a WebSocket upgrade with this Origin and these X-Forwarded-* headers."""
    headers = {"Upgrade": "websocket", "Connection": "Upgrade",
               "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13",
               "Authorization": f"Bearer {token}", "Origin": origin, **forwarded}
    return requests.get(proc.base + "/ws", headers=headers, timeout=5).status_code


def test_forwarded_headers_count_only_behind_a_configured_proxy(mysql_url, redis_prefix):
    host = "chat.example"
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": host}
    for proxies, https_origin_ok in ((0, False), (1, True)):
        env = mysql_env(mysql_url, redis_prefix, CHAT_TRUSTED_PROXIES=proxies)
        proc = ServerProcess(env, kind="gunicorn").start()
        try:
            me = Api.new_user(proc.base, "fwd")
            status = _origin_answer(proc, me.token, f"https://{host}", forwarded)
            assert (status == 101) is https_origin_ok, (proxies, status)
            if not https_origin_ok:
                assert status == 403
                # Nor does the scheme alone change: the real origin still works.
                status = _origin_answer(proc, me.token, proc.base, {"X-Forwarded-Proto": "https"})
                assert status == 101, status
        finally:
            proc.stop()


def test_flooding_frames_get_rate_limited_and_the_socket_stays(sqlite_url):
    proc = ServerProcess({"DATABASE_URL": sqlite_url, "REDIS_URL": "",
                          "CHAT_RATE_PER_MINUTE": "5"}).start()
    try:
        me = Api.new_user(proc.base, "flood")
        ws = WS(proc.ws_url, me.token)
        for _ in range(5):
            assert ws.request({"type": 0}, "pong")
        ws.send({"type": 1, "recipient_id": me.user_id, "content": "x", "client_id": "f6"})
        err = ws.expect("error")
        assert (err["code"], err["error"], err["ref"]) == (429, "rate_limited", "f6")
        ws.send({"type": 0})
        assert ws.expect("error")["error"] == "rate_limited"  # every frame over it, answered
        # Nothing refused was stored.
        assert me.get(f"/api/messages/{me.user_id}").json()["messages"] == []
        ws.close()
    finally:
        proc.stop()


def test_the_flood_window_slides_by_the_second(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(limits, "monotonic", lambda: clock[0])
    flood = limits.FloodLimiter(600)
    assert all(flood.hit(7) for _ in range(600))  # a burst in the first second
    assert not flood.hit(7)
    clock[0] += 30
    assert not flood.hit(7)  # the burst is still within the minute
    assert flood.hit(8)  # others are not affected
    clock[0] += 30
    assert all(flood.hit(7) for _ in range(600))  # a quiet minute: the whole allowance
    assert not flood.hit(7)
    clock[0] += 59
    assert not flood.hit(7)
    clock[0] += 1
    assert flood.hit(7)
