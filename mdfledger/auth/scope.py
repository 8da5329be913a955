"""Who may do what in the services: role checks and partner scoping, applied in queries.

Views check roles too, but the services are where it counts: an API handler, a CLI command or a
job that forgets a check still cannot show a partner another partner's data.
"""

from __future__ import annotations

from typing import Any

from mdfledger.actor import Actor
from mdfledger.auth.models import Role
from mdfledger.errors import Forbidden, NotFound

STAFF = (Role.ADMIN, Role.FINANCE, Role.AUDITOR)
MANAGERS = (Role.ADMIN, Role.FINANCE)  # set up programs and partners, move funds


def require_role(actor: Actor, *roles: str) -> None:
    """System actors (CLI, jobs) may do anything; users only what their role allows."""
    if actor.kind == "system":
        return
    if actor.role not in roles:
        raise Forbidden(f"a {actor.role} user cannot do this")


def partner_scope(actor: Actor) -> int | None:
    """The only partner a partner user may see; None for staff and system actors (all)."""
    if actor.kind == "user" and actor.role == Role.PARTNER:
        if actor.partner_id is None:  # the users table's CHECK makes this impossible
            raise Forbidden("this partner user belongs to no partner")
        return actor.partner_id
    return None


def scoped(statement: Any, partner_column: Any, actor: Actor) -> Any:
    """`statement` limited to the actor's partner, when the actor is a partner user."""
    partner_id = partner_scope(actor)
    return statement if partner_id is None else statement.where(partner_column == partner_id)


def check_partner(actor: Actor, partner_id: int, what: str) -> None:
    """Another partner's object is 'not found', never 'forbidden': its existence is not leaked."""
    scope = partner_scope(actor)
    if scope is not None and scope != partner_id:
        raise NotFound(f"{what} not found")
