"""Delivering the outbox: at least once, in order per destination and partner, with retries.

One run repeats three steps until nothing is due (or `limit` attempts were made):

1. claim, in a short writing transaction: for each (destination, partner) the OLDEST pending
   delivery, if it is due and nobody holds it. It is leased (`leased_until`, `lease`) and the
   transaction commits. On PostgreSQL the rows are locked FOR UPDATE SKIP LOCKED, so two
   workers never claim the same one; on SQLite the write lock does it. A delivery that failed
   stays the oldest pending one of its pair, so it blocks the later ones until it is delivered
   or dead: receivers get each partner's events in order.
2. send, with no transaction open (a slow webhook holds no lock).
3. record, in another short transaction: an attempt row, and the delivery delivered, waiting
   for its next attempt (rules.BACKOFF) or dead (past rules.RETRY_WINDOW, or refused for good).

A crash between sending and recording leaves the lease to run out: the delivery is sent again
(at least once; receivers dedupe by the event id every destination gets).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, aliased, sessionmaker

from mdfledger import audit
from mdfledger.actor import Actor
from mdfledger.auth.models import Role
from mdfledger.auth.scope import require_role
from mdfledger.clock import ensure_utc, utcnow
from mdfledger.engagement import rules
from mdfledger.engagement.models import Delivery, DeliveryAttempt, Destination, Event
from mdfledger.engagement.rules import (
    AttemptOutcome,
    DeliveryEvent,
    DeliveryState,
    Envelope,
    Target,
)
from mdfledger.engagement.service import envelope, get_destination, target

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)  # far longer than any sender's timeout
DETAIL_MAX = 2000


class DeliveryFailed(Exception):
    """A send that did not go through. `retriable`: worth trying again later (most failures);
    not: the destination refuses it for good (a webhook answering 410 Gone)."""

    def __init__(self, detail: str, *, retriable: bool = True, status: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retriable = retriable
        self.status = status


class Sender(Protocol):
    def send(self, target: Target, envelope: Envelope) -> None: ...


Senders = Mapping[str, Sender]


@dataclass
class DeliveryRun:
    delivered: list[int] = field(default_factory=list)  # delivery ids
    retrying: list[int] = field(default_factory=list)  # failed, to be tried again
    dead: list[int] = field(default_factory=list)  # failed and given up
    lost: list[int] = field(default_factory=list)  # sent, but another worker took it over

    @property
    def attempts(self) -> int:
        return len(self.delivered) + len(self.retrying) + len(self.dead) + len(self.lost)


@dataclass(frozen=True)
class _Claimed:
    delivery_id: int
    lease: str
    target: Target
    envelope: Envelope


@dataclass(frozen=True)
class _Outcome:
    ok: bool
    detail: str
    status: int | None = None
    retriable: bool = True


def deliver(
    sessions: sessionmaker[Session],
    senders: Senders,
    *,
    partner_id: int | None = None,
    now: datetime | None = None,
    limit: int = 500,
    batch: int = 50,
) -> DeliveryRun:
    """Send what is due (for one partner, or all), oldest first per destination and partner,
    recording each attempt. `now` fixes the clock for the whole run (tests); otherwise each
    step reads it. Each step claims at most `batch` deliveries (one per destination and
    partner). Safe to run concurrently and repeatedly."""

    def clock() -> datetime:
        return utcnow() if now is None else ensure_utc(now)

    run = DeliveryRun()
    while run.attempts < limit:
        claimed = _claim(sessions, partner_id, clock(), min(batch, limit - run.attempts))
        if not claimed:
            break
        for job in claimed:
            outcome = _send(senders, job)
            _record(sessions, job, outcome, clock(), run)
    return run


def _claim(
    sessions: sessionmaker[Session], partner_id: int | None, now: datetime, limit: int
) -> list[_Claimed]:
    with sessions() as session:
        older = aliased(Delivery)
        oldest_pending = (
            select(func.min(older.event_id))
            .where(
                older.destination_id == Delivery.destination_id,
                older.partner_id == Delivery.partner_id,
                older.state == DeliveryState.PENDING.value,
            )
            .scalar_subquery()
        )
        statement = (
            select(Delivery)
            .join(Destination, Destination.id == Delivery.destination_id)
            .where(
                Delivery.state == DeliveryState.PENDING.value,
                Delivery.event_id == oldest_pending,
                Delivery.next_attempt_at <= now,
                or_(Delivery.leased_until.is_(None), Delivery.leased_until <= now),
                Destination.active.is_(True),
            )
            .order_by(Delivery.event_id, Delivery.id)
            .limit(limit)
        )
        if partner_id is not None:
            statement = statement.where(Delivery.partner_id == partner_id)
        if session.get_bind().dialect.name == "postgresql":
            statement = statement.with_for_update(of=Delivery, skip_locked=True)
        rows = list(session.scalars(statement))
        claimed = []
        for delivery in rows:
            token = uuid.uuid4().hex
            delivery.leased_until, delivery.lease = now + LEASE, token
            event = session.get(Event, delivery.event_id)
            destination = session.get(Destination, delivery.destination_id)
            assert event is not None and destination is not None
            claimed.append(
                _Claimed(delivery.id, token, target(session, destination), envelope(event))
            )
        session.commit()
    return claimed


def _send(senders: Senders, job: _Claimed) -> _Outcome:
    sender = senders.get(job.target.kind)
    if sender is None:
        return _Outcome(False, f"no sender is set up for {job.target.kind} destinations")
    try:
        sender.send(job.target, job.envelope)
    except DeliveryFailed as failure:
        return _Outcome(False, failure.detail, failure.status, failure.retriable)
    except Exception as error:  # a sender's bug or an unexpected library error: retry, recorded
        log.exception("sending delivery %s failed unexpectedly", job.delivery_id)
        return _Outcome(False, f"{type(error).__name__}: {error}")
    return _Outcome(True, "delivered")


def _record(
    sessions: sessionmaker[Session],
    job: _Claimed,
    outcome: _Outcome,
    now: datetime,
    run: DeliveryRun,
) -> None:
    with sessions() as session:
        statement = select(Delivery).where(Delivery.id == job.delivery_id)
        if session.get_bind().dialect.name == "postgresql":
            statement = statement.with_for_update()
        delivery = session.scalars(statement).one()
        if delivery.state != DeliveryState.PENDING or delivery.lease != job.lease:
            run.lost.append(job.delivery_id)  # our lease ran out and another worker has it
            return
        delivery.attempts += 1
        delivery.leased_until = delivery.lease = None
        delivery.last_status = outcome.status
        if outcome.ok:
            delivery.state = rules.next_state(delivery.state, DeliveryEvent.SUCCEED)
            delivery.delivered_at = now
            delivery.last_error = None
            result, bucket = AttemptOutcome.DELIVERED, run.delivered
        else:
            verdict = rules.after_failure(
                attempts=delivery.attempts, window_start=delivery.window_start, now=now,
                retriable=outcome.retriable,
            )  # fmt: skip
            delivery.state = rules.next_state(delivery.state, verdict.event)
            delivery.last_error = outcome.detail[:DETAIL_MAX]
            if verdict.event == DeliveryEvent.FAIL:
                assert verdict.next_attempt_at is not None
                delivery.next_attempt_at = verdict.next_attempt_at
                result, bucket = AttemptOutcome.FAILED, run.retrying
            else:
                delivery.dead_at = now
                result, bucket = AttemptOutcome.DEAD, run.dead
        session.add(
            DeliveryAttempt(
                delivery_id=delivery.id, at=now, outcome=result.value, status=outcome.status,
                detail=outcome.detail[:DETAIL_MAX],
            )
        )  # fmt: skip
        session.commit()
        bucket.append(job.delivery_id)


# --- a test send from the Integrations page ------------------------------------------------------

PROBE_TYPE = "mdfledger.test"


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    detail: str


def send_probe(
    session: Session,
    actor: Actor,
    senders: Senders,
    destination_id: object,
    *,
    now: datetime | None = None,
) -> ProbeResult:
    """Send a test event (id 0, type mdfledger.test: receivers store nothing) to a destination
    now, and say what happened (admins). Nothing is queued or retried; the audit log keeps it.
    The send happens inside the caller's transaction: this is an admin's single click."""
    require_role(actor, Role.ADMIN)
    destination = get_destination(session, actor, destination_id)
    when = ensure_utc(now or utcnow())
    probe = Envelope(
        0, PROBE_TYPE, when, destination.partner_id or 0, None, {"test": True},
        "Test message from mdfledger",
        f"This is a test of the destination {destination.name!r}. Nothing changed.",
        "Nothing to do",
    )  # fmt: skip
    outcome = _send(senders, _Claimed(0, "", target(session, destination), probe))
    audit.record(
        session, actor, "destination.test", object_type="destination", object_id=destination.id,
        summary=f"Test send to {destination.name!r}: "
        + ("delivered" if outcome.ok else f"failed: {outcome.detail}"),
        subject_partner_id=destination.partner_id,
    )  # fmt: skip
    return ProbeResult(outcome.ok, outcome.detail)
