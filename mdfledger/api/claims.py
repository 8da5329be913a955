"""Claims over the API: draft, proof (files and links), submit, finance's review queue and
decisions, bulk approval, and proof downloads.

Thin handlers: parse (mdfledger.claims.schemas) -> one service call with the caller's Actor ->
commit -> present. Partners draft, upload, submit and withdraw; admins and finance decide;
auditors read. Another partner's claim or document is 404, exactly as an unknown id.
Decisions take the Idempotency-Key header and `version`, as on fund requests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Response, redirect, url_for
from sqlalchemy.orm import Session

from mdfledger import claims, programs
from mdfledger.api import API_PREFIX
from mdfledger.api.auth import api_actor, require_roles
from mdfledger.api.blueprint import Blueprint
from mdfledger.api.errors import documented_errors
from mdfledger.api.pagination import PageArgsSchema, page_schema, paginate
from mdfledger.api.requests import amounts, body_field_names
from mdfledger.auth.models import Role
from mdfledger.auth.scope import MANAGERS, partner_scope
from mdfledger.claims import Claim, Document
from mdfledger.claims import schemas as s
from mdfledger.db import get_read_session, get_session
from mdfledger.errors import NotFound, ValidationError
from mdfledger.money import validate_currency
from mdfledger.programs.schemas import IdempotencyHeaderSchema, to_minor
from mdfledger.storage import FILE_TYPES, app_store, content_disposition, download_filename

blp = Blueprint(
    "claims",
    __name__,
    url_prefix=API_PREFIX,
    description="Claims: drafts with proof, submission (holding the funds), finance's review"
    " queue and decisions, proof downloads",
)

PARTNER = Role.PARTNER
CLAIM_MONEY = ("actual_cost", "claimed_amount", "invoice_total")


errors = documented_errors(blp)


# --- presenting ----------------------------------------------------------------------------------


def _content_url(document: Document) -> str:
    return url_for("claims.document_content", claim_id=document.claim_id, document_id=document.id)


def _detail(session: Session, claim: Claim) -> dict[str, Any]:
    return s.claim_detail_out(
        claim,
        held=claims.held(session, claim),
        missing_proof=claims.missing_proof(session, claim),
        timeline=claims.timeline(session, claim),
        download_url=_content_url,
    )


def _done(session: Session, claim: Claim) -> dict[str, Any]:
    session.commit()
    # Documents and flags change beside the claim row: read them as committed.
    session.expire(claim, ["documents", "flags"])
    return _detail(session, claim)


def _step(
    step: Callable[..., Claim],
    claim_id: int,
    args: dict[str, Any],
    headers: dict[str, Any],
    *money: str,
) -> dict[str, Any]:
    """One workflow step on a claim (submit, withdraw, a decision) with the Idempotency-Key;
    the `money` fields of `args` are decimal strings in the claim's currency."""
    session, actor = get_session(), api_actor()
    if money:
        args = amounts(args, claims.get_claim(session, actor, claim_id).currency, *money)
    with body_field_names():
        claim = step(session, actor, claim_id, key=headers.get("key"), **args)
    return _done(session, claim)


# --- reading -------------------------------------------------------------------------------------


class ClaimListArgsSchema(PageArgsSchema, s.ClaimListArgsSchema):
    pass


