"""Payouts over the API: partners' payout details, programs' payout policies, what is payable,
payout runs, payouts with their claims and timeline, finance's actions, the payment file.

Thin handlers: parse (mdfledger.payouts.schemas) -> one service call with the caller's Actor ->
commit -> present. A partner token reads and sets its own payout details and reads its own
payouts (another partner's are 404, as an unknown id); admins and finance run payouts and act
on them; auditors read; admins set programs' payout policies. Account numbers and tax ids go
out masked, except in the payment file (finance and admins; every download audited).
A run is safe to repeat: claims already in a payout are never gathered again.
"""

from __future__ import annotations

from typing import Any

from flask import Response

from mdfledger import payouts, programs
from mdfledger.api import API_PREFIX
from mdfledger.api.auth import api_actor, require_roles
from mdfledger.api.blueprint import Blueprint
from mdfledger.api.errors import documented_errors
from mdfledger.api.pagination import PageArgsSchema, page_schema, paginate
from mdfledger.auth.models import Role
from mdfledger.auth.scope import MANAGERS, STAFF, partner_scope
from mdfledger.db import get_read_session, get_session
from mdfledger.payouts import schemas as s
from mdfledger.programs.schemas import to_minor

blp = Blueprint(
    "payouts",
    __name__,
    url_prefix=API_PREFIX,
    description="Payouts: partners' payout details, payout runs, payouts and their timeline,"
    " finance's actions, the payment file, programs' payout policies",
)
errors = documented_errors(blp)
ALL = (*STAFF, Role.PARTNER)


# --- payout details ------------------------------------------------------------------------------


def _details(partner_id: int) -> dict[str, Any]:
    session, actor = get_read_session(), api_actor()
    partner = programs.get_partner(session, actor, partner_id)
    holds = [(p.id, reason) for p, reason in payouts.holds_of(session, actor, partner.id)]
    return s.details_out(partner.id, payouts.details_of(session, actor, partner.id), holds)


@blp.route("/partners/<int:partner_id>/payout-details", methods=["GET"])
@require_roles(*ALL)
@blp.response(200, s.DetailsOutSchema)
@errors(404)
def get_details(partner_id: int) -> dict[str, Any]:
    """A partner's payout details

    Masked (last four characters of account numbers and tax ids). `on_file` false: none yet.
    `holds` names each of the partner's programs whose payouts they would hold, and why.
    """
    return _details(partner_id)


@blp.route("/partners/<int:partner_id>/payout-details", methods=["PUT"])
@require_roles(Role.ADMIN, Role.FINANCE, Role.PARTNER)
@blp.arguments(s.DetailsSchema)
@blp.response(200, s.DetailsOutSchema)
@errors(404)
def put_details(args: dict[str, Any], partner_id: int) -> dict[str, Any]:
    """Set a partner's payout details

    Every field (what is left out is cleared): `stripe` with `stripe_account` (acct_...), or
    `bank` with the account holder, the bank's country and an IBAN (checked) or an account
    number with its routing or sort code; tax form, tax id and the date it was received.
    A partner token: its own partner only.
    """
    session = get_session()
    payouts.set_details(session, api_actor(), partner_id, **args)
    session.commit()
    return _details(partner_id)


# --- payout policy -------------------------------------------------------------------------------


@blp.route("/programs/<int:program_id>/payout-policy", methods=["GET"])
@require_roles(*STAFF)
@blp.response(200, s.PolicySchema)
@errors(404)
def get_policy(program_id: int) -> dict[str, Any]:
    """How a program pays

    The defaults where none was set: the manual provider, immediately, no tax information
    required, no minimum, 5 attempts.
    """
    session = get_read_session()
    program = programs.get_program(session, api_actor(), program_id)
    return s.policy_out(program, payouts.policy_of(session, program.id))


@blp.route("/programs/<int:program_id>/payout-policy", methods=["PUT"])
@require_roles(Role.ADMIN)
@blp.arguments(s.PolicyUpdateSchema)
@blp.response(200, s.PolicySchema)
@errors(404)
def put_policy(args: dict[str, Any], program_id: int) -> dict[str, Any]:
    """Set how a program pays

    Applies to payouts created from now on. A bad value is 422 naming its field.
    """
    session, actor = get_session(), api_actor()
    program = programs.get_program(session, actor, program_id)
    minimum = to_minor(args.pop("minimum_amount"), program.currency, "minimum_amount") or 0
    payouts.set_policy(session, actor, program.id, minimum_amount=minimum, **args)
    session.commit()
    return s.policy_out(program, payouts.policy_of(session, program.id))


# --- payouts -------------------------------------------------------------------------------------


class PayoutListArgsSchema(PageArgsSchema, s.PayoutListArgsSchema):
    pass


@blp.route("/payouts", methods=["GET"])
@require_roles(*ALL)
@blp.arguments(PayoutListArgsSchema, location="query")
@blp.response(200, page_schema(s.PayoutSchema))
@errors()
def list_payouts(args: dict[str, Any]) -> dict[str, Any]:
    """Payouts, newest first

    A partner token: its own. Filter by state (repeatable), program, partner and `attention`
    (flagged for finance).
    """
    session, actor = get_read_session(), api_actor()
    statement = payouts.payouts_query(
        actor, state=args.get("state"), program_id=args.get("program_id"),
        partner_id=args.get("partner_id"), attention=args.get("attention"),
    )  # fmt: skip
    page = paginate(session, statement, args)
    staff = partner_scope(actor) is None
    page["items"] = [s.payout_out(p, staff=staff) for p in page["items"]]
    return page


