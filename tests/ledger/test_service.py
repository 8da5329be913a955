"""The ledger service on SQLite and PostgreSQL: accounts, transfers, limits, two-phase transfers,
batches, idempotency, reversals, history and statements."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mdfledger import ledger
from mdfledger.actor import Actor
from mdfledger.clock import utcnow
from mdfledger.errors import Conflict, ValidationError
from mdfledger.ledger import (
    AccountClosed,
    AccountKind,
    AccountNotFound,
    AlreadyReversed,
    BatchRejected,
    CurrencyMismatch,
    IdempotencyConflict,
    InvalidTransfer,
    LedgerError,
    LimitExceeded,
    NewTransfer,
    PendingNotOpen,
    PostPending,
    Reverse,
    TransferNotFound,
    TransferRecord,
)
from mdfledger.ledger.models import Account, AccountDay, ChainHead, Entry, Transfer

SEED_DAY = date(2026, 1, 2)
BUDGET_FUNDS = 100_000
FUND_FUNDS = 10_000


@dataclass(frozen=True)
class Book:
    """A program's accounts in USD; the budget holds 100,000 and the partner fund 10,000."""

    funding: int
    budget: int
    fund: int
    claims: int
    transit: int
    settled: int
    t0: datetime  # after the seed transfers were recorded


def open_account(session: Session, actor: Actor, key: str, kind: str, **kwargs: Any) -> int:
    kwargs.setdefault("currency", "USD")
    return ledger.open_account(session, actor, key=key, name=key.title(), kind=kind, **kwargs).id


@pytest.fixture
def book(session: Session, actor: Actor) -> Book:
    limited = {"debits_must_not_exceed_credits": True}
    ids = {
        "funding": open_account(session, actor, "funding", AccountKind.FUNDING),
        "budget": open_account(session, actor, "budget", AccountKind.BUDGET, **limited),
        "fund": open_account(session, actor, "fund", AccountKind.PARTNER_FUND, **limited),
        "claims": open_account(session, actor, "claims", AccountKind.CLAIMS_PAYABLE, **limited),
        "transit": open_account(
            session, actor, "transit", AccountKind.PAYOUTS_IN_TRANSIT, **limited
        ),
        "settled": open_account(session, actor, "settled", AccountKind.SETTLED),
    }
    ledger.execute(
        session,
        actor,
        [
            NewTransfer(
                "seed:budget", ids["funding"], ids["budget"], BUDGET_FUNDS, "funding", SEED_DAY
            ),
            NewTransfer(
                "seed:fund", ids["budget"], ids["fund"], FUND_FUNDS, "allocation", SEED_DAY
            ),
        ],
    )
    return Book(**ids, t0=utcnow())


def balances(session: Session, account_id: int) -> tuple[int, int, int, int]:
    """(debits_pending, debits_posted, credits_pending, credits_posted)"""
    return ledger.balance(session, account_id).balances.as_tuple()


def pay(
    session: Session, actor: Actor, key: str, debit: int, credit: int, amount: int, **kw: Any
) -> TransferRecord:
    code, now = kw.pop("code", "test"), kw.pop("now", None)
    command = NewTransfer(key, debit, credit, amount, code, **kw)
    return ledger.transfer(session, actor, command, now=now)


def reserve(
    session: Session, actor: Actor, book: Book, key: str, amount: int, **kw: Any
) -> TransferRecord:
    """Reserve out of the fund into claims payable."""
    return ledger.reserve(
        session,
        actor,
        key=key,
        debit_account_id=book.fund,
        credit_account_id=book.claims,
        amount=amount,
        code="preapproval",
        **kw,
    )


def snapshot(session: Session) -> tuple[list[Any], ...]:
    """Every ledger row a write could add or change."""
    return tuple(
        session.execute(select(model.__table__).order_by(*model.__table__.primary_key)).all()
        for model in (ChainHead, Account, Transfer, Entry, AccountDay)
    )


def pick(obj: object, *names: str) -> tuple[Any, ...]:
    return tuple(getattr(obj, name) for name in names)


def transfer_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Transfer))


def assert_verified(session: Session) -> None:
    assert ledger.verify_ledger(session).problems == []


# --- accounts -----------------------------------------------------------------------------------


def test_a_new_account_starts_empty_with_its_kind_as_code(session: Session, actor: Actor) -> None:
    account = ledger.open_account(
        session, actor, key="p:1", name="  Acme  ", kind="partner_fund", currency="JPY"
    )
    assert pick(account, "name", "code") == ("Acme", "partner_fund")
    assert pick(account, "currency", "closed_at") == ("JPY", None)
    assert balances(session, account.id) == (0, 0, 0, 0)
    assert ledger.balance(session, account.id).normal_side == "credit"


def test_opening_the_same_key_again_returns_the_same_account(
    session: Session, actor: Actor
) -> None:
    fields = {
        "key": "fund:7",
        "name": "Fund 7",
        "kind": "partner_fund",
        "currency": "USD",
        "program_id": 3,
        "partner_id": 7,
        "debits_must_not_exceed_credits": True,
    }
    first = ledger.open_account(session, actor, **fields)
    again = ledger.open_account(session, actor, **fields)
    assert again.id == first.id
    assert session.scalar(select(func.count()).select_from(Account)) == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("kind", "budget"),
        ("currency", "EUR"),
        ("code", "other_code"),
        ("program_id", 4),
        ("partner_id", None),
        ("debits_must_not_exceed_credits", True),
        ("credits_must_not_exceed_debits", True),
    ],
)
def test_opening_a_key_with_a_different_field_is_a_conflict_naming_that_field(
    session: Session, actor: Actor, field: str, value: object
) -> None:
    fields: dict[str, Any] = {
        "key": "fund:7",
        "name": "Fund 7",
        "kind": "partner_fund",
        "currency": "USD",
        "program_id": 3,
        "partner_id": 7,
    }
    first = ledger.open_account(session, actor, **fields)
    with pytest.raises(IdempotencyConflict) as err:
        ledger.open_account(session, actor, **{**fields, field: value})
    assert err.value.details == {"field": field, "account_id": first.id}
    assert field in err.value.message
    assert session.scalar(select(func.count()).select_from(Account)) == 1


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"kind": "wallet"}, "kind"),
        ({"kind": ""}, "kind"),
        ({"currency": "usd"}, "currency"),
        ({"currency": "ABC"}, "currency"),
        ({"currency": "US"}, "currency"),
        ({"code": "Bad Code"}, "code"),
        ({"code": "9lives"}, "code"),
        ({"key": ""}, "key"),
        ({"key": "k" * 201}, "key"),
        ({"name": "   "}, "name"),
        (
            {"debits_must_not_exceed_credits": True, "credits_must_not_exceed_debits": True},
            "flags",
        ),
    ],
)
def test_open_account_refuses_bad_fields_and_writes_nothing(
    session: Session, actor: Actor, overrides: dict[str, Any], field: str
) -> None:
    fields = {"key": "a", "name": "A", "kind": "budget", "currency": "USD", **overrides}
    with pytest.raises(ValidationError) as err:
        ledger.open_account(session, actor, **fields)
    assert err.value.details["field"] == field
    assert session.scalar(select(func.count()).select_from(Account)) == 0


