"""Lead lists as proof of performance: read a partner's CSV or XLSX export, then count the new
leads from the activity window against what the program asks for.

Pure: bytes in, a LeadList out; a LeadList plus the claim's window and the leads of earlier
claims in, a Finding out. No database, no Flask.

Leads are personal data: the Finding's evidence shows e-mails masked (j***@acme.com), and
earlier claims are compared by lead_key (a hash of the normalised e-mail), so the service
stores the addresses only in the proof file itself.
"""

from __future__ import annotations

import codecs
import csv
import functools
import hashlib
import io
import re
import unicodedata
import warnings
from collections.abc import Iterable, Iterator, Sequence, Set
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import charset_normalizer
import openpyxl
from dateutil import parser as dateparser
from email_validator import EmailNotValidError, validate_email

from mdfledger.verification.outcome import Finding, Outcome, Unreadable

EXAMPLES = 20  # problem rows kept as examples; the rest are only counted
HEADER_SEARCH = 30  # exports often start with a title block: look this far for the header
NOT_UTF8 = "the CSV is not UTF-8 and its encoding could not be recognised: save it as CSV UTF-8"
_MAX_CHAOS = 0.1  # charset-normalizer's mess ratio above which a guessed encoding is not trusted
_DELIMITERS = (",", ";", "\t")
_ZIP = b"PK\x03\x04"
_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # legacy .xls (and .doc)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # text never has these; binary does

# Header spellings per field, compared without case, accents, spaces or punctuation
# ("E-Mail-Adresse" == "emailadresse"). Earlier spellings win when a header has several.
ALIASES: dict[str, tuple[str, ...]] = {
    "email": (
        "email", "email address", "e-mail address", "mail", "work email", "business email",
        "contact email", "mail address", "e-mail-adresse", "mailadresse", "courriel",
        "adresse e-mail", "correo", "correo electronico", "e-mailadres",
    ),
    "first_name": (
        "first name", "first", "given name", "forename", "vorname", "prenom", "nombre",
        "voornaam", "nome",
    ),
    "last_name": (
        "last name", "last", "surname", "family name", "nachname", "nom", "nom de famille",
        "apellido", "apellidos", "achternaam", "cognome", "sobrenome",
    ),
    "name": (
        "full name", "name", "contact", "contact name", "lead name", "nom complet",
        "nombre completo", "naam", "vollstandiger name",
    ),
    "company": (
        "company", "company name", "organisation", "organization", "organisation name",
        "organization name", "account", "account name", "employer", "firma", "unternehmen",
        "societe", "entreprise", "empresa", "bedrijf", "azienda",
    ),
    "phone": (
        "phone", "phone number", "telephone", "mobile", "mobile phone", "mobile number",
        "cell", "tel", "telefon", "telefonnummer", "telephone number", "telefono", "telefoon",
    ),
    "created": (
        "created", "created date", "created at", "created on", "create date", "date created",
        "lead date", "date", "timestamp", "submitted", "submitted at", "submitted on",
        "submission date", "registration date", "registration time", "registered",
        "registered at", "signup date", "erstellt", "erstellt am", "datum", "date de creation",
        "fecha", "fecha de creacion", "aangemaakt",
    ),
}  # fmt: skip


@dataclass(frozen=True)
class RowNote:
    row: int  # the row as the spreadsheet shows it (the header's row counts)
    email: str  # the cell as written (personal data: mask before showing it)
    reason: str


@dataclass(frozen=True)
class RowNotes:
    count: int
    examples: tuple[RowNote, ...]  # the first EXAMPLES of them


@dataclass(frozen=True)
class Lead:
    email: str  # normalised and lowercased: the form leads are compared in
    name: str
    company: str
    phone: str
    created: date | None
    row: int


@dataclass(frozen=True)
class LeadList:
    rows: int  # non-blank data rows read (at most max_rows)
    columns: dict[str, str]  # field -> the header it was read from, e.g. {"email": "E-Mail"}
    leads: tuple[Lead, ...]  # valid and unique, in file order
    invalid: RowNotes
    duplicates_in_file: RowNotes  # later rows with an e-mail already seen; the first is kept
    undated: int  # leads without a date that could be read
    truncated: bool  # the file had more than max_rows data rows; the rest were not read
    dates_note: str = ""  # why leads are undated, e.g. "the list has no date column"
    source: str = ""  # how it was read, e.g. "CSV, UTF-8, ';'-separated"


