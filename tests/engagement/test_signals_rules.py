"""The pure rules of partner signals: thresholds at their edges, the transition table, plans
against the stored state, and (Hypothesis) that a plan applied once leaves nothing to do."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mdfledger.engagement import signal_rules as r
from mdfledger.engagement.signal_rules import SignalKind as K
from mdfledger.errors import ValidationError

NOW = datetime(2026, 9, 15, 16, 0, tzinfo=UTC)  # noon in New York
TODAY = date(2026, 9, 15)
QUIET = r.Thresholds(no_sign_in_days=366, no_activity_days=366, milestones=())


def facts(**kw: Any) -> r.Facts:
    base: dict[str, Any] = dict(
        now=NOW, timezone="America/New_York", currency="USD", program="MDF 2026",
        program_code="MDF26", joined=NOW - timedelta(days=400), last_sign_in=NOW,
        funded=NOW - timedelta(days=400), last_activity=NOW,
    )  # fmt: skip
    base.update(kw)
    return r.Facts(**base)


def fund(**kw: Any) -> r.FundFacts:
    base: dict[str, Any] = dict(
        fund_id=7, period_label="FY2026 Q3", available_until=date(2026, 9, 30),
        received=2_000_000, approved=0, available=2_000_000, live=True,
    )  # fmt: skip
    base.update(kw)
    return r.FundFacts(**base)


def kinds(found: dict[tuple[str, str], r.Signal]) -> set[tuple[str, str]]:
    return set(found)


# --- thresholds at their edges -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days_ago", "on"),
    [(29, False), (30, True), (31, True)],
)
def test_no_sign_in_turns_on_on_the_nth_day(days_ago: int, on: bool) -> None:
    seen = NOW - timedelta(days=days_ago)
    found = r.evaluate(facts(last_sign_in=seen), r.Thresholds(milestones=()))
    assert ((K.NO_SIGN_IN.value, "") in found) is on
    if on:
        signal = found[(K.NO_SIGN_IN.value, "")]
        assert signal.value == {
            "days": days_ago, "threshold": 30, "last_seen": seen.isoformat(),
            "program": "MDF 2026",
        }  # fmt: skip
        # The day the threshold was reached, in the program's time zone.
        assert signal.since == date(2026, 9, 15) - timedelta(days=days_ago - 30)


def test_a_few_hours_short_of_the_nth_day_is_still_off() -> None:
    seen = NOW - timedelta(days=30) + timedelta(hours=1)
    assert r.evaluate(facts(last_sign_in=seen), r.Thresholds(milestones=())) == {}


def test_never_signed_in_counts_from_when_the_partner_was_set_up() -> None:
    found = r.evaluate(
        facts(last_sign_in=None, joined=NOW - timedelta(days=31)), r.Thresholds(milestones=())
    )
    assert found[(K.NO_SIGN_IN.value, "")].value["last_seen"] is None
    assert found[(K.NO_SIGN_IN.value, "")].value["days"] == 31
    assert r.evaluate(facts(last_sign_in=None, joined=NOW - timedelta(days=29)), QUIET) == {}


@pytest.mark.parametrize(("days_ago", "on"), [(44, False), (45, True), (46, True)])
def test_no_activity_turns_on_on_the_nth_day(days_ago: int, on: bool) -> None:
    found = r.evaluate(
        facts(last_activity=NOW - timedelta(days=days_ago)), r.Thresholds(milestones=())
    )
    assert ((K.NO_ACTIVITY.value, "") in found) is on
    # Never active: counted from when funds first came in.
    found = r.evaluate(
        facts(last_activity=None, funded=NOW - timedelta(days=days_ago)),
        r.Thresholds(milestones=()),
    )
    assert ((K.NO_ACTIVITY.value, "") in found) is on


def test_inactive_needs_both_quiet_signals() -> None:
    quiet = facts(last_sign_in=NOW - timedelta(days=40), last_activity=NOW - timedelta(days=50))
    found = r.evaluate(quiet, r.Thresholds(milestones=()))
    assert kinds(found) == {
        (K.NO_SIGN_IN.value, ""), (K.NO_ACTIVITY.value, ""), (K.INACTIVE.value, "")
    }  # fmt: skip
    inactive = found[(K.INACTIVE.value, "")]
    assert inactive.value["days"] == 40 and inactive.value["threshold"] == 30
    assert inactive.value["last_seen"] == (NOW - timedelta(days=40)).isoformat()
    # The later of the two starts.
    assert inactive.since == max(
        found[(K.NO_SIGN_IN.value, "")].since, found[(K.NO_ACTIVITY.value, "")].since
    )
    one = facts(last_sign_in=NOW - timedelta(days=40))
    assert kinds(r.evaluate(one, r.Thresholds(milestones=()))) == {(K.NO_SIGN_IN.value, "")}


@pytest.mark.parametrize(
    ("until", "on", "days_left"),
    [
        (date(2026, 10, 16), False, None),  # 31 days left
        (date(2026, 10, 15), True, 30),  # exactly 30
        (date(2026, 9, 15), True, 0),  # its last day is today
        (date(2026, 9, 14), False, None),  # past (and no longer live)
    ],
)
def test_funds_expiring_within_the_warning(until: date, on: bool, days_left: int | None) -> None:
    catalog = (
        r.ActivityFacts("Webinar", 500_000),
        r.ActivityFacts("Trade show", None),
        r.ActivityFacts("Billboard", 2_500_000),  # more than what is left: does not fit
    )
    live = until >= TODAY
    found = r.evaluate(
        facts(funds=(fund(available_until=until, live=live),), activities=catalog), QUIET
    )
    assert ((K.FUNDS_EXPIRING.value, "fund:7") in found) is on
    if on:
        signal = found[(K.FUNDS_EXPIRING.value, "fund:7")]
        assert signal.value == {
            "fund_id": 7, "amount": 2_000_000, "currency": "USD", "program": "MDF 2026",
            "program_code": "MDF26", "period": "FY2026 Q3", "expires_on": until.isoformat(),
            "days_left": days_left, "activities_fitting": 2,
            "activity_names": ["Trade show", "Webinar"],
        }  # fmt: skip
        assert signal.since == until - timedelta(days=30)


def test_nothing_left_nothing_expiring() -> None:
    spent = fund(available_until=date(2026, 9, 20), available=0, approved=2_000_000)
    assert (K.FUNDS_EXPIRING.value, "fund:7") not in r.evaluate(facts(funds=(spent,)), QUIET)


@pytest.mark.parametrize(
    ("deadline", "on"),
    [
        (date(2026, 9, 30), False),
        (date(2026, 9, 29), True),
        (TODAY, True),
        (date(2026, 9, 14), False),
    ],
)
def test_reservation_deadline_within_the_warning(deadline: date, on: bool) -> None:
    held = r.ReservationFacts(12, "REQ-000012", 200_000, deadline)
    found = r.evaluate(facts(reservations=(held,)), QUIET)
    assert ((K.DEADLINE_NEAR.value, "request:12") in found) is on
    if on:
        assert found[(K.DEADLINE_NEAR.value, "request:12")].value == {
            "request_id": 12, "reference": "REQ-000012", "amount": 200_000, "currency": "USD",
            "program": "MDF 2026", "claim_deadline": deadline.isoformat(),
            "days_left": (deadline - TODAY).days,
        }  # fmt: skip


def test_milestones_are_exact_percentages_of_each_live_fund() -> None:
    thresholds = r.Thresholds(no_sign_in_days=366, no_activity_days=366, expiry_warning_days=1)
    for approved, reached in (
        (0, []),
        (499_999, []),
        (500_000, [25]),  # exactly a quarter
        (999_999, [25]),
        (1_000_000, [25, 50]),
        (2_000_000, [25, 50, 75, 100]),
    ):
        found = r.evaluate(facts(funds=(fund(approved=approved),)), thresholds)
        assert (
            sorted(s.value["percent"] for s in found.values() if s.kind == K.MILESTONE) == reached
        ), approved
    past = fund(approved=2_000_000, live=False)
    assert r.evaluate(facts(funds=(past,)), thresholds) == {}
    empty = fund(received=0, approved=0, available=0)
    assert r.evaluate(facts(funds=(empty,)), thresholds) == {}


def test_an_inactive_policy_turns_everything_off() -> None:
    quiet = facts(last_sign_in=None, joined=NOW - timedelta(days=900), funds=(fund(),))
    assert r.evaluate(quiet, r.Thresholds(active=False)) == {}


def test_milestones_parse_strictly() -> None:
    assert r.parse_milestones("50, 25,100,25") == (25, 50, 100)
    assert r.parse_milestones([75, 25]) == (25, 75)
    assert r.parse_milestones("") == ()
    for bad in ("0", "101", "ten", "25.5", [True], [25, "50"], None, "-5"):
        with pytest.raises(ValidationError) as caught:
            r.parse_milestones(bad)
        assert caught.value.details == {"field": "milestones"}
    with pytest.raises(ValidationError, match="at most 10"):
        r.parse_milestones(list(range(1, 12)))


# --- the transition table and plans --------------------------------------------------------------


def test_the_transition_table() -> None:
    assert r.next_signal_state("off", "raise") == "on"
    assert r.next_signal_state("on", "raise") == "on"
    assert r.next_signal_state("on", "clear") == "off"
    assert r.next_signal_state("off", "clear") is None


def signal(kind: K, subject: str = "", since: date = TODAY, **value: Any) -> r.Signal:
    return r.Signal(kind, subject, since, value or {"v": 1})


def stored(sig: r.Signal, *, active: bool = True, changed_on: date | None = None) -> r.Stored:
    return r.Stored(active, sig.since, sig.value, changed_on or sig.since)


def test_a_signal_turning_on_emits_and_staying_on_does_not() -> None:
    sig = signal(K.NO_SIGN_IN, days=31)
    [change] = r.plan({}, {sig.key: sig}, TODAY)
    assert (change.before, change.after, change.emit) == ("off", "on", True)
    # Already on, same value: nothing at all. A new value: refreshed, no event.
    assert r.plan({sig.key: stored(sig)}, {sig.key: sig}, TODAY) == []
    later = signal(K.NO_SIGN_IN, days=32)
    [refresh] = r.plan({sig.key: stored(sig)}, {later.key: later}, TODAY)
    assert (refresh.turned, refresh.emit, refresh.value) == (False, False, {"days": 32})
    assert refresh.since == sig.since  # since stays as it turned on


def test_a_signal_turning_off_is_recorded_without_an_event() -> None:
    sig = signal(K.FUNDS_EXPIRING, "fund:7")
    [change] = r.plan({sig.key: stored(sig)}, {}, TODAY)
    assert (change.event, change.before, change.after, change.emit) == ("clear", "on", "off", False)
    assert r.plan({sig.key: stored(sig, active=False)}, {}, TODAY) == []


def test_turning_on_again_after_a_turn_off_gets_a_new_since() -> None:
    earlier = TODAY - timedelta(days=10)
    sig = signal(K.FUNDS_EXPIRING, "fund:7", since=earlier)
    # It turned off after its condition had begun: the new turn on is today, a new key.
    off = r.Stored(False, earlier, sig.value, TODAY - timedelta(days=2))
    [change] = r.plan({sig.key: off}, {sig.key: sig}, TODAY)
    assert change.since == TODAY and change.emit
    # Off since before the condition began: its own start stands.
    old = r.Stored(False, earlier - timedelta(days=60), sig.value, earlier - timedelta(days=40))
    [change] = r.plan({sig.key: old}, {sig.key: sig}, TODAY)
    assert change.since == earlier
    assert r.event_key(3, 4, change) == f"signal:3:4:funds.expiring:fund:7:{earlier.isoformat()}"


def test_only_the_highest_milestone_reached_at_once_is_told() -> None:
    found = {
        s.key: s
        for s in (
            signal(K.MILESTONE, "fund:7:25"),
            signal(K.MILESTONE, "fund:7:50"),
            signal(K.MILESTONE, "fund:7:75"),
            signal(K.MILESTONE, "fund:9:25"),
        )
    }
    emitted = {c.subject for c in r.plan({}, found, TODAY) if c.emit}
    assert emitted == {"fund:7:75", "fund:9:25"}
    # 25 already on: 50 alone is new and told.
    on = {
        ("utilisation.milestone", "fund:7:25"): stored(
            found[("utilisation.milestone", "fund:7:25")]
        )
    }
    two = {k: v for k, v in found.items() if k[1] in ("fund:7:25", "fund:7:50")}
    assert [(c.subject, c.emit) for c in r.plan(on, two, TODAY)] == [("fund:7:50", True)]


def test_inactive_speaks_for_the_quiet_signals_turning_on_with_it() -> None:
    together = {s.key: s for s in (signal(K.NO_SIGN_IN), signal(K.NO_ACTIVITY), signal(K.INACTIVE))}
    told = {c.kind for c in r.plan({}, together, TODAY) if c.emit}
    assert told == {K.INACTIVE}
    # No-sign-in was on before: only no-activity and inactive are new; inactive is told.
    before = {(K.NO_SIGN_IN.value, ""): stored(together[(K.NO_SIGN_IN.value, "")])}
    changes = r.plan(before, together, TODAY)
    assert {(c.kind, c.emit) for c in changes} == {(K.NO_ACTIVITY, False), (K.INACTIVE, True)}


def test_describe_says_what_finance_needs_and_never_raises() -> None:
    expiring = {
        "amount": 145_000, "currency": "USD", "period": "FY2026 Q3", "expires_on": "2026-09-30",
    }  # fmt: skip
    held = {
        "reference": "REQ-000012", "amount": 200_000, "currency": "JPY",
        "claim_deadline": "2026-10-29",
    }  # fmt: skip
    assert r.describe(K.NO_SIGN_IN, {"days": 31, "threshold": 30}) == "31 days (threshold 30)"
    assert r.describe(K.FUNDS_EXPIRING, expiring) == (
        "1,450.00 USD of FY2026 Q3 expires 30 September 2026"
    )
    assert r.describe(K.DEADLINE_NEAR, held) == (
        "REQ-000012: 200,000 JPY, claim by 29 October 2026"
    )
    assert r.describe(K.MILESTONE, {"percent": 50, "period": "FY2026 Q3"}) == (
        "50% of FY2026 Q3 used"
    )
    for bad in ({}, {**expiring, "currency": "XX"}, {**expiring, "expires_on": "soon"}):
        assert r.describe(K.FUNDS_EXPIRING, bad) == ""


def test_risk_order() -> None:
    rows = [
        (1, date(2026, 10, 1), 500, "b"),
        (2, None, 0, "z"),
        (1, date(2026, 9, 30), 100, "c"),
        (1, date(2026, 9, 30), 900, "d"),
        (1, None, 0, "a"),
    ]
    ordered = sorted(rows, key=lambda row: r.risk_order(*row))
    assert [row[3] for row in ordered] == ["z", "d", "c", "b", "a"]


# --- plans reach a fixed point -------------------------------------------------------------------

KEYS = [
    (K.NO_SIGN_IN, ""), (K.NO_ACTIVITY, ""), (K.INACTIVE, ""), (K.FUNDS_EXPIRING, "fund:1"),
    (K.MILESTONE, "fund:1:25"), (K.MILESTONE, "fund:1:50"), (K.DEADLINE_NEAR, "request:2"),
]  # fmt: skip


def _apply(state: dict[tuple[str, str], r.Stored], changes: list[r.Change], today: date) -> None:
    for c in changes:
        key = (c.kind.value, c.subject)
        changed = today if c.turned else (state[key].changed_on if key in state else today)
        state[key] = r.Stored(c.after == "on", c.since, c.value, changed)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.dictionaries(st.sampled_from(range(len(KEYS))), st.integers(0, 3), max_size=len(KEYS)),
        min_size=1,
        max_size=8,
    )
)
def test_each_turn_on_emits_at_most_once_and_a_rerun_changes_nothing(days: list[dict]) -> None:
    state: dict[tuple[str, str], r.Stored] = {}
    for offset, on in enumerate(days):
        today = TODAY + timedelta(days=offset)
        current = {}
        for index, value in on.items():
            kind, subject = KEYS[index]
            sig = r.Signal(kind, subject, today - timedelta(days=3), {"v": value})
            current[sig.key] = sig
        was_on = {k for k, s in state.items() if s.active}
        changes = r.plan(state, current, today)
        turned_on = {(c.kind.value, c.subject) for c in changes if c.turned and c.after == "on"}
        assert turned_on == set(current) - was_on
        assert all(not c.emit for c in changes if not (c.turned and c.after == "on"))
        assert {(c.kind.value, c.subject) for c in changes if c.after == "off"} == was_on - set(
            current
        )
        _apply(state, changes, today)
        # Again, the same day (a second or hourly run): nothing.
        assert r.plan(state, current, today) == []
