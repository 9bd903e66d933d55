"""Attention: private groups, per-conversation mute/pin/archive, presence and push settings,
Web Push subscriptions.

Mute, pin and archive live on ``read_cursors`` (already one row per user and
conversation, and the row every unread count starts from), so the conversation
list and ``hello`` stay one query. ``archived_at_id`` is the newest message id
when the conversation was archived: a newer message brings it back by itself.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 15:30:00
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
MYSQL_TABLE = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin",
               "mysql_engine": "InnoDB"}


def upgrade():
    with op.batch_alter_table("chat_groups") as batch:
        batch.add_column(sa.Column("visibility", sa.String(length=8), nullable=False,
                                   server_default="public"))
    with op.batch_alter_table("read_cursors") as batch:
        batch.add_column(sa.Column("muted", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column("pinned", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column("archived_at_id", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("show_presence", sa.Boolean(), nullable=False,
                                   server_default=sa.true()))
        batch.add_column(sa.Column("push_previews", sa.Boolean(), nullable=False,
                                   server_default=sa.true()))
        batch.add_column(sa.Column("last_seen_at", UTC_DATETIME, nullable=True))
    op.create_table(
        "push_subscriptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("endpoint_hash", sa.String(length=64), nullable=False),
        sa.Column("endpoint", sa.Text(), nullable=False),
        sa.Column("p256dh", sa.String(length=200), nullable=False),
        sa.Column("auth", sa.String(length=100), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("endpoint_hash", name="uq_push_endpoint"),
        **MYSQL_TABLE)
    op.create_index("ix_push_subscriptions_user", "push_subscriptions", ["user_id"])


def downgrade():
    op.drop_index("ix_push_subscriptions_user", table_name="push_subscriptions")
    op.drop_table("push_subscriptions")
    with op.batch_alter_table("users") as batch:
        for column in ("last_seen_at", "push_previews", "show_presence"):
            batch.drop_column(column)
    with op.batch_alter_table("read_cursors") as batch:
        for column in ("archived_at_id", "pinned", "muted"):
            batch.drop_column(column)
    with op.batch_alter_table("chat_groups") as batch:
        batch.drop_column("visibility")
