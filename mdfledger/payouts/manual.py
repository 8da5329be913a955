"""The manual provider (the embedded default) and finance's actions on payouts.

With the manual provider nothing is sent anywhere: finance pays by bank transfer (from a
payment file downloaded here), then marks each payout sent with the bank's reference and
settled when the bank confirms — or failed, when the bank returns it. Retry and cancel apply
to payouts of every provider. Services never commit.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from mdfledger import audit
from mdfledger.actor import Actor
from mdfledger.auth.scope import MANAGERS, require_role
from mdfledger.clock import ensure_utc, utcnow
from mdfledger.errors import Conflict, ValidationError
from mdfledger.fields import check_choice, clean_text
from mdfledger.ledger.commands import is_id
from mdfledger.money import format_amount
from mdfledger.payouts import service
from mdfledger.payouts.models import Payout, PayoutDetails
from mdfledger.payouts.provider import (
    ProviderEvent,
    ProviderTransfer,
    TransferRequest,
    WebhookRejected,
)
from mdfledger.payouts.rules import PayoutState
from mdfledger.programs.models import Partner, Program


class ManualProvider:
    """Records nothing at a provider: finance pays and says so (mark_sent, mark_settled)."""

    name = "manual"

    def send(self, request: TransferRequest) -> ProviderTransfer | None:
        return None  # waits for finance

    def find(self, group: str) -> ProviderTransfer | None:
        return None

    def transfers(self, *, since: datetime | None = None) -> Iterator[ProviderTransfer]:
        return iter(())

    def parse_webhook(self, payload: bytes, signature: str | None) -> ProviderEvent:
        raise WebhookRejected("the manual provider takes no webhooks")


def _begin(
    session: Session, actor: Actor, payout_id: object, now: datetime | None
) -> tuple[Payout, datetime]:
    require_role(actor, *MANAGERS)
    payout = service.load(session, actor, payout_id, lock=True)
    return payout, ensure_utc(now or utcnow())


def _by_hand(payout: Payout, what: str) -> None:
    """Finance marks manual payouts; a provider's payouts only when flagged for finance (the
    provider's own answers settle or fail them otherwise)."""
    if payout.provider != "manual" and payout.flagged_reason is None:
        raise Conflict(
            f"{payout.reference} is paid through {payout.provider}, which reports it {what}:"
            " it cannot be marked by hand unless it is flagged for finance",
            field="state",
        )


def mark_sent(
    session: Session,
    actor: Actor,
    payout_id: object,
    *,
    reference: object,
    now: datetime | None = None,
) -> Payout:
    """Finance paid a manual payout by bank transfer: pending -> sent, with the reference."""
    payout, when = _begin(session, actor, payout_id, now)
    ref = clean_text(reference, "reference", 255)
    if payout.provider != "manual":
        raise Conflict(f"{payout.reference} is paid through {payout.provider}", field="state")
    if payout.state == PayoutState.SENT and payout.provider_ref == ref:
        return payout  # the same click again
    service.mark_sent_step(session, actor, payout, ref=ref, now=when)
    return payout


def mark_settled(
    session: Session,
    actor: Actor,
    payout_id: object,
    *,
    reference: object = None,
    now: datetime | None = None,
) -> Payout:
    """The bank (or, for a flagged payout, finance checking the provider) confirms the money
    reached the partner: -> settled, its claims paid."""
    payout, when = _begin(session, actor, payout_id, now)
    ref = clean_text(reference, "reference", 255, required=False) or payout.provider_ref
    if payout.state == PayoutState.SETTLED:
        return payout
    _by_hand(payout, "settled")
    if payout.provider == "manual" and not ref:
        raise ValidationError("give the bank's reference for this payment", field="reference")
    payout.flagged_reason = None
    service.settle(session, actor, payout, ref=ref, message="Confirmed by finance"
                   + (f", reference {ref}" if ref else ""), now=when)  # fmt: skip
    return payout


