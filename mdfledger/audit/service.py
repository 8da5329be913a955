"""Write, read and verify the audit log. `record` flushes and never commits: the entry lands in
the transaction of the change it describes, or not at all.

Writers are serialised by the single row `audit_chain` (last id, hash and time): SQLite writers
hold the database's write lock from BEGIN IMMEDIATE; on PostgreSQL `record` first locks the
ledger's chain head, then the audit head, both FOR UPDATE. Taking the ledger's head first gives
the whole app one lock order (ledger head, accounts, audit head), so a transaction that records
before it moves money cannot deadlock with one that moves money before it records.

Scoping: staff (admin, finance, auditor) and system actors see every entry; a partner user sees
only entries about their own partner (`subject_partner_id`), never other partners' or the
vendor's internal ones (users, programs).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import uuid
from collections.abc import Iterator, Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any

from sqlalchemy import Select, false, or_, select, update
from sqlalchemy.orm import Session

from mdfledger.actor import Actor
from mdfledger.audit.models import AuditEntry, AuditHead
from mdfledger.clock import ensure_utc, utcnow
from mdfledger.errors import Forbidden, NotFound, ValidationError
from mdfledger.money import format_amount

GENESIS_HASH = "0" * 64
SUMMARY_MAX = 2000
STAFF_ROLES = frozenset({"admin", "finance", "auditor"})  # auth.scope.STAFF, as plain strings

# --- the request id ------------------------------------------------------------------------------

_request_id: ContextVar[str | None] = ContextVar("mdfledger_request_id", default=None)
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:@-]{1,64}$")


def valid_request_id(value: object) -> bool:
    """Whether `value` may be used as a request id: 1-64 letters, digits and . _ : @ -."""
    return isinstance(value, str) and REQUEST_ID_RE.match(value) is not None


def new_request_id() -> str:
    return uuid.uuid4().hex


def current_request_id() -> str | None:
    """The id of the request (or command, or job) being served; None outside one."""
    return _request_id.get()


def set_request_id(value: str | None) -> Token[str | None]:
    if value is not None and not valid_request_id(value):
        raise ValueError(f"not a request id: {value!r}")
    return _request_id.set(value)


def reset_request_id(token: Token[str | None]) -> None:
    _request_id.reset(token)


@contextlib.contextmanager
def request_id_scope(value: str | None = None) -> Iterator[str]:
    """Entries recorded inside carry this request id (a new one when None): for CLI commands
    and jobs that want their entries grouped."""
    value = value or new_request_id()
    token = set_request_id(value)
    try:
        yield value
    finally:
        reset_request_id(token)


# --- plain values for before / after -------------------------------------------------------------

# Never in the log, whoever asks: a password (hash) or a token's secret (or its hash).
FORBIDDEN_KEYS = frozenset({"password", "password_hash", "secret", "token", "token_hash"})


def plain(value: Any) -> Any:
    """A JSON-ready copy: dates, times, Decimals and enums become strings; sets sorted lists."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, Enum):
        return plain(value.value)
    if isinstance(value, datetime):
        return ensure_utc(value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal | float):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        return sorted((plain(v) for v in value), key=str)
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return str(value)


def snapshot(obj: Any, fields: Any) -> dict[str, Any]:
    """The named attributes of `obj` as plain values (for `before` and `after`)."""
    return {name: plain(getattr(obj, name)) for name in fields}


