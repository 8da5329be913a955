"""The audit log as people and programs reach it: request ids on every response and on the
entries a request wrote, the auditor's page (filters, pages, details) and the API. On SQLite and
PostgreSQL, in the API tests' world (tests/api/test_programs_api.py)."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.test import TestResponse

from mdfledger import audit, auth
from mdfledger.actor import Actor
from mdfledger.audit import AuditEntry
from mdfledger.clock import utcnow
from tests.api.test_programs_api import PASSWORD, World, build_world, ok
from tests.audit.conftest import entries_after, last_id
from tests.web.test_programs_pages import csrf_token

EMAILS = {
    "admin": "admin@example.com",
    "finance": "finance@example.com",
    "auditor": "auditor@example.com",
    "partner": "ada@acme.example",
}
HEX32 = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture
def world(
    database_url: str, tmp_path: Path, session_factory: sessionmaker[Session], actor: Actor
) -> Iterator[World]:
    yield from build_world(database_url, tmp_path, session_factory, actor)


def browser(world: World, role: str | None) -> FlaskClient:
    client = world.app.test_client()
    if role is not None:
        token = csrf_token(client)
        response = client.post(
            "/login", data={"email": EMAILS[role], "password": PASSWORD, "csrf_token": token}
        )
        assert response.status_code == 302, role
    return client


def page_text(response: TestResponse) -> str:
    return html.unescape(response.get_data(as_text=True))


def mark(world: World) -> int:
    with world.sessions() as session:
        return last_id(session)


def written_since(world: World, since: int) -> list[AuditEntry]:
    with world.sessions() as session:
        return entries_after(session, since)


# --- request ids --------------------------------------------------------------------------------


def allocate_by_api(world: World, **headers: str) -> TestResponse:
    body = {"program_id": world.mdf, "partner_id": world.acme, "amount": "15.00", "reason": "r"}
    return world.post("finance", "/api/v1/allocations", body, headers=headers)


def test_an_api_call_records_and_echoes_the_callers_request_id(world: World) -> None:
    since = mark(world)
    response = allocate_by_api(world, **{"X-Request-Id": "req-2026.08:alloc_1"})
    created = ok(response, 201)
    assert response.headers["X-Request-Id"] == "req-2026.08:alloc_1"
    [entry] = written_since(world, since)
    assert (entry.action, entry.object_id) == ("allocation.create", str(created["id"]))
    assert entry.request_id == "req-2026.08:alloc_1"
    assert entry.actor.startswith("user:") and entry.role == "finance"
    assert entry.summary.startswith("Allocated 15.00 USD to ACME for ")


@pytest.mark.parametrize("incoming", [None, "", "has space", "x" * 65, "semi;colon", "ünï"])
def test_a_missing_or_unusable_request_id_is_replaced_by_a_fresh_one(
    world: World, incoming: str | None
) -> None:
    since = mark(world)
    response = allocate_by_api(world, **({} if incoming is None else {"X-Request-Id": incoming}))
    ok(response, 201)
    request_id = response.headers["X-Request-Id"]
    assert HEX32.match(request_id)
    [entry] = written_since(world, since)
    assert entry.request_id == request_id


def test_every_response_names_its_request_even_errors(world: World) -> None:
    ids = set()
    for response in (
        world.app.test_client().get("/api/v1/me"),  # 401 before any view
        world.get("partner", "/api/v1/audit"),  # 403
        world.get("finance", "/api/v1/no-such-thing"),  # 404
        world.app.test_client().get("/login"),  # a page
        world.app.test_client().get("/healthz"),
    ):
        assert HEX32.match(response.headers["X-Request-Id"]), response.status_code
        ids.add(response.headers["X-Request-Id"])
    assert len(ids) == 5
    echoed = world.app.test_client().get("/login", headers={"X-Request-Id": "trace-7"})
    assert echoed.headers["X-Request-Id"] == "trace-7"
    assert audit.current_request_id() is None  # nothing leaks out of a request


def test_a_page_records_its_request_id_with_the_allocation(world: World) -> None:
    client = browser(world, "finance")
    page = client.get("/allocate").get_data(as_text=True)
    key = re.search(r'name="key" value="([^"]+)"', page)
    assert key
    since = mark(world)
    data = {"csrf_token": csrf_token(client, "/allocate"), "key": key.group(1),
            "program": str(world.mdf), "partner": "ACME", "amount": "12.34",
            "period": utcnow().date().isoformat(), "reason": "booth"}  # fmt: skip
    response = client.post("/allocate", data=data, headers={"X-Request-Id": "page-alloc"})
    assert response.status_code == 302, page_text(response)
    assert response.headers["X-Request-Id"] == "page-alloc"
    [entry] = written_since(world, since)
    assert (entry.action, entry.request_id) == ("allocation.create", "page-alloc")
    assert entry.summary.startswith("Allocated 12.34 USD to ACME for ")
    # The same form submitted again replays the allocation: no second entry.
    again = client.post("/allocate", data={**data, "csrf_token": csrf_token(client, "/allocate")})
    assert again.status_code == 302
    assert len(written_since(world, since)) == 1


# --- the audit page -----------------------------------------------------------------------------


def rows_of(response: TestResponse) -> list[str]:
    """The summaries in the table, top to bottom."""
    page = response.get_data(as_text=True)
    return [html.unescape(s) for s in re.findall(r'<th scope="row">([^<]*)</th>', page)]


def test_staff_see_the_log_newest_first_with_who_and_links(world: World) -> None:
    for role in ("auditor", "admin", "finance"):
        response = browser(world, role).get("/audit")
        assert response.status_code == 200, role
    page = page_text(response)
    assert "<h1>Audit log</h1>" in page
    summaries = rows_of(response)
    with world.sessions() as session:
        newest = session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).all()
    assert summaries == [e.summary for e in newest][: len(summaries)]
    assert "Allocated 1,500.00 USD to ACME for " in page
    assert f'href="/partners/{world.acme}">allocation {world.acme_allocation}</a>' in page
    assert f'href="/programs/{world.mdf}">program {world.mdf}</a>' in page
    assert "Created partner ACME (Acme Networks)" in page
    assert "(user:finance-1, finance)" in page and "system (test)" in page
    assert f'href="/imports/{world.imp}">import {world.imp}</a>' in page


def test_the_page_filters_by_action_who_object_partner_and_dates(world: World) -> None:
    client = browser(world, "auditor")

    def shown(query: str) -> list[str]:
        response = client.get(f"/audit?{query}")
        assert response.status_code == 200, page_text(response)
        return rows_of(response)

    allocations = shown("action=allocation.create")
    assert len(allocations) == 2 and all(s.startswith("Allocated ") for s in allocations)
    assert len(shown("action=allocation")) == 2  # a family: every allocation.* action
    assert shown("action=partner.create&partner=ACME") == ["Created partner ACME (Acme Networks)"]
    about_bolt = shown("partner=BOLT")
    assert about_bolt and all("ACME" not in s for s in about_bolt)
    assert "Added contact Bo Bolt <bo@bolt.example> to partner BOLT" in about_bolt
    assert shown(f"object_type=program&object_id={world.old}") == [
        "Changed program OLD25: status active → closed",
        "Created mdf program OLD25 (Archive 2025) in USD",
    ]
    by_admin = shown("actor=user:admin-1")
    assert by_admin and all(s.startswith("Created ") and " user " in s for s in by_admin)
    assert shown("actor=FINANCE@example.com") == []  # the finance user did nothing yet
    today = utcnow().date()
    assert len(shown(f"since={today}&until={today}")) == len(shown(""))
    assert shown("until=2000-01-01") == []
    for query, message in (
        ("since=yesterday", "From: Not a valid date value."),
        ("partner=NOPE", "unknown partner 'NOPE'"),
        ("actor=nobody@example.com", "no user has e-mail 'nobody@example.com'"),
        ("since=2026-02-01&until=2026-01-01", "the date range ends before it starts"),
    ):
        response = client.get(f"/audit?{query}")
        assert response.status_code == 422, query
        assert message in page_text(response), query
        assert rows_of(response) == []


def test_the_page_shows_fifty_entries_a_page(world: World) -> None:
    with world.sessions() as session:
        for n in range(60):
            audit.record(
                session, Actor.system("test"), "test.note", object_type="note", object_id=n,
                summary=f"Note {n}",
            )  # fmt: skip
        session.commit()
        total = last_id(session)
    client = browser(world, "auditor")
    response = client.get("/audit")
    first = page_text(response)
    assert rows_of(response) == [f"Note {n}" for n in range(59, 9, -1)]
    assert f"1\N{EN DASH}50 of {total}" in first
    assert 'href="/audit?page=2" rel="next"' in first
    second = rows_of(client.get("/audit?page=2"))
    assert second[:10] == [f"Note {n}" for n in range(9, -1, -1)]
    assert len(second) == total - 50
    filtered = client.get("/audit?action=test.note&page=2")
    assert rows_of(filtered) == [f"Note {n}" for n in range(9, -1, -1)]
    assert 'href="/audit?action=test.note&amp;page=1" rel="prev"' in filtered.get_data(as_text=True)


def test_an_entry_shows_before_and_after_side_by_side(world: World) -> None:
    response = world.patch("finance", f"/api/v1/partners/{world.bolt}", {"tier": "gold"})
    ok(response)
    with world.sessions() as session:
        entry = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "partner.update")
        ).one()
    page = page_text(browser(world, "auditor").get(f"/audit/{entry.id}"))
    assert "Changed partner BOLT: tier silver → gold" in page
    assert re.search(r'<th scope="row">tier</th>\s*<td>silver</td>\s*<td>gold</td>', page)
    assert f"<code>{response.headers['X-Request-Id']}</code>" in page
    assert f'href="/partners/{world.bolt}">BOLT</a>' in page
    assert entry.hash in page
    client = browser(world, "auditor")
    assert client.get("/audit/987654").status_code == 404
    assert client.get("/audit/0").status_code == 404


def test_partners_and_strangers_never_see_the_log(world: World) -> None:
    partner = browser(world, "partner")
    for path in ("/audit", "/audit/1", "/audit?partner=ACME"):
        response = partner.get(path)
        assert response.status_code == 403, path
        assert "Your role does not allow this page or action." in page_text(response)
        anonymous = world.app.test_client().get(path)
        assert anonymous.status_code == 302
        assert anonymous.headers["Location"].startswith("/login?next=")
    nav = page_text(partner.get("/programs"))
    assert "Audit log" not in nav
    assert 'href="/audit"' in page_text(browser(world, "auditor").get("/programs"))


# --- the API ------------------------------------------------------------------------------------


def test_the_api_lists_filters_and_pages_entries(world: World) -> None:
    page = ok(world.get("auditor", "/api/v1/audit?per_page=5"))
    assert (page["page"], page["per_page"], len(page["items"])) == (1, 5, 5)
    ids = [e["id"] for e in page["items"]]
    assert ids == sorted(ids, reverse=True) and ids[0] == page["total"]
    entry = page["items"][0]
    assert set(entry) == {
        "id", "at", "actor", "actor_kind", "role", "partner_id", "action", "object_type",
        "object_id", "subject_partner_id", "summary", "before", "after", "request_id", "hash",
    }  # fmt: skip
    allocations = ok(
        world.get("finance", f"/api/v1/audit?action=allocation&partner_id={world.bolt}")
    )
    assert [e["summary"][:28] for e in allocations["items"]] == ["Allocated 2,500.00 USD to BO"]
    [created] = allocations["items"]
    assert created["after"]["amount"] == "2500.00" and created["before"] is None
    assert created["subject_partner_id"] == world.bolt and created["request_id"] is None
    one = ok(world.get("admin", f"/api/v1/audit/{created['id']}"))
    assert one == created
    today = utcnow().date().isoformat()
    assert ok(world.get("admin", f"/api/v1/audit?since={today}"))["total"] == page["total"]
    assert ok(world.get("admin", "/api/v1/audit?until=2000-01-01T00:00:00Z"))["total"] == 0
    assert ok(world.get("admin", "/api/v1/audit?object_type=user&actor=user:admin-1"))["total"] == 3
    response = world.get("admin", "/api/v1/audit?since=2026-01-01T00:00:00")
    assert response.status_code == 422 and response.json["error"]["code"] == "validation_error"
    assert "offset" in str(response.json["error"]["details"])
    missing = world.get("auditor", "/api/v1/audit/987654")
    assert missing.status_code == 404 and missing.json["error"]["code"] == "not_found"
    assert world.get("partner", f"/api/v1/audit/{created['id']}").status_code == 403


def test_the_api_request_id_lets_you_find_everything_one_call_did(world: World) -> None:
    response = world.patch(
        "admin", f"/api/v1/partners/{world.acme}", {"tier": "platinum", "region": "APAC"},
        headers={"X-Request-Id": "change-42"},
    )  # fmt: skip
    ok(response)
    [entry] = ok(world.get("auditor", "/api/v1/audit?request_id=change-42"))["items"]
    assert entry["before"] == {"tier": "gold", "region": "NA"}
    assert entry["after"] == {"tier": "platinum", "region": "APAC"}


# --- partner scoping in the service -------------------------------------------------------------


def test_a_partner_user_reads_only_entries_about_its_own_partner(world: World) -> None:
    acme_user = Actor("user", "77", "partner", world.acme)
    with world.sessions() as session:
        mine = session.scalars(audit.query(acme_user)).all()
        assert mine and {e.subject_partner_id for e in mine} == {world.acme}
        everything = session.scalars(audit.query(Actor("user", "1", "auditor"))).all()
        about_bolt = [e for e in everything if e.subject_partner_id == world.bolt]
        assert about_bolt and len(everything) > len(mine)
        # Asking for BOLT's entries finds nothing; BOLT's entry itself is "not found".
        assert session.scalars(audit.query(acme_user, partner_id=world.bolt)).all() == []
        with pytest.raises(Exception, match="not found") as caught:
            audit.get_entry(session, acme_user, about_bolt[0].id)
        assert type(caught.value).__name__ == "NotFound"
        assert audit.get_entry(session, acme_user, mine[0].id) == mine[0]
        nobody = Actor("user", "78", "partner", None)
        assert session.scalars(audit.query(nobody)).all() == []
        user = auth.user_by_email(session, "ada@acme.example")
        assert any(e.action == "user.create" and e.object_id == str(user.id) for e in mine)
