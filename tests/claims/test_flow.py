"""The path from idea to approved claim, and the money at each step, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mdfledger import claims, ledger, programs
from mdfledger.actor import Actor
from mdfledger.claims import ClaimState, RequestState
from mdfledger.claims.holds import payable_account
from mdfledger.errors import Conflict, Forbidden, NotFound, ValidationError
from mdfledger.ledger.models import Transfer
from tests.claims.conftest import NOW, Desk, claim_with_proof, propose, submit

LATER = datetime(2026, 9, 5, 15, 0, tzinfo=UTC)  # after the webinars, before the deadline


def money(session: Session, desk: Desk, partner=None) -> programs.Breakdown:
    partner = partner or desk.acme
    return programs.partner_breakdown(session, desk.finance, partner.id, desk.mdf.id, now=LATER)


def payable(session: Session, desk: Desk) -> int:
    account = payable_account(session, desk.finance, desk.mdf, desk.acme)
    return ledger.balance(session, account).credits_posted


def test_request_approval_holds_funds_until_the_claim_deadline(session: Session, desk: Desk):
    request = propose(session, desk)
    assert request.state == RequestState.SUBMITTED
    assert request.claim_deadline.isoformat() == "2026-10-29"  # ends 08-30 + 60 days
    assert money(session, desk).reserved == 0

    claims.approve_request(session, desk.finance, request.id, now=NOW)
    assert request.state == RequestState.APPROVED and request.approved_amount == 200_000
    after = money(session, desk)
    assert (after.reserved, after.available) == (200_000, 1_800_000)
    hold = session.scalars(select(Transfer).where(Transfer.ref_type == "fund_request")).one()
    assert hold.type == "pending" and hold.code == "claim.reservation"
    # Lapses at the end of 29 October in New York.
    assert hold.expires_at == datetime(2026, 10, 30, 4, 0, tzinfo=UTC)


def test_the_whole_path_with_a_partial_approval(session: Session, desk: Desk):
    request = propose(session, desk)
    claims.approve_request(session, desk.finance, request.id, now=NOW)
    claim = claim_with_proof(session, desk, request, amount=150_000, now=LATER)
    assert claim.state == ClaimState.DRAFT and claim.starts_on == request.starts_on
    submit(session, desk, desk.acme_user, claim.id, now=LATER)
    assert claim.state == ClaimState.IN_REVIEW
    # The request's hold moved to the claim: still 2,000.00 held, now without an expiry.
    assert money(session, desk).reserved == 200_000

    with pytest.raises(ValidationError, match="reason code"):
        claims.approve_claim(session, desk.finance, claim.id, amount=120_000, now=LATER)
    claims.approve_claim(
        session, desk.finance, claim.id, amount=120_000, reason_code="ineligible_cost",
        message="Catering is not reimbursable", now=LATER,
    )  # fmt: skip
    assert claim.state == ClaimState.APPROVED and claim.approved_amount == 120_000
    assert request.state == RequestState.CLAIMED
    after = money(session, desk)
    assert (after.reserved, after.approved, after.available) == (0, 120_000, 1_880_000)
    assert payable(session, desk) == 120_000
    assert ledger.verify_ledger(session).ok

    steps = [(e.event, e.to_state, e.reason_code) for e in claims.timeline(session, claim)]
    assert steps == [
        ("create", "draft", None),
        ("submit", "submitted", None),
        ("verify", "verifying", None),
        ("review", "in_review", None),
        ("approve", "approved", "ineligible_cost"),
    ]
    assert claims.timeline(session, claim)[-1].message == "Catering is not reimbursable"
    assert claims.timeline(session, claim)[-1].actor_name == "Fin"


def test_rejected_and_withdrawn_requests_hold_nothing(session: Session, desk: Desk):
    rejected = propose(session, desk)
    with pytest.raises(ValidationError, match="reason code"):
        claims.reject_request(session, desk.finance, rejected.id, reason_code="", message="no")
    claims.reject_request(
        session, desk.finance, rejected.id, reason_code="not_eligible", message="Not in Q3 plan"
    )
    withdrawn = propose(session, desk)
    claims.approve_request(session, desk.finance, withdrawn.id, now=NOW)
    claims.withdraw_request(session, desk.acme_user, withdrawn.id, now=NOW)
    assert (rejected.state, withdrawn.state) == ("rejected", "withdrawn")
    assert money(session, desk).reserved == 0
    assert money(session, desk).available == 2_000_000


def test_returned_request_is_edited_and_resubmitted(session: Session, desk: Desk):
    request = propose(session, desk)
    claims.return_request(
        session, desk.finance, request.id, reason_code="other", message="Which audience?"
    )
    claims.update_request(
        session, desk.acme_user, request.id, expected_outcome="CIO audience", now=NOW
    )
    claims.resubmit_request(session, desk.acme_user, request.id, message="Added audience", now=NOW)
    assert request.state == RequestState.SUBMITTED
    assert [e.event for e in claims.timeline(session, request)] == ["submit", "return", "resubmit"]


def test_requests_are_capped_by_the_activity_and_the_share(session: Session, desk: Desk):
    with pytest.raises(ValidationError, match=r"at most 3000.00 USD .*50% of the estimated cost"):
        propose(session, desk, amount=300_001)
    with pytest.raises(ValidationError, match=r"at most 5000.00 USD .*Webinar cap"):
        propose(session, desk, amount=600_000, estimated_cost=2_000_000)
    assert session.scalar(select(func.count()).select_from(claims.FundRequest)) == 0


def test_approval_cannot_exceed_what_the_partner_has(session: Session, desk: Desk):
    big = propose(session, desk, amount=500_000, estimated_cost=1_000_000)
    claims.approve_request(session, desk.finance, big.id, now=NOW)
    for _ in range(3):
        claims.approve_request(
            session, desk.finance, propose(session, desk, amount=500_000,
                                           estimated_cost=1_000_000).id, now=NOW,
        )  # fmt: skip
    last = propose(session, desk, amount=100_000)
    with pytest.raises(Conflict, match=r"Acme Networks has 0.00 USD available"):
        claims.approve_request(session, desk.finance, last.id, now=NOW)
    assert last.state == RequestState.SUBMITTED


def test_claims_over_the_reservation_or_after_the_deadline_are_refused(
    session: Session, desk: Desk
):
    request = propose(session, desk)
    claims.approve_request(session, desk.finance, request.id, amount=100_000,
                           reason_code="budget", message="Half now", now=NOW)  # fmt: skip
    with pytest.raises(ValidationError, match=r"at most 1000.00 USD .*pre-approved"):
        claim_with_proof(session, desk, request, amount=100_001, now=LATER)
    late = datetime(2026, 10, 30, 12, 0, tzinfo=UTC)
    with pytest.raises(ValidationError, match="claim deadline for this activity was 2026-10-29"):
        claim_with_proof(session, desk, request, amount=50_000, now=late)
    claim = claim_with_proof(session, desk, request, amount=50_000, now=LATER)
    with pytest.raises(Conflict, match="deadline was 2026-10-29"):
        submit(session, desk, desk.acme_user, claim.id, now=late)
    assert claim.state == ClaimState.DRAFT


def test_another_partners_request_and_claim_are_not_found(session: Session, desk: Desk):
    request = propose(session, desk)
    claims.approve_request(session, desk.finance, request.id, now=NOW)
    with pytest.raises(NotFound):
        claim_with_proof(session, desk, request, actor=desk.bolt_user, now=LATER)
    claim = claim_with_proof(session, desk, request, now=LATER)
    for call in (
        lambda: claims.get_claim(session, desk.bolt_user, claim.id),
        lambda: submit(session, desk, desk.bolt_user, claim.id, now=LATER),
        lambda: claims.withdraw_request(session, desk.bolt_user, request.id),
        lambda: claims.get_document(session, desk.bolt_user, claim.documents[0].id),
    ):
        with pytest.raises(NotFound):
            call()
    assert session.scalars(claims.claims_query(desk.bolt_user)).all() == []


def test_a_claim_in_another_currency_is_refused(session: Session, desk: Desk):
    with pytest.raises(ValidationError, match="MDF26 pays in USD: the claim cannot be in EUR"):
        claims.create_claim(
            session, desk.acme_user, program_id=desk.mdf.id, activity_id=desk.webinar.id,
            title="x", starts_on=NOW.date(), ends_on=NOW.date(), actual_cost=1000,
            claimed_amount=500, currency="EUR", now=NOW,
        )  # fmt: skip


def test_claims_need_the_proof_the_activity_asks_for(session: Session, desk: Desk):
    claim = claims.create_claim(
        session, desk.acme_user, program_id=desk.mdf.id, activity_id=desk.event.id,
        title="Booth", starts_on=NOW.date(), ends_on=NOW.date(), actual_cost=100_000,
        claimed_amount=50_000, now=NOW,
    )  # fmt: skip
    with pytest.raises(ValidationError, match="invoice, photos, the invoice's issuer"):
        submit(session, desk, desk.acme_user, claim.id, now=NOW)
    assert claim.state == ClaimState.DRAFT and money(session, desk).reserved == 0


def test_direct_claims_hold_funds_on_submission(session: Session, desk: Desk):
    claim = claim_with_proof(session, desk, amount=100_000)
    assert money(session, desk).reserved == 0
    submit(session, desk, desk.acme_user, claim.id, now=NOW)
    assert money(session, desk).reserved == 100_000
    claims.approve_claim(session, desk.finance, claim.id, now=NOW)
    assert (money(session, desk).approved, payable(session, desk)) == (100_000, 100_000)


def test_direct_claims_only_where_the_program_allows(session: Session, desk: Desk):
    programs.update_program(session, desk.finance, desk.mdf.id, direct_claims=False)
    with pytest.raises(Conflict, match="pays only pre-approved activities"):
        claim_with_proof(session, desk)


def test_withdrawing_or_rejecting_a_claim_gives_the_hold_back_to_its_request(
    session: Session, desk: Desk
):
    request = propose(session, desk)
    claims.approve_request(session, desk.finance, request.id, now=NOW)
    claim = claim_with_proof(session, desk, request, now=LATER)
    submit(session, desk, desk.acme_user, claim.id, now=LATER)
    claims.reject_claim(
        session, desk.finance, claim.id, reason_code="proof_mismatch",
        message="The invoice is for another event", now=LATER,
    )  # fmt: skip
    assert request.state == RequestState.APPROVED
    assert money(session, desk).reserved == 200_000
    # A new claim can be made against the request, and withdrawn again.
    second = claim_with_proof(session, desk, request, invoice=("Webinars", "INV-9", 300_000),
                              now=LATER)  # fmt: skip
    submit(session, desk, desk.acme_user, second.id, now=LATER)
    claims.withdraw_claim(session, desk.acme_user, second.id, now=LATER)
    assert money(session, desk).reserved == 200_000
    assert ledger.verify_ledger(session).ok


def test_return_keeps_the_money_held_and_resubmission_goes_back_to_review(
    session: Session, desk: Desk
):
    claim = claim_with_proof(session, desk, amount=100_000)
    submit(session, desk, desk.acme_user, claim.id, now=NOW)
    claims.return_claim(
        session, desk.finance, claim.id, reason_code="insufficient_proof",
        message="Add the attendee list", now=NOW,
    )  # fmt: skip
    assert claim.state == ClaimState.RETURNED and money(session, desk).reserved == 100_000
    claims.update_claim(session, desk.acme_user, claim.id, claimed_amount=90_000, now=NOW)
    submit(session, desk, desk.acme_user, claim.id, now=NOW)
    assert claim.state == ClaimState.IN_REVIEW and money(session, desk).reserved == 90_000


def test_finance_cannot_edit_and_partners_cannot_decide(session: Session, desk: Desk):
    claim = claim_with_proof(session, desk)
    with pytest.raises(Forbidden):
        claims.update_claim(session, desk.finance, claim.id, title="Mine now", now=NOW)
    submit(session, desk, desk.acme_user, claim.id, now=NOW)
    with pytest.raises(Forbidden, match="only finance"):
        claims.approve_claim(session, desk.acme_user, claim.id, now=NOW)
    with pytest.raises(Forbidden):
        claims.approve_claim(session, desk.auditor, claim.id, now=NOW)


def test_amounts_above_the_threshold_need_two_approvers(session: Session, desk: Desk):
    programs.update_program(session, desk.admin, desk.mdf.id, second_approval_above=100_000)
    claim = claim_with_proof(session, desk, amount=150_000)
    submit(session, desk, desk.acme_user, claim.id, now=NOW)
    claims.approve_claim(session, desk.finance, claim.id, now=NOW)
    assert claim.state == ClaimState.IN_REVIEW and claim.first_approval_amount == 150_000
    assert money(session, desk).approved == 0
    with pytest.raises(Conflict, match="already approved"):
        claims.approve_claim(session, desk.finance, claim.id, now=NOW)
    with pytest.raises(Conflict, match="approve the same amount"):
        claims.approve_claim(
            session, desk.finance2, claim.id, amount=100_000, reason_code="other",
            message="less", now=NOW,
        )  # fmt: skip
    claims.approve_claim(session, desk.finance2, claim.id, now=NOW)
    assert claim.state == ClaimState.APPROVED and money(session, desk).approved == 150_000


def test_per_approver_limits(session: Session, desk: Desk):
    claims.set_approval_limit(session, desk.admin, int(desk.finance.id), "USD", 100_000)
    claim = claim_with_proof(session, desk, amount=150_000)
    submit(session, desk, desk.acme_user, claim.id, now=NOW)
    with pytest.raises(Forbidden, match="above your approval limit"):
        claims.approve_claim(session, desk.finance, claim.id, now=NOW)
    claims.approve_claim(session, desk.finance2, claim.id, now=NOW)
    assert claim.state == ClaimState.APPROVED


def test_double_submits_with_one_key_happen_once(session: Session, desk: Desk):
    first = claims.create_request(
        session, desk.acme_user, program_id=desk.mdf.id, activity_id=desk.webinar.id,
        title="Once", starts_on=NOW.date(), ends_on=NOW.date(), estimated_cost=10_000,
        requested_amount=5_000, key="form-1", now=NOW,
    )  # fmt: skip
    again = claims.create_request(
        session, desk.acme_user, program_id=desk.mdf.id, activity_id=desk.webinar.id,
        title="Once", starts_on=NOW.date(), ends_on=NOW.date(), estimated_cost=10_000,
        requested_amount=5_000, key="form-1", now=NOW,
    )  # fmt: skip
    assert again.id == first.id
    for _ in range(2):
        claims.approve_request(session, desk.finance, first.id, key="click-1", now=NOW)
    assert money(session, desk).reserved == 5_000
    assert [e.event for e in claims.timeline(session, first)] == ["submit", "approve"]


def test_a_decision_on_a_stale_page_is_refused_with_what_changed(session: Session, desk: Desk):
    claim = claim_with_proof(session, desk)
    submit(session, desk, desk.acme_user, claim.id, now=NOW)
    seen = claim.version
    claims.return_claim(
        session, desk.finance2, claim.id, reason_code="other", message="Need more", version=seen
    )
    with pytest.raises(Conflict, match="changed since you opened it: it is now returned"):
        claims.approve_claim(session, desk.finance, claim.id, version=seen, now=NOW)
    assert money(session, desk).approved == 0


def test_duplicates_are_flagged_across_partners(session: Session, desk: Desk):
    first = claim_with_proof(session, desk, invoice=("Webinars, Inc.", "INV-0042", 300_000))
    submit(session, desk, desk.acme_user, first.id, now=NOW)
    assert not first.flagged
    same_invoice = claim_with_proof(
        session, desk, invoice=("webinars inc", "inv 0042", 300_000), actor=desk.bolt_user
    )
    submit(session, desk, desk.bolt_user, same_invoice.id, now=NOW)
    assert same_invoice.flagged
    assert [(f.kind, f.other_claim_id) for f in same_invoice.flags] == [("same_invoice", first.id)]
    assert "of another partner" in same_invoice.flags[0].detail

    same_file = claims.create_claim(
        session, desk.acme_user, program_id=desk.mdf.id, activity_id=desk.webinar.id,
        title="Again", starts_on=NOW.date(), ends_on=NOW.date(), actual_cost=100_000,
        claimed_amount=10_000, invoice_issuer="Other", invoice_number="7", invoice_total=100_000,
        now=NOW,
    )  # fmt: skip
    data = desk.store.open(first.documents[0].sha256)
    claims.add_document(session, desk.acme_user, desk.store, same_file.id, data=data,
                        filename="copy.pdf", kind="invoice", now=NOW)  # fmt: skip
    submit(session, desk, desk.acme_user, same_file.id, now=NOW)
    assert [f.kind for f in same_file.flags] == ["same_file"]
    assert "copy.pdf is also in CLM-" in same_file.flags[0].detail


def test_bulk_approve_takes_clean_claims_and_says_why_not_for_the_rest(
    session: Session, desk: Desk
):
    clean = claim_with_proof(session, desk, amount=10_000, invoice=("A", "1", 20_000))
    dup = claim_with_proof(session, desk, amount=10_000, invoice=("A", "1", 20_000),
                           actor=desk.bolt_user)  # fmt: skip
    draft = claim_with_proof(session, desk, amount=10_000, invoice=("B", "2", 20_000))
    submit(session, desk, desk.acme_user, clean.id, now=NOW)
    submit(session, desk, desk.bolt_user, dup.id, now=NOW)
    results = claims.bulk_approve(session, desk.finance, [clean.id, dup.id, draft.id, 999], now=NOW)
    assert [(r.claim_id, r.approved) for r in results] == [
        (clean.id, True), (dup.id, False), (draft.id, False), (999, False)
    ]  # fmt: skip
    assert "duplicate" in results[1].message and "draft" in results[2].message
    assert (clean.state, dup.state) == ("approved", "in_review")


def test_approved_requests_expire_after_the_deadline(session: Session, desk: Desk):
    request = propose(session, desk)
    claims.approve_request(session, desk.finance, request.id, now=NOW)
    assert claims.expire_requests(session, desk.finance, now=LATER) == 0
    after = datetime(2026, 10, 30, 5, 0, tzinfo=UTC)
    assert claims.expire_requests(session, desk.finance, now=after) == 1
    assert request.state == RequestState.EXPIRED
    assert money(session, desk).reserved == 0
    assert ledger.verify_ledger(session).ok


def test_the_timeline_is_append_only(session: Session, desk: Desk):
    request = propose(session, desk)
    session.commit()
    with pytest.raises(Exception, match="append-only"):
        session.execute(
            claims.ClaimEvent.__table__.update().values(message="rewritten")
            .where(claims.ClaimEvent.request_id == request.id)
        )  # fmt: skip
    session.rollback()


@pytest.mark.parametrize(
    ("table", "values", "constraint"),
    [
        ("fund_requests", {"state": "approved", "approved_amount": None}, "approved_has_amount"),
        ("claims", {"state": "approved", "approved_amount": None}, "approved_has_amount"),
        ("claims", {"state": "in_review", "submitted_at": None}, "submitted_at"),
        ("claim_documents", {"kind": "landing_page"}, "link_kind"),
    ],
)
def test_the_database_refuses_inconsistent_rows(
    session: Session, desk: Desk, table: str, values: dict, constraint: str
):
    request = propose(session, desk)
    claim = claim_with_proof(session, desk)
    ids = {"fund_requests": request.id, "claims": claim.id,
           "claim_documents": claim.documents[0].id}  # fmt: skip
    session.commit()
    target = claims.models.Base.metadata.tables[table]
    with pytest.raises(IntegrityError, match=constraint):
        session.execute(target.update().values(**values).where(target.c.id == ids[table]))
    session.rollback()


def test_a_settled_payout_marks_the_claim_paid_once(session: Session, desk: Desk):
    from mdfledger import background

    claim = claim_with_proof(session, desk, amount=150_000, now=LATER)
    submit(session, desk, desk.acme_user, claim.id, now=LATER)
    with pytest.raises(Conflict, match="cannot"):  # not approved yet: nothing to pay
        claims.mark_paid(session, claims.service.SYSTEM, claim.id, message="PO-1", now=LATER)
    claims.approve_claim(session, desk.finance, claim.id, now=LATER)
    # The payouts job is asked for once the approval commits.
    assert ("claim_approved", {"claim_id": claim.id}) in background.pending(session)

    payout = Actor.system("payouts")
    claims.mark_paid(session, payout, claim.id, message="Payout PO-7 settled", now=LATER)
    claims.mark_paid(session, payout, claim.id, message="Payout PO-7 settled", now=LATER)
    assert claim.state == ClaimState.PAID
    paid = [e for e in claims.timeline(session, claim) if e.event == "pay"]
    assert [(e.message, e.amount) for e in paid] == [("Payout PO-7 settled", 150_000)]
    with pytest.raises(Forbidden):
        claims.mark_paid(session, desk.acme_user, claim.id, message="mine", now=LATER)
