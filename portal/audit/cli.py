"""`flask audit ...`: export, verify, checkpoint, public-key.

`verify` exits 0 when the chain verifies, 1 when it is damaged or was tampered with, and
2 when its input is unusable, like `python -m portal.audit.verify`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from flask.cli import AppGroup

from portal.audit import export
from portal.audit.chain import load_public_key, public_key_id
from portal.audit.services import checkpoint_head, record_event
from portal.audit.verify import EXIT_UNUSABLE, UnusableExport, read_export, report, verify_records
from portal.cli import cli_actor
from portal.extensions import db
from portal.keys import portal_keys

audit_cli = AppGroup("audit", help="Export and verify the tamper-evident audit log.")


def _unusable(message: str) -> None:
    click.echo(message, err=True)
    sys.exit(EXIT_UNUSABLE)


@audit_cli.command("export")
@click.option("--format", "fmt", type=click.Choice(export.FORMATS), default="jsonl", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
def export_command(fmt: str, out: Path) -> None:
    """Write the whole log, with its checkpoints and a closing seal, to OUT."""
    seal = export.seal_head(portal_keys().audit_signing_key)
    if seal is None:
        raise click.ClickException("the audit log is empty")
    record_event(
        cli_actor(),
        "audit.exported",
        target=f"file:{out.name}",
        details={"format": fmt, "up_to_seq": seal.seq, "head_hash": seal.head_hash},
    )
    db.session.commit()
    with out.open("w", encoding="utf-8", newline="") as handle:
        for chunk in export.encode(export.export_records(seal), fmt):
            handle.write(chunk)
    click.echo(f"exported events 1–{seal.seq} to {out}")


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
            result = verify_records(read_export(export_file), key)
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
