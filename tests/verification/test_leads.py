"""Lead lists: reading partners' CSV and XLSX exports, and the check finance reads."""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import random
import time
from datetime import date, datetime

import openpyxl
import pytest

from mdfledger.verification.leads import (
    LeadList,
    check_leads,
    keys,
    lead_key,
    mask_email,
    read_leads,
)
from mdfledger.verification.outcome import Outcome, Unreadable

NOT_UTF8 = "the CSV is not UTF-8 and its encoding could not be recognised: save it as CSV UTF-8"
MARCH = {"starts_on": date(2026, 3, 1), "ends_on": date(2026, 3, 31)}


def table(*rows: tuple[object, ...], delimiter: str = ",") -> str:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\n").writerows(rows)
    return out.getvalue()


def workbook(*sheets: tuple[str, list[tuple[object, ...]]]) -> bytes:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for title, rows in sheets:
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def emails(leads: LeadList) -> list[str]:
    return [lead.email for lead in leads.leads]


def listed(*addresses: str, created: str = "2026-03-10") -> LeadList:
    return read_leads(table(("Email", "Created"), *((a, created) for a in addresses)).encode())


# --- reading CSV ---------------------------------------------------------------------------------


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_csv_with_comma_semicolon_or_tab(delimiter: str) -> None:
    text = table(
        ("First Name", "Last Name", "Email", "Company", "Phone", "Created"),
        ("Ana", "Brown", "ana@northbank.com", "Northbank, Inc.", "+1 415 555 0100", "2026-03-04"),
        ("Ben", "Ito", "ben@helio.com", "Helio Foods", "", "2026-03-05T10:22:00Z"),
        delimiter=delimiter,
    )
    leads = read_leads(text.encode())
    assert leads.rows == 2
    assert emails(leads) == ["ana@northbank.com", "ben@helio.com"]
    ana = leads.leads[0]
    assert (ana.name, ana.company, ana.phone, ana.created, ana.row) == (
        "Ana Brown",
        "Northbank, Inc.",
        "+1 415 555 0100",
        date(2026, 3, 4),
        2,
    )
    assert leads.leads[1].created == date(2026, 3, 5)
    assert leads.columns == {
        "first_name": "First Name",
        "last_name": "Last Name",
        "email": "Email",
        "company": "Company",
        "phone": "Phone",
        "created": "Created",
    }
    assert (leads.invalid.count, leads.duplicates_in_file.count, leads.undated) == (0, 0, 0)
    assert not leads.truncated


def test_a_single_column_list_is_read() -> None:
    assert emails(read_leads(b"email\nana@northbank.com\nben@helio.com\n")) == [
        "ana@northbank.com",
        "ben@helio.com",
    ]


def test_utf8_with_bom() -> None:
    text = table(("Email", "Name"), ("jurgen@baeckerei.de", "Jürgen Müller"))
    leads = read_leads(codecs.BOM_UTF8 + text.encode())
    assert leads.columns["email"] == "Email"
    assert leads.leads[0].name == "Jürgen Müller"


def test_utf16_with_bom_as_excel_unicode_text() -> None:
    text = table(("E-Mail", "Name"), ("chen@orion.com", "陈伟"), delimiter="\t")
    for encoding in ("utf-16", "utf-16-be"):
        bom = codecs.BOM_UTF16_BE if encoding == "utf-16-be" else b""
        leads = read_leads(bom + text.encode(encoding))
        assert emails(leads) == ["chen@orion.com"]
        assert leads.leads[0].name == "陈伟"


def test_latin1_with_umlauts_is_decoded_by_detection() -> None:
    text = table(
        ("Vorname", "Nachname", "E-Mail", "Firma"),
        ("Jürgen", "Müller", "j.mueller@baeckerei.de", "Bäckerei Größ"),
        ("Özlem", "Schäfer", "oe@strassenbau.de", "Straßenbau GmbH"),
        delimiter=";",
    )
    leads = read_leads(text.encode("latin-1"))
    assert [(lead.name, lead.company) for lead in leads.leads] == [
        ("Jürgen Müller", "Bäckerei Größ"),
        ("Özlem Schäfer", "Straßenbau GmbH"),
    ]
    assert "detected" in leads.source


