"""`flask audit ...`: export, verify, checkpoint, public-key."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from cryptography.hazmat.primitives import serialization

from portal.audit import export
from portal.audit.chain import load_public_key, public_key_id
from portal.audit.services import record_event
from portal.audit.verify import read_export, verify_records
from portal.cli import cli_actor
from portal.extensions import db
from portal.keys import portal_keys

audit_cli = click.Group("audit", help="Export and verify the tamper-evident audit log.")


@audit_cli.command("export")
@click.option("--format", "fmt", type=click.Choice(export.FORMATS), default="jsonl", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
def export_command(fmt: str, out: Path) -> None:
    """Write the whole log, sealed by a signed checkpoint, to OUT."""
    checkpoint = export.seal_head(portal_keys().audit_signing_key)
    if checkpoint is None:
        raise click.ClickException("the audit log is empty")
    record_event(
        cli_actor(),
        "audit.exported",
        target=f"file:{out.name}",
        details={"format": fmt, "up_to_seq": checkpoint.seq},
    )
    db.session.commit()
    with out.open("w", encoding="utf-8", newline="") as handle:
        for chunk in export.encode(export.export_records(checkpoint), fmt):
            handle.write(chunk)
    click.echo(f"exported events 1–{checkpoint.seq} to {out}")


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
        result = verify_records(read_export(export_file), load_public_key(public_key.read_bytes()))
    else:
        result = export.verify_database(portal_keys().audit_signing_key)
    if result.ok:
        click.echo(
            f"OK: {result.events} events (seq {result.first_seq}–{result.last_seq}), "
            f"{result.checkpoints} valid checkpoint(s)"
        )
        return
    for problem in result.problems:
        click.echo(f"FAILED: {problem}")
    sys.exit(1)


@audit_cli.command("checkpoint")
def checkpoint_command() -> None:
    """Sign the chain's current head now."""
    checkpoint = export.seal_head(portal_keys().audit_signing_key)
    db.session.commit()
    if checkpoint is None:
        raise click.ClickException("the audit log is empty")
    click.echo(f"checkpoint at seq {checkpoint.seq}: {checkpoint.head_hash}")


@audit_cli.command("public-key")
def public_key_command() -> None:
    """Print the audit public key (PEM) and its fingerprint, to hand to auditors."""
    public_key = portal_keys().audit_signing_key.public_key()
    pem = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    click.echo(pem.decode(), nl=False)
    click.echo(f"# key id {public_key_id(public_key)}", err=True)
