"""Sessions: on SQLite writers take the write lock up front; readers never block them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from mdfledger import migrate
from mdfledger.db import make_engine, make_session_factory


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'locks.sqlite3'}"
    migrate.upgrade(url)
    return url


def test_a_writing_session_holds_the_write_lock_from_its_first_statement(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    with make_session_factory(engine)() as session:
        session.execute(text("SELECT 1"))  # a read, yet the write lock is taken
        other = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), timeout=0.1)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
        other.close()
    engine.dispose()


def test_a_read_only_session_lets_writers_through(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    with make_session_factory(engine, read_only=True)() as reader:
        reader.execute(text("SELECT count(*) FROM ledger_transfers")).scalar_one()
        with make_session_factory(engine)() as writer:
            writer.execute(text("UPDATE ledger_chain SET last_created_at = NULL"))
            writer.commit()
    engine.dispose()
