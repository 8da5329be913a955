"""The pure program rules: fiscal periods, expiry and claim dates, shares, accrual, rates, zones.

No database: these run once, not per backend.
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from dateutil.relativedelta import relativedelta
from hypothesis import given
from hypothesis import strategies as st

from mdfledger.errors import ValidationError
from mdfledger.programs import rules
from mdfledger.programs.rules import Period, Rate

LETTER = {1: "M", 2: "B", 3: "Q", 4: "T", 6: "H"}


# --- fiscal periods ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "start_month", "months", "expected"),
    [
        # calendar-year quarters
        (date(2026, 8, 15), 1, 3, Period(date(2026, 7, 1), date(2026, 9, 30), "FY2026 Q3")),
        (date(2026, 1, 1), 1, 3, Period(date(2026, 1, 1), date(2026, 3, 31), "FY2026 Q1")),
        (date(2026, 12, 31), 1, 3, Period(date(2026, 10, 1), date(2026, 12, 31), "FY2026 Q4")),
        # a fiscal year starting in February is named after the year it ends in: Q1 = Feb-Apr
        (date(2026, 2, 1), 2, 3, Period(date(2026, 2, 1), date(2026, 4, 30), "FY2027 Q1")),
        (date(2026, 4, 30), 2, 3, Period(date(2026, 2, 1), date(2026, 4, 30), "FY2027 Q1")),
        (date(2026, 5, 1), 2, 3, Period(date(2026, 5, 1), date(2026, 7, 31), "FY2027 Q2")),
        (date(2026, 1, 31), 2, 3, Period(date(2025, 11, 1), date(2026, 1, 31), "FY2026 Q4")),
        (date(2026, 3, 10), 2, 12, Period(date(2026, 2, 1), date(2027, 1, 31), "FY2027")),
        (date(2026, 1, 10), 2, 12, Period(date(2025, 2, 1), date(2026, 1, 31), "FY2026")),
        # months, leap years
        (date(2028, 2, 29), 2, 1, Period(date(2028, 2, 1), date(2028, 2, 29), "FY2029 M1")),
        (date(2027, 2, 28), 2, 1, Period(date(2027, 2, 1), date(2027, 2, 28), "FY2028 M1")),
        (date(2028, 1, 31), 2, 1, Period(date(2028, 1, 1), date(2028, 1, 31), "FY2028 M12")),
        (date(2024, 2, 29), 1, 2, Period(date(2024, 1, 1), date(2024, 2, 29), "FY2024 B1")),
        (date(2025, 12, 31), 1, 2, Period(date(2025, 11, 1), date(2025, 12, 31), "FY2025 B6")),
        # thirds (four months) in a July year: T2 is Nov-Feb and takes the leap day
        (date(2026, 10, 31), 7, 4, Period(date(2026, 7, 1), date(2026, 10, 31), "FY2027 T1")),
        (date(2028, 2, 29), 7, 4, Period(date(2027, 11, 1), date(2028, 2, 29), "FY2028 T2")),
        (date(2027, 3, 1), 7, 4, Period(date(2027, 3, 1), date(2027, 6, 30), "FY2027 T3")),
        # halves in an October year
        (date(2026, 3, 31), 10, 6, Period(date(2025, 10, 1), date(2026, 3, 31), "FY2026 H1")),
        (date(2026, 4, 1), 10, 6, Period(date(2026, 4, 1), date(2026, 9, 30), "FY2026 H2")),
        # a December year
        (date(2026, 12, 1), 12, 1, Period(date(2026, 12, 1), date(2026, 12, 31), "FY2027 M1")),
        (date(2026, 11, 30), 12, 1, Period(date(2026, 11, 1), date(2026, 11, 30), "FY2026 M12")),
        (date(2026, 12, 31), 12, 12, Period(date(2026, 12, 1), date(2027, 11, 30), "FY2027")),
    ],
)
def test_period_containing(day: date, start_month: int, months: int, expected: Period) -> None:
    assert rules.period_containing(day, start_month, months) == expected


@pytest.mark.parametrize("months", rules.PERIOD_MONTHS)
@pytest.mark.parametrize("start_month", [1, 2, 4, 7, 10, 12])
def test_every_calendar_cuts_years_into_contiguous_periods_named_in_order(
    start_month: int, months: int
) -> None:
    first, last = date(2023, 1, 1), date(2029, 12, 31)
    periods = rules.periods_between(first, last, start_month, months)
    assert periods[0].start <= first <= periods[0].end
    assert periods[-1].start <= last <= periods[-1].end
    per_year = 12 // months
    for previous, period in itertools.pairwise(periods):
        assert period.start == previous.end + timedelta(days=1)  # no gap, no overlap
    for period in periods:
        assert period.start.day == 1
        assert period.start + relativedelta(months=months) - timedelta(days=1) == period.end
        # first and last day belong to the period itself
        assert rules.period_containing(period.start, start_month, months) == period
        assert rules.period_containing(period.end, start_month, months) == period
        assert period.start in period and period.end in period
        assert period.start - timedelta(days=1) not in period
        # the index within the fiscal year and the year the fiscal year ends in
        index = ((period.start.month - start_month) % 12) // months + 1
        fy_end = date(period.start.year, start_month, 1) + relativedelta(
            months=12 if period.start.month >= start_month else 0
        )
        fy = (fy_end - timedelta(days=1)).year
        label = f"FY{fy}" if months == 12 else f"FY{fy} {LETTER[months]}{index}"
        assert period.label == label
        assert 1 <= index <= per_year


def test_periods_between() -> None:
    q = rules.periods_between(date(2026, 2, 15), date(2026, 8, 1), 1, 3)
    assert [p.label for p in q] == ["FY2026 Q1", "FY2026 Q2", "FY2026 Q3"]
    # Both ends on period boundaries: the periods ending/starting there are included.
    q = rules.periods_between(date(2026, 3, 31), date(2026, 4, 1), 1, 3)
    assert [p.label for p in q] == ["FY2026 Q1", "FY2026 Q2"]
    assert [p.label for p in rules.periods_between(date(2026, 4, 5), date(2026, 4, 5), 2, 3)] == [
        "FY2027 Q1"
    ]
    assert rules.periods_between(date(2026, 5, 6), date(2026, 5, 5), 1, 3) == []
    years = rules.periods_between(date(2025, 12, 31), date(2027, 1, 31), 2, 12)
    assert [p.label for p in years] == ["FY2026", "FY2027"]
    years = rules.periods_between(date(2025, 12, 31), date(2027, 2, 1), 2, 12)
    assert [p.label for p in years] == ["FY2026", "FY2027", "FY2028"]


@pytest.mark.parametrize(
    ("start_month", "months", "field"),
    [
        (0, 3, "fiscal_start_month"),
        (13, 3, "fiscal_start_month"),
        (True, 3, "fiscal_start_month"),
        ("1", 3, "fiscal_start_month"),
        (1.0, 3, "fiscal_start_month"),
        (None, 3, "fiscal_start_month"),
        (1, 5, "period_months"),
        (1, 0, "period_months"),
        (1, 24, "period_months"),
        (1, True, "period_months"),  # True == 1, but is not a number of months
        (1, 3.0, "period_months"),
        (1, Decimal(3), "period_months"),
        (1, "3", "period_months"),
    ],
)
def test_a_bad_calendar_is_refused_naming_the_field(
    start_month: object, months: object, field: str
) -> None:
    with pytest.raises(ValidationError) as err:
        rules.period_containing(date(2026, 1, 1), start_month, months)  # type: ignore[arg-type]
    assert err.value.details["field"] == field


@pytest.mark.parametrize("day", [datetime(2026, 3, 1, tzinfo=UTC), "2026-03-01", None, 20260301])
def test_a_day_that_is_not_a_date_is_refused(day: object) -> None:
    with pytest.raises(ValidationError) as err:
        rules.period_containing(day, 1, 3)  # type: ignore[arg-type]
    assert err.value.details["field"] == "day"
    period = rules.period_containing(date(2026, 3, 1), 1, 3)
    assert day not in period  # not a TypeError either


# --- dates that follow from a period -------------------------------------------------------------


def test_available_until_is_the_period_end_or_later_when_funds_roll_over() -> None:
    q4 = rules.period_containing(date(2026, 11, 1), 1, 3)
    assert rules.available_until(q4, "forfeit", 0) == date(2026, 12, 31)
    assert rules.available_until(q4, "forfeit", 30) == date(2026, 12, 31)  # forfeit ignores days
    assert rules.available_until(q4, "rollover", 30) == date(2027, 1, 30)
    assert rules.available_until(q4, "rollover", 1) == date(2027, 1, 1)
    q4_2027 = rules.period_containing(date(2027, 12, 1), 2, 3)  # Nov 2027 - Jan 2028
    assert rules.available_until(q4_2027, "rollover", 29) == date(2028, 2, 29)
    assert rules.available_until(q4_2027, "rollover", 365) == date(2029, 1, 30)


def test_claim_deadline_counts_calendar_days_after_the_activity() -> None:
    assert rules.claim_deadline(date(2026, 9, 30), 60) == date(2026, 11, 29)
    assert rules.claim_deadline(date(2026, 9, 30), 0) == date(2026, 9, 30)
    assert rules.claim_deadline(date(2028, 2, 1), 28) == date(2028, 2, 29)
    assert rules.claim_deadline(date(2027, 2, 1), 28) == date(2027, 3, 1)
    assert rules.claim_deadline(date(2026, 12, 15), 30) == date(2027, 1, 14)


# --- money ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cost", "share_bp", "expected"),
    [
        (10_000, 5000, 5000),
        (999, 5000, 499),  # 499.5 rounds down
        (1, 9999, 0),
        (3, 3333, 0),
        (10_000, 10_000, 10_000),
        (12_345, 1, 1),
        (2**62 - 1, 10_000, 2**62 - 1),
        (2**62 - 1, 9_999, (2**62 - 1) * 9_999 // 10_000),
        (0, 5000, 0),
    ],
)
def test_reimbursable_rounds_down(cost: int, share_bp: int, expected: int) -> None:
    assert rules.reimbursable(cost, share_bp) == expected


@given(st.integers(0, 2**62), st.integers(1, 10_000))
def test_reimbursable_never_exceeds_the_share(cost: int, share_bp: int) -> None:
    paid = rules.reimbursable(cost, share_bp)
    assert 0 <= paid * 10_000 <= cost * share_bp < (paid + 1) * 10_000


@pytest.mark.parametrize(
    ("amount", "rate_bp", "expected"),
    [
        (100_000, 500, 5_000),
        (50, 100, 1),  # 0.5 rounds half up
        (-50, 100, -1),  # and a return mirrors it
        (49, 100, 0),
        (-49, 100, 0),
        (150, 300, 5),  # 4.5
        (-150, 300, -5),
        (25, 200, 1),  # 0.5
        (24, 200, 0),  # 0.48
        (0, 300, 0),
        (1, 10_000, 1),
        (123, 0, 0),
        (2**62 - 1, 10_000, 2**62 - 1),  # exact at the top of the range, no float anywhere
        (2**62 - 1, 1, 461_168_601_842_739),  # 461168601842738.7903 -> ...739
    ],
)
def test_accrual_rounds_half_up_on_the_magnitude(amount: int, rate_bp: int, expected: int) -> None:
    assert rules.accrual(amount, rate_bp) == expected


@given(st.integers(-(2**62), 2**62), st.integers(0, 10_000))
def test_accrual_is_symmetric_and_within_half_a_unit(amount: int, rate_bp: int) -> None:
    accrued = rules.accrual(amount, rate_bp)
    assert rules.accrual(-amount, rate_bp) == -accrued
    exact = Decimal(amount) * rate_bp / 10_000
    assert abs(Decimal(accrued) - exact) <= Decimal("0.5")
    assert type(accrued) is int


# --- rates ---------------------------------------------------------------------------------------

RATES = [
    Rate("", "", 200),
    Rate("gold", "", 300),
    Rate("", "storage", 400),
    Rate("Gold", "Storage", 500),
]


@pytest.mark.parametrize(
    ("tier", "product_line", "expected"),
    [
        ("gold", "storage", 500),  # tier and product line
        ("GOLD", "STORAGE", 500),  # case does not matter
        ("silver", "storage", 400),  # product line beats...
        ("gold", "network", 300),  # ...tier, which beats...
        ("silver", "network", 200),  # ...any
        ("silver", "", 200),
        ("gold", "", 300),
        ("", "", 200),
    ],
)
def test_pick_rate_takes_the_most_specific(tier: str, product_line: str, expected: int) -> None:
    rate = rules.pick_rate(RATES, tier, product_line)
    assert rate is not None and rate.rate_bp == expected
    # the order the rates come in makes no difference
    again = rules.pick_rate(list(reversed(RATES)), tier, product_line)
    assert again is not None and again.rate_bp == expected


def test_pick_rate_without_a_match() -> None:
    assert rules.pick_rate([], "gold", "storage") is None
    only_gold = [Rate("gold", "", 300), Rate("gold", "storage", 500)]
    assert rules.pick_rate(only_gold, "silver", "storage") is None
    assert rules.pick_rate([Rate("", "storage", 400)], "gold", "network") is None
    assert rules.pick_rate(iter(only_gold), "gold", "x") == Rate("gold", "", 300)  # any iterable


# --- time zones ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["", None, 5, "Mars/Olympus", "America", "Europe", "Europe/Berlin ", "../UTC",
     "/etc/localtime", "UTC\x00", "A" * 65, "Europe/berlin"],
)  # fmt: skip
def test_an_unknown_timezone_is_a_validation_error(name: object) -> None:
    with pytest.raises(ValidationError) as err:
        rules.zone(name)
    assert err.value.details["field"] == "timezone"


@pytest.mark.parametrize(
    ("now", "timezone", "expected"),
    [
        # 02:00 UTC on 1 October is still 30 September in New York (EDT, -4)...
        (datetime(2026, 10, 1, 2, 0, tzinfo=UTC), "America/New_York", date(2026, 9, 30)),
        (datetime(2026, 10, 1, 4, 0, tzinfo=UTC), "America/New_York", date(2026, 10, 1)),
        # ...and in winter (EST, -5) the day turns at 05:00 UTC
        (datetime(2026, 1, 1, 4, 59, tzinfo=UTC), "America/New_York", date(2025, 12, 31)),
        (datetime(2026, 1, 1, 5, 0, tzinfo=UTC), "America/New_York", date(2026, 1, 1)),
        (datetime(2026, 3, 31, 15, 0, tzinfo=UTC), "Asia/Tokyo", date(2026, 4, 1)),
        (datetime(2026, 3, 31, 14, 59, tzinfo=UTC), "Asia/Tokyo", date(2026, 3, 31)),
        (datetime(2026, 12, 31, 10, 0, tzinfo=UTC), "Pacific/Kiritimati", date(2027, 1, 1)),
        (datetime(2026, 12, 31, 23, 59, tzinfo=UTC), "UTC", date(2026, 12, 31)),
        # the same instant given in another zone is the same business date
        (
            datetime(2026, 10, 1, 7, 0, tzinfo=ZoneInfo("Europe/Berlin")),
            "America/New_York",
            date(2026, 10, 1),
        ),
    ],
)
def test_business_date_is_the_date_in_the_programs_timezone(
    now: datetime, timezone: str, expected: date
) -> None:
    assert rules.business_date(now, timezone) == expected


@pytest.mark.parametrize(
    ("day", "timezone", "utc", "hours"),
    [
        (date(2026, 3, 7), "America/New_York", datetime(2026, 3, 8, 5, tzinfo=UTC), 24),
        (date(2026, 3, 8), "America/New_York", datetime(2026, 3, 9, 4, tzinfo=UTC), 23),  # spring
        (date(2026, 10, 31), "America/New_York", datetime(2026, 11, 1, 4, tzinfo=UTC), 24),
        (date(2026, 11, 1), "America/New_York", datetime(2026, 11, 2, 5, tzinfo=UTC), 25),  # fall
        (date(2026, 3, 29), "Europe/Berlin", datetime(2026, 3, 29, 22, tzinfo=UTC), 23),
        (date(2026, 10, 25), "Europe/Berlin", datetime(2026, 10, 25, 23, tzinfo=UTC), 25),
        (date(2026, 9, 30), "UTC", datetime(2026, 10, 1, tzinfo=UTC), 24),
        (date(2026, 9, 30), "Asia/Kolkata", datetime(2026, 9, 30, 18, 30, tzinfo=UTC), 24),
        # Chile springs forward at midnight: 6 September 2026 begins at 01:00 local time
        (date(2026, 9, 5), "America/Santiago", datetime(2026, 9, 6, 4, tzinfo=UTC), 24),
        (date(2026, 9, 6), "America/Santiago", datetime(2026, 9, 7, 3, tzinfo=UTC), 23),
    ],
)
def test_end_of_day_is_the_first_instant_of_the_next_local_day(
    day: date, timezone: str, utc: datetime, hours: int
) -> None:
    end = rules.end_of_day(day, timezone)
    assert end.astimezone(UTC) == utc
    start = rules.end_of_day(day - timedelta(days=1), timezone)
    assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=hours)
    assert rules.business_date(end, timezone) == day + timedelta(days=1)
    assert rules.business_date(end - timedelta(microseconds=1), timezone) == day


ZONES = [
    "UTC", "America/New_York", "Europe/Berlin", "Asia/Kolkata", "Australia/Lord_Howe",
    "Pacific/Kiritimati", "Pacific/Chatham", "America/Santiago", "America/Havana",
    "Asia/Tehran", "Pacific/Apia",
]  # fmt: skip


@given(st.dates(date(2015, 1, 1), date(2035, 12, 31)), st.sampled_from(ZONES))
def test_a_deadline_lapses_exactly_when_the_business_date_moves_past_it(
    day: date, timezone: str
) -> None:
    end = rules.end_of_day(day, timezone).astimezone(UTC)
    assert rules.business_date(end - timedelta(microseconds=1), timezone) == day
    assert rules.business_date(end, timezone) == day + timedelta(days=1)
    previous = rules.end_of_day(day - timedelta(days=1), timezone).astimezone(UTC)
    assert timedelta(hours=22) <= end - previous <= timedelta(hours=26)
