"""Dashboard indexes: the supervisor dashboard's period scans read indexes, not tables.

Each figure of `portal.analytics.services` scans one time range; these indexes make that
an index range scan that never touches the wide rows (transcripts, pseudonyms):

* `ix_submissions_dashboard`: submissions by `created_at` with every column the
  throughput, time-on-task, rubber-stamp and gold figures read (covering on both
  databases: SQLite and PostgreSQL's index-only scans answer from the index alone);
* `ix_submissions_decided`: supervisors' decisions by `reviewed_at`, partial (only rows
  with a reviewer: automatic acceptances are not decisions, and most rows are those);
* `ix_task_leases_dashboard`: leases by `leased_at`. Only columns that never change after
  the claim, so that renewing or ending a lease changes no indexed column (PostgreSQL can
  keep those frequent updates HOT); the expiry columns are read from the row;
* `ix_clips_duration`: a clip's length by id, so that the join from submissions to their
  clips reads a narrow index instead of the clips table.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 10:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

DECIDED = sa.text("reviewer_id IS NOT NULL")


def upgrade() -> None:
    op.create_index(
        "ix_submissions_dashboard",
        "submissions",
        [
            "created_at",
            "vendor_id",
            "user_id",
            "clip_id",
            "time_on_task_ms",
            "wer",
            "fully_heard",
            "gold_wer",
            "gold_cer",
        ],
    )
    op.create_index(
        "ix_submissions_decided",
        "submissions",
        ["reviewed_at", "vendor_id", "user_id", "status"],
        sqlite_where=DECIDED,
        postgresql_where=DECIDED,
    )
    op.create_index("ix_task_leases_dashboard", "task_leases", ["leased_at", "vendor_id", "user_id"])
    op.create_index("ix_clips_duration", "clips", ["id", "duration_ms"])


def downgrade() -> None:
    op.drop_index("ix_clips_duration", table_name="clips")
    op.drop_index("ix_task_leases_dashboard", table_name="task_leases")
    op.drop_index("ix_submissions_decided", table_name="submissions")
    op.drop_index("ix_submissions_dashboard", table_name="submissions")
