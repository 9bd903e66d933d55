"""Search: a full-text index of messages kept by triggers (chat.store.search_sql).

SQLite gets an FTS5 table with the trigram tokenizer; MariaDB a Mroonga table,
only when the Mroonga plugin is loaded (otherwise nothing is created, search
answers 503 and says why, and ``flask --app app search-reindex`` creates and
fills the index once the plugin is there). Existing messages are indexed here.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 15:30:00
"""
import logging

from alembic import context, op

from chat.store import search_sql

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")


def upgrade():
    if context.is_offline_mode():
        log.warning("offline upgrade: create the search index with flask search-reindex")
        return
    bind = op.get_bind()
    if not search_sql.create_index(bind):
        log.warning("the Mroonga engine is not loaded: search stays off until "
                    "flask --app app search-reindex is run with it")
        return
    search_sql.clear_index(bind)
    after = 0
    while (after := search_sql.reindex_batch(bind, after, 20000)) is not None:
        pass


def downgrade():
    search_sql.drop_index(op.get_bind())
