"""The payouts benchmark stays runnable and checks what it claims: a tiny run pays every claim
once, leaves a verified ledger, and every event reaches the receiver once, signed, in order per
partner; the receiver's bookkeeping notices a duplicate or a reordering. Never timing.
SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from mdfledger import create_app, engagement, ledger, payouts
from mdfledger.claims.models import Claim
from mdfledger.db import make_engine, make_session_factory
from mdfledger.payouts import bench


def test_a_tiny_run_pays_every_claim_and_delivers_every_event(
    database_url: str, backend: str
) -> None:
    messages: list[str] = []
    result = bench.run(
        database_url, claims_count=20, partners=4, events=50, event_partners=3,
        progress=messages.append,
    )  # fmt: skip
    assert result.problems == [] and result.ok
    assert result.backend == backend and result.server
    assert (result.claims, result.partners, result.payouts, result.claims_paid) == (20, 4, 4, 20)
    assert result.ledger_ok
    assert (result.events, result.event_partners, result.delivered, result.received) == (
        50, 3, 50, 50,
    )  # fmt: skip
    assert (result.duplicates, result.missing, result.out_of_order, result.bad_signatures) == (
        0, 0, 0, 0,
    )  # fmt: skip
    assert result.rounds >= 2  # the last call finds nothing due
    assert any("20/20 claims approved" in m for m in messages)
    table = bench.format_results([result])
    assert "payout run" in table and "events/s" in table and "PROBLEM" not in table
    figures = result.as_dict()
    assert figures["ok"] is True and figures["payouts"] == 4
    json.dumps(figures)  # the CLI's --json prints it

    # What the run left in the database: every claim paid by one payout of its partner, the
    # payouts in transit (manual provider), every delivery delivered.
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            made = list(session.scalars(select(payouts.Payout)))
            assert len(made) == 4 and {p.state for p in made} == {"pending"}
            approved = session.scalar(select(func.sum(Claim.approved_amount)))
            assert sum(p.amount for p in made) == approved
            live = session.scalars(select(payouts.PayoutClaim).where(payouts.PayoutClaim.live))
            assert sorted(pc.claim_id for pc in live) == sorted(session.scalars(select(Claim.id)))
            assert ledger.verify_ledger(session).ok
            states = session.scalars(select(engagement.Delivery.state)).all()
            assert len(states) == 50 and set(states) == {"delivered"}
    finally:
        engine.dispose()


def test_the_receiver_notices_duplicates_missing_and_reordered_events(
    session_factory: sessionmaker[Session],
) -> None:
    book = bench.build(session_factory, claims_count=4, partners=2)
    receiver = bench.Receiver()
    with receiver.running():
        bench.add_destination(session_factory, receiver)
        emitted = bench.emit_events(session_factory, book.partners, book.program_id, 6)
        first, second = book.partners
        assert [len(emitted.by_partner[p]) for p in book.partners] == [3, 3]
        # A redelivery of the first partner's first event arrives ahead of the run.
        early = emitted.by_partner[first][0]
        receiver.arrived.append((first, early))
        sent = bench.deliver_all(session_factory, receiver, emitted)
    assert sent.delivered == 6 and sent.received == 7
    assert (sent.duplicates, sent.missing, sent.out_of_order) == (1, 0, 1)
    assert sent.bad_signatures == 0
    # Nothing delivered a second time by the service: the duplicate was the injected one.
    assert [e for p, e in receiver.arrived[1:] if p == second] == emitted.by_partner[second]


def test_the_command_is_wired(tmp_path: Path) -> None:
    app = create_app({"env": "test", "instance_path": tmp_path})
    runner = app.test_cli_runner()
    result = runner.invoke(args=["bench", "payouts", "--help"])
    assert result.exit_code == 0, result.output
    assert "--postgres-url" in result.output and "--claims" in result.output
    assert "--events" in result.output
    result = runner.invoke(args=["bench", "payouts", "--no-sqlite", "--postgres-url", ""])
    assert result.exit_code == 2 and "nothing to bench" in result.output
    result = runner.invoke(args=["bench", "payouts", "--claims", "6", "--events", "12", "--json"])
    assert result.exit_code == 0, result.output
    (figures,) = json.loads(result.stdout)
    assert figures["backend"] == "sqlite" and figures["ok"] is True
    assert (figures["claims"], figures["partners"], figures["payouts"]) == (6, 6, 6)
    assert figures["delivered"] == figures["received"] == 12
