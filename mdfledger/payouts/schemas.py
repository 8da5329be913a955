"""Payouts at the API edge: marshmallow schemas in, plain dicts out.

In: strict shapes; the services check values. Out: money as decimal strings beside the
currency; account numbers and tax ids masked (last four), always.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import validate

from mdfledger.money import format_amount
from mdfledger.payouts import rules
from mdfledger.payouts.models import Payout, PayoutDetails, PayoutEvent
from mdfledger.payouts.service import PayableGroup, Policy, Run
from mdfledger.programs.models import Program
from mdfledger.programs.schemas import (
    DecimalString,
    StrictBoolean,
    choice_field,
    id_field,
    money_out,
    query_id_field,
    text_field,
)

# --- arguments -----------------------------------------------------------------------------------


class DetailsSchema(ma.Schema):
    """A partner's payout details (PUT replaces them; what is left out is cleared)."""

    method = choice_field(rules.Method, required=True, metadata={"example": "bank"})
    stripe_account = text_field(64, allow_none=True, metadata={"example": "acct_1Nv0FGQ9RKHgCVdK"})
    account_holder = text_field(200, allow_none=True)
    bank_country = text_field(2, allow_none=True, metadata={"example": "DE"})
    iban = text_field(50, allow_none=True, metadata={"example": "DE89 3704 0044 0532 0130 00"})
    account_number = text_field(50, allow_none=True)
    routing_code = text_field(30, allow_none=True)
    payout_currency = text_field(3, allow_none=True, metadata={"example": "EUR"})
    tax_form = choice_field(rules.TAX_FORMS, allow_none=True)
    tax_id = text_field(64, allow_none=True)
    tax_received_on = ma.fields.Date(allow_none=True)


class PolicyUpdateSchema(ma.Schema):
    provider = choice_field(rules.PROVIDERS, required=True)
    schedule = choice_field(rules.Schedule, required=True)
    run_day = ma.fields.Integer(
        strict=True,
        load_default=None,
        allow_none=True,
        metadata={"description": "weekly: 0 (Monday) to 6; monthly: 1 to 28; immediate: null"},
    )
    requires_tax_info = StrictBoolean(load_default=False)
    minimum_amount = DecimalString(
        load_default=None,
        allow_none=True,
        metadata={"description": "A scheduled run skips partners below it; null: none"},
    )
    max_attempts = ma.fields.Integer(
        strict=True, load_default=rules.DEFAULT_MAX_ATTEMPTS, validate=validate.Range(1, 20)
    )


class PayoutListArgsSchema(ma.Schema):
    state = ma.fields.List(choice_field(rules.PayoutState))
    program_id = query_id_field()
    partner_id = query_id_field()
    attention = ma.fields.Boolean(metadata={"description": "true: only those flagged for finance"})


class RunSchema(ma.Schema):
    program_id = id_field(allow_none=True, load_default=None)
    partner_id = id_field(allow_none=True, load_default=None)
    claim_ids = ma.fields.List(id_field(), load_default=None, validate=validate.Length(1, 1000))
    due_only = StrictBoolean(
        load_default=False,
        metadata={
            "description": "true: only what is due (immediate programs, and scheduled ones on"
            " their run day above their minimum); false (default): finance pays now"
        },
    )


class ReferenceSchema(ma.Schema):
    reference = text_field(255, load_default=None, allow_none=True)


class RetrySchema(ma.Schema):
    """No fields: a retry is the new attempt itself (an empty object, or no body)."""


class ReasonSchema(ma.Schema):
    reason = text_field(2000, required=True)


class PaymentFileArgsSchema(ma.Schema):
    state = choice_field(rules.PayoutState, load_default="pending")


# --- responses -----------------------------------------------------------------------------------


