"""Recompute the ledger from its transfers and compare with everything stored.

Walks the journal once in id order (streamed), replaying each transfer with the same pure rules
the service used, and checks: ids are gap-free, every hash chains, every entry's balances, every
account's maintained balances, the daily balances, the chain head, debits equal credits per
currency, and every limit holds.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mdfledger.ledger import rules
from mdfledger.ledger.models import Account, AccountDay, ChainHead, Entry, Transfer
from mdfledger.ledger.models import TransferType as T

_STREAM = {"yield_per": 5000}


@dataclass
class VerifyReport:
    transfers: int = 0
    accounts: int = 0
    head_id: int = 0
    head_hash: str = rules.GENESIS_HASH
    # currency -> summed balances over all accounts
    totals: dict[str, rules.Balances] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "transfers": self.transfers,
            "accounts": self.accounts,
            "head_id": self.head_id,
            "head_hash": self.head_hash,
            "totals": {
                c: dict(zip(_NAMES, b.as_tuple(), strict=True))
                for c, b in sorted(self.totals.items())
            },
            "problems": self.problems,
        }


_NAMES = ("debits_pending", "debits_posted", "credits_pending", "credits_posted")


class _Stop(Exception):
    pass


class _Checker:
    def __init__(self, report: VerifyReport, max_problems: int) -> None:
        self.report, self.max_problems = report, max_problems

    def problem(self, message: str) -> None:
        self.report.problems.append(message)
        if len(self.report.problems) >= self.max_problems:
            raise _Stop


def verify_ledger(session: Session, *, max_problems: int = 20) -> VerifyReport:
    report = VerifyReport()
    check = _Checker(report, max_problems)
    with contextlib.suppress(_Stop):
        _verify(session, report, check)
    return report


def _verify(session: Session, report: VerifyReport, check: _Checker) -> None:
    computed: dict[int, rules.Balances] = defaultdict(rules.Balances)
    days: dict[tuple[int, date], rules.Balances] = defaultdict(rules.Balances)
    open_pending: dict[int, Any] = {}
    reversible: set[int] = set()
    prev_hash = rules.GENESIS_HASH
    last_created_at = None
    definitions = {
        a["id"]: rules.account_definition(a)
        for a in session.execute(select(Account.__table__)).mappings()
    }
    entries = _Peekable(
        session.execute(
            select(Entry.__table__)
            .order_by(Entry.transfer_id, Entry.account_id)
            .execution_options(**_STREAM)
        ).mappings()
    )
    transfers = session.execute(
        select(Transfer.__table__).order_by(Transfer.id).execution_options(**_STREAM)
    ).mappings()
    for t in transfers:
        report.transfers += 1
        tid = t["id"]
        if tid != report.head_id + 1:
            check.problem(f"transfer ids jump from {report.head_id} to {tid}")
        report.head_id = tid
        expected_hash = rules.chain_hash(
            prev_hash,
            t,
            definitions.get(t["debit_account_id"], ""),
            definitions.get(t["credit_account_id"], ""),
        )
        if t["hash"] != expected_hash:
            check.problem(
                f"transfer {tid}: hash does not match its fields, its accounts and the chain"
            )
        prev_hash = report.head_hash = t["hash"]
        if last_created_at is not None and t["created_at"] < last_created_at:
            check.problem(f"transfer {tid}: created_at goes back in time")
        last_created_at = t["created_at"]
        pending_amount = 0
        if t["type"] in (T.POST, T.VOID, T.EXPIRE):
            pending = open_pending.pop(t["pending_id"], None)
            if pending is None:
                check.problem(f"transfer {tid}: resolves {t['pending_id']}, which is not open")
                continue
            pending_amount = pending["amount"]
            deadline = pending["expires_at"]
            if deadline is not None and (t["created_at"] >= deadline) != (t["type"] == T.EXPIRE):
                check.problem(
                    f"transfer {tid}: resolves {pending['id']} on the wrong side of its deadline"
                )
            if (pending["debit_account_id"], pending["credit_account_id"]) != (
                t["debit_account_id"],
                t["credit_account_id"],
            ) or (t["type"] == T.POST and t["amount"] > pending_amount):
                check.problem(f"transfer {tid}: does not match pending transfer {pending['id']}")
        elif t["type"] == T.PENDING:
            open_pending[tid] = t
        if t["reverses_id"] is not None:
            if t["reverses_id"] not in reversible:
                check.problem(f"transfer {tid}: reverses {t['reverses_id']}, not reversible")
            reversible.discard(t["reverses_id"])
        elif t["type"] in (T.SINGLE, T.POST):
            reversible.add(tid)
        pending_delta, posted_delta = rules.effect(t["type"], t["amount"], pending_amount)
        stored = {}
        while (e := entries.peek()) is not None and e["transfer_id"] <= tid:
            e = next(entries)
            if e["transfer_id"] < tid or e["account_id"] in stored:
                check.problem(
                    f"entry for account {e['account_id']} of transfer "
                    f"{e['transfer_id']} does not belong to the journal"
                )
            stored[e["account_id"]] = e
        for side in ("debit", "credit"):
            account_id = t[f"{side}_account_id"]
            computed[account_id] = after = computed[account_id].moved(
                side, pending_delta, posted_delta
            )
            day = (account_id, t["effective_date"])
            days[day] = days[day].moved(side, pending_delta, posted_delta)
            e = stored.pop(account_id, None)
            if e is None:
                check.problem(f"transfer {tid}: entry for account {account_id} is missing")
            elif (
                e["side"],
                e["effective_date"],
                e["pending_delta"],
                e["posted_delta"],
                *(e[n] for n in _NAMES),
            ) != (side, t["effective_date"], pending_delta, posted_delta, *after.as_tuple()):
                check.problem(
                    f"transfer {tid}: entry for account {account_id} differs from "
                    "the recomputed balances"
                )
        for account_id in stored:
            check.problem(f"transfer {tid}: stray entry for account {account_id}")
    for e in entries:
        check.problem(
            f"entry for account {e['account_id']} names missing transfer {e['transfer_id']}"
        )
    _check_accounts(session, report, check, computed)
    _check_days(session, check, days)
    head = session.execute(select(ChainHead.__table__)).mappings().one()
    if (head["last_transfer_id"], head["last_hash"], head["last_created_at"]) != (
        report.head_id,
        report.head_hash,
        last_created_at,
    ):
        check.problem(
            f"chain head says transfer {head['last_transfer_id']} at {head['last_created_at']},"
            f" but the journal ends at {report.head_id} at {last_created_at}"
        )


def _check_accounts(
    session: Session, report: VerifyReport, check: _Checker, computed: dict[int, rules.Balances]
) -> None:
    for a in session.execute(select(Account.__table__).order_by(Account.id)).mappings():
        report.accounts += 1
        stored = rules.Balances(*(a[n] for n in _NAMES))
        expected = computed.pop(a["id"], rules.Balances())
        if stored != expected:
            check.problem(
                f"account {a['id']} ({a['key']}): stored balances {stored.as_tuple()} "
                f"but the journal gives {expected.as_tuple()}"
            )
        limits = rules.Limits(
            a["debits_must_not_exceed_credits"], a["credits_must_not_exceed_debits"]
        )
        if rules.limit_breach(limits, expected):
            check.problem(f"account {a['id']} ({a['key']}): balances break its limit")
        total = report.totals.get(a["currency"], rules.Balances())
        report.totals[a["currency"]] = total + expected
    for account_id in computed:
        check.problem(f"transfers name account {account_id}, which does not exist")
    for currency, b in sorted(report.totals.items()):
        if b.debits_posted != b.credits_posted or b.debits_pending != b.credits_pending:
            check.problem(
                f"{currency}: debits {b.debits_posted}/{b.debits_pending} pending "
                f"do not equal credits {b.credits_posted}/{b.credits_pending} pending"
            )


def _check_days(
    session: Session, check: _Checker, days: dict[tuple[int, date], rules.Balances]
) -> None:
    rows = session.execute(select(AccountDay.__table__).execution_options(**_STREAM)).mappings()
    for row in rows:
        stored = rules.Balances(*(row[n] for n in _NAMES))
        expected = days.pop((row["account_id"], row["day"]), rules.Balances())
        if stored != expected:
            check.problem(
                f"daily balance of account {row['account_id']} on {row['day']} "
                "differs from the journal"
            )
    for account_id, day in days:
        check.problem(f"daily balance of account {account_id} on {day} is missing")


class _Peekable(Iterator[Any]):
    def __init__(self, it: Iterator[Any]) -> None:
        self._it, self._next = it, None

    def peek(self) -> Any:
        if self._next is None:
            self._next = next(self._it, None)
        return self._next

    def __next__(self) -> Any:
        value = self.peek()
        if value is None:
            raise StopIteration
        self._next = None
        return value
