"""Claims: draft, proof, submit (holding the money), and finance's decisions on them.

Services take a session and an actor, check everything, move money through the ledger, write
the timeline and the audit log, flush, and never commit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from mdfledger import audit, background, engagement
from mdfledger.actor import Actor
from mdfledger.auth.models import Role, User
from mdfledger.auth.scope import MANAGERS, check_partner, require_role
from mdfledger.claims import holds, workflow
from mdfledger.claims.models import (
    LINK_KINDS,
    ApprovalLimit,
    Claim,
    ClaimFlag,
    Document,
    DocumentKind,
    FlagKind,
    FundRequest,
    claim_reference,
)
from mdfledger.claims.rules import (
    CLAIM_TRANSITIONS,
    REQUEST_TRANSITIONS,
    ApprovalPolicy,
    ClaimState,
    RequestState,
    Who,
    approval_step,
    check_reason,
    invoice_key,
    max_claim,
    next_state,
)
from mdfledger.clock import ensure_utc, utcnow
from mdfledger.errors import Conflict, Forbidden, NotFound, ValidationError
from mdfledger.fields import clean_text, percent_text, positive_amount
from mdfledger.ledger.commands import is_id
from mdfledger.money import format_amount, validate_currency
from mdfledger.programs import rules as program_rules
from mdfledger.programs.models import Activity, Partner, Program, ProofType
from mdfledger.programs.service import get_program

WHAT = "claim"
SYSTEM = Actor.system("claims")
AUDITED = (
    "program_id", "partner_id", "activity_id", "request_id", "title", "starts_on", "ends_on",
    "actual_cost", "claimed_amount", "approved_amount", "invoice_issuer", "invoice_number",
    "invoice_total", "state",
)  # fmt: skip
EDITABLE = (
    "title", "description", "starts_on", "ends_on", "actual_cost", "claimed_amount",
    "invoice_issuer", "invoice_number", "invoice_total",
)  # fmt: skip
# Other claims that do not count as duplicates: never sent, or taken back.
_NOT_COMPARED = (ClaimState.DRAFT, ClaimState.WITHDRAWN, ClaimState.EXPIRED)
# Proof the catalog asks for -> the kind of document that provides it.
PROOF_DOCUMENTS = {
    ProofType.INVOICE: DocumentKind.INVOICE,
    ProofType.LANDING_PAGE: DocumentKind.LANDING_PAGE,
    ProofType.SOCIAL_POST: DocumentKind.SOCIAL_POST,
    ProofType.LEAD_LIST: DocumentKind.LEAD_LIST,
    ProofType.PHOTOS: DocumentKind.PHOTO,
}
MAX_DOCUMENTS = 20
BULK_MAX = 200


# --- drafting ------------------------------------------------------------------------------------


def create_claim(
    session: Session,
    actor: Actor,
    *,
    title: str,
    actual_cost: int,
    claimed_amount: int,
    request_id: int | None = None,
    program_id: int | None = None,
    activity_id: int | None = None,
    starts_on: date | None = None,
    ends_on: date | None = None,
    description: str = "",
    invoice_issuer: str = "",
    invoice_number: str = "",
    invoice_total: int | None = None,
    currency: str | None = None,
    partner_id: int | None = None,
    key: str | None = None,
    now: datetime | None = None,
) -> Claim:
    """A draft claim: against an approved request, or (where the program allows) directly
    against the partner's funds. Proof is added next; nothing is held until it is submitted."""
    full = workflow.full_key("claim", key)
    if full is not None:
        existing = session.scalar(select(Claim).where(Claim.idempotency_key == full))
        if existing is not None:
            check_partner(actor, existing.partner_id, WHAT)
            return existing
    now = ensure_utc(now or utcnow())
    if request_id is not None:
        request = workflow.load(session, FundRequest, request_id, actor, lock=True)
        partner = workflow.proposer_partner(session, actor, request.partner_id)
        program = _program(session, request.program_id)
        check_claimable(session, request)
        activity = workflow.activity_of(session, program, request.activity_id)
        deadline = request.claim_deadline
        starts_on = request.starts_on if starts_on is None else starts_on
        ends_on = request.ends_on if ends_on is None else ends_on
    else:
        partner = workflow.proposer_partner(session, actor, partner_id)
        if program_id is None:
            raise ValidationError("choose a pre-approved request or a program", field="program_id")
        program = get_program(session, actor, program_id)
        workflow.open_for_proposals(program, partner)
        if not program.direct_claims:
            raise Conflict(
                f"{program.code} pays only pre-approved activities: request pre-approval first",
                field="request_id",
            )
        activity = workflow.activity_of(session, program, activity_id)
        deadline = None
    if currency is not None and validate_currency(currency) != program.currency:
        raise ValidationError(
            f"{program.code} pays in {program.currency}: the claim cannot be in {currency}",
            field="currency",
        )
    terms = _check_terms(
        session, program, activity, request_id,
        {"title": title, "description": description, "starts_on": starts_on, "ends_on": ends_on,
         "actual_cost": actual_cost, "claimed_amount": claimed_amount,
         "invoice_issuer": invoice_issuer, "invoice_number": invoice_number,
         "invoice_total": invoice_total},
        deadline=deadline, today=workflow.today(program, now),
    )  # fmt: skip
    claim = Claim(
        program_id=program.id,
        partner_id=partner.id,
        activity_id=activity.id,
        request_id=request_id,
        currency=program.currency,
        state=ClaimState.DRAFT.value,
        flagged=False,
        created_by=actor.label,
        created_at=now,
        idempotency_key=full,
        **terms,
    )
    session.add(claim)
    session.flush()
    workflow.record(session, actor, claim, "create", None, amount=claim.claimed_amount, now=now)
    audit.record(
        session, actor, "claim.create", object_type="claim", object_id=claim.id,
        summary=f"Drafted {claim.reference} for {audit.money(claim.claimed_amount, claim.currency)}"
        f" ({claim.title})", after=audit.snapshot(claim, AUDITED), subject_partner_id=partner.id,
    )  # fmt: skip
    return claim


