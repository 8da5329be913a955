"""Browser tests: the real app served on loopback, driven by headless Chromium via Playwright.

Debian's chromium (/usr/bin/chromium) is used as is: Playwright never downloads a browser here.
Without chromium or Playwright these tests skip and say why (fail under
MDFLEDGER_TEST_REQUIRE_SERVICES=1). They run on SQLite only: the pages' behaviour on PostgreSQL
is covered by tests/web with the test client.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.serving import make_server

from mdfledger import auth, claims, create_app, programs, storage
from mdfledger.actor import Actor
from mdfledger.db import make_engine, make_session_factory
from tests.conftest import skip_or_fail
from tests.samples import pdf_bytes, submit_checked

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
VIEWPORT = {"width": 1280, "height": 900}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
TIMEOUT_MS = 10_000  # a page of this app answers in well under a second on loopback

PASSWORD = "correct horse battery staple"
EMAILS = {
    "partner": "pat@acme.test",
    "finance": "fin@vendor.test",
    "finance2": "fay@vendor.test",
}
SETUP = Actor.system("browser-tests")
ADMIN = Actor("user", "admin-1", "admin")  # only admins create staff users


@pytest.fixture(scope="package")
def chromium() -> Iterator[Any]:
    """One headless Chromium for these tests, each of which opens its own contexts; closed
    (with Playwright's event loop) before the rest of the suite runs."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("browser tests need Playwright (pip install -e '.[test]')")
    if not CHROMIUM.exists():
        skip_or_fail(f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        browser.close()


@dataclass
class Site:
    """The seeded app, served on loopback."""

    url: str
    app: Flask
    sessions: sessionmaker[Session]
    program_id: int
    program_name: str
    activity_id: int
    activity_name: str
    partner_id: int
    partner_name: str
    today: date  # in the program's time zone: what the pages call today

    def actor(self, role: str) -> Actor:
        with self.sessions() as session:
            user = auth.user_by_email(session, EMAILS[role])
            assert user is not None
            return Actor("user", str(user.id), user.role, user.partner_id)

    def draft_claim(self, *, submit: bool = False) -> int:
        """A draft claim against an approved request, made through the services for tests
        that start on the claim page; with `submit`, its invoice attached and submitted."""
        partner, finance = self.actor("partner"), self.actor("finance")
        with self.sessions() as session:
            request = claims.create_request(
                session, partner, program_id=self.program_id, activity_id=self.activity_id,
                title="Spring webinar", starts_on=self.today - timedelta(days=9),
                ends_on=self.today - timedelta(days=2), estimated_cost=400_000,
                requested_amount=200_000,
            )  # fmt: skip
            claims.approve_request(session, finance, request.id)
            claim = claims.create_claim(
                session, partner, request_id=request.id, title="Spring webinar held",
                actual_cost=400_000, claimed_amount=200_000, invoice_issuer="Webinars Inc",
                invoice_number="INV-77", invoice_total=400_000,
            )  # fmt: skip
            if submit:
                claims.add_document(
                    session, partner, self.app.extensions[storage.APP_KEY], claim.id,
                    data=pdf_bytes("INV-77"), filename="invoice-77.pdf", kind="invoice",
                )  # fmt: skip
                submit_checked(session, partner, self.app.extensions[storage.APP_KEY], claim.id)
            session.commit()
            return claim.id


def _seed(sessions: sessionmaker[Session]) -> dict[str, Any]:
    with sessions() as session:
        program = programs.create_program(
            session, SETUP, code="MDF26", name="MDF 2026", kind="mdf", currency="USD",
            timezone="America/New_York", claim_deadline_days=60, share_bp=5000,
            direct_claims=False,
        )  # fmt: skip
        activity = programs.add_activity(
            session, SETUP, program.id, code="WEBINAR", name="Webinar", proof=["invoice"],
            cap=500_000,
        )  # fmt: skip
        partner = programs.create_partner(
            session, SETUP, code="ACME", name="Acme Networks", type="reseller", tier="gold",
            region="NA",
        )  # fmt: skip
        programs.fund_budget(session, SETUP, program.id, 10_000_000, reason="FY budget")
        programs.allocate(session, SETUP, program.id, partner.id, 2_000_000, reason="Q plan")
        programs.add_partner_user(
            session, SETUP, partner.id, email=EMAILS["partner"], name="Pat Acme",
            password=PASSWORD,
        )  # fmt: skip
        for role, name in (("finance", "Fin Vendor"), ("finance2", "Fay Vendor")):
            auth.create_user(
                session, ADMIN, email=EMAILS[role], name=name, role="finance", password=PASSWORD
            )
        seeded = {
            "program_id": program.id, "program_name": program.name,
            "activity_id": activity.id, "activity_name": activity.name,
            "partner_id": partner.id, "partner_name": partner.name,
            "today": programs.today(program),
        }  # fmt: skip
        session.commit()
        return seeded


@pytest.fixture
def site(tmp_path: Path, sqlite_template: Path) -> Iterator[Site]:
    """A program (no direct claims), an activity needing an invoice, a funded partner with a
    user, two finance users; the app on 127.0.0.1 in a thread, shut down afterwards."""
    database = tmp_path / "browser.sqlite3"
    shutil.copyfile(sqlite_template, database)
    database_url = f"sqlite:///{database}"
    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    seeded = _seed(sessions)
    app = create_app(
        {"database_url": database_url, "env": "test", "instance_path": tmp_path / "instance",
         "proof_dir": tmp_path / "proof"}
    )  # fmt: skip
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield Site(f"http://127.0.0.1:{server.server_port}", app, sessions, **seeded)
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        app.extensions["mdfledger.db"].kw["bind"].dispose()
        engine.dispose()


@pytest.fixture
def open_as(chromium: Any, site: Site) -> Iterator[Callable[[str], Any]]:
    """open_as("partner") -> a page in a fresh browser context (its own cookies), signed in.
    Afterwards: no page broke the Content-Security-Policy (Chromium says so in the console)."""
    contexts = []
    refused: list[str] = []

    def open_as(role: str) -> Any:
        context = chromium.new_context(viewport=VIEWPORT, base_url=site.url, locale="en-US")
        context.set_default_timeout(TIMEOUT_MS)
        context.on("console", lambda message: _note_csp(message.text, refused))
        contexts.append(context)
        page = context.new_page()
        sign_in(page, EMAILS[role])
        return page

    yield open_as
    for context in contexts:
        context.close()
    assert refused == [], "the pages broke their Content-Security-Policy"


def _note_csp(text: str, refused: list[str]) -> None:
    if "Content Security Policy" in text:  # "Refused to ... because it violates the ..."
        refused.append(text)


def sign_in(page: Any, email: str, password: str = PASSWORD) -> None:
    from playwright.sync_api import expect

    page.goto("/login")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def screenshot(page: Any, name: str) -> Path:
    """A full-page screenshot for the README, overwritten on each run."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def days(site: Site, offset: int) -> date:
    return site.today + timedelta(days=offset)
