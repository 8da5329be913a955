"""Moving program money: budgets, allocations and their corrections, and expiry. Never commits.

A partner's money in a program sits in one fund per fiscal period (a `partner_fund` ledger
account that may not be overdrawn), so each period's funds can expire on their own date.
Corrections are new transfers: an adjustment up or down, or a reversal naming what it undoes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mdfledger import audit, engagement, ledger
from mdfledger.actor import Actor
from mdfledger.auth.scope import MANAGERS, require_role
from mdfledger.clock import ensure_utc, utcnow
from mdfledger.errors import Conflict, NotFound, ValidationError
from mdfledger.fields import clean_text, positive_amount
from mdfledger.ledger import AccountKind, NewTransfer, TransferRecord
from mdfledger.ledger.models import Account, Entry, Transfer
from mdfledger.money import format_amount
from mdfledger.programs import rules
from mdfledger.programs.models import (
    Allocation,
    AllocationKind,
    Fund,
    Partner,
    PartnerStatus,
    Program,
    ProgramStatus,
)
from mdfledger.programs.service import account_name, get_partner, get_program

REASON_MAX = 500


def today(program: Program, now: datetime | None = None) -> date:
    return rules.business_date(ensure_utc(now or utcnow()), program.timezone)


def period_of(program: Program, day: date) -> rules.Period:
    return rules.period_containing(day, program.fiscal_start_month, program.period_months)


def fund_for(
    session: Session,
    actor: Actor,
    program: Program,
    partner: Partner,
    day: date,
    *,
    now: datetime | None = None,
) -> Fund:
    """The partner's fund for the period containing `day`, opened on first use."""
    period = period_of(program, day)
    fund = session.scalar(
        select(Fund).where(
            Fund.program_id == program.id,
            Fund.partner_id == partner.id,
            Fund.period_start == period.start,
        )
    )
    if fund is not None:
        return fund
    account = ledger.open_account(
        session, actor,
        key=f"program:{program.code}:partner:{partner.code}:fund:{period.start.isoformat()}",
        name=account_name(f"{partner.name}: {program.name} {period.label}"),
        kind=AccountKind.PARTNER_FUND, currency=program.currency,
        program_id=program.id, partner_id=partner.id,
        debits_must_not_exceed_credits=True, now=now,
    )  # fmt: skip
    fund = Fund(
        program_id=program.id,
        partner_id=partner.id,
        period_start=period.start,
        period_end=period.end,
        period_label=period.label,
        available_until=rules.available_until(period, program.expiry_policy, program.rollover_days),
        account_id=account.id,
    )
    session.add(fund)
    session.flush()
    return fund


def _key(prefix: str, key: str | None) -> str:
    if key is None:
        return f"{prefix}:{uuid.uuid4().hex}"
    return f"{prefix}:{clean_text(key, 'idempotency_key', 150)}"


def _replay(session: Session, key: str | None, full_key: str) -> bool:
    """A retry of a money movement that already happened: the ledger answers it (same fields:
    the original; different: a conflict naming the field), and the state checks that held the
    first time — an open program, an active partner, a live period — are not asked again."""
    if key is None:
        return False
    return session.scalar(select(Transfer.id).where(Transfer.key == full_key)) is not None


def _reason(reason: object) -> str:
    return clean_text(reason, "reason", REASON_MAX)


def open_program(program: Program) -> None:
    """New funds come only from an active program."""
    if program.status != ProgramStatus.ACTIVE:
        raise Conflict(f"program {program.code} is closed: it takes no new funds", field="program")


def _money_moved(
    session: Session, actor: Actor, command: NewTransfer, *, now: datetime | None, short: str
) -> TransferRecord:
    """Run one transfer; an overdrawn budget or fund becomes a sentence naming the account."""
    try:
        return ledger.transfer(session, actor, command, now=now)
    except ledger.LimitExceeded:
        have = ledger.balance(session, command.debit_account_id)
        raise Conflict(
            f"{short} has {format_amount(have.available, have.currency)} {have.currency}"
            f" available; {format_amount(command.amount, have.currency)} is more",
            field="amount",
            available=have.available,
        ) from None


