"""Payouts: partners' payout details, programs' payout policies, what is payable, payout runs,
and the steps of a payout (settle, fail, retry, cancel, reverse) with their ledger movements.

Money: a payout moves its claims' money from the partner's claims payable to payouts in transit
when it is created (or retried), from transit to settled when it settles; a failure reverses
the send (back to claims payable); a reversal after settlement moves settled -> payable. Every
ledger key names the payout and its attempt, so a replayed step moves nothing twice.

Locks, always in this order: the payout row, then its claims (claims.mark_paid), then the
ledger (head, accounts) and the audit head — the same order as claims' approval (claim, then
ledger), so nothing here can deadlock with it. Services never commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from uuid import uuid4

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.orm import Session

from mdfledger import audit, background, claims, ledger
from mdfledger.actor import Actor
from mdfledger.auth.models import Role
from mdfledger.auth.scope import MANAGERS, check_partner, require_role, scoped
from mdfledger.claims.holds import payable_account
from mdfledger.claims.models import Claim
from mdfledger.claims.rules import ClaimState
from mdfledger.clock import ensure_utc, utcnow
from mdfledger.errors import Conflict, Forbidden, NotFound, ValidationError
from mdfledger.fields import check_choice, check_whole, clean_text
from mdfledger.ledger import AccountKind, NewTransfer, Reverse
from mdfledger.ledger.commands import is_id
from mdfledger.money import validate_currency
from mdfledger.payouts import rules
from mdfledger.payouts.models import (
    Payout,
    PayoutClaim,
    PayoutDetails,
    PayoutEvent,
    PayoutPolicy,
)
from mdfledger.payouts.provider import ProviderTransfer, TransferRequest
from mdfledger.payouts.rules import PayoutState, Who
from mdfledger.programs import rules as program_rules
from mdfledger.programs.models import Fund, Partner, Program
from mdfledger.programs.service import account_name, get_partner, get_program

SEND_JOB = "send_payout"
PAYOUTS = Actor.system("payouts")  # runs, sends, recovery
WHAT = "payout"


# --- who is acting -------------------------------------------------------------------------------


def who(actor: Actor) -> Who:
    """Payouts are moved by the system and by finance (or admins); nobody else."""
    if actor.kind == "system":
        return Who.SYSTEM
    if actor.role in MANAGERS:
        return Who.FINANCE
    raise Forbidden(f"a {actor.role} user cannot change payouts")


# --- policies ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    provider: str = "manual"
    schedule: str = rules.Schedule.IMMEDIATE
    run_day: int | None = None
    requires_tax_info: bool = False
    minimum_amount: int = 0
    max_attempts: int = rules.DEFAULT_MAX_ATTEMPTS

    @property
    def schedule_text(self) -> str:
        return rules.schedule_text(self.schedule, self.run_day)


def policy_of(session: Session, program_id: int) -> Policy:
    """How a program pays (the defaults where it has no policy: manual, immediately)."""
    row = session.get(PayoutPolicy, program_id)
    if row is None:
        return Policy()
    return Policy(
        row.provider,
        row.schedule,
        row.run_day,
        row.requires_tax_info,
        row.minimum_amount,
        row.max_attempts,
    )


def set_policy(
    session: Session,
    actor: Actor,
    program_id: object,
    *,
    provider: object,
    schedule: object,
    run_day: object = None,
    requires_tax_info: object = False,
    minimum_amount: object = 0,
    max_attempts: object = rules.DEFAULT_MAX_ATTEMPTS,
    now: datetime | None = None,
) -> PayoutPolicy:
    """Set how a program pays (admins). Applies to payouts created from now on."""
    require_role(actor, Role.ADMIN)
    program = get_program(session, actor, program_id)
    schedule = check_choice(schedule, list(rules.Schedule), "schedule")
    if not isinstance(requires_tax_info, bool):
        raise ValidationError("requires tax info is true or false", field="requires_tax_info")
    values: dict[str, Any] = {
        "provider": check_choice(provider, rules.PROVIDERS, "provider"),
        "schedule": schedule,
        "run_day": rules.check_run_day(schedule, run_day),
        "requires_tax_info": requires_tax_info,
        "minimum_amount": check_whole(minimum_amount, "minimum_amount", 0, 2**62),
        "max_attempts": check_whole(max_attempts, "max_attempts", 1, 20),
    }
    row = session.get(PayoutPolicy, program.id)
    before = None if row is None else {name: getattr(row, name) for name in values}
    if before == values:
        return row  # type: ignore[return-value]
    if row is None:
        row = PayoutPolicy(program_id=program.id)
        session.add(row)
    for name, value in values.items():
        setattr(row, name, value)
    row.updated_by, row.updated_at = actor.label[:200], ensure_utc(now or utcnow())
    session.flush()
    audit.record(
        session, actor, "program.payouts", object_type="program", object_id=program.id,
        summary=f"Changed how {program.code} pays partners: {values['provider']},"
        f" {rules.schedule_text(schedule, values['run_day'])}",
        before=before, after=values,
    )  # fmt: skip
    return row


# --- payout details ------------------------------------------------------------------------------


def details_of(session: Session, actor: Actor, partner_id: object) -> PayoutDetails | None:
    """A partner's payout details (a partner user: their own only; another's is not found)."""
    partner = get_partner(session, actor, partner_id)
    return session.get(PayoutDetails, partner.id)


def _masked(row: PayoutDetails | None) -> dict[str, Any] | None:
    """What the audit log keeps of payout details: never a full account or tax id."""
    if row is None:
        return None
    return {
        "method": row.method,
        "stripe_account": row.stripe_account,
        "account_holder": row.account_holder,
        "bank_country": row.bank_country,
        "iban": rules.mask(row.iban) or None,
        "account_number": rules.mask(row.account_number) or None,
        "routing_code": rules.mask(row.routing_code) or None,
        "payout_currency": row.payout_currency,
        "tax_form": row.tax_form,
        "tax_id": rules.mask(row.tax_id) or None,
        "tax_received_on": row.tax_received_on,
    }


def set_details(
    session: Session,
    actor: Actor,
    partner_id: object,
    *,
    method: object,
    stripe_account: object = None,
    account_holder: object = None,
    bank_country: object = None,
    iban: object = None,
    account_number: object = None,
    routing_code: object = None,
    payout_currency: object = None,
    tax_form: object = None,
    tax_id: object = None,
    tax_received_on: object = None,
    now: datetime | None = None,
) -> PayoutDetails:
    """Record where a partner is paid and their tax information. A partner's own users, admins
    and finance; every field at once (what is not given is cleared)."""
    when = ensure_utc(now or utcnow())
    if actor.kind == "user" and actor.role not in (*MANAGERS, Role.PARTNER):
        raise Forbidden(f"a {actor.role} user cannot change payout details")
    partner = get_partner(session, actor, partner_id)  # another partner's: not found
    method = check_choice(method, list(rules.Method), "method")
    values: dict[str, Any] = {
        "method": method,
        "stripe_account": None,
        "account_holder": "",
        "bank_country": None,
        "iban": None,
        "account_number": None,
        "routing_code": None,
        "payout_currency": None,
    }
    if method == rules.Method.STRIPE:
        values["stripe_account"] = rules.check_stripe_account(stripe_account)
    else:
        values["account_holder"] = clean_text(account_holder, "account_holder", 200)
        values["bank_country"] = rules.check_country(bank_country)
        if _given(iban):
            values["iban"] = rules.check_iban(iban)
            if _given(account_number):
                raise ValidationError(
                    "give an IBAN or an account number, not both", field="account_number"
                )
        elif _given(account_number):
            values["account_number"] = rules.check_account_number(account_number)
            if not _given(routing_code):
                raise ValidationError(
                    "an account number needs its routing number, sort code or bank code",
                    field="routing_code",
                )
        else:
            raise ValidationError("give the IBAN or the account number", field="iban")
        if _given(routing_code):
            values["routing_code"] = rules.check_routing_code(routing_code)
        if _given(payout_currency):
            values["payout_currency"] = validate_currency(str(payout_currency).strip().upper())
    values.update(_tax(tax_form, tax_id, tax_received_on, when))
    row = session.get(PayoutDetails, partner.id)
    before = _masked(row)
    if row is not None and all(getattr(row, k) == v for k, v in values.items()):
        return row  # nothing changed: nothing recorded
    if row is None:
        row = PayoutDetails(partner_id=partner.id)
        session.add(row)
    for name, value in values.items():
        setattr(row, name, value)
    row.updated_by, row.updated_at = actor.label[:200], when
    session.flush()
    after = _masked(row)
    changed = {k: v for k, v in (after or {}).items() if before is None or before.get(k) != v}
    audit.record(
        session, actor, "payout_details.set", object_type="partner", object_id=partner.id,
        summary=f"Payout details of {partner.name}: "
        + rules.destination_text(method, row.stripe_account, row.iban, row.account_number),
        before=None if before is None else {k: before[k] for k in changed}, after=changed,
        subject_partner_id=partner.id,
    )  # fmt: skip
    return row


def _given(value: object) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


def _tax(form: object, tax_id: object, received: object, now: datetime) -> dict[str, Any]:
    if not _given(form):
        if _given(tax_id) or received is not None:
            raise ValidationError("say which tax form the tax id is from", field="tax_form")
        return {"tax_form": None, "tax_id": None, "tax_received_on": None}
    form = check_choice(form, rules.TAX_FORMS, "tax_form")
    number = clean_text(tax_id, "tax_id", 64)
    if not isinstance(received, date) or isinstance(received, datetime):
        raise ValidationError(
            "say on which date the tax form was received", field="tax_received_on"
        )
    if received > now.date():
        raise ValidationError(
            "the tax form cannot be received in the future", field="tax_received_on"
        )
    return {"tax_form": form, "tax_id": number, "tax_received_on": received}


def _facts(row: PayoutDetails | None) -> rules.DetailsFacts | None:
    if row is None:
        return None
    has_tax = bool(row.tax_form and row.tax_id and row.tax_received_on)
    return rules.DetailsFacts(row.method, row.payout_currency, has_tax)


def _hold(session: Session, partner: Partner, program: Program, policy: Policy) -> str | None:
    return rules.hold_reason(
        _facts(session.get(PayoutDetails, partner.id)),
        partner=partner.name,
        program=program.code,
        provider=policy.provider,
        currency=program.currency,
        requires_tax_info=policy.requires_tax_info,
    )


def hold_reason(session: Session, partner_id: int, program_id: int) -> str | None:
    """Why the partner cannot be paid in the program now (a sentence), or None."""
    partner, program = session.get(Partner, partner_id), session.get(Program, program_id)
    if partner is None or program is None:
        raise NotFound("partner or program not found")
    return _hold(session, partner, program, policy_of(session, program.id))


def holds_of(session: Session, actor: Actor, partner_id: object) -> list[tuple[Program, str]]:
    """Why the partner could not be paid now, in each program it has funds in (by program)."""
    partner = get_partner(session, actor, partner_id)
    funded = select(Fund.program_id).where(Fund.partner_id == partner.id)
    found = session.scalars(select(Program).where(Program.id.in_(funded)).order_by(Program.id))
    return [
        (program, reason)
        for program in found
        if (reason := _hold(session, partner, program, policy_of(session, program.id)))
    ]


@dataclass(frozen=True)
class ClaimPayment:
    """How an approved claim is being paid, for its page."""

    payout: Payout | None  # the payout paying it, if one was made
    hold: str | None  # why no payout can be made for it now
    schedule: str  # when its program pays ("immediately", "monthly on day 1")


def claim_payment(session: Session, claim: Claim) -> ClaimPayment | None:
    """The live payout of an approved or paid claim (the caller has checked the actor may see
    the claim), or why it waits; None for claims not approved."""
    if claim.state not in (ClaimState.APPROVED, ClaimState.PAID):
        return None
    payout = session.scalar(
        select(Payout)
        .join(PayoutClaim, PayoutClaim.payout_id == Payout.id)
        .where(PayoutClaim.claim_id == claim.id, PayoutClaim.live)
        .order_by(Payout.id.desc())
        .limit(1)
    )
    hold = None if payout is not None else hold_reason(session, claim.partner_id, claim.program_id)
    return ClaimPayment(payout, hold, policy_of(session, claim.program_id).schedule_text)


def destination_of(details: PayoutDetails) -> str:
    """What a payout records as its destination: the Stripe account, or the masked account."""
    return rules.destination_text(
        details.method, details.stripe_account, details.iban, details.account_number
    )


# --- what is payable -----------------------------------------------------------------------------


def _live(claim_id: Any) -> Any:
    return exists().where(PayoutClaim.claim_id == claim_id, PayoutClaim.live.is_(True))


def payable_filter() -> Any:
    """Claims whose approved money waits in claims payable for a payout: approved and in no
    live payout — or paid by a payout that was reversed and then cancelled."""
    paid_before = exists().where(PayoutClaim.claim_id == Claim.id)
    return and_(
        Claim.approved_amount.is_not(None),
        or_(
            Claim.state == ClaimState.APPROVED,
            and_(Claim.state == ClaimState.PAID, paid_before),
        ),
        ~_live(Claim.id),
    )


@dataclass
class PayableGroup:
    """One partner's payable claims in one program: what one payout would pay."""

    program: Program
    partner: Partner
    policy: Policy
    claims: list[Claim] = field(default_factory=list)
    hold: str | None = None

    @property
    def amount(self) -> int:
        return sum(c.approved_amount or 0 for c in self.claims)

    @property
    def currency(self) -> str:
        return self.program.currency


