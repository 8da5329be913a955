"""What the ledger refuses, each with a stable code."""

from __future__ import annotations

from dataclasses import dataclass

from mdfledger.errors import Conflict, DomainError, NotFound, ValidationError


class LedgerError(DomainError):
    code = "ledger_error"


class InvalidTransfer(LedgerError, ValidationError):
    code = "invalid_transfer"


class AccountNotFound(LedgerError, NotFound):
    code = "account_not_found"


class TransferNotFound(LedgerError, NotFound):
    code = "transfer_not_found"


class AccountClosed(LedgerError, Conflict):
    code = "account_closed"


class CurrencyMismatch(LedgerError, ValidationError):
    code = "currency_mismatch"


class LimitExceeded(LedgerError, Conflict):
    code = "limit_exceeded"


class PendingNotOpen(LedgerError, Conflict):
    """The pending transfer was already posted, voided or expired, or its deadline passed."""

    code = "pending_not_open"


class AlreadyReversed(LedgerError, Conflict):
    code = "already_reversed"


class IdempotencyConflict(LedgerError, Conflict):
    code = "idempotency_conflict"


@dataclass(frozen=True)
class TransferFailure:
    index: int
    key: str
    error: LedgerError

    def to_dict(self) -> dict[str, object]:
        return {"index": self.index, "key": self.key, **self.error.to_dict()}


class BatchRejected(LedgerError, Conflict):
    """Nothing in the batch was written; `failures` says which transfers failed and why."""

    code = "batch_rejected"

    def __init__(self, failures: list[TransferFailure]) -> None:
        first = failures[0]
        super().__init__(
            f"{len(failures)} transfer(s) failed; first: #{first.index} ({first.key}):"
            f" {first.error.message}",
            failures=[f.to_dict() for f in failures],
        )
        self.failures = failures