# --- reading -------------------------------------------------------------------------------------


def read_leads(data: bytes, *, filename: str = "", max_rows: int = 100_000) -> LeadList:
    """A lead list from a CSV (UTF-8, UTF-16 with BOM, or a recognisable legacy encoding; comma,
    semicolon or tab) or an XLSX workbook (the first sheet with an e-mail column). The content
    decides the type; the name only breaks a delimiter tie (.tsv means tabs).

    Raises Unreadable with a reason for finance when the file cannot be read as a lead list."""
    if max_rows < 1:
        raise ValueError("max_rows must be at least 1")
    if not data.strip():
        raise Unreadable("the file is empty")
    if data.startswith(_ZIP):
        return _read_xlsx(data, max_rows)
    if data.startswith(_OLE2):
        raise Unreadable(
            "this is an old Excel workbook (.xls): save it as Excel Workbook (.xlsx) or CSV UTF-8"
        )
    if data.startswith(b"%PDF-"):
        raise Unreadable("this is a PDF, not a lead list: export the leads as CSV or Excel")
    text, encoding = _decode(data)
    if not text.strip():
        raise Unreadable("the file is empty")
    delimiter = _choose_delimiter(text, tab_first=filename.casefold().endswith(".tsv"))
    shown = "tab" if delimiter == "\t" else f"'{delimiter}'"
    return _collect(_csv_records(text, delimiter), max_rows, f"CSV, {encoding}, {shown}-separated")


def lead_key(email: str) -> str:
    """sha256 hex of the normalised, lowercased e-mail: how a claim's leads are stored and
    compared with later claims'. The same for any spelling read_leads treats as one lead."""
    return hashlib.sha256(_comparable(email).encode()).hexdigest()


def keys(leads: LeadList) -> list[str]:
    """lead_key of each lead (they are unique already), for the service to store."""
    return [lead_key(lead.email) for lead in leads.leads]


def _decode(data: bytes) -> tuple[str, str]:
    """The text and a label of its encoding. UTF-8 and BOM-marked UTF-16 are read as such;
    anything else only when charset-normalizer recognises it cleanly."""
    try:
        if data.startswith(codecs.BOM_UTF8):
            text, label = data.decode("utf-8-sig"), "UTF-8"
        elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            text, label = data.decode("utf-16"), "UTF-16"
        elif b"\x00" in data:
            # UTF-8 text and the 8-bit code pages never contain NUL bytes; binary files do
            raise Unreadable("the file contains binary data, not a CSV or Excel lead list")
        else:
            text, label = _decode_guess(data)
    except UnicodeDecodeError:
        raise Unreadable(NOT_UTF8) from None
    if _CONTROL.search(text):
        raise Unreadable("the file contains binary data, not a CSV or Excel lead list")
    return text, label


def _decode_guess(data: bytes) -> tuple[str, str]:
    try:
        return data.decode("utf-8"), "UTF-8"
    except UnicodeDecodeError:
        pass
    # Mostly-ASCII lists fit many code pages equally well: the guess is trusted only when the
    # cleanest candidates all decode alike, or one of them is Windows-1252, which is what Excel
    # writes as "CSV" in Western locales (and what Latin-1 files decode as, too).
    matches = [m for m in charset_normalizer.from_bytes(data) if m.chaos <= _MAX_CHAOS]
    if not matches:
        raise Unreadable(NOT_UTF8)
    cleanest = min(m.chaos for m in matches)
    tier = [m for m in matches if m.chaos <= cleanest + 0.01]
    if any("cp1252" in m.could_be_from_charset for m in tier):
        encoding = "cp1252"
    elif len({str(m) for m in tier}) == 1:
        encoding = tier[0].encoding
    else:
        raise Unreadable(NOT_UTF8)
    text = data.decode(encoding)  # strict: a byte the encoding lacks is not trusted
    if "\ufffd" in text:
        raise Unreadable(NOT_UTF8)
    return text, f"{encoding} (detected)"


