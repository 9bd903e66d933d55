"""client_id compares exactly on MySQL/MariaDB: a no-pad binary collation.

``utf8mb4_bin`` is a PAD SPACE collation, so the unique key on (sender_id,
client_id) took "a1" and "a1 " for the same key while the service, comparing in
Python, took them for two: the second insert failed for good. SQLite compares
bytes already.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 23:30:00
"""
from alembic import context, op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def _is_mariadb(bind) -> bool:
    """MariaDB or MySQL: asked of the server, or given with ``-x flavour=`` for --sql."""
    if not context.is_offline_mode():
        return bind.dialect.is_mariadb
    flavour = context.get_x_argument(as_dictionary=True).get("flavour")
    if flavour not in ("mariadb", "mysql"):
        raise RuntimeError("offline (--sql) upgrade on MySQL: the collation differs between "
                           "MariaDB and MySQL, pass -x flavour=mariadb or -x flavour=mysql")
    return flavour == "mariadb"


def _alter(collation_for) -> None:
    bind = op.get_bind()
    if bind.dialect.name not in ("mysql", "mariadb"):
        return
    collation = collation_for(_is_mariadb(bind))
    op.execute("ALTER TABLE messages MODIFY client_id VARCHAR(64) "
               f"CHARACTER SET utf8mb4 COLLATE {collation} NULL")


def upgrade():
    _alter(lambda mariadb: "utf8mb4_nopad_bin" if mariadb else "utf8mb4_0900_bin")


def downgrade():
    # One way once used: if a sender has both "x" and "x " stored, the PAD SPACE key of
    # 0001 sees a duplicate and MySQL refuses the change (nothing is altered).
    _alter(lambda mariadb: "utf8mb4_bin")
