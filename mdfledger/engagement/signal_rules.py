"""Pure rules of partner activity signals: which signals are on, given one partner's facts in one
program and the program's thresholds, and what changes against what was stored.

No database here. A signal is (kind, subject): the kind is the event type it emits, the subject
what it is about ("" for the partner as a whole, "fund:12", "request:7", "fund:12:50" for a
milestone). `evaluate` gives the signals on now with their values (the event's data); `plan`
compares them with the stored state through SIGNAL_TRANSITIONS: a signal turning on emits one
event; staying on only refreshes its value; turning off is recorded quietly (no event).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from mdfledger import audit
from mdfledger.engagement.messages import long_date
from mdfledger.errors import DomainError, ValidationError
from mdfledger.programs.rules import business_date


class SignalKind(StrEnum):
    """Each kind is the engagement event type it emits when it turns on."""

    NO_SIGN_IN = "partner.no_sign_in"
    NO_ACTIVITY = "partner.no_activity"
    INACTIVE = "partner.inactive"  # both of the above
    FUNDS_EXPIRING = "funds.expiring"
    DEADLINE_NEAR = "reservation.deadline_near"
    MILESTONE = "utilisation.milestone"


# How finance reads the kinds (the at-risk list, the pages).
KIND_LABELS = {
    SignalKind.NO_SIGN_IN: "No sign-in",
    SignalKind.NO_ACTIVITY: "No requests or claims",
    SignalKind.INACTIVE: "Inactive",
    SignalKind.FUNDS_EXPIRING: "Funds expiring",
    SignalKind.DEADLINE_NEAR: "Claim deadline near",
    SignalKind.MILESTONE: "Utilisation milestone",
}
# Milestones are good news: they are signals (an event goes out) but not a risk.
RISKS = frozenset(KIND_LABELS) - {SignalKind.MILESTONE}


class SignalState(StrEnum):
    OFF = "off"
    ON = "on"


# (state, event) -> new state. "raise": the rules find the signal on; "clear": they do not.
# Clearing what is off changes nothing, so it is not listed.
SIGNAL_TRANSITIONS: Mapping[tuple[str, str], str] = {
    (SignalState.OFF, "raise"): SignalState.ON,  # turns on: one event
    (SignalState.ON, "raise"): SignalState.ON,  # still on: its value is refreshed, no event
    (SignalState.ON, "clear"): SignalState.OFF,  # turns off: recorded, no event
}


def next_signal_state(state: str, event: str) -> str | None:
    """The state after `event`, or None when nothing changes (clearing a signal that is off)."""
    return SIGNAL_TRANSITIONS.get((state, event))


# --- thresholds ----------------------------------------------------------------------------------

DEFAULT_NO_SIGN_IN_DAYS = 30
DEFAULT_NO_ACTIVITY_DAYS = 45
DEFAULT_EXPIRY_WARNING_DAYS = 30
DEFAULT_DEADLINE_WARNING_DAYS = 14
DEFAULT_MILESTONES = (25, 50, 75, 100)
MAX_DAYS = 366
MAX_MILESTONES = 10


@dataclass(frozen=True)
class Thresholds:
    """A program's signal policy (these defaults where it has none)."""

    no_sign_in_days: int = DEFAULT_NO_SIGN_IN_DAYS
    no_activity_days: int = DEFAULT_NO_ACTIVITY_DAYS
    expiry_warning_days: int = DEFAULT_EXPIRY_WARNING_DAYS
    deadline_warning_days: int = DEFAULT_DEADLINE_WARNING_DAYS
    milestones: tuple[int, ...] = DEFAULT_MILESTONES
    active: bool = True