def payable_claims(
    session: Session,
    actor: Actor,
    program_id: object = None,
    partner_id: object = None,
) -> list[PayableGroup]:
    """Approved claims waiting for a payout, per partner and program, each group with what
    holds it (finance's view; a partner user sees their own)."""
    statement = select(Claim).where(payable_filter()).order_by(Claim.id)
    if program_id is not None:
        statement = statement.where(Claim.program_id == get_program(session, actor, program_id).id)
    if partner_id is not None:
        statement = statement.where(Claim.partner_id == get_partner(session, actor, partner_id).id)
    statement = scoped(statement, Claim.partner_id, actor)
    return _groups(session, session.scalars(statement).all())


def _groups(session: Session, found: Iterable[Claim]) -> list[PayableGroup]:
    groups: dict[tuple[int, int], PayableGroup] = {}
    for claim in found:
        key = (claim.program_id, claim.partner_id)
        if key not in groups:
            program = session.get(Program, claim.program_id)
            partner = session.get(Partner, claim.partner_id)
            assert program is not None and partner is not None
            policy = policy_of(session, program.id)
            groups[key] = PayableGroup(program, partner, policy, hold=None)
            groups[key].hold = _hold(session, partner, program, policy)
        groups[key].claims.append(claim)
    return sorted(groups.values(), key=lambda g: (g.program.code, g.partner.name, g.partner.id))


