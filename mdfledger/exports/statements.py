"""Statement history for a partner, a program or one account, for a range of effective dates
and as of a moment (the books as they stood then: only transfers created up to it). Read-only.

`prepare` checks the question for the actor and fixes what the statement shows: the accounts
(a partner's, optionally in one program; a program's own funding, budget, accrual and expiry
accounts; or one account) and the ledger's high-water mark (the last transfer it includes).
Then `sections` streams every account's opening balance, movements and closing balance (the
files), and `read_page` gives a bounded page of them with a cursor to continue (pages and API).
Every figure comes from mdfledger.ledger.statements, so opening + movements = closing and the
closing balance is the ledger's own balance as of the end date.

Read it in a read-only session: on PostgreSQL that is one snapshot for the whole statement.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from itertools import islice
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mdfledger.actor import Actor
from mdfledger.auth.scope import partner_scope
from mdfledger.clock import ensure_utc, utcnow
from mdfledger.errors import NotFound, ValidationError
from mdfledger.exports import statement_rules as rules
from mdfledger.exports.rules import parse_as_of
from mdfledger.ledger.balances import Balance
from mdfledger.ledger.commands import is_id
from mdfledger.ledger.models import Account, AccountKind, Entry
from mdfledger.ledger.statements import StatementLine, high_water_at, statement
from mdfledger.programs.models import Fund, Program
from mdfledger.programs.service import get_partner

K = AccountKind
_PARTNER_KINDS = (K.PARTNER_FUND, K.CLAIMS_PAYABLE, K.PAYOUTS_IN_TRANSIT, K.SETTLED)
_PROGRAM_KINDS = (K.FUNDING, K.BUDGET, K.ACCRUAL_SOURCE, K.EXPIRED)
MAX_PAGE_LINES = 1000


@dataclass(frozen=True, slots=True)
class AccountInfo:
    id: int
    name: str
    kind: str
    code: str
    currency: str
    program_id: int | None
    partner_id: int | None


@dataclass(frozen=True)
class Prepared:
    """A statement's question, checked: what `sections` and `read_page` show."""

    subject_type: str  # "partner", "program" or "account"
    subject_id: int
    subject_label: str  # "Partner ACME (Acme Networks), program MDF27"
    subject_name: str  # for file names: "partner-ACME-MDF27"
    program_id: int | None  # a partner's statement narrowed to one program
    start: date
    end: date
    as_of: datetime  # the moment shown (never later than when it was asked)
    generated_at: datetime
    high_water: int  # the last transfer included
    accounts: tuple[AccountInfo, ...]

    @property
    def header(self) -> rules.Header:
        return rules.Header(
            self.subject_label, self.start, self.end, self.as_of, self.generated_at,
            self.high_water,
        )  # fmt: skip

    def params(self) -> dict[str, Any]:
        """JSON-serialisable parameters that give this statement again (export jobs store
        them): the moment is fixed, so a job run later shows the same books."""
        return {
            "partner_id": self.subject_id if self.subject_type == "partner" else None,
            "program_id": self.subject_id if self.subject_type == "program" else self.program_id,
            "account_id": self.subject_id if self.subject_type == "account" else None,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "as_of": self.as_of.isoformat(),
            "name": self.subject_name,
        }


@dataclass(frozen=True, slots=True)
class Row:
    """One movement with its business reference."""

    line: StatementLine
    reference: rules.Reference  # target already resolved ("fund" becomes its partner)
    counter_account: str
    description: str


@dataclass(frozen=True)
class Section:
    """One account: opening, movements (streamed once) and closing."""

    account: AccountInfo
    opening: Balance
    closing: Balance
    rows: Iterator[Row]


@dataclass(frozen=True)
class PageSection:
    account: AccountInfo
    opening: Balance
    closing: Balance
    brought_forward: int  # posted balance before this page's first line
    rows: list[Row]
    continued: bool  # the account's earlier lines were on earlier pages
    more: bool  # the account has more lines on the next page