def test_balance_of_an_unknown_account_is_not_found(session: Session) -> None:
    with pytest.raises(AccountNotFound):
        ledger.balance(session, 999)


# --- single transfers ---------------------------------------------------------------------------


def test_a_transfer_posts_its_amount_on_both_sides(
    session: Session, actor: Actor, book: Book
) -> None:
    record = pay(
        session,
        actor,
        "claim:1",
        book.fund,
        book.claims,
        2_500,
        ref_type="claim",
        ref_id="1",
        memo="booth",
    )
    assert pick(record, "type", "amount", "currency", "replayed") == ("single", 2_500, "USD", False)
    assert pick(record, "id", "actor", "ref_type", "ref_id") == (3, "user:finance-1", "claim", "1")
    assert balances(session, book.fund) == (0, 2_500, 0, FUND_FUNDS)
    assert balances(session, book.claims) == (0, 0, 0, 2_500)
    fund = ledger.balance(session, book.fund)
    assert (fund.posted, fund.pending, fund.available) == (7_500, 0, 7_500)
    funding = ledger.balance(session, book.funding)  # debit-normal: its debits are its balance
    assert (funding.normal_side, funding.posted) == ("debit", BUDGET_FUNDS)
    assert_verified(session)


def test_a_transfer_without_effective_date_takes_the_utc_day_of_now(
    session: Session, actor: Actor, book: Book
) -> None:
    now = datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert pay(session, actor, "k", book.fund, book.claims, 1, now=now).effective_date == now.date()
    berlin_new_year = datetime(2027, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1)))
    record = pay(session, actor, "k1", book.fund, book.claims, 1, now=berlin_new_year)
    assert record.effective_date == date(2026, 12, 31)  # the UTC day
    dated = pay(session, actor, "k2", book.fund, book.claims, 1, effective_date=date(2026, 7, 4))
    assert dated.effective_date == date(2026, 7, 4)


def test_a_transfer_to_an_unknown_account_is_not_found_and_writes_nothing(
    session: Session, actor: Actor, book: Book
) -> None:
    before = snapshot(session)
    with pytest.raises(AccountNotFound) as err:
        pay(session, actor, "k", book.fund, 999, 100)
    assert err.value.details == {"field": "credit_account_id"}
    assert snapshot(session) == before


def test_accounts_in_different_currencies_cannot_trade(
    session: Session, actor: Actor, book: Book
) -> None:
    euro_fund = open_account(session, actor, "euro-fund", AccountKind.PARTNER_FUND, currency="EUR")
    before = snapshot(session)
    with pytest.raises(CurrencyMismatch) as err:
        pay(session, actor, "k", book.budget, euro_fund, 100)
    assert err.value.details == {"debit_currency": "USD", "credit_currency": "EUR"}
    assert snapshot(session) == before


def test_an_account_cannot_pay_itself(session: Session, actor: Actor, book: Book) -> None:
    with pytest.raises(InvalidTransfer) as err:
        pay(session, actor, "k", book.fund, book.fund, 100)
    assert err.value.details == {"field": "credit_account_id"}


@pytest.mark.parametrize("amount", [0, -1, -10_000, 1.0, 100.5, True, False, "100", None, 2**63])
def test_only_positive_integer_amounts_move_money(
    session: Session, actor: Actor, book: Book, amount: object
) -> None:
    before = snapshot(session)
    with pytest.raises(InvalidTransfer) as err:
        pay(session, actor, "k", book.fund, book.claims, amount)  # type: ignore[arg-type]
    assert err.value.details == {"field": "amount"}
    assert snapshot(session) == before


@pytest.mark.parametrize(
    ("command", "field"),
    [
        (dict(code="Claim Approved"), "code"),
        (dict(key=""), "key"),
        (dict(effective_date=datetime(2026, 1, 1, tzinfo=UTC)), "effective_date"),
        (dict(expires_at=datetime(2099, 1, 1, tzinfo=UTC)), "expires_at"),  # not pending
    ],
)
def test_malformed_transfers_are_refused_and_name_the_field(
    session: Session, actor: Actor, book: Book, command: dict[str, Any], field: str
) -> None:
    fields = {
        "key": "k",
        "debit_account_id": book.fund,
        "credit_account_id": book.claims,
        "amount": 100,
        "code": "test",
        **command,
    }
    with pytest.raises(InvalidTransfer) as err:
        ledger.transfer(session, actor, NewTransfer(**fields))
    assert err.value.details == {"field": field}
    assert transfer_count(session) == 2


# --- limits -------------------------------------------------------------------------------------


def test_a_fund_can_spend_exactly_what_it_holds(session: Session, actor: Actor, book: Book) -> None:
    pay(session, actor, "all", book.fund, book.claims, FUND_FUNDS)
    assert balances(session, book.fund) == (0, FUND_FUNDS, 0, FUND_FUNDS)
    assert ledger.balance(session, book.fund).available == 0


def test_a_fund_cannot_spend_one_cent_more_than_it_holds(
    session: Session, actor: Actor, book: Book
) -> None:
    before = snapshot(session)
    with pytest.raises(LimitExceeded) as err:
        pay(session, actor, "too-much", book.fund, book.claims, FUND_FUNDS + 1)
    assert err.value.message == (
        f"Fund (account {book.fund}) has 100.00 USD available; 100.01 USD would exceed it"
    )
    assert err.value.details == {
        "account_id": book.fund,
        "limit": "debits_would_exceed_credits",
        "available": FUND_FUNDS,
        "amount": FUND_FUNDS + 1,
    }
    assert snapshot(session) == before


def test_reservations_count_toward_the_limit(session: Session, actor: Actor, book: Book) -> None:
    reserve(session, actor, book, "hold", 6_000)
    with pytest.raises(LimitExceeded) as err:
        pay(session, actor, "spend", book.fund, book.claims, 4_001)
    assert "has 40.00 USD available; 40.01 USD would exceed it" in err.value.message
    assert err.value.details["available"] == 4_000
    pay(session, actor, "spend", book.fund, book.claims, 4_000)
    assert balances(session, book.fund) == (6_000, 4_000, 0, FUND_FUNDS)


