"""The OpenAPI 3 document of /api, served at /api/openapi.json and kept true by the tests."""
from __future__ import annotations

from ..service.validation import MAX_ID
from . import bp

_ID = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
_CURSOR = {"type": "integer", "minimum": 0, "maximum": MAX_ID}
_TIME = {"type": "string", "format": "date-time"}
_NULLABLE_ID = {"type": "integer", "nullable": True}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(required: list[str], **props) -> dict:
    return {"type": "object", "required": required, "properties": props}


SCHEMAS = {
    "Error": _obj(["error"], error=_obj(["code", "message"], code={"type": "string"},
                                        message={"type": "string"})),
    "User": _obj(["id", "username", "created_at"], id=_ID, username={"type": "string"},
                 created_at=_TIME),
    "Profile": {"allOf": [_ref("User"), _obj(
        ["following", "followed_by"], following={"type": "boolean"},
        followed_by={"type": "boolean"}, blocking={"type": "boolean"},
        blocked_by={"type": "boolean"})]},
    "Credentials": _obj(["username", "password"], username={"type": "string"},
                        password={"type": "string"}, name={"type": "string", "maxLength": 64}),
    "PasswordChange": _obj(["current_password", "new_password"],
                           current_password={"type": "string"},
                           new_password={"type": "string", "minLength": 8, "maxLength": 128}),
    "Token": _obj(["token", "user_id"], token={"type": "string"}, user_id=_ID, id=_ID),
    "TokenInfo": _obj(["id", "name", "created_at"], id=_ID, name={"type": "string"},
                      created_at=_TIME),
    "Group": _obj(["id", "name", "description", "icon", "owner_id", "member_count",
                   "created_at"],
                  id=_ID, name={"type": "string"}, description={"type": "string"},
                  icon={"type": "string"}, owner_id=_ID, member_count={"type": "integer"},
                  created_at=_TIME, role={"type": "string", "nullable": True,
                                          "enum": ["owner", "member", None]}),
    "NewGroup": _obj(["name"], name={"type": "string", "minLength": 1, "maxLength": 64},
                     description={"type": "string", "maxLength": 500, "nullable": True},
                     icon={"type": "string", "maxLength": 500, "nullable": True}),
    "GroupEdit": {"type": "object", "additionalProperties": False, "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 64, "nullable": True},
        "description": {"type": "string", "maxLength": 500, "nullable": True},
        "icon": {"type": "string", "maxLength": 500, "nullable": True},
        "owner_id": {**_ID, "nullable": True}}},
    "Member": {"allOf": [_ref("User"), _obj(["role", "joined_at"],
                                            role={"type": "string",
                                                  "enum": ["owner", "member"]},
                                            joined_at=_TIME)]},
    "Message": _obj(["kind", "code", "id", "from", "sender_id", "recipient_id", "group_id",
                     "content", "created_at", "client_id"],
                    kind={"type": "string", "enum": ["message"]}, code={"type": "integer"},
                    id=_ID, **{"from": {"type": "string"}}, sender_id=_ID,
                    sender_name={"type": "string"}, recipient_id=_NULLABLE_ID,
                    group_id=_NULLABLE_ID, content={"type": "string"}, created_at=_TIME,
                    client_id={"type": "string", "nullable": True}),
    "NewMessage": _obj(["content"], recipient_id=_ID, group_id=_ID,
                       content={"type": "string", "minLength": 1, "maxLength": 5000},
                       client_id={"type": "string", "minLength": 1, "maxLength": 64}),
    "Ack": _obj(["kind", "code", "id", "client_id", "created_at", "content"],
                kind={"type": "string", "enum": ["ack"]}, code={"type": "integer"}, id=_ID,
                client_id={"type": "string", "nullable": True}, created_at=_TIME,
                recipient_id=_NULLABLE_ID, group_id=_NULLABLE_ID, online={"type": "boolean"},
                content={"type": "string"}),
    "Page": _obj(["messages", "has_more"], messages={"type": "array", "items": _ref("Message")},
                 has_more={"type": "boolean"}),
    "Sync": {"allOf": [_ref("Page"), _obj(["kind", "code"], kind={"type": "string"},
                                          code={"type": "integer"})]},
    "Conversation": _obj(["kind", "name", "last_message", "unread"],
                         kind={"type": "string", "enum": ["private", "group"]},
                         user_id=_ID, group_id=_ID, name={"type": "string"},
                         last_message={"allOf": [_ref("Message")], "nullable": True},
                         unread={"type": "integer", "minimum": 0},
                         last_read_id=_CURSOR, peer_last_read_id=_CURSOR,
                         icon={"type": "string"}),
    "Unread": _obj(["total", "conversations"], total={"type": "integer", "minimum": 0},
                   conversations={"type": "array", "items": _ref("Conversation")}),
    "ReadRequest": _obj(["last_read_id"], recipient_id=_ID, group_id=_ID,
                        last_read_id=_CURSOR),
    "Read": _obj(["kind", "code", "user_id", "recipient_id", "group_id", "last_read_id"],
                 kind={"type": "string", "enum": ["read"]}, code={"type": "integer"},
                 user_id=_ID, recipient_id=_NULLABLE_ID, group_id=_NULLABLE_ID,
                 last_read_id=_CURSOR),
    "Notice": _obj(["kind", "code", "id", "notice", "actor_id", "group_id", "created_at"],
                   kind={"type": "string", "enum": ["notice"]}, code={"type": "integer"},
                   id=_ID, notice={"type": "string", "enum": ["follow", "group_added",
                                                             "group_removed",
                                                             "group_deleted"]},
                   actor_id=_ID, actor_name={"type": "string", "nullable": True},
                   group_id=_NULLABLE_ID,
                   group_name={"type": "string", "nullable": True}, created_at=_TIME,
                   read={"type": "boolean"}),
}


