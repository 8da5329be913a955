"""The demo's fund requests and claims: every state, real proof files, two approvers, duplicates,
dates that make sense, and money that adds up. On SQLite and PostgreSQL."""

from __future__ import annotations

import shutil
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from mdfledger import audit, auth, claims, create_app, demo, ledger, programs
from mdfledger.actor import Actor
from mdfledger.claims import ClaimState, RequestState
from mdfledger.clock import utcnow
from mdfledger.db import make_engine, make_session_factory
from mdfledger.errors import Conflict
from mdfledger.ledger.models import Account
from mdfledger.storage import LocalStore
from tests.conftest import BACKENDS, PostgresServer, _postgres_unavailable, skip_or_fail


def _actor(session: Session, email: str) -> Actor:
    user = session.scalars(select(auth.User).where(auth.User.email == email)).one()
    return Actor("user", str(user.id), user.role, user.partner_id)


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> LocalStore:
    return LocalStore(tmp_path_factory.mktemp("proof"))


@pytest.fixture(scope="module", params=BACKENDS)
def seeded_engine(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    sqlite_template: Path,
    postgres_server: PostgresServer | None,
    demo_store: LocalStore,
) -> Iterator[Engine]:
    """The demo, seeded once per backend for this module's read-mostly tests."""
    if request.param == "postgresql":
        if reason := _postgres_unavailable():
            skip_or_fail(reason)
        assert postgres_server is not None
        name = f"mdfledger_demo_{uuid.uuid4().hex[:12]}"
        url = postgres_server.create(name, template=postgres_server.template)
    else:
        path = tmp_path_factory.mktemp("demo") / "demo.sqlite3"
        shutil.copyfile(sqlite_template, path)
        url = f"sqlite:///{path}"
    engine = make_engine(url)
    with make_session_factory(engine)() as session:
        demo.seed(session, demo_store)
        session.commit()
    yield engine
    engine.dispose()
    if request.param == "postgresql":
        assert postgres_server is not None
        postgres_server.drop_later(name)


@pytest.fixture
def session(seeded_engine: Engine) -> Iterator[Session]:
    """A session on the seeded demo (this module's, not conftest's fresh database); what a
    test changes is rolled back."""
    with make_session_factory(seeded_engine)() as session:
        yield session
        session.rollback()


# Every claim state but those a claim passes through at once (submit lands it in review).
CLAIM_STATES = {s.value for s in ClaimState} - {"submitted", "verifying"}


def _by_state(session: Session, model: type[claims.FundRequest | claims.Claim]) -> Counter:
    return Counter(session.scalars(select(model.state)))


def test_requests_and_claims_in_every_state(session: Session) -> None:
    requests, claimed = _by_state(session, claims.FundRequest), _by_state(session, claims.Claim)
    assert set(requests) == {s.value for s in RequestState}
    assert set(claimed) == CLAIM_STATES
    assert claimed["in_review"] >= 10  # a queue worth looking at
    assert requests["submitted"] >= 3  # and requests awaiting a decision
    assert ledger.verify_ledger(session).ok
    assert audit.verify_audit(session).ok


def test_the_demo_partner_user_has_claims_in_several_states(session: Session) -> None:
    pat = _actor(session, f"partner@{demo.EMAIL_DOMAIN}")
    mine = session.scalars(claims.claims_query(pat)).all()
    assert {c.state for c in mine} >= {
        "draft", "in_review", "returned", "paid", "expired",
    }  # fmt: skip
    assert {c.partner_id for c in mine} == {pat.partner_id}
    partial = [c for c in mine if c.approved_amount and c.approved_amount < c.claimed_amount]
    assert partial and partial[0].reason_code == "ineligible_cost" and partial[0].reason
    returned = next(c for c in mine if c.state == "returned")
    assert claims.timeline(session, returned)[-1].reason_code == "insufficient_proof"
    draft = next(c for c in mine if c.state == "draft")
    assert claims.missing_proof(session, draft)  # the partner has something to do
    requests = session.scalars(claims.requests_query(pat)).all()
    assert {r.state for r in requests} >= {"submitted", "returned", "approved", "claimed"}
    assert claims.claimable_requests(session, pat)  # "Claim this" has something to claim


