"""Pure ledger rules: how a transfer moves balances, limits, normal sides, and the hash chain.

No database here: the service loads state, these functions decide, the service writes.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from mdfledger.ledger.models import AccountKind, TransferType

Side = Literal["debit", "credit"]
GENESIS_HASH = "0" * 64

# Sources are debited to fund the rest; every other kind accumulates credits.
DEBIT_NORMAL_KINDS = frozenset({AccountKind.FUNDING, AccountKind.ACCRUAL_SOURCE})


def normal_side(kind: str) -> Side:
    return "debit" if kind in DEBIT_NORMAL_KINDS else "credit"


@dataclass(frozen=True, slots=True)
class Balances:
    """The four maintained balances of an account, in minor units."""

    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0

    def moved(self, side: Side, pending_delta: int, posted_delta: int) -> Balances:
        # Built directly, not with dataclasses.replace: this runs twice per transfer.
        if side == "debit":
            return Balances(
                self.debits_pending + pending_delta,
                self.debits_posted + posted_delta,
                self.credits_pending,
                self.credits_posted,
            )
        return Balances(
            self.debits_pending,
            self.debits_posted,
            self.credits_pending + pending_delta,
            self.credits_posted + posted_delta,
        )

    def __add__(self, other: Balances) -> Balances:
        return Balances(
            self.debits_pending + other.debits_pending,
            self.debits_posted + other.debits_posted,
            self.credits_pending + other.credits_pending,
            self.credits_posted + other.credits_posted,
        )

    def __sub__(self, other: Balances) -> Balances:
        return Balances(
            self.debits_pending - other.debits_pending,
            self.debits_posted - other.debits_posted,
            self.credits_pending - other.credits_pending,
            self.credits_posted - other.credits_posted,
        )

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.debits_pending, self.debits_posted, self.credits_pending, self.credits_posted)


MAX_AMOUNT = 2**63 - 1  # BIGINT: the largest amount or balance the database stores


def overflows(b: Balances) -> bool:
    return max(b.as_tuple()) > MAX_AMOUNT


@dataclass(frozen=True, slots=True)
class Limits:
    debits_must_not_exceed_credits: bool = False
    credits_must_not_exceed_debits: bool = False


def effect(transfer_type: str, amount: int, pending_amount: int = 0) -> tuple[int, int]:
    """(pending_delta, posted_delta) that a transfer applies to each of its two accounts' sides.

    A post releases the whole pending amount and posts `amount` (<= pending): the rest returns.
    """
    match transfer_type:
        case TransferType.SINGLE:
            return 0, amount
        case TransferType.PENDING:
            return amount, 0
        case TransferType.POST:
            return -pending_amount, amount
        case TransferType.VOID | TransferType.EXPIRE:
            return -pending_amount, 0
    raise ValueError(f"unknown transfer type {transfer_type!r}")


def limit_breach(limits: Limits, b: Balances) -> str | None:
    """Why these balances break the account's limit, or None. Pending amounts count."""
    if limits.debits_must_not_exceed_credits and (
        b.debits_pending + b.debits_posted > b.credits_posted
    ):
        return "debits_would_exceed_credits"
    if limits.credits_must_not_exceed_debits and (
        b.credits_pending + b.credits_posted > b.debits_posted
    ):
        return "credits_would_exceed_debits"
    return None


@functools.lru_cache(maxsize=4096)  # a batch shares one created_at and a few dates
def _iso(value: object) -> str:
    if isinstance(value, date | datetime):
        return value.isoformat()
    raise TypeError(f"cannot hash {type(value).__name__}")


# The fields a transfer's hash covers, in order. Changing this list changes every hash.
HASHED_FIELDS = (
    "id",
    "key",
    "type",
    "debit_account_id",
    "credit_account_id",
    "currency",
    "amount",
    "code",
    "pending_id",
    "reverses_id",
    "expires_at",
    "effective_date",
    "created_at",
    "ref_type",
    "ref_id",
    "memo",
    "actor",
)


# Compact, non-ASCII kept as is, dates and times as ISO 8601. Built once: it runs per transfer.
_CANONICAL = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=_iso)


# An account's definition: what decides how its balances read and which limits hold. Each
# transfer's hash covers both accounts' definitions, so quietly switching off a limit, or moving
# an account to another partner, breaks the chain at the account's first transfer.
ACCOUNT_HASHED_FIELDS = (
    "id",
    "key",
    "kind",
    "code",
    "currency",
    "program_id",
    "partner_id",
    "debits_must_not_exceed_credits",
    "credits_must_not_exceed_debits",
)


def account_definition(account: Mapping[str, Any]) -> str:
    return _definition(tuple(account[name] for name in ACCOUNT_HASHED_FIELDS))


@functools.lru_cache(maxsize=65536)  # every batch re-reads its accounts; most are not new
def _definition(values: tuple[Any, ...]) -> str:
    return _CANONICAL.encode(list(values))


def chain_hash(prev_hash: str, row: Mapping[str, Any], debit_def: str, credit_def: str) -> str:
    """SHA-256 over the previous hash, the transfer's fields as canonical JSON, and the
    definitions of its debit and credit accounts (see account_definition)."""
    canonical = _CANONICAL.encode([row[name] for name in HASHED_FIELDS])
    return hashlib.sha256(
        f"{prev_hash}\n{canonical}\n{debit_def}\n{credit_def}".encode()
    ).hexdigest()
