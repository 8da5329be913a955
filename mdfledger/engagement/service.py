"""Engagement services: the outbox (`emit`), destinations, the dead-letter list and its replay,
and the partner's messages.

Services take a session and an actor (emit is called by other services inside theirs), check
everything, write the audit entry, flush, and never commit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from mdfledger import audit, background
from mdfledger.actor import Actor
from mdfledger.auth.models import Role
from mdfledger.auth.rules import normalise_email
from mdfledger.auth.scope import MANAGERS, STAFF, check_partner, require_role, scoped
from mdfledger.clock import ensure_utc, utcnow
from mdfledger.engagement import messages, rules
from mdfledger.engagement.models import Delivery, Destination, Event
from mdfledger.engagement.rules import (
    DeliveryEvent,
    DeliveryState,
    DestinationKind,
    Envelope,
    Target,
)
from mdfledger.errors import NotFound, ValidationError
from mdfledger.fields import check_choice, clean_text
from mdfledger.ledger.commands import is_id
from mdfledger.programs.models import Contact, Partner

DELIVER_JOB = "deliver_events"
PAGE_SIZE = 50


# --- the outbox ----------------------------------------------------------------------------------


def emit(
    session: Session,
    type: str,
    *,
    partner_id: int,
    program_id: int | None = None,
    data: dict[str, Any],
    key: str | None = None,
    now: datetime | None = None,
) -> Event | None:
    """Write an event for `partner_id` in the caller's transaction, with its message rendered
    now, and a pending delivery for each active destination that wants it; delivery starts
    after the commit (a rollback forgets everything). Returns None, writing nothing, when an
    event with the same `key` exists. Unknown types and non-JSON data: ValidationError. Callers
    pass ids of rows they hold: the foreign keys refuse any other (IntegrityError)."""
    event_type = rules.check_type(type)
    data = rules.check_data(data)
    if not is_id(partner_id):
        raise ValidationError("partner_id must be a partner's id", field="partner_id")
    if program_id is not None and not is_id(program_id):
        raise ValidationError("program_id must be a program's id", field="program_id")
    if key is not None:
        key = clean_text(key, "key", 200)
    when = ensure_utc(now or utcnow())
    _lock_outbox(session)
    if key is not None and session.scalar(select(Event.id).where(Event.key == key)) is not None:
        return None
    message = messages.render(event_type, data)
    event = Event(
        type=event_type.value, partner_id=partner_id, program_id=program_id, key=key, data=data,
        subject=message.subject, text=message.text, action=message.action[:200], created_at=when,
    )  # fmt: skip
    session.add(event)
    session.flush()
    wanted = [
        destination
        for destination in session.scalars(
            select(Destination)
            .where(
                Destination.active.is_(True),
                or_(Destination.partner_id.is_(None), Destination.partner_id == partner_id),
            )
            .order_by(Destination.id)
        )
        if rules.matches(destination.event_types, event_type)
    ]
    for destination in wanted:
        session.add(
            Delivery(
                event_id=event.id, destination_id=destination.id, partner_id=partner_id,
                state=DeliveryState.PENDING.value, attempts=0, next_attempt_at=when,
                window_start=when, created_at=when,
            )
        )  # fmt: skip
    session.flush()
    if wanted:
        _enqueue_delivery(session, partner_id)
    return event


def _lock_outbox(session: Session) -> None:
    """On PostgreSQL, take the ledger's chain head (the first lock of the app's one lock order,
    which audited writes take anyway) so event ids are handed out in commit order: a delivery
    worker never sees a partner's event 5 committed while event 4 is still to come. SQLite's
    write lock does this already."""
    if session.get_bind().dialect.name == "postgresql":
        from mdfledger.ledger.models import ChainHead

        session.execute(select(ChainHead.id).where(ChainHead.id == 1).with_for_update())


def _enqueue_delivery(session: Session, partner_id: int | None) -> None:
    job = (DELIVER_JOB, {"partner_id": partner_id})
    if job not in background.pending(session):
        background.enqueue(session, DELIVER_JOB, partner_id=partner_id)


def envelope(event: Event) -> Envelope:
    return Envelope(
        event.id, event.type, event.created_at, event.partner_id, event.program_id,
        dict(event.data), event.subject, event.text, event.action,
    )  # fmt: skip


# --- destinations --------------------------------------------------------------------------------

SNS_ARN = re.compile(r"^arn:aws[a-z-]*:sns:([a-z0-9-]+):[0-9]{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$")
BUS_NAME = re.compile(r"^([/.\-_A-Za-z0-9]{1,256}|arn:aws[a-z-]*:events:[a-z0-9-]+:[0-9]{12}:.+)$")
REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]$")
MAX_RECIPIENTS = 20
EDITABLE = ("name", "event_types", "url", "topic_arn", "event_bus", "region", "email_to")
AUDITED = (*EDITABLE, "kind", "partner_id", "active")


@dataclass(frozen=True)
class NewDestination:
    destination: Destination
    secret: str | None  # the webhook signing secret: shown this once, masked after


def create_destination(
    session: Session,
    actor: Actor,
    *,
    name: object,
    kind: object,
    partner_id: object = None,
    event_types: object = rules.ALL_TYPES,
    url: object = None,
    topic_arn: object = None,
    event_bus: object = None,
    region: object = None,
    email_to: object = None,
    now: datetime | None = None,
) -> NewDestination:
    """Add a destination (admins). A webhook gets a new signing secret, returned this once."""
    require_role(actor, Role.ADMIN)
    when = ensure_utc(now or utcnow())
    kind = check_choice(kind, list(DestinationKind), "kind")
    partner = None if partner_id is None else _partner(session, partner_id)
    values = _settings(
        kind, partner is not None, name=name, event_types=event_types, url=url, topic_arn=topic_arn,
        event_bus=event_bus, region=region, email_to=email_to,
    )  # fmt: skip
    secret = rules.new_secret() if kind == DestinationKind.WEBHOOK else None
    destination = Destination(
        kind=kind, partner_id=None if partner is None else partner.id, secret=secret,
        active=True, created_by=actor.label[:200], created_at=when, updated_at=when, **values,
    )  # fmt: skip
    session.add(destination)
    session.flush()
    audit.record(
        session, actor, "destination.create", object_type="destination",
        object_id=destination.id,
        summary=f"Added the {kind} destination {destination.name!r} "
        + (f"for partner {partner.code}" if partner else "for every partner"),
        after=audit.snapshot(destination, AUDITED),
        subject_partner_id=destination.partner_id,
    )  # fmt: skip
    return NewDestination(destination, secret)


def _partner(session: Session, partner_id: object) -> Partner:
    partner = session.get(Partner, partner_id) if is_id(partner_id) else None
    if partner is None:
        raise ValidationError("partner not found", field="partner_id")
    return partner


def update_destination(
    session: Session,
    actor: Actor,
    destination_id: object,
    *,
    now: datetime | None = None,
    **changes: Any,
) -> Destination:
    """Change a destination's settings or turn it on or off (`active`); kind and partner stay.
    Pending deliveries of a disabled destination wait; they go out when it is enabled again."""
    require_role(actor, Role.ADMIN)
    destination = get_destination(session, actor, destination_id)
    unknown = set(changes) - {*EDITABLE, "active"}
    if unknown:
        raise ValidationError(f"{sorted(unknown)[0]} cannot be changed", field=sorted(unknown)[0])
    current = {name: getattr(destination, name) for name in EDITABLE}
    merged = {**current, **{k: v for k, v in changes.items() if k != "active"}}
    values = _settings(destination.kind, destination.partner_id is not None, **merged)
    if "active" in changes:
        if not isinstance(changes["active"], bool):
            raise ValidationError("active is true or false", field="active")
        values["active"] = changes["active"]
    before = audit.snapshot(destination, AUDITED)
    for name, value in values.items():
        setattr(destination, name, value)
    after = audit.snapshot(destination, AUDITED)
    old, new = audit.changed(before, after)
    if not new:
        return destination
    destination.updated_at = ensure_utc(now or utcnow())
    session.flush()
    verb = "Changed"
    if set(new) == {"active"}:
        verb = "Enabled" if new["active"] else "Disabled"
    audit.record(
        session, actor, "destination.update", object_type="destination",
        object_id=destination.id,
        summary=f"{verb} the destination {destination.name!r}: {audit.describe(old, new)}",
        before=old, after=new, subject_partner_id=destination.partner_id,
    )  # fmt: skip
    return destination


def rotate_secret(
    session: Session, actor: Actor, destination_id: object, *, now: datetime | None = None
) -> NewDestination:
    """A new signing secret for a webhook (admins), returned this once. The old one stops
    working at once: receivers should accept both while they switch (verify_signature takes
    any v1 entry, a receiver can try each of its secrets)."""
    require_role(actor, Role.ADMIN)
    destination = get_destination(session, actor, destination_id)
    if destination.kind != DestinationKind.WEBHOOK:
        raise ValidationError("only webhooks have a signing secret", field="kind")
    destination.secret = rules.new_secret()
    destination.updated_at = ensure_utc(now or utcnow())
    session.flush()
    audit.record(
        session, actor, "destination.rotate_secret", object_type="destination",
        object_id=destination.id,
        summary=f"Made a new signing secret for the webhook {destination.name!r}",
        subject_partner_id=destination.partner_id,
    )  # fmt: skip
    return NewDestination(destination, destination.secret)


def _settings(
    kind: str,
    for_partner: bool,
    *,
    name: object,
    event_types: object,
    url: object = None,
    topic_arn: object = None,
    event_bus: object = None,
    region: object = None,
    email_to: object = None,
) -> dict[str, Any]:
    """The checked settings of a destination of `kind`; those the kind does not use are None."""
    values: dict[str, Any] = {
        "name": clean_text(name, "name", 100),
        "event_types": rules.parse_event_types(event_types),
        "url": None, "topic_arn": None, "event_bus": None, "region": None, "email_to": None,
    }  # fmt: skip
    if region not in (None, ""):
        text = clean_text(region, "region", 40)
        if not REGION.match(text):
            raise ValidationError(f"{text!r} is not an AWS region like eu-west-1", field="region")
        values["region"] = text
    if kind == DestinationKind.WEBHOOK:
        values["url"] = _url(url)
        values["region"] = None
    elif kind == DestinationKind.SNS:
        arn = clean_text(topic_arn, "topic_arn", 256)
        match = SNS_ARN.match(arn)
        if not match:
            raise ValidationError(
                f"{arn!r} is not an SNS topic ARN like arn:aws:sns:eu-west-1:123456789012:topic",
                field="topic_arn",
            )
        values["topic_arn"] = arn
        values["region"] = values["region"] or match.group(1)
    elif kind == DestinationKind.EVENTBRIDGE:
        bus = clean_text(event_bus, "event_bus", 1600)
        if not BUS_NAME.match(bus):
            raise ValidationError(f"{bus!r} is not an event bus name or ARN", field="event_bus")
        values["event_bus"] = bus
    elif kind == DestinationKind.EMAIL:
        values["region"] = None
        values["email_to"] = _addresses(email_to)
        if values["email_to"] is None and not for_partner:
            raise ValidationError(
                "an e-mail destination for every partner needs addresses to send to",
                field="email_to",
            )
    return values


def _url(value: object) -> str:
    text = clean_text(value, "url", 2000)
    parts = urlsplit(text)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValidationError(f"{text!r} is not an http(s) URL", field="url")
    if parts.username or parts.password:
        raise ValidationError("put no user name or password in a webhook URL", field="url")
    return text


def _addresses(value: object) -> list[str] | None:
    """E-mail addresses (a list, or text separated by commas, semicolons or spaces); none: the
    partner's contacts."""
    if value is None:
        return None
    if isinstance(value, str):
        items = [part for part in re.split(r"[,;\s]+", value) if part]
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise ValidationError("e-mail addresses must be a list", field="email_to")
    if not items:
        return None
    found: list[str] = []
    for item in items:
        address = normalise_email(item) if isinstance(item, str) else None
        if address is None:
            raise ValidationError(f"{item!r} is not an e-mail address", field="email_to")
        if address not in found:
            found.append(address)
    if len(found) > MAX_RECIPIENTS:
        raise ValidationError(
            f"at most {MAX_RECIPIENTS} addresses per destination", field="email_to"
        )
    return found