def changed(
    before: Mapping[str, Any], after: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Only the fields whose values differ, before and after."""
    keys = [k for k in after if before.get(k) != after[k]]
    return {k: before.get(k) for k in keys}, {k: after[k] for k in keys}


def _json(values: Mapping[str, Any] | None) -> str | None:
    if values is None:
        return None
    if not isinstance(values, Mapping):
        raise TypeError("before and after are dicts of plain values")
    found = _forbidden(values)
    if found:
        raise ValueError(f"{found!r} never goes into the audit log")
    return json.dumps(plain(values), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _forbidden(values: Any) -> str | None:
    if isinstance(values, Mapping):
        for key, value in values.items():
            if str(key).lower() in FORBIDDEN_KEYS:
                return str(key)
            if found := _forbidden(value):
                return found
    elif isinstance(values, list | tuple):
        for value in values:
            if found := _forbidden(value):
                return found
    return None


def money(minor: int, currency: str) -> str:
    """For summaries: 150000 USD -> '1,500.00 USD' (exact, grouped)."""
    return f"{Decimal(format_amount(minor, currency)):,} {currency}"


def percent(basis_points: int) -> str:
    """For summaries: 250 -> '2.5%', 10000 -> '100%'."""
    return f"{Decimal(basis_points).scaleb(-2).normalize():f}%"


def _shown(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, str):
        return f"“{value}”" if (" " in value or not value) else value
    return json.dumps(value, ensure_ascii=False) if isinstance(value, list | dict) else str(value)


def describe(before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    """For summaries: "status active → closed, name “Acme” → “Acme Inc”" (long texts: only
    that they changed)."""
    parts = []
    for key, new in after.items():
        old = before.get(key)
        if any(isinstance(v, str) and len(v) > 60 for v in (old, new)):
            parts.append(f"{key} changed")
        else:
            parts.append(f"{key} {_shown(old)} → {_shown(new)}")
    return ", ".join(parts)


def loads(text: str | None) -> dict[str, Any] | None:
    """An entry's `before` or `after` back as a dict."""
    return None if text is None else json.loads(text)


# --- the chain -----------------------------------------------------------------------------------

# The fields an entry's hash covers, in order. Changing this list changes every hash.
HASHED_FIELDS = (
    "id",
    "at",
    "actor",
    "actor_kind",
    "role",
    "partner_id",
    "action",
    "object_type",
    "object_id",
    "subject_partner_id",
    "summary",
    "before",
    "after",
    "request_id",
)


def _iso(value: object) -> str:
    if isinstance(value, datetime):
        return ensure_utc(value).isoformat()
    raise TypeError(f"cannot hash {type(value).__name__}")


_CANONICAL = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=_iso)


def entry_hash(prev_hash: str, row: Mapping[str, Any]) -> str:
    """sha256(previous hash \\n canonical JSON of the entry's fields)."""
    canonical = _CANONICAL.encode([row[name] for name in HASHED_FIELDS])
    return hashlib.sha256(f"{prev_hash}\n{canonical}".encode()).hexdigest()


# --- writing -------------------------------------------------------------------------------------

ACTION_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
OBJECT_TYPE_RE = re.compile(r"^[a-z][a-z0-9_]*$")


def record(
    session: Session,
    actor: Actor,
    action: str,
    *,
    object_type: str,
    object_id: object,
    summary: str,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    subject_partner_id: int | None = None,
) -> AuditEntry:
    """Append one entry for what `actor` just did, in the session's transaction; flushes.

    `action` is a dotted verb ("allocation.reverse"), `summary` a sentence a person reads,
    `before` / `after` dicts of the fields that changed (plain values: dates, Decimals and enums
    become strings; passwords and token secrets are refused). The request id comes from the
    current request, command or job (see `request_id_scope`). Mistakes here are the caller's
    bugs, not the user's: they raise ValueError / TypeError.
    """
    if not isinstance(action, str) or len(action) > 64 or not ACTION_RE.match(action):
        raise ValueError(f"an audit action is a dotted lower-case verb, not {action!r}")
    if not isinstance(object_type, str) or len(object_type) > 40:
        raise ValueError(f"not an object type: {object_type!r}")
    if not OBJECT_TYPE_RE.match(object_type):
        raise ValueError(f"not an object type: {object_type!r}")
    object_key = str(object_id)
    if not object_key or len(object_key) > 64:
        raise ValueError(f"not an object id: {object_id!r}")
    if not isinstance(summary, str) or not summary.strip():
        raise ValueError("an audit entry needs a summary")
    summary = summary.strip()
    if len(summary) > SUMMARY_MAX:
        summary = summary[: SUMMARY_MAX - 1] + "…"
    if subject_partner_id is not None and (
        not isinstance(subject_partner_id, int) or isinstance(subject_partner_id, bool)
    ):
        raise TypeError("subject_partner_id is a partner's id")
    before_json, after_json = _json(before), _json(after)

    head = _lock_head(session)
    now = utcnow()
    if head["last_at"] is not None and now < head["last_at"]:
        now = head["last_at"]  # the chain's times never go back, even when the clock does
    row: dict[str, Any] = {
        "id": head["last_id"] + 1,
        "at": now,
        "actor": actor.label[:200],
        "actor_kind": actor.kind,
        "role": None if actor.role is None else str(actor.role),
        "partner_id": actor.partner_id,
        "action": action,
        "object_type": object_type,
        "object_id": object_key,
        "subject_partner_id": subject_partner_id,
        "summary": summary,
        "before": before_json,
        "after": after_json,
        "request_id": current_request_id(),
    }
    row["hash"] = entry_hash(head["last_hash"], row)
    entry = AuditEntry(**row)
    session.add(entry)
    session.flush()
    session.execute(
        update(AuditHead)
        .where(AuditHead.id == 1)
        .values(last_id=row["id"], last_hash=row["hash"], last_at=now)
    )
    return entry


