"""Uploaded CSV files for bulk imports (allocations, co-op purchases, lead lists).

Pure: bytes in, validated rows or a list of problems out; no database, no Flask. Problems are
returned, not raised, so an upload page can show every one of them at once.

Line numbers are physical lines as a spreadsheet or text editor shows them (the header is line
1). A quoted cell that spans several lines keeps the line where its record starts, and the
lines it covers still count, so the next record's number stays right.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from mdfledger.errors import ValidationError

MAX_BYTES = 10 * 1024 * 1024  # default size limit
MAX_CELL_CHARS = 1000

_DELIMITERS = (",", ";", "\t")  # ";" is what Excel writes in locales with a decimal comma
_DIGITS = frozenset("0123456789")  # str.isdigit() would accept "٢" and "²"
SAVE_AS_HINT = 'save it from your spreadsheet as "CSV UTF-8" and upload it again'
_MAGIC = (
    (b"PK\x03\x04", "this looks like an Excel workbook (.xlsx); export it as CSV"),
    (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
        "this looks like an old Excel workbook (.xls); export it as CSV",
    ),
    (b"%PDF-", "this looks like a PDF, not a CSV file; export the data as CSV"),
)


@dataclass(frozen=True)
class Column:
    name: str  # canonical name, e.g. "partner"
    aliases: tuple[str, ...] = ()  # other accepted header spellings, e.g. ("partner code",)
    required: bool = True


@dataclass(frozen=True)
class RowError:
    line: int  # 1-based physical line (header is line 1); 0 for the file as a whole
    column: str | None  # canonical column name, or None for whole-row / file problems
    message: str  # a sentence a finance user understands


@dataclass(frozen=True)
class Table:
    """What read_table found.

    rows: (line, {canonical column: stripped cell}); optional columns the header lacks are "".
    errors: a file-level problem (size, encoding, header, quoting, too many rows) makes rows
    empty and is the only error. Otherwise errors lists rows that could not be read (too many
    cells, a cell too long); those rows are left out of rows and every other row is returned,
    so an importer can add its own per-row errors and report them all together.
    """

    rows: list[tuple[int, dict[str, str]]]
    errors: list[RowError]


class CsvFileError(ValidationError):
    """For importers that turn a Table's errors into one exception; this module never raises it."""

    code = "invalid_file"


def read_table(
    data: bytes,
    columns: Sequence[Column],
    *,
    max_bytes: int = MAX_BYTES,
    max_rows: int = 100_000,
) -> Table:
    """Decode, split and match an uploaded CSV file against the expected columns.

    Raises ValueError only for a programming mistake in `columns` (two columns claiming the
    same header spelling); everything wrong with the file comes back in Table.errors.
    """
    lookup = _header_lookup(columns)

    # Cheap byte checks come first, so a huge or binary upload is refused without decoding it.
    if not data:
        return _fail(0, "the file is empty")
    if len(data) > max_bytes:
        return _fail(0, size_message(len(data), max_bytes))
    for magic, message in _MAGIC:
        if data.startswith(magic):
            return _fail(0, message)
    utf16 = data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    if not utf16 and b"\x00" in data:
        return _fail(0, f"the file contains binary data, not CSV text; {SAVE_AS_HINT}")

    codec, label = ("utf-16", "UTF-16") if utf16 else ("utf-8-sig", "UTF-8")
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as exc:
        # exc.object may be the input minus its BOM; its prefix up to exc.start is valid text.
        line = count_lines(exc.object[: exc.start].decode(codec)) + 1
        return _fail(line, f"line {line} contains text that is not {label}; {SAVE_AS_HINT}")
    if "\x00" in text:
        return _fail(0, f"the file contains binary data, not CSV text; {SAVE_AS_HINT}")
    if not text.strip():
        return _fail(0, "the file is empty")

    reader = csv.reader(
        io.StringIO(text, newline=""),  # newline="" so quoted line breaks reach the csv module
        delimiter=_sniff_delimiter(text, lookup),
        strict=True,  # a stray quote would otherwise silently merge or split cells
        skipinitialspace=True,  # so 'a, "b, c"' is two cells, as a person writing it meant
    )
    positions: dict[str, int] | None = None
    width = 0
    rows: list[tuple[int, dict[str, str]]] = []
    errors: list[RowError] = []
    count = 0
    while True:
        line = reader.line_num + 1  # line_num counts physical lines consumed so far
        try:
            cells = next(reader, None)
        except csv.Error:
            return _fail(
                line,
                f'line {line} has a quote mark (") in the wrong place, or a quoted cell that '
                "is never closed; check the quotes from that line on",
            )
        if cells is None:
            break
        if all(not cell.strip() for cell in cells):
            continue
        if positions is None:
            positions, header_errors = _match_header(line, cells, columns, lookup)
            if header_errors:
                return Table(rows=[], errors=header_errors)
            width = len(cells)
            continue

        count += 1
        if count > max_rows:
            return _fail(
                0, f"the file has more than {max_rows:,} rows; split it into smaller files"
            )
        # Empty trailing cells are harmless (spreadsheets pad rows); real extra data is not,
        # because it usually means a cell with an unquoted delimiter shifted the row.
        if len(cells) > width and any(cell.strip() for cell in cells[width:]):
            errors.append(
                RowError(line, None, f"row has {len(cells)} cells; the header has {width}")
            )
            continue
        row: dict[str, str] = {}
        ok = True
        for column in columns:
            pos = positions.get(column.name)
            value = cells[pos].strip() if pos is not None and pos < len(cells) else ""
            if len(value) > MAX_CELL_CHARS:
                errors.append(
                    RowError(
                        line,
                        column.name,
                        f"{column.name} is {len(value):,} characters long; "
                        f"the limit is {MAX_CELL_CHARS:,}",
                    )
                )
                ok = False
            row[column.name] = value
        if ok:
            rows.append((line, row))

    if positions is None:  # only blank records, e.g. ",,,"
        return _fail(0, "the file is empty")
    if count == 0:
        return _fail(0, "the file has a header but no rows")
    return Table(rows=rows, errors=errors)


