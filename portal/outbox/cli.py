"""`flask corrections export`: the outbox as JSON Lines, for an admin handing it over by file."""

from __future__ import annotations

import json
from pathlib import Path

import click
from flask.cli import AppGroup

from portal.audit.services import record_event
from portal.cli import cli_actor
from portal.extensions import db
from portal.outbox.services import as_item, iter_corrections

corrections_cli = AppGroup("corrections", help="Accepted corrections (the outbox).")


@corrections_cli.command("export")
@click.option(
    "--since",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="cursor: export the entries after this position",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, writable=True, allow_dash=True, path_type=Path),
    help="the JSON Lines file to write ('-' for standard output)",
)
def export_command(since: int, out: Path) -> None:
    """Write every correction after --since as one JSON object a line, in commit order.

    The lines are the items of GET /api/v1/corrections: erased and expired clips'
    corrections never appear. The last line's `cursor` is the --since of the next export.
    """
    count, last = 0, since
    with click.open_file(str(out), "w", encoding="utf-8") as handle:
        for entry in iter_corrections(since):
            handle.write(json.dumps(as_item(entry), ensure_ascii=False, separators=(",", ":")) + "\n")
            count, last = count + 1, entry.position
    record_event(
        cli_actor(), "outbox.exported", details={"since": since, "items": count, "next_cursor": last}
    )
    db.session.commit()
    click.echo(f"{count} correction(s) written; next cursor: {last}", err=True)
