"""Files and pictures: the ``uploads`` table and ``upload_links`` (message -> upload).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 15:40:00
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
MYSQL_TABLE = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin",
               "mysql_engine": "InnoDB"}


def upgrade():
    op.create_table(
        "uploads",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("mime", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("storage_key", sa.String(length=128), nullable=False),
        sa.Column("thumb_key", sa.String(length=128), nullable=True),
        sa.Column("thumb_mime", sa.String(length=32), nullable=True),
        sa.Column("thumb_size", sa.BigInteger(), nullable=True),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        **MYSQL_TABLE)
    op.create_index("ix_uploads_owner", "uploads", ["owner_id"])
    op.create_index("ix_uploads_created", "uploads", ["created_at"])
    op.create_table(
        "upload_links",
        sa.Column("upload_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("message_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("upload_id", "message_id"),
        **MYSQL_TABLE)
    op.create_index("ix_upload_links_message", "upload_links", ["message_id"])


def downgrade():
    op.drop_index("ix_upload_links_message", table_name="upload_links")
    op.drop_table("upload_links")
    op.drop_index("ix_uploads_created", table_name="uploads")
    op.drop_index("ix_uploads_owner", table_name="uploads")
    op.drop_table("uploads")