# --- runs ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Skipped:
    """A partner a run did not pay, and why."""

    program_id: int
    program_code: str
    partner_id: int
    partner_name: str
    amount: int
    currency: str
    reason: str
    held: bool  # True: something must be added (details, tax); False: not due or below minimum


@dataclass
class Run:
    payouts: list[Payout] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def held(self) -> list[Skipped]:
        return [s for s in self.skipped if s.held]


def create_payouts(
    session: Session,
    actor: Actor,
    *,
    program_id: object = None,
    partner_id: object = None,
    claim_ids: Sequence[object] | None = None,
    due_only: bool = True,
    now: datetime | None = None,
) -> Run:
    """Pay approved claims: one payout per partner and program, gathering its payable claims
    (or only `claim_ids`). Immediate programs are paid always; scheduled programs on their run
    day when `due_only` (a scheduled run skips partners below the program's minimum), or
    whenever finance runs them by hand (`due_only=False`, or naming claims). Held partners
    (no payout details, no tax information where required) are skipped and reported.
    Each payout moves its money to payouts in transit now and is sent after the commit."""
    require_role(actor, *MANAGERS)
    when = ensure_utc(now or utcnow())
    statement = select(Claim).where(payable_filter()).order_by(Claim.id)
    if program_id is not None:
        statement = statement.where(Claim.program_id == get_program(session, actor, program_id).id)
    if partner_id is not None:
        statement = statement.where(Claim.partner_id == get_partner(session, actor, partner_id).id)
    wanted: list[int] | None = None
    if claim_ids is not None:
        if not claim_ids or not all(is_id(c) for c in claim_ids):
            raise ValidationError("name the claims to pay by their ids", field="claim_ids")
        wanted = list(dict.fromkeys(int(c) for c in claim_ids))  # type: ignore[call-overload]
        statement = statement.where(Claim.id.in_(wanted))
    if session.get_bind().dialect.name == "postgresql":
        # Two runs at once: the second waits here, then sees the first one's payouts below.
        statement = statement.with_for_update(of=Claim)
    found = list(session.scalars(statement.execution_options(populate_existing=True)))
    if found:
        # A fresh statement after the locks: claims a concurrent run has just paid drop out.
        taken = set(
            session.scalars(
                select(PayoutClaim.claim_id).where(
                    PayoutClaim.claim_id.in_([c.id for c in found]), PayoutClaim.live.is_(True)
                )
            )
        )
        found = [c for c in found if c.id not in taken]
    if wanted is not None:
        missing = [c for c in wanted if c not in {f.id for f in found}]
        if missing:
            raise ValidationError(
                f"{claims.claim_reference(missing[0])} is not waiting for a payout: it is not"
                " approved, or already in a payout",
                field="claim_ids",
                claim_id=missing[0],
            )
    run = Run()
    by_hand = wanted is not None or not due_only
    for group in _groups(session, found):
        reason, held = _skip(group, by_hand, when)
        if reason is None and (hold := group.hold) is not None:
            reason, held = hold, True
        if reason is not None:
            run.skipped.append(
                Skipped(
                    group.program.id, group.program.code, group.partner.id, group.partner.name,
                    group.amount, group.currency, reason, held,
                )
            )  # fmt: skip
            continue
        try:  # one partner's refusal (the ledger, a race) must not stop everyone else's
            with session.begin_nested():
                run.payouts.append(_create(session, actor, group, when))
        except (Conflict, ValidationError, ledger.LedgerError) as error:
            run.skipped.append(
                Skipped(
                    group.program.id, group.program.code, group.partner.id, group.partner.name,
                    group.amount, group.currency, f"not paid: {error.message}", False,
                )
            )  # fmt: skip
    return run


