"""Pure program rules: fiscal periods, deadlines, shares, accrual rates, expiry dates.

No database here. Periods come from python-dateutil: a fiscal year starts on the first day of
`start_month`, and is cut into periods of `months` months (1, 2, 3, 4, 6 or 12).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.relativedelta import relativedelta
from dateutil.rrule import MONTHLY, rrule

from mdfledger.errors import ValidationError

PERIOD_MONTHS = (1, 2, 3, 4, 6, 12)
BASIS_POINTS = 10_000  # shares and rates are basis points: 5000 = 50%, 250 = 2.5%
MAX_DEADLINE_DAYS = 3660
_PERIOD_LETTER = {3: "Q", 6: "H", 1: "M", 2: "B", 4: "T"}

# Ledger transfer codes the programs package writes; later features add claim.* and payout.*.
BUDGET_FUNDING = "budget.funding"
ALLOCATION = "allocation"
ALLOCATION_ADJUSTMENT = "allocation.adjustment"
ACCRUAL = "coop.accrual"
ACCRUAL_RETURN = "coop.return"
FUND_EXPIRY = "fund.expiry"
PAYOUT_PREFIX = "payout."  # payouts (a later issue) move claims payable out under these codes
ALLOCATION_CODES = (ALLOCATION, ALLOCATION_ADJUSTMENT)
ACCRUAL_CODES = (ACCRUAL, ACCRUAL_RETURN)


@dataclass(frozen=True, slots=True, order=True)
class Period:
    """One fiscal period: first and last day (inclusive), and a label such as 'FY2026 Q3'."""

    start: date
    end: date
    label: str

    def __contains__(self, day: object) -> bool:
        # A datetime is a date subclass but does not compare with one (TypeError): not a day.
        return _is_day(day) and self.start <= day <= self.end  # type: ignore[operator]


def _is_day(value: object) -> bool:
    return isinstance(value, date) and not isinstance(value, datetime)


def check_calendar(start_month: object, months: object) -> None:
    if not isinstance(start_month, int) or isinstance(start_month, bool):
        raise ValidationError("fiscal year start month must be 1-12", field="fiscal_start_month")
    if not 1 <= start_month <= 12:
        raise ValidationError("fiscal year start month must be 1-12", field="fiscal_start_month")
    # Exactly int: 3.0 or Decimal(3) compare equal to 3 and used to slip through; True == 1.
    if type(months) is not int or months not in PERIOD_MONTHS:
        raise ValidationError(
            f"period length must be one of {', '.join(map(str, PERIOD_MONTHS))} months",
            field="period_months",
        )


def fiscal_year_start(day: date, start_month: int) -> date:
    year = day.year if day.month >= start_month else day.year - 1
    return date(year, start_month, 1)


def period_containing(day: date, start_month: int, months: int) -> Period:
    """The fiscal period a business date falls in."""
    check_calendar(start_month, months)
    if not _is_day(day):  # a datetime, a string or None used to fail with a TypeError
        raise ValidationError("the day must be a date such as 2026-03-31", field="day")
    fy_start = fiscal_year_start(day, start_month)
    starts = rrule(MONTHLY, interval=months, dtstart=fy_start, count=12 // months)
    for index, start in enumerate(starts):
        begin = start.date()
        end = begin + relativedelta(months=months) - timedelta(days=1)
        if begin <= day <= end:
            return Period(begin, end, _label(fy_start, start_month, months, index))
    raise AssertionError("a fiscal year's periods cover every day")  # pragma: no cover


def periods_between(first: date, last: date, start_month: int, months: int) -> list[Period]:
    """Every period that overlaps [first, last], in order."""
    out: list[Period] = []
    day = first
    while day <= last:
        period = period_containing(day, start_month, months)
        out.append(period)
        day = period.end + timedelta(days=1)
    return out


def _label(fy_start: date, start_month: int, months: int, index: int) -> str:
    # A fiscal year is named after the calendar year it ends in (FY2027 starts February 2026).
    fy = (fy_start + relativedelta(months=12) - timedelta(days=1)).year
    if months == 12:
        return f"FY{fy}"
    return f"FY{fy} {_PERIOD_LETTER[months]}{index + 1}"


def available_until(period: Period, policy: str, rollover_days: int) -> date:
    """The last day a period's funds can be used: its end, or later when unspent funds roll over."""
    return period.end + timedelta(days=rollover_days if policy == "rollover" else 0)


def claim_deadline(activity_end: date, deadline_days: int) -> date:
    """The last day a claim may be submitted for an activity ending on `activity_end`."""
    return activity_end + timedelta(days=deadline_days)


def reimbursable(cost: int, share_bp: int) -> int:
    """The program's share of an eligible cost, rounded down: never more than the share."""
    return cost * share_bp // BASIS_POINTS


def accrual(amount: int, rate_bp: int) -> int:
    """Co-op accrued on a purchase (negative for a return), rounded half up on the magnitude.

    Symmetric rounding means a purchase and its full return accrue exactly opposite amounts.
    """
    magnitude = (Decimal(abs(amount)) * rate_bp / BASIS_POINTS).quantize(
        Decimal(1), rounding=ROUND_HALF_UP
    )
    return int(magnitude) if amount >= 0 else -int(magnitude)


@dataclass(frozen=True, slots=True)
class Rate:
    tier: str  # "" matches every tier
    product_line: str  # "" matches every product line
    rate_bp: int


def pick_rate(rates: Iterable[Rate], tier: str, product_line: str) -> Rate | None:
    """The most specific rate: tier and product line, then product line, then tier, then any."""
    tier, product_line = tier.casefold(), product_line.casefold()
    best: tuple[int, Rate] | None = None
    for rate in rates:
        if rate.tier and rate.tier.casefold() != tier:
            continue
        if rate.product_line and rate.product_line.casefold() != product_line:
            continue
        rank = (2 if rate.product_line else 0) + (1 if rate.tier else 0)
        if best is None or rank > best[0]:
            best = (rank, rate)
    return best[1] if best else None


def zone(name: object) -> ZoneInfo:
    if not isinstance(name, str) or not name or len(name) > 64:
        raise ValidationError(
            "timezone must be an IANA name such as Europe/Berlin", field="timezone"
        )
    try:
        return ZoneInfo(name)
    # OSError: a tzdata directory such as "America" raises IsADirectoryError, not "not found".
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValidationError(
            f"unknown timezone {name!r}; use an IANA name such as Europe/Berlin", field="timezone"
        ) from None


def business_date(now: datetime, timezone: str) -> date:
    """Today in the program's timezone: periods and deadlines turn over at local midnight."""
    return now.astimezone(zone(timezone)).date()


def end_of_day(day: date, timezone: str) -> datetime:
    """The first instant after `day` in the program's timezone: when a deadline on `day` lapses."""
    return datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=zone(timezone))
