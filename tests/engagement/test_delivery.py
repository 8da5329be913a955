"""Delivery: signed webhooks, in order per partner, retried on schedule with a record, dead
letters after 36 hours, replay, and two workers never sending one delivery twice."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mdfledger import engagement
from mdfledger.actor import Actor
from mdfledger.engagement import Delivery, DeliveryAttempt, DeliveryState, verify_signature
from mdfledger.engagement.rules import BACKOFF, RETRY_WINDOW, schedule
from mdfledger.engagement.senders import WebhookSender
from mdfledger.errors import Conflict, Forbidden, NotFound, ValidationError
from tests.engagement.conftest import NOW, World, claim_data
from tests.engagement.receiver import Receiver

ADMIN = Actor.system("test-admin")
SENDERS = {"webhook": WebhookSender(timeout=5)}


def hook(session: Session, receiver: Receiver, partner_id: int | None = None) -> tuple[int, str]:
    made = engagement.create_destination(
        session, ADMIN, name="CRM", kind="webhook", partner_id=partner_id, url=receiver.url,
        now=NOW,
    )  # fmt: skip
    session.commit()
    assert made.secret is not None
    receiver.secret = made.secret
    return made.destination.id, made.secret


def emit(session: Session, partner_id: int, n: int, at: datetime = NOW) -> int:
    event = engagement.emit(
        session, "claim.approved", partner_id=partner_id, data=claim_data(n, approved=100), now=at
    )
    assert event is not None
    return event.id


def attempts_of(session: Session, event_id: int) -> list[DeliveryAttempt]:
    session.expire_all()
    found = list(
        session.scalars(
            select(DeliveryAttempt)
            .join(Delivery, Delivery.id == DeliveryAttempt.delivery_id)
            .where(Delivery.event_id == event_id)
            .order_by(DeliveryAttempt.id)
        )
    )
    session.commit()  # SQLite: a writing session's read holds the write lock until it ends
    return found


def delivery_of(session: Session, event_id: int) -> Delivery:
    session.expire_all()
    found = session.scalars(select(Delivery).where(Delivery.event_id == event_id)).one()
    session.commit()
    return found


def test_a_signed_webhook(
    session: Session, session_factory: sessionmaker[Session], world: World, receiver: Receiver
) -> None:
    _, secret = hook(session, receiver)
    event_id = emit(session, world.acme.id, 12)
    session.commit()

    run = engagement.deliver(session_factory, SENDERS, now=NOW)

    assert len(run.delivered) == 1 and not run.retrying
    (got,) = receiver.received
    assert receiver.bad_signatures == 0
    assert got.headers["Mdfledger-Event-Id"] == str(event_id)
    assert got.headers["Mdfledger-Event-Type"] == "claim.approved"
    assert got.headers["Content-Type"] == "application/json"
    assert verify_signature(secret, got.body, got.headers["Mdfledger-Signature"])
    assert not verify_signature("whsec_other", got.body, got.headers["Mdfledger-Signature"])
    assert not verify_signature(secret, got.body + b" ", got.headers["Mdfledger-Signature"])
    later = datetime.now(NOW.tzinfo) + timedelta(minutes=10)
    assert not verify_signature(secret, got.body, got.headers["Mdfledger-Signature"], now=later)
    body = got.json
    assert body["id"] == event_id and body["type"] == "claim.approved"
    assert body["partner_id"] == world.acme.id and body["program_id"] is None
    assert body["created_at"] == "2026-08-15T12:00:00Z"
    assert body["data"]["reference"] == "CLM-000012"
    assert body["message"]["subject"].startswith("CLM-000012 (Webinars held) approved")
    delivery = delivery_of(session, event_id)
    assert delivery.state == DeliveryState.DELIVERED and delivery.delivered_at == NOW
    assert [a.outcome for a in attempts_of(session, event_id)] == ["delivered"]
    # Nothing is due any more: a second run sends nothing.
    assert engagement.deliver(session_factory, SENDERS, now=NOW).attempts == 0


def test_in_order_per_partner_when_events_interleave(
    session: Session, session_factory: sessionmaker[Session], world: World, receiver: Receiver
) -> None:
    hook(session, receiver)
    partners = [world.acme.id, world.bolt.id, world.cogs.id]
    emitted: dict[int, list[int]] = {p: [] for p in partners}
    for n in range(12):
        partner = partners[(n * 7) % 3]
        emitted[partner].append(emit(session, partner, n, NOW + timedelta(seconds=n)))
        if n % 4 == 3:
            session.commit()
    session.commit()
    # Acme's endpoint fails at first: its events wait, the others go on.
    receiver.status = 503
    run = engagement.deliver(session_factory, SENDERS, now=NOW + timedelta(seconds=20))
    assert len(run.retrying) == 3  # the first event of each partner failed
    assert receiver.ids() == [emitted[p][0] for p in sorted(partners, key=lambda p: emitted[p][0])]
    receiver.received.clear()
    receiver.status = 200
    run = engagement.deliver(session_factory, SENDERS, now=NOW + timedelta(minutes=2))
    assert len(run.delivered) == 12
    for partner in partners:
        seen = [e["id"] for e in receiver.events() if e["partner_id"] == partner]
        assert seen == emitted[partner]


def test_a_receiver_down_for_a_day_gets_everything_in_order_with_a_record(
    session: Session, session_factory: sessionmaker[Session], world: World, receiver: Receiver
) -> None:
    hook(session, receiver, world.acme.id)
    first = emit(session, world.acme.id, 1)
    session.commit()
    port = receiver.port
    receiver.stop()  # connection refused from now on

    tried_at = []
    later: list[int] = []
    for offset in schedule():
        if offset >= timedelta(hours=24):
            break
        when = NOW + offset
        later.append(emit(session, world.acme.id, 100 + len(later), when))  # more keep coming
        session.commit()
        run = engagement.deliver(session_factory, SENDERS, now=when)
        assert len(run.retrying) == 1 and not run.delivered  # only the oldest is tried
        tried_at.append(when)
        # Half-way through, the receiver answers 500 instead of refusing.
        if offset >= timedelta(hours=2) and receiver.server is None:
            receiver.status = 500
            receiver.start(port)
    attempts = attempts_of(session, first)
    assert [a.at for a in attempts] == tried_at
    assert {a.outcome for a in attempts} == {"failed"}
    assert "could not reach" in attempts[0].detail
    assert attempts[-1].status == 500 and "answered 500" in attempts[-1].detail
    delivery = delivery_of(session, first)
    assert delivery.state == DeliveryState.PENDING and delivery.attempts == len(tried_at)
    next_at = delivery.next_attempt_at
    assert next_at == tried_at[-1] + BACKOFF[-1]
    for event_id in later:  # the later ones were never tried: they wait their turn
        assert attempts_of(session, event_id) == []
    # Back after a day: at the next scheduled attempt everything goes, in order.
    receiver.status = 200
    receiver.received.clear()
    run = engagement.deliver(session_factory, SENDERS, now=next_at)
    assert len(run.delivered) == 1 + len(later)
    assert receiver.ids() == [first, *later]
    assert receiver.bad_signatures == 0


def test_dead_after_36_hours_then_replayed_in_order(
    session: Session, session_factory: sessionmaker[Session], world: World, receiver: Receiver
) -> None:
    hook(session, receiver, world.acme.id)
    first, second = emit(session, world.acme.id, 1), emit(session, world.acme.id, 2)
    session.commit()
    receiver.status = 500
    runs = [engagement.deliver(session_factory, SENDERS, now=NOW + t) for t in schedule()]
    assert [len(r.retrying) for r in runs[:-1]] == [1] * (len(runs) - 1)
    assert runs[-1].dead == [delivery_of(session, first).id]
    # The head is dead: the next one gets its turn at once, is tried and waits.
    assert len(runs[-1].retrying) == 1
    dead = delivery_of(session, first)
    assert dead.state == DeliveryState.DEAD and dead.dead_at == NOW + schedule()[-1]
    assert schedule()[-1] <= RETRY_WINDOW < schedule()[-1] + BACKOFF[-1]
    outcomes = [a.outcome for a in attempts_of(session, first)]
    assert outcomes == ["failed"] * (len(outcomes) - 1) + ["dead"]
    assert [d.delivery.id for d in engagement.dead_letters(session, world.finance)] == [dead.id]
    session.commit()

    # Finance replays it: it goes before the newer pending one.
    receiver.status = 200
    receiver.received.clear()
    replay_at = NOW + timedelta(hours=40)
    with session_factory() as s:
        with pytest.raises(Forbidden):
            engagement.replay(s, world.auditor, [dead.id])
        with pytest.raises(NotFound):
            engagement.replay(s, world.finance, [dead.id, 999])
        with pytest.raises(Conflict, match=f"delivery {delivery_of(s, second).id}"):
            engagement.replay(s, world.finance, [delivery_of(s, second).id])
        with pytest.raises(ValidationError):
            engagement.replay(s, world.finance, [])
        s.rollback()
        engagement.replay(s, world.finance, [dead.id], now=replay_at)
        s.commit()
    replayed = delivery_of(session, first)
    assert replayed.state == DeliveryState.PENDING and replayed.attempts == 0
    assert replayed.replayed_by == world.finance.label and replayed.replayed_at == replay_at
    run = engagement.deliver(session_factory, SENDERS, now=replay_at)
    assert len(run.delivered) == 2
    assert receiver.ids() == [first, second]


def test_gone_gives_up_at_once_and_disabled_destinations_wait(
    session: Session, session_factory: sessionmaker[Session], world: World, receiver: Receiver
) -> None:
    destination, _ = hook(session, receiver)
    gone = emit(session, world.acme.id, 1)
    session.commit()
    receiver.status = 410
    run = engagement.deliver(session_factory, SENDERS, now=NOW)
    assert run.dead == [delivery_of(session, gone).id]
    assert delivery_of(session, gone).last_status == 410

    waiting = emit(session, world.acme.id, 2)
    engagement.update_destination(session, ADMIN, destination, active=False)
    while_disabled = emit(session, world.acme.id, 3)
    made = session.scalars(select(Delivery).where(Delivery.event_id == while_disabled)).all()
    assert made == []  # no delivery for an event emitted while the destination is disabled
    session.commit()
    receiver.status = 200
    assert engagement.deliver(session_factory, SENDERS, now=NOW).attempts == 0
    engagement.update_destination(session, ADMIN, destination, active=True)
    session.commit()
    assert engagement.deliver(session_factory, SENDERS, now=NOW).delivered == [
        delivery_of(session, waiting).id
    ]
    assert receiver.ids() == [gone, waiting]


def test_an_unconfigured_kind_is_retried_with_the_reason(
    session: Session, session_factory: sessionmaker[Session], world: World, receiver: Receiver
) -> None:
    hook(session, receiver)
    event_id = emit(session, world.acme.id, 1)
    session.commit()
    run = engagement.deliver(session_factory, {}, now=NOW)
    assert len(run.retrying) == 1
    assert "no sender is set up for webhook" in attempts_of(session, event_id)[0].detail


def test_a_lost_lease_is_sent_again(
    session: Session, session_factory: sessionmaker[Session], world: World, receiver: Receiver
) -> None:
    """A worker that died after claiming (or after sending, before recording) leaves a lease:
    once it runs out the delivery is sent again (at least once; receivers dedupe by id)."""
    from mdfledger.engagement import delivery as delivery_module

    hook(session, receiver)
    event_id = emit(session, world.acme.id, 1)
    session.commit()
    claimed = delivery_module._claim(session_factory, None, NOW, 10)  # and then it "crashed"
    assert len(claimed) == 1
    assert engagement.deliver(session_factory, SENDERS, now=NOW).attempts == 0  # leased
    run = engagement.deliver(session_factory, SENDERS, now=NOW + delivery_module.LEASE)
    assert len(run.delivered) == 1 and receiver.ids() == [event_id]


def test_two_workers_never_send_one_delivery_twice(
    backend: str,
    session: Session,
    session_factory: sessionmaker[Session],
    world: World,
    receiver: Receiver,
) -> None:
    if backend != "postgresql":
        pytest.skip("row locks with SKIP LOCKED are PostgreSQL's; SQLite has one writer")
    hook(session, receiver)
    partners = [world.acme.id, world.bolt.id, world.cogs.id]
    emitted = {p: [emit(session, p, n) for n in range(8)] for p in partners}
    session.commit()
    total = sum(len(ids) for ids in emitted.values())
    receiver.delay = 0.01  # slow enough that the workers overlap
    barrier = threading.Barrier(3)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            barrier.wait(timeout=10)
            for _ in range(200):  # each worker keeps claiming one at a time until all is sent
                engagement.deliver(session_factory, SENDERS, now=NOW, batch=1)
                if len(receiver.ids()) >= total:
                    return
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    counts = Counter(receiver.ids())
    assert counts == Counter(e for ids in emitted.values() for e in ids)
    assert set(counts.values()) == {1}
    for partner in partners:  # and still in order per partner
        assert [e["id"] for e in receiver.events() if e["partner_id"] == partner] == emitted[
            partner
        ]
