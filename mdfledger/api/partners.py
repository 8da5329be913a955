"""Partners, their balances, and allocations over the API.

Thin handlers: parse (mdfledger.programs.schemas) -> one service call with the caller's Actor ->
commit -> present. A partner token sees its own partner only: another partner's id is "not
found" (the services say so), and lists are filtered to its partner (`auth.scope.scoped`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from mdfledger import programs
from mdfledger.api import API_PREFIX
from mdfledger.api.auth import api_actor, require_roles
from mdfledger.api.blueprint import Blueprint
from mdfledger.api.errors import documented_errors
from mdfledger.api.pagination import PageArgsSchema, page_schema, paginate
from mdfledger.auth.scope import MANAGERS, partner_scope, scoped
from mdfledger.db import get_read_session, get_session
from mdfledger.errors import NotFound
from mdfledger.ledger.commands import is_id
from mdfledger.programs import Allocation, Fund, Program, ProgramStatus
from mdfledger.programs import schemas as s

blp = Blueprint(
    "partners",
    __name__,
    url_prefix=API_PREFIX,
    description="Partners and their contacts, balances, allocations and fund corrections",
)


errors = documented_errors(blp)


# --- partners ------------------------------------------------------------------------------------


class PartnerListArgsSchema(PageArgsSchema, s.PartnerListArgsSchema):
    pass


@blp.route("/partners", methods=["GET"])
@blp.arguments(PartnerListArgsSchema, location="query")
@blp.response(200, page_schema(s.PartnerSchema))
@errors()
def list_partners(args: dict[str, Any]) -> dict[str, Any]:
    """Partners

    By name; `search` matches part of the name or code. A partner token finds its own partner
    here, and only that one.
    """
    filters = {k: args.get(k) for k in ("search", "status", "tier", "region")}
    statement = programs.partners_query(api_actor(), **filters)
    page = paginate(get_read_session(), statement, args)
    return {**page, "items": [s.partner_out(p) for p in page["items"]]}


@blp.route("/partners", methods=["POST"])
@require_roles(*MANAGERS)
@blp.arguments(s.PartnerCreateSchema)
@blp.response(201, s.PartnerDetailSchema)
@errors(409)
def create_partner(args: dict[str, Any]) -> dict[str, Any]:
    """Create a partner

    Codes are unique regardless of case (imports name partners by code).
    """
    session = get_session()
    partner = programs.create_partner(session, api_actor(), **args)
    session.commit()
    return s.partner_detail_out(partner)


@blp.route("/partners/<int:partner_id>", methods=["GET"])
@blp.response(200, s.PartnerDetailSchema)
@errors(404)
def get_partner(partner_id: int) -> dict[str, Any]:
    """A partner

    With its contacts. Another partner's id is 404 for a partner token.
    """
    return s.partner_detail_out(programs.get_partner(get_read_session(), api_actor(), partner_id))


@blp.route("/partners/<int:partner_id>", methods=["PATCH"])
@require_roles(*MANAGERS)
@blp.arguments(s.PartnerUpdateSchema)
@blp.response(200, s.PartnerDetailSchema)
@errors(404)
def update_partner(args: dict[str, Any], partner_id: int) -> dict[str, Any]:
    """Change a partner

    Name, type, tier, region and status; a suspended or terminated partner keeps its funds
    but receives no new ones.
    """
    session = get_session()
    partner = programs.update_partner(session, api_actor(), partner_id, **args)
    session.commit()
    return s.partner_detail_out(partner)


@blp.route("/partners/<int:partner_id>/contacts", methods=["POST"])
@require_roles(*MANAGERS)
@blp.arguments(s.ContactSchema)
@blp.response(201, s.ContactSchema)
@errors(404)
def add_contact(args: dict[str, Any], partner_id: int) -> dict[str, Any]:
    """Add a contact

    A primary contact replaces the partner's earlier primary contact.
    """
    session = get_session()
    contact = programs.add_contact(session, api_actor(), partner_id, **args)
    session.commit()
    return s.contact_out(contact)


# --- balances ------------------------------------------------------------------------------------


@blp.route("/partners/<int:partner_id>/balances", methods=["GET"])
@blp.response(200, s.PartnerBalancesSchema)
@errors(404)
def partner_balances(partner_id: int) -> dict[str, Any]:
    """A partner's balances in every program

    One breakdown per program the partner has funds in, by program name, each with its
    per-period fund lines. Amounts are decimal strings in the program's currency.
    """
    breakdowns = programs.partner_breakdowns(get_read_session(), api_actor(), partner_id)
    return {"partner_id": partner_id, "programs": [s.breakdown_out(b) for b in breakdowns]}


@blp.route("/partners/<int:partner_id>/balances/<int:program_id>", methods=["GET"])
@blp.response(200, s.BreakdownSchema)
@errors(404)
def partner_program_balance(partner_id: int, program_id: int) -> dict[str, Any]:
    """A partner's balance in one program

    allocated + accrued = reserved + approved + expired + available + awaiting_expiry, with
    what expires next and the per-period fund lines.
    """
    session = get_read_session()
    return s.breakdown_out(programs.partner_breakdown(session, api_actor(), partner_id, program_id))


# --- allocations and corrections -----------------------------------------------------------------


class AllocationListArgsSchema(PageArgsSchema, s.AllocationListArgsSchema):
    pass


@blp.route("/allocations", methods=["GET"])
@blp.arguments(AllocationListArgsSchema, location="query")
@blp.response(200, page_schema(s.AllocationSchema))
@errors()
def list_allocations(args: dict[str, Any]) -> dict[str, Any]:
    """Allocations, adjustments and reversals

    Newest first. A partner token sees its own partner's, in active programs, only.
    """
    actor = api_actor()
    statement = scoped(
        select(Allocation, Program.currency, Fund.period_label)
        .join(Program, Program.id == Allocation.program_id)
        .join(Fund, Fund.id == Allocation.fund_id)
        .order_by(Allocation.id.desc()),
        Allocation.partner_id,
        actor,
    )
    if partner_scope(actor) is not None:  # as programs.get_program: active programs only
        statement = statement.where(Program.status == ProgramStatus.ACTIVE)
    for name, column in (
        ("program_id", Allocation.program_id),
        ("partner_id", Allocation.partner_id),
        ("import_id", Allocation.import_id),
        ("kind", Allocation.kind),
    ):
        if args.get(name) is not None:
            statement = statement.where(column == args[name])
    page = paginate(get_read_session(), statement, args)
    return {**page, "items": [s.allocation_out(*row) for row in page["items"]]}


@blp.route("/allocations", methods=["POST"])
@require_roles(*MANAGERS)
@blp.arguments(s.AllocationCreateSchema)
@blp.arguments(s.IdempotencyHeaderSchema, location="headers")
@blp.response(201, s.AllocationSchema)
@errors(404, 409)
def allocate(args: dict[str, Any], headers: dict[str, Any]) -> dict[str, Any]:
    """Allocate funds to a partner

    From the program's budget into the partner's fund for the period containing `period`
    (default today). More than the budget holds is 409. A retry with the same Idempotency-Key
    and fields returns the original allocation, again 201, and moves nothing twice.
    """
    session, actor = get_session(), api_actor()
    program = programs.get_program(session, actor, args.pop("program_id"))
    amount = s.to_minor(args.pop("amount"), program.currency)
    allocation = programs.allocate(
        session, actor, program.id, args.pop("partner_id"), amount, key=headers.get("key"), **args
    )
    session.commit()
    return s.allocation_out(allocation, program.currency, allocation.fund.period_label)


@blp.route("/funds/<int:fund_id>/adjustments", methods=["POST"])
@require_roles(*MANAGERS)
@blp.arguments(s.AdjustmentSchema)
@blp.arguments(s.IdempotencyHeaderSchema, location="headers")
@blp.response(201, s.AllocationSchema)
@errors(404, 409)
def adjust_fund(args: dict[str, Any], headers: dict[str, Any], fund_id: int) -> dict[str, Any]:
    """Adjust a fund up or down

    Up moves more budget in; down returns unspent, unreserved funds to the budget (409 when
    the fund holds less). Fund ids are in the balances' fund lines. A retry with the same
    Idempotency-Key returns the original adjustment, again 201.
    """
    session, actor = get_session(), api_actor()
    fund = session.get(Fund, fund_id) if is_id(fund_id) else None
    if fund is None:
        raise NotFound(f"fund {fund_id} not found")
    program = programs.get_program(session, actor, fund.program_id)
    delta = s.to_minor(args["amount"], program.currency)
    allocation = programs.adjust_fund(
        session, actor, fund.id, delta, reason=args["reason"], key=headers.get("key")
    )
    session.commit()
    return s.allocation_out(allocation, program.currency, fund.period_label)


@blp.route("/allocations/<int:allocation_id>/reversal", methods=["POST"])
@require_roles(*MANAGERS)
@blp.arguments(s.ReversalSchema)
@blp.arguments(s.IdempotencyHeaderSchema, location="headers")
@blp.response(201, s.AllocationSchema)
@errors(404, 409)
def reverse_allocation(
    args: dict[str, Any], headers: dict[str, Any], allocation_id: int
) -> dict[str, Any]:
    """Reverse an allocation or adjustment

    A reversing ledger transfer naming the original, at most once (409 after that, or when the
    funds were already used or reserved). Answers with the reversal. A retry with the same
    Idempotency-Key returns the original reversal, again 201.
    """
    session = get_session()
    reversal = programs.reverse_allocation(
        session, api_actor(), allocation_id, reason=args["reason"], key=headers.get("key")
    )
    session.commit()
    program = session.get(Program, reversal.program_id)
    assert program is not None
    return s.allocation_out(reversal, program.currency, reversal.fund.period_label)
