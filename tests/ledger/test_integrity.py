"""The database guards the ledger, and verify-ledger finds what got past it.

Transfers and entries are append-only (triggers refuse UPDATE, DELETE and, on PostgreSQL,
TRUNCATE); accounts are never deleted and keep their fixed fields; CHECK constraints hold the
limits. Tampering that bypasses the triggers is caught by verify_ledger and the CLI.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

import mdfledger
from mdfledger import ledger
from mdfledger.actor import Actor
from mdfledger.ledger import AccountKind, NewTransfer, rules
from mdfledger.ledger.models import Account, Transfer


@dataclass(frozen=True)
class Journal:
    funding: int
    budget: int
    fund: int
    claims: int
    unused: int
    spend_id: int  # fund -> claims 2,500: a transfer in the middle of the chain
    hold_id: int  # the last transfer: a reservation of 1,000


@pytest.fixture
def journal(session: Session, actor: Actor) -> Journal:
    """Four committed transfers: funding -> budget -> fund -> claims, then a reservation."""

    def account(key: str, kind: str, **flags: bool) -> int:
        return ledger.open_account(
            session, actor, key=key, name=key.title(), kind=kind, currency="USD", **flags
        ).id

    limited = {"debits_must_not_exceed_credits": True}
    funding = account("funding", AccountKind.FUNDING)
    budget = account("budget", AccountKind.BUDGET, **limited)
    fund = account("fund", AccountKind.PARTNER_FUND, **limited)
    claims = account("claims", AccountKind.CLAIMS_PAYABLE, **limited)
    unused = account("unused", AccountKind.SETTLED)
    records = ledger.execute(
        session,
        actor,
        [
            NewTransfer("fund-budget", funding, budget, 100_000, "funding"),
            NewTransfer("allocate", budget, fund, 10_000, "allocation"),
            NewTransfer("spend", fund, claims, 2_500, "claim", memo="booth"),
            NewTransfer("hold", fund, claims, 1_000, "preapproval", pending=True),
        ],
    )
    session.commit()
    return Journal(funding, budget, fund, claims, unused, records[2].id, records[3].id)


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


@contextmanager
def triggers_off(session: Session, table: str) -> Iterator[None]:
    """Bypass the table's guard triggers, as someone with DDL rights could."""
    if is_postgres(session):
        session.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
        yield
        session.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER USER"))
        return
    triggers = session.execute(
        text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :t"),
        {"t": table},
    ).all()
    assert triggers, f"no triggers guard {table}"
    for name, _sql in triggers:
        session.execute(text(f"DROP TRIGGER {name}"))
    yield
    for _name, sql in triggers:
        session.execute(text(sql))


def tamper(session: Session, table: str, sql: str, **params: Any) -> None:
    with triggers_off(session, table):
        result = session.execute(text(sql), params)
        assert result.rowcount == 1
    session.commit()


def ledger_rows(session: Session) -> list[Any]:
    return [
        session.execute(text(f"SELECT * FROM {table} ORDER BY 1, 2")).all()
        for table in ("ledger_transfers", "ledger_entries", "ledger_accounts")
    ]


# --- the database refuses changes ---------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE ledger_transfers SET amount = 1",
        "UPDATE ledger_transfers SET memo = 'changed' WHERE key = 'spend'",
        "UPDATE ledger_transfers SET hash = hash",
        "DELETE FROM ledger_transfers WHERE key = 'hold'",
        "UPDATE ledger_entries SET posted_delta = 0",
        "DELETE FROM ledger_entries",
    ],
)
def test_transfers_and_entries_refuse_update_and_delete(
    session: Session, journal: Journal, sql: str
) -> None:
    before = ledger_rows(session)
    with pytest.raises(DBAPIError, match="append-only"):
        session.execute(text(sql))
    session.rollback()
    assert ledger_rows(session) == before
    assert ledger.verify_ledger(session).ok