class DetailsOutSchema(ma.Schema):
    partner_id = ma.fields.Integer(required=True)
    on_file = ma.fields.Boolean(required=True)
    method = ma.fields.String(allow_none=True)
    stripe_account = ma.fields.String(allow_none=True)
    account_holder = ma.fields.String(allow_none=True)
    bank_country = ma.fields.String(allow_none=True)
    iban = ma.fields.String(allow_none=True, metadata={"description": "Masked: •••• 3000"})
    account_number = ma.fields.String(allow_none=True, metadata={"description": "Masked"})
    routing_code = ma.fields.String(allow_none=True, metadata={"description": "Masked"})
    payout_currency = ma.fields.String(allow_none=True)
    tax_form = ma.fields.String(allow_none=True)
    tax_id = ma.fields.String(allow_none=True, metadata={"description": "Masked"})
    tax_received_on = ma.fields.Date(allow_none=True)
    updated_at = ma.fields.DateTime(allow_none=True)
    holds = ma.fields.List(
        ma.fields.Dict(),
        required=True,
        metadata={"description": "Per program that would hold a payout: program_id, reason"},
    )


def details_out(
    partner_id: int, row: PayoutDetails | None, holds: list[tuple[int, str]]
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "partner_id": partner_id,
        "on_file": row is not None,
        "holds": [{"program_id": p, "reason": r} for p, r in holds],
    }
    if row is not None:
        body.update(
            method=row.method, stripe_account=row.stripe_account,
            account_holder=row.account_holder or None, bank_country=row.bank_country,
            iban=rules.mask(row.iban) or None,
            account_number=rules.mask(row.account_number) or None,
            routing_code=rules.mask(row.routing_code) or None,
            payout_currency=row.payout_currency, tax_form=row.tax_form,
            tax_id=rules.mask(row.tax_id) or None, tax_received_on=row.tax_received_on,
            updated_at=row.updated_at,
        )  # fmt: skip
    return body


class PolicySchema(ma.Schema):
    program_id = ma.fields.Integer(required=True)
    currency = ma.fields.String(required=True)
    provider = ma.fields.String(required=True)
    schedule = ma.fields.String(required=True)
    run_day = ma.fields.Integer(allow_none=True)
    schedule_text = ma.fields.String(required=True)
    requires_tax_info = ma.fields.Boolean(required=True)
    minimum_amount = money_out(allow_none=True)
    max_attempts = ma.fields.Integer(required=True)


def policy_out(program: Program, policy: Policy) -> dict[str, Any]:
    return {
        "program_id": program.id,
        "currency": program.currency,
        "provider": policy.provider,
        "schedule": policy.schedule,
        "run_day": policy.run_day,
        "schedule_text": policy.schedule_text,
        "requires_tax_info": policy.requires_tax_info,
        "minimum_amount": format_amount(policy.minimum_amount, program.currency)
        if policy.minimum_amount
        else None,
        "max_attempts": policy.max_attempts,
    }


class PayoutSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    reference = ma.fields.String(required=True, metadata={"example": "PAY-000042"})
    program_id = ma.fields.Integer(required=True)
    partner_id = ma.fields.Integer(required=True)
    amount = money_out()
    currency = ma.fields.String(required=True)
    provider = ma.fields.String(required=True)
    state = choice_field(rules.PayoutState, required=True)
    attempt = ma.fields.Integer(required=True)
    destination = ma.fields.String(required=True, metadata={"description": "acct_... or masked"})
    provider_ref = ma.fields.String(allow_none=True)
    amount_reversed = money_out()
    next_attempt_at = ma.fields.DateTime(allow_none=True)
    flagged_reason = ma.fields.String(allow_none=True)
    created_at = ma.fields.DateTime(required=True)
    sent_at = ma.fields.DateTime(allow_none=True)
    settled_at = ma.fields.DateTime(allow_none=True)


class PayoutEventSchema(ma.Schema):
    event = ma.fields.String(required=True)
    from_state = ma.fields.String(allow_none=True)
    to_state = ma.fields.String(required=True)
    attempt = ma.fields.Integer(required=True)
    provider_ref = ma.fields.String(allow_none=True)
    message = ma.fields.String(required=True)
    actor = ma.fields.String(required=True)
    at = ma.fields.DateTime(required=True)