def require(text: str, column: str) -> str:
    """The stripped text, or ValidationError("partner is required")."""
    value = text.strip()
    if not value:
        raise ValidationError(f"{column} is required", field=column)
    return value


def parse_date(text: str, column: str) -> date:
    """YYYY-MM-DD (or YYYY/MM/DD). Day-first and month-first forms are refused, not guessed:
    03/04/2026 is 3 April in Paris and March 4 in Chicago."""
    value = require(text, column)
    if (
        len(value) == 10
        and value[4] == value[7]
        and value[4] in "-/"
        and all(ch in _DIGITS for ch in value[:4] + value[5:7] + value[8:])
    ):
        try:
            return date(int(value[:4]), int(value[5:7]), int(value[8:]))
        except ValueError:
            raise ValidationError(f"{column} '{value}' is not a real date", field=column) from None
    raise ValidationError(
        f"{column} '{_shorten(value)}' is not a date in the form YYYY-MM-DD, e.g. 2026-03-31",
        field=column,
    )


# --- helpers -------------------------------------------------------------------------------------


def _fail(line: int, message: str) -> Table:
    return Table(rows=[], errors=[RowError(line, None, message)])


def _normalise(name: str) -> str:
    """'  Partner-Code ' and 'partner_code' both become 'partner code'."""
    return " ".join(name.replace("-", " ").replace("_", " ").casefold().split())


def _header_lookup(columns: Sequence[Column]) -> dict[str, str]:
    lookup: dict[str, str] = {}
    names = [column.name for column in columns]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate column names in {names}")
    for column in columns:
        for spelling in (column.name, *column.aliases):
            key = _normalise(spelling)
            if not key:
                raise ValueError(f"column {column.name!r} has an empty spelling")
            if lookup.setdefault(key, column.name) != column.name:
                raise ValueError(
                    f"{spelling!r} would match both {lookup[key]!r} and {column.name!r}"
                )
    return lookup


def _sniff_delimiter(text: str, lookup: dict[str, str]) -> str:
    """The delimiter under which the header matches the most expected columns, then has the
    most cells; comma on a tie. csv.Sniffer guesses from data rows and is easily fooled by
    commas inside cells, while the header is the one line whose content we know."""
    best, best_score = ",", (-1, -1)
    for delimiter in _DELIMITERS:
        header: list[str] = []
        try:
            for cells in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter):
                # ",,," is blank whichever delimiter is right, so it cannot be the header
                if any(cell.strip().strip(",;") for cell in cells):
                    header = cells
                    break
        except csv.Error:
            pass  # the main read reports quoting problems with a line number
        score = (sum(_normalise(cell) in lookup for cell in header), len(header))
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _match_header(
    line: int, cells: list[str], columns: Sequence[Column], lookup: dict[str, str]
) -> tuple[dict[str, int], list[RowError]]:
    positions: dict[str, int] = {}
    errors: list[RowError] = []
    for index, cell in enumerate(cells):
        name = lookup.get(_normalise(cell))
        if name is None:
            continue  # columns we do not need are allowed and ignored
        if name in positions:
            first = positions[name]
            errors.append(
                RowError(
                    line,
                    name,
                    f'the header has {name} twice: "{cells[first].strip()}" in column '
                    f'{_letter(first)} and "{cell.strip()}" in column {_letter(index)}; '
                    "keep only one",
                )
            )
        else:
            positions[name] = index
    missing = [c.name for c in columns if c.required and c.name not in positions]
    if missing:
        found = ", ".join(_shorten(cell.strip()) for cell in cells if cell.strip())
        plural = "s" if len(missing) > 1 else ""
        errors.insert(
            0,
            RowError(
                line,
                None,
                f"the header is missing the column{plural} {', '.join(missing)}; "
                f"the columns found are: {found}",
            ),
        )
    return positions, errors


def count_lines(text: str) -> int:
    """Line breaks as io and csv see them: \\r\\n, \\r or \\n (not str.splitlines's extras)."""
    return text.count("\n") + text.count("\r") - text.count("\r\n")


def _letter(index: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA: the column as the spreadsheet labels it."""
    label = ""
    n = index + 1
    while n:
        n, rest = divmod(n - 1, 26)
        label = chr(ord("A") + rest) + label
    return label


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def human_size(size: int) -> str:
    if size < 1024:
        return "1 byte" if size == 1 else f"{size:,} bytes"
    value, unit = (size / 1024, "KB") if size < 1024 * 1024 else (size / 1024 / 1024, "MB")
    return f"{value:,.1f}".removesuffix(".0") + f" {unit}"


def size_message(size: int, limit: int) -> str:
    shown, allowed = human_size(size), human_size(limit)
    if shown == allowed:  # just over the limit: rounding would make them read the same
        shown, allowed = f"{size:,} bytes", f"{limit:,} bytes"
    return f"the file is {shown}; the limit is {allowed}"
