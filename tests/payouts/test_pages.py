"""Payout pages and the Stripe webhook endpoint through the app: payout details (masked, the
partner's own), finance's Payouts page (holds, Pay now, mark sent and settled, the payment
file), a program's payout policy, and POST /webhooks/stripe with good, forged, stale and
repeated deliveries from the fake Stripe server. On SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from mdfledger import claims, payouts, storage
from mdfledger.payouts import ProviderEventRecord
from tests.fakestripe import FakeStripe
from tests.payouts.conftest import IBAN, stripe_provider
from tests.samples import pdf_bytes, submit_checked
from tests.web.test_requests_pages import World, build_world, post, text, today, visible


@pytest.fixture
def world(
    database_url: str, tmp_path: Path, session_factory: sessionmaker[Session]
) -> Iterator[World]:
    yield from build_world(database_url, tmp_path, session_factory)


def approved(world: World, role: str = "partner", amount: int = 150_000) -> int:
    store = world.app.extensions[storage.APP_KEY]
    actor = world.actors[role]
    with world.sessions() as session:
        claim = claims.create_claim(
            session, actor, program_id=world.mdf, activity_id=world.webinar, title="Webinars",
            starts_on=today() - timedelta(days=10), ends_on=today() - timedelta(days=3),
            actual_cost=400_000, claimed_amount=amount, invoice_issuer="Webinars Inc",
            invoice_number=f"W-{time.monotonic_ns()}", invoice_total=400_000,
        )  # fmt: skip
        claims.add_document(session, actor, store, claim.id, data=pdf_bytes(f"W {claim.id}"),
                            filename="invoice.pdf", kind="invoice")  # fmt: skip
        submit_checked(session, actor, store, claim.id)
        claims.approve_claim(session, world.actors["finance"], claim.id)
        session.commit()
        return claim.id


def only_payout(world: World) -> payouts.Payout:
    with world.sessions() as session:
        return session.scalars(select(payouts.Payout)).one()


def test_a_partner_records_payout_details_and_sees_them_masked(world: World) -> None:
    client = world.client("partner")
    page = client.get("/payout-details", follow_redirects=True)
    assert page.status_code == 200 and "No payout details yet" in visible(page)
    path = f"/partners/{world.acme}/payout-details"
    fields = {"method": "bank", "account_holder": "Acme Networks Inc", "bank_country": "DE",
              "iban": "DE89 3704 0044 0532 0130 01", "tax_form": ""}  # fmt: skip
    refused = post(client, path, fields)
    assert refused.status_code == 422 and "check digits do not match" in visible(refused)
    saved = post(client, path, {**fields, "iban": "DE89 3704 0044 0532 0130 00"})
    assert saved.status_code == 302
    shown = client.get(path)
    assert "\u2022\u2022\u2022\u2022 3000" in text(shown) and IBAN not in text(shown)
    # Saving again without retyping the IBAN keeps it.
    assert post(client, path, {**fields, "iban": "", "bank_country": "AT"}).status_code == 302
    with world.sessions() as session:
        row = session.get(payouts.PayoutDetails, world.acme)
        assert (row.iban, row.bank_country) == (IBAN, "AT")
    other = world.client("partner_b")
    assert other.get(path).status_code == 404
    assert post(other, path, fields).status_code == 404
    auditor = world.client("auditor").get(path)
    assert auditor.status_code == 200 and "<form" not in text(auditor).split("On file")[1]


def test_finance_pays_from_the_payouts_page_and_marks_it_sent_and_settled(world: World) -> None:
    claim_id = approved(world)
    approved(world, role="partner_b", amount=50_000)
    finance = world.client("finance")
    page = visible(finance.get("/payouts"))
    assert "Bolt Systems has no payout details" in page
    assert "Acme Networks has no payout details" in page
    saved = post(finance, f"/partners/{world.acme}/payout-details", {
        "method": "bank", "account_holder": "Acme Networks Inc", "bank_country": "DE",
        "iban": IBAN,
    })  # fmt: skip
    assert saved.status_code == 302, visible(saved)
    ran = post(finance, "/payouts/run", {"program_id": str(world.mdf)}, follow_redirects=True)
    assert "1 payout created" in visible(ran)
    assert "Bolt Systems (MDF26) not paid: Bolt Systems has no payout details" in visible(ran)
    payout = only_payout(world)
    detail = finance.get(f"/payouts/{payout.id}")
    assert "Mark sent" in text(detail) and "Retry now" not in text(detail)
    csv_file = finance.get("/payouts/payment-file.csv")
    rows = list(csv.DictReader(io.StringIO(csv_file.get_data(as_text=True))))
    assert [(r["payout"], r["iban"], r["amount"]) for r in rows] == [
        (str(payout.id), IBAN, "1500.00")
    ]
    assert world.client("auditor").get("/payouts/payment-file.csv").status_code == 403
    sent = post(finance, f"/payouts/{payout.id}/mark_sent", {"text": "BANK-2026-1"})
    assert sent.status_code == 302
    settled = post(finance, f"/payouts/{payout.id}/mark_settled", {"text": ""},
                   follow_redirects=True)  # fmt: skip
    assert "marked settled" in visible(settled)
    with world.sessions() as session:
        assert session.get(claims.Claim, claim_id).state == "paid"
    refused = post(finance, f"/payouts/{payout.id}/cancel", {"text": "no"})
    assert refused.status_code == 409 and "settled cannot be cancelled" in visible(refused)
    # The partner sees their payout and its timeline, not finance's buttons.
    mine = world.client("partner")
    assert payout.reference in visible(mine.get("/payouts"))
    theirs = visible(mine.get(f"/payouts/{payout.id}"))
    assert "Mark sent" not in theirs and "BANK-2026-1" in theirs
    assert world.client("partner_b").get(f"/payouts/{payout.id}").status_code == 404
    assert post(mine, f"/payouts/{payout.id}/retry").status_code == 403


def test_admins_set_how_a_program_pays(world: World) -> None:
    path = f"/programs/{world.mdf}/payouts"
    admin = world.client("admin")
    bad = post(admin, path, {"provider": "manual", "schedule": "weekly", "run_day": "9",
                             "max_attempts": "5"})  # fmt: skip
    assert bad.status_code == 422 and "a weekly run day is a weekday" in visible(bad)
    saved = post(admin, path, {"provider": "manual", "schedule": "weekly", "run_day": "4",
                               "minimum_amount": "100.00", "requires_tax_info": "y",
                               "max_attempts": "3"}, follow_redirects=True)  # fmt: skip
    assert "weekly, on Fridays" in visible(saved)
    with world.sessions() as session:
        policy = payouts.policy_of(session, world.mdf)
    assert (policy.minimum_amount, policy.requires_tax_info, policy.max_attempts) == (
        10_000, True, 3,
    )  # fmt: skip
    finance = world.client("finance")
    assert "<form" not in text(finance.get(path)).split("Now")[1]
    assert post(finance, path, {"provider": "stripe", "schedule": "immediate"}).status_code == 403


# --- the webhook endpoint ------------------------------------------------------------------------


@pytest.fixture
def stripe_world(world: World, fake_stripe: FakeStripe) -> Iterator[World]:
    """MDF26 pays through Stripe; ACME has a connected account; the app's webhook endpoint
    receives the fake's deliveries."""
    provider = stripe_provider(fake_stripe)
    world.app.extensions[payouts.APP_KEY] = {"stripe": provider, "manual": payouts.ManualProvider()}
    account = fake_stripe.create_account()
    with world.sessions() as session:
        payouts.set_policy(session, world.actors["admin"], world.mdf, provider="stripe",
                           schedule="immediate")  # fmt: skip
        payouts.set_details(session, world.actors["partner"], world.acme, method="stripe",
                            stripe_account=account)  # fmt: skip
        session.commit()

    def endpoint(payload: bytes, headers: dict[str, str]) -> int:
        return world.app.test_client().post("/webhooks/stripe", data=payload, headers=headers)

    fake_stripe.webhook_handler = endpoint
    world.fake = fake_stripe  # type: ignore[attr-defined]
    world.stripe = provider  # type: ignore[attr-defined]
    yield world
    fake_stripe.webhook_handler = None


