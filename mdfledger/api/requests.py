"""Fund requests (pre-approval) over the API: propose, read with the timeline, edit when
returned, and finance's decisions.

Thin handlers: parse (mdfledger.claims.schemas) -> one service call with the caller's Actor ->
commit -> present. Partners propose, edit, withdraw and resubmit; admins and finance decide;
auditors read. The services scope partners: another partner's request is 404, exactly as an
unknown id. Decisions take the Idempotency-Key header (a retry is answered with the request
and changes nothing) and `version` (a decision on a stale view is 409).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mdfledger import claims, programs
from mdfledger.api import API_PREFIX
from mdfledger.api.auth import api_actor, require_roles
from mdfledger.api.blueprint import Blueprint
from mdfledger.api.errors import documented_errors
from mdfledger.api.pagination import PageArgsSchema, page_schema, paginate
from mdfledger.auth.models import Role
from mdfledger.auth.scope import MANAGERS
from mdfledger.claims import Claim, FundRequest
from mdfledger.claims import schemas as s
from mdfledger.db import get_read_session, get_session
from mdfledger.errors import ValidationError
from mdfledger.programs.schemas import IdempotencyHeaderSchema, to_minor

blp = Blueprint(
    "requests",
    __name__,
    url_prefix=API_PREFIX,
    description="Fund requests: partners ask for pre-approval of an activity; finance approves"
    " (holding the funds until the claim deadline), returns or rejects",
)

PARTNER = Role.PARTNER


errors = documented_errors(blp)


# --- shared with the claims API ------------------------------------------------------------------


@contextmanager
def body_field_names() -> Iterator[None]:
    """The services name a decision's message `reason`; the API body calls it `message`."""
    try:
        yield
    except ValidationError as error:
        if error.details.get("field") == "reason":
            error.details["field"] = "message"
        raise


def amounts(args: dict[str, Any], currency: str, *names: str) -> dict[str, Any]:
    """`args` with the named decimal strings (where present) in minor units of `currency`."""
    return {
        name: to_minor(value, currency, name) if name in names and value is not None else value
        for name, value in args.items()
    }


# --- presenting ----------------------------------------------------------------------------------


def _detail(session: Session, request: FundRequest) -> dict[str, Any]:
    claim_ids = list(
        session.scalars(select(Claim.id).where(Claim.request_id == request.id).order_by(Claim.id))
    )
    return s.request_detail_out(
        request,
        held=claims.held(session, request),
        claim_ids=claim_ids,
        timeline=claims.timeline(session, request),
    )


def _done(session: Session, request: FundRequest) -> dict[str, Any]:
    session.commit()
    return _detail(session, request)


def _step(
    step: Callable[..., FundRequest],
    request_id: int,
    args: dict[str, Any],
    headers: dict[str, Any],
    *money: str,
) -> dict[str, Any]:
    """One workflow step on a request (withdraw, resubmit, a decision) with the
    Idempotency-Key; the `money` fields of `args` are decimal strings in its currency."""
    session, actor = get_session(), api_actor()
    if money:
        args = amounts(args, claims.get_request(session, actor, request_id).currency, *money)
    with body_field_names():
        request = step(session, actor, request_id, key=headers.get("key"), **args)
    return _done(session, request)


# --- reading -------------------------------------------------------------------------------------


class RequestListArgsSchema(PageArgsSchema, s.RequestListArgsSchema):
    pass


@blp.route("/requests", methods=["GET"])
@blp.arguments(RequestListArgsSchema, location="query")
@blp.response(200, page_schema(s.FundRequestSchema))
@errors()
def list_requests(args: dict[str, Any]) -> dict[str, Any]:
    """Fund requests

    Newest first, filtered by state, program and partner. A partner token sees its own
    partner's only.
    """
    filters = {k: args.get(k) for k in ("state", "program_id", "partner_id")}
    page = paginate(get_read_session(), claims.requests_query(api_actor(), **filters), args)
    return {**page, "items": [s.request_out(r) for r in page["items"]]}


@blp.route("/requests/<int:request_id>", methods=["GET"])
@blp.response(200, s.FundRequestDetailSchema)
@errors(404)
def get_request(request_id: int) -> dict[str, Any]:
    """A fund request

    Its terms, what is held for it, the claims against it and its timeline: every step with
    who took it, when, and why.
    """
    session = get_read_session()
    return _detail(session, claims.get_request(session, api_actor(), request_id))


# --- the partner's side --------------------------------------------------------------------------


