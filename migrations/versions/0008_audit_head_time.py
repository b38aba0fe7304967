"""Audit head time: the chain's head also holds the time of its last event.

On PostgreSQL one statement now locks the head, dates, numbers and hashes an event and
moves the head (`portal.audit.services`). An event's time is the later of the clock read
before the lock and the previous event's time, so that times follow sequence numbers.
That statement must read the previous time from the locked head row itself: a read of
`audit_events` would see the statement's snapshot, taken before the lock was granted,
which misses the event committed by the transaction it waited for.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 15:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_head") as batch:
        batch.add_column(sa.Column("occurred_at", sa.DateTime(), nullable=True))
    op.execute(
        "UPDATE audit_head SET occurred_at = "
        "(SELECT occurred_at FROM audit_events WHERE seq = audit_head.seq)"
    )


def downgrade() -> None:
    with op.batch_alter_table("audit_head") as batch:
        batch.drop_column("occurred_at")
