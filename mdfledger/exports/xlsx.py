"""Cells for the XLSX exports (openpyxl write-only workbooks)."""

from __future__ import annotations

from typing import Any

from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE


def cell(sheet: Any, value: Any) -> Any:
    """`value` as a cell; text stays text, even when it starts with "=": names, memos and
    references are typed by people, and a spreadsheet must never run them as formulas.
    Control characters XML cannot hold become U+FFFD."""
    if not isinstance(value, str):
        return WriteOnlyCell(sheet, value)
    text = WriteOnlyCell(sheet, ILLEGAL_CHARACTERS_RE.sub("\ufffd", value))
    text.data_type = "s"
    return text
