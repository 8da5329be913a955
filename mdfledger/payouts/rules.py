"""Pure payout rules: the payout state machine, retry backoff, run days, hold reasons, checks
of payout details (IBAN, Stripe account ids), masking. No database here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from mdfledger.errors import Conflict, Forbidden, ValidationError

# Ledger transfer codes: programs.balances counts payout.* out of claims payable as paid.
SEND = "payout.send"  # claims payable -> payouts in transit
SETTLE = "payout.settle"  # payouts in transit -> settled
FAIL = "payout.fail"  # the send reversed: in transit -> claims payable
REVERSAL = "payout.reversal"  # the provider reversed a settled transfer: settled -> payable


class Who(StrEnum):
    FINANCE = "finance"  # finance or admin staff
    SYSTEM = "system"  # jobs, the provider's answers and webhooks


class PayoutState(StrEnum):
    PENDING = "pending"  # money in transit; the provider has not answered yet (or manual: unpaid)
    SENT = "sent"  # manual: finance paid it and gave the bank reference
    SETTLED = "settled"  # the money reached the partner (Stripe: their Connect balance)
    FAILED = "failed"  # refused; money back in claims payable; retried after a backoff
    FLAGGED = "flagged"  # failed too often: finance retries by hand or cancels
    REVERSED = "reversed"  # the provider reversed it after settlement; money back in payable
    CANCELLED = "cancelled"  # given up; its claims are payable in a later run


class Schedule(StrEnum):
    IMMEDIATE = "immediate"
    WEEKLY = "weekly"
    MONTHLY = "monthly"


class Method(StrEnum):
    STRIPE = "stripe"  # a Stripe connected account
    BANK = "bank"  # a bank account, paid by finance (manual provider)


PROVIDERS = ("manual", "stripe")
TAX_FORMS = ("W-9", "W-8BEN", "W-8BEN-E", "VAT", "other")
# Payouts whose claims are spoken for: every state but cancelled.
LIVE = frozenset(set(PayoutState) - {PayoutState.CANCELLED})
# Money of the payout in transit, as the ledger should show it.
IN_TRANSIT = frozenset({PayoutState.PENDING, PayoutState.SENT})

_F, _S = Who.FINANCE, Who.SYSTEM
P = PayoutState

# (state, event) -> (new state, who may do it). Anything not listed is refused.
PAYOUT_TRANSITIONS: Mapping[tuple[str, str], tuple[str, frozenset[Who]]] = {
    (P.PENDING, "send"): (P.SENT, frozenset({_F})),  # manual: finance paid, with a reference
    (P.PENDING, "settle"): (P.SETTLED, frozenset({_S, _F})),
    (P.SENT, "settle"): (P.SETTLED, frozenset({_S, _F})),
    (P.PENDING, "fail"): (P.FAILED, frozenset({_S, _F})),
    (P.SENT, "fail"): (P.FAILED, frozenset({_S, _F})),
    (P.FAILED, "retry"): (P.PENDING, frozenset({_S, _F})),
    (P.FAILED, "flag"): (P.FLAGGED, frozenset({_S, _F})),  # after the last attempt
    (P.FAILED, "cancel"): (P.CANCELLED, frozenset({_F})),
    (P.FLAGGED, "retry"): (P.PENDING, frozenset({_F})),
    (P.FLAGGED, "cancel"): (P.CANCELLED, frozenset({_F})),
    (P.SETTLED, "reverse"): (P.REVERSED, frozenset({_S})),
    (P.REVERSED, "retry"): (P.PENDING, frozenset({_F})),
    (P.REVERSED, "cancel"): (P.CANCELLED, frozenset({_F})),
}

_PAST = {
    "send": "marked sent", "settle": "settled", "fail": "failed", "retry": "retried",
    "flag": "flagged", "cancel": "cancelled", "reverse": "reversed",
}  # fmt: skip


class InvalidTransition(Conflict):
    code = "invalid_transition"


def next_state(state: str, event: str, who: Who) -> str:
    """The payout's state after `event`, or an error that says why it cannot happen now."""
    found = PAYOUT_TRANSITIONS.get((state, event))
    if found is None:
        allowed = sorted(_PAST[e] for (s, e) in PAYOUT_TRANSITIONS if s == state)
        tail = f"; it can be {', '.join(allowed)}" if allowed else "; it is closed"
        raise InvalidTransition(
            f"a payout that is {state} cannot be {_PAST.get(event, event)}{tail}",
            state=state,
            event=event,
        )
    new_state, allowed_who = found
    if who not in allowed_who:
        raise Forbidden(f"only {' or '.join(sorted(allowed_who))} may {event} a payout")
    return new_state


