"""Clips: ingested clips, their redaction counts, tasks, allowed vendors, API keys.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 09:30:43.329912
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column(
            "scope",
            sa.Enum("ingest", "outbox", name="apiscope", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.Column("last_used_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
        sa.UniqueConstraint("name", name=op.f("uq_api_keys_name")),
    )
    op.create_table(
        "clips",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=32), nullable=False),
        sa.Column("subject_pseudonym", sa.String(length=64), nullable=False),
        sa.Column("device_pseudonym", sa.String(length=64), nullable=True),
        sa.Column("locale", sa.String(length=35), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("consent_opt_in", sa.Boolean(), nullable=False),
        sa.Column("consent_recorded_at", sa.DateTime(), nullable=False),
        sa.Column("consent_scope", sa.String(length=400), nullable=False),
        sa.Column("transcript", sa.Text(), nullable=False),
        sa.Column("words", sa.Text(), nullable=True),
        sa.Column("toned_spans", sa.Integer(), nullable=False),
        sa.Column("passes", sa.Integer(), nullable=False),
        sa.Column("storage_name", sa.String(length=32), nullable=True),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "active", "quarantined", "erased", "expired", name="clipstatus", native_enum=False, length=20
            ),
            nullable=False,
        ),
        sa.Column("idempotency_digest", sa.String(length=64), nullable=True),
        sa.Column("ingested_at", sa.DateTime(), nullable=False),
        sa.Column("retain_until", sa.DateTime(), nullable=False),
        sa.Column("erased_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clips")),
        sa.UniqueConstraint("idempotency_digest", name=op.f("uq_clips_idempotency_digest")),
        sa.UniqueConstraint("public_id", name=op.f("uq_clips_public_id")),
        sa.UniqueConstraint("storage_name", name=op.f("uq_clips_storage_name")),
    )
    with op.batch_alter_table("clips", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_clips_consent_scope"), ["consent_scope"], unique=False)
        batch_op.create_index(batch_op.f("ix_clips_retain_until"), ["retain_until"], unique=False)
        batch_op.create_index(batch_op.f("ix_clips_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_clips_subject_pseudonym"), ["subject_pseudonym"], unique=False)

    op.create_table(
        "clip_redactions",
        sa.Column("clip_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["clip_id"], ["clips.id"], name=op.f("fk_clip_redactions_clip_id_clips")),
        sa.PrimaryKeyConstraint("clip_id", "kind", name=op.f("pk_clip_redactions")),
    )
    op.create_table(
        "clip_vendors",
        sa.Column("clip_id", sa.Integer(), nullable=False),
        sa.Column("vendor_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["clip_id"], ["clips.id"], name=op.f("fk_clip_vendors_clip_id_clips")),
        sa.ForeignKeyConstraint(
            ["vendor_id"], ["vendors.id"], name=op.f("fk_clip_vendors_vendor_id_vendors")
        ),
        sa.PrimaryKeyConstraint("clip_id", "vendor_id", name=op.f("pk_clip_vendors")),
    )
    with op.batch_alter_table("clip_vendors", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_clip_vendors_vendor_id"), ["vendor_id"], unique=False)

    op.create_table(
        "tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("clip_id", sa.Integer(), nullable=False),
        sa.Column("pass_number", sa.Integer(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum("queued", "cancelled", name="taskstatus", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("cancelled_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["clip_id"], ["clips.id"], name=op.f("fk_tasks_clip_id_clips")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
        sa.UniqueConstraint("clip_id", "pass_number", name=op.f("uq_tasks_clip_id")),
    )
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tasks_clip_id"), ["clip_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_tasks_status"), ["status"], unique=False)

    op.create_table(
        "vendor_ingest_policies",
        sa.Column("vendor_id", sa.Integer(), nullable=False),
        sa.Column("tone_over_redactions", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["vendor_id"], ["vendors.id"], name=op.f("fk_vendor_ingest_policies_vendor_id_vendors")
        ),
        sa.PrimaryKeyConstraint("vendor_id", name=op.f("pk_vendor_ingest_policies")),
    )


def downgrade() -> None:
    op.drop_table("vendor_ingest_policies")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tasks_status"))
        batch_op.drop_index(batch_op.f("ix_tasks_clip_id"))

    op.drop_table("tasks")
    with op.batch_alter_table("clip_vendors", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_clip_vendors_vendor_id"))

    op.drop_table("clip_vendors")
    op.drop_table("clip_redactions")
    with op.batch_alter_table("clips", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_clips_subject_pseudonym"))
        batch_op.drop_index(batch_op.f("ix_clips_status"))
        batch_op.drop_index(batch_op.f("ix_clips_retain_until"))
        batch_op.drop_index(batch_op.f("ix_clips_consent_scope"))

    op.drop_table("clips")
    op.drop_table("api_keys")