def fund_budget(
    session: Session,
    actor: Actor,
    program_id: int,
    amount: int,
    *,
    reason: str,
    key: str | None = None,
    now: datetime | None = None,
) -> TransferRecord:
    """Add `amount` to the program's budget (negative takes unallocated budget back)."""
    require_role(actor, *MANAGERS)
    program = get_program(session, actor, program_id)
    if not isinstance(amount, int) or isinstance(amount, bool) or amount == 0:
        raise ValidationError("the budget change must be a non-zero amount", field="amount")
    positive_amount(abs(amount), "amount")
    full_key = _key("budget", key)
    if amount > 0 and not _replay(session, key, full_key):
        open_program(program)
    source, target = program.funding_account_id, program.budget_account_id
    if amount < 0:
        source, target = target, source
    command = NewTransfer(
        full_key, source, target, abs(amount), rules.BUDGET_FUNDING,
        ref_type="program", ref_id=str(program.id), memo=_reason(reason),
    )  # fmt: skip
    record = _money_moved(session, actor, command, now=now, short=f"the {program.code} budget")
    if not record.replayed:
        shown = audit.money(abs(amount), program.currency)
        audit.record(
            session, actor, "budget.fund" if amount > 0 else "budget.withdraw",
            object_type="program", object_id=program.id,
            summary=(
                f"Funded the {program.code} budget with {shown}" if amount > 0
                else f"Took {shown} back from the {program.code} budget"
            ) + f": {command.memo}",
            after={"amount": format_amount(amount, program.currency),
                   "currency": program.currency, "reason": command.memo,
                   "transfer_id": record.id},
        )  # fmt: skip
    return record


def allocate(
    session: Session,
    actor: Actor,
    program_id: int,
    partner_id: int,
    amount: int,
    *,
    reason: str,
    day: date | None = None,
    key: str | None = None,
    import_id: int | None = None,
    now: datetime | None = None,
) -> Allocation:
    """Move `amount` from the program's budget into the partner's fund for `day`'s period.

    Never more than the budget holds (the ledger refuses). A replayed `key` returns the
    original allocation.
    """
    require_role(actor, *MANAGERS)
    program = get_program(session, actor, program_id)
    partner = get_partner(session, actor, partner_id)
    positive_amount(amount, "amount")
    reason = _reason(reason)
    full_key = _key("allocation", key)
    replay = _replay(session, key, full_key)
    if not replay:
        open_program(program)
        _receives_funds(partner)
    now = ensure_utc(now or utcnow())
    current = today(program, now)
    day = current if day is None else day
    # Checked before the fund is opened: a refused allocation used to leave an empty fund (and
    # its ledger account) for the expired period behind in the session.
    period = period_of(program, day)
    last_day = rules.available_until(period, program.expiry_policy, program.rollover_days)
    if last_day < current and not replay:
        raise ValidationError(
            f"{period.label} funds expired after {last_day.isoformat()};"
            " allocate to a current or future period",
            field="period",
        )
    # A savepoint, so that when the ledger refuses (more than the budget holds) the fund opened
    # for this allocation goes too, as it does when any other check fails.
    with session.begin_nested():
        fund = fund_for(session, actor, program, partner, day, now=now)
        command = NewTransfer(
            full_key, program.budget_account_id, fund.account_id, amount,
            rules.ALLOCATION, ref_type="partner", ref_id=str(partner.id), memo=reason,
        )  # fmt: skip
        record = _money_moved(session, actor, command, now=now, short=f"the {program.code} budget")
    allocation = _record_allocation(
        session, actor, record, fund, AllocationKind.ALLOCATION, amount, reason, import_id, now
    )
    if not record.replayed:
        announce(session, "fund.allocated", program, fund, amount, now=now)
        audit.record(
            session, actor, "allocation.create", object_type="allocation",
            object_id=allocation.id, subject_partner_id=partner.id,
            summary=f"Allocated {audit.money(amount, program.currency)} to {partner.code} for"
            f" {fund.period_label} from the {program.code} budget: {reason}",
            after=_audited(allocation, program, fund),
        )  # fmt: skip
    return allocation


def adjust_fund(
    session: Session,
    actor: Actor,
    fund_id: int,
    delta: int,
    *,
    reason: str,
    key: str | None = None,
    now: datetime | None = None,
) -> Allocation:
    """Correct a fund up (more budget in) or down (unspent funds back to the budget)."""
    require_role(actor, *MANAGERS)
    fund = _fund(session, fund_id)
    program = get_program(session, actor, fund.program_id)
    if not isinstance(delta, int) or isinstance(delta, bool) or delta == 0:
        raise ValidationError("an adjustment is a non-zero amount", field="amount")
    positive_amount(abs(delta), "amount")
    reason = _reason(reason)
    full_key = _key("adjustment", key)
    if delta > 0 and not _replay(session, key, full_key):
        # More money into a fund is new funds: not from a closed program, not to a suspended
        # partner (as allocate refuses), and not into a fund past its last usable day.
        open_program(program)
        partner = session.get(Partner, fund.partner_id)
        assert partner is not None
        _receives_funds(partner)
        if fund.available_until < today(program, now):
            raise ValidationError(
                f"{fund.period_label} funds expired after {fund.available_until.isoformat()};"
                " allocate to a current or future period instead",
                field="amount",
            )
    source, target = program.budget_account_id, fund.account_id
    short = f"the {program.code} budget"
    if delta < 0:
        source, target = target, source
        short = f"the {fund.period_label} fund"
    command = NewTransfer(
        full_key, source, target, abs(delta), rules.ALLOCATION_ADJUSTMENT,
        ref_type="partner", ref_id=str(fund.partner_id), memo=reason,
    )  # fmt: skip
    record = _money_moved(session, actor, command, now=now, short=short)
    allocation = _record_allocation(
        session, actor, record, fund, AllocationKind.ADJUSTMENT, delta, reason, None, now
    )
    if not record.replayed:
        partner_code = session.scalar(select(Partner.code).where(Partner.id == fund.partner_id))
        audit.record(
            session, actor, "allocation.adjust", object_type="allocation",
            object_id=allocation.id, subject_partner_id=fund.partner_id,
            summary=f"Adjusted {partner_code}'s {fund.period_label} fund in {program.code}"
            f" {'up' if delta > 0 else 'down'} by {audit.money(abs(delta), program.currency)}:"
            f" {reason}",
            after=_audited(allocation, program, fund),
        )  # fmt: skip
    return allocation