# --- retries -------------------------------------------------------------------------------------

BACKOFF_BASE = timedelta(hours=1)
BACKOFF_CAP = timedelta(hours=24)
DEFAULT_MAX_ATTEMPTS = 5


def backoff(attempt: int) -> timedelta:
    """How long to wait after failed attempt `attempt` (1, 2, ...): 1 h, 2 h, 4 h ... 24 h."""
    if attempt < 1:
        raise ValueError("attempts count from 1")
    if attempt > 10:  # 2**10 hours is far past the cap; no huge numbers
        return BACKOFF_CAP
    return min(BACKOFF_BASE * 2 ** (attempt - 1), BACKOFF_CAP)


def idempotency_key(payout_id: int, attempt: int) -> str:
    """The provider's idempotency key: one per attempt, so every call about the same attempt
    (a retry after a timeout) can create at most one transfer."""
    return f"mdfledger-payout-{payout_id}-{attempt}"


def transfer_group(payout_id: int) -> str:
    return f"payout-{payout_id}"


def payout_reference(payout_id: int) -> str:
    """How people name a payout: PAY-000042."""
    return f"PAY-{payout_id:06d}"


def payout_id_from(metadata: Mapping[str, str], group: str | None) -> int | None:
    """The payout a provider transfer names, by its metadata or its transfer group."""
    for text in (metadata.get("payout_id"), (group or "").removeprefix("payout-") or None):
        if isinstance(text, str) and text.isascii() and text.isdigit() and len(text) < 19:
            return int(text)
    return None


# --- schedules -----------------------------------------------------------------------------------

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def check_run_day(schedule: str, run_day: object) -> int | None:
    """Weekly: a weekday 0 (Monday) to 6; monthly: a day 1 to 28 (every month has it)."""
    if schedule == Schedule.IMMEDIATE:
        return None
    low, high = (0, 6) if schedule == Schedule.WEEKLY else (1, 28)
    if not isinstance(run_day, int) or isinstance(run_day, bool) or not low <= run_day <= high:
        what = "a weekday from 0 (Monday) to 6 (Sunday)" if low == 0 else "a day from 1 to 28"
        raise ValidationError(f"a {schedule} run day is {what}", field="run_day")
    return run_day


def is_run_day(schedule: str, run_day: int | None, day: date) -> bool:
    """Whether a scheduled run pays on `day` (the program's business date)."""
    if schedule == Schedule.IMMEDIATE:
        return True
    if schedule == Schedule.WEEKLY:
        return day.weekday() == run_day
    return day.day == run_day


def schedule_text(schedule: str, run_day: int | None) -> str:
    if schedule == Schedule.IMMEDIATE:
        return "as soon as a claim is approved"
    if schedule == Schedule.WEEKLY:
        return f"weekly, on {WEEKDAYS[run_day or 0]}s"
    return f"monthly, on day {run_day}"


# --- holds ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DetailsFacts:
    """What the hold rules need to know of a partner's payout details."""

    method: str
    payout_currency: str | None
    has_tax_info: bool


def hold_reason(
    details: DetailsFacts | None,
    *,
    partner: str,
    program: str,
    provider: str,
    currency: str,
    requires_tax_info: bool,
) -> str | None:
    """Why a partner cannot be paid in a program now, as a sentence naming what to add and
    where; None when nothing holds the payout."""
    where = "on the Payout details page"
    if details is None:
        what = "a Stripe account (acct_...)" if provider == "stripe" else "a bank account"
        return f"{partner} has no payout details: add {what} {where}."
    if provider == "stripe" and details.method != Method.STRIPE:
        return (
            f"{program} pays through Stripe Connect but {partner}'s payout details are a bank"
            f" account: add their Stripe account (acct_...) {where}."
        )
    if provider == "manual" and details.method != Method.BANK:
        return (
            f"{program} is paid by bank transfer but {partner}'s payout details are a Stripe"
            f" account: add a bank account {where}."
        )
    if details.payout_currency and details.payout_currency != currency:
        return (
            f"{partner}'s bank account takes {details.payout_currency} but {program} pays in"
            f" {currency}: correct the payout currency {where}."
        )
    if requires_tax_info and not details.has_tax_info:
        return (
            f"{program} requires tax information and {partner} has none on file: record the"
            f" tax form, tax id and the date it was received {where}."
        )
    return None