@pytest.mark.parametrize("which", ["unused", "fund"])
def test_accounts_are_never_deleted(session: Session, journal: Journal, which: str) -> None:
    with pytest.raises(DBAPIError, match="DELETE refused"):
        session.execute(
            text("DELETE FROM ledger_accounts WHERE id = :id"), {"id": getattr(journal, which)}
        )
    session.rollback()
    assert ledger.verify_ledger(session).accounts == 5


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("currency", "'EUR'"),
        ("kind", "'budget'"),
        ("key", "'renamed'"),
        ("program_id", "99"),
        ("partner_id", "5"),
        ("debits_must_not_exceed_credits", "true"),
        ("credits_must_not_exceed_debits", "true"),
        ("id", "999"),
        ("code", "'budget'"),
        ("created_at", "'2001-01-01 00:00:00.000000'"),
    ],
)
def test_an_accounts_fixed_fields_cannot_change(
    session: Session, journal: Journal, column: str, value: str
) -> None:
    with pytest.raises(DBAPIError, match="fixed fields"):
        session.execute(
            text(f"UPDATE ledger_accounts SET {column} = {value} WHERE id = :id"),
            {"id": journal.unused},
        )
    session.rollback()


def test_an_accounts_balances_and_closing_time_stay_writable_for_the_ledger(
    session: Session, journal: Journal
) -> None:
    session.execute(
        text(
            "UPDATE ledger_accounts SET closed_at = created_at, credits_posted = 5 WHERE id = :id"
        ),
        {"id": journal.unused},
    )
    assert (
        session.execute(
            text("SELECT credits_posted FROM ledger_accounts WHERE id = :id"),
            {"id": journal.unused},
        ).scalar_one()
        == 5
    )
    session.rollback()


@pytest.mark.parametrize(
    "sql",
    [
        "TRUNCATE ledger_entries",
        "TRUNCATE ledger_transfers, ledger_entries CASCADE",
        "TRUNCATE ledger_accounts CASCADE",
    ],
)
def test_postgres_refuses_truncate(session: Session, journal: Journal, sql: str) -> None:
    if not is_postgres(session):
        pytest.skip("TRUNCATE is PostgreSQL's; SQLite has none")
    before = ledger_rows(session)
    with pytest.raises(DBAPIError, match="refused"):
        session.execute(text(sql))
    session.rollback()
    assert ledger_rows(session) == before


@pytest.mark.parametrize(
    ("assignment", "constraint"),
    [
        ("debits_posted = credits_posted + 1", "debits_within_credits"),
        ("debits_pending = credits_posted - debits_posted + 1", "debits_within_credits"),
        ("credits_pending = -1", "balances_non_negative"),
    ],
)
def test_a_check_constraint_refuses_balances_beyond_the_limit(
    session: Session, journal: Journal, assignment: str, constraint: str
) -> None:
    with pytest.raises(IntegrityError, match=constraint):
        session.execute(
            text(f"UPDATE ledger_accounts SET {assignment} WHERE id = :id"), {"id": journal.fund}
        )
    session.rollback()


def test_a_credit_limited_account_refuses_credits_beyond_its_debits(
    session: Session, actor: Actor
) -> None:
    source = ledger.open_account(
        session,
        actor,
        key="s",
        name="S",
        kind="funding",
        currency="USD",
        credits_must_not_exceed_debits=True,
    )
    session.commit()
    with pytest.raises(IntegrityError, match="credits_within_debits"):
        session.execute(
            text("UPDATE ledger_accounts SET credits_posted = 1 WHERE id = :id"), {"id": source.id}
        )
    session.rollback()


TRANSFER_COLUMNS = [c.name for c in Transfer.__table__.columns]


def copy_transfer(session: Session, transfer_id: int, **changes: str) -> None:
    """INSERT a copy of a transfer under a new id and key, with some columns changed (SQL)."""
    values = {c: c for c in TRANSFER_COLUMNS}
    values.update({"id": "1000", "key": "'copy'"})
    values.update(changes)
    session.execute(
        text(
            f"INSERT INTO ledger_transfers ({', '.join(TRANSFER_COLUMNS)}) "
            f"SELECT {', '.join(values[c] for c in TRANSFER_COLUMNS)} FROM ledger_transfers "
            "WHERE id = :id"
        ),
        {"id": transfer_id},
    )


def test_the_copy_helper_inserts_a_valid_row(session: Session, journal: Journal) -> None:
    copy_transfer(session, journal.spend_id)
    assert session.execute(text("SELECT amount FROM ledger_transfers WHERE id = 1000")).one() == (
        2_500,
    )
    session.rollback()


