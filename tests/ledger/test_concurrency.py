"""Concurrent writers on PostgreSQL: limits hold, nothing is lost, keys apply once, no deadlocks.

Each thread has its own session (its own connection and transaction), as concurrent requests
would. SQLite serialises writers with its database lock, so only PostgreSQL's row locks are
worth hammering here.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from mdfledger import ledger
from mdfledger.actor import Actor
from mdfledger.ledger import AccountKind, LimitExceeded, NewTransfer, PendingNotOpen
from mdfledger.ledger.models import ChainHead, Transfer

pytestmark = [
    pytest.mark.postgres,
    # Only the PostgreSQL variant of the `backend` fixture; it skips when no server is configured.
    pytest.mark.parametrize("backend", ["postgresql"], indirect=True),
]

THREADS = 8
ROUNDS = 40  # reservations each thread attempts
TIME_LIMIT = 60.0  # seconds; every loop and join is bounded by this
FUND = 4_000  # less than eight threads' concurrent holds (8 x up to 1000): some are refused


@dataclass
class Tally:
    """What one thread saw succeed, so the totals can be checked against the ledger."""

    reserved: int = 0
    posts: int = 0
    voids: int = 0
    posted: int = 0  # minor units posted out of the fund
    refusals: int = 0
    errors: list[BaseException] = field(default_factory=list)


def open_book(session: Session, actor: Actor, funds: int = 0) -> tuple[int, int, int]:
    """A budget, a limited partner fund holding `funds`, and claims payable; committed."""
    budget, fund, claims = (
        ledger.open_account(
            session, actor, key=key, name=key, kind=kind, currency="USD",
            debits_must_not_exceed_credits=kind == AccountKind.PARTNER_FUND,
        ).id
        for key, kind in (
            ("budget", AccountKind.BUDGET),
            ("fund", AccountKind.PARTNER_FUND),
            ("claims", AccountKind.CLAIMS_PAYABLE),
        )
    )  # fmt: skip
    if funds:
        ledger.transfer(session, actor, NewTransfer("allocate", budget, fund, funds, "allocation"))
    session.commit()
    return budget, fund, claims


def run_threads(target: Callable[[int], None], count: int = THREADS) -> None:
    threads = [threading.Thread(target=target, args=(n,), daemon=True) for n in range(count)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + TIME_LIMIT + 30
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    stuck = [t.name for t in threads if t.is_alive()]
    assert not stuck, f"threads still running (blocked on a lock?): {stuck}"


def test_concurrent_reservations_never_overdraw_a_fund(
    session_factory: sessionmaker[Session], session: Session, actor: Actor
) -> None:
    _budget, fund, claims = open_book(session, actor, FUND)

    tallies = [Tally() for _ in range(THREADS)]
    barrier = threading.Barrier(THREADS + 1)  # the workers and the watcher start together
    done = threading.Event()
    stop_at = time.monotonic() + TIME_LIMIT
    overdrawn: list[tuple[int, int, int]] = []
    samples = 0

    def worker(n: int) -> None:
        tally, rng = tallies[n], random.Random(n)
        try:
            with session_factory() as s:
                barrier.wait(timeout=30)
                for i in range(ROUNDS):
                    if time.monotonic() > stop_at:
                        break
                    amount = rng.randint(200, 1000)
                    try:
                        hold = ledger.reserve(
                            s, actor, key=f"w{n}-{i}", debit_account_id=fund,
                            credit_account_id=claims, amount=amount, code="preapproval",
                        )  # fmt: skip
                        s.commit()
                    except LimitExceeded:
                        s.rollback()
                        tally.refusals += 1  # no retry: the fund was (momentarily) full
                        continue
                    tally.reserved += 1
                    if rng.random() < 0.3:  # a claim approved for part of the hold
                        part = rng.randint(1, max(1, amount // 10))
                        ledger.post(s, actor, hold.id, key=f"w{n}-{i}-post", amount=part)
                        s.commit()
                        tally.posts += 1
                        tally.posted += part
                    else:  # rejected or withdrawn: release it
                        ledger.void(s, actor, hold.id, key=f"w{n}-{i}-void")
                        s.commit()
                        tally.voids += 1
        except BaseException as exc:  # a deadlock or anything unexpected: report, don't hang
            tally.errors.append(exc)

    def watcher() -> None:
        # Reads the fund while the workers write: committed balances never break its limit.
        nonlocal samples
        with session_factory() as s:
            barrier.wait(timeout=30)
            while not done.is_set() and time.monotonic() < stop_at:
                b = ledger.balance(s, fund)
                s.rollback()
                samples += 1
                if b.debits_pending + b.debits_posted > b.credits_posted:
                    overdrawn.append((b.debits_pending, b.debits_posted, b.credits_posted))
                time.sleep(0.002)

    watch = threading.Thread(target=watcher, daemon=True)
    watch.start()
    run_threads(worker)
    done.set()
    watch.join(timeout=30)

    errors = [repr(e) for t in tallies for e in t.errors]
    assert not errors, f"unexpected errors (deadlock?): {errors}"
    assert not overdrawn, f"the fund was overdrawn: {overdrawn[:5]}"
    assert samples > 0
    reserved = sum(t.reserved for t in tallies)
    refusals = sum(t.refusals for t in tallies)
    posted = sum(t.posted for t in tallies)
    resolved = sum(t.posts + t.voids for t in tallies)
    # Contention must have happened both ways, or the test proved nothing.
    assert reserved > THREADS and refusals > 0, (reserved, refusals)
    assert resolved == reserved  # every hold was posted or voided

    session.expire_all()
    f, c = ledger.balance(session, fund), ledger.balance(session, claims)
    # No lost update: the maintained balances are exactly what the threads saw succeed.
    assert f.balances.as_tuple() == (0, posted, 0, FUND)
    assert c.balances.as_tuple() == (0, 0, 0, posted)
    assert f.available == FUND - posted >= 0
    head = session.execute(select(ChainHead)).scalar_one()
    assert head.last_transfer_id == 1 + reserved + resolved  # the allocation, holds, resolutions
    report = ledger.verify_ledger(session)
    assert report.ok, report.problems


def test_concurrent_replays_of_one_key_write_one_transfer(
    session_factory: sessionmaker[Session], session: Session, actor: Actor
) -> None:
    budget, fund, _claims = open_book(session, actor)
    for round_ in range(5):  # several rounds: a race may not show the first time
        key = f"allocation-{round_}"
        command = NewTransfer(key, budget, fund, 500, "allocation")
        barrier = threading.Barrier(THREADS)
        results: list[ledger.TransferRecord | None] = [None] * THREADS
        errors: list[BaseException] = []

        def worker(n: int, command: NewTransfer = command, barrier=barrier, results=results,
                   errors=errors) -> None:  # fmt: skip
            try:
                with session_factory() as s:
                    barrier.wait(timeout=30)
                    results[n] = ledger.transfer(s, actor, command)
                    s.commit()
            except BaseException as exc:  # an IntegrityError on the key would land here
                errors.append(exc)

        run_threads(worker)
        assert not errors, [repr(e) for e in errors]
        assert all(r is not None for r in results)
        ids = {r.id for r in results if r is not None}
        assert len(ids) == 1, f"one key, several transfers: {ids}"
        assert sum(not r.replayed for r in results if r is not None) == 1  # one wrote, 7 replayed
        count = session.scalar(
            select(func.count()).select_from(Transfer).where(Transfer.key == key)
        )
        assert count == 1
        session.rollback()

    assert ledger.balance(session, fund).balances.as_tuple() == (0, 0, 0, 5 * 500)
    report = ledger.verify_ledger(session)
    assert report.ok, report.problems


def test_concurrent_resolutions_of_one_reservation_apply_once(
    session_factory: sessionmaker[Session], session: Session, actor: Actor
) -> None:
    """Eight threads post (for different amounts) or void the same hold: exactly one wins."""
    _budget, fund, claims = open_book(session, actor, 10_000)
    posted = 0
    for round_ in range(5):
        hold = ledger.reserve(
            session, actor, key=f"hold-{round_}", debit_account_id=fund,
            credit_account_id=claims, amount=800, code="preapproval",
        )  # fmt: skip
        session.commit()
        barrier = threading.Barrier(THREADS)
        won: list[tuple[str, int]] = []
        refused: list[int] = []
        errors: list[BaseException] = []

        def worker(n: int, hold_id: int = hold.id, round_: int = round_, barrier=barrier,
                   won=won, refused=refused, errors=errors) -> None:  # fmt: skip
            try:
                with session_factory() as s:
                    barrier.wait(timeout=30)
                    try:
                        if n % 2:
                            record = ledger.void(s, actor, hold_id, key=f"r{round_}-{n}")
                        else:
                            amount = 100 * (n + 1)
                            record = ledger.post(
                                s, actor, hold_id, key=f"r{round_}-{n}", amount=amount
                            )
                        s.commit()
                        won.append((record.type, record.amount))
                    except PendingNotOpen:
                        s.rollback()
                        refused.append(n)
            except BaseException as exc:
                errors.append(exc)

        run_threads(worker)
        assert not errors, [repr(e) for e in errors]
        assert len(won) == 1, f"a hold resolved {len(won)} times: {won}"
        assert len(refused) == THREADS - 1
        kind, amount = won[0]
        posted += amount if kind == "post" else 0

    session.expire_all()
    assert ledger.balance(session, fund).balances.as_tuple() == (0, posted, 0, 10_000)
    assert ledger.balance(session, claims).balances.as_tuple() == (0, 0, 0, posted)
    report = ledger.verify_ledger(session)
    assert report.ok, report.problems
