"""Partner activity signals: each program's thresholds, the daily run that turns signals on and off
(one engagement event when a signal turns on), and finance's at-risk partners list.

The run reads everything first — the ledger's balances per partner and fund
(programs.program_utilisation), the partners' last sign-in, their last request or claim, the
approved requests waiting for a claim — and lets the pure rules (signal_rules) decide; only then
does it write the changes, so locks that audit entries take are held briefly. A signal that stays
on only has its value refreshed: running the job twice a day, or hourly, sends nothing new.
Turning off is recorded (state row and audit entry) without an event. Services never commit.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from mdfledger import audit
from mdfledger.actor import Actor
from mdfledger.auth.models import Role, User
from mdfledger.auth.scope import MANAGERS, require_role
from mdfledger.claims.models import Claim, FundRequest
from mdfledger.claims.rules import ClaimState, RequestState
from mdfledger.clock import ensure_utc, utcnow
from mdfledger.engagement import signal_rules as rules
from mdfledger.engagement.signal_models import PartnerSignal, SignalPolicy
from mdfledger.engagement.signal_rules import SignalKind, Thresholds
from mdfledger.errors import ValidationError
from mdfledger.fields import check_whole
from mdfledger.programs.balances import Breakdown, program_utilisation
from mdfledger.programs.models import (
    Allocation,
    Partner,
    PartnerStatus,
    Program,
    ProgramStatus,
)
from mdfledger.programs.rules import business_date
from mdfledger.programs.service import get_program

SIGNALS = Actor.system("signals")
# Claims that settle a request's deadline: once sent in, the deadline no longer matters.
SENT_IN = (
    ClaimState.SUBMITTED,
    ClaimState.VERIFYING,
    ClaimState.IN_REVIEW,
    ClaimState.APPROVED,
    ClaimState.PAID,
)
# pg_advisory_xact_lock's first key: "signals" runs of one program never overlap.
LOCK_CLASS = 0x5167


# --- the program's thresholds --------------------------------------------------------------------


def policy_of(session: Session, program_id: int) -> Thresholds:
    """The program's signal thresholds (the defaults where it has none)."""
    row = session.get(SignalPolicy, program_id)
    if row is None:
        return Thresholds()
    return Thresholds(
        row.no_sign_in_days,
        row.no_activity_days,
        row.expiry_warning_days,
        row.deadline_warning_days,
        rules.parse_milestones(row.milestones),
        row.active,
    )


def set_policy(
    session: Session,
    actor: Actor,
    program_id: object,
    *,
    no_sign_in_days: object,
    no_activity_days: object,
    expiry_warning_days: object,
    deadline_warning_days: object,
    milestones: object,
    active: object,
    now: datetime | None = None,
) -> SignalPolicy:
    """Set a program's signal thresholds (admins). They apply from the next run."""
    require_role(actor, Role.ADMIN)
    program = get_program(session, actor, program_id)
    if not isinstance(active, bool):
        raise ValidationError("active must be true or false", field="active")
    values: dict[str, Any] = {
        "no_sign_in_days": check_whole(no_sign_in_days, "no_sign_in_days", 1, rules.MAX_DAYS),
        "no_activity_days": check_whole(no_activity_days, "no_activity_days", 1, rules.MAX_DAYS),
        "expiry_warning_days": check_whole(
            expiry_warning_days, "expiry_warning_days", 1, rules.MAX_DAYS
        ),
        "deadline_warning_days": check_whole(
            deadline_warning_days, "deadline_warning_days", 1, rules.MAX_DAYS
        ),
        "milestones": rules.milestones_text(rules.parse_milestones(milestones)),
        "active": active,
    }
    row = session.get(SignalPolicy, program.id)
    before = None if row is None else {name: getattr(row, name) for name in values}
    if before == values:
        return row  # type: ignore[return-value]  # nothing changes: nothing to record
    if row is None:
        row = SignalPolicy(program_id=program.id)
        session.add(row)
    for name, value in values.items():
        setattr(row, name, value)
    row.updated_by, row.updated_at = actor.label[:200], ensure_utc(now or utcnow())
    session.flush()
    changed = {k: v for k, v in values.items() if before is None or before[k] != v}
    audit.record(
        session, actor, "program.signals", object_type="program", object_id=program.id,
        summary=f"Changed the partner signal thresholds of {program.code}",
        before=None if before is None else {k: before[k] for k in changed}, after=changed,
    )  # fmt: skip
    return row