def _skip(group: PayableGroup, by_hand: bool, now: datetime) -> tuple[str | None, bool]:
    policy = group.policy
    if by_hand or policy.schedule == rules.Schedule.IMMEDIATE:
        return None, False
    today = program_rules.business_date(now, group.program.timezone)
    if not rules.is_run_day(policy.schedule, policy.run_day, today):
        return f"not due: {group.program.code} pays {policy.schedule_text}", False
    if group.amount < policy.minimum_amount:
        least = audit.money(policy.minimum_amount, group.currency)
        return (
            f"below the minimum: {group.program.code} pays scheduled runs of {least} or more",
            False,
        )
    return None, False


def accounts(
    session: Session, actor: Actor, program: Program, partner: Partner
) -> tuple[int, int, int]:
    """The partner's claims payable, payouts in transit and settled accounts in the program
    (opened on first use)."""
    opened = [payable_account(session, actor, program, partner)]
    for kind, label in (
        (AccountKind.PAYOUTS_IN_TRANSIT, "payouts in transit"),
        (AccountKind.SETTLED, "settled"),
    ):
        account = ledger.open_account(
            session, actor,
            key=f"program:{program.code}:partner:{partner.code}:{kind}",
            name=account_name(f"{partner.name}: {program.name} {label}"),
            kind=kind, currency=program.currency, program_id=program.id, partner_id=partner.id,
        )  # fmt: skip
        opened.append(account.id)
    return opened[0], opened[1], opened[2]