def test_a_mostly_ascii_latin1_list_still_reads_its_few_umlauts() -> None:
    rows = [(f"user{i}@acme.com", "Jürgen" if i == 7 else "Ann") for i in range(500)]
    leads = read_leads(table(("email", "name"), *rows).encode("latin-1"))
    assert leads.leads[7].name == "Jürgen"


def test_garbage_is_unreadable_with_the_reason() -> None:
    noise = random.Random(7).randbytes(4000)
    with pytest.raises(Unreadable, match="binary data"):
        read_leads(b"email\n" + noise)
    with pytest.raises(Unreadable) as caught:
        read_leads(bytes(byte for byte in noise if byte))  # no NUL bytes: an encoding is tried
    assert str(caught.value) == NOT_UTF8


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"%PDF-1.7\n...", "this is a PDF"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100), r"old Excel workbook \(\.xls\)"),
        (b"PK\x03\x04not really a zip", "not an Excel workbook"),
    ],
)
def test_other_documents_are_unreadable(data: bytes, reason: str) -> None:
    with pytest.raises(Unreadable, match=reason):
        read_leads(data)


def test_a_broken_quote_names_its_line() -> None:
    data = b'email,name\na@acme.com,Ann\nb@acme.com,"Ben" Ito\n'
    with pytest.raises(Unreadable, match="line 3 has a quote mark"):
        read_leads(data)


@pytest.mark.parametrize(
    ("header", "fields"),
    [
        (
            ("E-Mail Address", "Vorname", "Nachname", "Firma", "Telefon", "Erstellt am"),
            ("email", "first_name", "last_name", "company", "phone", "created"),
        ),
        (
            ("email_address", "Given Name", "Surname", "Organization", "Mobile", "Created At"),
            ("email", "first_name", "last_name", "company", "phone", "created"),
        ),
        (
            ("Courriel", "Prénom", "Nom", "Société", "Téléphone", "Date de création"),
            ("email", "first_name", "last_name", "company", "phone", "created"),
        ),
        (
            ("WORK EMAIL", "Full Name", "Account", "phone number", "Timestamp"),
            ("email", "name", "company", "phone", "created"),
        ),
        (("Mail", "Contact", "Company Name", "Lead Date"), ("email", "name", "company", "created")),
    ],
)
def test_header_variants(header: tuple[str, ...], fields: tuple[str, ...]) -> None:
    leads = read_leads(table(header).encode() + b"x@acme.com\n")
    assert leads.columns == dict(zip(fields, header, strict=True))


def test_the_plainest_email_column_wins_when_there_are_several() -> None:
    leads = read_leads(table(("Work Email", "Email"), ("work@acme.com", "ana@acme.com")).encode())
    assert leads.columns["email"] == "Email"
    assert emails(leads) == ["ana@acme.com"]


def test_a_title_block_above_the_header_is_skipped() -> None:
    text = table(
        ("Webinar Registration Report",),
        ("Topic", "Cloud security 101"),
        (),
        ("First Name", "Last Name", "Email", "Registration Time"),
        ("Ana", "Brown", "ana@northbank.com", "Mar 4, 2026 10:22 AM"),
    )
    leads = read_leads(text.encode())
    assert leads.rows == 1
    assert leads.leads[0].row == 5
    assert leads.leads[0].created == date(2026, 3, 4)


def test_no_email_column_lists_the_columns_found() -> None:
    with pytest.raises(Unreadable) as caught:
        read_leads(table(("Name", "Company", "Phone"), ("Ana", "Northbank", "555")).encode())
    assert str(caught.value) == "no e-mail column: found columns Name, Company, Phone"


def test_a_list_without_a_header_row_is_unreadable_without_showing_the_address() -> None:
    with pytest.raises(Unreadable) as caught:
        read_leads(b"ana.brown@northbank.com,Ana Brown\nben@helio.com,Ben Ito\n")
    assert str(caught.value) == (
        "no e-mail column: found columns a***@northbank.com, Ana Brown (the first row holds "
        "data: add a header row with a column named Email)"
    )


@pytest.mark.parametrize("data", [b"", b"  \n\n", b"\xef\xbb\xbf", b",,,\n,,\n"])
def test_empty_file(data: bytes) -> None:
    with pytest.raises(Unreadable, match="the file is empty"):
        read_leads(data)


def test_header_only() -> None:
    leads = read_leads(b"email,name,created\n\n")
    assert (leads.rows, leads.leads, leads.truncated) == (0, (), False)
    finding = check_leads(leads, **MARCH, earlier_keys=set(), required=None)
    assert finding.outcome == Outcome.FAIL
    assert finding.summary == "The lead list has no rows"


