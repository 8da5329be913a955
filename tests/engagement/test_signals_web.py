"""The at-risk partners page and API, and a program's signal thresholds on the page and the API:
who may see and change them, the list's content, bad input. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mdfledger.actor import Actor
from mdfledger.clock import utcnow
from mdfledger.engagement import signals
from mdfledger.engagement.signal_models import SignalPolicy
from mdfledger.engagement.signal_schemas import value_out
from mdfledger.engagement.signals_cli import at_risk_command, signals_command
from tests.api.test_programs_api import World, build_world, ok
from tests.web.test_programs_pages import field_error, nav_labels, sign_in, submit, text

EMAILS = {
    "admin": "admin@example.com",
    "finance": "finance@example.com",
    "auditor": "auditor@example.com",
    "partner": "ada@acme.example",
    "bolt": "bo@bolt.example",
}
THRESHOLDS = {
    "active": True, "no_sign_in_days": 30, "no_activity_days": 45, "expiry_warning_days": 30,
    "deadline_warning_days": 14, "milestones": [25, 50, 75, 100],
}  # fmt: skip
LATER = timedelta(days=31)  # nobody in the world has signed in for a month by then


@pytest.fixture
def world(
    database_url: str, tmp_path: Path, session_factory: sessionmaker[Session], actor: Actor
) -> Iterator[World]:
    yield from build_world(database_url, tmp_path, session_factory, actor)


def client(world: World, role: str | None = None) -> FlaskClient:
    browser = world.app.test_client()
    if role is not None:
        assert sign_in(browser, EMAILS[role]).status_code == 302, role
    return browser


def run_signals(world: World) -> signals.SignalRun:
    return signals.signals_job(world.sessions, now=utcnow() + LATER)


# --- the at-risk page ----------------------------------------------------------------------------


def test_finance_sees_the_at_risk_partners_with_links(world: World) -> None:
    run_signals(world)
    for role in ("finance", "admin"):
        browser = client(world, role)
        response = browser.get("/at-risk")
        page = text(response)
        assert response.status_code == 200
        assert "At-risk partners" in nav_labels(page)
        assert "Acme Networks" in page and "Bolt Systems" in page
        assert f'href="/partners/{world.acme}"' in page
        assert "No sign-in</strong>: 31 days (threshold 30)" in page
        assert "never" in page  # nobody at ACME or BOLT has signed in
    # One program only; an unknown one is a message, not a crash.
    only = text(client(world, "finance").get(f"/at-risk?program={world.mdf}"))
    assert only.count("MDF 2027") >= 2 and "Japan 2027</td>" not in only
    bad = client(world, "finance").get("/at-risk?program=999999")
    assert bad.status_code == 422 and "program 999999 not found" in text(bad)


def test_partners_and_auditors_may_not_see_the_at_risk_list(world: World) -> None:
    run_signals(world)
    for role in ("partner", "bolt", "auditor"):
        browser = client(world, role)
        assert browser.get("/at-risk").status_code == 403
        assert "At-risk partners" not in nav_labels(text(browser.get("/programs")))
    anonymous = client(world).get("/at-risk")
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]


def test_an_empty_list_says_so(world: World) -> None:
    page = text(client(world, "finance").get("/at-risk"))
    assert "No partner is at risk." in page


def test_money_in_a_signal_value_goes_out_as_decimal_strings() -> None:
    value = {"amount": 150_000, "used": 5, "total": 20, "currency": "USD", "days_left": 3}
    assert value_out(value) == {
        "amount": "1500.00", "used": "0.05", "total": "0.20", "currency": "USD", "days_left": 3
    }  # fmt: skip
    assert value_out({"amount": 5000, "currency": "JPY"}) == {"amount": "5000", "currency": "JPY"}
    assert value_out({"amount": 5, "currency": "XX"}) == {"amount": 5, "currency": "XX"}


# --- a program's thresholds on the page ----------------------------------------------------------


def test_staff_read_the_thresholds_and_admins_change_them(world: World) -> None:
    path = f"/programs/{world.mdf}/signals"
    auditor = text(client(world, "auditor").get(path))
    assert "for 30 days" in auditor and "25%, 50%, 75%, 100%" in auditor
    assert f'action="{path}"' not in auditor  # no form to change them
    assert client(world, "partner").get(path).status_code == 403
    admin = client(world, "admin")
    form = text(admin.get(path))
    assert 'name="milestones"' in form and 'value="25,50,75,100"' in form
    fields = {
        "active": "y", "no_sign_in_days": "10", "no_activity_days": "20",
        "expiry_warning_days": "7", "deadline_warning_days": "3", "milestones": "50, 90",
    }  # fmt: skip
    saved = submit(admin, path, fields)
    assert saved.status_code == 302
    with world.sessions() as session:
        row = session.get(SignalPolicy, world.mdf)
        assert row is not None and (row.no_sign_in_days, row.milestones) == (10, "50,90")
    # Finance may read but not change them.
    assert submit(client(world, "finance"), path, fields).status_code == 403
    bad = submit(admin, path, {**fields, "milestones": "25,500"})
    assert bad.status_code == 422
    assert "whole percentages from 1 to 100" in field_error(text(bad), "milestones")
    bad = submit(admin, path, {**fields, "no_sign_in_days": "0"})
    assert bad.status_code == 422
    assert "from 1 to 366" in field_error(text(bad), "no_sign_in_days")
    with world.sessions() as session:
        assert session.get(SignalPolicy, world.mdf).milestones == "50,90"  # type: ignore[union-attr]
    # Unchecked: signals off for the program.
    off = {k: v for k, v in fields.items() if k != "active"}
    assert submit(admin, path, off).status_code == 302
    with world.sessions() as session:
        assert signals.policy_of(session, world.mdf).active is False


# --- the API -------------------------------------------------------------------------------------


def test_the_at_risk_api(world: World) -> None:
    run_signals(world)
    page = ok(world.get("finance", "/api/v1/partners/at-risk"))
    assert page["total"] == len(page["items"]) >= 2
    acme = next(
        item
        for item in page["items"]
        if item["partner_id"] == world.acme and item["program_id"] == world.mdf
    )
    assert acme["partner_code"] == "ACME" and acme["currency"] == "USD"
    assert acme["last_sign_in"] is None
    kinds = [s["kind"] for s in acme["signals"]]
    assert "partner.no_sign_in" in kinds
    assert acme["available"] == "1500.00"
    [quiet] = [s for s in acme["signals"] if s["kind"] == "partner.no_sign_in"]
    assert (quiet["label"], quiet["subject"]) == ("No sign-in", "")
    assert quiet["value"] == {
        "days": 31, "threshold": 30, "last_seen": None, "program": "MDF 2027"
    }  # fmt: skip
    risks = [item["risks"] for item in page["items"]]
    assert risks == sorted(risks, reverse=True)
    # Filter, pages, an unknown program.
    mdf = ok(world.get("admin", f"/api/v1/partners/at-risk?program_id={world.mdf}"))
    assert {item["program_id"] for item in mdf["items"]} == {world.mdf}
    first = ok(world.get("finance", "/api/v1/partners/at-risk?per_page=1"))
    assert (len(first["items"]), first["pages"]) == (1, page["total"])
    missing = world.get("finance", "/api/v1/partners/at-risk?program_id=999999")
    assert missing.status_code == 404 and missing.json["error"]["code"] == "not_found"
    for role in ("partner", "bolt", "auditor"):
        refused = world.get(role, "/api/v1/partners/at-risk")
        assert refused.status_code == 403
        assert "Bolt Systems" not in refused.get_data(as_text=True)


def test_thresholds_over_the_api(world: World) -> None:
    path = f"/api/v1/programs/{world.mdf}/signals"
    assert ok(world.get("auditor", path)) == {"program_id": world.mdf, **THRESHOLDS}
    new = {**THRESHOLDS, "no_sign_in_days": 14, "milestones": [90, 50]}
    assert world.call("finance", "PUT", path, json=new).status_code == 403
    saved = ok(world.call("admin", "PUT", path, json=new))
    assert saved["no_sign_in_days"] == 14 and saved["milestones"] == [50, 90]
    for field, bad in (
        ("no_sign_in_days", 0),
        ("no_activity_days", "45"),
        ("milestones", [0]),
        ("active", "yes"),
    ):
        response = world.call("admin", "PUT", path, json={**THRESHOLDS, field: bad})
        assert response.status_code == 422, (field, response.json)
    partial = {k: v for k, v in THRESHOLDS.items() if k != "milestones"}
    assert world.call("admin", "PUT", path, json=partial).status_code == 422
    assert ok(world.get("admin", path))["milestones"] == [50, 90]
    assert world.get("admin", "/api/v1/programs/999999/signals").status_code == 404
    assert world.get("partner", path).status_code == 403


def test_the_cli_runs_signals_and_lists_the_partners_at_risk(world: World) -> None:
    runner = world.app.test_cli_runner()
    first = runner.invoke(signals_command, [])
    assert first.exit_code == 0, first.output
    assert "event(s) sent" in first.output
    with world.sessions() as session:
        signals.run_signals(session, Actor.system("test"), now=utcnow() + LATER)
        session.commit()
    listed = runner.invoke(at_risk_command, ["--program", "MDF27"])
    assert listed.exit_code == 0, listed.output
    assert "ACME in MDF27" in listed.output and "No sign-in (signal on since" in listed.output
    assert "): 31 days (threshold 30)" in listed.output
    again = runner.invoke(signals_command, ["--program", "MDF27"])
    assert again.exit_code == 0 and "0 event(s) sent" in again.output
    unknown = runner.invoke(signals_command, ["--program", "NOPE"])
    assert unknown.exit_code != 0 and "NOPE" in unknown.output
    with world.sessions() as session:
        assert session.scalars(select(SignalPolicy)).all() == []
