"""A reaction is exactly one emoji as Unicode defines it (docs/protocol.md 3.9).

One fully-qualified emoji or emoji sequence from Unicode's emoji list (the
``emoji`` package carries it), at most 8 code points. Unqualified and
minimally-qualified forms (``❤`` without its variation selector) are accepted
and stored as their fully-qualified form, so one emoji is one reaction however
it was typed. Text, components (a skin tone alone), two emoji or white space are
refused.
"""
from __future__ import annotations

from typing import Any

from emoji import EMOJI_DATA, STATUS

from ..errors import BadRequest
from .i18n import N_

MAX_CODE_POINTS = 8
_FULLY_QUALIFIED = STATUS["fully_qualified"]
_LOOSER = (STATUS["minimally_qualified"], STATUS["unqualified"])
_QUALIFIED_BY_NAME = {data["en"]: text for text, data in EMOJI_DATA.items()
                      if data["status"] == _FULLY_QUALIFIED}


def reaction_emoji(value: Any) -> str:
    """The fully-qualified form of one emoji; 400 for anything else."""
    if type(value) is not str or not 1 <= len(value) <= MAX_CODE_POINTS:
        raise BadRequest(N_("emoji must be one emoji"))
    data = EMOJI_DATA.get(value)
    if data is None:
        raise BadRequest(N_("emoji must be one emoji"))
    if data["status"] == _FULLY_QUALIFIED:
        return value
    if data["status"] in _LOOSER and data["en"] in _QUALIFIED_BY_NAME:
        return _QUALIFIED_BY_NAME[data["en"]]
    raise BadRequest(N_("emoji must be one emoji"))