def _create(session: Session, actor: Actor, group: PayableGroup, now: datetime) -> Payout:
    program, partner = group.program, group.partner
    details = session.get(PayoutDetails, partner.id)
    assert details is not None  # held otherwise
    payable, _, _ = accounts(session, actor, program, partner)
    have = ledger.balance(session, payable).available
    if have < group.amount:
        raise Conflict(
            f"{partner.name}'s claims payable in {program.code} holds"
            f" {audit.money(have, program.currency)}, less than the"
            f" {audit.money(group.amount, program.currency)} its approved claims add up to:"
            " run `mdfledger verify-ledger`",
        )
    payout = Payout(
        program_id=program.id, partner_id=partner.id, currency=program.currency,
        amount=group.amount, provider=group.policy.provider, state=PayoutState.PENDING,
        attempt=1, idempotency_key=f"new:{uuid4().hex}", transfer_group="",
        destination=destination_of(details), amount_reversed=0, created_by=actor.label[:200],
        created_at=now, attempt_at=now, checked_at=now,
    )  # fmt: skip
    session.add(payout)
    session.flush()
    payout.idempotency_key = rules.idempotency_key(payout.id, 1)
    payout.transfer_group = rules.transfer_group(payout.id)
    session.add_all(
        PayoutClaim(payout_id=payout.id, claim_id=c.id, amount=c.approved_amount, live=True)
        for c in group.claims
    )
    session.flush()
    _send_money(session, actor, payout, program, partner, now)
    refs = ", ".join(c.reference for c in group.claims)
    total = audit.money(payout.amount, payout.currency)
    record(session, actor, payout, "create", None, f"{total} for {refs} to {payout.destination}",
           now=now)  # fmt: skip
    audit.record(
        session, actor, "payout.create", object_type="payout", object_id=payout.id,
        summary=f"Payout {payout.reference} of {total} to {partner.name} for {refs}"
        f" ({payout.provider})",
        after={"state": payout.state, "amount": total,
               "provider": payout.provider, "claims": [c.id for c in group.claims]},
        subject_partner_id=partner.id,
    )  # fmt: skip
    if payout.provider != "manual":
        background.enqueue(session, SEND_JOB, payout_id=payout.id)
    return payout


# --- the ledger movements ------------------------------------------------------------------------


def _day(program: Program, now: datetime) -> date:
    return program_rules.business_date(now, program.timezone)


def _run(session: Session, actor: Actor, command: ledger.Command, now: datetime) -> Any:
    try:
        return ledger.execute(session, actor, [command], now=now)[0]
    except ledger.BatchRejected as rejected:
        raise rejected.failures[0].error from None


def _send_money(
    session: Session, actor: Actor, payout: Payout, program: Program, partner: Partner,
    now: datetime,
) -> None:  # fmt: skip
    payable, transit, _ = accounts(session, actor, program, partner)
    record_ = _run(
        session, actor,
        NewTransfer(
            f"payout:{payout.id}:send:{payout.attempt}", payable, transit, payout.amount,
            rules.SEND, _day(program, now), ref_type="payout", ref_id=str(payout.id),
            memo=f"{payout.reference} attempt {payout.attempt}",
        ),
        now,
    )  # fmt: skip
    payout.send_transfer_id = record_.id


def _parties(session: Session, payout: Payout) -> tuple[Program, Partner]:
    program, partner = (
        session.get(Program, payout.program_id),
        session.get(Partner, payout.partner_id),
    )
    assert program is not None and partner is not None
    return program, partner


