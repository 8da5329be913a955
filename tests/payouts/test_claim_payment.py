"""The claim page says how an approved claim is being paid: its payout and that payout's
state, or why it waits (a hold naming what to add, or the program's next run)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mdfledger import claims, payouts
from mdfledger.web import longdate
from tests.payouts.conftest import IBAN
from tests.payouts.test_pages import approved
from tests.web.test_requests_pages import World, build_world, post, today, visible


@pytest.fixture
def world(
    database_url: str, tmp_path: Path, session_factory: sessionmaker[Session]
) -> Iterator[World]:
    yield from build_world(database_url, tmp_path, session_factory)


def claim_page(world: World, role: str, claim_id: int) -> str:
    response = world.client(role).get(f"/claims/{claim_id}")
    assert response.status_code == 200
    return visible(response)


def test_a_held_claim_says_what_to_add_then_its_payout_and_when_it_settled(world: World):
    claim_id = approved(world)
    for role in ("partner", "finance"):
        page = claim_page(world, role, claim_id)
        assert (
            "Payment Waiting to be paid: Acme Networks has no payout details: add a bank account"
            " on the Payout details page." in page
        )

    with world.sessions() as session:
        payouts.set_details(
            session, world.actors["partner"], world.acme, method="bank",
            account_holder="Acme Networks", bank_country="DE", iban=IBAN, payout_currency="USD",
        )  # fmt: skip
        payouts.create_payouts(session, world.actors["finance"], due_only=False)
        session.commit()
        payout = session.scalars(select(payouts.Payout)).one()
    page = claim_page(world, "partner", claim_id)
    # (visible() puts a space where a tag was: after the link and the state.)
    assert f"Paid in {payout.reference} , 1,500.00 USD to IBAN •••• 3000: Pending ." in page
    assert "Finance pays it by bank transfer" in page and "Waiting to be paid" not in page

    client = world.client("finance")
    sent = post(client, f"/payouts/{payout.id}/mark_sent", {"text": "BANK-1"})
    assert sent.status_code == 302
    assert "1,500.00 USD to IBAN •••• 3000: Sent ." in claim_page(world, "partner", claim_id)
    assert post(client, f"/payouts/{payout.id}/mark_settled", {}).status_code == 302
    with world.sessions() as session:
        assert session.get(claims.Claim, claim_id).state == "paid"
        settled_on = longdate(session.get(payouts.Payout, payout.id).settled_at.date())
    page = claim_page(world, "partner", claim_id)
    assert f"1,500.00 USD to IBAN •••• 3000: Settled on {settled_on}." in page
    assert "Finance pays it by bank transfer" not in page


def test_a_claim_of_a_scheduled_program_waits_for_the_next_run(world: World):
    with world.sessions() as session:
        payouts.set_policy(session, world.actors["admin"], world.mdf, provider="manual",
                           schedule="monthly", run_day=1)  # fmt: skip
        payouts.set_details(
            session, world.actors["partner"], world.acme, method="bank",
            account_holder="Acme Networks", bank_country="DE", iban=IBAN,
        )  # fmt: skip
        session.commit()
    claim_id = approved(world)
    page = claim_page(world, "partner", claim_id)
    assert "Waiting for the next payout run: MDF26 pays monthly, on day 1." in page
    assert "Paid in" not in page and "Waiting to be paid" not in page


def test_claims_not_approved_have_no_payment_section(world: World):
    with world.sessions() as session:
        draft = claims.create_claim(
            session, world.actors["partner"], program_id=world.mdf, activity_id=world.webinar,
            title="Webinars", starts_on=today() - timedelta(days=10),
            ends_on=today() - timedelta(days=3), actual_cost=400_000, claimed_amount=150_000,
        )  # fmt: skip
        assert payouts.claim_payment(session, draft) is None
        session.commit()
        claim_id = draft.id
    assert "Payment" not in claim_page(world, "partner", claim_id)