def test_duplicates_are_flagged_across_partners(session: Session) -> None:
    flagged = session.scalars(select(claims.Claim).where(claims.Claim.flagged)).all()
    assert len(flagged) >= 2
    across = [
        (claim, flag)
        for claim in flagged
        for flag in claim.flags
        if flag.kind == "same_invoice"
        and session.get(claims.Claim, flag.other_claim_id).partner_id != claim.partner_id
    ]
    assert across, "one invoice claimed by two partners"
    claim, flag = across[0]
    other = session.get(claims.Claim, flag.other_claim_id)
    assert (claim.state, other.state) == ("in_review", "in_review")
    assert claim.invoice_key == other.invoice_key


def test_a_large_claim_waits_for_the_second_finance_user(session: Session) -> None:
    mdf = session.scalars(select(programs.Program).where(programs.Program.kind == "mdf")).one()
    assert mdf.second_approval_above == demo.SECOND_APPROVAL_ABOVE
    waiting = session.scalars(
        select(claims.Claim).where(claims.Claim.first_approval_by.is_not(None))
    ).one()
    assert waiting.state == "in_review" and waiting.claimed_amount > mdf.second_approval_above
    finance, finance2 = (
        _actor(session, f"{name}@{demo.EMAIL_DOMAIN}") for name in ("finance", "finance2")
    )
    assert waiting.first_approval_by == finance.label
    with pytest.raises(Conflict, match="second approver must be someone else"):
        claims.approve_claim(session, finance, waiting.id, amount=waiting.first_approval_amount)
    claims.approve_claim(session, finance2, waiting.id, amount=waiting.first_approval_amount)
    assert waiting.state == "approved"
    # An earlier large claim went through both approvers.
    done = session.scalars(
        select(claims.Claim).where(
            claims.Claim.state.in_(["approved", "paid"]),
            claims.Claim.claimed_amount > mdf.second_approval_above,
            claims.Claim.id != waiting.id,
        )
    ).one()
    approvals = [e.actor_name for e in claims.timeline(session, done) if e.event == "approve"]
    assert len(approvals) == 2 and len(set(approvals)) == 2


def test_proof_files_are_in_the_store(session: Session, demo_store: LocalStore) -> None:
    documents = session.scalars(select(claims.Document)).all()
    files = [d for d in documents if not d.is_link]
    assert {d.media_type for d in files} == {"application/pdf", "image/png", "text/csv"}
    assert {d.kind for d in documents} >= {"invoice", "photo", "lead_list", "landing_page"}
    for document in files:
        assert document.sha256 is not None
        data = demo_store.open(document.sha256)  # checks the bytes against their hash
        assert len(data) == document.size
    invoice = next(d for d in files if d.kind == "invoice")
    assert demo_store.open(invoice.sha256).startswith(b"%PDF-")
    # Everything sent for review has the proof its activity asks for.
    for claim in session.scalars(select(claims.Claim).where(claims.Claim.state == "in_review")):
        assert claims.missing_proof(session, claim) == []