def test_invalid_emails_are_counted_with_rows_and_reasons() -> None:
    text = table(
        ("email", "name"),
        ("ok@acme.com", "Ok"),
        ("bad@", "Bad"),
        ("", "No address"),
        ("two words@acme.com", "Space"),
        ("x@acme.test", "Reserved"),
    )
    leads = read_leads(text.encode())
    assert emails(leads) == ["ok@acme.com"]
    assert leads.invalid.count == 4
    notes = {note.row: note for note in leads.invalid.examples}
    assert sorted(notes) == [3, 4, 5, 6]
    assert notes[3].email == "bad@"
    assert "after the @-sign" in notes[3].reason
    assert notes[4].reason == "no e-mail address"
    assert "SPACE" in notes[5].reason
    assert "special-use or reserved" in notes[6].reason


def test_only_the_first_twenty_problems_are_kept_as_examples() -> None:
    rows = [(f"broken{i}",) for i in range(30)] + [(f"dup{i % 1}@acme.com",) for i in range(30)]
    leads = read_leads(table(("email",), *rows).encode())
    assert leads.invalid.count == 30
    assert len(leads.invalid.examples) == 20
    assert leads.duplicates_in_file.count == 29
    assert len(leads.duplicates_in_file.examples) == 20


def test_duplicates_differing_in_case_and_spaces_are_dropped() -> None:
    text = table(
        ("email", "name"),
        ("Ana.Brown@Northbank.com", "First"),
        ("  ana.brown@NORTHBANK.COM ", "Again"),
        ("mailto:ANA.BROWN@northbank.com", "Link"),
        ("ben@helio.com", "Ben"),
    )
    leads = read_leads(text.encode())
    assert emails(leads) == ["ana.brown@northbank.com", "ben@helio.com"]
    assert leads.leads[0].name == "First"
    assert leads.duplicates_in_file.count == 2
    assert [(n.row, n.reason) for n in leads.duplicates_in_file.examples] == [
        (3, "same e-mail as row 2"),
        (4, "same e-mail as row 2"),
    ]


def test_international_domains_are_one_lead_in_either_spelling() -> None:
    leads = read_leads(table(("email",), ("Jo@Bücher.de",), ("jo@xn--bcher-kva.de",)).encode())
    assert emails(leads) == ["jo@bücher.de"]
    assert leads.duplicates_in_file.count == 1


# --- dates ---------------------------------------------------------------------------------------


def dates_of(*values: str) -> LeadList:
    rows = [(f"lead{i}@acme.com", value) for i, value in enumerate(values)]
    return read_leads(table(("email", "date"), *rows).encode())


def test_day_first_dates_when_only_that_reads_every_row() -> None:
    leads = dates_of("03/04/2026", "25/03/2026")
    assert [lead.created for lead in leads.leads] == [date(2026, 4, 3), date(2026, 3, 25)]


def test_month_first_dates_when_only_that_reads_every_row() -> None:
    leads = dates_of("03/04/2026", "03/25/2026", "3/9/26")
    assert [lead.created for lead in leads.leads] == [
        date(2026, 3, 4),
        date(2026, 3, 25),
        date(2026, 3, 9),
    ]


def test_when_both_orders_read_every_row_the_closer_dates_win() -> None:
    # March 1-12 month-first; day-first would scatter them from January to December
    leads = dates_of("03/01/2026", "03/05/2026", "03/12/2026")
    assert [lead.created for lead in leads.leads] == [
        date(2026, 3, 1),
        date(2026, 3, 5),
        date(2026, 3, 12),
    ]


def test_a_date_that_reads_both_ways_alike_is_unknown() -> None:
    leads = dates_of("03/04/2026 09:00", "03/04/2026")
    assert leads.undated == 2
    assert leads.dates_note == "dates such as 03/04/2026 can be read day-first or month-first"


def test_mixed_date_orders_are_unknown() -> None:
    leads = dates_of("25/03/2026", "03/25/2026", "2026-03-07")
    assert [lead.created for lead in leads.leads] == [None, None, date(2026, 3, 7)]
    assert "partly day-first and partly month-first" in leads.dates_note


