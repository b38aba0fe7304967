"""The audit append's refusal when a checkpoint falls due (PostgreSQL only).

On PostgreSQL a transaction sends its audit events and its COMMIT in one round trip
(`portal.audit.services`). An event whose sequence number needs a signed checkpoint
cannot go that way: the checkpoint is signed in Python and must commit with the event.
The append statement calls this function for such an event; the error it raises makes
the appender roll back to its savepoint and append the slow way, checkpoint included.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 00:30:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE FUNCTION portal_audit_checkpoint_due(seq bigint) RETURNS bigint
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'audit event % needs a checkpoint', seq USING ERRCODE = 'PA001';
        END
        $$
        """
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION portal_audit_checkpoint_due(bigint)")
