"""Group invitations, and the last use of a credential (idle sessions and tokens expire).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 12:30:00
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
MYSQL_TABLE = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin",
               "mysql_engine": "InnoDB"}


def upgrade():
    op.create_table(
        "invitations",
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("inviter_id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(["group_id"], ["chat_groups.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("group_id", "user_id"),
        **MYSQL_TABLE)
    op.create_index("ix_invitations_user", "invitations", ["user_id"])
    with op.batch_alter_table("auth_tokens") as batch:
        batch.add_column(sa.Column("last_used_at", UTC_DATETIME, nullable=True))


def downgrade():
    with op.batch_alter_table("auth_tokens") as batch:
        batch.drop_column("last_used_at")
    op.drop_index("ix_invitations_user", table_name="invitations")
    op.drop_table("invitations")
