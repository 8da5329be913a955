"""The database keeps the audit log append-only, and verify_audit (`mdfledger audit verify`)
finds what got past it. Concurrent writers keep one unbroken chain. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

import mdfledger
from mdfledger import audit, ledger, programs
from mdfledger.actor import Actor
from mdfledger.audit import AuditEntry
from tests.audit.conftest import NOW, Book, last_id
from tests.ledger.test_integrity import is_postgres, tamper, triggers_off


@pytest.fixture
def log(session: Session, actor: Actor, book: Book) -> list[int]:
    """Three more committed entries after the book's; their ids."""
    mark = last_id(session)
    for region in ("EMEA", "APAC", "LATAM"):
        programs.update_partner(session, actor, book.acme.id, region=region)
    session.commit()
    ids = list(session.scalars(select(AuditEntry.id).where(AuditEntry.id > mark)))
    assert len(ids) == 3
    return ids


def rows(session: Session) -> list[Any]:
    return session.execute(text("SELECT * FROM audit_log ORDER BY id")).all()


# --- the database refuses changes ---------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_log SET summary = 'nothing happened'",
        "UPDATE audit_log SET request_id = 'x' WHERE id = 1",
        "UPDATE audit_log SET hash = hash",
        "DELETE FROM audit_log WHERE id = (SELECT max(id) FROM audit_log)",
        "DELETE FROM audit_log",
    ],
)
def test_entries_refuse_update_and_delete(session: Session, log: list[int], sql: str) -> None:
    before = rows(session)
    with pytest.raises(DBAPIError, match="append-only"):
        session.execute(text(sql))
    session.rollback()
    assert rows(session) == before
    assert audit.verify_audit(session).ok


@pytest.mark.parametrize("sql", ["TRUNCATE audit_log", "TRUNCATE audit_log, audit_chain"])
def test_postgres_refuses_truncate(session: Session, log: list[int], sql: str) -> None:
    if not is_postgres(session):
        pytest.skip("TRUNCATE is PostgreSQL's; SQLite has none")
    before = rows(session)
    with pytest.raises(DBAPIError, match="refused"):
        session.execute(text(sql))
    session.rollback()
    assert rows(session) == before


# --- verify_audit finds tampering ---------------------------------------------------------------


def test_an_untouched_log_verifies(session: Session, log: list[int]) -> None:
    report = audit.verify_audit(session)
    assert report.ok and report.problems == []
    assert (report.entries, report.head_id) == (log[-1], log[-1])
    head = session.get(audit.AuditHead, 1)
    assert head is not None and report.head_hash == head.last_hash


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("summary", "'Changed partner ACME: nothing'"),
        ("actor", "'user:someone-else'"),
        ("after", '\'{"region":"NA"}\''),
        ("subject_partner_id", "NULL"),
        ("at", "'2026-01-01 00:00:00.000000'"),
    ],
)
def test_a_changed_entry_is_found_by_its_hash(
    session: Session, log: list[int], column: str, value: str
) -> None:
    tamper(session, "audit_log", f"UPDATE audit_log SET {column} = {value} WHERE id = {log[1]}")
    problems = audit.verify_audit(session).problems
    assert problems[0] == f"audit entry {log[1]}: hash does not match its fields and the chain"
    # The guard is back after the bypass.
    with pytest.raises(DBAPIError, match="append-only"):
        session.execute(text("UPDATE audit_log SET summary = 'again'"))
    session.rollback()


def test_rehashing_a_changed_entry_breaks_the_next_link(session: Session, log: list[int]) -> None:
    table = AuditEntry.__table__
    previous = session.execute(select(table).where(table.c.id == log[0])).mappings().one()
    forged = {**session.execute(select(table).where(table.c.id == log[1])).mappings().one()}
    forged["summary"] = "Changed partner ACME: nothing"
    tamper(
        session,
        "audit_log",
        "UPDATE audit_log SET summary = :summary, hash = :hash WHERE id = :id",
        summary=forged["summary"],
        hash=audit.service.entry_hash(previous["hash"], forged),
        id=log[1],
    )
    assert audit.verify_audit(session).problems == [
        f"audit entry {log[2]}: hash does not match its fields and the chain"
    ]


def test_a_deleted_entry_in_the_middle_is_missing(session: Session, log: list[int]) -> None:
    tamper(session, "audit_log", f"DELETE FROM audit_log WHERE id = {log[1]}")
    assert audit.verify_audit(session).problems == [
        f"audit entry {log[1]} is missing",
        f"audit entry {log[2]}: hash does not match its fields and the chain",
    ]


