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
        click.echo(f"{services().uploads.cleanup(full=True)} uploads deleted")