def test_other_date_forms() -> None:
    leads = dates_of("31.03.2026", "4 March 2026", "2026/03/05 14:00", "Tue, 10 Mar 2026 08:00")
    assert [lead.created for lead in leads.leads] == [
        date(2026, 3, 31),
        date(2026, 3, 4),
        date(2026, 3, 5),
        date(2026, 3, 10),
    ]


def test_a_date_that_fits_neither_order_does_not_hide_the_others() -> None:
    leads = dates_of("31/31/2026", "03/25/2026", "03/04/2026")
    assert [lead.created for lead in leads.leads] == [None, date(2026, 3, 25), date(2026, 3, 4)]
    assert leads.dates_note == "dates such as '31/31/2026' could not be read"


def test_unreadable_and_missing_dates_are_undated() -> None:
    leads = dates_of("2026-03-04", "soon", "", "March 2026", "2026-02-30")
    assert [lead.created for lead in leads.leads] == [date(2026, 3, 4), None, None, None, None]
    assert leads.undated == 4
    assert "dates such as 'soon' could not be read" in leads.dates_note
    assert "some leads have no date" in leads.dates_note


def test_a_list_without_a_date_column_is_undated() -> None:
    leads = read_leads(b"email\na@acme.com\nb@acme.com\n")
    assert leads.undated == 2
    assert leads.dates_note == "the list has no date column"


# --- reading XLSX --------------------------------------------------------------------------------


def test_xlsx_with_excel_dates_on_the_first_sheet_with_data() -> None:
    # Excel date cells carry no timezone: openpyxl gives naive datetimes
    data = workbook(
        ("Notes", []),
        (
            "Registrants",
            [
                ("Exported 2026-04-01",),
                (),
                ("Email", "First name", "Surname", "Company", "Phone", "Created date"),
                (
                    "Ana@Northbank.com",
                    "Ana",
                    "Brown",
                    "Northbank",
                    4155550100,
                    datetime(2026, 3, 4, 9),  # noqa: DTZ001
                ),
                ("ben@helio.com", "Ben", "Ito", "Helio", None, date(2026, 3, 6)),
                (),
                ("chen@orion.com", "Chen", None, None, None, "2026-03-07"),
                ("ana@northbank.com", "Ana", "Brown", None, None, datetime(2026, 3, 8)),  # noqa: DTZ001
            ],
        ),
    )
    leads = read_leads(data, filename="leads.xlsx")
    assert leads.source == "Excel sheet 'Registrants'"
    assert leads.rows == 4
    assert emails(leads) == ["ana@northbank.com", "ben@helio.com", "chen@orion.com"]
    assert [lead.row for lead in leads.leads] == [4, 5, 7]
    assert [lead.created for lead in leads.leads] == [
        date(2026, 3, 4),
        date(2026, 3, 6),
        date(2026, 3, 7),
    ]
    assert leads.leads[0].phone == "4155550100"
    assert leads.leads[2].name == "Chen"
    assert leads.duplicates_in_file.examples[0].row == 8
    assert leads.columns["created"] == "Created date"


def test_xlsx_without_an_email_column() -> None:
    data = workbook(("Sheet1", [("Name", "Company"), ("Ana", "Northbank")]))
    with pytest.raises(Unreadable, match=r"^no e-mail column: found columns Name, Company$"):
        read_leads(data)


def test_an_empty_workbook_is_empty() -> None:
    with pytest.raises(Unreadable, match="the file is empty"):
        read_leads(workbook(("Sheet1", [])))


# --- size ----------------------------------------------------------------------------------------


def test_lists_over_the_row_limit_are_truncated_quickly() -> None:
    rows = "".join(
        f"user{i}@company{i % 500}.com,2026-03-{1 + i % 28:02d}\n" for i in range(100_050)
    )
    data = b"email,created\n" + rows.encode()
    started = time.perf_counter()
    leads = read_leads(data)
    elapsed = time.perf_counter() - started
    assert (leads.rows, len(leads.leads), leads.truncated) == (100_000, 100_000, True)
    assert leads.leads[-1].email == "user99999@company499.com"
    assert elapsed < 20, f"reading 100,000 leads took {elapsed:.1f} s"
    finding = check_leads(leads, **MARCH, earlier_keys=set(), required=1000)
    assert finding.summary.endswith("only the first 100,000 rows were read")


