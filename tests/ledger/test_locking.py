"""Lock order on PostgreSQL: ledger writers never deadlock, and the expiry sweep survives a
reservation resolved while it was looking."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from mdfledger import ledger
from mdfledger.actor import Actor
from mdfledger.ledger import AccountKind, NewTransfer, TransferType


@pytest.fixture
def postgres_only(backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("row locks and their order only exist on PostgreSQL")


def _accounts(sessions: sessionmaker[Session], actor: Actor, names: list[str]) -> list[int]:
    with sessions() as session:
        funding = ledger.open_account(
            session, actor, key="funding", name="Funding", kind=AccountKind.FUNDING, currency="USD"
        ).id
        ids = [
            ledger.open_account(
                session, actor, key=n, name=n, kind=AccountKind.BUDGET, currency="USD"
            ).id
            for n in names
        ]
        ledger.execute(
            session, actor, [NewTransfer(f"seed-{i}", funding, i, 10_000, "funding") for i in ids]
        )
        session.commit()
    return ids


def test_two_calls_in_one_transaction_cannot_deadlock_with_another_writer(
    postgres_only: None, session_factory: sessionmaker[Session], actor: Actor
) -> None:
    """T1 writes (hi1, hi2) and stays open; T2 wants (lo1, hi1); T1 then writes (lo1, lo2).
    Locking accounts before the chain head let T1 and T2 wait on each other."""
    lo1, lo2, hi1, hi2 = _accounts(session_factory, actor, ["lo1", "lo2", "hi1", "hi2"])
    errors: list[BaseException] = []
    t1_first_done = threading.Event()

    def t1() -> None:
        try:
            with session_factory() as s:
                ledger.transfer(s, actor, NewTransfer("t1-a", hi1, hi2, 1, "move"))
                t1_first_done.set()
                threading.Event().wait(0.5)  # let T2 queue up behind T1
                ledger.transfer(s, actor, NewTransfer("t1-b", lo1, lo2, 1, "move"))
                s.commit()
        except BaseException as exc:
            errors.append(exc)
            t1_first_done.set()

    def t2() -> None:
        t1_first_done.wait(10)
        try:
            with session_factory() as s:
                ledger.transfer(s, actor, NewTransfer("t2", lo1, hi1, 1, "move"))
                s.commit()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=t1), threading.Thread(target=t2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    with session_factory() as s:
        assert ledger.verify_ledger(s).ok
        assert ledger.balance(s, hi1).posted == 10_000 - 1 + 1


def test_the_sweep_skips_a_reservation_posted_while_it_was_looking(
    postgres_only: None, session_factory: sessionmaker[Session], actor: Actor
) -> None:
    budget, fund = _accounts(session_factory, actor, ["budget", "fund"])
    start = datetime.now(UTC)
    deadline = start + timedelta(seconds=1)
    with session_factory() as s:
        holds = [
            ledger.reserve(
                s, actor, key=f"hold-{i}", debit_account_id=budget, credit_account_id=fund,
                amount=100, code="claim", expires_at=deadline, now=start,
            ).id
            for i in range(3)
        ]  # fmt: skip
        s.commit()
    poster = session_factory()
    # Posted just before the deadline, not yet committed: the sweep still sees it open.
    ledger.post(poster, actor, holds[0], key="post-0", now=deadline - timedelta(milliseconds=1))
    swept: list[object] = []
    sweeper = threading.Thread(
        target=lambda: swept.append(
            _sweep(session_factory, actor, deadline + timedelta(milliseconds=1))
        )
    )
    sweeper.start()
    threading.Event().wait(0.5)  # the sweep has picked its ids and waits for our locks
    poster.commit()
    poster.close()
    sweeper.join(30)
    assert swept == [[TransferType.EXPIRE.value] * 2]
    with session_factory() as s:
        assert ledger.balance(s, fund).credits_pending == 0
        assert ledger.verify_ledger(s).ok


def _sweep(sessions: sessionmaker[Session], actor: Actor, now: datetime) -> object:
    try:
        with sessions() as s:
            records = ledger.expire_overdue(s, actor, now=now)
            s.commit()
            return [r.type for r in records]
    except Exception as exc:  # reported to the test thread
        return exc
