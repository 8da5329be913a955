"""Payout runs with the manual provider: details and holds, immediate and scheduled runs, the
ledger after each step, failures with backoff, flagging, cancelling, the payment file.
On SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from mdfledger import audit, claims, ledger, payouts, programs
from mdfledger.errors import Conflict, Forbidden, NotFound, ValidationError
from mdfledger.ledger import NewTransfer
from mdfledger.payouts import PayoutState
from mdfledger.payouts.models import PayoutClaim, PayoutEvent
from mdfledger.payouts.service import accounts
from mdfledger.programs import rules as program_rules
from tests.payouts.conftest import (
    IBAN,
    NOW,
    SYSTEM,
    Desk,
    approved_claim,
    bank_details,
    money,
)

MANUAL = {"manual": payouts.ManualProvider()}


def test_a_payout_moves_payable_to_transit_then_settled_and_pays_the_claims(
    session: Session, desk: Desk
) -> None:
    first = approved_claim(session, desk, amount=150_000)
    second = approved_claim(session, desk, amount=50_000)
    bank_details(session, desk, desk.acme)
    assert money(session, desk.mdf, desk.acme).payable == 200_000

    run = payouts.create_payouts(session, desk.finance, now=NOW)
    [payout] = run.payouts
    assert (payout.amount, payout.currency, payout.state) == (200_000, "USD", "pending")
    assert payout.provider == "manual" and payout.attempt == 1
    assert payout.idempotency_key == f"mdfledger-payout-{payout.id}-1"
    assert payout.transfer_group == f"payout-{payout.id}"
    assert payout.destination == "IBAN \u2022\u2022\u2022\u2022 3000"  # never the full number
    assert [c.id for _, c in payouts.payout_claims(session, payout)] == [first.id, second.id]
    assert money(session, desk.mdf, desk.acme) == (0, 200_000, 0)
    # Nothing is payable any more, so a second run pays nothing twice.
    assert payouts.create_payouts(session, desk.finance, now=NOW).payouts == []

    payouts.mark_sent(session, desk.finance, payout.id, reference="BANK-2026-0815", now=NOW)
    assert payout.state == "sent" and payout.provider_ref == "BANK-2026-0815"
    assert money(session, desk.mdf, desk.acme) == (0, 200_000, 0)

    payouts.mark_settled(session, desk.finance, payout.id, now=NOW)
    assert payout.state == "settled" and payout.settled_at == NOW
    assert money(session, desk.mdf, desk.acme) == (0, 0, 200_000)
    for claim in (first, second):
        session.refresh(claim)
        assert claim.state == "paid"
        assert claims.timeline(session, claim)[-1].message.startswith(f"Paid by {payout.reference}")
    # The partner's breakdown counts it as paid.
    breakdown = programs.partner_breakdown(
        session, desk.acme_user, desk.acme.id, desk.mdf.id, now=NOW
    )
    assert breakdown.paid == 200_000
    assert [e.event for e in payouts.timeline(session, payout)] == ["create", "send", "settle"]
    actions = {e.action for e in session.scalars(select(audit.AuditEntry))}
    assert {"payout.create", "payout.send", "payout.settle", "claim.pay"} <= actions


def test_held_partners_are_skipped_with_a_reason_naming_what_to_add(
    session: Session, desk: Desk
) -> None:
    approved_claim(session, desk, partner="acme")
    approved_claim(session, desk, partner="bolt")
    run = payouts.create_payouts(session, desk.finance, now=NOW)
    assert run.payouts == []
    reasons = {s.partner_name: s.reason for s in run.held}
    assert reasons["Acme Networks"] == (
        "Acme Networks has no payout details: add a bank account on the Payout details page."
    )
    assert money(session, desk.mdf, desk.acme).transit == 0

    payouts.set_policy(session, desk.admin, desk.mdf.id, provider="manual", schedule="immediate",
                       requires_tax_info=True, now=NOW)  # fmt: skip
    bank_details(session, desk, desk.acme)
    bank_details(session, desk, desk.bolt, tax_form="W-9", tax_id="12-3456789",
                 tax_received_on=NOW.date())  # fmt: skip
    run = payouts.create_payouts(session, desk.finance, now=NOW)
    assert [p.partner_id for p in run.payouts] == [desk.bolt.id]
    [held] = run.held
    assert "MDF26 requires tax information and Acme Networks has none on file" in held.reason
    assert payouts.hold_reason(session, desk.acme.id, desk.mdf.id) == held.reason

    payouts.set_policy(session, desk.admin, desk.mdf.id, provider="stripe", schedule="immediate",
                       now=NOW)  # fmt: skip
    reason = payouts.hold_reason(session, desk.acme.id, desk.mdf.id)
    assert reason is not None and "pays through Stripe Connect" in reason
    assert "add their Stripe account (acct_...)" in reason
    groups = payouts.payable_claims(session, desk.finance)
    assert [(g.partner.id, g.amount, g.hold) for g in groups] == [(desk.acme.id, 150_000, reason)]


def test_scheduled_programs_pay_on_their_run_day_above_their_minimum(
    session: Session, desk: Desk
) -> None:
    claim = approved_claim(session, desk, amount=40_000)
    bank_details(session, desk, desk.acme)
    today = NOW.astimezone(program_rules.zone(desk.mdf.timezone)).date()
    tomorrow = (today.weekday() + 1) % 7
    payouts.set_policy(session, desk.admin, desk.mdf.id, provider="manual", schedule="weekly",
                       run_day=tomorrow, minimum_amount=50_000, now=NOW)  # fmt: skip
    # An approval in a scheduled program waits for the run.
    assert payouts.on_claim_approved(_sessions(session), claim.id, now=NOW) is None

    run = payouts.create_payouts(session, desk.finance, now=NOW)
    assert run.payouts == [] and run.held == []
    [skipped] = run.skipped
    assert skipped.reason.startswith("not due: MDF26 pays weekly, on ")

    next_day = NOW + timedelta(days=1)
    run = payouts.create_payouts(session, desk.finance, now=next_day)
    [skipped] = run.skipped
    assert skipped.reason.startswith("below the minimum: MDF26 pays scheduled runs of 500.00 USD")

    approved_claim(session, desk, amount=20_000)
    run = payouts.create_payouts(session, desk.finance, now=next_day)
    assert [p.amount for p in run.payouts] == [60_000]


def test_finance_pays_a_scheduled_program_by_hand_and_may_name_claims(
    session: Session, desk: Desk
) -> None:
    first = approved_claim(session, desk, amount=40_000)
    second = approved_claim(session, desk, amount=30_000)
    bank_details(session, desk, desk.acme)
    payouts.set_policy(session, desk.admin, desk.mdf.id, provider="manual", schedule="monthly",
                       run_day=1, now=NOW)  # fmt: skip
    run = payouts.create_payouts(session, desk.finance, claim_ids=[second.id], now=NOW)
    assert [p.amount for p in run.payouts] == [30_000]
    with pytest.raises(ValidationError, match="not waiting for a payout") as refused:
        payouts.create_payouts(session, desk.finance, claim_ids=[second.id], now=NOW)
    assert refused.value.details["field"] == "claim_ids"
    run = payouts.create_payouts(session, desk.finance, due_only=False, now=NOW)
    assert [p.amount for p in run.payouts] == [first.approved_amount]


def _sessions(session: Session) -> sessionmaker[Session]:
    """The test session's own factory (for the job functions that open sessions)."""
    session.commit()
    return sessionmaker(bind=session.get_bind(), expire_on_commit=False)


