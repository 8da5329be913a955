"""Partner activity signals over the API: finance's at-risk partners, each program's thresholds.

Thin handlers: parse (mdfledger.engagement.signal_schemas) -> one service call with the caller's
Actor -> commit -> present. Admins and finance read the at-risk list (partners and auditors:
403); staff read a program's thresholds; admins set them.
"""

from __future__ import annotations

from typing import Any

from mdfledger import programs
from mdfledger.api import API_PREFIX
from mdfledger.api.auth import api_actor, require_roles
from mdfledger.api.blueprint import Blueprint
from mdfledger.api.errors import documented_errors
from mdfledger.api.pagination import DEFAULT_PER_PAGE, page_schema
from mdfledger.auth import Role
from mdfledger.auth.scope import MANAGERS, STAFF
from mdfledger.db import get_read_session, get_session
from mdfledger.engagement import signal_schemas as s
from mdfledger.engagement import signals

blp = Blueprint(
    "signals",
    __name__,
    url_prefix=API_PREFIX,
    description="Partner activity signals: the at-risk partners list and each program's"
    " signal thresholds",
)

errors = documented_errors(blp)


@blp.route("/partners/at-risk", methods=["GET"])
@require_roles(*MANAGERS)
@blp.arguments(s.AtRiskArgsSchema, location="query")
@blp.response(200, page_schema(s.AtRiskSchema))
@errors(404)
def at_risk(args: dict[str, Any]) -> dict[str, Any]:
    """At-risk partners

    One item per partner and program with risk signals on (no sign-in, no requests or claims,
    inactive, funds expiring, claim deadline near; milestones are not risks), riskiest first:
    the most signals, then the money expiring soonest and most. As of the last signals run;
    available and expiring amounts as of now. An unknown `program_id` is 404.
    """
    rows = signals.at_risk(get_read_session(), api_actor(), args.get("program_id"))
    page, per_page = args.get("page", 1), args.get("per_page", DEFAULT_PER_PAGE)
    chosen = rows[(page - 1) * per_page : page * per_page]
    return {
        "items": [s.at_risk_out(row) for row in chosen],
        "page": page,
        "per_page": per_page,
        "total": len(rows),
        "pages": -(-len(rows) // per_page),
    }


@blp.route("/programs/<int:program_id>/signals", methods=["GET"])
@require_roles(*STAFF)
@blp.response(200, s.ThresholdsOutSchema)
@errors(404)
def get_thresholds(program_id: int) -> dict[str, Any]:
    """A program's signal thresholds

    The defaults where none were set: active, no sign-in for 30 days, no request or claim for
    45 days, funds expiring within 30 days, claim deadlines within 14 days, milestones at 25,
    50, 75 and 100% of a period's funds used.
    """
    session = get_read_session()
    program = programs.get_program(session, api_actor(), program_id)
    return s.thresholds_out(program, signals.policy_of(session, program.id))


@blp.route("/programs/<int:program_id>/signals", methods=["PUT"])
@require_roles(Role.ADMIN)
@blp.arguments(s.ThresholdsSchema)
@blp.response(200, s.ThresholdsOutSchema)
@errors(404)
def put_thresholds(args: dict[str, Any], program_id: int) -> dict[str, Any]:
    """Set a program's signal thresholds

    Every field, as GET shows them; they apply from the next signals run. A bad value is 422
    naming its field, and nothing changes.
    """
    session, actor = get_session(), api_actor()
    program = programs.get_program(session, actor, program_id)
    signals.set_policy(session, actor, program.id, **args)
    session.commit()
    return s.thresholds_out(program, signals.policy_of(session, program.id))
