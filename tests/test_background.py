"""Jobs asked for in a transaction run after it commits: never after a rollback, never when
only a savepoint inside it is released."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from mdfledger import background


@pytest.fixture
def ran() -> list[tuple[str, dict]]:
    return []


@pytest.fixture
def sessions(ran: list) -> sessionmaker[Session]:
    factory = sessionmaker(create_engine("sqlite://"))
    background.install(factory, lambda job, kwargs: ran.append((job, kwargs)))
    return factory


def test_jobs_run_after_the_commit_not_when_a_savepoint_is_released(sessions, ran):
    with sessions() as session:
        session.execute(text("select 1"))
        with session.begin_nested():
            background.enqueue(session, "pay", claim_id=1)
        assert ran == []  # the savepoint is released, the transaction is still open
        background.enqueue(session, "tell", partner_id=2)
        session.commit()
    assert ran == [("pay", {"claim_id": 1}), ("tell", {"partner_id": 2})]


def test_a_rolled_back_savepoint_forgets_only_its_own_jobs(sessions, ran):
    with sessions() as session:
        background.enqueue(session, "before", n=1)
        session.execute(text("select 1"))
        with pytest.raises(RuntimeError), session.begin_nested():
            background.enqueue(session, "inside", n=2)
            raise RuntimeError("refused")
        background.enqueue(session, "after", n=3)
        session.commit()
    assert [job for job, _ in ran] == ["before", "after"]


def test_a_rollback_forgets_everything(sessions, ran):
    with sessions() as session:
        session.execute(text("select 1"))
        background.enqueue(session, "pay", claim_id=1)
        session.rollback()
        session.commit()
    assert ran == []
