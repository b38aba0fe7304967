"""Dashboard rollup: sealed days' figures added up once (see `portal.analytics.rollup`).

Creates the rollup tables and their state row (nothing sealed yet: the first dashboard
view, or `flask dashboard refresh`, adds up the history), and `ix_task_leases_live`: the
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


def _rollup_table(name: str, period_column: str, *columns: sa.Column) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(period_column, sa.Date(), nullable=False),
        sa.Column("vendor_id", sa.Integer(), nullable=True),
        *columns,
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{name}")),
    )


def upgrade() -> None:
    op.create_table(
        "dashboard_rollup",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sealed_through", sa.Date(), nullable=True),
        sa.Column("refreshed_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dashboard_rollup")),
    )
    op.execute("INSERT INTO dashboard_rollup (id) VALUES (1)")
    _rollup_table(
        "dashboard_days",
        "day",
        sa.Column("user_id", sa.Integer(), nullable=False),
        *(
            sa.Column(name, sa.Integer(), nullable=False)
            for name in ("done", "active_hours", "unedited", "fast", "unheard", "flagged", "gold_scored")
        ),
        sa.Column("gold_wer_sum", sa.Float(), nullable=False),
        sa.Column("gold_cer_sum", sa.Float(), nullable=False),
        *(
            sa.Column(name, sa.Integer(), nullable=False)
            for name in ("decided", "rejected", "leases_taken", "leases_expired")
        ),
    )
    op.create_index("ix_dashboard_days_day", "dashboard_days", ["day", "vendor_id", "user_id", "done"])
    for name, period_column in (("dashboard_ratios", "day"), ("dashboard_ratio_months", "month")):
        _rollup_table(
            name,
            period_column,
            sa.Column("user_id", sa.Integer(), nullable=False),
            sa.Column("step", sa.Integer(), nullable=False),
            sa.Column("done", sa.Integer(), nullable=False),
        )
        op.create_index(
            f"ix_{name}_{period_column}", name, [period_column, "vendor_id", "user_id", "step", "done"]
        )
    _rollup_table(
        "dashboard_hours",
        "day",
        sa.Column("hour", sa.Integer(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
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
    for name in ("dashboard_hours", "dashboard_ratio_months", "dashboard_ratios", "dashboard_days"):
        op.drop_table(name)
    op.drop_table("dashboard_rollup")
