"""Rich messages: replies, mentions, files, reactions, edits and recalls.

What a history page shows is kept on the message row (the reply's excerpt, the
summed reactions, ...), so a page stays one index range. Updates (edit, recall,
reaction) get ids from the message sequence, so ``sync`` returns them in order
with the messages. The covering index of ``messages`` gains ``recalled``: unread
counts leave recalled messages out without reading the rows.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 13:00:00
"""
import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import mysql

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
MYSQL_TABLE = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin",
               "mysql_engine": "InnoDB"}


def _no_pad_collation(bind) -> str | None:
    """The no-pad binary collation of this MySQL flavour (as migration 0002), or None."""
    if bind.dialect.name not in ("mysql", "mariadb"):
        return None
    if context.is_offline_mode():
        flavour = context.get_x_argument(as_dictionary=True).get("flavour")
        if flavour not in ("mariadb", "mysql"):
            raise RuntimeError("offline (--sql) upgrade on MySQL: pass -x flavour=mariadb or "
                               "-x flavour=mysql")
        mariadb = flavour == "mariadb"
    else:
        mariadb = bind.dialect.is_mariadb
    return "utf8mb4_nopad_bin" if mariadb else "utf8mb4_0900_bin"


def upgrade():
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("reply_to_id", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("reply_sender_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("reply_excerpt", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("reply_recalled", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column("mentions", sa.Text(), nullable=True))
        batch.add_column(sa.Column("mention_all", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column("attachments", sa.Text(), nullable=True))
        batch.add_column(sa.Column("reactions", sa.Text(), nullable=True))
        batch.add_column(sa.Column("edited_at", UTC_DATETIME, nullable=True))
        batch.add_column(sa.Column("recalled", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.drop_index("ix_messages_conv_id_sender")
        batch.create_index("ix_messages_conv_id_sender_recalled",
                           ["conv_key", "id", "sender_id", "recalled"])
        batch.create_index("ix_messages_reply_to", ["reply_to_id"])
    op.create_table(
        "message_updates",
        sa.Column("id", BIG_ID, autoincrement=False, nullable=False),
        sa.Column("conv_key", sa.String(length=24), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("actor_id", "client_id", name="uq_updates_actor_client"),
        **MYSQL_TABLE)
    op.create_index("ix_message_updates_conv_id", "message_updates", ["conv_key", "id"])
    op.create_index("ix_message_updates_message", "message_updates", ["message_id"])
    collation = _no_pad_collation(op.get_bind())
    if collation:
        op.execute("ALTER TABLE message_updates MODIFY client_id VARCHAR(64) "
                   f"CHARACTER SET utf8mb4 COLLATE {collation} NULL")
    op.create_table(
        "mentions",
        sa.Column("user_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("conv_key", sa.String(length=24), nullable=False),
        sa.Column("message_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("sender_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "conv_key", "message_id"),
        **MYSQL_TABLE)


def downgrade():
    op.drop_table("mentions")
    op.drop_index("ix_message_updates_message", table_name="message_updates")
    op.drop_index("ix_message_updates_conv_id", table_name="message_updates")
    op.drop_table("message_updates")
    with op.batch_alter_table("messages") as batch:
        batch.drop_index("ix_messages_reply_to")
        batch.drop_index("ix_messages_conv_id_sender_recalled")
        batch.create_index("ix_messages_conv_id_sender", ["conv_key", "id", "sender_id"])
        for column in ("recalled", "edited_at", "reactions", "attachments", "mention_all",
                       "mentions", "reply_recalled", "reply_excerpt", "reply_sender_id",
                       "reply_to_id"):
            batch.drop_column(column)
