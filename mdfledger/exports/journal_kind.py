"""The journal as an export kind (exports.kinds): hledger or beancount, as of an optional
cut-off, for auditors, admins and finance; written by exports.export_journal."""

from __future__ import annotations

import io
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, BinaryIO

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mdfledger.actor import Actor
from mdfledger.auth.models import Role
from mdfledger.errors import ValidationError
from mdfledger.exports import kinds, rules
from mdfledger.exports.journal import export_journal
from mdfledger.ledger.models import Transfer

EXTENSIONS = {"hledger": "journal", "beancount": "beancount"}


def _as_of(params: Mapping[str, Any]) -> datetime | None:
    value = params.get("as_of")
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValidationError(
                "as_of needs a time zone, e.g. 2026-03-31T18:00:00Z", field="as_of"
            )
        return value.astimezone(UTC)
    if not isinstance(value, str) or len(value) > 40:
        raise ValidationError("as_of is a date (2026-03-31) or an ISO time", field="as_of")
    try:
        return rules.parse_as_of(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except OverflowError:  # the last day of year 9999 has no end to take
        raise ValidationError("as_of is too far in the future", field="as_of") from None


def check(session: Session, actor: Actor, params: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(params) - {"as_of"})
    if unknown:
        raise ValidationError(f"a journal export takes only as_of, not {', '.join(unknown)}")
    as_of = _as_of(params)
    return {"as_of": as_of.isoformat() if as_of else None}


def size(session: Session, actor: Actor, params: dict[str, Any]) -> int:
    statement = select(func.count()).select_from(Transfer)
    if (as_of := _as_of(params)) is not None:
        statement = statement.where(Transfer.created_at <= as_of)
    return session.scalar(statement) or 0


def write(
    session: Session,
    actor: Actor,
    params: dict[str, Any],
    fmt: str,
    out: BinaryIO,
    progress: kinds.Progress,
) -> None:
    total = size(session, actor, params)
    text = io.TextIOWrapper(out, encoding="utf-8", newline="\n", write_through=True)
    try:
        export_journal(
            session, text, fmt=fmt, as_of=_as_of(params), progress=lambda n: progress(n, total)
        )
        text.flush()
    finally:
        text.detach()  # the caller's stream stays open


def filename(params: dict[str, Any], fmt: str) -> str:
    as_of = _as_of(params)
    cut = as_of.strftime("%Y%m%dT%H%M%SZ") if as_of else "all"
    return f"journal-{cut}.{EXTENSIONS[fmt]}"


JOURNAL = kinds.register(
    kinds.ExportKind(
        name="journal",
        label="Journal",
        formats=rules.FORMATS,
        roles=frozenset({Role.AUDITOR, Role.ADMIN, Role.FINANCE}),
        check=check,
        size=size,
        write=write,
        filename=filename,
    )
)
