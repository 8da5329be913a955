"""The layout, the front page, error pages, the program pages and a partner's own funds, as a
browser sees them: sign in, CSRF tokens, forms, roles and partner scoping. On SQLite and
PostgreSQL. Pages use the real clock, so money lands in the period containing today."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.test import TestResponse

from mdfledger import auth, create_app, programs
from mdfledger.actor import Actor
from mdfledger.errors import ValidationError
from mdfledger.fields import parse_percent
from mdfledger.ledger.models import Account
from mdfledger.web import money, percent

USERS_ADMIN = Actor("user", "admin-1", "admin")  # only admins create and disable staff users

PASSWORD = "correct horse battery staple"
EMAILS = {
    "admin": "admin@example.com",
    "finance": "fin@example.com",
    "auditor": "aud@example.com",
    "partner": "acme@example.com",  # Acme Networks
    "bolt": "bolt@example.com",  # Bolt Systems
    "core": "core@example.com",  # Core IT: no funds anywhere
}
SYSTEM = Actor.system("test")


@dataclass
class Site:
    app: Flask
    sessions: sessionmaker[Session]
    mdf: int
    coop: int
    old: int  # a closed program
    acme: int
    bolt: int
    core: int
    webinar: int  # an MDF activity
    coop_activity: int

    def client(self, role: str | None = None) -> FlaskClient:
        client = self.app.test_client()
        if role is not None:
            response = sign_in(client, EMAILS[role])
            assert response.status_code == 302, f"{role} signs in"
        return client

    def count(self, model: type) -> int:
        with self.sessions() as session:
            return session.scalar(select(func.count()).select_from(model)) or 0

    def program(self, program_id: int) -> programs.Program:
        with self.sessions() as session:
            program = session.get(programs.Program, program_id)
            assert program is not None
            return program

    def activity(self, activity_id: int) -> programs.Activity:
        with self.sessions() as session:
            activity = session.get(programs.Activity, activity_id)
            assert activity is not None
            return activity

    def utilisation(self, program_id: int) -> programs.Utilisation:
        with self.sessions() as session:
            return programs.program_utilisation(session, SYSTEM, program_id)


@pytest.fixture
def site(
    database_url: str, tmp_path: Path, session_factory: sessionmaker[Session], actor: Actor
) -> Iterator[Site]:
    with session_factory() as session:
        mdf = programs.create_program(
            session, actor, code="MDF26", name="MDF 2026", kind="mdf", currency="USD",
            timezone="America/New_York", share_bp=5000, description="Demand generation",
        )  # fmt: skip
        coop = programs.create_program(
            session, actor, code="COOP26", name="Co-op 2026", kind="coop", currency="EUR",
            expiry_policy="rollover", rollover_days=30,
        )  # fmt: skip
        old = programs.create_program(
            session, actor, code="OLD25", name="Legacy 2025", kind="mdf", currency="USD"
        )
        programs.update_program(session, actor, old.id, status="closed")
        programs.set_accrual_rate(session, actor, coop.id, tier="gold", rate_bp=250)
        webinar = programs.add_activity(
            session, actor, mdf.id, code="webinar", name="Webinar", proof=["invoice", "lead_list"],
            cap=500_000, description="A hosted webinar",
        )  # fmt: skip
        coop_activity = programs.add_activity(
            session, actor, coop.id, code="print", name="Print ad", proof=["invoice"]
        )
        partners = [
            programs.create_partner(
                session, actor, code=code, name=name, type="reseller", tier=tier, region="NA"
            )
            for code, name, tier in (
                ("ACME", "Acme Networks", "gold"),
                ("BOLT", "Bolt Systems", "silver"),
                ("CORE", "Core IT", "gold"),
            )
        ]
        acme, bolt, core = partners
        programs.fund_budget(session, actor, mdf.id, 10_000_000, reason="FY budget")
        programs.allocate(session, actor, mdf.id, acme.id, 450_000, reason="Q plan")
        programs.allocate(session, actor, mdf.id, bolt.id, 123_456, reason="Q plan")
        for role in ("admin", "finance", "auditor"):
            auth.create_user(
                session,
                USERS_ADMIN,
                email=EMAILS[role],
                name=role.title(),
                role=role,
                password=PASSWORD,
            )
        for key, partner, name in (
            ("partner", acme, "Ada Acme"),
            ("bolt", bolt, "Bo Bolt"),
            ("core", core, "Cy Core"),
        ):
            programs.add_partner_user(
                session, actor, partner.id, email=EMAILS[key], name=name, password=PASSWORD
            )
        session.commit()
        ids = (mdf.id, coop.id, old.id, acme.id, bolt.id, core.id, webinar.id, coop_activity.id)
    app = create_app({"database_url": database_url, "env": "test", "instance_path": tmp_path})
    yield Site(app, session_factory, *ids)
    app.extensions["mdfledger.db"].kw["bind"].dispose()


# --- browser helpers -----------------------------------------------------------------------------


def text(response: TestResponse) -> str:
    """The page as a reader sees it: entities decoded ('usd' rather than &#39;usd&#39;)."""
    return html.unescape(response.get_data(as_text=True))


def csrf_token(client: FlaskClient, path: str = "/login") -> str:
    page = client.get(path).get_data(as_text=True)
    match = re.search(r'name="[\w-]*csrf_token" (?:type="hidden" )?value="([^"]+)"', page)
    assert match, f"{path} carries a CSRF token"
    return match.group(1)


def sign_in(client: FlaskClient, email: str) -> TestResponse:
    token = csrf_token(client)
    return client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": token})


def submit(
    client: FlaskClient,
    path: str,
    fields: dict[str, object],
    *,
    prefix: str | None = None,
    token: bool = True,
) -> TestResponse:
    """Post a form as the browser would: field names carry the form's prefix, CSRF included."""
    name = (lambda f: f"{prefix}-{f}") if prefix else (lambda f: f)
    data = {name(k): v for k, v in fields.items()}
    if token:
        data[name("csrf_token")] = csrf_token(client)
    return client.post(path, data=data)


def nav_labels(page: str) -> list[str]:
    nav = re.search(r'<nav aria-label="Main">(.*?)</nav>', page, re.S)
    return re.findall(r">([^<>]+)</a>", nav.group(1)) if nav else []


def field_error(page: str, field_id: str) -> str:
    """The message shown next to the field with this id (its aria-describedby target)."""
    error_id = re.escape(f"{field_id}-error")
    match = re.search(rf'<p class="field-error" id="{error_id}">(.*?)</p>', page)
    assert match, f"an error next to {field_id}"
    assert re.search(rf'aria-describedby="[^"]*{error_id}"', page), "the field points to it"
    return html.unescape(match.group(1))


def without_tokens(response: TestResponse) -> str:
    """The page without its CSRF tokens, which carry a timestamp, and its request id."""
    page = response.get_data(as_text=True).replace(response.headers["X-Request-Id"], "<id>")
    return re.sub(r'(csrf_token"[^>]*value=")[^"]*', r"\1", page)


def expected_nav(app: Flask, labels: list[tuple[str, str]]) -> list[str]:
    """Links whose pages exist in this app (other engineers' pages may not be there yet)."""
    return [label for label, endpoint in labels if endpoint in app.view_functions]


# --- filters and helpers -------------------------------------------------------------------------


def test_money_is_exact_with_thousands_separators_and_its_currency() -> None:
    assert money(1_234_567, "USD") == "12,345.67 USD"
    assert money(-5, "USD") == "-0.05 USD"
    assert money(0, "EUR") == "0.00 EUR"
    assert money(1_234_567, "JPY") == "1,234,567 JPY"
    assert money(1_234_567, "BHD") == "1,234.567 BHD"
    # Beyond a float's 15-16 digits, still to the cent.
    assert money(12_345_678_901_234_567, "USD") == "123,456,789,012,345.67 USD"
    with pytest.raises(TypeError):
        money(12.5, "USD")  # type: ignore[arg-type]


def test_percentages_read_and_show_exactly() -> None:
    assert [percent(bp) for bp in (10_000, 5000, 1250, 1, 0, None)] == [
        "100%", "50%", "12.5%", "0.01%", "0%", "\u2013",
    ]  # fmt: skip
    assert parse_percent("12.5", "share") == 1250
    assert parse_percent(" 50 % ", "share") == 5000
    assert parse_percent("0.01", "share") == 1
    assert parse_percent("12.50", "share") == 1250
    for bad, message in (
        ("150", "from 0.01% to 100%"),
        ("0", "from 0.01% to 100%"),
        ("12.345", "at most 2 decimal places"),
        ("-5", "a percentage"),
        ("1e2", "a percentage"),
        ("", "a percentage"),
        ("\u0665\u0660", "a percentage"),  # Arabic-Indic 50: digits, not ASCII ones
    ):
        with pytest.raises(ValidationError, match=message) as caught:
            parse_percent(bad, "share")
        assert caught.value.details == {"field": "share"}
    assert parse_percent("0", "rate", low=Decimal(0)) == 0


# --- layout, navigation and the front page -------------------------------------------------------

NAV = {
    "admin": [
        ("Claims", "web.claims"), ("Requests", "web.requests"), ("Payouts", "web.payouts_page"),
        ("Programs", "web.programs"), ("Partners", "web.partners"),
        ("Statements", "web.statements"), ("Allocate", "web.allocate"),
        ("Imports", "web.imports"), ("At-risk partners", "web.at_risk"),
        ("Integrations", "web.integrations"), ("Dead letters", "web.dead_letters"),
        ("Users", "auth.users"), ("Audit log", "web.audit_log"), ("Exports", "web.exports_page"),
    ],
    "finance": [
        ("Claims", "web.claims"), ("Requests", "web.requests"), ("Payouts", "web.payouts_page"),
        ("Programs", "web.programs"), ("Partners", "web.partners"),
        ("Statements", "web.statements"), ("Allocate", "web.allocate"),
        ("Imports", "web.imports"), ("At-risk partners", "web.at_risk"),
        ("Integrations", "web.integrations"), ("Dead letters", "web.dead_letters"),
        ("Audit log", "web.audit_log"), ("Exports", "web.exports_page"),
    ],
    "auditor": [
        ("Claims", "web.claims"), ("Requests", "web.requests"), ("Payouts", "web.payouts_page"),
        ("Programs", "web.programs"), ("Partners", "web.partners"),
        ("Statements", "web.statements"),
        ("Integrations", "web.integrations"), ("Integrity", "web.integrity_page"),
        ("Audit log", "web.audit_log"), ("Exports", "web.exports_page"),
    ],
    "partner": [
        ("My funds", "web.funds"), ("My statement", "web.statements"),
        ("My requests", "web.requests"), ("My claims", "web.claims"),
        ("Messages", "web.messages"), ("My payouts", "web.payouts_page"),
        ("Payout details", "web.my_payout_details"), ("Programs", "web.programs"),
        ("My exports", "web.exports_page"),
    ],
}  # fmt: skip


@pytest.mark.parametrize("role", ["admin", "finance", "auditor", "partner"])
def test_each_role_gets_its_navigation_and_the_layouts_landmarks(site: Site, role: str) -> None:
    client = site.client(role)
    page = client.get("/programs").get_data(as_text=True)
    assert nav_labels(page) == expected_nav(site.app, NAV[role])
    assert "Programs" in nav_labels(page)
    for never in {"My funds", "Partners", "Allocate", "Imports", "Audit log"} - {
        label for label, _ in NAV[role]
    }:
        assert never not in nav_labels(page)
    # The current page is marked, and only it.
    assert re.findall(r'<a href="([^"]+)" aria-current="page">', page) == ["/programs"]
    # Landmarks, the skip link, the stylesheet, who is signed in and the way out.
    assert '<a class="skip-link" href="#main">' in page
    assert '<main id="main"' in page and "<header" in page
    assert 'aria-live="polite"' in page
    assert "/assets/app.css" in page
    assert f"({role})" in page and 'action="/logout"' in page
    css = client.get("/assets/app.css")
    assert css.status_code == 200 and ":focus-visible" in css.get_data(as_text=True)
    # Inside a section, its link is marked as the current location too.
    detail = client.get(f"/programs/{site.mdf}").get_data(as_text=True)
    assert re.findall(r'<a href="([^"]+)" aria-current="true">', detail) == ["/programs"]


def test_anonymous_visitors_see_no_navigation_on_the_sign_in_page(site: Site) -> None:
    page = site.client().get("/login").get_data(as_text=True)
    assert nav_labels(page) == []
    assert "Sign out" not in page
    assert '<label for="email">' in page and '<label for="password">' in page


def test_the_front_page_sends_each_user_where_they_start(site: Site) -> None:
    assert site.client().get("/").headers["Location"] == "/login"
    for role, target in (
        ("admin", "/programs"),
        ("finance", "/programs"),
        ("auditor", "/programs"),
        ("partner", "/funds"),
    ):
        response = site.client(role).get("/")
        assert response.status_code == 302
        assert response.headers["Location"] == target
        assert f'href="{target}"' in response.get_data(as_text=True)  # the note links there too
    # Staff have no "my funds": the program pages are theirs.
    assert site.client("finance").get("/funds").headers["Location"] == "/programs"


def test_health_still_answers_in_json(site: Site) -> None:
    response = site.client().get("/healthz")
    assert response.status_code == 200
    assert response.json["status"] == "ok"


# --- the program list ----------------------------------------------------------------------------


def test_staff_see_every_program_with_its_utilisation(site: Site) -> None:
    page = text(site.client("auditor").get("/programs"))
    for name in ("MDF 2026", "Co-op 2026", "Legacy 2025"):
        assert name in page
    assert "<caption" in page and '<th scope="col" class="num">Utilisation</th>' in page
    assert "100,000.00 USD" in page  # funded
    assert "5,734.56 USD" in page  # allocated: 4,500.00 + 1,234.56
    assert "94,265.44 USD" in page  # unallocated
    assert "Quarterly" in page and "EUR" in page
    assert "New program" not in page  # auditors change nothing


def test_partners_see_active_programs_without_figures(site: Site) -> None:
    page = text(site.client("partner").get("/programs"))
    assert "MDF 2026" in page and "Co-op 2026" in page
    assert "Legacy 2025" not in page  # closed
    for figure in ("100,000.00", "5,734.56", "1,234.56", "4,500.00", "Utilisation"):
        assert figure not in page


# --- a new program -------------------------------------------------------------------------------

GOOD_PROGRAM = {
    "code": "MDF27",
    "name": "MDF 2027",
    "description": "Next year's fund",
    "kind": "mdf",
    "currency": "EUR",
    "timezone": "Europe/Berlin",
    "fiscal_start_month": "2",
    "period_months": "6",
    "claim_deadline_days": "45",
    "share": "12.5",
    "expiry_policy": "rollover",
    "rollover_days": "15",
}


def test_a_program_is_created_through_the_form_and_listed(site: Site) -> None:
    client = site.client("admin")
    form = client.get("/programs/new")
    assert form.status_code == 200
    page = form.get_data(as_text=True)
    for field in GOOD_PROGRAM:
        assert f'<label for="{field}">' in page, f"{field} has a label"
    assert '<datalist id="timezones">' in page
    response = submit(client, "/programs/new", GOOD_PROGRAM)
    assert response.status_code == 302
    with site.sessions() as session:
        program = programs.program_by_code(session, SYSTEM, "MDF27")
        assert (program.share_bp, program.period_months, program.fiscal_start_month) == (1250, 6, 2)
        assert (program.currency, program.timezone, program.rollover_days) == (
            "EUR", "Europe/Berlin", 15
        )  # fmt: skip
        assert program.claim_deadline_days == 45
    assert response.headers["Location"] == f"/programs/{program.id}"
    shown = text(client.get(response.headers["Location"]))
    assert "Program MDF27 (MDF 2027) created." in shown
    assert "12.5% of eligible costs" in shown
    assert "Half-yearly" in shown and "February" in shown
    assert "Roll over: usable for 15 days after period end" in shown
    assert "MDF 2027" in text(client.get("/programs"))


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"share": "150"}, "share", "share must be from 0.01% to 100%"),
        ({"share": "33.333"}, "share", "at most 2 decimal places"),
        ({"share": "half"}, "share", "a percentage such as 50 or 12.5"),
        ({"rollover_days": "0"}, "rollover_days", "rolling over needs a number of days"),
        ({"rollover_days": ""}, "rollover_days", "rolling over needs a number of days"),
        ({"timezone": "Mars/Olympus"}, "timezone", "unknown timezone 'Mars/Olympus'"),
        ({"currency": "usd"}, "currency", "'usd' is not an ISO 4217 currency code"),
        ({"code": "MDF26"}, "code", "a program with code MDF26 already exists"),
        ({"code": "no spaces"}, "code", "code must be 1-40 letters"),
        ({"name": "   "}, "name", "name is required"),
        ({"claim_deadline_days": "soon"}, "claim_deadline_days", "Not a valid integer value"),
        ({"claim_deadline_days": "-1"}, "claim_deadline_days", "from 0 to 3660"),
        ({"period_months": "5"}, "period_months", "Not a valid choice"),
    ],
)
def test_a_bad_program_form_comes_back_with_the_message_and_creates_nothing(
    site: Site, changes: dict[str, str], field: str, message: str
) -> None:
    client = site.client("finance")
    before = (site.count(programs.Program), site.count(Account))
    response = submit(client, "/programs/new", {**GOOD_PROGRAM, **changes})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert message in field_error(page, field)
    assert f'id="{field}"' in page and 'aria-invalid="true"' in page
    # What was typed is still there to correct.
    assert 'value="Europe/Berlin"' in page or changes.get("timezone")
    assert (site.count(programs.Program), site.count(Account)) == before