def destinations(
    session: Session, actor: Actor, *, partner_id: int | None = None
) -> list[Destination]:
    """Every destination (admins, finance and auditors read them), vendor-wide ones first."""
    require_role(actor, *STAFF)
    statement = select(Destination).order_by(
        Destination.partner_id.is_not(None), Destination.partner_id, Destination.id
    )
    if partner_id is not None:
        statement = statement.where(Destination.partner_id == partner_id)
    return list(session.scalars(statement))


def get_destination(session: Session, actor: Actor, destination_id: object) -> Destination:
    require_role(actor, *STAFF)
    destination = session.get(Destination, destination_id) if is_id(destination_id) else None
    if destination is None:
        raise NotFound("destination not found")
    return destination


def target(session: Session, destination: Destination) -> Target:
    """What a sender needs: the destination's settings, e-mail recipients resolved."""
    recipients: tuple[str, ...] = ()
    if destination.kind == DestinationKind.EMAIL:
        recipients = tuple(destination.email_to or ())
        if not recipients and destination.partner_id is not None:
            recipients = tuple(partner_addresses(session, destination.partner_id))
    return Target(
        destination.id, destination.name, destination.kind, destination.url, destination.secret,
        destination.topic_arn, destination.event_bus, destination.region, recipients,
    )  # fmt: skip