# --- facts ---------------------------------------------------------------------------------------


def last_sign_ins(session: Session) -> dict[int, datetime]:
    """Per partner, the latest sign-in of any of its users."""
    statement = (
        select(User.partner_id, func.max(User.last_login_at))
        .where(User.partner_id.is_not(None), User.last_login_at.is_not(None))
        .group_by(User.partner_id)
    )
    return {partner: _utc(at) for partner, at in session.execute(statement) if at is not None}


def last_activities(session: Session, program_id: int) -> dict[int, datetime]:
    """Per partner, when its latest fund request or claim in the program was made."""
    latest: dict[int, datetime] = {}
    for column, partner in (
        (FundRequest.submitted_at, FundRequest.partner_id),
        (Claim.created_at, Claim.partner_id),
    ):
        table = column.class_
        rows = session.execute(
            select(partner, func.max(column))
            .where(table.program_id == program_id)
            .group_by(partner)
        )
        for partner_id, at in rows:
            if at is not None:
                at = _utc(at)
                latest[partner_id] = max(latest.get(partner_id, at), at)
    return latest


def _utc(moment: Any) -> datetime:
    # SQLite hands back max() of a UTC text column as text: parse it.
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _first_allocations(session: Session, program_id: int) -> dict[int, datetime]:
    rows = session.execute(
        select(Allocation.partner_id, func.min(Allocation.created_at))
        .where(Allocation.program_id == program_id)
        .group_by(Allocation.partner_id)
    )
    return {partner: _utc(at) for partner, at in rows if at is not None}


def _reservations(session: Session, program_id: int) -> dict[int, list[rules.ReservationFacts]]:
    """Per partner, the approved requests no claim has been sent in for."""
    sent = select(Claim.request_id).where(
        Claim.request_id.is_not(None), Claim.state.in_([s.value for s in SENT_IN])
    )
    rows = session.scalars(
        select(FundRequest)
        .where(
            FundRequest.program_id == program_id,
            FundRequest.state == RequestState.APPROVED.value,
            FundRequest.id.not_in(sent),
        )
        .order_by(FundRequest.id)
    )
    out: dict[int, list[rules.ReservationFacts]] = defaultdict(list)
    for request in rows:
        assert request.approved_amount is not None  # an approved request has one (CHECK)
        out[request.partner_id].append(
            rules.ReservationFacts(
                request.id, request.reference, request.approved_amount, request.claim_deadline
            )
        )
    return out


def fund_facts(breakdown: Breakdown) -> tuple[rules.FundFacts, ...]:
    return tuple(
        rules.FundFacts(
            line.fund_id,
            line.period_label,
            line.available_until,
            line.received,
            # What left the fund posted other than expiry is claims approved.
            line.received - line.reserved - line.available - line.expired,
            line.available,
            line.live,
        )
        for line in breakdown.funds
    )


# --- the run -------------------------------------------------------------------------------------


@dataclass
class SignalRun:
    """What one run did."""

    programs: int = 0
    partners: int = 0  # partner-program pairs looked at
    turned_on: int = 0
    turned_off: int = 0
    events: int = 0  # events emitted (turning on, less the quiet ones and any dedupe)
    refreshed: int = 0  # signals still on whose value changed

    def add(self, other: SignalRun) -> SignalRun:
        for counter in fields(self):
            setattr(self, counter.name, getattr(self, counter.name) + getattr(other, counter.name))
        return self


def run_signals(
    session: Session,
    actor: Actor,
    *,
    program_id: int | None = None,
    now: datetime | None = None,
) -> SignalRun:
    """Work out every partner's signals in one program (or all) and record what changed: one
    event per signal turning on, nothing for signals that stay on, a quiet record for those
    turning off. Admins, finance and system actors."""
    require_role(actor, *MANAGERS)
    when = ensure_utc(now or utcnow())
    if program_id is None:
        ids = list(session.scalars(select(Program.id).order_by(Program.id)))
    else:
        ids = [get_program(session, actor, program_id).id]
    run = SignalRun()
    for pid in ids:
        run.add(_run_program(session, actor, pid, when))
    return run


def _lock(session: Session, program_id: int) -> None:
    # PostgreSQL: two runs of one program wait for each other (no unique-key race on the state
    # rows). SQLite's writing transaction already holds the database's write lock.
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(:a, :b)"), {"a": LOCK_CLASS, "b": program_id}
        )


