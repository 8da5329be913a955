"""Tables of payouts: partners' payout details, each program's payout policy, payouts with
their claims and timeline, and every provider event (webhook) received.

The money lives in the ledger (claims payable -> payouts in transit -> settled); a payout names
the transfer that sent its current attempt. `payout_events` is append-only like the journal.
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
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from mdfledger.db import Base, BigInt, UTCDateTime, one_of
from mdfledger.payouts.rules import (
    PROVIDERS,
    TAX_FORMS,
    Method,
    PayoutState,
    Schedule,
    payout_reference,
)


class PayoutDetails(Base):
    """Where a partner is paid: a Stripe connected account or a bank account; and their tax
    information. Account numbers are stored in full (a payment file needs them) and shown
    masked everywhere else."""

    __tablename__ = "payout_details"
    __table_args__ = (
        CheckConstraint(one_of("method", Method), name="method"),
        CheckConstraint(
            "method <> 'stripe' OR stripe_account IS NOT NULL", name="stripe_has_account"
        ),
        CheckConstraint(
            "method <> 'bank' OR (iban IS NOT NULL OR account_number IS NOT NULL)",
            name="bank_has_account",
        ),
        CheckConstraint(f"tax_form IS NULL OR {one_of('tax_form', TAX_FORMS)}", name="tax_form"),
    )

    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), primary_key=True)
    method: Mapped[str] = mapped_column(String(16))
    stripe_account: Mapped[str | None] = mapped_column(String(64))
    account_holder: Mapped[str] = mapped_column(String(200), default="")
    bank_country: Mapped[str | None] = mapped_column(String(2))
    iban: Mapped[str | None] = mapped_column(String(34))
    account_number: Mapped[str | None] = mapped_column(String(34))
    routing_code: Mapped[str | None] = mapped_column(String(15))  # routing, sort or bank code
    payout_currency: Mapped[str | None] = mapped_column(String(3))
    tax_form: Mapped[str | None] = mapped_column(String(16))
    tax_id: Mapped[str | None] = mapped_column(String(64))
    tax_received_on: Mapped[date | None] = mapped_column(Date)
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PayoutPolicy(Base):
    """How a program pays. Programs without a row: manual provider, immediately, no tax
    information required, no minimum, 5 attempts."""

    __tablename__ = "payout_policies"
    __table_args__ = (
        CheckConstraint(one_of("provider", PROVIDERS), name="provider"),
        CheckConstraint(one_of("schedule", Schedule), name="schedule"),
        CheckConstraint(
            "(schedule = 'immediate' AND run_day IS NULL)"
            " OR (schedule = 'weekly' AND run_day BETWEEN 0 AND 6)"
            " OR (schedule = 'monthly' AND run_day BETWEEN 1 AND 28)",
            name="run_day",
        ),
        CheckConstraint("minimum_amount >= 0", name="minimum_amount"),
        CheckConstraint("max_attempts BETWEEN 1 AND 20", name="max_attempts"),
    )

    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"), primary_key=True)
    provider: Mapped[str] = mapped_column(String(16))
    schedule: Mapped[str] = mapped_column(String(16))
    run_day: Mapped[int | None] = mapped_column(Integer)
    requires_tax_info: Mapped[bool] = mapped_column(Boolean, default=False)
    minimum_amount: Mapped[int] = mapped_column(BigInt, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=5)
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Payout(Base):
    """One payment of a partner's approved claims in one program, in attempts."""

    __tablename__ = "payouts"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount"),
        CheckConstraint("amount_reversed >= 0 AND amount_reversed <= amount", name="reversed"),
        CheckConstraint("attempt >= 1", name="attempt"),
        CheckConstraint(one_of("state", PayoutState), name="state"),
        CheckConstraint(one_of("provider", PROVIDERS), name="provider"),
        Index("ix_payouts_state_next", "state", "next_attempt_at"),
        Index("ix_payouts_partner_created", "partner_id", "created_at", "id"),
        Index("ix_payouts_program_state", "program_id", "state"),
        Index("ix_payouts_provider_ref", "provider_ref"),
    )

    id: Mapped[int] = mapped_column(BigInt, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"))
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(BigInt)
    provider: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    # The provider's idempotency key of the current attempt (mdfledger-payout-<id>-<attempt>).
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    transfer_group: Mapped[str] = mapped_column(String(64))  # payout-<id>
    provider_ref: Mapped[str | None] = mapped_column(String(255))  # tr_... or a bank reference
    destination: Mapped[str] = mapped_column(String(255))  # acct_..., or the masked account
    # The ledger transfer that moved the current attempt's money to transit (set right after
    # the payout row is written: the transfer's key names the payout).
    send_transfer_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_transfers.id"))
    amount_reversed: Mapped[int] = mapped_column(BigInt, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    flagged_reason: Mapped[str | None] = mapped_column(Text)  # needs finance: says why
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)  # when this attempt began
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime)  # last asked of the provider
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}

    @property
    def reference(self) -> str:
        return payout_reference(self.id)


# Claims in a live payout (every state but cancelled); the partial unique index below keeps a
# claim in at most one.
LIVE_SQL = "live"


class PayoutClaim(Base):
    """A claim paid by a payout, and the amount of it."""

    __tablename__ = "payout_claims"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount"),
        UniqueConstraint("payout_id", "claim_id"),
        Index(
            "uq_payout_claims_live_claim",
            "claim_id",
            unique=True,
            sqlite_where=text(LIVE_SQL),
            postgresql_where=text(LIVE_SQL),
        ),
    )

    id: Mapped[int] = mapped_column(BigInt, primary_key=True)
    payout_id: Mapped[int] = mapped_column(ForeignKey("payouts.id"))
    claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id"), index=True)
    amount: Mapped[int] = mapped_column(BigInt)
    live: Mapped[bool] = mapped_column(Boolean, default=True)


class PayoutEvent(Base):
    """One step on a payout's timeline. Append-only: the database refuses changes."""

    __tablename__ = "payout_events"
    __table_args__ = (Index("ix_payout_events_payout", "payout_id", "id"),)

    id: Mapped[int] = mapped_column(BigInt, primary_key=True)
    payout_id: Mapped[int] = mapped_column(ForeignKey("payouts.id"))
    event: Mapped[str] = mapped_column(String(24))
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer)
    provider_ref: Mapped[str | None] = mapped_column(String(255))
    message: Mapped[str] = mapped_column(Text, default="")
    actor: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class ProviderEventRecord(Base):
    """Every provider event (webhook) received, once per event id, with what came of it."""

    __tablename__ = "payout_provider_events"
    __table_args__ = (
        UniqueConstraint("provider", "event_id"),
        Index("ix_payout_provider_events_received", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigInt, primary_key=True)
    provider: Mapped[str] = mapped_column(String(16))
    event_id: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(100))
    created: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the provider's time
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    payout_id: Mapped[int | None] = mapped_column(ForeignKey("payouts.id"), index=True)
    outcome: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
