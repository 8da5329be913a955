"""Statements: a partner's, a program's or one account's movements for a range of dates, as of
a moment, with opening, running and closing balances; and the same as CSV, XLSX or PDF.

The page shows PAGE_LINES lines at a time, account after account, and continues with a keyset
cursor ("Next lines"): running balances carry on exactly, and later pages keep to the books
of the first (its high-water mark) even while others write. The downloads hold everything.
Partner users read their own partner's statement only ("My statement"). Read-only.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import abort, render_template, request
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import Session

from mdfledger import exports, programs
from mdfledger.actor import Actor
from mdfledger.auth import Role
from mdfledger.auth.access import request_actor, require_roles
from mdfledger.clock import utcnow
from mdfledger.db import get_read_session
from mdfledger.errors import DomainError, NotFound, ValidationError
from mdfledger.exports import statement_files as files
from mdfledger.exports import statement_rules as rules
from mdfledger.programs import Fund, Partner, Program
from mdfledger.web import bp, url_if
from mdfledger.web.exports import offer_download, stream_csv
from mdfledger.web.partners import DATALIST_LIMIT, FormState

READERS = (Role.ADMIN, Role.FINANCE, Role.AUDITOR, Role.PARTNER)
PAGE_LINES = 200
FIELDS = ("partner", "program", "account", "start", "end", "as_of")
# The service's names for the form's fields, so its messages land beside them.
_ALIASES = {"partner_id": "partner", "program_id": "program", "account_id": "account"}
_PAGES = {  # reference target -> (endpoint, its argument)
    "program": ("web.program", "program_id"),
    "partner": ("web.partner", "partner_id"),
    "import": ("web.show_import", "import_id"),
    "fund_request": ("web.request", "request_id"),
    "claim": ("web.claim", "claim_id"),
    "payout": ("web.payout", "payout_id"),
}


def _is_partner() -> bool:
    return current_user.role == Role.PARTNER


def _whole_number(text: str, field: str, what: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    if not text.isdigit() or len(text) > 18:
        raise ValidationError(f"choose {what} from the list or type its number", field=field)
    return int(text)


def _prepare(session: Session, actor: Actor, args: Any) -> exports.PreparedStatement:
    """The statement the form asks for. Another partner's statement is not found (404)."""
    code = (args.get("partner") or "").strip()
    partner_id = None
    if _is_partner():
        own = session.scalar(select(Partner.code).where(Partner.id == actor.partner_id))
        if code and code != own:
            raise NotFound("partner not found")
    elif code:
        partner_id = programs.partner_by_code(session, actor, code).id
    return exports.prepare_statement(
        session,
        actor,
        partner_id=partner_id,
        program_id=_whole_number(args.get("program") or "", "program", "a program"),
        account_id=_whole_number(args.get("account") or "", "account", "an account"),
        start=(args.get("start") or "").strip(),
        end=(args.get("end") or "").strip(),
        as_of=(args.get("as_of") or "").strip() or None,
    )


def _link(target: tuple[str, int] | None) -> str | None:
    """The page showing a reference's object, when this reader may open it."""
    if target is None or target[0] not in _PAGES:
        return None
    kind, ident = target
    if _is_partner() and (
        kind == "import" or (kind == "partner" and ident != current_user.partner_id)
    ):
        return None
    endpoint, arg = _PAGES[kind]
    return url_if(endpoint, **{arg: ident})


def _program_choices(session: Session, actor: Actor) -> list[tuple[str, str]]:
    query = select(Program.id, Program.code, Program.name).order_by(Program.code)
    if _is_partner():
        query = query.where(
            Program.id.in_(
                select(Fund.program_id).where(Fund.partner_id == actor.partner_id).distinct()
            )
        )
    return [("", "Any program")] + [(str(i), f"{c} ({n})") for i, c, n in session.execute(query)]


def _asked() -> dict[str, str]:
    """The form's values; no dates at all means this year so far."""
    values = {name: request.args.get(name, "") for name in FIELDS}
    if not values["start"] and not values["end"]:
        today = utcnow().date()
        values.update(start=date(today.year, 1, 1).isoformat(), end=today.isoformat())
    return values


def _render(
    session: Session,
    actor: Actor,
    page: Any = None,
    error: DomainError | None = None,
) -> tuple[str, int]:
    values = _asked()
    errors: dict[str, str] = {}
    if error is not None:
        field = error.details.get("field")
        field = _ALIASES.get(field, field)
        errors[field if field in FIELDS else "_form"] = error.message
    suggestions: list[Any] = []
    if not _is_partner():
        suggestions = session.execute(
            select(Partner.code, Partner.name).order_by(Partner.code).limit(DATALIST_LIMIT)
        ).all()
    query = {k: v for k, v in values.items() if v}
    html = render_template(
        "statements/page.html",
        f=FormState("statement", values, errors),
        page=page,
        program_choices=_program_choices(session, actor),
        suggestions=suggestions,
        partner_user=_is_partner(),
        query=query,
        formats=files.FORMATS,
        link=_link,
        amount=rules.grouped,
    )
    return html, 422 if error else 200


@bp.get("/statements")
@require_roles(*READERS)
def statements() -> Any:
    session = get_read_session()
    actor = request_actor()
    if not _is_partner() and not any(request.args.get(name) for name in FIELDS):
        return _render(session, actor)  # staff choose first; a partner sees theirs at once
    try:
        prepared = _prepare(session, actor, _asked())
        page = exports.read_statement_page(
            session, prepared, after=request.args.get("after") or None, limit=PAGE_LINES
        )
    except NotFound as exc:
        if _is_partner() or exc.details.get("field") is None:
            abort(404)
        return _render(session, actor, error=exc)
    except DomainError as exc:
        return _render(session, actor, error=exc)
    return _render(session, actor, page=page)


@bp.get("/statements/file.<fmt>")
@require_roles(*READERS)
def statement_file(fmt: str) -> Any:
    """The whole statement as a file, made now (CSV streams as it is read)."""
    if fmt not in files.FORMATS:
        abort(404)
    session = get_read_session()
    actor = request_actor()
    try:
        prepared = _prepare(session, actor, _asked())
    except NotFound as exc:
        if _is_partner() or exc.details.get("field") is None:
            abort(404)
        return _render(session, actor, error=exc)
    except DomainError as exc:
        return _render(session, actor, error=exc)
    if fmt != "csv":  # XLSX and PDF are built whole: large ones become a background job
        return offer_download("statement", prepared.params(), fmt)
    return stream_csv(
        "statement", prepared.params(), lambda read, _a, _p: exports.statement_csv(read, prepared)
    )