@pytest.mark.parametrize(
    ("changes", "refusal"),
    [
        ({"amount": "0"}, "amount_positive"),
        ({"credit_account_id": "debit_account_id"}, "two_accounts"),
        ({"type": "'refund'", "pending_id": "id"}, "ck_ledger_transfers_type"),
        ({"pending_id": "id"}, "resolution_names_pending"),
        ({"expires_at": "created_at"}, "expiry_only_pending"),
        ({"hash": "'short'"}, "ck_ledger_transfers_hash"),
        ({"currency": "'EUR'"}, "(?i)foreign key"),
        ({"key": "key"}, "(?i)unique|duplicate"),
    ],
)
def test_the_database_refuses_malformed_transfers(
    session: Session, journal: Journal, changes: dict[str, str], refusal: str
) -> None:
    with pytest.raises(IntegrityError, match=refusal):
        copy_transfer(session, journal.spend_id, **changes)
    session.rollback()


def test_the_database_allows_one_resolution_and_one_reversal_per_transfer(
    session: Session, actor: Actor, journal: Journal
) -> None:
    voided = ledger.void(session, actor, journal.hold_id, key="void")
    reversal = ledger.reverse(session, actor, journal.spend_id, key="undo")
    session.commit()
    for original, column in ((voided.id, "pending_id"), (reversal.id, "reverses_id")):
        with pytest.raises(IntegrityError, match=column):
            copy_transfer(session, original)
        session.rollback()


# --- verify_ledger finds tampering --------------------------------------------------------------


def test_an_untouched_ledger_verifies(session: Session, journal: Journal) -> None:
    report = ledger.verify_ledger(session)
    assert report.ok and report.problems == []
    assert (report.transfers, report.accounts, report.head_id) == (4, 5, journal.hold_id)
    totals = report.totals["USD"]
    assert (totals.debits_posted, totals.credits_posted) == (112_500, 112_500)
    assert (totals.debits_pending, totals.credits_pending) == (1_000, 1_000)


def test_changing_a_transfers_amount_is_found_by_its_hash(
    session: Session, journal: Journal
) -> None:
    tamper(
        session,
        "ledger_transfers",
        "UPDATE ledger_transfers SET amount = 25 WHERE id = :id",
        id=journal.spend_id,
    )
    report = ledger.verify_ledger(session)
    assert not report.ok
    assert report.problems[0] == (
        f"transfer {journal.spend_id}: hash does not match its fields, its accounts and the chain"
    )
    # The guard is back after the bypass.
    with pytest.raises(DBAPIError, match="append-only"):
        session.execute(text("UPDATE ledger_transfers SET amount = 2500"))
    session.rollback()


def test_changing_a_transfers_memo_is_found_by_its_hash_alone(
    session: Session, journal: Journal
) -> None:
    tamper(
        session,
        "ledger_transfers",
        "UPDATE ledger_transfers SET memo = 'dinner' WHERE id = :id",
        id=journal.spend_id,
    )
    assert ledger.verify_ledger(session).problems == [
        f"transfer {journal.spend_id}: hash does not match its fields, its accounts and the chain"
    ]


def test_rehashing_a_changed_transfer_breaks_the_next_link(
    session: Session, journal: Journal
) -> None:
    rows = session.execute(select(Transfer.__table__).order_by(Transfer.id)).mappings().all()
    prev_hash = rows[journal.spend_id - 2]["hash"]
    forged = {**rows[journal.spend_id - 1], "memo": "dinner"}
    tamper(
        session,
        "ledger_transfers",
        "UPDATE ledger_transfers SET memo = 'dinner', hash = :hash WHERE id = :id",
        hash=rules.chain_hash(
            prev_hash,
            forged,
            *(
                rules.account_definition(
                    session.execute(select(Account.__table__).where(Account.id == forged[side]))
                    .mappings()
                    .one()
                )
                for side in ("debit_account_id", "credit_account_id")
            ),
        ),
        id=journal.spend_id,
    )
    assert ledger.verify_ledger(session).problems == [
        f"transfer {journal.hold_id}: hash does not match its fields, its accounts and the chain"
    ]


