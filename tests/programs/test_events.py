"""Funds tell partners when they arrive and when they are forfeited (engagement outbox)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from mdfledger import programs
from mdfledger.actor import Actor
from mdfledger.engagement import Event
from tests.programs.conftest import NOW, Book
from tests.programs.test_imports import SALES, purchases


def events(session: Session, type: str) -> list[Event]:
    return list(session.scalars(select(Event).where(Event.type == type).order_by(Event.id)))


def test_an_allocation_tells_the_partner_once(session: Session, actor: Actor, book: Book):
    programs.allocate(
        session, actor, book.mdf.id, book.acme.id, 250_000, reason="Q3 plan", key="q3", now=NOW
    )
    programs.allocate(  # a replay moves nothing and tells nothing
        session, actor, book.mdf.id, book.acme.id, 250_000, reason="Q3 plan", key="q3", now=NOW
    )
    [told] = events(session, "fund.allocated")
    assert (told.partner_id, told.program_id) == (book.acme.id, book.mdf.id)
    assert told.data["amount"] == 250_000 and told.data["period"] == "FY2026 Q3"
    assert told.data["available_until"] == "2026-09-30"
    assert "2,500.00 USD" in told.subject


def test_a_purchase_file_tells_each_partner_its_total(session: Session, actor: Actor, book: Book):
    report = purchases(session, actor, book, SALES)
    told = {e.partner_id: e.data["amount"] for e in events(session, "fund.accrued")}
    moved = {}
    for row in report.results:
        partner = programs.partner_by_code(session, actor, row.partner)
        moved[partner.id] = moved.get(partner.id, 0) + row.moved
    assert told == {partner: amount for partner, amount in moved.items() if amount > 0}
    purchases(session, actor, book, SALES, filename="again.csv")  # nothing new: nothing told
    assert len(events(session, "fund.accrued")) == len(told)


def test_forfeited_funds_are_told_once(session: Session, actor: Actor, book: Book):
    programs.allocate(session, actor, book.mdf.id, book.acme.id, 50_000, reason="Q3", now=NOW)
    after_quarter = datetime(2026, 10, 2, tzinfo=UTC)
    programs.run_expiry(session, Actor.system("expiry"), now=after_quarter)
    programs.run_expiry(session, Actor.system("expiry"), now=after_quarter)
    [expired] = events(session, "funds.expired")
    assert expired.partner_id == book.acme.id and expired.data["amount"] == 50_000


def test_an_allocation_file_tells_each_partner(session: Session, actor: Actor, book: Book):
    data = b"partner,amount,reason\nACME,1000.00,Q3 plan\nBOLT,500.00,Q3 plan\n"
    programs.import_allocations(
        session, actor, book.mdf.id, data, filename="q3.csv", reason="Q3", now=NOW
    )
    told = {e.partner_id: e.data["amount"] for e in events(session, "fund.allocated")}
    assert told == {book.acme.id: 100_000, book.bolt.id: 50_000}
