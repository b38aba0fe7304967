"""CLI commands that belong to no single domain: `flask db ...` and `flask demo`."""

from __future__ import annotations

import getpass
import os
from pathlib import Path

import click
import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from portal.audit.services import Actor
from portal.auth.models import User
from portal.config import PROJECT_ROOT
from portal.demo import create_demo
from portal.extensions import db


def cli_actor() -> Actor:
    """The audit actor for a command run from a shell on a portal host."""
    return Actor(label=f"cli:{getpass.getuser()}", role="operator", ip="local")


def alembic_config() -> AlembicConfig:
    """Alembic pointed at this app's database."""
    config = AlembicConfig(str(PROJECT_ROOT / "alembic.ini"))
    config.attributes["url"] = current_app.config["DATABASE_URL"]
    config.attributes["configure_logging"] = False
    return config


db_cli = AppGroup("db", help="Database schema (Alembic migrations).")


@db_cli.command("upgrade")
@click.argument("revision", default="head")
def upgrade_command(revision: str) -> None:
    """Apply migrations up to REVISION (default: head)."""
    command.upgrade(alembic_config(), revision)
    click.echo(f"database at {revision}")


@db_cli.command("is-empty")
def is_empty_command() -> None:
    """Exit 0 if no user exists yet (used by `make run` to decide on demo data)."""
    raise SystemExit(0 if db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 0 else 1)


DEMO_NDA = PROJECT_ROOT / "portal" / "demo" / "nda-v1.txt"


@click.command("demo")
@with_appcontext
def demo_command() -> None:
    """Create the demo vendor, one user per role and NDA v1; print the passwords."""
    credentials = create_demo(cli_actor(), DEMO_NDA.read_text(encoding="utf-8"))
    db.session.commit()
    lines = [f"{role:<11} {email:<32} {password}" for role, email, password in credentials]
    path = Path(current_app.config["INSTANCE_PATH"]) / "demo-credentials.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    click.echo("Demo users (each enrols an authenticator app at first sign-in):")
    for line in lines:
        click.echo("  " + line)
    click.echo(f"(also written to {path})")
    click.echo("Demo clips with fake personal data are ingested: see Clips in the admin's menu.")