@dataclass(frozen=True)
class StatementPage:
    statement: Prepared
    sections: list[PageSection]
    next: str | None  # pass as `after` for the next page; None: this was the last


# --- the question --------------------------------------------------------------------------------


def _day(value: object, field: str) -> date:
    if isinstance(value, datetime):
        raise ValidationError(f"{field} must be a date such as 2026-03-31", field=field)
    if isinstance(value, date):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValidationError(f"{field} must be a date such as 2026-03-31, not {value!r}", field=field)


def _id(value: object, field: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not is_id(value):
        raise ValidationError(f"{field} must be a positive whole number", field=field)
    return value  # type: ignore[return-value]


def _moment(value: object, now: datetime) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str) and len(value.strip()) == 10:
        value = _day(value, "as_of")
    try:
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise ValidationError(
                    "as of needs a time zone, e.g. 2026-03-31T18:00Z", field="as_of"
                )
            moment = ensure_utc(value)
        elif isinstance(value, date):
            if value >= now.date():
                return now  # the end of today or of a day to come: now
            moment = parse_as_of(value.isoformat())
        elif isinstance(value, str) and len(value) <= 40:
            moment = parse_as_of(value.replace("Z", "+00:00").replace("z", "+00:00"))
        else:
            raise ValidationError("as of must be a date or an ISO 8601 time", field="as_of")
    except OverflowError:
        raise ValidationError("as of is out of range", field="as_of") from None
    return min(moment, now)  # a moment still to come shows the books as they are now


def _check_dates(start: date, end: date) -> None:
    if start > end:
        raise ValidationError(
            f"the statement would start ({start.isoformat()}) after it ends"
            f" ({end.isoformat()}); choose a start on or before the end",
            field="start",
        )
    if start == date.min:
        raise ValidationError("start must be a real date", field="start")
    if (end - start).days >= rules.MAX_DAYS:
        raise ValidationError(
            f"a statement covers at most {rules.MAX_DAYS} days; the opening balance carries"
            " everything before its start",
            field="end",
        )


def _info(a: Account) -> AccountInfo:
    return AccountInfo(a.id, a.name, a.kind, a.code, a.currency, a.program_id, a.partner_id)


def _slug(*parts: str) -> str:
    return "-".join(re.sub(r"[^A-Za-z0-9_.]+", "_", p).strip("_") or "x" for p in parts)


