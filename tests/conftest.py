"""Test databases: every test gets a fresh, migrated database, on SQLite and on PostgreSQL.

Migrations run once per session into a template (a SQLite file, a PostgreSQL template
database); each test gets a copy. PostgreSQL runs when MDFLEDGER_TEST_POSTGRES_URL names a
server (an admin URL, e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres); otherwise
those tests skip and say why. With MDFLEDGER_TEST_REQUIRE_SERVICES=1 (CI), a missing server
fails the run instead.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.orm import Session, sessionmaker

from mdfledger import migrate
from mdfledger.actor import Actor
from mdfledger.db import make_engine, make_session_factory

POSTGRES_ADMIN_URL = os.environ.get("MDFLEDGER_TEST_POSTGRES_URL", "")
REQUIRE_SERVICES = os.environ.get("MDFLEDGER_TEST_REQUIRE_SERVICES") == "1"
BACKENDS = ["sqlite", "postgresql"]


def _postgres_unavailable() -> str | None:
    if not POSTGRES_ADMIN_URL:
        return "PostgreSQL tests need MDFLEDGER_TEST_POSTGRES_URL (see README, Testing)"
    try:
        engine = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # any failure to connect means: not available here
        return f"PostgreSQL at MDFLEDGER_TEST_POSTGRES_URL is unreachable: {exc.__class__.__name__}"
    return None


def skip_or_fail(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (MDFLEDGER_TEST_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


class PostgresServer:
    """Creates throwaway databases from a migrated template on the test server."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = make_url(admin_url)
        self.admin = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        self.template = f"mdfledger_tpl_{os.getpid()}"
        self.dropper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="drop-db")

    def url(self, name: str) -> str:
        return self.admin_url.set(database=name).render_as_string(hide_password=False)

    def create(self, name: str, template: str | None = None) -> str:
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            suffix = f' TEMPLATE "{template}"' if template else ""
            conn.execute(text(f'CREATE DATABASE "{name}"{suffix}'))
        return self.url(name)

    def drop(self, name: str) -> None:
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def drop_later(self, name: str) -> None:
        # A DROP DATABASE waits for a checkpoint (~1 s here): one background thread does them
        # while the next tests run; the session's end waits for the last.
        self.dropper.submit(self.drop, name)


@pytest.fixture(autouse=True, scope="session")
def _cheap_password_hashing() -> Iterator[None]:
    """argon2id at its recommended cost takes ~0.3 s a hash here, and the suite creates
    hundreds of users: tests hash with the same algorithm at the lowest cost. Production code
    has no switch for this; only the test process replaces the hasher."""
    from argon2 import PasswordHasher

    from mdfledger.auth import rules

    real = rules._HASHER, rules._DUMMY_HASH
    rules._HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    rules._DUMMY_HASH = rules._HASHER.hash("not anyone's password")
    yield
    rules._HASHER, rules._DUMMY_HASH = real


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer | None]:
    if _postgres_unavailable():
        yield None
        return
    server = PostgresServer(POSTGRES_ADMIN_URL)
    migrate.upgrade(server.create(server.template))
    yield server
    server.dropper.shutdown(wait=True)
    server.drop(server.template)
    server.admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgresql" and (reason := _postgres_unavailable()):
        skip_or_fail(reason)
    return request.param


@pytest.fixture
def database_url(
    backend: str,
    tmp_path: Path,
    sqlite_template: Path,
    postgres_server: PostgresServer | None,
) -> Iterator[str]:
    """A fresh migrated database for this test, on the parametrized backend."""
    if backend == "sqlite":
        path = tmp_path / "test.sqlite3"
        shutil.copyfile(sqlite_template, path)
        yield f"sqlite:///{path}"
        return
    assert postgres_server is not None
    name = f"mdfledger_t_{uuid.uuid4().hex[:12]}"
    yield postgres_server.create(name, template=postgres_server.template)
    postgres_server.drop_later(name)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session_factory(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


@pytest.fixture
def session(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    with session_factory() as session:
        yield session


@pytest.fixture
def actor() -> Actor:
    return Actor("user", "finance-1", "finance")