def test_a_reservation_itself_cannot_exceed_the_limit(
    session: Session, actor: Actor, book: Book
) -> None:
    with pytest.raises(LimitExceeded):
        reserve(session, actor, book, "hold", FUND_FUNDS + 1)
    assert balances(session, book.fund) == (0, 0, 0, FUND_FUNDS)


def test_credits_must_not_exceed_debits_counts_pending_credits(
    session: Session, actor: Actor
) -> None:
    source = open_account(
        session, actor, "source", AccountKind.FUNDING, credits_must_not_exceed_debits=True
    )
    pool = open_account(session, actor, "pool", AccountKind.BUDGET)
    pay(session, actor, "draw", source, pool, 500)
    ledger.reserve(
        session,
        actor,
        key="hold",
        debit_account_id=pool,
        credit_account_id=source,
        amount=300,
        code="return",
    )
    with pytest.raises(LimitExceeded) as err:
        pay(session, actor, "back", pool, source, 201)
    assert err.value.details == {
        "account_id": source,
        "limit": "credits_would_exceed_debits",
        "available": 200,
        "amount": 201,
    }
    assert "Source (account" in err.value.message and "2.00 USD available" in err.value.message
    pay(session, actor, "back", pool, source, 200)
    assert balances(session, source) == (0, 500, 300, 200)
    assert_verified(session)


# --- closed accounts ----------------------------------------------------------------------------


def test_a_closed_account_refuses_transfers_in_and_out(
    session: Session, actor: Actor, book: Book
) -> None:
    pay(session, actor, "in", book.fund, book.claims, 1_000)
    closed = ledger.close_account(session, actor, book.claims)
    assert closed.closed_at is not None
    for key, debit, credit in (("in2", book.fund, book.claims), ("out", book.claims, book.transit)):
        with pytest.raises(AccountClosed) as err:
            pay(session, actor, key, debit, credit, 10)
        assert err.value.details == {"account_id": book.claims}
    assert balances(session, book.claims) == (0, 0, 0, 1_000)


def test_an_account_cannot_close_while_it_holds_open_reservations(
    session: Session, actor: Actor, book: Book
) -> None:
    hold = reserve(session, actor, book, "hold", 100)
    for account_id in (book.fund, book.claims):  # reserving out of it, and reserved into it
        with pytest.raises(Conflict, match="open reservations"):
            ledger.close_account(session, actor, account_id)
        assert session.get(Account, account_id).closed_at is None
    ledger.void(session, actor, hold.id, key="release")
    assert ledger.close_account(session, actor, book.fund).closed_at is not None


def test_closing_twice_keeps_the_first_closing_time(
    session: Session, actor: Actor, book: Book
) -> None:
    first = ledger.close_account(session, actor, book.settled, now=book.t0).closed_at
    later = ledger.close_account(session, actor, book.settled, now=book.t0 + timedelta(days=1))
    assert first == later.closed_at == book.t0


def test_closing_an_unknown_account_is_not_found(session: Session, actor: Actor) -> None:
    with pytest.raises(AccountNotFound):
        ledger.close_account(session, actor, 999)


# --- two-phase transfers ------------------------------------------------------------------------


def test_a_reservation_holds_funds_on_both_sides_until_it_expires(
    session: Session, actor: Actor, book: Book
) -> None:
    expires = book.t0 + timedelta(days=7)
    hold = reserve(session, actor, book, "hold", 3_000, expires_at=expires, now=book.t0)
    assert pick(hold, "type", "amount", "pending_id") == ("pending", 3_000, None)
    assert hold.expires_at == expires
    assert balances(session, book.fund) == (3_000, 0, 0, FUND_FUNDS)
    assert balances(session, book.claims) == (0, 0, 3_000, 0)
    fund = ledger.balance(session, book.fund)
    assert (fund.posted, fund.pending, fund.available) == (FUND_FUNDS, -3_000, 7_000)
    claims = ledger.balance(session, book.claims)
    assert (claims.posted, claims.pending, claims.available) == (0, 3_000, 0)


def test_posting_a_reservation_in_full_moves_it_from_pending_to_posted(
    session: Session, actor: Actor, book: Book
) -> None:
    hold = reserve(session, actor, book, "hold", 3_000)
    posted = ledger.post(session, actor, hold.id, key="approve")
    assert (posted.type, posted.amount, posted.pending_id) == ("post", 3_000, hold.id)
    assert (posted.debit_account_id, posted.credit_account_id) == (book.fund, book.claims)
    assert balances(session, book.fund) == (0, 3_000, 0, FUND_FUNDS)
    assert balances(session, book.claims) == (0, 0, 0, 3_000)
    assert_verified(session)


def test_posting_part_of_a_reservation_releases_the_rest(
    session: Session, actor: Actor, book: Book
) -> None:
    hold = reserve(session, actor, book, "hold", 3_000)
    posted = ledger.post(session, actor, hold.id, key="approve", amount=1_200)
    assert (posted.type, posted.amount) == ("post", 1_200)
    assert balances(session, book.fund) == (0, 1_200, 0, FUND_FUNDS)
    assert balances(session, book.claims) == (0, 0, 0, 1_200)
    assert ledger.balance(session, book.fund).available == FUND_FUNDS - 1_200
    assert_verified(session)


def test_voiding_a_reservation_releases_all_of_it(
    session: Session, actor: Actor, book: Book
) -> None:
    hold = reserve(session, actor, book, "hold", 3_000)
    voided = ledger.void(session, actor, hold.id, key="reject", memo="withdrawn")
    assert pick(voided, "type", "amount", "pending_id") == ("void", 3_000, hold.id)
    assert voided.memo == "withdrawn"
    assert balances(session, book.fund) == (0, 0, 0, FUND_FUNDS)
    assert balances(session, book.claims) == (0, 0, 0, 0)
    assert_verified(session)


RESOLVE = {
    "post": lambda s, a, pid, key: ledger.post(s, a, pid, key=key),
    "void": lambda s, a, pid, key: ledger.void(s, a, pid, key=key),
}


@pytest.mark.parametrize(
    ("first", "second"), [("void", "post"), ("post", "void"), ("post", "post"), ("void", "void")]
)
def test_a_reservation_resolves_at_most_once(
    session: Session, actor: Actor, book: Book, first: str, second: str
) -> None:
    hold = reserve(session, actor, book, "hold", 3_000)
    RESOLVE[first](session, actor, hold.id, "first")
    before = snapshot(session)
    with pytest.raises(PendingNotOpen) as err:
        RESOLVE[second](session, actor, hold.id, "second")
    assert err.value.details == {"transfer_id": hold.id, "resolution": first}
    assert snapshot(session) == before


