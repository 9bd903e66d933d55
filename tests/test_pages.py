"""The server-rendered pages over plain HTTP (no browser): safety, language, forms and feedback."""
from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
import requests
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

from chat.errors import ChatError
from chat.service import validation
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


# -- the gettext catalogue (chat/translations) ----------------------------------------

TRANSLATIONS = ROOT / "chat" / "translations"
PO = TRANSLATIONS / "zh_Hans" / "LC_MESSAGES" / "messages.po"
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]|\{(\w+)\}")


def pybabel(*args: str) -> None:
    """Run a pybabel command from the repository's root, as a translator would."""
    done = subprocess.run([sys.executable, "-m", "babel.messages.frontend", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def read_catalog(path: Path) -> Catalog:
    with path.open("rb") as source:
        return read_po(source)


@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> Catalog:
    """What the code uses now: README's extract command, run into a temporary file."""
    pot = tmp_path_factory.mktemp("pot") / "messages.pot"
    pybabel("extract", "-F", "babel.cfg", "-k", "N_", "-o", str(pot), ".")
    return read_catalog(pot)


def _files(message) -> set[str]:
    return {path for path, _line in message.locations}


def test_every_message_the_interface_uses_has_a_chinese_translation(extracted):
    """Templates, chat/web, the service's marked messages and static/js: all translated."""
    messages = [m for m in extracted if m.id]
    sources = {top for m in messages for f in _files(m)
               for top in ("templates/", "chat/web/", "chat/service/", "static/js/")
               if f.startswith(top)}
    assert len(messages) > 200 and len(sources) == 4, (len(messages), sources)
    po = read_catalog(PO)
    problems = []
    for message in messages:
        found = po.get(message.id)
        texts = () if found is None else found.string
        texts = (texts,) if isinstance(texts, str) else texts
        if not texts or not all(texts):
            problems.append(("untranslated", message.id))
        elif found.fuzzy:
            problems.append(("fuzzy", message.id))
    assert not problems, problems


def test_committed_template_and_catalogue_are_up_to_date(extracted):
    """messages.pot is what extract finds now (messages and files), and the .po follows it.

    The browser's strings are picked by their location in messages.pot (static/js),
    so a string moved between files needs a new extract as much as a new string does.
    """
    committed = {m.id: _files(m) for m in read_catalog(TRANSLATIONS / "messages.pot") if m.id}
    now = {m.id: _files(m) for m in extracted if m.id}
    assert committed == now, "run pybabel extract and update (README.md, Translations)"
    assert {m.id for m in read_catalog(PO) if m.id} == set(now), "run pybabel update"


def test_committed_mo_is_the_compiled_po(tmp_path):
    out = tmp_path / "messages.mo"
    pybabel("compile", "-i", str(PO), "-o", str(out), "-l", "zh_Hans")
    assert out.read_bytes() == (PO.parent / "messages.mo").read_bytes(), "run pybabel compile"


def test_translations_keep_their_placeholders_and_hold_no_markup():
    """Same placeholders as the msgid; %-formatting works; no HTML (templates trust the text)."""
    for message in read_catalog(PO):
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        texts = message.string if isinstance(message.string, tuple) else (message.string,)
        wanted = set(PLACEHOLDER.findall(ids[-1]))
        for text in texts:
            assert set(PLACEHOLDER.findall(text)) == wanted, (message.id, text)
            assert not re.search(r'[<>&"]', text), (message.id, text)
            if message.python_format:
                text % {name: "x" for name, _brace in wanted}  # raises on a broken placeholder


def test_service_messages_are_marked_for_the_catalogue():
    """Every literal message a ChatError gets in chat/service is wrapped in N_ (extracted):
    written in the call, or in a module constant the call names."""
    errors = {cls.__name__ for cls in _subclasses(ChatError)} | {"ChatError"}
    unmarked = []
    for path in (ROOT / "chat" / "service").rglob("*.py"):
        tree = ast.parse(path.read_text())
        plain = {target.id for node in tree.body if isinstance(node, ast.Assign)
                 and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
                 for target in node.targets if isinstance(target, ast.Name)}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in errors and node.args):
                first = node.args[0]
                if isinstance(first, ast.Constant) or (isinstance(first, ast.Name)
                                                       and first.id in plain):
                    unmarked.append(f"{path.name}:{node.lineno}")
    assert not unmarked, unmarked


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def test_messages_built_from_parts_and_error_defaults_are_translated():
    """The finished messages the register and group forms can bring back, and ChatError defaults."""
    po = read_catalog(PO)
    attempts = [lambda: validation.password("short"),
                lambda: validation.icon_url(" "), lambda: validation.icon_url("h" * 501),
                lambda: validation.icon_url("http://x/\x00")]
    for field, limit, required in (("name", validation.GROUP_NAME_MAX, True),
                                   ("description", validation.GROUP_DESCRIPTION_MAX, False)):
        for value in ("  ", "x" * (limit + 1), "bad\x00"):
            attempts.append(lambda v=value, f=field, n=limit, r=required:
                            validation.text_field(v, f, n, required=r))
    messages = {cls.default_message for cls in _subclasses(ChatError)}
    for attempt in attempts:
        try:
            attempt()
        except ChatError as err:
            messages.add(err.message)
    assert len(messages) >= 17, messages
    untranslated = sorted(m for m in messages if not (po.get(m) and po.get(m).string))
    assert not untranslated, untranslated


def _js_strings() -> set[str]:
    """Every string literal in the first argument of a t(...) call in static/js (a ternary too)."""
    found = set()
    for path in (ROOT / "static" / "js").glob("*.js"):
        text = path.read_text()
        for match in re.finditer(r"(?<![\w.$])t\(", text):
            depth, i = 0, match.end()
            while i < len(text) and not (depth == 0 and text[i] in ",)"):
                if text[i] in "([{":
                    depth += 1
                elif text[i] in ")]}":
                    depth -= 1
                elif text[i] in "\"'`":
                    quote, i = text[i], i + 1
                    start = i
                    while text[i] != quote:
                        i += 2 if text[i] == "\\" else 1
                    found.add(text[start:i])
                i += 1
    return found


def test_the_client_gets_every_string_it_looks_up():
    """What static/js asks t() for is in the page's block (even what the extractor cannot read)."""
    wanted = _js_strings()
    assert len(wanted) > 40 and "{n} member" in wanted, wanted
    missing = sorted(wanted - set(i18n.js_msgids()))
    assert not missing, f"used by the JavaScript but not sent to it: {missing}"


def test_dates_and_numbers_follow_the_reader(server, people):
    """Server-written dates and counts are Babel's, in the page's language."""
    owner, friend, _ = people
    group = owner.post("/api/groups", json={"name": "Counting"}).json()
    owner.put(f"/api/groups/{group['id']}/members/{friend.user_id}")
    english = Visitor(server.base).login(owner)
    chinese = Visitor(server.base, lang="zh-CN").login(owner)
    day = r'<time datetime="[^"]+" data-format="date">'
    assert re.search(day + r"[A-Z][a-z]{2} \d{1,2}, \d{4}</time>",
                     english.get(f"/users/{owner.user_id}").text)
    assert re.search(day + r"\d{4}年\d{1,2}月\d{1,2}日</time>",
                     chinese.get(f"/users/{owner.user_id}").text)
    assert "2 members" in english.get(f"/groups/{group['id']}").text
    assert "2 位成员" in chinese.get(f"/groups/{group['id']}").text
    friend.put(f"/api/users/{owner.user_id}/follow")
    stamp = r'data-format="datetime">{}[^<]* UTC</time>'
    assert re.search(stamp.format(r"[A-Z][a-z]{2} \d{1,2}, \d{4}, \d{1,2}:\d\d"),
                     english.get("/notices").text)
    assert re.search(stamp.format(r"\d{4}年\d{1,2}月\d{1,2}日 \d{1,2}:\d\d"),
                     chinese.get("/notices").text)


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


def test_the_settings_page_lists_sessions_and_signs_one_out_elsewhere(server, people):
    """Where you are signed in, last use included; signing another browser out ends it."""
    me = people[0]
    laptop = Visitor(server.base).login(me)
    phone = Visitor(server.base).login(me)
    r = laptop.get("/settings/tokens")
    rows = re.findall(r'<li class="row">(.*?)</li>', r.text.split('id="sessions"', 1)[1]
                      .split("</ul>", 1)[0], re.S)
    assert len(rows) >= 2 and sum("class=\"badge\"" in row for row in rows) == 1
    assert all("last used" in row for row in rows)
    others = re.findall(r'action="(/settings/tokens/\d+/revoke)"',
                        r.text.split('id="sessions"', 1)[1].split("</ul>", 1)[0])
    assert others
    for action in others:
        r = laptop.post(action)
        assert laptop.flashes(r) == [
            "Revoked: it no longer works, and its open connections were closed."]
    assert phone.get("/").url.startswith(server.base + "/login")  # the phone is signed out
    assert laptop.get("/").url == server.base + "/"  # this browser is not