def test_rewriting_the_chain_head_is_found(session: Session, journal: Journal) -> None:
    session.execute(text("UPDATE ledger_chain SET last_hash = :h"), {"h": "f" * 64})
    session.commit()
    [problem] = ledger.verify_ledger(session).problems
    assert problem.startswith(f"chain head says transfer {journal.hold_id}")


def test_a_tampered_account_balance_is_named(session: Session, journal: Journal) -> None:
    session.execute(
        text("UPDATE ledger_accounts SET credits_posted = credits_posted + 1 WHERE id = :id"),
        {"id": journal.fund},
    )
    session.commit()
    report = ledger.verify_ledger(session)
    assert report.problems == [
        f"account {journal.fund} (fund): stored balances (1000, 2500, 0, 10001)"
        " but the journal gives (1000, 2500, 0, 10000)"
    ]


def test_a_tampered_daily_balance_is_named(session: Session, journal: Journal) -> None:
    session.execute(
        text("UPDATE ledger_account_days SET debits_posted = 0 WHERE account_id = :id"),
        {"id": journal.fund},
    )
    session.commit()
    [problem] = ledger.verify_ledger(session).problems
    assert problem.startswith(f"daily balance of account {journal.fund} on ")


def test_a_deleted_entry_is_reported_missing(session: Session, journal: Journal) -> None:
    tamper(
        session,
        "ledger_entries",
        "DELETE FROM ledger_entries WHERE transfer_id = :t AND account_id = :a",
        t=journal.spend_id,
        a=journal.claims,
    )
    report = ledger.verify_ledger(session)
    assert report.problems[0] == (
        f"transfer {journal.spend_id}: entry for account {journal.claims} is missing"
    )


def test_a_changed_entry_is_reported(session: Session, journal: Journal) -> None:
    tamper(
        session,
        "ledger_entries",
        "UPDATE ledger_entries SET credits_posted = 1 WHERE transfer_id = :t AND account_id = :a",
        t=journal.spend_id,
        a=journal.claims,
    )
    assert ledger.verify_ledger(session).problems == [
        f"transfer {journal.spend_id}: entry for account {journal.claims} differs from the"
        " recomputed balances"
    ]


def test_a_deleted_last_transfer_is_found(session: Session, journal: Journal) -> None:
    with triggers_off(session, "ledger_entries"), triggers_off(session, "ledger_transfers"):
        session.execute(
            text("DELETE FROM ledger_entries WHERE transfer_id = :t"), {"t": journal.hold_id}
        )
        session.execute(text("DELETE FROM ledger_transfers WHERE id = :t"), {"t": journal.hold_id})
    session.commit()
    problems = ledger.verify_ledger(session).problems
    assert problems[0].startswith(f"account {journal.fund} (fund): stored balances")
    assert any(p.startswith(f"chain head says transfer {journal.hold_id}") for p in problems)


# --- the verify-ledger command ------------------------------------------------------------------


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    app = mdfledger.create_app(
        {"database_url": database_url, "env": "test", "instance_path": tmp_path / "instance"}
    )
    yield app
    app.extensions["mdfledger.db"].kw["bind"].dispose()


def verify_cli(app: Flask, session: Session, *args: str) -> Any:
    session.close()  # SQLite: the command's session needs the write lock
    return app.test_cli_runner().invoke(args=["verify-ledger", *args])


def test_verify_ledger_command_passes_an_intact_ledger(
    app: Flask, session: Session, journal: Journal
) -> None:
    result = verify_cli(app, session)
    assert result.exit_code == 0, result.output
    assert "transfers: 4  accounts: 5" in result.stdout
    assert "USD: debits posted 112500 = credits posted 112500; pending 1000 = 1000" in result.stdout
    assert "ledger verified" in result.stdout
    assert "DISCREPANCY" not in result.output


def test_verify_ledger_command_fails_and_names_the_first_discrepancy(
    app: Flask, session: Session, journal: Journal
) -> None:
    tamper(
        session,
        "ledger_transfers",
        "UPDATE ledger_transfers SET amount = 25 WHERE id = :id",
        id=journal.spend_id,
    )
    result = verify_cli(app, session)
    assert result.exit_code == 1
    discrepancies = [ln for ln in result.stderr.splitlines() if ln.startswith("DISCREPANCY: ")]
    assert discrepancies[0] == (
        f"DISCREPANCY: transfer {journal.spend_id}: hash does not match its fields,"
        " its accounts and the chain"
    )
    assert "ledger verified" not in result.output


