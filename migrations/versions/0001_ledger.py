"""Ledger: accounts, append-only transfers and entries, daily balances, the hash chain.

Revision ID: 0001
Revises:
Create Date: 2026-11-23 22:46:03.848910
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# Frozen here rather than imported, so later changes to the app's types cannot rewrite history:
# timestamptz on PostgreSQL, DATETIME text on SQLite (as mdfledger.db.UTCDateTime stores them).
UTCDateTime = sa.DateTime(timezone=True)


revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ledger_accounts",
        sa.Column("id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column(
            "program_id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=True
        ),
        sa.Column(
            "partner_id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=True
        ),
        sa.Column("debits_must_not_exceed_credits", sa.Boolean(), nullable=False),
        sa.Column("credits_must_not_exceed_debits", sa.Boolean(), nullable=False),
        sa.Column(
            "debits_pending", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False
        ),
        sa.Column(
            "debits_posted", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False
        ),
        sa.Column(
            "credits_pending", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False
        ),
        sa.Column(
            "credits_posted", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False
        ),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("closed_at", UTCDateTime, nullable=True),
        sa.CheckConstraint(
            "kind IN ('funding', 'budget', 'accrual_source', 'partner_fund', 'claims_payable', 'payouts_in_transit', 'settled', 'expired')",
            name=op.f("ck_ledger_accounts_kind"),
        ),
        sa.CheckConstraint(
            "NOT (debits_must_not_exceed_credits AND credits_must_not_exceed_debits)",
            name=op.f("ck_ledger_accounts_one_limit"),
        ),
        sa.CheckConstraint(
            "NOT credits_must_not_exceed_debits OR credits_pending + credits_posted <= debits_posted",
            name=op.f("ck_ledger_accounts_credits_within_debits"),
        ),
        sa.CheckConstraint(
            "NOT debits_must_not_exceed_credits OR debits_pending + debits_posted <= credits_posted",
            name=op.f("ck_ledger_accounts_debits_within_credits"),
        ),
        sa.CheckConstraint(
            "debits_pending >= 0 AND debits_posted >= 0 AND credits_pending >= 0 AND credits_posted >= 0",
            name=op.f("ck_ledger_accounts_balances_non_negative"),
        ),
        sa.CheckConstraint("length(currency) = 3", name=op.f("ck_ledger_accounts_currency")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_accounts")),
        sa.UniqueConstraint("id", "currency", name=op.f("uq_ledger_accounts_id_currency")),
        sa.UniqueConstraint("key", name=op.f("uq_ledger_accounts_key")),
    )
    with op.batch_alter_table("ledger_accounts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ledger_accounts_owner", ["program_id", "partner_id"], unique=False
        )

    op.create_table(
        "ledger_chain",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column(
            "last_transfer_id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False
        ),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.Column("last_created_at", UTCDateTime, nullable=True),
        sa.CheckConstraint("id = 1", name=op.f("ck_ledger_chain_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_chain")),
    )
    op.create_table(
        "ledger_account_days",
        sa.Column(
            "account_id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False
        ),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column(
            "debits_pending", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False
        ),
        sa.Column(
            "debits_posted", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False
        ),
        sa.Column(
            "credits_pending", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False
        ),
        sa.Column(
            "credits_posted", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["ledger_accounts.id"],
            name=op.f("fk_ledger_account_days_account_id_ledger_accounts"),
        ),
        sa.PrimaryKeyConstraint("account_id", "day", name=op.f("pk_ledger_account_days")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "ledger_transfers",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=8), nullable=False),
        sa.Column(
            "debit_account_id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False
        ),
        sa.Column(
            "credit_account_id",
            sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"),
            nullable=False,
        ),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column(
            "pending_id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=True
        ),
        sa.Column(
            "reverses_id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=True
        ),
        sa.Column("expires_at", UTCDateTime, nullable=True),
        sa.Column("effective_date", sa.Date(), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("ref_type", sa.String(length=40), nullable=True),
        sa.Column("ref_id", sa.String(length=64), nullable=True),
        sa.Column("memo", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.CheckConstraint(
            "(pending_id IS NULL) = (type IN ('single', 'pending'))",
            name=op.f("ck_ledger_transfers_resolution_names_pending"),
        ),
        sa.CheckConstraint(
            "expires_at IS NULL OR type = 'pending'",
            name=op.f("ck_ledger_transfers_expiry_only_pending"),
        ),
        sa.CheckConstraint(
            "reverses_id IS NULL OR type = 'single'",
            name=op.f("ck_ledger_transfers_reversal_is_single"),
        ),
        sa.CheckConstraint(
            "type IN ('single', 'pending', 'post', 'void', 'expire')",
            name=op.f("ck_ledger_transfers_type"),
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_ledger_transfers_amount_positive")),
        sa.CheckConstraint(
            "debit_account_id <> credit_account_id", name=op.f("ck_ledger_transfers_two_accounts")
        ),
        sa.CheckConstraint("length(hash) = 64", name=op.f("ck_ledger_transfers_hash")),
        sa.ForeignKeyConstraint(
            ["credit_account_id", "currency"],
            ["ledger_accounts.id", "ledger_accounts.currency"],
            name="fk_ledger_transfers_credit_account_currency",
        ),
        sa.ForeignKeyConstraint(
            ["debit_account_id", "currency"],
            ["ledger_accounts.id", "ledger_accounts.currency"],
            name="fk_ledger_transfers_debit_account_currency",
        ),
        sa.ForeignKeyConstraint(
            ["pending_id"],
            ["ledger_transfers.id"],
            name=op.f("fk_ledger_transfers_pending_id_ledger_transfers"),
        ),
        sa.ForeignKeyConstraint(
            ["reverses_id"],
            ["ledger_transfers.id"],
            name=op.f("fk_ledger_transfers_reverses_id_ledger_transfers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_transfers")),
        sa.UniqueConstraint("key", name=op.f("uq_ledger_transfers_key")),
    )
    with op.batch_alter_table("ledger_transfers", schema=None) as batch_op:
        batch_op.create_index("ix_ledger_transfers_created_at", ["created_at", "id"], unique=False)
        batch_op.create_index(
            "ix_ledger_transfers_open_pending",
            ["expires_at"],
            unique=False,
            sqlite_where=sa.text("type = 'pending'"),
            postgresql_where=sa.text("type = 'pending'"),
        )
        batch_op.create_index("ix_ledger_transfers_ref", ["ref_type", "ref_id"], unique=False)
        batch_op.create_index(
            "uq_ledger_transfers_pending_id",
            ["pending_id"],
            unique=True,
            sqlite_where=sa.text("pending_id IS NOT NULL"),
            postgresql_where=sa.text("pending_id IS NOT NULL"),
        )
        batch_op.create_index(
            "uq_ledger_transfers_reverses_id",
            ["reverses_id"],
            unique=True,
            sqlite_where=sa.text("reverses_id IS NOT NULL"),
            postgresql_where=sa.text("reverses_id IS NOT NULL"),
        )

    op.create_table(
        "ledger_entries",
        sa.Column(
            "account_id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False
        ),
        sa.Column(
            "transfer_id", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False
        ),
        sa.Column("side", sa.String(length=6), nullable=False),
        sa.Column("effective_date", sa.Date(), nullable=False),
        sa.Column(
            "pending_delta", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False
        ),
        sa.Column(
            "posted_delta", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False
        ),
        sa.Column(
            "debits_pending", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False
        ),
        sa.Column(
            "debits_posted", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False
        ),
        sa.Column(
            "credits_pending", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False
        ),
        sa.Column(
            "credits_posted", sa.BigInteger().with_variant(sa.INTEGER(), "sqlite"), nullable=False
        ),
        sa.CheckConstraint("side IN ('debit', 'credit')", name=op.f("ck_ledger_entries_side")),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["ledger_accounts.id"],
            name=op.f("fk_ledger_entries_account_id_ledger_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["transfer_id"],
            ["ledger_transfers.id"],
            name=op.f("fk_ledger_entries_transfer_id_ledger_transfers"),
        ),
        sa.PrimaryKeyConstraint("account_id", "transfer_id", name=op.f("pk_ledger_entries")),
        sqlite_with_rowid=False,
    )
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ledger_entries_statement",
            ["account_id", "effective_date", "transfer_id"],
            unique=False,
        )
    _seed_chain()
    _create_immutability_triggers()


def downgrade() -> None:
    _drop_immutability_triggers()
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_ledger_entries_statement")

    op.drop_table("ledger_entries")
    with op.batch_alter_table("ledger_transfers", schema=None) as batch_op:
        batch_op.drop_index("ix_ledger_transfers_ref")
        batch_op.drop_index("uq_ledger_transfers_pending_id")
        batch_op.drop_index("uq_ledger_transfers_reverses_id")
        batch_op.drop_index(
            "ix_ledger_transfers_open_pending",
            sqlite_where=sa.text("type = 'pending'"),
            postgresql_where=sa.text("type = 'pending'"),
        )
        batch_op.drop_index("ix_ledger_transfers_created_at")

    op.drop_table("ledger_transfers")
    op.drop_table("ledger_account_days")
    op.drop_table("ledger_chain")
    with op.batch_alter_table("ledger_accounts", schema=None) as batch_op:
        batch_op.drop_index("ix_ledger_accounts_owner")

    op.drop_table("ledger_accounts")


GENESIS_HASH = "0" * 64
APPEND_ONLY = ("ledger_transfers", "ledger_entries")
# Accounts may change only their maintained balances, closed_at and their display name.
ACCOUNT_FIXED = (
    "id",
    "key",
    "kind",
    "code",
    "currency",
    "created_at",
    "program_id",
    "partner_id",
    "debits_must_not_exceed_credits",
    "credits_must_not_exceed_debits",
)


def _seed_chain() -> None:
    op.execute(
        "INSERT INTO ledger_chain (id, last_transfer_id, last_hash) "
        f"VALUES (1, 0, '{GENESIS_HASH}')"
    )


def _create_immutability_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("""
            CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION '%: % refused (%)', TG_TABLE_NAME, TG_OP, TG_ARGV[0]
                    USING ERRCODE = 'raise_exception';
            END $$""")
        for table in APPEND_ONLY:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change('append-only')"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change('append-only')"
            )
        # The WHEN clause is checked in C; the function runs only when something is refused.
        changed = " OR ".join(f"NEW.{c} IS DISTINCT FROM OLD.{c}" for c in ACCOUNT_FIXED)
        op.execute(
            "CREATE TRIGGER ledger_accounts_fixed BEFORE UPDATE ON ledger_accounts FOR EACH ROW "
            f"WHEN ({changed}) EXECUTE FUNCTION ledger_refuse_change('fixed fields')"
        )
        op.execute(
            "CREATE TRIGGER ledger_accounts_no_delete BEFORE DELETE ON ledger_accounts "
            "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change('accounts are never deleted')"
        )
        op.execute(
            "CREATE TRIGGER ledger_accounts_no_truncate BEFORE TRUNCATE ON ledger_accounts "
            "FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change('accounts are never deleted')"
        )
        return
    for table in APPEND_ONLY:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {action} refused'); END"
            )
    op.execute(
        "CREATE TRIGGER ledger_accounts_no_delete BEFORE DELETE ON ledger_accounts "
        "BEGIN SELECT RAISE(ABORT, 'ledger_accounts: DELETE refused'); END"
    )
    op.execute(
        f"CREATE TRIGGER ledger_accounts_fixed BEFORE UPDATE OF {', '.join(ACCOUNT_FIXED)} "
        "ON ledger_accounts WHEN "
        + " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in ACCOUNT_FIXED)
        + " BEGIN SELECT RAISE(ABORT, 'ledger_accounts: UPDATE of fixed fields refused'); END"
    )


def _drop_immutability_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in APPEND_ONLY:
            op.execute(f"DROP TRIGGER {table}_append_only ON {table}")
            op.execute(f"DROP TRIGGER {table}_no_truncate ON {table}")
        op.execute("DROP TRIGGER ledger_accounts_fixed ON ledger_accounts")
        op.execute("DROP TRIGGER ledger_accounts_no_delete ON ledger_accounts")
        op.execute("DROP TRIGGER ledger_accounts_no_truncate ON ledger_accounts")
        op.execute("DROP FUNCTION ledger_refuse_change()")
        return
    for table in APPEND_ONLY:
        op.execute(f"DROP TRIGGER {table}_no_update")
        op.execute(f"DROP TRIGGER {table}_no_delete")
    op.execute("DROP TRIGGER ledger_accounts_no_delete")
    op.execute("DROP TRIGGER ledger_accounts_fixed")
