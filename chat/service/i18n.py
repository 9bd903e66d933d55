"""Marking the messages a reader may see, for the translators' catalogue (chat/translations).

The service speaks English: its ChatError messages reach API clients as they are.
``N_`` changes nothing at run time; it tells ``pybabel extract`` (babel.cfg) that the
string is a message, and a page translates it when it shows it (chat/web/forms.py).
"""
from __future__ import annotations


def N_(message: str) -> str:  # noqa: N802  (gettext's conventional name for the marker)
    """Mark ``message`` for the catalogue; returns it unchanged."""
    return message
