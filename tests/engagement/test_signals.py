"""Partner signals on a real book (SQLite and PostgreSQL): one event per state change, however
often the job runs; funds expiring with the activities that fit; reservations near their
deadline; milestones; the thresholds; the at-risk list."""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from mdfledger import audit, auth, claims, programs, verification
from mdfledger.actor import Actor
from mdfledger.engagement import Event, signals
from mdfledger.engagement.signal_models import PartnerSignal, SignalPolicy
from mdfledger.engagement.signal_rules import SignalKind
from mdfledger.errors import Forbidden, NotFound, ValidationError
from tests.claims import conftest as claims_book
from tests.claims.conftest import NOW, Desk
from tests.samples import pdf_bytes

SYSTEM = Actor.system("test")
PASSWORD = "correct horse battery staple"
DAY = timedelta(days=1)


@pytest.fixture
def desk(session: Session, tmp_path: Path) -> Desk:
    """The claims tests' book: MDF 2026, ACME and BOLT with 20,000.00 USD each for Q3."""
    return claims_book.desk.__wrapped__(session, tmp_path)


def at(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


SIGNAL_TYPES = [kind.value for kind in SignalKind]


def run(session: Session, when: datetime, **kw: Any) -> signals.SignalRun:
    done = signals.run_signals(session, SYSTEM, now=when, **kw)
    session.flush()
    return done


def events(session: Session, kind: str | None = None, partner_id: int | None = None) -> list[Event]:
    # Only what the signals emit: the desk's allocations tell partners too (fund.allocated).
    statement = select(Event).where(Event.type.in_(SIGNAL_TYPES)).order_by(Event.id)
    if kind is not None:
        statement = statement.where(Event.type == kind)
    if partner_id is not None:
        statement = statement.where(Event.partner_id == partner_id)
    return list(session.scalars(statement))


def state(session: Session, partner_id: int, kind: str, subject: str = "") -> PartnerSignal:
    row = session.scalar(
        select(PartnerSignal).where(
            PartnerSignal.partner_id == partner_id,
            PartnerSignal.kind == kind,
            PartnerSignal.subject == subject,
        )
    )
    assert row is not None, (partner_id, kind, subject)
    return row


def thresholds(session: Session, desk: Desk, **kw: Any) -> None:
    values: dict[str, Any] = dict(
        no_sign_in_days=30, no_activity_days=45, expiry_warning_days=30,
        deadline_warning_days=14, milestones="25,50,75,100", active=True,
    )  # fmt: skip
    values.update(kw)
    signals.set_policy(session, desk.admin, desk.mdf.id, **values, now=NOW)


def only(session: Session, desk: Desk, *kinds: str) -> None:
    """Thresholds that keep every other kind of signal quiet in these tests' months."""
    quiet: dict[str, Any] = dict(
        no_sign_in_days=366, no_activity_days=366, expiry_warning_days=1, milestones=""
    )
    loud: dict[str, dict[str, Any]] = {
        "partner.no_sign_in": {"no_sign_in_days": 30},
        "partner.no_activity": {"no_activity_days": 45},
        "funds.expiring": {"expiry_warning_days": 30},
        "utilisation.milestone": {"milestones": "25,50,75,100"},
    }
    for kind in kinds:
        quiet.update(loud.get(kind, {}))
    thresholds(session, desk, **quiet)


def sign_in(session: Session, email: str, when: datetime) -> None:
    auth.authenticate(session, email, PASSWORD, now=when)
    session.flush()


# --- no sign-in: once per state change -----------------------------------------------------------


def test_a_partner_not_signed_in_for_31_days_gets_one_event(session: Session, desk: Desk) -> None:
    only(session, desk, "partner.no_sign_in")
    day = NOW.date() + 31 * DAY  # set up on NOW: 31 days without a sign-in
    done = run(session, at(day))
    assert (done.turned_on, done.events) == (2, 2)  # ACME and BOLT
    [event] = events(session, "partner.no_sign_in", desk.acme.id)
    assert event.program_id == desk.mdf.id
    assert event.data == {
        "days": 31, "threshold": 30, "last_seen": None, "program": "MDF 2026"
    }  # fmt: skip
    assert event.subject  # rendered by the outbox now
    row = state(session, desk.acme.id, "partner.no_sign_in")
    assert row.active and row.emitted and row.since == NOW.date() + 30 * DAY
    assert row.event_key == event.key
    assert event.key == f"signal:{desk.mdf.id}:{desk.acme.id}:partner.no_sign_in::{row.since}"

    # Again the same day, hourly, and the next day: nothing new is sent.
    for when in (at(day, 13), at(day, 23), at(day + DAY), at(day + 2 * DAY, 13)):
        again = run(session, when)
        assert (again.turned_on, again.turned_off, again.events) == (0, 0, 0)
    assert len(events(session)) == 2
    assert state(session, desk.acme.id, "partner.no_sign_in").value["days"] == 33  # refreshed

    # ACME signs in: its signal turns off quietly; BOLT's stays on.
    sign_in(session, "pat@acme.test", at(day + 3 * DAY, 9))
    off = run(session, at(day + 3 * DAY))
    assert (off.turned_off, off.events) == (1, 0)
    assert not state(session, desk.acme.id, "partner.no_sign_in").active
    assert state(session, desk.bolt.id, "partner.no_sign_in").active
    assert len(events(session)) == 2
    entries = session.scalars(audit.query(SYSTEM, action="signal.off")).all()
    assert [e.subject_partner_id for e in entries] == [desk.acme.id]

    # 31 days after that sign-in, quiet again: a new event, with when they were last seen.
    back = day + 3 * DAY + 31 * DAY
    assert run(session, at(back - 2 * DAY)).events == 0  # 29 days: not yet
    assert run(session, at(back)).events == 1
    first, second = events(session, "partner.no_sign_in", desk.acme.id)
    assert second.data["last_seen"] == at(day + 3 * DAY, 9).isoformat()
    assert second.data["days"] == 31
    assert second.key != first.key
    assert run(session, at(back, 20)).events == 0


def test_the_daily_job_commits_and_a_rerun_sends_nothing(
    session: Session, desk: Desk, session_factory: sessionmaker[Session]
) -> None:
    only(session, desk, "partner.no_sign_in", "funds.expiring")
    session.commit()
    day = at(NOW.date() + 31 * DAY)
    done = signals.signals_job(session_factory, now=day)
    # Both partners: no sign-in, and their Q3 funds end on 30 September (30 days or less).
    assert (done.programs, done.partners, done.turned_on, done.events) == (1, 2, 4, 4)
    for hours in (1, 5, 24):
        again = signals.signals_job(session_factory, now=day + timedelta(hours=hours))
        assert (again.turned_on, again.turned_off, again.events) == (0, 0, 0)
    with session_factory() as fresh:
        assert fresh.scalar(select(func.count()).where(Event.type.in_(SIGNAL_TYPES))) == 4
        assert fresh.scalar(select(func.count()).select_from(PartnerSignal)) == 4


def test_two_runs_at_once_send_each_event_once(
    session: Session, desk: Desk, session_factory: sessionmaker[Session]
) -> None:
    only(session, desk, "partner.no_sign_in", "funds.expiring")
    session.commit()
    day = at(NOW.date() + 31 * DAY)
    start = threading.Barrier(3)
    results: list[object] = []

    def job() -> None:
        start.wait()
        try:
            results.append(signals.signals_job(session_factory, now=day))
        except Exception as error:
            results.append(error)

    threads = [threading.Thread(target=job) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert all(isinstance(r, signals.SignalRun) for r in results), results
    assert sum(r.events for r in results if isinstance(r, signals.SignalRun)) == 4
    with session_factory() as fresh:
        assert fresh.scalar(select(func.count()).where(Event.type.in_(SIGNAL_TYPES))) == 4


def test_a_run_rolled_back_leaves_nothing(session: Session, desk: Desk) -> None:
    only(session, desk, "partner.no_sign_in")
    session.commit()
    run(session, at(NOW.date() + 31 * DAY))
    session.rollback()
    assert events(session) == []
    assert session.scalar(select(func.count()).select_from(PartnerSignal)) == 0


# --- funds expiring, deadlines, milestones, inactive ---------------------------------------------


def test_funds_expiring_say_which_activities_fit(session: Session, desk: Desk) -> None:
    only(session, desk, "funds.expiring")
    programs.add_activity(
        session, SYSTEM, desk.mdf.id, code="BILLBOARD", name="Billboard", proof=["photos"],
        cap=2_500_000,
    )  # fmt: skip
    off = programs.add_activity(
        session, SYSTEM, desk.mdf.id, code="OLDAD", name="Print ad", proof=["invoice"]
    )
    programs.update_activity(session, SYSTEM, off.id, active=False)
    # Q3's funds can be used until 30 September: 31 days before, nothing; 30 days, the signal.
    assert run(session, at(date(2026, 8, 30))).turned_on == 0
    assert run(session, at(date(2026, 8, 31))).events == 2
    [event] = events(session, "funds.expiring", desk.acme.id)
    fund_id = event.data["fund_id"]
    assert event.data == {
        "fund_id": fund_id, "amount": 2_000_000, "currency": "USD", "program": "MDF 2026",
        "program_code": "MDF26", "period": "FY2026 Q3", "expires_on": "2026-09-30",
        "days_left": 30, "activities_fitting": 2, "activity_names": ["Trade show", "Webinar"],
    }  # fmt: skip
    assert state(session, desk.acme.id, "funds.expiring", f"fund:{fund_id}").active
    assert run(session, at(date(2026, 9, 10))).events == 0
    # The amount left shrinks: the value follows, no new event.
    programs.adjust_fund(session, SYSTEM, fund_id, -1_700_000, reason="moved", now=NOW)
    run(session, at(date(2026, 9, 11)))
    row = state(session, desk.acme.id, "funds.expiring", f"fund:{fund_id}")
    assert row.value["amount"] == 300_000
    assert row.value["activity_names"] == ["Trade show"]  # the webinar's cap is 5,000.00
    assert len(events(session, "funds.expiring")) == 2
    # After its last day the fund is no longer usable: the signal turns off.
    assert run(session, at(date(2026, 10, 1))).turned_off == 2


def approved_request(session: Session, desk: Desk) -> claims.FundRequest:
    request = claims.create_request(
        session, desk.acme_user, program_id=desk.mdf.id, activity_id=desk.webinar.id,
        title="Webinars", starts_on=date(2026, 8, 20), ends_on=date(2026, 8, 30),
        estimated_cost=600_000, requested_amount=200_000, now=NOW,
    )  # fmt: skip
    claims.approve_request(session, desk.finance, request.id, now=NOW)
    return request


def test_a_reservation_near_its_claim_deadline(session: Session, desk: Desk) -> None:
    only(session, desk)
    request = approved_request(session, desk)
    assert request.claim_deadline == date(2026, 10, 29)
    assert run(session, at(date(2026, 10, 14))).turned_on == 0  # 15 days left
    assert run(session, at(date(2026, 10, 15))).events == 1  # exactly 14
    [event] = events(session, "reservation.deadline_near")
    assert event.partner_id == desk.acme.id
    assert event.data == {
        "request_id": request.id, "reference": request.reference, "amount": 200_000,
        "currency": "USD", "program": "MDF 2026", "claim_deadline": "2026-10-29",
        "days_left": 14,
    }  # fmt: skip
    assert run(session, at(date(2026, 10, 16))).events == 0
    # A claim sent in against it settles the deadline: the signal turns off.
    when = at(date(2026, 10, 16), 14)
    claim = claims.create_claim(
        session, desk.acme_user, request_id=request.id, title="Webinars held",
        actual_cost=400_000, claimed_amount=200_000, invoice_issuer="Webinars Inc",
        invoice_number="INV-7", invoice_total=400_000, now=when,
    )  # fmt: skip
    claims.add_document(
        session, desk.acme_user, desk.store, claim.id, data=pdf_bytes("INV-7"),
        filename="invoice.pdf", kind="invoice", now=when,
    )  # fmt: skip
    assert run(session, at(date(2026, 10, 17))).turned_off == 0  # a draft does not
    claims.submit_claim(session, desk.acme_user, claim.id, now=when + DAY)
    assert run(session, at(date(2026, 10, 17), 20)).turned_off == 1
    assert not state(
        session, desk.acme.id, "reservation.deadline_near", f"request:{request.id}"
    ).active


def approve_direct(session: Session, desk: Desk, amount: int, when: datetime, n: int) -> None:
    claim = claims.create_claim(
        session, desk.acme_user, program_id=desk.mdf.id, activity_id=desk.webinar.id,
        starts_on=date(2026, 8, 1), ends_on=date(2026, 8, 10), title=f"Webinar {n}",
        actual_cost=2 * amount, claimed_amount=amount, invoice_issuer="Webinars Inc",
        invoice_number=f"INV-{n}", invoice_total=2 * amount, now=when,
    )  # fmt: skip
    claims.add_document(
        session, desk.acme_user, desk.store, claim.id, data=pdf_bytes(f"INV-{n}"),
        filename="invoice.pdf", kind="invoice", now=when,
    )  # fmt: skip
    claims.submit_claim(session, desk.acme_user, claim.id, now=when)
    claims.send_to_review(session, verification.VERIFIER, claim.id, message="look", now=when)
    claims.approve_claim(session, desk.finance, claim.id, now=when)


def test_milestones_25_and_50_are_told_once_each(session: Session, desk: Desk) -> None:
    only(session, desk, "utilisation.milestone")
    approve_direct(session, desk, 400_000, NOW, 1)  # 20% of 20,000.00
    assert run(session, NOW + DAY).turned_on == 0
    approve_direct(session, desk, 100_000, NOW + DAY, 2)  # 25%, exactly
    assert run(session, NOW + 2 * DAY).events == 1
    [quarter] = events(session, "utilisation.milestone")
    assert quarter.data == {
        "fund_id": quarter.data["fund_id"], "percent": 25, "used": 500_000,
        "total": 2_000_000, "currency": "USD", "program": "MDF 2026", "period": "FY2026 Q3",
    }  # fmt: skip
    assert run(session, NOW + 3 * DAY).events == 0
    approve_direct(session, desk, 500_000, NOW + 3 * DAY, 3)  # 50%
    assert run(session, NOW + 4 * DAY).events == 1
    assert run(session, NOW + 5 * DAY).events == 0
    assert [e.data["percent"] for e in events(session, "utilisation.milestone")] == [25, 50]
    # 50% to 100% in one go: 75 and 100 both turn on, only 100 is told.
    approve_direct(session, desk, 500_000, NOW + 5 * DAY, 4)
    approve_direct(session, desk, 500_000, NOW + 5 * DAY, 5)
    done = run(session, NOW + 6 * DAY)
    assert (done.turned_on, done.events) == (2, 1)
    assert [e.data["percent"] for e in events(session, "utilisation.milestone")] == [25, 50, 100]
    fund = quarter.data["fund_id"]
    assert state(session, desk.acme.id, "utilisation.milestone", f"fund:{fund}:75").active
    assert not state(session, desk.acme.id, "utilisation.milestone", f"fund:{fund}:75").emitted


def test_inactive_is_told_when_both_quiet_signals_are_on(session: Session, desk: Desk) -> None:
    only(session, desk, "partner.no_sign_in", "partner.no_activity")
    # Day 31: no sign-in. Day 45 (since the Q3 allocation): no activity, and so inactive.
    assert run(session, NOW + 31 * DAY).events == 2  # ACME and BOLT, no sign-in
    sign_in(session, "bo@bolt.test", NOW + 40 * DAY)  # BOLT comes back to the portal
    assert run(session, NOW + 44 * DAY).turned_off == 1
    run(session, NOW + 45 * DAY)  # (Q3's funds, a day from their end, are told of too)
    told = [(e.partner_id, e.type) for e in events(session) if e.type.startswith("partner.")]
    # ACME's no-activity turned on with inactive, which speaks for it: one message, not two.
    assert told == [
        (desk.acme.id, "partner.no_sign_in"), (desk.bolt.id, "partner.no_sign_in"),
        (desk.acme.id, "partner.inactive"), (desk.bolt.id, "partner.no_activity"),
    ]  # fmt: skip
    assert state(session, desk.acme.id, "partner.no_activity").active
    inactive = events(session, "partner.inactive")[0]
    assert inactive.data["days"] == 45 and inactive.data["last_seen"] is None


def test_quiet_signals_turning_on_with_inactive_are_not_told_twice(
    session: Session, desk: Desk
) -> None:
    only(session, desk, "partner.no_sign_in", "partner.no_activity")
    done = run(session, NOW + 60 * DAY)  # the first run finds both long quiet
    assert (done.turned_on, done.events) == (6, 2)
    assert {e.type for e in events(session)} == {"partner.inactive"}


def test_an_inactive_policy_or_a_closed_program_turns_signals_off_quietly(
    session: Session, desk: Desk
) -> None:
    only(session, desk, "partner.no_sign_in")
    assert run(session, NOW + 31 * DAY).turned_on == 2
    thresholds(session, desk, active=False)
    done = run(session, NOW + 32 * DAY)
    assert (done.turned_off, done.events) == (2, 0)
    only(session, desk, "partner.no_sign_in")
    programs.update_program(session, SYSTEM, desk.mdf.id, status="closed")
    done = run(session, NOW + 33 * DAY)
    assert (done.turned_on, done.turned_off) == (0, 0)
    programs.update_program(session, SYSTEM, desk.mdf.id, status="active")
    # On again, after it turned off: a new event with a new key.
    assert run(session, NOW + 34 * DAY).events == 2
    assert len({e.key for e in events(session)}) == 4


@pytest.mark.parametrize(
    ("values", "constraint"),
    [
        ({"since": None}, "since"),
        ({"event_key": None}, "event_key"),
        ({"kind": "partner.gone"}, "kind"),
    ],
)
def test_the_database_refuses_inconsistent_signal_rows(
    session: Session, desk: Desk, values: dict[str, Any], constraint: str
) -> None:
    only(session, desk, "partner.no_sign_in")
    run(session, at(NOW.date() + 31 * DAY))
    row = state(session, desk.acme.id, "partner.no_sign_in")
    session.commit()
    with pytest.raises(IntegrityError, match=constraint):
        session.execute(update(PartnerSignal).where(PartnerSignal.id == row.id).values(**values))
    session.rollback()


# --- thresholds ----------------------------------------------------------------------------------


def test_thresholds_default_and_are_set_by_admins_only(session: Session, desk: Desk) -> None:
    assert signals.policy_of(session, desk.mdf.id) == signals.Thresholds()
    values: dict[str, Any] = dict(
        no_sign_in_days=10, no_activity_days=20, expiry_warning_days=7, deadline_warning_days=3,
        milestones="50, 90", active=True,
    )  # fmt: skip
    for who in (desk.finance, desk.auditor, desk.acme_user):
        with pytest.raises(Forbidden):
            signals.set_policy(session, who, desk.mdf.id, **values)
    signals.set_policy(session, desk.admin, desk.mdf.id, **values, now=NOW)
    policy = signals.policy_of(session, desk.mdf.id)
    assert (policy.no_sign_in_days, policy.milestones) == (10, (50, 90))
    [entry] = session.scalars(audit.query(SYSTEM, action="program.signals")).all()
    assert json.loads(entry.after)["milestones"] == "50,90"
    # The same values again: nothing to record.
    signals.set_policy(session, desk.admin, desk.mdf.id, **values, now=NOW)
    assert len(session.scalars(audit.query(SYSTEM, action="program.signals")).all()) == 1
    for field, bad in (
        ("no_sign_in_days", 0),
        ("no_activity_days", 367),
        ("expiry_warning_days", "30"),
        ("deadline_warning_days", True),
        ("milestones", "25,150"),
        ("active", "yes"),
    ):
        with pytest.raises(ValidationError) as caught:
            signals.set_policy(session, desk.admin, desk.mdf.id, **{**values, field: bad})
        assert caught.value.details["field"] == field
    with pytest.raises(NotFound):
        signals.set_policy(session, desk.admin, 999_999, **values)
    assert session.get(SignalPolicy, desk.mdf.id).milestones == "50,90"


def test_runs_are_for_staff_who_manage_and_system_jobs(session: Session, desk: Desk) -> None:
    for who in (desk.auditor, desk.acme_user):
        with pytest.raises(Forbidden):
            signals.run_signals(session, who, now=NOW)
    assert signals.run_signals(session, desk.finance, now=NOW).programs == 1
    with pytest.raises(NotFound):
        signals.run_signals(session, desk.finance, program_id=999_999, now=NOW)


# --- the at-risk list ----------------------------------------------------------------------------


def test_the_at_risk_list_riskiest_first(session: Session, desk: Desk) -> None:
    only(session, desk, "partner.no_sign_in", "funds.expiring", "utilisation.milestone")
    core = programs.create_partner(
        session, SYSTEM, code="CORE", name="Core Partners", type="reseller", tier="gold",
        region="NA", now=NOW,
    )  # fmt: skip
    programs.allocate(
        session, SYSTEM, desk.mdf.id, core.id, 100_000, reason="Q3", day=date(2026, 8, 1), now=NOW
    )
    dana = programs.add_partner_user(
        session, SYSTEM, core.id, email="dana@core.test", name="Dana", password=PASSWORD
    )
    approve_direct(session, desk, 500_000, NOW, 1)  # ACME: a milestone (not a risk)
    day = date(2026, 9, 16)  # 32 days after NOW; Q3's funds end in 14 days
    sign_in(session, "bo@bolt.test", at(day - DAY))
    sign_in(session, dana.email, at(day - 2 * DAY))
    run(session, at(day))

    rows = signals.at_risk(session, desk.finance, now=at(day))
    assert [r.partner_code for r in rows] == ["ACME", "BOLT", "CORE"]
    acme, bolt, core_row = rows
    assert [s.kind for s in acme.signals] == ["partner.no_sign_in", "funds.expiring"]
    assert acme.risks == 2 and acme.last_sign_in is None
    assert acme.last_activity is not None  # the claim it made
    assert (acme.available, acme.expiring_amount, acme.expiring_on) == (
        1_500_000, 1_500_000, date(2026, 9, 30)
    )  # fmt: skip
    # One risk each: the more money expiring on the same day first.
    assert (bolt.risks, core_row.risks) == (1, 1)
    assert bolt.expiring_amount == 2_000_000 > core_row.expiring_amount == 100_000
    assert bolt.last_sign_in == at(day - DAY)
    assert acme.signals[1].value["days_left"] == 14
    # What finance reads on the page and in the terminal.
    assert [s.detail for s in acme.signals] == [
        "32 days (threshold 30)", "15,000.00 USD of FY2026 Q3 expires 30 September 2026",
    ]  # fmt: skip
    # Filtered by program; partners and auditors may not see it.
    assert len(signals.at_risk(session, desk.admin, desk.mdf.id, now=at(day))) == 3
    other = programs.create_program(
        session, SYSTEM, code="OTHER", name="Other", kind="mdf", currency="EUR", now=NOW
    )
    assert signals.at_risk(session, desk.finance, other.id) == []
    with pytest.raises(NotFound):
        signals.at_risk(session, desk.finance, 999_999)
    for who in (desk.acme_user, desk.bolt_user, desk.auditor):
        with pytest.raises(Forbidden):
            signals.at_risk(session, who)
    # ACME signs in: one risk left, behind BOLT's larger sum expiring on the same day.
    sign_in(session, "pat@acme.test", at(day, 14))
    run(session, at(day, 15))
    assert [r.partner_code for r in signals.at_risk(session, desk.finance, now=at(day))] == [
        "BOLT", "ACME", "CORE",
    ]  # fmt: skip
