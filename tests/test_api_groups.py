"""Groups over the HTTP API: create, find, join, leave, members, owner powers, notices."""
from __future__ import annotations


def make_group(owner, **fields):
    r = owner.post("/api/groups", json={"name": "Book club", **fields})
    assert r.status_code == 201, r.text
    return r.json()


def test_create_group_makes_the_creator_owner_and_member(api):
    alice = api("alice")
    group = make_group(alice, description="我们读书 📚", icon="https://example.com/i.png")
    assert group["owner_id"] == alice.user_id and group["member_count"] == 1
    assert group["description"] == "我们读书 📚"
    assert set(group) >= {"id", "name", "description", "icon", "owner_id", "member_count",
                          "created_at"}
    mine = alice.get("/api/groups").json()["groups"]
    assert [g["id"] for g in mine] == [group["id"]]
    members = alice.get(f"/api/groups/{group['id']}/members").json()["members"]
    assert [(m["id"], m["role"]) for m in members] == [(alice.user_id, "owner")]
    assert members[0]["joined_at"].endswith("Z")


def test_group_validation(api):
    alice = api()
    for payload in ({}, {"name": ""}, {"name": "   "}, {"name": "x" * 65}, {"name": 5},
                    {"name": "ok", "icon": "javascript:alert(1)"},
                    {"name": "ok", "icon": "ftp://example.com/x"},
                    {"name": "ok", "description": "d" * 501}):
        r = alice.post("/api/groups", json=payload)
        assert r.status_code == 400, payload
        assert r.json()["error"]["code"] == "bad_request"


def test_find_join_and_leave(api):
    alice, bob = api("alice"), api("bob")
    group = make_group(alice, name="Findable " + alice.username)
    found = bob.get("/api/groups", params={"q": alice.username}).json()["groups"]
    assert [g["id"] for g in found] == [group["id"]]
    assert bob.get(f"/api/groups/{group['id']}/members").status_code == 403
    r = bob.put(f"/api/groups/{group['id']}/members/{bob.user_id}")
    assert r.status_code == 200 and r.json()["member_count"] == 2
    assert bob.get(f"/api/groups/{group['id']}").json()["role"] == "member"
    # Joining yourself makes no notice for yourself or the owner.
    assert bob.get("/api/notices").json()["notices"] == []
    r = bob.delete(f"/api/groups/{group['id']}/members/{bob.user_id}")
    assert r.status_code == 200 and r.json()["member_count"] == 1
    assert bob.get("/api/groups").json()["groups"] == []


def test_owner_cannot_leave_but_can_hand_over(api):
    alice, bob = api("alice"), api("bob")
    group = make_group(alice)
    gid = group["id"]
    left = alice.delete(f"/api/groups/{gid}/members/{alice.user_id}")
    assert left.status_code == 409 and left.json()["error"]["code"] == "conflict"
    # Only a member can become owner.
    assert alice.patch(f"/api/groups/{gid}", json={"owner_id": bob.user_id}).status_code == 400
    bob.put(f"/api/groups/{gid}/members/{bob.user_id}")
    r = alice.patch(f"/api/groups/{gid}", json={"owner_id": bob.user_id})
    assert r.status_code == 200 and r.json()["owner_id"] == bob.user_id
    roles = {m["id"]: m["role"] for m in bob.get(f"/api/groups/{gid}/members").json()["members"]}
    assert roles == {alice.user_id: "member", bob.user_id: "owner"}
    assert alice.delete(f"/api/groups/{gid}/members/{alice.user_id}").status_code == 200


def test_only_the_owner_edits_adds_removes_and_deletes(api):
    alice, bob, carol = api("alice"), api("bob"), api("carol")
    gid = make_group(alice)["id"]
    bob.put(f"/api/groups/{gid}/members/{bob.user_id}")
    assert bob.patch(f"/api/groups/{gid}", json={"name": "mine now"}).status_code == 403
    assert bob.put(f"/api/groups/{gid}/members/{carol.user_id}").status_code == 403
    # Authorization first (docs/protocol.md 3.4): a member removing the owner is 403, not 409;
    # only the owner leaving their own group hears that the owner cannot leave.
    assert bob.delete(f"/api/groups/{gid}/members/{alice.user_id}").status_code == 403
    assert alice.delete(f"/api/groups/{gid}/members/{alice.user_id}").status_code == 409
    assert bob.delete(f"/api/groups/{gid}").status_code == 403
    assert alice.get(f"/api/groups/{gid}").json()["name"] == "Book club"
    r = alice.patch(f"/api/groups/{gid}", json={"name": "Readers", "description": "new",
                                                "icon": "http://example.com/a.png"})
    assert r.status_code == 200
    assert (r.json()["name"], r.json()["description"]) == ("Readers", "new")
    assert alice.patch(f"/api/groups/{gid}", json={"colour": "red"}).status_code == 400


