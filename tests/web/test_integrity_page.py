"""The integrity page: auditors read the report on screen and download it as text; partners
never see it. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from tests.web.test_requests_pages import World, build_world, visible


@pytest.fixture
def world(
    database_url: str, tmp_path: Path, session_factory: sessionmaker[Session]
) -> Iterator[World]:
    yield from build_world(database_url, tmp_path, session_factory)


def test_auditors_read_and_download_the_integrity_report(world: World) -> None:
    with world.sessions() as session:
        head = session.execute(text("SELECT id, hash FROM ledger_transfers ORDER BY id DESC"))
        head_id, head_hash = head.first()
    auditor = world.client("auditor")
    page = visible(auditor.get("/integrity"))
    assert "Intact: every balance and every hash recomputed and matched." in page
    assert f"transfer {head_id} {head_hash}" in page
    assert "Totals per currency" in page and "USD" in page

    download = auditor.get("/integrity.txt")
    assert download.status_code == 200 and download.mimetype == "text/plain"
    assert 'attachment; filename="integrity-' in download.headers["Content-Disposition"]
    lines = download.get_data(as_text=True).splitlines()
    assert f"  chain head: transfer {head_id}, hash {head_hash}" in lines
    assert lines[-1] == "result: INTACT"


def test_partners_never_see_it(world: World) -> None:
    partner = world.client("partner")
    assert partner.get("/integrity").status_code in (403, 404)
    assert partner.get("/integrity.txt").status_code in (403, 404)
