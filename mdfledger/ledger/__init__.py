"""The double-entry ledger: the only code that writes ledger tables. Everything else calls these.

Accounts hold one currency and four balances (debits/credits x pending/posted); transfers move
integer minor units between two accounts, single-phase or two-phase (reserve, then post or
void), atomically in batches, idempotently by key, append-only and hash-chained.
"""

from mdfledger.ledger.balances import Balance, balance, balance_as_of
from mdfledger.ledger.commands import (
    Command,
    ExpirePending,
    NewTransfer,
    PostPending,
    Reverse,
    TransferRecord,
    VoidPending,
)
from mdfledger.ledger.errors import (
    AccountClosed,
    AccountNotFound,
    AlreadyReversed,
    BatchRejected,
    CurrencyMismatch,
    IdempotencyConflict,
    InvalidTransfer,
    LedgerError,
    LimitExceeded,
    PendingNotOpen,
    TransferNotFound,
)
from mdfledger.ledger.models import AccountKind, TransferType
from mdfledger.ledger.service import (
    close_account,
    execute,
    expire_overdue,
    open_account,
    post,
    reserve,
    reverse,
    transfer,
    void,
)
from mdfledger.ledger.statements import Statement, StatementLine, statement
from mdfledger.ledger.verify import VerifyReport, verify_ledger

__all__ = [
    "AccountClosed",
    "AccountKind",
    "AccountNotFound",
    "AlreadyReversed",
    "Balance",
    "BatchRejected",
    "Command",
    "CurrencyMismatch",
    "ExpirePending",
    "IdempotencyConflict",
    "InvalidTransfer",
    "LedgerError",
    "LimitExceeded",
    "NewTransfer",
    "PendingNotOpen",
    "PostPending",
    "Reverse",
    "Statement",
    "StatementLine",
    "TransferNotFound",
    "TransferRecord",
    "TransferType",
    "VerifyReport",
    "VoidPending",
    "balance",
    "balance_as_of",
    "close_account",
    "execute",
    "expire_overdue",
    "open_account",
    "post",
    "reserve",
    "reverse",
    "statement",
    "transfer",
    "verify_ledger",
    "void",
]