def test_posting_more_than_was_reserved_is_refused(
    session: Session, actor: Actor, book: Book
) -> None:
    hold = reserve(session, actor, book, "hold", 3_000)
    for amount in (3_001, 0, -5):
        with pytest.raises(InvalidTransfer) as err:
            ledger.post(session, actor, hold.id, key=f"approve{amount}", amount=amount)
        assert err.value.details == {"field": "amount"}
    assert balances(session, book.fund) == (3_000, 0, 0, FUND_FUNDS)


def test_only_a_pending_transfer_can_be_posted_or_voided(
    session: Session, actor: Actor, book: Book
) -> None:
    single = pay(session, actor, "single", book.fund, book.claims, 100)
    with pytest.raises(InvalidTransfer, match="not pending"):
        ledger.post(session, actor, single.id, key="p")
    with pytest.raises(InvalidTransfer, match="not pending"):
        ledger.void(session, actor, single.id, key="v")
    with pytest.raises(TransferNotFound):
        ledger.post(session, actor, 999, key="p")


def test_an_expired_reservation_cannot_be_posted_or_voided_even_before_the_sweep(
    session: Session, actor: Actor, book: Book
) -> None:
    deadline = book.t0 + timedelta(hours=1)
    hold = reserve(session, actor, book, "hold", 3_000, expires_at=deadline, now=book.t0)
    before = snapshot(session)
    with pytest.raises(PendingNotOpen, match="expired at") as err:
        ledger.post(session, actor, hold.id, key="late", now=deadline)  # the deadline itself
    assert err.value.details == {"transfer_id": hold.id, "expires_at": deadline.isoformat()}
    with pytest.raises(PendingNotOpen, match="expired at"):
        ledger.void(session, actor, hold.id, key="late-void", now=deadline + timedelta(days=2))
    assert snapshot(session) == before
    # A microsecond before the deadline it is still open.
    ledger.post(session, actor, hold.id, key="in-time", now=deadline - timedelta(microseconds=1))
    assert balances(session, book.fund) == (0, 3_000, 0, FUND_FUNDS)


def test_a_reservation_must_expire_in_the_future(
    session: Session, actor: Actor, book: Book
) -> None:
    with pytest.raises(InvalidTransfer) as err:
        reserve(session, actor, book, "hold", 100, expires_at=book.t0, now=book.t0)
    assert err.value.details == {"field": "expires_at"}
    with pytest.raises(InvalidTransfer, match="timezone-aware"):
        reserve(session, actor, book, "hold", 100, expires_at=datetime(2099, 1, 1))  # noqa: DTZ001
    assert transfer_count(session) == 2


def test_expire_overdue_expires_exactly_the_overdue_reservations_and_only_once(
    session: Session, actor: Actor, book: Book
) -> None:
    t0, hour = book.t0, timedelta(hours=1)
    a = reserve(session, actor, book, "a", 100, expires_at=t0 + 2 * hour, now=t0)
    b = reserve(session, actor, book, "b", 200, expires_at=t0 + hour, now=t0)
    c = reserve(session, actor, book, "c", 400, expires_at=t0 + 3 * hour, now=t0)
    reserve(session, actor, book, "no-deadline", 800, now=t0)
    voided = reserve(session, actor, book, "voided", 1_600, expires_at=t0 + hour, now=t0)
    ledger.void(session, actor, voided.id, key="void", now=t0)
    posted = reserve(session, actor, book, "posted", 3_200, expires_at=t0 + hour, now=t0)
    ledger.post(session, actor, posted.id, key="post", now=t0)

    assert ledger.expire_overdue(session, actor, now=t0 + hour - timedelta(microseconds=1)) == []
    expired = ledger.expire_overdue(session, actor, now=t0 + 2 * hour)  # a's deadline exactly
    assert [(r.type, r.pending_id, r.amount, r.key) for r in expired] == [
        ("expire", b.id, 200, f"expire:{b.id}"),  # oldest deadline first
        ("expire", a.id, 100, f"expire:{a.id}"),
    ]
    assert balances(session, book.fund) == (400 + 800, 3_200, 0, FUND_FUNDS)
    assert balances(session, book.claims) == (0, 0, 400 + 800, 3_200)

    count = transfer_count(session)
    assert ledger.expire_overdue(session, actor, now=t0 + 2 * hour) == []
    assert transfer_count(session) == count
    assert [r.pending_id for r in ledger.expire_overdue(session, actor, now=t0 + 9 * hour)] == [
        c.id
    ]
    assert ledger.expire_overdue(session, actor, now=t0 + 9 * hour) == []
    with pytest.raises(PendingNotOpen) as err:
        ledger.post(session, actor, c.id, key="too-late", now=t0)
    assert err.value.details["resolution"] == "expire"
    assert_verified(session)


def test_expire_overdue_honours_its_limit(session: Session, actor: Actor, book: Book) -> None:
    t0 = book.t0
    for i in range(3):
        reserve(session, actor, book, f"h{i}", 10, expires_at=t0 + timedelta(minutes=i + 1), now=t0)
    later = t0 + timedelta(days=1)
    assert len(ledger.expire_overdue(session, actor, now=later, limit=2)) == 2
    assert len(ledger.expire_overdue(session, actor, now=later, limit=2)) == 1
    assert balances(session, book.fund) == (0, 0, 0, FUND_FUNDS)


def test_an_expiry_takes_effect_on_the_deadline_not_on_the_sweep_day(
    session: Session, actor: Actor, book: Book
) -> None:
    placed = datetime(2027, 3, 1, 12, tzinfo=UTC)
    deadline = datetime(2027, 3, 2, 23, 0, tzinfo=UTC)
    reserve(session, actor, book, "hold", 500, expires_at=deadline, now=placed)
    [expired] = ledger.expire_overdue(session, actor, now=datetime(2027, 3, 20, tzinfo=UTC))
    assert expired.effective_date == date(2027, 3, 2)
    on = {d: ledger.balance_as_of(session, book.fund, on=date(2027, 3, d)) for d in (1, 2)}
    assert on[1].debits_pending == 500
    assert on[2].debits_pending == 0


# --- batches ------------------------------------------------------------------------------------


