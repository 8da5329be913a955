"""Reading uploaded CSV files: what a finance user sees (rows, line numbers, messages)."""

from __future__ import annotations

import csv
import io
import time
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mdfledger.csvfile import (
    MAX_BYTES,
    Column,
    CsvFileError,
    RowError,
    Table,
    parse_date,
    read_table,
    require,
)
from mdfledger.errors import ValidationError

COLUMNS = (
    Column("partner", aliases=("partner code", "partner id")),
    Column("amount"),
    Column("note", required=False),
)


def read(text: str, columns: tuple[Column, ...] = COLUMNS, **kwargs: int) -> Table:
    return read_table(text.encode("utf-8"), columns, **kwargs)


def only_error(table: Table) -> RowError:
    assert table.rows == []
    assert len(table.errors) == 1, table.errors
    return table.errors[0]


# --- reading rows --------------------------------------------------------------------------------


def test_reads_rows_with_line_numbers_and_stripped_cells() -> None:
    table = read("partner,amount,note\n ACME , 10.50 ,first\nBETA,5,\n")
    assert table.errors == []
    assert table.rows == [
        (2, {"partner": "ACME", "amount": "10.50", "note": "first"}),
        (3, {"partner": "BETA", "amount": "5", "note": ""}),
    ]


def test_optional_column_missing_from_the_header_reads_as_empty() -> None:
    table = read("amount,partner\n7,ACME")
    assert table.rows == [(2, {"partner": "ACME", "amount": "7", "note": ""})]


def test_unknown_columns_are_ignored_even_when_repeated_or_blank() -> None:
    table = read("Region,partner,Region,amount,,\nEMEA,ACME,x,3,,\n")
    assert table.errors == []
    assert table.rows == [(2, {"partner": "ACME", "amount": "3", "note": ""})]


def test_fewer_cells_than_the_header_read_as_empty() -> None:
    table = read("partner,amount,note\nACME\n")
    assert table.rows == [(2, {"partner": "ACME", "amount": "", "note": ""})]


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_line_endings_of_any_platform(newline: str) -> None:
    table = read(newline.join(["partner,amount", "A,1", "", "B,2", ""]))
    assert [line for line, _ in table.rows] == [2, 4]


def test_blank_rows_are_skipped_but_still_counted_as_lines() -> None:
    table = read("partner,amount\n\nA,1\n,,\n  ,  \t , \nB,2\n")
    assert table.errors == []
    assert [(line, row["partner"]) for line, row in table.rows] == [(3, "A"), (6, "B")]


def test_blank_lines_before_the_header_are_skipped() -> None:
    table = read("\n\npartner,amount\nA,1\n")
    assert table.rows == [(4, {"partner": "A", "amount": "1", "note": ""})]


def test_quoted_cells_with_embedded_newlines_keep_the_starting_line() -> None:
    text = (
        "partner,amount,note\n"
        'A,1,"three\nline\nnote"\n'  # lines 2-4
        "B,2,plain\n"  # line 5
        'C,3,"x",extra\n'  # line 6: too many cells, reported on its own line
        'D,"4","a, b"\r\n'  # line 7
    )
    table = read(text)
    assert table.rows == [
        (2, {"partner": "A", "amount": "1", "note": "three\nline\nnote"}),
        (5, {"partner": "B", "amount": "2", "note": "plain"}),
        (7, {"partner": "D", "amount": "4", "note": "a, b"}),
    ]
    assert table.errors == [RowError(6, None, "row has 4 cells; the header has 3")]


def test_space_after_a_delimiter_does_not_hide_a_quoted_cell() -> None:
    table = read('partner, amount, note\nA, 1, "x, y"\n')
    assert table.rows == [(2, {"partner": "A", "amount": "1", "note": "x, y"})]


def test_a_misplaced_quote_is_a_file_error_on_its_line() -> None:
    error = only_error(read('partner,amount\nA,1\n"B" Ltd,2\nC,3\n'))
    assert error.line == 3
    assert "line 3 has a quote mark" in error.message


