"""Payouts over the API: payout details (masked, partner isolation), policies, runs, payouts,
finance's actions and the payment file. On SQLite and PostgreSQL. `add_payouts_world` also
gives the API access matrix (tests/api/test_api_access.py) its payouts."""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from mdfledger import claims, payouts, storage
from mdfledger.actor import Actor
from mdfledger.payouts import Payout
from tests.api.test_api_foundation import answer
from tests.api.test_programs_api import World, build_world, ok
from tests.api.test_requests_api import _user_actor, add_claims_world, today
from tests.payouts.conftest import IBAN
from tests.samples import pdf_bytes, submit_checked

_numbers = itertools.count(1)
BANK = {"method": "bank", "account_holder": "Acme Networks Inc", "bank_country": "DE", "iban": IBAN}


def _approved(session: Session, world: World, actor: Actor, finance: Actor) -> claims.Claim:
    store = world.app.extensions[storage.APP_KEY]
    n = next(_numbers)
    claim = claims.create_claim(
        session, actor, program_id=world.clm, activity_id=world.ads, title=f"Paid ads {n}",
        starts_on=today() - timedelta(days=3), ends_on=today(), actual_cost=10_000,
        claimed_amount=2_000, invoice_issuer=f"Payee {n}", invoice_number=f"PAY-INV-{n}",
        invoice_total=10_000,
    )  # fmt: skip
    claims.add_document(
        session, actor, store, claim.id, data=pdf_bytes(f"Payee invoice {n}"),
        filename=f"invoice-{n}.pdf", kind="invoice",
    )  # fmt: skip
    submit_checked(session, actor, store, claim.id)
    return claims.approve_claim(session, finance, claim.id)


def add_payouts_world(world: World) -> World:
    """On top of add_claims_world: bank details for ACME and BOLT, and manual payouts in CLM27:
    ACME's `payout`, `payout_send`, `payout_settle`, `payout_fail` (pending), `payout_retry`
    and `payout_cancel` (failed); BOLT's `bolt_payout` (pending)."""
    with world.sessions() as session:
        acme = _user_actor(session, "ada@acme.example")
        bolt = _user_actor(session, "bo@bolt.example")
        finance = _user_actor(session, "finance@example.com")
        for partner_id, holder in ((world.acme, "Acme Networks Inc"), (world.bolt, "Bolt Ltd")):
            payouts.set_details(session, finance, partner_id, **{**BANK, "account_holder": holder})
        made: dict[str, int] = {}
        for name in ("payout", "payout_send", "payout_settle", "payout_fail", "payout_retry",
                     "payout_cancel", "bolt_payout"):  # fmt: skip
            owner = bolt if name.startswith("bolt") else acme
            claim = _approved(session, world, owner, finance)
            run = payouts.create_payouts(session, finance, claim_ids=[claim.id])
            made[name] = run.payouts[0].id
        for name in ("payout_retry", "payout_cancel"):
            payouts.mark_failed(session, finance, made[name], reason="returned by the bank")
        session.commit()
    world.ids.update(made)
    return world


@pytest.fixture
def world(
    database_url: str, tmp_path: Path, session_factory: sessionmaker[Session], actor: Actor
) -> Iterator[World]:
    for built in build_world(database_url, tmp_path, session_factory, actor):
        yield add_payouts_world(add_claims_world(built))


def test_payout_details_go_out_masked_and_only_to_their_partner(world: World) -> None:
    body = ok(world.get("partner", f"/api/v1/partners/{world.acme}/payout-details"))
    assert body["on_file"] is True and body["method"] == "bank"
    assert body["iban"] == "\u2022\u2022\u2022\u2022 3000"
    assert IBAN not in str(body)
    mine = {**BANK, "iban": "GB82 WEST 1234 5698 7654 32", "tax_form": "W-8BEN-E",
            "tax_id": "GB123456789", "tax_received_on": today().isoformat()}  # fmt: skip
    body = ok(world.call("partner", "PUT", f"/api/v1/partners/{world.acme}/payout-details",
                         json=mine))  # fmt: skip
    assert (body["iban"], body["tax_id"]) == (
        "\u2022\u2022\u2022\u2022 5432",
        "\u2022\u2022\u2022\u2022 6789",
    )
    bad = world.call("partner", "PUT", f"/api/v1/partners/{world.acme}/payout-details",
                     json={**BANK, "iban": "GB82 WEST 1234 5698 7654 33"})  # fmt: skip
    assert bad.status_code == 422 and bad.json["error"]["details"]["field"] == "iban"
    theirs = world.get("partner", f"/api/v1/partners/{world.bolt}/payout-details")
    nowhere = world.get("partner", "/api/v1/partners/999/payout-details")
    assert theirs.status_code == nowhere.status_code == 404
    assert answer(theirs) == answer(nowhere).replace("999", str(world.bolt))
    put = world.call("partner", "PUT", f"/api/v1/partners/{world.bolt}/payout-details", json=BANK)
    assert put.status_code == 404


