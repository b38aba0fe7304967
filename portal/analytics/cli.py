"""`flask dashboard refresh [--rebuild]`: bring the dashboard's rollup up to date from a shell.

The dashboard refreshes the rollup itself before each page; the command is for a
nightly job that keeps the first page view of a day quick, and `--rebuild` for rows
written behind the portal's back (see `portal.analytics.rollup`).
"""

from __future__ import annotations

import time

import click
from flask.cli import AppGroup

from portal.analytics import rollup
from portal.clock import utcnow
from portal.extensions import db

dashboard_cli = AppGroup("dashboard", help="The supervisor dashboard's rollup of sealed days.")


@dashboard_cli.command("refresh")
@click.option("--rebuild", is_flag=True, help="Forget every sealed day and add them all up again.")
def refresh_command(rebuild: bool) -> None:
    """Seal the days whose figures can no longer change."""
    started = time.perf_counter()
    result = rollup.rebuild(utcnow()) if rebuild else rollup.refresh(utcnow())
    db.session.commit()
    added = (
        f"added {result.added.first_day.isoformat()} to {result.added.last_day.isoformat()}"
        if result.added
        else "nothing new to add"
    )
    click.echo(
        f"dashboard rollup: {added}; sealed through {result.sealed_through.isoformat()} "
        f"({time.perf_counter() - started:.1f} s)"
    )
