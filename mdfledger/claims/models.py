"""Tables for fund requests, claims, their money holds, proof documents, timeline and flags.

The money itself lives in the ledger: a hold row names the pending transfer that reserves it.
The timeline (`claim_events`) is append-only like the journal: the database refuses changes.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import (
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
from sqlalchemy.orm import Mapped, mapped_column, relationship

from mdfledger.claims.rules import ClaimState, ReasonCode, RequestState
from mdfledger.db import Base, BigInt, UTCDateTime, one_of


class DocumentKind(StrEnum):
    INVOICE = "invoice"
    LEAD_LIST = "lead_list"
    PHOTO = "photo"
    LANDING_PAGE = "landing_page"  # a link, not a file
    SOCIAL_POST = "social_post"  # a link, not a file
    OTHER = "other"


LINK_KINDS = frozenset({DocumentKind.LANDING_PAGE, DocumentKind.SOCIAL_POST})


class FlagKind(StrEnum):
    SAME_FILE = "same_file"  # a document with the same content is in another claim
    SAME_INVOICE = "same_invoice"  # the same issuer, number and total is in another claim


# The claims finance has yet to decide (claims.queue.WAITING), as the queue's partial indexes
# name them; tests/claims/test_bench.py checks the two agree.
WAITING_SQL = "state IN ('submitted', 'verifying', 'in_review')"


def claim_reference(claim_id: int) -> str:
    """How people name a claim: CLM-000042."""
    return f"CLM-{claim_id:06d}"


class FundRequest(Base):
    """A partner's request for pre-approval of one catalog activity."""

    __tablename__ = "fund_requests"
    __table_args__ = (
        CheckConstraint(one_of("state", RequestState), name="state"),
        CheckConstraint("starts_on <= ends_on", name="dates"),
        CheckConstraint("estimated_cost > 0", name="estimated_cost"),
        CheckConstraint("requested_amount > 0", name="requested_amount"),
        CheckConstraint(
            "approved_amount IS NULL OR (approved_amount > 0"
            " AND approved_amount <= requested_amount)",
            name="approved_amount",
        ),
        CheckConstraint(
            f"reason_code IS NULL OR {one_of('reason_code', ReasonCode)}", name="reason_code"
        ),
        CheckConstraint(
            "state NOT IN ('approved', 'claimed') OR approved_amount IS NOT NULL",
            name="approved_has_amount",
        ),
        Index("ix_fund_requests_partner_state", "partner_id", "state"),
        Index("ix_fund_requests_state_submitted", "state", "submitted_at"),
    )

    id: Mapped[int] = mapped_column(BigInt, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"), index=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"))
    activity_id: Mapped[int] = mapped_column(ForeignKey("program_activities.id"))
    currency: Mapped[str] = mapped_column(String(3))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    expected_outcome: Mapped[str] = mapped_column(Text, default="")
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date] = mapped_column(Date)
    estimated_cost: Mapped[int] = mapped_column(BigInt)
    requested_amount: Mapped[int] = mapped_column(BigInt)
    approved_amount: Mapped[int | None] = mapped_column(BigInt)
    claim_deadline: Mapped[date] = mapped_column(Date)  # last day a claim may be submitted
    state: Mapped[str] = mapped_column(String(16))
    reason_code: Mapped[str | None] = mapped_column(String(24))  # of the last decision
    reason: Mapped[str | None] = mapped_column(Text)
    submitted_by: Mapped[str] = mapped_column(String(200))  # actor label
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}

    @property
    def reference(self) -> str:
        return f"REQ-{self.id:06d}"