def test_a_form_without_its_csrf_token_is_refused_and_changes_nothing(site: Site) -> None:
    client = site.client("admin")
    before = site.count(programs.Program)
    response = submit(client, "/programs/new", GOOD_PROGRAM, token=False)
    assert response.status_code == 400
    assert response.content_type.startswith("text/html")
    assert "security token is missing or has expired" in text(response)
    response = submit(client, f"/programs/{site.mdf}/budget", {"amount": "1"}, prefix="budget",
                      token=False)  # fmt: skip
    assert response.status_code == 400
    assert site.count(programs.Program) == before
    assert site.utilisation(site.mdf).budget_funded == 10_000_000


# --- one program ---------------------------------------------------------------------------------


def test_staff_see_settings_catalog_and_each_partners_utilisation(site: Site) -> None:
    with site.sessions() as session:
        program = session.get(programs.Program, site.mdf)
        period = programs.period_of(program, programs.today(program))
    page = text(site.client("auditor").get(f"/programs/{site.mdf}"))
    assert f"{period.label}: " in page  # the current fiscal period, with its dates
    assert "America/New_York" in page and "50% of eligible costs" in page
    assert "Demand generation" in page
    assert "Webinar" in page and "Invoice, Lead list" in page and "5,000.00 USD" in page
    assert "Acme Networks" in page and "Bolt Systems" in page
    assert "4,500.00 USD" in page and "1,234.56 USD" in page
    assert "Core IT" not in page  # no funds here
    if "web.partner" in site.app.view_functions:
        assert f'href="/partners/{site.acme}">Acme Networks</a>' in page
    # Auditors get no forms.
    for form in ("Record budget change", "Add activity", "Close program", "Deactivate"):
        assert form not in page