def _lock_head(session: Session) -> Any:
    table = AuditHead.__table__
    statement = select(table).where(table.c.id == 1)
    if session.get_bind().dialect.name == "postgresql":
        from mdfledger.ledger.models import ChainHead

        session.execute(select(ChainHead.id).where(ChainHead.id == 1).with_for_update())
        statement = statement.with_for_update()
    return session.execute(statement).mappings().one()


# --- reading -------------------------------------------------------------------------------------


def _partner_user(actor: Actor) -> bool:
    return actor.kind == "user" and actor.role == "partner"


def scoped(statement: Select[Any], actor: Actor) -> Select[Any]:
    """`statement` over audit entries, limited to what `actor` may read."""
    if actor.kind == "system" or actor.role in STAFF_ROLES:
        return statement
    if _partner_user(actor):
        if actor.partner_id is None:
            return statement.where(false())
        return statement.where(AuditEntry.subject_partner_id == actor.partner_id)
    raise Forbidden(f"a {actor.role} user cannot read the audit log")


def _text(value: object, name: str, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or "\x00" in value:
        raise ValidationError(f"{name.replace('_', ' ')} must be text", field=name)
    value = value.strip()
    if len(value) > limit:
        raise ValidationError(
            f"{name.replace('_', ' ')} may have at most {limit} characters", field=name
        )
    return value or None


def _bound(value: date | datetime | None, *, end: bool) -> datetime | None:
    """A date means the whole day in UTC: from its start (since) or through its end (until)."""
    if value is None:
        return None
    field = "until" if end else "since"
    try:
        if isinstance(value, datetime):
            return ensure_utc(value)
        if isinstance(value, date):
            start = datetime.combine(value, time(), tzinfo=UTC)
            return start + timedelta(days=1) if end else start
    except ValueError:
        raise ValidationError("times need a timezone", field=field) from None
    except OverflowError:  # 0001-01-01T00:00+01:00 is before the first UTC moment there is
        raise ValidationError(f"{field} is out of range", field=field) from None
    raise ValidationError("a date or a time is needed", field=field)


def query(
    actor: Actor,
    *,
    action: str | None = None,
    actor_label: str | None = None,
    object_type: str | None = None,
    object_id: object = None,
    partner_id: int | None = None,
    since: date | datetime | None = None,
    until: date | datetime | None = None,
    request_id: str | None = None,
) -> Select[tuple[AuditEntry]]:
    """Entries `actor` may read, newest first, filtered.

    `action` is an exact action ("allocation.reverse") or, without a dot, a family
    ("allocation": every allocation.* action). `actor_label` is "user:12" or "system:cli".
    `partner_id` is the partner the entries are about. `since` and `until` are inclusive; a
    date covers its whole UTC day. `request_id` finds everything one request did.
    """
    statement = scoped(select(AuditEntry), actor).order_by(AuditEntry.id.desc())
    action = _text(action, "action", 64)
    if action is not None:
        if "." in action:
            statement = statement.where(AuditEntry.action == action)
        else:
            statement = statement.where(
                or_(AuditEntry.action == action, AuditEntry.action.startswith(action + "."))
            )
    if (label := _text(actor_label, "actor", 200)) is not None:
        statement = statement.where(AuditEntry.actor == label)
    if (kind := _text(object_type, "object_type", 40)) is not None:
        statement = statement.where(AuditEntry.object_type == kind)
    if object_id is not None:
        key = _text(str(object_id), "object_id", 64)
        if key is not None:
            statement = statement.where(AuditEntry.object_id == key)
    if (rid := _text(request_id, "request_id", 64)) is not None:
        statement = statement.where(AuditEntry.request_id == rid)
    if partner_id is not None:
        if not isinstance(partner_id, int) or isinstance(partner_id, bool):
            raise ValidationError("partner must be a partner's id", field="partner_id")
        statement = statement.where(AuditEntry.subject_partner_id == partner_id)
    start, end = _bound(since, end=False), _bound(until, end=True)
    if start is not None and end is not None and start > end:
        raise ValidationError("the date range ends before it starts", field="until")
    if start is not None:
        statement = statement.where(AuditEntry.at >= start)
    if end is not None:
        whole_day = not isinstance(until, datetime)  # then `end` is the next day's start
        statement = statement.where(AuditEntry.at < end if whole_day else AuditEntry.at <= end)
    return statement


def get_entry(session: Session, actor: Actor, entry_id: object) -> AuditEntry:
    """One entry `actor` may read; anything else, another partner's included, is not found."""
    is_id = isinstance(entry_id, int) and not isinstance(entry_id, bool) and 0 < entry_id < 2**63
    statement = scoped(select(AuditEntry), actor).where(AuditEntry.id == entry_id)
    entry = session.scalar(statement) if is_id else None
    if entry is None:
        raise NotFound(f"audit entry {entry_id} not found")
    return entry


def actions(session: Session, actor: Actor) -> list[str]:
    """The actions the log holds (for a filter's choices), in order."""
    statement = scoped(select(AuditEntry.action).distinct(), actor).order_by(AuditEntry.action)
    return list(session.scalars(statement))


# --- verifying -----------------------------------------------------------------------------------


@dataclass
class AuditReport:
    entries: int = 0
    head_id: int = 0
    head_hash: str = GENESIS_HASH
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "head_id": self.head_id,
            "head_hash": self.head_hash,
            "problems": self.problems,
        }