def test_the_dates_tell_a_possible_story(session: Session) -> None:
    now = utcnow()
    for claim in session.scalars(select(claims.Claim)):
        assert claim.created_at < now
        if claim.submitted_at is not None:
            submitted = claim.submitted_at.date()
            assert claim.starts_on <= submitted <= claim.claim_deadline, claim.title
        events = claims.timeline(session, claim)
        assert [e.at for e in events] == sorted(e.at for e in events)
    for request in session.scalars(select(claims.FundRequest)):
        assert request.submitted_at < now
        if request.state == "approved":  # what still holds money has a deadline ahead
            assert request.claim_deadline >= now.date() - timedelta(days=1)
    expired = session.scalars(select(claims.Claim).where(claims.Claim.state == "expired")).one()
    assert claims.timeline(session, expired)[-1].actor_name == "mdfledger (period-end)"
    # The queue has claims of all ages: some waiting over 30 days.
    finance = _actor(session, f"finance@{demo.EMAIL_DOMAIN}")
    old = claims.review_queue(finance, claims.QueueFilter(older_than_days=30))
    assert session.scalars(old).all()


def test_the_ledger_holds_what_the_requests_and_claims_say(session: Session) -> None:
    """Held: each approved request's reservation (moved to its claim while the claim waits or
    is back with the partner) and each waiting direct claim's amount; nothing else."""
    open_holds = session.scalar(
        select(func.coalesce(func.sum(claims.Hold.amount), 0)).where(claims.Hold.open)
    )
    expected = sum(
        r.approved_amount or 0
        for r in session.scalars(
            select(claims.FundRequest).where(claims.FundRequest.state == "approved")
        )
    ) + sum(
        c.claimed_amount
        for c in session.scalars(
            select(claims.Claim).where(
                claims.Claim.request_id.is_(None), claims.Claim.state.in_(["in_review", "returned"])
            )
        )
    )
    assert open_holds == expected
    pending = session.scalar(
        select(func.coalesce(func.sum(Account.debits_pending), 0)).where(
            Account.kind == "partner_fund"
        )
    )
    assert pending == expected
    assert ledger.verify_ledger(session).ok


@pytest.mark.parametrize(
    "now",
    [
        datetime(2027, 1, 1, 5, 30, tzinfo=UTC),  # New Year in UTC, still 2026 in New York
        datetime(2027, 4, 1, 15, 0, tzinfo=UTC),  # a quarter's first day: no sales to import yet
        datetime(2026, 9, 30, 23, 50, tzinfo=UTC),  # the last minutes of a quarter
        datetime(2028, 2, 29, 12, 0, tzinfo=UTC),  # a leap day
    ],
)
def test_the_story_fits_any_day(sqlite_template: Path, tmp_path: Path, now: datetime) -> None:
    # The calendar does not depend on the database: SQLite only.
    path = tmp_path / "calendar.sqlite3"
    shutil.copyfile(sqlite_template, path)
    engine = make_engine(f"sqlite:///{path}")
    try:
        with make_session_factory(engine)() as session:
            book = demo.seed(session, LocalStore(tmp_path / "proof"), now=now)
            assert set(book.requests) == {s.value for s in RequestState}
            assert set(book.claims) == CLAIM_STATES
            assert ledger.verify_ledger(session).ok
            assert audit.verify_audit(session).ok
    finally:
        engine.dispose()


def test_the_demo_seeds_once(session: Session, demo_store: LocalStore) -> None:
    assert demo.is_seeded(session)
    with pytest.raises(Conflict, match="already has programs"):
        demo.seed(session, demo_store)


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Flask:
    return create_app({"database_url": database_url, "env": "test", "instance_path": tmp_path})


def test_the_command_stores_proof_in_the_app_store_and_skips_when_seeded(
    app: Flask, tmp_path: Path, session_factory: sessionmaker[Session]
) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(args=["demo", "--if-empty"])
    assert result.exit_code == 0, result.output
    assert f"finance2@{demo.EMAIL_DOMAIN}" in result.output
    with session_factory() as session:
        first = session.scalars(select(claims.Document).where(claims.Document.sha256.is_not(None)))
        assert LocalStore(tmp_path / "proof").exists(first.first().sha256)
        counts = session.scalar(select(func.count()).select_from(claims.Claim))
    again = runner.invoke(args=["demo", "--if-empty"])
    assert again.exit_code == 0 and "already has data" in again.output
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(claims.Claim)) == counts
