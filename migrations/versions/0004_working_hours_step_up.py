"""Auditing: vendors' declared working hours, and the time of a session's last step-up.

`vendors.work_start`/`work_end` (local wall-clock times, end exclusive; an end before the
start spans midnight) and `work_timezone` (an IANA name) feed the "access outside working
hours" anomaly; all three NULL means the vendor declared none. `user_sessions.step_up_at`
is when the person last re-entered a TOTP code to confirm a sensitive action (an audit
export); a step-up is valid for PORTAL_AUDIT_STEP_UP_MINUTES.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 10:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("vendors", schema=None) as batch_op:
        batch_op.add_column(sa.Column("work_start", sa.Time(), nullable=True))
        batch_op.add_column(sa.Column("work_end", sa.Time(), nullable=True))
        batch_op.add_column(sa.Column("work_timezone", sa.String(length=64), nullable=True))
    with op.batch_alter_table("user_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("step_up_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("user_sessions", schema=None) as batch_op:
        batch_op.drop_column("step_up_at")
    with op.batch_alter_table("vendors", schema=None) as batch_op:
        batch_op.drop_column("work_timezone")
        batch_op.drop_column("work_end")
        batch_op.drop_column("work_start")