# --- the timeline --------------------------------------------------------------------------------


def record(
    session: Session,
    actor: Actor,
    payout: Payout,
    event: str,
    from_state: str | None,
    message: str,
    *,
    ref: str | None = None,
    now: datetime,
) -> PayoutEvent:
    """One step on the payout's timeline, after its state changed (or not: a note)."""
    entry = PayoutEvent(
        payout_id=payout.id, event=event, from_state=from_state, to_state=payout.state,
        attempt=payout.attempt, provider_ref=ref, message=message[:4000],
        actor=actor.label[:200], at=now,
    )  # fmt: skip
    session.add(entry)
    session.flush()
    return entry


def timeline(session: Session, payout: Payout) -> list[PayoutEvent]:
    return list(
        session.scalars(
            select(PayoutEvent).where(PayoutEvent.payout_id == payout.id).order_by(PayoutEvent.id)
        )
    )


def known_refs(session: Session, payout: Payout) -> set[str]:
    """Every provider reference this payout has had, in any attempt."""
    found = set(
        session.scalars(
            select(PayoutEvent.provider_ref).where(
                PayoutEvent.payout_id == payout.id, PayoutEvent.provider_ref.is_not(None)
            )
        )
    )
    if payout.provider_ref:
        found.add(payout.provider_ref)
    return found


def _step(session: Session, actor: Actor, payout: Payout, event: str) -> str:
    old = payout.state
    payout.state = rules.next_state(old, event, who(actor))
    return old


# --- reading -------------------------------------------------------------------------------------


def load(session: Session, actor: Actor, payout_id: object, *, lock: bool = False) -> Payout:
    """The payout, locked for a change when `lock` (on SQLite the write transaction already
    is the lock). Another partner's is 'not found'."""
    if not is_id(payout_id):
        raise NotFound("payout not found")
    statement = select(Payout).where(Payout.id == payout_id)
    if lock and session.get_bind().dialect.name == "postgresql":
        statement = statement.with_for_update()
    payout = session.execute(
        statement.execution_options(populate_existing=lock)
    ).scalar_one_or_none()
    if payout is None:
        raise NotFound("payout not found")
    check_partner(actor, payout.partner_id, "payout")
    return payout


def get_payout(session: Session, actor: Actor, payout_id: object) -> Payout:
    return load(session, actor, payout_id)


def payouts_query(
    actor: Actor,
    *,
    state: Sequence[str] | str | None = None,
    program_id: int | None = None,
    partner_id: int | None = None,
    attention: bool | None = None,
) -> Any:
    """Payouts the actor may see, newest first (a partner user: their own)."""
    statement = select(Payout).order_by(Payout.created_at.desc(), Payout.id.desc())
    if state:
        states = [state] if isinstance(state, str) else list(state)
        for s in states:
            check_choice(s, list(PayoutState), "state")
        statement = statement.where(Payout.state.in_(states))
    if program_id is not None:
        statement = statement.where(Payout.program_id == program_id)
    if partner_id is not None:
        statement = statement.where(Payout.partner_id == partner_id)
    if attention:
        statement = statement.where(Payout.flagged_reason.is_not(None))
    return scoped(statement, Payout.partner_id, actor)


def payout_claims(session: Session, payout: Payout) -> list[tuple[PayoutClaim, Claim]]:
    return [
        (row, claim)
        for row, claim in session.execute(
            select(PayoutClaim, Claim)
            .join(Claim, Claim.id == PayoutClaim.claim_id)
            .where(PayoutClaim.payout_id == payout.id)
            .order_by(Claim.id)
        ).all()
    ]


# --- the steps of a payout (the payout is locked by the caller) ----------------------------------


def settle(
    session: Session,
    actor: Actor,
    payout: Payout,
    *,
    ref: str | None,
    message: str,
    now: datetime,
) -> None:
    """The money reached the partner: in transit -> settled, its claims paid."""
    old = _step(session, actor, payout, "settle")
    program, partner = _parties(session, payout)
    if ref:
        payout.provider_ref = ref
    payout.settled_at = now
    payout.sent_at = payout.sent_at or now
    payout.next_attempt_at = None
    payout.last_error = None
    session.flush()
    # Claims first (their rows, then the ledger), the order claims' approval takes.
    for _, claim in payout_claims(session, payout):
        claims.mark_paid(session, actor, claim.id, message=f"Paid by {payout.reference}"
                         + (f" ({ref})" if ref else ""), now=now)  # fmt: skip
    _, transit, settled = accounts(session, actor, program, partner)
    _run(
        session, actor,
        NewTransfer(
            f"payout:{payout.id}:settle:{payout.attempt}", transit, settled, payout.amount,
            rules.SETTLE, _day(program, now), ref_type="payout", ref_id=str(payout.id),
            memo=f"{payout.reference} settled" + (f": {ref}" if ref else ""),
        ),
        now,
    )  # fmt: skip
    record(session, actor, payout, "settle", old, message, ref=ref, now=now)
    audit.record(
        session, actor, "payout.settle", object_type="payout", object_id=payout.id,
        summary=f"{payout.reference} settled: {message}", before={"state": old},
        after={"state": payout.state, "provider_ref": ref}, subject_partner_id=payout.partner_id,
    )  # fmt: skip