def test_a_quote_that_is_never_closed_points_at_where_it_opens() -> None:
    error = only_error(read('partner,amount\nA,1\nB,"2\nC,3\nD,4\n'))
    assert error.line == 3
    assert "never closed" in error.message


def test_too_many_cells_drops_that_row_and_keeps_the_others() -> None:
    table = read("partner,amount,note\nA,1,x\nB,1,000.00,x,y\nC,3,z\n")
    assert [line for line, _ in table.rows] == [2, 4]
    assert table.errors == [RowError(3, None, "row has 5 cells; the header has 3")]


def test_empty_trailing_cells_are_not_too_many() -> None:
    table = read("partner,amount\nA,1,,\nB,2, , \n")
    assert table.errors == []
    assert [row["amount"] for _, row in table.rows] == ["1", "2"]


def test_cells_longer_than_1000_characters_are_refused() -> None:
    ok, long = "x" * 1000, "y" * 1001
    table = read(f"partner,amount,note\nA,1,{ok}\nB,2,{long}\nC,3,  {ok}  \n")
    assert [line for line, _ in table.rows] == [2, 4]
    assert table.errors == [
        RowError(3, "note", "note is 1,001 characters long; the limit is 1,000")
    ]


def test_long_cells_in_ignored_columns_do_not_matter() -> None:
    table = read(f"partner,amount,comments\nA,1,{'z' * 5000}\n")
    assert table.errors == []


# --- encodings -----------------------------------------------------------------------------------


def test_utf8_with_bom() -> None:
    data = "partner,amount\nCafé Müller,1\n".encode("utf-8-sig")
    table = read_table(data, COLUMNS)
    assert table.rows == [(2, {"partner": "Café Müller", "amount": "1", "note": ""})]


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_with_bom_as_excel_unicode_text_writes_it(codec: str) -> None:
    bom = "\ufeff".encode(codec)
    data = bom + "partner\tamount\tnote\r\nZürich AG\t12.00\t€ 5\r\n".encode(codec)
    table = read_table(data, COLUMNS)
    assert table.errors == []
    assert table.rows == [(2, {"partner": "Zürich AG", "amount": "12.00", "note": "€ 5"})]


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_cp1252_bytes_name_the_line_of_the_first_bad_byte(bom: bytes, newline: str) -> None:
    text = newline.join(["partner,amount", "ACME,1", 'A,"2', '3"', "Café,4", "Brûlé,5"])
    error = only_error(read_table(bom + text.encode("cp1252"), COLUMNS))
    assert error.line == 5  # the quoted cell on lines 3-4 counts as two lines
    assert error.message == (
        'line 5 contains text that is not UTF-8; save it from your spreadsheet as "CSV UTF-8" '
        "and upload it again"
    )


def test_broken_utf16_names_its_line() -> None:
    data = "partner,amount\r\nA,1\r\n".encode("utf-16") + b"\x00"  # odd trailing byte
    error = only_error(read_table(data, COLUMNS))
    assert error.line == 3
    assert "not UTF-16" in error.message


# --- delimiters ----------------------------------------------------------------------------------


def test_semicolon_files_from_european_excel() -> None:
    table = read("Partner;Amount;Note\nACME;1234,50;Q1, north\n")
    assert table.rows == [(2, {"partner": "ACME", "amount": "1234,50", "note": "Q1, north"})]


def test_tab_separated_files() -> None:
    table = read("partner\tamount\nACME\t1,000.00\n")
    assert table.rows == [(2, {"partner": "ACME", "amount": "1,000.00", "note": ""})]


def test_comma_wins_when_the_header_matches_equally() -> None:
    table = read_table(b"partner\nA;B\n", (Column("partner"),))
    assert table.rows == [(2, {"partner": "A;B"})]


# --- header --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spelling",
    ["partner", "PARTNER", "  Partner ", "Partner Code", "partner_code", "partner-code",
     "Partner  ID", "partner__id"],
)  # fmt: skip
def test_header_spellings_match_case_and_separator_insensitively(spelling: str) -> None:
    table = read(f'"{spelling}",Amount\nACME,1\n')
    assert table.errors == []
    assert table.rows[0][1]["partner"] == "ACME"


