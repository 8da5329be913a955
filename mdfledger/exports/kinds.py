"""What can be exported, as one registry the pages, the API, the CLI and the background export
jobs share: each kind says who may ask for it, how its parameters are checked, how many rows it
will have (progress and "run it now or in the background") and how it is written.

A kind's module registers itself with `register(ExportKind(...))`; `kind(name)` finds it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

from sqlalchemy.orm import Session

from mdfledger.actor import Actor
from mdfledger.errors import ValidationError

# progress(done, total): rows written so far; total is the estimate from `size` (None: unknown).
Progress = Callable[[int, int | None], None]


@dataclass(frozen=True)
class ExportKind:
    name: str  # "statement", "journal", "audit"
    label: str  # what people read: "Statement", "Journal", "Audit log"
    formats: tuple[str, ...]  # e.g. ("csv", "xlsx", "pdf"); the first is the default
    roles: frozenset[str]  # who may ask for it (partners only ever for their own data)
    # Validate and normalise the parameters for this actor; raise ValidationError / Forbidden /
    # NotFound. The result is JSON-serialisable and is what `size` and `write` receive (a job
    # stores it and runs it later as the same actor).
    check: Callable[[Session, Actor, Mapping[str, Any]], dict[str, Any]]
    # Estimated number of rows (lines, transfers, entries): the progress total, and the pages
    # run small exports at once and large ones as background jobs.
    size: Callable[[Session, Actor, dict[str, Any]], int]
    # Write the file in `fmt` to the binary stream, calling progress as rows go out.
    write: Callable[[Session, Actor, dict[str, Any], str, BinaryIO, Progress], None]
    # The download's file name, e.g. "statement-ACME-2026-01-01-2026-03-31.csv".
    filename: Callable[[dict[str, Any], str], str]


MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
    "hledger": "text/plain; charset=utf-8",
    "beancount": "text/plain; charset=utf-8",
}

_KINDS: dict[str, ExportKind] = {}


def register(export_kind: ExportKind) -> ExportKind:
    unknown = [f for f in export_kind.formats if f not in MEDIA_TYPES]
    if unknown or not export_kind.formats:
        raise ValueError(f"export kind {export_kind.name!r} has unknown formats {unknown}")
    _KINDS[export_kind.name] = export_kind
    return export_kind


def kind(name: object) -> ExportKind:
    """The registered kind called `name`, or a ValidationError naming the ones there are."""
    found = _KINDS.get(name) if isinstance(name, str) else None
    if found is None:
        raise ValidationError(f"kind must be one of {', '.join(sorted(_KINDS))}", field="kind")
    return found


def check_format(export_kind: ExportKind, fmt: object) -> str:
    if fmt not in export_kind.formats:
        raise ValidationError(
            f"a {export_kind.label.lower()} exports as {', '.join(export_kind.formats)}",
            field="format",
        )
    return str(fmt)


def all_kinds() -> list[ExportKind]:
    return sorted(_KINDS.values(), key=lambda k: k.name)
