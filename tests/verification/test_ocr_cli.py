"""`mdfledger ocr-invoice` shows finance what the invoice check read; `verification rules`
shows and changes a program's rules."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from mdfledger import create_app, verification
from mdfledger.demo_proof import invoice_pdf
from mdfledger.verification import invoice_samples
from tests.claims.conftest import Desk


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Flask:
    return create_app({"database_url": database_url, "env": "test", "instance_path": tmp_path})


def test_ocr_invoice_prints_each_field_with_its_confidence_and_line(app: Flask, tmp_path: Path):
    path = tmp_path / "invoice.pdf"
    path.write_bytes(invoice_pdf(
        issuer="Stagecast Inc.", number="SC-4100", issued=date(2026, 8, 3), bill_to="Acme",
        items=(("Webinar platform", 123_456),),
    ))  # fmt: skip
    runner = app.test_cli_runner()
    shown = runner.invoke(args=["ocr-invoice", str(path)])
    assert shown.exit_code == 0, shown.output
    assert "1 of 1 page(s) read by text" in shown.output
    assert "Stagecast Inc." in shown.output and "SC-4100" in shown.output
    assert "1234.56" in shown.output and "<- 'Total 1234.56 USD'" in shown.output
    found = json.loads(runner.invoke(args=["ocr-invoice", str(path), "--json"]).output)
    assert (found["total"]["value"], found["currency"]["value"]) == (123_456, "USD")
    assert found["issued_on"]["value"] == "2026-08-03"


def test_ocr_invoice_reads_a_scan_and_refuses_bad_files_with_the_reason(app: Flask, tmp_path: Path):
    runner = app.test_cli_runner()
    scan = next(s for s in invoice_samples.generate(6, seed=7) if s.media_type == "image/png")
    (tmp_path / "scan.png").write_bytes(scan.data)
    read = runner.invoke(args=["ocr-invoice", str(tmp_path / "scan.png"), "--json"])
    assert json.loads(read.output)["method"] == "ocr"
    (tmp_path / "locked.pdf").write_bytes(invoice_samples.encrypted_pdf())
    locked = runner.invoke(args=["ocr-invoice", str(tmp_path / "locked.pdf")])
    assert locked.exit_code == 1 and "encrypted" in locked.output
    missing = runner.invoke(args=["ocr-invoice", str(tmp_path / "nowhere.pdf")])
    assert missing.exit_code != 0 and "nowhere.pdf" in missing.output


def test_verification_rules_are_shown_and_changed(app: Flask, session: Session, desk: Desk):
    session.commit()
    runner = app.test_cli_runner()
    shown = runner.invoke(args=["verification", "rules", "MDF26"])
    assert "never (finance decides every claim)" in shown.output
    changed = runner.invoke(args=[
        "verification", "rules", "MDF26", "--auto-approve-up-to", "500.00", "--marker",
        "{partner}", "--marker", "Q3-CLOUD", "--min-leads", "50",
    ])  # fmt: skip
    assert changed.exit_code == 0, changed.output
    assert "up to 500.00 USD" in changed.output and "{partner}, Q3-CLOUD" in changed.output
    bad = runner.invoke(args=["verification", "rules", "MDF26", "--tolerance", "20000"])
    assert bad.exit_code == 1 and "tolerance bp must be a whole number" in bad.output
    with app.app_context():
        from mdfledger.db import get_read_session

        policy = verification.policy_of(get_read_session(), desk.mdf.id)
    assert (policy.auto_approve_up_to, policy.min_leads, policy.tolerance_bp) == (50_000, 50, 100)
