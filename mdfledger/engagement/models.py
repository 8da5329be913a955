"""Tables of engagement: the outbox of events, where they go, and each delivery's attempts.

`engagement_events` (the outbox) and `engagement_attempts` (the delivery log) are append-only
like the journal: the database refuses changes. A delivery is one event for one destination;
its row changes state (pending, delivered, dead) and every attempt adds a log row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from mdfledger.db import Base, BigInt, UTCDateTime, one_of
from mdfledger.engagement.rules import AttemptOutcome, DeliveryState, DestinationKind


class Event(Base):
    """Something that happened to a partner, with the message it was told, written in the
    transaction of the change (the outbox)."""

    __tablename__ = "engagement_events"
    __table_args__ = (Index("ix_engagement_events_partner", "partner_id", "id"),)

    id: Mapped[int] = mapped_column(BigInt, primary_key=True)
    type: Mapped[str] = mapped_column(String(40))
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"))
    program_id: Mapped[int | None] = mapped_column(ForeignKey("programs.id"))
    # Emitting the same key again writes nothing (a signal fires once per state change).
    key: Mapped[str | None] = mapped_column(String(200), unique=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    subject: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Destination(Base):
    """Where events go: a webhook, an SNS topic, an EventBridge bus or e-mail addresses; for one
    partner, or for every partner (vendor-wide) when partner_id is null."""

    __tablename__ = "engagement_destinations"
    __table_args__ = (
        CheckConstraint(one_of("kind", DestinationKind), name="kind"),
        CheckConstraint(
            "kind <> 'webhook' OR (url IS NOT NULL AND secret IS NOT NULL)", name="webhook"
        ),
        CheckConstraint("kind <> 'sns' OR topic_arn IS NOT NULL", name="sns"),
        CheckConstraint("kind <> 'eventbridge' OR event_bus IS NOT NULL", name="eventbridge"),
        Index("ix_engagement_destinations_partner", "partner_id"),
    )

    id: Mapped[int] = mapped_column(BigInt, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))
    partner_id: Mapped[int | None] = mapped_column(ForeignKey("partners.id"))
    event_types: Mapped[str] = mapped_column(Text)  # "*" or types joined by commas
    url: Mapped[str | None] = mapped_column(String(2000))
    # The webhook signing secret. Kept as is (an HMAC needs it); shown once, masked after.
    secret: Mapped[str | None] = mapped_column(String(100))
    topic_arn: Mapped[str | None] = mapped_column(String(256))
    event_bus: Mapped[str | None] = mapped_column(String(1600))
    region: Mapped[str | None] = mapped_column(String(40))
    # E-mail addresses; null: the partner's contacts at delivery time.
    email_to: Mapped[list[str] | None] = mapped_column(JSON)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Delivery(Base):
    """One event for one destination: pending until delivered or given up (dead)."""

    __tablename__ = "engagement_deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "destination_id"),
        CheckConstraint(one_of("state", DeliveryState), name="state"),
        CheckConstraint("attempts >= 0", name="attempts"),
        CheckConstraint("state <> 'delivered' OR delivered_at IS NOT NULL", name="delivered_at"),
        CheckConstraint("state <> 'dead' OR dead_at IS NOT NULL", name="dead_at"),
        # Per destination and partner, the oldest pending first: the delivery loop's lookup.
        Index(
            "ix_engagement_deliveries_queue", "destination_id", "partner_id", "state", "event_id"
        ),
        Index("ix_engagement_deliveries_state_due", "state", "next_attempt_at"),
        Index("ix_engagement_deliveries_event", "event_id"),
    )

    id: Mapped[int] = mapped_column(BigInt, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("engagement_events.id"))
    destination_id: Mapped[int] = mapped_column(ForeignKey("engagement_destinations.id"))
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"))
    state: Mapped[str] = mapped_column(String(16), default=DeliveryState.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Retries run for rules.RETRY_WINDOW from here: the creation, or the last replay.
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    # A worker sending it holds it until then (sending happens outside any transaction).
    leased_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease: Mapped[str | None] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(Text)
    last_status: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    dead_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    replayed_by: Mapped[str | None] = mapped_column(String(200))
    replayed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class DeliveryAttempt(Base):
    """One try to send a delivery and what came of it (append-only): the record of retries."""

    __tablename__ = "engagement_attempts"
    __table_args__ = (
        CheckConstraint(one_of("outcome", AttemptOutcome), name="outcome"),
        Index("ix_engagement_attempts_delivery", "delivery_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInt, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("engagement_deliveries.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(String(16))
    status: Mapped[int | None] = mapped_column(Integer)  # HTTP status, where there was one
    detail: Mapped[str] = mapped_column(Text)
