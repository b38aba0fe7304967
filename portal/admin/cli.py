"""`flask vendors ...`, `flask users ...` and `flask nda ...`."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask.cli import AppGroup

from portal.admin import services
from portal.auth.models import Role, User
from portal.auth.services import find_user_by_email
from portal.cli import cli_actor
from portal.clock import utcnow
from portal.exceptions import PortalError
from portal.extensions import db
from portal.nda.services import publish_nda

# AppGroup runs each command inside an app context, whoever invokes it (flask CLI or test runner).
vendors_cli = AppGroup("vendors", help="Vendor organisations.")
users_cli = AppGroup("users", help="User accounts.")
nda_cli = AppGroup("nda", help="NDA versions.")


def _fail(refusal: PortalError) -> None:
    db.session.rollback()
    raise click.ClickException(refusal.message)


@vendors_cli.command("create")
@click.argument("name")
def create_vendor_command(name: str) -> None:
    """Create vendor NAME."""
    try:
        vendor = services.create_vendor(name, cli_actor())
    except PortalError as refusal:
        _fail(refusal)
    db.session.commit()
    click.echo(f"vendor {vendor.id}: {vendor.name}")


@users_cli.command("create")
@click.option("--email", required=True)
@click.option("--role", required=True, type=click.Choice([role.value for role in Role]))
@click.option("--vendor", "vendor_name", help="vendor name (annotators and vendor supervisors)")
@click.option("--name", "full_name", default="", help="the person's full name")
@click.option("--password-stdin", is_flag=True, help="read the password from standard input")
def create_user_command(
    email: str, role: str, vendor_name: str | None, full_name: str, password_stdin: bool
) -> None:
    """Create a user. Without --password-stdin a password is generated and printed."""
    vendor = None
    if vendor_name:
        vendor = services.find_vendor(vendor_name)
        if vendor is None:
            raise click.ClickException(f"no vendor named {vendor_name!r}")
    generated = not password_stdin
    password = services.generate_password() if generated else sys.stdin.readline().rstrip("\r\n")
    try:
        user = services.create_user(email, Role(role), vendor, password, cli_actor(), full_name=full_name)
    except PortalError as refusal:
        _fail(refusal)
    db.session.commit()
    click.echo(f"user {user.id}: {user.email} ({user.role.value}{', ' + vendor.name if vendor else ''})")
    if generated:
        click.echo(f"password: {password}")


def _user(email: str) -> User:
    user = find_user_by_email(email)
    if user is None:
        raise click.ClickException(f"no user with email {email!r}")
    return user


@users_cli.command("deactivate")
@click.argument("email")
def deactivate_user_command(email: str) -> None:
    """Deactivate EMAIL and end all their sessions."""
    services.set_user_active(_user(email), False, cli_actor(), utcnow())
    db.session.commit()
    click.echo(f"{email} deactivated")


@users_cli.command("reset-2fa")
@click.argument("email")
def reset_second_factor_command(email: str) -> None:
    """Remove EMAIL's authenticator and recovery codes; they enrol again at next sign-in."""
    services.reset_second_factor(_user(email), cli_actor(), utcnow())
    db.session.commit()
    click.echo(f"{email} will enrol a new authenticator at next sign-in")


@nda_cli.command("publish")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--title", default="Confidentiality agreement", show_default=True)
def publish_nda_command(file: Path, title: str) -> None:
    """Publish the text in FILE as the new current NDA version."""
    try:
        nda = publish_nda(title, file.read_text(encoding="utf-8"), cli_actor(), utcnow())
    except PortalError as refusal:
        _fail(refusal)
    db.session.commit()
    click.echo(f"NDA version {nda.version} published (sha256 {nda.sha256})")
