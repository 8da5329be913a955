"""The audit log as an export kind (exports.kinds): the entries a filter finds, as CSV
(streamed) or XLSX (openpyxl's write-only mode), in chain order (oldest first).

Each row carries everything its hash covers (audit.service.HASHED_FIELDS), as stored, and the
previous entry's hash, so an auditor can check any row on its own and, for a full export, the
whole chain top to bottom:

    sha256(previous_hash + "\\n" + JSON [id, at, actor, actor_kind, role, actor_partner_id,
           action, object_type, object_id, subject_partner_id, summary, before, after,
           request_id])

with the JSON compact (separators "," and ":"), not ASCII-escaped, `at` as written here (UTC
ISO 8601), ids as numbers, empty cells as null, and before/after as the JSON *text* of their
column. The first entry's previous hash is 64 zeros. CSV cells are exactly what was hashed
(nothing is escaped for spreadsheets); the XLSX writes every text as text, never a formula.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from datetime import date, datetime
from typing import Any, BinaryIO

from openpyxl import Workbook
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, aliased

from mdfledger import audit
from mdfledger.actor import Actor
from mdfledger.audit import AuditEntry
from mdfledger.auth.models import Role, User
from mdfledger.auth.rules import normalise_email
from mdfledger.clock import ensure_utc
from mdfledger.errors import ValidationError
from mdfledger.exports import kinds, xlsx
from mdfledger.programs.models import Partner

READERS = frozenset({Role.AUDITOR, Role.ADMIN, Role.FINANCE})
GENESIS_HASH = "0" * 64
COLUMNS = (
    "id", "at", "actor", "who", "role", "action", "object_type", "object_id", "partner",
    "summary", "before", "after", "request_id", "hash", "actor_kind", "actor_partner_id",
    "subject_partner_id", "previous_hash",
)  # fmt: skip
# Filters a job stores (normalised); the page's names ("partner" as a code, "request") and
# an e-mail address as "actor" are accepted too.
FILTERS = (
    "action", "actor", "object_type", "object_id", "partner_id", "since", "until", "request_id",
)  # fmt: skip
_ALIASES = {"request": "request_id"}
_STREAM = {"yield_per": 2000}


# --- filters -------------------------------------------------------------------------------------


def actor_label(session: Session, text: object) -> str | None:
    """What people type in "Who": an actor label ("user:12"), or a user's e-mail address."""
    text = text.strip() if isinstance(text, str) else ""
    if "@" not in text:
        return text or None
    address = normalise_email(text)
    user_id = session.scalar(select(User.id).where(User.email == address)) if address else None
    if user_id is None:
        raise ValidationError(f"no user has e-mail {text!r}", field="actor")
    return f"user:{user_id}"


def partner_by_code(session: Session, code: object) -> int | None:
    code = code.strip() if isinstance(code, str) else ""
    if not code:
        return None
    found = session.scalar(select(Partner.id).where(Partner.code == code))
    if found is None:
        raise ValidationError(f"unknown partner {code!r}", field="partner")
    return found


