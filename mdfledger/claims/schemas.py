"""Fund requests and claims at the API edge: marshmallow schemas in, plain dicts out.

In: schemas check types and shapes (strict integers, dates, choices, no unknown fields); the
services check values. Money comes in as decimal strings and becomes minor units with
`programs.schemas.to_minor` once the currency is known (the program's, or the request's or
claim's), so a wrong precision is a 422 naming the field.

Out: the `*_out` functions turn requests, claims, documents and timeline events into dicts of
the documented shapes, money as decimal strings beside the currency.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import marshmallow as ma
from marshmallow import validate

from mdfledger.claims.models import (
    LINK_KINDS,
    Claim,
    ClaimEvent,
    ClaimFlag,
    Document,
    DocumentKind,
    FlagKind,
    FundRequest,
    claim_reference,
)
from mdfledger.claims.queue import SORTS
from mdfledger.claims.rules import ClaimState, ReasonCode, RequestState
from mdfledger.claims.service import BULK_MAX, BulkResult
from mdfledger.money import format_amount
from mdfledger.programs.schemas import (
    DecimalString,
    UploadedFile,
    choice_field,
    id_field,
    money_out,
    query_id_field,
)

FILE_KINDS = [k.value for k in DocumentKind if k not in LINK_KINDS]
LINK_KIND_VALUES = [k.value for k in DocumentKind if k in LINK_KINDS]


def _version() -> ma.fields.Integer:
    return ma.fields.Integer(
        strict=True,
        metadata={
            "description": "The version the caller last saw (from GET): if the object changed"
            " since, nothing happens and the answer is 409 saying what it is now"
        },
    )


# --- arguments -----------------------------------------------------------------------------------


class RequestListArgsSchema(ma.Schema):
    state = choice_field(RequestState)
    program_id = query_id_field()
    partner_id = query_id_field(metadata={"description": "Partner tokens see their own only"})


class RequestCreateSchema(ma.Schema):
    program_id = id_field(required=True)
    activity_id = id_field(required=True, metadata={"description": "From the program's catalog"})
    title = ma.fields.String(required=True, metadata={"example": "Q3 webinar series"})
    description = ma.fields.String()
    expected_outcome = ma.fields.String(metadata={"example": "150 qualified leads"})
    starts_on = ma.fields.Date(required=True)
    ends_on = ma.fields.Date(required=True)
    estimated_cost = DecimalString(required=True, metadata={"description": "The whole cost"})
    requested_amount = DecimalString(
        required=True,
        metadata={"description": "At most the program's share of the cost, within the cap"},
    )


class RequestUpdateSchema(ma.Schema):
    activity_id = id_field()
    title = ma.fields.String()
    description = ma.fields.String()
    expected_outcome = ma.fields.String()
    starts_on = ma.fields.Date()
    ends_on = ma.fields.Date()
    estimated_cost = DecimalString()
    requested_amount = DecimalString()


class ApprovalSchema(ma.Schema):
    amount = DecimalString(
        metadata={"description": "Less than asked needs reason_code and message; default: all"}
    )
    reason_code = choice_field(ReasonCode)
    message = ma.fields.String(metadata={"description": "Why; the partner reads it"})
    version = _version()


class ReasonedDecisionSchema(ma.Schema):
    reason_code = choice_field(ReasonCode, required=True)
    message = ma.fields.String(required=True, metadata={"description": "Why; the partner reads it"})
    version = _version()


class PartnerStepSchema(ma.Schema):
    message = ma.fields.String(metadata={"description": "An optional note for the timeline"})
    version = _version()


class ClaimListArgsSchema(ma.Schema):
    state = ma.fields.List(
        choice_field(ClaimState),
        metadata={
            "description": "Repeatable. Staff: default submitted, verifying and in_review (the"
            " queue); partners: default every state"
        },
    )
    program_id = query_id_field()
    partner_id = query_id_field(metadata={"description": "Staff only"})
    flagged = ma.fields.Boolean(metadata={"description": "Staff only: possible duplicates"})
    min_amount = DecimalString(
        metadata={
            "description": "Staff only: claimed at least this much, in the currency of"
            " program_id (needed unless every program has one currency)"
        }
    )
    max_amount = DecimalString(metadata={"description": "Staff only: claimed at most this much"})
    older_than_days = ma.fields.Integer(
        validate=validate.Range(min=0, max=36_500),
        metadata={"description": "Staff only: submitted at least this many days ago"},
    )
    sort = choice_field(
        SORTS, metadata={"description": "Staff only; default oldest (longest waiting first)"}
    )


class ClaimCreateSchema(ma.Schema):
    request_id = id_field(metadata={"description": "An approved request of yours; or program_id"})
    program_id = id_field(metadata={"description": "A direct claim, where the program allows it"})
    activity_id = id_field(metadata={"description": "With program_id"})
    title = ma.fields.String(required=True)
    description = ma.fields.String()
    starts_on = ma.fields.Date(metadata={"description": "Default: the request's"})
    ends_on = ma.fields.Date(metadata={"description": "Default: the request's"})
    actual_cost = DecimalString(required=True)
    claimed_amount = DecimalString(
        required=True,
        metadata={"description": "At most the share of the cost, the cap and the pre-approval"},
    )
    invoice_issuer = ma.fields.String()
    invoice_number = ma.fields.String()
    invoice_total = DecimalString(allow_none=True)
    currency = ma.fields.String(
        metadata={"example": "USD", "description": "Optional; must be the program's currency"}
    )


class ClaimUpdateSchema(ma.Schema):
    title = ma.fields.String()
    description = ma.fields.String()
    starts_on = ma.fields.Date()
    ends_on = ma.fields.Date()
    actual_cost = DecimalString()
    claimed_amount = DecimalString()
    invoice_issuer = ma.fields.String()
    invoice_number = ma.fields.String()
    invoice_total = DecimalString(allow_none=True)


class DocumentUploadSchema(ma.Schema):
    file = UploadedFile(
        required=True,
        metadata={"description": "PDF, PNG, JPEG, CSV or XLSX, judged by its content"},
    )
    kind = choice_field(FILE_KINDS, required=True)


class LinkCreateSchema(ma.Schema):
    url = ma.fields.String(
        required=True,
        validate=validate.Length(min=1, max=2000),
        metadata={"example": "https://acme.example/webinar"},
    )
    kind = choice_field(LINK_KIND_VALUES, required=True)


class BulkApproveSchema(ma.Schema):
    claim_ids = ma.fields.List(
        id_field(), required=True, validate=validate.Length(min=1, max=BULK_MAX)
    )


# --- responses -----------------------------------------------------------------------------------


class TimelineEventSchema(ma.Schema):
    event = ma.fields.String(required=True, metadata={"example": "approve"})
    from_state = ma.fields.String(required=True, allow_none=True)
    to_state = ma.fields.String(required=True)
    actor_name = ma.fields.String(required=True, metadata={"description": "As shown then"})
    role = ma.fields.String(required=True, allow_none=True)
    at = ma.fields.DateTime(required=True)
    amount = money_out("The amount of this step, if any", allow_none=True)
    reason_code = choice_field(ReasonCode, required=True, allow_none=True)
    message = ma.fields.String(required=True, allow_none=True)


class FundRequestSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    reference = ma.fields.String(required=True, metadata={"example": "REQ-000042"})
    program_id = ma.fields.Integer(required=True)
    partner_id = ma.fields.Integer(required=True)
    activity_id = ma.fields.Integer(required=True)
    currency = ma.fields.String(required=True)
    title = ma.fields.String(required=True)
    description = ma.fields.String(required=True)
    expected_outcome = ma.fields.String(required=True)
    starts_on = ma.fields.Date(required=True)
    ends_on = ma.fields.Date(required=True)
    estimated_cost = money_out()
    requested_amount = money_out()
    approved_amount = money_out("Set once approved", allow_none=True)
    claim_deadline = ma.fields.Date(required=True, metadata={"description": "Last day to claim"})
    state = choice_field(RequestState, required=True)
    reason_code = choice_field(ReasonCode, required=True, allow_none=True)
    reason = ma.fields.String(
        required=True, allow_none=True, metadata={"description": "Of the last step"}
    )
    submitted_at = ma.fields.DateTime(required=True)
    decided_at = ma.fields.DateTime(required=True, allow_none=True)
    version = ma.fields.Integer(required=True, metadata={"description": "Send it with decisions"})


class FundRequestDetailSchema(FundRequestSchema):
    held = money_out("Held in the partner's funds for it now")
    claim_ids = ma.fields.List(
        ma.fields.Integer(), required=True, metadata={"description": "Claims against it"}
    )
    timeline = ma.fields.List(ma.fields.Nested(TimelineEventSchema), required=True)


class DocumentSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    claim_id = ma.fields.Integer(required=True)
    kind = choice_field(DocumentKind, required=True)
    filename = ma.fields.String(required=True, metadata={"description": "Files only; links: ''"})
    media_type = ma.fields.String(required=True, allow_none=True)
    size = ma.fields.Integer(required=True, allow_none=True)
    sha256 = ma.fields.String(required=True, allow_none=True)
    url = ma.fields.String(
        required=True, allow_none=True, metadata={"description": "Links: the page's address"}
    )
    download_url = ma.fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "Files: where to GET the content (with the token)"},
    )
    uploaded_at = ma.fields.DateTime(required=True)


class FlagSchema(ma.Schema):
    kind = choice_field(FlagKind, required=True)
    other_claim_id = ma.fields.Integer(required=True)
    other_reference = ma.fields.String(required=True, metadata={"example": "CLM-000017"})
    detail = ma.fields.String(required=True)
    created_at = ma.fields.DateTime(required=True)


class ClaimSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    reference = ma.fields.String(required=True, metadata={"example": "CLM-000042"})
    program_id = ma.fields.Integer(required=True)
    partner_id = ma.fields.Integer(required=True)
    activity_id = ma.fields.Integer(required=True)
    request_id = ma.fields.Integer(required=True, allow_none=True)
    currency = ma.fields.String(required=True)
    title = ma.fields.String(required=True)
    description = ma.fields.String(required=True)
    starts_on = ma.fields.Date(required=True)
    ends_on = ma.fields.Date(required=True)
    actual_cost = money_out()
    claimed_amount = money_out()
    approved_amount = money_out("Set once approved", allow_none=True)
    claim_deadline = ma.fields.Date(required=True)
    invoice_issuer = ma.fields.String(required=True)
    invoice_number = ma.fields.String(required=True)
    invoice_total = money_out(allow_none=True)
    state = choice_field(ClaimState, required=True)
    flagged = ma.fields.Boolean(required=True, metadata={"description": "Possible duplicate"})
    reason_code = choice_field(ReasonCode, required=True, allow_none=True)
    reason = ma.fields.String(required=True, allow_none=True)
    first_approval_amount = money_out(
        "Approved once, waiting for a second approver", allow_none=True
    )
    created_at = ma.fields.DateTime(required=True)
    submitted_at = ma.fields.DateTime(required=True, allow_none=True)
    decided_at = ma.fields.DateTime(required=True, allow_none=True)
    version = ma.fields.Integer(required=True, metadata={"description": "Send it with decisions"})


class ClaimDetailSchema(ClaimSchema):
    held = money_out("Held in the partner's funds for it now")
    documents = ma.fields.List(ma.fields.Nested(DocumentSchema), required=True)
    missing_proof = ma.fields.List(
        ma.fields.String(),
        required=True,
        metadata={"description": "What the activity needs before the claim can be submitted"},
    )
    flags = ma.fields.List(ma.fields.Nested(FlagSchema), required=True)
    timeline = ma.fields.List(ma.fields.Nested(TimelineEventSchema), required=True)


class BulkResultSchema(ma.Schema):
    claim_id = ma.fields.Integer(required=True)
    approved = ma.fields.Boolean(required=True)
    message = ma.fields.String(required=True, metadata={"description": "Why not, when not"})


class BulkApprovalSchema(ma.Schema):
    results = ma.fields.List(ma.fields.Nested(BulkResultSchema), required=True)


# --- presenters ----------------------------------------------------------------------------------


def _amount(minor: int | None, currency: str) -> str | None:
    return None if minor is None else format_amount(minor, currency)


def event_out(event: ClaimEvent, currency: str) -> dict[str, Any]:
    return {
        "event": event.event,
        "from_state": event.from_state,
        "to_state": event.to_state,
        "actor_name": event.actor_name,
        "role": event.role,
        "at": event.at,
        "amount": _amount(event.amount, currency),
        "reason_code": event.reason_code,
        "message": event.message,
    }


def request_out(request: FundRequest) -> dict[str, Any]:
    cur = request.currency
    return {
        **{
            name: getattr(request, name)
            for name in (
                "id", "reference", "program_id", "partner_id", "activity_id", "currency", "title",
                "description", "expected_outcome", "starts_on", "ends_on", "claim_deadline",
                "state", "reason_code", "reason", "submitted_at", "decided_at", "version",
            )
        },
        "estimated_cost": format_amount(request.estimated_cost, cur),
        "requested_amount": format_amount(request.requested_amount, cur),
        "approved_amount": _amount(request.approved_amount, cur),
    }  # fmt: skip


def request_detail_out(
    request: FundRequest, *, held: int, claim_ids: list[int], timeline: list[ClaimEvent]
) -> dict[str, Any]:
    return {
        **request_out(request),
        "held": format_amount(held, request.currency),
        "claim_ids": claim_ids,
        "timeline": [event_out(e, request.currency) for e in timeline],
    }


def claim_out(claim: Claim) -> dict[str, Any]:
    cur = claim.currency
    return {
        **{
            name: getattr(claim, name)
            for name in (
                "id", "reference", "program_id", "partner_id", "activity_id", "request_id",
                "currency", "title", "description", "starts_on", "ends_on", "claim_deadline",
                "invoice_issuer", "invoice_number", "state", "flagged", "reason_code", "reason",
                "created_at", "submitted_at", "decided_at", "version",
            )
        },
        "actual_cost": format_amount(claim.actual_cost, cur),
        "claimed_amount": format_amount(claim.claimed_amount, cur),
        "approved_amount": _amount(claim.approved_amount, cur),
        "invoice_total": _amount(claim.invoice_total, cur),
        "first_approval_amount": _amount(claim.first_approval_amount, cur),
    }  # fmt: skip


def document_out(document: Document, download_url: str | None) -> dict[str, Any]:
    return {
        "id": document.id,
        "claim_id": document.claim_id,
        "kind": document.kind,
        "filename": document.filename,
        "media_type": document.media_type,
        "size": document.size,
        "sha256": document.sha256,
        "url": document.url,
        "download_url": None if document.is_link else download_url,
        "uploaded_at": document.uploaded_at,
    }


def flag_out(flag: ClaimFlag) -> dict[str, Any]:
    return {
        "kind": flag.kind,
        "other_claim_id": flag.other_claim_id,
        "other_reference": claim_reference(flag.other_claim_id),
        "detail": flag.detail,
        "created_at": flag.created_at,
    }


def claim_detail_out(
    claim: Claim,
    *,
    held: int,
    missing_proof: list[str],
    timeline: list[ClaimEvent],
    download_url: Callable[[Document], str],
) -> dict[str, Any]:
    return {
        **claim_out(claim),
        "held": format_amount(held, claim.currency),
        "documents": [document_out(d, download_url(d)) for d in claim.documents],
        "missing_proof": missing_proof,
        "flags": [flag_out(f) for f in claim.flags],
        "timeline": [event_out(e, claim.currency) for e in timeline],
    }


def bulk_out(results: list[BulkResult]) -> dict[str, Any]:
    return {
        "results": [
            {"claim_id": r.claim_id, "approved": r.approved, "message": r.message} for r in results
        ]
    }
