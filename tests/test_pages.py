"""The server-rendered pages over plain HTTP (no browser): safety, language, forms and feedback."""
from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
import requests

from chat.web import i18n
from tests.support import PASSWORD, ROOT, Api, unique_name


class PageParser(HTMLParser):
    """Collects what the checks below look at: scripts, attributes, forms, labels, fields."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict] = []
        self.bad_attributes: list[str] = []
        self.forms: list[dict] = []
        self.label_for: set[str] = set()
        self.fields: list[dict] = []
        self.meta: dict[str, str] = {}
        self.html_lang = None
        self._form = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for name, _value in attrs:
            if name == "style" or name.startswith("on"):
                self.bad_attributes.append(f"<{tag} {name}=...>")
        if tag == "html":
            self.html_lang = a.get("lang")
        elif tag == "script":
            self.scripts.append(a)
        elif tag == "meta" and "name" in a:
            self.meta[a["name"]] = a.get("content", "")
        elif tag == "form":
            self._form = {"method": (a.get("method") or "get").lower(), "action": a.get("action"),
                          "csrf": False}
            self.forms.append(self._form)
        elif tag == "label" and "for" in a:
            self.label_for.add(a["for"])
        elif tag in ("input", "textarea", "select"):
            if a.get("type") == "hidden":
                if a.get("name") == "csrf_token" and self._form is not None:
                    self._form["csrf"] = bool(a.get("value"))
            else:
                self.fields.append(a)

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None


def parse(html: str) -> PageParser:
    parser = PageParser()
    parser.feed(html)
    return parser


class Visitor:
    """A browser without JavaScript: a cookie jar, a language, and forms posted with their CSRF token."""

    def __init__(self, base: str, lang: str = "en-US,en;q=0.9") -> None:
        self.base = base
        self.http = requests.Session()
        self.http.headers["Accept-Language"] = lang
        self.token = ""
        self.last_url = base + "/"

    def get(self, path: str, **kw) -> requests.Response:
        """GET a page and remember its CSRF token (as a form on it would carry it)."""
        r = self.http.get(self.base + path, timeout=30, **kw)
        self.last_url = r.url
        found = re.search(r'name="csrf-token" content="([^"]+)"', r.text)
        if found:
            self.token = found.group(1)
        return r

    def post(self, path: str, data: dict | None = None, csrf: bool = True, **kw) -> requests.Response:
        """POST a form from the last page (with its Referer, as a browser sends)."""
        body = dict(data or {})
        if csrf:
            body["csrf_token"] = self.token
        r = self.http.post(self.base + path, data=body, timeout=30,
                           headers={"Referer": self.last_url}, **kw)
        if r.history or r.url != self.base + path:
            self.last_url = r.url
        return r

    def login(self, user: Api) -> "Visitor":
        self.get("/login")
        r = self.post("/login", {"username": user.username, "password": PASSWORD})
        assert r.url == self.base + "/", r.text[:500]
        return self

    @staticmethod
    def flashes(r: requests.Response) -> list[str]:
        """The flash messages of a page, as text."""
        return [unescape(re.sub(r"\s+", " ", m).strip()) for m in
                re.findall(r'<p class="flash flash-\w+"[^>]*>(.*?)</p>', r.text, re.S)]


def unescape(text: str) -> str:
    import html
    return html.unescape(text)


@pytest.fixture
def people(server):
    """Three fresh users: an owner, a friend (mutual follow) and a stranger."""
    owner, friend, stranger = (Api.new_user(server.base, s) for s in ("pat", "fay", "sam"))
    owner.follow_each_other(friend)
    return owner, friend, stranger


def test_every_page_has_a_strict_policy_no_inline_code_and_csrf_on_forms(server, people):
    """CSP without inline script or style; no style=/on*= attributes; CSRF and labels on every form."""
    owner, friend, _ = people
    group = owner.post("/api/groups", json={"name": "Policy check"}).json()
    owner.put(f"/api/groups/{group['id']}/members/{friend.user_id}")
    owner.post("/api/messages", json={"recipient_id": friend.user_id, "content": "hi"})
    anon = Visitor(server.base)
    visitor = Visitor(server.base).login(owner)
    pages = [(anon, "/login"), (anon, "/register")] + [(visitor, p) for p in (
        "/", f"/chat/u/{friend.user_id}", f"/chat/g/{group['id']}", "/users", "/users?q=fa",
        f"/users/{friend.user_id}", f"/users/{owner.user_id}", "/groups/", "/groups/?q=Policy",
        "/groups/new", f"/groups/{group['id']}", "/notices", "/settings/tokens")]
    host = server.base.split("://", 1)[1]
    for who, path in pages:
        r = who.get(path)
        assert r.status_code == 200, (path, r.status_code)
        policy = r.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy, policy
        assert "style-src 'self'" in policy and f"ws://{host}" in policy, policy
        page = parse(r.text)
        assert page.html_lang == "en", path
        for script in page.scripts:  # code only from files; a JSON data block is not code
            assert script.get("src") or script.get("type") == "application/json", (path, script)
        assert not page.bad_attributes, (path, page.bad_attributes)
        for form in page.forms:
            if form["method"] == "post":
                assert form["csrf"], (path, form)
        for field in page.fields:  # every visible field is labelled for screen readers
            assert field.get("id") in page.label_for or field.get("aria-label"), (path, field)
        if who is visitor:
            assert page.meta.get("csrf-token"), path


def test_language_follows_the_browser_and_the_switch_is_remembered(server, people):
    owner, _, _ = people
    chinese = Visitor(server.base, lang="zh-CN,zh;q=0.9,en;q=0.5")
    r = chinese.get("/login")
    assert parse(r.text).html_lang == "zh-Hans"
    assert "<h1>登录</h1>" in r.text and "Accept-Language" in r.headers.get("Vary", "")
    assert parse(Visitor(server.base, lang="fr-FR,en;q=0.5").get("/login").text).html_lang == "en"
    assert parse(Visitor(server.base, lang="de").get("/login").text).html_lang == "en"

    refused = chinese.post("/lang", {"lang": "en"}, csrf=False)
    assert refused.status_code == 400
    r = chinese.post("/lang", {"lang": "en"})
    assert r.status_code == 200 and r.url == server.base + "/login"  # back where we were
    assert "<h1>Log in</h1>" in r.text
    assert chinese.http.cookies.get("lang") == "en"
    chinese.post("/lang", {"lang": "klingon"})  # unknown: ignored
    assert chinese.http.cookies.get("lang") == "en"

    english = Visitor(server.base)
    english.get("/login")
    english.post("/lang", {"lang": "zh-Hans"})
    english.login(owner)
    home = english.get("/")
    assert "<h1 id=\"sidebar-title\">会话</h1>" in home.text
    catalog = re.search(r'<script type="application/json" id="i18n-catalog">(.*?)</script>',
                        home.text, re.S).group(1)
    assert json.loads(catalog)["Seen"] == "已读"


def _msgids() -> dict[str, set[str]]:
    """Every msgid the interface uses: in templates and Python (_), in JavaScript (t)."""
    found = {"py": set(), "js": set()}
    quoted = r'"((?:[^"\\]|\\.)*)"'
    for path in list((ROOT / "templates").rglob("*.html")) + [ROOT / "chat" / "web" / n for n in
                                                             ("pages.py", "groups.py", "auth.py")]:
        text = path.read_text()
        found["py"] |= set(re.findall(r"\b_n?\(\s*" + quoted, text))
        for match in re.finditer(r"\b_n\(\s*" + quoted + r"\s*,\s*" + quoted, text):
            found["py"] |= {match.group(1), match.group(2)}
        found["py"] |= set(re.findall(r"\b_\(\s*'([^']*)'", text))
        found["py"] |= set(re.findall(r"\btranslate\(\s*" + quoted, text))
    for path in (ROOT / "static" / "js").glob("*.js"):
        found["js"] |= set(re.findall(r"\bt\(\s*" + quoted, path.read_text()))
    found["py"] |= set(re.findall(r':\s*"((?:[^"\\]|\\.)*)"', Path(ROOT / "chat" / "web" / "pages.py")
                                  .read_text().split("_RELATION_DONE = ", 1)[1].split("}")[0]))
    return found


def test_every_interface_string_has_a_chinese_translation():
    ids = _msgids()
    assert len(ids["py"]) > 100 and len(ids["js"]) > 30
    missing = sorted(m for m in ids["py"] | ids["js"] if m not in i18n.ZH)
    assert not missing, missing
    not_shipped = sorted(ids["js"] - set(i18n.JS_MSGIDS))
    assert not not_shipped, f"used by the JavaScript but not sent to it: {not_shipped}"
    for msgid, text in i18n.ZH.items():  # placeholders survive translation
        assert set(re.findall(r"\{\w+\}", msgid)) == set(re.findall(r"\{\w+\}", text)), msgid


def test_login_and_register_errors_come_back_on_the_form(server, people):
    owner, _, _ = people
    v = Visitor(server.base)
    v.get("/login")
    r = v.post("/login", {"username": owner.username, "password": "wrong password!"})
    assert r.status_code == 401
    assert v.flashes(r) == ["wrong username or password"]
    assert f'value="{owner.username}"' in r.text  # the name stays filled in

    zh = Visitor(server.base, lang="zh-CN")
    zh.get("/login")
    assert zh.flashes(zh.post("/login", {"username": owner.username, "password": "nope nope"})) == [
        "用户名或密码错误"]

    v.get("/register")
    r = v.post("/register", {"username": owner.username, "password": PASSWORD,
                             "password2": PASSWORD})
    assert r.status_code == 409 and v.flashes(r) == ["that username is taken"]
    r = v.post("/register", {"username": "ok_name", "password": PASSWORD, "password2": "other one"})
    assert r.status_code == 400 and v.flashes(r) == ["The two passwords differ."]
    r = v.post("/register", {"username": "x", "password": PASSWORD, "password2": PASSWORD})
    assert r.status_code == 400
    assert v.flashes(r) == ["username must be 3 to 32 characters of letters, digits, _ . -"]
    name = unique_name("new")
    r = v.post("/register", {"username": name, "password": PASSWORD, "password2": PASSWORD})
    assert r.url == server.base + "/" and v.flashes(r) == [f"Welcome, {name}!"]


def test_group_pages_create_edit_members_transfer_delete(server, people):
    """The owner's whole round, every step with visible feedback; errors as readable flashes."""
    owner, friend, stranger = people
    v = Visitor(server.base).login(owner)
    v.get("/groups/new")
    r = v.post("/groups/new", {"name": "   ", "description": "kept", "icon": ""})
    assert r.status_code == 400 and v.flashes(r) == ["name must not be empty"]
    assert ">kept</textarea>" in r.text  # the form comes back filled in
    r = v.post("/groups/new", {"name": "Book club", "description": "Monthly", "icon": ""})
    assert re.search(r"/chat/g/(\d+)$", r.url) and v.flashes(r) == ["Group “Book club” created."]
    gid = int(r.url.rsplit("/", 1)[1])

    v.get(f"/groups/{gid}")
    r = v.post(f"/groups/{gid}/edit", {"name": "Book club 2", "description": "Weekly", "icon": ""})
    assert v.flashes(r) == ["Group saved."] and "<h1>Book club 2</h1>" in r.text
    r = v.post(f"/groups/{gid}/members", {"username": "nobody_here_at_all"})
    assert r.url == f"{server.base}/groups/{gid}"
    assert v.flashes(r) == ["There is no user called “nobody_here_at_all”."]
    r = v.post(f"/groups/{gid}/members", {"username": friend.username.upper()})
    assert v.flashes(r) == [f"{friend.username} was added."]
    # Someone who does not follow the owner is invited, and the invitation can be withdrawn.
    r = v.post(f"/groups/{gid}/members", {"username": stranger.username.upper()})
    assert v.flashes(r) == [f"{stranger.username} was invited."]
    r = v.post(f"/groups/{gid}/members/{stranger.user_id}/remove")
    assert v.flashes(r) == ["Invitation withdrawn."]
    assert stranger.username not in r.text.split('id="members"', 1)[1]
    r = v.post(f"/groups/{gid}/leave")
    assert v.flashes(r) == ["the owner cannot leave; hand the group over or delete it"]
    r = v.post(f"/groups/{gid}/transfer", {"owner_id": str(friend.user_id)})
    assert v.flashes(r) == ["The group has a new owner."]
    r = v.post(f"/groups/{gid}/delete")
    assert r.status_code == 200 and v.flashes(r) == ["only the group's owner can do that"]

    f = Visitor(server.base, lang="zh-CN").login(friend)
    f.get(f"/groups/{gid}")
    r = f.post(f"/groups/{gid}/delete")
    assert r.url == server.base + "/groups/" and f.flashes(r) == ["群组已解散。"]
    assert v.get(f"/groups/{gid}").status_code == 404