def parse_milestones(value: object, field: str = "milestones") -> tuple[int, ...]:
    """'25, 50,75' or [25, 50, 75] -> (25, 50, 75): whole percentages 1-100, sorted, no repeats;
    blank or [] is none."""
    if isinstance(value, str):
        parts: list[object] = [p.strip() for p in value.replace(";", ",").split(",") if p.strip()]
        parts = [int(p) if isinstance(p, str) and p.isascii() and p.isdigit() else p for p in parts]
    elif isinstance(value, list | tuple):
        parts = list(value)
    else:
        raise ValidationError(
            "milestones must be whole percentages, such as 25,50,75,100", field=field
        )
    for part in parts:
        if not isinstance(part, int) or isinstance(part, bool) or not 1 <= part <= 100:
            raise ValidationError(
                f"milestones must be whole percentages from 1 to 100, such as 25,50,75,100;"
                f" {part!r} is not",
                field=field,
            )
    found = tuple(sorted(set(parts)))  # type: ignore[arg-type]
    if len(found) > MAX_MILESTONES:
        raise ValidationError(f"at most {MAX_MILESTONES} milestones", field=field)
    return found


def milestones_text(milestones: Iterable[int]) -> str:
    return ",".join(str(m) for m in milestones)


# --- facts ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FundFacts:
    """One of the partner's funds in the program (one period), from the ledger's balances."""

    fund_id: int
    period_label: str
    available_until: date  # the last day its money can be used
    received: int  # allocated + accrued, net
    approved: int  # posted to claims: what was used
    available: int  # neither used nor held nor expired
    live: bool


@dataclass(frozen=True)
class ReservationFacts:
    """An approved fund request still waiting for its claim."""

    request_id: int
    reference: str
    amount: int
    claim_deadline: date


@dataclass(frozen=True)
class ActivityFacts:
    name: str
    cap: int | None


@dataclass(frozen=True)
class Facts:
    """What the rules need about one partner in one program."""

    now: datetime
    timezone: str  # the program's: days turn over at its midnight
    currency: str
    program: str  # its name, for messages
    program_code: str
    joined: datetime  # when the partner was set up: counts as a sign-in when none happened
    last_sign_in: datetime | None
    funded: datetime  # when funds first came in: counts as activity when none happened
    last_activity: datetime | None  # the latest request or claim created in the program
    funds: tuple[FundFacts, ...] = ()
    reservations: tuple[ReservationFacts, ...] = ()
    activities: tuple[ActivityFacts, ...] = ()  # the program's active catalog

    @property
    def today(self) -> date:
        return business_date(self.now, self.timezone)


@dataclass(frozen=True)
class Signal:
    kind: SignalKind
    subject: str
    since: date  # the business day its condition began
    value: dict[str, Any]  # JSON values: the event's data

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind.value, self.subject)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _quiet_since(facts: Facts, seen: datetime, days: int) -> tuple[int, date]:
    """Whole days since `seen`, and the business day the threshold was reached."""
    return (facts.now - seen).days, business_date(seen + timedelta(days=days), facts.timezone)


def fitting(activities: Iterable[ActivityFacts], amount: int) -> list[str]:
    """The catalog activities the amount could pay for: no cap, or a cap within the amount."""
    return sorted(a.name for a in activities if a.cap is None or a.cap <= amount)


