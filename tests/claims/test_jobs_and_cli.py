"""Deadlines at period end, concurrent decisions on PostgreSQL, and the approval-limit command."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from mdfledger import claims, create_app, jobs, ledger, programs
from mdfledger.claims import ClaimState, RequestState
from mdfledger.errors import Conflict
from mdfledger.ledger.models import Transfer
from tests.claims.conftest import NOW, Desk, claim_with_proof, propose, submit

LATER = datetime(2026, 9, 5, 15, 0, tzinfo=UTC)
AFTER_DEADLINE = datetime(2026, 10, 30, 12, 0, tzinfo=UTC)


def test_period_end_expires_unclaimed_requests_and_stale_drafts(
    session: Session, desk: Desk, session_factory: sessionmaker[Session]
):
    unclaimed = propose(session, desk)
    claims.approve_request(session, desk.finance, unclaimed.id, now=NOW)
    draft = claim_with_proof(session, desk, amount=10_000)  # deadline 2026-10-09
    session.commit()

    run = jobs.run_period_end(session_factory, now=AFTER_DEADLINE)
    assert (run.requests_expired, run.claims_expired) == (1, 1)
    assert jobs.run_period_end(session_factory, now=AFTER_DEADLINE).requests_expired == 0
    with session_factory() as check:
        assert check.get(claims.FundRequest, unclaimed.id).state == RequestState.EXPIRED
        assert check.get(claims.Claim, draft.id).state == ClaimState.EXPIRED
        held = programs.partner_breakdown(
            check, desk.finance, desk.acme.id, desk.mdf.id, now=AFTER_DEADLINE
        )
        assert held.reserved == 0
        assert ledger.verify_ledger(check).ok


def test_a_claim_in_review_keeps_its_money_past_the_deadline(
    session: Session, desk: Desk, session_factory: sessionmaker[Session]
):
    request = propose(session, desk)
    claims.approve_request(session, desk.finance, request.id, now=NOW)
    claim = claim_with_proof(session, desk, request, now=LATER)
    submit(session, desk, desk.acme_user, claim.id, now=LATER)
    session.commit()
    jobs.run_period_end(session_factory, now=AFTER_DEADLINE)
    with session_factory() as later:
        assert later.get(claims.FundRequest, request.id).state == RequestState.APPROVED
        claims.approve_claim(later, desk.finance, claim.id, now=AFTER_DEADLINE)
        later.commit()
        assert later.get(claims.Claim, claim.id).approved_amount == 150_000


def test_two_finance_users_approving_at_once_one_wins(
    backend: str, session: Session, desk: Desk, session_factory: sessionmaker[Session]
):
    claim = claim_with_proof(session, desk, amount=100_000)
    submit(session, desk, desk.acme_user, claim.id, now=NOW)
    version = claim.version
    session.commit()
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def approve(actor) -> None:
        with session_factory() as mine:
            barrier.wait()
            try:
                claims.approve_claim(mine, actor, claim.id, version=version, now=NOW)
                mine.commit()
                outcomes.append("approved")
            except Conflict as error:
                mine.rollback()
                outcomes.append(error.message)

    threads = [threading.Thread(target=approve, args=(a,)) for a in (desk.finance, desk.finance2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(outcomes) == 2 and outcomes.count("approved") == 1
    (loser,) = [o for o in outcomes if o != "approved"]
    assert "it is now approved" in loser
    with session_factory() as check:
        posts = check.scalar(
            select(func.count()).select_from(Transfer).where(
                Transfer.type == "post", Transfer.ref_type == "claim"
            )
        )  # fmt: skip
        assert posts == 1


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Flask:
    return create_app({"database_url": database_url, "env": "test", "instance_path": tmp_path})


def test_users_limit_command(app: Flask, session: Session, desk: Desk):
    session.commit()
    runner = app.test_cli_runner()
    result = runner.invoke(args=["users", "limit", "fin@vendor.test", "usd", "2500.00"])
    assert result.exit_code == 0, result.output
    assert "fin@vendor.test may approve up to 2500.00 USD per claim" in result.output
    assert claims.approval_limit(session, desk.finance, "USD") == 250_000
    session.rollback()  # SQLite: let go of the write lock before the next command
    bad = runner.invoke(args=["users", "limit", "fin@vendor.test", "USD", "12.345"])
    assert bad.exit_code != 0 and "more than 2 decimal places for USD" in bad.output
    partner = runner.invoke(args=["users", "limit", "pat@acme.test", "USD", "10.00"])
    assert partner.exit_code != 0 and "only finance users and admins" in partner.output
    removed = runner.invoke(args=["users", "limit", "fin@vendor.test", "USD", "none"])
    assert "no limit" in removed.output
