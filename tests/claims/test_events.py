"""Claims tell partners what happened through the engagement outbox, in the same transaction."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from mdfledger import claims
from mdfledger.actor import Actor
from mdfledger.engagement import Event
from tests.claims.conftest import Desk, claim_with_proof, submit

LATER = datetime(2026, 9, 5, 15, 0, tzinfo=UTC)


def events(session: Session) -> list[Event]:
    claim_events = select(Event).where(Event.type.startswith("claim.")).order_by(Event.id)
    return list(session.scalars(claim_events))


def test_submit_approve_and_pay_each_tell_the_partner(session: Session, desk: Desk):
    claim = claim_with_proof(session, desk, amount=150_000, now=LATER)
    submit(session, desk, desk.acme_user, claim.id, now=LATER)
    claims.approve_claim(session, desk.finance, claim.id, now=LATER)
    claims.mark_paid(
        session, Actor.system("payouts"), claim.id, message="Payout 7 settled",
        reference="PO-7", now=LATER,
    )  # fmt: skip
    written = events(session)
    assert [e.type for e in written] == ["claim.submitted", "claim.approved", "claim.paid"]
    assert {e.partner_id for e in written} == {desk.acme.id}
    assert {e.program_id for e in written} == {desk.mdf.id}
    approved, paid = written[1], written[2]
    assert approved.data["reference"] == claim.reference and approved.data["approved"] == 150_000
    assert paid.data["payout_reference"] == "PO-7" and paid.data["amount"] == 150_000
    assert "1,500.00 USD" in paid.subject + paid.text


def test_a_rejection_carries_its_reason(session: Session, desk: Desk):
    claim = claim_with_proof(session, desk, amount=150_000, now=LATER)
    submit(session, desk, desk.acme_user, claim.id, now=LATER)
    claims.reject_claim(
        session, desk.finance, claim.id, reason_code="proof_mismatch",
        message="The invoice is for another event", now=LATER,
    )  # fmt: skip
    rejected = events(session)[-1]
    assert rejected.type == "claim.rejected"
    assert rejected.data["reason"] == "The invoice is for another event"
    assert "The invoice is for another event" in rejected.text


def test_nothing_is_told_when_the_change_rolls_back(session: Session, desk: Desk):
    claim = claim_with_proof(session, desk, amount=150_000, now=LATER)
    session.commit()
    submit(session, desk, desk.acme_user, claim.id, now=LATER)
    assert events(session)
    session.rollback()
    assert events(session) == []