def partner_addresses(session: Session, partner_id: int) -> list[str]:
    """The partner's contacts' addresses, the primary contact first."""
    rows = session.scalars(
        select(Contact.email)
        .where(Contact.partner_id == partner_id)
        .order_by(Contact.is_primary.desc(), Contact.id)
    )
    found: list[str] = []
    for address in rows:
        if address not in found:
            found.append(address)
    return found[:MAX_RECIPIENTS]


# --- deliveries, dead letters, replay ------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryView:
    delivery: Delivery
    event: Event
    destination: Destination
    partner: Partner


def deliveries_query(
    actor: Actor,
    *,
    state: str | None = None,
    destination_id: int | None = None,
    partner_id: int | None = None,
) -> Select[tuple[Delivery, Event, Destination, Partner]]:
    """Deliveries with their event, destination and partner, newest first (staff)."""
    require_role(actor, *STAFF)
    statement = (
        select(Delivery, Event, Destination, Partner)
        .join(Event, Event.id == Delivery.event_id)
        .join(Destination, Destination.id == Delivery.destination_id)
        .join(Partner, Partner.id == Delivery.partner_id)
        .order_by(Delivery.id.desc())
    )
    if state is not None:
        statement = statement.where(
            Delivery.state == check_choice(state, list(DeliveryState), "state")
        )
    if destination_id is not None:
        statement = statement.where(Delivery.destination_id == destination_id)
    if partner_id is not None:
        statement = statement.where(Delivery.partner_id == partner_id)
    return statement