def check_claimable(session: Session, request: FundRequest) -> None:
    """A claim may be made against an approved request with no other claim in progress."""
    if request.state != RequestState.APPROVED:
        raise Conflict(
            f"{request.reference} is {request.state}: only an approved request can be claimed",
            field="request_id",
        )
    other = session.scalar(
        select(Claim).where(
            Claim.request_id == request.id,
            Claim.state.not_in([ClaimState.REJECTED, ClaimState.WITHDRAWN, ClaimState.EXPIRED]),
        )
    )
    if other is not None:
        raise Conflict(
            f"{other.reference} is already open against {request.reference}",
            field="request_id",
            claim_id=other.id,
        )


def _check_terms(
    session: Session,
    program: Program,
    activity: Activity,
    request_id: int | None,
    fields: dict[str, Any],
    *,
    deadline: date | None,
    today: date,
) -> dict[str, Any]:
    clean: dict[str, Any] = {
        "title": clean_text(fields["title"], "title", 200),
        "description": clean_text(fields.get("description"), "description", 5000, required=False),
        "actual_cost": positive_amount(fields["actual_cost"], "actual_cost"),
        "claimed_amount": positive_amount(fields["claimed_amount"], "claimed_amount"),
        "invoice_issuer": clean_text(fields.get("invoice_issuer"), "invoice_issuer", 200,
                                     required=False),
        "invoice_number": clean_text(fields.get("invoice_number"), "invoice_number", 100,
                                     required=False),
        "invoice_total": None if fields.get("invoice_total") is None
        else positive_amount(fields["invoice_total"], "invoice_total"),
    }  # fmt: skip
    clean["starts_on"], clean["ends_on"] = workflow.activity_dates(fields)
    if clean["starts_on"] > today:
        raise ValidationError(
            f"claim an activity once it has started: it starts on {clean['starts_on'].isoformat()}",
            field="starts_on",
        )
    if deadline is None:
        deadline = program_rules.claim_deadline(clean["ends_on"], program.claim_deadline_days)
    if deadline < today:
        raise ValidationError(
            f"the claim deadline for this activity was {deadline.isoformat()}: claims after it"
            " are refused",
            field="ends_on",
            deadline=deadline.isoformat(),
        )
    reserved = None
    if request_id is not None:
        request = session.get(FundRequest, request_id)
        assert request is not None
        reserved = request.approved_amount
    most = max_claim(clean["actual_cost"], program.share_bp, activity.cap, reserved)
    if clean["claimed_amount"] > most:
        cur = program.currency
        if reserved is not None and most == reserved:
            why = "the amount pre-approved"
        elif activity.cap is not None and most == activity.cap:
            why = f"the {activity.name} cap"
        else:
            why = f"{percent_text(program.share_bp)}% of the actual cost"
        raise ValidationError(
            f"at most {format_amount(most, cur)} {cur} may be claimed: {why}",
            field="claimed_amount",
            most=most,
        )
    clean["claim_deadline"] = deadline
    clean["invoice_key"] = invoice_key(
        clean["invoice_issuer"], clean["invoice_number"], clean["invoice_total"]
    )
    return clean


