"""Partner signals at the API edge: the thresholds in and out, the at-risk list out.

Money in a signal's value (an amount expiring or held, a milestone's used and total) goes out as
a decimal string beside its currency, like every amount of the API.
"""

from __future__ import annotations

from contextlib import suppress
from typing import Any

import marshmallow as ma
from marshmallow import validate

from mdfledger.api.pagination import PageArgsSchema
from mdfledger.engagement.signal_rules import MAX_DAYS, MAX_MILESTONES, SignalKind, Thresholds
from mdfledger.engagement.signals import AtRisk, SignalView
from mdfledger.errors import ValidationError
from mdfledger.money import format_amount
from mdfledger.programs.models import Program
from mdfledger.programs.schemas import StrictBoolean, choice_field, money_out, query_id_field

MONEY_KEYS = ("amount", "used", "total")
VALUE = (
    "The signal's data, as its event carries it. partner.*: days, threshold, last_seen (ISO or"
    " null); funds.expiring: amount, currency, period, expires_on, days_left,"
    " activities_fitting, activity_names; reservation.deadline_near: request_id, reference,"
    " amount, currency, claim_deadline, days_left; utilisation.milestone: percent, used, total,"
    " currency, period. Amounts are decimal strings."
)


def _days(example: int, what: str) -> ma.fields.Integer:
    return ma.fields.Integer(
        strict=True,
        required=True,
        validate=validate.Range(min=1, max=MAX_DAYS),
        metadata={"example": example, "description": f"{what}, 1-{MAX_DAYS} days"},
    )


class ThresholdsSchema(ma.Schema):
    """A program's signal thresholds (PUT replaces them all)."""

    active = StrictBoolean(
        required=True, metadata={"description": "false: no signals for this program"}
    )
    no_sign_in_days = _days(30, "No sign-in by any of the partner's users for")
    no_activity_days = _days(45, "No fund request or claim in the program for")
    expiry_warning_days = _days(30, "Unspent funds whose last usable day is within")
    deadline_warning_days = _days(14, "Approved requests whose claim deadline is within")
    milestones = ma.fields.List(
        ma.fields.Integer(strict=True, validate=validate.Range(min=1, max=100)),
        required=True,
        validate=validate.Length(max=MAX_MILESTONES),
        metadata={
            "example": [25, 50, 75, 100],
            "description": "Percentages of a period's funds used that the partner is told of",
        },
    )


class ThresholdsOutSchema(ThresholdsSchema):
    program_id = ma.fields.Integer(required=True)


class AtRiskArgsSchema(PageArgsSchema):
    program_id = query_id_field(metadata={"description": "Only this program"})


class SignalSchema(ma.Schema):
    kind = choice_field(SignalKind, required=True)
    label = ma.fields.String(required=True)
    subject = ma.fields.String(
        required=True,
        metadata={"description": '"" (the partner), fund:<id>, request:<id>'},
    )
    since = ma.fields.Date(
        required=True, metadata={"description": "The business day its condition began"}
    )
    value = ma.fields.Dict(required=True, metadata={"description": VALUE})


class AtRiskSchema(ma.Schema):
    partner_id = ma.fields.Integer(required=True)
    partner_code = ma.fields.String(required=True)
    partner_name = ma.fields.String(required=True)
    program_id = ma.fields.Integer(required=True)
    program_code = ma.fields.String(required=True)
    currency = ma.fields.String(required=True)
    risks = ma.fields.Integer(required=True, metadata={"description": "Signals on"})
    signals = ma.fields.List(ma.fields.Nested(SignalSchema), required=True)
    last_sign_in = ma.fields.DateTime(required=True, allow_none=True)
    last_activity = ma.fields.DateTime(
        required=True,
        allow_none=True,
        metadata={"description": "The latest fund request or claim in the program"},
    )
    available = money_out("Usable now")
    expiring_amount = money_out("Expiring next (0.00 when nothing is)")
    expiring_on = ma.fields.Date(required=True, allow_none=True)


# --- presenters ----------------------------------------------------------------------------------


def thresholds_out(program: Program, policy: Thresholds) -> dict[str, Any]:
    return {
        "program_id": program.id,
        "active": policy.active,
        "no_sign_in_days": policy.no_sign_in_days,
        "no_activity_days": policy.no_activity_days,
        "expiry_warning_days": policy.expiry_warning_days,
        "deadline_warning_days": policy.deadline_warning_days,
        "milestones": list(policy.milestones),
    }


def value_out(value: dict[str, Any]) -> dict[str, Any]:
    out = dict(value)
    currency = out.get("currency")
    for name in MONEY_KEYS:
        amount = out.get(name)
        if isinstance(amount, int) and not isinstance(amount, bool) and isinstance(currency, str):
            with suppress(ValidationError):  # not a currency code: left as recorded
                out[name] = format_amount(amount, currency)
    return out


def signal_out(view: SignalView) -> dict[str, Any]:
    return {
        "kind": view.kind,
        "label": view.label,
        "subject": view.subject,
        "since": view.since,
        "value": value_out(view.value),
    }


def at_risk_out(row: AtRisk) -> dict[str, Any]:
    return {
        "partner_id": row.partner_id,
        "partner_code": row.partner_code,
        "partner_name": row.partner_name,
        "program_id": row.program_id,
        "program_code": row.program_code,
        "currency": row.currency,
        "risks": row.risks,
        "signals": [signal_out(s) for s in row.signals],
        "last_sign_in": row.last_sign_in,
        "last_activity": row.last_activity,
        "available": format_amount(row.available, row.currency),
        "expiring_amount": format_amount(row.expiring_amount, row.currency),
        "expiring_on": row.expiring_on,
    }
