"""Engagement: the outbox of events (append-only), destinations, deliveries and their attempts
(append-only).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

UTCDateTime = sa.DateTime(timezone=True)
BigInt = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As the enums in mdfledger.engagement.rules are today (a migration never imports the models).
KINDS = "kind IN ('webhook', 'sns', 'eventbridge', 'email')"
STATES = "state IN ('pending', 'delivered', 'dead')"
OUTCOMES = "outcome IN ('delivered', 'failed', 'dead')"
APPEND_ONLY = ("engagement_events", "engagement_attempts")


def upgrade() -> None:
    op.create_table(
        "engagement_events",
        sa.Column("id", BigInt, nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("partner_id", BigInt, nullable=False),
        sa.Column("program_id", BigInt, nullable=True),
        sa.Column("key", sa.String(length=200), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("action", sa.String(length=200), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_engagement_events_partner_id_partners")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_engagement_events_program_id_programs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_engagement_events")),
        sa.UniqueConstraint("key", name=op.f("uq_engagement_events_key")),
    )
    op.create_index("ix_engagement_events_partner", "engagement_events", ["partner_id", "id"])
    op.create_table(
        "engagement_destinations",
        sa.Column("id", BigInt, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("partner_id", BigInt, nullable=True),
        sa.Column("event_types", sa.Text(), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=True),
        sa.Column("secret", sa.String(length=100), nullable=True),
        sa.Column("topic_arn", sa.String(length=256), nullable=True),
        sa.Column("event_bus", sa.String(length=1600), nullable=True),
        sa.Column("region", sa.String(length=40), nullable=True),
        sa.Column("email_to", sa.JSON(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.CheckConstraint(KINDS, name=op.f("ck_engagement_destinations_kind")),
        sa.CheckConstraint(
            "kind <> 'webhook' OR (url IS NOT NULL AND secret IS NOT NULL)",
            name=op.f("ck_engagement_destinations_webhook"),
        ),
        sa.CheckConstraint(
            "kind <> 'sns' OR topic_arn IS NOT NULL", name=op.f("ck_engagement_destinations_sns")
        ),
        sa.CheckConstraint(
            "kind <> 'eventbridge' OR event_bus IS NOT NULL",
            name=op.f("ck_engagement_destinations_eventbridge"),
        ),
        sa.ForeignKeyConstraint(
            ["partner_id"],
            ["partners.id"],
            name=op.f("fk_engagement_destinations_partner_id_partners"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_engagement_destinations")),
    )
    op.create_index("ix_engagement_destinations_partner", "engagement_destinations", ["partner_id"])
    op.create_table(
        "engagement_deliveries",
        sa.Column("id", BigInt, nullable=False),
        sa.Column("event_id", BigInt, nullable=False),
        sa.Column("destination_id", BigInt, nullable=False),
        sa.Column("partner_id", BigInt, nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime, nullable=False),
        sa.Column("window_start", UTCDateTime, nullable=False),
        sa.Column("leased_until", UTCDateTime, nullable=True),
        sa.Column("lease", sa.String(length=32), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("delivered_at", UTCDateTime, nullable=True),
        sa.Column("dead_at", UTCDateTime, nullable=True),
        sa.Column("replayed_by", sa.String(length=200), nullable=True),
        sa.Column("replayed_at", UTCDateTime, nullable=True),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_engagement_deliveries_attempts")),
        sa.CheckConstraint(
            "state <> 'dead' OR dead_at IS NOT NULL", name=op.f("ck_engagement_deliveries_dead_at")
        ),
        sa.CheckConstraint(
            "state <> 'delivered' OR delivered_at IS NOT NULL",
            name=op.f("ck_engagement_deliveries_delivered_at"),
        ),
        sa.CheckConstraint(STATES, name=op.f("ck_engagement_deliveries_state")),
        sa.ForeignKeyConstraint(
            ["destination_id"],
            ["engagement_destinations.id"],
            name=op.f("fk_engagement_deliveries_destination_id_engagement_destinations"),
        ),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["engagement_events.id"],
            name=op.f("fk_engagement_deliveries_event_id_engagement_events"),
        ),
        sa.ForeignKeyConstraint(
            ["partner_id"],
            ["partners.id"],
            name=op.f("fk_engagement_deliveries_partner_id_partners"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_engagement_deliveries")),
        sa.UniqueConstraint(
            "event_id",
            "destination_id",
            name=op.f("uq_engagement_deliveries_event_id_destination_id"),
        ),
    )
    op.create_index(
        "ix_engagement_deliveries_queue",
        "engagement_deliveries",
        ["destination_id", "partner_id", "state", "event_id"],
    )
    op.create_index(
        "ix_engagement_deliveries_state_due", "engagement_deliveries", ["state", "next_attempt_at"]
    )
    op.create_index("ix_engagement_deliveries_event", "engagement_deliveries", ["event_id"])
    op.create_table(
        "engagement_attempts",
        sa.Column("id", BigInt, nullable=False),
        sa.Column("delivery_id", BigInt, nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.CheckConstraint(OUTCOMES, name=op.f("ck_engagement_attempts_outcome")),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["engagement_deliveries.id"],
            name=op.f("fk_engagement_attempts_delivery_id_engagement_deliveries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_engagement_attempts")),
    )
    op.create_index("ix_engagement_attempts_delivery", "engagement_attempts", ["delivery_id", "id"])
    for table in APPEND_ONLY:
        _create_append_only_triggers(table)


def downgrade() -> None:
    for table in APPEND_ONLY:
        _drop_append_only_triggers(table)
    op.drop_index("ix_engagement_attempts_delivery", table_name="engagement_attempts")
    op.drop_table("engagement_attempts")
    op.drop_index("ix_engagement_deliveries_event", table_name="engagement_deliveries")
    op.drop_index("ix_engagement_deliveries_state_due", table_name="engagement_deliveries")
    op.drop_index("ix_engagement_deliveries_queue", table_name="engagement_deliveries")
    op.drop_table("engagement_deliveries")
    op.drop_index("ix_engagement_destinations_partner", table_name="engagement_destinations")
    op.drop_table("engagement_destinations")
    op.drop_index("ix_engagement_events_partner", table_name="engagement_events")
    op.drop_table("engagement_events")


def _create_append_only_triggers(table: str) -> None:
    # The refusing function comes from 0004 (the audit log) on PostgreSQL.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE"
            f" ON {table} FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE"
            f" ON {table} FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()"
        )
        return
    for action in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action}"
            f" ON {table} BEGIN SELECT RAISE(ABORT,"
            f" '{table} is append-only: {action} refused'); END"
        )


def _drop_append_only_triggers(table: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER {table}_append_only ON {table}")
        op.execute(f"DROP TRIGGER {table}_no_truncate ON {table}")
        return
    op.execute(f"DROP TRIGGER {table}_no_update")
    op.execute(f"DROP TRIGGER {table}_no_delete")