def test_finance_runs_and_settles_payouts_and_partners_see_their_own(world: World) -> None:
    listed = ok(world.get("partner", "/api/v1/payouts?per_page=200"))
    assert listed["items"] and {p["partner_id"] for p in listed["items"]} == {world.acme}
    assert world.get("partner", f"/api/v1/payouts/{world.bolt_payout}").status_code == 404
    detail = ok(world.get("partner", f"/api/v1/payouts/{world.payout}"))
    assert detail["state"] == "pending" and detail["amount"] == "20.00"
    assert [e["event"] for e in detail["timeline"]] == ["create"]
    path = f"/api/v1/payouts/{world.payout}"
    sent = ok(world.post("finance", f"{path}/mark-sent", json={"reference": "BANK-77"}))
    assert (sent["state"], sent["provider_ref"]) == ("sent", "BANK-77")
    settled = ok(world.post("finance", f"{path}/mark-settled", json={}))
    assert settled["state"] == "settled"
    again = world.post("finance", f"{path}/mark-failed", json={"reason": "oops"})
    assert again.status_code == 409 and again.json["error"]["code"] == "invalid_transition"
    with world.sessions() as session:
        [claim_id] = [
            c.id for _, c in payouts.payout_claims(session, session.get(Payout, world.payout))
        ]
        assert session.get(claims.Claim, claim_id).state == "paid"
    # A new approved claim is payable, then paid by a run.
    with world.sessions() as session:
        finance = _user_actor(session, "finance@example.com")
        acme = _user_actor(session, "ada@acme.example")
        claim = _approved(session, world, acme, finance)
        session.commit()
    payable = ok(world.get("finance", "/api/v1/payouts/payable"))["items"]
    assert [(g["partner_id"], g["claim_ids"], g["hold"]) for g in payable] == [
        (world.acme, [claim.id], None)
    ]
    run = ok(world.post("finance", "/api/v1/payouts/run", json={"program_id": world.clm}), 201)
    assert [p["amount"] for p in run["payouts"]] == ["20.00"] and run["skipped"] == []
    assert ok(world.post("finance", "/api/v1/payouts/run", json={}), 201)["payouts"] == []


def test_the_payment_file_is_for_finance_and_has_full_account_numbers(world: World) -> None:
    response = world.get("finance", "/api/v1/payouts/payment-file")
    assert response.status_code == 200 and response.content_type.startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert {r["iban"] for r in rows} == {IBAN}
    assert {r["payout"] for r in rows} >= {str(world.payout), str(world.bolt_payout)}
    for role in ("auditor", "partner"):
        assert world.get(role, "/api/v1/payouts/payment-file").status_code == 403


def test_payout_policies_are_read_by_staff_and_set_by_admins(world: World) -> None:
    path = f"/api/v1/programs/{world.clm}/payout-policy"
    assert ok(world.get("auditor", path))["provider"] == "manual"
    weekly = {"provider": "stripe", "schedule": "weekly", "run_day": 0, "minimum_amount": "50.00",
              "requires_tax_info": True, "max_attempts": 3}  # fmt: skip
    body = ok(world.call("admin", "PUT", path, json=weekly))
    assert (body["schedule_text"], body["minimum_amount"]) == ("weekly, on Mondays", "50.00")
    bad = world.call("admin", "PUT", path, json={**weekly, "run_day": 9})
    assert bad.status_code == 422 and bad.json["error"]["details"]["field"] == "run_day"
    assert world.call("finance", "PUT", path, json=weekly).status_code == 403
    # Held now: ACME's details are a bank account and the program pays through Stripe.
    holds = ok(world.get("partner", f"/api/v1/partners/{world.acme}/payout-details"))["holds"]
    assert [h["program_id"] for h in holds] == [world.clm]
    assert "pays through Stripe Connect" in holds[0]["reason"]
