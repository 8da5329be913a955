"""What requests and claims share: who is acting, locking the row, the timeline, replays.

Internal to the claims package; never commits.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from mdfledger.actor import Actor
from mdfledger.auth.models import Role, User
from mdfledger.auth.scope import check_partner, partner_scope
from mdfledger.claims.models import ApprovalLimit, Claim, ClaimEvent, FundRequest
from mdfledger.claims.rules import TERMINAL_CLAIM, ClaimState, Who
from mdfledger.clock import ensure_utc, utcnow
from mdfledger.errors import Conflict, Forbidden, NotFound, ValidationError
from mdfledger.fields import clean_text
from mdfledger.ledger.commands import is_id
from mdfledger.programs import rules as program_rules
from mdfledger.programs.models import Activity, Partner, PartnerStatus, Program, ProgramStatus
from mdfledger.programs.service import get_partner

Subject = TypeVar("Subject", FundRequest, Claim)
KEY_MAX = 150


def who(actor: Actor, partner_id: int, what: str) -> Who:
    """The actor's part in a request or claim of `partner_id`; auditors take no part."""
    if actor.kind == "system":
        return Who.SYSTEM
    if actor.role == Role.PARTNER:
        check_partner(actor, partner_id, what)  # another partner's: "not found"
        return Who.PARTNER
    if actor.role in (Role.ADMIN, Role.FINANCE):
        return Who.FINANCE
    raise Forbidden(f"a {actor.role} user cannot change requests or claims")


def load(
    session: Session, model: type[Subject], subject_id: object, actor: Actor, *, lock: bool
) -> Subject:
    """The request or claim, locked for a change when `lock` (on SQLite the write transaction
    already is the lock). Another partner's is 'not found'."""
    what = "fund request" if model is FundRequest else "claim"
    if not is_id(subject_id):
        raise NotFound(f"{what} not found")
    statement = select(model).where(model.id == subject_id)
    if lock and session.get_bind().dialect.name == "postgresql":
        statement = statement.with_for_update()
    row = session.execute(statement.execution_options(populate_existing=lock)).scalar_one_or_none()
    if row is None:
        raise NotFound(f"{what} not found")
    check_partner(actor, row.partner_id, what)
    return row


def activity_dates(fields: dict[str, Any]) -> tuple[date, date]:
    """The activity's first and last day, as dates, the last not before the first."""
    days = []
    for field in ("starts_on", "ends_on"):
        value = fields[field]
        if not isinstance(value, date) or isinstance(value, datetime):
            raise ValidationError(f"{field.replace('_', ' ')} must be a date", field=field)
        days.append(value)
    if days[1] < days[0]:
        raise ValidationError("the activity cannot end before it starts", field="ends_on")
    return days[0], days[1]


def today(program: Program, now: datetime | None) -> date:
    return program_rules.business_date(ensure_utc(now or utcnow()), program.timezone)


def check_version(subject: FundRequest | Claim, expected: object, what: str) -> None:
    """A decision made on a page that is out of date is refused, saying what changed."""
    if expected is None:
        return
    if not isinstance(expected, int) or isinstance(expected, bool):
        raise ValidationError("version must be a whole number", field="version")
    if expected != subject.version:
        raise Conflict(
            f"this {what} changed since you opened it: it is now"
            f" {subject.state.replace('_', ' ')}; reload it to see who changed what",
            state=subject.state,
            version=subject.version,
        )


def begin(
    session: Session,
    actor: Actor,
    model: type[Subject],
    subject_id: object,
    version: int | None,
    key: str | None,
    now: datetime | None,
) -> tuple[Subject, str | None, datetime]:
    """Start a decision: the locked subject, its namespaced idempotency key, and the time.
    The version is checked unless this is a retry of a decision already made."""
    subject = load(session, model, subject_id, actor, lock=True)
    kind = "request" if model is FundRequest else "claim"
    full = full_key(f"{kind}:{subject.id}", key)
    if not replayed(session, subject, full):
        check_version(subject, version, "fund request" if model is FundRequest else "claim")
    return subject, full, ensure_utc(now or utcnow())


def full_key(kind: str, key: object) -> str | None:
    if key is None:
        return None
    return f"{kind}:{clean_text(key, 'idempotency_key', KEY_MAX)}"


