"""Verification of a claim's proof: gather what the checks need, run them, record the results,
and decide (approve through the claims service as a system actor, or send to finance).

The three steps are separate so a job can run the slow part (OCR, fetching pages) with no
database transaction open: `gather` in one session, `run_checks` with none, `record` in a
writing session that locks the claim. `verify` does all three in one session (tests, CLI).
Services here never commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from mdfledger import audit, background, claims
from mdfledger.actor import Actor
from mdfledger.auth.scope import MANAGERS, require_role
from mdfledger.claims.models import LINK_KINDS, Claim, DocumentKind, FundRequest
from mdfledger.claims.rules import ClaimState
from mdfledger.clock import ensure_utc, utcnow
from mdfledger.errors import Conflict, DomainError, ValidationError
from mdfledger.fields import clean_text, positive_amount
from mdfledger.ledger.commands import is_id
from mdfledger.programs import rules as program_rules
from mdfledger.programs.models import Activity, Partner, Program
from mdfledger.programs.service import get_program
from mdfledger.storage import ProofStore
from mdfledger.verification import rules
from mdfledger.verification.fetch import FetchPolicy
from mdfledger.verification.invoice import InvoiceReading, compare_invoice, read_invoice
from mdfledger.verification.leads import check_leads, lead_key, read_leads
from mdfledger.verification.models import (
    DEFAULT_INVOICE_GRACE_DAYS,
    DEFAULT_MARKERS,
    DEFAULT_RECHECK_DAYS,
    DEFAULT_TOLERANCE_BP,
    CheckResult,
    ClaimedLead,
    Trigger,
    VerificationPolicy,
)
from mdfledger.verification.outcome import CheckKind, Finding, Outcome, Unreadable
from mdfledger.verification.pages import check_page
from mdfledger.verification.photos import check_photo

VERIFIER = Actor.system("verification")
RERUN_JOB = "rerun_check"
# Claims whose checks finance may run again: being decided, or decided (a page may go down).
RERUNNABLE = frozenset(
    {ClaimState.IN_REVIEW, ClaimState.APPROVED, ClaimState.PAID, ClaimState.REJECTED}
)
# Claims whose leads count as claimed before: sent in and not turned down.
COUNTED = (
    ClaimState.SUBMITTED,
    ClaimState.VERIFYING,
    ClaimState.IN_REVIEW,
    ClaimState.APPROVED,
    ClaimState.PAID,
)
# Which documents each check reads.
DOCUMENTS_FOR = {
    CheckKind.INVOICE: frozenset({DocumentKind.INVOICE}),
    CheckKind.PAGE: LINK_KINDS,
    CheckKind.LEADS: frozenset({DocumentKind.LEAD_LIST}),
    CheckKind.PHOTO: frozenset({DocumentKind.PHOTO}),
}
PER_DOCUMENT = (CheckKind.PAGE, CheckKind.LEADS, CheckKind.PHOTO)


# --- the program's rules -------------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    auto_approve_up_to: int | None = None
    tolerance_bp: int = DEFAULT_TOLERANCE_BP
    invoice_grace_days: int = DEFAULT_INVOICE_GRACE_DAYS
    page_markers: str = DEFAULT_MARKERS
    min_leads: int | None = None
    recheck_days: int = DEFAULT_RECHECK_DAYS


def policy_of(session: Session, program_id: int) -> Policy:
    """The program's verification rules (the defaults where it has none)."""
    row = session.get(VerificationPolicy, program_id)
    if row is None:
        return Policy()
    return Policy(
        row.auto_approve_up_to,
        row.tolerance_bp,
        row.invoice_grace_days,
        row.page_markers,
        row.min_leads,
        row.recheck_days,
    )


