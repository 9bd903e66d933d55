"""Small SQL helpers that differ between MySQL/MariaDB and SQLite."""
from __future__ import annotations

from typing import Any

from sqlalchemy import Executable, Row, Table
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ..extensions import db


def insert_ignore(table: Table, dialect_name: str):
    """INSERT that skips rows whose key already exists (INSERT IGNORE / ON CONFLICT DO NOTHING)."""
    if dialect_name == "sqlite":
        return sqlite_insert(table).on_conflict_do_nothing()
    if dialect_name in ("mysql", "mariadb"):
        return mysql_insert(table).prefix_with("IGNORE")
    raise NotImplementedError(f"no INSERT IGNORE for {dialect_name}")


def read_rows(statement: Executable, params: dict[str, Any]) -> list[Row]:
    """Rows of one read on a pooled Core connection, outside the ORM session.

    For the reads of every connect (token, hello): the session's transaction
    bookkeeping cost more CPU than the query. Only for reads that need nothing the
    current session has written and not committed.
    """
    with db.engine.connect() as conn:
        return conn.execute(statement, params).all()
