"""PyMySQL made cheaper: its decoding of times, and several statements in one query.

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
from pymysql.constants import COMMAND
from pymysql.converters import conversions, convert_datetime
from pymysql.err import MySQLError


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


def allow_multi_statements(connection: Any) -> bool:
    """Let this PyMySQL connection send several statements in one query (the protocol's
    COM_SET_OPTION; PyMySQL has no public call for it); False if the server refused.

    Only for connections that run the app's own SQL, every value escaped by the
    driver: the committer's (which never go back to the pool) and the autocommit
    read engine's (``store.reads``: a connect's token and hello reads together).
    """
    try:
        connection._execute_command(COMMAND.COM_SET_OPTION, b"\x00\x00")  # MULTI_STATEMENTS_ON
        connection._read_packet()  # an EOF packet, or an error raised here
    except MySQLError:
        return False
    return True
