"""The statements page and its downloads, as readers see them: staff choose a partner, a program
or an account; a partner sees their own statement at once and nobody else's; bad dates are
explained beside the field (422); long statements go on with "Next lines". On SQLite and
PostgreSQL. The world is the request pages' (tests/web/test_requests_pages.py).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pypdfium2
import pytest
from openpyxl import load_workbook
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mdfledger.ledger.models import Account
from mdfledger.web import statements as page_module
from tests.web.test_requests_pages import World, approve, build_world, propose, text, visible


@pytest.fixture
def world(
    database_url: str, tmp_path: Path, session_factory: sessionmaker[Session]
) -> Iterator[World]:
    for built in build_world(database_url, tmp_path, session_factory):
        approve(built, propose(built))  # a reservation on ACME's fund
        yield built


def _fund(world: World, partner_id: int) -> int:
    with world.sessions() as session:
        found = session.scalar(
            select(Account.id).where(
                Account.partner_id == partner_id, Account.kind == "partner_fund"
            )
        )
    assert found is not None
    return found


RANGE = "start=2020-01-01&end=2029-12-31"


def test_staff_choose_a_statement_and_read_it_with_references(world: World) -> None:
    client = world.client("auditor")
    form = client.get("/statements")
    assert form.status_code == 200
    assert "Show statement" in text(form) and "Opening balance" not in text(form)
    response = client.get(f"/statements?partner=ACME&{RANGE}")
    assert response.status_code == 200
    seen = visible(response)
    assert "Partner ACME (Acme Networks)" in seen
    assert "Opening balance (before 2020-01-01) 0.00 0.00 0.00" in seen
    assert "Allocation" in seen and "plan" in seen  # the allocation's reason
    reservation = re.search(
        r'<a href="/requests/(\d+)">Fund request #(\d+) reserved</a>', text(response)
    )
    assert reservation and reservation[1] == reservation[2]
    assert f'<a href="/partners/{world.acme}">Allocation</a>' in text(response)
    # ACME's fund: 20,000.00 allocated, 2,000.00 of it held for the request.
    assert "Closing balance (end of 2029-12-31) -2,000.00 20,000.00 18,000.00" in seen
    for fmt in ("csv", "xlsx", "pdf"):
        assert f"/statements/file.{fmt}?" in text(response)
    assert "Bolt Systems: MDF" not in seen  # (the partner suggestions name every partner)


def test_a_partner_sees_their_own_statement_and_nobody_elses(world: World) -> None:
    client = world.client("partner")
    mine = client.get("/statements")
    assert mine.status_code == 200
    seen = visible(mine)
    assert "My statement" in seen and "Partner ACME (Acme Networks)" in seen
    assert "Partner code" not in seen  # no choosing another partner
    assert "Bolt Systems: MDF" not in seen  # (the partner suggestions name every partner)
    bolt_fund = _fund(world, world.bolt)
    for path in (
        f"/statements?partner=BOLT&{RANGE}",
        f"/statements?partner=NOBODY&{RANGE}",
        f"/statements?account={bolt_fund}&{RANGE}",
        f"/statements/file.csv?partner=BOLT&{RANGE}",
        f"/statements/file.pdf?account={bolt_fund}&{RANGE}",
    ):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "Bolt" not in text(response)
    own = client.get(f"/statements?account={_fund(world, world.acme)}&{RANGE}")
    assert own.status_code == 200 and "20,000.00" in visible(own)


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("partner=ACME&start=2026-03-31&end=2026-03-01", "start", "after it ends"),
        ("partner=ACME&start=2026-02-30&end=2026-03-01", "start", "a date such as 2026-03-31"),
        ("partner=NOPE&start=2026-01-01&end=2026-03-01", "partner", "partner 'NOPE' not found"),
        ("account=abc&start=2026-01-01&end=2026-03-01", "account", "type its number"),
        ("start=2026-01-01&end=2026-03-01&as_of=someday", "as_of", "not a date"),
    ],
)
def test_bad_questions_are_explained_beside_the_field(
    world: World, query: str, field: str, message: str
) -> None:
    response = world.client("finance").get(f"/statements?{query}")
    assert response.status_code == 422
    page = text(response)
    error = re.search(rf'<p id="statement-{field}-error" class="field-error">(.*?)</p>', page)
    assert error and message in error[1].replace("&#39;", "'")
    assert "Opening balance" not in page
    download = world.client("finance").get(f"/statements/file.csv?{query}")
    assert download.status_code == 422


def test_the_downloads_hold_the_whole_statement(world: World) -> None:
    client = world.client("partner")
    csv_response = client.get(f"/statements/file.csv?{RANGE}")
    assert csv_response.status_code == 200
    assert csv_response.mimetype == "text/csv"
    assert (
        'filename="statement-partner-ACME-2020-01-01-2029-12-31.csv"'
        in (csv_response.headers["Content-Disposition"])
    )
    head, _, table = csv_response.get_data().decode("utf-8-sig").partition("\r\n\r\n")
    assert dict(csv.reader(io.StringIO(head)))["Statement"] == "Partner ACME (Acme Networks)"
    rows = list(csv.DictReader(io.StringIO(table)))
    # The fund (allocation, reservation), then the claims payable (the reservation coming in).
    records = ["opening", "line", "line", "closing", "opening", "line", "closing"]
    assert [r["record"] for r in rows] == records
    assert (rows[3]["balance"], rows[3]["available"]) == ("20000.00", "18000.00")
    assert (rows[5]["reserved"], rows[6]["balance"]) == ("2000.00", "0.00")
    xlsx = client.get(f"/statements/file.xlsx?{RANGE}")
    sheet = load_workbook(io.BytesIO(xlsx.get_data()), read_only=True).active
    assert [r[0] for r in sheet.iter_rows(values_only=True) if r][-1] == "closing"
    pdf = pypdfium2.PdfDocument(client.get(f"/statements/file.pdf?{RANGE}").get_data())
    words = pdf[0].get_textpage().get_text_range()
    pdf.close()
    assert "Statement: Partner ACME (Acme Networks)" in words and "20,000.00" in words
    assert client.get(f"/statements/file.doc?{RANGE}").status_code == 404


def test_long_statements_go_on_with_next_lines(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(page_module, "PAGE_LINES", 1)
    client = world.client("finance")
    first = client.get(f"/statements?partner=ACME&{RANGE}")
    seen = visible(first)
    assert "more lines on the next page" in seen and "Closing balance" not in seen
    link = re.search(r'<a href="([^"]+)" rel="next">Next lines</a>', text(first))
    assert link
    second = client.get(link[1].replace("&amp;", "&"))
    seen = visible(second)
    assert "Brought forward from the previous page 20,000.00" in seen
    assert "Fund request #" in seen and "Closing balance" in seen
    assert "Back to the start" in seen


def test_the_partner_and_program_pages_link_to_their_statements(world: World) -> None:
    client = world.client("finance")
    assert "/statements?partner=ACME" in text(client.get(f"/partners/{world.acme}"))
    assert f"/statements?program={world.mdf}" in text(client.get(f"/programs/{world.mdf}"))
    program = client.get(f"/statements?program={world.mdf}&{RANGE}")
    assert "Program MDF26 (MDF 2026)" in visible(program)
    assert "Budget funding" in visible(program)


def test_a_large_pdf_is_prepared_in_the_background_and_downloads_are_audited(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mdfledger.audit import AuditEntry
    from mdfledger.exports import job_rules

    client = world.client("partner")
    assert client.get(f"/statements/file.csv?{RANGE}").status_code == 200
    monkeypatch.setattr(job_rules, "DIRECT_MAX_ROWS", 1)  # every statement here is "large"
    response = client.get(f"/statements/file.pdf?{RANGE}")
    assert response.status_code == 302 and "/exports/" in response.headers["Location"]
    job_page = visible(client.get(response.headers["Location"]))
    job_id = response.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
    # The inline runner ran it after the commit: the page offers the file.
    assert "Download statement-partner-ACME-2020-01-01-2029-12-31.pdf" in job_page
    pdf_file = client.get(f"/exports/{job_id}/file")
    assert pdf_file.status_code == 200
    pdf = pypdfium2.PdfDocument(pdf_file.get_data())
    assert "Statement: Partner ACME (Acme Networks)" in pdf[0].get_textpage().get_text_range()
    pdf.close()
    assert world.client("partner_b").get(f"/exports/{job_id}/file").status_code == 404
    with world.sessions() as session:
        actions = session.scalars(
            select(AuditEntry.action).where(AuditEntry.action.like("export.%"))
        ).all()
    assert actions.count("export.download") == 2 and "export.request" in actions