@blp.route("/claims", methods=["GET"])
@blp.arguments(ClaimListArgsSchema, location="query")
@blp.response(200, page_schema(s.ClaimSchema))
@errors(404)
def list_claims(args: dict[str, Any]) -> dict[str, Any]:
    """Claims: a partner's own, or finance's review queue

    A partner token: its own claims, newest first, by state (repeatable) and program; the
    other filters are for staff and change nothing. Staff: the review queue, by default the
    claims waiting for a decision (submitted, verifying, in_review), oldest first; filter by
    program, partner, state (repeatable), flagged, claimed amount (decimal strings in the
    program's currency) and age; sort oldest, newest, amount_desc or amount_asc.
    """
    session, actor = get_read_session(), api_actor()
    states = tuple(dict.fromkeys(args.get("state") or ()))
    if partner_scope(actor) is not None:
        statement = claims.claims_query(actor, program_id=args.get("program_id"))
        if states:
            statement = statement.where(Claim.state.in_(states))
    else:
        wanted: dict[str, Any] = {
            k: args[k]
            for k in ("program_id", "partner_id", "flagged", "older_than_days", "sort")
            if args.get(k) is not None
        }
        if states:
            wanted["states"] = states
        bounds = {k: args[k] for k in ("min_amount", "max_amount") if args.get(k) is not None}
        if bounds:
            currency = claims.queue_currency(
                session, actor, args.get("program_id"), next(iter(bounds))
            )
            wanted.update({k: to_minor(v, currency, k) for k, v in bounds.items()})
        statement = claims.review_queue(actor, claims.QueueFilter(**wanted))
    page = paginate(session, statement, args)
    return {**page, "items": [s.claim_out(c) for c in page["items"]]}


@blp.route("/claims/<int:claim_id>", methods=["GET"])
@blp.response(200, s.ClaimDetailSchema)
@errors(404)
def get_claim(claim_id: int) -> dict[str, Any]:
    """A claim

    Its terms and amounts, what is held for it, its documents (files with a download link,
    links with their address), possible-duplicate flags, the proof still missing before it can
    be submitted, and its timeline with every reason given.
    """
    session = get_read_session()
    return _detail(session, claims.get_claim(session, api_actor(), claim_id))


@blp.route("/claims/<int:claim_id>/documents/<int:document_id>/content", methods=["GET"])
@blp.doc(
    responses={
        "200": {
            "description": "The file as stored, named in Content-Disposition (attachment)",
            "content": {
                media_type: {"schema": {"type": "string", "format": "binary"}}
                for media_type in sorted({t.media_type for t in FILE_TYPES})
            },
        },
        "302": {
            "description": "Where the store keeps it (S3): a presigned link valid for five minutes",
            "headers": {"Location": {"schema": {"type": "string"}}},
        },
    }
)
@errors(404)
def document_content(claim_id: int, document_id: int) -> Response:
    """Download a proof file

    The bytes (local store) or a redirect to a short-lived presigned link (S3). Links have no
    content: their address is in the claim's documents.
    """
    session, actor = get_read_session(), api_actor()
    claim = claims.get_claim(session, actor, claim_id)
    document = _document_of(session, claim, document_id)
    if document.sha256 is None:
        raise NotFound(f"document {document.id} is a link: it has no stored content")
    store = app_store()
    name = download_filename(document.filename, document.extension or "bin")
    link = store.download_url(document.sha256, filename=name)
    if link is not None:
        response = redirect(link, code=302)
    else:
        response = Response(store.open(document.sha256), mimetype=document.media_type)
        response.headers["Content-Disposition"] = content_disposition(name)
        response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-store"
    return response


def _document_of(session: Session, claim: Claim, document_id: int) -> Document:
    document = claims.get_document(session, api_actor(), document_id)
    if document.claim_id != claim.id:
        raise NotFound("document not found")
    return document


# --- the partner's side --------------------------------------------------------------------------