def update_claim(
    session: Session, actor: Actor, claim_id: int, *, now: datetime | None = None, **changes: Any
) -> Claim:
    """The partner edits a draft, or a claim finance returned."""
    claim = _editable(session, actor, claim_id)
    unknown = sorted(set(changes) - set(EDITABLE))
    if unknown:
        raise ValidationError(f"cannot change {', '.join(unknown)}", field=unknown[0])
    program = _program(session, claim.program_id)
    activity = _activity(session, claim.activity_id)
    current = {f: getattr(claim, f) for f in EDITABLE}
    deadline = claim.claim_deadline if claim.request_id is not None else None
    terms = _check_terms(
        session, program, activity, claim.request_id, {**current, **changes},
        deadline=deadline, today=workflow.today(program, now),
    )  # fmt: skip
    before = audit.snapshot(claim, AUDITED)
    for field, value in terms.items():
        setattr(claim, field, value)
    session.flush()
    old, new = audit.changed(before, audit.snapshot(claim, AUDITED))
    if new:
        audit.record(
            session, actor, "claim.update", object_type="claim", object_id=claim.id,
            summary=f"Changed {claim.reference}: {audit.describe(old, new)}",
            before=old, after=new, subject_partner_id=claim.partner_id,
        )  # fmt: skip
    return claim


def _editable(session: Session, actor: Actor, claim_id: object) -> Claim:
    claim = workflow.load(session, Claim, claim_id, actor, lock=True)
    if workflow.who(actor, claim.partner_id, WHAT) == Who.FINANCE:
        raise Forbidden("only the partner changes its claim; return it with a reason instead")
    if claim.state not in (ClaimState.DRAFT, ClaimState.RETURNED):
        raise Conflict(
            f"{claim.reference} is {claim.state.replace('_', ' ')}: only a draft or a returned"
            " claim can be changed"
        )
    return claim


# --- proof ---------------------------------------------------------------------------------------


def add_document(
    session: Session,
    actor: Actor,
    store: Any,
    claim_id: int,
    *,
    data: bytes,
    filename: str,
    kind: str,
    now: datetime | None = None,
) -> Document:
    """Check and store one proof file (type sniffed from its content) and attach it."""
    claim = _editable(session, actor, claim_id)
    kind = _kind(kind, links=False)
    _room_for_more(session, claim)
    name = clean_text(filename or "upload", "filename", 255)
    stored = store.put(data, filename=name)  # raises UploadRejected: nothing is attached
    document = Document(
        claim_id=claim.id, kind=kind, filename=name, sha256=stored.sha256, size=stored.size,
        media_type=stored.media_type, extension=stored.extension, uploaded_by=actor.label,
        uploaded_at=ensure_utc(now or utcnow()),
    )  # fmt: skip
    session.add(document)
    session.flush()
    audit.record(
        session, actor, "claim.document.add", object_type="claim", object_id=claim.id,
        summary=f"Added {kind.replace('_', ' ')} {name} to {claim.reference}",
        after={"document_id": document.id, "sha256": stored.sha256, "size": stored.size},
        subject_partner_id=claim.partner_id,
    )  # fmt: skip
    return document


def add_link(
    session: Session,
    actor: Actor,
    claim_id: int,
    *,
    url: str,
    kind: str,
    now: datetime | None = None,
) -> Document:
    """Attach the address of a live landing page or social post."""
    claim = _editable(session, actor, claim_id)
    kind = _kind(kind, links=True)
    _room_for_more(session, claim)
    address = clean_text(url, "url", 2000)
    scheme, _, rest = address.partition("://")
    if scheme.lower() not in ("http", "https") or not rest or " " in address:
        raise ValidationError(
            "give the full address of the page, starting with https://", field="url"
        )
    document = Document(
        claim_id=claim.id, kind=kind, url=address, uploaded_by=actor.label,
        uploaded_at=ensure_utc(now or utcnow()),
    )  # fmt: skip
    session.add(document)
    session.flush()
    audit.record(
        session, actor, "claim.document.add", object_type="claim", object_id=claim.id,
        summary=f"Added {kind.replace('_', ' ')} {address} to {claim.reference}",
        after={"document_id": document.id, "url": address}, subject_partner_id=claim.partner_id,
    )  # fmt: skip
    return document


def remove_document(session: Session, actor: Actor, document_id: int) -> Claim:
    document = get_document(session, actor, document_id)
    claim = _editable(session, actor, document.claim_id)
    shown = document.url or document.filename
    session.delete(document)
    session.flush()
    audit.record(
        session, actor, "claim.document.remove", object_type="claim", object_id=claim.id,
        summary=f"Removed {shown} from {claim.reference}",
        before={"document_id": document_id}, subject_partner_id=claim.partner_id,
    )  # fmt: skip
    return claim