def deliveries(
    session: Session,
    actor: Actor,
    *,
    state: str | None = None,
    destination_id: int | None = None,
    partner_id: int | None = None,
    before_id: int | None = None,
    limit: int = PAGE_SIZE,
) -> list[DeliveryView]:
    """Deliveries, newest first (staff): the dead-letter list is state='dead'."""
    statement = deliveries_query(
        actor, state=state, destination_id=destination_id, partner_id=partner_id
    )
    if before_id is not None:
        statement = statement.where(Delivery.id < before_id)
    statement = statement.limit(max(1, min(limit, 500)))
    return [DeliveryView(*row) for row in session.execute(statement)]


def dead_letters(session: Session, actor: Actor, **filters: Any) -> list[DeliveryView]:
    """Deliveries given up on, newest first: finance replays them."""
    return deliveries(session, actor, state=DeliveryState.DEAD, **filters)


def replay(
    session: Session,
    actor: Actor,
    delivery_ids: Iterable[object],
    *,
    now: datetime | None = None,
) -> list[Delivery]:
    """Send dead letters again (finance, admins): each goes back to pending with its attempts
    and retry window reset, ahead of its destination's newer pending deliveries for the same
    partner (the oldest event goes first). All or nothing: an id that is unknown or not dead
    refuses the whole replay."""
    require_role(actor, *MANAGERS)
    when = ensure_utc(now or utcnow())
    ids = _ids(delivery_ids)
    rows = {
        row.id: row
        for row in session.scalars(
            _locked(session, select(Delivery).where(Delivery.id.in_(ids)).order_by(Delivery.id))
        )
    }
    for delivery_id in ids:
        if delivery_id not in rows:
            raise NotFound(f"delivery {delivery_id} not found")
    replayed = sorted(rows.values(), key=lambda d: d.event_id)
    for delivery in replayed:
        try:
            state = rules.next_state(delivery.state, DeliveryEvent.REPLAY)
        except rules.InvalidTransition as error:
            raise rules.InvalidTransition(
                f"delivery {delivery.id}: {error.message}", **error.details
            ) from None
        delivery.state = state
        delivery.attempts = 0
        delivery.next_attempt_at = when
        delivery.window_start = when
        delivery.leased_until = delivery.lease = None
        delivery.replayed_by, delivery.replayed_at = actor.label[:200], when
    session.flush()
    for delivery in replayed:
        audit.record(
            session, actor, "delivery.replay", object_type="delivery", object_id=delivery.id,
            summary=f"Replayed delivery {delivery.id} of event {delivery.event_id} to"
            f" destination {delivery.destination_id}",
            before={"state": DeliveryState.DEAD.value},
            after={"state": DeliveryState.PENDING.value},
            subject_partner_id=delivery.partner_id,
        )  # fmt: skip
    for partner_id in sorted({d.partner_id for d in replayed}):
        _enqueue_delivery(session, partner_id)
    return replayed


