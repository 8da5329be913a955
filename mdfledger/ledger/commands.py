"""What callers ask the ledger to do, and what it answers. Plain frozen data, no database."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class NewTransfer:
    """Move `amount` minor units from the debit account to the credit account.

    With pending=True the amount is only reserved (a two-phase transfer's first phase) until it
    is posted, voided or, after `expires_at`, expired.
    """

    key: str
    debit_account_id: int
    credit_account_id: int
    amount: int
    code: str
    effective_date: date | None = None
    pending: bool = False
    expires_at: datetime | None = None
    ref_type: str | None = None
    ref_id: str | None = None
    memo: str | None = None


@dataclass(frozen=True, slots=True)
class PostPending:
    """Post a pending transfer, in full (amount=None) or in part; the rest is released."""

    key: str
    pending_id: int
    amount: int | None = None
    effective_date: date | None = None
    memo: str | None = None


@dataclass(frozen=True, slots=True)
class VoidPending:
    """Release a pending transfer's whole reservation."""

    key: str
    pending_id: int
    effective_date: date | None = None
    memo: str | None = None


@dataclass(frozen=True, slots=True)
class Reverse:
    """Undo a posted transfer with an opposite one that names it. At most once per transfer."""

    key: str
    transfer_id: int
    effective_date: date | None = None
    memo: str | None = None


EXPIRY_KEY_PREFIX = "expire:"  # reserved: callers' keys may not start with it


@dataclass(frozen=True, slots=True)
class ExpirePending:
    """Expire a pending transfer whose deadline has passed (the sweep issues these)."""

    pending_id: int

    @property
    def key(self) -> str:
        return f"{EXPIRY_KEY_PREFIX}{self.pending_id}"


Command = NewTransfer | PostPending | VoidPending | Reverse | ExpirePending


@dataclass(frozen=True, slots=True)
class TransferRecord:
    """A transfer as written. `replayed` is True when an idempotent retry returned it."""

    id: int
    key: str
    type: str
    debit_account_id: int
    credit_account_id: int
    currency: str
    amount: int
    code: str
    pending_id: int | None
    reverses_id: int | None
    expires_at: datetime | None
    effective_date: date
    created_at: datetime
    ref_type: str | None
    ref_id: str | None
    memo: str | None
    actor: str
    hash: str
    replayed: bool = False

    @classmethod
    def from_mapping(cls, row: Any, *, replayed: bool = False) -> TransferRecord:
        return cls(
            **{f.name: row[f.name] for f in fields(cls) if f.name != "replayed"}, replayed=replayed
        )