def replayed(session: Session, subject: FundRequest | Claim, key: str | None) -> bool:
    """A retried decision (same idempotency key) that already happened to this subject."""
    if key is None:
        return False
    found = session.scalar(select(ClaimEvent).where(ClaimEvent.idempotency_key == key))
    if found is None:
        return False
    mine = found.claim_id if isinstance(subject, Claim) else found.request_id
    if mine != subject.id:
        raise Conflict("this idempotency key was used for something else", field="key")
    return True


def limits(session: Session, actor: Actor, currency: str) -> dict[str, int]:
    limit = approval_limit(session, actor, currency)
    return {} if limit is None else {actor.label: limit}


def approval_limit(session: Session, actor: Actor, currency: str) -> int | None:
    """The most this finance user may approve on one claim in `currency`; None: no limit."""
    if actor.kind != "user" or not actor.id.isdigit():
        return None
    return session.scalar(
        select(ApprovalLimit.max_amount).where(
            ApprovalLimit.user_id == int(actor.id), ApprovalLimit.currency == currency
        )
    )


def actor_name(session: Session, actor: Actor) -> str:
    if actor.kind == "system":
        return f"mdfledger ({actor.id})"
    user = session.get(User, int(actor.id)) if actor.id.isdigit() else None
    return user.name if user is not None else actor.label


def record(
    session: Session,
    actor: Actor,
    subject: FundRequest | Claim,
    event: str,
    from_state: str | None,
    *,
    amount: int | None = None,
    reason_code: str | None = None,
    message: str | None = None,
    key: str | None = None,
    now: datetime | None = None,
) -> ClaimEvent:
    """One step on the subject's timeline, after its state changed."""
    row: dict[str, Any] = (
        {"request_id": subject.id} if isinstance(subject, FundRequest) else {"claim_id": subject.id}
    )
    entry = ClaimEvent(
        **row,
        event=event,
        from_state=from_state,
        to_state=subject.state,
        actor=actor.label[:200],
        actor_name=actor_name(session, actor)[:200],
        role=None if actor.role is None else str(actor.role),
        at=ensure_utc(now or utcnow()),
        amount=amount,
        reason_code=reason_code,
        message=message,
        idempotency_key=key,
    )
    session.add(entry)
    session.flush()
    return entry


def timeline(session: Session, subject: FundRequest | Claim) -> list[ClaimEvent]:
    column = ClaimEvent.request_id if isinstance(subject, FundRequest) else ClaimEvent.claim_id
    return list(
        session.scalars(select(ClaimEvent).where(column == subject.id).order_by(ClaimEvent.id))
    )


# --- shared checks -----------------------------------------------------------------------------


def activity_of(session: Session, program: Program, activity_id: object) -> Activity:
    activity = session.get(Activity, activity_id) if is_id(activity_id) else None
    if activity is None or activity.program_id != program.id:
        raise ValidationError(
            f"choose an activity from the {program.code} catalog", field="activity_id"
        )
    if not activity.active:
        raise ValidationError(
            f"{activity.name} is no longer in the catalog: choose another activity",
            field="activity_id",
        )
    return activity


def proposer_partner(session: Session, actor: Actor, partner_id: int | None) -> Partner:
    own = partner_scope(actor)
    if own is not None:
        if partner_id is not None and partner_id != own:
            raise NotFound("partner not found")
        return get_partner(session, actor, own)
    if actor.kind == "user" and actor.role not in (Role.ADMIN, Role.FINANCE):
        raise Forbidden(f"a {actor.role} user cannot propose activities")
    if partner_id is None:
        raise ValidationError("say which partner this is for", field="partner_id")
    return get_partner(session, actor, partner_id)


def open_for_proposals(program: Program, partner: Partner) -> None:
    if program.status != ProgramStatus.ACTIVE:
        raise Conflict(f"program {program.code} is closed: it takes no new requests")
    if partner.status != PartnerStatus.ACTIVE:
        raise Conflict(f"{partner.name} is {partner.status}: it cannot propose activities")


def open_claim(session: Session, request: FundRequest) -> Claim | None:
    return session.scalar(
        select(Claim).where(
            Claim.request_id == request.id,
            Claim.state.not_in([s.value for s in TERMINAL_CLAIM] + [ClaimState.DRAFT.value]),
        )
    )
