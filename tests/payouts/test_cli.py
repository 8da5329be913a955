"""`mdfledger payouts run|recover` and `mdfledger reconcile payouts` against the fake Stripe
server: differences listed, exit status 1 when there is any. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from mdfledger import create_app, payouts
from tests.fakestripe import FakeStripe
from tests.payouts.conftest import NOW, Desk, approved_claim, stripe_provider


@pytest.fixture
def app(
    session: Session, desk: Desk, database_url: str, tmp_path: Path, fake_stripe: FakeStripe
) -> Flask:
    account = fake_stripe.create_account()
    payouts.set_policy(session, desk.admin, desk.mdf.id, provider="stripe", schedule="immediate",
                       now=NOW)  # fmt: skip
    payouts.set_details(session, desk.acme_user, desk.acme.id, method="stripe",
                        stripe_account=account, now=NOW)  # fmt: skip
    approved_claim(session, desk)
    approved_claim(session, desk, partner="bolt")  # BOLT has no payout details: held
    session.commit()
    session.close()
    app = create_app({"database_url": database_url, "env": "test", "instance_path": tmp_path})
    app.extensions[payouts.APP_KEY] = {
        "stripe": stripe_provider(fake_stripe),
        "manual": payouts.ManualProvider(),
    }
    return app


def test_run_recover_and_reconcile(app: Flask, fake_stripe: FakeStripe) -> None:
    runner = app.test_cli_runner()
    ran = runner.invoke(args=["payouts", "run", "--program", "MDF26"])
    assert ran.exit_code == 0, ran.output
    assert "1 payout(s) created, 1 partner(s) not paid" in ran.output
    assert "not paid: Bolt Systems in MDF26: Bolt Systems has no payout details" in ran.output
    recovered = runner.invoke(args=["payouts", "recover", "--older-than", "0"])
    assert recovered.exit_code == 0, recovered.output
    assert "sent again with the same key: 1" in recovered.output
    assert len(fake_stripe.transfers()) == 1
    fake_stripe.settle()

    clean = runner.invoke(args=["reconcile", "payouts"])
    assert clean.exit_code == 0, clean.output
    assert "stripe: 1 transfer(s), 1 payout(s)" in clean.output and "no differences" in clean.output

    stray = fake_stripe.client().v1.transfers.create(
        params={"amount": 1234, "currency": "usd", "destination": fake_stripe.create_account()}
    )
    found = runner.invoke(args=["reconcile", "payouts"])
    assert found.exit_code == 1
    assert f"unknown_transfer: {stray.id} of 12.34 USD" in found.output
    assert "1 difference(s)" in found.output
    as_json = runner.invoke(args=["reconcile", "payouts", "--json", "--since", "2000-01-01"])
    assert as_json.exit_code == 1
    body = json.loads(as_json.output)
    assert body["ok"] is False and [d["kind"] for d in body["differences"]] == ["unknown_transfer"]
    bad = runner.invoke(args=["reconcile", "payouts", "--since", "last tuesday"])
    assert bad.exit_code == 2 and "--since" in bad.output
    manual = runner.invoke(args=["reconcile", "payouts", "--provider", "manual"])
    assert manual.exit_code == 0, manual.output  # the ledger agrees with the payouts
