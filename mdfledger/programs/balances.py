"""Where a partner's money stands in a program, and each program's utilisation. Read-only.

Every figure comes from the ledger: the partner's fund accounts' balances and their transfers
grouped by code, so the breakdown always adds up to what the journal says.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from mdfledger.actor import Actor
from mdfledger.auth.scope import partner_scope, scoped
from mdfledger.clock import ensure_utc, utcnow
from mdfledger.errors import Forbidden, NotFound
from mdfledger.ledger.commands import is_id
from mdfledger.ledger.models import Account, Entry, Transfer
from mdfledger.programs import rules
from mdfledger.programs.funds import today
from mdfledger.programs.models import Fund, Partner, Program
from mdfledger.programs.service import get_partner, get_program


@dataclass(frozen=True, slots=True)
class FundLine:
    """One period's fund: what came in, what is left, until when."""

    fund_id: int
    period_label: str
    period_start: date
    period_end: date
    available_until: date
    received: int  # allocated + accrued, net of corrections
    reserved: int
    available: int
    expired: int
    live: bool  # still usable today


@dataclass(frozen=True, slots=True)
class Expiring:
    amount: int
    on: date  # the last day the money can be used
    period_label: str


@dataclass(slots=True)
class Breakdown:
    """A partner's money in one program, in minor units of `currency`.

    allocated + accrued = reserved + approved + expired + available + (unswept: lapsed funds
    the expiry run has not forfeited yet), and each figure is read from the journal.
    """

    program_id: int
    program_code: str
    program_name: str
    partner_id: int
    currency: str
    allocated: int = 0
    accrued: int = 0
    reserved: int = 0
    approved: int = 0
    paid: int = 0
    expired: int = 0
    available: int = 0
    awaiting_expiry: int = 0  # past its last day, forfeited by the next expiry run
    expiring_next: Expiring | None = None
    funds: list[FundLine] = field(default_factory=list)

    @property
    def received(self) -> int:
        return self.allocated + self.accrued

    @property
    def utilisation_bp(self) -> int | None:
        """Approved as a share of what the partner received, in basis points."""
        return self.approved * rules.BASIS_POINTS // self.received if self.received > 0 else None


def _net_by_code(session: Session, account_ids: list[int]) -> dict[tuple[int, str], int]:
    """Per fund account and transfer code, the net posted amount into the fund (credit +)."""
    if not account_ids:
        return {}
    signed = case(
        (Transfer.credit_account_id == Entry.account_id, Transfer.amount), else_=-Transfer.amount
    )
    rows = session.execute(
        select(Entry.account_id, Transfer.code, func.sum(signed))
        .join(Transfer, Transfer.id == Entry.transfer_id)
        .where(Entry.account_id.in_(account_ids), Transfer.type.in_(("single", "post")))
        .group_by(Entry.account_id, Transfer.code)
    ).all()
    return {(account_id, code): int(total) for account_id, code, total in rows}


def _fill(b: Breakdown, funds: list[tuple[Fund, Account]], day: date, net: dict) -> Breakdown:
    by_account: dict[int, dict[str, int]] = defaultdict(dict)
    for (account_id, code), total in net.items():
        by_account[account_id][code] = total
    upcoming: dict[date, list] = defaultdict(lambda: [0, ""])
    for fund, account in funds:
        codes = by_account.get(account.id, {})
        allocated = sum(codes.get(c, 0) for c in rules.ALLOCATION_CODES)
        accrued = sum(codes.get(c, 0) for c in rules.ACCRUAL_CODES)
        expired = -codes.get(rules.FUND_EXPIRY, 0)
        # Whatever else left the fund posted is claims approved (claim.* codes, later issues).
        approved = -sum(
            v for c, v in codes.items() if c not in (*rules.ALLOCATION_CODES, *rules.ACCRUAL_CODES)
            and c != rules.FUND_EXPIRY
        )  # fmt: skip
        reserved = account.debits_pending
        left = account.credits_posted - account.debits_posted - account.debits_pending
        live = fund.available_until >= day
        b.allocated += allocated
        b.accrued += accrued
        b.expired += expired
        b.approved += approved
        b.reserved += reserved
        if live:
            b.available += left
            if left > 0:
                upcoming[fund.available_until][0] += left
                upcoming[fund.available_until][1] = fund.period_label
        else:
            b.awaiting_expiry += left
        b.funds.append(
            FundLine(
                fund.id,
                fund.period_label,
                fund.period_start,
                fund.period_end,
                fund.available_until,
                allocated + accrued,
                reserved,
                left,
                expired,
                live,
            )
        )
    if upcoming:
        first = min(upcoming)
        b.expiring_next = Expiring(upcoming[first][0], first, upcoming[first][1])
    b.funds.sort(key=lambda f: f.period_start)
    return b