def test_coop_programs_show_their_accrual_rates(site: Site) -> None:
    page = text(site.client("partner").get(f"/programs/{site.coop}"))
    assert "Accrual rates" in page and "gold" in page and "2.5%" in page
    assert "Roll over: usable for 30 days after period end" in page
    assert "Accrual rates" not in text(site.client("partner").get(f"/programs/{site.mdf}"))


def test_a_partner_sees_the_catalog_and_settings_but_no_other_partners(site: Site) -> None:
    client = site.client("partner")
    page = text(client.get(f"/programs/{site.mdf}"))
    assert "Webinar" in page and "MDF 2026" in page
    for other in ("Bolt Systems", "Core IT", "Acme Networks", "1,234.56", "100,000.00", "4,500.00"):
        assert other not in page
    assert "utilisation" not in page.lower()
    assert "Record budget change" not in page


def test_finance_funds_and_takes_back_budget_through_the_form(site: Site) -> None:
    client = site.client("finance")
    page = client.get(f"/programs/{site.mdf}").get_data(as_text=True)
    key = re.search(r'name="budget-key" type="hidden" value="([0-9a-f]{32})"', page)
    assert key, "the form carries its own idempotency key"
    fields = {"amount": "2,500.50", "reason": "Top-up", "key": key.group(1)}
    response = submit(client, f"/programs/{site.mdf}/budget", fields, prefix="budget")
    assert response.status_code == 302
    assert "Added 2,500.50 USD to the MDF26 budget." in text(client.get(f"/programs/{site.mdf}"))
    assert site.utilisation(site.mdf).budget_funded == 10_250_050
    # The same form sent twice (a double click, a reload) funds once.
    again = submit(client, f"/programs/{site.mdf}/budget", fields, prefix="budget")
    assert again.status_code == 302
    assert "already recorded" in text(client.get(f"/programs/{site.mdf}"))
    assert site.utilisation(site.mdf).budget_funded == 10_250_050
    # A negative amount takes unallocated budget back.
    back = {"amount": "-2,500.50", "reason": "Trim"}
    assert submit(client, f"/programs/{site.mdf}/budget", back, prefix="budget").status_code == 302
    assert "Took 2,500.50 USD back from the MDF26 budget." in text(
        client.get(f"/programs/{site.mdf}")
    )
    assert site.utilisation(site.mdf).budget_funded == 10_000_000


