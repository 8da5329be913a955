"""Payouts through Stripe Connect: the real stripe SDK against the fake Stripe server, with its
faults — timeouts (with and without the transfer made), 500s, rate limits, a webhook before the
API answer, the same webhook three times, reversals in and out of order — and recovery after a
crash between the ledger commit and the provider call. Nothing is paid twice, nothing lost.
On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from mdfledger import claims, payouts
from mdfledger.payouts import ProviderEventRecord, TransientPayoutError, WebhookRejected
from mdfledger.payouts.stripe_connect import StripeConnect
from tests.fakestripe import FakeStripe
from tests.payouts.conftest import NOW, Desk, approved_claim, money, read

LATER = NOW + timedelta(minutes=11)  # recovery looks at payouts quiet for 10 minutes


@dataclass
class Receiver:
    """The webhook endpoint as a service call: verify, apply in a session of its own, commit."""

    sessions: sessionmaker[Session]
    provider: StripeConnect
    outcomes: list[tuple[str, str]] = field(default_factory=list)

    def __call__(self, payload: bytes, headers: dict[str, str]) -> int:
        try:
            event = self.provider.parse_webhook(payload, headers.get("Stripe-Signature"))
        except WebhookRejected:
            return 400
        with self.sessions() as session:
            outcome = payouts.apply_event(
                session, payouts.webhook_actor("stripe"), "stripe", event, now=NOW
            )
            session.commit()
        self.outcomes.append((event.type, outcome))
        return 200


@dataclass
class World:
    desk: Desk
    sessions: sessionmaker[Session]
    fake: FakeStripe
    stripe: StripeConnect
    receiver: Receiver
    account: str
    claim_id: int

    @property
    def providers(self) -> dict[str, Any]:
        return {"stripe": self.stripe, "manual": payouts.ManualProvider()}

    def run(self) -> int:
        """A payout run, committed (its send job is what the tests call next)."""
        with self.sessions() as session:
            [payout] = payouts.create_payouts(session, self.desk.finance, now=NOW).payouts
            session.commit()
            return payout.id

    def send(self, payout_id: int) -> str | None:
        return payouts.send_payout(self.sessions, self.providers, payout_id, now=NOW)

    def recover(self, **kw: Any) -> payouts.Recovery:
        return payouts.recover(self.sessions, self.providers, now=kw.pop("now", LATER), **kw)

    def payout(self, payout_id: int) -> payouts.Payout:
        return read(self.sessions, lambda s: s.get(payouts.Payout, payout_id))

    def money(self) -> tuple[int, int, int]:
        return read(self.sessions, lambda s: money(s, self.desk.mdf, self.desk.acme))

    def claim_state(self) -> str:
        return read(self.sessions, lambda s: s.get(claims.Claim, self.claim_id).state)

    def posts(self) -> list[Any]:
        return [c for c in self.fake.calls("POST", "/v1/transfers") if c.path == "/v1/transfers"]


@pytest.fixture
def world(
    session: Session,
    desk: Desk,
    session_factory: sessionmaker[Session],
    fake_stripe: FakeStripe,
    stripe: StripeConnect,
) -> Iterator[World]:
    account = fake_stripe.create_account()
    payouts.set_policy(session, desk.admin, desk.mdf.id, provider="stripe", schedule="immediate",
                       max_attempts=3, now=NOW)  # fmt: skip
    payouts.set_details(session, desk.acme_user, desk.acme.id, method="stripe",
                        stripe_account=account, now=NOW)  # fmt: skip
    claim = approved_claim(session, desk, amount=150_000)
    session.commit()
    session.close()  # SQLite: the jobs' sessions need the write lock
    receiver = Receiver(session_factory, stripe)
    fake_stripe.webhook_handler = receiver
    yield World(desk, session_factory, fake_stripe, stripe, receiver, account, claim.id)
    fake_stripe.webhook_handler = None


def test_a_payout_is_a_transfer_to_the_connected_account_and_settles(world: World) -> None:
    payout_id = world.run()
    assert world.money() == (0, 150_000, 0)
    assert world.send(payout_id) == "settled"
    [transfer] = world.fake.transfers()
    assert (transfer["amount"], transfer["currency"], transfer["destination"]) == (
        150_000, "usd", world.account,
    )  # fmt: skip
    assert transfer["transfer_group"] == f"payout-{payout_id}"
    assert transfer["metadata"]["payout_id"] == str(payout_id)
    assert transfer["metadata"]["claims"] == f"CLM-{world.claim_id:06d}"
    [post] = world.posts()
    assert post.idempotency_key == f"mdfledger-payout-{payout_id}-1"
    payout = world.payout(payout_id)
    assert (payout.state, payout.provider_ref) == ("settled", transfer["id"])
    assert world.money() == (0, 0, 150_000)
    assert world.claim_state() == "paid"
    # The transfer.created webhook races the API answer: whichever comes second changes nothing.
    world.fake.settle()
    [(kind, outcome)] = world.receiver.outcomes
    assert kind == "transfer.created"
    assert outcome in ("applied", f"already settled by {transfer['id']}")
    assert world.money() == (0, 0, 150_000)
    # Sending again (a job run twice) calls nobody.
    assert world.send(payout_id) == "settled"
    assert len(world.posts()) == 1


def test_a_webhook_before_the_api_answer_settles_it_once(world: World) -> None:
    payout_id = world.run()
    world.fake.fail_next("/v1/transfers", "webhook_first", method="POST")
    assert world.send(payout_id) == "settled"
    assert world.receiver.outcomes == [("transfer.created", "applied")]
    assert world.money() == (0, 0, 150_000)
    events = read(world.sessions, lambda s: payouts.timeline(s, world.payout(payout_id)))
    assert [e.event for e in events] == ["create", "settle"]
    assert events[-1].actor == "system:webhook:stripe"


def test_the_same_webhook_three_times_is_applied_once(world: World) -> None:
    world.fake.auto_deliver = False
    payout_id = world.run()
    world.fake.fail_next("/v1/transfers", "timeout", method="POST")
    with pytest.raises(TransientPayoutError):
        world.send(payout_id)
    [event] = world.fake.events("transfer.created")
    deliveries = world.fake.deliver(event["id"], times=3)
    assert [d.status for d in deliveries] == [200, 200, 200]
    assert [o for _, o in world.receiver.outcomes] == ["applied", "duplicate", "duplicate"]
    assert world.money() == (0, 0, 150_000)
    count = read(world.sessions, lambda s: s.scalar(select(func.count(ProviderEventRecord.id))))
    assert count == 1
    assert world.recover().touched == 0  # settled: nothing left to recover


def test_webhook_thrice_from_the_fake_moves_money_once(world: World) -> None:
    payout_id = world.run()
    world.fake.fail_next("/v1/transfers", "webhook_thrice", method="POST")
    world.send(payout_id)
    world.fake.settle()
    outcomes = [o for _, o in world.receiver.outcomes]
    assert len(outcomes) == 3 and outcomes.count("duplicate") == 2
    assert world.money() == (0, 0, 150_000)


def test_a_timeout_after_the_transfer_was_made_is_found_by_recovery(world: World) -> None:
    world.fake.auto_deliver = False  # no webhook to help
    payout_id = world.run()
    world.fake.fail_next("/v1/transfers", "timeout", method="POST")
    with pytest.raises(TransientPayoutError, match="outcome is unknown"):
        world.send(payout_id)
    payout = world.payout(payout_id)
    assert payout.state == "pending" and "unknown outcome" in payout.last_error
    assert world.money() == (0, 150_000, 0)
    assert len(world.fake.transfers()) == 1  # made, though the client never heard
    # Too early: a payout being sent right now is left alone.
    assert world.recover(now=NOW + timedelta(minutes=5)).touched == 0
    result = world.recover()
    assert result.confirmed == [payout_id] and result.resent == []
    assert len(world.posts()) == 1  # found, not sent again
    assert world.payout(payout_id).state == "settled"
    assert world.money() == (0, 0, 150_000)
    assert world.recover(now=LATER + timedelta(hours=1)).touched == 0


def test_a_timeout_before_anything_happened_is_sent_again_with_the_same_key(
    world: World,
) -> None:
    payout_id = world.run()
    world.fake.fail_next("/v1/transfers", "timeout_before", method="POST")
    with pytest.raises(TransientPayoutError):
        world.send(payout_id)
    assert world.fake.transfers() == []
    result = world.recover()
    assert result.resent == [payout_id]
    keys = {c.idempotency_key for c in world.posts()}
    assert keys == {f"mdfledger-payout-{payout_id}-1"}
    assert len(world.fake.transfers()) == 1
    assert world.money() == (0, 0, 150_000)


def test_a_crash_between_the_ledger_commit_and_the_provider_call_is_recovered_once(
    world: World,
) -> None:
    payout_id = world.run()  # committed: money in transit; the send job never ran
    assert world.money() == (0, 150_000, 0)
    first = world.recover()
    assert first.resent == [payout_id]
    second = world.recover(now=LATER + timedelta(hours=1))  # and again: nothing more
    assert second.touched == 0
    assert len(world.posts()) == 1 and len(world.fake.transfers()) == 1
    assert world.money() == (0, 0, 150_000)
    assert world.claim_state() == "paid"


@pytest.mark.parametrize("fault", ["500", "429"])
def test_server_errors_and_rate_limits_leave_it_pending_for_recovery(
    world: World, fault: str
) -> None:
    payout_id = world.run()
    world.fake.fail_next("/v1/transfers", fault, method="POST")
    with pytest.raises(TransientPayoutError):
        world.send(payout_id)
    payout = world.payout(payout_id)
    assert payout.state == "pending"
    assert ("rate limit" if fault == "429" else "HTTP 500") in payout.last_error
    assert world.recover().resent == [payout_id]
    assert len(world.fake.transfers()) == 1
    assert world.money() == (0, 0, 150_000)


def test_a_refusal_fails_the_payout_and_it_is_retried_with_backoff_then_flagged(
    world: World,
) -> None:
    world.fake.set_capability(world.account, "transfers", "inactive")
    payout_id = world.run()
    assert world.send(payout_id) == "failed"
    payout = world.payout(payout_id)
    assert payout.next_attempt_at == NOW + timedelta(hours=1)
    assert world.money() == (150_000, 0, 0)
    assert world.recover(now=NOW + timedelta(minutes=30)).retried == []
    again = world.recover(now=NOW + timedelta(hours=1))
    assert again.retried == [payout_id]
    payout = world.payout(payout_id)
    assert (payout.state, payout.attempt) == ("failed", 2)  # refused again at once
    assert payout.next_attempt_at == NOW + timedelta(hours=1) + timedelta(hours=2)
    third = world.recover(now=NOW + timedelta(hours=3))
    assert third.retried == [payout_id]
    payout = world.payout(payout_id)
    assert payout.state == "flagged" and payout.flagged_reason.startswith("failed 3 times")
    assert world.money() == (150_000, 0, 0)
    assert world.fake.transfers() == []
    keys = [c.idempotency_key for c in world.posts()]
    assert keys == [f"mdfledger-payout-{payout_id}-{n}" for n in (1, 2, 3)]
    # Finance fixes the account and retries by hand.
    world.fake.set_capability(world.account, "transfers", "active")
    with world.sessions() as session:
        payouts.retry_payout(session, world.desk.finance, payout_id, now=NOW)
        session.commit()
    assert world.send(payout_id) == "settled"
    assert world.money() == (0, 0, 150_000)


def test_a_reversal_after_settlement_moves_the_money_back_once_and_flags_it(world: World) -> None:
    payout_id = world.run()
    world.send(payout_id)
    world.fake.settle()
    tr = world.payout(payout_id).provider_ref
    world.fake.reverse(tr)
    world.fake.settle()
    assert world.receiver.outcomes[-1] == ("transfer.reversed", "applied")
    payout = world.payout(payout_id)
    assert payout.state == "reversed" and payout.amount_reversed == 150_000
    assert "reversed transfer" in payout.flagged_reason
    assert world.money() == (150_000, 0, 0)
    [reversed_event] = world.fake.events("transfer.reversed")
    world.fake.deliver(reversed_event["id"], times=2)
    [created] = world.fake.events("transfer.created")
    assert world.fake.deliver(created["id"])[0].status == 200
    assert [o for _, o in world.receiver.outcomes[-3:]] == [
        "duplicate", "duplicate", "duplicate",
    ]  # fmt: skip
    assert world.money() == (150_000, 0, 0)
    # Finance pays it again: a new attempt, a new transfer.
    with world.sessions() as session:
        payouts.retry_payout(session, world.desk.finance, payout_id, now=NOW)
        session.commit()
    assert world.send(payout_id) == "settled"
    assert world.money() == (0, 0, 150_000)
    assert len(world.fake.transfers()) == 2
    world.fake.settle()
    with world.sessions() as session:
        assert payouts.reconcile(session, world.stripe).differences == []


def test_reversed_before_created_is_handled_by_state(world: World) -> None:
    world.fake.auto_deliver = False
    payout_id = world.run()
    world.fake.fail_next("/v1/transfers", "timeout", method="POST")
    with pytest.raises(TransientPayoutError):
        world.send(payout_id)
    [transfer] = world.fake.transfers()
    world.fake.reverse(transfer["id"])
    [reversed_event] = world.fake.events("transfer.reversed")
    [created] = world.fake.events("transfer.created")
    world.fake.deliver(reversed_event["id"])
    assert world.receiver.outcomes[-1] == (
        "transfer.reversed", "applied (out of order: reversed before created)",
    )  # fmt: skip
    assert world.money() == (150_000, 0, 0)
    world.fake.deliver(created["id"])
    assert world.receiver.outcomes[-1] == ("transfer.created", "already reversed")
    assert world.money() == (150_000, 0, 0)
    assert world.recover().touched == 0
    assert world.payout(payout_id).state == "reversed"


def _event(fake: FakeStripe, obj: dict[str, Any], type_: str = "transfer.created") -> bytes:
    return json.dumps({
        "id": f"evt_test_{abs(hash(json.dumps(obj, sort_keys=True) + type_))}", "object": "event",
        "type": type_, "created": fake.now(), "livemode": False, "api_version": "2026-10-28",
        "data": {"object": obj},
    }).encode()  # fmt: skip


def test_unknown_types_unknown_payouts_and_disagreeing_amounts_are_recorded_not_paid(
    world: World,
) -> None:
    world.fake.auto_deliver = False
    payout_id = world.run()
    fake, receive = world.fake, world.receiver

    def post(payload: bytes) -> int:
        return receive(payload, {"Stripe-Signature": fake.sign(payload)})

    assert post(_event(fake, {"object": "charge", "id": "ch_1"}, "charge.succeeded")) == 200
    assert receive.outcomes[-1] == ("charge.succeeded", "ignored: unknown type")
    stray = fake.client().v1.transfers.create(
        params={"amount": 500, "currency": "usd", "destination": world.account}
    )
    assert post(_event(fake, stray.to_dict())) == 200
    assert receive.outcomes[-1] == ("transfer.created", "unknown payout")
    # A transfer naming our payout but for another amount: recorded, flagged, nothing moved.
    odd = fake.client().v1.transfers.create(
        params={"amount": 149_999, "currency": "usd", "destination": world.account,
                "transfer_group": f"payout-{payout_id}",
                "metadata": {"payout_id": str(payout_id), "attempt": "1"}}
    )  # fmt: skip
    assert post(_event(fake, odd.to_dict())) == 200
    outcome = receive.outcomes[-1][1]
    assert outcome.startswith("amount disagrees with the ledger: transfer")
    assert "is 1,499.99 USD, PAY-" in outcome and "is 1,500.00 USD" in outcome
    payout = world.payout(payout_id)
    assert payout.state == "pending" and payout.flagged_reason == outcome
    assert world.money() == (0, 150_000, 0)
    assert world.recover().touched == 0  # finance decides
    records = read(world.sessions, lambda s: s.scalars(select(ProviderEventRecord)).all())
    assert [r.outcome for r in records] == [o for _, o in receive.outcomes]
    assert records[-1].payout_id == payout_id
    # A forged signature is refused before anything is recorded.
    payload = _event(fake, odd.to_dict(), "transfer.updated")
    assert receive(payload, {"Stripe-Signature": fake.sign(payload, secret="whsec_forged")}) == 400
    assert read(world.sessions, lambda s: s.scalar(select(func.count(ProviderEventRecord.id)))) == 3


def test_reconciliation_lists_every_kind_of_difference(world: World) -> None:
    world.fake.auto_deliver = False
    good = world.run()
    world.send(good)
    with world.sessions() as session:
        assert payouts.reconcile(session, world.stripe).ok
    fake = world.fake
    stray = fake.client().v1.transfers.create(
        params={"amount": 700, "currency": "usd", "destination": world.account}
    )
    tr = world.payout(good).provider_ref
    fake.reverse(tr, amount=100)  # reversed there, not (yet) here
    # A second payout, stuck pending although its transfer exists (a lost answer).
    with world.sessions() as session:
        approved_claim(session, world.desk, amount=20_000)
        session.commit()
    stuck = world.run()
    fake.fail_next("/v1/transfers", "timeout", method="POST")
    with pytest.raises(TransientPayoutError):
        world.send(stuck)
    with world.sessions() as session:
        found = payouts.reconcile(session, world.stripe)
    kinds = sorted(d.kind for d in found.differences)
    assert kinds == ["pending_but_paid", "unknown_transfer", "unrecorded_reversal"]
    messages = {d.kind: d.message for d in found.differences}
    assert messages["unknown_transfer"].startswith(f"{stray.id} of 7.00 USD to {world.account}")
    assert "reversed by 1.00 USD at the provider, 0.00 USD here" in messages["unrecorded_reversal"]
    assert found.transfers == 3 and not found.ok