def _choose_delimiter(text: str, *, tab_first: bool) -> str:
    """The delimiter under which the header names the most known fields: the header is the one
    line whose content we can predict, while csv.Sniffer guesses from data rows and is fooled by
    commas inside cells. The sniffer decides only when no delimiter reveals a known header."""
    sample = text[:65_536]
    order = ("\t", ",", ";") if tab_first else _DELIMITERS
    best, best_score = "", 0
    for delimiter in order:
        score = 0
        records = _csv_records(sample, delimiter, lenient=True)
        for _, cells in _nonblank(records, HEADER_SEARCH):
            score = max(score, len(_map_header(cells)))
        if score > best_score:
            best, best_score = delimiter, score
    if best:
        return best
    try:
        return csv.Sniffer().sniff(sample, delimiters="".join(_DELIMITERS)).delimiter
    except csv.Error:
        return order[0]


def _csv_records(
    text: str, delimiter: str, *, lenient: bool = False
) -> Iterator[tuple[int, list[str]]]:
    """(line the record starts on, cells). Lenient stops quietly at a quoting error (a sample
    may end inside a quoted cell); otherwise it is Unreadable with the line."""
    reader = csv.reader(
        io.StringIO(text, newline=""),  # newline="" so quoted line breaks reach the csv module
        delimiter=delimiter,
        strict=True,  # a stray quote would otherwise silently merge or split cells
        skipinitialspace=True,
    )
    while True:
        line = reader.line_num + 1
        try:
            cells = next(reader, None)
        except csv.Error:
            if lenient:
                return
            raise Unreadable(
                f'line {line} has a quote mark (") in the wrong place, or a quoted cell that is '
                "never closed"
            ) from None
        if cells is None:
            return
        yield line, cells


def _read_xlsx(data: bytes, max_rows: int) -> LeadList:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # openpyxl warns about styles and extensions
            book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception:  # openpyxl raises many types for damaged or non-Excel ZIPs
        raise Unreadable(
            "the file is a ZIP archive but not an Excel workbook that can be opened: save it "
            "again as Excel Workbook (.xlsx) or CSV UTF-8"
        ) from None
    first_header: list[Any] | None = None
    try:
        for sheet in book.worksheets:
            sheet.reset_dimensions()  # the stored size is often wrong; read what is there
            records = enumerate(sheet.iter_rows(values_only=True), start=1)
            header = _find_header(records)
            if header is None:
                continue
            if header[2] is not None:
                return _collect_after(header, records, max_rows, f"Excel sheet '{sheet.title}'")
            first_header = first_header or header[1]
    except Unreadable:
        raise
    except Exception:  # damaged sheet XML
        raise Unreadable(
            "the workbook is damaged and its sheets cannot be read: save it again as Excel "
            "Workbook (.xlsx) or CSV UTF-8"
        ) from None
    finally:
        book.close()
    if first_header is None:
        raise Unreadable("the file is empty")
    raise Unreadable(_no_email_column(first_header))


# --- rows to leads -------------------------------------------------------------------------------


def _collect(records: Iterator[tuple[int, Sequence[Any]]], max_rows: int, source: str) -> LeadList:
    header = _find_header(records)
    if header is None:
        raise Unreadable("the file is empty")
    if header[2] is None:
        raise Unreadable(_no_email_column(header[1]))
    return _collect_after(header, records, max_rows, source)


def _find_header(
    records: Iterator[tuple[int, Sequence[Any]]],
) -> tuple[int, list[Any], dict[str, int] | None] | None:
    """(row, cells, field -> position) of the first of the first HEADER_SEARCH non-blank rows
    that has an e-mail column; if none has, the first non-blank row with None; None if there
    are no non-blank rows."""
    first: tuple[int, list[Any], dict[str, int] | None] | None = None
    for row, cells in _nonblank(records, HEADER_SEARCH):
        positions = _map_header(cells)
        if "email" in positions:
            return row, list(cells), positions
        first = first or (row, list(cells), None)
    return first