@blp.route("/claims", methods=["POST"])
@require_roles(PARTNER)
@blp.arguments(s.ClaimCreateSchema)
@blp.arguments(IdempotencyHeaderSchema, location="headers")
@blp.response(201, s.ClaimDetailSchema)
@errors(404, 409)
def create_claim(args: dict[str, Any], headers: dict[str, Any]) -> dict[str, Any]:
    """Draft a claim

    Against an approved request of yours (request_id; dates default to the request's), or
    directly against your funds where the program allows it (program_id and activity_id).
    Amounts are decimal strings in the program's currency; `currency`, if sent, must be it.
    At most the program's share of the actual cost, within the activity's cap and the
    pre-approved amount (422 naming `claimed_amount`). Add proof next, then submit. A retry
    with the same Idempotency-Key answers with the claim it made, again 201.
    """
    session, actor = get_session(), api_actor()
    if args.get("currency") is not None:
        # Amounts are read in the currency the caller names; the service then refuses one
        # that is not the program's, saying which it is.
        currency = validate_currency(args["currency"])
    elif args.get("request_id") is not None:
        currency = claims.get_request(session, actor, args["request_id"]).currency
    elif args.get("program_id") is not None:
        currency = programs.get_program(session, actor, args["program_id"]).currency
    else:
        raise ValidationError("choose a pre-approved request or a program", field="request_id")
    fields = amounts(args, currency, *CLAIM_MONEY)
    claim = claims.create_claim(session, actor, key=headers.get("key"), **fields)
    return _done(session, claim)


@blp.route("/claims/<int:claim_id>", methods=["PATCH"])
@require_roles(PARTNER)
@blp.arguments(s.ClaimUpdateSchema)
@blp.response(200, s.ClaimDetailSchema)
@errors(404, 409)
def update_claim(args: dict[str, Any], claim_id: int) -> dict[str, Any]:
    """Change a draft or returned claim

    The terms are checked again as a whole; invoice_total null clears it.
    """
    session, actor = get_session(), api_actor()
    claim = claims.get_claim(session, actor, claim_id)
    claim = claims.update_claim(
        session, actor, claim.id, **amounts(args, claim.currency, *CLAIM_MONEY)
    )
    return _done(session, claim)


@blp.route("/claims/<int:claim_id>/documents", methods=["POST"])
@require_roles(PARTNER)
@blp.arguments(s.DocumentUploadSchema, location="multipart")
@blp.response(201, s.DocumentSchema)
@errors(404, 409)
def add_document(args: dict[str, Any], claim_id: int) -> dict[str, Any]:
    """Upload a proof file

    multipart/form-data with `file` and `kind`. The type is judged from the content (PDF, PNG,
    JPEG, CSV, XLSX), never the name; anything else, or a file over the size limit, is 422
    `upload_rejected` and nothing is stored. Draft or returned claims only; at most 20
    documents.
    """
    upload = args["file"]
    session = get_session()
    document = claims.add_document(
        session, api_actor(), app_store(), claim_id, data=upload.read(),
        filename=upload.filename or "", kind=args["kind"],
    )  # fmt: skip
    session.commit()
    return s.document_out(document, _content_url(document))


@blp.route("/claims/<int:claim_id>/links", methods=["POST"])
@require_roles(PARTNER)
@blp.arguments(s.LinkCreateSchema)
@blp.response(201, s.DocumentSchema)
@errors(404, 409)
def add_link(args: dict[str, Any], claim_id: int) -> dict[str, Any]:
    """Add a link as proof

    The full address (https://...) of a live landing page or social post.
    """
    session = get_session()
    document = claims.add_link(session, api_actor(), claim_id, **args)
    session.commit()
    return s.document_out(document, None)


@blp.route("/claims/<int:claim_id>/documents/<int:document_id>", methods=["DELETE"])
@require_roles(PARTNER)
@blp.response(200, s.ClaimDetailSchema)
@errors(404, 409)
def remove_document(claim_id: int, document_id: int) -> dict[str, Any]:
    """Remove a document

    From a draft or returned claim. Answers with the claim.
    """
    session, actor = get_session(), api_actor()
    claim = claims.get_claim(session, actor, claim_id)
    document = _document_of(session, claim, document_id)
    claim = claims.remove_document(session, actor, document.id)
    return _done(session, claim)