def test_a_batch_with_one_bad_transfer_writes_nothing_and_names_every_failure(
    session: Session, actor: Actor, book: Book
) -> None:
    before = snapshot(session)
    commands = [
        NewTransfer("ok-1", book.fund, book.claims, 100, "test"),
        NewTransfer("over", book.fund, book.claims, FUND_FUNDS, "test"),  # 100 already spent
        NewTransfer("ok-2", book.budget, book.fund, 100, "test"),
        NewTransfer("self", book.fund, book.fund, 100, "test"),
        NewTransfer("ghost", book.fund, 999, 100, "test"),
        NewTransfer("ok-3", book.claims, book.transit, 100, "test"),
    ]
    with pytest.raises(BatchRejected) as err:
        ledger.execute(session, actor, commands)
    summary = [(f.index, f.key, f.error.code) for f in err.value.failures]
    assert summary == [
        (1, "over", "limit_exceeded"),
        (3, "self", "invalid_transfer"),
        (4, "ghost", "account_not_found"),
    ]
    assert [(f["index"], f["key"], f["code"]) for f in err.value.details["failures"]] == summary
    assert err.value.message.startswith("3 transfer(s) failed; first: #1 (over):")
    assert snapshot(session) == before
    assert balances(session, book.fund) == (0, 0, 0, FUND_FUNDS)


def test_later_transfers_in_a_batch_see_the_earlier_ones(
    session: Session, actor: Actor, book: Book
) -> None:
    new_fund = open_account(
        session, actor, "new-fund", AccountKind.PARTNER_FUND, debits_must_not_exceed_credits=True
    )
    records = ledger.execute(
        session,
        actor,
        [
            NewTransfer("allocate", book.budget, new_fund, 500, "allocation"),
            NewTransfer("spend", new_fund, book.claims, 500, "claim"),
            NewTransfer("pay", book.claims, book.transit, 500, "payout"),
        ],
    )
    assert [r.id for r in records] == [3, 4, 5]
    assert [r.key for r in records] == ["allocate", "spend", "pay"]
    assert balances(session, new_fund) == (0, 500, 0, 500)
    assert balances(session, book.claims) == (0, 500, 0, 500)
    assert_verified(session)


def test_spending_before_funding_in_a_batch_is_refused(
    session: Session, actor: Actor, book: Book
) -> None:
    new_fund = open_account(
        session, actor, "new-fund", AccountKind.PARTNER_FUND, debits_must_not_exceed_credits=True
    )
    before = snapshot(session)
    with pytest.raises(BatchRejected) as err:
        ledger.execute(
            session,
            actor,
            [
                NewTransfer("spend", new_fund, book.claims, 500, "claim"),
                NewTransfer("allocate", book.budget, new_fund, 500, "allocation"),
            ],
        )
    assert [(f.index, f.error.code) for f in err.value.failures] == [(0, "limit_exceeded")]
    assert snapshot(session) == before


def test_a_batch_can_reserve_and_then_post_its_own_reservation(
    session: Session, actor: Actor, book: Book
) -> None:
    next_id = session.scalar(select(ChainHead.last_transfer_id)) + 1
    hold, posted = ledger.execute(
        session,
        actor,
        [
            NewTransfer("hold", book.fund, book.claims, 900, "preapproval", pending=True),
            PostPending("approve", next_id, amount=600),
        ],
    )
    assert (hold.id, posted.pending_id, posted.amount) == (next_id, next_id, 600)
    assert balances(session, book.fund) == (0, 600, 0, FUND_FUNDS)
    assert_verified(session)


def test_an_empty_batch_writes_nothing(session: Session, actor: Actor, book: Book) -> None:
    before = snapshot(session)
    assert ledger.execute(session, actor, []) == []
    assert snapshot(session) == before


# --- idempotency --------------------------------------------------------------------------------


def test_replaying_a_key_returns_the_original_and_writes_nothing(
    session: Session, actor: Actor, book: Book
) -> None:
    command = NewTransfer("claim:9", book.fund, book.claims, 700, "claim", memo="m", ref_id="9")
    first = ledger.transfer(session, actor, command)
    before = snapshot(session)
    again = ledger.transfer(session, actor, command, now=book.t0 + timedelta(hours=5))
    assert again == dataclasses.replace(first, replayed=True)
    assert snapshot(session) == before


def test_a_replay_on_a_later_day_without_effective_date_is_still_a_replay(
    session: Session, actor: Actor, book: Book
) -> None:
    command = NewTransfer("claim:9", book.fund, book.claims, 700, "claim")
    first = ledger.transfer(session, actor, command, now=book.t0)
    next_day = book.t0 + timedelta(days=1)
    again = ledger.transfer(session, actor, command, now=next_day)
    assert again.replayed and again.id == first.id
    assert again.effective_date == book.t0.date()
    with pytest.raises(IdempotencyConflict) as err:
        ledger.transfer(
            session, actor, dataclasses.replace(command, effective_date=next_day.date())
        )
    assert err.value.details == {"field": "effective_date", "transfer_id": first.id}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount": 701}, "amount"),
        ({"debit_account_id": "budget"}, "debit_account_id"),
        ({"credit_account_id": "transit"}, "credit_account_id"),
        ({"code": "other"}, "code"),
        ({"memo": "different"}, "memo"),
        ({"ref_type": "claim"}, "ref_type"),
        ({"ref_id": "10"}, "ref_id"),
        ({"pending": True}, "type"),
        ({"effective_date": date(2026, 2, 2)}, "effective_date"),
    ],
)
def test_reusing_a_key_with_a_different_field_is_a_conflict_naming_the_field(
    session: Session, actor: Actor, book: Book, change: dict[str, Any], field: str
) -> None:
    command = NewTransfer(
        "claim:9",
        book.fund,
        book.claims,
        700,
        "claim",
        date(2026, 2, 1),
        memo="m",
        ref_type="fund_request",
        ref_id="9",
    )
    first = ledger.transfer(session, actor, command)
    change = {k: getattr(book, v) if k.endswith("_account_id") else v for k, v in change.items()}
    before = snapshot(session)
    with pytest.raises(IdempotencyConflict) as err:
        ledger.transfer(session, actor, dataclasses.replace(command, **change))
    assert err.value.details == {"field": field, "transfer_id": first.id}
    assert f"different {field}" in err.value.message
    assert snapshot(session) == before


def test_a_replay_skips_checks_on_what_changed_since(
    session: Session, actor: Actor, book: Book
) -> None:
    command = NewTransfer("claim:9", book.fund, book.claims, FUND_FUNDS, "claim")
    first = ledger.transfer(session, actor, command)  # spends the whole fund
    ledger.close_account(session, actor, book.claims)
    again = ledger.transfer(session, actor, command)
    assert again.replayed and again.id == first.id


def test_replaying_a_reservation_after_its_deadline_returns_it(
    session: Session, actor: Actor, book: Book
) -> None:
    deadline = book.t0 + timedelta(hours=1)
    hold = reserve(session, actor, book, "hold", 300, expires_at=deadline, now=book.t0)
    again = reserve(session, actor, book, "hold", 300, expires_at=deadline, now=deadline)
    assert again == dataclasses.replace(hold, replayed=True)