class PayoutClaimSchema(ma.Schema):
    claim_id = ma.fields.Integer(required=True)
    reference = ma.fields.String(required=True)
    amount = money_out()


class PayoutDetailSchema(PayoutSchema):
    last_error = ma.fields.String(allow_none=True)
    claims = ma.fields.List(ma.fields.Nested(PayoutClaimSchema), required=True)
    timeline = ma.fields.List(ma.fields.Nested(PayoutEventSchema), required=True)


def payout_out(payout: Payout, *, staff: bool = True) -> dict[str, Any]:
    cur = payout.currency
    return {
        "id": payout.id,
        "reference": payout.reference,
        "program_id": payout.program_id,
        "partner_id": payout.partner_id,
        "amount": format_amount(payout.amount, cur),
        "currency": cur,
        "provider": payout.provider,
        "state": payout.state,
        "attempt": payout.attempt,
        "destination": payout.destination,
        "provider_ref": payout.provider_ref,
        "amount_reversed": format_amount(payout.amount_reversed, cur),
        "next_attempt_at": payout.next_attempt_at,
        "flagged_reason": payout.flagged_reason if staff else None,
        "created_at": payout.created_at,
        "sent_at": payout.sent_at,
        "settled_at": payout.settled_at,
    }


def payout_detail_out(
    payout: Payout, claims: list[Any], events: list[PayoutEvent], *, staff: bool
) -> dict[str, Any]:
    body = payout_out(payout, staff=staff)
    body["last_error"] = payout.last_error if staff else None
    body["claims"] = [
        {
            "claim_id": c.id,
            "reference": c.reference,
            "amount": format_amount(row.amount, c.currency),
        }
        for row, c in claims
    ]
    body["timeline"] = [
        {
            "event": e.event,
            "from_state": e.from_state,
            "to_state": e.to_state,
            "attempt": e.attempt,
            "provider_ref": e.provider_ref,
            "message": e.message,
            "actor": e.actor,
            "at": e.at,
        }
        for e in events
    ]
    return body


class PayableSchema(ma.Schema):
    program_id = ma.fields.Integer(required=True)
    partner_id = ma.fields.Integer(required=True)
    partner_name = ma.fields.String(required=True)
    amount = money_out()
    currency = ma.fields.String(required=True)
    claim_ids = ma.fields.List(ma.fields.Integer(), required=True)
    hold = ma.fields.String(allow_none=True, metadata={"description": "Why it is not paid yet"})


class PayableListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(PayableSchema), required=True)


def payable_out(groups: list[PayableGroup]) -> dict[str, Any]:
    return {
        "items": [
            {
                "program_id": g.program.id,
                "partner_id": g.partner.id,
                "partner_name": g.partner.name,
                "amount": format_amount(g.amount, g.currency),
                "currency": g.currency,
                "claim_ids": [c.id for c in g.claims],
                "hold": g.hold,
            }
            for g in groups
        ]
    }


class SkippedSchema(ma.Schema):
    program_id = ma.fields.Integer(required=True)
    partner_id = ma.fields.Integer(required=True)
    amount = money_out()
    currency = ma.fields.String(required=True)
    reason = ma.fields.String(required=True)
    held = ma.fields.Boolean(required=True)


class RunOutSchema(ma.Schema):
    payouts = ma.fields.List(ma.fields.Nested(PayoutSchema), required=True)
    skipped = ma.fields.List(ma.fields.Nested(SkippedSchema), required=True)


def run_out(run: Run) -> dict[str, Any]:
    return {
        "payouts": [payout_out(p) for p in run.payouts],
        "skipped": [
            {
                "program_id": s.program_id,
                "partner_id": s.partner_id,
                "amount": format_amount(s.amount, s.currency),
                "currency": s.currency,
                "reason": s.reason,
                "held": s.held,
            }
            for s in run.skipped
        ],
    }
