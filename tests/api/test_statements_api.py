"""Statements over the API: JSON pages that reconcile and continue exactly, files in three
formats, a partner token's own statement only, bad input as 422, and the OpenAPI document.
On SQLite and PostgreSQL. The world is the programs API's (tests/api/test_programs_api.py).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pypdfium2
import pytest
from openpyxl import load_workbook
from sqlalchemy.orm import Session, sessionmaker

from mdfledger import ledger
from mdfledger.actor import Actor
from mdfledger.clock import utcnow
from tests.api.test_api_foundation import answer, assert_error, unresolved_refs
from tests.api.test_programs_api import World, build_world, ok


@pytest.fixture
def world(
    database_url: str, tmp_path: Path, session_factory: sessionmaker[Session], actor: Actor
) -> Iterator[World]:
    yield from build_world(database_url, tmp_path, session_factory, actor)


def _range() -> dict[str, str]:
    day = utcnow().date()
    return {"start": f"{day.year - 1}-01-01", "end": f"{day.year + 1}-12-31"}


def _get(world: World, role: str, **query: Any) -> Any:
    return world.get(role, "/api/v1/statements", query_string={**_range(), **query})


def test_a_partners_statement_reconciles_to_the_cent(world: World) -> None:
    body = ok(_get(world, "auditor", partner_id=world.acme))
    assert body["subject"] == {
        "type": "partner", "id": world.acme, "label": "Partner ACME (Acme Networks)",
        "program_id": None,
    }  # fmt: skip
    assert body["next"] is None and body["high_water"] > 0
    # ACME's MDF27 fund (1500.00 allocated) and its JP27 fund (5000 yen, from an import).
    by_currency = {a["currency"]: a for a in body["accounts"]}
    usd, jpy = by_currency["USD"], by_currency["JPY"]
    assert (usd["opening"]["balance"], usd["closing"]["balance"]) == ("0.00", "1500.00")
    [line] = usd["lines"]
    assert (line["amount"], line["balance"], line["code"]) == ("1500.00", "1500.00", "allocation")
    assert line["reference"] == {"type": "partner", "id": str(world.acme), "label": "Allocation"}
    assert line["description"] == "Launch" and line["side"] == "credit"
    assert jpy["closing"] == {"balance": "5000", "reserved": "0", "available": "5000"}
    assert jpy["lines"][0]["reference"]["label"] == f"Allocation from import #{world.imp}"
    with world.sessions() as session:
        for account in body["accounts"]:
            expected = ledger.balance(session, account["account_id"])
            total = Decimal(account["opening"]["balance"]) + sum(
                Decimal(x["amount"]) for x in account["lines"]
            )
            assert total == Decimal(account["closing"]["balance"])
            assert account["closing"]["balance"] == _decimal(expected.posted, account["currency"])


def _decimal(minor: int, currency: str) -> str:
    from mdfledger.money import format_amount

    return format_amount(minor, currency)


def test_pages_continue_with_the_cursor_and_a_partner_gets_its_own(world: World) -> None:
    first = ok(_get(world, "partner", limit=1))
    assert first["subject"]["id"] == world.acme and first["next"]
    lines = [ln for a in first["accounts"] for ln in a["lines"]]
    cursor, pages = first["next"], 1
    while cursor:
        page = ok(_get(world, "partner", limit=1, after=cursor))
        assert page["high_water"] == first["high_water"]
        lines += [ln for a in page["accounts"] for ln in a["lines"]]
        cursor, pages = page["next"], pages + 1
    whole = ok(_get(world, "partner"))
    assert lines == [ln for a in whole["accounts"] for ln in a["lines"]] and pages >= 2
    narrowed = ok(_get(world, "partner", program_id=world.yen))
    assert {a["currency"] for a in narrowed["accounts"]} == {"JPY"}


def test_another_partners_statement_is_not_found_like_nothing_at_all(world: World) -> None:
    theirs = _get(world, "partner", partner_id=world.bolt)
    nowhere = _get(world, "partner", partner_id=999)
    assert_error(theirs, 404, "not_found")
    assert answer(theirs) == answer(nowhere).replace("999", str(world.bolt))
    assert "Bolt" not in theirs.get_data(as_text=True)
    bolt_account = ok(_get(world, "auditor", partner_id=world.bolt))["accounts"][0]["account_id"]
    assert_error(_get(world, "partner", account_id=bolt_account), 404, "not_found")
    for fmt in ("csv", "pdf"):
        response = world.get(
            "partner", "/api/v1/statements/file",
            query_string={**_range(), "partner_id": world.bolt, "format": fmt},
        )  # fmt: skip
        assert_error(response, 404, "not_found")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"start": "2026-03-31", "end": "2026-03-01", "partner_id": 1}, "start"),
        ({"start": "2026-03-01", "end": "2026-03-31"}, "partner_id"),
        ({"start": "2026-03-01", "end": "2026-03-31", "partner_id": 1, "account_id": 1},
         "account_id"),
        ({"start": "2026-03-01", "end": "2026-03-31", "partner_id": 1, "after": "x"}, "after"),
    ],
)  # fmt: skip
def test_bad_questions_are_422_naming_the_field(
    world: World, query: dict[str, Any], field: str
) -> None:
    response = world.get("finance", "/api/v1/statements", query_string=query)
    error = assert_error(response, 422, "invalid")
    assert error["details"]["field"] == field
    missing = world.get("finance", "/api/v1/statements", query_string={"partner_id": 1})
    assert_error(missing, 422, "validation_error")
    bad = world.get("finance", "/api/v1/statements", query_string={**_range(), "as_of": "soon"})
    assert_error(bad, 422, "validation_error")


def test_the_files_hold_the_same_statement(world: World) -> None:
    query = {**_range(), "program_id": world.mdf}
    body = ok(world.get("auditor", "/api/v1/statements", query_string=query))
    closings = [a["closing"]["balance"] for a in body["accounts"]]
    files = {}
    for fmt in ("csv", "xlsx", "pdf"):
        response = world.get(
            "auditor", "/api/v1/statements/file", query_string={**query, "format": fmt}
        )
        assert response.status_code == 200, response.get_data(as_text=True)
        assert (
            f"statement-program-MDF27-{query['start']}" in response.headers["Content-Disposition"]
        )
        files[fmt] = response.get_data()
    assert world.get("auditor", "/api/v1/statements/file", query_string=query).status_code == 422
    text = files["csv"].decode("utf-8-sig")
    head, _, table = text.partition("\r\n\r\n")
    assert dict(csv.reader(io.StringIO(head)))["Statement"] == "Program MDF27 (MDF 2027)"
    rows = list(csv.DictReader(io.StringIO(table)))
    assert [r["balance"] for r in rows if r["record"] == "closing"] == closings
    sheet = load_workbook(io.BytesIO(files["xlsx"]), read_only=True).active
    values = list(sheet.iter_rows(values_only=True))
    closing_cells = [
        Decimal(str(row[17])).quantize(Decimal("0.01")) for row in values[8:] if row[0] == "closing"
    ]
    assert closing_cells == [Decimal(c) for c in closings]
    pdf = pypdfium2.PdfDocument(files["pdf"])
    words = "".join(pdf[i].get_textpage().get_text_range() for i in range(len(pdf)))
    pdf.close()
    assert "Statement: Program MDF27 (MDF 2027)" in words and "Budget funding" in words


def test_the_openapi_document_describes_both_operations(world: World) -> None:
    document = ok(world.get(None, "/api/v1/openapi.json"))
    assert unresolved_refs(document) == []
    page = document["paths"]["/api/v1/statements"]["get"]
    names = {p["name"] for p in page["parameters"]}
    assert {"partner_id", "program_id", "account_id", "start", "end", "as_of", "after"} <= names
    schema = page["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/Statement"}
    line = document["components"]["schemas"]["StatementLine"]
    assert {"amount", "balance", "reference", "recorded_at"} <= set(line["required"])
    assert {"401", "404", "422"} <= set(page["responses"])
    file = document["paths"]["/api/v1/statements/file"]["get"]
    assert set(file["responses"]["200"]["content"]) == {
        "text/csv", "application/pdf",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    }  # fmt: skip


def test_a_large_file_is_refused_with_the_way_to_ask_for_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mdfledger.exports import job_rules

    monkeypatch.setattr(job_rules, "DIRECT_MAX_ROWS", 1)
    query = {**_range(), "program_id": world.mdf}
    pdf = world.get("auditor", "/api/v1/statements/file", query_string={**query, "format": "pdf"})
    assert_error(pdf, 409, "conflict")
    error = pdf.get_json()["error"]
    assert "POST /api/v1/exports with kind statement" in error["message"]
    job = world.post(
        "auditor", "/api/v1/exports",
        json={"kind": "statement", "format": "pdf", "params": error["details"]["params"]},
    )  # fmt: skip
    assert job.status_code == 202, job.get_data(as_text=True)
    csv_file = world.get("auditor", "/api/v1/statements/file", query_string=query)
    assert csv_file.status_code == 422  # format is required; CSV streams whatever the size
    streamed = world.get(
        "auditor", "/api/v1/statements/file", query_string={**query, "format": "csv"}
    )
    assert streamed.status_code == 200
