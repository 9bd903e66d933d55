"""Command-line helpers: ``flask --app app seed-demo`` and ``flask --app app create-user``."""
from __future__ import annotations

import click
from flask import Flask
from sqlalchemy import func, select

from .extensions import db
from .runtime import services
from .store.models import User

DEMO_PASSWORD = "demo-password"
DEMO_USERS = ("alice", "bob", "carol", "dave")


def seed_demo() -> bool:
    """Create demo users who follow each other and a demo group; False if users exist."""
    svc = services()
    accounts, groups, social = svc.accounts, svc.groups, svc.social
    if db.session.scalar(select(func.count()).select_from(User)):
        return False
    users = [accounts.register(name, DEMO_PASSWORD) for name in DEMO_USERS]
    alice, bob, carol, dave = users
    for a, b in ((alice, bob), (alice, carol), (bob, carol)):
        social.follow(a.id, b.id)
        social.follow(b.id, a.id)
    group = groups.create(alice.id, "Lobby", "Everyone's welcome / 欢迎大家", None)
    for member in (bob, carol, dave):
        groups.add_member(member.id, group["id"], member.id)
    return True


def register_cli(app: Flask) -> None:
    """Attach the commands to the app."""

    @app.cli.command("seed-demo")
    def seed_demo_command():
        """Create the demo users and group (only into an empty database)."""
        if seed_demo():
            click.echo(f"demo users {', '.join(DEMO_USERS)} created, password {DEMO_PASSWORD!r}")
        else:
            click.echo("users exist already: nothing seeded")

    register_search_cli(app)

    @app.cli.command("create-user")
    @click.argument("username")
    @click.password_option()
    def create_user(username, password):
        """Create an account."""
        user = services().accounts.register(username, password)
        click.echo(f"user {user.username} created with id {user.id}")

    @app.cli.command("uploads-cleanup")
    def uploads_cleanup():
        """Delete uploads no message holds after 24 h, and those only recalled messages hold."""
        click.echo(f"{services().uploads.cleanup()} uploads deleted")

def register_search_cli(app: Flask) -> None:
    """``flask --app app search-reindex``: rebuild the search index from the messages."""

    @app.cli.command("search-reindex")
    @click.option("--after-id", type=int, default=0, show_default=True,
                  help="go on after this message id (the last one a stopped run printed); "
                       "0 empties the index and starts over")
    @click.option("--batch", type=click.IntRange(1, 1_000_000), default=5000, show_default=True)
    def search_reindex(after_id: int, batch: int):
        """Create the index if needed and index every message (each batch commits)."""
        from sqlalchemy import text

        from .store import search_sql
        conn = db.session.connection()
        if not search_sql.create_index(conn):
            raise click.ClickException("the Mroonga engine is not loaded in MariaDB: install "
                                       "mariadb-plugin-mroonga and load ha_mroonga first")
        if after_id == 0:
            search_sql.clear_index(conn)
        db.session.commit()
        total = db.session.execute(text("SELECT COUNT(*) FROM messages WHERE id > :a"),
                                   {"a": after_id}).scalar() or 0
        last = after_id
        try:
            with click.progressbar(length=total, label="indexing", show_pos=True) as bar:
                while True:
                    done = search_sql.reindex_batch(db.session.connection(), last, batch)
                    db.session.commit()
                    if done is None:
                        break
                    bar.update(db.session.execute(text(
                        "SELECT COUNT(*) FROM messages WHERE id > :a AND id <= :b"),
                        {"a": last, "b": done}).scalar() or 0)
                    last = done
        except BaseException:
            click.echo(f"\nstopped: indexed up to message id {last}; go on with "
                       f"flask --app app search-reindex --after-id {last}", err=True)
            raise
        click.echo(f"search index rebuilt up to message id {last}")
