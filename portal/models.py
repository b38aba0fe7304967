"""Import every model so that `Base.metadata` knows the whole schema (Alembic compares it)."""

from portal.analytics.models import (
    DashboardDay,
    DashboardHour,
    DashboardRatio,
    DashboardRatioTotal,
    DashboardRollup,
    DashboardTotal,
)
from portal.api.models import ApiKey
from portal.audit.models import AuditCheckpoint, AuditEvent, AuditHead
from portal.auth.models import RecoveryCode, User, UserSession, Vendor
from portal.clips.models import Clip, ClipRedaction, VendorIngestPolicy
from portal.db import Base
from portal.nda.models import NdaAcceptance, NdaVersion
from portal.outbox.models import OutboxEntry, OutboxHead
from portal.playback.models import PlaybackGrant
from portal.tasks.models import ClipVendor, ProblemReport, Submission, Task, TaskLease

__all__ = [
    "ApiKey",
    "AuditCheckpoint",
    "AuditEvent",
    "AuditHead",
    "Base",
    "Clip",
    "ClipRedaction",
    "ClipVendor",
    "DashboardDay",
    "DashboardHour",
    "DashboardRatio",
    "DashboardRatioTotal",
    "DashboardRollup",
    "DashboardTotal",
    "NdaAcceptance",
    "NdaVersion",
    "OutboxEntry",
    "OutboxHead",
    "PlaybackGrant",
    "ProblemReport",
    "RecoveryCode",
    "Submission",
    "Task",
    "TaskLease",
    "User",
    "UserSession",
    "Vendor",
    "VendorIngestPolicy",
]
