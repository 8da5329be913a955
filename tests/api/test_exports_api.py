"""Export jobs and the audit log export over the API: ask (202), follow, download; 409 while not
ready or failed, 410 once expired; bad input is 422 and creates nothing; other people's jobs
are 404. On SQLite and PostgreSQL, in the API tests' world (tests/api/test_programs_api.py)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mdfledger import exports
from mdfledger.actor import Actor
from mdfledger.audit import AuditEntry
from mdfledger.auth.models import User
from mdfledger.clock import utcnow
from mdfledger.exports import ExportJob, files
from tests.api.test_api_foundation import assert_error
from tests.api.test_programs_api import World, build_world, ok


@pytest.fixture
def world(
    database_url: str, tmp_path: Path, session_factory: sessionmaker[Session], actor: Actor
) -> Iterator[World]:
    for built in build_world(database_url, tmp_path, session_factory, actor):
        yield add_exports_world(built)


def user_actor(world: World, email: str) -> Actor:
    with world.sessions() as session:
        user = session.scalars(select(User).where(User.email == email)).one()
        return Actor("user", str(user.id), user.role, user.partner_id)


def run(world: World, job_id: int, **kwargs: Any) -> str | None:
    app = world.app
    return exports.run_export(
        app.extensions["mdfledger.db"], app.extensions["mdfledger.db.read"],
        app.extensions[files.APP_KEY], job_id, **kwargs,
    )  # fmt: skip


def queued(world: World, email: str, kind: str, fmt: str, **params: Any) -> int:
    """A job asked for outside a request: queued, not run (the test's sessions run nothing)."""
    with world.sessions() as session:
        job = exports.request_export(session, user_actor(world, email), kind, fmt, params)
        session.commit()
        return job.id


def add_exports_world(world: World) -> World:
    """A ready statement export of ACME's user ("export"): any role may fetch it (staff may
    ask for statements too)."""
    today = utcnow().date()
    job_id = queued(
        world, "ada@acme.example", "statement", "csv",
        start=(today - timedelta(days=30)).isoformat(), end=today.isoformat(),
    )  # fmt: skip
    assert run(world, job_id) == "ready"
    world.ids["export"] = job_id
    return world


def journal_now(world: World, fmt: str, as_of: str) -> bytes:
    out = io.StringIO()
    with world.app.extensions["mdfledger.db.read"]() as session:
        exports.export_journal(session, out, fmt=fmt, as_of=exports.parse_as_of(as_of))
    return out.getvalue().encode()


def test_an_export_asked_for_runs_and_its_file_downloads(world: World) -> None:
    body = {"kind": "journal", "format": "beancount", "params": {"as_of": "2099-12-31"}}
    job = ok(world.post("auditor", "/api/v1/exports", body), 202)
    # The embedded default ran it right after the commit.
    assert job["state"] == "ready"
    assert (job["kind"], job["label"], job["format"]) == ("journal", "Journal", "beancount")
    assert job["params"] == {"as_of": "2099-12-31T23:59:59.999999+00:00"}
    assert job["rows_done"] == job["rows_total"] > 0
    assert job["progress"] == f"{job['rows_done']} of {job['rows_total']} rows (100%)"
    assert job["filename"] == "journal-20991231T235959Z.beancount"
    assert job["download_url"] == f"/api/v1/exports/{job['id']}/file"
    assert job["error"] is None and job["expires_at"] is not None
    again = ok(world.get("auditor", f"/api/v1/exports/{job['id']}"))
    assert again == job
    response = world.get("auditor", job["download_url"])
    assert response.status_code == 200
    assert response.data == journal_now(world, "beancount", "2099-12-31")
    assert response.headers["Content-Disposition"] == (
        'attachment; filename="journal-20991231T235959Z.beancount"'
    )
    assert int(response.headers["Content-Length"]) == job["file_size"] == len(response.data)
    assert "no-store" in response.headers["Cache-Control"]
    # Finance (may ask for journals too) may fetch it; each download is in the audit log.
    assert world.get("finance", job["download_url"]).data == response.data
    with world.sessions() as session:
        downloads = session.scalars(
            select(AuditEntry.actor).where(AuditEntry.action == "export.download")
        ).all()
    assert len(downloads) == 2
    mine = ok(world.get("auditor", "/api/v1/exports"))
    assert [j["id"] for j in mine["items"]] == [job["id"]] and mine["total"] == 1
    assert ok(world.get("finance", "/api/v1/exports"))["items"] == []


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"kind": "ledger"}, "kind", "kind must be one of audit, journal, statement"),
        ({"kind": "journal", "format": "csv"}, "format", "a journal exports as hledger, beancount"),
        ({"kind": "journal", "params": {"as_of": "soon"}}, "as_of", "'soon' is not a date"),
        ({"kind": "audit", "params": {"partner_id": "x"}}, "partner_id", "partner must be"),
    ],
)
def test_bad_requests_are_422_and_create_nothing(
    world: World, body: dict[str, Any], field: str, message: str
) -> None:
    before = world.count(ExportJob), world.count(AuditEntry)
    response = world.post("finance", "/api/v1/exports", body)
    assert_error(response, 422, "invalid")
    assert response.json["error"]["message"].startswith(message)
    assert response.json["error"]["details"]["field"] == field
    missing = world.post("finance", "/api/v1/exports", {"format": "csv"})
    assert_error(missing, 422, "validation_error")
    assert (world.count(ExportJob), world.count(AuditEntry)) == before


