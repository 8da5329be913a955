"""Import pages: upload allocations and co-op purchases from CSV, see each problem of a refused
file, the summaries, example files, roles and scoping. On SQLite and PostgreSQL."""

from __future__ import annotations

import io
import re

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from mdfledger import programs
from mdfledger.csvfile import read_table
from mdfledger.programs.imports import ALLOCATION_COLUMNS, PURCHASE_COLUMNS
from tests.auth.test_login import csrf_token
from tests.web import test_partners_pages
from tests.web.test_partners_pages import (
    SYSTEM,
    World,
    allocate_directly,
    body,
    check_roles,
    money_re,
    today_iso,
    today_label,
)

world = test_partners_pages.world  # the same fixture: a signed-up site with two programs


def upload(
    world: World,
    client: FlaskClient,
    data: bytes,
    *,
    kind: str = "allocations",
    program: int | None = None,
    filename: str = "funds.csv",
    token: bool = True,
    **fields: str,
):
    form: dict[str, object] = {
        "kind": kind,
        "program": str(program or (world.mdf if kind == "allocations" else world.coop)),
        "period": today_iso(world),
        "reason": "bulk allocation",
        **fields,
    }
    if data is not None:
        form["file"] = (io.BytesIO(data), filename)
    if token:
        form["csrf_token"] = csrf_token(client, "/login")
    return client.post("/imports/new", data=form, content_type="multipart/form-data")


def test_the_upload_page_explains_the_columns_and_offers_examples(world: World) -> None:
    client = world.client("finance")
    page = client.get("/imports/new")
    assert page.status_code == 200
    text = body(page)
    for column in (*ALLOCATION_COLUMNS, *PURCHASE_COLUMNS):
        assert f"<code>{column.name}</code>" in text
        for alias in column.aliases:
            assert f"<code>{alias}</code>" in text
    assert 'enctype="multipart/form-data"' in text
    assert f'value="{today_iso(world)}"' in text
    for kind, columns in (("allocations", ALLOCATION_COLUMNS), ("purchases", PURCHASE_COLUMNS)):
        assert f'href="/imports/example/{kind}.csv"' in text
        example = client.get(f"/imports/example/{kind}.csv")
        assert example.status_code == 200
        assert example.mimetype == "text/csv"
        assert "attachment" in example.headers["Content-Disposition"]
        table = read_table(example.get_data(), columns)
        assert table.errors == [] and len(table.rows) >= 2
    assert client.get("/imports/example/other.csv").status_code == 404


def test_a_good_allocation_file_is_imported_and_summarised(world: World) -> None:
    client = world.client("finance")
    data = b"Partner Code,Allocation,Memo\nACME,1500.00,launch\nbolt,750.50,\n"
    response = upload(world, client, data, filename="q-funds.csv", reason="Q plan")
    assert response.status_code == 302
    with world.sessions() as session:
        record = session.scalars(select(programs.Import)).one()
    assert response.headers["Location"] == f"/imports/{record.id}"
    page = body(client.get(response.headers["Location"]))
    assert "Imported q-funds.csv: 2 rows, 2 applied" in page
    assert re.search(money_re("2250.50"), page)
    assert today_label(world) in page
    assert "Acme Networks" in page and "Bolt Systems" in page
    assert "launch" in page and "Q plan" in page  # a blank reason takes the form's
    assert world.breakdown().allocated == 150_000
    assert world.breakdown(world.bolt).allocated == 75_050
    listing = body(client.get("/imports"))
    assert "q-funds.csv" in listing and "Allocations" in listing and "Finance" in listing
    # The same file again is refused: it was imported already.
    again = upload(world, client, data, filename="q-funds.csv")
    assert again.status_code == 422
    assert f"already imported as import #{record.id}" in body(again)
    assert world.breakdown().allocated == 150_000


def test_a_good_purchase_file_is_imported_with_its_notes(world: World) -> None:
    day = today_iso(world)
    data = (
        "partner,invoice_number,invoice_date,net_amount,product\n"
        f"ACME,INV-1,{day},10000.00,storage\n"
        f"ACME,INV-2,{day},5000.00,\n"
        f"BOLT,CN-9,{day},-500.00,storage\n"  # a return with nothing to take back
    ).encode()
    client = world.client("admin")
    response = upload(world, client, data, kind="purchases", filename="sales.csv")
    assert response.status_code == 302
    page = body(client.get(response.headers["Location"]))
    assert "Imported sales.csv: 3 rows, 3 applied" in page
    assert re.search(money_re("300.00"), page)  # 2% of 15,000.00
    assert "INV-1" in page and "CN-9" in page
    assert re.search(r"10\.00 USD of the return('|&#39;)s accrual was already spent", page)
    assert world.breakdown(program_id=world.coop).accrued == 30_000
    # Overlapping rows in a later file are skipped, not accrued twice.
    second = upload(world, client, data + f"ACME,INV-3,{day},100.00,\n".encode(), kind="purchases")
    assert second.status_code == 302
    summary = body(client.get(second.headers["Location"]))
    assert "3 skipped as already imported" in summary
    assert world.breakdown(program_id=world.coop).accrued == 30_200


