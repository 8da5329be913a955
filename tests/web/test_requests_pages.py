"""Fund request pages through the browser's eyes: sign in, fill forms, decide, on SQLite and
PostgreSQL. Pages use the real clock, so dates are relative to today (program time zone UTC).

The world built here is shared with tests/web/test_claims_pages.py.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from mdfledger import auth, claims, create_app, programs
from mdfledger.actor import Actor
from mdfledger.clock import utcnow
from tests.auth.test_login import csrf_token, sign_in

PASSWORD = "correct horse battery staple"
SETUP = Actor.system("setup")
EMAILS = {
    "admin": "admin@vendor.test",
    "finance": "fin@vendor.test",
    "finance2": "fay@vendor.test",
    "auditor": "aud@vendor.test",
    "partner": "pat@acme.test",  # a user of ACME
    "partner_b": "bo@bolt.test",  # a user of BOLT
}
NAMES = {"finance": "Fin", "finance2": "Fay", "partner": "Pat Acme", "partner_b": "Bo Bolt"}


@dataclass
class World:
    app: Flask
    sessions: sessionmaker[Session]
    mdf: int
    webinar: int  # proof: invoice; cap 5,000.00
    event: int  # proof: invoice and photos; no cap
    acme: int
    bolt: int
    actors: dict[str, Actor]
    proof: Path

    def client(self, role: str | None = None) -> FlaskClient:
        client = self.app.test_client()
        if role is not None:
            response = sign_in(client, EMAILS[role], PASSWORD)
            assert response.status_code == 302, f"{role} signs in"
        return client

    def count(self, model: type) -> int:
        with self.sessions() as session:
            return session.scalar(select(func.count()).select_from(model)) or 0

    def breakdown(self, partner_id: int | None = None) -> programs.Breakdown:
        with self.sessions() as session:
            return programs.partner_breakdown(session, SETUP, partner_id or self.acme, self.mdf)

    def request_row(self, request_id: int) -> claims.FundRequest:
        with self.sessions() as session:
            found = session.get(claims.FundRequest, request_id)
            assert found is not None
            session.expunge(found)
            return found


def today() -> date:
    return utcnow().date()


def build_world(
    database_url: str, tmp_path: Path, session_factory: sessionmaker[Session]
) -> Iterator[World]:
    """A program with a catalog, two funded partners and a user per role (finance twice)."""
    with session_factory() as session:
        mdf = programs.create_program(
            session, SETUP, code="MDF26", name="MDF 2026", kind="mdf", currency="USD",
            claim_deadline_days=60, share_bp=5000, direct_claims=True,
        )  # fmt: skip
        webinar = programs.add_activity(
            session, SETUP, mdf.id, code="WEBINAR", name="Webinar", proof=["invoice"],
            cap=500_000,
        )  # fmt: skip
        event = programs.add_activity(
            session, SETUP, mdf.id, code="EVENT", name="Trade show", proof=["invoice", "photos"]
        )
        acme = programs.create_partner(
            session, SETUP, code="ACME", name="Acme Networks", type="reseller", tier="gold",
            region="NA",
        )  # fmt: skip
        bolt = programs.create_partner(
            session, SETUP, code="BOLT", name="Bolt Systems", type="reseller", tier="gold",
            region="NA",
        )  # fmt: skip
        programs.fund_budget(session, SETUP, mdf.id, 50_000_000, reason="budget")
        for partner in (acme, bolt):
            programs.allocate(session, SETUP, mdf.id, partner.id, 2_000_000, reason="plan")
        actors = {}
        for role, email in EMAILS.items():
            user = auth.create_user(
                session, SETUP, email=email, name=NAMES.get(role, role.title()),
                role="partner" if role.startswith("partner") else role.rstrip("2"),
                password=PASSWORD,
                partner_id={"partner": acme.id, "partner_b": bolt.id}.get(role),
            )  # fmt: skip
            actors[role] = Actor("user", str(user.id), user.role, user.partner_id)
        session.commit()
        ids = (mdf.id, webinar.id, event.id, acme.id, bolt.id)
    app = create_app({"database_url": database_url, "env": "test", "instance_path": tmp_path})
    yield World(app, session_factory, *ids, actors=actors, proof=tmp_path / "proof")
    app.extensions["mdfledger.db"].kw["bind"].dispose()


@pytest.fixture
def world(
    database_url: str, tmp_path: Path, session_factory: sessionmaker[Session]
) -> Iterator[World]:
    yield from build_world(database_url, tmp_path, session_factory)


# --- helpers -------------------------------------------------------------------------------------


def text(response) -> str:
    return response.get_data(as_text=True)


def visible(response) -> str:
    """The page's text with tags dropped and whitespace folded, as a reader sees it."""
    plain = re.sub(r"<[^>]+>", " ", text(response))
    return " ".join(html.unescape(plain).split())


