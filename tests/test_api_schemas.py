"""The API's declared schemas: each field type's JSON Schema says what its rule accepts,
views check ids before the service authorizes (docs/protocol.md 3.4), and every answer is
checked against its declaration under the testing config."""
from __future__ import annotations

import re
import sys
from urllib.parse import urlsplit

import jsonschema_rs
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from app import create_app
from chat.api import answers, fields
from chat.api.inputs import NewMessage, rule_of
from chat.errors import BadRequest
from chat.service import validation
from tests.support import PASSWORD

BODY_TYPES = {
    "Id": fields.Id, "Cursor": fields.Cursor, "Content": fields.Content,
    "ClientId": fields.ClientId, "Username": fields.Username, "Password": fields.Password,
    "AnyString": fields.AnyString, "TokenName": fields.TokenName,
    "GroupName": fields.GroupName, "Description": fields.Description,
    "IconUrl": fields.IconUrl,
}
QUERY_INT_TYPES = {"QueryCursor": fields.QueryCursor, "HistoryLimit": fields.HistoryLimit,
                   "SyncLimit": fields.SyncLimit}
QUERY_TEXT_TYPES = {"QueryFlag": fields.QueryFlag, "UserQuery": fields.UserQuery,
                    "GroupQuery": fields.GroupQuery}


def accepts(declared, value) -> bool:
    """Whether the declared type's rule (the service's own check) takes ``value``."""
    try:
        rule_of(declared).validate(value, "field")
    except BadRequest:
        return False
    return True


def documented(declared, value) -> bool:
    """Whether the document's JSON Schema for the type says ``value`` is valid."""
    return jsonschema_rs.Draft202012Validator(rule_of(declared).json_schema()).is_valid(value)


# Strings a rule is most likely to get wrong: blank ones, NUL, URLs, bounds, scripts.
tricky_text = st.one_of(
    st.text(),
    st.text(alphabet=st.sampled_from(list(" \t\n\x0b\x1c\x1f\x85\xa0\u2007\u3000\ufeffa\x00"))),
    st.from_regex(validation.USERNAME_RE, fullmatch=True),
    st.builds(lambda scheme, host, rest: f"{scheme}://{host}{rest}",
              st.sampled_from(["http", "https", "HTTP", "hTTps", "ftp", "javascript", ""]),
              st.text(max_size=8), st.text(max_size=8)),
    st.sampled_from(["", " ", "a", "x" * 3, "x" * 32, "x" * 33, "p" * 8, "p" * 7, "p" * 128,
                     "p" * 129, "c" * 64, "c" * 65, "d" * 500, "d" * 501, "x" * 5000,
                     "x" * 5001, "名字", "http://[", "http://a b", "http://a", "\x01http://a",
                     " http://a", "http://a/\x00", "中文 😀", "HTTP://0[", "http://a]/b",
                     "http://[::1]/i.png", "http://a/[x]", "https://a?b#c"]),
)
json_values = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-3, max_value=validation.MAX_ID + 3),
    st.sampled_from([0, 1, 2, 10**6, validation.MAX_ID - 1, validation.MAX_ID,
                     validation.MAX_ID + 1, -1]),
    st.floats(allow_nan=False, allow_infinity=False), tricky_text,
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=2), st.integers(),
                                                         max_size=1),
)


@pytest.mark.parametrize("name", sorted(BODY_TYPES))
@settings(max_examples=400, deadline=None)
@given(value=json_values)
@example(value=1.0)
@example(value="HTTP://0[")
@example(value="http://[::1]/i.png")
def test_each_body_field_type_documents_exactly_what_its_rule_accepts(name, value):
    declared = BODY_TYPES[name]
    if isinstance(value, float) and value.is_integer():
        # JSON Schema counts 1.0 as an integer; the rules refuse floats where an id or
        # a number belongs (docs/protocol.md 5). Stricter than the document, never looser.
        assert not accepts(declared, value)
        return
    if declared is fields.IconUrl and is_bracketed_ipv6(value):
        # The document leaves out icon URLs on a bracketed IPv6 host: stricter, never looser.
        assert not documented(declared, value)
        return
    assert accepts(declared, value) == documented(declared, value), value


def is_bracketed_ipv6(value) -> bool:
    """Whether ``value`` is a URL whose host is an IPv6 address in brackets."""
    try:
        return isinstance(value, str) and ":" in (urlsplit(value).hostname or "")
    except ValueError:
        return False


