"""The integrity report auditors keep: the journal's chain head, its size, totals per currency
and the result of recomputing everything from the transfers, with the audit log's own chain.

Two reports taken months apart compare line by line: the later one's transfer count and totals
grow, and its recomputation still passes only if no earlier transfer was changed (each hash
covers its predecessor's, so the head hash stands for the whole journal before it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from mdfledger import audit, ledger
from mdfledger.clock import ensure_utc, utcnow
from mdfledger.money import format_amount


@dataclass(frozen=True)
class IntegrityReport:
    generated_at: datetime
    database: str  # the kind of database, never its address
    ledger: ledger.VerifyReport
    audit: audit.AuditReport

    @property
    def ok(self) -> bool:
        return self.ledger.ok and self.audit.ok

    def as_dict(self) -> dict[str, Any]:
        return {
            "generated_at": self.generated_at.isoformat(),
            "database": self.database,
            "ok": self.ok,
            "ledger": self.ledger.as_dict(),
            "audit": self.audit.as_dict(),
        }


def integrity_report(session: Session, *, now: datetime | None = None) -> IntegrityReport:
    """Recompute the ledger and the audit log (a read-only session: one snapshot on
    PostgreSQL, so both halves describe the same moment)."""
    when = ensure_utc(now or utcnow())
    dialect = session.get_bind().dialect.name
    return IntegrityReport(
        when, dialect, ledger.verify_ledger(session), audit.verify_audit(session)
    )


def report_lines(report: IntegrityReport) -> list[str]:
    """The report as plain text lines, for a file an auditor keeps."""
    led, log = report.ledger, report.audit
    lines = [
        "mdfledger integrity report",
        f"generated: {report.generated_at.isoformat(timespec='seconds')}",
        f"database: {report.database}",
        "",
        "journal",
        f"  transfers: {led.transfers}",
        f"  accounts: {led.accounts}",
        f"  chain head: transfer {led.head_id}, hash {led.head_hash}",
    ]
    for currency, b in sorted(led.totals.items()):
        lines.append(
            f"  {currency}: debits posted {format_amount(b.debits_posted, currency)} = credits"
            f" posted {format_amount(b.credits_posted, currency)}; pending"
            f" {format_amount(b.debits_pending, currency)} ="
            f" {format_amount(b.credits_pending, currency)}"
        )
    lines.append(
        "  recomputation: every balance and hash recomputed from the transfers: "
        + ("verified" if led.ok else f"{len(led.problems)} discrepancy(ies)")
    )
    lines += [f"    DISCREPANCY: {problem}" for problem in led.problems]
    lines += [
        "",
        "audit log",
        f"  entries: {log.entries}",
        f"  chain head: entry {log.head_id}, hash {log.head_hash}",
        "  recomputation: " + ("verified" if log.ok else f"{len(log.problems)} discrepancy(ies)"),
    ]
    lines += [f"    DISCREPANCY: {problem}" for problem in log.problems]
    lines += ["", "result: " + ("INTACT" if report.ok else "DISCREPANCIES FOUND")]
    return lines