def _collect_after(
    header: tuple[int, list[Any], dict[str, int] | None],
    records: Iterator[tuple[int, Sequence[Any]]],
    max_rows: int,
    source: str,
) -> LeadList:
    _, cells, positions = header
    assert positions is not None
    columns = {name: _text(cells[pos]) for name, pos in positions.items()}

    def cell(values: Sequence[Any], name: str) -> Any:
        pos = positions.get(name)
        return values[pos] if pos is not None and pos < len(values) else None

    rows = 0
    truncated = False
    invalid: list[RowNote] = []
    duplicates: list[RowNote] = []
    seen: dict[str, int] = {}  # normalised e-mail -> row of its first appearance
    checked: dict[str, tuple[str | None, str]] = {}  # lowercased cell -> (normalised, reason)
    kept: list[tuple[int, str, list[Any]]] = []
    for row, values in _nonblank(records):
        if rows == max_rows:
            truncated = True
            break
        rows += 1
        raw = _clean_email(_text(cell(values, "email")))
        if raw.lower() not in checked:
            checked[raw.lower()] = _normalise_email(raw)
        email, reason = checked[raw.lower()]
        if email is None:
            invalid.append(RowNote(row, raw, reason))
        elif email in seen:
            duplicates.append(RowNote(row, raw, f"same e-mail as row {seen[email]}"))
        else:
            seen[email] = row
            kept.append((row, email, list(values)))

    created, dates_note = _parse_dates(
        [cell(values, "created") for _, _, values in kept], has_column="created" in positions
    )
    leads = tuple(
        Lead(
            email=email,
            name=_name(
                _text(cell(values, "name")),
                _text(cell(values, "first_name")),
                _text(cell(values, "last_name")),
            ),
            company=_text(cell(values, "company")),
            phone=_text(cell(values, "phone")),
            created=when,
            row=row,
        )
        for (row, email, values), when in zip(kept, created, strict=True)
    )
    undated = sum(lead.created is None for lead in leads)
    return LeadList(
        rows=rows,
        columns=columns,
        leads=leads,
        invalid=RowNotes(len(invalid), tuple(invalid[:EXAMPLES])),
        duplicates_in_file=RowNotes(len(duplicates), tuple(duplicates[:EXAMPLES])),
        undated=undated,
        truncated=truncated,
        dates_note=dates_note if undated else "",
        source=source,
    )


def _nonblank(
    records: Iterable[tuple[int, Sequence[Any]]], limit: int | None = None
) -> Iterator[tuple[int, Sequence[Any]]]:
    """Records with at least one non-blank cell; at most `limit` of them."""
    count = 0
    for row, cells in records:
        if limit is not None and count == limit:
            return
        if any(_text(value) for value in cells):
            count += 1
            yield row, cells


def _key(name: str) -> str:
    """'  E-Mail Adresse ' -> 'emailadresse'; 'Société' -> 'societe'."""
    decomposed = unicodedata.normalize("NFKD", name.casefold())
    return "".join(ch for ch in decomposed if ch.isalnum() and not unicodedata.combining(ch))


def _build_lookup() -> dict[str, tuple[str, int]]:
    lookup: dict[str, tuple[str, int]] = {}
    for name, spellings in ALIASES.items():
        for rank, spelling in enumerate((name, *spellings)):
            key = _key(spelling)
            if lookup.setdefault(key, (name, rank))[0] != name:
                raise ValueError(f"{spelling!r} would name both {lookup[key][0]} and {name}")
    return lookup


_LOOKUP = _build_lookup()


def _map_header(cells: Sequence[Any]) -> dict[str, int]:
    """field -> position of its column; the most canonical spelling wins when several columns
    name the same field, then the leftmost."""
    best: dict[str, tuple[int, int]] = {}  # field -> (rank, position)
    for position, value in enumerate(cells):
        if not isinstance(value, str):
            continue
        found = _LOOKUP.get(_key(value))
        if found is None:
            continue
        name, rank = found
        if name not in best or rank < best[name][0]:
            best[name] = (rank, position)
    return {name: position for name, (_, position) in best.items()}


def _no_email_column(cells: Sequence[Any]) -> str:
    found = [_text(value) for value in cells if _text(value)]
    # a list without a header row shows its first lead here: mask it, it ends up in a Finding
    shown = [_shorten(mask_email(text) if "@" in text else text) for text in found]
    listed = ", ".join(shown[:12]) + (f" and {len(shown) - 12} more" if len(shown) > 12 else "")
    message = f"no e-mail column: found columns {listed}"
    if any("@" in text for text in found):
        message += " (the first row holds data: add a header row with a column named Email)"
    return message


