"""Tables of partner activity signals: each program's thresholds and each signal's state.

`partner_signals` holds one row per (program, partner, kind, subject) ever raised: whether it is
on, since when, its latest value, and the key of the event it emitted when it last turned on.
The daily job compares it with what the rules find, so an unchanged signal sends nothing.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from mdfledger.db import Base, BigInt, UTCDateTime, one_of
from mdfledger.engagement.signal_rules import (
    DEFAULT_DEADLINE_WARNING_DAYS,
    DEFAULT_EXPIRY_WARNING_DAYS,
    DEFAULT_MILESTONES,
    DEFAULT_NO_ACTIVITY_DAYS,
    DEFAULT_NO_SIGN_IN_DAYS,
    SignalKind,
    milestones_text,
)

DAYS = "BETWEEN 1 AND 366"


class SignalPolicy(Base):
    """A program's signal thresholds. Programs without a row use the defaults."""

    __tablename__ = "signal_policies"
    __table_args__ = (
        CheckConstraint(f"no_sign_in_days {DAYS}", name="no_sign_in_days"),
        CheckConstraint(f"no_activity_days {DAYS}", name="no_activity_days"),
        CheckConstraint(f"expiry_warning_days {DAYS}", name="expiry_warning_days"),
        CheckConstraint(f"deadline_warning_days {DAYS}", name="deadline_warning_days"),
    )

    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"), primary_key=True)
    no_sign_in_days: Mapped[int] = mapped_column(Integer, default=DEFAULT_NO_SIGN_IN_DAYS)
    no_activity_days: Mapped[int] = mapped_column(Integer, default=DEFAULT_NO_ACTIVITY_DAYS)
    expiry_warning_days: Mapped[int] = mapped_column(Integer, default=DEFAULT_EXPIRY_WARNING_DAYS)
    deadline_warning_days: Mapped[int] = mapped_column(
        Integer, default=DEFAULT_DEADLINE_WARNING_DAYS
    )
    # Percentages of a period's funds used, comma-separated and sorted: "25,50,75,100".
    milestones: Mapped[str] = mapped_column(String(40), default=milestones_text(DEFAULT_MILESTONES))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PartnerSignal(Base):
    """One signal of one partner in one program, on or off."""

    __tablename__ = "partner_signals"
    __table_args__ = (
        UniqueConstraint("program_id", "partner_id", "kind", "subject"),
        CheckConstraint(one_of("kind", SignalKind), name="kind"),
        CheckConstraint("NOT active OR since IS NOT NULL", name="since"),
        # A signal on, or one that sent an event, was turned on under a key.
        CheckConstraint("NOT (active OR emitted) OR event_key IS NOT NULL", name="event_key"),
        # The at-risk list: the signals on, by program.
        Index("ix_partner_signals_active", "active", "program_id", "partner_id"),
        Index("ix_partner_signals_partner", "partner_id"),
    )

    id: Mapped[int] = mapped_column(BigInt, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"))
    kind: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(String(80), default="")  # "", fund:12, request:7, ...
    active: Mapped[bool] = mapped_column(Boolean)
    since: Mapped[date | None] = mapped_column(Date)  # the business day its condition began
    value: Mapped[dict[str, Any]] = mapped_column(JSON)  # the latest data (JSON values)
    event_key: Mapped[str | None] = mapped_column(String(200))  # of the last turn on
    emitted: Mapped[bool] = mapped_column(Boolean, default=False)  # did that turn send one
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)  # last turned on or off
