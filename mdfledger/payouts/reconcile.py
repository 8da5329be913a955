"""Reconciliation: the ledger and the payouts against the provider's transfers.

Differences found: a transfer at the provider that no payout names; a payout settled here with
no transfer there; a transfer for a payout that is not the one recorded (paid twice?); amount,
currency or destination that differ; a reversal there not recorded here (or one here the
provider does not show); a pending payout whose transfer exists; and in the ledger, a
partner's payouts in transit or settled balance that is not what the payouts add up to.
Read-only.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mdfledger import audit, ledger
from mdfledger.errors import ValidationError
from mdfledger.ledger import AccountKind
from mdfledger.ledger.models import Account
from mdfledger.payouts import rules
from mdfledger.payouts.models import Payout, PayoutEvent
from mdfledger.payouts.provider import Provider, ProviderTransfer
from mdfledger.payouts.rules import IN_TRANSIT
from mdfledger.payouts.webhooks import disagreement
from mdfledger.programs.models import Partner, Program


@dataclass(frozen=True)
class Difference:
    kind: str  # unknown_transfer, missing_transfer, unexpected_transfer, mismatch,
    # unrecorded_reversal, reversal_mismatch, pending_but_paid, transit_balance, settled_balance
    message: str
    payout_id: int | None = None
    transfer_id: str | None = None


@dataclass
class Reconciliation:
    provider: str
    since: datetime | None
    transfers: int = 0  # seen at the provider
    payouts: int = 0  # of this provider, checked
    accounts: int = 0  # in-transit and settled accounts checked
    differences: list[Difference] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences

    def as_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "since": self.since.isoformat() if self.since else None,
            "transfers": self.transfers,
            "payouts": self.payouts,
            "accounts": self.accounts,
            "ok": self.ok,
            "differences": [asdict(d) for d in self.differences],
        }


def _money(amount: int, currency: str) -> str:
    try:
        return audit.money(amount, currency)
    except ValidationError:  # a currency the provider sent that ISO does not know
        return f"{amount} (minor units of {currency})"


def reconcile(
    session: Session, provider: Provider, *, since: datetime | None = None
) -> Reconciliation:
    """Compare the payouts and the ledger with `provider`'s transfers (created at or after
    `since`; the ledger balances are compared in full). Every difference is listed."""
    result = Reconciliation(provider.name, since)
    out = result.differences
    statement = select(Payout).where(Payout.provider == provider.name).order_by(Payout.id)
    if since is not None:
        statement = statement.where(Payout.created_at >= since)
    payouts = {p.id: p for p in session.scalars(statement)}
    result.payouts = len(payouts)
    if provider.name != "manual":  # the manual provider keeps no records to compare with
        transfers = list(provider.transfers(since=since))
        result.transfers = len(transfers)
        _compare(session, payouts, transfers, out)
    result.accounts = _balances(session, out)
    return result


def _compare(
    session: Session,
    payouts: dict[int, Payout],
    transfers: list[ProviderTransfer],
    out: list[Difference],
) -> None:
    refs: dict[int, set[str]] = defaultdict(set)
    for payout_id, ref in session.execute(
        select(PayoutEvent.payout_id, PayoutEvent.provider_ref).where(
            PayoutEvent.provider_ref.is_not(None)
        )
    ):
        refs[payout_id].add(ref)
    seen: set[str] = set()
    for transfer in transfers:
        seen.add(transfer.id)
        payout_id = rules.payout_id_from(transfer.metadata, transfer.group)
        payout = payouts.get(payout_id) if payout_id is not None else None
        if payout is None and payout_id is not None:
            payout = session.get(Payout, payout_id)  # before `since`, still ours
        if payout is None:
            out.append(Difference(
                "unknown_transfer",
                f"{transfer.id} of {_money(transfer.amount, transfer.currency.upper())} to"
                f" {transfer.destination} names no payout here",
                transfer_id=transfer.id,
            ))  # fmt: skip
            continue
        if transfer.id != payout.provider_ref:
            if transfer.id in refs[payout.id] and transfer.amount_reversed >= transfer.amount:
                continue  # an earlier attempt's transfer, reversed in full: as recorded
            if (
                payout.state in IN_TRANSIT
                and payout.provider_ref is None
                and (transfer.metadata.get("attempt", str(payout.attempt)) == str(payout.attempt))
            ):
                out.append(Difference(
                    "pending_but_paid",
                    f"{payout.reference} is {payout.state} here but {transfer.id} exists: run"
                    " `mdfledger payouts recover`",
                    payout.id, transfer.id,
                ))  # fmt: skip
                continue
            recorded = payout.provider_ref or "none"
            out.append(Difference(
                "unexpected_transfer",
                f"{transfer.id} of {_money(transfer.amount, transfer.currency.upper())} names"
                f" {payout.reference}, whose transfer is {recorded}: the partner may be paid"
                " twice",
                payout.id, transfer.id,
            ))  # fmt: skip
            continue
        wrong = disagreement(payout, transfer)
        if wrong is not None:
            out.append(Difference("mismatch", wrong, payout.id, transfer.id))
        if transfer.amount_reversed != payout.amount_reversed:
            kind = "unrecorded_reversal" if transfer.amount_reversed else "reversal_mismatch"
            out.append(Difference(
                kind,
                f"{transfer.id} is reversed by"
                f" {_money(transfer.amount_reversed, payout.currency)} at the provider,"
                f" {_money(payout.amount_reversed, payout.currency)} here ({payout.reference}"
                f" is {payout.state})",
                payout.id, transfer.id,
            ))  # fmt: skip
    for payout in payouts.values():
        if payout.provider_ref and payout.provider_ref not in seen and payout.settled_at:
            out.append(Difference(
                "missing_transfer",
                f"{payout.reference} is {payout.state} here with transfer"
                f" {payout.provider_ref}, which the provider does not have",
                payout.id, payout.provider_ref,
            ))  # fmt: skip


def _balances(session: Session, out: list[Difference]) -> int:
    """Each partner's payouts in transit and settled accounts against their payouts."""
    transit: dict[tuple[int, int], int] = defaultdict(int)
    settled: dict[tuple[int, int], int] = defaultdict(int)
    for payout in session.scalars(select(Payout)):
        key = (payout.program_id, payout.partner_id)
        if payout.state in IN_TRANSIT:
            transit[key] += payout.amount
        if payout.settled_at is not None:
            settled[key] += payout.amount - payout.amount_reversed
    accounts = session.scalars(
        select(Account).where(
            Account.kind.in_((AccountKind.PAYOUTS_IN_TRANSIT, AccountKind.SETTLED))
        )
    ).all()
    checked = 0
    for account in accounts:
        if account.program_id is None or account.partner_id is None:
            continue
        checked += 1
        key = (account.program_id, account.partner_id)
        expected = (transit if account.kind == AccountKind.PAYOUTS_IN_TRANSIT else settled)[key]
        have = ledger.balance(session, account.id).posted
        if have != expected:
            program = session.get(Program, account.program_id)
            partner = session.get(Partner, account.partner_id)
            label = (
                "payouts in transit"
                if account.kind == AccountKind.PAYOUTS_IN_TRANSIT
                else ("settled")
            )
            states = "pending and sent" if label == "payouts in transit" else "settled"
            out.append(Difference(
                "transit_balance" if label == "payouts in transit" else "settled_balance",
                f"{partner.name if partner else account.partner_id}'s {label} in"
                f" {program.code if program else account.program_id} is"
                f" {_money(have, account.currency)} in the ledger; its {states} payouts add up"
                f" to {_money(expected, account.currency)}",
            ))  # fmt: skip
    return checked


def parse_since(text: str) -> datetime:
    """'2026-08-01' (midnight UTC) or an ISO time with its zone."""
    from datetime import UTC, date

    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), tzinfo=UTC)
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD) or an ISO time") from None
    if value.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone: add Z or +00:00")
    return value.astimezone(UTC)
