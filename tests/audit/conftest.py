"""A small book for audit tests: an MDF and a co-op program, two partners, a funded budget, all
set up before each test looks at what the log gained."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mdfledger import programs
from mdfledger.actor import Actor
from mdfledger.audit import AuditEntry

# 2026-08-15 noon UTC: inside FY2026 Q3 of a calendar-year program.
NOW = datetime(2026, 8, 15, 12, 0, tzinfo=UTC)


@dataclass
class Book:
    mdf: programs.Program
    coop: programs.Program
    acme: programs.Partner
    bolt: programs.Partner


@pytest.fixture
def book(session: Session, actor: Actor) -> Book:
    mdf = programs.create_program(
        session, actor, code="MDF26", name="MDF 2026", kind="mdf", currency="USD", now=NOW
    )
    coop = programs.create_program(
        session, actor, code="COOP26", name="Co-op 2026", kind="coop", currency="USD", now=NOW
    )
    programs.set_accrual_rate(session, actor, coop.id, rate_bp=200)
    acme, bolt = (
        programs.create_partner(
            session, actor, code=code, name=name, type="reseller", tier="gold", region="NA", now=NOW
        )
        for code, name in (("ACME", "Acme Networks"), ("BOLT", "Bolt Systems"))
    )
    programs.fund_budget(session, actor, mdf.id, 10_000_000, reason="FY2026 budget", now=NOW)
    session.commit()
    return Book(mdf, coop, acme, bolt)


def last_id(session: Session) -> int:
    return session.scalar(select(func.coalesce(func.max(AuditEntry.id), 0))) or 0


def entries_after(session: Session, mark: int) -> list[AuditEntry]:
    return list(
        session.scalars(select(AuditEntry).where(AuditEntry.id > mark).order_by(AuditEntry.id))
    )


def only_entry(session: Session, mark: int) -> AuditEntry:
    """The one entry written since `mark`: exactly one, or the test fails."""
    found = entries_after(session, mark)
    assert len(found) == 1, [(e.action, e.summary) for e in found]
    return found[0]
