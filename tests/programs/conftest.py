"""A small book for program tests: an MDF and a co-op program, three partners, a funded budget."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session

from mdfledger import programs
from mdfledger.actor import Actor

# 2026-08-15 noon UTC: inside FY2026 Q3 of a calendar-year program.
NOW = datetime(2026, 8, 15, 12, 0, tzinfo=UTC)


@dataclass
class Book:
    mdf: programs.Program
    coop: programs.Program
    acme: programs.Partner
    bolt: programs.Partner
    core: programs.Partner


@pytest.fixture
def book(session: Session, actor: Actor) -> Book:
    mdf = programs.create_program(
        session, actor, code="MDF26", name="MDF 2026", kind="mdf", currency="USD",
        timezone="America/New_York", claim_deadline_days=60, share_bp=5000, now=NOW,
    )  # fmt: skip
    coop = programs.create_program(
        session, actor, code="COOP26", name="Co-op 2026", kind="coop", currency="USD",
        expiry_policy="rollover", rollover_days=30, now=NOW,
    )  # fmt: skip
    programs.set_accrual_rate(session, actor, coop.id, rate_bp=200)  # 2% for anyone
    programs.set_accrual_rate(session, actor, coop.id, tier="gold", rate_bp=300)
    programs.set_accrual_rate(
        session, actor, coop.id, tier="gold", product_line="storage", rate_bp=500
    )
    partners = [
        programs.create_partner(
            session, actor, code=code, name=name, type="reseller", tier=tier, region="NA", now=NOW
        )
        for code, name, tier in (
            ("ACME", "Acme Networks", "gold"),
            ("BOLT", "Bolt Systems", "silver"),
            ("CORE", "Core IT", "gold"),
        )
    ]
    programs.fund_budget(session, actor, mdf.id, 10_000_000, reason="FY2026 budget", now=NOW)
    session.flush()
    return Book(mdf, coop, *partners)