def reverse_allocation(
    session: Session,
    actor: Actor,
    allocation_id: int,
    *,
    reason: str,
    key: str | None = None,
    now: datetime | None = None,
) -> Allocation:
    """Undo an allocation or adjustment with a reversing transfer; at most once."""
    require_role(actor, *MANAGERS)
    original = (
        session.get(Allocation, allocation_id) if ledger.commands.is_id(allocation_id) else None
    )
    if original is None:
        raise NotFound(f"allocation {allocation_id} not found")
    if original.kind == AllocationKind.REVERSAL:
        raise Conflict("a reversal cannot itself be reversed; allocate again instead")
    reason = _reason(reason)
    full_key = _key("reversal", key)
    done = session.scalar(select(Allocation).where(Allocation.reverses_id == original.id))
    if done is not None:
        if (
            _replay(session, key, full_key)
            and session.get(Transfer, done.transfer_id).key == full_key
        ):
            return done  # a retry of this very reversal
        raise Conflict(f"allocation {original.id} was already reversed")
    command = ledger.Reverse(full_key, original.transfer_id, memo=reason)
    try:
        record = ledger.transfer(session, actor, command, now=now)
    except ledger.LimitExceeded:
        if original.amount < 0:
            # Undoing a downward adjustment moves money from the budget back into the fund: it
            # is the budget that is short, not the fund (the message used to blame the fund).
            program = session.get(Program, original.program_id)
            assert program is not None
            budget = ledger.balance(session, program.budget_account_id)
            raise Conflict(
                f"the {program.code} budget has {format_amount(budget.available, budget.currency)}"
                f" {budget.currency} available; undoing this adjustment needs"
                f" {format_amount(-original.amount, budget.currency)}",
                field="amount",
                available=budget.available,
            ) from None
        raise Conflict(
            "the funds of this allocation were already used or reserved; adjust the fund down"
            " by what is left instead",
            field="amount",
        ) from None
    reversal = _record_allocation(
        session, actor, record, original.fund, AllocationKind.REVERSAL, -original.amount,
        reason, None, now, reverses_id=original.id,
    )  # fmt: skip
    if not record.replayed:
        program = session.get(Program, original.program_id)
        partner_code = session.scalar(select(Partner.code).where(Partner.id == original.partner_id))
        assert program is not None
        audit.record(
            session, actor, "allocation.reverse", object_type="allocation",
            object_id=reversal.id, subject_partner_id=original.partner_id,
            summary=f"Reversed {original.kind} #{original.id} of"
            f" {audit.money(original.amount, program.currency)} to {partner_code} for"
            f" {original.fund.period_label} in {program.code}: {reason}",
            after=_audited(reversal, program, original.fund),
        )  # fmt: skip
    return reversal


def _receives_funds(partner: Partner) -> None:
    if partner.status != PartnerStatus.ACTIVE:
        raise Conflict(
            f"partner {partner.code} is {partner.status}: it cannot receive funds", field="partner"
        )


def _record_allocation(
    session: Session,
    actor: Actor,
    record: TransferRecord,
    fund: Fund,
    kind: AllocationKind,
    amount: int,
    reason: str,
    import_id: int | None,
    now: datetime | None,
    *,
    reverses_id: int | None = None,
) -> Allocation:
    if record.replayed:
        existing = session.scalar(select(Allocation).where(Allocation.transfer_id == record.id))
        if existing is not None:
            return existing
    allocation = Allocation(
        kind=kind.value,
        program_id=fund.program_id,
        partner_id=fund.partner_id,
        fund_id=fund.id,
        amount=amount,
        reason=reason,
        transfer_id=record.id,
        import_id=import_id,
        actor=actor.label,
        created_at=ensure_utc(now or utcnow()),
        reverses_id=reverses_id,
    )
    session.add(allocation)
    session.flush()
    return allocation