def _records(world: World) -> int:
    with world.sessions() as session:
        return session.scalar(select(func.count(ProviderEventRecord.id))) or 0


def _money(world: World) -> tuple[int, int, int]:
    from tests.payouts.conftest import money

    with world.sessions() as session:
        program = session.get(payouts.service.Program, world.mdf)
        partner = session.get(payouts.service.Partner, world.acme)
        return tuple(money(session, program, partner))


def test_the_webhook_before_the_api_answer_and_repeats_through_the_endpoint(
    stripe_world: World,
) -> None:
    world, fake = stripe_world, stripe_world.fake  # type: ignore[attr-defined]
    approved(world)
    with world.sessions() as session:
        [payout] = payouts.create_payouts(session, world.actors["finance"]).payouts
        session.commit()
    fake.fail_next("/v1/transfers", "webhook_first", method="POST")
    state = payouts.send_payout(world.sessions, world.app.extensions[payouts.APP_KEY], payout.id)
    assert state == "settled"
    [delivery] = fake.deliveries
    assert delivery.status == 200
    assert _money(world) == (0, 0, 150_000)
    [event] = fake.events("transfer.created")
    again = [d.status for d in fake.deliver(event["id"], times=3)]
    assert again == [200, 200, 200]
    assert _records(world) == 1 and _money(world) == (0, 0, 150_000)
    client = world.app.test_client()
    payload = fake.event_payload(event["id"])
    response = client.post("/webhooks/stripe", data=payload,
                           headers={"Stripe-Signature": fake.sign(payload)})  # fmt: skip
    assert response.json == {"outcome": "duplicate"}


