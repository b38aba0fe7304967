"""The database layer: declarative base, column types and engine setup.

The schema comes only from Alembic migrations; models describe it for queries.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import (
    DeclarativeBase,
    ORMExecuteState,
    Session,
    SessionTransaction,
    scoped_session,
    sessionmaker,
)

logger = logging.getLogger(__name__)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Base class of every model; a fixed naming convention keeps migrations stable."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Store UTC as a naive timestamp, hand back aware UTC datetimes on every backend.

    SQLite has no time zones; normalising here means no code path ever compares a naive
    with an aware datetime.
    """

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not accepted; use portal.clock.utcnow()")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


def _configure_sqlite(engine: Engine) -> None:
    """Make SQLite safe for several writers: WAL, foreign keys, and BEGIN IMMEDIATE.

    Every transaction takes the write lock when it starts, so two transactions never
    read the same audit head or queue row and then race to write (SQLite cannot upgrade
    a stale read snapshot; it fails with SQLITE_BUSY instead of waiting).
    """

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: sa.Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


# A pooled connection idle for longer than this is checked before use (see
# `_ping_idle_connections`); one returned to the pool more recently is used as it is.
PING_AFTER_IDLE_SECONDS = 10.0
IDLE_SINCE = "portal.idle_since"


def _ping_idle_connections(engine: Engine) -> None:
    """Check a pooled connection before handing it out, if it sat idle for a while.

    What `pool_pre_ping` does, without its round trip on every checkout: under load a
    connection goes from one request to the next within milliseconds, and the ping
    was one of the few statements each request made. A connection idle for longer may
    have been closed by a server restart, an idle timeout or a firewall; it is pinged,
    and replaced if the ping fails. A server restart within the last few seconds of a
    connection's use is noticed by that connection's next statement instead, which
    fails, and SQLAlchemy then replaces every pooled connection.
    """

    @event.listens_for(engine, "checkin")
    def on_checkin(dbapi_connection: Any, connection_record: Any) -> None:
        connection_record.info[IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def on_checkout(dbapi_connection: Any, connection_record: Any, connection_proxy: Any) -> None:
        idle_since = connection_record.info.get(IDLE_SINCE)
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            raise sa.exc.DisconnectionError("the pooled connection failed its ping") from error


def make_engine(url: str) -> Engine:
    """Create the engine for `url` with the settings each backend needs."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, pool_size=16)
        _configure_sqlite(engine)
        return engine
    engine = sa.create_engine(url, pool_size=10, max_overflow=20)
    _ping_idle_connections(engine)
    return engine


# Set in `Session.info` once the session's transaction has changed something, or queued
# a change (`note_write`); cleared when the transaction ends.
WROTE = "portal.wrote"


def note_write(session: Session) -> None:
    """Mark the session's transaction as one that changes something.

    Such a transaction is only ever committed by the view or command that made it; the
    end of the request rolls it back (see `Database.end_request`). Flushes and statements
    run through the session are noted by themselves; a write sent through
    `db.session.connection()` would not be, so writes never go that way.
    """
    session.info[WROTE] = True


def _note_flush(session: Session, flush_context: Any) -> None:
    note_write(session)


def _note_statement(state: ORMExecuteState) -> None:
    if not state.is_select:
        note_write(state.session)


def _forget_writes(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(WROTE, None)


class Database:
    """Engine plus a request-scoped session, bound to the app in `init_app`.

    Services use `db.session` and flush; the view or CLI command that called them commits
    once. The session is removed at the end of every app context.

    `exclusive_transactions` is true where every transaction holds the database's only
    write lock from its BEGIN (SQLite, see `_configure_sqlite`): there, even a transaction
    that only read should end as soon as its reads are done, or it blocks every other.
    """

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.exclusive_transactions = False
        self.session = scoped_session(sessionmaker(expire_on_commit=False))
        event.listen(self.session, "after_flush", _note_flush)
        event.listen(self.session, "do_orm_execute", _note_statement)
        event.listen(self.session, "after_transaction_end", _forget_writes)

    def init_app(self, app: Flask) -> None:
        if self.engine is not None:
            self.session.remove()
            self.engine.dispose()
        self.engine = make_engine(app.config["DATABASE_URL"])
        self.exclusive_transactions = self.engine.dialect.name == "sqlite"
        self.session.configure(bind=self.engine)
        app.teardown_appcontext(self.end_request)

    def end_request(self, exception: BaseException | None) -> None:
        """End the request's transaction and remove its session.

        A transaction that only read (the session lookup and a page's queries, or the
        reads after a view's commit) ends with COMMIT, which to the database is the same
        as ROLLBACK. To psycopg it is not: at every ROLLBACK it discards the statements it
        had prepared on the connection, since it cannot tell what the rollback undid. As
        nearly every request ended that way, no statement was ever executed often enough
        to be prepared, and PostgreSQL planned every one of them again (measured: 37 % of
        its CPU in the work loop). A transaction that wrote, or a request that failed,
        is rolled back as before: only the view or command decides to commit a change.
        """
        if self.session.registry.has():
            session = self.session()
            if exception is None and session.in_transaction() and not session.info.get(WROTE):
                try:
                    session.commit()
                except sa.exc.SQLAlchemyError:
                    # Nothing to lose (it only read); the connection is likely gone.
                    logger.warning("ending a read-only transaction failed", exc_info=True)
        self.session.remove()
