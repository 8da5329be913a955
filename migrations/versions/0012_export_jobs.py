"""Background export jobs: who asked, progress, the lease, the stored file.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

UTCDateTime = sa.DateTime(timezone=True)
BigInt = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As mdfledger.exports.job_rules.ExportState is today (a migration never imports models).
STATES = "state IN ('queued', 'running', 'ready', 'failed', 'expired')"


def upgrade() -> None:
    op.create_table(
        "export_jobs",
        sa.Column("id", BigInt, nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("actor_kind", sa.String(length=8), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=True),
        sa.Column("partner_id", BigInt, nullable=True),
        sa.Column("user_id", BigInt, nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("rows_done", BigInt, nullable=False),
        sa.Column("rows_total", BigInt, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease", sa.String(length=32), nullable=True),
        sa.Column("leased_until", UTCDateTime, nullable=True),
        sa.Column("file_key", sa.String(length=255), nullable=True),
        sa.Column("file_size", BigInt, nullable=True),
        sa.Column("file_sha256", sa.String(length=64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=True),
        sa.Column("finished_at", UTCDateTime, nullable=True),
        sa.Column("expires_at", UTCDateTime, nullable=True),
        sa.CheckConstraint(
            "actor_kind IN ('user', 'system')", name=op.f("ck_export_jobs_actor_kind")
        ),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_export_jobs_attempts")),
        sa.CheckConstraint(
            "state <> 'failed' OR error IS NOT NULL", name=op.f("ck_export_jobs_failed_error")
        ),
        sa.CheckConstraint(
            "state <> 'ready' OR (file_key IS NOT NULL AND file_size IS NOT NULL"
            " AND file_sha256 IS NOT NULL AND finished_at IS NOT NULL"
            " AND expires_at IS NOT NULL)",
            name=op.f("ck_export_jobs_ready_file"),
        ),
        sa.CheckConstraint(
            "rows_done >= 0 AND (rows_total IS NULL OR rows_total >= 0)",
            name=op.f("ck_export_jobs_rows"),
        ),
        sa.CheckConstraint(
            "state <> 'running' OR (lease IS NOT NULL AND leased_until IS NOT NULL)",
            name=op.f("ck_export_jobs_running_lease"),
        ),
        sa.CheckConstraint(
            "file_sha256 IS NULL OR length(file_sha256) = 64", name=op.f("ck_export_jobs_sha256")
        ),
        sa.CheckConstraint(STATES, name=op.f("ck_export_jobs_state")),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_export_jobs_partner_id_partners")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_export_jobs_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_export_jobs")),
    )
    op.create_index("ix_export_jobs_requested_by", "export_jobs", ["requested_by", "id"])
    op.create_index("ix_export_jobs_state", "export_jobs", ["state", "leased_until"])
    op.create_index("ix_export_jobs_expires", "export_jobs", ["state", "expires_at"])


def downgrade() -> None:
    op.drop_index("ix_export_jobs_expires", table_name="export_jobs")
    op.drop_index("ix_export_jobs_state", table_name="export_jobs")
    op.drop_index("ix_export_jobs_requested_by", table_name="export_jobs")
    op.drop_table("export_jobs")