def announce(
    session: Session,
    type: str,
    program: Program,
    fund: Fund,
    amount: int,
    *,
    now: datetime | None,
    **extra: object,
) -> None:
    """Tell the partner (engagement outbox, same transaction) that their funds changed."""
    engagement.emit(
        session, type, partner_id=fund.partner_id, program_id=program.id,
        data={"amount": amount, "currency": program.currency, "program": program.name,
              "program_code": program.code, "period": fund.period_label,
              "available_until": fund.available_until.isoformat(), **extra},
        now=now,
    )  # fmt: skip


def _audited(allocation: Allocation, program: Program, fund: Fund) -> dict[str, object]:
    """An allocation, adjustment or reversal as the audit log shows it."""
    return {
        "kind": allocation.kind, "program_id": program.id, "partner_id": allocation.partner_id,
        "fund_id": fund.id, "period": fund.period_label,
        "amount": format_amount(allocation.amount, program.currency),
        "currency": program.currency, "reason": allocation.reason,
        "transfer_id": allocation.transfer_id, "reverses_id": allocation.reverses_id,
        "import_id": allocation.import_id,
    }  # fmt: skip


def _fund(session: Session, fund_id: object) -> Fund:
    fund = session.get(Fund, fund_id) if ledger.commands.is_id(fund_id) else None
    if fund is None:
        raise NotFound(f"fund {fund_id} not found")
    return fund


# --- expiry --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExpiredFund:
    fund_id: int
    program_code: str
    partner_code: str
    period_label: str
    amount: int
    currency: str


@dataclass(frozen=True, slots=True)
class ExpiryRun:
    reservations_expired: int
    funds: list[ExpiredFund]
    requests_expired: int = 0  # approved fund requests never claimed by their deadline
    claims_expired: int = 0  # drafts and returned claims not submitted by their deadline


def run_expiry(session: Session, actor: Actor, *, now: datetime | None = None) -> ExpiryRun:
    """Period end: reservations past their claim deadline expire, then unspent funds past their
    last day are forfeited to the program's expired account. Safe to run any number of times."""
    require_role(actor, *MANAGERS)
    now = ensure_utc(now or utcnow())
    reservations = 0
    while batch := ledger.expire_overdue(session, actor, now=now):
        reservations += len(batch)
    return ExpiryRun(reservations, expire_funds(session, actor, now=now))


def expire_funds(
    session: Session, actor: Actor, *, now: datetime | None = None
) -> list[ExpiredFund]:
    require_role(actor, *MANAGERS)
    now = ensure_utc(now or utcnow())
    expired: list[ExpiredFund] = []
    for program in session.scalars(select(Program).order_by(Program.id)):
        last_day = today(program, now) - timedelta(days=1)
        available = Account.credits_posted - Account.debits_posted - Account.debits_pending
        rows = session.execute(
            select(Fund, Partner.code, available)
            .join(Account, Account.id == Fund.account_id)
            .join(Partner, Partner.id == Fund.partner_id)
            .where(Fund.program_id == program.id, Fund.available_until <= last_day, available > 0)
            .order_by(Fund.id)
        ).all()
        for fund, partner_code, amount in rows:
            # Keyed by the fund's last transfer: a rerun finds nothing new to forfeit, and money
            # a lapsed reservation returns later is forfeited by the next run under a new key.
            last = session.scalar(
                select(func.max(Entry.transfer_id)).where(Entry.account_id == fund.account_id)
            )
            command = NewTransfer(
                f"fund-expiry:{fund.id}:{last}", fund.account_id, program.expired_account_id,
                amount, rules.FUND_EXPIRY,
                effective_date=fund.available_until + timedelta(days=1),
                ref_type="fund", ref_id=str(fund.id),
                memo=f"{fund.period_label} funds unspent after {fund.available_until.isoformat()}",
            )  # fmt: skip
            record = ledger.transfer(session, actor, command, now=now)
            if not record.replayed:
                announce(session, "funds.expired", program, fund, amount, now=now)
                audit.record(
                    session, actor, "fund.expire", object_type="fund", object_id=fund.id,
                    subject_partner_id=fund.partner_id,
                    summary=f"Expired {audit.money(amount, program.currency)} unspent in"
                    f" {partner_code}'s {fund.period_label} fund of {program.code} (usable"
                    f" until {fund.available_until.isoformat()})",
                    after={"amount": format_amount(amount, program.currency),
                           "currency": program.currency, "transfer_id": record.id,
                           "available_until": fund.available_until},
                )  # fmt: skip
            expired.append(
                ExpiredFund(
                    fund.id, program.code, partner_code, fund.period_label, amount, program.currency
                )
            )
    return expired