def set_policy(
    session: Session,
    actor: Actor,
    program_id: object,
    *,
    auto_approve_up_to: int | None,
    tolerance_bp: object,
    invoice_grace_days: object,
    page_markers: object,
    min_leads: object,
    recheck_days: object,
    now: datetime | None = None,
) -> VerificationPolicy:
    """Set a program's verification rules (admins and finance)."""
    require_role(actor, *MANAGERS)
    program = get_program(session, actor, program_id)
    auto = (
        None
        if auto_approve_up_to is None
        else positive_amount(auto_approve_up_to, "auto_approve_up_to")
    )
    values: dict[str, Any] = {
        "auto_approve_up_to": auto,
        "tolerance_bp": _whole(tolerance_bp, "tolerance_bp", 0, 10_000),
        "invoice_grace_days": _whole(invoice_grace_days, "invoice_grace_days", 0, 366),
        "page_markers": "\n".join(
            line.strip()
            for line in clean_text(page_markers, "page_markers", 2000, required=False).splitlines()
            if line.strip()
        ),
        "min_leads": None if min_leads is None else _whole(min_leads, "min_leads", 1, 1_000_000),
        "recheck_days": _whole(recheck_days, "recheck_days", 0, 366),
    }
    row = session.get(VerificationPolicy, program.id)
    before = None if row is None else {name: getattr(row, name) for name in values}
    if row is None:
        row = VerificationPolicy(program_id=program.id)
        session.add(row)
    for name, value in values.items():
        setattr(row, name, value)
    row.updated_by, row.updated_at = actor.label[:200], ensure_utc(now or utcnow())
    session.flush()
    audit.record(
        session, actor, "program.verification", object_type="program", object_id=program.id,
        summary=f"Changed the verification rules of {program.code}", before=before, after=values,
    )  # fmt: skip
    return row


