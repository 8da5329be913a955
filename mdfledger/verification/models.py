"""Tables of verification: each program's rules, every check's result, the leads claimed.

`verification_checks` is append-only like the journal and the timeline: a re-run or a scheduled
re-check adds a row; the latest row per (claim, kind, document) is the current result.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
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
from mdfledger.verification.outcome import CheckKind, Outcome

DEFAULT_TOLERANCE_BP = 100  # an invoice total may differ from the claimed cost by 1%
DEFAULT_INVOICE_GRACE_DAYS = 30  # invoices dated up to a month around the activity
DEFAULT_MARKERS = "{partner}"  # a landing page must at least name the partner
DEFAULT_RECHECK_DAYS = 30  # pages are re-checked daily for a month after submission


class Trigger:
    SUBMIT = "submit"  # the claim was submitted
    RERUN = "rerun"  # finance asked for the check again
    RECHECK = "recheck"  # the daily re-check of live pages


class VerificationPolicy(Base):
    """A program's verification rules. Programs without a row use the defaults above and never
    approve automatically."""

    __tablename__ = "verification_policies"
    __table_args__ = (
        CheckConstraint("auto_approve_up_to IS NULL OR auto_approve_up_to > 0", name="auto"),
        CheckConstraint("tolerance_bp BETWEEN 0 AND 10000", name="tolerance"),
        CheckConstraint("invoice_grace_days BETWEEN 0 AND 366", name="grace"),
        CheckConstraint("min_leads IS NULL OR min_leads > 0", name="min_leads"),
        CheckConstraint("recheck_days BETWEEN 0 AND 366", name="recheck"),
    )

    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"), primary_key=True)
    # Claims up to this amount (program currency, minor units) whose checks all pass are
    # approved without a person; None: every claim goes to finance.
    auto_approve_up_to: Mapped[int | None] = mapped_column(BigInt)
    tolerance_bp: Mapped[int] = mapped_column(Integer, default=DEFAULT_TOLERANCE_BP)
    invoice_grace_days: Mapped[int] = mapped_column(Integer, default=DEFAULT_INVOICE_GRACE_DAYS)
    # One marker per line that landing pages and posts must show; {partner} is the partner's
    # name, {claim} the claim's reference.
    page_markers: Mapped[str] = mapped_column(Text, default=DEFAULT_MARKERS)
    min_leads: Mapped[int | None] = mapped_column(Integer)
    recheck_days: Mapped[int] = mapped_column(Integer, default=DEFAULT_RECHECK_DAYS)
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CheckResult(Base):
    """One run of one check on one claim (and one document, for per-document checks)."""

    __tablename__ = "verification_checks"
    __table_args__ = (
        CheckConstraint(one_of("kind", CheckKind), name="kind"),
        CheckConstraint(one_of("outcome", Outcome), name="outcome"),
        CheckConstraint("score BETWEEN 0 AND 100", name="score"),
        CheckConstraint(
            one_of("trigger", (Trigger.SUBMIT, Trigger.RERUN, Trigger.RECHECK)), name="trigger"
        ),
        Index("ix_verification_checks_claim", "claim_id", "id"),
        Index("ix_verification_checks_kind_at", "kind", "checked_at"),
    )

    id: Mapped[int] = mapped_column(BigInt, primary_key=True)
    claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id"))
    kind: Mapped[str] = mapped_column(String(16))
    # The document or link checked. No foreign key: a returned claim's document may be removed
    # later, and its results stay in the history.
    document_id: Mapped[int | None] = mapped_column(BigInt)
    outcome: Mapped[str] = mapped_column(String(16))
    score: Mapped[int] = mapped_column(Integer)
    summary: Mapped[str] = mapped_column(Text)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON)
    trigger: Mapped[str] = mapped_column(String(16))
    requested_by: Mapped[str] = mapped_column(String(200))
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ClaimedLead(Base):
    """A lead (by the hash of its normalised e-mail) in a claim's lead list, so a later claim of
    the same partner can be told which of its leads were claimed before."""

    __tablename__ = "verification_leads"
    __table_args__ = (
        UniqueConstraint("claim_id", "lead_key"),
        Index("ix_verification_leads_partner_key", "partner_id", "lead_key"),
    )

    id: Mapped[int] = mapped_column(BigInt, primary_key=True)
    claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id"))
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"))
    lead_key: Mapped[str] = mapped_column(String(64))
