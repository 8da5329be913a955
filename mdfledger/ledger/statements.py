"""Account statements: opening balance, movements by effective date with running balances,
closing balance. Lines stream in keyset-paginated chunks, so memory stays flat."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from mdfledger.errors import ValidationError
from mdfledger.ledger import rules
from mdfledger.ledger.balances import Balance, days_through, load_account, to_balance
from mdfledger.ledger.models import Account, ChainHead, Entry, Transfer

# (effective_date, transfer_id) of the last line seen, and the statement's high-water mark:
# the last transfer id it shows. Later pages leave out what was written after the first one,
# so running balances carry on exactly even while others write (backdated entries included).
Cursor = tuple[date, int, int]


@dataclass(frozen=True, slots=True)
class StatementLine:
    transfer_id: int
    effective_date: date
    created_at: datetime
    type: str
    code: str
    side: rules.Side
    counter_account_id: int
    amount: int  # change in the posted balance, signed to the account's normal side
    pending_change: int  # change in net reservations, same sign convention
    balance: int  # posted balance after this line
    available: int  # available balance after this line
    ref_type: str | None
    ref_id: str | None
    memo: str | None
    key: str
    pending_id: int | None
    reverses_id: int | None
    cursor: Cursor  # pass as `after` to continue after this line


@dataclass(frozen=True)
class Statement:
    account: Account
    start: date
    end: date
    opening: Balance
    closing: Balance
    high_water: int  # the last transfer id the statement includes
    lines: Iterator[StatementLine]  # consume once; streamed from the database


def statement(
    session: Session,
    account_id: int,
    start: date,
    end: date,
    *,
    after: Cursor | None = None,
    limit: int | None = None,
    chunk: int = 1000,
    high_water: int | None = None,
) -> Statement:
    """Statement for effective dates start..end inclusive. `after` and `limit` page through it:
    pass the last line's cursor to continue; running balances carry on correctly.

    `high_water` shows the books as they stood after that transfer (`high_water_at` gives the
    last one created by a moment); default: everything written so far. A cursor carries its own.

    Read it in a read-only session (mdfledger.db.make_session_factory(read_only=True)): on
    PostgreSQL that gives one snapshot, so the lines always add up to the closing balance.
    """
    _check_range(start, end, after, limit, chunk)
    if high_water is not None and (not _is_count(high_water) or (after and after[2] != high_water)):
        raise ValidationError(
            "high_water must be a transfer id (0 or more), the cursor's if one is given",
            field="high_water",
        )
    account = load_account(session, account_id)
    if after is not None:
        high_water = after[2]
    elif high_water is None:
        high_water = high_water_at(session, None)
    opening = _as_of_end_of(session, account_id, start - timedelta(days=1), high_water)
    closing = _as_of_end_of(session, account_id, end, high_water)
    first = opening if after is None else _through(session, account_id, after)
    lines = _lines(session, account, start, end, first, after, limit, chunk, high_water)
    return Statement(
        account,
        start,
        end,
        to_balance(account, opening),
        to_balance(account, closing),
        high_water,
        lines,
    )


def high_water_at(session: Session, at: datetime | None) -> int:
    """The last transfer created at or before `at` (aware), or the last one of all (None); 0 when
    there is none. created_at never goes back with id order, so this is an id prefix."""
    if at is None:
        return int(session.scalar(select(ChainHead.last_transfer_id)) or 0)
    if not isinstance(at, datetime) or at.tzinfo is None:
        raise ValidationError("as of needs a timezone-aware time", field="as_of")
    last = session.scalar(select(func.max(Transfer.id)).where(Transfer.created_at <= at))
    return int(last or 0)


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_range(start: object, end: object, after: object, limit: object, chunk: object) -> None:
    def is_date(value: object) -> bool:
        return isinstance(value, date) and not isinstance(value, datetime)

    if not is_date(start) or not is_date(end) or not date.min < start <= end:
        raise ValidationError("a statement needs two dates, start <= end", field="start")
    if after is not None and not (
        isinstance(after, tuple)
        and len(after) == 3
        and is_date(after[0])
        and all(isinstance(v, int) and not isinstance(v, bool) for v in after[1:])
        and start <= after[0] <= end
        and after[1] <= after[2]
    ):
        raise ValidationError("cursor is not one of this statement's lines", field="after")
    for name, value, optional in (("limit", limit, True), ("chunk", chunk, False)):
        if (value is not None or not optional) and (not isinstance(value, int) or value < 1):
            raise ValidationError(f"{name} must be a positive integer", field=name)


def _written_after(
    session: Session, account_id: int, high_water: int, through: date
) -> rules.Balances:
    """What entries newer than the high-water mark added up to `through`. Usually nothing: a
    primary-key range scan over the few transfers written since the statement began."""
    b = rules.Balances()
    rows = session.execute(
        select(Entry.side, Entry.pending_delta, Entry.posted_delta).where(
            Entry.account_id == account_id,
            Entry.transfer_id > high_water,
            Entry.effective_date <= through,
        )
    )
    for side, pending_delta, posted_delta in rows:
        b = b.moved(side, pending_delta, posted_delta)
    return b


def _as_of_end_of(session: Session, account_id: int, day: date, high_water: int) -> rules.Balances:
    return days_through(session, account_id, day) - _written_after(
        session, account_id, high_water, day
    )


def _through(session: Session, account_id: int, cursor: Cursor) -> rules.Balances:
    """Balances after every entry up to and including the cursor, in statement order."""
    day, transfer_id, high_water = cursor
    b = _as_of_end_of(session, account_id, day - timedelta(days=1), high_water)
    same_day = session.execute(
        select(Entry.side, Entry.pending_delta, Entry.posted_delta).where(
            Entry.account_id == account_id,
            Entry.effective_date == day,
            Entry.transfer_id <= transfer_id,
        )
    )
    for side, pending_delta, posted_delta in same_day:
        b = b.moved(side, pending_delta, posted_delta)
    return b


def _lines(
    session: Session,
    account: Account,
    start: date,
    end: date,
    running: rules.Balances,
    after: Cursor | None,
    limit: int | None,
    chunk: int,
    high_water: int,
) -> Iterator[StatementLine]:
    running_balance = to_balance(account, running)
    sign = 1 if running_balance.normal_side == "credit" else -1
    emitted = 0
    while limit is None or emitted < limit:
        size = chunk if limit is None else min(chunk, limit - emitted)
        stmt = (
            select(
                Entry.side,
                Entry.effective_date,
                Entry.pending_delta,
                Entry.posted_delta,
                Transfer.id,
                Transfer.created_at,
                Transfer.type,
                Transfer.code,
                Transfer.debit_account_id,
                Transfer.credit_account_id,
                Transfer.ref_type,
                Transfer.ref_id,
                Transfer.memo,
                Transfer.key,
                Transfer.pending_id,
                Transfer.reverses_id,
            )
            .join(Transfer, Transfer.id == Entry.transfer_id)
            .where(
                Entry.account_id == account.id,
                Entry.effective_date <= end,
                Entry.transfer_id <= high_water,
            )
            .order_by(Entry.effective_date, Entry.transfer_id)
            .limit(size)
        )
        if after is None:
            stmt = stmt.where(Entry.effective_date >= start)
        else:
            stmt = stmt.where(
                or_(
                    Entry.effective_date > after[0],
                    and_(Entry.effective_date == after[0], Entry.transfer_id > after[1]),
                )
            )
        # Plain rows, not ORM objects: nothing piles up in the session while streaming.
        rows = session.execute(stmt).all()
        for t in rows:
            running = running.moved(t.side, t.pending_delta, t.posted_delta)
            line_sign = sign if t.side == "credit" else -sign
            after_balance = to_balance(account, running)
            yield StatementLine(
                transfer_id=t.id,
                effective_date=t.effective_date,
                created_at=t.created_at,
                type=t.type,
                code=t.code,
                side=t.side,
                counter_account_id=(
                    t.debit_account_id if t.side == "credit" else t.credit_account_id
                ),
                amount=line_sign * t.posted_delta,
                pending_change=line_sign * t.pending_delta,
                balance=after_balance.posted,
                available=after_balance.available,
                ref_type=t.ref_type,
                ref_id=t.ref_id,
                memo=t.memo,
                key=t.key,
                pending_id=t.pending_id,
                reverses_id=t.reverses_id,
                cursor=(t.effective_date, t.id, high_water),
            )
            after = (t.effective_date, t.id, high_water)
        emitted += len(rows)
        if len(rows) < size:
            return
