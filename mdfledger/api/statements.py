"""Statements over the API: a partner's, a program's or one account's movements for a range of
effective dates, as of a moment, with opening, running and closing balances (JSON, in pages
that continue exactly), and the whole statement as a CSV, XLSX or PDF file.

Every role may read; a partner token reads its own partner's accounts only (another partner's
partner or account is 404, like an id that does not exist). Read-only.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import Response, stream_with_context
from marshmallow import validate

from mdfledger import exports
from mdfledger.api import API_PREFIX
from mdfledger.api.audit import DateOrTime
from mdfledger.api.auth import api_actor
from mdfledger.api.blueprint import Blueprint
from mdfledger.api.errors import documented_errors
from mdfledger.db import get_read_session, get_session
from mdfledger.errors import Conflict
from mdfledger.exports import kinds
from mdfledger.exports import statement_files as files
from mdfledger.exports import statement_rules as rules
from mdfledger.exports.statements import MAX_PAGE_LINES, PageSection, Row
from mdfledger.ledger.balances import Balance
from mdfledger.ledger.commands import MAX_ID
from mdfledger.programs.schemas import money_out

blp = Blueprint(
    "statements",
    __name__,
    url_prefix=API_PREFIX,
    description="Statements: opening balance, every movement with its business reference and"
    " running balance, closing balance; as JSON pages or CSV, XLSX and PDF files",
)
errors = documented_errors(blp)


def _id_arg(description: str) -> ma.fields.Integer:
    return ma.fields.Integer(
        validate=validate.Range(min=1, max=MAX_ID), metadata={"description": description}
    )


class StatementArgsSchema(ma.Schema):
    partner_id = _id_arg("A partner's accounts (a partner token: its own; the default)")
    program_id = _id_arg("Alone: the program's own accounts; with partner_id: narrows to it")
    account_id = _id_arg("One account, alone")
    start = ma.fields.Date(required=True, metadata={"description": "First effective date"})
    end = ma.fields.Date(required=True, metadata={"description": "Last effective date (inclusive)"})
    as_of = DateOrTime(
        metadata={
            "description": "The books as they stood then (transfers created up to it); a date"
            " means its end, UTC. Default: now"
        }
    )


class StatementPageArgsSchema(StatementArgsSchema):
    after = ma.fields.String(
        validate=validate.Length(max=80),
        metadata={"description": "The previous page's `next`"},
    )
    limit = ma.fields.Integer(
        load_default=200,
        validate=validate.Range(min=1, max=MAX_PAGE_LINES),
        metadata={"description": "Lines on this page, over all accounts"},
    )


class StatementFileArgsSchema(StatementArgsSchema):
    format = ma.fields.String(required=True, validate=validate.OneOf(files.FORMATS))


class StatementSubjectSchema(ma.Schema):
    type = ma.fields.String(required=True, metadata={"description": "partner, program or account"})
    id = ma.fields.Integer(required=True)
    label = ma.fields.String(required=True, metadata={"example": "Partner ACME (Acme Networks)"})
    program_id = ma.fields.Integer(
        required=True, allow_none=True, metadata={"description": "A partner's, narrowed to it"}
    )


class StatementBalanceSchema(ma.Schema):
    balance = money_out("Posted balance, signed to the account's normal side")
    reserved = money_out("Net reservations (negative: held out of this account)")
    available = money_out("Posted balance less what is held out of the account")


class StatementReferenceSchema(ma.Schema):
    type = ma.fields.String(
        required=True, allow_none=True, metadata={"example": "claim", "description": "ref_type"}
    )
    id = ma.fields.String(required=True, allow_none=True, metadata={"example": "12"})
    label = ma.fields.String(required=True, metadata={"example": "Claim #12 approved"})


class StatementLineSchema(ma.Schema):
    transfer_id = ma.fields.Integer(required=True)
    effective_date = ma.fields.Date(required=True)
    recorded_at = ma.fields.DateTime(required=True, metadata={"description": "UTC"})
    type = ma.fields.String(required=True, metadata={"description": "single, pending, post, ..."})
    code = ma.fields.String(required=True, metadata={"example": "claim.reimbursement"})
    side = ma.fields.String(required=True, metadata={"description": "debit or credit"})
    amount = money_out("Change in the posted balance")
    reserved = money_out("Change in net reservations")
    balance = money_out("Running posted balance")
    available = money_out("Running available balance")
    counter_account_id = ma.fields.Integer(required=True)
    counter_account = ma.fields.String(required=True)
    reference = ma.fields.Nested(StatementReferenceSchema, required=True)
    description = ma.fields.String(required=True)


class StatementAccountSchema(ma.Schema):
    account_id = ma.fields.Integer(required=True)
    name = ma.fields.String(required=True)
    kind = ma.fields.String(required=True, metadata={"example": "partner_fund"})
    currency = ma.fields.String(required=True, metadata={"example": "USD"})
    program_id = ma.fields.Integer(required=True, allow_none=True)
    partner_id = ma.fields.Integer(required=True, allow_none=True)
    opening = ma.fields.Nested(StatementBalanceSchema, required=True)
    closing = ma.fields.Nested(StatementBalanceSchema, required=True)
    brought_forward = money_out("Posted balance before this page's first line")
    lines = ma.fields.List(ma.fields.Nested(StatementLineSchema), required=True)
    continued = ma.fields.Boolean(required=True, metadata={"description": "Began on a page before"})
    more = ma.fields.Boolean(required=True, metadata={"description": "Goes on on the next page"})


class StatementSchema(ma.Schema):
    subject = ma.fields.Nested(StatementSubjectSchema, required=True)
    start = ma.fields.Date(required=True)
    end = ma.fields.Date(required=True)
    as_of = ma.fields.DateTime(required=True, metadata={"description": "The moment shown (UTC)"})
    generated_at = ma.fields.DateTime(required=True)
    high_water = ma.fields.Integer(
        required=True, metadata={"description": "The last transfer id the statement includes"}
    )
    accounts = ma.fields.List(ma.fields.Nested(StatementAccountSchema), required=True)
    next = ma.fields.String(
        required=True, allow_none=True, metadata={"description": "Pass as `after`; null: done"}
    )


def _balance(b: Balance, currency: str) -> dict[str, str]:
    return {
        "balance": rules.amount_text(b.posted, currency),
        "reserved": rules.amount_text(b.pending, currency),
        "available": rules.amount_text(b.available, currency),
    }


def _line(row: Row, currency: str) -> dict[str, Any]:
    line, ref = row.line, row.reference
    money = {
        name: rules.amount_text(value, currency)
        for name, value in (
            ("amount", line.amount), ("reserved", line.pending_change),
            ("balance", line.balance), ("available", line.available),
        )
    }  # fmt: skip
    return {
        "transfer_id": line.transfer_id, "effective_date": line.effective_date,
        "recorded_at": line.created_at, "type": line.type, "code": line.code, "side": line.side,
        **money, "counter_account_id": line.counter_account_id,
        "counter_account": row.counter_account,
        "reference": {"type": ref.type, "id": ref.id, "label": ref.label},
        "description": row.description,
    }  # fmt: skip


def _section(s: PageSection) -> dict[str, Any]:
    a, currency = s.account, s.account.currency
    return {
        "account_id": a.id, "name": a.name, "kind": a.kind, "currency": currency,
        "program_id": a.program_id, "partner_id": a.partner_id,
        "opening": _balance(s.opening, currency), "closing": _balance(s.closing, currency),
        "brought_forward": rules.amount_text(s.brought_forward, currency),
        "lines": [_line(r, currency) for r in s.rows], "continued": s.continued, "more": s.more,
    }  # fmt: skip


def _prepare(args: dict[str, Any]) -> exports.PreparedStatement:
    subject = {k: args.get(k) for k in ("partner_id", "program_id", "account_id", "as_of")}
    return exports.prepare_statement(
        get_read_session(), api_actor(), start=args["start"], end=args["end"], **subject
    )


@blp.route("/statements", methods=["GET"])
@blp.arguments(StatementPageArgsSchema, location="query")
@blp.response(200, StatementSchema)
@errors(404)
def get_statement(args: dict[str, Any]) -> dict[str, Any]:
    """A statement

    Per account: the opening balance (the end of the day before `start`), every movement
    by effective date with its business reference and running balances, and the closing
    balance (the end of `end`); opening + amounts = closing, to the cent. Money is decimal
    strings in each account's currency. Give `partner_id` (optionally with `program_id`),
    `program_id` alone (the program's funding, budget, accrual and expiry accounts) or
    `account_id`. Pages hold `limit` lines over all accounts; pass `next` as `after` to go
    on: later pages keep to the first page's books (`high_water`) while others write.
    """
    prepared = _prepare(args)
    page = exports.read_statement_page(
        get_read_session(), prepared, after=args.get("after"), limit=args["limit"]
    )
    s = page.statement
    return {
        "subject": {
            "type": s.subject_type, "id": s.subject_id, "label": s.subject_label,
            "program_id": s.program_id,
        },
        "start": s.start, "end": s.end, "as_of": s.as_of, "generated_at": s.generated_at,
        "high_water": s.high_water, "accounts": [_section(x) for x in page.sections],
        "next": page.next,
    }  # fmt: skip


@blp.route("/statements/file", methods=["GET"])
@blp.arguments(StatementFileArgsSchema, location="query")
@blp.doc(
    responses={
        "200": {
            "description": "The whole statement as a file: CSV (streamed; a header block, a blank"
            " line, then one table), XLSX (one sheet) or PDF",
            "content": {
                kinds.MEDIA_TYPES[fmt].split(";")[0]: {
                    "schema": {"type": "string", "format": "binary"}
                }
                for fmt in files.FORMATS
            },
        }
    }
)
@errors(404, 409)
def statement_file(args: dict[str, Any]) -> Response:
    """A statement as CSV, XLSX or PDF

    The same figures as GET /statements, every line at once.
    """
    fmt = args["format"]
    prepared = _prepare(args)
    session, actor = get_read_session(), api_actor()
    asked = exports.prepare(session, actor, "statement", fmt, prepared.params())
    if fmt != "csv" and asked.in_background:  # XLSX and PDF are built whole, in memory
        raise Conflict(
            f"this statement has {asked.rows:,} lines: ask for the {fmt.upper()} file as an"
            " export job (POST /api/v1/exports with kind statement), which runs in the"
            " background and gives a download link when ready",
            params=asked.params,
        )
    write = get_session()
    exports.record_download(write, actor, asked)
    write.commit()
    if fmt == "csv":
        body: Any = stream_with_context(exports.statement_csv(session, prepared))
    else:
        body = files.to_bytes(session, prepared, fmt)
    name = files.filename(prepared.params(), fmt)
    return Response(
        body,
        content_type=kinds.MEDIA_TYPES[fmt],
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "private, no-store",
        },
    )