def get_document(session: Session, actor: Actor, document_id: object) -> Document:
    document = session.get(Document, document_id) if is_id(document_id) else None
    if document is None:
        raise NotFound("document not found")
    check_partner(actor, document.claim.partner_id, "document")
    return document


def _kind(kind: object, *, links: bool) -> str:
    allowed = [k.value for k in DocumentKind if (k in LINK_KINDS) == links]
    if not isinstance(kind, str) or kind not in allowed:
        raise ValidationError(f"kind must be one of {', '.join(allowed)}", field="kind")
    return kind


def _room_for_more(session: Session, claim: Claim) -> None:
    count = len(session.scalars(select(Document.id).where(Document.claim_id == claim.id)).all())
    if count >= MAX_DOCUMENTS:
        raise Conflict(
            f"a claim holds at most {MAX_DOCUMENTS} documents: remove one first", field="file"
        )


def missing_proof(session: Session, claim: Claim) -> list[str]:
    """The proof the activity asks for that the claim does not have yet, as partners say it."""
    activity = _activity(session, claim.activity_id)
    have = {d.kind for d in claim.documents}
    needed = [ProofType(p) for p in activity.proof.split(",") if p]
    missing = [p.value.replace("_", " ") for p in needed if PROOF_DOCUMENTS[p] not in have]
    if ProofType.INVOICE in needed and claim.invoice_key is None:
        missing.append("the invoice's issuer, number and total")
    return missing


# --- submitting ----------------------------------------------------------------------------------


def submit_claim(
    session: Session,
    actor: Actor,
    claim_id: int,
    *,
    message: str | None = None,
    version: int | None = None,
    key: str | None = None,
    now: datetime | None = None,
) -> Claim:
    """Send the claim in: the money is held for it, duplicates are flagged, and its proof is
    checked after this commits (the checks approve it or send it to finance's queue)."""
    claim, full, now = workflow.begin(session, actor, Claim, claim_id, version, key, now)
    if workflow.replayed(session, claim, full):
        return claim
    new_state = next_state(CLAIM_TRANSITIONS, WHAT, claim.state, "submit", _who(actor, claim))
    note = clean_text(message, "message", 2000, required=False) or None
    program = _program(session, claim.program_id)
    partner = session.get(Partner, claim.partner_id)
    assert partner is not None
    today = workflow.today(program, now)
    if claim.claim_deadline < today:
        raise Conflict(
            f"the claim deadline was {claim.claim_deadline.isoformat()}: claims after it are"
            " refused",
            deadline=claim.claim_deadline.isoformat(),
        )
    missing = missing_proof(session, claim)
    if missing:
        raise ValidationError(
            f"add the proof this activity needs: {', '.join(missing)}", field="documents"
        )
    _hold_for(session, actor, claim, program, partner, today, now)
    old = claim.state
    claim.state, claim.submitted_by, claim.submitted_at = new_state, actor.label, now
    claim.reason_code = claim.reason = None
    _flag_duplicates(session, claim, now)
    session.flush()
    workflow.record(
        session, actor, claim, "submit", old, amount=claim.claimed_amount, message=note,
        key=full, now=now,
    )  # fmt: skip
    audit.record(
        session, actor, "claim.submit", object_type="claim", object_id=claim.id,
        summary=f"Submitted {claim.reference} for"
        f" {audit.money(claim.claimed_amount, claim.currency)}"
        + (f"; flagged: {len(claim.flags)} possible duplicate(s)" if claim.flagged else ""),
        before={"state": old}, after={"state": claim.state, "flagged": claim.flagged},
        subject_partner_id=claim.partner_id,
    )  # fmt: skip
    _announce(session, claim, "claim.submitted", now)
    # The proof is checked on a worker once this commits (verification.jobs); the checks then
    # approve the claim or send it to finance's queue.
    claim.state = next_state(CLAIM_TRANSITIONS, WHAT, claim.state, "verify", Who.SYSTEM)
    session.flush()
    workflow.record(session, SYSTEM, claim, "verify", ClaimState.SUBMITTED, now=now)
    background.enqueue(session, VERIFY_JOB, claim_id=claim.id)
    return claim


VERIFY_JOB = "verify_claim"


def send_to_review(
    session: Session,
    actor: Actor,
    claim_id: int,
    *,
    message: str,
    now: datetime | None = None,
) -> Claim:
    """The checks are done and a person must decide: the claim joins finance's queue, with
    `message` (what to look at) on its timeline. A claim no longer being verified is left as
    it is (a second run of the same checks)."""
    claim, _full, now = workflow.begin(session, actor, Claim, claim_id, None, None, now)
    if claim.state != ClaimState.VERIFYING:
        return claim
    claim.state = next_state(CLAIM_TRANSITIONS, WHAT, claim.state, "review", _who(actor, claim))
    session.flush()
    workflow.record(
        session, actor, claim, "review", ClaimState.VERIFYING, message=message[:2000], now=now
    )
    return claim


