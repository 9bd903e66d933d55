"""Search on MariaDB: new messages are indexed after their commit by the server's indexer,
not by a trigger inside the sending transaction.

Adds ``message_search_position`` (every message up to ``last_id`` is in the index) and
drops the insert trigger. The position is set to the newest message *before* the
trigger goes, so every message the trigger did not index comes after it (one indexed
twice is harmless: the indexer's REPLACE). Nothing to do where the index is absent
(no Mroonga) or on SQLite, whose FTS5 triggers stay.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 09:30:00
"""
from alembic import context, op
from sqlalchemy import text

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

TABLE = "message_search"
POSITION = "message_search_position"


def _index_present(bind) -> bool:
    if bind.dialect.name not in ("mysql", "mariadb") or context.is_offline_mode():
        return False
    return bool(bind.execute(text(
        "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
        "AND TABLE_NAME = :t"), {"t": TABLE}).all())


def upgrade():
    bind = op.get_bind()
    if not _index_present(bind):
        return
    bind.execute(text(f"CREATE TABLE IF NOT EXISTS {POSITION} (id TINYINT NOT NULL PRIMARY "
                      "KEY, last_id BIGINT NOT NULL) ENGINE=InnoDB"))
    newest = bind.execute(text("SELECT COALESCE(MAX(id), 0) FROM messages")).scalar()
    bind.execute(text(f"INSERT INTO {POSITION} (id, last_id) VALUES (1, :n) "
                      "ON DUPLICATE KEY UPDATE last_id = GREATEST(last_id, :n)"), {"n": newest})
    bind.execute(text(f"DROP TRIGGER IF EXISTS {TABLE}_ai"))


def downgrade():
    bind = op.get_bind()
    if not _index_present(bind):
        return
    # Messages after the position are not indexed yet: index them, then the trigger again.
    bind.execute(text(f"REPLACE INTO {TABLE} (id, content) SELECT id, content FROM messages "
                      f"WHERE recalled = 0 AND id > (SELECT last_id FROM {POSITION} WHERE id = 1)"))
    bind.execute(text(f"CREATE TRIGGER IF NOT EXISTS {TABLE}_ai AFTER INSERT ON messages "
                      f"FOR EACH ROW INSERT INTO {TABLE} (id, content) SELECT NEW.id, "
                      "NEW.content FROM DUAL WHERE NEW.recalled = 0"))
    bind.execute(text(f"DROP TABLE IF EXISTS {POSITION}"))