@blp.route("/claims/<int:claim_id>/submit", methods=["POST"])
@require_roles(PARTNER)
@blp.arguments(s.PartnerStepSchema)
@blp.arguments(IdempotencyHeaderSchema, location="headers")
@blp.response(200, s.ClaimDetailSchema)
@errors(404, 409)
def submit_claim(args: dict[str, Any], headers: dict[str, Any], claim_id: int) -> Any:
    """Submit a claim

    Needs the proof the activity asks for (422 naming what is missing) and the claim deadline
    not passed (409). The money is held for it (a request's reservation moves to it), possible
    duplicates are flagged, and it waits in finance's queue (in_review).
    """
    return _step(claims.submit_claim, claim_id, args, headers)


@blp.route("/claims/<int:claim_id>/withdraw", methods=["POST"])
@require_roles(PARTNER)
@blp.arguments(s.PartnerStepSchema)
@blp.arguments(IdempotencyHeaderSchema, location="headers")
@blp.response(200, s.ClaimDetailSchema)
@errors(404, 409)
def withdraw_claim(args: dict[str, Any], headers: dict[str, Any], claim_id: int) -> Any:
    """Withdraw a claim

    Before finance decides. What was held goes back to the request while its claim deadline
    has not passed, otherwise to the funds.
    """
    return _step(claims.withdraw_claim, claim_id, args, headers)


# --- finance's decisions -------------------------------------------------------------------------


@blp.route("/claims/<int:claim_id>/approve", methods=["POST"])
@require_roles(*MANAGERS)
@blp.arguments(s.ApprovalSchema)
@blp.arguments(IdempotencyHeaderSchema, location="headers")
@blp.response(200, s.ClaimDetailSchema)
@errors(404, 409)
def approve_claim(args: dict[str, Any], headers: dict[str, Any], claim_id: int) -> Any:
    """Approve a claim

    In full, or in part with a reason_code and message the partner reads: the amount moves to
    claims payable and the rest of the hold is released. Nobody approves their own
    submission; approval limits apply (403); above the program's threshold a second,
    different approver must approve the same amount (the first approval answers with
    `first_approval_amount` set and the claim still in_review).
    """
    return _step(claims.approve_claim, claim_id, args, headers, "amount")


@blp.route("/claims/<int:claim_id>/return", methods=["POST"])
@require_roles(*MANAGERS)
@blp.arguments(s.ReasonedDecisionSchema)
@blp.arguments(IdempotencyHeaderSchema, location="headers")
@blp.response(200, s.ClaimDetailSchema)
@errors(404, 409)
def return_claim(args: dict[str, Any], headers: dict[str, Any], claim_id: int) -> Any:
    """Return a claim to the partner

    To fix it or add proof; its money stays held.
    """
    return _step(claims.return_claim, claim_id, args, headers)


@blp.route("/claims/<int:claim_id>/reject", methods=["POST"])
@require_roles(*MANAGERS)
@blp.arguments(s.ReasonedDecisionSchema)
@blp.arguments(IdempotencyHeaderSchema, location="headers")
@blp.response(200, s.ClaimDetailSchema)
@errors(404, 409)
def reject_claim(args: dict[str, Any], headers: dict[str, Any], claim_id: int) -> Any:
    """Reject a claim

    With a reason_code and message the partner reads. Its money goes back to the request
    while its claim deadline has not passed, otherwise to the funds.
    """
    return _step(claims.reject_claim, claim_id, args, headers)


@blp.route("/claims/bulk-approve", methods=["POST"])
@require_roles(*MANAGERS)
@blp.arguments(s.BulkApproveSchema)
@blp.response(200, s.BulkApprovalSchema)
@errors()
def bulk_approve(args: dict[str, Any]) -> dict[str, Any]:
    """Approve several claims in full

    Each on its own: a flagged claim, or one that cannot be approved now, is left as it is and
    its result says why. At most 200 at once.
    """
    session = get_session()
    results = claims.bulk_approve(session, api_actor(), args["claim_ids"])
    session.commit()
    return s.bulk_out(results)