def _text(value: Any) -> str:
    """A cell as text: numbers without a spurious '.0' (phone numbers typed into Excel)."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value).strip()


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _name(full: str, first: str, last: str) -> str:
    return full or " ".join(part for part in (first, last) if part)


def _clean_email(text: str) -> str:
    """Strip what exports and copy-paste add around an address."""
    text = text.strip().strip("\u200b\ufeff").strip()
    if text[:7].lower() == "mailto:":
        text = text[7:]
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    return text.strip()


# A plain address whose every character email-validator accepts as-is: it normalises to itself
# lowercased once its domain passes, so the domain is validated once per list, not per row
# (validation costs ~40 us, two thirds of it the domain: 4 s at 100k leads otherwise).
_PLAIN = re.compile(
    r"[a-z0-9_%+-]+(?:\.[a-z0-9_%+-]+)*@((?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,63})"
)


def _normalise_email(text: str) -> tuple[str | None, str]:
    """(normalised and lowercased address, "") or (None, why it is not an address)."""
    if not text:
        return None, "no e-mail address"
    lowered = text.lower()
    plain = _PLAIN.fullmatch(lowered)
    if plain and len(lowered) <= 254 and lowered.index("@") <= 64 and _plain_domain(plain[1]):
        return lowered, ""
    try:
        valid = validate_email(text, check_deliverability=False)
    except EmailNotValidError as error:
        return None, str(error)
    return valid.normalized.lower(), ""


@functools.lru_cache(maxsize=4096)
def _plain_domain(domain: str) -> bool:
    """The domain is valid and already in its normalised form (not reserved, not punycode)."""
    try:
        return validate_email(f"a@{domain}", check_deliverability=False).domain == domain
    except EmailNotValidError:
        return False


def _comparable(email: str) -> str:
    text = _clean_email(email)
    normalised, _ = _normalise_email(text)
    return normalised or text.lower()


# --- dates ---------------------------------------------------------------------------------------

_ISO = re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:$|[T ])")
_NUMERIC = re.compile(r"(\d{1,2})([-/.])(\d{1,2})\2(\d{4}|\d{2})(?:$|[T ,])")
_DEFAULTS = (datetime(2000, 1, 1), datetime(2001, 2, 2))  # noqa: DTZ001 - parse fill-ins only


def _parse_dates(values: Sequence[Any], *, has_column: bool) -> tuple[list[date | None], str]:
    """Each value as a date or None, and why some are None. Numeric dates like 03/04/2026 are
    read day-first or month-first for the whole list: whichever reads every such date; when
    both do, the one that puts them closer together (a list's leads come from one campaign);
    when that ties too, they are left unknown rather than guessed. A timestamp counts on the
    day it shows (the partner's export is in its own time zone; the window has grace days)."""
    if not has_column:
        return [None] * len(values), "the list has no date column"
    result: list[date | None] = [None] * len(values)
    numeric: list[tuple[int, str, int, int, int]] = []  # (index, text, first, second, year)
    unreadable = ""
    missing = False
    for index, value in enumerate(values):
        if isinstance(value, datetime):
            result[index] = value.date()
        elif isinstance(value, date):
            result[index] = value
        elif not _text(value):
            missing = True
        elif isinstance(value, str):
            text = value.strip()
            if match := _ISO.match(text):
                result[index] = _date(*(int(part) for part in match.group(1, 2, 3)))
            elif (match := _NUMERIC.match(text)) and match.group(2) == ".":
                # dotted dates are day-first wherever they are written (31.03.2026)
                day, month, year = (int(part) for part in match.group(1, 3, 4))
                result[index] = _date(_century(year), month, day)
            elif match:
                first, second, year = (int(part) for part in match.group(1, 3, 4))
                shown = text[: match.end(4)]  # the date without its time
                numeric.append((index, shown, first, second, _century(year)))
                continue
            else:
                result[index] = _parse_words(text)
            unreadable = unreadable or ("" if result[index] else text)
        else:
            unreadable = unreadable or _text(value)

    order_note = ""
    if numeric:
        # a date that fits neither order (31/31/2026) is unreadable, not a vote on the order
        readings = [(n, _date(n[4], n[3], n[2]), _date(n[4], n[2], n[3])) for n in numeric]
        usable = [(n, day, month) for n, day, month in readings if day or month]
        bad = [n[1] for n, day, month in readings if not (day or month)]
        unreadable = unreadable or (bad[0] if bad else "")
        chosen = _choose([day for _, day, _ in usable], [month for _, _, month in usable])
        if chosen is not None:
            for (n, _, _), when in zip(usable, chosen, strict=True):
                result[n[0]] = when
        elif any(day is None for _, day, _ in usable):
            order_note = "the dates are written partly day-first and partly month-first"
        else:
            example = next(n[1] for n in numeric if n[2] != n[3])
            order_note = f"dates such as {example} can be read day-first or month-first"
    notes = [
        order_note,
        f"dates such as '{_shorten(unreadable)}' could not be read" if unreadable else "",
        "some leads have no date" if missing else "",
    ]
    return result, "; ".join(note for note in notes if note)


def _choose(day_first: list[date | None], month_first: list[date | None]) -> list[date] | None:
    ok_day, ok_month = None not in day_first, None not in month_first
    if ok_day != ok_month:
        return day_first if ok_day else month_first  # type: ignore[return-value]
    if not ok_day:
        return None
    if day_first == month_first:  # only dates like 05/05/2026
        return day_first  # type: ignore[return-value]
    span_day = _span(day_first)  # type: ignore[arg-type]
    span_month = _span(month_first)  # type: ignore[arg-type]
    if span_day == span_month:
        return None
    return day_first if span_day < span_month else month_first  # type: ignore[return-value]


def _span(dates: list[date]) -> int:
    return (max(dates) - min(dates)).days


def _date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _century(year: int) -> int:
    return 2000 + year if year < 100 else year


def _parse_words(text: str) -> date | None:
    """Dates with a month name ("4 Mar 2026", "March 4, 2026 10:22 AM"). A date is accepted
    only when day, month and year are all written: parsing with two different fill-in dates
    must give the same day."""
    if not any(ch.isalpha() for ch in text):
        return None
    try:
        found = {dateparser.parse(text, default=default).date() for default in _DEFAULTS}
    except (ValueError, OverflowError):
        return None
    return found.pop() if len(found) == 1 else None


# --- the check -----------------------------------------------------------------------------------

CLAIMED_MAJORITY = 50  # percent of leads claimed before above which the list is refused
UNDATED_MAJORITY = 50  # percent of leads without a date above which the window is unknown
NOT_NEW_PASS = 20  # without a required number: most percent claimed before or outside to pass
NOT_NEW_FAIL = 50  # ... and above which the list is refused


def check_leads(
    leads: LeadList,
    *,
    starts_on: date,
    ends_on: date,
    earlier_keys: Set[str],
    required: int | None,
    window_grace_days: int = 0,
) -> Finding:
    """Count the new leads (not in earlier claims) dated inside [starts_on, ends_on + grace].

    With `required`: PASS when the new in-window leads reach it; FAIL when they fall short even
    if every new lead without a date were counted; INCONCLUSIVE when the undated ones decide.
    Without it: PASS when there is a new in-window lead and at most 20% of the leads were
    claimed before or are dated outside the window; FAIL when there is none or more than 50%
    are; INCONCLUSIVE in between, or when most leads have no date.
    Either way FAIL when more than 50% of the leads were claimed in earlier claims."""
    if required is not None and required < 0:
        raise ValueError("required must not be negative")
    last_day = ends_on + timedelta(days=max(0, window_grace_days))
    unique = len(leads.leads)
    inside = outside = undated = claimed = new_inside = new_undated = 0
    dated: list[date] = []
    for lead in leads.leads:
        before = lead_key(lead.email) in earlier_keys
        claimed += before
        if lead.created is None:
            undated += 1
            new_undated += not before
            continue
        dated.append(lead.created)
        if starts_on <= lead.created <= last_day:
            inside += 1
            new_inside += not before
        else:
            outside += 1

    evidence: dict[str, Any] = {
        "rows": leads.rows,
        "unique_leads": unique,
        "new_in_window": new_inside,
        "required": required,
        "in_window": inside,
        "outside_window": outside,
        "undated": undated,
        "claimed_before": claimed,
        "invalid": leads.invalid.count,
        "invalid_examples": [_note(note) for note in leads.invalid.examples],
        "duplicates_in_file": leads.duplicates_in_file.count,
        "duplicate_examples": [_note(note) for note in leads.duplicates_in_file.examples],
        "window": {
            "starts_on": starts_on.isoformat(),
            "ends_on": ends_on.isoformat(),
            "grace_days": max(0, window_grace_days),
        },
        "lead_dates": (
            {"earliest": min(dated).isoformat(), "latest": max(dated).isoformat()}
            if dated
            else None
        ),
        "dates_note": leads.dates_note,
        "columns": dict(leads.columns),
        "truncated": leads.truncated,
        "source": leads.source,
    }
    counts = {
        "duplicates": leads.duplicates_in_file.count,
        "claimed": claimed,
        "outside": outside,
        "undated": undated,
        "invalid": leads.invalid.count,
    }

    def finding(outcome: Outcome, score: int, head: str, *leave_out: str) -> Finding:
        tail = _tail({k: v for k, v in counts.items() if k not in leave_out}, leads)
        return Finding(
            outcome, max(0, min(100, score)), head + (f"; {tail}" if tail else ""), evidence
        )

    if unique == 0:
        head = (
            "The lead list has no rows"
            if leads.rows == 0
            else "The lead list has no valid e-mail addresses"
        )
        return finding(Outcome.FAIL, 0, head)

    window = "inside the activity window"
    needed = f" (required {required:,})" if required is not None else ""
    if claimed * 100 > CLAIMED_MAJORITY * unique:
        claimed_pct = claimed * 100 // unique
        score = (unique - claimed) * 100 // unique
        if required:
            score = min(score, new_inside * 100 // required)
        head = (
            f"{claimed:,} of {unique:,} leads ({claimed_pct}%) were already claimed in earlier "
            f"claims; {_leads(new_inside)} {window}{needed}"
        )
        return finding(Outcome.FAIL, score, head, "claimed")

    dates_why = f" ({leads.dates_note})" if leads.dates_note else ""
    if required is not None:
        score = new_inside * 100 // required if required else 100
        if new_inside >= required:
            return finding(Outcome.PASS, score, f"{_leads(new_inside)} {window}{needed}")
        if new_inside + new_undated < required:
            short = required - new_inside - new_undated
            if new_undated:
                head = (
                    f"At most {new_inside + new_undated:,} new leads could be from the activity "
                    f"window ({new_inside:,} dated inside it, {new_undated:,} without a "
                    f"readable date{dates_why}), {short:,} short of the {required:,} required"
                )
                return finding(Outcome.FAIL, score, head, "undated")
            head = f"{_leads(new_inside)} {window}, {short:,} short of the {required:,} required"
            return finding(Outcome.FAIL, score, head)
        head = (
            f"{_leads(new_inside)} {window}{needed}, and {new_undated:,} more without a readable "
            f"date{dates_why}: a person must check whether enough of them are from the window"
        )
        return finding(Outcome.INCONCLUSIVE, score, head, "undated")

    score = new_inside * 100 // unique
    if undated * 100 > UNDATED_MAJORITY * unique:
        head = (
            f"{undated:,} of {unique:,} leads have no readable date{dates_why}, so whether they "
            f"are from the activity window cannot be told; {_leads(new_inside)} {window}"
        )
        return finding(Outcome.INCONCLUSIVE, score, head, "undated")
    if new_inside == 0:
        return finding(Outcome.FAIL, 0, f"No new leads {window}")
    not_new = unique - new_inside - new_undated  # claimed before or dated outside
    not_new_pct = not_new * 100 // unique
    head = f"{_leads(new_inside)} {window}"
    if not_new * 100 <= NOT_NEW_PASS * unique:
        return finding(Outcome.PASS, score, head)
    head += f"; {not_new_pct}% of the leads were claimed before or are dated outside the window"
    if not_new * 100 > NOT_NEW_FAIL * unique:
        return finding(Outcome.FAIL, score, head)
    return finding(Outcome.INCONCLUSIVE, score, head)


def mask_email(text: str) -> str:
    """j***@acme.com: enough for finance to tell rows apart, not enough to read the address."""
    local, at, domain = text.strip().rpartition("@")
    if not at:
        return text.strip()[:1] + "***"
    return f"{local[:1]}***@{_shorten(domain, 60)}"


def _note(note: RowNote) -> dict[str, Any]:
    return {"row": note.row, "email": mask_email(note.email), "reason": note.reason}


def _leads(count: int) -> str:
    return f"{count:,} new lead" + ("" if count == 1 else "s")


def _tail(counts: dict[str, int], leads: LeadList) -> str:
    phrases = {
        "duplicates": ("duplicate dropped", "duplicates dropped"),
        "claimed": ("already claimed in earlier claims", "already claimed in earlier claims"),
        "outside": ("dated outside the window", "dated outside the window"),
        "undated": ("without a readable date", "without a readable date"),
        "invalid": ("invalid e-mail", "invalid e-mails"),
    }
    parts = [f"{count:,} {phrases[name][count != 1]}" for name, count in counts.items() if count]
    if leads.truncated:
        parts.append(f"only the first {leads.rows:,} rows were read")
    return ", ".join(parts)
