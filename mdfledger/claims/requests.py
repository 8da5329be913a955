"""Fund requests (pre-approval): propose, approve (reserving funds), return, reject, withdraw.

Services take a session and an actor, check everything, move money through the ledger, write
the timeline and the audit log, flush, and never commit.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from mdfledger import audit
from mdfledger.actor import Actor
from mdfledger.auth.scope import check_partner, scoped
from mdfledger.claims import holds, workflow
from mdfledger.claims.models import Claim, FundRequest
from mdfledger.claims.rules import (
    REQUEST_TRANSITIONS,
    ClaimState,
    RequestState,
    Who,
    check_reason,
    max_request,
    next_state,
)
from mdfledger.clock import ensure_utc, utcnow
from mdfledger.errors import Conflict, Forbidden, ValidationError
from mdfledger.fields import check_choice, clean_text, percent_text, positive_amount
from mdfledger.money import format_amount
from mdfledger.programs import rules as program_rules
from mdfledger.programs.models import Activity, Partner, Program
from mdfledger.programs.service import get_program

WHAT = "fund request"
AUDITED = (
    "program_id", "partner_id", "activity_id", "title", "starts_on", "ends_on", "estimated_cost",
    "requested_amount", "approved_amount", "claim_deadline", "state",
)  # fmt: skip
EDITABLE = (
    "activity_id", "title", "description", "expected_outcome", "starts_on", "ends_on",
    "estimated_cost", "requested_amount",
)  # fmt: skip


def _check_terms(
    program: Program, activity: Activity, fields: dict[str, Any], *, today: date
) -> dict[str, Any]:
    """Dates, cost and amount of a proposal, checked together; returns the clean values."""
    clean = {
        "title": clean_text(fields["title"], "title", 200),
        "description": clean_text(fields.get("description"), "description", 5000, required=False),
        "expected_outcome": clean_text(
            fields.get("expected_outcome"), "expected_outcome", 5000, required=False
        ),
        "estimated_cost": positive_amount(fields["estimated_cost"], "estimated_cost"),
        "requested_amount": positive_amount(fields["requested_amount"], "requested_amount"),
    }
    clean["starts_on"], clean["ends_on"] = workflow.activity_dates(fields)
    deadline = program_rules.claim_deadline(clean["ends_on"], program.claim_deadline_days)
    if deadline < today:
        raise ValidationError(
            f"an activity ending on {clean['ends_on'].isoformat()} could only be claimed until"
            f" {deadline.isoformat()}: that has passed",
            field="ends_on",
        )
    most = max_request(clean["estimated_cost"], program.share_bp, activity.cap)
    if clean["requested_amount"] > most:
        cur = program.currency
        why = (
            f"the {activity.name} cap"
            if activity.cap is not None and most == activity.cap
            else f"{percent_text(program.share_bp)}% of the estimated cost"
        )
        raise ValidationError(
            f"at most {format_amount(most, cur)} {cur} may be requested: {why}",
            field="requested_amount",
            most=most,
        )
    clean["claim_deadline"] = deadline
    return clean


def create_request(
    session: Session,
    actor: Actor,
    *,
    program_id: int,
    activity_id: int,
    title: str,
    starts_on: date,
    ends_on: date,
    estimated_cost: int,
    requested_amount: int,
    description: str = "",
    expected_outcome: str = "",
    partner_id: int | None = None,
    key: str | None = None,
    now: datetime | None = None,
) -> FundRequest:
    """A partner proposes an activity for pre-approval. Staff may propose for a partner.

    A retry with the same idempotency key returns the request it created.
    """
    full = workflow.full_key("request", key)
    if full is not None:
        existing = session.scalar(select(FundRequest).where(FundRequest.idempotency_key == full))
        if existing is not None:
            check_partner(actor, existing.partner_id, WHAT)
            return existing
    partner = workflow.proposer_partner(session, actor, partner_id)
    program = get_program(session, actor, program_id)
    workflow.open_for_proposals(program, partner)
    activity = workflow.activity_of(session, program, activity_id)
    now = ensure_utc(now or utcnow())
    terms = _check_terms(
        program, activity,
        {"title": title, "description": description, "expected_outcome": expected_outcome,
         "starts_on": starts_on, "ends_on": ends_on, "estimated_cost": estimated_cost,
         "requested_amount": requested_amount},
        today=workflow.today(program, now),
    )  # fmt: skip
    request = FundRequest(
        program_id=program.id,
        partner_id=partner.id,
        activity_id=activity.id,
        currency=program.currency,
        state=RequestState.SUBMITTED.value,
        submitted_by=actor.label,
        submitted_at=now,
        idempotency_key=full,
        **terms,
    )
    session.add(request)
    session.flush()
    workflow.record(
        session, actor, request, "submit", None, amount=request.requested_amount, now=now
    )
    amount = audit.money(request.requested_amount, request.currency)
    audit.record(
        session, actor, "request.submit", object_type="fund_request", object_id=request.id,
        summary=f"{partner.name} asked for pre-approval of {amount} for {activity.name}"
        f" ({request.reference}: {request.title})",
        after=audit.snapshot(request, AUDITED), subject_partner_id=partner.id,
    )  # fmt: skip
    return request


def update_request(
    session: Session,
    actor: Actor,
    request_id: int,
    *,
    now: datetime | None = None,
    **changes: Any,
) -> FundRequest:
    """The partner edits a request that finance returned for more information."""
    request = workflow.load(session, FundRequest, request_id, actor, lock=True)
    if workflow.who(actor, request.partner_id, WHAT) != Who.PARTNER:
        raise Forbidden("only the partner edits its request")
    if request.state != RequestState.RETURNED:
        raise Conflict("only a request returned for more information can be edited")
    unknown = sorted(set(changes) - set(EDITABLE) - {"description", "expected_outcome"})
    if unknown:
        raise ValidationError(f"cannot change {', '.join(unknown)}", field=unknown[0])
    program = session.get(Program, request.program_id)
    assert program is not None
    activity = workflow.activity_of(
        session, program, changes.get("activity_id", request.activity_id)
    )
    current = {f: getattr(request, f) for f in EDITABLE}
    terms = _check_terms(
        program, activity, {**current, **changes}, today=workflow.today(program, now)
    )
    before = audit.snapshot(request, AUDITED)
    request.activity_id = activity.id
    for field, value in terms.items():
        setattr(request, field, value)
    session.flush()
    old, new = audit.changed(before, audit.snapshot(request, AUDITED))
    if new:
        audit.record(
            session, actor, "request.update", object_type="fund_request", object_id=request.id,
            summary=f"Changed {request.reference}: {audit.describe(old, new)}",
            before=old, after=new, subject_partner_id=request.partner_id,
        )  # fmt: skip
    return request


def approve_request(
    session: Session,
    actor: Actor,
    request_id: int,
    *,
    amount: int | None = None,
    reason_code: str | None = None,
    message: str | None = None,
    version: int | None = None,
    key: str | None = None,
    now: datetime | None = None,
) -> FundRequest:
    """Approve in full or for less (with a reason): the amount is held in the partner's funds
    until the claim deadline."""
    request, full, now = workflow.begin(session, actor, FundRequest, request_id, version, key, now)
    if workflow.replayed(session, request, full):
        return request
    new_state = next_state(
        REQUEST_TRANSITIONS, WHAT, request.state, "approve", _who(actor, request)
    )
    amount = request.requested_amount if amount is None else amount
    positive_amount(amount, "amount")
    if amount > request.requested_amount:
        raise ValidationError(
            f"at most the {format_amount(request.requested_amount, request.currency)}"
            f" {request.currency} requested can be approved",
            field="amount",
        )
    if amount < request.requested_amount:
        reason_code, message = check_reason(reason_code, message)
    elif message is not None and message.strip():
        message = clean_text(message, "reason", 2000)
    else:
        reason_code, message = None, None
    _within_limit(session, actor, amount, request.currency)
    program, partner = _program_partner(session, request)
    day = workflow.today(program, now)
    holds.reserve(
        session, actor, request, program, partner, amount, day=day,
        expires_at=program_rules.end_of_day(request.claim_deadline, program.timezone), now=now,
    )  # fmt: skip
    old = request.state
    request.state, request.approved_amount = new_state, amount
    request.reason_code, request.reason, request.decided_at = reason_code, message, now
    session.flush()
    workflow.record(
        session, actor, request, "approve", old, amount=amount, reason_code=reason_code,
        message=message, key=full, now=now,
    )  # fmt: skip
    shown = audit.money(amount, request.currency)
    audit.record(
        session, actor, "request.approve", object_type="fund_request", object_id=request.id,
        summary=f"Approved {request.reference} for {shown}, held until"
        f" {request.claim_deadline.isoformat()}" + (f": {message}" if message else ""),
        before={"state": old}, after={"state": request.state, "approved_amount": amount},
        subject_partner_id=request.partner_id,
    )  # fmt: skip
    return request


def return_request(
    session: Session,
    actor: Actor,
    request_id: int,
    *,
    reason_code: str,
    message: str,
    version: int | None = None,
    key: str | None = None,
    now: datetime | None = None,
) -> FundRequest:
    """Ask the partner for more information; nothing is held meanwhile."""
    return _decide(session, actor, request_id, "return", reason_code, message, version, key, now)


def reject_request(
    session: Session,
    actor: Actor,
    request_id: int,
    *,
    reason_code: str,
    message: str,
    version: int | None = None,
    key: str | None = None,
    now: datetime | None = None,
) -> FundRequest:
    return _decide(session, actor, request_id, "reject", reason_code, message, version, key, now)


def resubmit_request(
    session: Session,
    actor: Actor,
    request_id: int,
    *,
    message: str | None = None,
    version: int | None = None,
    key: str | None = None,
    now: datetime | None = None,
) -> FundRequest:
    """The partner sends a returned request back to finance, with an optional note."""
    note = clean_text(message, "message", 2000, required=False) or None
    return _decide(session, actor, request_id, "resubmit", None, note, version, key, now)


def withdraw_request(
    session: Session,
    actor: Actor,
    request_id: int,
    *,
    message: str | None = None,
    version: int | None = None,
    key: str | None = None,
    now: datetime | None = None,
) -> FundRequest:
    """The partner takes the request back; anything held for it is released."""
    note = clean_text(message, "message", 2000, required=False) or None
    return _decide(session, actor, request_id, "withdraw", None, note, version, key, now)


def _decide(
    session: Session,
    actor: Actor,
    request_id: int,
    event: str,
    reason_code: str | None,
    message: str | None,
    version: int | None,
    key: str | None,
    now: datetime | None,
) -> FundRequest:
    request, full, now = workflow.begin(session, actor, FundRequest, request_id, version, key, now)
    if workflow.replayed(session, request, full):
        return request
    new_state = next_state(REQUEST_TRANSITIONS, WHAT, request.state, event, _who(actor, request))
    if event in ("return", "reject"):
        reason_code, message = check_reason(reason_code, message)
    program, _ = _program_partner(session, request)
    if event == "withdraw" and workflow.open_claim(session, request) is not None:
        raise Conflict("a claim against this request is open: withdraw the claim first")
    if event == "withdraw" and request.state == RequestState.APPROVED:
        holds.release(session, actor, request, day=workflow.today(program, now), now=now)
    if event == "resubmit":
        # Terms may have changed while it was back with the partner: they must still hold.
        activity = workflow.activity_of(session, program, request.activity_id)
        current = {f: getattr(request, f) for f in (*EDITABLE, "description", "expected_outcome")}
        _check_terms(program, activity, current, today=workflow.today(program, now))
    old = request.state
    request.state = new_state
    request.reason_code, request.reason = reason_code, message
    if event in ("reject", "return"):
        request.decided_at = now
    session.flush()
    workflow.record(
        session, actor, request, event, old, reason_code=reason_code, message=message,
        key=full, now=now,
    )  # fmt: skip
    verbs = {"return": "Returned", "reject": "Rejected", "resubmit": "Resubmitted",
             "withdraw": "Withdrew"}  # fmt: skip
    audit.record(
        session, actor, f"request.{event}", object_type="fund_request", object_id=request.id,
        summary=f"{verbs[event]} {request.reference}" + (f": {message}" if message else ""),
        before={"state": old}, after={"state": request.state, "reason_code": reason_code},
        subject_partner_id=request.partner_id,
    )  # fmt: skip
    return request


def _who(actor: Actor, request: FundRequest) -> Who:
    return workflow.who(actor, request.partner_id, WHAT)


def _program_partner(session: Session, request: FundRequest) -> tuple[Program, Partner]:
    program = session.get(Program, request.program_id)
    partner = session.get(Partner, request.partner_id)
    assert program is not None and partner is not None
    return program, partner


def _within_limit(session: Session, actor: Actor, amount: int, currency: str) -> None:
    limit = workflow.approval_limit(session, actor, currency)
    if limit is not None and amount > limit:
        raise Forbidden(
            f"{format_amount(amount, currency)} {currency} is above your approval limit of"
            f" {format_amount(limit, currency)} {currency}: ask a colleague with a higher limit",
            limit=limit,
        )


# --- reading -------------------------------------------------------------------------------------


def get_request(session: Session, actor: Actor, request_id: object) -> FundRequest:
    return workflow.load(session, FundRequest, request_id, actor, lock=False)


def requests_query(
    actor: Actor,
    *,
    state: str | None = None,
    program_id: int | None = None,
    partner_id: int | None = None,
) -> Select[tuple[FundRequest]]:
    """Requests the actor may see, newest first."""
    statement = scoped(select(FundRequest), FundRequest.partner_id, actor)
    if state is not None:
        statement = statement.where(FundRequest.state == check_choice(state, RequestState, "state"))
    if program_id is not None:
        statement = statement.where(FundRequest.program_id == program_id)
    if partner_id is not None:
        statement = statement.where(FundRequest.partner_id == partner_id)
    return statement.order_by(FundRequest.submitted_at.desc(), FundRequest.id.desc())


def claimable_requests(session: Session, actor: Actor) -> list[FundRequest]:
    """Approved requests the actor's partner may claim against now: no claim on them that is
    still a draft or open (the rule create_claim applies)."""
    taken = select(Claim.request_id).where(
        Claim.request_id.is_not(None),
        Claim.state.not_in([ClaimState.REJECTED, ClaimState.WITHDRAWN, ClaimState.EXPIRED]),
    )
    statement = scoped(
        select(FundRequest).where(
            FundRequest.state == RequestState.APPROVED, FundRequest.id.not_in(taken)
        ),
        FundRequest.partner_id,
        actor,
    )
    return list(session.scalars(statement.order_by(FundRequest.claim_deadline)))


def expire_requests(session: Session, actor: Actor, *, now: datetime | None = None) -> int:
    """Approved requests whose claim deadline passed without an open claim expire; what they
    held goes back to the funds (and, if those have lapsed too, to the next expiry run)."""
    now = ensure_utc(now or utcnow())
    count = 0
    # Deadlines are local dates: a day's margin covers every timezone, the loop decides.
    candidates = session.scalars(
        select(FundRequest).where(
            FundRequest.state == RequestState.APPROVED,
            FundRequest.claim_deadline < now.date() + timedelta(days=1),
        )
    ).all()
    for request in candidates:
        program, _ = _program_partner(session, request)
        if request.claim_deadline >= workflow.today(program, now):
            continue
        if workflow.open_claim(session, request) is not None:
            continue  # its money moved to the claim, which finance still decides
        old = request.state
        request.state = next_state(REQUEST_TRANSITIONS, WHAT, old, "expire", Who.SYSTEM)
        holds.lapsed(session, actor, request, now=now)
        session.flush()
        workflow.record(
            session, actor, request, "expire", old, now=now,
            message=f"no claim by the deadline, {request.claim_deadline.isoformat()}",
        )  # fmt: skip
        audit.record(
            session, actor, "request.expire", object_type="fund_request", object_id=request.id,
            summary=f"{request.reference} expired: no claim by {request.claim_deadline}",
            before={"state": old}, after={"state": request.state},
            subject_partner_id=request.partner_id,
        )  # fmt: skip
        count += 1
    return count
