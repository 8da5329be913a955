"""Background export jobs: who asked for which export, how far it got, and where its file is."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mdfledger.db import Base, BigInt, UTCDateTime, one_of
from mdfledger.exports.job_rules import ExportState


class ExportJob(Base):
    """One export asked for by a user (or a system actor), run by a worker as that actor.

    The requester is stored as the Actor's fields (label, role, partner) so the job runs with
    exactly the rights it was asked with, and is shown only to whom may see it. A worker takes
    the job under a lease (`lease`, `leased_until`) renewed with every progress report; another
    worker may take it over only once the lease has lapsed. The file lives in the export store
    (exports.files) under `file_key` until `expires_at`."""

    __tablename__ = "export_jobs"
    __table_args__ = (
        CheckConstraint(one_of("state", ExportState), name="state"),
        CheckConstraint("actor_kind IN ('user', 'system')", name="actor_kind"),
        CheckConstraint("rows_done >= 0 AND (rows_total IS NULL OR rows_total >= 0)", name="rows"),
        CheckConstraint("attempts >= 0", name="attempts"),
        CheckConstraint(
            "state <> 'running' OR (lease IS NOT NULL AND leased_until IS NOT NULL)",
            name="running_lease",
        ),
        CheckConstraint(
            "state <> 'ready' OR (file_key IS NOT NULL AND file_size IS NOT NULL"
            " AND file_sha256 IS NOT NULL AND finished_at IS NOT NULL"
            " AND expires_at IS NOT NULL)",
            name="ready_file",
        ),
        CheckConstraint("state <> 'failed' OR error IS NOT NULL", name="failed_error"),
        CheckConstraint("file_sha256 IS NULL OR length(file_sha256) = 64", name="sha256"),
        # "My exports", newest first; and upkeep's look for lapsed leases and expired files.
        Index("ix_export_jobs_requested_by", "requested_by", "id"),
        Index("ix_export_jobs_state", "state", "leased_until"),
        Index("ix_export_jobs_expires", "state", "expires_at"),
    )

    id: Mapped[int] = mapped_column(BigInt, primary_key=True)
    # Who asked: the Actor's label ("user:12"), kind, role and partner, and the user.
    requested_by: Mapped[str] = mapped_column(String(200))
    actor_kind: Mapped[str] = mapped_column(String(8))
    role: Mapped[str | None] = mapped_column(String(16))
    partner_id: Mapped[int | None] = mapped_column(ForeignKey("partners.id"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(32))  # exports.kinds name: "journal", "audit"
    format: Mapped[str] = mapped_column(String(16))
    params: Mapped[str] = mapped_column(Text)  # the kind's checked parameters, canonical JSON
    filename: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16), default=ExportState.QUEUED.value)
    rows_done: Mapped[int] = mapped_column(BigInt, default=0)
    rows_total: Mapped[int | None] = mapped_column(BigInt)  # the kind's estimate
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease: Mapped[str | None] = mapped_column(String(32))
    leased_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    file_key: Mapped[str | None] = mapped_column(String(255))
    file_size: Mapped[int | None] = mapped_column(BigInt)
    file_sha256: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