def test_replaying_a_post_returns_it_and_a_different_amount_conflicts(
    session: Session, actor: Actor, book: Book
) -> None:
    hold = reserve(session, actor, book, "hold", 3_000)
    posted = ledger.post(session, actor, hold.id, key="approve", amount=1_000)
    replay = ledger.post(session, actor, hold.id, key="approve", amount=1_000)
    assert replay.replayed and replay.id == posted.id
    with pytest.raises(IdempotencyConflict) as err:  # left out means "all of it": 3,000
        ledger.post(session, actor, hold.id, key="approve")
    assert err.value.details["field"] == "amount"
    with pytest.raises(IdempotencyConflict) as err:
        ledger.post(session, actor, hold.id, key="approve", amount=999)
    assert err.value.details["field"] == "amount"
    with pytest.raises(IdempotencyConflict) as err:
        ledger.void(session, actor, hold.id, key="approve")
    assert err.value.details["field"] == "type"
    assert balances(session, book.fund) == (0, 1_000, 0, FUND_FUNDS)


def test_a_key_twice_in_one_batch_is_written_once(
    session: Session, actor: Actor, book: Book
) -> None:
    command = NewTransfer("claim:9", book.fund, book.claims, 700, "claim")
    first, second = ledger.execute(session, actor, [command, command])
    assert (first.replayed, second) == (False, dataclasses.replace(first, replayed=True))
    assert transfer_count(session) == 3
    assert balances(session, book.fund) == (0, 700, 0, FUND_FUNDS)


def test_a_key_twice_in_one_batch_with_different_fields_rejects_the_batch(
    session: Session, actor: Actor, book: Book
) -> None:
    command = NewTransfer("claim:9", book.fund, book.claims, 700, "claim")
    before = snapshot(session)
    with pytest.raises(BatchRejected) as err:
        ledger.execute(session, actor, [command, dataclasses.replace(command, amount=70)])
    [failure] = err.value.failures
    assert (failure.index, failure.key) == (1, "claim:9")
    assert failure.error.code == "idempotency_conflict"
    assert failure.error.details["field"] == "amount"
    assert snapshot(session) == before


# --- reversals ----------------------------------------------------------------------------------


def test_a_reversal_swaps_the_accounts_and_undoes_the_balances(
    session: Session, actor: Actor, book: Book
) -> None:
    original = pay(
        session, actor, "claim", book.fund, book.claims, 2_500, ref_type="claim", ref_id="5"
    )
    reversal = ledger.reverse(session, actor, original.id, key="undo", memo="entered twice")
    assert (reversal.debit_account_id, reversal.credit_account_id) == (book.claims, book.fund)
    assert pick(reversal, "type", "amount", "code") == ("single", 2_500, "test")
    assert reversal.reverses_id == original.id
    assert (reversal.ref_type, reversal.ref_id, reversal.memo) == ("claim", "5", "entered twice")
    assert balances(session, book.fund) == (0, 2_500, 0, FUND_FUNDS + 2_500)
    assert balances(session, book.claims) == (0, 2_500, 0, 2_500)
    assert ledger.balance(session, book.fund).posted == FUND_FUNDS
    assert ledger.balance(session, book.claims).posted == 0
    assert_verified(session)


def test_a_reversal_and_its_original_link_to_each_other(
    session: Session, actor: Actor, book: Book
) -> None:
    original = pay(session, actor, "claim", book.fund, book.claims, 2_500)
    reversal = ledger.reverse(session, actor, original.id, key="undo")
    assert session.get(Transfer, original.id).reversed_by.id == reversal.id
    assert session.get(Transfer, reversal.id).reverses.id == original.id
    assert session.get(Transfer, reversal.id).reversed_by is None


def test_a_transfer_is_reversed_at_most_once(session: Session, actor: Actor, book: Book) -> None:
    original = pay(session, actor, "claim", book.fund, book.claims, 2_500)
    ledger.reverse(session, actor, original.id, key="undo")
    before = snapshot(session)
    with pytest.raises(AlreadyReversed) as err:
        ledger.reverse(session, actor, original.id, key="undo-again")
    assert err.value.details == {"transfer_id": original.id}
    assert snapshot(session) == before


def test_reversing_twice_in_one_batch_is_refused(
    session: Session, actor: Actor, book: Book
) -> None:
    original = pay(session, actor, "claim", book.fund, book.claims, 2_500)
    with pytest.raises(BatchRejected) as err:
        ledger.execute(
            session, actor, [Reverse("undo-1", original.id), Reverse("undo-2", original.id)]
        )
    assert [(f.index, f.error.code) for f in err.value.failures] == [(1, "already_reversed")]


def test_a_posted_reservation_can_be_reversed(session: Session, actor: Actor, book: Book) -> None:
    hold = reserve(session, actor, book, "hold", 3_000)
    posted = ledger.post(session, actor, hold.id, key="approve", amount=1_000)
    reversal = ledger.reverse(session, actor, posted.id, key="undo")
    assert (reversal.amount, reversal.debit_account_id) == (1_000, book.claims)
    assert balances(session, book.fund) == (0, 1_000, 0, FUND_FUNDS + 1_000)


def test_pending_void_and_reversal_transfers_cannot_be_reversed(
    session: Session, actor: Actor, book: Book
) -> None:
    hold = reserve(session, actor, book, "hold", 300)
    other = reserve(session, actor, book, "other", 300)
    voided = ledger.void(session, actor, other.id, key="void")
    single = pay(session, actor, "single", book.fund, book.claims, 100)
    reversal = ledger.reverse(session, actor, single.id, key="undo")
    before = snapshot(session)
    for target in (hold, voided, reversal):
        with pytest.raises(InvalidTransfer, match="cannot be reversed") as err:
            ledger.reverse(session, actor, target.id, key=f"undo-{target.id}")
        assert err.value.details == {"transfer_id": target.id}
    with pytest.raises(TransferNotFound):
        ledger.reverse(session, actor, 999, key="undo-ghost")
    assert snapshot(session) == before


def test_a_reversal_respects_the_limits(session: Session, actor: Actor, book: Book) -> None:
    allocation = pay(session, actor, "more", book.budget, book.fund, 500)
    pay(session, actor, "spend", book.fund, book.claims, FUND_FUNDS + 500)
    before = snapshot(session)
    with pytest.raises(LimitExceeded) as err:
        ledger.reverse(session, actor, allocation.id, key="claw-back")
    assert err.value.details["account_id"] == book.fund
    assert err.value.details["available"] == 0
    assert snapshot(session) == before


