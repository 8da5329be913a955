"""Declarative base, constraint naming, column types, engines and sessions."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from mdfledger.clock import ensure_utc

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BIGINT on PostgreSQL; INTEGER on SQLite, where only INTEGER PRIMARY KEY aliases the rowid.
BigInt = BigInteger().with_variant(sqlite.INTEGER(), "sqlite")


def one_of(column: str, values: Iterable[str]) -> str:
    """SQL for a CHECK that `column` holds one of `values` (an enum's members, say)."""
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in Python; timestamptz on PostgreSQL, UTC text on SQLite."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.TIMESTAMP(timezone=True))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        value = ensure_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide when transactions begin (see "begin" below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA busy_timeout = 30000")
        # A 64 MiB page cache and rarer checkpoints: measured +30% batched ledger writes near
        # 1M transfers (docs/benchmarks.md), for a WAL file of some tens of MB.
        cursor.execute("PRAGMA cache_size = -65536")
        cursor.execute("PRAGMA wal_autocheckpoint = 10000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Writers take the write lock up front: a deferred transaction that read first could
        # not upgrade safely, and the ledger's limit checks rely on nobody writing in between.
        # Read-only sessions begin deferred, so a long export never blocks writers.
        read_only = connection.get_execution_options().get(READ_ONLY_OPTION, False)
        connection.exec_driver_sql("BEGIN DEFERRED" if read_only else "BEGIN IMMEDIATE")


def make_engine(url: str, *, echo: bool = False) -> Engine:
    kwargs: dict[str, Any] = {"echo": echo, "future": True}
    if url.startswith("postgresql"):
        kwargs.update(pool_pre_ping=True, pool_size=10, max_overflow=20)
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine)
    return engine


READ_ONLY_OPTION = "mdfledger_read_only"


def make_session_factory(engine: Engine, *, read_only: bool = False) -> sessionmaker[Session]:
    """Sessions that write (the default) or only read: statements, exports, verification."""
    bind = engine
    if read_only:
        options: dict[str, Any] = {READ_ONLY_OPTION: True}
        if engine.dialect.name == "postgresql":
            # One snapshot for the whole transaction: a statement's opening balance, its lines
            # and its closing balance (or everything verify reads) agree with each other.
            options.update(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        bind = engine.execution_options(**options)
    return sessionmaker(bind=bind, expire_on_commit=False, autoflush=True)


# Every feature's models module, so Alembic and the schema check see the whole schema.
MODEL_MODULES = (
    "mdfledger.ledger.models",
    "mdfledger.programs.models",
    "mdfledger.auth.models",
    "mdfledger.audit.models",
    "mdfledger.claims.models",
    "mdfledger.verification.models",
    "mdfledger.payouts.models",
    "mdfledger.engagement.models",
    "mdfledger.engagement.signal_models",
    "mdfledger.exports.models",
)


def load_models() -> MetaData:
    import importlib

    for name in MODEL_MODULES:
        importlib.import_module(name)
    return Base.metadata


# --- Flask integration: one engine per app, one session per request, command or job -----------


def init_app(app: Any, database_url: str, *, echo: bool = False) -> None:
    engine = make_engine(database_url, echo=echo)
    app.extensions["mdfledger.db"] = make_session_factory(engine)
    app.extensions["mdfledger.db.read"] = make_session_factory(engine, read_only=True)

    @app.teardown_appcontext
    def _close_session(_exc: BaseException | None) -> None:
        from flask import g

        for name in ("db_session", "db_read_session"):
            session = g.pop(name, None)
            if session is not None:
                session.close()  # rolls back whatever the view did not commit


def session_factory(app: Any = None) -> sessionmaker[Session]:
    from flask import current_app

    return (app or current_app).extensions["mdfledger.db"]


def get_session() -> Session:
    """The writing session of the current request or CLI command; the caller commits."""
    from flask import g

    if "db_session" not in g:
        g.db_session = session_factory()()
    return g.db_session


def get_read_session() -> Session:
    """A session for reads only (pages, exports, verification): it never blocks writers."""
    from flask import current_app, g

    if "db_read_session" not in g:
        g.db_read_session = current_app.extensions["mdfledger.db.read"]()
    return g.db_read_session