def prepare(
    session: Session,
    actor: Actor,
    *,
    partner_id: object = None,
    program_id: object = None,
    account_id: object = None,
    start: object,
    end: object,
    as_of: object = None,
    now: datetime | None = None,
) -> Prepared:
    """Check a statement's question for `actor` and fix its accounts and high-water mark.

    Subjects: `account_id` alone; or `partner_id` (optionally narrowed to `program_id`); or
    `program_id` alone (the program's own accounts). A partner user reads their own partner
    only: no subject means their partner, `program_id` narrows it, another partner's partner
    or account is not found. `as_of` (a time, or a date meaning its end, UTC) defaults to now.
    """
    now = ensure_utc(now or utcnow())
    partner_id = _id(partner_id, "partner_id")
    program_id = _id(program_id, "program_id")
    account_id = _id(account_id, "account_id")
    start_day, end_day = _day(start, "start"), _day(end, "end")
    _check_dates(start_day, end_day)
    moment = _moment(as_of, now)
    own = partner_scope(actor)
    if own is not None and account_id is None and partner_id is None:
        partner_id = own  # "my statement"

    if account_id is not None:
        if partner_id is not None or program_id is not None:
            raise ValidationError(
                "choose an account, or a partner and program, not both", field="account_id"
            )
        account = session.get(Account, account_id)
        if account is None or (own is not None and account.partner_id != own):
            raise NotFound(f"account {account_id} not found", field="account_id")
        accounts = [account]
        subject = ("account", account.id, f"Account {account.id}: {account.name}")
        name = _slug("account", str(account.id))
    elif partner_id is not None:
        partner = get_partner(session, actor, partner_id)
        query = select(Account).where(Account.partner_id == partner.id)
        label, name = f"Partner {partner.code} ({partner.name})", _slug("partner", partner.code)
        if program_id is not None:
            program = session.get(Program, program_id)
            if program is None:
                raise NotFound(f"program {program_id} not found", field="program_id")
            query = query.where(Account.program_id == program.id)
            label += f", program {program.code}"
            name = _slug("partner", partner.code, program.code)
        accounts = list(session.scalars(query))
        order = {k.value: i for i, k in enumerate(_PARTNER_KINDS)}
        accounts.sort(key=lambda a: (a.program_id or 0, order.get(a.kind, 99), a.id))
        subject = ("partner", partner.id, label)
    elif program_id is not None:
        program = session.get(Program, program_id)
        if program is None:
            raise NotFound(f"program {program_id} not found", field="program_id")
        # The program's own accounts carry no program_id (they are opened before the program
        # row has one); the program row names them.
        ids = [
            program.funding_account_id, program.budget_account_id,
            program.accrual_account_id, program.expired_account_id,
        ]  # fmt: skip
        found = {a.id: a for a in session.scalars(select(Account).where(Account.id.in_(ids)))}
        accounts = [found[i] for i in ids if i in found]
        subject = ("program", program.id, f"Program {program.code} ({program.name})")
        name = _slug("program", program.code)
    else:
        raise ValidationError(
            "choose a partner, a program or an account for the statement", field="partner_id"
        )

    if moment is None:
        high_water, shown = high_water_at(session, None), now
    else:
        high_water, shown = high_water_at(session, moment), moment
        # The books as they stood then: accounts opened later were not in them yet.
        accounts = [a for a in accounts if a.created_at <= moment]
    return Prepared(
        subject_type=subject[0],
        subject_id=subject[1],
        subject_label=subject[2],
        subject_name=name,
        program_id=program_id if subject[0] == "partner" else None,
        start=start_day,
        end=end_day,
        as_of=shown,
        generated_at=now,
        high_water=high_water,
        accounts=tuple(_info(a) for a in accounts),
    )


def from_params(
    session: Session, actor: Actor, params: Mapping[str, Any], *, now: datetime | None = None
) -> Prepared:
    """`prepare` from a mapping of strings or values (query strings, a stored job's params)."""
    return prepare(
        session, actor,
        partner_id=params.get("partner_id"), program_id=params.get("program_id"),
        account_id=params.get("account_id"), start=params.get("start"), end=params.get("end"),
        as_of=params.get("as_of"), now=now,
    )  # fmt: skip


def line_count(session: Session, prepared: Prepared) -> int:
    """How many movements the statement has (one index range per account)."""
    if not prepared.accounts:
        return 0
    return int(
        session.scalar(
            select(func.count()).where(
                Entry.account_id.in_([a.id for a in prepared.accounts]),
                Entry.effective_date >= prepared.start,
                Entry.effective_date <= prepared.end,
                Entry.transfer_id <= prepared.high_water,
            )
        )
        or 0
    )


# --- the lines -----------------------------------------------------------------------------------


class _Lookups:
    """Counter-account names and fund owners met while streaming: memory in accounts, not in
    lines."""

    def __init__(self, session: Session, prepared: Prepared) -> None:
        self.session = session
        self.names = {a.id: a.name for a in prepared.accounts}
        self.fund_partner: dict[int, int | None] = {}

    def name(self, account_id: int) -> str:
        if account_id not in self.names:
            found = self.session.scalar(select(Account.name).where(Account.id == account_id))
            self.names[account_id] = found or f"account {account_id}"
        return self.names[account_id]

    def target(self, target: tuple[str, int] | None) -> tuple[str, int] | None:
        """A fund has no page of its own: its partner's page shows it."""
        if target is None or target[0] != "fund":
            return target
        if target[1] not in self.fund_partner:
            owner = self.session.scalar(select(Fund.partner_id).where(Fund.id == target[1]))
            self.fund_partner[target[1]] = owner
        owner = self.fund_partner[target[1]]
        return ("partner", owner) if owner is not None else None

    def row(self, line: StatementLine) -> Row:
        ref = rules.reference(
            code=line.code, type=line.type, ref_type=line.ref_type, ref_id=line.ref_id,
            reverses_id=line.reverses_id,
        )  # fmt: skip
        return Row(
            line,
            replace(ref, target=self.target(ref.target)),
            self.name(line.counter_account_id),
            rules.description(line.memo),
        )