def _run_program(session: Session, actor: Actor, program_id: int, now: datetime) -> SignalRun:
    _lock(session, program_id)
    program = session.get(Program, program_id)
    assert program is not None
    thresholds = policy_of(session, program.id)
    stored: dict[int, dict[tuple[str, str], PartnerSignal]] = defaultdict(dict)
    for row in session.scalars(select(PartnerSignal).where(PartnerSignal.program_id == program.id)):
        stored[row.partner_id][(row.kind, row.subject)] = row
    today = business_date(now, program.timezone)
    current: dict[int, dict[tuple[str, str], rules.Signal]] = {}
    run = SignalRun(programs=1)
    if program.status == ProgramStatus.ACTIVE and thresholds.active:
        utilisation = program_utilisation(session, SIGNALS, program.id, now=now)
        sign_ins = last_sign_ins(session)  # all partners' users: no long IN list
        activities = last_activities(session, program.id)
        funded = _first_allocations(session, program.id)
        reservations = _reservations(session, program.id)
        catalog = tuple(rules.ActivityFacts(a.name, a.cap) for a in program.activities if a.active)
        for partner, breakdown in utilisation.partners:
            if partner.status == PartnerStatus.TERMINATED:
                continue  # its signals, if any, turn off below
            run.partners += 1
            joined = _utc(partner.created_at)
            facts = rules.Facts(
                now=now, timezone=program.timezone, currency=program.currency,
                program=program.name, program_code=program.code, joined=joined,
                last_sign_in=sign_ins.get(partner.id),
                funded=funded.get(partner.id, max(joined, _utc(program.created_at))),
                last_activity=activities.get(partner.id), funds=fund_facts(breakdown),
                reservations=tuple(reservations.get(partner.id, ())), activities=catalog,
            )  # fmt: skip
            current[partner.id] = rules.evaluate(facts, thresholds)
    # Reads are done; now the writes.
    for partner_id in sorted(set(current) | set(stored)):
        rows = stored.get(partner_id, {})
        changes = rules.plan(
            {key: _stored(row, program.timezone) for key, row in rows.items()},
            current.get(partner_id, {}),
            today,
        )
        for change in changes:
            _apply(session, actor, program, partner_id, rows, change, now, run)
    session.flush()
    return run


def _stored(row: PartnerSignal, timezone: str) -> rules.Stored:
    return rules.Stored(
        row.active, row.since, dict(row.value or {}), business_date(row.changed_at, timezone)
    )


def _apply(
    session: Session,
    actor: Actor,
    program: Program,
    partner_id: int,
    rows: dict[tuple[str, str], PartnerSignal],
    change: rules.Change,
    now: datetime,
    run: SignalRun,
) -> None:
    key = (change.kind.value, change.subject)
    row = rows.get(key)
    if row is None:
        row = PartnerSignal(
            program_id=program.id, partner_id=partner_id, kind=change.kind.value,
            subject=change.subject, active=False, value={}, emitted=False, first_seen_at=now,
            changed_at=now,
        )  # fmt: skip
        session.add(row)
        rows[key] = row
    row.value = change.value
    if not change.turned:
        run.refreshed += 1
        return
    row.active = change.after == rules.SignalState.ON
    row.since = change.since
    row.changed_at = now
    event = None
    if row.active:
        run.turned_on += 1
        row.event_key = rules.event_key(program.id, partner_id, change)
        if change.emit:
            event = _emit(session, program, partner_id, change, row.event_key, now)
        row.emitted = event is not None
        run.events += row.emitted
    else:
        run.turned_off += 1
    session.flush()
    audit.record(
        session, actor, f"signal.{'on' if row.active else 'off'}", object_type="partner_signal",
        object_id=row.id, summary=_summary(session, program, partner_id, change, event),
        before={"state": change.before}, after={"state": change.after, "since": change.since},
        subject_partner_id=partner_id,
    )  # fmt: skip


def _emit(
    session: Session,
    program: Program,
    partner_id: int,
    change: rules.Change,
    key: str,
    now: datetime,
) -> Any:
    # Imported here: the outbox's package imports this module's neighbours, not the other way.
    from mdfledger import engagement

    return engagement.emit(
        session, change.kind.value, partner_id=partner_id, program_id=program.id,
        data=change.value, key=key, now=now,
    )  # fmt: skip


