"""Indexes for the claims pages, found by `mdfledger bench queue` at 100,000 claims
(docs/benchmarks.md): a partner's own claims newest first; finance's queue filtered to flagged
claims; and the queue's sort orders over the waiting claims only (partial indexes).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As mdfledger.claims.models.WAITING_SQL is today (a migration never imports the models).
WAITING = "state IN ('submitted', 'verifying', 'in_review')"


def upgrade() -> None:
    # "My claims" (partner_id = ? ORDER BY created_at DESC, id DESC) read every claim of the
    # partner and sorted them; this index hands them over in order.
    op.create_index(
        "ix_claims_partner_created", "claims", ["partner_id", "created_at", "id"], unique=False
    )
    # "Flagged only" in the queue (and its count) read every waiting claim to test the flag.
    op.create_index(
        "ix_claims_flagged_state",
        "claims",
        ["flagged", "state", "submitted_at", "id"],
        unique=False,
    )
    # The queue sorted by age or amount read every waiting claim and sorted them (PostgreSQL
    # reads just the page's rows from these; SQLite does not use them).
    for name, columns in (
        ("ix_claims_waiting_submitted", ["submitted_at", "id"]),
        ("ix_claims_waiting_amount", ["claimed_amount", "id"]),
    ):
        op.create_index(
            name,
            "claims",
            columns,
            unique=False,
            sqlite_where=sa.text(WAITING),
            postgresql_where=sa.text(WAITING),
        )


def downgrade() -> None:
    for name in (
        "ix_claims_waiting_amount",
        "ix_claims_waiting_submitted",
        "ix_claims_flagged_state",
        "ix_claims_partner_created",
    ):
        op.drop_index(name, table_name="claims")
