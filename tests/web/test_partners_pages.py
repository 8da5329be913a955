"""Partner pages and the allocate form, through the browser's eyes: sign in, CSRF, forms, roles,
partner scoping. On SQLite and PostgreSQL. Pages use the real clock, so money goes to the period
containing today."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from mdfledger import auth, create_app, programs
from mdfledger.actor import Actor
from mdfledger.clock import utcnow
from mdfledger.money import format_amount
from tests.auth.test_login import csrf_token, sign_in

USERS_ADMIN = Actor("user", "admin-1", "admin")  # only admins create and disable staff users

PASSWORD = "correct horse battery staple"
EMAILS = {
    "admin": "admin@example.com",
    "finance": "fin@example.com",
    "auditor": "aud@example.com",
    "partner": "acme-user@example.com",  # a user of ACME
}


@dataclass
class World:
    app: Flask
    sessions: sessionmaker[Session]
    mdf: int
    coop: int
    acme: int
    bolt: int

    def client(self, role: str | None = None) -> FlaskClient:
        client = self.app.test_client()
        if role is not None:
            response = sign_in(client, EMAILS[role], PASSWORD)
            assert response.status_code == 302, f"{role} signs in"
        return client

    def breakdown(self, partner_id: int | None = None, program_id: int | None = None):
        with self.sessions() as session:
            return programs.partner_breakdown(
                session, SYSTEM, partner_id or self.acme, program_id or self.mdf
            )

    def count(self, model: type) -> int:
        with self.sessions() as session:
            return session.scalar(select(func.count()).select_from(model)) or 0


SYSTEM = Actor.system("test")


@pytest.fixture
def world(
    database_url: str, tmp_path: Path, session_factory: sessionmaker[Session], actor: Actor
) -> Iterator[World]:
    with session_factory() as session:
        mdf = programs.create_program(
            session, actor, code="MDF26", name="MDF 2026", kind="mdf", currency="USD"
        )
        coop = programs.create_program(
            session, actor, code="COOP26", name="Co-op 2026", kind="coop", currency="USD"
        )
        programs.set_accrual_rate(session, actor, coop.id, rate_bp=200)
        acme = programs.create_partner(
            session, actor, code="ACME", name="Acme Networks", type="reseller", tier="gold",
            region="NA",
        )  # fmt: skip
        bolt = programs.create_partner(
            session, actor, code="BOLT", name="Bolt Systems", type="distributor", tier="silver",
            region="EMEA",
        )  # fmt: skip
        programs.fund_budget(session, actor, mdf.id, 10_000_000, reason="FY budget")
        for role in ("admin", "finance", "auditor"):
            auth.create_user(
                session,
                USERS_ADMIN,
                email=EMAILS[role],
                name=role.title(),
                role=role,
                password=PASSWORD,
            )
        programs.add_partner_user(
            session, actor, acme.id, email=EMAILS["partner"], name="Ada Acme", password=PASSWORD
        )
        programs.add_partner_user(
            session, actor, bolt.id, email="bolt-user@example.com", name="Bo Bolt",
            password=PASSWORD,
        )  # fmt: skip
        session.commit()
        ids = (mdf.id, coop.id, acme.id, bolt.id)
    app = create_app({"database_url": database_url, "env": "test", "instance_path": tmp_path})
    # The layout's `money` filter; a stand-in only if it is not there.
    app.jinja_env.filters.setdefault("money", lambda m, c: f"{format_amount(m, c)} {c}")
    yield World(app, session_factory, *ids)
    app.extensions["mdfledger.db"].kw["bind"].dispose()


def money_re(text: str) -> str:
    """'1500.00' -> a pattern matching '1,500.00' or '1500.00' (whatever the filter groups)."""
    whole, _, frac = text.partition(".")
    grouped = f"{int(whole):,}".replace(",", ",?")
    return grouped + (r"\." + frac if frac else "")


def body(response) -> str:
    """The page, its request id (new on every request) masked."""
    return response.get_data(as_text=True).replace(response.headers["X-Request-Id"], "<id>")


def post(client: FlaskClient, path: str, data: dict, *, token: bool = True, **kwargs):
    if token:
        data = {"csrf_token": csrf_token(client, "/login"), **data}
    return client.post(path, data=data, **kwargs)


def today_label(world: World, program_id: int | None = None) -> str:
    with world.sessions() as session:
        program = session.get(programs.Program, program_id or world.mdf)
        return programs.period_of(program, programs.today(program)).label


def today_iso(world: World) -> str:
    with world.sessions() as session:
        return programs.today(session.get(programs.Program, world.mdf)).isoformat()


def allocate_directly(world: World, amount: int, partner_id: int | None = None):
    with world.sessions() as session:
        finance = auth.user_by_email(session, EMAILS["finance"])
        allocation = programs.allocate(
            session, Actor("user", str(finance.id), "finance"), world.mdf,
            partner_id or world.acme, amount, reason="plan",
        )  # fmt: skip
        session.commit()
        return allocation


# --- partners: list, create, edit ----------------------------------------------------------------


def test_a_partner_is_created_through_the_form(world: World) -> None:
    client = world.client("finance")
    page = client.get("/partners/new")
    assert page.status_code == 200
    assert 'for="partner-code"' in body(page)
    response = post(
        client, "/partners/new",
        {"code": "CORE", "name": "Core IT", "type": "msp", "tier": "gold", "region": "APAC",
         "status": "active"},
    )  # fmt: skip
    assert response.status_code == 302
    with world.sessions() as session:
        partner = programs.partner_by_code(session, SYSTEM, "CORE")
        assert (partner.name, partner.type, partner.tier, partner.region) == (
            "Core IT", "msp", "gold", "APAC",
        )  # fmt: skip
    assert response.headers["Location"] == f"/partners/{partner.id}"
    shown = body(client.get(response.headers["Location"]))
    assert "Created partner Core IT (CORE)" in shown
    assert "APAC" in shown


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"code": "ACME"}, "code", "a partner with code ACME already exists"),
        ({"code": "no spaces!"}, "code", "code must be 1-40 letters"),
        ({"name": "  "}, "name", "name is required"),
        ({"tier": ""}, "tier", "tier is required"),
        ({"type": "alien"}, "type", "Not a valid choice"),
        ({"region": "x" * 41}, "region", "region may have at most 40 characters"),
    ],
)
def test_a_bad_partner_form_comes_back_with_the_message_and_creates_nothing(
    world: World, fields: dict, field: str, message: str
) -> None:
    client = world.client("admin")
    before = world.count(programs.Partner)
    data = {"code": "NEWP", "name": "New Partner", "type": "reseller", "tier": "gold",
            "region": "NA", "status": "active", **fields}  # fmt: skip
    response = post(client, "/partners/new", data)
    assert response.status_code == 422
    page = body(response)
    assert message in page
    # The message sits next to its field and is linked to it.
    assert f'id="partner-{field}-error"' in page
    linked = rf'id="partner-{field}"[^>]*aria-describedby="[^"]*partner-{field}-error'
    assert re.search(linked, page)
    assert 'aria-invalid="true"' in page
    assert world.count(programs.Partner) == before
    # What was typed is kept.
    assert 'value="New Partner"' in page or field == "name"


def test_the_partner_list_searches_filters_and_pages(world: World) -> None:
    with world.sessions() as session:
        for n in range(120):
            programs.create_partner(
                session, SYSTEM, code=f"P{n:03d}", name=f"Partner {n:03d}", type="reseller",
                tier="bronze" if n % 2 else "gold", region="LATAM" if n < 10 else "NA",
                status="suspended" if n == 7 else "active",
            )  # fmt: skip
        session.commit()
    client = world.client("auditor")
    first = body(client.get("/partners"))
    assert "1\N{EN DASH}50 of 122" in first
    assert "Acme Networks" in first and 'scope="col">Region<' in first
    assert "<caption>" in first
    third = body(client.get("/partners?page=3"))
    assert "101\N{EN DASH}122 of 122" in third and "Partner 119" in third
    assert 'aria-current="page" href="/partners?page=3"' in third
    # Search by name or code, any case.
    found = body(client.get("/partners?search=bolt"))
    assert "Bolt Systems" in found and "Acme Networks" not in found
    found = body(client.get("/partners?search=p01"))
    assert "Partner 010" in found and "Partner 020" not in found
    # Filters combine; page links keep them.
    found = body(client.get("/partners?status=suspended"))
    assert "Partner 007" in found and "Partner 008" not in found
    found = body(client.get("/partners?region=latam&tier=bronze"))
    assert re.findall(r"Partner 00\d", found) == [f"Partner 00{n}" for n in (1, 3, 5, 7, 9)]
    many = body(client.get("/partners?tier=gold"))
    assert "1\N{EN DASH}50 of 61" in many and "tier=gold" in many and "page=2" in many
    bad = client.get("/partners?status=lost")
    assert bad.status_code == 422 and "status must be one of" in body(bad)


def test_a_partner_is_edited_from_its_page(world: World) -> None:
    client = world.client("finance")
    data = {"name": "Acme Networks Inc", "type": "reseller", "tier": "platinum", "region": "NA",
            "status": "active"}  # fmt: skip
    response = post(client, f"/partners/{world.acme}/edit", data)
    assert response.status_code == 302
    assert "Acme Networks Inc" in body(client.get(f"/partners/{world.acme}"))
    bad = post(client, f"/partners/{world.acme}/edit", {**data, "tier": "", "name": "Renamed"})
    assert bad.status_code == 422
    assert 'id="edit-tier-error"' in body(bad) and "tier is required" in body(bad)
    with world.sessions() as session:
        assert session.get(programs.Partner, world.acme).name == "Acme Networks Inc"
    assert post(client, "/partners/999999/edit", data).status_code == 404


def test_contacts_and_users_are_added_from_the_partner_page(world: World) -> None:
    client = world.client("admin")
    response = post(
        client, f"/partners/{world.acme}/contacts",
        {"name": "Carla Contact", "email": "Carla@Acme.example", "title": "Marketing",
         "phone": "+1 555 0100", "is_primary": "y"},
    )  # fmt: skip
    assert response.status_code == 302
    bad = post(client, f"/partners/{world.acme}/contacts", {"name": "X", "email": "not-mail"})
    assert bad.status_code == 422 and 'id="contact-email-error"' in body(bad)
    assert "is not an e-mail address" in body(bad)
    short = post(
        client, f"/partners/{world.acme}/users",
        {"name": "New Person", "email": "new@acme.example", "password": "short"},
    )  # fmt: skip
    assert short.status_code == 422
    assert "at least 12 characters" in body(short) and 'id="user-password-error"' in body(short)
    assert "short" not in re.findall(r'value="([^"]*)"', body(short))  # never echoed
    taken = post(
        client, f"/partners/{world.acme}/users",
        {"name": "Dup", "email": EMAILS["finance"], "password": PASSWORD},
    )  # fmt: skip
    assert taken.status_code == 422 and "already exists" in body(taken)
    good = post(
        client, f"/partners/{world.acme}/users",
        {"name": "New Person", "email": "new@acme.example", "password": PASSWORD},
    )  # fmt: skip
    assert good.status_code == 302
    page = body(client.get(f"/partners/{world.acme}"))
    assert "carla@acme.example" in page and "Marketing" in page
    assert "new@acme.example" in page and "Ada Acme" in page
    assert sign_in(world.app.test_client(), "new@acme.example", PASSWORD).status_code == 302


# --- allocate ------------------------------------------------------------------------------------


def allocate_form(client: FlaskClient) -> dict[str, str]:
    page = body(client.get("/allocate"))
    key = re.search(r'name="key" value="([^"]+)"', page)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert key and token
    return {"key": key.group(1), "csrf_token": token.group(1)}


def test_allocating_through_the_form_moves_the_money_once_per_form(world: World) -> None:
    client = world.client("finance")
    page = body(client.get("/allocate"))
    assert f'value="{today_iso(world)}"' in page  # the period defaults to today
    form = allocate_form(client)
    data = {**form, "program": str(world.mdf), "partner": "ACME", "amount": "1500.00",
            "period": today_iso(world), "reason": "Q launch"}  # fmt: skip
    first = client.post("/allocate", data=data)
    assert first.status_code == 302
    assert first.headers["Location"] == f"/partners/{world.acme}"
    shown = body(client.get(first.headers["Location"]))
    assert f"Allocated 1,500.00 USD to Acme Networks for {today_label(world)}" in shown
    again = client.post("/allocate", data=data)  # a double submit of the same form
    assert again.status_code == 302
    b = world.breakdown()
    assert (b.allocated, b.available) == (150_000, 150_000)
    assert world.count(programs.Allocation) == 1
    # A freshly rendered form has a new key and allocates again.
    fresh = {**data, **allocate_form(client)}
    assert client.post("/allocate", data=fresh).status_code == 302
    assert world.breakdown().allocated == 300_000


def test_allocating_more_than_the_budget_shows_the_message_and_moves_nothing(
    world: World,
) -> None:
    client = world.client("admin")
    data = {**allocate_form(client), "program": str(world.mdf), "partner": "ACME",
            "amount": "100000.01", "period": today_iso(world), "reason": "too much"}  # fmt: skip
    response = client.post("/allocate", data=data)
    assert response.status_code == 422
    page = body(response)
    assert "MDF26 budget has 100000.00 USD available" in page
    assert 'id="allocate-amount-error"' in page
    assert 'value="100000.01"' in page and 'value="too much"' in page
    assert world.breakdown().allocated == 0
    assert world.count(programs.Allocation) == 0


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"amount": "1,500"}, "amount", "is not a decimal amount"),
        ({"amount": "10.005"}, "amount", "more than 2 decimal places"),
        ({"amount": "-5"}, "amount", "amount must be a positive amount"),
        ({"partner": "NOPE"}, "partner", "partner &#39;NOPE&#39; not found"),
        ({"reason": ""}, "reason", "reason is required"),
        ({"period": "2020-01-15"}, "period", "funds expired after 2020-03-31"),
        ({"period": "15/01/2026"}, "period", "Not a valid date value"),
    ],
)
def test_a_bad_allocation_is_refused_next_to_its_field(
    world: World, fields: dict, field: str, message: str
) -> None:
    client = world.client("finance")
    data = {**allocate_form(client), "program": str(world.mdf), "partner": "ACME",
            "amount": "10.00", "period": today_iso(world), "reason": "r", **fields}  # fmt: skip
    response = client.post("/allocate", data=data)
    assert response.status_code == 422
    assert message in body(response)
    assert f'id="allocate-{field}-error"' in body(response)
    assert world.count(programs.Allocation) == 0


def test_a_suspended_partner_cannot_be_allocated_to(world: World) -> None:
    with world.sessions() as session:
        programs.update_partner(session, SYSTEM, world.bolt, status="suspended")
        session.commit()
    client = world.client("finance")
    data = {**allocate_form(client), "program": str(world.mdf), "partner": "BOLT",
            "amount": "10.00", "period": today_iso(world), "reason": "r"}  # fmt: skip
    response = client.post("/allocate", data=data)
    assert response.status_code == 422 and "BOLT is suspended" in body(response)


# --- the partner page: balances, history, adjust and reverse -------------------------------------


def test_the_partner_page_shows_balances_and_history(world: World) -> None:
    allocation = allocate_directly(world, 250_000)
    page = body(world.client("auditor").get(f"/partners/{world.acme}"))
    for word in ("Allocated", "Accrued", "Reserved", "Approved", "Paid", "Expired", "Available"):
        assert f'<th scope="row">{word}</th>' in page
    assert re.search(money_re("2500.00"), page)
    assert today_label(world) in page
    with world.sessions() as session:
        fund = session.get(programs.Fund, allocation.fund_id)
        until = fund.available_until.isoformat()
    assert f'<time datetime="{until}">' in page  # expiring next, and when
    assert "Finance" in page  # who allocated: the user's name, not "user:2"
    assert "Adjust" not in page and "Reverse" not in page  # auditors change nothing


def test_a_fund_is_adjusted_and_allocations_reversed_from_the_partner_page(world: World) -> None:
    allocation = allocate_directly(world, 100_000)
    client = world.client("finance")
    page = body(client.get(f"/partners/{world.acme}"))
    adjust = f"/partners/{world.acme}/funds/{allocation.fund_id}/adjust"
    reverse = f"/partners/{world.acme}/allocations/{allocation.id}/reverse"
    assert f'action="{adjust}"' in page and f'action="{reverse}"' in page

    response = post(client, adjust, {"amount": "-300.00", "reason": "typo", "key": "adj-1"})
    assert response.status_code == 302
    assert "by -300.00 USD" in body(client.get(response.headers["Location"]))
    twice = post(client, adjust, {"amount": "-300.00", "reason": "typo", "key": "adj-1"})
    assert twice.status_code == 302
    assert world.breakdown().allocated == 70_000  # the double submit moved nothing

    bad = post(client, adjust, {"amount": "-800.00", "reason": "too far"})
    assert bad.status_code == 422
    assert "fund has 700.00 USD available" in body(bad)
    assert f'id="adjust-{allocation.fund_id}-amount-error"' in body(bad)

    # The allocation's money is partly gone: it cannot be reversed whole.
    refused = post(client, reverse, {"reason": "wrong partner"})
    assert refused.status_code == 422 and "adjust the fund down" in body(refused)
    blank = post(client, reverse, {"reason": " "})
    assert blank.status_code == 422 and f'id="reverse-{allocation.id}-reason-error"' in body(blank)

    with world.sessions() as session:
        adjustment = session.scalar(
            select(programs.Allocation).where(programs.Allocation.kind == "adjustment")
        )
    undo = f"/partners/{world.acme}/allocations/{adjustment.id}/reverse"
    assert post(client, undo, {"reason": "typo was right"}).status_code == 302
    assert post(client, reverse, {"reason": "wrong partner"}).status_code == 302
    b = world.breakdown()
    assert (b.allocated, b.available) == (0, 0)
    page = body(client.get(f"/partners/{world.acme}"))
    assert page.count(">reversed<") + page.count("reversed\n") >= 2
    assert f'action="{reverse}"' not in page  # reversed once, no button again
    again = post(client, undo, {"reason": "again"})
    assert again.status_code == 422 and "already reversed" in body(again)
    # Another partner's fund or allocation is not found under this partner.
    other = allocate_directly(world, 1_000, world.bolt)
    wrong_fund = f"/partners/{world.acme}/funds/{other.fund_id}/adjust"
    wrong_allocation = f"/partners/{world.acme}/allocations/{other.id}/reverse"
    assert post(client, wrong_fund, {"amount": "1.00", "reason": "x"}).status_code == 404
    assert post(client, wrong_allocation, {"reason": "x"}).status_code == 404


# --- CSRF, roles and partner scoping -------------------------------------------------------------


def test_a_form_without_its_csrf_token_is_refused(world: World) -> None:
    client = world.client("finance")
    response = post(
        client, "/partners/new",
        {"code": "CORE", "name": "Core IT", "type": "msp", "tier": "gold", "region": "APAC"},
        token=False,
    )  # fmt: skip
    assert response.status_code == 400
    data = {"key": "k", "program": str(world.mdf), "partner": "ACME", "amount": "1.00",
            "period": today_iso(world), "reason": "r"}  # fmt: skip
    assert post(client, "/allocate", data, token=False).status_code == 400
    forged = post(client, "/allocate", {**data, "csrf_token": "forged"}, token=False)
    assert forged.status_code == 400
    assert world.count(programs.Partner) == 2
    assert world.count(programs.Allocation) == 0


def partner_urls(world: World) -> tuple[list[str], list[str], list[str]]:
    """(staff GET pages, manager-only GET pages, manager-only POST urls) of the partner pages."""
    allocation = allocate_directly(world, 1_000, world.bolt)
    reads = ["/partners", f"/partners/{world.bolt}"]
    forms = ["/partners/new", "/allocate"]
    posts = [
        "/partners/new", "/allocate", f"/partners/{world.bolt}/edit",
        f"/partners/{world.bolt}/contacts", f"/partners/{world.bolt}/users",
        f"/partners/{world.bolt}/funds/{allocation.fund_id}/adjust",
        f"/partners/{world.bolt}/allocations/{allocation.id}/reverse",
    ]  # fmt: skip
    return reads, forms, posts


def check_roles(world: World, role: str | None, reads, forms, posts) -> None:
    """anonymous -> sign in; partner -> 403 on staff pages; auditor -> reads only;
    admin/finance -> everything (an empty form comes back 422, not 403)."""
    client = world.client(role)
    expected_get = {
        None: (302, 302), "partner": (403, 403), "auditor": (200, 403),
        "admin": (200, 200), "finance": (200, 200),
    }[role]  # fmt: skip
    expected_post = {None: 302, "partner": 403, "auditor": 403, "admin": 422, "finance": 422}[role]
    for url in reads:
        assert client.get(url).status_code == expected_get[0], (role, url)
    for url in forms:
        assert client.get(url).status_code == expected_get[1], (role, url)
    for url in posts:
        response = post(client, url, {})
        assert response.status_code == expected_post, (role, url)
        if role is None:
            assert response.headers["Location"].startswith("/login")


@pytest.mark.parametrize("role", [None, "partner", "auditor", "admin", "finance"])
def test_who_may_use_the_partner_pages(world: World, role: str | None) -> None:
    reads, forms, posts = partner_urls(world)
    if role == "partner":  # a partner user sees its own partner's page, nothing else
        reads = [u for u in reads if u != f"/partners/{world.bolt}"]
        assert world.client("partner").get(f"/partners/{world.acme}").status_code == 200
    check_roles(world, role, reads, forms, posts)
    assert world.count(programs.Partner) == 2
    assert world.breakdown(world.bolt).allocated == 1_000


def test_a_partner_user_sees_only_its_own_partner(world: World) -> None:
    bolt_allocation = allocate_directly(world, 5_000, world.bolt)
    allocate_directly(world, 7_000, world.acme)
    client = world.client("partner")
    own = client.get(f"/partners/{world.acme}")
    assert own.status_code == 200
    page = body(own)
    assert "Acme Networks" in page and re.search(money_re("70.00"), page)
    assert "Bolt" not in page and "BOLT" not in page
    assert "Adjust" not in page and "Add a user" not in page and "Edit details" not in page
    # Another partner's page is "not found", exactly as a partner that does not exist.
    other = client.get(f"/partners/{world.bolt}")
    missing = client.get("/partners/999999")
    assert other.status_code == missing.status_code == 404
    assert body(other) == body(missing)
    assert client.get(f"/partners/{world.bolt}?history=2").status_code == 404
    for url in (
        f"/partners/{world.bolt}/edit", f"/partners/{world.bolt}/contacts",
        f"/partners/{world.bolt}/users",
        f"/partners/{world.bolt}/funds/{bolt_allocation.fund_id}/adjust",
        f"/partners/{world.bolt}/allocations/{bolt_allocation.id}/reverse",
    ):  # fmt: skip
        response = post(client, url, {"name": "x", "reason": "x", "amount": "1.00"})
        assert response.status_code == 403, url
        assert "Bolt" not in body(response) and "BOLT" not in body(response)
    for response in (other, missing):
        assert "Bolt" not in body(response) and "BOLT" not in body(response)
        assert "5,000" not in body(response) and "50.00" not in body(response)
    assert world.breakdown(world.bolt).allocated == 5_000


def test_a_partner_user_sees_its_own_page_after_a_program_closes(world: World) -> None:
    allocate_directly(world, 7_000, world.acme)
    with world.sessions() as session:
        programs.update_program(session, SYSTEM, world.mdf, status="closed")
        session.commit()
    assert world.client("partner").get(f"/partners/{world.acme}").status_code == 200


def test_a_closed_program_takes_no_upward_adjustment(world: World) -> None:
    allocation = allocate_directly(world, 10_000)
    with world.sessions() as session:
        programs.update_program(session, SYSTEM, world.mdf, status="closed")
        session.commit()
    client = world.client("finance")
    adjust = f"/partners/{world.acme}/funds/{allocation.fund_id}/adjust"
    response = post(client, adjust, {"amount": "50.00", "reason": "more"})
    assert response.status_code == 422
    assert "MDF26 is closed" in body(response)  # no such field in the form: shown above it
    assert f'id="adjust-{allocation.fund_id}-form-error"' in body(response)
    assert world.breakdown().allocated == 10_000
    down = post(client, adjust, {"amount": "-50.00", "reason": "take back"})
    assert down.status_code == 302
    assert world.breakdown().allocated == 5_000


def test_a_lapsed_fund_takes_no_upward_adjustment(world: World) -> None:
    past = utcnow() - timedelta(days=200)
    with world.sessions() as session:
        allocation = programs.allocate(
            session, SYSTEM, world.mdf, world.acme, 10_000, reason="old", now=past
        )
        session.commit()
    client = world.client("finance")
    adjust = f"/partners/{world.acme}/funds/{allocation.fund_id}/adjust"
    response = post(client, adjust, {"amount": "50.00", "reason": "late"})
    assert response.status_code == 422
    assert world.breakdown().allocated == 10_000


def test_searching_for_an_underscore_finds_only_codes_with_one(world: World) -> None:
    with world.sessions() as session:
        programs.create_partner(
            session, SYSTEM, code="NORTH_1", name="North One", type="msp", tier="gold",
            region="NA",
        )  # fmt: skip
        session.commit()
    page = body(world.client("auditor").get("/partners?search=_"))
    assert "North One" in page and "Acme Networks" not in page
