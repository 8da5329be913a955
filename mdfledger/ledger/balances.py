"""Balance reads: now (the account row), as of a time (the entry after the last transfer then),
and as of an effective date (the sum of daily changes). Each is one or two index lookups."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mdfledger.clock import ensure_utc
from mdfledger.errors import ValidationError
from mdfledger.ledger import rules
from mdfledger.ledger.commands import is_id
from mdfledger.ledger.errors import AccountNotFound
from mdfledger.ledger.models import Account, AccountDay, Entry, Transfer


@dataclass(frozen=True, slots=True)
class Balance:
    """An account's four balances, and the figures people read, signed to its normal side."""

    account_id: int
    currency: str
    normal_side: rules.Side
    debits_pending: int
    debits_posted: int
    credits_pending: int
    credits_posted: int

    @property
    def _sign(self) -> int:
        return 1 if self.normal_side == "credit" else -1

    @property
    def posted(self) -> int:
        return self._sign * (self.credits_posted - self.debits_posted)

    @property
    def pending(self) -> int:
        """Net reservations: negative while the account's funds are held for others."""
        return self._sign * (self.credits_pending - self.debits_pending)

    @property
    def available(self) -> int:
        """Posted balance less what is reserved out of the account (incoming holds don't count)."""
        outgoing = self.debits_pending if self.normal_side == "credit" else self.credits_pending
        return self.posted - outgoing

    @property
    def balances(self) -> rules.Balances:
        return rules.Balances(
            self.debits_pending, self.debits_posted, self.credits_pending, self.credits_posted
        )


def load_account(session: Session, account_id: int) -> Account:
    account = session.get(Account, account_id) if is_id(account_id) else None
    if account is None:
        raise AccountNotFound(f"account {account_id!r} does not exist", account_id=account_id)
    return account


def to_balance(account: Account, b: rules.Balances) -> Balance:
    return Balance(account.id, account.currency, rules.normal_side(account.kind), *b.as_tuple())


def balance(session: Session, account_id: int) -> Balance:
    account = load_account(session, account_id)
    session.refresh(account)
    return to_balance(
        account,
        rules.Balances(
            account.debits_pending,
            account.debits_posted,
            account.credits_pending,
            account.credits_posted,
        ),
    )


def balance_as_of(
    session: Session, account_id: int, *, at: datetime | None = None, on: date | None = None
) -> Balance:
    """The balance as recorded at time `at`, or as of the end of effective date `on`."""
    if (at is None) == (on is None):
        raise ValidationError("give exactly one of at (a time) or on (an effective date)")
    if at is not None and (not isinstance(at, datetime) or at.tzinfo is None):
        raise ValidationError("at must be a timezone-aware datetime", field="at")
    if on is not None and (not isinstance(on, date) or isinstance(on, datetime)):
        raise ValidationError("on must be a date", field="on")
    account = load_account(session, account_id)
    if at is not None:
        return to_balance(account, _as_of_time(session, account_id, ensure_utc(at)))
    return to_balance(account, days_through(session, account_id, on))


def _as_of_time(session: Session, account_id: int, at: datetime) -> rules.Balances:
    last_id = (
        select(Transfer.id)
        .where(Transfer.created_at <= at)
        .order_by(Transfer.created_at.desc(), Transfer.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    return through_transfer(session, account_id, last_id)


def through_transfer(session: Session, account_id: int, last_id: Any) -> rules.Balances:
    """The balances recorded on the account's last entry up to transfer `last_id` (an id or a
    scalar subquery): one index lookup."""
    row = session.execute(
        select(
            Entry.debits_pending, Entry.debits_posted, Entry.credits_pending, Entry.credits_posted
        )
        .where(Entry.account_id == account_id, Entry.transfer_id <= last_id)
        .order_by(Entry.transfer_id.desc())
        .limit(1)
    ).one_or_none()
    return rules.Balances(*row) if row else rules.Balances()


def days_through(session: Session, account_id: int, day: date) -> rules.Balances:
    """Sum of the account's daily changes up to and including effective date `day`."""
    row = session.execute(
        select(
            func.coalesce(func.sum(AccountDay.debits_pending), 0),
            func.coalesce(func.sum(AccountDay.debits_posted), 0),
            func.coalesce(func.sum(AccountDay.credits_pending), 0),
            func.coalesce(func.sum(AccountDay.credits_posted), 0),
        ).where(AccountDay.account_id == account_id, AccountDay.day <= day)
    ).one()
    return rules.Balances(*(int(v) for v in row))