@pytest.mark.parametrize(
    ("amount", "reason", "field", "message"),
    [
        ("12.345", "r", "amount", "more than 2 decimal places for USD"),
        ("ten", "r", "amount", "is not a decimal amount"),
        ("1,50", "r", "amount", "is not a decimal amount"),  # a decimal comma is not 150
        ("1,2345.00", "r", "amount", "is not a decimal amount"),
        ("", "r", "amount", "enter an amount in USD"),
        ("0", "r", "amount", "non-zero amount"),
        ("-100000", "r", "amount", "MDF26 budget has 94265.44 USD available"),
        ("10", " ", "reason", "reason is required"),
    ],
)
def test_a_bad_budget_change_comes_back_with_the_message(
    site: Site, amount: str, reason: str, field: str, message: str
) -> None:
    client = site.client("admin")
    fields = {"amount": amount, "reason": reason}
    response = submit(client, f"/programs/{site.mdf}/budget", fields, prefix="budget")
    assert response.status_code == 422
    assert message in field_error(response.get_data(as_text=True), f"budget-{field}")
    assert site.utilisation(site.mdf).budget_funded == 10_000_000


def test_closed_programs_take_no_budget_and_the_message_says_so(site: Site) -> None:
    client = site.client("finance")
    fields = {"amount": "10", "reason": "late"}
    response = submit(client, f"/programs/{site.old}/budget", fields, prefix="budget")
    assert response.status_code == 422
    assert "program OLD25 is closed" in text(response)
    assert site.utilisation(site.old).budget_funded == 0