def test_verify_ledger_command_prints_parseable_json(
    app: Flask, session: Session, journal: Journal
) -> None:
    result = verify_cli(app, session, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["ok"], report["transfers"], report["accounts"]) == (True, 4, 5)
    assert report["head_id"] == journal.hold_id
    assert report["totals"]["USD"] == {
        "debits_pending": 1_000,
        "debits_posted": 112_500,
        "credits_pending": 1_000,
        "credits_posted": 112_500,
    }
    assert report["problems"] == []


def test_verify_ledger_command_json_reports_problems_and_exits_1(
    app: Flask, session: Session, journal: Journal
) -> None:
    tamper(
        session,
        "ledger_transfers",
        "UPDATE ledger_transfers SET memo = 'dinner' WHERE id = :id",
        id=journal.spend_id,
    )
    result = verify_cli(app, session, "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert report["problems"] == [
        f"transfer {journal.spend_id}: hash does not match its fields, its accounts and the chain"
    ]


# --- account definitions and the chain head's time are covered too ------------------------------


@pytest.mark.parametrize(
    ("sql", "first_transfer"),
    [
        # Switch the fund's limit off, then it could be overdrawn unnoticed.
        ("UPDATE ledger_accounts SET debits_must_not_exceed_credits = false WHERE key = 'fund'",
         "allocate"),
        ("UPDATE ledger_accounts SET partner_id = 99 WHERE key = 'fund'", "allocate"),
        ("UPDATE ledger_accounts SET kind = 'settled' WHERE key = 'claims'", "spend"),
    ],
)  # fmt: skip
def test_verify_names_the_first_transfer_of_a_redefined_account(
    session: Session, journal: Journal, sql: str, first_transfer: str
) -> None:
    tamper(session, "ledger_accounts", sql)
    first_id = session.scalar(select(Transfer.id).where(Transfer.key == first_transfer))
    problems = ledger.verify_ledger(session).problems
    assert problems[0] == (
        f"transfer {first_id}: hash does not match its fields, its accounts and the chain"
    )


def test_verify_notices_a_chain_head_moved_in_time(session: Session, journal: Journal) -> None:
    session.execute(text("UPDATE ledger_chain SET last_created_at = '2099-01-01 00:00:00.000000'"))
    session.commit()
    problems = ledger.verify_ledger(session).problems
    assert len(problems) == 1
    assert problems[0].startswith(f"chain head says transfer {journal.hold_id} at 2099-01-01")


# --- the integrity report auditors keep ---------------------------------------------------------


def test_the_integrity_report_states_heads_counts_totals_and_the_result(
    app: Flask, session: Session, journal: Journal
) -> None:
    head = session.execute(text("SELECT hash FROM ledger_transfers ORDER BY id DESC")).first()[0]
    result = verify_cli(app, session, "--report")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "mdfledger integrity report"
    assert "  transfers: 4" in lines and "  accounts: 5" in lines
    assert f"  chain head: transfer {journal.hold_id}, hash {head}" in lines
    assert "  USD: debits posted 1125.00 = credits posted 1125.00; pending 10.00 = 10.00" in lines
    assert any(line.startswith("  chain head: entry ") for line in lines)  # the audit log's
    assert lines[-1] == "result: INTACT"
    as_json = json.loads(verify_cli(app, session, "--report", "--json").stdout)
    assert as_json["ok"] and as_json["ledger"]["head_hash"] == head


def test_a_later_report_shows_an_altered_journal(
    app: Flask, session: Session, journal: Journal
) -> None:
    tamper(
        session,
        "ledger_transfers",
        "UPDATE ledger_transfers SET amount = 25 WHERE id = :id",
        id=journal.spend_id,
    )
    result = verify_cli(app, session, "--report")
    assert result.exit_code == 1
    assert "  recomputation: every balance and hash recomputed from the transfers: " in (
        result.stdout
    )
    assert f"    DISCREPANCY: transfer {journal.spend_id}: hash does not match" in result.stdout
    assert result.stdout.splitlines()[-1] == "result: DISCREPANCIES FOUND"
