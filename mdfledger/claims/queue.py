"""Finding claims: finance's review queue and the partner's own list. Read-only queries.

The queue filters by program, partner, state, age, amount and flags, sorts, and is paged by
the caller; the indexes on claims (by state, program, partner, flag, and partial ones over the
waiting claims in each sort order: models.py) keep every page under 50 ms at 100,000 claims
(`mdfledger bench queue`, docs/benchmarks.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from mdfledger.actor import Actor
from mdfledger.auth.scope import STAFF, require_role, scoped
from mdfledger.claims.models import Claim
from mdfledger.claims.rules import ClaimState
from mdfledger.clock import ensure_utc, utcnow
from mdfledger.errors import ValidationError
from mdfledger.fields import check_choice
from mdfledger.programs.models import Program
from mdfledger.programs.service import get_program

# Waiting for finance: what "the queue" shows unless asked for other states.
WAITING = (ClaimState.SUBMITTED, ClaimState.VERIFYING, ClaimState.IN_REVIEW)
SORTS = {
    "oldest": (Claim.submitted_at.asc(), Claim.id.asc()),
    "newest": (Claim.submitted_at.desc(), Claim.id.desc()),
    "amount_desc": (Claim.claimed_amount.desc(), Claim.id.asc()),
    "amount_asc": (Claim.claimed_amount.asc(), Claim.id.asc()),
}


@dataclass(frozen=True)
class QueueFilter:
    states: tuple[str, ...] = tuple(s.value for s in WAITING)
    program_id: int | None = None
    partner_id: int | None = None
    flagged: bool | None = None
    min_amount: int | None = None
    max_amount: int | None = None
    older_than_days: int | None = None  # submitted at least this many days ago
    sort: str = "oldest"


def review_queue(
    actor: Actor, wanted: QueueFilter = QueueFilter(), *, now: datetime | None = None
) -> Select[tuple[Claim]]:
    """Claims for finance to decide, filtered and sorted; page it with LIMIT/OFFSET."""
    require_role(actor, *STAFF)
    for state in wanted.states:
        check_choice(state, ClaimState, "state")
    check_choice(wanted.sort, SORTS, "sort")
    if (
        wanted.min_amount is not None
        and wanted.max_amount is not None
        and wanted.min_amount > wanted.max_amount
    ):
        raise ValidationError("the smallest amount is above the largest", field="min_amount")
    statement = select(Claim).where(Claim.state.in_(wanted.states))
    if wanted.program_id is not None:
        statement = statement.where(Claim.program_id == wanted.program_id)
    if wanted.partner_id is not None:
        statement = statement.where(Claim.partner_id == wanted.partner_id)
    if wanted.flagged is not None:
        statement = statement.where(Claim.flagged.is_(wanted.flagged))
    if wanted.min_amount is not None:
        statement = statement.where(Claim.claimed_amount >= wanted.min_amount)
    if wanted.max_amount is not None:
        statement = statement.where(Claim.claimed_amount <= wanted.max_amount)
    if wanted.older_than_days is not None:
        cutoff = ensure_utc(now or utcnow()) - timedelta(days=wanted.older_than_days)
        statement = statement.where(Claim.submitted_at <= cutoff)
    return statement.order_by(*SORTS[wanted.sort])


def queue_currency(session: Session, actor: Actor, program_id: int | None, field: str) -> str:
    """The currency the queue's amount filters are in: the program's, or when no program is
    chosen, the one currency every program shares (mixing currencies would compare nonsense)."""
    if program_id is not None:
        return get_program(session, actor, program_id).currency
    currencies = session.scalars(select(Program.currency).distinct()).all()
    if len(currencies) != 1:
        raise ValidationError(
            "choose a program to filter by amount: programs pay in different currencies",
            field=field,
        )
    return currencies[0]


def claims_query(
    actor: Actor,
    *,
    state: str | None = None,
    program_id: int | None = None,
    partner_id: int | None = None,
    request_id: int | None = None,
) -> Select[tuple[Claim]]:
    """Claims the actor may see (a partner user: its own), newest first."""
    statement = scoped(select(Claim), Claim.partner_id, actor)
    if state is not None:
        statement = statement.where(Claim.state == check_choice(state, ClaimState, "state"))
    if program_id is not None:
        statement = statement.where(Claim.program_id == program_id)
    if partner_id is not None:
        statement = statement.where(Claim.partner_id == partner_id)
    if request_id is not None:
        statement = statement.where(Claim.request_id == request_id)
    return statement.order_by(Claim.created_at.desc(), Claim.id.desc())