def test_profile_follow_block_feedback(server, people):
    owner, _, stranger = people
    v = Visitor(server.base).login(owner)
    r = v.get(f"/users/{stranger.user_id}")
    assert f"You do not follow {stranger.username}." in r.text
    r = v.post(f"/users/{stranger.user_id}/follow")
    assert v.flashes(r) == [f"You follow {stranger.username} now."]
    assert f"You follow {stranger.username}." in r.text
    r = v.post(f"/users/{stranger.user_id}/unfollow")
    assert v.flashes(r) == [f"You no longer follow {stranger.username}."]
    r = v.post(f"/users/{stranger.user_id}/block")
    assert v.flashes(r) == [f"{stranger.username} is blocked."] and 'id="blocking"' in r.text
    r = v.post(f"/users/{stranger.user_id}/unblock")
    assert v.flashes(r) == [f"{stranger.username} is no longer blocked."]
    v.get(f"/users/{owner.user_id}")
    r = v.post(f"/users/{owner.user_id}/follow")
    assert v.flashes(r) == ["you cannot follow yourself"]
    refused = v.post(f"/users/{stranger.user_id}/follow", csrf=False)
    assert refused.status_code == 400
    assert "This form has expired. Reload the page and try again." in refused.text
    assert v.get("/users/999999999").status_code == 404