def test_a_reversal_into_a_closed_account_is_refused(
    session: Session, actor: Actor, book: Book
) -> None:
    paid = pay(session, actor, "claim", book.fund, book.claims, 100)
    ledger.close_account(session, actor, book.fund)
    with pytest.raises(AccountClosed):
        ledger.reverse(session, actor, paid.id, key="undo")


# --- created_at ---------------------------------------------------------------------------------


def test_created_at_comes_from_the_server_clock(session: Session, actor: Actor, book: Book) -> None:
    before = utcnow()
    record = pay(session, actor, "k", book.fund, book.claims, 1)
    after = utcnow()
    assert before <= record.created_at <= after
    assert session.get(Transfer, record.id).created_at == record.created_at


def test_created_at_never_goes_back_even_when_now_does(
    session: Session, actor: Actor, book: Book
) -> None:
    later, earlier = book.t0 + timedelta(hours=2), book.t0 + timedelta(hours=1)
    a = pay(session, actor, "a", book.fund, book.claims, 1, now=later)
    b = pay(session, actor, "b", book.fund, book.claims, 1, now=earlier)
    c = pay(session, actor, "c", book.fund, book.claims, 1, now=later + timedelta(hours=1))
    assert (a.id + 1, a.id + 2) == (b.id, c.id)
    assert (a.created_at, b.created_at, c.created_at) == (later, later, later + timedelta(hours=1))
    assert b.effective_date == earlier.date()  # the business day still follows `now`
    stored = session.execute(
        select(Transfer.id, Transfer.created_at).order_by(Transfer.created_at, Transfer.id)
    ).all()
    assert [row.id for row in stored] == sorted(row.id for row in stored)


# --- history ------------------------------------------------------------------------------------


def test_balance_as_of_a_time_shows_what_was_recorded_by_then(
    session: Session, actor: Actor, book: Book
) -> None:
    t1, t2, t3 = (book.t0 + timedelta(hours=h) for h in (1, 2, 3))
    pay(session, actor, "spend", book.fund, book.claims, 1_000, now=t1)
    hold = reserve(session, actor, book, "hold", 500, now=t2)
    ledger.post(session, actor, hold.id, key="approve", amount=300, now=t3)

    def at(when: datetime, account_id: int = book.fund) -> tuple[int, int, int, int]:
        return ledger.balance_as_of(session, account_id, at=when).balances.as_tuple()

    tiny = timedelta(microseconds=1)
    assert at(datetime(2000, 1, 1, tzinfo=UTC)) == (0, 0, 0, 0)
    assert at(t1 - tiny) == (0, 0, 0, FUND_FUNDS)
    assert at(t1) == (0, 1_000, 0, FUND_FUNDS)
    assert at(t2 + timedelta(minutes=30)) == (500, 1_000, 0, FUND_FUNDS)
    assert at(t3 - tiny, book.claims) == (0, 0, 500, 1_000)
    assert at(t3) == (0, 1_300, 0, FUND_FUNDS)
    assert at(t3 + timedelta(days=365), book.claims) == (0, 0, 0, 1_300)
    assert at(t3) == balances(session, book.fund)


def test_balance_as_of_an_effective_date_counts_backdated_transfers(
    session: Session, actor: Actor, book: Book
) -> None:
    march = {d: date(2026, 3, d) for d in range(1, 32)}
    pay(session, actor, "m10", book.fund, book.claims, 1_000, effective_date=march[10])
    pay(session, actor, "m1", book.fund, book.claims, 200, effective_date=march[1])  # backdated
    reserve(session, actor, book, "m5", 40, effective_date=march[5])
    pay(session, actor, "m5b", book.budget, book.fund, 7, effective_date=march[5])

    def on(day: date) -> tuple[int, int, int, int]:
        return ledger.balance_as_of(session, book.fund, on=day).balances.as_tuple()

    assert on(SEED_DAY - timedelta(days=1)) == (0, 0, 0, 0)
    assert on(SEED_DAY) == (0, 0, 0, FUND_FUNDS)
    assert on(date(2026, 2, 28)) == (0, 0, 0, FUND_FUNDS)
    assert on(march[1]) == (0, 200, 0, FUND_FUNDS)
    assert on(march[4]) == (0, 200, 0, FUND_FUNDS)
    assert on(march[5]) == (40, 200, 0, FUND_FUNDS + 7)
    assert on(march[10]) == (40, 1_200, 0, FUND_FUNDS + 7)
    assert on(date(2030, 1, 1)) == balances(session, book.fund)


def test_balance_as_of_needs_exactly_one_of_a_time_or_a_date(session: Session, book: Book) -> None:
    with pytest.raises(ValidationError):
        ledger.balance_as_of(session, book.fund)
    with pytest.raises(ValidationError):
        ledger.balance_as_of(session, book.fund, at=book.t0, on=SEED_DAY)
    with pytest.raises(AccountNotFound):
        ledger.balance_as_of(session, 999, on=SEED_DAY)


# --- statements ---------------------------------------------------------------------------------

MARCH_1, MARCH_31 = date(2026, 3, 1), date(2026, 3, 31)


@pytest.fixture
def march(session: Session, actor: Actor, book: Book) -> dict[str, TransferRecord]:
    """The fund's March: written out of date order, with a reservation and a late backdating."""
    d = {n: date(2026, 3, n) for n in (1, 3, 5, 10)}
    records = {
        "a": pay(session, actor, "a", book.fund, book.claims, 1_000, effective_date=d[1]),
        "b": pay(session, actor, "b", book.fund, book.claims, 2_000, effective_date=d[10]),
        "c": reserve(session, actor, book, "c", 500, effective_date=d[5]),
        "e": pay(session, actor, "e", book.budget, book.fund, 700, effective_date=d[10]),
        "april": pay(
            session, actor, "april", book.fund, book.claims, 50, effective_date=date(2026, 4, 1)
        ),
        "d": pay(session, actor, "d", book.fund, book.claims, 300, effective_date=d[3]),
    }
    return records


def line_summary(lines: Any) -> list[tuple[str, date, str, int, int, int, int]]:
    return [
        (ln.key, ln.effective_date, ln.side, ln.amount, ln.pending_change, ln.balance, ln.available)
        for ln in lines
    ]


