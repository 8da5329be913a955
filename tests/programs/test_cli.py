"""The `mdfledger` commands for programs: imports, period-end expiry, the demo, the scheduler."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from mdfledger import create_app, demo, jobs, ledger, programs
from mdfledger.actor import Actor
from mdfledger.ledger.models import Transfer


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Flask:
    return create_app({"database_url": database_url, "env": "test", "instance_path": tmp_path})


@pytest.fixture
def seeded(session_factory: sessionmaker[Session], actor: Actor) -> dict[str, int]:
    with session_factory() as session:
        mdf = programs.create_program(
            session, actor, code="MDF", name="MDF", kind="mdf", currency="USD"
        )
        coop = programs.create_program(
            session, actor, code="COOP", name="Co-op", kind="coop", currency="USD"
        )
        programs.set_accrual_rate(session, actor, coop.id, rate_bp=250)
        for code in ("ACME", "BOLT"):
            programs.create_partner(
                session, actor, code=code, name=code.title(), type="reseller", tier="gold",
                region="NA",
            )  # fmt: skip
        programs.fund_budget(session, actor, mdf.id, 100_000, reason="budget")
        session.commit()
        return {"mdf": mdf.id, "coop": coop.id}


def transfers(session_factory: sessionmaker[Session]) -> int:
    with session_factory() as session:
        return session.scalar(select(func.count()).select_from(Transfer))


def test_importing_allocations_prints_a_summary_and_refuses_the_same_file_twice(
    app: Flask, seeded: dict[str, int], session_factory, tmp_path: Path
) -> None:
    path = tmp_path / "alloc.csv"
    path.write_text("Partner Code;Amount\nACME;100.00\nBOLT;250.50\n")
    runner = app.test_cli_runner()
    result = runner.invoke(args=["import", "allocations", "MDF", str(path)])
    assert result.exit_code == 0, result.output
    assert "applied 2, skipped (imported before) 0, moved 350.50 USD" in result.output
    again = runner.invoke(args=["import", "allocations", "MDF", str(path)])
    assert again.exit_code == 1
    assert "already imported as import #1" in again.output


def test_a_bad_file_lists_every_problem_and_changes_nothing(
    app: Flask, seeded: dict[str, int], session_factory, tmp_path: Path
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("partner,amount\nACME,100.00\nNOPE,5\nBOLT,1,234.00\nBOLT,-3\n")
    before = transfers(session_factory)
    result = app.test_cli_runner().invoke(args=["import", "allocations", "MDF", str(path)])
    assert result.exit_code == 1
    assert "line 3 [partner]: unknown partner 'NOPE'" in result.output
    assert "line 4: row has 3 cells; the header has 2" in result.output
    assert "line 5 [amount]: amount must be more than zero, not -3" in result.output
    assert "nothing was imported" in result.output
    assert transfers(session_factory) == before
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(programs.Import)) == 0


def test_purchases_accrue_once_however_often_the_file_comes_back(
    app: Flask, seeded: dict[str, int], session_factory, tmp_path: Path
) -> None:
    today = datetime.now(UTC).date().isoformat()  # the program runs on UTC
    path = tmp_path / "sales.csv"
    path.write_text(f"partner,invoice,date,amount\nACME,INV-1,{today},1000.00\n")
    runner = app.test_cli_runner()
    first = runner.invoke(args=["import", "purchases", "COOP", str(path)])
    assert "applied 1, skipped (imported before) 0, moved 25.00 USD" in first.output
    second = runner.invoke(args=["import", "purchases", "COOP", str(path)])
    assert "applied 0, skipped (imported before) 1, moved 0.00 USD" in second.output
    unknown = runner.invoke(args=["import", "purchases", "NOPE", str(path)])
    assert unknown.exit_code == 1
    assert "program 'NOPE' not found" in unknown.output


def test_funds_expire_forfeits_what_is_past_its_last_day(
    app: Flask, seeded: dict[str, int], session_factory: sessionmaker[Session], actor: Actor
) -> None:
    with session_factory() as session:
        programs.allocate(
            session, actor, seeded["mdf"], 1, 40_000, reason="Q1",
            now=datetime(2025, 2, 1, tzinfo=UTC),
        )  # fmt: skip
        session.commit()
    result = app.test_cli_runner().invoke(args=["funds", "expire"])
    assert result.exit_code == 0, result.output
    assert "forfeited 400.00 USD: ACME MDF FY2025 Q1" in result.output
    again = app.test_cli_runner().invoke(args=["funds", "expire"])
    assert "forfeited 0 fund(s)" in again.output


def test_the_scheduler_runs_the_period_end_job_with_its_clock(
    seeded: dict[str, int], session_factory: sessionmaker[Session], actor: Actor
) -> None:
    with session_factory() as session:
        programs.allocate(
            session, actor, seeded["mdf"], 1, 1_000, reason="Q3",
            now=datetime(2026, 8, 1, tzinfo=UTC),
        )  # fmt: skip
        session.commit()
    clock = [datetime(2026, 9, 30, 12, tzinfo=UTC)]
    scheduler = jobs.Scheduler(session_factory, clock=lambda: clock[0])
    assert scheduler.run_once().funds == []
    clock[0] = datetime(2026, 10, 1, 0, 1, tzinfo=UTC)
    assert [f.amount for f in scheduler.run_once().funds] == [1_000]
    assert scheduler.runs == 2


def test_the_demo_seeds_an_empty_database_once(
    app: Flask, session_factory: sessionmaker[Session]
) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(args=["demo"])
    assert result.exit_code == 0, result.output
    assert "with 20 partners" in result.output
    lines = [line.split() for line in result.output.splitlines() if "@demo.mdfledger.test" in line]
    assert [line[0] for line in lines] == ["admin", "finance", "finance", "auditor", "partner"]
    with session_factory() as session:
        assert ledger.verify_ledger(session).ok
        assert session.scalar(select(func.count()).select_from(programs.Partner)) == 20
        kinds = session.scalars(select(programs.Program.kind).order_by(programs.Program.id)).all()
        assert kinds == ["mdf", "coop"]
        partner_user = session.scalar(
            select(demo.auth.User).where(demo.auth.User.role == "partner")
        )
        password = next(line[2] for line in lines if line[0] == "partner")
        assert demo.auth.authenticate(session, partner_user.email, password).id == partner_user.id
    refused = runner.invoke(args=["demo"])
    assert refused.exit_code == 1
    assert "already has programs" in refused.output
    reset = runner.invoke(args=["demo", "--reset-passwords"])
    assert reset.exit_code == 0
    assert reset.output.count("@demo.mdfledger.test") == 5
