"""Verification: each program's rules, the checks' results (append-only), claimed leads.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

UTCDateTime = sa.DateTime(timezone=True)
BigInt = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As the enums in mdfledger.verification are today (a migration never imports the models).
KINDS = "kind IN ('invoice', 'page', 'leads', 'photo', 'dates', 'amount')"
OUTCOMES = "outcome IN ('pass', 'fail', 'inconclusive')"
TRIGGERS = "trigger IN ('submit', 'rerun', 'recheck')"


def upgrade() -> None:
    op.create_table(
        "verification_policies",
        sa.Column("program_id", BigInt, nullable=False),
        sa.Column("auto_approve_up_to", BigInt, nullable=True),
        sa.Column("tolerance_bp", sa.Integer(), nullable=False),
        sa.Column("invoice_grace_days", sa.Integer(), nullable=False),
        sa.Column("page_markers", sa.Text(), nullable=False),
        sa.Column("min_leads", sa.Integer(), nullable=True),
        sa.Column("recheck_days", sa.Integer(), nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.CheckConstraint(
            "auto_approve_up_to IS NULL OR auto_approve_up_to > 0",
            name=op.f("ck_verification_policies_auto"),
        ),
        sa.CheckConstraint(
            "invoice_grace_days BETWEEN 0 AND 366", name=op.f("ck_verification_policies_grace")
        ),
        sa.CheckConstraint(
            "min_leads IS NULL OR min_leads > 0", name=op.f("ck_verification_policies_min_leads")
        ),
        sa.CheckConstraint(
            "recheck_days BETWEEN 0 AND 366", name=op.f("ck_verification_policies_recheck")
        ),
        sa.CheckConstraint(
            "tolerance_bp BETWEEN 0 AND 10000", name=op.f("ck_verification_policies_tolerance")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"],
            ["programs.id"],
            name=op.f("fk_verification_policies_program_id_programs"),
        ),
        sa.PrimaryKeyConstraint("program_id", name=op.f("pk_verification_policies")),
    )
    op.create_table(
        "verification_checks",
        sa.Column("id", BigInt, nullable=False),
        sa.Column("claim_id", BigInt, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("document_id", BigInt, nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("checked_at", UTCDateTime, nullable=False),
        sa.CheckConstraint(KINDS, name=op.f("ck_verification_checks_kind")),
        sa.CheckConstraint(OUTCOMES, name=op.f("ck_verification_checks_outcome")),
        sa.CheckConstraint("score BETWEEN 0 AND 100", name=op.f("ck_verification_checks_score")),
        sa.CheckConstraint(TRIGGERS, name=op.f("ck_verification_checks_trigger")),
        sa.ForeignKeyConstraint(
            ["claim_id"], ["claims.id"], name=op.f("fk_verification_checks_claim_id_claims")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_verification_checks")),
    )
    op.create_index("ix_verification_checks_claim", "verification_checks", ["claim_id", "id"])
    op.create_index("ix_verification_checks_kind_at", "verification_checks", ["kind", "checked_at"])
    op.create_table(
        "verification_leads",
        sa.Column("id", BigInt, nullable=False),
        sa.Column("claim_id", BigInt, nullable=False),
        sa.Column("partner_id", BigInt, nullable=False),
        sa.Column("lead_key", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["claim_id"], ["claims.id"], name=op.f("fk_verification_leads_claim_id_claims")
        ),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_verification_leads_partner_id_partners")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_verification_leads")),
        sa.UniqueConstraint(
            "claim_id", "lead_key", name=op.f("uq_verification_leads_claim_id_lead_key")
        ),
    )
    op.create_index(
        "ix_verification_leads_partner_key", "verification_leads", ["partner_id", "lead_key"]
    )
    _create_append_only_triggers()


def downgrade() -> None:
    _drop_append_only_triggers()
    op.drop_index("ix_verification_leads_partner_key", table_name="verification_leads")
    op.drop_table("verification_leads")
    op.drop_index("ix_verification_checks_kind_at", table_name="verification_checks")
    op.drop_index("ix_verification_checks_claim", table_name="verification_checks")
    op.drop_table("verification_checks")
    op.drop_table("verification_policies")


def _create_append_only_triggers() -> None:
    # The refusing function comes from 0004 (the audit log) on PostgreSQL.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE TRIGGER verification_checks_append_only BEFORE UPDATE OR DELETE"
            " ON verification_checks FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()"
        )
        op.execute(
            "CREATE TRIGGER verification_checks_no_truncate BEFORE TRUNCATE"
            " ON verification_checks FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()"
        )
        return
    for action in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER verification_checks_no_{action.lower()} BEFORE {action}"
            " ON verification_checks BEGIN SELECT RAISE(ABORT,"
            f" 'verification_checks is append-only: {action} refused'); END"
        )


def _drop_append_only_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER verification_checks_append_only ON verification_checks")
        op.execute("DROP TRIGGER verification_checks_no_truncate ON verification_checks")
        return
    op.execute("DROP TRIGGER verification_checks_no_update")
    op.execute("DROP TRIGGER verification_checks_no_delete")