def test_user_text_is_escaped_everywhere(server, people):
    owner, friend, _ = people
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    group = owner.post("/api/groups", json={"name": evil[:64], "description": evil}).json()
    owner.put(f"/api/groups/{group['id']}/members/{friend.user_id}")
    owner.post("/api/messages", json={"group_id": group["id"], "content": evil})
    v = Visitor(server.base).login(friend)
    for path in ("/", f"/chat/g/{group['id']}", f"/groups/{group['id']}",
                 f"/groups/?q={requests.utils.quote('<script>')}", "/groups/", "/notices"):
        r = v.get(path)
        assert r.status_code == 200, path
        assert "<script>alert" not in r.text and "<img src=x" not in r.text, path
        assert "&lt;script&gt;alert" in r.text, path


def test_chat_page_lists_conversations_with_unread_and_previews(server, people):
    owner, friend, _ = people
    friend.post("/api/messages", json={"recipient_id": owner.user_id, "content": "first"})
    last = friend.post("/api/messages", json={"recipient_id": owner.user_id,
                                               "content": "second\nline"}).json()
    v = Visitor(server.base).login(owner)
    r = v.get("/")
    assert f'data-last-id="{last["id"]}"' in r.text
    row = r.text.split(f'data-key="private:{friend.user_id}"', 1)[1].split("</li>", 1)[0]
    assert f'href="/chat/u/{friend.user_id}"' in row
    assert '<span class="badge" aria-hidden="true">2</span>' in row
    assert '<span class="visually-hidden">2 unread</span>' in row  # what a screen reader says
    assert "second\nline" in row
    r = v.get(f"/chat/u/{friend.user_id}")
    assert 'data-kind="private"' in r.text and f'data-target="{friend.user_id}"' in r.text
    assert v.get("/chat/u/999999999").status_code == 404