def _moment(value: object, name: str) -> str | None:
    """A date or a time with its offset, as ISO text (what a job stores)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return _utc_text(value, name)
    if isinstance(value, date):
        return value.isoformat()
    text = value.strip() if isinstance(value, str) else ""
    if len(text) > 40:
        raise ValidationError(f"{name} is a date (YYYY-MM-DD) or an ISO time", field=name)
    try:
        if len(text) == 10:
            return date.fromisoformat(text).isoformat()
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None:
        raise ValidationError(f"{name} is a date (YYYY-MM-DD) or an ISO time", field=name)
    return _utc_text(moment, name)


def _utc_text(moment: datetime, name: str) -> str:
    try:
        return ensure_utc(moment).isoformat()
    except ValueError:
        raise ValidationError("times need a timezone", field=name) from None
    except OverflowError:  # 0001-01-01T00:00+01:00 is before the first UTC moment there is
        raise ValidationError(f"{name} is out of range", field=name) from None


def _parsed(text: str | None) -> date | datetime | None:
    if text is None:
        return None
    return date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)


def _query(actor: Actor, params: Mapping[str, Any]) -> Select[tuple[AuditEntry]]:
    return audit.query(
        actor,
        action=params.get("action"),
        actor_label=params.get("actor"),
        object_type=params.get("object_type"),
        object_id=params.get("object_id"),
        partner_id=params.get("partner_id"),
        since=_parsed(params.get("since")),
        until=_parsed(params.get("until")),
        request_id=params.get("request_id"),
    )


def check(session: Session, actor: Actor, params: Mapping[str, Any]) -> dict[str, Any]:
    """The filters, normalised (e-mail -> actor label, partner code -> id, ISO dates), and
    checked by running them through audit.query for `actor` (partners: Forbidden)."""
    given = {_ALIASES.get(k, k): v for k, v in params.items()}
    unknown = sorted(set(given) - set(FILTERS) - {"partner"})
    if unknown:
        raise ValidationError(f"the audit log has no filter {', '.join(unknown)}")
    found: dict[str, Any] = {}
    for name in ("action", "object_type", "object_id", "request_id"):
        value = given.get(name)
        if value is not None and not isinstance(value, str | int):
            raise ValidationError(f"{name.replace('_', ' ')} must be text", field=name)
        if value is not None and str(value).strip():
            found[name] = str(value).strip()
    if (label := actor_label(session, given.get("actor"))) is not None:
        found["actor"] = label
    partner_id = given.get("partner_id")
    if partner_id in (None, ""):
        partner_id = partner_by_code(session, given.get("partner"))
    elif isinstance(partner_id, str) and partner_id.isdigit():
        partner_id = int(partner_id)
    if partner_id is not None:
        if (
            not isinstance(partner_id, int)
            or isinstance(partner_id, bool)
            or not (0 < partner_id < 2**63)
        ):
            raise ValidationError("partner must be a partner's id", field="partner_id")
        found["partner_id"] = partner_id
    for name in ("since", "until"):
        if (moment := _moment(given.get(name), name)) is not None:
            found[name] = moment
    _query(actor, found)  # refuses what audit.query refuses, and readers other than staff
    return found


# --- writing -------------------------------------------------------------------------------------


def size(session: Session, actor: Actor, params: dict[str, Any]) -> int:
    counted = _query(actor, params).with_only_columns(func.count()).order_by(None)
    return session.scalar(counted) or 0


def rows(session: Session, actor: Actor, params: dict[str, Any]) -> Iterator[list[Any]]:
    """The export's rows (COLUMNS), oldest first, as plain values; flat memory."""
    table = AuditEntry.__table__
    previous = aliased(AuditEntry)
    statement = (
        _query(actor, params)
        .with_only_columns(*table.c, previous.hash.label("previous_hash"))
        .outerjoin(previous, previous.id == AuditEntry.id - 1)
        .order_by(None)
        .order_by(AuditEntry.id)
        .execution_options(**_STREAM)
    )
    emails = {f"user:{i}": e for i, e in session.execute(select(User.id, User.email)).all()}
    codes = dict(session.execute(select(Partner.id, Partner.code)).all())
    for row in session.execute(statement).mappings():
        subject = row["subject_partner_id"]
        yield [
            row["id"], ensure_utc(row["at"]).isoformat(), row["actor"],
            emails.get(row["actor"], ""), row["role"], row["action"], row["object_type"],
            row["object_id"], codes.get(subject, "") if subject else "", row["summary"],
            row["before"], row["after"], row["request_id"], row["hash"], row["actor_kind"],
            row["partner_id"], subject,
            row["previous_hash"] or (GENESIS_HASH if row["id"] == 1 else ""),
        ]  # fmt: skip


def csv_chunks(
    session: Session,
    actor: Actor,
    params: dict[str, Any],
    progress: kinds.Progress | None = None,
    *,
    every: int = 500,
) -> Iterator[bytes]:
    """The CSV file (UTF-8, a header line, then one line per entry) in chunks of `every` rows:
    for streaming responses and for `write`."""
    total = size(session, actor, params) if progress is not None else None
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    if progress is not None:
        progress(0, total)
    for done, row in enumerate(rows(session, actor, params), start=1):
        writer.writerow(["" if v is None else v for v in row])
        if progress is not None:
            progress(done, total)
        if done % every == 0:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode("utf-8")


def write(
    session: Session,
    actor: Actor,
    params: dict[str, Any],
    fmt: str,
    out: BinaryIO,
    progress: kinds.Progress,
) -> None:
    if fmt == "csv":
        for chunk in csv_chunks(session, actor, params, progress):
            out.write(chunk)
        return
    total = size(session, actor, params)
    progress(0, total)
    book = Workbook(write_only=True)
    sheet = book.create_sheet("Audit log")
    sheet.append(COLUMNS)
    for done, row in enumerate(rows(session, actor, params), start=1):
        sheet.append([xlsx.cell(sheet, v) for v in row])
        progress(done, total)
    book.save(out)


def filename(params: dict[str, Any], fmt: str) -> str:
    since, until = params.get("since"), params.get("until")
    span = f"-{(since or 'start')[:10]}-{(until or 'now')[:10]}" if since or until else ""
    return f"audit-log{span}.{fmt}"


AUDIT = kinds.register(
    kinds.ExportKind(
        name="audit",
        label="Audit log",
        formats=("csv", "xlsx"),
        roles=READERS,
        check=check,
        size=size,
        write=write,
        filename=filename,
    )
)