def _hold_for(
    session: Session,
    actor: Actor,
    claim: Claim,
    program: Program,
    partner: Partner,
    today: date,
    now: datetime,
) -> None:
    """Hold the claim's money: the request's reservation moves to it, or the funds are
    reserved directly. A resubmitted direct claim whose amount changed is held again."""
    held = holds.held(session, claim)
    if claim.request_id is not None:
        if held:
            return
        request = session.get(FundRequest, claim.request_id)
        assert request is not None
        if request.state != RequestState.APPROVED:
            raise Conflict(
                f"{request.reference} is {request.state}: its funds are no longer held",
                field="request_id",
            )
        holds.move(session, actor, request, claim, day=today, expires_at=None, now=now)
        return
    if held == claim.claimed_amount:
        return
    if program.status != "active":
        raise Conflict(f"program {program.code} is closed: it takes no new claims")
    if held:
        holds.release(session, actor, claim, day=today, now=now)
    holds.reserve(
        session, actor, claim, program, partner, claim.claimed_amount, day=today,
        expires_at=None, now=now,
    )  # fmt: skip


def _flag_duplicates(session: Session, claim: Claim, now: datetime) -> None:
    """Flag the claim when a file or an invoice in it is also in any other claim, of any
    partner. Flags are worked out again on every submission. `Claim.flagged` mirrors "has
    flags" on the row itself, so the queue filters and indexes it without a join."""
    session.execute(delete(ClaimFlag).where(ClaimFlag.claim_id == claim.id))
    others = select(Claim.id, Claim.partner_id).where(
        Claim.id != claim.id, Claim.state.not_in([s.value for s in _NOT_COMPARED])
    )
    found: list[tuple[FlagKind, str, int, int]] = []  # kind, what is shared, other claim, partner
    hashes = {d.sha256: d.filename for d in claim.documents if d.sha256}
    if hashes:
        same_files = session.execute(
            others.add_columns(Document.sha256)
            .join(Document, Document.claim_id == Claim.id)
            .where(Document.sha256.in_(list(hashes)))
            .distinct()
            .order_by(Claim.id, Document.sha256)
        )
        found += [(FlagKind.SAME_FILE, hashes[sha], i, p) for i, p, sha in same_files]
    if claim.invoice_key is not None:
        total = format_amount(claim.invoice_total or 0, claim.currency)
        invoice = f"invoice {claim.invoice_number} from {claim.invoice_issuer} for {total}"
        same_invoice = session.execute(
            others.where(Claim.invoice_key == claim.invoice_key).order_by(Claim.id)
        )
        found += [(FlagKind.SAME_INVOICE, f"{invoice} {claim.currency}", i, p)
                  for i, p in same_invoice]  # fmt: skip
    session.add_all(
        ClaimFlag(
            claim_id=claim.id, kind=kind.value, other_claim_id=other_id, created_at=now,
            detail=f"{what} is also {'claimed ' if kind == FlagKind.SAME_INVOICE else ''}in"
            f" {claim_reference(other_id)}"
            + ("" if other_partner == claim.partner_id else " of another partner"),
        )
        for kind, what, other_id, other_partner in found
    )  # fmt: skip
    claim.flagged = bool(found)
    session.flush()
    session.expire(claim, ["flags"])


# --- finance's decisions -------------------------------------------------------------------------