def post(client: FlaskClient, path: str, data: dict | None = None, **kwargs):
    fields = {"csrf_token": csrf_token(client, "/login"), **(data or {})}
    return client.post(path, data=fields, **kwargs)


def form_value(page: str, form_action: str, name: str) -> str:
    """A hidden or prefilled field's value inside the form posting to `form_action`."""
    form = re.search(rf'<form[^>]*action="{re.escape(form_action)}"(.*?)</form>', page, re.S)
    assert form, f"a form posting to {form_action}"
    field = re.search(rf'name="{name}"[^>]*value="([^"]*)"', form.group(1))
    assert field, f"{name} in the form posting to {form_action}"
    return html.unescape(field.group(1))


def field_error(page: str, field_id: str) -> str:
    match = re.search(rf'<p class="field-error" id="{re.escape(field_id)}-error">(.*?)</p>', page)
    assert match, f"an error next to {field_id}"
    assert re.search(rf'aria-describedby="[^"]*{re.escape(field_id)}-error', page)
    return html.unescape(match.group(1))


def request_fields(world: World, **changes: str) -> dict[str, str]:
    """A good new-request form: an activity that ran last week, 2,000.00 of 6,000.00."""
    fields = {
        "program_id": str(world.mdf),
        "activity_id": str(world.webinar),
        "title": "Q3 webinar series",
        "description": "Three webinars",
        "expected_outcome": "150 leads",
        "starts_on": (today() - timedelta(days=10)).isoformat(),
        "ends_on": (today() - timedelta(days=3)).isoformat(),
        "estimated_cost": "6000.00",
        "requested_amount": "2000.00",
        "key": "form-key-1",
    }
    fields.update(changes)
    return fields


def propose(world: World, amount: int = 200_000, **changes) -> int:
    """A submitted request of ACME, made through the service."""
    fields = dict(
        program_id=world.mdf, activity_id=world.webinar, title="Webinars",
        starts_on=today() - timedelta(days=10), ends_on=today() - timedelta(days=3),
        estimated_cost=600_000, requested_amount=amount,
    )  # fmt: skip
    fields.update(changes)
    actor = fields.pop("actor", world.actors["partner"])
    with world.sessions() as session:
        created = claims.create_request(session, actor, **fields)
        session.commit()
        return created.id


def approve(world: World, request_id: int, amount: int | None = None) -> None:
    with world.sessions() as session:
        extra = {} if amount is None else {"reason_code": "budget", "message": "Part now"}
        claims.approve_request(session, world.actors["finance"], request_id, amount=amount, **extra)
        session.commit()


def post_decision(client: FlaskClient, page: str, path: str, **fields: str):
    """Post the decision form for `path` as `page` showed it (its version and key)."""
    data = {
        "version": form_value(page, path, "version"),
        "key": form_value(page, path, "key"),
        **fields,
    }
    return post(client, path, data)


def decide_on(client: FlaskClient, page_path: str, action: str, **fields: str):
    """Post a decision from a request's or a claim's page as it is now."""
    return post_decision(client, text(client.get(page_path)), f"{page_path}/{action}", **fields)


def decide(client: FlaskClient, request_id: int, action: str, **fields: str):
    return decide_on(client, f"/requests/{request_id}", action, **fields)


# --- proposing -----------------------------------------------------------------------------------


