"""Attention (PROTOCOL.md 6.5) against a real server on MariaDB and Redis: private groups,
mute / pin / archive and the unread total, presence, Web Push."""
from __future__ import annotations


def make_group(owner, **fields):
    r = owner.post("/api/groups", json={"name": "Attic " + owner.username, **fields})
    assert r.status_code == 201, r.text
    return r.json()


# -- Private groups ------------------------------------------------------------------------

def test_private_group_is_invisible_to_outsiders_and_joined_by_invitation(api):
    alice, bob, carol = api("alice"), api("bob"), api("carol")
    bob.put(f"/api/users/{alice.user_id}/follow")  # even a follower is only invited
    group = make_group(alice, visibility="private")
    gid = group["id"]
    assert group["visibility"] == "private"
    assert make_group(alice)["visibility"] == "public"
    bad = alice.post("/api/groups", json={"name": "x", "visibility": "secret"})
    assert bad.status_code == 400
    # Outsiders: 404 everywhere, not found by search, cannot join or write.
    for path in (f"/api/groups/{gid}", f"/api/groups/{gid}/members",
                 f"/api/groups/{gid}/messages"):
        assert carol.get(path).status_code == 404, path
    assert carol.put(f"/api/groups/{gid}/members/{carol.user_id}").status_code == 404
    sent = carol.post("/api/messages", json={"group_id": gid, "content": "hi"})
    assert sent.status_code == 404
    found = {g["id"] for g in carol.get("/api/groups", params={"q": "Attic " + alice.username})
             .json()["groups"]}
    assert gid not in found and len(found) == 1
    # The owner adds bob: invited (202), never added at once.
    r = alice.put(f"/api/groups/{gid}/members/{bob.user_id}")
    assert r.status_code == 202 and r.json()["invited"] is True
    notices = bob.get("/api/notices").json()["notices"]
    assert notices[0]["notice"] == "group_invited" and notices[0]["group_id"] == gid
    # Invited: sees the group, not its members or messages.
    shown = bob.get(f"/api/groups/{gid}")
    assert shown.status_code == 200 and shown.json()["role"] is None
    assert bob.get(f"/api/groups/{gid}/members").status_code == 403
    assert bob.get(f"/api/groups/{gid}/messages").status_code == 403
    # Joins; then the member finds it by search, and the outsider still does not.
    assert bob.put(f"/api/groups/{gid}/members/{bob.user_id}").status_code == 200
    assert bob.get(f"/api/groups/{gid}/members").status_code == 200
    assert gid in {g["id"] for g in bob.get("/api/groups", params={"q": "Attic"})
                   .json()["groups"]}
    assert carol.get(f"/api/groups/{gid}").status_code == 404


def test_private_group_invitation_can_be_declined(api):
    alice, bob = api("alice"), api("bob")
    gid = make_group(alice, visibility="private")["id"]
    assert alice.put(f"/api/groups/{gid}/members/{bob.user_id}").status_code == 202
    assert bob.delete(f"/api/groups/{gid}/members/{bob.user_id}").status_code == 200
    assert bob.get(f"/api/groups/{gid}").status_code == 404
    assert bob.put(f"/api/groups/{gid}/members/{bob.user_id}").status_code == 404