def evaluate(facts: Facts, thresholds: Thresholds) -> dict[tuple[str, str], Signal]:
    """The signals on now, by (kind, subject). A threshold of N days is reached on the Nth day:
    not signed in for exactly 30 days with a threshold of 30 is on. Nothing is on when the
    policy is not active."""
    if not thresholds.active:
        return {}
    today = facts.today
    found: list[Signal] = []

    seen = facts.last_sign_in or facts.joined
    sign_days, sign_since = _quiet_since(facts, seen, thresholds.no_sign_in_days)
    quiet_sign = sign_days >= thresholds.no_sign_in_days
    if quiet_sign:
        found.append(
            Signal(
                SignalKind.NO_SIGN_IN,
                "",
                sign_since,
                {
                    "days": sign_days,
                    "threshold": thresholds.no_sign_in_days,
                    "last_seen": _iso(facts.last_sign_in),
                    "program": facts.program,
                },
            )
        )
    acted = facts.last_activity or facts.funded
    act_days, act_since = _quiet_since(facts, acted, thresholds.no_activity_days)
    quiet_act = act_days >= thresholds.no_activity_days
    if quiet_act:
        found.append(
            Signal(
                SignalKind.NO_ACTIVITY,
                "",
                act_since,
                {
                    "days": act_days,
                    "threshold": thresholds.no_activity_days,
                    "last_seen": _iso(facts.last_activity),
                    "program": facts.program,
                },
            )
        )
    if quiet_sign and quiet_act:
        latest = max(
            (m for m in (facts.last_sign_in, facts.last_activity) if m is not None), default=None
        )
        found.append(
            Signal(
                SignalKind.INACTIVE,
                "",
                max(sign_since, act_since),
                {
                    # Quiet on both counts for at least `days`, past the lower threshold.
                    "days": min(sign_days, act_days),
                    "threshold": min(thresholds.no_sign_in_days, thresholds.no_activity_days),
                    "last_seen": _iso(latest),
                    "last_sign_in": _iso(facts.last_sign_in),
                    "last_activity": _iso(facts.last_activity),
                    "program": facts.program,
                },
            )
        )

    for fund in facts.funds:
        if not fund.live:
            continue
        days_left = (fund.available_until - today).days
        if fund.available > 0 and 0 <= days_left <= thresholds.expiry_warning_days:
            names = fitting(facts.activities, fund.available)
            found.append(
                Signal(
                    SignalKind.FUNDS_EXPIRING,
                    f"fund:{fund.fund_id}",
                    fund.available_until - timedelta(days=thresholds.expiry_warning_days),
                    {
                        "fund_id": fund.fund_id,
                        "amount": fund.available,
                        "currency": facts.currency,
                        "program": facts.program,
                        "program_code": facts.program_code,
                        "period": fund.period_label,
                        "expires_on": fund.available_until.isoformat(),
                        "days_left": days_left,
                        "activities_fitting": len(names),
                        "activity_names": names,
                    },
                )
            )
        if fund.received > 0:
            for percent in thresholds.milestones:
                # Exact: used/received >= percent/100, no rounding.
                if fund.approved * 100 >= percent * fund.received:
                    found.append(
                        Signal(
                            SignalKind.MILESTONE,
                            f"fund:{fund.fund_id}:{percent}",
                            today,
                            {
                                "fund_id": fund.fund_id,
                                "percent": percent,
                                "used": fund.approved,
                                "total": fund.received,
                                "currency": facts.currency,
                                "program": facts.program,
                                "period": fund.period_label,
                            },
                        )
                    )

    for held in facts.reservations:
        days_left = (held.claim_deadline - today).days
        if 0 <= days_left <= thresholds.deadline_warning_days:
            found.append(
                Signal(
                    SignalKind.DEADLINE_NEAR,
                    f"request:{held.request_id}",
                    held.claim_deadline - timedelta(days=thresholds.deadline_warning_days),
                    {
                        "request_id": held.request_id,
                        "reference": held.reference,
                        "amount": held.amount,
                        "currency": facts.currency,
                        "program": facts.program,
                        "claim_deadline": held.claim_deadline.isoformat(),
                        "days_left": days_left,
                    },
                )
            )
    return {signal.key: signal for signal in found}


# --- changes against the stored state ------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    """A signal as the state table holds it."""

    active: bool
    since: date | None
    value: dict[str, Any]
    changed_on: date | None  # the business day it last turned on or off


@dataclass(frozen=True)
class Change:
    kind: SignalKind
    subject: str
    event: str  # "raise" or "clear"
    before: str  # SignalState
    after: str
    since: date | None
    value: dict[str, Any]
    emit: bool  # send one event (it turned on, and no other change of this plan speaks for it)

    @property
    def turned(self) -> bool:
        return self.before != self.after