def test_a_failed_payout_returns_the_money_and_is_retried_with_backoff_then_flagged(
    session: Session, desk: Desk
) -> None:
    claim = approved_claim(session, desk)
    bank_details(session, desk, desk.acme)
    payouts.set_policy(session, desk.admin, desk.mdf.id, provider="manual", schedule="immediate",
                       max_attempts=2, now=NOW)  # fmt: skip
    [payout] = payouts.create_payouts(session, desk.finance, now=NOW).payouts
    payouts.mark_sent(session, desk.finance, payout.id, reference="B-1", now=NOW)
    payouts.mark_failed(session, desk.finance, payout.id, reason="account closed", now=NOW)
    assert payout.state == "failed" and payout.last_error == "account closed"
    assert payout.next_attempt_at == NOW + timedelta(hours=1)
    assert money(session, desk.mdf, desk.acme) == (150_000, 0, 0)
    # Still spoken for: a run does not gather its claims into another payout.
    assert payouts.create_payouts(session, desk.finance, now=NOW).payouts == []

    sessions = _sessions(session)
    early = payouts.recover(sessions, MANUAL, now=NOW + timedelta(minutes=59))
    assert early.retried == []
    later = payouts.recover(sessions, MANUAL, now=NOW + timedelta(hours=1))
    assert later.retried == [payout.id]
    session.expire_all()
    assert (payout.state, payout.attempt) == ("pending", 2)
    assert payout.idempotency_key == f"mdfledger-payout-{payout.id}-2"
    assert money(session, desk.mdf, desk.acme) == (0, 150_000, 0)

    payouts.mark_failed(session, desk.finance, payout.id, reason="account closed", now=NOW)
    assert payout.state == "flagged" and payout.next_attempt_at is None
    assert payout.flagged_reason.startswith("failed 2 times, the most this program allows")
    assert money(session, desk.mdf, desk.acme) == (150_000, 0, 0)
    session.commit()
    assert payouts.recover(sessions, MANUAL, now=NOW + timedelta(days=3)).retried == []

    # Finance retries by hand, then gives up: the claim is payable again.
    payouts.retry_payout(session, desk.finance, payout.id, now=NOW)
    assert (payout.state, payout.attempt) == ("pending", 3)
    payouts.mark_failed(session, desk.finance, payout.id, reason="still closed", now=NOW)
    payouts.cancel_payout(session, desk.finance, payout.id, reason="partner to send new details",
                          now=NOW)  # fmt: skip
    assert payout.state == "cancelled"
    assert money(session, desk.mdf, desk.acme) == (150_000, 0, 0)
    [group] = payouts.payable_claims(session, desk.finance)
    assert [c.id for c in group.claims] == [claim.id]
    [again] = payouts.create_payouts(session, desk.finance, now=NOW).payouts
    assert again.id != payout.id and money(session, desk.mdf, desk.acme).transit == 150_000
    events = [e.event for e in payouts.timeline(session, payout)]
    assert events == ["create", "send", "fail", "retry", "fail", "flag", "retry", "fail", "flag",
                      "cancel"]  # fmt: skip


