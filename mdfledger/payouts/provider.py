"""The payout provider interface: what the payouts service asks of Stripe Connect (or of the
manual provider, where finance pays by bank transfer and records it). Pure types; no SDK here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class TransferRequest:
    """One attempt to pay one payout. The idempotency key is the same for every call about the
    same attempt, so a retry after an unknown outcome can never pay twice."""

    payout_id: int
    idempotency_key: str
    group: str  # "payout-<id>": Stripe's transfer_group, how recovery finds the transfer
    amount: int  # minor units, > 0
    currency: str  # ISO, upper case here; lower case on the wire for Stripe
    destination: str  # connected account id "acct_..." (manual: the bank reference)
    description: str
    metadata: dict[str, str] = field(default_factory=dict)  # payout_id, partner, program, claims


@dataclass(frozen=True)
class ProviderTransfer:
    """A transfer as the provider sees it."""

    id: str  # "tr_..."
    amount: int
    currency: str  # upper case
    destination: str
    group: str | None
    metadata: dict[str, str]
    created: datetime  # aware UTC
    amount_reversed: int = 0  # 0 unless reversed (in part or in full)


class ProviderError(Exception):
    """A provider call failed. `retriable`: the outcome is unknown or temporary (timeout,
    connection error, 5xx, 429 rate limit) — call again with the SAME idempotency key; not
    retriable: the provider refused (invalid account, insufficient platform balance, 4xx) —
    the payout failed."""

    def __init__(self, message: str, *, retriable: bool, code: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.retriable = retriable
        self.code = code


@dataclass(frozen=True)
class ProviderEvent:
    """A provider notification (webhook), signature already checked."""

    id: str  # "evt_..."
    type: str  # "transfer.created", "transfer.reversed", "transfer.updated", ...
    created: datetime
    transfer: ProviderTransfer | None  # the object of a transfer.* event, else None
    livemode: bool


class WebhookRejected(Exception):
    """Signature missing, malformed, forged, or timestamp outside the tolerance. Message says
    which."""


class Provider(Protocol):
    name: str  # "stripe" | "manual"

    def send(self, request: TransferRequest) -> ProviderTransfer | None:
        """stripe: creates the transfer (idempotent by key) and returns it; manual: None.
        Raises ProviderError."""
        ...

    def find(self, group: str) -> ProviderTransfer | None:
        """The transfer of a payout (by its group), newest if several; None if there is none."""
        ...

    def transfers(self, *, since: datetime | None = None) -> Iterator[ProviderTransfer]:
        """Every transfer created at or after `since` (all when None), for reconciliation."""
        ...

    def parse_webhook(self, payload: bytes, signature: str | None) -> ProviderEvent:
        """The verified event; raises WebhookRejected."""
        ...