def mark_failed(
    session: Session,
    actor: Actor,
    payout_id: object,
    *,
    reason: object,
    now: datetime | None = None,
) -> Payout:
    """The bank returned the payment (or finance gives up on a flagged one): -> failed, money
    back in claims payable, retried after the backoff."""
    payout, when = _begin(session, actor, payout_id, now)
    why = clean_text(reason, "reason", 2000)
    _by_hand(payout, "failed")
    payout.flagged_reason = None
    service.fail(session, actor, payout, reason=why, now=when)
    return payout


def retry_payout(
    session: Session, actor: Actor, payout_id: object, *, now: datetime | None = None
) -> Payout:
    """Try a failed, flagged or reversed payout again now (a new attempt)."""
    payout, when = _begin(session, actor, payout_id, now)
    service.retry(session, actor, payout, now=when)
    return payout


def cancel_payout(
    session: Session,
    actor: Actor,
    payout_id: object,
    *,
    reason: object,
    now: datetime | None = None,
) -> Payout:
    """Give up on a failed, flagged or reversed payout: its claims are payable again."""
    payout, when = _begin(session, actor, payout_id, now)
    why = clean_text(reason, "reason", 2000)
    service.cancel(session, actor, payout, reason=why, now=when)
    return payout


# --- the payment file ----------------------------------------------------------------------------

PAYMENT_FILE_COLUMNS = (
    "payout", "reference", "partner", "beneficiary", "bank_country", "iban", "account_number",
    "routing_code", "amount", "currency", "remittance",
)  # fmt: skip


def payment_file(
    session: Session,
    actor: Actor,
    *,
    payout_ids: Sequence[object] | None = None,
    state: str = PayoutState.PENDING,
) -> str:
    """A CSV for the bank: one line per manual payout (those named, or all in `state`), with
    the full account numbers a payment needs. Finance and admins only; every download is in
    the audit log."""
    require_role(actor, *MANAGERS)
    statement = select(Payout).where(Payout.provider == "manual").order_by(Payout.id)
    if payout_ids is not None:
        if not payout_ids or not all(is_id(p) for p in payout_ids):
            raise ValidationError("name the payouts by their ids", field="payout_ids")
        statement = statement.where(Payout.id.in_(list(payout_ids)))
    else:
        statement = statement.where(Payout.state == check_choice(state, list(PayoutState), "state"))
    payouts = list(session.scalars(statement))
    if payout_ids is not None and len(payouts) != len(set(payout_ids)):
        raise ValidationError(
            "some of these payouts do not exist or are not paid by bank transfer",
            field="payout_ids",
        )
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(PAYMENT_FILE_COLUMNS)
    for payout in payouts:
        partner = session.get(Partner, payout.partner_id)
        program = session.get(Program, payout.program_id)
        details = session.get(PayoutDetails, payout.partner_id)
        assert partner is not None and program is not None
        refs = [claim.reference for _, claim in service.payout_claims(session, payout)]
        writer.writerow(
            [
                payout.id,
                payout.reference,
                partner.code,
                _cell(details.account_holder if details else partner.name),
                details.bank_country if details else "",
                (details.iban or "") if details else "",
                (details.account_number or "") if details else "",
                (details.routing_code or "") if details else "",
                format_amount(payout.amount, payout.currency),
                payout.currency,
                _cell(f"{payout.reference} {program.code} {' '.join(refs)}")[:140],
            ]
        )
    audit.record(
        session, actor, "payout.payment_file", object_type="payout",
        object_id=payouts[0].id if payouts else 0,
        summary=f"Downloaded a payment file of {len(payouts)} payout(s)"
        + (f": {', '.join(p.reference for p in payouts[:20])}" if payouts else ""),
        after={"payouts": [p.id for p in payouts]},
    )  # fmt: skip
    return buffer.getvalue()


def _cell(text: str) -> str:
    """No spreadsheet formulas from names people typed."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