@pytest.mark.parametrize("name", sorted(QUERY_INT_TYPES))
@settings(max_examples=200, deadline=None)
@given(number=st.one_of(st.integers(min_value=-3, max_value=validation.MAX_ID + 3),
                        st.sampled_from([0, 1, 100, 101, 1000, 1001, validation.MAX_ID,
                                         validation.MAX_ID + 1])),
       junk=st.text())
def test_each_query_number_documents_exactly_what_its_rule_accepts(name, number, junk):
    declared = QUERY_INT_TYPES[name]
    # A client (Schemathesis too) sends the integer as its decimal digits.
    assert accepts(declared, str(number)) == documented(declared, number), number
    if not junk.isascii() or not junk.isdigit():
        assert not accepts(declared, junk)


@pytest.mark.parametrize("name", sorted(QUERY_TEXT_TYPES))
@settings(max_examples=300, deadline=None)
@given(value=tricky_text)
def test_each_query_text_documents_exactly_what_its_rule_accepts(name, value):
    declared = QUERY_TEXT_TYPES[name]
    assert accepts(declared, value) == documented(declared, value), value


def test_the_white_space_class_is_pythons():
    spaces = re.compile(f"[{fields.SPACES}]")
    assert {c for c in map(chr, range(sys.maxunicode + 1)) if spaces.match(c)} == {
        c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace()}


def test_a_body_envelope_checks_ids_and_leaves_the_rest_to_the_service():
    envelope = NewMessage.envelope()
    parsed = NewMessage.parse({"group_id": 5, "content": "", "client_id": 7})
    assert (parsed.group_id, parsed.content, parsed.client_id) == (5, "", 7)
    assert type(parsed) is envelope
    for bad in ({"group_id": True, "content": "x"}, {"group_id": 1.0, "content": "x"},
                {"content": "x"}, {"group_id": 1, "recipient_id": 2, "content": "x"}):
        with pytest.raises(BadRequest):
            NewMessage.parse(bad)
    with pytest.raises(BadRequest, match="content"):
        NewMessage.parse({"group_id": 5, "content": ""}, whole=True)


def test_authorization_comes_before_the_other_fields(api):
    owner, outsider, member = api("owner"), api("outsider"), api("member")
    gid = owner.post("/api/groups", json={"name": "club"}).json()["id"]
    member.put(f"/api/groups/{gid}/members/{member.user_id}")
    for payload in ({"content": ""}, {"content": 5}, {}, {"content": "x", "client_id": ""},
                    {"content": "   "}):
        r = outsider.post("/api/messages", json={"group_id": gid, **payload})
        assert r.status_code == 403, payload
        assert r.json()["error"]["code"] == "forbidden"
    for payload in ({"name": ""}, {"name": 5}, {"icon": "ftp://x"}, {"description": 7}):
        assert member.patch(f"/api/groups/{gid}", json=payload).status_code == 403, payload
    # A malformed flag is one of the other fields too: the group and the user come first.
    for payload in ({"content": "x", "mention_all": "x"}, {"content": "x", "mention_all": 1}):
        r = outsider.post("/api/messages", json={"group_id": gid, **payload})
        assert r.status_code == 403, payload
    missing_user = 10**9
    for payload in ({"mention_all": 1}, {"mention_all": True}, {"mentions": [owner.user_id]}):
        r = outsider.post("/api/messages",
                          json={"recipient_id": missing_user, "content": "x", **payload})
        assert r.status_code == 404, payload
    # A page's limit too: the conversation answers first.
    for query in ("limit=0", "limit=x", "limit=", "limit=101"):
        assert outsider.get(f"/api/messages/{missing_user}?{query}").status_code == 404, query
        assert outsider.get(f"/api/groups/{gid}/messages?{query}").status_code == 403, query
        assert member.get(f"/api/groups/{gid}/messages?{query}").status_code == 400, query
    assert outsider.get(f"/api/messages/{missing_user}?before_id=x").status_code == 400
    for flags in ({"muted": "x"}, {"pinned": 1}, {"archived": "yes"}):
        r = outsider.patch(f"/api/conversations/private/{missing_user}", json=flags)
        assert r.status_code == 404, flags
        r = outsider.patch(f"/api/conversations/group/{gid}", json=flags)
        assert r.status_code == 403, flags
    # Step 1 still comes first: malformed ids and unknown fields are 400 for anyone.
    assert outsider.post("/api/messages", json={"group_id": "1", "content": ""}).status_code == 400
    assert member.patch(f"/api/groups/{gid}", json={"owner_id": True}).status_code == 400
    assert member.patch(f"/api/groups/{gid}", json={"colour": "red"}).status_code == 400
    # Knowing who you are comes before the new password's rules.
    r = member.post("/api/me/password", json={"current_password": "wrong-wrong",
                                              "new_password": "short"})
    assert r.status_code == 401
    # The member passes authorization, so the same fields are now refused as fields.
    r = member.post("/api/messages", json={"group_id": gid, "content": ""})
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request"
    assert member.patch(f"/api/groups/{gid}", json={"name": ""}).status_code == 403
    assert owner.patch(f"/api/groups/{gid}", json={"name": ""}).status_code == 400
    for payload in ({"mention_all": "x"}, {"mention_all": 0}, {"mention_all": "true"}):
        r = member.post("/api/messages", json={"group_id": gid, "content": "x", **payload})
        assert r.status_code == 400 and "mention_all" in r.json()["error"]["message"], payload
    r = member.post("/api/messages", json={"recipient_id": owner.user_id, "content": "x",
                                           "mention_all": True})
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request"
    assert member.get(f"/api/groups/{gid}/messages").json()["messages"] == []
    for flags in ({"muted": "x"}, {"muted": True, "pinned": 1}, {"archived": "yes"}):
        r = member.patch(f"/api/conversations/group/{gid}", json=flags)
        assert r.status_code == 400, flags
    conv = member.patch(f"/api/conversations/group/{gid}", json={}).json()
    assert (conv["muted"], conv["pinned"]) == (False, False)  # the refused calls changed nothing
    for fields in ({"show_presence": "x"}, {"push_previews": 0, "show_presence": False}):
        assert member.patch("/api/me", json=fields).status_code == 400, fields
    assert member.get("/api/me").json()["show_presence"] is True