def test_a_partner_proposes_through_the_form_and_sees_it_submitted(world: World) -> None:
    client = world.client("partner")
    page = client.get("/requests/new")
    assert page.status_code == 200
    shown = text(page)
    for name in ("program_id", "activity_id", "title", "description", "expected_outcome",
                 "starts_on", "ends_on", "estimated_cost", "requested_amount", "key"):  # fmt: skip
        assert f'name="{name}"' in shown, name
    # Activities are grouped by program and show their cap and the proof they need.
    assert '<optgroup label="MDF 2026 (MDF26)">' in shown
    assert "Webinar (cap 5,000.00 USD; proof: invoice)" in shown
    assert "Trade show (no cap; proof: invoice, photos)" in shown
    assert 'type="date"' in shown

    response = post(client, "/requests/new", request_fields(world))
    assert response.status_code == 302
    with world.sessions() as session:
        made = session.scalars(select(claims.FundRequest)).one()
    assert response.headers["Location"] == f"/requests/{made.id}"
    assert (made.requested_amount, made.estimated_cost, made.state) == (
        200_000,
        600_000,
        "submitted",
    )
    page = client.get(response.headers["Location"])
    seen = visible(page)
    assert f"Request {made.reference} sent for pre-approval" in seen
    assert "Q3 webinar series" in seen and "2,000.00 USD" in seen and "submitted" in seen
    assert "Pat Acme (partner) submitted: 2,000.00 USD" in seen  # the timeline
    assert "Nothing is held yet" in seen
    mine = visible(client.get("/requests"))
    assert "My requests" in mine and made.reference in mine and "Q3 webinar series" in mine


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"requested_amount": "3000.01"}, "requested_amount",
         "at most 3000.00 USD may be requested"),
        ({"requested_amount": "6000.00", "estimated_cost": "20000.00"}, "requested_amount",
         "at most 5000.00 USD may be requested: the Webinar cap"),
        ({"ends_on": (utcnow().date() - timedelta(days=20)).isoformat()}, "ends_on",
         "cannot end before it starts"),
        ({"estimated_cost": "12.345"}, "estimated_cost", "more than 2 decimal places"),
        ({"requested_amount": "lots"}, "requested_amount", "not a decimal amount"),
        ({"requested_amount": "1,50"}, "requested_amount", "not a decimal amount"),
        ({"requested_amount": ""}, "requested_amount", "enter an amount in USD"),
        ({"starts_on": ""}, "starts_on", "enter the day it starts"),
        ({"activity_id": ""}, "activity_id", "choose an activity"),
        ({"title": " "}, "title", "title is required"),
    ],
)  # fmt: skip
def test_a_bad_request_comes_back_with_the_message_next_to_its_field_and_saves_nothing(
    world: World, changes: dict, field: str, message: str
) -> None:
    client = world.client("partner")
    response = post(client, "/requests/new", request_fields(world, **changes))
    assert response.status_code == 422
    page = text(response)
    assert message in field_error(page, field)
    assert 'aria-invalid="true"' in page and 'class="form-errors" role="alert"' in page
    assert world.count(claims.FundRequest) == 0
    # What was typed is kept, and the same key is offered again (nothing used it).
    if field != "title":
        assert 'value="Q3 webinar series"' in page
    assert 'name="key" type="hidden" value="form-key-1"' in page


def test_sending_the_same_form_twice_makes_one_request(world: World) -> None:
    client = world.client("partner")
    first = post(client, "/requests/new", request_fields(world, key="twice"))
    again = post(client, "/requests/new", request_fields(world, key="twice"))
    assert first.status_code == again.status_code == 302
    assert first.headers["Location"] == again.headers["Location"]
    assert world.count(claims.FundRequest) == 1


def test_staff_do_not_propose_and_partners_do_not_decide(world: World) -> None:
    for role in ("finance", "admin", "auditor"):
        assert world.client(role).get("/requests/new").status_code == 403, role
    request_id = propose(world)
    partner = world.client("partner")
    response = post(partner, f"/requests/{request_id}/approve", {"version": "1", "key": "k"})
    assert response.status_code == 403
    assert world.request_row(request_id).state == "submitted"
    assert post(partner, f"/requests/{request_id}/frobnicate").status_code == 404


# --- deciding ------------------------------------------------------------------------------------


def test_finance_approves_in_part_only_with_a_reason_and_the_partner_sees_why(
    world: World,
) -> None:
    request_id = propose(world)
    finance = world.client("finance")
    page = text(finance.get(f"/requests/{request_id}"))
    path = f"/requests/{request_id}/approve"
    # The amount comes prefilled with what was asked for.
    assert form_value(page, path, "amount") == "2000.00"
    assert form_value(page, path, "version") == "1"
    for action in ("return", "reject"):
        assert f'action="/requests/{request_id}/{action}"' in page

    refused = decide(finance, request_id, "approve", amount="1500.00")
    assert refused.status_code == 422
    assert "a reason code is needed" in field_error(text(refused), "approve-reason_code")
    assert world.request_row(request_id).state == "submitted"
    assert world.breakdown().reserved == 0
    no_message = decide(finance, request_id, "approve", amount="1500.00", reason_code="budget")
    assert no_message.status_code == 422
    assert "say why" in field_error(text(no_message), "approve-message")
    too_much = decide(finance, request_id, "approve", amount="2000.01")
    assert too_much.status_code == 422
    assert "at most the 2000.00 USD requested" in field_error(text(too_much), "approve-amount")

    done = decide(
        finance, request_id, "approve", amount="1500.00", reason_code="budget",
        message="Half of the webinars fit this quarter's plan",
    )  # fmt: skip
    assert done.status_code == 302
    row = world.request_row(request_id)
    assert (row.state, row.approved_amount, row.reason_code) == ("approved", 150_000, "budget")
    assert world.breakdown().reserved == 150_000
    assert "Approved REQ-" in visible(finance.get(done.headers["Location"]))

    partner = world.client("partner")
    seen = visible(partner.get(f"/requests/{request_id}"))
    assert "approved" in seen and "1,500.00 USD" in seen
    assert "1,500.00 USD is held in your funds for this request until the end of" in seen
    assert "Fin (finance) approved: 1,500.00 USD" in seen
    assert "Reason: No funds left for it" in seen
    assert "Half of the webinars fit this quarter's plan" in seen
    assert "Claim this" in seen and f"/claims/new?request={request_id}" in text(
        partner.get(f"/requests/{request_id}")
    )
    # No decision forms for the partner; a withdraw form instead.
    page = text(partner.get(f"/requests/{request_id}"))
    assert f'action="/requests/{request_id}/approve"' not in page
    assert f'action="/requests/{request_id}/withdraw"' in page


