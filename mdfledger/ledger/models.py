"""Ledger tables. Only mdfledger.ledger writes them; transfers and entries are append-only."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from mdfledger.db import Base, BigInt, UTCDateTime, one_of


class AccountKind(StrEnum):
    FUNDING = "funding"  # the vendor's commitment that funds program budgets
    BUDGET = "budget"  # a program's budget, allocated to partner funds
    ACCRUAL_SOURCE = "accrual_source"  # co-op accruals earned on partner purchases
    PARTNER_FUND = "partner_fund"  # a partner's funds in one program
    CLAIMS_PAYABLE = "claims_payable"  # approved reimbursements not yet paid
    PAYOUTS_IN_TRANSIT = "payouts_in_transit"  # sent to the payout provider, not yet settled
    SETTLED = "settled"  # paid out and confirmed
    EXPIRED = "expired"  # forfeited funds (breakage)


class TransferType(StrEnum):
    SINGLE = "single"  # posted at once
    PENDING = "pending"  # a reservation: first phase of a two-phase transfer
    POST = "post"  # resolves a pending transfer by posting (all or part of) it
    VOID = "void"  # resolves a pending transfer by releasing it
    EXPIRE = "expire"  # resolves a pending transfer whose deadline passed


class Account(Base):
    __tablename__ = "ledger_accounts"
    __table_args__ = (
        UniqueConstraint("id", "currency"),  # target of the transfers' same-currency foreign keys
        CheckConstraint(one_of("kind", AccountKind), name="kind"),
        CheckConstraint("length(currency) = 3", name="currency"),
        CheckConstraint(
            "debits_pending >= 0 AND debits_posted >= 0 AND credits_pending >= 0"
            " AND credits_posted >= 0",
            name="balances_non_negative",
        ),
        CheckConstraint(
            "NOT (debits_must_not_exceed_credits AND credits_must_not_exceed_debits)",
            name="one_limit",
        ),
        CheckConstraint(
            "NOT debits_must_not_exceed_credits"
            " OR debits_pending + debits_posted <= credits_posted",
            name="debits_within_credits",
        ),
        CheckConstraint(
            "NOT credits_must_not_exceed_debits"
            " OR credits_pending + credits_posted <= debits_posted",
            name="credits_within_debits",
        ),
        Index("ix_ledger_accounts_owner", "program_id", "partner_id"),
    )

    id: Mapped[int] = mapped_column(BigInt, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    code: Mapped[str] = mapped_column(String(64))
    currency: Mapped[str] = mapped_column(String(3))
    program_id: Mapped[int | None] = mapped_column(BigInt)
    partner_id: Mapped[int | None] = mapped_column(BigInt)
    debits_must_not_exceed_credits: Mapped[bool] = mapped_column(Boolean, default=False)
    credits_must_not_exceed_debits: Mapped[bool] = mapped_column(Boolean, default=False)
    debits_pending: Mapped[int] = mapped_column(BigInt, default=0)
    debits_posted: Mapped[int] = mapped_column(BigInt, default=0)
    credits_pending: Mapped[int] = mapped_column(BigInt, default=0)
    credits_posted: Mapped[int] = mapped_column(BigInt, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Transfer(Base):
    __tablename__ = "ledger_transfers"
    __table_args__ = (
        ForeignKeyConstraint(
            ["debit_account_id", "currency"],
            ["ledger_accounts.id", "ledger_accounts.currency"],
            name="fk_ledger_transfers_debit_account_currency",
        ),
        ForeignKeyConstraint(
            ["credit_account_id", "currency"],
            ["ledger_accounts.id", "ledger_accounts.currency"],
            name="fk_ledger_transfers_credit_account_currency",
        ),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("debit_account_id <> credit_account_id", name="two_accounts"),
        CheckConstraint(one_of("type", TransferType), name="type"),
        CheckConstraint(
            "(pending_id IS NULL) = (type IN ('single', 'pending'))",
            name="resolution_names_pending",
        ),
        CheckConstraint("expires_at IS NULL OR type = 'pending'", name="expiry_only_pending"),
        CheckConstraint("reverses_id IS NULL OR type = 'single'", name="reversal_is_single"),
        CheckConstraint("length(hash) = 64", name="hash"),
        # Partial: most transfers resolve and reverse nothing, and indexing NULLs costs writes.
        Index(
            "uq_ledger_transfers_pending_id",
            "pending_id",
            unique=True,
            sqlite_where=text("pending_id IS NOT NULL"),
            postgresql_where=text("pending_id IS NOT NULL"),
        ),
        Index(
            "uq_ledger_transfers_reverses_id",
            "reverses_id",
            unique=True,
            sqlite_where=text("reverses_id IS NOT NULL"),
            postgresql_where=text("reverses_id IS NOT NULL"),
        ),
        Index("ix_ledger_transfers_ref", "ref_type", "ref_id"),
        Index("ix_ledger_transfers_created_at", "created_at", "id"),
        Index(
            "ix_ledger_transfers_open_pending",
            "expires_at",
            sqlite_where=text("type = 'pending'"),
            postgresql_where=text("type = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInt, primary_key=True, autoincrement=False)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    type: Mapped[str] = mapped_column(String(8))
    debit_account_id: Mapped[int] = mapped_column(BigInt)
    credit_account_id: Mapped[int] = mapped_column(BigInt)
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(BigInt)
    code: Mapped[str] = mapped_column(String(64))
    # At most one resolution per pending transfer and one reversal per transfer: unique indexes.
    pending_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_transfers.id"))
    reverses_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_transfers.id"))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    effective_date: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ref_type: Mapped[str | None] = mapped_column(String(40))
    ref_id: Mapped[str | None] = mapped_column(String(64))
    memo: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(200))
    hash: Mapped[str] = mapped_column(String(64))

    pending: Mapped[Transfer | None] = relationship(
        foreign_keys=[pending_id], remote_side=[id], back_populates="resolution"
    )
    resolution: Mapped[Transfer | None] = relationship(
        foreign_keys=[pending_id], back_populates="pending", uselist=False, viewonly=True
    )
    reverses: Mapped[Transfer | None] = relationship(
        foreign_keys=[reverses_id], remote_side=[id], back_populates="reversed_by"
    )
    reversed_by: Mapped[Transfer | None] = relationship(
        foreign_keys=[reverses_id], back_populates="reverses", uselist=False, viewonly=True
    )


class Entry(Base):
    """One account's side of a transfer, with that account's balances right after it."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint("side IN ('debit', 'credit')", name="side"),
        Index("ix_ledger_entries_statement", "account_id", "effective_date", "transfer_id"),
        {"sqlite_with_rowid": False},  # the primary key is the table: one b-tree less per row
    )

    account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"), primary_key=True)
    transfer_id: Mapped[int] = mapped_column(ForeignKey("ledger_transfers.id"), primary_key=True)
    side: Mapped[str] = mapped_column(String(6))
    effective_date: Mapped[date] = mapped_column(Date)
    pending_delta: Mapped[int] = mapped_column(BigInt)
    posted_delta: Mapped[int] = mapped_column(BigInt)
    debits_pending: Mapped[int] = mapped_column(BigInt)
    debits_posted: Mapped[int] = mapped_column(BigInt)
    credits_pending: Mapped[int] = mapped_column(BigInt)
    credits_posted: Mapped[int] = mapped_column(BigInt)


class AccountDay(Base):
    """Per account and effective date, the change in each balance: as-of-date reads sum these."""

    __tablename__ = "ledger_account_days"
    __table_args__ = ({"sqlite_with_rowid": False},)

    account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    debits_pending: Mapped[int] = mapped_column(BigInt, default=0)
    debits_posted: Mapped[int] = mapped_column(BigInt, default=0)
    credits_pending: Mapped[int] = mapped_column(BigInt, default=0)
    credits_posted: Mapped[int] = mapped_column(BigInt, default=0)


class ChainHead(Base):
    """The single row every ledger write locks: last transfer id, hash and time."""

    __tablename__ = "ledger_chain"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(BigInt, primary_key=True, autoincrement=False)
    last_transfer_id: Mapped[int] = mapped_column(BigInt)
    last_hash: Mapped[str] = mapped_column(String(64))
    last_created_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
