"""Task rejections: how often review sent a task back to the queue.

The work page shows reviewers' feedback on earlier passes of a task; with this count it
looks for that feedback only on a task that was rejected at least once, instead of on
every page load. Existing tasks are counted from their rejected submissions.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 20:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("rejections", sa.Integer(), nullable=False, server_default="0"))
    op.execute(
        "UPDATE tasks SET rejections = "
        "(SELECT count(*) FROM submissions WHERE submissions.task_id = tasks.id "
        "AND submissions.status = 'rejected')"
    )


def downgrade() -> None:
    # A plain DROP COLUMN (SQLite has it since 3.35): batch mode would copy and drop the
    # table, which SQLite refuses while other tables' foreign keys point at its rows.
    op.drop_column("tasks", "rejections")