def approve_claim(
    session: Session,
    actor: Actor,
    claim_id: int,
    *,
    amount: int | None = None,
    reason_code: str | None = None,
    message: str | None = None,
    version: int | None = None,
    key: str | None = None,
    now: datetime | None = None,
) -> Claim:
    """Approve in full, or in part with a reason. The held money moves to claims payable (the
    rest is released) in this transaction. Above the program's threshold, two different
    approvers must approve the same amount: the first approval waits for the second."""
    claim, full, now = workflow.begin(session, actor, Claim, claim_id, version, key, now)
    if workflow.replayed(session, claim, full):
        return claim
    new_state = next_state(CLAIM_TRANSITIONS, WHAT, claim.state, "approve", _who(actor, claim))
    amount = claim.claimed_amount if amount is None else positive_amount(amount, "amount")
    cur = claim.currency
    if amount > claim.claimed_amount:
        raise ValidationError(
            f"at most the {format_amount(claim.claimed_amount, cur)} {cur} claimed can be approved",
            field="amount",
        )
    if amount < claim.claimed_amount:
        reason_code, message = check_reason(reason_code, message)
    else:
        reason_code = None
        message = clean_text(message, "reason", 2000, required=False) or None
    program = _program(session, claim.program_id)
    earlier: tuple[str, ...] = ()
    if claim.first_approval_by is not None:
        if claim.first_approval_amount != amount:
            first = format_amount(claim.first_approval_amount or 0, cur)
            raise Conflict(
                f"the first approver approved {first} {cur}: approve the same amount, or"
                " return the claim",
                field="amount",
            )
        earlier = (claim.first_approval_by,)
    policy = ApprovalPolicy(
        second_approver_above=program.second_approval_above,
        limits=workflow.limits(session, actor, cur),
    )
    step = approval_step(
        policy, amount, approver=actor.label,
        submitter=claim.submitted_by or claim.created_by, earlier_approvers=earlier,
    )  # fmt: skip
    old = claim.state
    if not step.complete:
        claim.first_approval_by, claim.first_approval_amount = actor.label, amount
        session.flush()
        workflow.record(
            session, actor, claim, "approve", old, amount=amount, reason_code=reason_code,
            message=message or step.message, key=full, now=now,
        )  # fmt: skip
        audit.record(
            session, actor, "claim.approve.first", object_type="claim", object_id=claim.id,
            summary=f"First approval of {claim.reference} for {audit.money(amount, cur)}:"
            " a second approver must confirm",
            after={"first_approval_amount": amount}, subject_partner_id=claim.partner_id,
        )  # fmt: skip
        return claim
    holds.settle(session, actor, claim, amount, day=workflow.today(program, now), now=now)
    claim.state, claim.approved_amount, claim.decided_at = new_state, amount, now
    claim.reason_code, claim.reason = reason_code, message
    claim.first_approval_by = claim.first_approval_amount = None
    session.flush()
    workflow.record(
        session, actor, claim, "approve", old, amount=amount, reason_code=reason_code,
        message=message, key=full, now=now,
    )  # fmt: skip
    if claim.request_id is not None:
        _request_claimed(session, actor, claim, now)
    # Paid out after this commits: at once where the program pays immediately (payouts).
    background.enqueue(session, APPROVED_JOB, claim_id=claim.id)
    _announce(session, claim, "claim.approved", now)
    partial = amount < claim.claimed_amount
    audit.record(
        session, actor, "claim.approve", object_type="claim", object_id=claim.id,
        summary=f"Approved {claim.reference} for {audit.money(amount, cur)}"
        + (f" of {audit.money(claim.claimed_amount, cur)} claimed: {message}" if partial else ""),
        before={"state": old},
        after={"state": claim.state, "approved_amount": amount, "reason_code": reason_code},
        subject_partner_id=claim.partner_id,
    )  # fmt: skip
    return claim


APPROVED_JOB = "claim_approved"


def mark_paid(
    session: Session,
    actor: Actor,
    claim_id: int,
    *,
    message: str,
    reference: str | None = None,
    now: datetime | None = None,
) -> Claim:
    """The claim's money reached the partner (a payout settled): approved -> paid, with the
    payout named on the timeline. A claim already paid is left as it is (webhooks repeat)."""
    claim, _full, now = workflow.begin(session, actor, Claim, claim_id, None, None, now)
    if claim.state == ClaimState.PAID:
        if _who(actor, claim) not in CLAIM_TRANSITIONS[(ClaimState.APPROVED, "pay")][1]:
            raise Forbidden("only finance and the payouts mark claims paid")
        return claim
    old = claim.state
    claim.state = next_state(CLAIM_TRANSITIONS, WHAT, old, "pay", _who(actor, claim))
    session.flush()
    note = clean_text(message, "message", 2000)
    workflow.record(
        session, actor, claim, "pay", old, amount=claim.approved_amount, message=note, now=now
    )
    _announce(
        session, claim, "claim.paid", now, amount=claim.approved_amount,
        payout_reference=reference or note,
    )  # fmt: skip
    audit.record(
        session, actor, "claim.pay", object_type="claim", object_id=claim.id,
        summary=f"Paid {claim.reference}: {note}", before={"state": old},
        after={"state": claim.state}, subject_partner_id=claim.partner_id,
    )  # fmt: skip
    return claim


def _announce(session: Session, claim: Claim, type: str, now: datetime, **extra: Any) -> None:
    """Tell the partner (engagement outbox, same transaction) what happened to the claim."""
    program = _program(session, claim.program_id)
    data: dict[str, Any] = {
        "claim_id": claim.id, "reference": claim.reference, "title": claim.title,
        "program": program.name, "program_code": program.code, "currency": claim.currency,
        "claimed": claim.claimed_amount, "approved": claim.approved_amount,
        "reason_code": claim.reason_code, "reason": claim.reason, **extra,
    }  # fmt: skip
    engagement.emit(
        session, type, partner_id=claim.partner_id, program_id=claim.program_id, data=data,
        now=now,
    )  # fmt: skip