def test_activities_are_added_edited_and_deactivated_through_forms(site: Site) -> None:
    client = site.client("finance")
    fields = {
        "code": "event",
        "name": "Trade show",
        "description": "A booth",
        "proof": ["invoice", "photos"],
        "cap": "7,500.00",
    }
    response = submit(client, f"/programs/{site.mdf}/activities", fields, prefix="activity")
    assert response.status_code == 302
    page = text(client.get(f"/programs/{site.mdf}"))
    assert "Activity Trade show added to the catalog." in page
    assert "Invoice, Photos" in page and "7,500.00 USD" in page
    with site.sessions() as session:
        event = session.scalar(select(programs.Activity).where(programs.Activity.code == "event"))
        assert event is not None and event.cap == 750_000
    # Edit: no cap any more, different proof.
    edit = {"name": "Trade show booth", "description": "", "proof": ["invoice"], "cap": ""}
    path = f"/programs/{site.mdf}/activities/{event.id}"
    assert submit(client, path, edit, prefix=f"activity-{event.id}").status_code == 302
    changed = site.activity(event.id)
    assert (changed.name, changed.cap, changed.proof) == ("Trade show booth", None, "invoice")
    # Deactivate: partners no longer see it; reactivate.
    toggle = submit(client, path, {"set_active": "false"}, prefix=f"toggle-{event.id}")
    assert toggle.status_code == 302
    assert site.activity(event.id).active is False
    assert "Trade show booth" not in text(site.client("partner").get(f"/programs/{site.mdf}"))
    assert "Reactivate" in text(client.get(f"/programs/{site.mdf}"))
    submit(client, path, {"set_active": "true"}, prefix=f"toggle-{event.id}")
    assert site.activity(event.id).active is True


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"proof": []}, "proof", "name at least one kind of proof"),
        ({"cap": "10.001"}, "cap", "more than 2 decimal places"),
        ({"cap": "0"}, "cap", "cap must be a positive amount"),
        ({"code": "webinar"}, "code", "MDF26 already has an activity webinar"),
        ({"proof": ["invoice", "fax"]}, "proof", "'fax' is not a valid choice"),
    ],
)
def test_a_bad_activity_comes_back_with_the_message_and_adds_nothing(
    site: Site, changes: dict[str, object], field: str, message: str
) -> None:
    client = site.client("admin")
    fields = {"code": "event", "name": "Trade show", "proof": ["invoice"], "cap": "", **changes}
    before = site.count(programs.Activity)
    response = submit(client, f"/programs/{site.mdf}/activities", fields, prefix="activity")
    assert response.status_code == 422
    assert message in field_error(response.get_data(as_text=True), f"activity-{field}")
    assert site.count(programs.Activity) == before


