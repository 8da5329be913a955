"""Payouts tests: the claims tests' program and people, approved claims, the ledger's three
accounts per partner, and the fake Stripe server with a Stripe Connect provider pointed at it."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any, NamedTuple

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mdfledger import claims, ledger, payouts
from mdfledger.actor import Actor
from mdfledger.ledger.models import Account
from mdfledger.payouts.stripe_connect import StripeConnect
from mdfledger.programs.models import Partner, Program
from tests.claims.conftest import NOW, Desk, claim_with_proof, desk, submit  # noqa: F401
from tests.fakestripe import FakeStripe, start_fake_stripe

_invoices = itertools.count(5000)
IBAN = "DE89370400440532013000"  # a valid IBAN (the standard's example)


def approved_claim(
    session: Session,
    desk: Desk,  # noqa: F811
    *,
    amount: int = 150_000,
    partner: str = "acme",
    now: datetime = NOW,
) -> claims.Claim:
    """A direct claim with an invoice, submitted, checked and approved by finance."""
    actor = desk.acme_user if partner == "acme" else desk.bolt_user
    number = f"INV-{next(_invoices)}"
    claim = claim_with_proof(
        session, desk, amount=amount, actor=actor, invoice=("Webinars Inc", number, 300_000),
        now=now,
    )  # fmt: skip
    submit(session, desk, actor, claim.id, now=now)
    return claims.approve_claim(session, desk.finance, claim.id, now=now)


def bank_details(session: Session, desk: Desk, partner: Partner, **extra: Any) -> None:  # noqa: F811
    fields: dict[str, Any] = dict(
        method="bank", account_holder=f"{partner.name} Inc", bank_country="DE", iban=IBAN
    )
    fields.update(extra)
    payouts.set_details(session, desk.finance, partner.id, now=NOW, **fields)


class Money(NamedTuple):
    payable: int
    transit: int
    settled: int

    @property
    def total(self) -> int:
        return self.payable + self.transit + self.settled


def money(session: Session, program: Program, partner: Partner) -> Money:
    """The partner's claims payable, payouts in transit and settled balances (0: not opened)."""
    found = []
    for kind in ("claims_payable", "payouts_in_transit", "settled"):
        key = f"program:{program.code}:partner:{partner.code}:{kind}"
        account_id = session.scalar(select(Account.id).where(Account.key == key))
        found.append(0 if account_id is None else ledger.balance(session, account_id).posted)
    return Money(*found)


def read(sessions: sessionmaker[Session], fn: Any) -> Any:
    """Read in a session of its own, closed at once (SQLite: no write lock kept)."""
    with sessions() as session:
        return fn(session)


@pytest.fixture
def fake_stripe() -> Iterator[FakeStripe]:
    fake = start_fake_stripe(timeout_hold=1.5)
    yield fake
    fake.stop()


def stripe_provider(fake: FakeStripe, *, timeout: float = 0.5) -> StripeConnect:
    return StripeConnect(
        fake.api_key, fake.webhook_secret, api_base=fake.api_base, timeout=timeout,
        max_network_retries=0,
    )  # fmt: skip


@pytest.fixture
def stripe(fake_stripe: FakeStripe) -> StripeConnect:
    return stripe_provider(fake_stripe)


SYSTEM = Actor.system("test")
TODAY = date(2026, 8, 15)
