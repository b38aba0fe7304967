"""Dashboard rollup: sealed days' figures added up once (see `portal.analytics.rollup`).

Creates the rollup tables (per day, running totals at checkpoints, per hour) and their
state row (nothing sealed yet: the first dashboard view, or `flask dashboard refresh`,
adds up the history), and `ix_task_leases_live`: the
leases still open, by expiry. The rollup may only seal days before the oldest live
lease (its outcome, expired or not, is not known yet), and finding that lease must not
scan every lease ever taken. Leases that ran out unnoticed keep `ended_at` NULL, so the
index also holds those (a few percent of all leases); the query reads only the ones that
expire after now.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 12:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

OPEN = sa.text("ended_at IS NULL")
COUNTS = ("done", "active_hours", "unedited", "fast", "unheard", "flagged", "gold_scored")
DECISIONS_AND_LEASES = ("decided", "rejected", "leases_taken", "leases_expired")


def _rollup_table(name: str, date_column: str, *columns: sa.Column) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(date_column, sa.Date(), nullable=False),
        sa.Column("vendor_id", sa.Integer(), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=False),
        *columns,
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{name}")),
    )


def _figures() -> list[sa.Column]:
    """An annotator's additive figures (`portal.analytics.models.AnnotatorFigures`)."""
    return [
        *(sa.Column(name, sa.Integer(), nullable=False) for name in COUNTS),
        sa.Column("gold_wer_sum", sa.Float(), nullable=False),
        sa.Column("gold_cer_sum", sa.Float(), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in DECISIONS_AND_LEASES),
    ]


def _steps() -> list[sa.Column]:
    return [sa.Column("step", sa.Integer(), nullable=False), sa.Column("done", sa.Integer(), nullable=False)]


def upgrade() -> None:
    op.create_table(
        "dashboard_rollup",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sealed_from", sa.Date(), nullable=True),
        sa.Column("sealed_through", sa.Date(), nullable=True),
        sa.Column("refreshed_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dashboard_rollup")),
    )
    op.execute("INSERT INTO dashboard_rollup (id) VALUES (1)")
    _rollup_table("dashboard_days", "day", *_figures())
    op.create_index("ix_dashboard_days_day", "dashboard_days", ["day", "vendor_id", "user_id", "done"])
    _rollup_table("dashboard_totals", "through", *_figures())
    op.create_index("ix_dashboard_totals_through", "dashboard_totals", ["through", "vendor_id", "user_id"])
    _rollup_table("dashboard_ratios", "day", *_steps())
    op.create_index(
        "ix_dashboard_ratios_day", "dashboard_ratios", ["day", "vendor_id", "user_id", "step", "done"]
    )
    _rollup_table("dashboard_ratio_totals", "through", *_steps())
    op.create_index(
        "ix_dashboard_ratio_totals_through",
        "dashboard_ratio_totals",
        ["through", "vendor_id", "user_id", "step", "done"],
    )
    op.create_table(
        "dashboard_hours",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("hour", sa.Integer(), nullable=False),
        sa.Column("vendor_id", sa.Integer(), nullable=True),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dashboard_hours")),
    )
    op.create_index("ix_dashboard_hours_day", "dashboard_hours", ["day", "hour", "vendor_id", "done"])
    op.create_index(
        "ix_task_leases_live",
        "task_leases",
        ["expires_at", "leased_at"],
        sqlite_where=OPEN,
        postgresql_where=OPEN,
    )


def downgrade() -> None:
    op.drop_index("ix_task_leases_live", table_name="task_leases")
    for name in (
        "dashboard_hours",
        "dashboard_ratio_totals",
        "dashboard_ratios",
        "dashboard_totals",
        "dashboard_days",
        "dashboard_rollup",
    ):
        op.drop_table(name)