def test_a_partner_may_not_ask_for_the_journal_or_see_others_exports(world: World) -> None:
    before = world.count(ExportJob)
    refused = world.post("partner", "/api/v1/exports", {"kind": "journal"})
    assert_error(refused, 403, "forbidden")
    assert world.count(ExportJob) == before
    staff_job = queued(world, "auditor@example.com", "journal", "hledger")
    for role, path in (
        ("partner", f"/api/v1/exports/{staff_job}"),
        ("partner", f"/api/v1/exports/{staff_job}/file"),
        ("bolt", f"/api/v1/exports/{world.export}"),
        ("bolt", f"/api/v1/exports/{world.export}/file"),
    ):
        response = world.get(role, path)
        assert_error(response, 404, "not_found")
    assert [j["id"] for j in ok(world.get("partner", "/api/v1/exports"))["items"]] == [world.export]
    assert ok(world.get("bolt", "/api/v1/exports"))["total"] == 0


def test_the_file_is_409_until_ready_409_when_failed_and_410_once_expired(world: World) -> None:
    job_id = queued(world, "auditor@example.com", "journal", "hledger")
    waiting = world.get("auditor", f"/api/v1/exports/{job_id}/file")
    assert_error(waiting, 409, "export_not_ready")
    assert "is still being prepared: 0 of" in waiting.json["error"]["message"]
    assert ok(world.get("auditor", f"/api/v1/exports/{job_id}"))["download_url"] is None

    failed = queued(world, "auditor@example.com", "journal", "hledger")
    with world.sessions() as session:
        session.get(User, int(user_actor(world, "auditor@example.com").id)).disabled_at = utcnow()
        session.commit()
    assert run(world, failed) == "failed"
    with world.sessions() as session:
        session.get(User, int(user_actor(world, "auditor@example.com").id)).disabled_at = None
        session.commit()
    response = world.get("auditor", f"/api/v1/exports/{failed}/file")
    assert_error(response, 409, "export_failed")
    assert response.json["error"]["message"] == (
        f"export {failed} failed: the user who asked for this export can no longer sign in"
    )

    assert run(world, job_id) == "ready"
    ctx = world.app.extensions["mdfledger.jobs"][0]
    exports.export_upkeep(
        ctx.sessions, ctx.read_sessions, ctx.files, now=utcnow() + timedelta(days=8)
    )
    gone = world.get("auditor", f"/api/v1/exports/{job_id}/file")
    assert_error(gone, 410, "export_expired")
    assert ok(world.get("auditor", f"/api/v1/exports/{job_id}"))["state"] == "expired"


def test_the_audit_log_exports_as_csv_and_xlsx_with_the_lists_filters(world: World) -> None:
    query = f"partner_id={world.acme}&action=allocation"
    listed = ok(world.get("auditor", f"/api/v1/audit?{query}"))["items"]
    response = world.get("auditor", f"/api/v1/audit/export?{query}")
    assert response.status_code == 200
    assert response.content_type == "text/csv; charset=utf-8"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [int(r["id"]) for r in rows] == [e["id"] for e in reversed(listed)]
    assert [r["hash"] for r in rows] == [e["hash"] for e in reversed(listed)]
    assert {r["partner"] for r in rows} == {"ACME"}
    xlsx = world.get("finance", f"/api/v1/audit/export?format=xlsx&{query}")
    assert xlsx.status_code == 200
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx.data), read_only=True)["Audit log"]
    ids = [r[0] for r in sheet.iter_rows(min_row=2, values_only=True)]
    assert ids == [int(r["id"]) for r in rows]
    assert_error(world.get("auditor", "/api/v1/audit/export?format=pdf"), 422, "validation_error")
    assert_error(world.get("partner", "/api/v1/audit/export"), 403, "forbidden")
    with world.sessions() as session:
        recorded = session.scalars(
            select(AuditEntry.summary).where(AuditEntry.action == "export.download")
        ).all()
    assert len(recorded) == 2 and all("Audit log" in s for s in recorded)


def test_the_openapi_document_describes_the_export_routes(world: World) -> None:
    document = ok(world.get(None, "/api/v1/openapi.json"))
    paths = document["paths"]
    post = paths["/api/v1/exports"]["post"]
    assert set(post["responses"]) >= {"202", "401", "403", "404", "422"}
    assert "requestBody" in post
    download = paths["/api/v1/exports/{export_id}/file"]["get"]
    assert set(download["responses"]) >= {"200", "401", "403", "404", "409", "410"}
    assert "text/csv" in download["responses"]["200"]["content"]
    assert "ExportJob" in document["components"]["schemas"]
