"""`flask clips ingest|purge-expired|verify|tone` and `flask subjects erase`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from flask.cli import AppGroup

from portal.admin.services import find_vendor
from portal.audit.services import Actor
from portal.cli import cli_actor
from portal.clips import services
from portal.clips.refusals import IngestRefused
from portal.clock import utcnow
from portal.exceptions import PortalError
from portal.extensions import db

clips_cli = AppGroup("clips", help="Clip ingest, retention and integrity.")
subjects_cli = AppGroup("subjects", help="Requests of data subjects.")


def ingest_manifest_line(line: str, base: Path, actor: Actor) -> services.IngestResult:
    """Ingest the clip one manifest line describes, in its own transaction.

    Raises PortalError for a refusal, after auditing it and committing the audit event.
    """
    entry: object = None
    try:
        try:
            entry = json.loads(line)
        except ValueError:
            raise IngestRefused("metadata_invalid", "The line is not valid JSON.") from None
        if not isinstance(entry, dict):
            raise IngestRefused("metadata_invalid", "Each line must be a JSON object.")
        entry = dict(entry)
        audio_path = entry.pop("audio", None)
        if not isinstance(audio_path, str) or not (base / audio_path).is_file():
            raise IngestRefused(
                "audio_missing", 'The line\'s "audio" must name a file, relative to the manifest.'
            )
        with (base / audio_path).open("rb") as stream:
            result = services.ingest_clip(stream, entry, actor, utcnow())
    except PortalError as refusal:
        db.session.rollback()
        services.record_refusal(actor, refusal, entry)
        db.session.commit()
        raise
    db.session.commit()
    return result


@clips_cli.command("ingest")
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def ingest_command(manifest: Path) -> None:
    """Ingest the clips of MANIFEST: one JSON object a line, the API's metadata plus "audio".

    Each clip is its own transaction: a refused line is reported and the others go on.
    Exits with status 1 if any line was refused.
    """
    actor, base = cli_actor(), manifest.parent
    ingested = replayed = refused = 0
    with manifest.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                result = ingest_manifest_line(line, base, actor)
            except PortalError as refusal:
                refused += 1
                click.echo(f"line {number}: refused [{refusal.code}] {refusal.message}", err=True)
                continue
            found = ", ".join(f"{kind}={count}" for kind, count in result.redactions.items()) or "none"
            state = "already ingested" if result.replayed else f"{result.tasks} task(s)"
            click.echo(f"line {number}: clip {result.clip.public_id} ({state}; redactions: {found})")
            replayed += result.replayed
            ingested += not result.replayed
    click.echo(f"{ingested} ingested, {replayed} already present, {refused} refused")
    if refused:
        sys.exit(1)


@clips_cli.command("purge-expired")
def purge_expired_command() -> None:
    """Erase every clip whose retention period has ended (key, object, transcript, tasks)."""
    actor, total = cli_actor(), 0
    while True:
        count = services.purge_expired(utcnow(), actor)
        db.session.commit()
        total += count
        if count == 0:
            break
    click.echo(f"{total} expired clip(s) purged")


@clips_cli.command("verify")
def verify_command() -> None:
    """Decrypt every active clip; quarantine those missing or altered. Exit 1 if any."""
    report = services.verify_clips(cli_actor(), utcnow())
    db.session.commit()
    for public_id in report.quarantined:
        click.echo(f"clip {public_id}: failed its integrity check, quarantined", err=True)
    click.echo(f"{report.checked} clip(s) checked, {len(report.quarantined)} quarantined")
    if report.quarantined:
        sys.exit(1)


@clips_cli.command("tone")
@click.argument("vendor_name")
@click.argument("state", type=click.Choice(["on", "off"]))
def tone_command(vendor_name: str, state: str) -> None:
    """Tone over redacted words in clips for VENDOR_NAME (on, the default) or not (off).

    Off takes effect only for clips whose every allowed vendor has it off.
    """
    vendor = find_vendor(vendor_name)
    if vendor is None:
        raise click.ClickException(f"no vendor named {vendor_name!r}")
    services.set_vendor_tone(vendor, state == "on", cli_actor(), utcnow())
    db.session.commit()
    click.echo(f"toning over redactions for {vendor.name}: {state}")


@subjects_cli.command("erase")
@click.option("--source-user-id", required=True, help='the id in the source system ("-": read stdin)')
def erase_command(source_user_id: str) -> None:
    """Erase every clip of one person: keys, files and transcripts destroyed, tasks cancelled."""
    if source_user_id == "-":
        source_user_id = sys.stdin.readline().rstrip("\r\n")
    try:
        count = services.erase_subject(source_user_id, cli_actor(), utcnow())
    except PortalError as refusal:
        db.session.rollback()
        raise click.ClickException(refusal.message) from None
    db.session.commit()
    click.echo(f"{count} clip(s) erased; the request is recorded in the audit log")