def test_a_statement_lists_movements_by_effective_date_with_running_balances(
    session: Session, book: Book, march: dict[str, TransferRecord]
) -> None:
    st = ledger.statement(session, book.fund, MARCH_1, MARCH_31)
    assert (st.opening.posted, st.opening.available) == (FUND_FUNDS, FUND_FUNDS)
    lines = list(st.lines)
    assert line_summary(lines) == [
        ("a", date(2026, 3, 1), "debit", -1_000, 0, 9_000, 9_000),
        ("d", date(2026, 3, 3), "debit", -300, 0, 8_700, 8_700),  # backdated, written last
        ("c", date(2026, 3, 5), "debit", 0, -500, 8_700, 8_200),
        ("b", date(2026, 3, 10), "debit", -2_000, 0, 6_700, 6_200),
        ("e", date(2026, 3, 10), "credit", 700, 0, 7_400, 6_900),  # same day: by id
    ]
    assert [ln.transfer_id for ln in lines] == [march[k].id for k in "adcbe"]
    assert (lines[0].counter_account_id, lines[-1].counter_account_id) == (book.claims, book.budget)
    assert lines[2].type == "pending"
    assert (st.closing.posted, st.closing.available) == (7_400, 6_900)
    assert st.closing.balances.as_tuple() == (500, 3_300, 0, FUND_FUNDS + 700)


def test_a_statement_opening_includes_everything_before_its_start(
    session: Session, book: Book, march: dict[str, TransferRecord]
) -> None:
    st = ledger.statement(session, book.fund, date(2026, 3, 4), date(2026, 3, 9))
    assert st.opening.posted == FUND_FUNDS - 1_000 - 300
    assert [ln.key for ln in st.lines] == ["c"]
    assert (st.closing.posted, st.closing.available) == (8_700, 8_200)


def test_paging_a_statement_gives_the_same_lines_and_balances_as_one_pass(
    session: Session, book: Book, march: dict[str, TransferRecord]
) -> None:
    whole = list(ledger.statement(session, book.fund, MARCH_1, MARCH_31).lines)
    assert len(whole) == 5
    for size, chunk in ((1, 1000), (2, 1000), (3, 1000), (3, 2), (4, 1)):
        pages: list[Any] = []
        cursor = None
        while True:
            st = ledger.statement(
                session, book.fund, MARCH_1, MARCH_31, after=cursor, limit=size, chunk=chunk
            )
            page = list(st.lines)
            assert len(page) == min(size, len(whole) - len(pages))
            if not page:
                break
            pages.extend(page)
            cursor = page[-1].cursor
        assert pages == whole
    streamed = list(ledger.statement(session, book.fund, MARCH_1, MARCH_31, chunk=1).lines)
    assert streamed == whole


def test_a_statement_of_a_debit_normal_account_counts_debits_up(
    session: Session, book: Book
) -> None:
    [line] = ledger.statement(session, book.funding, SEED_DAY, SEED_DAY).lines
    assert (line.side, line.amount, line.balance) == ("debit", BUDGET_FUNDS, BUDGET_FUNDS)


def test_a_statement_refuses_bad_ranges_and_cursors(session: Session, book: Book) -> None:
    with pytest.raises(ValidationError):
        ledger.statement(session, book.fund, MARCH_31, MARCH_1)
    with pytest.raises(ValidationError, match="cursor"):
        ledger.statement(session, book.fund, MARCH_1, MARCH_31, after=(date(2026, 4, 1), 3, 3))


# --- ORM objects in the session -----------------------------------------------------------------


def test_account_objects_held_in_the_session_show_fresh_balances(
    session: Session, actor: Actor, book: Book
) -> None:
    fund, claims = session.get(Account, book.fund), session.get(Account, book.claims)
    assert (fund.debits_posted, claims.credits_posted) == (0, 0)
    pay(session, actor, "spend", book.fund, book.claims, 1_000)
    assert (fund.debits_posted, claims.credits_posted) == (1_000, 1_000)
    hold = reserve(session, actor, book, "hold", 200)
    assert (fund.debits_pending, claims.credits_pending) == (200, 200)
    ledger.post(session, actor, hold.id, key="post")
    assert (fund.debits_pending, fund.debits_posted, claims.credits_posted) == (0, 1_200, 1_200)


# --- bugs found while writing these tests: each fails until the ledger is fixed -------------------


def test_a_boolean_account_id_is_refused_as_a_ledger_error(
    session: Session, actor: Actor, book: Book
) -> None:
    # Amounts refuse bools; account ids should too, with a LedgerError naming the field.
    with pytest.raises(LedgerError):
        pay(session, actor, "k", True, book.claims, 100)  # type: ignore[arg-type]


def test_a_transfer_that_would_overflow_a_balance_is_refused_as_a_ledger_error(
    session: Session, actor: Actor
) -> None:
    source = open_account(session, actor, "source", AccountKind.FUNDING)
    sink = open_account(session, actor, "sink", AccountKind.BUDGET)
    pay(session, actor, "max", source, sink, 2**63 - 1)  # the largest amount the ledger accepts
    before = snapshot(session)
    with pytest.raises(LedgerError):  # today: a raw driver error, raised halfway through write()
        pay(session, actor, "one-more", source, sink, 1)
    assert snapshot(session) == before


def test_an_expiry_never_takes_effect_before_its_reservation(
    session: Session, actor: Actor, book: Book
) -> None:
    # A reservation dated next month (effective 1 April) that lapses this week (3 March): the
    # expiry is dated 3 March, before the reservation, so from 3 to 31 March the fund shows a
    # reservation of -500.
    placed = datetime(2027, 3, 1, 12, tzinfo=UTC)
    deadline = placed + timedelta(days=2)
    april = date(2027, 4, 1)
    reserve(
        session, actor, book, "hold", 500, effective_date=april, expires_at=deadline, now=placed
    )
    [expired] = ledger.expire_overdue(session, actor, now=placed + timedelta(days=30))
    pending = {
        day: ledger.balance_as_of(session, book.fund, on=day).debits_pending
        for day in (date(2027, 3, 2), date(2027, 3, 3), date(2027, 3, 31), april)
    }
    assert pending == {date(2027, 3, 2): 0, date(2027, 3, 3): 0, date(2027, 3, 31): 0, april: 0}
    assert expired.effective_date >= april


def test_transfer_objects_held_in_the_session_see_their_later_reversal_and_resolution(
    session: Session, actor: Actor, book: Book
) -> None:
    # write() expires Account objects it touched, but not Transfer objects whose links it
    # changed: one loaded before the reversal or resolution keeps showing None.
    original = pay(session, actor, "claim", book.fund, book.claims, 2_500)
    hold = reserve(session, actor, book, "hold", 300)
    held = session.get(Transfer, original.id), session.get(Transfer, hold.id)
    assert (held[0].reversed_by, held[1].resolution) == (None, None)
    reversal = ledger.reverse(session, actor, original.id, key="undo")
    voided = ledger.void(session, actor, hold.id, key="void")
    assert session.get(Transfer, original.id).reversed_by is not None
    assert session.get(Transfer, original.id).reversed_by.id == reversal.id
    assert session.get(Transfer, hold.id).resolution.id == voided.id