def test_null_means_absent_and_token_labels_are_checked(server, api):
    import requests
    alice = api("alice")
    r = alice.post("/api/messages", json={"recipient_id": alice.user_id, "content": "note",
                                          "client_id": None, "group_id": None})
    assert r.status_code == 201 and r.json()["client_id"] is None
    assert alice.post("/api/notices/read", json={"up_to_id": None}).status_code == 200
    login = {"username": alice.username, "password": PASSWORD}
    assert requests.post(server.base + "/api/tokens",
                         json={**login, "name": "n" * 65}).status_code == 400
    r = requests.post(server.base + "/api/tokens", json={**login, "name": "laptop"})
    assert r.status_code == 201
    names = [t["name"] for t in alice.get("/api/tokens").json()["tokens"]]
    assert "laptop" in names


@pytest.fixture()
def client():
    app = create_app("testing", SQLALCHEMY_DATABASE_URI="sqlite://", REDIS_URL=None)
    return app, app.test_client()


def test_answers_that_match_their_declaration_pass(client):
    app, c = client
    r = c.get("/api/me")
    assert r.status_code == 401 and r.json["error"]["code"] == "unauthorized"
    assert c.get("/api/openapi.json").status_code == 200


def test_an_answer_that_breaks_its_declaration_is_a_500_under_test(client, monkeypatch):
    app, c = client
    declared = app.view_functions["api.openapi"].operation.answers
    monkeypatch.setitem(declared, 200, answers.User)
    r = c.get("/api/openapi.json")
    assert r.status_code == 500
    assert "breaks its declaration" in r.json["error"]["message"]
    monkeypatch.delitem(declared, 200)
    monkeypatch.setitem(declared, 201, None)
    assert "status 200 is not declared" in c.get("/api/openapi.json").json["error"]["message"]


def test_answers_are_not_checked_outside_the_test_config(client, monkeypatch):
    app, c = client
    monkeypatch.setitem(app.config, "NAME", "production")
    monkeypatch.setitem(app.view_functions["api.openapi"].operation.answers, 200, answers.User)
    assert c.get("/api/openapi.json").status_code == 200


def test_options_is_flasks_own_answer_and_not_checked(client):
    app, c = client
    r = c.options("/api/conversations")
    assert r.status_code == 200 and "GET" in r.headers["Allow"]