class Claim(Base):
    """A claim for reimbursement: against an approved request, or directly against funds."""

    __tablename__ = "claims"
    __table_args__ = (
        CheckConstraint(one_of("state", ClaimState), name="state"),
        CheckConstraint("starts_on <= ends_on", name="dates"),
        CheckConstraint("actual_cost > 0", name="actual_cost"),
        CheckConstraint("claimed_amount > 0", name="claimed_amount"),
        CheckConstraint(
            "approved_amount IS NULL"
            " OR (approved_amount > 0 AND approved_amount <= claimed_amount)",
            name="approved_amount",
        ),
        CheckConstraint("invoice_total IS NULL OR invoice_total > 0", name="invoice_total"),
        CheckConstraint(
            f"reason_code IS NULL OR {one_of('reason_code', ReasonCode)}", name="reason_code"
        ),
        CheckConstraint(
            "(first_approval_by IS NULL) = (first_approval_amount IS NULL)", name="first_approval"
        ),
        CheckConstraint(
            "state NOT IN ('approved', 'paid') OR approved_amount IS NOT NULL",
            name="approved_has_amount",
        ),
        CheckConstraint(
            "state IN ('draft', 'withdrawn', 'expired') OR submitted_at IS NOT NULL",
            name="submitted_at",
        ),
        # The finance queue: by state and age, optionally narrowed by program or partner.
        Index("ix_claims_state_submitted", "state", "submitted_at", "id"),
        Index("ix_claims_program_state", "program_id", "state", "submitted_at"),
        Index("ix_claims_partner_state", "partner_id", "state", "submitted_at"),
        Index("ix_claims_invoice", "invoice_key"),
        # A partner's own claims, newest first, without sorting them all (0007); and the
        # queue's "flagged only" and its count, without reading every waiting claim (0007).
        Index("ix_claims_partner_created", "partner_id", "created_at", "id"),
        Index("ix_claims_flagged_state", "flagged", "state", "submitted_at", "id"),
        # The queue itself in its sort orders: over the waiting claims only, so PostgreSQL reads
        # a page's 50 rows in order instead of every waiting claim (0007). SQLite cannot match
        # a parameterised IN to the predicate and leaves them unused; they cost it little.
        Index(
            "ix_claims_waiting_submitted",
            "submitted_at",
            "id",
            sqlite_where=text(WAITING_SQL),
            postgresql_where=text(WAITING_SQL),
        ),
        Index(
            "ix_claims_waiting_amount",
            "claimed_amount",
            "id",
            sqlite_where=text(WAITING_SQL),
            postgresql_where=text(WAITING_SQL),
        ),
    )

    id: Mapped[int] = mapped_column(BigInt, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"))
    activity_id: Mapped[int] = mapped_column(ForeignKey("program_activities.id"))
    request_id: Mapped[int | None] = mapped_column(ForeignKey("fund_requests.id"), index=True)
    currency: Mapped[str] = mapped_column(String(3))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date] = mapped_column(Date)
    actual_cost: Mapped[int] = mapped_column(BigInt)
    claimed_amount: Mapped[int] = mapped_column(BigInt)
    approved_amount: Mapped[int | None] = mapped_column(BigInt)
    claim_deadline: Mapped[date] = mapped_column(Date)
    invoice_issuer: Mapped[str] = mapped_column(String(200), default="")
    invoice_number: Mapped[str] = mapped_column(String(100), default="")
    invoice_total: Mapped[int | None] = mapped_column(BigInt)
    invoice_key: Mapped[str | None] = mapped_column(String(400))  # normalised issuer|number|total
    state: Mapped[str] = mapped_column(String(16))
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)  # has open duplicate flags
    reason_code: Mapped[str | None] = mapped_column(String(24))
    reason: Mapped[str | None] = mapped_column(Text)
    first_approval_by: Mapped[str | None] = mapped_column(String(200))  # awaiting a second
    first_approval_amount: Mapped[int | None] = mapped_column(BigInt)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    submitted_by: Mapped[str | None] = mapped_column(String(200))
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    version: Mapped[int] = mapped_column(Integer, default=1)

    documents: Mapped[list[Document]] = relationship(order_by="Document.id", back_populates="claim")
    flags: Mapped[list[ClaimFlag]] = relationship(
        order_by="ClaimFlag.id", foreign_keys="ClaimFlag.claim_id"
    )

    __mapper_args__ = {"version_id_col": version}

    @property
    def reference(self) -> str:
        return claim_reference(self.id)


