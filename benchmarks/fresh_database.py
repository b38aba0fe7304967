"""A fresh database for a benchmark: the old schema dropped, the new one built by the migrations."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig

from portal.config import PROJECT_ROOT


def wipe_postgres(url: str) -> None:
    """Drop and recreate the database's `public` schema (the audit trigger function with it)."""
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP SCHEMA public CASCADE")
        connection.exec_driver_sql("CREATE SCHEMA public")
        connection.exec_driver_sql("DROP FUNCTION IF EXISTS portal_refuse_audit_change() CASCADE")
    engine.dispose()


def migrate(url: str) -> None:
    """Build the schema from the Alembic migrations, as `flask db upgrade` does."""
    config = AlembicConfig(str(PROJECT_ROOT / "alembic.ini"))
    config.attributes["url"] = url
    config.attributes["configure_logging"] = False
    command.upgrade(config, "head")