def test_max_rows_counts_data_rows_not_blank_lines() -> None:
    text = "email\n\na@acme.com\n\nb@acme.com\nc@acme.com\n"
    assert read_leads(text.encode(), max_rows=2).truncated
    assert not read_leads(text.encode(), max_rows=3).truncated


# --- keys ----------------------------------------------------------------------------------------


def test_lead_key_is_the_hash_of_the_normalised_email() -> None:
    assert lead_key("ana@acme.com") == hashlib.sha256(b"ana@acme.com").hexdigest()
    assert lead_key(" Ana@ACME.com ") == lead_key("ana@acme.com")
    assert lead_key("jo@xn--bcher-kva.de") == lead_key("Jo@Bücher.de")
    assert lead_key("ana@acme.com") != lead_key("ann@acme.com")
    leads = listed("Ana@Acme.com", "ben@helio.com", "ANA@acme.com")
    assert keys(leads) == [lead_key("ana@acme.com"), lead_key("ben@helio.com")]


# --- the check -----------------------------------------------------------------------------------


def finance_list() -> LeadList:
    rows = [
        ("Email", "Name", "Created"),
        ("jane@acme.com", "Jane", "2026-03-02"),
        ("JANE@acme.com ", "Jane again", "2026-03-03"),
        ("kim@acme.com", "Kim", "2026-03-10"),
        ("lee@helio.com", "Lee", "2026-03-11"),
        ("max@orion.com", "Max", "2026-03-31"),
        ("old@orion.com", "Old", "2026-02-27"),
        ("not-an-address", "Nobody", "2026-03-12"),
    ]
    return read_leads(table(*rows).encode())


def test_pass_when_the_new_leads_in_the_window_reach_the_requirement() -> None:
    finding = check_leads(
        finance_list(), **MARCH, earlier_keys={lead_key("kim@acme.com")}, required=3
    )
    assert finding.outcome == Outcome.PASS
    assert finding.score == 100
    assert finding.summary == (
        "3 new leads inside the activity window (required 3); 1 duplicate dropped, "
        "1 already claimed in earlier claims, 1 dated outside the window, 1 invalid e-mail"
    )
    evidence = finding.evidence
    assert {k: evidence[k] for k in ("rows", "unique_leads", "new_in_window", "in_window")} == {
        "rows": 7,
        "unique_leads": 5,
        "new_in_window": 3,
        "in_window": 4,
    }
    assert (evidence["outside_window"], evidence["claimed_before"]) == (1, 1)
    assert evidence["lead_dates"] == {"earliest": "2026-02-27", "latest": "2026-03-31"}
    assert evidence["columns"] == {"email": "Email", "name": "Name", "created": "Created"}


def test_fail_when_short_of_the_requirement() -> None:
    finding = check_leads(finance_list(), **MARCH, earlier_keys=set(), required=6)
    assert finding.outcome == Outcome.FAIL
    assert finding.score == 66
    assert finding.summary.startswith(
        "4 new leads inside the activity window, 2 short of the 6 required; 1 duplicate dropped"
    )


def test_the_grace_days_extend_the_window_after_its_end() -> None:
    leads = dates_of("2026-02-28", "2026-03-01", "2026-03-31", "2026-04-02", "2026-04-03")
    plain = check_leads(leads, **MARCH, earlier_keys=set(), required=3)
    graced = check_leads(leads, **MARCH, earlier_keys=set(), required=3, window_grace_days=2)
    assert (plain.evidence["new_in_window"], plain.outcome) == (2, Outcome.FAIL)
    assert (graced.evidence["new_in_window"], graced.outcome) == (3, Outcome.PASS)
    assert graced.evidence["outside_window"] == 2
    assert graced.evidence["window"] == {
        "starts_on": "2026-03-01",
        "ends_on": "2026-03-31",
        "grace_days": 2,
    }


def test_fail_when_most_leads_were_claimed_before() -> None:
    leads = listed(*(f"lead{i}@acme.com" for i in range(10)))
    earlier = {lead_key(f"lead{i}@acme.com") for i in range(6)}
    finding = check_leads(leads, **MARCH, earlier_keys=earlier, required=2)
    assert finding.outcome == Outcome.FAIL
    assert finding.summary == (
        "6 of 10 leads (60%) were already claimed in earlier claims; "
        "4 new leads inside the activity window (required 2)"
    )
    assert finding.score == 40
    half = {lead_key(f"lead{i}@acme.com") for i in range(5)}
    assert check_leads(leads, **MARCH, earlier_keys=half, required=2).outcome == Outcome.PASS


