"""The Exports page, a job's page and its download, and the audit page's exports, as a browser
sees them. On SQLite and PostgreSQL, in the API tests' world (tests/api/test_programs_api.py)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path

import openpyxl
import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mdfledger import audit, exports
from mdfledger.actor import Actor
from mdfledger.audit import AuditEntry
from mdfledger.exports import ExportJob, job_rules
from tests.api.test_exports_api import add_exports_world, queued, user_actor
from tests.api.test_programs_api import World, build_world
from tests.audit.test_pages_and_api import browser, page_text
from tests.web.test_programs_pages import csrf_token


@pytest.fixture
def world(
    database_url: str, tmp_path: Path, session_factory: sessionmaker[Session], actor: Actor
) -> Iterator[World]:
    for built in build_world(database_url, tmp_path, session_factory, actor):
        yield add_exports_world(built)


def ask(client: FlaskClient, kind: str, **fields: str) -> object:
    data = {f"{kind}-{k}": v for k, v in {"kind": kind, **fields}.items()}
    data[f"{kind}-csrf_token"] = csrf_token(client, "/exports")
    return client.post("/exports", data=data)


def test_an_auditor_asks_for_the_journal_and_downloads_it_when_ready(world: World) -> None:
    client = browser(world, "auditor")
    page = page_text(client.get("/exports"))
    assert "<h1>Exports</h1>" in page and "No exports yet." in page
    assert "Export the journal" in page and "Export the audit log" in page
    response = ask(client, "journal", format="hledger")
    assert response.status_code == 302
    job_id = int(response.headers["Location"].rsplit("/", 1)[1])
    page = page_text(client.get(response.headers["Location"]))
    assert f"Export {job_id} asked for: journal-all.journal." in page
    with world.sessions() as session:
        job = session.get(ExportJob, job_id)
        assert job is not None and job.state == "ready"
        rows = job.rows_done
    assert f"<strong>Ready</strong>: {rows} rows" in page
    assert f'href="/exports/{job_id}/file" download>Download journal-all.journal</a>' in page
    assert "data-refresh-seconds" not in page and "exports.js" not in page
    download = client.get(f"/exports/{job_id}/file")
    assert download.status_code == 200
    out = io.StringIO()
    with world.app.extensions["mdfledger.db.read"]() as session:
        exports.export_journal(session, out, fmt="hledger")
    assert download.data == out.getvalue().encode()
    assert download.headers["Content-Disposition"] == 'attachment; filename="journal-all.journal"'
    listing = page_text(client.get("/exports"))
    assert f'<a href="/exports/{job_id}">Journal {job_id}</a>' in listing
    assert f"<strong>Ready</strong>: {rows} rows" in listing
    with world.sessions() as session:
        actions = session.scalars(
            select(AuditEntry.action)
            .where(AuditEntry.object_type == "export", AuditEntry.object_id == str(job_id))
            .order_by(AuditEntry.id)
        ).all()
    assert actions == ["export.request", "export.ready", "export.download"]


def test_a_running_jobs_page_reloads_itself_and_shows_its_progress(world: World) -> None:
    job_id = queued(world, "auditor@example.com", "journal", "beancount")
    with world.sessions() as session:
        total = session.get(ExportJob, job_id).rows_total
    page = page_text(browser(world, "auditor").get(f"/exports/{job_id}"))
    assert f"<strong>Waiting to start</strong>:\n  0 of {total} rows (0%)" in page
    assert 'data-refresh-seconds="3"' in page
    assert '<script src="/assets/exports.js" defer></script>' in page
    assert "<noscript><p>Reload this page to see its progress.</p></noscript>" in page
    assert "<script>" not in page  # nothing inline
    script = world.app.test_client().get("/assets/exports.js")
    assert script.status_code == 200 and b"data-refresh-seconds" in script.data
    # Finance may ask for journals too, so may follow it; the file is not there yet.
    finance = browser(world, "finance")
    assert finance.get(f"/exports/{job_id}").status_code == 200
    waiting = finance.get(f"/exports/{job_id}/file")
    assert waiting.status_code == 409
    assert f"export {job_id} is still being prepared: 0 of {total} rows" in page_text(waiting)


def test_bad_choices_are_refused_on_the_page_and_nothing_is_asked_for(world: World) -> None:
    client = browser(world, "finance")
    before = world.count(ExportJob), world.count(AuditEntry)
    response = ask(client, "journal", format="csv")
    assert response.status_code == 422
    assert "Format: Not a valid choice." in page_text(response)
    response = ask(client, "audit", format="csv", since="2026-03-01", until="2026-02-01")
    assert response.status_code == 422
    assert "the date range ends before it starts" in page_text(response)
    assert (world.count(ExportJob), world.count(AuditEntry)) == before


def test_partners_see_their_own_exports_only(world: World) -> None:
    partner = browser(world, "partner")
    page = page_text(partner.get("/exports"))
    assert "<h1>My exports</h1>" in page
    assert "Export the journal" not in page and "Export the audit log" not in page
    assert f'<a href="/exports/{world.export}">Statement {world.export}</a>' in page
    assert partner.get(f"/exports/{world.export}/file").status_code == 200
    staff_job = queued(world, "auditor@example.com", "journal", "hledger")
    for path in (f"/exports/{staff_job}", f"/exports/{staff_job}/file"):
        assert partner.get(path).status_code == 404
    bolts = queued(world, "bo@bolt.example", "statement", "csv", **_statement_dates())
    assert partner.get(f"/exports/{bolts}").status_code == 404
    refused = ask(partner, "journal", format="hledger")
    assert refused.status_code == 422 and "choose an export" in page_text(refused)


def _statement_dates() -> dict[str, str]:
    from mdfledger.clock import utcnow

    today = utcnow().date()
    return {"start": today.replace(day=1).isoformat(), "end": today.isoformat()}


# --- the audit page's exports --------------------------------------------------------------------


def test_the_audit_page_exports_its_filtered_entries(world: World) -> None:
    client = browser(world, "auditor")
    page = page_text(client.get("/audit?partner=ACME&action=allocation"))
    assert "These entries, oldest first, with their chain hashes:" in page
    csv_link = re.search(r'<a href="([^"]+)" download>Export CSV</a>', page)
    xlsx_link = re.search(r'<a href="([^"]+)">Export XLSX</a>', page)
    assert csv_link and xlsx_link
    assert csv_link.group(1) == "/audit/export?format=csv&partner=ACME&action=allocation"
    response = client.get(csv_link.group(1))
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    with world.sessions() as session:
        shown = session.scalars(
            audit.query(user_actor(world, "auditor@example.com"), action="allocation",
                        partner_id=world.acme)
        ).all()  # fmt: skip
    assert [int(r["id"]) for r in rows] == [e.id for e in reversed(shown)]
    assert response.headers["Content-Disposition"] == 'attachment; filename="audit-log.csv"'
    small = client.get(xlsx_link.group(1))
    assert small.status_code == 200
    sheet = openpyxl.load_workbook(io.BytesIO(small.data), read_only=True)["Audit log"]
    assert [r[0] for r in sheet.iter_rows(min_row=2, values_only=True)] == [
        int(r["id"]) for r in rows
    ]


def test_a_large_xlsx_export_becomes_a_background_job(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(job_rules, "DIRECT_MAX_ROWS", 1)
    client = browser(world, "finance")
    response = client.get("/audit/export?format=xlsx&partner=ACME")
    assert response.status_code == 302
    page = page_text(client.get(response.headers["Location"]))
    assert "so it is being prepared in the background" in page
    assert "<h1>Audit log export" in page and "<strong>Ready</strong>" in page
    assert "partner id: " in page


def test_a_bad_filter_on_export_goes_back_to_the_page_with_the_message(world: World) -> None:
    client = browser(world, "auditor")
    response = client.get("/audit/export?format=csv&partner=NOPE")
    assert response.status_code == 302
    assert response.headers["Location"] == "/audit?partner=NOPE"
    page = page_text(client.get(response.headers["Location"]))
    assert "Not exported: unknown partner 'NOPE'" in page
    assert browser(world, "partner").get("/audit/export").status_code == 403