def _request_claimed(session: Session, actor: Actor, claim: Claim, now: datetime) -> None:
    request = session.get(FundRequest, claim.request_id)
    assert request is not None
    old = request.state
    request.state = next_state(REQUEST_TRANSITIONS, "fund request", old, "claim", Who.FINANCE)
    session.flush()
    workflow.record(
        session, actor, request, "claim", old, amount=claim.approved_amount,
        message=f"{claim.reference} approved", now=now,
    )  # fmt: skip


def return_claim(
    session: Session,
    actor: Actor,
    claim_id: int,
    *,
    reason_code: str,
    message: str,
    version: int | None = None,
    key: str | None = None,
    now: datetime | None = None,
) -> Claim:
    """Send the claim back to the partner to fix or add proof; its money stays held."""
    return _decide(session, actor, claim_id, "return", reason_code, message, version, key, now)


def reject_claim(
    session: Session,
    actor: Actor,
    claim_id: int,
    *,
    reason_code: str,
    message: str,
    version: int | None = None,
    key: str | None = None,
    now: datetime | None = None,
) -> Claim:
    """Refuse the claim with a reason. Its money goes back: to the request's reservation while
    the claim deadline has not passed, otherwise to the funds."""
    return _decide(session, actor, claim_id, "reject", reason_code, message, version, key, now)


def withdraw_claim(
    session: Session,
    actor: Actor,
    claim_id: int,
    *,
    message: str | None = None,
    version: int | None = None,
    key: str | None = None,
    now: datetime | None = None,
) -> Claim:
    """The partner takes the claim back; its money goes back as on a rejection."""
    note = clean_text(message, "message", 2000, required=False) or None
    return _decide(session, actor, claim_id, "withdraw", None, note, version, key, now)


def _decide(
    session: Session,
    actor: Actor,
    claim_id: int,
    event: str,
    reason_code: str | None,
    message: str | None,
    version: int | None,
    key: str | None,
    now: datetime | None,
) -> Claim:
    claim, full, now = workflow.begin(session, actor, Claim, claim_id, version, key, now)
    if workflow.replayed(session, claim, full):
        return claim
    new_state = next_state(CLAIM_TRANSITIONS, WHAT, claim.state, event, _who(actor, claim))
    if event in ("return", "reject"):
        reason_code, message = check_reason(reason_code, message)
    if event in ("reject", "withdraw"):
        _give_back(session, actor, claim, now)
    old = claim.state
    claim.state, claim.reason_code, claim.reason = new_state, reason_code, message
    claim.first_approval_by = claim.first_approval_amount = None
    if event != "withdraw":
        claim.decided_at = now
    session.flush()
    workflow.record(
        session, actor, claim, event, old, reason_code=reason_code, message=message,
        key=full, now=now,
    )  # fmt: skip
    if event == "reject":
        _announce(session, claim, "claim.rejected", now)
    verbs = {"return": "Returned", "reject": "Rejected", "withdraw": "Withdrew"}
    audit.record(
        session, actor, f"claim.{event}", object_type="claim", object_id=claim.id,
        summary=f"{verbs[event]} {claim.reference}" + (f": {message}" if message else ""),
        before={"state": old}, after={"state": claim.state, "reason_code": reason_code},
        subject_partner_id=claim.partner_id,
    )  # fmt: skip
    return claim


def _give_back(session: Session, actor: Actor, claim: Claim, now: datetime) -> None:
    if not holds.held(session, claim):
        return
    program = _program(session, claim.program_id)
    today = workflow.today(program, now)
    request = session.get(FundRequest, claim.request_id) if claim.request_id else None
    if request is not None and request.claim_deadline >= today:
        expires = program_rules.end_of_day(request.claim_deadline, program.timezone)
        holds.move(session, actor, claim, request, day=today, expires_at=expires, now=now)
        return
    holds.release(session, actor, claim, day=today, now=now)
    if request is not None and request.state == RequestState.APPROVED:
        old = request.state
        request.state = next_state(REQUEST_TRANSITIONS, "fund request", old, "expire", Who.SYSTEM)
        session.flush()
        workflow.record(
            session, SYSTEM, request, "expire", old, now=now,
            message=f"{claim.reference} was not approved and the claim deadline,"
            f" {request.claim_deadline.isoformat()}, has passed",
        )  # fmt: skip