def test_backoff_doubles_from_an_hour_to_a_day() -> None:
    from mdfledger.payouts.rules import backoff

    hours = [backoff(n) / timedelta(hours=1) for n in range(1, 8)]
    assert hours == [1, 2, 4, 8, 16, 24, 24]


def test_what_the_state_machine_refuses(session: Session, desk: Desk) -> None:
    approved_claim(session, desk)
    bank_details(session, desk, desk.acme)
    [payout] = payouts.create_payouts(session, desk.finance, now=NOW).payouts
    with pytest.raises(Conflict, match="a payout that is pending cannot be cancelled"):
        payouts.cancel_payout(session, desk.finance, payout.id, reason="no", now=NOW)
    with pytest.raises(Conflict, match="a payout that is pending cannot be retried"):
        payouts.retry_payout(session, desk.finance, payout.id, now=NOW)
    with pytest.raises(ValidationError, match="reference is required"):
        payouts.mark_sent(session, desk.finance, payout.id, reference="  ", now=NOW)
    for actor in (desk.auditor, desk.acme_user):
        with pytest.raises(Forbidden):
            payouts.mark_sent(session, actor, payout.id, reference="X", now=NOW)
    payouts.mark_settled(session, desk.finance, payout.id, reference="B-9", now=NOW)
    with pytest.raises(Conflict, match="settled cannot be failed"):
        payouts.mark_failed(session, desk.finance, payout.id, reason="oops", now=NOW)
    assert money(session, desk.mdf, desk.acme) == (0, 0, 150_000)