def test_a_bad_activity_edit_comes_back_open_with_the_message(site: Site) -> None:
    client = site.client("admin")
    path = f"/programs/{site.mdf}/activities/{site.webinar}"
    edit = {"name": "Webinar", "proof": [], "cap": "5000"}
    response = submit(client, path, edit, prefix=f"activity-{site.webinar}")
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "name at least one kind of proof" in field_error(page, f"activity-{site.webinar}-proof")
    assert "<details open>" in page
    assert site.activity(site.webinar).proof == "invoice,lead_list"


def test_an_activity_is_changed_only_under_its_own_program(site: Site) -> None:
    client = site.client("admin")
    # The co-op program's activity, under the MDF program's address: not found.
    path = f"/programs/{site.mdf}/activities/{site.coop_activity}"
    edit = {"name": "Hijacked", "proof": ["invoice"], "cap": ""}
    response = submit(client, path, edit, prefix=f"activity-{site.coop_activity}")
    assert response.status_code == 404
    assert response.content_type.startswith("text/html")
    toggle = submit(client, path, {"set_active": "false"}, prefix=f"toggle-{site.coop_activity}")
    assert toggle.status_code == 404
    activity = site.activity(site.coop_activity)
    assert (activity.name, activity.active) == ("Print ad", True)
    missing = f"/programs/{site.mdf}/activities/999999"
    assert submit(client, missing, edit, prefix="activity-999999").status_code == 404


