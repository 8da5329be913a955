"""Engagement at the API edge: marshmallow schemas in, plain dicts out.

In: strict shapes (no unknown fields, strict integers and booleans); the services check values.
Out: destinations with the signing secret masked (the full secret only in the answer to its
creation), deliveries with their event, and events with the message the partner was told.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import validate

from mdfledger.api.pagination import PageArgsSchema
from mdfledger.engagement.models import Destination, Event
from mdfledger.engagement.rules import (
    ALL_TYPES,
    DeliveryState,
    DestinationKind,
    EventType,
    mask_secret,
    type_list,
)
from mdfledger.engagement.service import DeliveryView
from mdfledger.programs.schemas import StrictBoolean, choice_field, id_field, query_id_field

EVENT_TYPES = (
    "'*' for every event type (including types added later), or a list of types: "
    + ", ".join(EventType)
)


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


# --- arguments -----------------------------------------------------------------------------------


class _EventTypes(ma.fields.Field):
    """'*' or a list of type names (the service checks each)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if value == ALL_TYPES:
            return value
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        raise ma.ValidationError("'*' or a list of event types")


class DestinationSettingsSchema(ma.Schema):
    name = ma.fields.String(validate=validate.Length(max=100), metadata={"example": "Acme CRM"})
    event_types = _EventTypes(metadata={"description": EVENT_TYPES, "example": ALL_TYPES})
    url = ma.fields.String(
        allow_none=True, metadata={"description": "webhook: the https URL to POST events to"}
    )
    topic_arn = ma.fields.String(allow_none=True, metadata={"description": "sns: the topic ARN"})
    event_bus = ma.fields.String(
        allow_none=True, metadata={"description": "eventbridge: the bus name or ARN"}
    )
    region = ma.fields.String(
        allow_none=True,
        metadata={"description": "sns, eventbridge: the AWS region (default: the server's)"},
    )
    email_to = ma.fields.List(
        ma.fields.String(),
        allow_none=True,
        metadata={"description": "email: addresses; none for a partner's: its contacts"},
    )


class DestinationCreateSchema(DestinationSettingsSchema):
    name = ma.fields.String(
        required=True, validate=validate.Length(max=100), metadata={"example": "Acme CRM"}
    )
    kind = choice_field(DestinationKind, required=True)
    partner_id = id_field(
        allow_none=True,
        metadata={"description": "Only this partner's events; none: every partner's"},
    )


class DestinationUpdateSchema(DestinationSettingsSchema):
    active = StrictBoolean(
        metadata={"description": "false: new events are not sent; pending ones wait"}
    )


class DeliveryListArgsSchema(PageArgsSchema):
    state = choice_field(DeliveryState, metadata={"description": "dead: the dead-letter list"})
    destination_id = query_id_field()
    partner_id = query_id_field()


class ReplaySchema(ma.Schema):
    delivery_ids = ma.fields.List(
        id_field(),
        required=True,
        validate=validate.Length(min=1, max=1000),
        metadata={"description": "Dead deliveries to send again (all or none)"},
    )


class EventListArgsSchema(PageArgsSchema):
    partner_id = query_id_field(metadata={"description": "Partners: their own only"})
    type = ma.fields.List(choice_field(EventType), metadata={"description": "Only these types"})


# --- answers -------------------------------------------------------------------------------------


class DestinationSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    name = ma.fields.String(required=True)
    kind = ma.fields.String(required=True)
    partner_id = ma.fields.Integer(allow_none=True, required=True)
    event_types = ma.fields.Raw(required=True, metadata={"description": EVENT_TYPES})
    url = ma.fields.String(allow_none=True)
    secret = ma.fields.String(
        allow_none=True,
        metadata={
            "description": "webhook: the signing secret, in full only in the answer to the"
            " creation; masked (whsec_…1a2b) after"
        },
    )
    topic_arn = ma.fields.String(allow_none=True)
    event_bus = ma.fields.String(allow_none=True)
    region = ma.fields.String(allow_none=True)
    email_to = ma.fields.List(ma.fields.String(), allow_none=True)
    active = ma.fields.Boolean(required=True)
    created_by = ma.fields.String(required=True)
    created_at = ma.fields.String(required=True)
    updated_at = ma.fields.String(required=True)


def destination_out(destination: Destination, secret: str | None = None) -> dict[str, Any]:
    types = type_list(destination.event_types)
    return {
        "id": destination.id,
        "name": destination.name,
        "kind": destination.kind,
        "partner_id": destination.partner_id,
        "event_types": types or ALL_TYPES,
        "url": destination.url,
        "secret": secret or (mask_secret(destination.secret) if destination.secret else None),
        "topic_arn": destination.topic_arn,
        "event_bus": destination.event_bus,
        "region": destination.region,
        "email_to": destination.email_to,
        "active": destination.active,
        "created_by": destination.created_by,
        "created_at": _iso(destination.created_at),
        "updated_at": _iso(destination.updated_at),
    }


class MessageSchema(ma.Schema):
    subject = ma.fields.String(required=True)
    text = ma.fields.String(required=True)
    action = ma.fields.String(required=True)


class EventSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    type = ma.fields.String(required=True)
    partner_id = ma.fields.Integer(required=True)
    program_id = ma.fields.Integer(allow_none=True, required=True)
    created_at = ma.fields.String(required=True)
    data = ma.fields.Dict(required=True)
    message = ma.fields.Nested(MessageSchema, required=True)


def event_out(event: Event) -> dict[str, Any]:
    return {
        "id": event.id,
        "type": event.type,
        "partner_id": event.partner_id,
        "program_id": event.program_id,
        "created_at": _iso(event.created_at),
        "data": event.data,
        "message": {"subject": event.subject, "text": event.text, "action": event.action},
    }


class DeliverySchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    state = ma.fields.String(required=True)
    attempts = ma.fields.Integer(required=True)
    next_attempt_at = ma.fields.String(allow_none=True)
    last_error = ma.fields.String(allow_none=True)
    last_status = ma.fields.Integer(allow_none=True)
    created_at = ma.fields.String(required=True)
    delivered_at = ma.fields.String(allow_none=True)
    dead_at = ma.fields.String(allow_none=True)
    replayed_by = ma.fields.String(allow_none=True)
    replayed_at = ma.fields.String(allow_none=True)
    destination_id = ma.fields.Integer(required=True)
    destination_name = ma.fields.String(required=True)
    partner_id = ma.fields.Integer(required=True)
    event = ma.fields.Nested(EventSchema, required=True)


def delivery_out(view: DeliveryView) -> dict[str, Any]:
    d = view.delivery
    return {
        "id": d.id,
        "state": d.state,
        "attempts": d.attempts,
        "next_attempt_at": _iso(d.next_attempt_at) if d.state == DeliveryState.PENDING else None,
        "last_error": d.last_error,
        "last_status": d.last_status,
        "created_at": _iso(d.created_at),
        "delivered_at": _iso(d.delivered_at),
        "dead_at": _iso(d.dead_at),
        "replayed_by": d.replayed_by,
        "replayed_at": _iso(d.replayed_at),
        "destination_id": d.destination_id,
        "destination_name": view.destination.name,
        "partner_id": d.partner_id,
        "event": event_out(view.event),
    }


class ReplayedSchema(ma.Schema):
    replayed = ma.fields.List(ma.fields.Integer(), required=True)


class DestinationListSchema(ma.Schema):
    destinations = ma.fields.List(ma.fields.Nested(DestinationSchema), required=True)