def _ids(values: Iterable[object]) -> list[int]:
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise ValidationError("choose the deliveries to replay", field="delivery_ids")
    ids: list[int] = []
    for value in values:
        if not is_id(value):
            raise ValidationError(f"{value!r} is not a delivery id", field="delivery_ids")
        if value not in ids:
            ids.append(value)  # type: ignore[arg-type]
    if not ids:
        raise ValidationError("choose the deliveries to replay", field="delivery_ids")
    if len(ids) > 1000:
        raise ValidationError("replay at most 1000 deliveries at once", field="delivery_ids")
    return ids


def _locked(session: Session, statement: Any) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return statement.with_for_update()
    return statement


# --- the partner's messages ----------------------------------------------------------------------


def events_query(
    actor: Actor, partner_id: int | None = None, *, types: Sequence[str] | None = None
) -> Select[tuple[Event]]:
    """Events with their messages, newest first. A partner user sees their own (another
    partner's id: not found); staff see one partner's, or everyone's with no partner_id."""
    require_role(actor, *STAFF, Role.PARTNER)
    if partner_id is not None:
        if not is_id(partner_id):
            raise NotFound("partner not found")
        check_partner(actor, partner_id, "partner")
    statement = scoped(select(Event), Event.partner_id, actor)
    if partner_id is not None:
        statement = statement.where(Event.partner_id == partner_id)
    if types:
        statement = statement.where(Event.type.in_([rules.check_type(t) for t in types]))
    return statement.order_by(Event.id.desc())


def events_for(
    session: Session,
    actor: Actor,
    partner_id: int | None = None,
    *,
    types: Sequence[str] | None = None,
    before_id: int | None = None,
    limit: int = PAGE_SIZE,
) -> list[Event]:
    """A page of events_query: `limit` events older than `before_id`."""
    statement = events_query(actor, partner_id, types=types)
    if before_id is not None:
        statement = statement.where(Event.id < before_id)
    return list(session.scalars(statement.limit(max(1, min(limit, 500)))))


def get_event(session: Session, actor: Actor, event_id: object) -> Event:
    require_role(actor, *STAFF, Role.PARTNER)
    event = session.get(Event, event_id) if is_id(event_id) else None
    if event is None:
        raise NotFound("event not found")
    check_partner(actor, event.partner_id, "event")
    return event
