"""Payout jobs. Each opens its own sessions, owns its transactions, and never holds one open
while it waits for the provider.

- `send_payout`: the job a new (or retried) payout enqueues. Sends a pending payout and records
  the answer: the transfer (settled), a refusal (failed: money back, retried after a backoff),
  or an unknown outcome (timeout, 5xx, 429: left pending with the error, for the task's retry
  and for recovery; raises TransientPayoutError).
- `recover`: payouts stuck in pending (a crash between the ledger commit and the provider call,
  a timeout, a 5xx) are looked up at the provider by their transfer group: found, they settle;
  not found, they are sent again with the SAME idempotency key. Failed payouts whose backoff
  has passed are retried. Idempotent and safe to run concurrently.
- `on_claim_approved`: an approved claim in a program that pays immediately is paid now.
- `scheduled_run`: the run of programs paying weekly or monthly, on their run day.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mdfledger.claims.models import Claim
from mdfledger.claims.rules import ClaimState
from mdfledger.clock import ensure_utc, utcnow
from mdfledger.errors import NotFound
from mdfledger.payouts import service
from mdfledger.payouts.models import Payout
from mdfledger.payouts.provider import Provider, ProviderError, TransferRequest
from mdfledger.payouts.rules import PayoutState, Schedule
from mdfledger.payouts.service import PAYOUTS
from mdfledger.payouts.webhooks import apply_transfer

log = logging.getLogger(__name__)
Providers = Mapping[str, Provider]


class TransientPayoutError(RuntimeError):
    """The provider's answer is unknown or temporary (timeout, 5xx, 429): the payout stays
    pending; the task may try again (with the same idempotency key), recovery will."""


def _lock(session: Session, payout_id: int) -> Payout | None:
    """The payout locked for a change, or None when it is gone."""
    try:
        return service.load(session, PAYOUTS, payout_id, lock=True)
    except NotFound:
        return None


def send_payout(
    sessions: sessionmaker[Session],
    providers: Providers,
    payout_id: int,
    *,
    now: datetime | None = None,
) -> str | None:
    """Send a pending payout's current attempt and record the answer. Returns the payout's
    state afterwards (None: no such payout). Manual payouts wait for finance."""
    with sessions() as session:
        payout = session.get(Payout, payout_id)
        if payout is None:
            return None
        if payout.state != PayoutState.PENDING or payout.flagged_reason is not None:
            return payout.state
        provider = providers.get(payout.provider)
        if payout.provider == "manual" or provider is None:
            if provider is None:
                log.warning("payout %s: provider %s is not configured", payout_id, payout.provider)
            return payout.state
        request = service.transfer_request(session, payout)
        attempt = payout.attempt
    return _send(sessions, provider, request, attempt, now)


def _send(
    sessions: sessionmaker[Session],
    provider: Provider,
    request: TransferRequest,
    attempt: int,
    now: datetime | None,
) -> str | None:
    """Call the provider (no transaction open), then record what it said."""
    try:
        transfer = provider.send(request)
    except ProviderError as error:
        return _record_error(sessions, request.payout_id, attempt, error, now)
    if transfer is None:
        return PayoutState.PENDING
    with sessions() as session:
        payout = _lock(session, request.payout_id)
        if payout is None or payout.attempt != attempt:
            return None if payout is None else payout.state
        apply_transfer(
            session, PAYOUTS, payout, transfer, reversal=bool(transfer.amount_reversed),
            now=ensure_utc(now or utcnow()),
        )  # fmt: skip
        session.commit()
        return payout.state


def _record_error(
    sessions: sessionmaker[Session],
    payout_id: int,
    attempt: int,
    error: ProviderError,
    now: datetime | None,
) -> str | None:
    when = ensure_utc(now or utcnow())
    with sessions() as session:
        payout = _lock(session, payout_id)
        if payout is None:
            return None
        if payout.attempt != attempt or payout.state != PayoutState.PENDING:
            return payout.state  # settled meanwhile (a webhook came first), or moved on
        message = f"{error.message}" + (f" ({error.code})" if error.code else "")
        if error.retriable:
            payout.last_error = f"unknown outcome, will ask again: {message}"[:4000]
            payout.checked_at = when
            session.flush()
            service.record(session, PAYOUTS, payout, "error", payout.state,
                           payout.last_error, now=when)  # fmt: skip
            session.commit()
            raise TransientPayoutError(f"payout {payout_id}: {message}")
        if "idempotency" in error.code:
            # The key was used with other parameters: what happened to the first call is
            # unknown, so nothing is undone; finance looks.
            service.attention(
                session, PAYOUTS, payout, f"the provider refused the idempotency key: {message}",
                ref=None, now=when,
            )  # fmt: skip
        else:
            service.fail(session, PAYOUTS, payout, reason=message, now=when)
        session.commit()
        return payout.state


@dataclass
class Recovery:
    """What a recovery run did, by payout id."""

    confirmed: list[int] = field(default_factory=list)  # found at the provider: settled
    resent: list[int] = field(default_factory=list)  # not found: sent again with the same key
    retried: list[int] = field(default_factory=list)  # failed, backoff over: a new attempt
    errors: dict[int, str] = field(default_factory=dict)  # still unknown; tried next time

    @property
    def touched(self) -> int:
        return len(set(self.confirmed) | set(self.resent) | set(self.retried))


def recover(
    sessions: sessionmaker[Session],
    providers: Providers,
    *,
    now: datetime | None = None,
    older_than: timedelta = timedelta(minutes=10),
) -> Recovery:
    """Settle or resend payouts stuck in pending for `older_than`, and retry failed payouts
    whose backoff has passed. Idempotent; safe to run concurrently (each payout is taken under
    its row lock and stamped, so a second run skips it)."""
    when = ensure_utc(now or utcnow())
    cutoff = when - older_than
    result = Recovery()
    with sessions() as session:
        due = list(
            session.scalars(
                select(Payout.id)
                .where(
                    Payout.state == PayoutState.FAILED,
                    Payout.next_attempt_at <= when,
                    Payout.flagged_reason.is_(None),  # finance decides on flagged payouts
                )
                .order_by(Payout.id)
            )
        )
        stuck = list(
            session.scalars(
                select(Payout.id)
                .where(
                    Payout.state == PayoutState.PENDING,
                    Payout.provider != "manual",
                    Payout.flagged_reason.is_(None),
                    Payout.checked_at <= cutoff,
                )
                .order_by(Payout.id)
            )
        )
    for payout_id in due:
        with sessions() as session:
            payout = _lock(session, payout_id)
            if payout is None or payout.state != PayoutState.FAILED:
                continue
            if payout.next_attempt_at is None or payout.next_attempt_at > when:
                continue
            if payout.flagged_reason is not None:  # flagged since the list was read
                continue
            try:
                service.retry(session, PAYOUTS, payout, now=when)
            except Exception as error:  # a hold (details removed): noted, tried again later
                session.rollback()
                result.errors[payout_id] = str(getattr(error, "message", error))
                continue
            session.commit()
        result.retried.append(payout_id)
        _attempt(sessions, providers, payout_id, when, result, fresh=True)
    for payout_id in stuck:
        _attempt(sessions, providers, payout_id, when, result, fresh=False, cutoff=cutoff)
    return result


def _attempt(
    sessions: sessionmaker[Session],
    providers: Providers,
    payout_id: int,
    when: datetime,
    result: Recovery,
    *,
    fresh: bool,
    cutoff: datetime | None = None,
) -> None:
    with sessions() as session:
        payout = _lock(session, payout_id)
        if payout is None or payout.state != PayoutState.PENDING or payout.flagged_reason:
            return
        if cutoff is not None and payout.checked_at > cutoff:
            return  # another recovery took it a moment ago
        provider = providers.get(payout.provider)
        if provider is None or payout.provider == "manual":
            if provider is None:
                result.errors[payout_id] = f"provider {payout.provider} is not configured"
            return
        payout.checked_at = when  # a lease: concurrent runs skip it now
        request = service.transfer_request(session, payout)
        attempt = payout.attempt
        session.commit()
    found = None
    if not fresh:
        try:
            found = provider.find(request.group)
        except ProviderError as error:
            result.errors[payout_id] = error.message
            return
        if found is not None and found.metadata.get("attempt", str(attempt)) != str(attempt):
            found = None  # the newest transfer is an earlier attempt's: this one has none
    if found is not None:
        with sessions() as session:
            payout = _lock(session, payout_id)
            if payout is None or payout.attempt != attempt:
                return
            apply_transfer(session, PAYOUTS, payout, found,
                           reversal=bool(found.amount_reversed), now=when)  # fmt: skip
            session.commit()
        result.confirmed.append(payout_id)
        return
    try:
        _send(sessions, provider, request, attempt, when)
    except TransientPayoutError as error:
        result.errors[payout_id] = str(error)
        return
    if not fresh:
        result.resent.append(payout_id)


def on_claim_approved(
    sessions: sessionmaker[Session], claim_id: int, *, now: datetime | None = None
) -> service.Run | None:
    """claims.APPROVED_JOB: where the claim's program pays immediately, pay the partner's
    payable claims in it now (the payout is sent by its own job after this commits)."""
    with sessions() as session:
        claim = session.get(Claim, claim_id)
        if claim is None or claim.state != ClaimState.APPROVED:
            return None
        if service.policy_of(session, claim.program_id).schedule != Schedule.IMMEDIATE:
            return None
        run = service.create_payouts(
            session, PAYOUTS, program_id=claim.program_id, partner_id=claim.partner_id, now=now
        )
        session.commit()
    return run


def scheduled_run(sessions: sessionmaker[Session], *, now: datetime | None = None) -> service.Run:
    """Pay every program whose run day it is (and any immediate program's leftovers, such as
    claims held until the partner added payout details). Run it daily; idempotent."""
    with sessions() as session:
        run = service.create_payouts(session, PAYOUTS, due_only=True, now=now)
        session.commit()
    return run