def expire_claims(session: Session, actor: Actor, *, now: datetime | None = None) -> int:
    """Drafts never submitted, and returned claims never resubmitted, by the claim deadline
    expire; money held for a returned claim goes back (see `reject_claim`)."""
    now = ensure_utc(now or utcnow())
    count = 0
    # Deadlines are local dates: a day's margin covers every timezone, the loop decides.
    candidates = session.scalars(
        select(Claim).where(
            Claim.state.in_([ClaimState.DRAFT, ClaimState.RETURNED]),
            Claim.claim_deadline < now.date() + timedelta(days=1),
        )
    ).all()
    for claim in candidates:
        program = _program(session, claim.program_id)
        if claim.claim_deadline >= workflow.today(program, now):
            continue
        old = claim.state
        claim.state = next_state(CLAIM_TRANSITIONS, WHAT, old, "expire", Who.SYSTEM)
        _give_back(session, actor, claim, now)
        session.flush()
        message = f"not submitted by the claim deadline, {claim.claim_deadline.isoformat()}"
        workflow.record(session, actor, claim, "expire", old, message=message, now=now)
        audit.record(
            session, actor, "claim.expire", object_type="claim", object_id=claim.id,
            summary=f"{claim.reference} expired: {message}", before={"state": old},
            after={"state": claim.state}, subject_partner_id=claim.partner_id,
        )  # fmt: skip
        count += 1
    return count


@dataclass(frozen=True)
class BulkResult:
    claim_id: int
    approved: bool
    message: str


def bulk_approve(
    session: Session,
    actor: Actor,
    claim_ids: Iterable[object],
    *,
    now: datetime | None = None,
) -> list[BulkResult]:
    """Approve clean claims in full, each on its own: a flagged claim, or one that cannot be
    approved now, is left as it is and says why."""
    require_role(actor, *MANAGERS)
    ids = list(dict.fromkeys(claim_ids))
    if not ids:
        raise ValidationError("choose the claims to approve", field="claim_ids")
    if len(ids) > BULK_MAX:
        raise ValidationError(f"approve at most {BULK_MAX} claims at once", field="claim_ids")
    results = []
    for claim_id in ids:
        try:
            with session.begin_nested():
                claim = workflow.load(session, Claim, claim_id, actor, lock=True)
                if claim.flagged:
                    raise Conflict("flagged as a possible duplicate: review it on its own")
                approved = approve_claim(session, actor, claim.id, now=now)
            done = approved.state == ClaimState.APPROVED
            results.append(
                BulkResult(approved.id, done, "approved" if done else "waits for a second approver")
            )
        except (Conflict, Forbidden, NotFound, ValidationError) as error:
            shown = claim_id if isinstance(claim_id, int) else 0
            results.append(BulkResult(shown, False, error.message))
    return results


# --- approval limits ------------------------------------------------------------------------------


def set_approval_limit(
    session: Session, actor: Actor, user_id: int, currency: str, max_amount: int | None
) -> None:
    """An admin sets (or, with None, removes) a finance user's approval limit in a currency."""
    require_role(actor, Role.ADMIN)
    user = session.get(User, user_id) if is_id(user_id) else None
    if user is None:
        raise NotFound("user not found")
    if user.role not in (Role.ADMIN, Role.FINANCE):
        raise ValidationError("only finance users and admins approve claims", field="user")
    validate_currency(currency)
    if max_amount is not None and (
        not isinstance(max_amount, int) or isinstance(max_amount, bool) or max_amount < 0
    ):
        raise ValidationError("the limit is an amount of zero or more", field="max_amount")
    row = session.scalar(
        select(ApprovalLimit).where(
            ApprovalLimit.user_id == user.id, ApprovalLimit.currency == currency
        )
    )
    before = None if row is None else row.max_amount
    if max_amount is None:
        if row is not None:
            session.delete(row)
    elif row is None:
        session.add(ApprovalLimit(user_id=user.id, currency=currency, max_amount=max_amount))
    else:
        row.max_amount = max_amount
    session.flush()
    shown = "no limit" if max_amount is None else audit.money(max_amount, currency)
    audit.record(
        session, actor, "user.approval_limit", object_type="user", object_id=user.id,
        summary=f"Set {user.email}'s approval limit in {currency} to {shown}",
        before={"max_amount": before}, after={"max_amount": max_amount, "currency": currency},
    )  # fmt: skip


# --- helpers -------------------------------------------------------------------------------------


def _who(actor: Actor, claim: Claim) -> Who:
    return workflow.who(actor, claim.partner_id, WHAT)


def _program(session: Session, program_id: int) -> Program:
    program = session.get(Program, program_id)
    assert program is not None
    return program


def _activity(session: Session, activity_id: int) -> Activity:
    activity = session.get(Activity, activity_id)
    assert activity is not None
    return activity


def get_claim(session: Session, actor: Actor, claim_id: object) -> Claim:
    return workflow.load(session, Claim, claim_id, actor, lock=False)
