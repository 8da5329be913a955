"""Partner codes are unique ignoring case, in the database as in the service.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "uq_partners_code_lower", "partners", [sa.func.lower(sa.text("code"))], unique=True
    )


def downgrade() -> None:
    op.drop_index("uq_partners_code_lower", table_name="partners")