def plan(
    stored: Mapping[tuple[str, str], Stored],
    current: Mapping[tuple[str, str], Signal],
    today: date,
) -> list[Change]:
    """What to write: signals turning on (with an event), staying on with a new value, turning
    off. Running it again on its own result gives nothing.

    Two refinements keep partners from being flooded: when several milestones of one fund are
    reached at once only the highest emits; and when `partner.inactive` turns on, the
    no-sign-in and no-activity signals turning on with it are recorded without an event of their
    own. A signal turning on again whose condition began before it last turned off gets today
    as its `since`, so its dedupe key (which names `since`) is new.
    """
    changes: list[Change] = []
    for key, signal in sorted(current.items()):
        row = stored.get(key)
        before = SignalState.ON if row is not None and row.active else SignalState.OFF
        after = next_signal_state(before, "raise")
        assert after is not None
        if before == SignalState.OFF:
            since = signal.since
            if row is not None and row.changed_on is not None and row.changed_on >= since:
                since = today
            changes.append(
                Change(
                    signal.kind,
                    signal.subject,
                    "raise",
                    before,
                    after,
                    since,
                    signal.value,
                    emit=True,
                )
            )
        elif row is not None and row.value != signal.value:
            changes.append(
                Change(
                    signal.kind,
                    signal.subject,
                    "raise",
                    before,
                    after,
                    row.since,
                    signal.value,
                    emit=False,
                )
            )
    for key, row in sorted(stored.items()):
        if row.active and key not in current:
            after = next_signal_state(SignalState.ON, "clear")
            assert after is not None
            kind, subject = key
            changes.append(
                Change(
                    SignalKind(kind),
                    subject,
                    "clear",
                    SignalState.ON,
                    after,
                    row.since,
                    row.value,
                    emit=False,
                )
            )
    return _quieten(changes)


def _quieten(changes: list[Change]) -> list[Change]:
    rising = [c for c in changes if c.emit]
    top: dict[str, int] = {}
    for change in rising:
        if change.kind == SignalKind.MILESTONE:
            fund, percent = _milestone(change.subject)
            top[fund] = max(top.get(fund, 0), percent)
    inactive = any(c.kind == SignalKind.INACTIVE for c in rising)
    out = []
    for change in changes:
        quiet = False
        if change.emit and change.kind == SignalKind.MILESTONE:
            fund, percent = _milestone(change.subject)
            quiet = percent < top[fund]
        elif change.emit and inactive:
            quiet = change.kind in (SignalKind.NO_SIGN_IN, SignalKind.NO_ACTIVITY)
        out.append(replace(change, emit=False) if quiet else change)
    return out


def _milestone(subject: str) -> tuple[str, int]:
    fund, _, percent = subject.rpartition(":")
    return fund, int(percent)


def event_key(program_id: int, partner_id: int, change: Change) -> str:
    """The engagement outbox's dedupe key: a second guard against sending one change twice."""
    since = change.since.isoformat() if change.since else ""
    return f"signal:{program_id}:{partner_id}:{change.kind.value}:{change.subject}:{since}"


# --- how finance reads a signal ------------------------------------------------------------------


def describe(kind: str, value: Mapping[str, Any]) -> str:
    """One line about a signal for finance (the at-risk page and CLI):
    '1,450.00 USD of FY2026 Q3 expires 30 September 2026'; "" when the value is not of the
    shape these rules write (the label alone says enough)."""
    try:
        if kind in (SignalKind.NO_SIGN_IN, SignalKind.NO_ACTIVITY, SignalKind.INACTIVE):
            return f"{value['days']} days (threshold {value['threshold']})"
        if kind == SignalKind.FUNDS_EXPIRING:
            amount = audit.money(value["amount"], value["currency"])
            expires = long_date(date.fromisoformat(value["expires_on"]))
            return f"{amount} of {value['period']} expires {expires}"
        if kind == SignalKind.DEADLINE_NEAR:
            amount = audit.money(value["amount"], value["currency"])
            deadline = long_date(date.fromisoformat(value["claim_deadline"]))
            return f"{value['reference']}: {amount}, claim by {deadline}"
        if kind == SignalKind.MILESTONE:
            return f"{value['percent']}% of {value['period']} used"
    except (KeyError, TypeError, ValueError, DomainError):
        pass  # a value from an older shape
    return ""


# --- risk ----------------------------------------------------------------------------------------


def risk_order(
    risks: int, expiring_on: date | None, expiring_amount: int, name: str
) -> tuple[int, date, int, str]:
    """Sort key of the at-risk list: most risk signals first, then the money expiring soonest,
    then the most of it, then by name."""
    return (-risks, expiring_on or date.max, -expiring_amount, name.casefold())