def test_forged_stale_and_unsigned_webhooks_are_400_and_record_nothing(
    stripe_world: World,
) -> None:
    world, fake = stripe_world, stripe_world.fake  # type: ignore[attr-defined]
    client = world.app.test_client()
    payload = json.dumps({
        "id": "evt_forged", "object": "event", "type": "transfer.created",
        "created": int(time.time()), "livemode": False,
        "data": {"object": {"object": "transfer", "id": "tr_x", "amount": 100,
                            "currency": "usd", "destination": "acct_x", "created": 1,
                            "metadata": {"payout_id": "1"}}},
    }).encode()  # fmt: skip
    cases = {
        "forged": fake.sign(payload, secret="whsec_somebody_else"),
        "stale": fake.sign(payload, timestamp=int(time.time()) - 3600),
        "garbage": "nonsense",
    }
    for name, signature in cases.items():
        response = client.post("/webhooks/stripe", data=payload,
                               headers={"Stripe-Signature": signature})  # fmt: skip
        assert response.status_code == 400, name
        assert response.json["error"], name
    missing = client.post("/webhooks/stripe", data=payload)
    assert missing.status_code == 400 and "no Stripe-Signature" in missing.json["error"]
    # Signed, but not an event.
    junk = b"[1, 2, 3]"
    bad = client.post("/webhooks/stripe", data=junk, headers={"Stripe-Signature": fake.sign(junk)})
    assert bad.status_code == 400
    assert _records(world) == 0
    # Signed and well formed: recorded, whatever it names.
    good = client.post("/webhooks/stripe", data=payload,
                       headers={"Stripe-Signature": fake.sign(payload)})  # fmt: skip
    assert good.status_code == 200 and good.json == {"outcome": "unknown payout"}
    unknown = json.dumps({
        "id": "evt_other", "object": "event", "type": "payout.paid", "created": int(time.time()),
        "livemode": False, "data": {"object": {"object": "payout", "id": "po_1"}},
    }).encode()  # fmt: skip
    response = client.post("/webhooks/stripe", data=unknown,
                           headers={"Stripe-Signature": fake.sign(unknown)})  # fmt: skip
    assert response.json == {"outcome": "ignored: unknown type"}
    assert _records(world) == 2


def test_without_stripe_the_endpoint_says_so(world: World) -> None:
    response = world.app.test_client().post("/webhooks/stripe", data=b"{}")
    assert response.status_code == 404
    assert re.search("not configured", response.json["error"])