def mark_sent_step(
    session: Session, actor: Actor, payout: Payout, *, ref: str, now: datetime
) -> None:
    old = _step(session, actor, payout, "send")
    payout.provider_ref, payout.sent_at = ref, now
    session.flush()
    record(session, actor, payout, "send", old, f"Paid by bank transfer, reference {ref}",
           ref=ref, now=now)  # fmt: skip
    audit.record(
        session, actor, "payout.send", object_type="payout", object_id=payout.id,
        summary=f"{payout.reference} marked sent, reference {ref}", before={"state": old},
        after={"state": payout.state, "provider_ref": ref}, subject_partner_id=payout.partner_id,
    )  # fmt: skip


def fail(session: Session, actor: Actor, payout: Payout, *, reason: str, now: datetime) -> None:
    """The provider refused (or finance says the bank did): the send is reversed, the money
    is back in claims payable; retried after a backoff, or flagged after the last attempt."""
    old = _step(session, actor, payout, "fail")
    program, _ = _parties(session, payout)
    _run(
        session, actor,
        Reverse(f"payout:{payout.id}:fail:{payout.attempt}", payout.send_transfer_id,
                _day(program, now), memo=f"{payout.reference} failed"),
        now,
    )  # fmt: skip
    policy = policy_of(session, payout.program_id)
    payout.last_error = reason[:4000]
    payout.settled_at = None
    last = payout.attempt >= policy.max_attempts
    payout.next_attempt_at = None if last else now + rules.backoff(payout.attempt)
    session.flush()
    retry_text = (
        "no attempts left" if last else f"retried after {payout.next_attempt_at:%Y-%m-%d %H:%M} UTC"  # type: ignore[str-format]
    )
    record(session, actor, payout, "fail", old,
           f"Attempt {payout.attempt} failed: {reason}; money back in claims payable;"
           f" {retry_text}", now=now)  # fmt: skip
    audit.record(
        session, actor, "payout.fail", object_type="payout", object_id=payout.id,
        summary=f"{payout.reference} attempt {payout.attempt} failed: {reason}",
        before={"state": old}, after={"state": payout.state}, subject_partner_id=payout.partner_id,
    )  # fmt: skip
    if last:
        old = _step(session, actor, payout, "flag")
        payout.flagged_reason = (
            f"failed {payout.attempt} time{'s' if payout.attempt > 1 else ''}, the most this"
            f" program allows; last: {reason}"
        )[:4000]
        session.flush()
        record(session, actor, payout, "flag", old, payout.flagged_reason, now=now)


def attention(
    session: Session, actor: Actor, payout: Payout, reason: str, *, ref: str | None, now: datetime
) -> None:
    """Flag the payout for finance without changing its state or moving money."""
    payout.flagged_reason = reason[:4000]
    session.flush()
    record(session, actor, payout, "attention", payout.state, reason, ref=ref, now=now)
    audit.record(
        session, actor, "payout.flag", object_type="payout", object_id=payout.id,
        summary=f"{payout.reference} needs finance: {reason}",
        after={"flagged_reason": reason}, subject_partner_id=payout.partner_id,
    )  # fmt: skip


def reverse(
    session: Session,
    actor: Actor,
    payout: Payout,
    transfer: ProviderTransfer,
    *,
    now: datetime,
) -> int:
    """The provider reversed the settled transfer (in part or in full): what came back moves
    settled -> claims payable once (keyed by the reversed total), and finance is told."""
    delta = min(transfer.amount_reversed, payout.amount) - payout.amount_reversed
    if delta <= 0:
        return 0
    program, partner = _parties(session, payout)
    payable, _, settled = accounts(session, actor, program, partner)
    total = payout.amount_reversed + delta
    _run(
        session, actor,
        NewTransfer(
            f"payout:{payout.id}:reversal:{payout.attempt}:{total}", settled, payable, delta,
            rules.REVERSAL, _day(program, now), ref_type="payout", ref_id=str(payout.id),
            memo=f"{payout.reference}: {transfer.id} reversed",
        ),
        now,
    )  # fmt: skip
    old = payout.state
    if old == PayoutState.SETTLED:
        _step(session, actor, payout, "reverse")
    payout.amount_reversed = total
    money = audit.money(total, payout.currency)
    part = "in full" if total == payout.amount else f"in part ({money})"
    payout.flagged_reason = (
        f"the provider reversed transfer {transfer.id} {part}: the money is back in claims"
        " payable; retry the payout or cancel it"
    )
    session.flush()
    record(session, actor, payout, "reverse", old, payout.flagged_reason, ref=transfer.id, now=now)
    audit.record(
        session, actor, "payout.reverse", object_type="payout", object_id=payout.id,
        summary=f"{payout.reference} reversed at the provider {part}",
        before={"state": old}, after={"state": payout.state, "amount_reversed": money},
        subject_partner_id=payout.partner_id,
    )  # fmt: skip
    return delta


