"""Upkeep, the frequent job (`mdfledger upkeep`, and the embedded scheduler's tick): a
scheduled program is paid on its run day, events waiting for their destination go out, and
activity signals run only when asked. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from mdfledger import engagement, jobs, payouts, verification
from mdfledger.actor import Actor
from mdfledger.db import make_session_factory
from mdfledger.engagement.senders import WebhookSender
from mdfledger.programs import rules as program_rules
from tests.claims.conftest import NOW, Desk, desk  # noqa: F401  (the fixture)
from tests.engagement.receiver import Receiver
from tests.payouts.conftest import approved_claim, bank_details


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


def test_upkeep_pays_on_the_run_day_and_delivers_what_waits(
    session: Session,
    desk: Desk,  # noqa: F811
    engine: Engine,
    session_factory: sessionmaker[Session],
    receiver: Receiver,
) -> None:
    made = engagement.create_destination(
        session, Actor.system("test-admin"), name="CRM", kind="webhook", url=receiver.url,
        now=NOW,
    )  # fmt: skip
    receiver.secret = made.secret
    today = NOW.astimezone(program_rules.zone(desk.mdf.timezone)).date()
    payouts.set_policy(
        session, desk.admin, desk.mdf.id, provider="manual", schedule="weekly",
        run_day=(today.weekday() + 1) % 7, now=NOW,
    )  # fmt: skip
    bank_details(session, desk, desk.acme)
    approved_claim(session, desk, amount=40_000)
    session.commit()
    ctx = jobs.Context(
        session_factory, make_session_factory(engine, read_only=True),
        verification.Toolkit(desk.store), senders={"webhook": WebhookSender(timeout=5)},
    )  # fmt: skip

    first = jobs.upkeep(ctx, now=NOW, signals=False)
    assert (first.payouts_created, first.signals_turned_on) == (0, None)  # not the run day yet
    told = {event["type"] for event in receiver.events()}
    assert {"claim.submitted", "claim.approved"} <= told
    assert first.events_delivered == len(receiver.events())

    again = jobs.upkeep(ctx, now=NOW + timedelta(days=1), signals=False)
    assert again.payouts_created == 1 and again.events_delivered == 0
    with session_factory() as fresh:
        [payout] = fresh.scalars(select(payouts.Payout)).all()
        assert (payout.partner_id, payout.amount, payout.state) == (desk.acme.id, 40_000, "pending")
    assert jobs.upkeep(ctx, now=NOW + timedelta(days=1)).signals_turned_on is not None