def test_a_returned_request_is_edited_and_resubmitted(world: World) -> None:
    request_id = propose(world)
    finance = world.client("finance")
    no_reason = decide(finance, request_id, "return", message="Which audience?")
    assert no_reason.status_code == 422 and world.request_row(request_id).state == "submitted"
    returned = decide(finance, request_id, "return", reason_code="other", message="Which audience?")
    assert returned.status_code == 302
    partner = world.client("partner")
    seen = visible(partner.get(f"/requests/{request_id}"))
    assert "returned" in seen and "Which audience?" in seen and "Edit REQ-" in seen

    edit = partner.get(f"/requests/{request_id}/edit")
    assert edit.status_code == 200 and 'value="2000.00"' in text(edit)
    fields = request_fields(world, expected_outcome="CIO audience", requested_amount="2500.00")
    fields.pop("program_id")
    bad = post(partner, f"/requests/{request_id}/edit", {**fields, "requested_amount": "9000"})
    assert bad.status_code == 422
    assert "at most 3000.00 USD" in field_error(text(bad), "requested_amount")
    saved = post(partner, f"/requests/{request_id}/edit", fields)
    assert saved.status_code == 302
    row = world.request_row(request_id)
    assert (row.expected_outcome, row.requested_amount) == ("CIO audience", 250_000)

    sent = decide(partner, request_id, "resubmit", message="Added the audience")
    assert sent.status_code == 302
    assert world.request_row(request_id).state == "submitted"
    seen = visible(finance.get(f"/requests/{request_id}"))
    assert "Pat Acme (partner) resubmitted" in seen and "Added the audience" in seen
    # A request that is not returned cannot be edited.
    assert partner.get(f"/requests/{request_id}/edit").status_code == 409


def test_rejections_need_a_reason_and_withdrawals_release_the_money(world: World) -> None:
    rejected = propose(world)
    finance = world.client("finance")
    assert decide(finance, rejected, "reject", reason_code="not_eligible").status_code == 422
    done = decide(finance, rejected, "reject", reason_code="not_eligible", message="Not in plan")
    assert done.status_code == 302 and world.request_row(rejected).state == "rejected"

    withdrawn = propose(world)
    approve(world, withdrawn)
    assert world.breakdown().reserved == 200_000
    partner = world.client("partner")
    assert decide(partner, withdrawn, "withdraw").status_code == 302
    assert world.request_row(withdrawn).state == "withdrawn"
    assert world.breakdown().reserved == 0
    seen = visible(partner.get(f"/requests/{withdrawn}"))
    assert "withdrawn" in seen and "Pat Acme (partner) withdrew" in seen


def test_two_finance_users_on_the_same_version_the_second_gets_409(world: World) -> None:
    request_id = propose(world)
    fin, fay = world.client("finance"), world.client("finance2")
    path = f"/requests/{request_id}"
    fin_page, fay_page = text(fin.get(path)), text(fay.get(path))
    first = post_decision(fin, fin_page, f"{path}/approve", amount="2000.00")
    assert first.status_code == 302
    second = post_decision(fay, fay_page, f"{path}/reject", reason_code="other", message="Not now")
    assert second.status_code == 409
    seen = visible(second)
    assert "Nothing was changed." in seen
    assert "changed since you opened it: it is now approved" in seen
    assert "The latest step: Fin approved it (2,000.00 USD)" in seen
    assert world.request_row(request_id).state == "approved"
    assert world.breakdown().reserved == 200_000