def test_coop_rates_are_set_through_the_form(site: Site) -> None:
    client = site.client("finance")
    fields = {"tier": "silver", "product_line": "storage", "rate": "1.75"}
    response = submit(client, f"/programs/{site.coop}/rates", fields, prefix="rate")
    assert response.status_code == 302
    page = text(client.get(f"/programs/{site.coop}"))
    assert "Accrual rate for silver, storage set." in page and "1.75%" in page
    bad = submit(client, f"/programs/{site.coop}/rates", {**fields, "rate": "101"}, prefix="rate")
    assert bad.status_code == 422
    assert "from 0% to 100%" in field_error(bad.get_data(as_text=True), "rate-rate")
    # An MDF program accrues nothing: the refusal names no field of the form, so it is on top.
    mdf = submit(client, f"/programs/{site.mdf}/rates", fields, prefix="rate")
    assert mdf.status_code == 422
    assert "only co-op programs accrue on purchases" in text(mdf)
    with site.sessions() as session:
        rates = session.scalars(select(programs.AccrualRate.rate_bp)).all()
        assert sorted(rates) == [175, 250]


def test_a_program_is_closed_and_reopened(site: Site) -> None:
    client = site.client("admin")
    path = f"/programs/{site.mdf}/status"
    assert submit(client, path, {"status": "closed"}, prefix="status").status_code == 302
    assert "Program MDF26 closed." in text(client.get(f"/programs/{site.mdf}"))
    assert site.program(site.mdf).status == "closed"
    partner = site.client("bolt")
    assert "MDF 2026" not in text(partner.get("/programs"))
    assert partner.get(f"/programs/{site.mdf}").status_code == 404
    assert submit(client, path, {"status": "active"}, prefix="status").status_code == 302
    assert site.program(site.mdf).status == "active"
    bad = submit(client, path, {"status": "deleted"}, prefix="status")
    assert bad.status_code == 422 and "status must be one of active, closed" in text(bad)


# --- my funds ------------------------------------------------------------------------------------


def test_a_partner_sees_their_own_funds_and_nothing_of_other_partners(site: Site) -> None:
    with site.sessions() as session:
        acme_user = Actor("user", "acme", "partner", site.acme)
        (breakdown,) = programs.partner_breakdowns(session, acme_user, site.acme)
        (line,) = breakdown.funds
    response = site.client("partner").get("/funds")
    assert response.status_code == 200
    page = text(response)
    assert "Acme Networks" in page and "MDF 2026" in page
    assert "4,500.00 USD" in page  # allocated and available
    assert "0.00 USD" in page  # reserved, approved, paid, expired
    day = line.available_until
    last_day = f"{day.day} {day.strftime('%B')} {day.year}"
    assert f"Expiring next: 4,500.00 USD on {last_day} ({line.period_label})" in " ".join(
        re.sub(r"<[^>]+>", "", page).split()
    )
    assert f"4,500.00 USD of your {line.period_label} funds can be used until {last_day}" in page
    assert "<caption>MDF 2026: funds by fiscal period</caption>" in page
    for other in ("Bolt Systems", "1,234.56", "Core IT", "Co-op 2026", "100,000.00", "5,734.56"):
        assert other not in page
    bolt = text(site.client("bolt").get("/funds"))
    assert "1,234.56 USD" in bolt and "4,500.00" not in bolt and "Acme" not in bolt


def test_a_partner_without_funds_gets_a_plain_empty_state(site: Site) -> None:
    page = text(site.client("core").get("/funds"))
    assert "You have no funds yet." in page
    assert "MDF 2026" not in page


def test_a_partner_still_sees_their_funds_when_one_of_their_programs_closes(site: Site) -> None:
    with site.sessions() as session:
        programs.update_program(session, SYSTEM, site.mdf, status="closed")
        session.commit()
    response = site.client("partner").get("/funds")
    assert response.status_code == 200


# --- who may do what -----------------------------------------------------------------------------


def _pages(site: Site) -> dict[str, tuple[str, str, dict[str, object], str | None]]:
    """name -> (method, path, form fields, prefix). Fields are empty: refusals are checked first."""
    mdf = site.mdf
    return {
        "list": ("GET", "/programs", {}, None),
        "new form": ("GET", "/programs/new", {}, None),
        "detail": ("GET", f"/programs/{mdf}", {}, None),
        "funds": ("GET", "/funds", {}, None),
        "create": ("POST", "/programs/new", {}, None),
        "budget": ("POST", f"/programs/{mdf}/budget", {}, "budget"),
        "add activity": ("POST", f"/programs/{mdf}/activities", {}, "activity"),
        "edit activity": (
            "POST",
            f"/programs/{mdf}/activities/{site.webinar}",
            {},
            f"activity-{site.webinar}",
        ),
        "rates": ("POST", f"/programs/{site.coop}/rates", {}, "rate"),
        "status": ("POST", f"/programs/{mdf}/status", {}, "status"),
    }


