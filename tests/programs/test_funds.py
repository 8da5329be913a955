"""Budgets, allocations, corrections, expiry and the balance breakdown, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from mdfledger import ledger, programs
from mdfledger.actor import Actor
from mdfledger.errors import Conflict, Forbidden, NotFound, ValidationError
from mdfledger.ledger.models import Account
from mdfledger.programs import rules
from tests.programs.conftest import NOW, Book


def breakdown(session: Session, actor: Actor, book: Book, partner=None, program=None, now=NOW):
    partner, program = partner or book.acme, program or book.mdf
    return programs.partner_breakdown(session, actor, partner.id, program.id, now=now)


def test_an_allocation_moves_budget_into_the_partners_fund_for_the_current_period(
    session: Session, actor: Actor, book: Book
) -> None:
    allocation = programs.allocate(
        session, actor, book.mdf.id, book.acme.id, 250_000, reason="Q3 plan", now=NOW
    )
    assert allocation.fund.period_label == "FY2026 Q3"
    assert allocation.fund.period_start == date(2026, 7, 1)
    assert allocation.fund.available_until == date(2026, 9, 30)  # forfeit at period end
    b = breakdown(session, actor, book)
    assert (b.allocated, b.available, b.reserved, b.expired) == (250_000, 250_000, 0, 0)
    assert b.expiring_next == programs.Expiring(250_000, date(2026, 9, 30), "FY2026 Q3")
    budget = session.get(Account, book.mdf.budget_account_id)
    assert budget.credits_posted - budget.debits_posted == 10_000_000 - 250_000


def test_never_more_than_the_budget(session: Session, actor: Actor, book: Book) -> None:
    programs.allocate(session, actor, book.mdf.id, book.acme.id, 9_000_000, reason="big", now=NOW)
    with pytest.raises(Conflict, match=r"MDF26 budget has 10000\.00 USD available"):
        programs.allocate(
            session, actor, book.mdf.id, book.bolt.id, 1_000_001, reason="too much", now=NOW
        )
    assert breakdown(session, actor, book, book.bolt).allocated == 0


def test_a_replayed_key_returns_the_first_allocation(
    session: Session, actor: Actor, book: Book
) -> None:
    first = programs.allocate(
        session, actor, book.mdf.id, book.acme.id, 1000, reason="r", key="k1", now=NOW
    )
    again = programs.allocate(
        session, actor, book.mdf.id, book.acme.id, 1000, reason="r", key="k1", now=NOW
    )
    assert again.id == first.id
    assert breakdown(session, actor, book).allocated == 1000
    with pytest.raises(ledger.IdempotencyConflict, match="amount"):
        programs.allocate(
            session, actor, book.mdf.id, book.acme.id, 2000, reason="r", key="k1", now=NOW
        )


def test_adjustments_and_reversals_correct_with_new_transfers(
    session: Session, actor: Actor, book: Book
) -> None:
    allocation = programs.allocate(
        session, actor, book.mdf.id, book.acme.id, 100_000, reason="plan", now=NOW
    )
    down = programs.adjust_fund(session, actor, allocation.fund_id, -30_000, reason="typo", now=NOW)
    up = programs.adjust_fund(session, actor, allocation.fund_id, 5_000, reason="bonus", now=NOW)
    assert (down.kind, down.amount, up.amount) == ("adjustment", -30_000, 5_000)
    assert breakdown(session, actor, book).allocated == 75_000
    with pytest.raises(Conflict, match=r"FY2026 Q3 fund has 750\.00 USD available"):
        programs.adjust_fund(session, actor, allocation.fund_id, -75_001, reason="too far", now=NOW)
    reversal = programs.reverse_allocation(session, actor, up.id, reason="bonus withdrawn")
    assert (reversal.kind, reversal.amount, reversal.reverses_id) == ("reversal", -5_000, up.id)
    assert breakdown(session, actor, book).allocated == 70_000
    with pytest.raises(Conflict, match="already reversed"):
        programs.reverse_allocation(session, actor, up.id, reason="again")
    with pytest.raises(Conflict, match="cannot itself be reversed"):
        programs.reverse_allocation(session, actor, reversal.id, reason="undo the undo")
    with pytest.raises(ValidationError, match="reason is required"):
        programs.adjust_fund(session, actor, allocation.fund_id, 1, reason="  ", now=NOW)
    # The journal holds every step: nothing was edited.
    transfers = session.scalars(
        select(ledger.models.Transfer.code).where(ledger.models.Transfer.ref_type == "partner")
    ).all()
    assert sorted(transfers) == sorted(
        ["allocation", "allocation.adjustment", "allocation.adjustment", "allocation.adjustment"]
    )
    assert ledger.verify_ledger(session).ok


def test_a_reversal_cannot_take_back_money_already_reserved(
    session: Session, actor: Actor, book: Book
) -> None:
    allocation = programs.allocate(
        session, actor, book.mdf.id, book.acme.id, 10_000, reason="plan", now=NOW
    )
    expense = ledger.open_account(
        session, actor, key="test:claims", name="claims", kind="claims_payable", currency="USD"
    )
    ledger.reserve(
        session, actor, key="hold", debit_account_id=allocation.fund.account_id,
        credit_account_id=expense.id, amount=4_000, code="claim.reserve", now=NOW,
    )  # fmt: skip
    with pytest.raises(Conflict, match="already used or reserved"):
        programs.reverse_allocation(session, actor, allocation.id, reason="oops")
    b = breakdown(session, actor, book)
    assert (b.allocated, b.reserved, b.available) == (10_000, 4_000, 6_000)


def test_closed_programs_and_suspended_partners_take_no_new_funds(
    session: Session, actor: Actor, book: Book
) -> None:
    programs.update_partner(session, actor, book.bolt.id, status="suspended")
    with pytest.raises(Conflict, match="BOLT is suspended"):
        programs.allocate(session, actor, book.mdf.id, book.bolt.id, 100, reason="r", now=NOW)
    programs.update_program(session, actor, book.mdf.id, status="closed")
    with pytest.raises(Conflict, match="MDF26 is closed"):
        programs.allocate(session, actor, book.mdf.id, book.acme.id, 100, reason="r", now=NOW)


def test_allocating_to_a_period_whose_funds_expired_is_refused(
    session: Session, actor: Actor, book: Book
) -> None:
    with pytest.raises(ValidationError, match="FY2026 Q2 funds expired after 2026-06-30"):
        programs.allocate(
            session, actor, book.mdf.id, book.acme.id, 100, reason="late",
            day=date(2026, 5, 1), now=NOW,
        )  # fmt: skip
    future = programs.allocate(
        session, actor, book.mdf.id, book.acme.id, 100, reason="next", day=date(2026, 10, 2),
        now=NOW,
    )  # fmt: skip
    assert future.fund.period_label == "FY2026 Q4"


def test_unspent_funds_are_forfeited_after_period_end_in_the_programs_timezone(
    session: Session, actor: Actor, book: Book
) -> None:
    programs.allocate(session, actor, book.mdf.id, book.acme.id, 80_000, reason="Q3", now=NOW)
    system = Actor.system("expiry")
    # 2026-10-01 02:00 UTC is still 30 September in New York: nothing expires yet.
    early = datetime(2026, 10, 1, 2, 0, tzinfo=UTC)
    assert programs.run_expiry(session, system, now=early).funds == []
    late = datetime(2026, 10, 1, 5, 0, tzinfo=UTC)
    run = programs.run_expiry(session, system, now=late)
    assert [(f.partner_code, f.period_label, f.amount) for f in run.funds] == [
        ("ACME", "FY2026 Q3", 80_000)
    ]
    assert programs.run_expiry(session, system, now=late).funds == []  # idempotent
    b = breakdown(session, actor, book, now=late)
    assert (b.allocated, b.expired, b.available, b.expiring_next) == (80_000, 80_000, 0, None)
    expired = session.get(Account, book.mdf.expired_account_id)
    assert expired.credits_posted == 80_000
    assert ledger.verify_ledger(session).ok


def test_rollover_keeps_funds_usable_for_n_days_after_period_end(
    session: Session, actor: Actor, book: Book
) -> None:
    data = b"partner,reference,date,amount\nACME,INV-1,2026-08-01,10000.00\n"
    programs.import_purchases(session, actor, book.coop.id, data, filename="p.csv", now=NOW)
    b = breakdown(session, actor, book, program=book.coop)
    assert b.expiring_next == programs.Expiring(30_000, date(2026, 10, 30), "FY2026 Q3")
    system = Actor.system("expiry")
    assert (
        programs.run_expiry(session, system, now=datetime(2026, 10, 30, 23, tzinfo=UTC)).funds == []
    )
    run = programs.run_expiry(session, system, now=datetime(2026, 10, 31, 1, tzinfo=UTC))
    assert [f.amount for f in run.funds] == [30_000]


def test_a_reservation_past_its_deadline_expires_and_its_money_is_forfeited_next(
    session: Session, actor: Actor, book: Book
) -> None:
    allocation = programs.allocate(
        session, actor, book.mdf.id, book.acme.id, 50_000, reason="Q3", now=NOW
    )
    payable = ledger.open_account(
        session, actor, key="test:claims", name="claims", kind="claims_payable", currency="USD"
    )
    deadline = rules.end_of_day(date(2026, 11, 15), book.mdf.timezone)
    ledger.reserve(
        session, actor, key="hold", debit_account_id=allocation.fund.account_id,
        credit_account_id=payable.id, amount=20_000, code="claim.reserve", expires_at=deadline,
        now=NOW,
    )  # fmt: skip
    system = Actor.system("expiry")
    after_quarter = datetime(2026, 10, 2, tzinfo=UTC)
    run = programs.run_expiry(session, system, now=after_quarter)
    assert (run.reservations_expired, [f.amount for f in run.funds]) == (0, [30_000])
    b = breakdown(session, actor, book, now=after_quarter)
    assert (b.reserved, b.expired, b.available) == (20_000, 30_000, 0)
    after_deadline = deadline + timedelta(minutes=1)
    run = programs.run_expiry(session, system, now=after_deadline)
    assert (run.reservations_expired, [f.amount for f in run.funds]) == (1, [20_000])
    b = breakdown(session, actor, book, now=after_deadline)
    assert (b.reserved, b.expired, b.available) == (0, 50_000, 0)
    assert ledger.verify_ledger(session).ok


def test_the_breakdown_adds_up_and_utilisation_covers_every_partner(
    session: Session, actor: Actor, book: Book
) -> None:
    for partner, amount in ((book.acme, 40_000), (book.bolt, 60_000)):
        programs.allocate(session, actor, book.mdf.id, partner.id, amount, reason="Q3", now=NOW)
    programs.allocate(
        session, actor, book.mdf.id, book.acme.id, 7_000, reason="Q4", day=date(2026, 11, 1),
        now=NOW,
    )  # fmt: skip
    b = breakdown(session, actor, book)
    assert [(f.period_label, f.available) for f in b.funds] == [
        ("FY2026 Q3", 40_000), ("FY2026 Q4", 7_000)
    ]  # fmt: skip
    assert b.allocated == b.reserved + b.approved + b.expired + b.available + b.awaiting_expiry
    usage = programs.program_utilisation(session, actor, book.mdf.id, now=NOW)
    assert [p.code for p, _ in usage.partners] == ["ACME", "BOLT"]
    assert usage.totals.allocated == 107_000
    assert usage.budget_funded == 10_000_000
    assert usage.budget_unallocated == 10_000_000 - 107_000
    assert usage.totals.expiring_next == programs.Expiring(100_000, date(2026, 9, 30), "FY2026 Q3")


def test_partners_see_only_their_own_partner_and_funds(
    session: Session, actor: Actor, book: Book
) -> None:
    programs.allocate(session, actor, book.mdf.id, book.bolt.id, 1_000, reason="Q3", now=NOW)
    acme_user = Actor("user", "77", "partner", book.acme.id)
    assert programs.get_partner(session, acme_user, book.acme.id).code == "ACME"
    with pytest.raises(NotFound):
        programs.get_partner(session, acme_user, book.bolt.id)
    with pytest.raises(NotFound):
        breakdown(session, acme_user, book, partner=book.bolt)
    visible = session.scalars(programs.partners_query(acme_user)).all()
    assert [p.code for p in visible] == ["ACME"]
    with pytest.raises(Forbidden):
        programs.program_utilisation(session, acme_user, book.mdf.id, now=NOW)
    with pytest.raises(Forbidden):
        programs.allocate(session, acme_user, book.mdf.id, book.acme.id, 1, reason="me", now=NOW)
    auditor = Actor("user", "5", "auditor")
    with pytest.raises(Forbidden):
        programs.fund_budget(session, auditor, book.mdf.id, 1, reason="no")


def test_the_database_holds_partner_codes_unique_ignoring_case(
    session: Session, book: Book
) -> None:
    from sqlalchemy.exc import IntegrityError

    session.add(
        programs.Partner(
            code="acme",
            name="Another Acme",
            type="reseller",
            tier="gold",
            region="NA",
            status="active",
            created_at=NOW,
        )
    )
    with pytest.raises(IntegrityError):
        session.flush()
