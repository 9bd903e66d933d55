"""Configuration rules and the schema: migrations match the models on MariaDB and SQLite."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import sqlalchemy
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from tests.support import ROOT


def run_python(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=60)


@pytest.mark.parametrize("key", ["", "dev", "short-key", "changeme"])
def test_production_refuses_to_start_without_a_real_secret_key(key):
    result = run_python("from app import create_app; create_app('production')",
                        SECRET_KEY=key, DATABASE_URL="sqlite://")
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_production_starts_with_a_real_key_and_secure_cookies():
    result = run_python(
        "from app import create_app; a = create_app('production'); "
        "print(a.config['SESSION_COOKIE_SECURE'], a.config['SESSION_COOKIE_HTTPONLY'], "
        "a.config['SESSION_COOKIE_SAMESITE'], a.config['MAX_CONTENT_LENGTH'] > 0)",
        SECRET_KEY="k" * 48, DATABASE_URL="sqlite://")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True", "Lax", "True"]


def test_development_keeps_one_generated_key(tmp_path):
    code = ("from app import create_app; print(create_app('development')"
            ".config['SECRET_KEY'])")
    first = run_python(code, SECRET_KEY="", DATABASE_URL="sqlite://")
    second = run_python(code, SECRET_KEY="", DATABASE_URL="sqlite://")
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout and len(first.stdout.strip()) >= 32


def _drift(url: str) -> list:
    from chat.extensions import db
    import chat.store.models  # noqa: F401
    engine = sqlalchemy.create_engine(url)
    with engine.connect() as conn:
        from chat.store.search_sql import not_search_index
        ctx = MigrationContext.configure(conn, opts={"compare_type": True,
                                                     "include_name": not_search_index})
        diff = compare_metadata(ctx, db.metadata)
    engine.dispose()
    return diff


def test_migrations_match_the_models_on_mariadb(mysql_url):
    assert _drift(mysql_url) == []


def test_migrations_match_the_models_on_sqlite(sqlite_url):
    assert _drift(sqlite_url) == []


def _schema_rows(mysql_url: str, sql: str) -> list:
    """Rows of a query on the migrated MariaDB database (information_schema)."""
    engine = sqlalchemy.create_engine(mysql_url)
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(sql).all()
    engine.dispose()
    return rows


def test_mariadb_tables_are_utf8mb4(mysql_url):
    rows = _schema_rows(mysql_url, "SELECT table_name, table_collation FROM "
                        "information_schema.tables WHERE table_schema = DATABASE() "
                        "AND table_name != 'alembic_version'")
    assert rows and all(collation == "utf8mb4_bin" for _, collation in rows), rows


def test_client_id_compares_exactly_on_mariadb(mysql_url):
    # utf8mb4_bin pads with spaces: "a1" and "a1 " would be one key (migration 0002).
    rows = _schema_rows(mysql_url, "SELECT collation_name FROM information_schema.columns "
                        "WHERE table_schema = DATABASE() AND table_name = 'messages' "
                        "AND column_name = 'client_id'")
    assert rows == [("utf8mb4_nopad_bin",)]