# --- payout details ------------------------------------------------------------------------------

STRIPE_ACCOUNT_RE = re.compile(r"^acct_[A-Za-z0-9]{8,60}$")
_IBAN_RE = re.compile(r"^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$")
_ACCOUNT_RE = re.compile(r"^[0-9A-Z]{4,34}$")
_ROUTING_RE = re.compile(r"^[0-9A-Z]{4,15}$")
_COUNTRY_RE = re.compile(r"^[A-Z]{2}$")


def check_stripe_account(value: object) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if not STRIPE_ACCOUNT_RE.match(text):
        raise ValidationError(
            "a Stripe connected account id looks like acct_1Nv0FGQ9RKHgCVdK",
            field="stripe_account",
        )
    return text


def compact(value: object) -> str:
    """An account number as typed ("DE89 3704 0044 ...", "12-34-56") without spaces, dashes
    and dots, upper case."""
    if not isinstance(value, str):
        return ""
    return re.sub(r"[\s.\-]", "", value).upper()


def iban_valid(iban: str) -> bool:
    """ISO 13616: the country and check digits moved to the end, letters as 10..35, mod 97 = 1."""
    if not _IBAN_RE.match(iban):
        return False
    moved = iban[4:] + iban[:4]
    digits = "".join(str(int(ch, 36)) for ch in moved)
    return int(digits) % 97 == 1


def check_iban(value: object) -> str:
    iban = compact(value)
    if not _IBAN_RE.match(iban):
        raise ValidationError(
            "an IBAN is a country code, two check digits and up to 30 letters and digits,"
            " such as DE89 3704 0044 0532 0130 00",
            field="iban",
        )
    if not iban_valid(iban):
        raise ValidationError(
            "this IBAN's check digits do not match: a character is wrong or missing",
            field="iban",
        )
    return iban


def check_account_number(value: object) -> str:
    number = compact(value)
    if not _ACCOUNT_RE.match(number):
        raise ValidationError(
            "an account number is 4 to 34 digits (and letters, in some countries)",
            field="account_number",
        )
    return number


def check_routing_code(value: object) -> str:
    code = compact(value)
    if not _ROUTING_RE.match(code):
        raise ValidationError(
            "a routing number, sort code or bank code is 4 to 15 digits or letters",
            field="routing_code",
        )
    return code


def check_country(value: object) -> str:
    text = value.strip().upper() if isinstance(value, str) else ""
    if not _COUNTRY_RE.match(text):
        raise ValidationError(
            "the bank's country is a two-letter ISO code, such as US or DE", field="bank_country"
        )
    return text


def mask(value: str | None) -> str:
    """Only the last four characters: '•••• 3000'. Empty for nothing."""
    if not value:
        return ""
    return f"\u2022\u2022\u2022\u2022 {value[-4:]}"


def destination_text(method: str, stripe_account: str | None, iban: str | None,
                     account_number: str | None) -> str:  # fmt: skip
    """Where a payout goes, as pages show it (account numbers masked)."""
    if method == Method.STRIPE:
        return stripe_account or ""
    if iban:
        return f"IBAN {mask(iban)}"
    return f"account {mask(account_number)}"


def claims_text(references: list[str], limit: int = 450) -> str:
    """'CLM-000001,CLM-000002' within Stripe's 500-character metadata values."""
    text = ",".join(references)
    if len(text) <= limit:
        return text
    kept: list[str] = []
    for ref in references:
        if len(",".join([*kept, ref])) > limit - 12:
            break
        kept.append(ref)
    return ",".join(kept) + f",+{len(references) - len(kept)} more"


def due_time(failed_at: datetime, attempt: int) -> datetime:
    return failed_at + backoff(attempt)
