"""`flask audit ...`: export, verify, checkpoint, public-key, trace.

`verify` exits 0 when the chain verifies, 1 when it is damaged or was tampered with, and
2 when its input is unusable, like `python -m portal.audit.verify`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from flask import current_app
from flask.cli import AppGroup

from portal.audit import export, trace
from portal.audit.chain import load_public_key, public_key_id
from portal.audit.search import FilterError, parse_filters
from portal.audit.services import checkpoint_head, record_event
from portal.audit.verify import EXIT_UNUSABLE, UnusableExport, report, verify_file
from portal.cli import cli_actor
from portal.extensions import db
from portal.keys import portal_keys

audit_cli = AppGroup("audit", help="Export and verify the tamper-evident audit log.")


def _unusable(message: str) -> None:
    click.echo(message, err=True)
    sys.exit(EXIT_UNUSABLE)


F = TypeVar("F", bound=Callable[..., Any])
FILTER_OPTIONS = (
    ("since", "only events at or after this UTC time (2026-11-30T09:00)"),
    ("until", "only events before this UTC time"),
    ("user", "the actor: a user id or an email"),
    ("vendor", "the actor's vendor name"),
    ("action", "an action, or a prefix ending in . or *"),
    ("outcome", "allowed, denied or failed"),
    ("clip", "a clip's public id (pseudonym)"),
    ("task", "a task number"),
)


def filter_options(command: F) -> F:
    """The search's filters as options; a filtered export holds links for the rest."""
    for name, help_text in reversed(FILTER_OPTIONS):
        command = click.option(f"--{name}", name, default=None, help=help_text)(command)
    return command


@audit_cli.command("export")
@click.option("--format", "fmt", type=click.Choice(export.FORMATS), default="jsonl", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@filter_options
def export_command(fmt: str, out: Path, **options: str | None) -> None:
    """Write the log (or the events matching the filters), with its checkpoints and a seal, to OUT."""
    try:
        filters = parse_filters(options)
    except FilterError as error:
        raise click.BadParameter(error.message, param_hint=f"--{error.field}") from None
    plan = export.plan_export(portal_keys().audit_signing_key, filters)
    if plan is None:
        db.session.rollback()
        raise click.ClickException(
            "the audit log is empty" if filters.empty else "no event matches the filters"
        )
    record_event(cli_actor(), "audit.exported", target=f"file:{out.name}", details=plan.details(fmt))
    db.session.commit()
    stream = export.ExportStream(plan, fmt)
    with out.open("wb") as handle:
        for chunk in stream:
            handle.write(chunk)
    if plan.filters is None:
        click.echo(f"exported events 1–{plan.last_seq} to {out}")
    else:
        click.echo(
            f"exported {stream.events} matching events between seq {plan.first_seq} and "
            f"seq {plan.last_seq} ({stream.links} left out, as links) to {out}"
        )


@audit_cli.command("verify")
@click.argument("export_file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--public-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="PEM public key; required with EXPORT_FILE",
)
def verify_command(export_file: Path | None, public_key: Path | None) -> None:
    """Verify EXPORT_FILE offline, or without it the chain stored in the database."""
    if export_file is not None:
        if public_key is None:
            raise click.UsageError("--public-key is required to verify an export")
        try:
            key = load_public_key(public_key.read_bytes())
        except (OSError, ValueError) as error:
            _unusable(f"cannot use the public key {public_key}: {error}")
        try:
            result = verify_file(export_file, key)
        except (OSError, UnusableExport) as error:
            _unusable(f"cannot read {export_file}: {error}")
    else:
        try:
            result = export.verify_database(portal_keys().audit_signing_key)
        except sa.exc.SQLAlchemyError as error:
            _unusable(f"cannot read the audit tables: {error}")
    lines, status = report(result)
    for line in lines:
        click.echo(line)
    sys.exit(status)


@audit_cli.command("checkpoint")
def checkpoint_command() -> None:
    """Sign the chain's current head now and store the checkpoint."""
    checkpoint = checkpoint_head(portal_keys().audit_signing_key)
    if checkpoint is None:
        raise click.ClickException("the audit log is empty")
    db.session.commit()
    click.echo(f"checkpoint at seq {checkpoint.seq}: {checkpoint.head_hash}")


@audit_cli.command("public-key")
def public_key_command() -> None:
    """Print the audit public key (PEM) and its fingerprint, to hand to auditors."""
    public_key = portal_keys().audit_signing_key.public_key()
    pem = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    click.echo(pem.decode(), nl=False)
    click.echo(f"# key id {public_key_id(public_key)}", err=True)


@audit_cli.command("trace")
@click.argument("audio_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--top", type=click.IntRange(1, 100), default=3, show_default=True, help="matches to list")
def trace_command(audio_file: Path, top: int) -> None:
    """Find the clip a leaked AUDIO_FILE was taken from, and who was served that clip.

    Exits 0 when a clip matches, 1 when none does, 2 when the file cannot be decoded.
    """
    max_seconds = current_app.config["MAX_CLIP_SECONDS"]
    try:
        data = audio_file.read_bytes()
        query = trace.leak_fingerprint(data, max_seconds)
    except (OSError, trace.UnusableAudio) as error:
        _unusable(f"cannot trace {audio_file}: {error}")
    result = trace.trace_leak(query, max_seconds)
    best = result.found[0] if result.found else None
    record_event(
        cli_actor(),
        "audit.traced",
        target=f"clip:{best.public_id}" if best else None,
        details=trace.event_details(result, data),
    )
    db.session.commit()
    for line in trace.report_lines(result, top):
        click.echo(line)
    sys.exit(0 if best else 1)
