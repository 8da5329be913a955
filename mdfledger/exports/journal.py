"""Write the journal for hledger or beancount, streamed: flat memory in the number of transfers.

What is exported, as of an optional cut-off `as_of` (a time: the transfers *created* up to then,
the ledger's own order, so a resolution never appears without its reservation and the balances
at the cut-off are the ones the ledger recorded then):

- one account declaration per account (hledger `account`, beancount `open` with its currency,
  dated the earlier of its creation and its first effective date);
- one transaction per transfer, dated by its effective date, in id order. Single transfers,
  reversals and posts are cleared (`*`). A reservation is a pending (`!`) transaction. Its
  resolution releases the whole reservation with `!` legs and, for a post, posts the amount with
  cleared legs in the same transaction (a void or expiry is a `!` transaction). So cleared
  postings sum to the posted balances (`hledger balance -C`; in beancount, the `*` postings),
  pending ones to the open reservations (`hledger balance -P`);
- a balance check for every account after the last transfer: an hledger assertion posting
  (`0 USD = X USD`, on the last date) and a beancount `balance` directive (the day after) with
  an explicit zero tolerance (`X ~ 0 USD`: by default beancount lets 2-decimal balances be off
  by 0.01).
  Both tools check assertions against postings of every status, so X is the ledger's maintained
  posted balance plus its open reservations (equal to the posted balance unless some are open).

Read it in a read-only session (mdfledger.db.make_session_factory(read_only=True)): on PostgreSQL
that is one snapshot, so the transactions add up to the asserted balances.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TextIO

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from mdfledger.errors import ValidationError
from mdfledger.exports import rules
from mdfledger.exports.rules import AccountInfo, TransferInfo
from mdfledger.ledger.balances import through_transfer
from mdfledger.ledger.models import Account, ChainHead, Entry, Transfer
from mdfledger.programs.models import Partner, Program

_STREAM = {"yield_per": 5000}


@dataclass(frozen=True, slots=True)
class ExportSummary:
    format: str
    as_of: datetime | None
    high_water: int  # the last transfer id exported (0: none)
    transfers: int
    accounts: int


def export_journal(
    session: Session,
    out: TextIO,
    *,
    fmt: str,
    as_of: datetime | None = None,
    progress: Callable[[int], None] | None = None,
) -> ExportSummary:
    """Write the journal in `fmt` ("hledger" or "beancount") to `out`, line by line.
    `progress(n)` is told the number of transfers written: 0 first, then after each one."""
    if fmt not in rules.FORMATS:
        raise ValidationError(f"format must be one of {', '.join(rules.FORMATS)}", field="format")
    if as_of is not None and (not isinstance(as_of, datetime) or as_of.tzinfo is None):
        raise ValidationError("as_of must be a timezone-aware time", field="as_of")
    high_water = _high_water(session, as_of)
    accounts = _accounts(session, as_of, high_water)
    names = {a.id: rules.account_name(a, fmt) for a in accounts}
    hledger = fmt == "hledger"
    comment = ";" if hledger else ";;"

    def write(lines: Iterable[str]) -> None:
        for line in lines:
            out.write(line + "\n")

    cut = as_of.astimezone(UTC).isoformat() if as_of else "everything"
    write(
        [
            f"{comment} mdfledger journal export ({fmt}); transfers created up to: {cut};"
            f" last transfer id {high_water}",
            f"{comment} '*' = posted, '!' = reservation legs (pending); see mdfledger/exports.",
            "",
        ]
    )
    if hledger:
        for currency in sorted({a.currency for a in accounts}):
            write([rules.hledger_commodity(currency)])
        write(rules.hledger_account(a, names[a.id]) for a in accounts)
        write([""])
    else:
        for a in accounts:
            write(rules.beancount_open(a, names[a.id]))
        write([""])

    last_day = max((a.opened for a in accounts), default=None)
    count = 0
    if progress is not None:
        progress(0)
    for t in _transfers(session, high_water, names):
        write(rules.transaction(t, fmt))
        write([""])
        count += 1
        if progress is not None:
            progress(count)
        last_day = t.effective_date if last_day is None else max(last_day, t.effective_date)

    if accounts:
        assert last_day is not None
        balances = [(a, through_transfer(session, a.id, high_water)) for a in accounts]
        if hledger:
            write(
                [
                    f"{last_day.isoformat()} balance assertions: the ledger's balances after"
                    f" transfer {high_water}"
                ]
            )
            write(
                f"    {names[a.id]}  {rules.money(0, a.currency)}"
                f" = {rules.money(rules.net(b), a.currency)}"
                for a, b in balances
            )
        else:
            day = (last_day + timedelta(days=1)).isoformat()
            write(
                f"{day} balance {names[a.id]}  {rules.beancount_exact(rules.net(b), a.currency)}"
                for a, b in balances
            )
    return ExportSummary(fmt, as_of, high_water, count, len(accounts))


def _high_water(session: Session, as_of: datetime | None) -> int:
    if as_of is None:
        head = session.scalar(select(ChainHead.last_transfer_id))
        return int(head or 0)
    # created_at never goes backwards with id order, so "created by then" is an id prefix.
    last = session.scalar(select(func.max(Transfer.id)).where(Transfer.created_at <= as_of))
    return int(last or 0)


def _accounts(session: Session, as_of: datetime | None, high_water: int) -> list[AccountInfo]:
    """Every account open by the cut-off: memory in accounts, not transfers."""
    first_day = dict(
        session.execute(
            select(Entry.account_id, func.min(Entry.effective_date))
            .where(Entry.transfer_id <= high_water)
            .group_by(Entry.account_id)
        ).all()
    )
    programs = dict(session.execute(select(Program.id, Program.code)).all())
    partners = dict(session.execute(select(Partner.id, Partner.code)).all())
    stmt = select(
        Account.id,
        Account.kind,
        Account.code,
        Account.currency,
        Account.name,
        Account.program_id,
        Account.partner_id,
        Account.created_at,
    ).order_by(Account.id)
    if as_of is not None:
        stmt = stmt.where(Account.created_at <= as_of)
    found = []
    for row in session.execute(stmt):
        created: date = row.created_at.astimezone(UTC).date()
        first: date | None = first_day.get(row.id)
        found.append(
            AccountInfo(
                id=row.id,
                kind=row.kind,
                code=row.code,
                currency=row.currency,
                name=row.name,
                program=_owner(programs, row.program_id, "program"),
                partner=_owner(partners, row.partner_id, "partner"),
                opened=created if first is None else min(created, first),
            )
        )
    return found


def _owner(codes: dict[int, str], owner_id: int | None, what: str) -> str | None:
    if owner_id is None:
        return None
    return codes.get(owner_id) or f"{what}-{owner_id}"


def _transfers(session: Session, high_water: int, names: dict[int, str]) -> Iterable[TransferInfo]:
    pending = aliased(Transfer)
    stmt = (
        select(
            Transfer.id,
            Transfer.key,
            Transfer.type,
            Transfer.debit_account_id,
            Transfer.credit_account_id,
            Transfer.currency,
            Transfer.amount,
            pending.amount.label("pending_amount"),
            Transfer.code,
            Transfer.effective_date,
            Transfer.created_at,
            Transfer.pending_id,
            Transfer.reverses_id,
            Transfer.ref_type,
            Transfer.ref_id,
            Transfer.memo,
        )
        .outerjoin(pending, pending.id == Transfer.pending_id)
        .where(Transfer.id <= high_water)
        .order_by(Transfer.id)
        .execution_options(**_STREAM)
    )
    # Plain rows, not ORM objects: nothing piles up in the session while streaming.
    for row in session.execute(stmt):
        yield TransferInfo(
            id=row.id,
            key=row.key,
            type=row.type,
            debit=names[row.debit_account_id],
            credit=names[row.credit_account_id],
            currency=row.currency,
            amount=row.amount,
            pending_amount=row.pending_amount or 0,
            code=row.code,
            effective_date=row.effective_date,
            created_at=row.created_at,
            pending_id=row.pending_id,
            reverses_id=row.reverses_id,
            ref_type=row.ref_type,
            ref_id=row.ref_id,
            memo=row.memo,
        )
