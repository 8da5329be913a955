"""Verification on the pages: the checks on the claim page, running a check again, and a
program's verification rules.

The claim page (web/claims.py) includes claims/_checks.html, which asks `claim_checks(claim)`
(a template helper registered here) for the claim's latest checks, their history and whether
the reader may run them again. Running one again posts to web.rerun_check; in the embedded
default the check runs right after the commit, so the page the browser is sent back to shows
the new result. The rules page reads and sets `verification.set_policy`.

Endpoints: web.rerun_check, web.program_verification, web.save_program_verification.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy.orm import Session
from wtforms import IntegerField, StringField, TextAreaField
from wtforms.validators import InputRequired, Optional

from mdfledger import programs, verification
from mdfledger.actor import Actor
from mdfledger.auth.access import request_actor, require_roles
from mdfledger.claims import Claim
from mdfledger.clock import ensure_utc
from mdfledger.db import get_read_session, get_session
from mdfledger.errors import DomainError, Forbidden, NotFound
from mdfledger.money import format_amount
from mdfledger.verification.service import RERUNNABLE
from mdfledger.web import bp, call_service, money, parse_money
from mdfledger.web.claims import claim_page
from mdfledger.web.partners import MANAGERS, STAFF, actor_names, is_manager
from mdfledger.web.requests import sentence

CHECK_LABELS = {
    "invoice": "Invoice",
    "amount": "Amount",
    "dates": "Dates",
    "page": "Landing page or post",
    "leads": "Lead list",
    "photo": "Photo",
}
OUTCOME_LABELS = {"pass": "Passed", "fail": "Failed", "inconclusive": "Inconclusive"}
TRIGGER_LABELS = {
    "submit": "on submission",
    "rerun": "run again",
    "recheck": "daily re-check",
}
# The invoice fields finance compares with the claim, as the reader names them.
INVOICE_FIELDS = (
    ("issuer", "Issuer"),
    ("number", "Number"),
    ("issued_on", "Date"),
    ("total", "Total"),
    ("currency", "Currency"),
)
# The lead list's counts, in the order a person reads them.
LEAD_COUNTS = (
    ("unique_leads", "Unique leads"),
    ("new_in_window", "New, inside the activity window"),
    ("required", "Required"),
    ("claimed_before", "Claimed in earlier claims"),
    ("outside_window", "Dated outside the window"),
    ("undated", "Without a readable date"),
    ("invalid", "Invalid e-mail addresses"),
    ("duplicates_in_file", "Duplicates in the file"),
)


# --- the claim page's section --------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimChecks:
    """What claims/_checks.html shows."""

    checks: list[verification.CheckView]  # the latest per check, failing first
    history: list[verification.CheckResult]  # every run, newest first
    names: dict[str, str]  # who asked for a run ("user:3") -> their name
    can_rerun: bool


def claim_checks(claim: Claim) -> ClaimChecks:
    """The claim's checks as the signed-in user may see them (the claim page already checked
    that they may see the claim)."""
    session = get_read_session()
    history = verification.check_history(session, claim)
    return ClaimChecks(
        checks=verification.latest_checks(session, claim),
        history=history,
        names=actor_names(session, {row.requested_by for row in history}),
        can_rerun=is_manager() and claim.state in RERUNNABLE,
    )


@dataclass(frozen=True)
class InvoiceRow:
    """One field read from an invoice, beside what the claim says."""

    label: str
    shown: str  # "" when the reader found nothing
    confidence: int | None
    line: str  # the invoice's line it came from
    claimed: str


def invoice_rows(reading: dict[str, Any], claim: Claim) -> list[InvoiceRow]:
    """The fields of one invoice's reading (the invoice check's evidence) for the page."""
    currency = _value(reading.get("currency"))
    claimed = {
        "issuer": claim.invoice_issuer,
        "number": claim.invoice_number,
        "issued_on": f"activity {claim.starts_on.isoformat()} to {claim.ends_on.isoformat()}",
        "total": f"{money(claim.actual_cost, claim.currency)} cost claimed",
        "currency": claim.currency,
    }
    rows = []
    for name, label in INVOICE_FIELDS:
        found = reading.get(name)
        value = _value(found)
        details = found if isinstance(found, dict) else {}
        if name == "total" and isinstance(value, int):
            # Minor units of the currency read; without one, as the reader wrote it out.
            shown = _amount(value, currency) if currency else str(details.get("formatted") or "")
        else:
            shown = "" if value is None else str(value)
        confidence = details.get("confidence")
        sure = confidence if isinstance(confidence, int) else None
        rows.append(InvoiceRow(label, shown, sure, str(details.get("line") or ""), claimed[name]))
    return rows


def _value(found: Any) -> Any:
    return found.get("value") if isinstance(found, dict) else found


def _amount(minor: int, currency: Any) -> str:
    try:
        return money(minor, str(currency))
    except DomainError:  # not a currency code: show the figure in minor units, as recorded
        return f"{minor} (minor units of {currency})"


def iso_when(text: Any) -> str:
    """'2026-03-02T14:05:33+00:00' (evidence times are ISO strings in UTC) as the pages show
    times: '2026-03-02 14:05 UTC'."""
    try:
        return ensure_utc(datetime.fromisoformat(str(text))).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return str(text)


@bp.app_context_processor
def _check_helpers() -> dict[str, Any]:
    return {
        "claim_checks": claim_checks,
        "invoice_rows": invoice_rows,
        "iso_when": iso_when,
        "check_labels": CHECK_LABELS,
        "outcome_labels": OUTCOME_LABELS,
        "trigger_labels": TRIGGER_LABELS,
        "invoice_fields": INVOICE_FIELDS,
        "lead_counts": LEAD_COUNTS,
    }


@bp.post("/claims/<int:claim_id>/checks/rerun")
@require_roles(*MANAGERS)
def rerun_check(claim_id: int) -> Any:
    kind = request.form.get("kind", "")
    typed = request.form.get("document_id", "").strip()
    # An id as the form sends it; anything else goes to the service, which words the refusal.
    document_id: object = int(typed) if typed.isascii() and typed.isdigit() else typed or None
    session = get_session()
    try:
        verification.rerun_check(session, request_actor(), claim_id, kind, document_id=document_id)
    except (NotFound, Forbidden):
        session.rollback()
        raise
    except DomainError as error:
        session.rollback()  # nothing is asked for
        return claim_page(claim_id, problem=sentence(error.message), status=error.http_status)
    session.commit()  # the embedded default runs the check now; a worker does elsewhere
    flash(f"The {CHECK_LABELS[kind].lower()} check is running again", "success")
    return redirect(url_for("web.claim", claim_id=claim_id) + "#checks")


# --- a program's rules ---------------------------------------------------------------------------


class RulesForm(FlaskForm):
    auto_approve_up_to = StringField(
        "Approve automatically up to (optional)",
        render_kw={"inputmode": "decimal", "autocomplete": "off"},
    )
    tolerance_bp = IntegerField(
        "Invoice tolerance (basis points)",
        validators=[InputRequired("Enter a whole number of basis points, such as 100.")],
        render_kw={"inputmode": "numeric"},
    )
    invoice_grace_days = IntegerField(
        "Invoice dates: days of grace",
        validators=[InputRequired("Enter a whole number of days, such as 30.")],
        render_kw={"inputmode": "numeric"},
    )
    page_markers = TextAreaField("Page markers", render_kw={"rows": 4})
    min_leads = IntegerField(
        "Minimum new leads (optional)", validators=[Optional()], render_kw={"inputmode": "numeric"}
    )
    recheck_days = IntegerField(
        "Re-check pages for (days)",
        validators=[InputRequired("Enter a whole number of days, such as 30.")],
        render_kw={"inputmode": "numeric"},
    )


def _rules_form(program: programs.Program, policy: verification.Policy) -> RulesForm:
    auto = policy.auto_approve_up_to
    return RulesForm(
        formdata=None,
        data={
            "auto_approve_up_to": "" if auto is None else format_amount(auto, program.currency),
            "tolerance_bp": policy.tolerance_bp,
            "invoice_grace_days": policy.invoice_grace_days,
            "page_markers": policy.page_markers,
            "min_leads": policy.min_leads,
            "recheck_days": policy.recheck_days,
        },
    )


def _rules_page(
    program: programs.Program, form: RulesForm | None = None, status: int = 200
) -> tuple[str, int]:
    policy = verification.policy_of(get_read_session(), program.id)
    page = render_template(
        "programs/verification.html",
        program=program,
        policy=policy,
        form=form or _rules_form(program, policy),
        manager=current_user.role in MANAGERS,
    )
    return page, status


@bp.get("/programs/<int:program_id>/verification")
@require_roles(*STAFF)
def program_verification(program_id: int) -> tuple[str, int]:
    return _rules_page(programs.get_program(get_read_session(), request_actor(), program_id))


@bp.post("/programs/<int:program_id>/verification")
@require_roles(*MANAGERS)
def save_program_verification(program_id: int) -> Any:
    program = programs.get_program(get_read_session(), request_actor(), program_id)
    form = RulesForm()
    if form.validate():

        def save(session: Session, actor: Actor) -> object:
            return verification.set_policy(
                session, actor, program.id,
                auto_approve_up_to=parse_money(
                    form.auto_approve_up_to.data, program.currency, "auto_approve_up_to",
                    required=False,
                ),
                tolerance_bp=form.tolerance_bp.data,
                invoice_grace_days=form.invoice_grace_days.data,
                page_markers=form.page_markers.data or "",
                min_leads=form.min_leads.data,
                recheck_days=form.recheck_days.data,
            )  # fmt: skip

        if call_service(form, save) is not None:
            flash(f"Verification rules of {program.code} saved", "success")
            return redirect(url_for("web.program_verification", program_id=program.id))
    return _rules_page(program, form, 422)
