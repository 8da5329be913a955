"""The audit log: one append-only row per action, chained by SHA-256 like the ledger's journal."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mdfledger.db import Base, BigInt, UTCDateTime


class AuditEntry(Base):
    """Who (actor label, kind, role, their partner) did what (a dotted action) to which object
    (type and id, and the partner it belongs to), when, in which request, with a sentence for
    people and the changed fields before and after as JSON. Never updated or deleted: triggers
    refuse it on SQLite and PostgreSQL. No foreign keys: the log outlives and never constrains
    what it describes."""

    __tablename__ = "audit_log"
    __table_args__ = (
        CheckConstraint("actor_kind IN ('user', 'system')", name="actor_kind"),
        CheckConstraint("length(action) > 0 AND length(object_type) > 0", name="named"),
        CheckConstraint("length(hash) = 64", name="hash"),
        # Filters of the audit page, each with the id for its newest-first order.
        Index("ix_audit_log_action", "action", "id"),
        Index("ix_audit_log_actor", "actor", "id"),
        Index("ix_audit_log_object", "object_type", "object_id", "id"),
        Index("ix_audit_log_subject_partner", "subject_partner_id", "id"),
        Index("ix_audit_log_at", "at", "id"),
        Index("ix_audit_log_request_id", "request_id"),
    )

    # Assigned from the chain head (last id + 1): gap-free, in the order of the chain.
    id: Mapped[int] = mapped_column(BigInt, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(200))  # "user:12", "system:cli"
    actor_kind: Mapped[str] = mapped_column(String(8))
    role: Mapped[str | None] = mapped_column(String(16))
    partner_id: Mapped[int | None] = mapped_column(BigInt)  # the actor's, for partner users
    action: Mapped[str] = mapped_column(String(64))  # "allocation.reverse"
    object_type: Mapped[str] = mapped_column(String(40))
    object_id: Mapped[str] = mapped_column(String(64))
    subject_partner_id: Mapped[int | None] = mapped_column(BigInt)  # whose object it is
    summary: Mapped[str] = mapped_column(Text)
    before: Mapped[str | None] = mapped_column(Text)  # canonical JSON of the changed fields
    after: Mapped[str | None] = mapped_column(Text)
    request_id: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The single row every audit write takes: the last entry's id, hash and time."""

    __tablename__ = "audit_chain"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(BigInt, primary_key=True, autoincrement=False)
    last_id: Mapped[int] = mapped_column(BigInt)
    last_hash: Mapped[str] = mapped_column(String(64))
    last_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
