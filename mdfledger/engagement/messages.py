"""What each event tells the partner: what changed, why it matters, what to do next.

Pure: `render(type, data)` reads only the event's data, so the message can be worked out when
the event is written and stored with it (what was sent is what was recorded). Every key is
optional: a missing or malformed value leaves its sentence out, never raises.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from babel.dates import format_date

from mdfledger import audit
from mdfledger.engagement.rules import EventType, check_type
from mdfledger.errors import DomainError

LOCALE = "en_US"
SUBJECT_MAX = 200


@dataclass(frozen=True)
class Message:
    subject: str  # one line: what changed
    text: str  # why it matters and what to do, in sentences
    action: str  # the next step, short ("Upload proof and submit a claim")


# --- reading data safely -------------------------------------------------------------------------


class _Data:
    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data if isinstance(data, Mapping) else {}

    def text(self, key: str) -> str | None:
        value = self.data.get(key)
        if isinstance(value, str) and value.strip():
            return " ".join(value.split())
        return None

    def whole(self, key: str) -> int | None:
        value = self.data.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        return None

    def money(self, key: str, currency_key: str = "currency") -> str | None:
        """'1,450.00 USD' (grouped as the pages show money), or None when the amount or its
        currency is missing or malformed."""
        amount, currency = self.whole(key), self.text(currency_key)
        if amount is None or currency is None:
            return None
        try:
            return audit.money(amount, currency)
        except DomainError:  # an unknown currency code
            return None

    def day(self, key: str) -> date | None:
        value = self.text(key)
        if value is None:
            return None
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return None

    def names(self, key: str) -> list[str]:
        value = self.data.get(key)
        if not isinstance(value, list):
            return []
        return [" ".join(v.split()) for v in value if isinstance(v, str) and v.strip()]


def long_date(day: date) -> str:
    """30 September 2026."""
    return format_date(day, "d MMMM y", locale=LOCALE)


def short_date(day: date) -> str:
    """30 September."""
    return format_date(day, "d MMMM", locale=LOCALE)


def _join(*sentences: str | None) -> str:
    return " ".join(s for s in sentences if s)


def _plural(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one if count == 1 else (many or one + 's')}"


def _days(count: int) -> str:
    return _plural(count, "day")


def _claim_name(d: _Data) -> str:
    reference, title = d.text("reference"), d.text("title")
    if reference and title:
        return f"{reference} ({title})"
    return reference or (f"“{title}”" if title else "your claim")


def _in_program(d: _Data) -> str:
    program = d.text("program") or d.text("program_code")
    return f" in {program}" if program else ""


def _funds_of(d: _Data) -> str:
    """'your FY2026 Q3 funds in MDF 2026', with whatever of period and program is known."""
    period = d.text("period")
    return f"your {period + ' ' if period else ''}funds{_in_program(d)}"


# --- one function per event type -----------------------------------------------------------------


def _claim_submitted(d: _Data) -> Message:
    claimed = d.money("claimed")
    return Message(
        f"We received {_claim_name(d)}" + (f" for {claimed}" if claimed else ""),
        _join(
            f"Your claim{_in_program(d)} is in: we check the proof first, then finance decides.",
            "The money is held for it meanwhile, so nothing else can use it.",
            "We will tell you when it is approved or if anything is missing.",
        ),
        "Nothing to do now: watch the claim's timeline",
    )


def _claim_approved(d: _Data) -> Message:
    approved, claimed = d.money("approved"), d.money("claimed")
    partial = (
        approved is not None
        and claimed is not None
        and d.whole("approved") is not None
        and d.whole("claimed") is not None
        and (d.whole("approved") or 0) < (d.whole("claimed") or 0)
    )
    reason = d.text("reason")
    if partial:
        subject = f"{_claim_name(d)} approved in part: {approved} of {claimed}"
        why = f"Finance approved {approved} of the {claimed} you claimed" + (
            f": {reason}." if reason else "."
        )
        why += " The rest goes back to your funds."
    else:
        subject = f"{_claim_name(d)} approved" + (f": {approved}" if approved else "")
        why = "Finance approved your claim" + (f" for {approved}" if approved else "") + "."
    return Message(
        subject,
        _join(why, "It will be paid out to your account with the next payout run."),
        "Nothing to do: the payout follows",
    )


def _claim_rejected(d: _Data) -> Message:
    reason, code = d.text("reason"), d.text("reason_code")
    because = reason or (code.replace("_", " ") if code else None)
    claimed = d.money("claimed")
    return Message(
        f"{_claim_name(d)} was rejected" + (f": {because}" if because else ""),
        _join(
            "Finance rejected your claim" + (f" for {claimed}" if claimed else "")
            + (f" because: {because}." if because else "."),
            "The money it held goes back to your funds (or to its pre-approval while that is"
            " still open).",
            "If you think this is a mistake, contact your channel manager; otherwise you can"
            " claim another activity.",
        ),
        "Read the reason, then claim again or contact your channel manager",
    )  # fmt: skip


def _claim_paid(d: _Data) -> Message:
    amount = d.money("amount") or d.money("approved")
    payout = d.text("payout_reference")
    return Message(
        f"{_claim_name(d)} was paid" + (f": {amount}" if amount else ""),
        _join(
            "We sent " + (amount or "the approved amount") + " for your claim" + _in_program(d)
            + (f" (payout {payout})." if payout else "."),
            "It usually reaches your bank account within a few business days.",
        ),
        "Check your bank account for the payment",
    )  # fmt: skip


def _payout_failed(d: _Data) -> Message:
    amount, reason = d.money("amount"), d.text("reason")
    when = d.day("next_attempt_at")
    retry = (
        f"We will try again on {long_date(when)}."
        if when
        else "We will not retry until your payout details are fixed."
    )
    return Message(
        "A payout" + (f" of {amount}" if amount else "") + " to you failed",
        _join(
            "Your payout" + (f" of {amount}" if amount else "") + " could not be sent"
            + (f": {reason}." if reason else "."),
            "The money is safe: it stays approved for you until a payout goes through.",
            retry,
        ),
        "Check your payout account details",
    )  # fmt: skip


def _fund_allocated(d: _Data) -> Message:
    amount, until = d.money("amount"), d.day("available_until")
    return Message(
        "New funds for you" + (f": {amount}" if amount else "") + _in_program(d),
        _join(
            (amount or "New funds") + f" were added to {_funds_of(d)}.",
            f"Use them by {long_date(until)}: what is left after that expires." if until else None,
            "Pick an activity from the catalog and request pre-approval to reserve the money.",
        ),
        "Request pre-approval for an activity",
    )


def _fund_accrued(d: _Data) -> Message:
    amount, until = d.money("amount"), d.day("available_until")
    purchase = d.text("purchase_reference")
    return Message(
        "Your purchases earned" + (f" {amount}" if amount else " co-op funds") + _in_program(d),
        _join(
            (f"Purchase {purchase} added " if purchase else "Your purchases added ")
            + (amount or "co-op funds") + f" to {_funds_of(d)}.",
            f"Use them by {long_date(until)}: what is left after that expires."
            if until else None,
            "Plan an activity from the catalog and request pre-approval.",
        ),
        "Request pre-approval for an activity",
    )  # fmt: skip


def _funds_expiring(d: _Data) -> Message:
    amount, day = d.money("amount"), d.day("expires_on")
    days_left = d.whole("days_left")
    fitting, names = d.whole("activities_fitting"), d.names("activity_names")
    period, program = d.text("period"), d.text("program")
    label = " ".join(p for p in (_short_period(period), program) if p) or "funds"
    subject = f"{amount or 'Funds'} of your {label} expires" + (
        f" on {short_date(day)}" if day else " soon"
    )
    when = (
        f" on {long_date(day)}"
        + (f", in {_days(days_left)}" if days_left is not None and days_left >= 0 else "")
        if day
        else (f" in {_days(days_left)}" if days_left is not None else " soon")
    )
    if fitting is None and names:
        fitting = len(names)
    if fitting:
        verb = "fits" if fitting == 1 else "fit"
        catalog = f"{_plural(fitting, 'activity', 'activities')} in the catalog {verb}" + (
            f": {', '.join(names)}." if names else "."
        )
    elif fitting == 0:
        catalog = "No activity in the catalog fits the amount left; talk to your channel manager."
    else:
        catalog = None
    deadline = f" before {long_date(day)}" if day else " soon"
    return Message(
        subject,
        _join(
            f"{amount or 'Money'} of {_funds_of(d)} expires{when}.",
            "Funds not used by then are forfeited and cannot be claimed.",
            catalog,
            f"Request pre-approval{deadline} so the money is reserved for you.",
        ),
        "Request pre-approval before the funds expire",
    )


def _short_period(period: str | None) -> str | None:
    """'FY2026 Q3' -> 'Q3': the subject is short; the text names the whole period."""
    if not period:
        return None
    return period.split()[-1]


def _funds_expired(d: _Data) -> Message:
    amount = d.money("amount")
    return Message(
        f"{amount or 'Unused funds'} of {_funds_of(d)} expired",
        _join(
            f"{amount or 'What was left'} of {_funds_of(d)} was not used in time and has been"
            " forfeited.",
            "Funds of later periods are not affected.",
            "Plan activities early next period: request pre-approval as soon as funds arrive.",
        ),
        "Plan next period's activities early",
    )


@dataclass(frozen=True)
class _Inactivity:
    """The words of one inactivity signal; the span and date come from the data."""

    subject: str  # "We have not seen you" + " for 45 days"
    what: str  # "There has been no activity on your account" + span + " since 1 July 2026."
    why: str
    next_step: str
    action: str

    def __call__(self, d: _Data) -> Message:
        days, last = d.whole("days"), d.day("last_seen")
        span = f" for {_days(days)}" if days is not None else ""
        since = f" since {long_date(last)}" if last else ""
        return Message(
            f"{self.subject}{span}",
            _join(f"{self.what}{span}{since}.", self.why, self.next_step),
            self.action,
        )


_partner_inactive = _Inactivity(
    "We have not seen you",
    "There has been no activity on your account",
    "Your funds are still here, and unused funds expire at the end of their period.",
    "Sign in to see your balance and plan an activity.",
    "Sign in and check your funds",
)
_partner_no_sign_in = _Inactivity(
    "Nobody from your team has signed in",
    "No user of your organisation has signed in",
    "Approvals, expiring funds and payouts are waiting in your account.",
    "Sign in, or ask your channel manager to add a colleague who can.",
    "Sign in to your account",
)
_partner_no_activity = _Inactivity(
    "No marketing activity requested",
    "You have not requested pre-approval for an activity",
    "Funds you do not use expire at the end of their period.",
    "Browse the catalog and request pre-approval for your next activity.",
    "Request pre-approval for an activity",
)


def _reservation_deadline_near(d: _Data) -> Message:
    amount, deadline = d.money("amount"), d.day("claim_deadline")
    days_left, reference = d.whole("days_left"), d.text("reference")
    name = f"pre-approval {reference}" if reference else "your pre-approval"
    when = f"by {long_date(deadline)}" if deadline else "soon"
    return Message(
        f"Claim {name} {when}" + (f": {amount} reserved" if amount else ""),
        _join(
            (f"{amount} is" if amount else "Money is") + f" reserved for you under {name}.",
            f"Submit the claim with proof {when}"
            + (f" ({_days(days_left)} left)" if days_left is not None and days_left >= 0 else "")
            + "; after that the reservation lapses and the money returns to your funds.",
        ),
        "Submit your claim with proof",
    )


def _utilisation_milestone(d: _Data) -> Message:
    percent = d.whole("percent")
    used, total = d.money("used"), d.money("total")
    share = f"{percent}%" if percent is not None else "a share"
    return Message(
        f"You have used {share} of your funds" + _in_program(d),
        _join(
            f"You have used {share} of your funds{_in_program(d)}"
            + (f": {used} of {total}." if used and total else "."),
            "Keep your plan moving: the rest expires at the end of its period."
            if percent is None or percent < 100
            else "All your funds are in use.",
            "Review your funds and plan the next activity.",
        ),
        "Review your funds",
    )


RENDERERS: Mapping[EventType, Callable[[_Data], Message]] = {
    EventType.CLAIM_SUBMITTED: _claim_submitted,
    EventType.CLAIM_APPROVED: _claim_approved,
    EventType.CLAIM_REJECTED: _claim_rejected,
    EventType.CLAIM_PAID: _claim_paid,
    EventType.PAYOUT_FAILED: _payout_failed,
    EventType.FUND_ALLOCATED: _fund_allocated,
    EventType.FUND_ACCRUED: _fund_accrued,
    EventType.FUNDS_EXPIRING: _funds_expiring,
    EventType.FUNDS_EXPIRED: _funds_expired,
    EventType.PARTNER_INACTIVE: _partner_inactive,
    EventType.PARTNER_NO_SIGN_IN: _partner_no_sign_in,
    EventType.PARTNER_NO_ACTIVITY: _partner_no_activity,
    EventType.RESERVATION_DEADLINE_NEAR: _reservation_deadline_near,
    EventType.UTILISATION_MILESTONE: _utilisation_milestone,
}


def render(type: str, data: Mapping[str, Any]) -> Message:
    """The message for an event of `type` with `data`. Unknown types: ValidationError."""
    message = RENDERERS[check_type(type)](_Data(data))
    subject = message.subject
    if len(subject) > SUBJECT_MAX:
        subject = subject[: SUBJECT_MAX - 1] + "…"
    return Message(subject[0].upper() + subject[1:], message.text, message.action)
