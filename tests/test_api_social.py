"""Users, follows and blocks over the HTTP API."""
from __future__ import annotations


def test_search_finds_users_by_part_of_the_name(api):
    alice = api("searchable")
    found = alice.get("/api/users", params={"q": alice.username[5:].upper()}).json()["users"]
    assert [u["username"] for u in found] == [alice.username]
    assert set(found[0]) == {"id", "username", "created_at"}
    # LIKE wildcards are taken literally.
    assert alice.get("/api/users", params={"q": "%"}).json()["users"] == []
    assert alice.get("/api/users", params={"q": "x" * 33}).status_code == 400


def test_follow_shows_on_both_profiles_and_makes_a_notice(api):
    alice, bob = api("alice"), api("bob")
    r = alice.put(f"/api/users/{bob.user_id}/follow")
    assert r.status_code == 200
    assert r.json()["following"] is True and r.json()["followed_by"] is False
    seen_by_bob = bob.get(f"/api/users/{alice.user_id}").json()
    assert seen_by_bob["following"] is False and seen_by_bob["followed_by"] is True
    assert seen_by_bob["username"] == alice.username
    notices = bob.get("/api/notices").json()["notices"]
    assert [(n["notice"], n["actor_id"], n["actor_name"]) for n in notices] == [
        ("follow", alice.user_id, alice.username)]
    # Following twice changes nothing and makes no second notice.
    assert alice.put(f"/api/users/{bob.user_id}/follow").status_code == 200
    assert len(bob.get("/api/notices").json()["notices"]) == 1
    assert alice.get("/api/notices").json()["notices"] == []
    r = alice.delete(f"/api/users/{bob.user_id}/follow")
    assert r.status_code == 200 and r.json()["following"] is False


def test_follow_and_profile_errors(api):
    alice = api()
    assert alice.put(f"/api/users/{alice.user_id}/follow").status_code == 400
    assert alice.put("/api/users/999999999/follow").status_code == 404
    for bad in ("0", "-1", "abc", "1.5", str(2**53)):
        r = alice.get(f"/api/users/{bad}")
        assert r.status_code in (400, 404), bad
        assert r.json()["error"]["code"] in ("bad_request", "not_found")
    assert alice.get(f"/api/users/{2**53}").status_code == 400
    assert alice.get("/api/users/999999999").status_code == 404


def test_block_stops_private_messages_and_follows(api):
    alice, bob = api("alice"), api("bob")
    bob.put(f"/api/users/{alice.user_id}/follow")
    r = alice.put(f"/api/users/{bob.user_id}/block")
    assert r.status_code == 200 and r.json()["blocking"] is True
    # The blocked user's follow ended, and cannot start again.
    assert alice.get(f"/api/users/{bob.user_id}").json()["followed_by"] is False
    assert bob.put(f"/api/users/{alice.user_id}/follow").status_code == 403
    sent = bob.post("/api/messages", json={"recipient_id": alice.user_id, "content": "hi"})
    assert sent.status_code == 403 and sent.json()["error"]["code"] == "forbidden"
    # Alice can still write to bob; unblocking lets bob write again.
    assert alice.post("/api/messages", json={"recipient_id": bob.user_id,
                                             "content": "hi"}).status_code == 201
    assert alice.delete(f"/api/users/{bob.user_id}/block").json()["blocking"] is False
    assert bob.post("/api/messages", json={"recipient_id": alice.user_id,
                                           "content": "hi"}).status_code == 201