EXPECTED = {
    # role: (page -> status); 422 is an empty form refused by the service, i.e. let through
    "partner": {
        "list": 200, "new form": 403, "detail": 200, "funds": 200, "create": 403, "budget": 403,
        "add activity": 403, "edit activity": 403, "rates": 403, "status": 403,
    },
    "auditor": {
        "list": 200, "new form": 403, "detail": 200, "funds": 302, "create": 403, "budget": 403,
        "add activity": 403, "edit activity": 403, "rates": 403, "status": 403,
    },
    "finance": {
        "list": 200, "new form": 200, "detail": 200, "funds": 302, "create": 422, "budget": 422,
        "add activity": 422, "edit activity": 422, "rates": 422, "status": 422,
    },
}  # fmt: skip
EXPECTED["admin"] = EXPECTED["finance"]


@pytest.mark.parametrize("role", [None, "partner", "auditor", "finance", "admin"])
def test_who_may_see_and_change_what(site: Site, role: str | None) -> None:
    client = site.client(role)
    before = (site.count(programs.Program), site.count(programs.Activity), site.count(Account))
    for name, (method, path, fields, prefix) in _pages(site).items():
        if method == "GET":
            response = client.get(path)
        else:
            response = submit(client, path, fields, prefix=prefix)
        if role is None:
            assert response.status_code == 302, name
            assert response.headers["Location"].startswith("/login?next="), name
            continue
        assert response.status_code == EXPECTED[role][name], f"{role} {name}"
        assert response.content_type.startswith("text/html"), name
        if response.status_code == 403:
            assert "Your role does not allow this page or action." in text(response)
    assert (
        site.count(programs.Program), site.count(programs.Activity), site.count(Account)
    ) == before  # fmt: skip
    assert site.program(site.mdf).status == "active"


# --- error pages ---------------------------------------------------------------------------------


def test_not_found_says_nothing_about_whether_the_program_exists(site: Site) -> None:
    partner = site.client("partner")
    closed = partner.get(f"/programs/{site.old}")  # exists, but not for partners
    missing = partner.get("/programs/987654")
    assert closed.status_code == missing.status_code == 404
    assert without_tokens(closed) == without_tokens(missing)
    assert "Legacy" not in text(closed) and "OLD25" not in text(closed)
    page = text(missing)
    assert "<h1>Not found</h1>" in page and "987654" not in page
    assert nav_labels(page) == expected_nav(site.app, NAV["partner"])  # still in the layout
    staff = site.client("finance")
    for path in ("/programs/987654", "/programs/99999999999999999999999", "/programs/x", "/nope"):
        response = staff.get(path)
        assert response.status_code == 404, path
        assert "<h1>Not found</h1>" in text(response)


def test_a_wrong_method_gets_the_405_page(site: Site) -> None:
    client = site.client("finance")
    response = client.get(f"/programs/{site.mdf}/budget")
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]
    assert "<h1>Method not allowed</h1>" in text(response)
    assert client.delete("/programs").status_code == 405


def test_a_body_too_large_gets_the_413_page(site: Site) -> None:
    site.app.config["MAX_CONTENT_LENGTH"] = 1024
    client = site.client("finance")
    token = csrf_token(client)
    response = client.post("/programs/new", data={"csrf_token": token, "description": "x" * 5000})
    assert response.status_code == 413
    assert "<h1>Upload too large</h1>" in text(response)
    assert site.count(programs.Program) == 3


def test_a_crash_gets_the_500_page_without_its_details(site: Site) -> None:
    @site.app.get("/crash")
    def crash() -> str:
        raise RuntimeError("secret stack detail")

    site.app.config["PROPAGATE_EXCEPTIONS"] = False
    response = site.client("auditor").get("/crash")
    assert response.status_code == 500
    page = text(response)
    assert "<h1>Something went wrong</h1>" in page
    assert "secret stack detail" not in page


def test_the_api_keeps_its_json_errors(site: Site) -> None:
    with site.sessions() as session:
        user = auth.user_by_email(session, EMAILS["finance"])
        assert user is not None
        secret = auth.issue_token(session, SYSTEM, user.id, name="books").secret
        session.commit()
    client = site.client("finance")  # a browser session is no API token
    assert client.get("/api/v1/me").status_code == 401
    assert client.get("/api/v1/me").json["error"]["code"] == "unauthorized"
    headers = {"Authorization": f"Bearer {secret}"}
    missing = client.get("/api/v1/no-such-thing", headers=headers)
    assert missing.status_code == 404
    assert missing.json["error"]["code"] == "not_found"
    wrong = client.delete("/api/v1/me", headers=headers)
    assert wrong.status_code == 405
    assert wrong.json["error"]["code"] == "method_not_allowed"