def test_missing_required_columns_are_listed_with_the_columns_found() -> None:
    error = only_error(read("Partner Name,Amt,note\nACME,1,x\n"))
    assert error == RowError(
        1,
        None,
        "the header is missing the columns partner, amount; "
        "the columns found are: Partner Name, Amt, note",
    )


def test_one_missing_column_is_singular() -> None:
    error = only_error(read("partner\nACME\n"))
    assert (
        error.message == "the header is missing the column amount; the columns found are: partner"
    )


def test_a_header_in_an_unrecognised_separator_shows_what_was_found() -> None:
    error = only_error(read("Partner|Amount\nACME|1\n"))
    assert error.message.endswith("the columns found are: Partner|Amount")


def test_duplicate_header_names_are_refused() -> None:
    error = only_error(read("partner,amount,Partner\nA,1,B\n"))
    assert error == RowError(
        1,
        "partner",
        'the header has partner twice: "partner" in column A and "Partner" in column C; '
        "keep only one",
    )


def test_two_aliases_of_one_column_are_duplicates() -> None:
    error = only_error(read("partner id,amount,Partner-Code\nA,1,B\n"))
    assert error.column == "partner"
    assert "column A" in error.message
    assert "column C" in error.message


def test_column_definitions_that_clash_are_a_programming_error() -> None:
    with pytest.raises(ValueError):
        read_table(b"a\n1\n", (Column("partner", aliases=("code",)), Column("code")))
    with pytest.raises(ValueError):
        read_table(b"a\n1\n", (Column("partner"), Column("partner")))


# --- size, emptiness, binary files ---------------------------------------------------------------


def test_over_the_size_limit() -> None:
    error = only_error(read("partner,amount\n" + "A,1\n" * 40, max_bytes=100))
    assert error == RowError(0, None, "the file is 175 bytes; the limit is 100 bytes")


def test_sizes_are_human() -> None:
    data = b"x" * int(52.4 * 1024 * 1024)
    assert only_error(read_table(data, COLUMNS)).message == (
        "the file is 52.4 MB; the limit is 10 MB"
    )
    kb = read_table(b"x" * 3000, COLUMNS, max_bytes=2048)
    assert only_error(kb).message == "the file is 2.9 KB; the limit is 2 KB"


def test_just_over_the_limit_is_shown_in_bytes_rather_than_as_equal_sizes() -> None:
    error = only_error(read_table(b"x" * (MAX_BYTES + 1), COLUMNS))
    assert error.message == "the file is 10,485,761 bytes; the limit is 10,485,760 bytes"


def test_a_50_mb_upload_is_refused_quickly_without_decoding() -> None:
    data = b"\xff" * (50 * 1024 * 1024)  # not valid in any encoding we accept
    started = time.perf_counter()
    table = read_table(data, COLUMNS)
    assert time.perf_counter() - started < 0.5
    assert only_error(table) == RowError(0, None, "the file is 50 MB; the limit is 10 MB")


BINARY = 'the file contains binary data, not CSV text; save it from your spreadsheet as "CSV UTF-8"'


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            b"PK\x03\x04\x14\x00\x06\x00",
            "this looks like an Excel workbook (.xlsx); export it as CSV",
        ),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "this looks like a PDF, not a CSV file; export"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1\x00", "this looks like an old Excel workbook (.xls)"),
        (b"partner,amount\nA,\x001\n", BINARY),
        ("partner\x00,amount\n".encode("utf-16"), BINARY),
    ],
    ids=["xlsx", "pdf", "xls", "nul", "nul-utf16"],
)
def test_binary_files_are_named(data: bytes, message: str) -> None:
    error = only_error(read_table(data, COLUMNS))
    assert (error.line, error.column) == (0, None)
    assert error.message.startswith(message)


