"""PyMySQL's decoding of DATETIME and TIMESTAMP values, made cheap.

A history page, a sync or a connect decodes a time for every row, and PyMySQL's own
decoder (a regular expression, then ``int()`` of each part, in Python) was the
largest single cost of parsing a page after the packets themselves. Python's
``datetime.fromisoformat`` reads MariaDB's ``YYYY-MM-DD HH:MM:SS[.ffffff]`` in C,
about twenty times faster; what it cannot read (a zero date) goes to PyMySQL's
decoder, which returns it as text as before.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from pymysql.constants import FIELD_TYPE
from pymysql.converters import conversions, convert_datetime


def decode_datetime(text: str | bytes) -> datetime | str:
    """A DATETIME or TIMESTAMP value as a naive datetime (text when it is no real time)."""
    try:
        return datetime.fromisoformat(text.decode("ascii") if isinstance(text, bytes) else text)
    except ValueError:
        return convert_datetime(text)


def conversions_with_fast_times() -> dict[Any, Any]:
    """PyMySQL's ``conv`` (encoders and decoders) with ``decode_datetime`` for times."""
    conv = dict(conversions)
    conv[FIELD_TYPE.DATETIME] = decode_datetime
    conv[FIELD_TYPE.TIMESTAMP] = decode_datetime
    return conv
