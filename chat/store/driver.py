"""PyMySQL made cheaper: its decoding of times, its column descriptors, and several
statements in one query.

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
import pymysql.connections
from pymysql.constants import COMMAND
from pymysql.converters import conversions, convert_datetime
from pymysql.err import MySQLError
from pymysql.protocol import FieldDescriptorPacket


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


# Every result set starts with one descriptor packet per column, which PyMySQL parses in
# Python (six strings and a struct) and turns into a DB-API description each time: 14 %
# of the server's CPU in the mixed scenario, whose writer and checker read several result
# sets per batch. The same statement's columns come as the same bytes every time, so each
# distinct packet is parsed once. Bounded: a statement whose column names vary (``SELECT
# %s``) cannot grow it without end.
DESCRIPTORS_KEPT = 4096


class KnownColumn(FieldDescriptorPacket):
    """A column descriptor parsed once, its DB-API description made once."""

    def __init__(self, data: bytes, encoding: str) -> None:
        super().__init__(data, encoding)
        self.known_description = FieldDescriptorPacket.description(self)

    def description(self) -> tuple:
        """The DB-API description, as PyMySQL's own (made at parse time)."""
        return self.known_description


_known_columns: dict[tuple[bytes, str], KnownColumn] = {}


def column_descriptor(data: bytes, encoding: str) -> KnownColumn:
    """The parsed descriptor of these packet bytes (PyMySQL's ``FieldDescriptorPacket``)."""
    key = (data, encoding)
    found = _known_columns.get(key)
    if found is None:
        if len(_known_columns) >= DESCRIPTORS_KEPT:
            _known_columns.clear()
        found = _known_columns[key] = KnownColumn(data, encoding)
    return found


def remember_column_descriptors() -> None:
    """Make PyMySQL read column descriptors through ``column_descriptor`` (its result
    reader looks the class up by this module-level name; PyMySQL is pinned)."""
    pymysql.connections.FieldDescriptorPacket = column_descriptor
