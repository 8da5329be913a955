"""Bulk imports: allocation files and co-op purchase files, on SQLite and PostgreSQL.

The book (tests/programs/conftest.py): MDF26 (America/New_York, quarters, forfeit, budget
100,000.00 USD) and COOP26 (UTC, quarters, 30 days rollover) with rates 2% for anyone, 3% for
gold and 5% for gold + storage. ACME and CORE are gold, BOLT is silver. It is 2026-08-15 (Q3).
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mdfledger import ledger, programs
from mdfledger.actor import Actor
from mdfledger.errors import Conflict, ValidationError
from mdfledger.ledger import NewTransfer
from mdfledger.ledger.models import Account, Transfer
from mdfledger.programs import Allocation, Fund, Import, Purchase
from tests.programs.conftest import NOW, Book

LATER = datetime(2026, 8, 20, 9, 0, tzinfo=UTC)


def count(session: Session, model: type) -> int:
    return session.scalar(select(func.count()).select_from(model))


def snapshot(session: Session) -> dict[str, int]:
    return {m.__name__: count(session, m) for m in (Import, Allocation, Purchase, Fund, Transfer)}


def breakdown(session: Session, actor: Actor, partner, program, now=NOW):
    return programs.partner_breakdown(session, actor, partner.id, program.id, now=now)


def budget_left(session: Session, book: Book) -> int:
    budget = session.get(Account, book.mdf.budget_account_id, populate_existing=True)
    return budget.credits_posted - budget.debits_posted - budget.debits_pending


def csv(*lines: str) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def purchases(session, actor, book, data, *, now=NOW, **kwargs) -> programs.ImportReport:
    return programs.import_purchases(
        session, actor, book.coop.id, data, filename=kwargs.pop("filename", "sales.csv"),
        now=now, **kwargs,
    )  # fmt: skip


# --- allocations ---------------------------------------------------------------------------------

ALLOCATIONS = csv(
    "Partner Code,Amount,Currency,Notes",
    "ACME,1500.00,USD,Q3 plan",
    "bolt,2500.50,usd,",  # partner codes and currencies in any case
    "CORE,100,,",
)


def test_an_allocation_file_allocates_each_row_to_the_partners_fund_for_the_period(
    session: Session, actor: Actor, book: Book
) -> None:
    report = programs.import_allocations(
        session, actor, book.mdf.id, ALLOCATIONS, filename="q3.csv", reason="Q3 bulk", now=NOW
    )
    assert (report.rows, report.applied, report.skipped, report.moved) == (3, 3, 0, 410_050)
    assert (report.kind, report.program_code, report.period_label) == (
        "allocations", "MDF26", "FY2026 Q3",
    )  # fmt: skip
    assert report.errors == []
    assert [(r.line, r.partner, r.amount, r.moved, r.status) for r in report.results] == [
        (2, "ACME", 150_000, 150_000, "applied"),
        (3, "BOLT", 250_050, 250_050, "applied"),
        (4, "CORE", 10_000, 10_000, "applied"),
    ]
    assert report.to_dict()["moved"] == "4100.50"

    record = session.get(Import, report.import_id)
    assert (record.kind, record.filename, record.rows, record.applied, record.amount) == (
        "allocations", "q3.csv", 3, 3, 410_050,
    )  # fmt: skip
    assert (record.period_start, record.actor, len(record.sha256)) == (
        date(2026, 7, 1), actor.label, 64,
    )  # fmt: skip
    assert count(session, Import) == 1

    allocations = session.scalars(select(Allocation).order_by(Allocation.id)).all()
    assert [(a.partner_id, a.amount, a.reason, a.kind) for a in allocations] == [
        (book.acme.id, 150_000, "Q3 plan", "allocation"),
        (book.bolt.id, 250_050, "Q3 bulk", "allocation"),  # no note: the import's reason
        (book.core.id, 10_000, "Q3 bulk", "allocation"),
    ]
    for allocation in allocations:
        assert allocation.import_id == record.id
        assert allocation.fund.period_label == "FY2026 Q3"
        transfer = session.get(Transfer, allocation.transfer_id)
        assert (transfer.amount, transfer.code) == (allocation.amount, "allocation")
        assert transfer.debit_account_id == book.mdf.budget_account_id
        assert transfer.credit_account_id == allocation.fund.account_id
    for partner, amount in ((book.acme, 150_000), (book.bolt, 250_050), (book.core, 10_000)):
        b = breakdown(session, actor, partner, book.mdf)
        assert (b.allocated, b.available) == (amount, amount)
    assert budget_left(session, book) == 10_000_000 - 410_050
    assert session.scalars(programs.imports_query(actor, book.mdf.id)).all() == [record]
    assert ledger.verify_ledger(session).ok


def test_the_same_allocation_file_twice_is_refused_naming_the_earlier_import(
    session: Session, actor: Actor, book: Book
) -> None:
    first = programs.import_allocations(
        session, actor, book.mdf.id, ALLOCATIONS, filename="q3.csv", now=NOW
    )
    before = snapshot(session)
    with pytest.raises(Conflict) as err:
        programs.import_allocations(
            session, actor, book.mdf.id, ALLOCATIONS, filename="renamed.csv", now=LATER
        )
    assert f"already imported as import #{first.import_id} on 2026-08-15" in err.value.message
    assert "nothing was imported again" in err.value.message
    assert err.value.details["import_id"] == first.import_id
    assert snapshot(session) == before
    assert budget_left(session, book) == 10_000_000 - 410_050


def test_the_same_allocation_file_for_another_period_is_a_new_allocation(
    session: Session, actor: Actor, book: Book
) -> None:
    plan = csv("partner,amount", "ACME,100.00", "BOLT,50.00")  # the standing quarterly plan
    q3 = programs.import_allocations(session, actor, book.mdf.id, plan, filename="p.csv", now=NOW)
    q4 = programs.import_allocations(
        session, actor, book.mdf.id, plan, filename="p.csv", day=date(2026, 10, 1), now=NOW
    )
    assert (q3.period_label, q4.period_label, q4.moved) == ("FY2026 Q3", "FY2026 Q4", 15_000)
    assert [f.period_label for f in breakdown(session, actor, book.acme, book.mdf).funds] == [
        "FY2026 Q3", "FY2026 Q4",
    ]  # fmt: skip
    with pytest.raises(Conflict, match=f"import #{q4.import_id}"):
        programs.import_allocations(
            session, actor, book.mdf.id, plan, filename="p.csv", day=date(2026, 12, 1), now=NOW
        )


def test_a_file_allocating_more_than_the_budget_has_left_is_refused_as_a_whole(
    session: Session, actor: Actor, book: Book
) -> None:
    programs.allocate(session, actor, book.mdf.id, book.core.id, 9_500_000, reason="big", now=NOW)
    before = snapshot(session)
    data = csv("partner,amount", "ACME,3000.00", "BOLT,2000.01")  # 5000.01 > 5000.00 left
    with pytest.raises(programs.ImportRejected) as err:
        programs.import_allocations(
            session, actor, book.mdf.id, data, filename="too-much.csv", now=NOW
        )
    [problem] = err.value.report.errors
    assert (problem.line, problem.column) == (0, "amount")
    assert problem.message == ("the file allocates 5000.01 USD; the MDF26 budget has 5000.00 left")
    assert err.value.message == "too-much.csv: 1 problem found; nothing was imported"
    assert snapshot(session) == before
    assert budget_left(session, book) == 500_000
    # exactly what is left is fine
    data = csv("partner,amount", "ACME,3000.00", "BOLT,2000.00")
    report = programs.import_allocations(session, actor, book.mdf.id, data, filename="ok.csv")
    assert report.moved == 500_000
    assert budget_left(session, book) == 0


def test_the_period_comes_from_day_future_periods_are_fine_expired_ones_refused(
    session: Session, actor: Actor, book: Book
) -> None:
    next_quarter = programs.import_allocations(
        session, actor, book.mdf.id, csv("partner,amount", "ACME,10"), filename="q4.csv",
        day=date(2026, 12, 31), now=NOW,
    )  # fmt: skip
    next_year = programs.import_allocations(
        session, actor, book.mdf.id, csv("partner,amount", "ACME,20"), filename="q1.csv",
        day=date(2027, 1, 1), now=NOW,
    )  # fmt: skip
    assert (next_quarter.period_label, next_year.period_label) == ("FY2026 Q4", "FY2027 Q1")
    funds = breakdown(session, actor, book.acme, book.mdf).funds
    assert [(f.period_label, f.available, f.available_until) for f in funds] == [
        ("FY2026 Q4", 1_000, date(2026, 12, 31)),
        ("FY2027 Q1", 2_000, date(2027, 3, 31)),
    ]
    before = snapshot(session)
    with pytest.raises(ValidationError) as err:
        programs.import_allocations(
            session, actor, book.mdf.id, csv("partner,amount", "ACME,30"), filename="q2.csv",
            day=date(2026, 6, 30), now=NOW,
        )  # fmt: skip
    assert err.value.details["field"] == "period"
    assert "FY2026 Q2 funds expired after 2026-06-30" in err.value.message
    assert snapshot(session) == before


# --- purchases -----------------------------------------------------------------------------------

SALES = csv(
    "partner,invoice,invoice_date,net_amount,product",
    "ACME,INV-1,2026-07-03,1000.00,storage",  # gold + storage: 5% = 50.00
    "ACME,INV-2,2026-07-04,1000.00,network",  # gold: 3% = 30.00
    "BOLT,INV-3,2026-07-05,1000.00,Storage",  # silver: 2% = 20.00
    "CORE,INV-4,2026-08-01,0.50,",  # gold: 3% of 0.50 = 0.015 -> 0.02 (half up)
    "BOLT,INV-5,2026-08-02,0.25,",  # 2% of 0.25 = 0.005 -> 0.01
    "BOLT,INV-6,2026-08-02,0.24,",  # 0.0048 -> 0.00: recorded, nothing moves
    "ACME,INV-7,2026-09-30,10.00,STORAGE",  # product lines in any case: 0.50
)


def test_a_purchase_file_accrues_by_tier_and_product_line_rounding_half_up(
    session: Session, actor: Actor, book: Book
) -> None:
    report = purchases(session, actor, book, SALES)
    assert (report.rows, report.applied, report.skipped) == (7, 7, 0)
    assert [(r.line, r.partner, r.amount, r.moved) for r in report.results] == [
        (2, "ACME", 100_000, 5_000),
        (3, "ACME", 100_000, 3_000),
        (4, "BOLT", 100_000, 2_000),
        (5, "CORE", 50, 2),
        (6, "BOLT", 25, 1),
        (7, "BOLT", 24, 0),
        (8, "ACME", 1_000, 50),
    ]
    assert report.moved == 10_053
    rows = session.scalars(select(Purchase).order_by(Purchase.id)).all()
    assert [(p.reference, p.rate_bp, p.accrual, p.unrecovered) for p in rows] == [
        ("INV-1", 500, 5_000, 0),
        ("INV-2", 300, 3_000, 0),
        ("INV-3", 200, 2_000, 0),
        ("INV-4", 300, 2, 0),
        ("INV-5", 200, 1, 0),
        ("INV-6", 200, 0, 0),
        ("INV-7", 500, 50, 0),
    ]
    assert rows[5].transfer_id is None and all(p.transfer_id for i, p in enumerate(rows) if i != 5)
    assert {p.import_id for p in rows} == {report.import_id}
    accrual = session.get(Transfer, rows[0].transfer_id)
    assert (accrual.code, accrual.amount, accrual.effective_date) == (
        "coop.accrual", 5_000, date(2026, 7, 3),
    )  # fmt: skip
    assert accrual.debit_account_id == book.coop.accrual_account_id
    # one fund per partner, for the period of the import
    funds = session.scalars(select(Fund).where(Fund.program_id == book.coop.id)).all()
    assert sorted((f.partner_id, f.period_label, f.available_until) for f in funds) == sorted(
        (p.id, "FY2026 Q3", date(2026, 10, 30)) for p in (book.acme, book.bolt, book.core)
    )
    accrued = {p.code: breakdown(session, actor, p, book.coop).accrued for p in
               (book.acme, book.bolt, book.core)}  # fmt: skip
    assert accrued == {"ACME": 8_050, "BOLT": 2_001, "CORE": 2}
    record = session.get(Import, report.import_id)
    assert (record.kind, record.rows, record.applied, record.skipped, record.amount) == (
        "purchases", 7, 7, 0, 10_053,
    )  # fmt: skip
    assert ledger.verify_ledger(session).ok


def test_reimporting_a_file_accrues_nothing_and_an_overlapping_file_only_its_new_rows(
    session: Session, actor: Actor, book: Book
) -> None:
    purchases(session, actor, book, SALES)
    before = {p.code: breakdown(session, actor, p, book.coop) for p in (book.acme, book.bolt)}
    transfers = count(session, Transfer)

    again = purchases(session, actor, book, SALES, filename="sales-again.csv", now=LATER)
    assert (again.rows, again.applied, again.skipped, again.moved) == (7, 0, 7, 0)
    assert {(r.status, r.moved, r.note) for r in again.results} == {
        ("skipped", 0, "already imported")
    }
    assert count(session, Transfer) == transfers
    assert count(session, Purchase) == 7
    record = session.get(Import, again.import_id)
    assert (record.applied, record.skipped, record.amount) == (0, 7, 0)

    overlapping = csv(
        "partner,reference,date,amount,product_line",
        "ACME,INV-2,2026-07-04,1000.00,network",  # already imported
        "ACME,INV-8,2026-08-10,200.00,network",  # new: 6.00
        "BOLT,INV-3,2026-07-05,1000.00,storage",  # already imported (product line in any case)
    )
    report = purchases(session, actor, book, overlapping, filename="week.csv", now=LATER)
    assert [(r.line, r.status, r.moved) for r in report.results] == [
        (2, "skipped", 0), (3, "applied", 600), (4, "skipped", 0),
    ]  # fmt: skip
    assert (report.applied, report.skipped, report.moved) == (1, 2, 600)
    after = {p.code: breakdown(session, actor, p, book.coop) for p in (book.acme, book.bolt)}
    assert after["ACME"].accrued == before["ACME"].accrued + 600
    assert after["BOLT"].accrued == before["BOLT"].accrued
    assert ledger.verify_ledger(session).ok


def test_returns_take_their_accrual_back_rounded_like_the_purchase(
    session: Session, actor: Actor, book: Book
) -> None:
    purchases(session, actor, book, csv(
        "partner,reference,date,amount,product_line",
        "ACME,INV-1,2026-07-03,1000.00,storage",  # +50.00
        "ACME,INV-2,2026-07-04,0.30,storage",  # 5% of 0.30 = 0.015 -> +0.02
    ))  # fmt: skip
    report = purchases(session, actor, book, csv(
        "partner,reference,date,amount,product_line",
        "ACME,CN-1,2026-08-03,-400.00,storage",  # -20.00
        "ACME,CN-2,2026-08-04,-0.30,storage",  # -0.02: symmetric with the purchase
    ), filename="returns.csv", now=LATER)  # fmt: skip
    assert [(r.amount, r.moved, r.note) for r in report.results] == [
        (-40_000, -2_000, ""), (-30, -2, ""),
    ]  # fmt: skip
    assert report.moved == -2_002
    b = breakdown(session, actor, book.acme, book.coop, now=LATER)
    assert (b.accrued, b.available) == (3_000, 3_000)
    codes = session.scalars(
        select(Transfer.code).join(Purchase, Purchase.transfer_id == Transfer.id)
    ).all()
    assert sorted(codes) == ["coop.accrual", "coop.accrual", "coop.return", "coop.return"]
    assert ledger.verify_ledger(session).ok


def test_a_return_takes_back_only_what_the_fund_still_holds_and_records_the_rest(
    session: Session, actor: Actor, book: Book
) -> None:
    purchases(session, actor, book, csv(
        "partner,reference,date,amount,product_line",
        "ACME,INV-1,2026-07-03,1000.00,storage",  # +50.00
        "BOLT,INV-2,2026-07-03,1000.00,",  # +20.00
    ))  # fmt: skip
    acme_fund = session.scalar(select(Fund).where(Fund.partner_id == book.acme.id))
    bolt_fund = session.scalar(select(Fund).where(Fund.partner_id == book.bolt.id))
    claims = ledger.open_account(
        session, actor, key="test:claims", name="claims", kind="claims_payable", currency="USD"
    )
    # ACME has 40.00 reserved for a claim; BOLT's 20.00 was approved and paid out of the fund.
    ledger.reserve(
        session, actor, key="hold", debit_account_id=acme_fund.account_id,
        credit_account_id=claims.id, amount=4_000, code="claim.reserve", now=NOW,
    )  # fmt: skip
    ledger.transfer(
        session, actor,
        NewTransfer("approve", bolt_fund.account_id, claims.id, 2_000, "claim.approve"), now=NOW,
    )  # fmt: skip
    report = purchases(session, actor, book, csv(
        "partner,reference,date,amount,product_line",
        "ACME,CN-1,2026-08-03,-1000.00,storage",  # -50.00, but only 10.00 is there
        "BOLT,CN-2,2026-08-03,-1000.00,",  # -20.00, nothing is there
    ), filename="returns.csv", now=LATER)  # fmt: skip
    assert [(r.partner, r.moved, r.status) for r in report.results] == [
        ("ACME", -1_000, "applied"), ("BOLT", 0, "applied"),
    ]  # fmt: skip
    assert report.results[0].note == (
        "40.00 of the return's accrual was already spent and is not recovered"
    )
    assert report.results[1].note.startswith("20.00 of the return's accrual")
    assert report.moved == -1_000
    returns = session.scalars(select(Purchase).where(Purchase.amount < 0).order_by(Purchase.id))
    assert [(p.accrual, p.unrecovered, p.transfer_id is None) for p in returns] == [
        (-5_000, 4_000, False), (-2_000, 2_000, True),
    ]  # fmt: skip
    acme = breakdown(session, actor, book.acme, book.coop, now=LATER)
    assert (acme.accrued, acme.reserved, acme.available) == (4_000, 4_000, 0)
    bolt = breakdown(session, actor, book.bolt, book.coop, now=LATER)
    assert (bolt.accrued, bolt.approved, bolt.available) == (2_000, 2_000, 0)
    # the same returns again are recognised and skipped, not taken again
    again = purchases(session, actor, book, csv(
        "partner,reference,date,amount,product_line",
        "ACME,CN-1,2026-08-03,-1000.00,storage",
    ), filename="returns-again.csv", now=LATER)  # fmt: skip
    assert (again.applied, again.skipped, again.moved) == (0, 1, 0)
    assert ledger.verify_ledger(session).ok


def test_a_return_in_the_same_file_as_its_purchase_takes_back_at_most_the_file_gave(
    session: Session, actor: Actor, book: Book
) -> None:
    report = purchases(session, actor, book, csv(
        "partner,reference,date,amount,product_line",
        "ACME,CN-0,2026-07-01,-100.00,storage",  # nothing there yet: all unrecovered
        "ACME,INV-1,2026-07-03,1000.00,storage",  # +50.00
        "ACME,CN-1,2026-07-04,-2000.00,storage",  # -100.00, only 50.00 there
    ))  # fmt: skip
    assert [r.moved for r in report.results] == [0, 5_000, -5_000]
    assert [p.unrecovered for p in session.scalars(select(Purchase).order_by(Purchase.id))] == [
        500, 0, 5_000,
    ]  # fmt: skip
    assert breakdown(session, actor, book.acme, book.coop).available == 0
    assert ledger.verify_ledger(session).ok


def test_purchase_rows_outside_the_period_are_refused(
    session: Session, actor: Actor, book: Book
) -> None:
    data = csv(
        "partner,reference,date,amount",
        "ACME,INV-1,2026-07-01,10.00",
        "ACME,INV-2,2026-06-30,10.00",
        "ACME,INV-3,2026-10-01,10.00",
    )
    with pytest.raises(programs.ImportRejected) as err:
        purchases(session, actor, book, data)
    assert [(e.line, e.column, e.message) for e in err.value.report.errors] == [
        (3, "date", "date 2026-06-30 is outside FY2026 Q3 (2026-07-01 to 2026-09-30)"),
        (4, "date", "date 2026-10-01 is outside FY2026 Q3 (2026-07-01 to 2026-09-30)"),
    ]
    assert count(session, Purchase) == count(session, Import) == 0
    # the same rows for the period they are in
    report = purchases(
        session, actor, book, csv("partner,reference,date,amount", "ACME,INV-2,2026-06-30,10.00"),
        day=date(2026, 4, 1),
    )  # fmt: skip
    assert (report.period_label, report.moved) == ("FY2026 Q2", 30)


def test_purchases_cannot_be_imported_into_an_mdf_program(
    session: Session, actor: Actor, book: Book
) -> None:
    with pytest.raises(ValidationError, match="MDF26 is not a co-op program"):
        programs.import_purchases(session, actor, book.mdf.id, SALES, filename="sales.csv", now=NOW)
    assert count(session, Import) == count(session, Purchase) == 0


def test_the_progress_callback_hears_every_stage_with_counts(
    session: Session, actor: Actor, book: Book
) -> None:
    calls: list[tuple[str, int, int]] = []

    def progress(stage: str, done: int, total: int) -> None:
        calls.append((stage, done, total))

    purchases(session, actor, book, SALES, progress=progress)
    assert calls == [
        *(("checking", i, 7) for i in range(1, 8)),
        *(("accruing", i, 7) for i in range(1, 8)),
        ("moving funds", 0, 6),  # INV-6 accrues nothing: no transfer
        ("moving funds", 6, 6),
    ]
    calls.clear()
    programs.import_allocations(
        session, actor, book.mdf.id, ALLOCATIONS, filename="q3.csv", progress=progress, now=NOW
    )
    assert calls == [
        *(("checking", i, 3) for i in range(1, 4)),
        *(("opening funds", i, 3) for i in range(1, 4)),
        ("moving funds", 0, 3),
        ("moving funds", 3, 3),
    ]
