"""What callers ask the ledger to do, what it answers, and the shape checks on what they ask.

Plain frozen data and pure checks; no database.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any

from mdfledger.ledger.errors import InvalidTransfer


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


# --- shape checks: types and sizes, before anything touches the database ------------------------

MAX_ID = 2**63 - 1  # BIGINT
KEY_MAX, MEMO_MAX, REF_TYPE_MAX, REF_ID_MAX = 200, 2000, 40, 64
CODE_RE = re.compile(r"^[a-z][a-z0-9_.:-]{0,63}$")
_COMMAND_TYPES = (NewTransfer, PostPending, VoidPending, Reverse, ExpirePending)


def is_id(value: object) -> bool:
    """Ids are positive BIGINTs; True would otherwise pass as 1, in dict lookups too."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID


def check_text(value: object, name: str, limit: int, *, optional: bool = True) -> None:
    """Text the database stores the same way on SQLite and PostgreSQL: no NUL, valid UTF-8."""
    if value is None and optional:
        return
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise InvalidTransfer(f"{name} must be text of 1 to {limit} characters", field=name)
    if "\x00" in value:
        raise InvalidTransfer(f"{name} must not contain NUL characters", field=name)
    try:
        value.encode()
    except UnicodeEncodeError as exc:
        raise InvalidTransfer(f"{name} is not valid Unicode text", field=name) from exc


def check_shape(command: object) -> None:
    """Refuse a command whose fields have the wrong type or size; raises InvalidTransfer."""
    if not isinstance(command, _COMMAND_TYPES):
        raise InvalidTransfer(f"not a ledger command: {type(command).__name__}")
    check_text(command.key, "key", KEY_MAX, optional=False)
    if command.key.startswith(EXPIRY_KEY_PREFIX) and not isinstance(command, ExpirePending):
        # The sweep's keys: a caller's transfer under one would block that expiry for good.
        raise InvalidTransfer(
            f"keys starting with {EXPIRY_KEY_PREFIX!r} are reserved for expiries", field="key"
        )
    for name in ("debit_account_id", "credit_account_id", "pending_id", "transfer_id"):
        if hasattr(command, name) and not is_id(getattr(command, name)):
            raise InvalidTransfer(f"{name} must be a positive integer id", field=name)
    if not isinstance(command, ExpirePending):
        check_text(command.memo, "memo", MEMO_MAX)
        effective = command.effective_date
        if effective is not None and (
            not isinstance(effective, date) or isinstance(effective, datetime)
        ):
            raise InvalidTransfer("effective_date must be a date", field="effective_date")
    amount = getattr(command, "amount", None)
    if amount is not None or isinstance(command, NewTransfer):
        check_amount(amount)
    if isinstance(command, NewTransfer):
        if not isinstance(command.code, str) or not CODE_RE.match(command.code):
            raise InvalidTransfer(
                f"code {command.code!r} must match {CODE_RE.pattern}", field="code"
            )
        if command.debit_account_id == command.credit_account_id:
            raise InvalidTransfer("debit and credit account must differ", field="credit_account_id")
        check_text(command.ref_type, "ref_type", REF_TYPE_MAX)
        check_text(command.ref_id, "ref_id", REF_ID_MAX)
        if not isinstance(command.pending, bool):
            raise InvalidTransfer("pending must be true or false", field="pending")
        if command.expires_at is not None:
            if not command.pending:
                raise InvalidTransfer("only a pending transfer can expire", field="expires_at")
            if not isinstance(command.expires_at, datetime) or command.expires_at.tzinfo is None:
                raise InvalidTransfer(
                    "expires_at must be a timezone-aware datetime", field="expires_at"
                )


def check_amount(amount: object) -> None:
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise InvalidTransfer(
            f"amount must be a positive integer of minor units, not {amount!r}", field="amount"
        )
    if amount > MAX_ID:
        raise InvalidTransfer("amount is too large", field="amount")
