"""Accounts over the HTTP API: register, tokens, revocation, login throttling, identity."""
from __future__ import annotations

import orjson
import requests

from tests.support import PASSWORD, Api, unique_name


def register(base, username, password=PASSWORD):
    return requests.post(base + "/api/register", json={"username": username, "password": password})


def test_register_returns_the_user_and_names_are_unique_case_insensitively(server):
    name = unique_name("Ann")
    r = register(server.base, name)
    assert r.status_code == 201
    body = r.json()
    assert body["username"] == name and isinstance(body["id"], int)
    assert body["created_at"].endswith("Z")
    assert "password" not in str(body).lower()
    again = register(server.base, name.upper())
    assert again.status_code == 409
    assert again.json() == {"error": {"code": "conflict", "message": "that username is taken"}}


def test_register_rejects_bad_names_passwords_and_bodies(server):
    base = server.base
    cases = [
        ({"username": "ab", "password": PASSWORD}, 400),
        ({"username": "x" * 33, "password": PASSWORD}, 400),
        ({"username": "has space", "password": PASSWORD}, 400),
        ({"username": "名字名字", "password": PASSWORD}, 400),
        ({"username": unique_name(), "password": "short"}, 400),
        ({"username": unique_name(), "password": "p" * 129}, 400),
        ({"username": unique_name()}, 400),
        ({"username": 123, "password": PASSWORD}, 400),
        ({"username": unique_name(), "password": None}, 400),
    ]
    for payload, status in cases:
        r = requests.post(base + "/api/register", json=payload)
        assert r.status_code == status, payload
        assert r.json()["error"]["code"] == "bad_request"
    for raw in (b"[1,2]", b"not json", b"null", b'"text"'):
        r = requests.post(base + "/api/register", data=raw,
                          headers={"Content-Type": "application/json"})
        assert r.status_code == 400, raw
    # Exactly 8 and 128 characters are fine.
    assert register(base, unique_name(), "p" * 8).status_code == 201
    assert register(base, unique_name(), "p" * 128).status_code == 201