@blp.route("/payouts/payable", methods=["GET"])
@require_roles(*ALL)
@blp.response(200, s.PayableListSchema)
@errors()
def payable() -> dict[str, Any]:
    """Approved claims waiting for a payout

    Per partner and program, with what holds them (no payout details, no tax information
    where the program requires it). A partner token: its own.
    """
    return s.payable_out(payouts.payable_claims(get_read_session(), api_actor()))


@blp.route("/payouts/<int:payout_id>", methods=["GET"])
@require_roles(*ALL)
@blp.response(200, s.PayoutDetailSchema)
@errors(404)
def get_payout(payout_id: int) -> dict[str, Any]:
    """A payout with its claims and timeline"""
    session, actor = get_read_session(), api_actor()
    return _detail(session, payouts.get_payout(session, actor, payout_id))


def _detail(session: Any, payout: payouts.Payout) -> dict[str, Any]:
    staff = partner_scope(api_actor()) is None
    return s.payout_detail_out(
        payout, payouts.payout_claims(session, payout), payouts.timeline(session, payout),
        staff=staff,
    )  # fmt: skip


@blp.route("/payouts/run", methods=["POST"])
@require_roles(*MANAGERS)
@blp.arguments(s.RunSchema)
@blp.response(201, s.RunOutSchema)
@errors(404)
def run(args: dict[str, Any]) -> dict[str, Any]:
    """Pay approved claims now

    One payout per partner and program gathering its payable claims (all, or those of
    `program_id` / `partner_id`, or just `claim_ids`). Held partners are listed in `skipped`
    with the reason. Stripe payouts are sent right after; manual ones wait for finance.
    """
    session = get_session()
    result = payouts.create_payouts(session, api_actor(), **args)
    session.commit()
    return s.run_out(result)


def _act(payout_id: int, step: Any, **kwargs: Any) -> dict[str, Any]:
    session = get_session()
    payout = step(session, api_actor(), payout_id, **kwargs)
    session.commit()
    return _detail(session, payout)


@blp.route("/payouts/<int:payout_id>/mark-sent", methods=["POST"])
@require_roles(*MANAGERS)
@blp.arguments(s.ReferenceSchema)
@blp.response(200, s.PayoutDetailSchema)
@errors(404, 409)
def mark_sent(args: dict[str, Any], payout_id: int) -> dict[str, Any]:
    """Mark a manual payout sent, with the bank's reference"""
    return _act(payout_id, payouts.mark_sent, reference=args["reference"])


@blp.route("/payouts/<int:payout_id>/mark-settled", methods=["POST"])
@require_roles(*MANAGERS)
@blp.arguments(s.ReferenceSchema)
@blp.response(200, s.PayoutDetailSchema)
@errors(404, 409)
def mark_settled(args: dict[str, Any], payout_id: int) -> dict[str, Any]:
    """Mark a payout settled (manual, or a provider's flagged for finance): its claims paid"""
    return _act(payout_id, payouts.mark_settled, reference=args["reference"])


@blp.route("/payouts/<int:payout_id>/mark-failed", methods=["POST"])
@require_roles(*MANAGERS)
@blp.arguments(s.ReasonSchema)
@blp.response(200, s.PayoutDetailSchema)
@errors(404, 409)
def mark_failed(args: dict[str, Any], payout_id: int) -> dict[str, Any]:
    """Mark a payout failed: the money goes back to claims payable, retried after a backoff"""
    return _act(payout_id, payouts.mark_failed, reason=args["reason"])


@blp.route("/payouts/<int:payout_id>/retry", methods=["POST"])
@require_roles(*MANAGERS)
@blp.arguments(s.RetrySchema)
@blp.response(200, s.PayoutDetailSchema)
@errors(404, 409)
def retry(_args: dict[str, Any], payout_id: int) -> dict[str, Any]:
    """Retry a failed, flagged or reversed payout now (a new attempt)"""
    return _act(payout_id, payouts.retry_payout)


@blp.route("/payouts/<int:payout_id>/cancel", methods=["POST"])
@require_roles(*MANAGERS)
@blp.arguments(s.ReasonSchema)
@blp.response(200, s.PayoutDetailSchema)
@errors(404, 409)
def cancel(args: dict[str, Any], payout_id: int) -> dict[str, Any]:
    """Cancel a failed, flagged or reversed payout: its claims are payable again"""
    return _act(payout_id, payouts.cancel_payout, reason=args["reason"])


@blp.route("/payouts/payment-file", methods=["GET"])
@require_roles(*MANAGERS)
@blp.arguments(s.PaymentFileArgsSchema, location="query")
@blp.doc(
    responses={
        "200": {
            "description": "CSV: one line per manual payout in `state`, full account numbers",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        }
    }
)
@errors()
def payment_file(args: dict[str, Any]) -> Response:
    """The payment file for the bank (CSV)

    Manual payouts in `state` (default pending), with the full account numbers a payment
    needs. Every download is in the audit log.
    """
    session = get_session()
    text = payouts.payment_file(session, api_actor(), state=args["state"])
    session.commit()
    response = Response(text, mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="payments-{args["state"]}.csv"'
    response.headers["Cache-Control"] = "private, no-store"
    return response
