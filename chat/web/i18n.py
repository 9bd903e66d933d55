"""The interface's two languages, English and Simplified Chinese, through Flask-Babel.

English text is the msgid: views call ``_("Log in")`` (gettext), templates too
(Jinja's i18n extension, which Flask-Babel installs), and the browser client
``t("...")``. ``pybabel`` extracts them all into chat/translations/messages.pot; the
Chinese lives in zh_Hans/LC_MESSAGES/messages.po, compiled to messages.mo (the
translator's workflow: README.md, "Translations").

The language comes from the ``lang`` cookie the switcher sets, else from the
browser's Accept-Language, else English. Pages, the switcher and the cookie name it
with its BCP 47 tag (``zh-Hans``); Babel calls the same locale ``zh_Hans``.

The strings the browser client needs travel with each page as a JSON block
(``js_catalog``): the catalogue's messages that ``pybabel extract`` found in
static/js (their locations in messages.pot), translated.
"""
from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from pathlib import Path

from babel.dates import get_datetime_format
from babel.messages.pofile import read_po
from flask import g, request
from flask_babel import format_date, format_time, get_locale, get_translations, gettext

from ..service.i18n import N_

TRANSLATIONS = Path(__file__).resolve().parent.parent / "translations"
TEMPLATE = TRANSLATIONS / "messages.pot"

COOKIE = "lang"
COOKIE_MAX_AGE = 365 * 24 * 3600
DEFAULT = "en"
# code -> the language's own name (what the switcher shows)
LANGUAGES = {"en": "English", "zh-Hans": "简体中文"}
# code -> Babel's name of the locale (the catalogue's directory)
LOCALES = {"en": "en", "zh-Hans": "zh_Hans"}

# Messages a page shows that are written outside chat/web and chat/service: the
# ChatError defaults (chat/errors.py) and the error page's text for a crash.
SHOWN_FROM_ELSEWHERE = (
    N_("bad request"), N_("log in first"), N_("not allowed"), N_("not found"), N_("conflict"),
    N_("you can send 3 messages until they reply or you follow each other"),
    N_("too many requests, slow down"),
    N_("the server is busy; nothing was stored, retry with the same client_id"),
    N_("Something went wrong on our side."),
    # ChatError defaults of other packages (chat/service/search.py, chat/files/service.py)
    N_("search is not available on this server"), N_("the file is too large"),
    N_("too large"),
    N_("another upload of yours is being stored; nothing was kept, try again"),
)

# thread.js picks one of these with a ternary (``t(n === 1 ? a : b)``), which the
# extractor cannot read: marked here, and sent with the strings found in static/js.
JS_EXTRA = (N_("{n} member"), N_("{n} members"))


def pick_language() -> str:
    """The viewer's language: the switcher's cookie, else Accept-Language, else English."""
    chosen = request.cookies.get(COOKIE)
    if chosen in LANGUAGES:
        return chosen
    for tag, _quality in request.accept_languages:
        tag = tag.lower()
        if tag.startswith("zh"):
            return "zh-Hans"  # the only Chinese we have; better than English for zh-TW too
        if tag.startswith("en"):
            return "en"
    return DEFAULT


def current_language() -> str:
    """The language of this request (picked once, then kept on ``g``)."""
    if "lang" not in g:
        g.lang = pick_language()
    return g.lang


def select_locale() -> str:
    """Flask-Babel's locale selector: the Babel locale of the viewer's language."""
    return LOCALES[current_language()]


def translate(msgid: str, **params) -> str:
    """A msgid chosen at run time (a ChatError's message, a marked constant), translated.

    Without ``params`` the text is not %-formatted, so a finished message that
    holds a ``%`` (or is not in the catalogue at all) comes back unchanged.
    """
    return gettext(msgid, **params)


@lru_cache(maxsize=1)
def js_msgids() -> tuple[str, ...]:
    """The msgids the browser client looks up: those in static/js (messages.pot), and JS_EXTRA."""
    with TEMPLATE.open("rb") as source:
        catalog = read_po(source)
    found = {message.id for message in catalog
             if isinstance(message.id, str) and message.id
             and any(path.startswith("static/js/") for path, _line in message.locations)}
    return tuple(sorted(found | set(JS_EXTRA)))


_js_catalogs: dict[str, dict[str, str]] = {}


def js_catalog() -> dict[str, str]:
    """The client's strings in the viewer's language (empty for English: msgids are English)."""
    lang = current_language()
    if lang == DEFAULT:
        return {}
    catalog = _js_catalogs.get(lang)
    if catalog is None:  # the same for every page: built once per language and process
        translations = get_translations()
        catalog = {msgid: text for msgid in js_msgids()
                   if (text := translations.ugettext(msgid)) != msgid}
        _js_catalogs[lang] = catalog
    return catalog


def time_text(iso: str, style: str = "datetime") -> str:
    """A service time (ISO 8601, UTC) as the reader's language writes it, in UTC.

    ``style`` is the client's (static/js/i18n.js, which rewrites it in the reader's
    own time zone): ``date``, ``short`` (the time alone) or ``datetime`` (a medium
    date and a short time, joined as the language joins them).
    """
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    if style == "date":
        return format_date(moment, "medium")
    if style == "short":
        return format_time(moment, "short")
    pattern = get_datetime_format("medium", locale=get_locale())
    return pattern.replace("{1}", format_date(moment, "medium")).replace(
        "{0}", format_time(moment, "short"))


def template_context() -> dict:
    """What templates get besides gettext: the language, the switcher, the client's strings."""
    return {"lang": current_language(), "languages": LANGUAGES, "js_catalog": js_catalog,
            "translate": translate}
