"""Import every model so that `Base.metadata` knows the whole schema (Alembic compares it)."""

from portal.audit.models import AuditCheckpoint, AuditEvent, AuditHead
from portal.auth.models import RecoveryCode, User, UserSession, Vendor
from portal.db import Base
from portal.nda.models import NdaAcceptance, NdaVersion

__all__ = [
    "AuditCheckpoint",
    "AuditEvent",
    "AuditHead",
    "Base",
    "NdaAcceptance",
    "NdaVersion",
    "RecoveryCode",
    "User",
    "UserSession",
    "Vendor",
]
