"""The audit log over the API: entries newest first, filtered and paged, and one entry. Staff
tokens only (admin, finance, auditor); read-only."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import marshmallow as ma
from marshmallow import validate

from mdfledger import audit
from mdfledger.api import API_PREFIX
from mdfledger.api.auth import api_actor, require_roles
from mdfledger.api.blueprint import Blueprint
from mdfledger.api.errors import documented_errors
from mdfledger.api.pagination import PageArgsSchema, page_schema, paginate
from mdfledger.audit import AuditEntry
from mdfledger.auth.scope import STAFF
from mdfledger.db import get_read_session
from mdfledger.ledger.commands import MAX_ID

blp = Blueprint(
    "audit",
    __name__,
    url_prefix=API_PREFIX,
    description="The audit log: who did what, when, with the fields before and after",
)
errors = documented_errors(blp)


class DateOrTime(ma.fields.String):  # documented as a string
    """A date (2026-08-15: the whole UTC day) or a time with its offset (2026-08-15T12:00:00Z)."""

    default_error_messages = {
        "invalid": "Not a date (YYYY-MM-DD) or a time with an offset (ISO 8601).",
        "naive": "A time needs its offset, e.g. 2026-08-15T12:00:00Z.",
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, str) or len(value) > 40:
            raise self.make_error("invalid")
        text = value.strip()
        try:
            if len(text) == 10:
                return date.fromisoformat(text)
            moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise self.make_error("invalid") from None
        if moment.tzinfo is None:
            raise self.make_error("naive")
        return moment


class AuditListArgsSchema(PageArgsSchema):
    action = ma.fields.String(
        validate=validate.Length(max=64),
        metadata={"description": "An action, or a family without a dot (allocation)"},
    )
    actor = ma.fields.String(
        validate=validate.Length(max=200), metadata={"description": "user:12 or system:cli"}
    )
    object_type = ma.fields.String(validate=validate.Length(max=40))
    object_id = ma.fields.String(validate=validate.Length(max=64))
    partner_id = ma.fields.Integer(
        validate=validate.Range(min=1, max=MAX_ID),
        metadata={"description": "Entries about this partner's objects"},
    )
    since = DateOrTime(metadata={"description": "From this date or time (inclusive)"})
    until = DateOrTime(metadata={"description": "Through this date or time (inclusive)"})
    request_id = ma.fields.String(validate=validate.Length(max=64))


class AuditEntrySchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    at = ma.fields.DateTime(required=True, metadata={"description": "UTC"})
    actor = ma.fields.String(required=True, metadata={"example": "user:12"})
    actor_kind = ma.fields.String(required=True, metadata={"description": "user or system"})
    role = ma.fields.String(required=True, allow_none=True)
    partner_id = ma.fields.Integer(
        required=True, allow_none=True, metadata={"description": "The actor's, for partner users"}
    )
    action = ma.fields.String(required=True, metadata={"example": "allocation.create"})
    object_type = ma.fields.String(required=True, metadata={"example": "allocation"})
    object_id = ma.fields.String(required=True)
    subject_partner_id = ma.fields.Integer(
        required=True, allow_none=True, metadata={"description": "The partner the object is of"}
    )
    summary = ma.fields.String(required=True)
    before = ma.fields.Dict(required=True, allow_none=True)
    after = ma.fields.Dict(required=True, allow_none=True)
    request_id = ma.fields.String(required=True, allow_none=True)
    hash = ma.fields.String(required=True, metadata={"description": "SHA-256 chain hash"})


def entry_out(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id, "at": entry.at, "actor": entry.actor, "actor_kind": entry.actor_kind,
        "role": entry.role, "partner_id": entry.partner_id, "action": entry.action,
        "object_type": entry.object_type, "object_id": entry.object_id,
        "subject_partner_id": entry.subject_partner_id, "summary": entry.summary,
        "before": audit.loads(entry.before), "after": audit.loads(entry.after),
        "request_id": entry.request_id, "hash": entry.hash,
    }  # fmt: skip


@blp.route("/audit", methods=["GET"])
@require_roles(*STAFF)
@blp.arguments(AuditListArgsSchema, location="query")
@blp.response(200, page_schema(AuditEntrySchema))
@errors()
def list_entries(args: dict[str, Any]) -> dict[str, Any]:
    """Audit entries

    Newest first, 50 a page by default. Filters: `action` (exact, or a family such as
    `allocation`), `actor` (`user:12`), `object_type` and `object_id`, `partner_id` (entries
    about that partner's objects), `since` / `until` (a date covers its whole UTC day), and
    `request_id` (everything one request did).
    """
    statement = audit.query(
        api_actor(),
        action=args.get("action"),
        actor_label=args.get("actor"),
        object_type=args.get("object_type"),
        object_id=args.get("object_id"),
        partner_id=args.get("partner_id"),
        since=args.get("since"),
        until=args.get("until"),
        request_id=args.get("request_id"),
    )
    page = paginate(get_read_session(), statement, args)
    return {**page, "items": [entry_out(e) for e in page["items"]]}


@blp.route("/audit/<int:entry_id>", methods=["GET"])
@require_roles(*STAFF)
@blp.response(200, AuditEntrySchema)
@errors(404)
def get_entry(entry_id: int) -> dict[str, Any]:
    """An audit entry

    With the fields it recorded before and after the change.
    """
    return entry_out(audit.get_entry(get_read_session(), api_actor(), entry_id))
