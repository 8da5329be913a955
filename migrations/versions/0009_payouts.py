"""Payouts: partners' payout details, programs' payout policies, payouts with their claims and
timeline (append-only), and the provider events (webhooks) received.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

UTCDateTime = sa.DateTime(timezone=True)
BigInt = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As the enums in mdfledger.payouts.rules are today (a migration never imports the models).
METHODS = "method IN ('stripe', 'bank')"
TAX_FORMS = "tax_form IS NULL OR tax_form IN ('W-9', 'W-8BEN', 'W-8BEN-E', 'VAT', 'other')"
PROVIDERS = "provider IN ('manual', 'stripe')"
SCHEDULES = "schedule IN ('immediate', 'weekly', 'monthly')"
STATES = "state IN ('pending', 'sent', 'settled', 'failed', 'flagged', 'reversed', 'cancelled')"
RUN_DAY = (
    "(schedule = 'immediate' AND run_day IS NULL)"
    " OR (schedule = 'weekly' AND run_day BETWEEN 0 AND 6)"
    " OR (schedule = 'monthly' AND run_day BETWEEN 1 AND 28)"
)


def upgrade() -> None:
    op.create_table(
        "payout_details",
        sa.Column("partner_id", BigInt, nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("stripe_account", sa.String(length=64), nullable=True),
        sa.Column("account_holder", sa.String(length=200), nullable=False),
        sa.Column("bank_country", sa.String(length=2), nullable=True),
        sa.Column("iban", sa.String(length=34), nullable=True),
        sa.Column("account_number", sa.String(length=34), nullable=True),
        sa.Column("routing_code", sa.String(length=15), nullable=True),
        sa.Column("payout_currency", sa.String(length=3), nullable=True),
        sa.Column("tax_form", sa.String(length=16), nullable=True),
        sa.Column("tax_id", sa.String(length=64), nullable=True),
        sa.Column("tax_received_on", sa.Date(), nullable=True),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.CheckConstraint(
            "method <> 'bank' OR (iban IS NOT NULL OR account_number IS NOT NULL)",
            name=op.f("ck_payout_details_bank_has_account"),
        ),
        sa.CheckConstraint(METHODS, name=op.f("ck_payout_details_method")),
        sa.CheckConstraint(
            "method <> 'stripe' OR stripe_account IS NOT NULL",
            name=op.f("ck_payout_details_stripe_has_account"),
        ),
        sa.CheckConstraint(TAX_FORMS, name=op.f("ck_payout_details_tax_form")),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_payout_details_partner_id_partners")
        ),
        sa.PrimaryKeyConstraint("partner_id", name=op.f("pk_payout_details")),
    )
    op.create_table(
        "payout_policies",
        sa.Column("program_id", BigInt, nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("schedule", sa.String(length=16), nullable=False),
        sa.Column("run_day", sa.Integer(), nullable=True),
        sa.Column("requires_tax_info", sa.Boolean(), nullable=False),
        sa.Column("minimum_amount", BigInt, nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.CheckConstraint(
            "max_attempts BETWEEN 1 AND 20", name=op.f("ck_payout_policies_max_attempts")
        ),
        sa.CheckConstraint("minimum_amount >= 0", name=op.f("ck_payout_policies_minimum_amount")),
        sa.CheckConstraint(PROVIDERS, name=op.f("ck_payout_policies_provider")),
        sa.CheckConstraint(RUN_DAY, name=op.f("ck_payout_policies_run_day")),
        sa.CheckConstraint(SCHEDULES, name=op.f("ck_payout_policies_schedule")),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_payout_policies_program_id_programs")
        ),
        sa.PrimaryKeyConstraint("program_id", name=op.f("pk_payout_policies")),
    )
    op.create_table(
        "payouts",
        sa.Column("id", BigInt, nullable=False),
        sa.Column("program_id", BigInt, nullable=False),
        sa.Column("partner_id", BigInt, nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount", BigInt, nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("transfer_group", sa.String(length=64), nullable=False),
        sa.Column("provider_ref", sa.String(length=255), nullable=True),
        sa.Column("destination", sa.String(length=255), nullable=False),
        sa.Column("send_transfer_id", BigInt, nullable=True),
        sa.Column("amount_reversed", BigInt, nullable=False),
        sa.Column("next_attempt_at", UTCDateTime, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("flagged_reason", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("attempt_at", UTCDateTime, nullable=False),
        sa.Column("checked_at", UTCDateTime, nullable=False),
        sa.Column("sent_at", UTCDateTime, nullable=True),
        sa.Column("settled_at", UTCDateTime, nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint("amount > 0", name=op.f("ck_payouts_amount")),
        sa.CheckConstraint("attempt >= 1", name=op.f("ck_payouts_attempt")),
        sa.CheckConstraint(PROVIDERS, name=op.f("ck_payouts_provider")),
        sa.CheckConstraint(
            "amount_reversed >= 0 AND amount_reversed <= amount", name=op.f("ck_payouts_reversed")
        ),
        sa.CheckConstraint(STATES, name=op.f("ck_payouts_state")),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_payouts_partner_id_partners")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_payouts_program_id_programs")
        ),
        sa.ForeignKeyConstraint(
            ["send_transfer_id"],
            ["ledger_transfers.id"],
            name=op.f("fk_payouts_send_transfer_id_ledger_transfers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payouts")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_payouts_idempotency_key")),
    )
    op.create_index("ix_payouts_state_next", "payouts", ["state", "next_attempt_at"])
    op.create_index("ix_payouts_partner_created", "payouts", ["partner_id", "created_at", "id"])
    op.create_index("ix_payouts_program_state", "payouts", ["program_id", "state"])
    op.create_index("ix_payouts_provider_ref", "payouts", ["provider_ref"])
    op.create_table(
        "payout_claims",
        sa.Column("id", BigInt, nullable=False),
        sa.Column("payout_id", BigInt, nullable=False),
        sa.Column("claim_id", BigInt, nullable=False),
        sa.Column("amount", BigInt, nullable=False),
        sa.Column("live", sa.Boolean(), nullable=False),
        sa.CheckConstraint("amount > 0", name=op.f("ck_payout_claims_amount")),
        sa.ForeignKeyConstraint(
            ["claim_id"], ["claims.id"], name=op.f("fk_payout_claims_claim_id_claims")
        ),
        sa.ForeignKeyConstraint(
            ["payout_id"], ["payouts.id"], name=op.f("fk_payout_claims_payout_id_payouts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payout_claims")),
        sa.UniqueConstraint(
            "payout_id", "claim_id", name=op.f("uq_payout_claims_payout_id_claim_id")
        ),
    )
    op.create_index(op.f("ix_payout_claims_claim_id"), "payout_claims", ["claim_id"])
    # A claim is in at most one live payout (every state but cancelled).
    op.create_index(
        "uq_payout_claims_live_claim",
        "payout_claims",
        ["claim_id"],
        unique=True,
        sqlite_where=sa.text("live"),
        postgresql_where=sa.text("live"),
    )
    op.create_table(
        "payout_events",
        sa.Column("id", BigInt, nullable=False),
        sa.Column("payout_id", BigInt, nullable=False),
        sa.Column("event", sa.String(length=24), nullable=False),
        sa.Column("from_state", sa.String(length=16), nullable=True),
        sa.Column("to_state", sa.String(length=16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("provider_ref", sa.String(length=255), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.ForeignKeyConstraint(
            ["payout_id"], ["payouts.id"], name=op.f("fk_payout_events_payout_id_payouts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payout_events")),
    )
    op.create_index("ix_payout_events_payout", "payout_events", ["payout_id", "id"])
    op.create_table(
        "payout_provider_events",
        sa.Column("id", BigInt, nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("created", UTCDateTime, nullable=True),
        sa.Column("received_at", UTCDateTime, nullable=False),
        sa.Column("payout_id", BigInt, nullable=True),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["payout_id"], ["payouts.id"], name=op.f("fk_payout_provider_events_payout_id_payouts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payout_provider_events")),
        sa.UniqueConstraint(
            "provider", "event_id", name=op.f("uq_payout_provider_events_provider_event_id")
        ),
    )
    op.create_index(
        op.f("ix_payout_provider_events_payout_id"), "payout_provider_events", ["payout_id"]
    )
    op.create_index("ix_payout_provider_events_received", "payout_provider_events", ["received_at"])
    _create_append_only_triggers()


def downgrade() -> None:
    _drop_append_only_triggers()
    op.drop_index("ix_payout_provider_events_received", table_name="payout_provider_events")
    op.drop_index(op.f("ix_payout_provider_events_payout_id"), table_name="payout_provider_events")
    op.drop_table("payout_provider_events")
    op.drop_index("ix_payout_events_payout", table_name="payout_events")
    op.drop_table("payout_events")
    op.drop_index("uq_payout_claims_live_claim", table_name="payout_claims")
    op.drop_index(op.f("ix_payout_claims_claim_id"), table_name="payout_claims")
    op.drop_table("payout_claims")
    for name in (
        "ix_payouts_provider_ref",
        "ix_payouts_program_state",
        "ix_payouts_partner_created",
        "ix_payouts_state_next",
    ):
        op.drop_index(name, table_name="payouts")
    op.drop_table("payouts")
    op.drop_table("payout_policies")
    op.drop_table("payout_details")


def _create_append_only_triggers() -> None:
    # The refusing function comes from 0004 (the audit log) on PostgreSQL.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE TRIGGER payout_events_append_only BEFORE UPDATE OR DELETE"
            " ON payout_events FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()"
        )
        op.execute(
            "CREATE TRIGGER payout_events_no_truncate BEFORE TRUNCATE"
            " ON payout_events FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()"
        )
        return
    for action in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER payout_events_no_{action.lower()} BEFORE {action}"
            " ON payout_events BEGIN SELECT RAISE(ABORT,"
            f" 'payout_events is append-only: {action} refused'); END"
        )


def _drop_append_only_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER payout_events_append_only ON payout_events")
        op.execute("DROP TRIGGER payout_events_no_truncate ON payout_events")
        return
    op.execute("DROP TRIGGER payout_events_no_update")
    op.execute("DROP TRIGGER payout_events_no_delete")