def test_a_deleted_last_entry_is_found_by_the_head(session: Session, log: list[int]) -> None:
    tamper(session, "audit_log", f"DELETE FROM audit_log WHERE id = {log[2]}")
    [problem] = audit.verify_audit(session).problems
    assert problem.startswith(f"audit chain head says entry {log[2]} ")
    assert f"but the log ends at entry {log[1]} " in problem


def test_a_rewritten_head_is_found(session: Session, log: list[int]) -> None:
    session.execute(text("UPDATE audit_chain SET last_hash = :h"), {"h": "f" * 64})
    session.commit()
    [problem] = audit.verify_audit(session).problems
    assert problem.startswith(f"audit chain head says entry {log[2]} {'f' * 64}")


def test_verify_stops_after_enough_problems(session: Session, log: list[int]) -> None:
    tamper(session, "audit_log", "UPDATE audit_log SET summary = 'x' WHERE id = 1")
    with triggers_off(session, "audit_log"):
        session.execute(text("UPDATE audit_log SET summary = 'y'"))
    session.commit()
    report = audit.verify_audit(session, max_problems=2)
    assert report.problems == [
        "audit entry 1: hash does not match its fields and the chain",
        "audit entry 2: hash does not match its fields and the chain",
    ]


# --- the audit verify command -------------------------------------------------------------------


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    app = mdfledger.create_app(
        {"database_url": database_url, "env": "test", "instance_path": tmp_path / "instance"}
    )
    yield app
    app.extensions["mdfledger.db"].kw["bind"].dispose()


def verify_cli(app: Flask, session: Session, *args: str) -> Any:
    session.close()  # SQLite: let the command read without waiting on this session
    return app.test_cli_runner().invoke(args=["audit", "verify", *args])


def test_audit_verify_passes_an_intact_log(app: Flask, session: Session, log: list[int]) -> None:
    result = verify_cli(app, session)
    assert result.exit_code == 0, result.output
    assert f"audit entries: {log[-1]}" in result.stdout
    assert "audit log verified: chain intact" in result.stdout
    assert "DISCREPANCY" not in result.output


def test_audit_verify_fails_naming_the_first_bad_entry(
    app: Flask, session: Session, log: list[int]
) -> None:
    tamper(session, "audit_log", f"UPDATE audit_log SET summary = 'x' WHERE id = {log[0]}")
    result = verify_cli(app, session)
    assert result.exit_code == 1
    discrepancies = [ln for ln in result.stderr.splitlines() if ln.startswith("DISCREPANCY: ")]
    assert discrepancies[0] == (
        f"DISCREPANCY: audit entry {log[0]}: hash does not match its fields and the chain"
    )
    assert "verified" not in result.output


def test_audit_verify_prints_json(app: Flask, session: Session, log: list[int]) -> None:
    result = verify_cli(app, session, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["ok"], report["entries"], report["head_id"]) == (True, log[-1], log[-1])
    tamper(session, "audit_log", f"DELETE FROM audit_log WHERE id = {log[-1]}")
    result = verify_cli(app, session, "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["ok"] is False


# --- concurrent writers -------------------------------------------------------------------------


def test_concurrent_writers_keep_one_chain_and_never_deadlock_with_the_ledger(
    session_factory: sessionmaker[Session], session: Session, actor: Actor, book: Book
) -> None:
    """Half the threads record before they move money, half after: one lock order (ledger head,
    then audit head) keeps them from deadlocking, and the chain has no gap or fork."""
    for partner in (book.acme, book.bolt):  # open both funds first: threads only move money
        programs.allocate(session, actor, book.mdf.id, partner.id, 100, reason="r", now=NOW)
    session.commit()
    mark = last_id(session)
    session.close()
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def work(n: int) -> None:
        try:
            barrier.wait(timeout=30)
            for i in range(5):
                with session_factory() as s:
                    if n % 2:
                        programs.update_partner(s, actor, book.acme.id, region=f"R{n}-{i}")
                        programs.allocate(
                            s, actor, book.mdf.id, book.bolt.id, 100, reason="r", now=NOW
                        )
                    else:
                        programs.allocate(
                            s, actor, book.mdf.id, book.acme.id, 100, reason="r", now=NOW
                        )
                        programs.update_partner(s, actor, book.bolt.id, region=f"R{n}-{i}")
                    s.commit()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    with session_factory() as s:
        report = audit.verify_audit(s)
        assert report.ok, report.problems
        assert report.head_id == mark + 6 * 5 * 2
        assert ledger.verify_ledger(s).ok