def test_payout_details_are_checked_and_shown_masked(session: Session, desk: Desk) -> None:
    with pytest.raises(ValidationError, match="check digits do not match") as bad:
        bank_details(session, desk, desk.acme, iban="DE89370400440532013001")
    assert bad.value.details["field"] == "iban"
    with pytest.raises(ValidationError, match="acct_") as bad:
        payouts.set_details(session, desk.acme_user, desk.acme.id, method="stripe",
                            stripe_account="acc_123", now=NOW)  # fmt: skip
    with pytest.raises(ValidationError, match="routing number"):
        bank_details(session, desk, desk.acme, iban=None, account_number="000123456789")
    with pytest.raises(ValidationError, match="tax form was received"):
        bank_details(session, desk, desk.acme, tax_form="W-9", tax_id="12-3456789")
    # Spaces as people type them are fine.
    row = payouts.set_details(
        session, desk.acme_user, desk.acme.id, method="bank", account_holder="Acme Networks Inc",
        bank_country="us", account_number="0001 2345 6789", routing_code="110000000",
        payout_currency="usd", tax_form="W-9", tax_id="12-3456789", tax_received_on=NOW.date(),
        now=NOW,
    )  # fmt: skip
    assert (row.account_number, row.bank_country, row.payout_currency) == (
        "000123456789", "US", "USD",
    )  # fmt: skip
    entry = session.scalars(
        select(audit.AuditEntry).where(audit.AuditEntry.action == "payout_details.set")
    ).all()[-1]
    logged = str(entry.after) + entry.summary
    assert "000123456789" not in logged and "12-3456789" not in logged
    assert "\u2022\u2022\u2022\u2022 6789" in logged
    # Partners: their own details only; auditors read, never write.
    with pytest.raises(NotFound):
        payouts.set_details(session, desk.bolt_user, desk.acme.id, method="bank",
                            account_holder="x", bank_country="DE", iban=IBAN, now=NOW)  # fmt: skip
    with pytest.raises(NotFound):
        payouts.details_of(session, desk.bolt_user, desk.acme.id)
    with pytest.raises(Forbidden):
        payouts.set_details(session, desk.auditor, desk.acme.id, method="bank",
                            account_holder="x", bank_country="DE", iban=IBAN, now=NOW)  # fmt: skip
    assert payouts.details_of(session, desk.auditor, desk.acme.id) is row


def test_partners_see_only_their_own_payouts(session: Session, desk: Desk) -> None:
    approved_claim(session, desk, partner="acme")
    approved_claim(session, desk, partner="bolt")
    bank_details(session, desk, desk.acme)
    bank_details(session, desk, desk.bolt)
    run = payouts.create_payouts(session, desk.finance, now=NOW)
    theirs = next(p for p in run.payouts if p.partner_id == desk.bolt.id)
    mine = session.scalars(payouts.payouts_query(desk.acme_user)).all()
    assert [p.partner_id for p in mine] == [desk.acme.id]
    with pytest.raises(NotFound, match="payout not found"):
        payouts.get_payout(session, desk.acme_user, theirs.id)
    assert {g.partner.id for g in payouts.payable_claims(session, desk.acme_user)} <= {desk.acme.id}
    with pytest.raises(Forbidden):
        payouts.create_payouts(session, desk.acme_user, now=NOW)
    with pytest.raises(Forbidden):
        payouts.set_policy(session, desk.finance, desk.mdf.id, provider="stripe",
                           schedule="immediate", now=NOW)  # fmt: skip