def test_add_remove_delete_make_notices(api):
    alice, bob, carol = api("alice"), api("bob"), api("carol")
    for follower in (bob, carol):  # followers of the owner are added at once
        assert follower.put(f"/api/users/{alice.user_id}/follow").status_code == 200
    gid = make_group(alice)["id"]
    assert alice.put(f"/api/groups/{gid}/members/{bob.user_id}").status_code == 200
    assert alice.put(f"/api/groups/{gid}/members/{carol.user_id}").status_code == 200
    assert [n["notice"] for n in bob.get("/api/notices").json()["notices"]] == ["group_added"]
    added = bob.get("/api/notices").json()["notices"][0]
    assert added["actor_id"] == alice.user_id and added["group_id"] == gid
    assert alice.delete(f"/api/groups/{gid}/members/{bob.user_id}").status_code == 200
    assert [n["notice"] for n in bob.get("/api/notices").json()["notices"]] == [
        "group_removed", "group_added"]
    assert bob.get(f"/api/groups/{gid}/messages").status_code == 403
    r = alice.delete(f"/api/groups/{gid}")
    assert r.status_code == 200
    assert [n["notice"] for n in carol.get("/api/notices?unread=1").json()["notices"]] == [
        "group_deleted", "group_added"]
    assert alice.get(f"/api/groups/{gid}").status_code == 404
    # alice's own notices are the follows, never her own group actions.
    assert {n["notice"] for n in alice.get("/api/notices").json()["notices"]} == {"follow"}
    # Marking read: up to an id, then all.
    notes = carol.get("/api/notices").json()["notices"]
    oldest = min(n["id"] for n in notes)
    assert carol.post("/api/notices/read", json={"up_to_id": oldest}).status_code == 200
    assert [n["notice"] for n in carol.get("/api/notices?unread=1").json()["notices"]] == [
        "group_deleted"]
    assert carol.post("/api/notices/read").status_code == 200
    assert carol.get("/api/notices?unread=1").json()["notices"] == []
    assert carol.post("/api/notices/read", json={"up_to_id": "x"}).status_code == 400


def test_group_errors(api):
    alice = api()
    assert alice.get("/api/groups/999999999").status_code == 404
    assert alice.get("/api/groups/0").status_code == 400
    assert alice.put(f"/api/groups/999999999/members/{alice.user_id}").status_code == 404
    gid = make_group(alice)["id"]
    assert alice.put(f"/api/groups/{gid}/members/999999999").status_code == 404
    assert alice.delete(f"/api/groups/{gid}/members/999999999").status_code == 404


def test_someone_who_does_not_follow_the_owner_is_invited_not_added(api):
    """docs/protocol.md, Attention: nobody is put in a group, and sent its messages, without saying yes."""
    owner, invitee, fan = api("owner"), api("invitee"), api("fan")
    assert fan.put(f"/api/users/{owner.user_id}/follow").status_code == 200
    gid = make_group(owner)["id"]
    r = owner.put(f"/api/groups/{gid}/members/{invitee.user_id}")
    assert r.status_code == 202 and r.json()["invited"] is True
    notices = invitee.get("/api/notices").json()["notices"]
    assert [(n["notice"], n["group_id"], n["actor_id"]) for n in notices] == [
        ("group_invited", gid, owner.user_id)]
    # Asking again changes nothing: still invited, no second notice.
    assert owner.put(f"/api/groups/{gid}/members/{invitee.user_id}").status_code == 202
    assert len(invitee.get("/api/notices").json()["notices"]) == 1
    # Not a member yet: the group's messages do not reach them.
    for n in range(5):
        owner.post("/api/messages", json={"group_id": gid, "content": f"spam {n}"})
    assert invitee.get(f"/api/groups/{gid}/messages").status_code == 403
    assert invitee.get("/api/unread").json()["total"] == 0
    members = {m["id"] for m in owner.get(f"/api/groups/{gid}/members").json()["members"]}
    assert invitee.user_id not in members
    # A follower of the owner is added at once, as in version 1.
    assert owner.put(f"/api/groups/{gid}/members/{fan.user_id}").status_code == 200
    # The invitee says yes: a member, with only what comes next unread.
    assert invitee.put(f"/api/groups/{gid}/members/{invitee.user_id}").status_code == 200
    assert invitee.get(f"/api/groups/{gid}/messages").status_code == 200
    assert invitee.get("/api/unread").json()["total"] == 0


def test_an_invitation_can_be_declined(api):
    owner, invitee = api("owner"), api("invitee")
    gid = make_group(owner)["id"]
    assert owner.put(f"/api/groups/{gid}/members/{invitee.user_id}").status_code == 202
    r = invitee.delete(f"/api/groups/{gid}/members/{invitee.user_id}")
    assert r.status_code == 200 and r.json()["role"] is None
    # Declined: nothing left to decline, and not a member.
    assert invitee.delete(f"/api/groups/{gid}/members/{invitee.user_id}").status_code == 404
    assert invitee.get(f"/api/groups/{gid}/messages").status_code == 403