def _summary(
    session: Session, program: Program, partner_id: int, change: rules.Change, event: Any
) -> str:
    partner = session.get(Partner, partner_id)
    who = partner.code if partner is not None else f"partner {partner_id}"
    what = rules.KIND_LABELS[change.kind]
    about = f" ({change.subject})" if change.subject else ""
    if change.after == rules.SignalState.OFF:
        return f"{who} in {program.code}: {what}{about} is off"
    sent = "an event sent" if event is not None else "no event (quiet)"
    return f"{who} in {program.code}: {what}{about} is on since {change.since}; {sent}"


def signals_job(sessions: sessionmaker[Session], *, now: datetime | None = None) -> SignalRun:
    """The daily job: every program in its own transaction, committed one by one, so a failure
    in one program leaves the others done (and a rerun finds them unchanged)."""
    when = ensure_utc(now or utcnow())
    with sessions() as session:
        ids = list(session.scalars(select(Program.id).order_by(Program.id)))
    run = SignalRun()
    with audit.request_id_scope():
        for program_id in ids:
            with sessions() as session:
                run.add(run_signals(session, SIGNALS, program_id=program_id, now=when))
                session.commit()
    return run


# --- the at-risk list ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SignalView:
    kind: str
    label: str
    subject: str
    since: date
    value: dict[str, Any]

    @property
    def detail(self) -> str:
        return rules.describe(self.kind, self.value)


@dataclass
class AtRisk:
    """One partner in one program with its risk signals on."""

    partner_id: int
    partner_code: str
    partner_name: str
    program_id: int
    program_code: str
    program_name: str
    currency: str
    signals: list[SignalView] = field(default_factory=list)
    last_sign_in: datetime | None = None
    last_activity: datetime | None = None
    available: int = 0
    expiring_amount: int = 0
    expiring_on: date | None = None

    @property
    def risks(self) -> int:
        return len(self.signals)


def at_risk(
    session: Session,
    actor: Actor,
    program_id: object = None,
    *,
    now: datetime | None = None,
) -> list[AtRisk]:
    """Partners with risk signals on (milestones are not risks), one row per partner and
    program, riskiest first: the most signals, then the money expiring soonest and most.
    Admins and finance (and system actors) only; partners are refused."""
    require_role(actor, *MANAGERS)
    statement = (
        select(PartnerSignal, Partner, Program)
        .join(Partner, Partner.id == PartnerSignal.partner_id)
        .join(Program, Program.id == PartnerSignal.program_id)
        .where(
            PartnerSignal.active.is_(True),
            PartnerSignal.kind.in_([k.value for k in rules.RISKS]),
        )
        .order_by(PartnerSignal.program_id, PartnerSignal.partner_id, PartnerSignal.id)
    )
    if program_id is not None:
        statement = statement.where(
            PartnerSignal.program_id == get_program(session, actor, program_id).id
        )
    rows: dict[tuple[int, int], AtRisk] = {}
    for signal, partner, program in session.execute(statement):
        row = rows.get((program.id, partner.id))
        if row is None:
            row = rows[(program.id, partner.id)] = AtRisk(
                partner.id, partner.code, partner.name, program.id, program.code, program.name,
                program.currency,
            )  # fmt: skip
        kind = SignalKind(signal.kind)
        assert signal.since is not None  # an active signal has one (CHECK)
        row.signals.append(
            SignalView(kind.value, rules.KIND_LABELS[kind], signal.subject, signal.since,
                       dict(signal.value or {}))
        )  # fmt: skip
    if not rows:
        return []
    sign_ins = last_sign_ins(session)
    for pid in sorted({program for program, _ in rows}):
        activities = last_activities(session, pid)
        utilisation = program_utilisation(session, SIGNALS, pid, now=now)
        money = {partner.id: b for partner, b in utilisation.partners}
        for (program, partner), row in rows.items():
            if program != pid:
                continue
            row.last_sign_in = sign_ins.get(partner)
            row.last_activity = activities.get(partner)
            breakdown = money.get(partner)
            if breakdown is not None:
                row.available = breakdown.available
                if breakdown.expiring_next is not None:
                    row.expiring_amount = breakdown.expiring_next.amount
                    row.expiring_on = breakdown.expiring_next.on
    order = {k: i for i, k in enumerate(rules.KIND_LABELS)}
    for row in rows.values():
        row.signals.sort(key=lambda s: (order[SignalKind(s.kind)], s.since, s.subject))
    return sorted(
        rows.values(),
        key=lambda r: (
            *rules.risk_order(r.risks, r.expiring_on, r.expiring_amount, r.partner_name),
            r.program_code,
        ),
    )
