"""Verification over the API: a claim's checks with their evidence and history, running a check
again, and a program's verification rules.

Thin handlers: parse (mdfledger.verification.schemas) -> one service call with the caller's
Actor -> commit -> present. Every role reads a claim's checks (a partner its own claims only:
another partner's is 404, as an unknown id); admins and finance run checks again and set the
rules; staff read the rules.
"""

from __future__ import annotations

from typing import Any

from flask import url_for

from mdfledger import claims, programs, verification
from mdfledger.api import API_PREFIX
from mdfledger.api.auth import api_actor, require_roles
from mdfledger.api.blueprint import Blueprint
from mdfledger.api.errors import documented_errors
from mdfledger.auth.scope import MANAGERS, STAFF
from mdfledger.db import get_read_session, get_session
from mdfledger.programs.schemas import to_minor
from mdfledger.verification import schemas as s

blp = Blueprint(
    "verification",
    __name__,
    url_prefix=API_PREFIX,
    description="Verification of proof of performance: each claim's checks with their evidence"
    " and history, running a check again, each program's verification rules",
)

errors = documented_errors(blp)


# --- a claim's checks ----------------------------------------------------------------------------


@blp.route("/claims/<int:claim_id>/checks", methods=["GET"])
@blp.response(200, s.ClaimChecksSchema)
@errors(404)
def get_checks(claim_id: int) -> dict[str, Any]:
    """A claim's checks

    The latest result of each check (and of each document, for the page, lead list and photo
    checks), failing first, with how many times it ran and what it saw; then every run, newest
    first. Empty until the claim is submitted; while it is `verifying` the checks are running.
    """
    session = get_read_session()
    claim = claims.get_claim(session, api_actor(), claim_id)
    return {
        "claim_id": claim.id,
        "state": claim.state,
        "checks": [
            s.check_out(view.result, claim.currency, view.runs)
            for view in verification.latest_checks(session, claim)
        ],
        "history": [
            s.check_out(row, claim.currency) for row in verification.check_history(session, claim)
        ],
    }


@blp.route("/claims/<int:claim_id>/checks/rerun", methods=["POST"])
@require_roles(*MANAGERS)
@blp.arguments(s.RerunSchema)
@blp.response(202, s.RerunAcceptedSchema)
@errors(404, 409)
def rerun_check(args: dict[str, Any], claim_id: int) -> dict[str, Any]:
    """Run a check again

    On a claim in review or decided (409 otherwise). The check runs on a worker; its result is
    added to the claim's checks and history, and the claim's state does not change. A
    `document_id` that is not a document of this claim for that check is 422 naming it, and
    nothing is run.
    """
    session = get_session()
    claim = verification.rerun_check(
        session, api_actor(), claim_id, args["kind"], document_id=args.get("document_id")
    )
    session.commit()
    return {
        "claim_id": claim.id,
        "kind": args["kind"],
        "document_id": args.get("document_id"),
        "checks_url": url_for("verification.get_checks", claim_id=claim.id),
    }


# --- a program's rules ---------------------------------------------------------------------------


@blp.route("/programs/<int:program_id>/verification", methods=["GET"])
@require_roles(*STAFF)
@blp.response(200, s.RulesSchema)
@errors(404)
def get_rules(program_id: int) -> dict[str, Any]:
    """A program's verification rules

    The defaults where none were set: no automatic approval, 1% tolerance, 30 days' grace
    for invoice dates, pages must name the partner, no minimum of leads, pages re-checked for
    30 days.
    """
    session = get_read_session()
    program = programs.get_program(session, api_actor(), program_id)
    return s.policy_out(program, verification.policy_of(session, program.id))


@blp.route("/programs/<int:program_id>/verification", methods=["PUT"])
@require_roles(*MANAGERS)
@blp.arguments(s.RulesUpdateSchema)
@blp.response(200, s.RulesSchema)
@errors(404)
def put_rules(args: dict[str, Any], program_id: int) -> dict[str, Any]:
    """Set a program's verification rules

    Every field, as GET shows them. They apply to claims verified from now on. A bad value is
    422 naming its field, and nothing changes.
    """
    session, actor = get_session(), api_actor()
    program = programs.get_program(session, actor, program_id)
    auto = to_minor(args["auto_approve_up_to"], program.currency, "auto_approve_up_to")
    verification.set_policy(
        session, actor, program.id, auto_approve_up_to=auto,
        tolerance_bp=args["tolerance_bp"], invoice_grace_days=args["invoice_grace_days"],
        page_markers="\n".join(args["page_markers"]), min_leads=args["min_leads"],
        recheck_days=args["recheck_days"],
    )  # fmt: skip
    session.commit()
    return s.policy_out(program, verification.policy_of(session, program.id))
