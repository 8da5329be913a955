"""Programs, their activity catalog and accrual rates, partners, funds, allocations, purchases.

Money lives in the ledger; these tables say what the ledger's accounts and transfers mean.
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
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from mdfledger.db import Base, BigInt, UTCDateTime, one_of


class ProgramKind(StrEnum):
    MDF = "mdf"  # funds allocated up front
    COOP = "coop"  # funds accrued as a share of partner purchases


class ExpiryPolicy(StrEnum):
    FORFEIT = "forfeit"  # unspent funds expire at period end
    ROLLOVER = "rollover"  # unspent funds stay usable for rollover_days after period end


class ProgramStatus(StrEnum):
    ACTIVE = "active"
    CLOSED = "closed"  # no new funds, requests or claims


class ProofType(StrEnum):
    INVOICE = "invoice"
    LANDING_PAGE = "landing_page"
    SOCIAL_POST = "social_post"
    LEAD_LIST = "lead_list"
    PHOTOS = "photos"


class PartnerType(StrEnum):
    RESELLER = "reseller"
    DISTRIBUTOR = "distributor"
    REFERRAL = "referral"
    AGENCY = "agency"
    MSP = "msp"
    SYSTEM_INTEGRATOR = "system_integrator"


class PartnerStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"  # keeps its funds, cannot receive new ones
    TERMINATED = "terminated"


class AllocationKind(StrEnum):
    ALLOCATION = "allocation"
    ADJUSTMENT = "adjustment"  # an adjusting transfer, up or down, with a reason
    REVERSAL = "reversal"  # a reversing transfer that undoes one allocation


class ImportKind(StrEnum):
    ALLOCATIONS = "allocations"
    PURCHASES = "purchases"


class Program(Base):
    __tablename__ = "programs"
    __table_args__ = (
        CheckConstraint(one_of("kind", ProgramKind), name="kind"),
        CheckConstraint(one_of("expiry_policy", ExpiryPolicy), name="expiry_policy"),
        CheckConstraint(one_of("status", ProgramStatus), name="status"),
        CheckConstraint("length(currency) = 3", name="currency"),
        CheckConstraint("fiscal_start_month BETWEEN 1 AND 12", name="fiscal_start_month"),
        CheckConstraint("period_months IN (1, 2, 3, 4, 6, 12)", name="period_months"),
        CheckConstraint("claim_deadline_days BETWEEN 0 AND 3660", name="claim_deadline_days"),
        CheckConstraint("share_bp BETWEEN 1 AND 10000", name="share_bp"),
        CheckConstraint(
            "(expiry_policy = 'rollover') = (rollover_days > 0) AND rollover_days <= 3660",
            name="rollover_days",
        ),
        CheckConstraint(
            "(kind = 'coop') = (accrual_account_id IS NOT NULL)", name="coop_has_accrual_source"
        ),
        CheckConstraint(
            "second_approval_above IS NULL OR second_approval_above >= 0",
            name="second_approval_above",
        ),
    )

    id: Mapped[int] = mapped_column(BigInt, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(String(8))
    currency: Mapped[str] = mapped_column(String(3))
    timezone: Mapped[str] = mapped_column(String(64))
    fiscal_start_month: Mapped[int] = mapped_column(Integer)
    period_months: Mapped[int] = mapped_column(Integer)
    claim_deadline_days: Mapped[int] = mapped_column(Integer)
    share_bp: Mapped[int] = mapped_column(Integer)
    expiry_policy: Mapped[str] = mapped_column(String(16))
    rollover_days: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default=ProgramStatus.ACTIVE.value)
    # Claims without a pre-approved request, straight against available funds.
    direct_claims: Mapped[bool] = mapped_column(Boolean, default=False)
    # Claims above this amount (minor units) need two different approvers; None: one is enough.
    second_approval_above: Mapped[int | None] = mapped_column(BigInt)
    funding_account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"))
    budget_account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"))
    accrual_account_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_accounts.id"))
    expired_account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    activities: Mapped[list[Activity]] = relationship(
        back_populates="program", order_by="Activity.name"
    )
    rates: Mapped[list[AccrualRate]] = relationship(order_by="AccrualRate.id")


class Activity(Base):
    """A marketing play partners may run in a program, the proof it needs and its cap."""

    __tablename__ = "program_activities"
    __table_args__ = (
        UniqueConstraint("program_id", "code"),
        CheckConstraint("cap IS NULL OR cap > 0", name="cap_positive"),
    )

    id: Mapped[int] = mapped_column(BigInt, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    proof: Mapped[str] = mapped_column(String(200))  # comma-separated ProofType values, sorted
    cap: Mapped[int | None] = mapped_column(BigInt)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    program: Mapped[Program] = relationship(back_populates="activities")

    @property
    def proof_required(self) -> tuple[str, ...]:
        return tuple(p for p in self.proof.split(",") if p)


class AccrualRate(Base):
    """Co-op accrual rate by partner tier and/or product line; '' matches any."""

    __tablename__ = "program_accrual_rates"
    __table_args__ = (
        UniqueConstraint("program_id", "tier", "product_line"),
        CheckConstraint("rate_bp BETWEEN 0 AND 10000", name="rate_bp"),
    )

    id: Mapped[int] = mapped_column(BigInt, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    tier: Mapped[str] = mapped_column(String(40), default="")
    product_line: Mapped[str] = mapped_column(String(80), default="")
    rate_bp: Mapped[int] = mapped_column(Integer)


class Partner(Base):
    __tablename__ = "partners"
    __table_args__ = (
        CheckConstraint(one_of("type", PartnerType), name="type"),
        CheckConstraint(one_of("status", PartnerStatus), name="status"),
        # Imports match partner codes ignoring case, so "ACME" and "acme" must not both exist.
        Index("uq_partners_code_lower", func.lower(text("code")), unique=True),
    )

    id: Mapped[int] = mapped_column(BigInt, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)  # how imports name the partner
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(24))
    tier: Mapped[str] = mapped_column(String(40))
    region: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16), default=PartnerStatus.ACTIVE.value)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    contacts: Mapped[list[Contact]] = relationship(order_by="Contact.id")


class Contact(Base):
    __tablename__ = "partner_contacts"

    id: Mapped[int] = mapped_column(BigInt, primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254))
    phone: Mapped[str] = mapped_column(String(40), default="")
    title: Mapped[str] = mapped_column(String(100), default="")
    is_primary: Mapped[bool] = mapped_column(Boolean, default=False)


class Fund(Base):
    """A partner's funds in one program and fiscal period: one ledger account, one expiry date."""

    __tablename__ = "partner_funds"
    __table_args__ = (
        UniqueConstraint("program_id", "partner_id", "period_start"),
        CheckConstraint("period_start <= period_end", name="period"),
        CheckConstraint("available_until >= period_end", name="available_until"),
        Index("ix_partner_funds_partner", "partner_id", "program_id"),
        Index("ix_partner_funds_available_until", "available_until"),
    )

    id: Mapped[int] = mapped_column(BigInt, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"))
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    period_label: Mapped[str] = mapped_column(String(20))
    available_until: Mapped[date] = mapped_column(Date)  # last day the funds can be used
    account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"), unique=True)


class Import(Base):
    """One bulk import (allocations or purchases): what came in and what it did."""

    __tablename__ = "imports"
    __table_args__ = (
        CheckConstraint(one_of("kind", ImportKind), name="kind"),
        Index("ix_imports_program", "program_id", "kind", "sha256"),
    )

    id: Mapped[int] = mapped_column(BigInt, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    period_start: Mapped[date] = mapped_column(Date)
    filename: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    rows: Mapped[int] = mapped_column(Integer)
    applied: Mapped[int] = mapped_column(Integer)
    skipped: Mapped[int] = mapped_column(Integer)  # rows an earlier import already applied
    amount: Mapped[int] = mapped_column(BigInt)  # net amount moved into partner funds
    actor: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Allocation(Base):
    """An allocation to a partner fund, or an adjustment or reversal of one, with its transfer."""

    __tablename__ = "allocations"
    __table_args__ = (
        CheckConstraint(one_of("kind", AllocationKind), name="kind"),
        CheckConstraint("amount <> 0", name="amount_nonzero"),
        CheckConstraint("(kind = 'reversal') = (reverses_id IS NOT NULL)", name="reversal"),
        Index("ix_allocations_partner", "partner_id", "program_id"),
    )

    id: Mapped[int] = mapped_column(BigInt, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"))
    fund_id: Mapped[int] = mapped_column(ForeignKey("partner_funds.id"))
    amount: Mapped[int] = mapped_column(BigInt)  # signed: negative takes funds back
    reason: Mapped[str] = mapped_column(Text)
    transfer_id: Mapped[int] = mapped_column(ForeignKey("ledger_transfers.id"), unique=True)
    reverses_id: Mapped[int | None] = mapped_column(ForeignKey("allocations.id"), unique=True)
    import_id: Mapped[int | None] = mapped_column(ForeignKey("imports.id"))
    actor: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    fund: Mapped[Fund] = relationship()


class Purchase(Base):
    """A partner purchase (or return, negative) from a co-op import, and what it accrued."""

    __tablename__ = "coop_purchases"
    __table_args__ = (
        UniqueConstraint("program_id", "source_key"),
        CheckConstraint("amount <> 0", name="amount_nonzero"),
        CheckConstraint("unrecovered >= 0", name="unrecovered"),
        Index("ix_coop_purchases_partner", "partner_id", "program_id"),
    )

    id: Mapped[int] = mapped_column(BigInt, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"))
    fund_id: Mapped[int] = mapped_column(ForeignKey("partner_funds.id"))
    import_id: Mapped[int] = mapped_column(ForeignKey("imports.id"))
    source_key: Mapped[str] = mapped_column(String(64))  # hash of the source row's fields
    reference: Mapped[str] = mapped_column(String(100))
    purchased_on: Mapped[date] = mapped_column(Date)
    product_line: Mapped[str] = mapped_column(String(80))
    amount: Mapped[int] = mapped_column(BigInt)
    rate_bp: Mapped[int] = mapped_column(Integer)
    accrual: Mapped[int] = mapped_column(BigInt)  # signed; what the rate earned (or took back)
    unrecovered: Mapped[int] = mapped_column(BigInt, default=0)  # a return's share already spent
    transfer_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_transfers.id"), unique=True)
