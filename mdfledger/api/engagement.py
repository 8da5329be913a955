"""Engagement over the API: destinations (where events go), deliveries and the dead-letter
list with replay, and the events partners were told about.

Thin handlers: parse (mdfledger.engagement.schemas) -> one service call with the caller's
Actor -> commit -> present. Admins add and change destinations; staff read them and the
deliveries; admins and finance replay dead letters; every role reads events (a partner its
own only: another partner's id is 404, as an unknown id).
"""

from __future__ import annotations

from typing import Any

from mdfledger import engagement
from mdfledger.api import API_PREFIX
from mdfledger.api.auth import api_actor, require_roles
from mdfledger.api.blueprint import Blueprint
from mdfledger.api.errors import documented_errors
from mdfledger.api.pagination import page_schema, paginate
from mdfledger.auth import Role
from mdfledger.auth.scope import MANAGERS, STAFF
from mdfledger.db import get_read_session, get_session
from mdfledger.engagement import schemas as s
from mdfledger.engagement.service import DeliveryView

blp = Blueprint(
    "engagement",
    __name__,
    url_prefix=API_PREFIX,
    description="Partner events: where they go (webhooks, SNS, EventBridge, e-mail), their"
    " deliveries and the dead-letter list, and the messages partners were told",
)

errors = documented_errors(blp)


# --- destinations --------------------------------------------------------------------------------


@blp.route("/destinations", methods=["GET"])
@require_roles(*STAFF)
@blp.response(200, s.DestinationListSchema)
@errors()
def list_destinations() -> dict[str, Any]:
    """Destinations

    Every destination, vendor-wide ones first. Webhook signing secrets are masked.
    """
    found = engagement.destinations(get_read_session(), api_actor())
    return {"destinations": [s.destination_out(d) for d in found]}


@blp.route("/destinations", methods=["POST"])
@require_roles(Role.ADMIN)
@blp.arguments(s.DestinationCreateSchema)
@blp.response(201, s.DestinationSchema)
@errors()
def create_destination(args: dict[str, Any]) -> dict[str, Any]:
    """Add a destination

    A webhook gets a new signing secret, in full in this answer only: keep it now. The
    receiver checks each request's `Mdfledger-Signature` header with it. A setting the kind
    needs that is missing or malformed is 422 naming it, and nothing is added.
    """
    session = get_session()
    made = engagement.create_destination(session, api_actor(), **args)
    session.commit()
    return s.destination_out(made.destination, made.secret)


@blp.route("/destinations/<int:destination_id>", methods=["GET"])
@require_roles(*STAFF)
@blp.response(200, s.DestinationSchema)
@errors(404)
def get_destination(destination_id: int) -> dict[str, Any]:
    """A destination"""
    found = engagement.get_destination(get_read_session(), api_actor(), destination_id)
    return s.destination_out(found)


@blp.route("/destinations/<int:destination_id>", methods=["PATCH"])
@require_roles(Role.ADMIN)
@blp.arguments(s.DestinationUpdateSchema)
@blp.response(200, s.DestinationSchema)
@errors(404)
def update_destination(args: dict[str, Any], destination_id: int) -> dict[str, Any]:
    """Change a destination

    The fields given; kind and partner stay. `active: false` stops sending new events there;
    its pending deliveries wait until it is active again.
    """
    session = get_session()
    found = engagement.update_destination(session, api_actor(), destination_id, **args)
    session.commit()
    return s.destination_out(found)


# --- deliveries ----------------------------------------------------------------------------------


@blp.route("/deliveries", methods=["GET"])
@require_roles(*STAFF)
@blp.arguments(s.DeliveryListArgsSchema, location="query")
@blp.response(200, page_schema(s.DeliverySchema))
@errors()
def list_deliveries(args: dict[str, Any]) -> dict[str, Any]:
    """Deliveries

    Newest first, with their event. `state=dead` is the dead-letter list: deliveries given
    up after 36 hours of retries, or refused for good (a webhook answering 410).
    """
    statement = engagement.service.deliveries_query(
        api_actor(), state=args.get("state"), destination_id=args.get("destination_id"),
        partner_id=args.get("partner_id"),
    )  # fmt: skip
    page = paginate(get_read_session(), statement, args)
    page["items"] = [s.delivery_out(DeliveryView(*row)) for row in page["items"]]
    return page


@blp.route("/deliveries/replay", methods=["POST"])
@require_roles(*MANAGERS)
@blp.arguments(s.ReplaySchema)
@blp.response(200, s.ReplayedSchema)
@errors(404, 409)
def replay(args: dict[str, Any]) -> dict[str, Any]:
    """Replay dead letters

    Each goes back to pending with its attempts reset, before its destination's newer events
    for the same partner. All or none: an unknown id is 404, one that is not dead 409.
    """
    session = get_session()
    replayed = engagement.replay(session, api_actor(), args["delivery_ids"])
    session.commit()
    return {"replayed": [d.id for d in replayed]}


# --- events --------------------------------------------------------------------------------------


@blp.route("/events", methods=["GET"])
@blp.arguments(s.EventListArgsSchema, location="query")
@blp.response(200, page_schema(s.EventSchema))
@errors(404)
def list_events(args: dict[str, Any]) -> dict[str, Any]:
    """Events

    What partners were told, newest first: each event's data and its message (subject, text,
    next step) as it was sent. A partner token sees its own partner's only.
    """
    statement = engagement.service.events_query(
        api_actor(), args.get("partner_id"), types=args.get("type")
    )
    page = paginate(get_read_session(), statement, args)
    page["items"] = [s.event_out(e) for e in page["items"]]
    return page
