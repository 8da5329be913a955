"""The programs package at the API edge: marshmallow schemas in, plain dicts out.

In: schemas check types and shapes (strict integers and booleans, no unknown fields); the
services check values. Money comes in as a decimal string ("1234.50", never a JSON number); it
is turned into minor units with `to_minor` once the program, and so the currency, is known.
Percentages come in as decimal strings of percent ("50", "2.5") and load exactly as basis
points; more than 2 decimal places are refused, never rounded.

Out: the `*_out` functions turn domain objects into dicts of the documented response shapes,
money as decimal strings beside their currency, percentages as decimal strings, dates ISO.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import marshmallow as ma
from flask_smorest.fields import Upload
from marshmallow import validate
from werkzeug.datastructures import FileStorage

from mdfledger.errors import ValidationError
from mdfledger.fields import PERCENT_PATTERN, parse_percent, percent_text
from mdfledger.ledger import TransferRecord
from mdfledger.ledger.commands import MAX_ID
from mdfledger.money import format_amount, parse_amount
from mdfledger.programs import rules
from mdfledger.programs.balances import Breakdown, Expiring, FundLine, Utilisation
from mdfledger.programs.funds import period_of, today
from mdfledger.programs.imports import ImportReport, RowResult
from mdfledger.programs.models import (
    AccrualRate,
    Activity,
    Allocation,
    AllocationKind,
    Contact,
    ExpiryPolicy,
    Import,
    ImportKind,
    Partner,
    PartnerStatus,
    PartnerType,
    Program,
    ProgramKind,
    ProgramStatus,
    ProofType,
)

AMOUNT_MAX_LENGTH = 40  # far more digits than any amount the ledger holds (< 2**62)
UNSIGNED_AMOUNT = r"^[0-9]+(\.[0-9]+)?$"
SIGNED_AMOUNT = r"^-?[0-9]+(\.[0-9]+)?$"
PERCENT = PERCENT_PATTERN


# --- fields --------------------------------------------------------------------------------------


class DecimalString(ma.fields.String):
    """Money in: a decimal string such as "1234.50" (signed: "-250.00"). A JSON number is
    refused, so no amount ever passes through a float. Loads the trimmed string; `to_minor`
    makes minor units of it in the program's currency."""

    default_error_messages = {
        "invalid": 'Not a decimal string such as "1234.50": send amounts as JSON strings.',
    }

    def __init__(self, *, signed: bool = False, **kwargs: Any) -> None:
        pattern = SIGNED_AMOUNT if signed else UNSIGNED_AMOUNT
        shape = 'a decimal string such as "-250.00" or "1234.50"'
        if not signed:
            shape = 'a positive decimal string such as "1234.50"'
        metadata = {
            "example": "-250.00" if signed else "1234.50",
            "description": f"Money as {shape}, with no more decimals than the currency has",
            **kwargs.pop("metadata", {}),
        }
        super().__init__(
            validate=[
                validate.Length(min=1, max=AMOUNT_MAX_LENGTH),
                validate.Regexp(pattern, error=f"Not {shape}."),
            ],
            metadata=metadata,
            **kwargs,
        )

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str):
            raise self.make_error("invalid")
        return value.strip()


class Percent(ma.fields.String):
    """A percentage as a decimal string ("50", "2.5") in, basis points (5000, 250) loaded;
    basis points dump as the shortest exact string ("12.5")."""

    default_error_messages = {
        "invalid": 'Not a percentage such as "50" or "2.5": send percentages as JSON strings.',
    }

    def __init__(self, *, low: str = "0", high: str = "100", **kwargs: Any) -> None:
        self.low, self.high = Decimal(low), Decimal(high)
        metadata = {
            "example": "12.5",
            "pattern": PERCENT,
            "description": f"Percent from {low} to {high}, at most 2 decimal places",
            **kwargs.pop("metadata", {}),
        }
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if not isinstance(value, str) or "%" in value:
            raise self.make_error("invalid")
        try:
            return parse_percent(value, attr or "percent", low=self.low, high=self.high)
        except ValidationError as exc:
            raise ma.ValidationError(exc.message) from None

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return None if value is None else percent_text(value)


