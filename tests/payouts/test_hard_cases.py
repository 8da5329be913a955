"""Hard cases a review found: a payout reversed only in part cannot be cancelled (its claims
would be paid again in full), one partner's refusal never stops a run for everyone, recovery
never retries a payout flagged for finance, and malformed webhooks are 400s, never 500s."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from mdfledger import payouts
from mdfledger.errors import Conflict
from mdfledger.payouts import TransientPayoutError, service
from mdfledger.payouts.provider import ProviderTransfer
from tests.payouts.conftest import (  # noqa: F401  (fixtures)
    NOW,
    Desk,
    approved_claim,
    bank_details,
    fake_stripe,
    money,
    stripe,
)
from tests.payouts.test_pages import stripe_world, world  # noqa: F401  (fixtures)
from tests.payouts.test_stripe_flows import World
from tests.payouts.test_stripe_flows import world as stripe_flows  # noqa: F401


def settled_then_partly_reversed(session: Session, desk: Desk) -> payouts.Payout:
    approved_claim(session, desk, amount=150_000)
    [payout] = payouts.create_payouts(session, desk.finance, now=NOW).payouts
    payouts.mark_sent(session, desk.finance, payout.id, reference="BANK-1", now=NOW)
    payouts.mark_settled(session, desk.finance, payout.id, now=NOW)
    back = ProviderTransfer(
        id="tr_1", amount=150_000, currency="USD", destination="", group=None, metadata={},
        created=NOW, amount_reversed=50_000,
    )  # fmt: skip
    service.reverse(session, service.PAYOUTS, payout, back, now=NOW)
    return payout


def test_a_payout_reversed_in_part_cannot_be_cancelled(session: Session, desk: Desk):
    bank_details(session, desk, desk.acme)
    payout = settled_then_partly_reversed(session, desk)
    assert payout.state == "reversed"
    assert money(session, desk.mdf, desk.acme).settled == 100_000
    with pytest.raises(Conflict, match=r"reversed only in part: 1,000\.00 USD reached"):
        payouts.cancel_payout(session, desk.finance, payout.id, reason="pay by hand", now=NOW)
    # Nothing changed, and nothing is paid again: the claim stays in its payout, the 500.00
    # waits in claims payable for finance.
    assert payout.state == "reversed" and payout.amount_reversed == 50_000
    assert payouts.create_payouts(session, desk.finance, due_only=False, now=NOW).payouts == []
    assert money(session, desk.mdf, desk.acme) == (50_000, 0, 100_000)


def test_one_partners_refusal_does_not_stop_the_run(session: Session, desk: Desk, monkeypatch):
    approved_claim(session, desk, amount=150_000)
    approved_claim(session, desk, amount=10_000, partner="bolt")
    bank_details(session, desk, desk.acme)
    bank_details(session, desk, desk.bolt)
    real = service._create

    def refuse_acme(session, actor, group, now):
        if group.partner.id == desk.acme.id:
            raise Conflict("claims payable holds less than the claims")
        return real(session, actor, group, now)

    monkeypatch.setattr(service, "_create", refuse_acme)
    run = payouts.create_payouts(session, desk.finance, now=NOW)
    assert [p.partner_id for p in run.payouts] == [desk.bolt.id]
    [skipped] = run.skipped
    assert skipped.partner_id == desk.acme.id and not skipped.held
    assert skipped.reason == "not paid: claims payable holds less than the claims"
    # Acme's refused payout left nothing behind; Bolt's money is on its way.
    assert [p.partner_id for p in session.scalars(select(payouts.Payout))] == [desk.bolt.id]
    assert money(session, desk.mdf, desk.acme) == (150_000, 0, 0)
    assert money(session, desk.mdf, desk.bolt) == (0, 10_000, 0)


def test_recovery_never_retries_a_payout_flagged_for_finance(stripe_flows: World):  # noqa: F811
    flows, fake = stripe_flows, stripe_flows.fake
    fake.auto_deliver = False
    payout_id = flows.run()
    fake.fail_next("/v1/transfers", "timeout", method="POST")  # made at Stripe, answer lost
    with pytest.raises(TransientPayoutError):
        flows.send(payout_id)
    with flows.sessions() as session:
        payout = service.load(session, service.PAYOUTS, payout_id, lock=True)
        service.attention(session, service.PAYOUTS, payout, "unclear", ref=None, now=NOW)
        session.commit()
    with flows.sessions() as session:
        payouts.mark_failed(session, flows.desk.finance, payout_id, reason="unclear", now=NOW)
        session.commit()
    [event] = fake.events("transfer.created")
    fake.deliver(event["id"])  # the transfer turns up: flagged "may be paid twice"
    assert "paid twice" in (flows.payout(payout_id).flagged_reason or "")
    flows.recover(now=NOW + timedelta(hours=3))
    assert len(fake.transfers()) == 1 and flows.payout(payout_id).state == "failed"


def event(transfer: dict | None = None, **top) -> bytes:
    body = {"id": f"evt_{time.monotonic_ns()}", "object": "event", "type": "transfer.created",
            "created": int(time.time()), "livemode": False,
            "data": {"object": {"object": "transfer", "id": "tr_x", "amount": 100,
                                "currency": "usd", "destination": "acct_x", "created": 1,
                                "metadata": {}, **(transfer or {})}}}  # fmt: skip
    body.update(top)
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (event(data="x"), "a transfer event without its transfer"),
        (event({"metadata": ["a"]}), "malformed"),
        (event({"created": 10**20}), "malformed"),
        (event(created=10**20), "not a Unix time"),
    ],
)
def test_malformed_signed_webhooks_are_refused(stripe_world, payload: bytes, reason: str):  # noqa: F811
    client = stripe_world.app.test_client()
    answer = client.post(
        "/webhooks/stripe", data=payload,
        headers={"Stripe-Signature": stripe_world.fake.sign(payload)},
    )  # fmt: skip
    assert answer.status_code == 400 and reason in answer.get_data(as_text=True)


def test_a_timestamp_in_other_digits_is_refused(stripe_world):  # noqa: F811
    answer = stripe_world.app.test_client().post(
        "/webhooks/stripe", data=b"{}", headers={"Stripe-Signature": "t=\u00b2,v1=abc"}
    )
    assert answer.status_code == 400 and "no timestamp" in answer.get_data(as_text=True)
