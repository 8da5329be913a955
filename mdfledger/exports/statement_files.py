"""Statements as files: CSV (streamed, flat memory), XLSX and PDF, and the "statement" export
kind (mdfledger.exports.kinds) the pages, the API, the CLI and the export jobs share.

Each file states the subject, the range, the as-of moment, when it was generated and the last
transfer it includes, then per account an opening row, one row per movement and a closing row.

- CSV: the header block as "name,value" rows, a blank row, then one table (COLUMNS in
  statement_rules) with exact decimal strings ("1234.50"). UTF-8 with a BOM so spreadsheets
  read names right; written in chunks as it goes.
- XLSX: one sheet, write-only (rows go to disk as they come); amounts are exact Decimals with
  the currency's number of decimals as number format.
- PDF (fpdf2): a header, a table per account with its opening and closing, page numbers.
  DejaVu Sans (Debian's fonts-dejavu-core) when installed, so any script prints; otherwise
  Helvetica, with characters outside Latin-1 replaced by "?". fpdf2 builds the document in
  memory: large statements belong in background jobs.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy.orm import Session

from mdfledger.actor import Actor
from mdfledger.auth.models import Role
from mdfledger.exports import kinds, xlsx
from mdfledger.exports import statement_rules as rules
from mdfledger.exports import statements as service
from mdfledger.exports.statements import Prepared, Row, Section
from mdfledger.ledger.balances import Balance

FORMATS = ("csv", "xlsx", "pdf")
Progress = Callable[[int, int | None], None]
_EVERY = 1000  # rows between progress reports


def _no_progress(done: int, total: int | None) -> None:
    return None


def _records(
    session: Session, prepared: Prepared, progress: Progress
) -> Iterator[tuple[Section, str, Balance | None, Row | None]]:
    """(section, record, balance, row): "opening" and "closing" with the balance, "line" with
    the row, account after account."""
    total = service.line_count(session, prepared)
    done = 0
    progress(0, total)
    for section in service.sections(session, prepared):
        yield section, "opening", section.opening, None
        for row in section.rows:
            yield section, "line", None, row
            done += 1
            if done % _EVERY == 0:
                progress(done, total)
        yield section, "closing", section.closing, None
    progress(done, total)


def _values(
    prepared: Prepared, section: Section, record: str, balance: Balance | None, row: Row | None
) -> dict[str, Any]:
    """One table row as plain values: amounts in minor units, dates as dates."""
    a = section.account
    values: dict[str, Any] = dict.fromkeys(rules.COLUMNS)
    values.update(record=record, account_id=a.id, account=a.name, currency=a.currency)
    if row is None:
        assert balance is not None
        values["date"] = prepared.start if record == "opening" else prepared.end
        values["description"] = (
            f"Opening balance (end of the day before {prepared.start.isoformat()})"
            if record == "opening"
            else f"Closing balance (end of {prepared.end.isoformat()})"
        )
        values.update(balance=balance.posted, available=balance.available)
        return values
    line, ref = row.line, row.reference
    values.update(
        date=line.effective_date, transfer_id=line.transfer_id, recorded_at=line.created_at,
        type=line.type, code=line.code, reference=ref.label, reference_type=ref.type,
        reference_id=ref.id, description=row.description,
        counter_account_id=line.counter_account_id, counter_account=row.counter_account,
        amount=line.amount, reserved=line.pending_change, balance=line.balance,
        available=line.available,
    )  # fmt: skip
    return values


# --- CSV -----------------------------------------------------------------------------------------


class _Buffer:
    """csv.writer's target: collects text until it is taken."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, text: str) -> None:
        self.parts.append(text)

    def take(self) -> bytes:
        data = "".join(self.parts).encode("utf-8")
        self.parts.clear()
        return data


