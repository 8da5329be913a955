"""Partner activity signals: each program's thresholds, each signal's state.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

UTCDateTime = sa.DateTime(timezone=True)
BigInt = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As mdfledger.engagement.signal_rules.SignalKind is today (a migration never imports models).
KINDS = (
    "kind IN ('partner.no_sign_in', 'partner.no_activity', 'partner.inactive',"
    " 'funds.expiring', 'reservation.deadline_near', 'utilisation.milestone')"
)


def upgrade() -> None:
    op.create_table(
        "signal_policies",
        sa.Column("program_id", BigInt, nullable=False),
        sa.Column("no_sign_in_days", sa.Integer(), nullable=False),
        sa.Column("no_activity_days", sa.Integer(), nullable=False),
        sa.Column("expiry_warning_days", sa.Integer(), nullable=False),
        sa.Column("deadline_warning_days", sa.Integer(), nullable=False),
        sa.Column("milestones", sa.String(length=40), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.CheckConstraint(
            "deadline_warning_days BETWEEN 1 AND 366",
            name=op.f("ck_signal_policies_deadline_warning_days"),
        ),
        sa.CheckConstraint(
            "expiry_warning_days BETWEEN 1 AND 366",
            name=op.f("ck_signal_policies_expiry_warning_days"),
        ),
        sa.CheckConstraint(
            "no_activity_days BETWEEN 1 AND 366", name=op.f("ck_signal_policies_no_activity_days")
        ),
        sa.CheckConstraint(
            "no_sign_in_days BETWEEN 1 AND 366", name=op.f("ck_signal_policies_no_sign_in_days")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_signal_policies_program_id_programs")
        ),
        sa.PrimaryKeyConstraint("program_id", name=op.f("pk_signal_policies")),
    )
    op.create_table(
        "partner_signals",
        sa.Column("id", BigInt, nullable=False),
        sa.Column("program_id", BigInt, nullable=False),
        sa.Column("partner_id", BigInt, nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("subject", sa.String(length=80), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("since", sa.Date(), nullable=True),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("event_key", sa.String(length=200), nullable=True),
        sa.Column("emitted", sa.Boolean(), nullable=False),
        sa.Column("first_seen_at", UTCDateTime, nullable=False),
        sa.Column("changed_at", UTCDateTime, nullable=False),
        sa.CheckConstraint(
            "NOT (active OR emitted) OR event_key IS NOT NULL",
            name=op.f("ck_partner_signals_event_key"),
        ),
        sa.CheckConstraint(KINDS, name=op.f("ck_partner_signals_kind")),
        sa.CheckConstraint(
            "NOT active OR since IS NOT NULL", name=op.f("ck_partner_signals_since")
        ),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_partner_signals_partner_id_partners")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_partner_signals_program_id_programs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_partner_signals")),
        sa.UniqueConstraint(
            "program_id",
            "partner_id",
            "kind",
            "subject",
            name=op.f("uq_partner_signals_program_id_partner_id_kind_subject"),
        ),
    )
    op.create_index(
        "ix_partner_signals_active", "partner_signals", ["active", "program_id", "partner_id"]
    )
    op.create_index("ix_partner_signals_partner", "partner_signals", ["partner_id"])


def downgrade() -> None:
    op.drop_index("ix_partner_signals_partner", table_name="partner_signals")
    op.drop_index("ix_partner_signals_active", table_name="partner_signals")
    op.drop_table("partner_signals")
    op.drop_table("signal_policies")
