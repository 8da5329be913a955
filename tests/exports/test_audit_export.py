"""The audit log exported: CSV and XLSX hold exactly the entries the page's filters find, oldest
first, and every row's hash recomputes from the row itself (a full export: the whole chain
from its start). The `mdfledger export audit` command. On SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
from datetime import date
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from mdfledger import audit, create_app, exports
from mdfledger.actor import Actor
from mdfledger.audit import AuditEntry
from mdfledger.audit.service import entry_hash
from mdfledger.errors import Forbidden, ValidationError
from mdfledger.exports import audit_log
from mdfledger.programs.models import Partner
from tests.exports.test_jobs import ADMIN, Book, book  # noqa: F401  (the fixture)

GENESIS = "0" * 64


def export(b: Book, reader: Actor, fmt: str, **filters: Any) -> bytes:
    out = io.BytesIO()
    with b.reads() as session:
        prepared = exports.prepare(session, reader, "audit", fmt, filters)
        prepared.kind.write(session, reader, prepared.params, fmt, out, lambda d, t: None)
    return out.getvalue()


def csv_rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"))))


def _int(text: str) -> int | None:
    return int(text) if text else None


def recomputed(row: dict[str, str]) -> str:
    """The row's hash, recomputed from its cells alone as the module docstring tells auditors."""
    fields = {
        "id": int(row["id"]), "at": row["at"], "actor": row["actor"],
        "actor_kind": row["actor_kind"], "role": row["role"] or None,
        "partner_id": _int(row["actor_partner_id"]), "action": row["action"],
        "object_type": row["object_type"], "object_id": row["object_id"],
        "subject_partner_id": _int(row["subject_partner_id"]), "summary": row["summary"],
        "before": row["before"] or None, "after": row["after"] or None,
        "request_id": row["request_id"] or None,
    }  # fmt: skip
    return entry_hash(row["previous_hash"], fields)


def entries(session: Session, actor: Actor, **filters: Any) -> list[AuditEntry]:
    return list(reversed(session.scalars(audit.query(actor, **filters)).all()))


def test_a_full_csv_export_is_every_entry_and_its_chain_recomputes(book: Book) -> None:  # noqa: F811
    rows = csv_rows(export(book, book.auditor, "csv"))
    assert list(rows[0]) == list(audit_log.COLUMNS)
    with book.sessions() as session:
        stored = entries(session, book.auditor)
    assert [int(r["id"]) for r in rows] == [e.id for e in stored] == list(range(1, len(rows) + 1))
    previous = GENESIS
    for row, entry in zip(rows, stored, strict=True):
        assert row["previous_hash"] == previous
        assert recomputed(row) == row["hash"] == entry.hash
        assert (row["summary"], row["before"], row["after"]) == (
            entry.summary, entry.before or "", entry.after or "",
        )  # fmt: skip
        previous = row["hash"]
    # People: e-mail addresses for users, partner codes for what an entry is about.
    allocations = [r for r in rows if r["action"] == "allocation.create"]
    assert [r["partner"] for r in allocations] == ["ACME"] * 5 + ["BOLT"]
    assert all(r["who"] == "" and r["actor"] == "user:finance-1" for r in allocations)
    created = [r for r in rows if r["action"] == "user.create"]
    assert {r["object_id"] for r in created} >= {book.auditor.id}


