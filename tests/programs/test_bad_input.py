"""Bad input to imports and program services: a clear message naming the line, column or field,
and nothing applied. On SQLite and PostgreSQL.

Every refusal is checked against counts taken before it (imports, allocations, purchases, funds,
ledger accounts and transfers) without rolling back, so a service that wrote before refusing
is caught even when its caller would have rolled back.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mdfledger import ledger, programs
from mdfledger.actor import Actor
from mdfledger.csvfile import MAX_BYTES
from mdfledger.errors import Conflict, DomainError, NotFound, ValidationError
from mdfledger.ledger.models import Account, Transfer
from mdfledger.programs import (
    AccrualRate,
    Activity,
    Allocation,
    Fund,
    Import,
    Partner,
    Program,
    Purchase,
)
from tests.programs.conftest import NOW, Book

MODELS = (Import, Allocation, Purchase, Fund, Account, Transfer, Program, Partner, Activity,
          AccrualRate)  # fmt: skip


def snapshot(session: Session) -> dict[str, int]:
    counts = {m.__name__: session.scalar(select(func.count()).select_from(m)) for m in MODELS}
    balances = session.execute(
        select(Account.id, Account.debits_posted, Account.credits_posted, Account.debits_pending)
    ).all()
    return {**counts, "balances": hash(tuple(sorted(balances)))}


def csv(*lines: str) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def refused(session: Session, call: Any) -> list[tuple[int, str | None, str]]:
    """Run an import that must be refused; return its problems and check nothing changed."""
    before = snapshot(session)
    with pytest.raises(programs.ImportRejected) as err:
        call()
    after = snapshot(session)
    assert after == before
    report = err.value.report
    assert report.import_id is None and report.applied == 0 and report.moved == 0
    # the API and pages get the same list in the error's details
    assert err.value.details["errors"] == [
        {"line": e.line, "column": e.column, "message": e.message} for e in report.errors
    ]
    n = len(report.errors)
    assert err.value.message.endswith(
        f"{n} problem{'s' if n != 1 else ''} found; nothing was imported"
    )
    return [(e.line, e.column, e.message) for e in report.errors]


def allocations(session: Session, actor: Actor, book: Book, data: bytes, **kw: Any):
    return programs.import_allocations(
        session, actor, book.mdf.id, data, filename="allocations.csv", now=NOW, **kw
    )


def purchases(session: Session, actor: Actor, book: Book, data: bytes, **kw: Any):
    return programs.import_purchases(
        session, actor, book.coop.id, data, filename="sales.csv", now=NOW, **kw
    )


def each(cases: dict[str, Any], check: Any) -> None:
    """Run check(*case) for every case against the same book (each refusal leaves it as it was),
    and report every case that fails, by name, rather than stopping at the first."""
    failed = []
    for name, case in cases.items():
        try:
            check(*case)
        except (Exception, pytest.fail.Exception) as exc:
            failed.append(f"{name}: {type(exc).__name__}: {exc}")
    assert not failed, "\n".join(failed)


def matches(found: list[tuple[int, str | None, str]], expected: list[tuple]) -> None:
    """Each expected (line, column, text) is found in order; text is a part of the message."""
    assert len(found) == len(expected), found
    for (line, column, message), (want_line, want_column, text) in zip(
        found, expected, strict=True
    ):
        assert (line, column) == (want_line, want_column), found
        assert text in message, (text, message)


# --- files that cannot be read -------------------------------------------------------------------

SAVE_AS = 'save it from your spreadsheet as "CSV UTF-8"'
UNREADABLE = {
    "missing required column": (
        csv("partner,reason", "ACME,plan"),
        [(1, None, "the header is missing the column amount; the columns found are: partner,"
          " reason")],
    ),
    "header typo": (
        csv("Partnr,Amount", "ACME,10"),
        [(1, None, "the header is missing the column partner; the columns found are: Partnr,"
          " Amount")],
    ),
    "two columns missing": (
        csv("who,how much", "ACME,10"),
        [(1, None, "the header is missing the columns partner, amount")],
    ),
    "a column twice": (
        csv("partner,amount,allocation", "ACME,10,10"),
        [(1, "amount", 'the header has amount twice: "amount" in column B and "allocation" in'
          " column C")],
    ),
    "cp1252 bytes": (
        "partner,amount,reason\nACME,10,plan\nBOLT,20,Café fair\n".encode("cp1252"),
        [(3, None, f"line 3 contains text that is not UTF-8; {SAVE_AS}")],
    ),
    "UTF-16 without a BOM": (
        "partner,amount\nACME,10\n".encode("utf-16-le"),
        [(0, None, f"the file contains binary data, not CSV text; {SAVE_AS}")],
    ),
    "an XLSX workbook": (
        b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00[Content_Types].xml",
        [(0, None, "this looks like an Excel workbook (.xlsx); export it as CSV")],
    ),
    "an old XLS workbook": (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100,
        [(0, None, "this looks like an old Excel workbook (.xls); export it as CSV")],
    ),
    "a PDF": (
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n",
        [(0, None, "this looks like a PDF, not a CSV file; export the data as CSV")],
    ),
    "empty": (b"", [(0, None, "the file is empty")]),
    "only blank lines": (b"\n\n  \n", [(0, None, "the file is empty")]),
    "a header and no rows": (
        csv("partner,amount"), [(0, None, "the file has a header but no rows")]
    ),
    "an unclosed quote": (
        csv("partner,amount,reason", 'ACME,10,"never closed', "BOLT,20,x"),
        [(2, None, 'line 2 has a quote mark (") in the wrong place')],
    ),
}  # fmt: skip


def test_an_unreadable_file_is_refused_with_the_reason(
    session: Session, actor: Actor, book: Book
) -> None:
    def allocation_file(data: bytes, expected: list[tuple]) -> None:
        matches(refused(session, lambda: allocations(session, actor, book, data)), expected)

    each(UNREADABLE, allocation_file)

    def purchase_file(data: bytes, expected: list[tuple]) -> None:
        matches(refused(session, lambda: purchases(session, actor, book, data)), expected)

    each(
        {
            **{
                k: UNREADABLE[k]
                for k in (
                    "cp1252 bytes",
                    "UTF-16 without a BOM",
                    "an XLSX workbook",
                    "an old XLS workbook",
                    "a PDF",
                    "empty",
                    "only blank lines",
                )
            },
            "missing required column": (
                csv("partner,invoice,amount", "ACME,INV-1,10"),
                [(1, None, "the header is missing the column date; the columns found are")],
            ),
        },
        purchase_file,
    )


def test_utf16_with_a_bom_and_semicolons_are_read(
    session: Session, actor: Actor, book: Book
) -> None:
    data = "\ufeffpartner;amount\nACME;10.00\n".encode("utf-16-le")
    assert allocations(session, actor, book, data).moved == 1_000


@pytest.mark.parametrize("kind", ["allocations", "purchases"])
def test_a_50_mb_file_is_refused_quickly_naming_the_limit(
    session: Session, actor: Actor, book: Book, kind: str
) -> None:
    header = b"partner,reference,date,amount\n"
    row = b"ACME,INV-0000001,2026-08-01,100.00\n"
    data = header + row * ((50 * 1024 * 1024 - len(header)) // len(row))
    data += b" " * (50 * 1024 * 1024 - len(data))
    assert len(data) == 50 * 1024 * 1024 > MAX_BYTES
    importer = allocations if kind == "allocations" else purchases
    started = time.perf_counter()
    problems = refused(session, lambda: importer(session, actor, book, data))
    assert time.perf_counter() - started < 3
    assert problems == [(0, None, "the file is 50 MB; the limit is 10 MB")]


# --- rows that are wrong -------------------------------------------------------------------------

BAD_ALLOCATION_ROWS = {
    "non-numeric": ("ACME,abc", "amount", "'abc' is not a decimal amount like 1234.50"),
    "thousands separator": (
        'ACME,"1,234.50"', "amount",
        "'1,234.50' is not a decimal amount like 1234.50 (no thousands separators)",
    ),
    "too many decimals": ("ACME,12.345", "amount", "12.345 has more than 2 decimal places for USD"),
    "negative": ("ACME,-5", "amount", "amount must be more than zero, not -5"),
    "zero": ("ACME,0", "amount", "amount must be more than zero, not 0"),
    "zero with decimals": ("ACME,0.00", "amount", "amount must be more than zero, not 0.00"),
    "blank amount": ("ACME,", "amount", "amount is required"),
    "exponent": ("ACME,1e3", "amount", "'1e3' is not a decimal amount like 1234.50"),
    "too large": (
        "ACME,99999999999999999999", "amount", "amount 99999999999999999999 is too large"
    ),
    "unknown partner": ("NOPE,10", "partner", "unknown partner 'NOPE'"),
    "blank partner": (",10", "partner", "partner is required"),
    "currency mismatch": (
        "ACME,10,EUR", "currency", "currency EUR does not match the program's USD"
    ),
    "too many cells": ("ACME,10,USD,surprise", None, "row has 4 cells; the header has 3"),
    "a cell too long": (
        f"ACME,10,{'x' * 1001}", "currency", "currency is 1,001 characters long; the limit is 1,000"
    ),
}  # fmt: skip


def test_a_bad_allocation_row_is_refused_by_line_and_column(
    session: Session, actor: Actor, book: Book
) -> None:
    def check(row: str, column: str | None, message: str) -> None:
        data = csv("partner,amount,currency", "BOLT,10.00,USD", row, "CORE,20.00,")
        problems = refused(session, lambda: allocations(session, actor, book, data))
        assert problems == [(3, column, message)]

    each(BAD_ALLOCATION_ROWS, check)


def test_a_partner_twice_in_an_allocation_file_is_refused(
    session: Session, actor: Actor, book: Book
) -> None:
    data = csv("partner,amount", "ACME,10", "BOLT,10", "acme,20", "ACME,10")
    problems = refused(session, lambda: allocations(session, actor, book, data))
    assert problems == [
        (4, "partner", "ACME is already on line 2"),
        (5, "partner", "ACME is already on line 2"),
    ]


def test_a_suspended_partner_is_refused_in_both_kinds_of_file(
    session: Session, actor: Actor, book: Book
) -> None:
    programs.update_partner(session, actor, book.bolt.id, status="suspended")
    programs.update_partner(session, actor, book.core.id, status="terminated")
    problems = refused(
        session,
        lambda: allocations(session, actor, book, csv("partner,amount", "BOLT,10", "CORE,5")),
    )
    assert problems == [
        (2, "partner", "partner BOLT is suspended"),
        (3, "partner", "partner CORE is terminated"),
    ]
    data = csv(
        "partner,reference,date,amount", "ACME,INV-1,2026-08-01,10", "BOLT,INV-2,2026-08-01,10"
    )
    problems = refused(session, lambda: purchases(session, actor, book, data))
    assert problems == [(3, "partner", "partner BOLT is suspended")]


BAD_PURCHASE_ROWS = {
    "day-first or month-first date": (
        "ACME,INV-9,03/04/2026,10.00", "date",
        "date '03/04/2026' is not a date in the form YYYY-MM-DD, e.g. 2026-03-31",
    ),
    "no such day": ("ACME,INV-9,2026-02-30,10.00", "date", "date '2026-02-30' is not a real date"),
    "a timestamp": (
        "ACME,INV-9,2026-08-01T10:00:00,10.00", "date",
        "date '2026-08-01T10:00:00' is not a date in the form YYYY-MM-DD",
    ),
    "blank date": ("ACME,INV-9,,10.00", "date", "date is required"),
    "before the period": (
        "ACME,INV-9,2026-06-30,10.00", "date",
        "date 2026-06-30 is outside FY2026 Q3 (2026-07-01 to 2026-09-30)",
    ),
    "after the period": (
        "ACME,INV-9,2026-10-01,10.00", "date",
        "date 2026-10-01 is outside FY2026 Q3 (2026-07-01 to 2026-09-30)",
    ),
    "non-numeric": ("ACME,INV-9,2026-08-01,abc", "amount", "'abc' is not a decimal amount"),
    "thousands separator": (
        'ACME,INV-9,2026-08-01,"1,234.50"', "amount", "(no thousands separators)",
    ),
    "too many decimals": (
        "ACME,INV-9,2026-08-01,12.345", "amount", "12.345 has more than 2 decimal places for USD",
    ),
    "zero": ("ACME,INV-9,2026-08-01,0", "amount", "amount must be more than zero, not 0"),
    "unknown partner": ("NOPE,INV-9,2026-08-01,10.00", "partner", "unknown partner 'NOPE'"),
    "currency mismatch": (
        "ACME,INV-9,2026-08-01,10.00,,EUR", "currency",
        "currency EUR does not match the program's USD",
    ),
    "blank reference": ("ACME,,2026-08-01,10.00", "reference", "reference is required"),
    "reference too long": (
        f"ACME,{'R' * 101},2026-08-01,10.00", "reference",
        "reference may have at most 100 characters",
    ),
    "product line too long": (
        f"ACME,INV-9,2026-08-01,10.00,{'p' * 81}", "product_line",
        "product line may have at most 80 characters",
    ),
}  # fmt: skip


def test_a_bad_purchase_row_is_refused_by_line_and_column(
    session: Session, actor: Actor, book: Book
) -> None:
    def check(row: str, column: str | None, message: str) -> None:
        data = csv(
            "partner,reference,date,amount,product_line,currency",
            "BOLT,INV-1,2026-08-01,10.00,,",
            row,
            "CORE,INV-2,2026-08-02,-5.00,storage,USD",
        )
        problems = refused(session, lambda: purchases(session, actor, book, data))
        matches(problems, [(3, column, message)])

    each(BAD_PURCHASE_ROWS, check)


def test_the_same_purchase_twice_in_one_file_is_refused(
    session: Session, actor: Actor, book: Book
) -> None:
    data = csv(
        "partner,reference,date,amount,product_line",
        "ACME,INV-1,2026-08-01,10.00,storage",
        "ACME,INV-2,2026-08-01,10.00,storage",
        "acme,INV-1,2026-08-01,10.00,Storage",  # the same row, spelled differently
    )
    assert refused(session, lambda: purchases(session, actor, book, data)) == [
        (4, None, "the same purchase as line 2")
    ]


def test_a_purchase_no_rate_covers_is_refused(session: Session, actor: Actor, book: Book) -> None:
    bare = programs.create_program(
        session, actor, code="BARE", name="No rates", kind="coop", currency="USD", now=NOW
    )
    programs.set_accrual_rate(session, actor, bare.id, tier="gold", rate_bp=300)
    data = csv(
        "partner,reference,date,amount,product_line",
        "ACME,INV-1,2026-08-01,10.00,storage",
        "BOLT,INV-2,2026-08-01,10.00,storage",
        "BOLT,INV-3,2026-08-01,10.00,",
    )
    problems = refused(
        session,
        lambda: programs.import_purchases(session, actor, bare.id, data, filename="s.csv", now=NOW),
    )
    assert problems == [
        (3, "product_line", "no accrual rate for tier 'silver' and product line 'storage' in BARE"),
        (4, "product_line", "no accrual rate for tier 'silver' in BARE"),
    ]


def test_a_file_whose_last_row_of_thousands_is_bad_applies_nothing_and_names_only_that_line(
    session: Session, actor: Actor, book: Book
) -> None:
    rows = [f"{('ACME', 'BOLT', 'CORE')[i % 3]},INV-{i},2026-08-01,{i}.00" for i in range(1, 3000)]
    data = csv("partner,reference,date,amount", *rows, "ACME,INV-LAST,2026-13-01,10.00")
    assert refused(session, lambda: purchases(session, actor, book, data)) == [
        (3001, "date", "date '2026-13-01' is not a real date")
    ]
    data = csv("partner,amount", "ACME,10", "BOLT,20", "CORE,30", "NOPE,40")
    assert refused(session, lambda: allocations(session, actor, book, data)) == [
        (5, "partner", "unknown partner 'NOPE'")
    ]


def test_every_problem_in_a_file_is_reported_not_just_the_first(
    session: Session, actor: Actor, book: Book
) -> None:
    data = csv(
        "partner,reference,date,amount,product_line,currency",
        "ACME,INV-1,2026-08-01,10.00,storage,USD",  # fine
        "NOPE,INV-2,03/04/2026,abc,,EUR",  # four problems in one row
        "BOLT,INV-3,2026-08-01,10.00,,",  # fine
        "",  # blank lines are skipped but counted
        "CORE,,2026-02-30,0,,",  # three
        "ACME,INV-1,2026-08-01,10.00,storage,",  # a repeat of line 2
        'BOLT,INV-4,2026-08-01,"1,234.50",,,extra',  # too many cells
    )
    problems = refused(session, lambda: purchases(session, actor, book, data))
    matches(problems, [
        (8, None, "row has 7 cells; the header has 6"),  # unreadable rows come first
        (3, "partner", "unknown partner 'NOPE'"),
        (3, "amount", "'abc' is not a decimal amount"),
        (3, "currency", "currency EUR does not match"),
        (3, "date", "date '03/04/2026' is not a date in the form YYYY-MM-DD"),
        (6, "amount", "amount must be more than zero, not 0"),
        (6, "reference", "reference is required"),
        (6, "date", "date '2026-02-30' is not a real date"),
        (7, None, "the same purchase as line 2"),
    ])  # fmt: skip
    data = csv("partner,amount,currency", "NOPE,10,", "ACME,-1,", "BOLT,1,EUR", "acme,x,")
    problems = refused(session, lambda: allocations(session, actor, book, data))
    assert [(line, column) for line, column, _ in problems] == [
        (2, "partner"), (3, "amount"), (4, "currency"), (5, "amount"), (5, "partner"),
    ]  # fmt: skip


def test_imports_refuse_what_is_not_a_file_a_closed_program_and_an_unknown_one(
    session: Session, actor: Actor, book: Book
) -> None:
    before = snapshot(session)
    with pytest.raises(ValidationError) as err:
        allocations(session, actor, book, "partner,amount\nACME,10\n")  # type: ignore[arg-type]
    assert err.value.details["field"] == "file"
    with pytest.raises(ValidationError) as err:
        programs.import_allocations(
            session, actor, book.mdf.id, csv("partner,amount", "ACME,1"), filename="x" * 256
        )
    assert err.value.details["field"] == "filename"
    with pytest.raises(ValidationError) as err:
        allocations(session, actor, book, csv("partner,amount", "ACME,1"), day="2026-08-01")
    assert err.value.details["field"] == "day"
    with pytest.raises(NotFound):
        programs.import_purchases(session, actor, 10**9, b"x", filename="s.csv", now=NOW)
    programs.update_program(session, actor, book.coop.id, status="closed")
    with pytest.raises(Conflict, match="COOP26 is closed"):
        purchases(session, actor, book, csv("partner,reference,date,amount", "ACME,I,2026-08-01,1"))
    assert snapshot(session) == before


# --- services ------------------------------------------------------------------------------------

PROGRAM = {"code": "NEW", "name": "New program", "kind": "mdf", "currency": "USD"}
BAD_PROGRAMS: list[tuple[dict, type, str]] = [
    ({"code": ""}, ValidationError, "code"),
    ({"code": "has space"}, ValidationError, "code"),
    ({"code": "-leading"}, ValidationError, "code"),
    ({"code": "x" * 41}, ValidationError, "code"),
    ({"code": 7}, ValidationError, "code"),
    ({"code": "MDF26"}, Conflict, "code"),
    ({"name": "   "}, ValidationError, "name"),
    ({"name": "n" * 201}, ValidationError, "name"),
    ({"name": None}, ValidationError, "name"),
    ({"description": "d" * 5001}, ValidationError, "description"),
    ({"kind": "both"}, ValidationError, "kind"),
    ({"currency": "usd"}, ValidationError, "currency"),
    ({"currency": "US"}, ValidationError, "currency"),
    ({"currency": "ABC"}, ValidationError, "currency"),
    ({"currency": None}, ValidationError, "currency"),
    ({"timezone": "Mars/Olympus"}, ValidationError, "timezone"),
    ({"timezone": "America"}, ValidationError, "timezone"),
    ({"timezone": ""}, ValidationError, "timezone"),
    ({"timezone": None}, ValidationError, "timezone"),
    ({"share_bp": 0}, ValidationError, "share_bp"),
    ({"share_bp": 10_001}, ValidationError, "share_bp"),
    ({"share_bp": True}, ValidationError, "share_bp"),
    ({"share_bp": 50.0}, ValidationError, "share_bp"),
    ({"claim_deadline_days": -1}, ValidationError, "claim_deadline_days"),
    ({"claim_deadline_days": 3661}, ValidationError, "claim_deadline_days"),
    ({"expiry_policy": "keep"}, ValidationError, "expiry_policy"),
    ({"expiry_policy": "rollover"}, ValidationError, "rollover_days"),  # rollover, but no days
    ({"expiry_policy": "forfeit", "rollover_days": 30}, ValidationError, "rollover_days"),
    ({"expiry_policy": "rollover", "rollover_days": 3661}, ValidationError, "rollover_days"),
    ({"expiry_policy": "rollover", "rollover_days": -1}, ValidationError, "rollover_days"),
    ({"expiry_policy": "rollover", "rollover_days": 1.5}, ValidationError, "rollover_days"),
    ({"fiscal_start_month": 0}, ValidationError, "fiscal_start_month"),
    ({"fiscal_start_month": 13}, ValidationError, "fiscal_start_month"),
    ({"fiscal_start_month": True}, ValidationError, "fiscal_start_month"),
    ({"fiscal_start_month": "2"}, ValidationError, "fiscal_start_month"),
    ({"period_months": 5}, ValidationError, "period_months"),
    ({"period_months": 0}, ValidationError, "period_months"),
    ({"period_months": 3.0}, ValidationError, "period_months"),
    ({"period_months": True}, ValidationError, "period_months"),
]


def refuses(session: Session, call: Any, error: type, field: str | None) -> DomainError:
    """`call()` raises `error` naming `field`, and nothing changed."""
    before = snapshot(session)
    with pytest.raises(error) as err:
        call()
    assert err.value.details.get("field") == field
    assert snapshot(session) == before
    return err.value


def cases(table: list[tuple[dict, type, str | None]]) -> dict[str, tuple]:
    return {repr(overrides)[:80]: (overrides, error, field) for overrides, error, field in table}


def test_create_program_refuses_bad_fields_by_name(
    session: Session, actor: Actor, book: Book
) -> None:
    def check(overrides: dict, error: type, field: str) -> None:
        fields = {**PROGRAM, **overrides}
        refuses(session, lambda: programs.create_program(session, actor, **fields, now=NOW),
                error, field)  # fmt: skip

    each(cases(BAD_PROGRAMS), check)


def test_long_program_and_partner_names_still_open_their_ledger_accounts(
    session: Session, actor: Actor, book: Book
) -> None:
    program = programs.create_program(session, actor, **{**PROGRAM, "name": "P" * 200}, now=NOW)
    programs.fund_budget(session, actor, program.id, 1_000, reason="r", now=NOW)
    partner = programs.create_partner(
        session, actor, code="LONG", name="L" * 200, type="agency", tier="gold", region="EU",
        now=NOW,
    )  # fmt: skip
    allocation = programs.allocate(
        session, actor, program.id, partner.id, 1_000, reason="r", now=NOW
    )
    name = session.get(Account, allocation.fund.account_id).name
    assert len(name) == 200 and name.startswith("L" * 150) and name.endswith("…")
    assert ledger.verify_ledger(session).ok


BAD_PARTNERS: list[tuple[dict, type, str | None]] = [
    ({"code": "ACME"}, Conflict, "code"),
    ({"code": "acme"}, Conflict, "code"),  # imports match codes in any case
    ({"code": "has space"}, ValidationError, "code"),
    ({"code": ""}, ValidationError, "code"),
    ({"type": "vendor"}, ValidationError, "type"),
    ({"type": None}, ValidationError, "type"),
    ({"name": "  "}, ValidationError, "name"),
    ({"name": "n" * 201}, ValidationError, "name"),
    ({"tier": ""}, ValidationError, "tier"),
    ({"region": None}, ValidationError, "region"),
    ({"status": "gone"}, ValidationError, "status"),
]


def test_create_partner_refuses_bad_fields_by_name(
    session: Session, actor: Actor, book: Book
) -> None:
    def check(overrides: dict, error: type, field: str) -> None:
        fields = {"code": "NEWP", "name": "New", "type": "msp", "tier": "gold", "region": "NA",
                  **overrides}  # fmt: skip
        err = refuses(
            session, lambda: programs.create_partner(session, actor, **fields, now=NOW),
            error, field,
        )  # fmt: skip
        if error is Conflict:
            assert err.message == "a partner with code ACME already exists"

    each(cases(BAD_PARTNERS), check)


BAD_ACTIVITIES: list[tuple[dict, type, str | None]] = [
    ({"proof": ["invoice", "selfie"]}, ValidationError, "proof"),
    ({"proof": []}, ValidationError, "proof"),
    ({"proof": ""}, ValidationError, "proof"),
    ({"proof": None}, ValidationError, "proof"),
    ({"cap": 0}, ValidationError, "cap"),
    ({"cap": -5}, ValidationError, "cap"),
    ({"cap": True}, ValidationError, "cap"),
    ({"cap": 1.5}, ValidationError, "cap"),
    ({"cap": 2**62}, ValidationError, "cap"),
    ({"code": "EVENT"}, Conflict, "code"),
    ({"code": "bad code"}, ValidationError, "code"),
    ({"name": ""}, ValidationError, "name"),
]


def test_add_activity_refuses_bad_fields_by_name(
    session: Session, actor: Actor, book: Book
) -> None:
    fields = {"code": "EVENT", "name": "Event", "proof": ["invoice", "photos"], "cap": 500_000}
    programs.add_activity(session, actor, book.mdf.id, **fields)

    def check(overrides: dict, error: type, field: str) -> None:
        changed = {**fields, "code": "OTHER", **overrides}
        refuses(
            session, lambda: programs.add_activity(session, actor, book.mdf.id, **changed),
            error, field,
        )  # fmt: skip

    each(cases(BAD_ACTIVITIES), check)


def test_activity_services_refuse_unknown_ids_and_non_booleans(
    session: Session, actor: Actor, book: Book
) -> None:
    for program_id in (10**9, "abc", None, True):
        with pytest.raises(NotFound):
            programs.add_activity(session, actor, program_id, code="A", name="A", proof="invoice")
    activity = programs.add_activity(
        session, actor, book.mdf.id, code="A", name="A", proof="invoice"
    )
    with pytest.raises(ValidationError, match="active is true or false") as err:
        programs.update_activity(session, actor, activity.id, active="yes")
    assert err.value.details["field"] == "active"
    assert programs.update_activity(session, actor, activity.id, active=False).active is False


def test_a_rate_differing_only_in_case_replaces_the_earlier_one(
    session: Session, actor: Actor, book: Book
) -> None:
    programs.set_accrual_rate(
        session, actor, book.coop.id, tier="GOLD", product_line="Storage", rate_bp=700
    )
    rates = session.scalars(select(AccrualRate).where(AccrualRate.program_id == book.coop.id))
    assert sorted((r.tier, r.product_line, r.rate_bp) for r in rates) == [
        ("", "", 200), ("gold", "", 300), ("gold", "storage", 700),
    ]  # fmt: skip
    report = programs.import_purchases(
        session, actor, book.coop.id, csv("partner,reference,date,amount,product_line",
                                          "ACME,INV-1,2026-08-01,100.00,storage"),
        filename="s.csv", now=NOW,
    )  # fmt: skip
    assert report.moved == 700
    with pytest.raises(ValidationError) as err:
        programs.set_accrual_rate(session, actor, book.mdf.id, rate_bp=100)
    assert err.value.details["field"] == "program"
    for bad in (-1, 10_001, 1.5, True):
        with pytest.raises(ValidationError) as err:
            programs.set_accrual_rate(session, actor, book.coop.id, rate_bp=bad)
        assert err.value.details["field"] == "rate_bp"


BAD_ALLOCATIONS: list[tuple[dict, type, str | None]] = [
    ({"amount": 0}, ValidationError, "amount"),
    ({"amount": -1}, ValidationError, "amount"),
    ({"amount": True}, ValidationError, "amount"),
    ({"amount": 2**62}, ValidationError, "amount"),
    ({"amount": 10**30}, ValidationError, "amount"),
    ({"amount": 1.5}, ValidationError, "amount"),
    ({"amount": "100"}, ValidationError, "amount"),
    ({"amount": None}, ValidationError, "amount"),
    ({"amount": 10_000_001}, Conflict, "amount"),  # one cent more than the budget holds
    ({"program_id": 10**9}, NotFound, None),
    ({"program_id": "1"}, NotFound, None),
    ({"program_id": -1}, NotFound, None),
    ({"partner_id": 10**9}, NotFound, None),
    ({"partner_id": None}, NotFound, None),
    ({"reason": ""}, ValidationError, "reason"),
    ({"reason": "   "}, ValidationError, "reason"),
    ({"reason": None}, ValidationError, "reason"),
    ({"reason": "r" * 501}, ValidationError, "reason"),
    ({"reason": "nul\x00"}, ValidationError, "reason"),
    ({"day": "2026-08-15"}, ValidationError, "day"),
    ({"day": datetime(2026, 8, 15, tzinfo=UTC)}, ValidationError, "day"),
    ({"day": date(2026, 6, 30)}, ValidationError, "period"),  # that period's funds expired
]


def test_allocate_refuses_bad_input_and_leaves_nothing_behind(
    session: Session, actor: Actor, book: Book
) -> None:
    def check(overrides: dict, error: type, field: str | None) -> None:
        args = {"program_id": book.mdf.id, "partner_id": book.acme.id, "amount": 1_000,
                "reason": "plan", **overrides}  # fmt: skip
        err = refuses(
            session,
            lambda: programs.allocate(
                session, actor, args.pop("program_id"), args.pop("partner_id"),
                args.pop("amount"), now=NOW, **args,
            ),
            error, field,
        )  # fmt: skip
        if error is NotFound:
            assert "not found" in err.message

    each(cases(BAD_ALLOCATIONS), check)
    # the session is still usable: the same allocation with good input goes through
    programs.allocate(session, actor, book.mdf.id, book.acme.id, 1_000, reason="plan", now=NOW)
    assert ledger.verify_ledger(session).ok


def test_adjusting_a_fund_up_is_new_funds_refused_for_closed_programs_and_suspended_partners(
    session: Session, actor: Actor, book: Book
) -> None:
    allocation = programs.allocate(
        session, actor, book.mdf.id, book.acme.id, 10_000, reason="plan", now=NOW
    )
    for delta in (0, True, 2**62, 1.0):
        with pytest.raises(ValidationError) as err:
            programs.adjust_fund(session, actor, allocation.fund_id, delta, reason="r")
        assert err.value.details["field"] == "amount"
    with pytest.raises(NotFound):
        programs.adjust_fund(session, actor, 10**9, 1, reason="r")
    programs.update_partner(session, actor, book.acme.id, status="suspended")
    before = snapshot(session)
    with pytest.raises(Conflict, match="ACME is suspended: it cannot receive funds"):
        programs.adjust_fund(session, actor, allocation.fund_id, 1, reason="more", now=NOW)
    programs.update_partner(session, actor, book.acme.id, status="active")
    programs.update_program(session, actor, book.mdf.id, status="closed")
    with pytest.raises(Conflict, match="MDF26 is closed"):
        programs.adjust_fund(session, actor, allocation.fund_id, 1, reason="more", now=NOW)
    # taking unspent funds back stays possible
    down = programs.adjust_fund(session, actor, allocation.fund_id, -1, reason="less", now=NOW)
    assert down.amount == -1
    assert snapshot(session)["Transfer"] == before["Transfer"] + 1


def test_undoing_a_downward_adjustment_the_budget_cannot_cover_blames_the_budget(
    session: Session, actor: Actor, book: Book
) -> None:
    allocation = programs.allocate(
        session, actor, book.mdf.id, book.acme.id, 100_000, reason="plan", now=NOW
    )
    down = programs.adjust_fund(session, actor, allocation.fund_id, -40_000, reason="less")
    programs.allocate(session, actor, book.mdf.id, book.bolt.id, 9_930_000, reason="all", now=NOW)
    before = snapshot(session)
    with pytest.raises(Conflict) as err:
        programs.reverse_allocation(session, actor, down.id, reason="undo")
    assert err.value.message == (
        "the MDF26 budget has 100.00 USD available; undoing this adjustment needs 400.00"
    )
    assert (err.value.details["field"], err.value.details["available"]) == ("amount", 10_000)
    assert snapshot(session) == before
    with pytest.raises(NotFound):
        programs.reverse_allocation(session, actor, 10**9, reason="undo")
    with pytest.raises(ValidationError) as verr:
        programs.reverse_allocation(session, actor, allocation.id, reason=" ")
    assert verr.value.details["field"] == "reason"


def test_every_refusal_is_a_domain_error_never_a_crash(
    session: Session, actor: Actor, book: Book
) -> None:
    """Odd types in every argument of the import functions: a DomainError, not a TypeError."""
    good = csv("partner,amount", "ACME,1")
    for kwargs in ({"filename": 5}, {"filename": "a\x00.csv"}, {"day": 20260801},
                   {"reason": 5}, {"reason": ""}):  # fmt: skip
        with pytest.raises(DomainError):
            programs.import_allocations(
                session, actor, book.mdf.id, good, **{"filename": "a.csv", **kwargs}, now=NOW
            )
    for data in (None, 12, ["partner,amount"]):
        with pytest.raises(ValidationError):
            programs.import_allocations(session, actor, book.mdf.id, data, filename="a.csv")
