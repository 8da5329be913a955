"""Fund requests, claims, their holds, proof documents, timeline and flags; approval settings.

The timeline (claim_events) is append-only, as the journal and the audit log are.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

UTCDateTime = sa.DateTime(timezone=True)


revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "approval_limits",
        sa.Column("id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column(
            "max_amount", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False
        ),
        sa.CheckConstraint("max_amount >= 0", name=op.f("ck_approval_limits_max_amount")),
        sa.CheckConstraint("length(currency) = 3", name=op.f("ck_approval_limits_currency")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_approval_limits_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approval_limits")),
        sa.UniqueConstraint(
            "user_id", "currency", name=op.f("uq_approval_limits_user_id_currency")
        ),
    )
    op.create_table(
        "fund_requests",
        sa.Column("id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False),
        sa.Column(
            "program_id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False
        ),
        sa.Column(
            "partner_id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False
        ),
        sa.Column(
            "activity_id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False
        ),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("expected_outcome", sa.Text(), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=False),
        sa.Column(
            "estimated_cost", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False
        ),
        sa.Column(
            "requested_amount", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False
        ),
        sa.Column(
            "approved_amount", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=True
        ),
        sa.Column("claim_deadline", sa.Date(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason_code", sa.String(length=24), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("submitted_by", sa.String(length=200), nullable=False),
        sa.Column("submitted_at", UTCDateTime, nullable=False),
        sa.Column("decided_at", UTCDateTime, nullable=True),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "reason_code IS NULL OR reason_code IN ('not_eligible', 'over_cap', 'insufficient_proof', 'proof_mismatch', 'outside_dates', 'late', 'duplicate', 'ineligible_cost', 'budget', 'other')",
            name=op.f("ck_fund_requests_reason_code"),
        ),
        sa.CheckConstraint(
            "state NOT IN ('approved', 'claimed') OR approved_amount IS NOT NULL",
            name=op.f("ck_fund_requests_approved_has_amount"),
        ),
        sa.CheckConstraint(
            "state IN ('submitted', 'returned', 'approved', 'rejected', 'withdrawn', 'claimed', 'expired')",
            name=op.f("ck_fund_requests_state"),
        ),
        sa.CheckConstraint(
            "approved_amount IS NULL OR (approved_amount > 0 AND approved_amount <= requested_amount)",
            name=op.f("ck_fund_requests_approved_amount"),
        ),
        sa.CheckConstraint("estimated_cost > 0", name=op.f("ck_fund_requests_estimated_cost")),
        sa.CheckConstraint("requested_amount > 0", name=op.f("ck_fund_requests_requested_amount")),
        sa.CheckConstraint("starts_on <= ends_on", name=op.f("ck_fund_requests_dates")),
        sa.ForeignKeyConstraint(
            ["activity_id"],
            ["program_activities.id"],
            name=op.f("fk_fund_requests_activity_id_program_activities"),
        ),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_fund_requests_partner_id_partners")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_fund_requests_program_id_programs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fund_requests")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_fund_requests_idempotency_key")),
    )
    with op.batch_alter_table("fund_requests", schema=None) as batch_op:
        batch_op.create_index(
            "ix_fund_requests_partner_state", ["partner_id", "state"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_fund_requests_program_id"), ["program_id"], unique=False
        )
        batch_op.create_index(
            "ix_fund_requests_state_submitted", ["state", "submitted_at"], unique=False
        )

    op.create_table(
        "claims",
        sa.Column("id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False),
        sa.Column(
            "program_id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False
        ),
        sa.Column(
            "partner_id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False
        ),
        sa.Column(
            "activity_id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False
        ),
        sa.Column(
            "request_id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=True
        ),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=False),
        sa.Column(
            "actual_cost", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False
        ),
        sa.Column(
            "claimed_amount", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False
        ),
        sa.Column(
            "approved_amount", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=True
        ),
        sa.Column("claim_deadline", sa.Date(), nullable=False),
        sa.Column("invoice_issuer", sa.String(length=200), nullable=False),
        sa.Column("invoice_number", sa.String(length=100), nullable=False),
        sa.Column(
            "invoice_total", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=True
        ),
        sa.Column("invoice_key", sa.String(length=400), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("flagged", sa.Boolean(), nullable=False),
        sa.Column("reason_code", sa.String(length=24), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("first_approval_by", sa.String(length=200), nullable=True),
        sa.Column(
            "first_approval_amount",
            sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"),
            nullable=True,
        ),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("submitted_by", sa.String(length=200), nullable=True),
        sa.Column("submitted_at", UTCDateTime, nullable=True),
        sa.Column("decided_at", UTCDateTime, nullable=True),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "reason_code IS NULL OR reason_code IN ('not_eligible', 'over_cap', 'insufficient_proof', 'proof_mismatch', 'outside_dates', 'late', 'duplicate', 'ineligible_cost', 'budget', 'other')",
            name=op.f("ck_claims_reason_code"),
        ),
        sa.CheckConstraint(
            "state IN ('draft', 'submitted', 'verifying', 'in_review', 'returned', 'approved', 'rejected', 'paid', 'withdrawn', 'expired')",
            name=op.f("ck_claims_state"),
        ),
        sa.CheckConstraint(
            "(first_approval_by IS NULL) = (first_approval_amount IS NULL)",
            name=op.f("ck_claims_first_approval"),
        ),
        sa.CheckConstraint(
            "state NOT IN ('approved', 'paid') OR approved_amount IS NOT NULL",
            name=op.f("ck_claims_approved_has_amount"),
        ),
        sa.CheckConstraint(
            "state IN ('draft', 'withdrawn', 'expired') OR submitted_at IS NOT NULL",
            name=op.f("ck_claims_submitted_at"),
        ),
        sa.CheckConstraint("actual_cost > 0", name=op.f("ck_claims_actual_cost")),
        sa.CheckConstraint(
            "approved_amount IS NULL OR (approved_amount > 0 AND approved_amount <= claimed_amount)",
            name=op.f("ck_claims_approved_amount"),
        ),
        sa.CheckConstraint("claimed_amount > 0", name=op.f("ck_claims_claimed_amount")),
        sa.CheckConstraint(
            "invoice_total IS NULL OR invoice_total > 0", name=op.f("ck_claims_invoice_total")
        ),
        sa.CheckConstraint("starts_on <= ends_on", name=op.f("ck_claims_dates")),
        sa.ForeignKeyConstraint(
            ["activity_id"],
            ["program_activities.id"],
            name=op.f("fk_claims_activity_id_program_activities"),
        ),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_claims_partner_id_partners")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_claims_program_id_programs")
        ),
        sa.ForeignKeyConstraint(
            ["request_id"], ["fund_requests.id"], name=op.f("fk_claims_request_id_fund_requests")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_claims")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_claims_idempotency_key")),
    )
    with op.batch_alter_table("claims", schema=None) as batch_op:
        batch_op.create_index("ix_claims_invoice", ["invoice_key"], unique=False)
        batch_op.create_index(
            "ix_claims_partner_state", ["partner_id", "state", "submitted_at"], unique=False
        )
        batch_op.create_index(
            "ix_claims_program_state", ["program_id", "state", "submitted_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_claims_request_id"), ["request_id"], unique=False)
        batch_op.create_index(
            "ix_claims_state_submitted", ["state", "submitted_at", "id"], unique=False
        )

    op.create_table(
        "claim_documents",
        sa.Column("id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False),
        sa.Column("claim_id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("size", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=True),
        sa.Column("media_type", sa.String(length=100), nullable=True),
        sa.Column("extension", sa.String(length=8), nullable=True),
        sa.Column("url", sa.String(length=2000), nullable=True),
        sa.Column("uploaded_by", sa.String(length=200), nullable=False),
        sa.Column("uploaded_at", UTCDateTime, nullable=False),
        sa.CheckConstraint(
            "kind IN ('invoice', 'lead_list', 'photo', 'landing_page', 'social_post', 'other')",
            name=op.f("ck_claim_documents_kind"),
        ),
        sa.CheckConstraint(
            "(sha256 IS NULL) <> (url IS NULL)", name=op.f("ck_claim_documents_file_or_link")
        ),
        sa.CheckConstraint(
            "(kind IN ('landing_page', 'social_post')) = (url IS NOT NULL)",
            name=op.f("ck_claim_documents_link_kind"),
        ),
        sa.CheckConstraint("size IS NULL OR size > 0", name=op.f("ck_claim_documents_size")),
        sa.ForeignKeyConstraint(
            ["claim_id"], ["claims.id"], name=op.f("fk_claim_documents_claim_id_claims")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_claim_documents")),
    )
    with op.batch_alter_table("claim_documents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_claim_documents_claim_id"), ["claim_id"], unique=False)
        batch_op.create_index("ix_claim_documents_sha256", ["sha256"], unique=False)

    op.create_table(
        "claim_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False),
        sa.Column(
            "request_id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=True
        ),
        sa.Column("claim_id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=True),
        sa.Column("event", sa.String(length=24), nullable=False),
        sa.Column("from_state", sa.String(length=16), nullable=True),
        sa.Column("to_state", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("actor_name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=True),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("amount", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=True),
        sa.Column("reason_code", sa.String(length=24), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.CheckConstraint(
            "reason_code IS NULL OR reason_code IN ('not_eligible', 'over_cap', 'insufficient_proof', 'proof_mismatch', 'outside_dates', 'late', 'duplicate', 'ineligible_cost', 'budget', 'other')",
            name=op.f("ck_claim_events_reason_code"),
        ),
        sa.CheckConstraint(
            "(request_id IS NULL) <> (claim_id IS NULL)", name=op.f("ck_claim_events_subject")
        ),
        sa.ForeignKeyConstraint(
            ["claim_id"], ["claims.id"], name=op.f("fk_claim_events_claim_id_claims")
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["fund_requests.id"],
            name=op.f("fk_claim_events_request_id_fund_requests"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_claim_events")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_claim_events_idempotency_key")),
    )
    with op.batch_alter_table("claim_events", schema=None) as batch_op:
        batch_op.create_index("ix_claim_events_claim", ["claim_id", "id"], unique=False)
        batch_op.create_index("ix_claim_events_request", ["request_id", "id"], unique=False)

    op.create_table(
        "claim_flags",
        sa.Column("id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False),
        sa.Column("claim_id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column(
            "other_claim_id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False
        ),
        sa.Column("detail", sa.String(length=500), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.CheckConstraint(
            "kind IN ('same_file', 'same_invoice')", name=op.f("ck_claim_flags_kind")
        ),
        sa.ForeignKeyConstraint(
            ["claim_id"], ["claims.id"], name=op.f("fk_claim_flags_claim_id_claims")
        ),
        sa.ForeignKeyConstraint(
            ["other_claim_id"], ["claims.id"], name=op.f("fk_claim_flags_other_claim_id_claims")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_claim_flags")),
    )
    with op.batch_alter_table("claim_flags", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_claim_flags_claim_id"), ["claim_id"], unique=False)

    op.create_table(
        "claim_holds",
        sa.Column("id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False),
        sa.Column(
            "request_id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=True
        ),
        sa.Column("claim_id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=True),
        sa.Column("fund_id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False),
        sa.Column(
            "transfer_id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False
        ),
        sa.Column("amount", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False),
        sa.Column("open", sa.Boolean(), nullable=False),
        sa.CheckConstraint(
            "(request_id IS NULL) <> (claim_id IS NULL)", name=op.f("ck_claim_holds_owner")
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_claim_holds_amount")),
        sa.ForeignKeyConstraint(
            ["claim_id"], ["claims.id"], name=op.f("fk_claim_holds_claim_id_claims")
        ),
        sa.ForeignKeyConstraint(
            ["fund_id"], ["partner_funds.id"], name=op.f("fk_claim_holds_fund_id_partner_funds")
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["fund_requests.id"],
            name=op.f("fk_claim_holds_request_id_fund_requests"),
        ),
        sa.ForeignKeyConstraint(
            ["transfer_id"],
            ["ledger_transfers.id"],
            name=op.f("fk_claim_holds_transfer_id_ledger_transfers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_claim_holds")),
        sa.UniqueConstraint("transfer_id", name=op.f("uq_claim_holds_transfer_id")),
    )
    with op.batch_alter_table("claim_holds", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_claim_holds_claim_id"), ["claim_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_claim_holds_request_id"), ["request_id"], unique=False)

    # Plain ADD COLUMN: SQLite's batch mode would rebuild programs, which everything refers to.
    op.add_column(
        "programs",
        sa.Column("direct_claims", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column(
        "programs",
        sa.Column(
            "second_approval_above",
            sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"),
            nullable=True,
        ),
    )
    if op.get_bind().dialect.name == "postgresql":  # SQLite cannot add a CHECK to a table
        op.create_check_constraint(
            "ck_programs_second_approval_above",
            "programs",
            "second_approval_above IS NULL OR second_approval_above >= 0",
        )
    _create_timeline_triggers()


def downgrade() -> None:
    _drop_timeline_triggers()
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("ck_programs_second_approval_above", "programs", type_="check")
    op.drop_column("programs", "second_approval_above")
    op.drop_column("programs", "direct_claims")

    with op.batch_alter_table("claim_holds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_claim_holds_request_id"))
        batch_op.drop_index(batch_op.f("ix_claim_holds_claim_id"))

    op.drop_table("claim_holds")
    with op.batch_alter_table("claim_flags", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_claim_flags_claim_id"))

    op.drop_table("claim_flags")
    with op.batch_alter_table("claim_events", schema=None) as batch_op:
        batch_op.drop_index("ix_claim_events_request")
        batch_op.drop_index("ix_claim_events_claim")

    op.drop_table("claim_events")
    with op.batch_alter_table("claim_documents", schema=None) as batch_op:
        batch_op.drop_index("ix_claim_documents_sha256")
        batch_op.drop_index(batch_op.f("ix_claim_documents_claim_id"))

    op.drop_table("claim_documents")
    with op.batch_alter_table("claims", schema=None) as batch_op:
        batch_op.drop_index("ix_claims_state_submitted")
        batch_op.drop_index(batch_op.f("ix_claims_request_id"))
        batch_op.drop_index("ix_claims_program_state")
        batch_op.drop_index("ix_claims_partner_state")
        batch_op.drop_index("ix_claims_invoice")

    op.drop_table("claims")
    with op.batch_alter_table("fund_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_fund_requests_state_submitted")
        batch_op.drop_index(batch_op.f("ix_fund_requests_program_id"))
        batch_op.drop_index("ix_fund_requests_partner_state")

    op.drop_table("fund_requests")
    op.drop_table("approval_limits")


def _create_timeline_triggers() -> None:
    # The refusing function comes from 0004 (the audit log) on PostgreSQL.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE TRIGGER claim_events_append_only BEFORE UPDATE OR DELETE ON claim_events "
            "FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()"
        )
        op.execute(
            "CREATE TRIGGER claim_events_no_truncate BEFORE TRUNCATE ON claim_events "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()"
        )
        return
    for action in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER claim_events_no_{action.lower()} BEFORE {action} ON claim_events "
            f"BEGIN SELECT RAISE(ABORT, 'claim_events is append-only: {action} refused'); END"
        )


def _drop_timeline_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER claim_events_append_only ON claim_events")
        op.execute("DROP TRIGGER claim_events_no_truncate ON claim_events")
        return
    op.execute("DROP TRIGGER claim_events_no_update")
    op.execute("DROP TRIGGER claim_events_no_delete")
