"""Small SQL helpers that differ between MySQL/MariaDB and SQLite."""
from __future__ import annotations

from sqlalchemy import Table
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert


def insert_ignore(table: Table, dialect_name: str):
    """INSERT that skips rows whose key already exists (INSERT IGNORE / ON CONFLICT DO NOTHING)."""
    if dialect_name == "sqlite":
        return sqlite_insert(table).on_conflict_do_nothing()
    if dialect_name in ("mysql", "mariadb"):
        return mysql_insert(table).prefix_with("IGNORE")
    raise NotImplementedError(f"no INSERT IGNORE for {dialect_name}")