def _paid(session: Session, program_id: int, partner_ids: list[int] | None) -> dict[int, int]:
    """Per partner, what left their claims-payable accounts as payouts (payout.* codes), net."""
    statement = select(Account.id, Account.partner_id).where(
        Account.kind == "claims_payable", Account.program_id == program_id
    )
    if partner_ids is not None:
        statement = statement.where(Account.partner_id.in_(partner_ids))
    owners = dict(session.execute(statement).all())
    paid: dict[int, int] = defaultdict(int)
    for (account_id, code), total in _net_by_code(session, list(owners)).items():
        if code.startswith(rules.PAYOUT_PREFIX):
            paid[owners[account_id]] -= total
    return paid


def _funds(session: Session, program_id: int, partner_ids: list[int] | None):
    statement = (
        select(Fund, Account)
        .join(Account, Account.id == Fund.account_id)
        .where(Fund.program_id == program_id)
    )
    if partner_ids is not None:
        statement = statement.where(Fund.partner_id.in_(partner_ids))
    return session.execute(statement.order_by(Fund.period_start)).all()


def partner_breakdown(
    session: Session,
    actor: Actor,
    partner_id: int,
    program_id: int,
    *,
    now: datetime | None = None,
) -> Breakdown:
    """One partner's money in one program (a partner user may only ask about their own)."""
    partner = get_partner(session, actor, partner_id)
    try:
        program = get_program(session, actor, program_id)
    except NotFound:
        # A partner still sees its money in a program that has closed since.
        program = session.get(Program, program_id) if is_id(program_id) else None
        has_funds = select(Fund.id).where(
            Fund.program_id == program_id, Fund.partner_id == partner.id
        )
        if program is None or session.scalar(has_funds.limit(1)) is None:
            raise
    funds = _funds(session, program.id, [partner.id])
    breakdown = Breakdown(program.id, program.code, program.name, partner.id, program.currency)
    net = _net_by_code(session, [account.id for _, account in funds])
    breakdown.paid = _paid(session, program.id, [partner.id]).get(partner.id, 0)
    return _fill(breakdown, list(funds), today(program, ensure_utc(now or utcnow())), net)


def partner_breakdowns(
    session: Session, actor: Actor, partner_id: int, *, now: datetime | None = None
) -> list[Breakdown]:
    """A partner's money in every program they have funds in, by program name."""
    partner = get_partner(session, actor, partner_id)
    program_ids = session.scalars(
        select(Fund.program_id).where(Fund.partner_id == partner.id).distinct()
    ).all()
    out = [partner_breakdown(session, actor, partner.id, pid, now=now) for pid in program_ids]
    return sorted(out, key=lambda b: b.program_name)


@dataclass(slots=True)
class Utilisation:
    """A program's money: its budget and the sum of every partner's breakdown."""

    program_id: int
    currency: str
    budget_funded: int  # the vendor's funding, net
    budget_unallocated: int  # still in the budget
    totals: Breakdown
    partners: list[tuple[Partner, Breakdown]]


def program_utilisation(
    session: Session, actor: Actor, program_id: int, *, now: datetime | None = None
) -> Utilisation:
    """Every partner's breakdown in a program, and the totals. Staff only: partners see their
    own line via partner_breakdown."""
    program = get_program(session, actor, program_id)
    if partner_scope(actor) is not None:
        raise Forbidden("partners see their own funds only")
    day = today(program, ensure_utc(now or utcnow()))
    funds = _funds(session, program.id, None)
    net = _net_by_code(session, [account.id for _, account in funds])
    grouped: dict[int, list[tuple[Fund, Account]]] = defaultdict(list)
    for fund, account in funds:
        grouped[fund.partner_id].append((fund, account))
    partners: dict[int, Partner] = {}
    ids = sorted(grouped)
    for i in range(0, len(ids), 1000):  # only the partners with funds here, a chunk at a time
        chunk = select(Partner).where(Partner.id.in_(ids[i : i + 1000]))
        partners.update((p.id, p) for p in session.scalars(scoped(chunk, Partner.id, actor)))
    paid = _paid(session, program.id, None)
    lines = []
    totals = Breakdown(program.id, program.code, program.name, 0, program.currency)
    for partner_id, rows in grouped.items():
        b = _fill(
            Breakdown(program.id, program.code, program.name, partner_id, program.currency),
            rows, day, net,
        )  # fmt: skip
        b.paid = paid.get(partner_id, 0)
        lines.append((partners[partner_id], b))
        for name in (
            "allocated", "accrued", "reserved", "approved", "paid", "expired", "available",
            "awaiting_expiry",
        ):  # fmt: skip
            setattr(totals, name, getattr(totals, name) + getattr(b, name))
        soonest = b.expiring_next
        if soonest and (totals.expiring_next is None or soonest.on < totals.expiring_next.on):
            totals.expiring_next = soonest
        elif soonest and totals.expiring_next and soonest.on == totals.expiring_next.on:
            totals.expiring_next = Expiring(
                totals.expiring_next.amount + soonest.amount, soonest.on, soonest.period_label
            )
    budget = session.get(Account, program.budget_account_id)
    assert budget is not None
    lines.sort(key=lambda pair: pair[0].name)
    return Utilisation(
        program.id,
        program.currency,
        budget.credits_posted - budget.debits_posted + totals.allocated,
        budget.credits_posted - budget.debits_posted - budget.debits_pending,
        totals,
        lines,
    )