def test_a_bad_file_lists_every_problem_and_imports_nothing(world: World) -> None:
    data = (
        b"partner,amount,currency\n"
        b"ACME,1500.00,USD\n"
        b"NOPE,10.00,USD\n"
        b"BOLT,1,500.00,USD\n"
        b"BOLT,12.345,USD\n"
        b"ACME,5.00,EUR\n"
    )
    client = world.client("finance")
    response = upload(world, client, data, filename="bad.csv")
    assert response.status_code == 422
    page = body(response)
    assert "Nothing was imported" in page
    rows = re.findall(r'<th scope="row">(\w+)</th>\s*<td>(\w*)</td>\s*<td>([^<]*)</td>', page)
    problems = {(int(line), column) for line, column, _ in rows}
    assert {(3, "partner"), (4, ""), (5, "amount"), (6, "currency")} <= problems
    assert "unknown partner &#39;NOPE&#39;" in page
    assert "EUR does not match the program&#39;s USD" in page
    assert world.count(programs.Import) == 0
    assert world.count(programs.Allocation) == 0
    assert world.breakdown().allocated == 0


@pytest.mark.parametrize(
    ("data", "filename", "field", "message"),
    [
        (None, "x.csv", "file", "choose a CSV file"),
        (b"partner,amount\nACME,1.00\n", "funds.xlsx", "file", "must be a .csv file"),
        (b"PK\x03\x04 zipped", "funds.csv", None, "looks like an Excel workbook"),
        (b"partner,amount\n", "funds.csv", None, "has a header but no rows"),
    ],
)
def test_an_unusable_upload_is_refused_with_a_message(
    world: World, data: bytes | None, filename: str, field: str | None, message: str
) -> None:
    response = upload(world, world.client("finance"), data, filename=filename)
    assert response.status_code == 422
    assert message in body(response)
    if field:
        assert f'id="import-{field}-error"' in body(response)
    assert world.count(programs.Import) == 0


def test_purchases_need_a_coop_program(world: World) -> None:
    data = f"partner,reference,date,amount\nACME,I-1,{today_iso(world)},100.00\n".encode()
    response = upload(world, world.client("finance"), data, kind="purchases", program=world.mdf)
    assert response.status_code == 422
    assert "MDF26 is not a co-op program" in body(response)


def test_an_upload_without_its_csrf_token_is_refused(world: World) -> None:
    client = world.client("finance")
    response = upload(world, client, b"partner,amount\nACME,1.00\n", token=False)
    assert response.status_code == 400
    assert world.count(programs.Import) == 0


def import_urls(world: World) -> tuple[list[str], list[str], list[str]]:
    with world.sessions() as session:
        report = programs.import_allocations(
            session, SYSTEM, world.mdf, b"partner,amount\nBOLT,10.00\n", filename="bolt.csv"
        )
        session.commit()
    reads = ["/imports", f"/imports/{report.import_id}", "/imports/example/allocations.csv"]
    return reads, ["/imports/new"], ["/imports/new"]


@pytest.mark.parametrize("role", [None, "partner", "auditor", "admin", "finance"])
def test_who_may_use_the_import_pages(world: World, role: str | None) -> None:
    check_roles(world, role, *import_urls(world))
    assert world.count(programs.Import) == 1


def test_a_partner_user_learns_nothing_of_imports(world: World) -> None:
    allocate_directly(world, 1_000)
    reads, _, _ = import_urls(world)
    client = world.client("partner")
    for url in [*reads, "/imports/999999", "/imports/new"]:
        response = client.get(url)
        # Imports hold many partners' rows: a staff page, refused for every id alike.
        assert response.status_code == 403, url
        assert "Bolt" not in body(response) and "BOLT" not in body(response)
        assert "bolt.csv" not in body(response)
    assert body(client.get("/imports/1")) == body(client.get("/imports/999999"))


def test_a_file_over_the_size_limit_is_refused_unread(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mdfledger.web import imports

    monkeypatch.setattr(imports, "MAX_BYTES", 1024)
    data = b"partner,amount\n" + b"ACME,1.00\n" * 200
    response = upload(world, world.client("finance"), data)
    assert response.status_code == 422
    assert 'id="import-file-error"' in body(response) and "over the limit" in body(response)
    assert world.count(programs.Import) == 0