def _whole(value: object, name: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValidationError(
            f"{name.replace('_', ' ')} must be a whole number from {low} to {high}", field=name
        )
    return value


# --- gathering -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Proof:
    """One document or link, detached from the session."""

    id: int
    kind: str
    filename: str
    sha256: str | None
    url: str | None


@dataclass(frozen=True)
class Work:
    """Everything the checks of one claim need, read in one go so no session stays open."""

    claim_id: int
    reference: str
    partner_id: int
    partner_name: str
    currency: str
    starts_on: date
    ends_on: date
    actual_cost: int
    claimed_amount: int
    share_bp: int
    submitted_on: date
    deadline: date
    request_window: tuple[date, date] | None
    required: tuple[CheckKind, ...]
    policy: Policy
    proof: tuple[Proof, ...]
    earlier_leads: frozenset[str] = field(default_factory=frozenset)
    only: tuple[CheckKind, int | None] | None = None  # a re-run of one check


def gather(
    session: Session, claim_id: int, *, only: tuple[CheckKind, int | None] | None = None
) -> Work:
    claim = session.get(Claim, claim_id)
    if claim is None:
        raise ValidationError("claim not found", field="claim_id")
    program = session.get(Program, claim.program_id)
    activity = session.get(Activity, claim.activity_id)
    partner = session.get(Partner, claim.partner_id)
    assert program is not None and activity is not None and partner is not None
    window = None
    if claim.request_id is not None:
        request = session.get(FundRequest, claim.request_id)
        assert request is not None
        window = (request.starts_on, request.ends_on)
    submitted = claim.submitted_at or utcnow()
    earlier = frozenset(
        session.scalars(
            select(ClaimedLead.lead_key)
            .join(Claim, Claim.id == ClaimedLead.claim_id)
            .where(
                ClaimedLead.partner_id == claim.partner_id,
                ClaimedLead.claim_id != claim.id,
                Claim.state.in_(COUNTED),
            )
        )
    )
    return Work(
        claim_id=claim.id,
        reference=claim.reference,
        partner_id=partner.id,
        partner_name=partner.name,
        currency=claim.currency,
        starts_on=claim.starts_on,
        ends_on=claim.ends_on,
        actual_cost=claim.actual_cost,
        claimed_amount=claim.claimed_amount,
        share_bp=program.share_bp,
        submitted_on=program_rules.business_date(submitted, program.timezone),
        deadline=claim.claim_deadline,
        request_window=window,
        required=rules.required_checks(activity.proof.split(",")),
        policy=policy_of(session, program.id),
        proof=tuple(Proof(d.id, d.kind, d.filename, d.sha256, d.url) for d in claim.documents),
        earlier_leads=earlier,
        only=only,
    )


# --- running -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Toolkit:
    """What the checks reach outside the database: the proof store and the web."""

    store: ProofStore
    fetch_policy: FetchPolicy = field(default_factory=FetchPolicy)
    ocr_max_pages: int = 5


@dataclass(frozen=True)
class Result:
    kind: CheckKind
    document_id: int | None
    finding: Finding
    lead_keys: tuple[str, ...] = ()


def run_checks(
    work: Work, kit: Toolkit, *, now: datetime | None = None, final: bool = True
) -> list[Result]:
    """Run the claim's checks (or the one being re-run). Slow: OCR and the network. Never
    raises for bad proof: unreadable documents give inconclusive or failed results. Unless
    `final`, a job will try again, so a server error stays inconclusive (and transient)."""
    now = ensure_utc(now or utcnow())
    kinds = work.required if work.only is None else (work.only[0],)
    results: list[Result] = []
    verified_cost: int | None = None
    if CheckKind.INVOICE in kinds or CheckKind.AMOUNT in kinds:
        invoice, verified_cost = _invoice(work, kit)
        if CheckKind.INVOICE in kinds:
            results.append(invoice)
    for kind in kinds:
        if kind in PER_DOCUMENT:
            results.extend(_per_document(work, kit, kind, now, final))
        elif kind == CheckKind.DATES:
            finding = rules.dates_finding(
                starts_on=work.starts_on, ends_on=work.ends_on, submitted_on=work.submitted_on,
                deadline=work.deadline, request_window=work.request_window,
            )  # fmt: skip
            results.append(Result(kind, None, finding))
        elif kind == CheckKind.AMOUNT:
            finding = rules.amount_finding(
                claimed=work.claimed_amount, currency=work.currency,
                actual_cost=work.actual_cost, share_bp=work.share_bp,
                verified_cost=verified_cost, invoice_needed=CheckKind.INVOICE in work.required,
            )  # fmt: skip
            results.append(Result(kind, None, finding))
    return results


def _documents(work: Work, kind: CheckKind) -> list[Proof]:
    wanted = DOCUMENTS_FOR[kind]
    found = [p for p in work.proof if p.kind in wanted]
    if work.only is not None and work.only[1] is not None:
        found = [p for p in found if p.id == work.only[1]]
    return found


def _missing(kind: CheckKind) -> Finding:
    what = {
        CheckKind.INVOICE: "an invoice",
        CheckKind.PAGE: "a link to the landing page or post",
        CheckKind.LEADS: "a lead list",
        CheckKind.PHOTO: "a photo",
    }[kind]
    return Finding(Outcome.INCONCLUSIVE, 0, f"The claim has no {what} to check")


def _read(kit: Toolkit, proof: Proof) -> bytes:
    assert proof.sha256 is not None
    try:
        return kit.store.open(proof.sha256)
    except DomainError as error:  # missing, or not the bytes that were stored
        raise Unreadable(f"the file could not be read from the proof store: {error}") from None


def _invoice(work: Work, kit: Toolkit) -> tuple[Result, int | None]:
    """The invoice check over every invoice of the claim, and the cost they prove (None when
    any total could not be read, in the claim's currency, with confidence)."""
    documents = _documents(replace(work, only=None), CheckKind.INVOICE)
    if not documents:
        return Result(CheckKind.INVOICE, None, _missing(CheckKind.INVOICE)), None
    readings: list[tuple[Proof, InvoiceReading]] = []
    unreadable: list[tuple[str, str]] = []
    for proof in documents:
        try:
            reading = read_invoice(_read(kit, proof), max_pages=kit.ocr_max_pages)
        except Unreadable as error:
            unreadable.append((proof.filename, str(error)))
            continue
        readings.append((proof, reading))
    finding = compare_invoice(
        [reading for _proof, reading in readings], currency=work.currency,
        actual_cost=work.actual_cost, starts_on=work.starts_on, ends_on=work.ends_on,
        partner_name=work.partner_name, tolerance_bp=work.policy.tolerance_bp,
        issued_grace_days=work.policy.invoice_grace_days, unreadable=unreadable,
    )  # fmt: skip
    evidence = dict(finding.evidence)
    evidence["documents"] = [
        {"document_id": proof.id, "filename": proof.filename, **reading.as_dict()}
        for proof, reading in readings
    ] + [{"filename": name, "error": reason} for name, reason in unreadable]
    finding = replace(finding, evidence=evidence)
    totals = [r.total.value for _p, r in readings if r.total.value is not None]
    proven = (
        not unreadable
        and readings
        and len(totals) == len(readings)
        and all(r.currency.value == work.currency for _p, r in readings)
        and all(r.total.confidence >= 60 for _p, r in readings)
    )
    return Result(CheckKind.INVOICE, None, finding), (sum(totals) if proven else None)


def _per_document(
    work: Work, kit: Toolkit, kind: CheckKind, now: datetime, final: bool
) -> list[Result]:
    documents = _documents(work, kind)
    if not documents:
        return [Result(kind, None, _missing(kind))]
    results = []
    for proof in documents:
        keys: tuple[str, ...] = ()
        if kind == CheckKind.PAGE:
            assert proof.url is not None
            marks = rules.markers(
                work.policy.page_markers, partner=work.partner_name, claim=work.reference
            )
            finding = check_page(proof.url, marks, kit.fetch_policy, now=now, final_attempt=final)
        else:
            try:
                data = _read(kit, proof)
                if kind == CheckKind.LEADS:
                    leads = read_leads(data, filename=proof.filename)
                    finding = check_leads(
                        leads, starts_on=work.starts_on, ends_on=work.ends_on,
                        earlier_keys=work.earlier_leads, required=work.policy.min_leads,
                    )  # fmt: skip
                    keys = tuple(sorted({lead_key(lead.email) for lead in leads.leads}))
                else:
                    finding = check_photo(
                        data, starts_on=work.starts_on, ends_on=work.ends_on,
                        grace_days=work.policy.invoice_grace_days,
                    )  # fmt: skip
            except Unreadable as error:
                finding = Finding(
                    Outcome.INCONCLUSIVE, 0, f"Could not read {proof.filename}: {error}",
                    {"filename": proof.filename, "error": str(error)},
                )  # fmt: skip
        evidence = {"document_id": proof.id, "filename": proof.filename, **finding.evidence}
        results.append(Result(kind, proof.id, replace(finding, evidence=evidence), keys))
    return results


# --- recording and deciding ----------------------------------------------------------------------


def record(
    session: Session,
    actor: Actor,
    work: Work,
    results: Sequence[Result],
    *,
    trigger: str,
    requested_by: str | None = None,
    now: datetime | None = None,
) -> rules.Decision | None:
    """Store the results and, for a submitted claim still being verified, decide. Returns the
    decision, or None when there was nothing to decide (a re-run, or another run of the same
    checks finished first: its results stand and these are dropped)."""
    now = ensure_utc(now or utcnow())
    claim = _lock(session, work.claim_id)
    if trigger == Trigger.SUBMIT and claim.state != ClaimState.VERIFYING:
        return None
    for result in results:
        session.add(
            CheckResult(
                claim_id=claim.id, kind=result.kind.value, document_id=result.document_id,
                outcome=result.finding.outcome.value, score=result.finding.score,
                summary=result.finding.summary[:2000], evidence=result.finding.evidence,
                trigger=trigger, requested_by=(requested_by or actor.label)[:200],
                checked_at=now,
            )
        )  # fmt: skip
    lead_keys = {
        key for result in results if result.kind == CheckKind.LEADS for key in result.lead_keys
    }
    if any(result.kind == CheckKind.LEADS for result in results) and work.only is None:
        session.execute(delete(ClaimedLead).where(ClaimedLead.claim_id == claim.id))
        session.add_all(
            ClaimedLead(claim_id=claim.id, partner_id=claim.partner_id, lead_key=key)
            for key in sorted(lead_keys)
        )
    session.flush()
    outcomes = [f"{r.kind.value} {r.finding.outcome.value}" for r in results]
    audit.record(
        session, actor, "claim.verify", object_type="claim", object_id=claim.id,
        summary=f"Checked the proof of {claim.reference}: {', '.join(outcomes) or 'nothing'}",
        after={"trigger": trigger, "results": outcomes}, subject_partner_id=claim.partner_id,
    )  # fmt: skip
    if trigger != Trigger.SUBMIT:
        return None
    findings: dict[CheckKind, list[Finding]] = {}
    for result in results:
        findings.setdefault(result.kind, []).append(result.finding)
    decision = rules.decide(
        work.required, findings, amount=claim.claimed_amount, currency=claim.currency,
        auto_approve_up_to=work.policy.auto_approve_up_to,
        second_approval_above=_program(session, claim).second_approval_above,
        flagged=claim.flagged,
    )  # fmt: skip
    if decision.approve:
        try:
            with session.begin_nested():
                claims.approve_claim(session, actor, claim.id, message=decision.reason, now=now)
            return decision
        except DomainError as error:  # e.g. the funds moved meanwhile: a person decides
            decision = rules.Decision(False, f"Could not approve automatically: {error}")
    claims.send_to_review(session, actor, claim.id, message=decision.reason, now=now)
    return decision


def _lock(session: Session, claim_id: int) -> Claim:
    statement = select(Claim).where(Claim.id == claim_id)
    if session.get_bind().dialect.name == "postgresql":
        statement = statement.with_for_update()
    claim = session.execute(statement.execution_options(populate_existing=True)).scalar_one()
    return claim


def _program(session: Session, claim: Claim) -> Program:
    program = session.get(Program, claim.program_id)
    assert program is not None
    return program


def verify(
    session: Session,
    actor: Actor,
    claim_id: int,
    kit: Toolkit,
    *,
    trigger: str = Trigger.SUBMIT,
    only: tuple[CheckKind, int | None] | None = None,
    requested_by: str | None = None,
    now: datetime | None = None,
) -> rules.Decision | None:
    """Gather, check and record in one session: for tests, the CLI and the in-process runner's
    callers that hold no other transaction."""
    work = gather(session, claim_id, only=only)
    results = run_checks(work, kit, now=now)
    return record(
        session, actor, work, results, trigger=trigger, requested_by=requested_by, now=now
    )


# --- finance: re-running a check, reading the results --------------------------------------------


def rerun_check(
    session: Session,
    actor: Actor,
    claim_id: object,
    kind: object,
    *,
    document_id: object = None,
    now: datetime | None = None,
) -> Claim:
    """Ask for one check of a claim to run again (on a worker, after this commits). The new
    result is added to the claim's history; the claim's state does not change."""
    require_role(actor, *MANAGERS)
    claim = claims.get_claim(session, actor, claim_id)
    if claim.state not in RERUNNABLE:
        raise Conflict(
            f"{claim.reference} is {claim.state.replace('_', ' ')}: checks run again only on"
            " claims in review or decided",
            state=claim.state,
        )
    try:
        check = CheckKind(kind)  # type: ignore[arg-type]
    except ValueError:
        raise ValidationError(
            f"choose a check: {', '.join(k.value for k in CheckKind)}", field="kind"
        ) from None
    document = None
    if document_id not in (None, ""):
        if not is_id(document_id) or check not in PER_DOCUMENT:
            raise ValidationError("choose a document of this claim", field="document_id")
        document = next((d for d in claim.documents if d.id == int(document_id)), None)  # type: ignore[arg-type]
        if document is None or document.kind not in DOCUMENTS_FOR[check]:
            raise ValidationError("choose a document of this claim", field="document_id")
    audit.record(
        session, actor, "claim.verify.rerun", object_type="claim", object_id=claim.id,
        summary=f"Asked for the {check.value} check of {claim.reference} to run again"
        + (f" on {document.filename or document.url}" if document is not None else ""),
        after={"kind": check.value, "document_id": None if document is None else document.id},
        subject_partner_id=claim.partner_id,
    )  # fmt: skip
    background.enqueue(
        session,
        RERUN_JOB,
        claim_id=claim.id,
        kind=check.value,
        document_id=None if document is None else document.id,
        requested_by=actor.label,
    )
    return claim


@dataclass(frozen=True)
class CheckView:
    """A check's latest result, and how many times it ran."""

    result: CheckResult
    runs: int


def latest_checks(session: Session, claim: Claim) -> list[CheckView]:
    """The claim's current results (the latest per check and document), failing first."""
    rows = session.scalars(
        select(CheckResult).where(CheckResult.claim_id == claim.id).order_by(CheckResult.id)
    )
    latest: dict[tuple[str, int | None], CheckResult] = {}
    runs: dict[tuple[str, int | None], int] = {}
    for row in rows:
        key = (row.kind, row.document_id)
        latest[key] = row
        runs[key] = runs.get(key, 0) + 1
    views = [CheckView(row, runs[key]) for key, row in latest.items()]
    return sorted(
        views, key=lambda v: (*rules.reading_order(v.result.kind, v.result.outcome), v.result.id)
    )


def check_history(session: Session, claim: Claim) -> list[CheckResult]:
    """Every result the claim's checks recorded, newest first."""
    return list(
        session.scalars(
            select(CheckResult)
            .where(CheckResult.claim_id == claim.id)
            .order_by(CheckResult.id.desc())
        )
    )


# --- schedules ------------------------------------------------------------------------------------


def pages_due(session: Session, *, now: datetime, every_hours: int = 24) -> list[tuple[int, int]]:
    """(claim, link) pairs whose page was last checked more than `every_hours` ago, for
    claims in review or approved within their program's re-check period."""
    now = ensure_utc(now)
    rows = session.execute(
        select(
            CheckResult.claim_id,
            CheckResult.document_id,
            CheckResult.checked_at,
            Claim.submitted_at,
            Claim.program_id,
        )
        .join(Claim, Claim.id == CheckResult.claim_id)
        .where(
            CheckResult.kind == CheckKind.PAGE.value,
            CheckResult.document_id.is_not(None),
            Claim.state.in_((ClaimState.IN_REVIEW, ClaimState.APPROVED, ClaimState.PAID)),
        )
        .order_by(CheckResult.id)
    ).all()
    last: dict[tuple[int, int], tuple[datetime, datetime | None, int]] = {}
    for claim_id, document_id, at, submitted, program_id in rows:
        last[(claim_id, document_id)] = (ensure_utc(at), submitted, program_id)
    policies: dict[int, Policy] = {}
    due = []
    for (claim_id, document_id), (at, submitted, program_id) in last.items():
        policy = policies.setdefault(program_id, policy_of(session, program_id))
        since = (now - ensure_utc(submitted or at)).days
        if since <= policy.recheck_days and (now - at).total_seconds() >= every_hours * 3600:
            due.append((claim_id, document_id))
    return due


def stalled(session: Session, *, now: datetime, minutes: int = 15) -> list[int]:
    """Claims still being verified `minutes` after they were submitted: their job was lost (a
    worker died, the broker was down) and must be sent again."""
    cutoff = ensure_utc(now) - timedelta(minutes=minutes)
    return list(
        session.scalars(
            select(Claim.id)
            .where(Claim.state == ClaimState.VERIFYING, Claim.submitted_at <= cutoff)
            .order_by(Claim.id)
        )
    )