def sections(session: Session, prepared: Prepared, *, chunk: int = 1000) -> Iterator[Section]:
    """Every account of the statement in turn, its lines streamed in keyset chunks. Consume
    each section's rows before taking the next section."""
    lookups = _Lookups(session, prepared)
    for account in prepared.accounts:
        st = statement(
            session, account.id, prepared.start, prepared.end, chunk=chunk,
            high_water=prepared.high_water,
        )  # fmt: skip
        rows = (lookups.row(line) for line in st.lines)
        yield Section(account, st.opening, st.closing, rows)


# Cursors for pages: "<account id>.<high water>" starts an account; with ".<date>.<transfer id>"
# it continues after that line. The high-water mark keeps later pages on the same books.
_CURSOR = re.compile(r"^(\d{1,18})\.(\d{1,18})(?:\.(\d{4}-\d{2}-\d{2})\.(\d{1,18}))?$")


def _cursor(account_id: int, high_water: int, line: StatementLine | None = None) -> str:
    if line is None:
        return f"{account_id}.{high_water}"
    return f"{account_id}.{high_water}.{line.effective_date.isoformat()}.{line.transfer_id}"


def read_page(
    session: Session, prepared: Prepared, *, after: str | None = None, limit: int = 200
) -> StatementPage:
    """Up to `limit` lines of the statement, account after account, and the cursor to go on.
    Every section carries its account's opening and closing balances."""
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_PAGE_LINES:
        raise ValidationError(f"limit must be 1 to {MAX_PAGE_LINES}", field="limit")
    index, position = 0, None
    if after:
        match = _CURSOR.match(after) if isinstance(after, str) else None
        ids = [a.id for a in prepared.accounts]
        if match is None or int(match[1]) not in ids or int(match[2]) > prepared.high_water:
            raise ValidationError("this cursor is not one of this statement's pages", field="after")
        index = ids.index(int(match[1]))
        prepared = replace(prepared, high_water=int(match[2]))
        if match[3]:
            try:
                day = date.fromisoformat(match[3])
            except ValueError:
                raise ValidationError("this cursor is not valid", field="after") from None
            if not prepared.start <= day <= prepared.end:
                raise ValidationError("this cursor is not valid", field="after")
            position = (day, int(match[4]), prepared.high_water)
    lookups = _Lookups(session, prepared)
    out: list[PageSection] = []
    budget, next_cursor = limit, None
    for i, account in enumerate(prepared.accounts[index:], start=index):
        if budget == 0:
            next_cursor = _cursor(account.id, prepared.high_water)
            break
        after_line = position if i == index else None
        if after_line is not None and after_line[1] > after_line[2]:
            raise ValidationError("this cursor is not valid", field="after")
        st = statement(
            session, account.id, prepared.start, prepared.end, after=after_line,
            limit=budget + 1, high_water=None if after_line else prepared.high_water,
        )  # fmt: skip
        lines = list(islice(st.lines, budget + 1))
        more = len(lines) > budget
        rows = [lookups.row(line) for line in lines[:budget]]
        forward = st.opening.posted
        if after_line is not None and rows:
            forward = rows[0].line.balance - rows[0].line.amount
        out.append(
            PageSection(
                account, st.opening, st.closing, forward, rows, after_line is not None, more
            )
        )
        budget -= len(rows)
        if more:
            next_cursor = _cursor(account.id, prepared.high_water, rows[-1].line)
            break
    return StatementPage(prepared, out, next_cursor)
