"""Property: whatever happens to a payout — sends, timeouts (with and without the transfer
made), refusals, recovery, webhooks in any order and repeated, reversals, finance's retries
and cancellations — the partner's claims payable + payouts in transit + settled equals what
was approved, the ledger agrees with the payouts, the provider holds at most one live
transfer per payout, and no attempt settles twice. On SQLite and PostgreSQL.

The provider here is an in-memory stand-in with Stripe's idempotency (the same key replays the
first result); the Stripe SDK against the fake server is in test_stripe_flows.py."""

from __future__ import annotations

import contextlib
import itertools
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mdfledger import payouts
from mdfledger.errors import DomainError
from mdfledger.payouts import (
    PayoutEvent,
    ProviderError,
    ProviderEvent,
    ProviderTransfer,
    TransferRequest,
)
from tests.payouts.conftest import NOW, Desk, approved_claim, money

ACCOUNT = "acct_propertytest0001"


@dataclass
class Stub:
    """Transfers by idempotency key; the next call's fault is set by the test."""

    name: str = "stripe"
    by_key: dict[str, ProviderTransfer] = field(default_factory=dict)
    fault: str | None = None
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def send(self, request: TransferRequest) -> ProviderTransfer:
        fault, self.fault = self.fault, None
        if request.idempotency_key in self.by_key:
            return self.by_key[request.idempotency_key]  # replayed, whatever else happens
        if fault == "refuse":
            raise ProviderError("the account cannot receive transfers", retriable=False)
        if fault == "timeout_before":
            raise ProviderError("timed out", retriable=True)
        transfer = ProviderTransfer(
            f"tr_{next(self.ids)}", request.amount, request.currency, request.destination,
            request.group, dict(request.metadata), NOW,
        )  # fmt: skip
        self.by_key[request.idempotency_key] = transfer
        if fault == "timeout":
            raise ProviderError("timed out after the work was done", retriable=True)
        return transfer

    def find(self, group: str) -> ProviderTransfer | None:
        found = [t for t in self.by_key.values() if t.group == group]
        return found[-1] if found else None

    def transfers(self, *, since: datetime | None = None) -> Iterator[ProviderTransfer]:
        return iter(list(self.by_key.values()))

    def parse_webhook(self, payload: bytes, signature: str | None) -> ProviderEvent:
        raise NotImplementedError

    def reverse_latest(self) -> ProviderTransfer | None:
        if not self.by_key:
            return None
        key, latest = list(self.by_key.items())[-1]
        self.by_key[key] = replace(latest, amount_reversed=latest.amount)
        return self.by_key[key]


STEPS = st.lists(
    st.sampled_from(
        ["send", "timeout", "timeout_before", "refuse", "recover", "created", "created",
         "repeat", "reverse", "retry", "cancel", "wait"]
    ),
    min_size=1,
    max_size=14,
)  # fmt: skip


@pytest.fixture
def sessions(session: Session, desk: Desk, session_factory: sessionmaker[Session]):
    payouts.set_policy(session, desk.admin, desk.mdf.id, provider="stripe", schedule="immediate",
                       max_attempts=3, now=NOW)  # fmt: skip
    payouts.set_details(session, desk.acme_user, desk.acme.id, method="stripe",
                        stripe_account=ACCOUNT, now=NOW)  # fmt: skip
    session.commit()
    session.close()
    return session_factory


def test_money_is_never_lost_or_paid_twice(desk: Desk, sessions: sessionmaker[Session]) -> None:
    approved_total = [0]
    events = itertools.count(1)

    @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
    @given(steps=STEPS)
    def run(steps: list[str]) -> None:
        stub = Stub()
        providers = {"stripe": stub}
        with sessions() as session:
            approved_claim(session, desk, amount=10_000)
            [payout] = payouts.create_payouts(session, desk.finance, now=NOW).payouts
            session.commit()
            payout_id = payout.id
        approved_total[0] += 10_000
        now = NOW
        last_event: ProviderEvent | None = None

        def deliver(event: ProviderEvent) -> None:
            with sessions() as session:
                payouts.apply_event(session, payouts.webhook_actor("stripe"), "stripe", event,
                                    now=now)  # fmt: skip
                session.commit()

        for step in steps:
            now += timedelta(hours=3)  # past any backoff of three attempts
            if step in ("timeout", "timeout_before", "refuse"):
                stub.fault = step
            if step in ("send", "timeout", "timeout_before", "refuse"):
                with contextlib.suppress(payouts.TransientPayoutError):
                    payouts.send_payout(sessions, providers, payout_id, now=now)
            elif step == "recover":
                payouts.recover(sessions, providers, now=now)
            elif step in ("created", "reverse") and stub.by_key:
                transfer = stub.reverse_latest() if step == "reverse" else list(
                    stub.by_key.values()
                )[-1]  # fmt: skip
                kind = "transfer.reversed" if step == "reverse" else "transfer.created"
                last_event = ProviderEvent(f"evt_{next(events)}", kind, now, transfer, False)
                deliver(last_event)
            elif step == "repeat" and last_event is not None:
                deliver(last_event)
            elif step in ("retry", "cancel"):
                with sessions() as session:
                    try:
                        if step == "retry":
                            payouts.retry_payout(session, desk.finance, payout_id, now=now)
                        else:
                            payouts.cancel_payout(session, desk.finance, payout_id,
                                                  reason="given up", now=now)  # fmt: skip
                        session.commit()
                    except DomainError:
                        session.rollback()
            check(sessions, desk, stub, approved_total[0], payout_id)

    run()


def check(
    sessions: sessionmaker[Session], desk: Desk, stub: Stub, approved: int, payout_id: int
) -> None:
    with sessions() as session:
        held = money(session, desk.mdf, desk.acme)
        assert held.total == approved
        found = payouts.reconcile(session, payouts.ManualProvider())  # the ledger's side only
        assert found.differences == [], found.differences
        payout = session.get(payouts.Payout, payout_id)
        # Earlier examples' payouts may be sent by this one's recovery: each on its own.
        live_per_payout = Counter(
            t.group for t in stub.by_key.values() if t.amount_reversed < t.amount
        )
        assert all(n == 1 for n in live_per_payout.values()), live_per_payout
        live = [
            t
            for t in stub.by_key.values()
            if t.group == payout.transfer_group and t.amount_reversed < t.amount
        ]
        if payout.state == "settled":
            assert live and live[0].id == payout.provider_ref
        settles = Counter(
            session.scalars(
                select(PayoutEvent.attempt).where(
                    PayoutEvent.payout_id == payout_id, PayoutEvent.event == "settle"
                )
            )
        )
        assert all(n == 1 for n in settles.values()), settles