def _json(schema: dict) -> dict:
    return {"content": {"application/json": {"schema": schema}}}


def _ok(schema: dict, status: str = "200", description: str = "OK") -> dict:
    return {status: {"description": description, **_json(schema)},
            "default": {"description": "An error: PROTOCOL.md's codes", **_json(_ref("Error"))}}


def _list(key: str, item: str) -> dict:
    return _obj([key], **{key: {"type": "array", "items": _ref(item)}})


def _path_id(name: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": _ID}


def _query(name: str, schema: dict, required: bool = False) -> dict:
    return {"name": name, "in": "query", "required": required, "schema": schema}


_PAGE_PARAMS = [_query("before_id", _CURSOR),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": 100})]


def _op(summary: str, responses: dict, params: list | None = None, body: str | None = None,
        public: bool = False) -> dict:
    op = {"summary": summary, "responses": responses}
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = {"required": True, **_json(_ref(body))}
    if public:
        op["security"] = []
    return op


def build_openapi() -> dict:
    """The whole document (a fresh dict each time)."""
    uid, gid = _path_id("user_id"), _path_id("group_id")
    paths = {
        "/api/register": {"post": _op("Create an account", _ok(_ref("User"), "201"),
                                      body="Credentials", public=True)},
        "/api/tokens": {
            "post": _op("Log in for scripts: a bearer token", _ok(_ref("Token"), "201"),
                        body="Credentials", public=True),
            "get": _op("The caller's live API tokens", _ok(_list("tokens", "TokenInfo")))},
        "/api/tokens/current": {"delete": _op(
            "Revoke the token (or end the session) that made the call",
            _ok(_obj(["revoked"], revoked={"type": "boolean"})))},
        "/api/tokens/{token_id}": {"delete": _op(
            "Revoke one of the caller's tokens",
            _ok(_obj(["revoked"], revoked={"type": "boolean"})), [_path_id("token_id")])},
        "/api/me": {"get": _op("The current user", _ok(_ref("User")))},
        "/api/me/password": {"post": _op(
            "Change the password (ends every other session and token)",
            _ok(_obj(["changed"], changed={"type": "boolean"})), body="PasswordChange")},
        "/api/users": {"get": _op("Find users by name", _ok(_list("users", "User")),
                                  [_query("q", {"type": "string", "maxLength": 32})])},
        "/api/users/{user_id}": {"get": _op("A profile", _ok(_ref("Profile")), [uid])},
        "/api/users/{user_id}/follow": {
            "put": _op("Follow", _ok(_ref("Profile")), [uid]),
            "delete": _op("Unfollow", _ok(_ref("Profile")), [uid])},
        "/api/users/{user_id}/block": {
            "put": _op("Block", _ok(_ref("Profile")), [uid]),
            "delete": _op("Unblock", _ok(_ref("Profile")), [uid])},
        "/api/conversations": {"get": _op("Private chats and groups, newest first",
                                          _ok(_list("conversations", "Conversation")))},
        "/api/messages/{user_id}": {"get": _op("Private history", _ok(_ref("Page")),
                                               [uid, *_PAGE_PARAMS])},
        "/api/messages": {"post": {
            **_op("Send a message without a WebSocket",
                  {**_ok(_ref("Ack"), "201", "Stored"),
                   "200": {"description": "Already stored with this client_id",
                           **_json(_ref("Ack"))}}, body="NewMessage")}},
        "/api/unread": {"get": _op("What is unread (marks nothing read)", _ok(_ref("Unread")))},
        "/api/read": {"post": _op("Move a read cursor", _ok(_ref("Read")), body="ReadRequest")},
        "/api/sync": {"get": _op("Every message after since_id", _ok(_ref("Sync")), [
            _query("since_id", _CURSOR, required=True),
            _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000})])},
        "/api/groups": {
            "post": _op("Create a group", _ok(_ref("Group"), "201"), body="NewGroup"),
            "get": _op("My groups, or with q every group whose name matches",
                       _ok(_list("groups", "Group")),
                       [_query("q", {"type": "string", "maxLength": 64})])},
        "/api/groups/{group_id}": {
            "get": _op("A group", _ok(_ref("Group")), [gid]),
            "patch": _op("Edit or hand over (owner)", _ok(_ref("Group")), [gid],
                         body="GroupEdit"),
            "delete": _op("Delete (owner)", _ok(_obj(["deleted"], deleted={"type": "boolean"},
                                                     id=_ID)), [gid])},
        "/api/groups/{group_id}/messages": {"get": _op("Group history", _ok(_ref("Page")),
                                                       [gid, *_PAGE_PARAMS])},
        "/api/groups/{group_id}/members": {"get": _op("Members (members only)",
                                                      _ok(_list("members", "Member")), [gid])},
        "/api/groups/{group_id}/members/{user_id}": {
            "put": _op("Join (yourself) or add (owner)", _ok(_ref("Group")), [gid, uid]),
            "delete": _op("Leave (yourself) or remove (owner)", _ok(_ref("Group")),
                          [gid, uid])},
        "/api/notices": {"get": _op(
            "The caller's notices, newest first",
            _ok(_obj(["notices"], notices={"type": "array", "items": _ref("Notice")},
                     unread={"type": "integer"})),
            [_query("unread", {"type": "string", "enum": ["0", "1", "true", "false"]})])},
        "/api/notices/read": {"post": {
            **_op("Mark notices read (all, or up to up_to_id)",
                  _ok(_obj(["marked"], marked={"type": "integer"}))),
            "requestBody": {"required": False, **_json(
                {"type": "object", "properties": {"up_to_id": {**_CURSOR,
                                                                "nullable": True}}})}}},
        "/api/openapi.json": {"get": _op("This document", _ok({"type": "object"}),
                                         public=True)},
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": "Chat API", "version": "1",
                 "description": "PROTOCOL.md section 4. Errors: "
                                "{\"error\": {\"code\", \"message\"}}. Calls made with the "
                                "session cookie need the X-CSRFToken header."},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                "session": {"type": "apiKey", "in": "cookie",
                                            "name": "session"}}},
        "security": [{"bearer": []}, {"session": []}],
    }


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI 3 document of this API."""
    return build_openapi()