def test_a_double_click_on_approve_approves_once(world: World) -> None:
    request_id = propose(world)
    finance = world.client("finance")
    path = f"/requests/{request_id}/approve"
    page = text(finance.get(f"/requests/{request_id}"))
    assert post_decision(finance, page, path, amount="2000.00").status_code == 302
    # The retry replays, version and all.
    assert post_decision(finance, page, path, amount="2000.00").status_code == 302
    assert world.breakdown().reserved == 200_000
    with world.sessions() as session:
        row = session.get(claims.FundRequest, request_id)
        assert [e.event for e in claims.timeline(session, row)] == ["submit", "approve"]


# --- lists ---------------------------------------------------------------------------------------


def test_staff_see_what_awaits_a_decision_and_filter_and_page(world: World) -> None:
    for n in range(53):
        propose(world, title=f"Plan {n:02d}", amount=1000 + n)
    approved = propose(world, title="Approved one")
    approve(world, approved)
    bolt_request = propose(world, title="Bolt plan", actor=world.actors["partner_b"])
    finance = world.client("finance")
    first = visible(finance.get("/requests"))
    assert "Requests awaiting a decision" in first and "1\N{EN DASH}50 of 54" in first
    assert "Approved one" not in first
    assert "Bolt plan" in first and "Acme Networks" in first  # partner column for staff
    second = finance.get("/requests?page=2")
    assert "51\N{EN DASH}54 of 54" in visible(second) and 'aria-current="page"' in text(second)
    everything = visible(finance.get("/requests?state="))
    assert "of 55" in everything
    only_bolt = visible(finance.get(f"/requests?state=&partner_id={world.bolt}"))
    assert "Bolt plan" in only_bolt and "Plan 01" not in only_bolt
    assert f"REQ-{bolt_request:06d}" in only_bolt
    approved_only = visible(finance.get(f"/requests?state=approved&program_id={world.mdf}"))
    assert "Approved one" in approved_only and "Plan 01" not in approved_only
    bad = finance.get("/requests?state=lost")
    assert bad.status_code == 422 and "state must be one of" in visible(bad)


def test_a_partner_lists_only_their_own_requests(world: World) -> None:
    propose(world, title="Acme plan")
    propose(world, title="Bolt plan", actor=world.actors["partner_b"])
    mine = visible(world.client("partner").get("/requests"))
    assert "Acme plan" in mine and "Bolt plan" not in mine
    assert "Acme Networks" not in mine  # no partner column for partners
    theirs = visible(world.client("partner_b").get("/requests?state=submitted"))
    assert "Bolt plan" in theirs and "Acme plan" not in theirs


# --- who may do what -----------------------------------------------------------------------------


def test_an_auditor_sees_everything_and_changes_nothing(world: World) -> None:
    request_id = propose(world)
    auditor = world.client("auditor")
    page = auditor.get(f"/requests/{request_id}")
    assert page.status_code == 200
    assert "Webinars" in visible(page) and "<button" not in text(page).split("<main", 1)[1]
    assert "Webinars" in visible(auditor.get("/requests"))
    for action in ("approve", "reject", "return", "withdraw", "resubmit"):
        response = post(auditor, f"/requests/{request_id}/{action}", {"version": "1", "key": "k"})
        assert response.status_code == 403, action
    assert auditor.get(f"/requests/{request_id}/edit").status_code == 403
    assert world.request_row(request_id).state == "submitted"


def test_another_partners_request_is_not_found(world: World) -> None:
    request_id = propose(world)
    other = world.client("partner_b")
    missing = other.get("/requests/987654")
    hidden = other.get(f"/requests/{request_id}")
    assert hidden.status_code == missing.status_code == 404
    assert "Webinars" not in text(hidden)
    assert other.get(f"/requests/{request_id}/edit").status_code == 404
    response = post(other, f"/requests/{request_id}/withdraw", {"version": "1", "key": "k"})
    assert response.status_code == 404
    assert world.request_row(request_id).state == "submitted"


def test_a_form_without_its_csrf_token_is_refused(world: World) -> None:
    partner = world.client("partner")
    response = partner.post("/requests/new", data=request_fields(world))
    assert response.status_code == 400
    assert "security token" in visible(response)
    assert world.count(claims.FundRequest) == 0
    request_id = propose(world)
    finance = world.client("finance")
    response = finance.post(f"/requests/{request_id}/approve", data={"version": "1"})
    assert response.status_code == 400
    assert world.request_row(request_id).state == "submitted"


def test_signed_out_visitors_are_sent_to_sign_in(world: World) -> None:
    client = world.client()
    for path in ("/requests", "/requests/new", "/requests/1"):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"]
