"""Bad input to the ledger's public API gets a domain error and changes nothing.

Each case once raised a raw TypeError, DBAPI error or the like, or wrote before failing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mdfledger import ledger
from mdfledger.actor import Actor
from mdfledger.errors import DomainError, ValidationError
from mdfledger.ledger import AccountKind, BatchRejected, NewTransfer, PostPending, Reverse
from mdfledger.ledger.models import Account, Transfer


@dataclass(frozen=True)
class Accounts:
    budget: int
    fund: int
    claims: int
    hold: int


@pytest.fixture
def accounts(session: Session, actor: Actor) -> Accounts:
    def open_(key: str, kind: str, **flags: Any) -> int:
        return ledger.open_account(
            session, actor, key=key, name=key, kind=kind, currency="USD", **flags
        ).id

    budget = open_("budget", AccountKind.BUDGET)
    fund = open_("fund", AccountKind.PARTNER_FUND, debits_must_not_exceed_credits=True)
    claims = open_("claims", AccountKind.CLAIMS_PAYABLE)
    ledger.transfer(session, actor, NewTransfer("allocate", budget, fund, 1_000, "allocation"))
    hold = ledger.reserve(
        session,
        actor,
        key="hold",
        debit_account_id=fund,
        credit_account_id=claims,
        amount=400,
        code="claim",
    )
    session.commit()
    return Accounts(budget, fund, claims, hold.id)


def journal(session: Session) -> tuple[int, int]:
    return (
        session.scalar(select(func.count()).select_from(Transfer)),
        session.scalar(select(func.count()).select_from(Account)),
    )


def bad_commands(a: Accounts) -> list[Any]:
    ok = {"key": "k", "debit_account_id": a.fund, "credit_account_id": a.claims, "amount": 1}
    return [
        NewTransfer(**{**ok, "key": ["k"]}, code="claim"),
        NewTransfer(**{**ok, "debit_account_id": True}, code="claim"),
        NewTransfer(**{**ok, "debit_account_id": 2**70}, code="claim"),
        NewTransfer(**{**ok, "credit_account_id": "3"}, code="claim"),
        NewTransfer(**ok, code="claim", memo="nul\x00byte"),
        NewTransfer(**ok, code="claim", memo="lone \ud800 surrogate"),
        NewTransfer(**{**ok, "key": "k\x00"}, code="claim"),
        NewTransfer(**ok, code="claim", effective_date="2026-01-01"),
        NewTransfer(**ok, code="claim", pending="yes"),
        NewTransfer(**ok, code="claim", pending=True, expires_at=datetime(2030, 1, 1)),  # noqa: DTZ001 - naive on purpose
        NewTransfer(**ok, code="claim", ref_id=7),
        NewTransfer(**{**ok, "key": "expire:1"}, code="claim"),
        PostPending("p", pending_id=[1]),
        PostPending("p", pending_id="x"),
        PostPending("p", pending_id=a.hold, amount=1.5),
        Reverse("r", transfer_id=None),
        {"key": "a dict is not a command"},
    ]


def test_each_malformed_command_is_refused_by_name_and_nothing_is_written(
    session: Session, actor: Actor, accounts: Accounts
) -> None:
    before = journal(session)
    for command in bad_commands(accounts):
        with pytest.raises(DomainError) as err:
            ledger.transfer(session, actor, command)
        assert err.value.code == "invalid_transfer", command
        session.rollback()
    assert journal(session) == before


def test_a_batch_reports_malformed_and_refused_commands_together(
    session: Session, actor: Actor, accounts: Accounts
) -> None:
    commands = [
        NewTransfer("good", accounts.fund, accounts.claims, 1, "claim"),
        PostPending("odd", pending_id="x"),
        NewTransfer("over", accounts.fund, accounts.claims, 10**6, "claim"),
    ]
    with pytest.raises(BatchRejected) as err:
        ledger.execute(session, actor, commands)
    assert [(f.index, f.error.code) for f in err.value.failures] == [
        (1, "invalid_transfer"),
        (2, "limit_exceeded"),
    ]


def test_a_generator_of_commands_is_applied_like_a_list(
    session: Session, actor: Actor, accounts: Accounts
) -> None:
    commands = (NewTransfer(f"g{i}", accounts.fund, accounts.claims, 1, "claim") for i in range(3))
    assert len(ledger.execute(session, actor, commands)) == 3


@pytest.mark.parametrize("actor_value", [None, "finance-1", Actor("user", "x" * 300)])
def test_a_missing_or_oversized_actor_is_refused(
    session: Session, accounts: Accounts, actor_value: Any
) -> None:
    with pytest.raises(ValidationError):
        ledger.transfer(
            session, actor_value, NewTransfer("a", accounts.fund, accounts.claims, 1, "claim")
        )


@pytest.mark.parametrize(
    "overrides",
    [
        {"program_id": "abc"},
        {"partner_id": 2**70},
        {"debits_must_not_exceed_credits": "yes"},
        {"kind": ["budget"]},
        {"name": "nul\x00"},
    ],
)
def test_open_account_refuses_mistyped_fields(
    session: Session, actor: Actor, accounts: Accounts, overrides: dict[str, Any]
) -> None:
    before = journal(session)
    fields = {"key": "new", "name": "New", "kind": "budget", "currency": "USD", **overrides}
    with pytest.raises(ValidationError):
        ledger.open_account(session, actor, **fields)
    assert journal(session) == before


def test_close_account_refuses_a_boolean_id_and_closes_nothing(
    session: Session, actor: Actor, accounts: Accounts
) -> None:
    with pytest.raises(ledger.AccountNotFound):
        ledger.close_account(session, actor, True)
    assert session.get(Account, 1).closed_at is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"at": datetime(2026, 1, 1)},  # noqa: DTZ001 - naive on purpose
        {"on": "2026-01-01"},
        {"on": datetime(2026, 1, 1, tzinfo=UTC)},
    ],
)
def test_balance_as_of_refuses_mistyped_times(
    session: Session, accounts: Accounts, kwargs: dict[str, Any]
) -> None:
    with pytest.raises(ValidationError):
        ledger.balance_as_of(session, accounts.fund, **kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"start": date.min, "end": date(2026, 1, 1)},
        {"start": date(2026, 1, 1), "end": date(2026, 2, 1), "chunk": 0},
        {"start": date(2026, 1, 1), "end": date(2026, 2, 1), "limit": -1},
        {"start": date(2026, 1, 1), "end": date(2026, 2, 1), "after": ("2026-01-02", 1, 1)},
        {"start": date(2026, 1, 1), "end": date(2026, 2, 1), "after": (date(2026, 1, 2), None, 1)},
        {"start": "2026-01-01", "end": date(2026, 2, 1)},
    ],
)
def test_statement_refuses_bad_arguments(
    session: Session, accounts: Accounts, kwargs: dict[str, Any]
) -> None:
    with pytest.raises(ValidationError):
        ledger.statement(session, accounts.fund, **kwargs)


def test_expire_overdue_refuses_a_non_positive_limit(session: Session, actor: Actor) -> None:
    with pytest.raises(ValidationError):
        ledger.expire_overdue(session, actor, limit=-1)


def test_a_void_dated_before_its_reservation_is_refused(
    session: Session, actor: Actor, accounts: Accounts
) -> None:
    hold = session.get(Transfer, accounts.hold)
    with pytest.raises(ledger.InvalidTransfer, match="before"):
        ledger.void(session, actor, accounts.hold, key="early", effective_date=date(2000, 1, 1))
    assert hold is not None and hold.resolution is None