def test_inconclusive_when_leads_without_dates_decide() -> None:
    text = table(
        ("email", "date"), ("a@acme.com", "2026-03-02"), ("b@acme.com", ""), ("c@x.com", "")
    )
    finding = check_leads(read_leads(text.encode()), **MARCH, earlier_keys=set(), required=2)
    assert finding.outcome == Outcome.INCONCLUSIVE
    assert finding.summary == (
        "1 new lead inside the activity window (required 2), and 2 more without a readable "
        "date (some leads have no date): a person must check whether enough of them are from "
        "the window"
    )
    assert finding.score == 50


def test_no_date_column_fails_only_when_even_every_lead_would_not_be_enough() -> None:
    leads = read_leads(b"email\na@acme.com\nb@acme.com\n")
    short = check_leads(leads, **MARCH, earlier_keys=set(), required=5)
    assert short.outcome == Outcome.FAIL
    assert short.summary == (
        "At most 2 new leads could be from the activity window (0 dated inside it, 2 without "
        "a readable date (the list has no date column)), 3 short of the 5 required"
    )
    maybe = check_leads(leads, **MARCH, earlier_keys=set(), required=2)
    assert maybe.outcome == Outcome.INCONCLUSIVE
    unset = check_leads(leads, **MARCH, earlier_keys=set(), required=None)
    assert unset.outcome == Outcome.INCONCLUSIVE
    assert unset.summary.startswith(
        "2 of 2 leads have no readable date (the list has no date column), so whether they are "
        "from the activity window cannot be told"
    )


def test_without_a_requirement_a_clean_list_passes() -> None:
    leads = dates_of(*(["2026-03-05"] * 9 + ["2026-01-05"]))
    finding = check_leads(leads, **MARCH, earlier_keys=set(), required=None)
    assert finding.outcome == Outcome.PASS
    assert finding.summary == ("9 new leads inside the activity window; 1 dated outside the window")
    assert finding.score == 90


def test_without_a_requirement_a_list_partly_from_elsewhere_needs_a_look() -> None:
    leads = dates_of(*(["2026-03-05"] * 7 + ["2026-01-05"] * 3))
    finding = check_leads(leads, **MARCH, earlier_keys=set(), required=None)
    assert finding.outcome == Outcome.INCONCLUSIVE
    assert "30% of the leads were claimed before or are dated outside the window" in (
        finding.summary
    )


def test_without_a_requirement_a_list_from_another_period_fails() -> None:
    last_year = dates_of(*(["2025-03-05"] * 4))
    finding = check_leads(last_year, **MARCH, earlier_keys=set(), required=None)
    assert finding.outcome == Outcome.FAIL
    assert finding.summary == "No new leads inside the activity window; 4 dated outside the window"
    assert finding.evidence["lead_dates"] == {"earliest": "2025-03-05", "latest": "2025-03-05"}
    mostly = dates_of(*(["2026-03-05"] * 4 + ["2025-03-05"] * 6))
    assert check_leads(mostly, **MARCH, earlier_keys=set(), required=None).outcome == Outcome.FAIL


def test_a_list_of_only_invalid_addresses_fails() -> None:
    leads = read_leads(b"email\nnope\nnot@\n")
    finding = check_leads(leads, **MARCH, earlier_keys=set(), required=1)
    assert finding.outcome == Outcome.FAIL
    assert finding.summary == "The lead list has no valid e-mail addresses; 2 invalid e-mails"


def test_evidence_masks_the_addresses_and_is_json() -> None:
    leads = finance_list()
    finding = check_leads(leads, **MARCH, earlier_keys=set(), required=1)
    shown = json.dumps(finding.evidence)
    for lead in leads.leads:
        assert lead.email not in shown
    assert "jane@acme.com" not in shown.lower()
    assert finding.evidence["duplicate_examples"] == [
        {"row": 3, "email": "J***@acme.com", "reason": "same e-mail as row 2"}
    ]
    assert finding.evidence["invalid_examples"][0]["email"] == "n***"
    assert finding.evidence["invalid_examples"][0]["row"] == 8


def test_mask_email() -> None:
    assert mask_email("jane.doe@acme.com") == "j***@acme.com"
    assert mask_email("bad@") == "b***@"
    assert mask_email("nobody") == "n***"
    assert mask_email("") == "***"