def test_a_filtered_export_holds_what_the_page_shows_and_each_row_verifies(
    book: Book,  # noqa: F811
) -> None:
    with book.sessions() as session:
        acme = session.scalar(select(Partner.id).where(Partner.code == "ACME"))
        # The filters as the page takes them: a partner code and an e-mail address.
        shown = entries(session, book.auditor, partner_id=acme, action="allocation")
    rows = csv_rows(export(book, book.finance, "csv", partner="ACME", action="allocation"))
    assert [int(r["id"]) for r in rows] == [e.id for e in shown] and len(rows) == 5
    for row in rows:
        assert row["previous_hash"] != GENESIS  # the entry before it is not in the file ...
        assert recomputed(row) == row["hash"]  # ... but its hash is, so the row still checks
    # Altering any cell breaks its row's hash.
    tampered = dict(rows[0], summary=rows[0]["summary"].replace("10.00", "100.00"))
    assert tampered["summary"] != rows[0]["summary"]
    assert recomputed(tampered) != rows[0]["hash"]
    with book.sessions() as session:
        audit.record(
            session, book.finance, "note.add", object_type="note", object_id=7, summary="Noted"
        )
        session.commit()
    [by_email] = csv_rows(export(book, book.auditor, "csv", actor="FIN@example.com"))
    assert (by_email["who"], by_email["actor"], by_email["role"], by_email["summary"]) == (
        "fin@example.com", book.finance.label, "finance", "Noted",
    )  # fmt: skip
    assert recomputed(by_email) == by_email["hash"]


def test_xlsx_holds_the_same_rows_and_formulas_stay_text(book: Book) -> None:  # noqa: F811
    with book.sessions() as session:
        audit.record(
            session, Actor.system("test"), "note.add", object_type="note", object_id=1,
            summary='=HYPERLINK("https://evil.example","open me")',
        )  # fmt: skip
        session.commit()
    data = export(book, book.auditor, "xlsx")
    sheet = openpyxl.load_workbook(io.BytesIO(data), read_only=True)["Audit log"]
    cells = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert tuple(cells[0]) == audit_log.COLUMNS
    rows = csv_rows(export(book, book.auditor, "csv"))
    assert len(cells) == len(rows) + 1
    for row, values in zip(rows, cells[1:], strict=True):
        assert ["" if v is None else str(v) for v in values] == list(row.values())
    formula = openpyxl.load_workbook(io.BytesIO(data))["Audit log"].cell(len(cells), 10)
    assert formula.value == '=HYPERLINK("https://evil.example","open me")'
    assert formula.data_type == "s"


def test_partners_never_export_the_audit_log(book: Book) -> None:  # noqa: F811
    with book.reads() as session, pytest.raises(Forbidden):
        exports.prepare(session, book.partner, "audit", "csv", {})


def test_the_export_audit_command(book: Book, database_url: str, tmp_path: Path) -> None:  # noqa: F811
    app = create_app({"database_url": database_url, "env": "test", "instance_path": tmp_path})
    runner = app.test_cli_runner()
    target = tmp_path / "acme.xlsx"
    result = runner.invoke(
        args=["export", "audit", "--partner", "ACME", "--action", "allocation", "--format",
              "xlsx", "--output", str(target)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output == f"wrote 5 audit entries to {target}\n"
    sheet = openpyxl.load_workbook(target, read_only=True)["Audit log"]
    assert [r[8] for r in sheet.iter_rows(min_row=2, values_only=True)] == ["ACME"] * 5
    target = tmp_path / "all.csv"
    assert runner.invoke(args=["export", "audit", "-o", str(target)]).exit_code == 0
    assert csv_rows(target.read_bytes()) == csv_rows(export(book, book.auditor, "csv"))
    bad = runner.invoke(args=["export", "audit", "--partner", "NOPE", "-o", str(target)])
    assert bad.exit_code != 0 and "unknown partner 'NOPE'" in bad.output
    app.extensions["mdfledger.db"].kw["bind"].dispose()


@pytest.mark.parametrize(
    ("field", "value"),
    [("since", "0001-01-01T00:00:00+01:00"), ("until", "9999-12-31T23:00:00-05:00")],
)
def test_times_out_of_range_are_refused_naming_the_field(
    book: Book,  # noqa: F811
    field: str,
    value: str,
) -> None:
    with book.reads() as session, pytest.raises(ValidationError) as refused:
        exports.prepare(session, ADMIN, "audit", "csv", {field: value})
    assert refused.value.details["field"] == field and "out of range" in refused.value.message
    with book.reads() as session, pytest.raises(ValidationError):
        session.scalars(audit.query(ADMIN, until=date(9999, 12, 31))).all()
