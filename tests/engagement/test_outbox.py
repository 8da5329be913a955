"""emit: the outbox written in the caller's transaction, with the message and the deliveries."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import DatabaseError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from mdfledger import background, engagement
from mdfledger.actor import Actor
from mdfledger.engagement import Delivery, Event, EventType
from mdfledger.errors import NotFound, ValidationError
from tests.engagement.conftest import NOW, World, claim_data

ADMIN = Actor.system("test-admin")


def count(session: Session, model: type) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


def webhook(session: Session, partner_id: int | None = None, types: object = "*", **kw) -> int:
    made = engagement.create_destination(
        session, ADMIN, name=kw.pop("name", "CRM"), kind="webhook", partner_id=partner_id,
        event_types=types, url=kw.pop("url", "https://crm.example.test/hooks"), now=NOW, **kw,
    )  # fmt: skip
    return made.destination.id


def test_emit_writes_event_message_and_deliveries(session: Session, world: World) -> None:
    everyone = webhook(session, name="vendor PRM")
    acme_only = webhook(session, world.acme.id, name="Acme CRM")
    webhook(session, world.bolt.id, name="Bolt CRM")  # another partner's: not for Acme
    webhook(session, world.acme.id, ["fund.allocated"], name="Acme funds only")
    off = webhook(session, world.acme.id, name="Acme old CRM")
    engagement.update_destination(session, ADMIN, off, active=False)
    session.commit()

    event = engagement.emit(
        session, "claim.approved", partner_id=world.acme.id, program_id=world.mdf.id,
        data=claim_data(approved=150_000), now=NOW,
    )  # fmt: skip
    assert event is not None
    message = engagement.render("claim.approved", event.data)
    assert (event.subject, event.text, event.action) == (
        message.subject, message.text, message.action,
    )  # fmt: skip
    assert event.subject == "CLM-000012 (Webinars held) approved: 1,500.00 USD"
    assert event.created_at == NOW
    targets = session.scalars(
        select(Delivery.destination_id).where(Delivery.event_id == event.id).order_by(Delivery.id)
    ).all()
    assert targets == [everyone, acme_only]
    assert background.pending(session) == [("deliver_events", {"partner_id": world.acme.id})]
    engagement.emit(session, "claim.paid", partner_id=world.acme.id, data=claim_data(), now=NOW)
    assert len(background.pending(session)) == 1  # one delivery run per partner is enough
    session.commit()
    assert count(session, Event) == 2


def test_a_rollback_leaves_nothing(session_factory: sessionmaker[Session], world: World) -> None:
    ran: list[tuple[str, dict]] = []
    background.install(session_factory, lambda job, kwargs: ran.append((job, kwargs)))
    with session_factory() as session:
        webhook(session)
        session.commit()
        engagement.emit(session, "claim.submitted", partner_id=world.acme.id, data=claim_data())
        assert background.pending(session)
        session.rollback()
        assert count(session, Event) == 0
        assert count(session, Delivery) == 0
        assert ran == []  # no delivery run for what never happened
        engagement.emit(session, "claim.submitted", partner_id=world.acme.id, data=claim_data())
        session.commit()
        assert ran == [("deliver_events", {"partner_id": world.acme.id})]


def test_no_destination_no_delivery_no_job(session: Session, world: World) -> None:
    event = engagement.emit(session, "funds.expired", partner_id=world.acme.id, data={})
    assert event is not None and event.subject
    assert count(session, Delivery) == 0
    assert background.pending(session) == []


@pytest.mark.parametrize("bad", ["claim.exploded", "CLAIM.APPROVED", "", None, 7])
def test_unknown_types_are_refused(session: Session, world: World, bad: object) -> None:
    with pytest.raises(ValidationError) as caught:
        engagement.emit(session, bad, partner_id=world.acme.id, data={})  # type: ignore[arg-type]
    assert repr(bad) in caught.value.message
    assert caught.value.details["field"] == "type"
    assert count(session, Event) == 0


@pytest.mark.parametrize(
    "data",
    [
        {"when": date(2026, 9, 30)},
        {"amount": Decimal("1.50")},
        {"ratio": float("nan")},
        {"nested": {"set": {1, 2}}},
        {1: "not a text key"},
        ["not", "an", "object"],
        {"big": "x" * 70_000},
    ],
)
def test_data_must_be_json_values(session: Session, world: World, data: object) -> None:
    with pytest.raises(ValidationError) as caught:
        engagement.emit(session, "claim.paid", partner_id=world.acme.id, data=data)  # type: ignore[arg-type]
    assert caught.value.details["field"] == "data"
    assert count(session, Event) == 0


def test_unknown_partner_or_program(session: Session, world: World) -> None:
    with pytest.raises(ValidationError, match="partner_id"):
        engagement.emit(session, "claim.paid", partner_id=True, data={})  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="program_id"):
        engagement.emit(session, "claim.paid", partner_id=world.acme.id, program_id=True, data={})
    # Callers pass ids of rows they hold; the foreign keys refuse any other.
    for ids in ({"partner_id": 999}, {"partner_id": world.acme.id, "program_id": 999}):
        with pytest.raises(IntegrityError):
            engagement.emit(session, "claim.paid", data={}, **ids)  # type: ignore[arg-type]
        session.rollback()
    assert count(session, Event) == 0


def test_a_key_is_emitted_once(
    session: Session, session_factory: sessionmaker[Session], world: World
) -> None:
    webhook(session)
    first = engagement.emit(
        session, "funds.expiring", partner_id=world.acme.id, data={}, key="expiring:fund-1:14"
    )
    again = engagement.emit(
        session, "funds.expiring", partner_id=world.acme.id, data={}, key="expiring:fund-1:14"
    )
    assert first is not None and again is None
    session.commit()
    with session_factory() as other:  # and in a later transaction
        assert (
            engagement.emit(
                other, "funds.expiring", partner_id=world.bolt.id, data={},
                key="expiring:fund-1:14",
            )
            is None
        )  # fmt: skip
        assert background.pending(other) == []
    assert count(session, Event) == 1
    assert count(session, Delivery) == 1


def test_every_type_renders(session: Session, world: World) -> None:
    for type_ in EventType:
        event = engagement.emit(session, type_, partner_id=world.acme.id, data={})
        assert event is not None and event.subject and event.text and event.action


def test_events_are_append_only(session: Session, world: World) -> None:
    event = engagement.emit(session, "claim.paid", partner_id=world.acme.id, data=claim_data())
    assert event is not None
    session.commit()
    for statement in (
        update(Event).where(Event.id == event.id).values(subject="changed"),
        text(f"DELETE FROM engagement_events WHERE id = {event.id}"),
    ):
        with pytest.raises(DatabaseError):
            session.execute(statement)
        session.rollback()
    assert session.get(Event, event.id) is not None


def test_partners_read_only_their_own_messages(session: Session, world: World) -> None:
    for partner in (world.acme, world.bolt, world.acme):
        engagement.emit(session, "claim.paid", partner_id=partner.id, data=claim_data())
    session.commit()
    mine = engagement.events_for(session, world.acme_user)
    assert [e.partner_id for e in mine] == [world.acme.id, world.acme.id]
    assert mine[0].id > mine[1].id  # newest first
    assert engagement.events_for(session, world.acme_user, world.acme.id) == mine
    with pytest.raises(NotFound):
        engagement.events_for(session, world.acme_user, world.bolt.id)
    bolt_event = engagement.events_for(session, world.bolt_user)[0]
    with pytest.raises(NotFound):
        engagement.get_event(session, world.acme_user, bolt_event.id)
    assert len(engagement.events_for(session, world.finance)) == 3
    assert len(engagement.events_for(session, world.auditor, world.bolt.id)) == 1
