"""CSRF: every write made with the session cookie needs the token; bearer calls do not."""
from __future__ import annotations

import re

import requests

from tests.support import PASSWORD, Api


def browser_login(server, api_user: Api) -> tuple[requests.Session, str]:
    """Log in through the login form, as a browser does; returns the session and CSRF token."""
    s = requests.Session()
    page = s.get(server.base + "/login").text
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    r = s.post(server.base + "/login", data={"username": api_user.username,
                                             "password": PASSWORD, "csrf_token": token})
    assert r.status_code == 200 and "/login" not in r.url, r.url
    home = s.get(server.base + "/").text
    return s, re.search(r'name="csrf-token" content="([^"]+)"', home).group(1)


def test_session_writes_need_the_csrf_token(server, api):
    alice, bob = api("alice"), api("bob")
    s, token = browser_login(server, alice)
    assert s.get(server.base + "/api/me").json()["id"] == alice.user_id
    url = server.base + f"/api/users/{bob.user_id}/follow"
    refused = s.put(url)
    assert refused.status_code == 400 and "CSRF" in refused.json()["error"]["message"]
    assert s.put(url, headers={"X-CSRFToken": "forged"}).status_code == 400
    assert bob.get(f"/api/users/{alice.user_id}").json()["followed_by"] is False
    ok = s.put(url, headers={"X-CSRFToken": token})
    assert ok.status_code == 200 and ok.json()["following"] is True
    for method, path, body in (("POST", "/api/groups", {"name": "g"}),
                               ("POST", "/api/messages", {"recipient_id": bob.user_id,
                                                          "content": "x"}),
                               ("POST", "/api/notices/read", {}),
                               ("DELETE", "/api/tokens/current", None)):
        r = s.request(method, server.base + path, json=body)
        assert r.status_code == 400, path
    # Forms need it too.
    r = s.post(server.base + "/groups/new", data={"name": "no token"})
    assert r.status_code == 400
    assert s.get(server.base + "/api/groups").json()["groups"] == []


def test_bearer_token_calls_need_no_csrf_token(api):
    alice, bob = api("alice"), api("bob")
    assert alice.put(f"/api/users/{bob.user_id}/follow").status_code == 200


def test_login_starts_a_new_session_and_logout_ends_it_everywhere(server, api):
    alice = api("alice")
    s = requests.Session()
    s.get(server.base + "/login")
    before = s.cookies.get("session")
    s2, token = browser_login(server, alice)
    s.cookies.update(s2.cookies)
    stolen_cookie = s2.cookies.get("session")
    assert stolen_cookie != before
    r = s2.post(server.base + "/logout", data={"csrf_token": token})
    assert r.status_code == 200
    # The old cookie, replayed, is no longer a session.
    replay = requests.get(server.base + "/api/me", cookies={"session": stolen_cookie})
    assert replay.status_code == 401