class UploadedFile(Upload):
    """A file part of a multipart/form-data request (a plain form value is not a file)."""

    default_error_messages = {"invalid": "Not a file: upload it as a file part."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> FileStorage:
        if not isinstance(value, FileStorage):
            raise self.make_error("invalid")
        return value


class StrictBoolean(ma.fields.Boolean):
    """true or false, nothing else: not 1, "yes" or "true"."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


def id_field(**kwargs: Any) -> ma.fields.Integer:
    return ma.fields.Integer(strict=True, validate=validate.Range(min=1, max=MAX_ID), **kwargs)


def query_id_field(**kwargs: Any) -> ma.fields.Integer:
    # Query strings are text: "12" is the id 12 there.
    return ma.fields.Integer(validate=validate.Range(min=1, max=MAX_ID), **kwargs)


def choice_field(values: Any, **kwargs: Any) -> ma.fields.String:
    return ma.fields.String(validate=validate.OneOf([str(v) for v in values]), **kwargs)


def text_field(limit: int, **kwargs: Any) -> ma.fields.String:
    return ma.fields.String(validate=validate.Length(max=limit), **kwargs)


def money_out(description: str = "", **kwargs: Any) -> ma.fields.String:
    """Money out: a decimal string in the currency named beside it."""
    metadata = {"example": "1234.50", "description": description or "Decimal string"}
    return ma.fields.String(required=True, metadata=metadata, **kwargs)


# --- money and percent at the edge ---------------------------------------------------------------


def to_minor(text: str | None, currency: str, field: str = "amount") -> int | None:
    """A loaded decimal string in minor units of `currency`; more decimals than it has: 422."""
    if text is None:
        return None
    try:
        return parse_amount(text, currency)
    except ValidationError as exc:
        raise ValidationError(exc.message, field=field) from None


# --- arguments -----------------------------------------------------------------------------------


class IdempotencyHeaderSchema(ma.Schema):
    key = ma.fields.String(
        data_key="Idempotency-Key",
        validate=validate.Length(min=1, max=150),
        metadata={
            "description": "Makes a retry safe: the same key with the same fields returns the"
            " original result (again 201) and moves nothing twice; the same key with other"
            " fields is 409 idempotency_conflict. Keys are per kind of movement."
        },
    )


class ProgramListArgsSchema(ma.Schema):
    status = choice_field(ProgramStatus, metadata={"description": "Partners see active ones only"})


class ProgramCreateSchema(ma.Schema):
    code = ma.fields.String(required=True, metadata={"example": "MDF27"})
    name = ma.fields.String(required=True, metadata={"example": "MDF 2027"})
    kind = choice_field(ProgramKind, required=True)
    currency = ma.fields.String(required=True, metadata={"example": "USD"})
    timezone = ma.fields.String(metadata={"example": "America/New_York", "default": "UTC"})
    fiscal_start_month = ma.fields.Integer(strict=True, metadata={"example": 1})
    period_months = ma.fields.Integer(
        strict=True, metadata={"example": 3, "enum": list(rules.PERIOD_MONTHS)}
    )
    claim_deadline_days = ma.fields.Integer(strict=True, metadata={"example": 60})
    share_percent = Percent(
        low="0.01",
        attribute="share_bp",
        metadata={"description": "The program's share of an eligible cost, percent"},
    )
    expiry_policy = choice_field(ExpiryPolicy)
    rollover_days = ma.fields.Integer(
        strict=True, metadata={"description": "Days unspent funds stay usable after period end"}
    )
    description = ma.fields.String()
    direct_claims = StrictBoolean(
        metadata={"description": "Claims without pre-approval, against funds"}
    )
    second_approval_above = DecimalString(
        allow_none=True,
        metadata={"description": "Claims above this amount need two approvers; null: one"},
    )


class ProgramUpdateSchema(ma.Schema):
    name = ma.fields.String()
    description = ma.fields.String()
    claim_deadline_days = ma.fields.Integer(strict=True)
    share_percent = Percent(low="0.01", attribute="share_bp")
    status = choice_field(ProgramStatus)
    direct_claims = StrictBoolean()
    second_approval_above = DecimalString(allow_none=True)


class ActivityCreateSchema(ma.Schema):
    code = ma.fields.String(required=True, metadata={"example": "WEBINAR"})
    name = ma.fields.String(required=True, metadata={"example": "Webinar"})
    description = ma.fields.String()
    proof = ma.fields.List(
        choice_field(ProofType), required=True, validate=validate.Length(min=1, max=len(ProofType))
    )
    cap = DecimalString(allow_none=True, metadata={"description": "Most a claim may ask; none"})


class ActivityUpdateSchema(ma.Schema):
    name = ma.fields.String()
    description = ma.fields.String()
    proof = ma.fields.List(
        choice_field(ProofType), validate=validate.Length(min=1, max=len(ProofType))
    )
    cap = DecimalString(allow_none=True, metadata={"description": "null removes the cap"})
    active = StrictBoolean()


class RateSchema(ma.Schema):
    """In and out: a co-op accrual rate for a partner tier and/or product line ("" for any)."""

    id = ma.fields.Integer(dump_only=True)
    tier = ma.fields.String(load_default="", metadata={"example": "gold"})
    product_line = ma.fields.String(load_default="", metadata={"example": "storage"})
    rate_percent = Percent(required=True, attribute="rate_bp", metadata={"example": "2.5"})


class BudgetChangeSchema(ma.Schema):
    amount = DecimalString(
        signed=True, required=True, metadata={"description": "Positive adds, negative takes back"}
    )
    reason = ma.fields.String(required=True)


class AllocationImportSchema(ma.Schema):
    file = UploadedFile(
        required=True, metadata={"description": "CSV: partner, amount[, currency, reason]"}
    )
    period = ma.fields.Date(
        attribute="day", metadata={"description": "A day in the period to allocate to; today"}
    )
    reason = ma.fields.String(metadata={"description": "For rows without their own reason"})


class PurchaseImportSchema(ma.Schema):
    file = UploadedFile(
        required=True,
        metadata={"description": "CSV: partner, reference, date, amount[, product_line, currency]"},
    )
    period = ma.fields.Date(
        attribute="day", metadata={"description": "A day in the period the purchases fall in"}
    )


class ImportListArgsSchema(ma.Schema):
    program_id = query_id_field()
    kind = choice_field(ImportKind)


class PartnerListArgsSchema(ma.Schema):
    search = ma.fields.String(metadata={"description": "Part of the name or code"})
    status = choice_field(PartnerStatus)
    tier = ma.fields.String()
    region = ma.fields.String()


class PartnerCreateSchema(ma.Schema):
    code = ma.fields.String(required=True, metadata={"example": "ACME"})
    name = ma.fields.String(required=True, metadata={"example": "Acme Networks"})
    type = choice_field(PartnerType, required=True)
    tier = ma.fields.String(required=True, metadata={"example": "gold"})
    region = ma.fields.String(required=True, metadata={"example": "NA"})
    status = choice_field(PartnerStatus)


class PartnerUpdateSchema(ma.Schema):
    name = ma.fields.String()
    type = choice_field(PartnerType)
    tier = ma.fields.String()
    region = ma.fields.String()
    status = choice_field(PartnerStatus)


class ContactSchema(ma.Schema):
    """In and out: a person at a partner."""

    id = ma.fields.Integer(dump_only=True)
    partner_id = ma.fields.Integer(dump_only=True)
    name = ma.fields.String(required=True)
    email = ma.fields.String(required=True, metadata={"example": "ada@acme.example"})
    phone = ma.fields.String(load_default="")
    title = ma.fields.String(load_default="")
    is_primary = StrictBoolean(load_default=False)


class AllocationListArgsSchema(ma.Schema):
    program_id = query_id_field()
    partner_id = query_id_field()
    import_id = query_id_field()
    kind = choice_field(AllocationKind)


class AllocationCreateSchema(ma.Schema):
    program_id = id_field(required=True)
    partner_id = id_field(required=True)
    amount = DecimalString(required=True)
    reason = ma.fields.String(required=True)
    period = ma.fields.Date(
        attribute="day",
        metadata={"description": "A day in the fiscal period to allocate to; default today"},
    )


class AdjustmentSchema(ma.Schema):
    amount = DecimalString(
        signed=True,
        required=True,
        metadata={"description": "Positive moves budget in, negative takes unspent funds back"},
    )
    reason = ma.fields.String(required=True)


class ReversalSchema(ma.Schema):
    reason = ma.fields.String(required=True)


# --- responses -----------------------------------------------------------------------------------


class PeriodSchema(ma.Schema):
    label = ma.fields.String(required=True, metadata={"example": "FY2026 Q3"})
    start = ma.fields.Date(required=True)
    end = ma.fields.Date(required=True)


class ProgramSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    code = ma.fields.String(required=True)
    name = ma.fields.String(required=True)
    description = ma.fields.String(required=True)
    kind = choice_field(ProgramKind, required=True)
    currency = ma.fields.String(required=True)
    timezone = ma.fields.String(required=True)
    fiscal_start_month = ma.fields.Integer(required=True)
    period_months = ma.fields.Integer(required=True)
    claim_deadline_days = ma.fields.Integer(required=True)
    share_percent = Percent(required=True, attribute="share_bp")
    expiry_policy = choice_field(ExpiryPolicy, required=True)
    rollover_days = ma.fields.Integer(required=True)
    status = choice_field(ProgramStatus, required=True)
    direct_claims = ma.fields.Boolean(required=True)
    second_approval_above = money_out("Claims above this need two approvers", allow_none=True)
    created_at = ma.fields.DateTime(required=True)


class ActivitySchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    program_id = ma.fields.Integer(required=True)
    code = ma.fields.String(required=True)
    name = ma.fields.String(required=True)
    description = ma.fields.String(required=True)
    proof = ma.fields.List(choice_field(ProofType), required=True)
    cap = money_out("Most a claim may ask, or null", allow_none=True)
    currency = ma.fields.String(required=True)
    active = ma.fields.Boolean(required=True)


class ProgramDetailSchema(ProgramSchema):
    current_period = ma.fields.Nested(
        PeriodSchema, required=True, metadata={"description": "The period containing today"}
    )
    activities = ma.fields.List(ma.fields.Nested(ActivitySchema), required=True)
    rates = ma.fields.List(ma.fields.Nested(RateSchema), required=True)


class BudgetTransferSchema(ma.Schema):
    id = ma.fields.Integer(required=True, metadata={"description": "The ledger transfer"})
    amount = money_out("The change to the budget, signed")
    currency = ma.fields.String(required=True)
    reason = ma.fields.String(required=True)
    effective_date = ma.fields.Date(required=True)
    created_at = ma.fields.DateTime(required=True)


class ExpiringSchema(ma.Schema):
    amount = money_out()
    on = ma.fields.Date(required=True, metadata={"description": "The last day it can be used"})
    period = ma.fields.String(required=True)


class FiguresSchema(ma.Schema):
    """Where money stands, as decimal strings in `currency`: allocated + accrued = received =
    reserved + approved + expired + available + awaiting_expiry."""

    allocated = money_out()
    accrued = money_out()
    received = money_out("allocated + accrued")
    reserved = money_out("Held for pre-approved requests")
    approved = money_out("Claims approved")
    paid = money_out()
    expired = money_out()
    available = money_out("Usable now")
    awaiting_expiry = money_out("Past its last day; the next expiry run forfeits it")
    utilisation_percent = ma.fields.String(
        required=True, allow_none=True, metadata={"description": "Approved / received, percent"}
    )
    expiring_next = ma.fields.Nested(ExpiringSchema, required=True, allow_none=True)


class FundLineSchema(ma.Schema):
    fund_id = ma.fields.Integer(required=True)
    period = ma.fields.String(required=True)
    period_start = ma.fields.Date(required=True)
    period_end = ma.fields.Date(required=True)
    available_until = ma.fields.Date(required=True)
    received = money_out()
    reserved = money_out()
    available = money_out()
    expired = money_out()
    live = ma.fields.Boolean(required=True, metadata={"description": "Still usable today"})


class BreakdownSchema(FiguresSchema):
    program_id = ma.fields.Integer(required=True)
    program_code = ma.fields.String(required=True)
    program_name = ma.fields.String(required=True)
    partner_id = ma.fields.Integer(required=True)
    currency = ma.fields.String(required=True)
    funds = ma.fields.List(ma.fields.Nested(FundLineSchema), required=True)


class PartnerBalancesSchema(ma.Schema):
    partner_id = ma.fields.Integer(required=True)
    programs = ma.fields.List(ma.fields.Nested(BreakdownSchema), required=True)


class UtilisationPartnerSchema(FiguresSchema):
    partner_id = ma.fields.Integer(required=True)
    partner_code = ma.fields.String(required=True)
    partner_name = ma.fields.String(required=True)


class UtilisationSchema(ma.Schema):
    program_id = ma.fields.Integer(required=True)
    program_code = ma.fields.String(required=True)
    program_name = ma.fields.String(required=True)
    currency = ma.fields.String(required=True)
    budget_funded = money_out("The vendor's funding, net")
    budget_unallocated = money_out("Still in the budget")
    totals = ma.fields.Nested(FiguresSchema, required=True)
    partners = ma.fields.List(ma.fields.Nested(UtilisationPartnerSchema), required=True)


class PartnerSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    code = ma.fields.String(required=True)
    name = ma.fields.String(required=True)
    type = choice_field(PartnerType, required=True)
    tier = ma.fields.String(required=True)
    region = ma.fields.String(required=True)
    status = choice_field(PartnerStatus, required=True)
    created_at = ma.fields.DateTime(required=True)


class PartnerDetailSchema(PartnerSchema):
    contacts = ma.fields.List(ma.fields.Nested(ContactSchema), required=True)


class AllocationSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    kind = choice_field(AllocationKind, required=True)
    program_id = ma.fields.Integer(required=True)
    partner_id = ma.fields.Integer(required=True)
    fund_id = ma.fields.Integer(required=True)
    period = ma.fields.String(required=True, metadata={"description": "The fund's period"})
    amount = money_out("Signed: negative took funds back")
    currency = ma.fields.String(required=True)
    reason = ma.fields.String(required=True)
    transfer_id = ma.fields.Integer(required=True)
    reverses_id = ma.fields.Integer(required=True, allow_none=True)
    import_id = ma.fields.Integer(required=True, allow_none=True)
    created_at = ma.fields.DateTime(required=True)


class RowResultSchema(ma.Schema):
    line = ma.fields.Integer(required=True)
    partner = ma.fields.String(required=True)
    amount = money_out("The row's amount")
    moved = money_out("What moved into (+) or out of (-) the partner's fund")
    status = ma.fields.String(required=True, validate=validate.OneOf(["applied", "skipped"]))
    note = ma.fields.String(required=True)


class ImportReportSchema(ma.Schema):
    import_id = ma.fields.Integer(required=True)
    kind = choice_field(ImportKind, required=True)
    program_code = ma.fields.String(required=True)
    currency = ma.fields.String(required=True)
    period = ma.fields.String(required=True)
    filename = ma.fields.String(required=True)
    rows = ma.fields.Integer(required=True)
    applied = ma.fields.Integer(required=True)
    skipped = ma.fields.Integer(required=True, metadata={"description": "Imported before"})
    moved = money_out("Net amount moved into partner funds")
    results = ma.fields.List(ma.fields.Nested(RowResultSchema), required=True)


class ImportSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    kind = choice_field(ImportKind, required=True)
    program_id = ma.fields.Integer(required=True)
    program_code = ma.fields.String(required=True)
    currency = ma.fields.String(required=True)
    period = ma.fields.String(required=True)
    period_start = ma.fields.Date(required=True)
    filename = ma.fields.String(required=True)
    sha256 = ma.fields.String(required=True)
    rows = ma.fields.Integer(required=True)
    applied = ma.fields.Integer(required=True)
    skipped = ma.fields.Integer(required=True)
    amount = money_out("Net amount moved into partner funds")
    actor = ma.fields.String(required=True, metadata={"description": "Who imported it"})
    created_at = ma.fields.DateTime(required=True)


# --- presenters: domain objects -> dicts of the shapes above -------------------------------------


def program_out(program: Program) -> dict[str, Any]:
    threshold = program.second_approval_above
    return {
        **{
            field: getattr(program, field)
            for field in (
                "id", "code", "name", "description", "kind", "currency", "timezone",
                "fiscal_start_month", "period_months", "claim_deadline_days", "share_bp",
                "expiry_policy", "rollover_days", "status", "direct_claims", "created_at",
            )
        },
        "second_approval_above": None
        if threshold is None
        else format_amount(threshold, program.currency),
    }  # fmt: skip


def program_detail_out(program: Program, *, on: date | None = None) -> dict[str, Any]:
    period = period_of(program, on or today(program))
    return {
        **program_out(program),
        "current_period": {"label": period.label, "start": period.start, "end": period.end},
        "activities": [activity_out(a, program.currency) for a in program.activities],
        "rates": [rate_out(r) for r in program.rates],
    }


def activity_out(activity: Activity, currency: str) -> dict[str, Any]:
    return {
        "id": activity.id,
        "program_id": activity.program_id,
        "code": activity.code,
        "name": activity.name,
        "description": activity.description,
        "proof": list(activity.proof_required),
        "cap": None if activity.cap is None else format_amount(activity.cap, currency),
        "currency": currency,
        "active": activity.active,
    }


def rate_out(rate: AccrualRate) -> dict[str, Any]:
    return {
        "id": rate.id,
        "tier": rate.tier,
        "product_line": rate.product_line,
        "rate_bp": rate.rate_bp,
    }


def budget_transfer_out(record: TransferRecord, program: Program) -> dict[str, Any]:
    into_budget = record.credit_account_id == program.budget_account_id
    return {
        "id": record.id,
        "amount": format_amount(record.amount if into_budget else -record.amount, record.currency),
        "currency": record.currency,
        "reason": record.memo or "",
        "effective_date": record.effective_date,
        "created_at": record.created_at,
    }


def _expiring_out(expiring: Expiring | None, currency: str) -> dict[str, Any] | None:
    if expiring is None:
        return None
    return {
        "amount": format_amount(expiring.amount, currency),
        "on": expiring.on,
        "period": expiring.period_label,
    }


def figures_out(b: Breakdown) -> dict[str, Any]:
    money = {
        name: format_amount(getattr(b, name), b.currency)
        for name in (
            "allocated", "accrued", "received", "reserved", "approved", "paid", "expired",
            "available", "awaiting_expiry",
        )
    }  # fmt: skip
    share = b.utilisation_bp
    return {
        **money,
        "utilisation_percent": None if share is None else percent_text(share),
        "expiring_next": _expiring_out(b.expiring_next, b.currency),
    }


def _fund_line_out(line: FundLine, currency: str) -> dict[str, Any]:
    return {
        "fund_id": line.fund_id,
        "period": line.period_label,
        "period_start": line.period_start,
        "period_end": line.period_end,
        "available_until": line.available_until,
        "received": format_amount(line.received, currency),
        "reserved": format_amount(line.reserved, currency),
        "available": format_amount(line.available, currency),
        "expired": format_amount(line.expired, currency),
        "live": line.live,
    }


def breakdown_out(b: Breakdown) -> dict[str, Any]:
    return {
        "program_id": b.program_id,
        "program_code": b.program_code,
        "program_name": b.program_name,
        "partner_id": b.partner_id,
        "currency": b.currency,
        **figures_out(b),
        "funds": [_fund_line_out(line, b.currency) for line in b.funds],
    }


def utilisation_out(u: Utilisation) -> dict[str, Any]:
    return {
        "program_id": u.program_id,
        "program_code": u.totals.program_code,
        "program_name": u.totals.program_name,
        "currency": u.currency,
        "budget_funded": format_amount(u.budget_funded, u.currency),
        "budget_unallocated": format_amount(u.budget_unallocated, u.currency),
        "totals": figures_out(u.totals),
        "partners": [
            {
                "partner_id": partner.id,
                "partner_code": partner.code,
                "partner_name": partner.name,
                **figures_out(b),
            }
            for partner, b in u.partners
        ],
    }


def partner_out(partner: Partner) -> dict[str, Any]:
    return {
        field: getattr(partner, field)
        for field in ("id", "code", "name", "type", "tier", "region", "status", "created_at")
    }


def partner_detail_out(partner: Partner) -> dict[str, Any]:
    return {**partner_out(partner), "contacts": [contact_out(c) for c in partner.contacts]}


def contact_out(contact: Contact) -> dict[str, Any]:
    return {
        field: getattr(contact, field)
        for field in ("id", "partner_id", "name", "email", "phone", "title", "is_primary")
    }


def allocation_out(allocation: Allocation, currency: str, period_label: str) -> dict[str, Any]:
    return {
        "id": allocation.id,
        "kind": allocation.kind,
        "program_id": allocation.program_id,
        "partner_id": allocation.partner_id,
        "fund_id": allocation.fund_id,
        "period": period_label,
        "amount": format_amount(allocation.amount, currency),
        "currency": currency,
        "reason": allocation.reason,
        "transfer_id": allocation.transfer_id,
        "reverses_id": allocation.reverses_id,
        "import_id": allocation.import_id,
        "created_at": allocation.created_at,
    }


def _row_out(row: RowResult, currency: str) -> dict[str, Any]:
    return {
        "line": row.line,
        "partner": row.partner,
        "amount": format_amount(row.amount, currency),
        "moved": format_amount(row.moved, currency),
        "status": row.status,
        "note": row.note,
    }


def import_report_out(report: ImportReport) -> dict[str, Any]:
    return {
        "import_id": report.import_id,
        "kind": report.kind,
        "program_code": report.program_code,
        "currency": report.currency,
        "period": report.period_label,
        "filename": report.filename,
        "rows": report.rows,
        "applied": report.applied,
        "skipped": report.skipped,
        "moved": format_amount(report.moved, report.currency),
        "results": [_row_out(row, report.currency) for row in report.results],
    }


def import_out(record: Import, program: Program) -> dict[str, Any]:
    return {
        "id": record.id,
        "kind": record.kind,
        "program_id": program.id,
        "program_code": program.code,
        "currency": program.currency,
        "period": period_of(program, record.period_start).label,
        "period_start": record.period_start,
        "filename": record.filename,
        "sha256": record.sha256,
        "rows": record.rows,
        "applied": record.applied,
        "skipped": record.skipped,
        "amount": format_amount(record.amount, program.currency),
        "actor": record.actor,
        "created_at": record.created_at,
    }