def _csv_cell(name: str, value: Any, currency: str) -> str:
    if value is None:
        return ""
    if name in rules.MONEY_COLUMNS:
        return rules.amount_text(value, currency)
    if isinstance(value, datetime):
        return rules.stamp(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def csv_chunks(
    session: Session, prepared: Prepared, progress: Progress = _no_progress
) -> Iterator[bytes]:
    """The CSV file in chunks of encoded bytes: memory stays flat however long it is."""
    buffer = _Buffer()
    out = csv.writer(buffer, lineterminator="\r\n")
    buffer.write("\ufeff")
    out.writerows(prepared.header.pairs())
    out.writerow([])
    out.writerow(rules.COLUMNS)
    for n, (section, record, balance, row) in enumerate(_records(session, prepared, progress)):
        values = _values(prepared, section, record, balance, row)
        currency = section.account.currency
        out.writerow([_csv_cell(name, values[name], currency) for name in rules.COLUMNS])
        if n % 500 == 499:
            yield buffer.take()
    yield buffer.take()


# --- XLSX ----------------------------------------------------------------------------------------


def write_xlsx(
    session: Session, prepared: Prepared, out: BinaryIO, progress: Progress = _no_progress
) -> None:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    book = Workbook(write_only=True)
    sheet = book.create_sheet("Statement")
    bold = Font(bold=True)
    for name, value in prepared.header.pairs():
        label = xlsx.cell(sheet, name)
        label.font = bold
        sheet.append([label, xlsx.cell(sheet, value)])
    sheet.append([])
    heads = []
    for name in rules.COLUMNS:
        cell = xlsx.cell(sheet, name)
        cell.font = bold
        heads.append(cell)
    sheet.append(heads)
    formats: dict[str, str] = {}
    for section, record, balance, row in _records(session, prepared, progress):
        values = _values(prepared, section, record, balance, row)
        currency = section.account.currency
        number = formats.setdefault(currency, rules.number_format(currency))
        cells: list[Any] = []
        for name in rules.COLUMNS:
            value = values[name]
            if name in rules.MONEY_COLUMNS and value is not None:
                cell = WriteOnlyCell(sheet, rules.amount_decimal(value, currency))
                cell.number_format = number
            elif isinstance(value, datetime):
                cell = xlsx.cell(sheet, rules.stamp(value))  # text: spreadsheets drop zones
            else:
                cell = xlsx.cell(sheet, value)
                if hasattr(value, "isoformat"):
                    cell.number_format = "yyyy-mm-dd"
            if record != "line":
                cell.font = bold
            cells.append(cell)
        sheet.append(cells)
    book.save(out)


# --- PDF -----------------------------------------------------------------------------------------

_FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
_FONTS = {"": "DejaVuSans.ttf", "B": "DejaVuSans-Bold.ttf"}
# (heading, width in mm, align) on an A4 landscape page with 10 mm margins (277 mm).
_TABLE = (
    ("Date", 21, "L"),
    ("Transfer", 17, "R"),
    ("Reference", 62, "L"),
    ("Description", 69, "L"),
    ("Amount", 27, "R"),
    ("Reserved", 27, "R"),
    ("Balance", 27, "R"),
    ("Available", 27, "R"),
)


def _pdf_class() -> type:
    from fpdf import FPDF

    class StatementPDF(FPDF):  # type: ignore[misc]
        footer_text = ""
        family = "Helvetica"

        def footer(self) -> None:
            self.set_y(-12)
            self.set_font(self.family, "", 7)
            self.cell(0, 5, f"{self.footer_text}    page {self.page_no()} of {{nb}}", align="C")

    return StatementPDF


def write_pdf(
    session: Session, prepared: Prepared, out: BinaryIO, progress: Progress = _no_progress
) -> None:
    pdf = _pdf_class()(orientation="L", unit="mm", format="A4")
    unicode = all((_FONT_DIR / name).is_file() for name in _FONTS.values())
    if unicode:
        for style, name in _FONTS.items():
            pdf.add_font("DejaVu", style, str(_FONT_DIR / name))
        pdf.family = "DejaVu"
    else:
        pdf.family = "Helvetica"

    def text(value: str) -> str:
        return value if unicode else value.encode("latin-1", "replace").decode("latin-1")

    ellipsis = "…" if unicode else "..."

    def fit(value: str, width: float) -> str:
        """One line in the cell: cut (at about the right length first) and marked."""
        value, room = text(value), width - 2
        have = pdf.get_string_width(value)
        if have <= room:
            return value
        value = value[: max(1, int(len(value) * room / have))]
        while value and pdf.get_string_width(value + ellipsis) > room:
            value = value[:-1]
        return value + ellipsis

    header = prepared.header
    pdf.footer_text = text(f"{header.subject} · up to transfer {header.high_water}")
    pdf.set_auto_page_break(True, margin=15)
    pdf.set_margins(10, 10, 10)
    pdf.add_page()
    pdf.set_font(pdf.family, "B", 14)
    pdf.cell(0, 8, text(f"Statement: {header.subject}"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(pdf.family, "", 9)
    for name, value in header.pairs()[1:]:
        pdf.cell(32, 5, name)
        pdf.cell(0, 5, text(value), new_x="LMARGIN", new_y="NEXT")
    pdf.cell(0, 5, "Amounts in each account's currency, signed to its normal side.",
             new_x="LMARGIN", new_y="NEXT")  # fmt: skip

    def table_head(account: service.AccountInfo) -> None:
        pdf.set_font(pdf.family, "B", 8)
        pdf.set_fill_color(230, 230, 230)
        for heading, width, align in _TABLE:
            pdf.cell(width, 5, heading, border="B", align=align, fill=True)
        pdf.ln()
        pdf.set_font(pdf.family, "", 8)

    def balance_line(label: str, b: Balance, currency: str) -> None:
        pdf.set_font(pdf.family, "B", 8)
        widths = [w for _, w, _ in _TABLE]
        pdf.cell(sum(widths[:4]), 5, text(label))
        pdf.cell(widths[4], 5, "")
        pdf.cell(widths[5], 5, rules.grouped(b.pending, currency), align="R")
        pdf.cell(widths[6], 5, rules.grouped(b.posted, currency), align="R")
        pdf.cell(widths[7], 5, rules.grouped(b.available, currency), align="R")
        pdf.ln()
        pdf.set_font(pdf.family, "", 8)

    for section, record, balance, row in _records(session, prepared, progress):
        account, currency = section.account, section.account.currency
        if record == "opening":
            assert balance is not None
            pdf.ln(3)
            if pdf.will_page_break(20):
                pdf.add_page()
            pdf.set_font(pdf.family, "B", 10)
            title = f"{account.name} (account {account.id}, {account.kind}, {currency})"
            pdf.cell(0, 6, fit(title, 277), new_x="LMARGIN", new_y="NEXT")
            table_head(account)
            balance_line(f"Opening balance, before {prepared.start.isoformat()}", balance, currency)
        elif record == "closing":
            assert balance is not None
            balance_line(f"Closing balance, end of {prepared.end.isoformat()}", balance, currency)
        else:
            assert row is not None
            if pdf.will_page_break(5):
                pdf.add_page()
                table_head(account)
            line = row.line
            cells = (
                line.effective_date.isoformat(),
                str(line.transfer_id),
                row.reference.label,
                row.description or row.counter_account,
                rules.grouped(line.amount, currency) if line.amount else "",
                rules.grouped(line.pending_change, currency) if line.pending_change else "",
                rules.grouped(line.balance, currency),
                rules.grouped(line.available, currency),
            )
            for value, (_, width, align) in zip(cells, _TABLE, strict=True):
                pdf.cell(width, 4.5, fit(value, width), align=align)
            pdf.ln()
    pdf.output(out)


# --- the export kind -----------------------------------------------------------------------------


def write(
    session: Session,
    actor: Actor,
    params: dict[str, Any],
    fmt: str,
    out: BinaryIO,
    progress: Progress = _no_progress,
) -> None:
    """Write the statement `params` describe (as `check` returned them) in `fmt` to `out`."""
    prepared = service.from_params(session, actor, params)
    if fmt == "csv":
        for chunk in csv_chunks(session, prepared, progress):
            out.write(chunk)
    elif fmt == "xlsx":
        write_xlsx(session, prepared, out, progress)
    else:
        kinds.check_format(STATEMENT, fmt)
        write_pdf(session, prepared, out, progress)


def check(session: Session, actor: Actor, params: Mapping[str, Any]) -> dict[str, Any]:
    """Validate and scope the parameters; the result fixes the as-of moment to now at the
    latest, so a statement written later (a job) shows the books as they were when asked."""
    return service.from_params(session, actor, params).params()


def size(session: Session, actor: Actor, params: dict[str, Any]) -> int:
    return service.line_count(session, service.from_params(session, actor, params))


def filename(params: dict[str, Any], fmt: str) -> str:
    name = params.get("name") or "statement"
    return f"statement-{name}-{params['start']}-{params['end']}.{fmt}"


STATEMENT = kinds.register(
    kinds.ExportKind(
        name="statement",
        label="Statement",
        formats=FORMATS,
        roles=frozenset({Role.ADMIN, Role.FINANCE, Role.AUDITOR, Role.PARTNER}),
        check=check,
        size=size,
        write=write,
        filename=filename,
    )
)


def to_bytes(session: Session, prepared: Prepared, fmt: str) -> bytes:
    """An XLSX or PDF file at once (the pages' and the API's small downloads)."""
    out = io.BytesIO()
    if fmt == "xlsx":
        write_xlsx(session, prepared, out)
    else:
        write_pdf(session, prepared, out)
    return out.getvalue()
