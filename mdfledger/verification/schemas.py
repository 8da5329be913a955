"""Verification at the API edge: marshmallow schemas in, plain dicts out.

In: strict shapes (no unknown fields, strict integers, known check kinds); the services check
values. The automatic-approval limit comes in as a decimal string in the program's currency.

Out: a check's latest result and its history as recorded, with the evidence each check saw.
Money in the evidence (the amount check's figures, the invoices' totals) goes out as decimal
strings beside the currency, like every amount of the API.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import validate

from mdfledger.errors import ValidationError
from mdfledger.money import format_amount
from mdfledger.programs.models import Program
from mdfledger.programs.schemas import DecimalString, choice_field, id_field, money_out
from mdfledger.verification.models import CheckResult, Trigger
from mdfledger.verification.outcome import CheckKind, Outcome
from mdfledger.verification.service import Policy

MARKER_MAX = 200  # one marker's characters; the service limits all of them together to 2000
# Whole numbers in the evidence that are money in its `currency`, by check.
EVIDENCE_MONEY: dict[str, tuple[str, ...]] = {
    CheckKind.AMOUNT.value: ("claimed", "actual_cost", "verified_cost", "allowed"),
    CheckKind.INVOICE.value: ("claimed_cost", "tolerance", "sum", "difference"),
}
EVIDENCE = (
    "What the check saw, by kind. invoice: `documents` (per invoice: document_id, filename;"
    " issuer, number, issued_on, total and currency, each {value, confidence 0-100, line};"
    " total.value a decimal string; pages read, method, notes, the text read; or `error`),"
    " currency, claimed_cost, tolerance, sum, difference (decimal strings), tolerance_bp,"
    " dates_allowed, problems; page: status,"
    " requested_url, final_url, redirects, title, excerpt, markers (marker, found, score,"
    " match, in, where), fetched_at, error; leads: unique_leads, new_in_window, required,"
    " claimed_before, outside_window, undated, invalid, duplicates_in_file and masked"
    " examples; photo: width, height, format, taken_on; dates: starts_on, ends_on,"
    " submitted_on, deadline, request_window; amount: claimed, actual_cost, verified_cost,"
    " allowed (decimal strings), share_bp, currency. Per-document checks add document_id and"
    " filename; a file that could not be read has `error`."
)


# --- arguments -----------------------------------------------------------------------------------


class RerunSchema(ma.Schema):
    kind = choice_field(
        CheckKind, required=True, metadata={"description": "The check to run again"}
    )
    document_id = id_field(
        allow_none=True,
        metadata={
            "description": "For page, leads and photo checks: one document or link of the"
            " claim (default: all of that kind)"
        },
    )


class _Marker(ma.fields.String):
    """One marker: text on one line."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if "\n" in text or "\r" in text:
            raise ma.ValidationError("One marker per item: no line breaks.")
        return text


class RulesUpdateSchema(ma.Schema):
    """The whole of a program's rules (PUT replaces them)."""

    auto_approve_up_to = DecimalString(
        required=True,
        allow_none=True,
        metadata={
            "description": "Claims up to this amount (program currency) whose checks all pass"
            " are approved without a person; null: every claim goes to finance"
        },
    )
    tolerance_bp = ma.fields.Integer(
        strict=True,
        required=True,
        metadata={
            "example": 100,
            "description": "How far an invoice total may differ from the claimed cost, in basis"
            " points of the cost (100 = 1%), 0 to 10000",
        },
    )
    invoice_grace_days = ma.fields.Integer(
        strict=True,
        required=True,
        metadata={
            "example": 30,
            "description": "Days before and after the activity an invoice may be dated, 0-366",
        },
    )
    page_markers = ma.fields.List(
        _Marker(validate=validate.Length(min=1, max=MARKER_MAX)),
        required=True,
        metadata={
            "example": ["{partner}", "Q3-CLOUD"],
            "description": "Texts every landing page and post must show; {partner} is the"
            " partner's name, {claim} the claim's reference. [] : pages need only be live",
        },
    )
    min_leads = ma.fields.Integer(
        strict=True,
        required=True,
        allow_none=True,
        metadata={"description": "New leads a lead list must prove; null: no minimum"},
    )
    recheck_days = ma.fields.Integer(
        strict=True,
        required=True,
        metadata={
            "example": 30,
            "description": "Days after submission that pages are checked again daily, 0-366",
        },
    )


# --- responses -----------------------------------------------------------------------------------


class CheckSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    kind = choice_field(CheckKind, required=True)
    document_id = ma.fields.Integer(
        required=True,
        allow_none=True,
        metadata={"description": "The document or link checked (per-document checks)"},
    )
    outcome = choice_field(
        Outcome, required=True, metadata={"description": "inconclusive: a person must look"}
    )
    score = ma.fields.Integer(
        required=True, metadata={"description": "0-100: how well the proof matched"}
    )
    summary = ma.fields.String(required=True, metadata={"description": "The sentence to read"})
    evidence = ma.fields.Dict(required=True, metadata={"description": EVIDENCE})
    trigger = choice_field(
        (Trigger.SUBMIT, Trigger.RERUN, Trigger.RECHECK),
        required=True,
        metadata={"description": "submit, rerun (asked for by finance) or recheck (daily)"},
    )
    requested_by = ma.fields.String(
        required=True, metadata={"example": "user:7", "description": "Who asked for this run"}
    )
    checked_at = ma.fields.DateTime(required=True)


class LatestCheckSchema(CheckSchema):
    runs = ma.fields.Integer(required=True, metadata={"description": "How many times it ran"})


class ClaimChecksSchema(ma.Schema):
    claim_id = ma.fields.Integer(required=True)
    state = ma.fields.String(
        required=True, metadata={"description": "The claim's state; verifying: checks running"}
    )
    checks = ma.fields.List(
        ma.fields.Nested(LatestCheckSchema),
        required=True,
        metadata={"description": "The latest result of each check, failing first"},
    )
    history = ma.fields.List(
        ma.fields.Nested(CheckSchema),
        required=True,
        metadata={"description": "Every run, newest first"},
    )


class RerunAcceptedSchema(ma.Schema):
    claim_id = ma.fields.Integer(required=True)
    kind = choice_field(CheckKind, required=True)
    document_id = ma.fields.Integer(required=True, allow_none=True)
    checks_url = ma.fields.String(
        required=True, metadata={"description": "Where the new result will appear"}
    )


class RulesSchema(ma.Schema):
    program_id = ma.fields.Integer(required=True)
    currency = ma.fields.String(required=True)
    auto_approve_up_to = money_out("null: every claim goes to finance", allow_none=True)
    tolerance_bp = ma.fields.Integer(required=True)
    invoice_grace_days = ma.fields.Integer(required=True)
    page_markers = ma.fields.List(ma.fields.String(), required=True)
    min_leads = ma.fields.Integer(required=True, allow_none=True)
    recheck_days = ma.fields.Integer(required=True)


# --- presenters ----------------------------------------------------------------------------------


def _money(value: Any, currency: Any) -> Any:
    """Minor units as a decimal string when they are an amount in a known currency."""
    if isinstance(value, int) and not isinstance(value, bool) and isinstance(currency, str):
        try:
            return format_amount(value, currency)
        except ValidationError:  # not a currency code: leave the figure as it was recorded
            return value
    return value


def evidence_out(kind: str, evidence: dict[str, Any], currency: str) -> dict[str, Any]:
    """The evidence as recorded, its money as decimal strings: the amount check's figures in
    their currency, each invoice's total in the currency read from it (the claim's `currency`
    when none was read)."""
    out = dict(evidence)
    for name in EVIDENCE_MONEY.get(kind, ()):
        if name in out:
            out[name] = _money(out[name], out.get("currency") or currency)
    if kind == CheckKind.INVOICE:
        out["documents"] = [_invoice_document(d, currency) for d in out.get("documents") or ()]
    return out


def _invoice_document(document: Any, currency: str) -> Any:
    total = document.get("total") if isinstance(document, dict) else None
    if not isinstance(total, dict):
        return document  # an invoice that could not be read: filename and error
    read = document.get("currency")
    code = read.get("value") if isinstance(read, dict) else None
    return {**document, "total": {**total, "value": _money(total.get("value"), code or currency)}}


def check_out(row: CheckResult, currency: str, runs: int | None = None) -> dict[str, Any]:
    """One run of a check; `currency` is the claim's."""
    out = {
        "id": row.id,
        "kind": row.kind,
        "document_id": row.document_id,
        "outcome": row.outcome,
        "score": row.score,
        "summary": row.summary,
        "evidence": evidence_out(row.kind, row.evidence or {}, currency),
        "trigger": row.trigger,
        "requested_by": row.requested_by,
        "checked_at": row.checked_at,
    }
    if runs is not None:
        out["runs"] = runs
    return out


def markers_out(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def policy_out(program: Program, policy: Policy) -> dict[str, Any]:
    auto = policy.auto_approve_up_to
    return {
        "program_id": program.id,
        "currency": program.currency,
        "auto_approve_up_to": None if auto is None else format_amount(auto, program.currency),
        "tolerance_bp": policy.tolerance_bp,
        "invoice_grace_days": policy.invoice_grace_days,
        "page_markers": markers_out(policy.page_markers),
        "min_leads": policy.min_leads,
        "recheck_days": policy.recheck_days,
    }
