"""Programs over the API: settings, activity catalog, accrual rates, budget, utilisation, imports.

Thin handlers: parse (mdfledger.programs.schemas) -> one service call with the caller's Actor ->
commit -> present. Reads use the read-only session. The services scope partners (active
programs only) and check roles; `require_roles` refuses other tokens before anything is parsed.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from mdfledger import programs
from mdfledger.api import API_PREFIX
from mdfledger.api.auth import api_actor, require_roles
from mdfledger.api.blueprint import Blueprint
from mdfledger.api.errors import documented_errors
from mdfledger.api.pagination import PageArgsSchema, page_schema, paginate
from mdfledger.auth.scope import MANAGERS, STAFF
from mdfledger.db import get_read_session, get_session
from mdfledger.errors import NotFound
from mdfledger.ledger.commands import is_id
from mdfledger.programs import Activity, Import, Program
from mdfledger.programs import schemas as s

blp = Blueprint(
    "programs",
    __name__,
    url_prefix=API_PREFIX,
    description="Programs: settings, activity catalog, accrual rates, budget, utilisation,"
    " CSV imports",
)


errors = documented_errors(blp)


def _program_for_write(program_id: int) -> tuple[Session, Program]:
    session = get_session()
    return session, programs.get_program(session, api_actor(), program_id)


# --- programs ------------------------------------------------------------------------------------


class ProgramListArgsSchema(PageArgsSchema, s.ProgramListArgsSchema):
    pass


@blp.route("/programs", methods=["GET"])
@blp.arguments(ProgramListArgsSchema, location="query")
@blp.response(200, page_schema(s.ProgramSchema))
@errors()
def list_programs(args: dict[str, Any]) -> dict[str, Any]:
    """Programs

    By name. Partners see active programs only.
    """
    statement = programs.programs_query(api_actor(), status=args.get("status"))
    page = paginate(get_read_session(), statement, args)
    return {**page, "items": [s.program_out(p) for p in page["items"]]}


@blp.route("/programs", methods=["POST"])
@require_roles(*MANAGERS)
@blp.arguments(s.ProgramCreateSchema)
@blp.response(201, s.ProgramDetailSchema)
@errors(409)
def create_program(args: dict[str, Any]) -> dict[str, Any]:
    """Create a program

    Opens its ledger accounts (funding, budget, expired and, for co-op, accruals). Defaults:
    timezone UTC, fiscal year from January in quarters, claims within 60 days, share 100%,
    forfeit at period end.
    """
    session = get_session()
    if args.get("second_approval_above") is not None:
        args["second_approval_above"] = s.to_minor(
            args["second_approval_above"], args["currency"], "second_approval_above"
        )
    program = programs.create_program(session, api_actor(), **args)
    session.commit()
    return s.program_detail_out(program)


@blp.route("/programs/<int:program_id>", methods=["GET"])
@blp.response(200, s.ProgramDetailSchema)
@errors(404)
def get_program(program_id: int) -> dict[str, Any]:
    """A program

    Its settings, the current fiscal period, its activity catalog and accrual rates.
    """
    return s.program_detail_out(programs.get_program(get_read_session(), api_actor(), program_id))


@blp.route("/programs/<int:program_id>", methods=["PATCH"])
@require_roles(*MANAGERS)
@blp.arguments(s.ProgramUpdateSchema)
@blp.response(200, s.ProgramDetailSchema)
@errors(404)
def update_program(args: dict[str, Any], program_id: int) -> dict[str, Any]:
    """Change a program

    Name, description, claim deadline, share and status; currency, calendar and expiry policy
    are fixed once it exists. A closed program takes no new funds.
    """
    session = get_session()
    if args.get("second_approval_above") is not None:
        currency = programs.get_program(session, api_actor(), program_id).currency
        args["second_approval_above"] = s.to_minor(
            args["second_approval_above"], currency, "second_approval_above"
        )
    program = programs.update_program(session, api_actor(), program_id, **args)
    session.commit()
    return s.program_detail_out(program)


# --- activity catalog and accrual rates ----------------------------------------------------------


@blp.route("/programs/<int:program_id>/activities", methods=["POST"])
@require_roles(*MANAGERS)
@blp.arguments(s.ActivityCreateSchema)
@blp.response(201, s.ActivitySchema)
@errors(404, 409)
def add_activity(args: dict[str, Any], program_id: int) -> dict[str, Any]:
    """Add an activity to the catalog

    The proof it needs and an optional cap (a decimal string in the program's currency).
    """
    session, program = _program_for_write(program_id)
    cap = s.to_minor(args.pop("cap", None), program.currency, "cap")
    activity = programs.add_activity(session, api_actor(), program.id, cap=cap, **args)
    session.commit()
    return s.activity_out(activity, program.currency)


@blp.route("/programs/<int:program_id>/activities/<int:activity_id>", methods=["PATCH"])
@require_roles(*MANAGERS)
@blp.arguments(s.ActivityUpdateSchema)
@blp.response(200, s.ActivitySchema)
@errors(404)
def update_activity(args: dict[str, Any], program_id: int, activity_id: int) -> dict[str, Any]:
    """Change an activity

    Name, description, proof, cap (null removes it) and whether it is offered (active).
    """
    session, program = _program_for_write(program_id)
    activity = session.get(Activity, activity_id) if is_id(activity_id) else None
    if activity is None or activity.program_id != program.id:
        raise NotFound(f"activity {activity_id} not found in program {program.code}")
    if "cap" in args:
        args["cap"] = s.to_minor(args["cap"], program.currency, "cap")
    activity = programs.update_activity(session, api_actor(), activity.id, **args)
    session.commit()
    return s.activity_out(activity, program.currency)


@blp.route("/programs/<int:program_id>/rates", methods=["PUT"])
@require_roles(*MANAGERS)
@blp.arguments(s.RateSchema)
@blp.response(200, s.RateSchema)
@errors(404)
def set_rate(args: dict[str, Any], program_id: int) -> dict[str, Any]:
    """Set a co-op accrual rate

    For a partner tier and/or product line ("" for any); replaces the rate for the same tier
    and product line (compared case-insensitively). Co-op programs only.
    """
    session = get_session()
    rate = programs.set_accrual_rate(session, api_actor(), program_id, **args)
    session.commit()
    return s.rate_out(rate)


# --- budget and utilisation ----------------------------------------------------------------------


@blp.route("/programs/<int:program_id>/budget", methods=["POST"])
@require_roles(*MANAGERS)
@blp.arguments(s.BudgetChangeSchema)
@blp.arguments(s.IdempotencyHeaderSchema, location="headers")
@blp.response(201, s.BudgetTransferSchema)
@errors(404, 409)
def change_budget(args: dict[str, Any], headers: dict[str, Any], program_id: int) -> Any:
    """Fund the budget, or take unallocated budget back

    A positive amount adds vendor funding to the budget; a negative one returns what is not
    allocated (409 when the budget holds less). Answers with the ledger transfer, 201 also
    when an Idempotency-Key replays an earlier change.
    """
    session, program = _program_for_write(program_id)
    amount = s.to_minor(args["amount"], program.currency)
    record = programs.fund_budget(
        session, api_actor(), program.id, amount, reason=args["reason"], key=headers.get("key")
    )
    session.commit()
    return s.budget_transfer_out(record, program)


@blp.route("/programs/<int:program_id>/utilisation", methods=["GET"])
@require_roles(*STAFF)
@blp.response(200, s.UtilisationSchema)
@errors(404)
def utilisation(program_id: int) -> dict[str, Any]:
    """A program's utilisation

    Its budget, the totals and every funded partner's breakdown. Staff only.
    """
    return s.utilisation_out(
        programs.program_utilisation(get_read_session(), api_actor(), program_id)
    )


# --- imports -------------------------------------------------------------------------------------


@blp.route("/programs/<int:program_id>/imports/allocations", methods=["POST"])
@require_roles(*MANAGERS)
@blp.arguments(s.AllocationImportSchema, location="multipart")
@blp.response(201, s.ImportReportSchema)
@errors(404, 409)
def import_allocations(args: dict[str, Any], program_id: int) -> dict[str, Any]:
    """Import allocations from CSV

    Columns partner, amount[, currency, reason]; into the period containing `period` (default
    today). The same file for the same period is refused the second time (409, with the
    earlier import's id in `details.import_id`), so a retried upload allocates nothing twice.

    All or nothing: a file with any problem is refused with 422 and the code
    `import_rejected`; `details.errors` lists each problem as {line, column, message} (line 0:
    the file as a whole) and nothing is applied. Answers with the import report, 201.
    """
    upload = args.pop("file")
    session = get_session()
    report = programs.import_allocations(
        session, api_actor(), program_id, upload.read(), filename=upload.filename or "", **args
    )
    session.commit()
    return s.import_report_out(report)


@blp.route("/programs/<int:program_id>/imports/purchases", methods=["POST"])
@require_roles(*MANAGERS)
@blp.arguments(s.PurchaseImportSchema, location="multipart")
@blp.response(201, s.ImportReportSchema)
@errors(404, 409)
def import_purchases(args: dict[str, Any], program_id: int) -> dict[str, Any]:
    """Import co-op purchases from CSV

    Columns partner, reference, date, amount[, product_line, currency]; each purchase accrues
    at the program's rate for the partner's tier and the product line, a negative amount (a
    return) takes its accrual back. Rows imported before are skipped, so a retried upload
    accrues nothing twice.

    All or nothing: a file with any problem is refused with 422 and the code
    `import_rejected`; `details.errors` lists each problem as {line, column, message} (line 0:
    the file as a whole) and nothing is applied. Answers with the import report, 201.
    """
    upload = args.pop("file")
    session = get_session()
    report = programs.import_purchases(
        session, api_actor(), program_id, upload.read(), filename=upload.filename or "", **args
    )
    session.commit()
    return s.import_report_out(report)


class ImportListArgsSchema(PageArgsSchema, s.ImportListArgsSchema):
    pass


@blp.route("/imports", methods=["GET"])
@require_roles(*STAFF)
@blp.arguments(ImportListArgsSchema, location="query")
@blp.response(200, page_schema(s.ImportSchema))
@errors()
def list_imports(args: dict[str, Any]) -> dict[str, Any]:
    """Imports

    Newest first. Staff only.
    """
    statement = programs.imports_query(api_actor(), args.get("program_id"))
    if args.get("kind"):
        statement = statement.where(Import.kind == args["kind"])
    statement = statement.join(Program, Program.id == Import.program_id).add_columns(Program)
    page = paginate(get_read_session(), statement, args)
    return {**page, "items": [s.import_out(record, program) for record, program in page["items"]]}


@blp.route("/imports/<int:import_id>", methods=["GET"])
@require_roles(*STAFF)
@blp.response(200, s.ImportSchema)
@errors(404)
def get_import(import_id: int) -> dict[str, Any]:
    """An import

    What came in and what it did. Its allocations: GET /allocations?import_id=. Staff only.
    """
    statement = programs.imports_query(api_actor()).join(Program, Program.id == Import.program_id)
    row = None
    if is_id(import_id):
        row = (
            get_read_session()
            .execute(statement.add_columns(Program).where(Import.id == import_id))
            .first()
        )
    if row is None:
        raise NotFound(f"import {import_id} not found")
    return s.import_out(*row)
