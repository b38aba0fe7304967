"""`flask apikeys create|revoke|list`."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from portal.api import keys
from portal.api.models import ApiScope
from portal.cli import cli_actor
from portal.clock import utcnow
from portal.exceptions import PortalError
from portal.extensions import db

apikeys_cli = AppGroup("apikeys", help="API keys of service clients.")


@apikeys_cli.command("create")
@click.option("--name", required=True, help="a name for the client that will hold the key")
@click.option("--scope", required=True, type=click.Choice([scope.value for scope in ApiScope]))
def create_command(name: str, scope: str) -> None:
    """Create an API key and print it once; only its hash is kept."""
    try:
        key, token = keys.create_api_key(name, ApiScope(scope), cli_actor(), utcnow())
    except PortalError as refusal:
        db.session.rollback()
        raise click.ClickException(refusal.message) from None
    db.session.commit()
    click.echo(f"API key {key.name!r} ({key.scope.value}), shown once; store it now:", err=True)
    click.echo(token)


@apikeys_cli.command("revoke")
@click.argument("name")
def revoke_command(name: str) -> None:
    """Revoke the API key NAME."""
    try:
        key = keys.revoke_api_key(name, cli_actor(), utcnow())
    except PortalError as refusal:
        db.session.rollback()
        raise click.ClickException(refusal.message) from None
    db.session.commit()
    click.echo(f"API key {key.name!r} revoked")


@apikeys_cli.command("list")
def list_command() -> None:
    """List API keys (name, scope, prefix, state); never the keys themselves."""
    for key in keys.list_api_keys():
        state = f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "active"
        used = f"last used {key.last_used_at:%Y-%m-%d %H:%M}" if key.last_used_at else "never used"
        click.echo(f"{key.name:<30} {key.scope.value:<7} {key.prefix}…  {state}, {used}")
