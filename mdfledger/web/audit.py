"""The audit log for auditors, admins and finance: every action, filtered and paged, newest
first; one entry with its fields before and after, side by side. Read-only: nothing here
changes anything."""

from __future__ import annotations

import json
from typing import Any

from flask import abort, render_template, request
from flask_login import current_user
from sqlalchemy import false, select
from wtforms import DateField, Form, StringField
from wtforms.validators import Optional

from mdfledger import audit
from mdfledger.audit import AuditEntry
from mdfledger.auth import Role
from mdfledger.auth.access import request_actor, require_roles
from mdfledger.db import get_read_session
from mdfledger.errors import DomainError, NotFound, ValidationError
from mdfledger.exports.audit_log import actor_label as _actor_label
from mdfledger.exports.audit_log import partner_by_code as _partner_id
from mdfledger.programs import Partner
from mdfledger.web import bp
from mdfledger.web.partners import actor_names, paginate

READERS = (Role.AUDITOR, Role.ADMIN, Role.FINANCE)
PER_PAGE = 50
FILTERS = ("action", "actor", "object_type", "object_id", "partner", "since", "until", "request")


class AuditFilter(Form):
    action = StringField("Action")
    actor = StringField("Who")
    object_type = StringField("Object type")
    object_id = StringField("Object id")
    partner = StringField("Partner code")
    since = DateField("From", validators=[Optional()])
    until = DateField("To", validators=[Optional()])
    request = StringField("Request id")


def _link(entry: AuditEntry) -> tuple[str, dict[str, Any]] | None:
    """(endpoint, values) of the page showing the entry's object, if there is one the reader
    may open."""
    after = audit.loads(entry.after) or {}
    object_id = int(entry.object_id) if entry.object_id.isdigit() else None
    kind = entry.object_type
    if kind == "program" and object_id:
        return "web.program", {"program_id": object_id}
    if kind in ("activity", "accrual_rate") and isinstance(after.get("program_id"), int):
        return "web.program", {"program_id": after["program_id"]}
    if kind == "import" and object_id:
        return "web.show_import", {"import_id": object_id}
    if kind in ("partner", "contact", "allocation", "fund") and entry.subject_partner_id:
        return "web.partner", {"partner_id": entry.subject_partner_id}
    if kind == "user" and current_user.role == Role.ADMIN:
        return "auth.users", {}
    return None


@bp.get("/audit")
@require_roles(*READERS)
def audit_log() -> Any:
    session = get_read_session()
    actor = request_actor()
    filters = AuditFilter(request.args)
    error: DomainError | None = None
    try:
        if not filters.validate():
            name, messages = next(iter(filters.errors.items()))
            raise ValidationError(f"{filters[name].label.text}: {messages[0]}", field=name)
        statement = audit.query(
            actor,
            action=filters.action.data or None,
            actor_label=_actor_label(session, filters.actor.data),
            object_type=filters.object_type.data or None,
            object_id=filters.object_id.data or None,
            partner_id=_partner_id(session, filters.partner.data),
            since=filters.since.data,
            until=filters.until.data,
            request_id=filters.request.data or None,
        )
    except DomainError as exc:
        error = exc
        statement = audit.query(actor).where(false())
    page = paginate(session, statement, PER_PAGE)
    entries = session.scalars(statement.offset(page.offset).limit(page.size)).all()
    partner_ids = {e.subject_partner_id for e in entries if e.subject_partner_id}
    partners = dict(
        session.execute(select(Partner.id, Partner.code).where(Partner.id.in_(partner_ids))).all()
        if partner_ids
        else []
    )
    query = {k: v for k, v in request.args.items() if k in FILTERS and v}
    html = render_template(
        "audit/list.html",
        entries=entries,
        page=page,
        filters=filters,
        actions=audit.actions(session, actor),
        who=actor_names(session, [e.actor for e in entries]),
        partners=partners,
        links={e.id: _link(e) for e in entries},
        query=query,
        filtered=bool(query),
        error=error,
    )
    return html, 422 if error else 200


@bp.get("/audit/<int:entry_id>")
@require_roles(*READERS)
def audit_entry(entry_id: int) -> Any:
    session = get_read_session()
    try:
        entry = audit.get_entry(session, request_actor(), entry_id)
    except NotFound:
        abort(404)
    before, after = audit.loads(entry.before), audit.loads(entry.after)
    keys = list(dict.fromkeys([*(before or {}), *(after or {})]))
    partner_codes = dict(
        session.execute(
            select(Partner.id, Partner.code).where(
                Partner.id.in_([p for p in (entry.partner_id, entry.subject_partner_id) if p])
            )
        ).all()
    )
    return render_template(
        "audit/detail.html",
        entry=entry,
        before=before,
        after=after,
        keys=keys,
        who=actor_names(session, [entry.actor]),
        partners=partner_codes,
        link=_link(entry),
        shown=_shown,
    )


def _shown(value: Any) -> str:
    """A before/after value as text: JSON for lists and dicts, a dash for none."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)