class Hold(Base):
    """Money held for a request or a claim: one pending ledger transfer from one period's fund.

    `open` is cleared when the transfer is posted, voided or expires.
    """

    __tablename__ = "claim_holds"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount"),
        CheckConstraint("(request_id IS NULL) <> (claim_id IS NULL)", name="owner"),
    )

    id: Mapped[int] = mapped_column(BigInt, primary_key=True)
    request_id: Mapped[int | None] = mapped_column(ForeignKey("fund_requests.id"), index=True)
    claim_id: Mapped[int | None] = mapped_column(ForeignKey("claims.id"), index=True)
    fund_id: Mapped[int] = mapped_column(ForeignKey("partner_funds.id"))
    transfer_id: Mapped[int] = mapped_column(ForeignKey("ledger_transfers.id"), unique=True)
    amount: Mapped[int] = mapped_column(BigInt)
    open: Mapped[bool] = mapped_column(Boolean, default=True)


class Document(Base):
    """One piece of proof: a stored file (by content hash) or a link to a live page."""

    __tablename__ = "claim_documents"
    __table_args__ = (
        CheckConstraint(one_of("kind", DocumentKind), name="kind"),
        CheckConstraint("(sha256 IS NULL) <> (url IS NULL)", name="file_or_link"),
        CheckConstraint(
            f"({one_of('kind', sorted(LINK_KINDS))}) = (url IS NOT NULL)", name="link_kind"
        ),
        CheckConstraint("size IS NULL OR size > 0", name="size"),
        Index("ix_claim_documents_sha256", "sha256"),
    )

    id: Mapped[int] = mapped_column(BigInt, primary_key=True)
    claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    filename: Mapped[str] = mapped_column(String(255), default="")
    sha256: Mapped[str | None] = mapped_column(String(64))
    size: Mapped[int | None] = mapped_column(BigInt)
    media_type: Mapped[str | None] = mapped_column(String(100))
    extension: Mapped[str | None] = mapped_column(String(8))
    url: Mapped[str | None] = mapped_column(String(2000))
    uploaded_by: Mapped[str] = mapped_column(String(200))
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime)

    claim: Mapped[Claim] = relationship(back_populates="documents")

    @property
    def is_link(self) -> bool:
        return self.url is not None


class ClaimFlag(Base):
    """Why a claim needs a closer look: a duplicate of something in another claim."""

    __tablename__ = "claim_flags"
    __table_args__ = (CheckConstraint(one_of("kind", FlagKind), name="kind"),)

    id: Mapped[int] = mapped_column(BigInt, primary_key=True)
    claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    other_claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id"))
    detail: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ClaimEvent(Base):
    """One step in a request's or a claim's timeline: who did what, when and why. Append-only."""

    __tablename__ = "claim_events"
    __table_args__ = (
        CheckConstraint("(request_id IS NULL) <> (claim_id IS NULL)", name="subject"),
        CheckConstraint(
            f"reason_code IS NULL OR {one_of('reason_code', ReasonCode)}", name="reason_code"
        ),
        Index("ix_claim_events_claim", "claim_id", "id"),
        Index("ix_claim_events_request", "request_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInt, primary_key=True)
    request_id: Mapped[int | None] = mapped_column(ForeignKey("fund_requests.id"))
    claim_id: Mapped[int | None] = mapped_column(ForeignKey("claims.id"))
    event: Mapped[str] = mapped_column(String(24))
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(200))  # actor label
    actor_name: Mapped[str] = mapped_column(String(200))  # as people saw it at the time
    role: Mapped[str | None] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    amount: Mapped[int | None] = mapped_column(BigInt)
    reason_code: Mapped[str | None] = mapped_column(String(24))
    message: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)


class ApprovalLimit(Base):
    """The most one finance user may approve on one claim, per currency."""

    __tablename__ = "approval_limits"
    __table_args__ = (
        UniqueConstraint("user_id", "currency"),
        CheckConstraint("max_amount >= 0", name="max_amount"),
        CheckConstraint("length(currency) = 3", name="currency"),
    )

    id: Mapped[int] = mapped_column(BigInt, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    currency: Mapped[str] = mapped_column(String(3))
    max_amount: Mapped[int] = mapped_column(BigInt)