@blp.route("/requests", methods=["POST"])
@require_roles(PARTNER)
@blp.arguments(s.RequestCreateSchema)
@blp.arguments(IdempotencyHeaderSchema, location="headers")
@blp.response(201, s.FundRequestDetailSchema)
@errors(404, 409)
def create_request(args: dict[str, Any], headers: dict[str, Any]) -> dict[str, Any]:
    """Ask for pre-approval

    One activity from the program's catalog, with its dates, estimated cost and the amount
    asked: at most the program's share of the cost, within the activity's cap (422 naming
    `requested_amount` otherwise). Amounts are decimal strings in the program's currency. A
    retry with the same Idempotency-Key answers with the request it made, again 201.
    """
    session, actor = get_session(), api_actor()
    program = programs.get_program(session, actor, args["program_id"])
    fields = amounts(args, program.currency, "estimated_cost", "requested_amount")
    request = claims.create_request(session, actor, key=headers.get("key"), **fields)
    return _done(session, request)


@blp.route("/requests/<int:request_id>", methods=["PATCH"])
@require_roles(PARTNER)
@blp.arguments(s.RequestUpdateSchema)
@blp.response(200, s.FundRequestDetailSchema)
@errors(404, 409)
def update_request(args: dict[str, Any], request_id: int) -> dict[str, Any]:
    """Change a returned request

    Only a request finance returned for more information can be changed; then resubmit it.
    The terms are checked again as a whole.
    """
    session, actor = get_session(), api_actor()
    request = claims.get_request(session, actor, request_id)
    fields = amounts(args, request.currency, "estimated_cost", "requested_amount")
    request = claims.update_request(session, actor, request.id, **fields)
    return _done(session, request)


@blp.route("/requests/<int:request_id>/withdraw", methods=["POST"])
@require_roles(PARTNER)
@blp.arguments(s.PartnerStepSchema)
@blp.arguments(IdempotencyHeaderSchema, location="headers")
@blp.response(200, s.FundRequestDetailSchema)
@errors(404, 409)
def withdraw_request(args: dict[str, Any], headers: dict[str, Any], request_id: int) -> Any:
    """Withdraw a request

    Submitted, returned or approved (funds held for it go back); not while a claim against it
    is open.
    """
    return _step(claims.withdraw_request, request_id, args, headers)


@blp.route("/requests/<int:request_id>/resubmit", methods=["POST"])
@require_roles(PARTNER)
@blp.arguments(s.PartnerStepSchema)
@blp.arguments(IdempotencyHeaderSchema, location="headers")
@blp.response(200, s.FundRequestDetailSchema)
@errors(404, 409)
def resubmit_request(args: dict[str, Any], headers: dict[str, Any], request_id: int) -> Any:
    """Send a returned request back to finance

    With an optional note; its terms must still hold.
    """
    return _step(claims.resubmit_request, request_id, args, headers)


# --- finance's decisions -------------------------------------------------------------------------


@blp.route("/requests/<int:request_id>/approve", methods=["POST"])
@require_roles(*MANAGERS)
@blp.arguments(s.ApprovalSchema)
@blp.arguments(IdempotencyHeaderSchema, location="headers")
@blp.response(200, s.FundRequestDetailSchema)
@errors(404, 409)
def approve_request(args: dict[str, Any], headers: dict[str, Any], request_id: int) -> Any:
    """Approve a request

    In full, or for less with a reason_code and message the partner reads. The amount is held
    in the partner's funds until the claim deadline (409 when they hold less). Approval limits
    apply (403 above yours).
    """
    return _step(claims.approve_request, request_id, args, headers, "amount")


@blp.route("/requests/<int:request_id>/return", methods=["POST"])
@require_roles(*MANAGERS)
@blp.arguments(s.ReasonedDecisionSchema)
@blp.arguments(IdempotencyHeaderSchema, location="headers")
@blp.response(200, s.FundRequestDetailSchema)
@errors(404, 409)
def return_request(args: dict[str, Any], headers: dict[str, Any], request_id: int) -> Any:
    """Return a request for more information

    The partner may change it and resubmit; nothing is held meanwhile.
    """
    return _step(claims.return_request, request_id, args, headers)


@blp.route("/requests/<int:request_id>/reject", methods=["POST"])
@require_roles(*MANAGERS)
@blp.arguments(s.ReasonedDecisionSchema)
@blp.arguments(IdempotencyHeaderSchema, location="headers")
@blp.response(200, s.FundRequestDetailSchema)
@errors(404, 409)
def reject_request(args: dict[str, Any], headers: dict[str, Any], request_id: int) -> Any:
    """Reject a request

    A submitted or returned request, with a reason_code and message the partner reads.
    """
    return _step(claims.reject_request, request_id, args, headers)