class _Stop(Exception):
    pass


def verify_audit(session: Session, *, max_problems: int = 20) -> AuditReport:
    """Walk the log in id order and check that ids leave no gap, times never go back, every
    hash matches its entry's fields and the previous entry's hash, and the head names the last
    entry. Problems are reported in log order (at most `max_problems`)."""
    report = AuditReport()

    def problem(message: str) -> None:
        report.problems.append(message)
        if len(report.problems) >= max_problems:
            raise _Stop

    table = AuditEntry.__table__
    with contextlib.suppress(_Stop):
        prev_id, prev_hash, prev_at = 0, GENESIS_HASH, None
        rows = session.execute(
            select(table).order_by(table.c.id), execution_options={"yield_per": 2000}
        ).mappings()
        for row in rows:
            report.entries += 1
            if row["id"] != prev_id + 1:
                gap = (
                    f"audit entry {prev_id + 1} is missing"
                    if row["id"] == prev_id + 2
                    else f"audit entries {prev_id + 1} to {row['id'] - 1} are missing"
                )
                problem(gap)
            if entry_hash(prev_hash, row) != row["hash"]:
                problem(f"audit entry {row['id']}: hash does not match its fields and the chain")
            if prev_at is not None and row["at"] < prev_at:
                problem(f"audit entry {row['id']}: its time goes back to {row['at'].isoformat()}")
            prev_id, prev_hash, prev_at = row["id"], row["hash"], row["at"]
        report.head_id, report.head_hash = prev_id, prev_hash
        head = session.execute(select(AuditHead.__table__)).mappings().one_or_none()
        if head is None:
            problem("the audit chain head is missing")
        elif (head["last_id"], head["last_hash"]) != (prev_id, prev_hash) or (
            head["last_at"] != prev_at
        ):
            problem(
                f"audit chain head says entry {head['last_id']} {head['last_hash']}"
                f" but the log ends at entry {prev_id} {prev_hash}"
            )
    return report
