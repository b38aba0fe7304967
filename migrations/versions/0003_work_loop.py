"""The work loop: leases, submissions, problem reports, playback grants, the outbox.

The outbox head starts at position 0; positions are assigned under its row lock.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 09:54:44.392822
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_head")),
    )
    op.create_table(
        "task_leases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("clip_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("vendor_id", sa.Integer(), nullable=True),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("leased_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("end_reason", sa.String(length=20), nullable=True),
        sa.Column("skip_reason", sa.String(length=40), nullable=True),
        sa.Column("heard_intervals", sa.Text(), nullable=False),
        sa.Column("served_ranges", sa.Text(), nullable=False),
        sa.Column("last_progress_at", sa.DateTime(), nullable=True),
        sa.Column("draft", sa.Text(), nullable=True),
        sa.Column("draft_saved_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["clip_id"], ["clips.id"], name=op.f("fk_task_leases_clip_id_clips")),
        sa.ForeignKeyConstraint(
            ["session_id"], ["user_sessions.id"], name=op.f("fk_task_leases_session_id_user_sessions")
        ),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name=op.f("fk_task_leases_task_id_tasks")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_task_leases_user_id_users")),
        sa.ForeignKeyConstraint(["vendor_id"], ["vendors.id"], name=op.f("fk_task_leases_vendor_id_vendors")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_leases")),
    )
    with op.batch_alter_table("task_leases", schema=None) as batch_op:
        batch_op.create_index("ix_task_leases_clip_user", ["clip_id", "user_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_task_leases_task_id"), ["task_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_task_leases_user_id"), ["user_id"], unique=False)

    op.create_table(
        "problem_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("clip_id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("lease_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "pii_missed",
                "unintelligible",
                "wrong_language",
                "other",
                name="problemkind",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("resolved_at", sa.DateTime(), nullable=True),
        sa.Column("resolution", sa.String(length=20), nullable=True),
        sa.Column("resolved_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["clip_id"], ["clips.id"], name=op.f("fk_problem_reports_clip_id_clips")),
        sa.ForeignKeyConstraint(
            ["lease_id"], ["task_leases.id"], name=op.f("fk_problem_reports_lease_id_task_leases")
        ),
        sa.ForeignKeyConstraint(
            ["resolved_by_id"], ["users.id"], name=op.f("fk_problem_reports_resolved_by_id_users")
        ),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name=op.f("fk_problem_reports_task_id_tasks")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_problem_reports_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_problem_reports")),
    )
    with op.batch_alter_table("problem_reports", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_problem_reports_clip_id"), ["clip_id"], unique=False)

    op.create_table(
        "submissions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("lease_id", sa.Integer(), nullable=False),
        sa.Column("clip_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("vendor_id", sa.Integer(), nullable=True),
        sa.Column("transcript", sa.Text(), nullable=False),
        sa.Column("wer", sa.Double(), nullable=False),
        sa.Column("cer", sa.Double(), nullable=False),
        sa.Column("edit_distance", sa.Integer(), nullable=False),
        sa.Column("time_on_task_ms", sa.Integer(), nullable=False),
        sa.Column("heard_share", sa.Double(), nullable=False),
        sa.Column("fully_heard", sa.Boolean(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending_review",
                "accepted",
                "auto_accepted",
                "rejected",
                "scored",
                "withdrawn",
                name="submissionstatus",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("gold_wer", sa.Double(), nullable=True),
        sa.Column("gold_cer", sa.Double(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("reviewer_id", sa.Integer(), nullable=True),
        sa.Column("feedback", sa.Text(), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["clip_id"], ["clips.id"], name=op.f("fk_submissions_clip_id_clips")),
        sa.ForeignKeyConstraint(
            ["lease_id"], ["task_leases.id"], name=op.f("fk_submissions_lease_id_task_leases")
        ),
        sa.ForeignKeyConstraint(["reviewer_id"], ["users.id"], name=op.f("fk_submissions_reviewer_id_users")),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name=op.f("fk_submissions_task_id_tasks")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_submissions_user_id_users")),
        sa.ForeignKeyConstraint(["vendor_id"], ["vendors.id"], name=op.f("fk_submissions_vendor_id_vendors")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_submissions")),
        sa.UniqueConstraint("lease_id", name=op.f("uq_submissions_lease_id")),
    )
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_submissions_clip_id"), ["clip_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_submissions_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_submissions_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_submissions_task_id"), ["task_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_submissions_user_id"), ["user_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_submissions_vendor_id"), ["vendor_id"], unique=False)

    op.create_table(
        "outbox_entries",
        sa.Column("position", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("submission_id", sa.Integer(), nullable=False),
        sa.Column("clip_id", sa.Integer(), nullable=False),
        sa.Column("clip_public_id", sa.String(length=32), nullable=False),
        sa.Column("locale", sa.String(length=35), nullable=False),
        sa.Column("transcript", sa.Text(), nullable=False),
        sa.Column("machine_transcript", sa.Text(), nullable=False),
        sa.Column("wer", sa.Double(), nullable=False),
        sa.Column("cer", sa.Double(), nullable=False),
        sa.Column("passes", sa.Integer(), nullable=False),
        sa.Column("annotator", sa.String(length=64), nullable=False),
        sa.Column("time_on_task_ms", sa.Integer(), nullable=False),
        sa.Column("accepted_at", sa.DateTime(), nullable=False),
        sa.Column("withdrawn_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["clip_id"], ["clips.id"], name=op.f("fk_outbox_entries_clip_id_clips")),
        sa.ForeignKeyConstraint(
            ["submission_id"], ["submissions.id"], name=op.f("fk_outbox_entries_submission_id_submissions")
        ),
        sa.PrimaryKeyConstraint("position", name=op.f("pk_outbox_entries")),
        sa.UniqueConstraint("submission_id", name=op.f("uq_outbox_entries_submission_id")),
    )
    with op.batch_alter_table("outbox_entries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outbox_entries_clip_id"), ["clip_id"], unique=False)

    op.create_table(
        "playback_grants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("clip_id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("lease_id", sa.Integer(), nullable=True),
        sa.Column("submission_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("bytes_served", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["clip_id"], ["clips.id"], name=op.f("fk_playback_grants_clip_id_clips")),
        sa.ForeignKeyConstraint(
            ["lease_id"], ["task_leases.id"], name=op.f("fk_playback_grants_lease_id_task_leases")
        ),
        sa.ForeignKeyConstraint(
            ["session_id"], ["user_sessions.id"], name=op.f("fk_playback_grants_session_id_user_sessions")
        ),
        sa.ForeignKeyConstraint(
            ["submission_id"], ["submissions.id"], name=op.f("fk_playback_grants_submission_id_submissions")
        ),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name=op.f("fk_playback_grants_task_id_tasks")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_playback_grants_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_playback_grants")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_playback_grants_token_hash")),
    )
    with op.batch_alter_table("playback_grants", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_playback_grants_clip_id"), ["clip_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_playback_grants_lease_id"), ["lease_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_playback_grants_user_id"), ["user_id"], unique=False)

    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("is_gold", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column("gold_transcript", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("lease_expires_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("current_lease_id", sa.Integer(), nullable=True))
        batch_op.create_index("ix_tasks_claim", ["status", "priority", "created_at"], unique=False)

    op.execute("INSERT INTO outbox_head (id, position) VALUES (1, 0)")


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_tasks_claim")
        batch_op.drop_column("current_lease_id")
        batch_op.drop_column("lease_expires_at")
        batch_op.drop_column("gold_transcript")
        batch_op.drop_column("is_gold")

    with op.batch_alter_table("playback_grants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_playback_grants_user_id"))
        batch_op.drop_index(batch_op.f("ix_playback_grants_lease_id"))
        batch_op.drop_index(batch_op.f("ix_playback_grants_clip_id"))

    op.drop_table("playback_grants")
    with op.batch_alter_table("outbox_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_entries_clip_id"))

    op.drop_table("outbox_entries")
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_submissions_vendor_id"))
        batch_op.drop_index(batch_op.f("ix_submissions_user_id"))
        batch_op.drop_index(batch_op.f("ix_submissions_task_id"))
        batch_op.drop_index(batch_op.f("ix_submissions_status"))
        batch_op.drop_index(batch_op.f("ix_submissions_created_at"))
        batch_op.drop_index(batch_op.f("ix_submissions_clip_id"))

    op.drop_table("submissions")
    with op.batch_alter_table("problem_reports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_problem_reports_clip_id"))

    op.drop_table("problem_reports")
    with op.batch_alter_table("task_leases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_task_leases_user_id"))
        batch_op.drop_index(batch_op.f("ix_task_leases_task_id"))
        batch_op.drop_index("ix_task_leases_clip_user")

    op.drop_table("task_leases")
    op.drop_table("outbox_head")
