"""Bulk imports from CSV: allocations, and co-op purchases that accrue into partner funds.

All or nothing: every row is checked first and a file with any bad row is refused with a report
naming each line and what is wrong with it; then the good file moves money in one ledger batch.
Purchases are idempotent by source row, so a re-imported or overlapping file accrues nothing
twice; an allocation file imported twice is refused. Never commits.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mdfledger import audit, ledger
from mdfledger.actor import Actor
from mdfledger.auth.scope import MANAGERS, require_role
from mdfledger.clock import ensure_utc, utcnow
from mdfledger.csvfile import Column, RowError, parse_date, read_table
from mdfledger.errors import Conflict, DomainError, ValidationError
from mdfledger.fields import clean_text
from mdfledger.ledger import NewTransfer
from mdfledger.money import format_amount, parse_amount
from mdfledger.programs import rules
from mdfledger.programs.funds import (
    REASON_MAX,
    announce,
    fund_for,
    open_program,
    period_of,
    today,
)
from mdfledger.programs.models import (
    AccrualRate,
    Allocation,
    AllocationKind,
    Fund,
    Import,
    ImportKind,
    Partner,
    PartnerStatus,
    Program,
    ProgramKind,
    Purchase,
)
from mdfledger.programs.service import get_program

Progress = Callable[[str, int, int], None]  # (stage, done, total)

ALLOCATION_COLUMNS = (
    Column("partner", ("partner_code", "partner id", "partner_id")),
    Column("amount", ("allocation", "allocated")),
    Column("currency", (), required=False),
    Column("reason", ("memo", "note", "notes", "comment"), required=False),
)
PURCHASE_COLUMNS = (
    Column("partner", ("partner_code", "partner id", "partner_id")),
    Column(
        "reference",
        ("invoice", "invoice_number", "invoice_no", "invoice number", "document", "credit_note"),
    ),
    Column("date", ("invoice_date", "purchase_date", "document_date")),
    Column("amount", ("net_amount", "total", "value")),
    Column("product_line", ("product", "product line", "category"), required=False),
    Column("currency", (), required=False),
)


@dataclass(frozen=True, slots=True)
class RowResult:
    line: int
    partner: str
    amount: int  # the row's amount (a purchase, or an allocation)
    moved: int  # what moved into (+) or out of (-) the partner's fund
    status: str  # "applied" | "skipped"
    note: str = ""


@dataclass(slots=True)
class ImportReport:
    kind: str
    program_code: str
    currency: str
    period_label: str
    filename: str
    rows: int = 0
    applied: int = 0
    skipped: int = 0
    moved: int = 0  # net amount moved into partner funds
    import_id: int | None = None
    errors: list[RowError] = field(default_factory=list)
    results: list[RowResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "program": self.program_code, "currency": self.currency,
            "period": self.period_label, "filename": self.filename, "rows": self.rows,
            "applied": self.applied, "skipped": self.skipped,
            "moved": format_amount(self.moved, self.currency), "import_id": self.import_id,
            "errors": [
                {"line": e.line, "column": e.column, "message": e.message} for e in self.errors
            ],
        }  # fmt: skip


class ImportRejected(ValidationError):
    """The file was refused and nothing was applied; `report.errors` says why, line by line."""

    code = "import_rejected"

    def __init__(self, report: ImportReport) -> None:
        n = len(report.errors)
        super().__init__(
            f"{report.filename}: {n} problem{'s' if n != 1 else ''} found; nothing was imported",
            errors=report.to_dict()["errors"][:500],
        )
        self.report = report


def _no_progress(stage: str, done: int, total: int) -> None:
    return None


@dataclass(slots=True)
class _Rows:
    """Rows checked one by one: each problem is recorded, nothing stops at the first."""

    report: ImportReport
    partners: dict[str, Partner]

    def fail(self, line: int, column: str | None, message: str) -> None:
        self.report.errors.append(RowError(line, column, message))

    def partner(self, line: int, code: str) -> Partner | None:
        if not code:
            self.fail(line, "partner", "partner is required")
            return None
        partner = self.partners.get(code.casefold())
        if partner is None:
            self.fail(line, "partner", f"unknown partner {code!r}")
        elif partner.status != PartnerStatus.ACTIVE:
            self.fail(line, "partner", f"partner {partner.code} is {partner.status}")
            return None
        return partner

    def amount(self, line: int, text: str, currency: str, *, signed: bool) -> int | None:
        try:
            value = parse_amount(text.replace(" ", ""), currency) if text else None
        except DomainError as exc:
            hint = " (no thousands separators)" if "," in text else ""
            self.fail(line, "amount", f"{exc.message}{hint}")
            return None
        if value is None:
            self.fail(line, "amount", "amount is required")
        elif value == 0 or (value < 0 and not signed):
            self.fail(line, "amount", f"amount must be more than zero, not {text}")
        elif abs(value) >= 2**62:
            self.fail(line, "amount", f"amount {text} is too large")
        else:
            return value
        return None

    def currency(self, line: int, text: str, currency: str) -> None:
        if text and text.upper() != currency:
            self.fail(line, "currency", f"currency {text} does not match the program's {currency}")


def _start(
    session: Session,
    actor: Actor,
    kind: ImportKind,
    program_id: int,
    data: bytes,
    filename: str,
    day: date | None,
    now: datetime,
) -> tuple[Program, rules.Period, ImportReport, str]:
    require_role(actor, *MANAGERS)
    program = get_program(session, actor, program_id)
    open_program(program)
    if not isinstance(data, bytes | bytearray):
        raise ValidationError("the upload must be a file", field="file")
    filename = clean_text(filename or "upload.csv", "filename", 255)
    period = period_of(program, day or today(program, now))
    report = ImportReport(kind.value, program.code, program.currency, period.label, filename)
    return program, period, report, hashlib.sha256(data).hexdigest()


def _load_partners(session: Session, codes: set[str]) -> dict[str, Partner]:
    found: dict[str, Partner] = {}
    wanted = sorted(codes)
    for i in range(0, len(wanted), 1000):
        chunk = [c.casefold() for c in wanted[i : i + 1000]]
        for partner in session.scalars(select(Partner).where(func.lower(Partner.code).in_(chunk))):
            found[partner.code.casefold()] = partner
    return found


def _record_import(
    session: Session,
    actor: Actor,
    kind: ImportKind,
    program: Program,
    period: rules.Period,
    report: ImportReport,
    digest: str,
    now: datetime,
) -> Import:
    record = Import(
        kind=kind.value, program_id=program.id, period_start=period.start,
        filename=report.filename, sha256=digest, rows=report.rows, applied=0, skipped=0,
        amount=0, actor=actor.label, created_at=now,
    )  # fmt: skip
    session.add(record)
    session.flush()
    report.import_id = record.id
    return record


def _finish(session: Session, actor: Actor, record: Import, report: ImportReport) -> ImportReport:
    record.applied, record.skipped, record.amount = report.applied, report.skipped, report.moved
    session.flush()
    what = "allocations" if record.kind == ImportKind.ALLOCATIONS else "purchases"
    audit.record(
        session, actor, f"import.{what}", object_type="import", object_id=record.id,
        summary=f"Imported {what} from {report.filename} into {report.program_code} for"
        f" {report.period_label}: {report.rows} rows, {report.applied} applied,"
        f" {report.skipped} skipped, {audit.money(report.moved, report.currency)} moved",
        after={"kind": record.kind, "program_id": record.program_id,
               "period": report.period_label, "filename": report.filename,
               "sha256": record.sha256, "rows": report.rows, "applied": report.applied,
               "skipped": report.skipped, "currency": report.currency,
               "amount": format_amount(report.moved, report.currency)},
    )  # fmt: skip
    return report


def import_allocations(
    session: Session,
    actor: Actor,
    program_id: int,
    data: bytes,
    *,
    filename: str,
    day: date | None = None,
    reason: str = "bulk allocation",
    progress: Progress = _no_progress,
    now: datetime | None = None,
) -> ImportReport:
    """Allocate to many partners from a CSV (partner, amount[, currency, reason]) for the period
    containing `day` (default today). Refuses the whole file on any bad row or if the total
    exceeds what the budget has left."""
    now = ensure_utc(now or utcnow())
    kind = ImportKind.ALLOCATIONS
    program, period, report, digest = _start(
        session, actor, kind, program_id, data, filename, day, now
    )
    default_reason = clean_text(reason, "reason", REASON_MAX)
    # The same file for the same period is a repeat; for another period (a standing quarterly
    # plan uploaded again next quarter) it is a new allocation, so the period is part of the match.
    earlier = session.scalar(
        select(Import).where(
            Import.kind == kind,
            Import.program_id == program.id,
            Import.sha256 == digest,
            Import.period_start == period.start,
        )
    )
    if earlier is not None:
        raise Conflict(
            f"this file was already imported as import #{earlier.id} on"
            f" {earlier.created_at:%Y-%m-%d}; nothing was imported again",
            import_id=earlier.id,
        )
    last_day = rules.available_until(period, program.expiry_policy, program.rollover_days)
    if last_day < today(program, now):
        raise ValidationError(
            f"{period.label} funds expired after {last_day.isoformat()}: allocate to a current"
            " or future period",
            field="period",
        )
    table = read_table(bytes(data), ALLOCATION_COLUMNS)
    report.errors.extend(table.errors)
    report.rows = len(table.rows)
    rows = _Rows(report, _load_partners(session, {r["partner"] for _, r in table.rows}))
    seen: dict[int, int] = {}
    good: list[tuple[int, Partner, int, str]] = []
    for index, (line, row) in enumerate(table.rows):
        progress("checking", index + 1, len(table.rows))
        partner = rows.partner(line, row["partner"])
        amount = rows.amount(line, row["amount"], program.currency, signed=False)
        rows.currency(line, row["currency"], program.currency)
        row_reason = row["reason"][:REASON_MAX] or default_reason
        if partner is not None and partner.id in seen:
            rows.fail(line, "partner", f"{partner.code} is already on line {seen[partner.id]}")
            continue
        if partner is not None:
            seen[partner.id] = line
        if partner is not None and amount is not None:
            good.append((line, partner, amount, row_reason))
    total = sum(amount for _, _, amount, _ in good)
    left = ledger.balance(session, program.budget_account_id).available  # read fresh
    if not report.errors and total > left:
        rows.fail(
            0, "amount",
            f"the file allocates {format_amount(total, program.currency)} {program.currency};"
            f" the {program.code} budget has {format_amount(left, program.currency)} left",
        )  # fmt: skip
    if report.errors:
        raise ImportRejected(report)

    record = _record_import(session, actor, kind, program, period, report, digest, now)
    commands: list[NewTransfer] = []
    funds: list[Fund] = []
    for index, (line, partner, amount, row_reason) in enumerate(good):
        progress("opening funds", index + 1, len(good))
        fund = fund_for(session, actor, program, partner, period.start, now=now)
        funds.append(fund)
        commands.append(
            NewTransfer(
                f"allocation-import:{record.id}:{line}",
                program.budget_account_id,
                fund.account_id,
                amount,
                rules.ALLOCATION,
                ref_type="import",
                ref_id=str(record.id),
                memo=row_reason,
            )
        )
    progress("moving funds", 0, len(commands))
    transfers = ledger.execute(session, actor, commands, now=now)
    progress("moving funds", len(commands), len(commands))
    session.add_all(
        Allocation(
            kind=AllocationKind.ALLOCATION.value,
            program_id=program.id,
            partner_id=partner.id,
            fund_id=fund.id,
            amount=amount,
            reason=row_reason,
            transfer_id=transfer.id,
            import_id=record.id,
            actor=actor.label,
            created_at=now,
            reverses_id=None,
        )
        for (line, partner, amount, row_reason), fund, transfer in zip(
            good, funds, transfers, strict=True
        )
    )
    for (line, partner, amount, _), fund in zip(good, funds, strict=True):
        report.results.append(RowResult(line, partner.code, amount, amount, "applied"))
        announce(session, "fund.allocated", program, fund, amount, now=now)
    report.applied, report.moved = len(good), total
    return _finish(session, actor, record, report)


def source_key(partner_code: str, reference: str, day: date, amount: int, product: str) -> str:
    """A purchase row's identity: the same row in any later file is recognised and skipped."""
    parts = (partner_code.casefold(), reference, day.isoformat(), str(amount), product.casefold())
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def import_purchases(
    session: Session,
    actor: Actor,
    program_id: int,
    data: bytes,
    *,
    filename: str,
    day: date | None = None,
    progress: Progress = _no_progress,
    now: datetime | None = None,
) -> ImportReport:
    """Accrue co-op funds on partner purchases for the period containing `day` (default today).

    Columns: partner, reference, date, amount[, product_line, currency]. The rate comes from the
    program's rates by the partner's tier and the product line. A negative amount (a return or
    credit note) takes its accrual back, as far as the fund still holds it; the rest is
    recorded as unrecovered. Rows an earlier import applied are skipped.
    """
    now = ensure_utc(now or utcnow())
    kind = ImportKind.PURCHASES
    program, period, report, digest = _start(
        session, actor, kind, program_id, data, filename, day, now
    )
    if program.kind != ProgramKind.COOP or program.accrual_account_id is None:
        raise ValidationError(f"{program.code} is not a co-op program: it does not accrue")
    rates = [
        rules.Rate(r.tier, r.product_line, r.rate_bp)
        for r in session.scalars(select(AccrualRate).where(AccrualRate.program_id == program.id))
    ]
    table = read_table(bytes(data), PURCHASE_COLUMNS)
    report.errors.extend(table.errors)
    report.rows = len(table.rows)
    rows = _Rows(report, _load_partners(session, {r["partner"] for _, r in table.rows}))
    seen: dict[str, int] = {}
    good: list[dict[str, Any]] = []
    for index, (line, row) in enumerate(table.rows):
        progress("checking", index + 1, len(table.rows))
        partner = rows.partner(line, row["partner"])
        amount = rows.amount(line, row["amount"], program.currency, signed=True)
        rows.currency(line, row["currency"], program.currency)
        reference = row["reference"]
        if not reference:
            rows.fail(line, "reference", "reference is required")
        elif len(reference) > 100:
            rows.fail(line, "reference", "reference may have at most 100 characters")
        product = row["product_line"]
        if len(product) > 80:
            rows.fail(line, "product_line", "product line may have at most 80 characters")
        try:
            purchased = parse_date(row["date"], "date")
        except DomainError as exc:
            rows.fail(line, "date", exc.message)
            purchased = None
        if purchased is not None and purchased not in period:
            rows.fail(
                line, "date",
                f"date {purchased.isoformat()} is outside {period.label}"
                f" ({period.start.isoformat()} to {period.end.isoformat()})",
            )  # fmt: skip
            purchased = None
        if partner is None or amount is None or purchased is None or not reference:
            continue
        if len(product) > 80 or len(reference) > 100:
            continue
        rate = rules.pick_rate(rates, partner.tier, product)
        if rate is None:
            rows.fail(
                line, "product_line",
                f"no accrual rate for tier {partner.tier!r}"
                f"{f' and product line {product!r}' if product else ''} in {program.code}",
            )  # fmt: skip
            continue
        key = source_key(partner.code, reference, purchased, amount, product)
        if key in seen:
            rows.fail(line, None, f"the same purchase as line {seen[key]}")
            continue
        seen[key] = line
        good.append(
            {"line": line, "partner": partner, "amount": amount, "day": purchased,
             "reference": reference, "product": product, "rate": rate.rate_bp, "key": key}
        )  # fmt: skip
    if report.errors:
        raise ImportRejected(report)

    record = _record_import(session, actor, kind, program, period, report, digest, now)
    done = _already_imported(session, program.id, [g["key"] for g in good])
    commands: list[NewTransfer] = []
    purchases: list[tuple[Purchase, int | None]] = []  # with the index of its command
    left: dict[int, int] = {}  # fund id -> what it holds, as this import changes it
    funds: dict[int, Fund] = {}
    for index, g in enumerate(good):
        progress("accruing", index + 1, len(good))
        partner: Partner = g["partner"]
        if g["key"] in done:
            report.skipped += 1
            report.results.append(
                RowResult(g["line"], partner.code, g["amount"], 0, "skipped", "already imported")
            )
            continue
        fund = funds.get(partner.id)  # every row is in the one period: one fund per partner
        if fund is None:
            fund = funds[partner.id] = fund_for(session, actor, program, partner, g["day"], now=now)
        if fund.id not in left:
            left[fund.id] = ledger.balance(session, fund.account_id).available
        accrued = rules.accrual(g["amount"], g["rate"])
        moved = accrued if accrued >= 0 else -min(-accrued, left[fund.id])
        left[fund.id] += moved
        purchase = Purchase(
            program_id=program.id, partner_id=partner.id, fund_id=fund.id, import_id=record.id,
            source_key=g["key"], reference=g["reference"], purchased_on=g["day"],
            product_line=g["product"], amount=g["amount"], rate_bp=g["rate"], accrual=accrued,
            unrecovered=moved - accrued, transfer_id=None,
        )  # fmt: skip
        command_index = None
        if moved:
            command_index = len(commands)
            debit, credit = program.accrual_account_id, fund.account_id
            if moved < 0:
                debit, credit = credit, debit
            commands.append(
                NewTransfer(
                    f"coop:{program.id}:{g['key']}",
                    debit,
                    credit,
                    abs(moved),
                    rules.ACCRUAL if moved > 0 else rules.ACCRUAL_RETURN,
                    effective_date=g["day"],
                    ref_type="purchase",
                    ref_id=g["reference"][:64],
                    memo=f"{g['reference']} {g['product']}".strip()[:500],
                )
            )
        purchases.append((purchase, command_index))
        note = ""
        if purchase.unrecovered:
            note = (
                f"{format_amount(purchase.unrecovered, program.currency)} of the return's"
                " accrual was already spent and is not recovered"
            )
        report.results.append(
            RowResult(g["line"], partner.code, g["amount"], moved, "applied", note)
        )
        report.applied += 1
        report.moved += moved
    progress("moving funds", 0, len(commands))
    transfers = ledger.execute(session, actor, commands, now=now)
    progress("moving funds", len(commands), len(commands))
    for purchase, command_index in purchases:
        if command_index is not None:
            purchase.transfer_id = transfers[command_index].id
    session.add_all(purchase for purchase, _ in purchases)
    # One message per partner and import, not per purchase line.
    accrued: dict[int, int] = {}
    for purchase, _ in purchases:
        moved = purchase.accrual + purchase.unrecovered
        accrued[purchase.fund_id] = accrued.get(purchase.fund_id, 0) + moved
    for fund in funds.values():
        if accrued.get(fund.id, 0) > 0:
            announce(
                session, "fund.accrued", program, fund, accrued[fund.id], now=now,
                purchase_reference=record.filename,
            )  # fmt: skip
    return _finish(session, actor, record, report)


def _already_imported(session: Session, program_id: int, keys: list[str]) -> set[str]:
    done: set[str] = set()
    for i in range(0, len(keys), 1000):
        done.update(
            session.scalars(
                select(Purchase.source_key).where(
                    Purchase.program_id == program_id,
                    Purchase.source_key.in_(keys[i : i + 1000]),
                )
            )
        )
    return done


def imports_query(actor: Actor, program_id: int | None = None) -> Any:
    require_role(actor, *MANAGERS, "auditor")
    statement = select(Import).order_by(Import.id.desc())
    if program_id is not None:
        statement = statement.where(Import.program_id == program_id)
    return statement