@pytest.mark.parametrize(
    "data", [b"", b"\xef\xbb\xbf", b"\xff\xfe", b"  \r\n\n", b",,,\n , \n"], ids=repr
)
def test_empty_files(data: bytes) -> None:
    assert only_error(read_table(data, COLUMNS)) == RowError(0, None, "the file is empty")


@pytest.mark.parametrize("text", ["partner,amount", "partner,amount\r\n", "partner,amount\n\n,\n"])
def test_header_only(text: str) -> None:
    assert only_error(read(text)) == RowError(0, None, "the file has a header but no rows")


def test_max_rows() -> None:
    header = "partner,amount\n"
    assert len(read(header + "A,1\n\n" * 3, max_rows=3).rows) == 3  # blank lines do not count
    error = only_error(read(header + "A,1\n" * 4, max_rows=3))
    assert error == RowError(0, None, "the file has more than 3 rows; split it into smaller files")


def test_default_max_rows_message() -> None:
    error = only_error(read("partner,amount\n" + "A,1\n" * 100_001))
    assert error.message.startswith("the file has more than 100,000 rows; split it")


# --- parsing helpers -----------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["2026-03-31", "2026/03/31", "  2026-03-31 "])
def test_parse_date_accepts_iso(text: str) -> None:
    assert parse_date(text, "date") == date(2026, 3, 31)


@pytest.mark.parametrize(
    "text", ["03/04/2026", "31.03.2026", "2026-3-31", "20260331", "2026-03/31", "2026-W13-2",
             "2026-03-31T00:00", "٢٠٢٦-٠٣-٣١", "next tuesday"],
)  # fmt: skip
def test_parse_date_refuses_other_forms_and_says_what_to_write(text: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_date(text, "start date")
    assert info.value.message == (
        f"start date '{text}' is not a date in the form YYYY-MM-DD, e.g. 2026-03-31"
    )
    assert info.value.details == {"field": "start date"}


def test_parse_date_refuses_impossible_dates() -> None:
    with pytest.raises(ValidationError, match=r"^date '2026-02-30' is not a real date$"):
        parse_date("2026-02-30", "date")


def test_parse_date_shortens_long_input_in_the_message() -> None:
    with pytest.raises(ValidationError) as info:
        parse_date("x" * 1000, "date")
    assert len(info.value.message) < 120


def test_parse_date_and_require_refuse_blank() -> None:
    for func in (parse_date, require):
        with pytest.raises(ValidationError, match=r"^partner is required$"):
            func("  ", "partner")


def test_require_returns_the_stripped_text() -> None:
    assert require(" ACME ", "partner") == "ACME"


def test_csv_file_error_is_a_validation_error() -> None:
    error = CsvFileError("the file is empty")
    assert isinstance(error, ValidationError)
    assert error.to_dict() == {"code": "invalid_file", "message": "the file is empty"}


# --- round trip ----------------------------------------------------------------------------------

_cell = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=12,
)


@settings(deadline=None)
@given(
    rows=st.lists(st.lists(_cell, max_size=3), max_size=8),
    delimiter=st.sampled_from([",", ";", "\t"]),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16"]),
)
def test_whatever_csv_writer_writes_reads_back_exactly(
    rows: list[list[str]], delimiter: str, encoding: str
) -> None:
    names = ["partner", "amount", "note"]
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter)
    writer.writerow(names)
    expected = []
    line = 1  # physical lines written so far: the header
    for row in rows:
        before = len(out.getvalue())
        writer.writerow(row)
        chunk = out.getvalue()[before:]
        cells = [cell.strip() for cell in row] + [""] * (3 - len(row))
        if any(cells):
            expected.append((line + 1, dict(zip(names, cells, strict=True))))
        line += chunk.count("\n") + chunk.count("\r") - chunk.count("\r\n")

    table = read_table(out.getvalue().encode(encoding), COLUMNS)

    if expected:
        assert table.errors == []
        assert table.rows == expected
    else:
        assert only_error(table).message == "the file has a header but no rows"