def test_token_login_wrong_password_and_missing_fields(server):
    name = unique_name()
    register(server.base, name)
    ok = requests.post(server.base + "/api/tokens", json={"username": name.upper(),
                                                          "password": PASSWORD})
    assert ok.status_code == 201 and ok.json()["token"] and ok.json()["user_id"]
    wrong = requests.post(server.base + "/api/tokens", json={"username": name,
                                                             "password": "wrong-password"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "unauthorized"
    nobody = requests.post(server.base + "/api/tokens", json={"username": unique_name(),
                                                              "password": PASSWORD})
    assert nobody.status_code == 401
    for payload in ({}, {"username": name}, {"password": PASSWORD}, {"username": 1,
                                                                     "password": PASSWORD}):
        r = requests.post(server.base + "/api/tokens", json=payload)
        assert r.status_code == 400, payload


def test_me_needs_a_valid_token(server, api):
    alice = api("alice")
    me = alice.get("/api/me")
    assert me.status_code == 200 and me.json()["id"] == alice.user_id
    assert me.json()["username"] == alice.username
    assert requests.get(server.base + "/api/me").status_code == 401
    bad = requests.get(server.base + "/api/me", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "unauthorized"
    # The seed's ?myid= is not an identity.
    assert requests.get(server.base + f"/api/me?myid={alice.user_id}").status_code == 401


def test_revoking_the_current_token_ends_it_and_only_it(server, api):
    alice = api("alice")
    t2 = requests.post(server.base + "/api/tokens", json={"username": alice.username,
                                                          "password": PASSWORD}).json()["token"]
    r = alice.delete("/api/tokens/current")
    assert r.status_code == 200 and r.json() == {"revoked": True}
    assert alice.get("/api/me").status_code == 401
    other = Api(server.base, t2)
    assert other.get("/api/me").status_code == 200


def test_tokens_are_listed_without_secrets_and_cannot_be_revoked_by_others(server, api):
    alice, mallory = api("alice"), api("mallory")
    listed = alice.get("/api/tokens").json()["tokens"]
    assert listed and all("token" not in t and "hash" not in str(t) for t in listed)
    alice_token_id = listed[0]["id"]
    stolen = mallory.delete(f"/api/tokens/{alice_token_id}")
    assert stolen.status_code == 404
    assert alice.get("/api/me").status_code == 200
    own = alice.delete(f"/api/tokens/{alice_token_id}")
    assert own.status_code == 200
    assert alice.get("/api/me").status_code == 401


def test_failed_logins_are_slowed_down_per_username(server):
    name = unique_name()
    register(server.base, name)
    for _ in range(10):
        r = requests.post(server.base + "/api/tokens", json={"username": name,
                                                             "password": "wrong-password"})
        assert r.status_code == 401
    blocked = requests.post(server.base + "/api/tokens", json={"username": name,
                                                               "password": PASSWORD})
    assert blocked.status_code == 429
    assert blocked.json()["error"]["code"] == "rate_limited"
    # Another username is not affected.
    other = unique_name()
    register(server.base, other)
    assert requests.post(server.base + "/api/tokens", json={"username": other,
                                                            "password": PASSWORD}).status_code == 201


def test_unknown_api_route_and_method_answer_json(server, api):
    alice = api()
    r = alice.get("/api/nothing-here")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = alice.call("PUT", "/api/me")  # (PATCH /api/me: settings, docs/protocol.md, Attention)
    assert r.status_code == 405 and "error" in r.json()


def test_body_limit_is_enforced(server, api):
    r = requests.post(server.base + "/api/register", data=b"{" + b" " * (300 * 1024) + b"}",
                      headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    # Also on calls that ignore their body: refused, and nothing done.
    alice, bob = api(), api()
    big = b"{" + b" " * (300 * 1024) + b"}"
    for method, path in (("PUT", f"/api/users/{bob.user_id}/follow"),
                         ("PUT", f"/api/users/{bob.user_id}/block")):
        r = alice.call(method, path, data=big)
        assert (r.status_code, r.json()["error"]["code"]) == (413, "too_large"), path
        # Sent in chunks, with no Content-Length to read the size from.
        r = alice.call(method, path, data=iter([big[:1000], big[1000:]]))
        assert (r.status_code, r.json()["error"]["code"]) == (413, "too_large"), path
    profile = alice.get(f"/api/users/{bob.user_id}").json()
    assert profile["following"] is False
    # A chunked body within the limit reaches its view whole.
    body = orjson.dumps({"recipient_id": bob.user_id, "content": "sent in chunks"})
    r = alice.http.post(server.base + "/api/messages", data=iter([body[:7], body[7:]]),
                        headers={**alice.headers(), "Content-Type": "application/json"})
    assert r.status_code == 201 and r.json()["id"] > 0
    assert alice.put(f"/api/users/{bob.user_id}/follow").status_code == 200  # no body: done


def test_changing_the_password_ends_every_other_session_and_token(server, api):
    import websocket
    alice = api("alice")
    other = requests.post(server.base + "/api/tokens", json={"username": alice.username,
                                                             "password": PASSWORD}).json()
    sock = websocket.create_connection(server.ws_url, timeout=10,
                                       header=[f"Authorization: Bearer {other['token']}"])
    sock.recv()
    wrong = alice.post("/api/me/password", json={"current_password": "nope-nope",
                                                 "new_password": "new-password-1"})
    assert wrong.status_code == 401
    short = alice.post("/api/me/password", json={"current_password": PASSWORD,
                                                 "new_password": "short"})
    assert short.status_code == 400
    assert alice.post("/api/me/password", json={"current_password": PASSWORD}).status_code == 400
    ok = alice.post("/api/me/password", json={"current_password": PASSWORD,
                                              "new_password": "new-password-1"})
    assert ok.status_code == 200 and ok.json() == {"changed": True}
    assert alice.get("/api/me").status_code == 200  # the token that made the change lives on
    assert Api(server.base, other["token"]).get("/api/me").status_code == 401
    opcode, data = sock.recv_data(control_frame=True)
    while opcode != websocket.ABNF.OPCODE_CLOSE:
        opcode, data = sock.recv_data(control_frame=True)
    assert int.from_bytes(data[:2], "big") == 1008
    assert requests.post(server.base + "/api/tokens", json={
        "username": alice.username, "password": PASSWORD}).status_code == 401
    assert requests.post(server.base + "/api/tokens", json={
        "username": alice.username, "password": "new-password-1"}).status_code == 201
