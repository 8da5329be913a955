"""What the provider says about a payout's transfer — in the answer to the send, found by
recovery, or in a webhook — applied to the payout and the ledger once.

Webhooks come in any order and any number of times. Each event is recorded once by its id
(a repeat is "duplicate" and changes nothing); what it does is decided by the payout's state,
never by the order of arrival, so money moves at most once per step: a transfer.created for a
payout already settled is "already settled"; a transfer.reversed arriving first settles and
reverses, and the late transfer.created finds the payout reversed. A transfer that disagrees
with the payout (amount, currency, destination) or that should not exist flags the payout for
finance and moves nothing.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mdfledger import audit
from mdfledger.actor import Actor
from mdfledger.clock import ensure_utc, utcnow
from mdfledger.errors import NotFound
from mdfledger.payouts import rules, service
from mdfledger.payouts.models import Payout, ProviderEventRecord
from mdfledger.payouts.provider import ProviderEvent, ProviderTransfer
from mdfledger.payouts.rules import PayoutState

HANDLED = frozenset({"transfer.created", "transfer.updated", "transfer.reversed"})

APPLIED = "applied"
DUPLICATE = "duplicate"
UNKNOWN_TYPE = "ignored: unknown type"
UNKNOWN_PAYOUT = "unknown payout"


def webhook_actor(provider_name: str) -> Actor:
    return Actor.system(f"webhook:{provider_name}")


def disagreement(payout: Payout, transfer: ProviderTransfer) -> str | None:
    """How the provider's transfer differs from the payout, or None."""
    if transfer.currency.upper() != payout.currency:
        return (
            f"transfer {transfer.id} is in {transfer.currency.upper()}, {payout.reference}"
            f" in {payout.currency}"
        )
    if transfer.amount != payout.amount:
        return (
            f"transfer {transfer.id} is {audit.money(transfer.amount, payout.currency)},"
            f" {payout.reference} is {audit.money(payout.amount, payout.currency)}"
        )
    if payout.provider == "stripe" and transfer.destination != payout.destination:
        return (
            f"transfer {transfer.id} went to {transfer.destination}, {payout.reference}"
            f" to {payout.destination}"
        )
    return None


def apply_transfer(
    session: Session,
    actor: Actor,
    payout: Payout,
    transfer: ProviderTransfer,
    *,
    reversal: bool,
    now: datetime,
) -> str:
    """The provider has `transfer` for this (locked) payout: settle it, reverse it, or note
    that it already was. Returns the outcome in words."""
    ref = transfer.id
    known = service.known_refs(session, payout)
    attempt = transfer.metadata.get("attempt")
    current = ref == payout.provider_ref or (
        ref not in known and (attempt is None or attempt == str(payout.attempt))
    )
    if not current:
        if ref in known:
            return f"out of order: {ref} is an earlier attempt's transfer of {payout.reference}"
        reason = (
            f"transfer {ref} of attempt {attempt} exists at the provider although"
            f" {payout.reference} is on attempt {payout.attempt}: the partner may be paid twice"
        )
        service.attention(session, actor, payout, reason, ref=ref, now=now)
        return f"flagged: {reason}"
    wrong = disagreement(payout, transfer)
    if wrong is not None:
        reason = f"amount disagrees with the ledger: {wrong}"
        if payout.flagged_reason != reason:
            service.attention(session, actor, payout, reason, ref=ref, now=now)
        return reason
    outcome = APPLIED
    if payout.state in (PayoutState.PENDING, PayoutState.SENT):
        if payout.flagged_reason is not None:
            return f"out of order: {payout.reference} is waiting for finance"
        service.settle(
            session, actor, payout, ref=ref,
            message=f"{payout.provider.title()} transfer {ref} made", now=now,
        )  # fmt: skip
        if reversal and transfer.amount_reversed:
            outcome = "applied (out of order: reversed before created)"
    elif payout.state in (PayoutState.SETTLED, PayoutState.REVERSED):
        if not (reversal and transfer.amount_reversed > payout.amount_reversed):
            return (
                "already reversed"
                if payout.state == PayoutState.REVERSED
                else f"already settled by {payout.provider_ref}"
            )
    else:  # failed, flagged, cancelled: we gave the money back, yet the transfer exists
        reason = (
            f"transfer {ref} exists at the provider although {payout.reference} is"
            f" {payout.state}: the partner may be paid twice"
        )
        if payout.flagged_reason != reason:
            service.attention(session, actor, payout, reason, ref=ref, now=now)
        return f"flagged: {reason}"
    if reversal and transfer.amount_reversed:
        service.reverse(session, actor, payout, transfer, now=now)
    return outcome


def _payload(event: ProviderEvent) -> dict[str, Any]:
    body = asdict(event)
    return _plain(body)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return ensure_utc(value).isoformat()
    return value


def find_payout(session: Session, transfer: ProviderTransfer) -> Payout | None:
    payout_id = rules.payout_id_from(transfer.metadata, transfer.group)
    if payout_id is not None:
        found = session.get(Payout, payout_id)
        if found is not None:
            return found
    return session.scalar(select(Payout).where(Payout.provider_ref == transfer.id).limit(1))


def apply_event(
    session: Session,
    actor: Actor,
    provider_name: str,
    event: ProviderEvent,
    *,
    now: datetime | None = None,
) -> str:
    """Record a (verified) provider event and apply it to its payout once. Returns the
    outcome: "applied", "duplicate", "ignored: unknown type", "unknown payout", "amount
    disagrees with the ledger: ...", "out of order: ...", "already settled ...", ..."""
    when = ensure_utc(now or utcnow())
    row = ProviderEventRecord(
        provider=provider_name, event_id=event.id[:255], type=event.type[:100],
        created=event.created, received_at=when, payout_id=None, outcome="received",
        payload=_payload(event),
    )  # fmt: skip
    try:
        with session.begin_nested():  # a repeat fails the unique index here, not the request
            session.add(row)
            session.flush()
    except IntegrityError:
        return DUPLICATE
    outcome = _outcome(session, actor, provider_name, event, row, when)
    row.outcome = outcome[:4000]
    session.flush()
    return outcome


def _outcome(
    session: Session,
    actor: Actor,
    provider_name: str,
    event: ProviderEvent,
    row: ProviderEventRecord,
    now: datetime,
) -> str:
    if event.type not in HANDLED or event.transfer is None:
        return UNKNOWN_TYPE
    found = find_payout(session, event.transfer)
    if found is None:
        return UNKNOWN_PAYOUT
    try:
        payout = service.load(session, actor, found.id, lock=True)
    except NotFound:
        return UNKNOWN_PAYOUT
    row.payout_id = payout.id
    if payout.provider != provider_name:
        reason = (
            f"{provider_name} reports transfer {event.transfer.id} for {payout.reference},"
            f" which is paid through {payout.provider}"
        )
        service.attention(session, actor, payout, reason, ref=event.transfer.id, now=now)
        return f"flagged: {reason}"
    reversal = event.type != "transfer.created"
    return apply_transfer(session, actor, payout, event.transfer, reversal=reversal, now=now)