def test_the_payment_file_has_what_the_bank_needs_and_is_audited(
    session: Session, desk: Desk
) -> None:
    approved_claim(session, desk, amount=123_456)
    approved_claim(session, desk, partner="bolt", amount=1_000)
    bank_details(session, desk, desk.acme)
    bank_details(
        session, desk, desk.bolt, account_holder="=HYPERLINK(evil)", iban=None, bank_country="US",
        account_number="000123456789", routing_code="110000000",
    )  # fmt: skip
    run = payouts.create_payouts(session, desk.finance, now=NOW)
    text_ = payouts.payment_file(session, desk.finance)
    rows = list(csv.DictReader(io.StringIO(text_)))
    assert [r["payout"] for r in rows] == [str(p.id) for p in run.payouts]
    acme = next(r for r in rows if r["partner"] == "ACME")
    assert (acme["iban"], acme["amount"], acme["currency"]) == (IBAN, "1234.56", "USD")
    assert acme["beneficiary"] == "Acme Networks Inc"
    assert acme["remittance"].startswith(f"PAY-{run.payouts[0].id:06d} MDF26 CLM-")
    bolt = next(r for r in rows if r["partner"] == "BOLT")
    assert (bolt["account_number"], bolt["routing_code"]) == ("000123456789", "110000000")
    assert bolt["beneficiary"] == "'=HYPERLINK(evil)"  # not a formula in a spreadsheet
    entry = session.scalars(
        select(audit.AuditEntry).where(audit.AuditEntry.action == "payout.payment_file")
    ).one()
    assert entry.actor == desk.finance.label
    for actor in (desk.auditor, desk.acme_user):
        with pytest.raises(Forbidden):
            payouts.payment_file(session, actor)


def test_the_database_keeps_a_claim_in_one_live_payout_and_the_timeline_append_only(
    session: Session, desk: Desk
) -> None:
    claim = approved_claim(session, desk)
    bank_details(session, desk, desk.acme)
    [payout] = payouts.create_payouts(session, desk.finance, now=NOW).payouts
    session.commit()
    with pytest.raises(IntegrityError), session.begin_nested():
        session.add(PayoutClaim(payout_id=payout.id, claim_id=claim.id, amount=1, live=True))
        session.flush()
    with pytest.raises(DBAPIError, match="append-only"), session.begin_nested():
        session.execute(update(PayoutEvent).values(message="rewritten"))
    with pytest.raises(DBAPIError, match="append-only"), session.begin_nested():
        session.execute(text("DELETE FROM payout_events"))


def test_an_immediate_program_pays_when_a_claim_is_approved(session: Session, desk: Desk) -> None:
    bank_details(session, desk, desk.acme)
    claim = approved_claim(session, desk)
    sessions = _sessions(session)
    run = payouts.on_claim_approved(sessions, claim.id, now=NOW)
    assert run is not None and [p.amount for p in run.payouts] == [150_000]
    assert payouts.on_claim_approved(sessions, claim.id, now=NOW).payouts == []  # nothing twice
    session.expire_all()
    assert money(session, desk.mdf, desk.acme) == (0, 150_000, 0)


def test_reconciliation_of_the_ledger_finds_money_moved_behind_the_payouts_back(
    session: Session, desk: Desk
) -> None:
    approved_claim(session, desk)
    bank_details(session, desk, desk.acme)
    [payout] = payouts.create_payouts(session, desk.finance, now=NOW).payouts
    manual = payouts.ManualProvider()
    assert payouts.reconcile(session, manual).differences == []
    payable, transit, _ = accounts(session, SYSTEM, desk.mdf, desk.acme)
    ledger.transfer(
        session, SYSTEM, NewTransfer("sneaky", transit, payable, 100, "adjust"), now=NOW
    )
    found = payouts.reconcile(session, manual)
    assert [d.kind for d in found.differences] == ["transit_balance"]
    assert found.differences[0].message == (
        "Acme Networks's payouts in transit in MDF26 is 1,499.00 USD in the ledger; its pending"
        " and sent payouts add up to 1,500.00 USD"
    )
    assert payout.state == PayoutState.PENDING