def test_group_chat_page_sends_non_members_to_join(server, people):
    owner, _, stranger = people
    group = owner.post("/api/groups", json={"name": "Closed door"}).json()
    v = Visitor(server.base).login(stranger)
    r = v.get(f"/chat/g/{group['id']}")
    assert r.url == f"{server.base}/groups/{group['id']}"
    assert v.flashes(r) == ["Join the group to read and write in it."]
    r = v.post(f"/groups/{group['id']}/join")
    assert r.url == f"{server.base}/chat/g/{group['id']}" and v.flashes(r) == ["You joined the group."]


def test_notices_page_and_mark_read(server, people):
    owner, _, stranger = people
    stranger.put(f"/api/users/{owner.user_id}/follow")
    v = Visitor(server.base).login(owner)
    r = v.get("/notices")
    assert f"{stranger.username} followed you." in r.text and 'class="row notice unread"' in r.text
    r = v.post("/notices/read")
    assert v.flashes(r) == ["Notices marked read."] and "notice unread" not in r.text


def test_static_client_is_plain_modules(server):
    """The client is served as JavaScript modules (no build step); nothing writes HTML from strings."""
    for name in ("app", "net", "conversations", "thread", "outbox", "notices", "names", "i18n", "dom"):
        r = requests.get(f"{server.base}/static/js/{name}.js", timeout=10)
        assert r.status_code == 200 and "javascript" in r.headers["Content-Type"], name
        assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write", r.text), name