def retry(session: Session, actor: Actor, payout: Payout, *, now: datetime) -> None:
    """A new attempt: a new idempotency key, the money moved to transit again, sent after the
    commit. The partner's current payout details and the program's current provider apply."""
    if payout.state == PayoutState.REVERSED and payout.amount_reversed < payout.amount:
        raise Conflict(
            f"{payout.reference} was reversed only in part: cancel it and pay the rest by hand",
            field="state",
        )
    program, partner = _parties(session, payout)
    policy = policy_of(session, program.id)
    old_state = payout.state
    rules.next_state(old_state, "retry", who(actor))  # refuse before anything else
    hold = _hold(session, partner, program, policy)
    if hold is not None:
        raise Conflict(hold, field="details")
    details = session.get(PayoutDetails, partner.id)
    assert details is not None
    _step(session, actor, payout, "retry")
    payout.attempt += 1
    payout.idempotency_key = rules.idempotency_key(payout.id, payout.attempt)
    payout.provider = policy.provider
    payout.destination = destination_of(details)
    payout.provider_ref = None
    payout.amount_reversed = 0
    payout.next_attempt_at = payout.sent_at = payout.settled_at = None
    payout.flagged_reason = payout.last_error = None
    payout.attempt_at = payout.checked_at = now
    session.flush()
    _send_money(session, actor, payout, program, partner, now)
    record(session, actor, payout, "retry", old_state,
           f"Attempt {payout.attempt} to {payout.destination}", now=now)  # fmt: skip
    audit.record(
        session, actor, "payout.retry", object_type="payout", object_id=payout.id,
        summary=f"{payout.reference} retried: attempt {payout.attempt}",
        before={"state": old_state}, after={"state": payout.state, "attempt": payout.attempt},
        subject_partner_id=payout.partner_id,
    )  # fmt: skip
    if payout.provider != "manual":
        background.enqueue(session, SEND_JOB, payout_id=payout.id)


def cancel(session: Session, actor: Actor, payout: Payout, *, reason: str, now: datetime) -> None:
    """Give up on the payout: its money is already back in claims payable, and its claims are
    payable in a later run. A payout reversed only in part is refused: part of it reached the
    partner, so paying its claims again in full would pay that part twice."""
    if payout.state == PayoutState.REVERSED and payout.amount_reversed < payout.amount:
        kept = audit.money(payout.amount - payout.amount_reversed, payout.currency)
        raise Conflict(
            f"{payout.reference} was reversed only in part: {kept} reached the partner, so its"
            " claims cannot be paid again in full; pay the reversed amount by hand and record it",
            field="state",
        )
    old = _step(session, actor, payout, "cancel")
    for row, _ in payout_claims(session, payout):
        row.live = False
    payout.next_attempt_at = None
    payout.flagged_reason = None
    session.flush()
    record(session, actor, payout, "cancel", old, reason, now=now)
    audit.record(
        session, actor, "payout.cancel", object_type="payout", object_id=payout.id,
        summary=f"{payout.reference} cancelled: {reason}", before={"state": old},
        after={"state": payout.state}, subject_partner_id=payout.partner_id,
    )  # fmt: skip


# --- what the provider is asked ------------------------------------------------------------------


def transfer_request(session: Session, payout: Payout) -> TransferRequest:
    """The provider call of the payout's current attempt: the same every time it is built."""
    program, partner = _parties(session, payout)
    refs = [claim.reference for _, claim in payout_claims(session, payout)]
    listed = rules.claims_text(refs)
    return TransferRequest(
        payout_id=payout.id,
        idempotency_key=payout.idempotency_key,
        group=payout.transfer_group,
        amount=payout.amount,
        currency=payout.currency,
        destination=payout.destination,
        description=f"{payout.reference}: {program.code} claims {listed}"[:350],
        metadata={
            "payout_id": str(payout.id),
            "attempt": str(payout.attempt),
            "partner": partner.code,
            "program": program.code,
            "claims": listed,
        },
    )
