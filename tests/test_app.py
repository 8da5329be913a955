"""The app shell: settings, the factory, pages, JSON errors and the `mdfledger` command."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mdfledger import create_app, jobs, ledger
from mdfledger.config import DEFAULT_SECRET_KEY, ConfigError, Settings
from mdfledger.errors import NotFound


def _app(database_url: str, tmp_path: Path):
    return create_app({"database_url": database_url, "env": "test", "instance_path": tmp_path})


def test_defaults_need_no_servers(tmp_path: Path) -> None:
    settings = Settings.from_env({"MDFLEDGER_INSTANCE_PATH": str(tmp_path)})
    assert settings.database_url == f"sqlite:///{tmp_path / 'mdfledger.sqlite3'}"
    assert settings.env == "development"


def test_environment_overrides_defaults() -> None:
    settings = Settings.from_env(
        {"MDFLEDGER_DATABASE_URL": "postgresql+psycopg://u@h/db", "MDFLEDGER_ENV": "test"}
    )
    assert settings.database_url == "postgresql+psycopg://u@h/db"
    assert settings.env == "test"


@pytest.mark.parametrize("secret", [DEFAULT_SECRET_KEY, "short-but-not-default"])
def test_production_refuses_weak_secret_keys(secret: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="MDFLEDGER_SECRET_KEY"):
        create_app({"env": "production", "secret_key": secret, "instance_path": tmp_path})


def test_production_starts_with_a_strong_secret(tmp_path: Path) -> None:
    app = create_app(
        {
            "env": "production",
            "secret_key": "x" * 48,
            "instance_path": tmp_path,
            "database_url": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        }
    )
    assert app.config["SECRET_KEY"] == "x" * 48


def test_unknown_environment_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="MDFLEDGER_ENV"):
        create_app({"env": "staging", "instance_path": tmp_path})


def test_health_shows_the_ledger_and_the_front_page_asks_to_sign_in(
    database_url: str, tmp_path: Path, actor
) -> None:
    app = _app(database_url, tmp_path)
    client = app.test_client()
    health = client.get("/healthz")
    assert health.status_code == 200
    assert health.json["status"] == "ok"
    assert health.json["ledger"] == {"transfers": 0, "head_hash": "0" * 64, "accounts": 0}
    page = client.get("/")  # the front page sends anonymous visitors to sign in
    assert page.status_code == 302
    assert page.headers["Location"] == "/login"


def test_domain_errors_become_json_with_a_stable_code(tmp_path: Path) -> None:
    app = create_app(
        {"env": "test", "instance_path": tmp_path, "database_url": f"sqlite:///{tmp_path}/x.db"}
    )

    @app.get("/boom")
    def boom():
        raise NotFound("claim 7 does not exist", claim_id=7)

    response = app.test_client().get("/boom")
    assert response.status_code == 404
    assert response.json == {
        "error": {
            "code": "not_found",
            "message": "claim 7 does not exist",
            "details": {"claim_id": 7},
            "request_id": response.headers["X-Request-Id"],
        }
    }


def test_cli_migrates_a_new_database_and_checks_the_schema(tmp_path: Path) -> None:
    app = _app(f"sqlite:///{tmp_path / 'fresh.sqlite3'}", tmp_path)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["db", "upgrade"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(args=["db", "check"])
    assert result.exit_code == 0
    assert "agree" in result.output
    result = runner.invoke(args=["verify-ledger"])
    assert result.exit_code == 0
    assert "ledger verified" in result.output


def _reservation(session_factory, actor, expires_at: datetime) -> tuple[int, int]:
    with session_factory() as session:
        budget = ledger.open_account(
            session, actor, key="b", name="Budget", kind="budget", currency="USD"
        )
        fund = ledger.open_account(
            session, actor, key="f", name="Fund", kind="partner_fund", currency="USD"
        )
        held = ledger.reserve(
            session,
            actor,
            key="hold-1",
            debit_account_id=budget.id,
            credit_account_id=fund.id,
            amount=500,
            code="reservation",
            expires_at=expires_at,
        )
        session.commit()
        return fund.id, held.id


def test_expiry_job_sweeps_only_overdue_reservations_once(session_factory, actor) -> None:
    fund_id, held_id = _reservation(session_factory, actor, datetime(2030, 1, 1, tzinfo=UTC))
    before = datetime(2029, 12, 31, 23, tzinfo=UTC)
    after = datetime(2030, 1, 1, 0, 0, 1, tzinfo=UTC)
    assert jobs.expire_pending_transfers(session_factory, now=before) == 0
    assert jobs.expire_pending_transfers(session_factory, now=after) == 1
    assert jobs.expire_pending_transfers(session_factory, now=after) == 0
    with session_factory() as session:
        assert ledger.balance(session, fund_id).credits_pending == 0
        with pytest.raises(ledger.PendingNotOpen):
            ledger.post(session, actor, held_id, key="too-late", now=before)


def test_cli_expires_reservations_past_their_deadline(
    database_url: str, tmp_path: Path, session_factory, actor
) -> None:
    fund_id, _ = _reservation(session_factory, actor, datetime.now(UTC) + timedelta(seconds=2))
    runner = _app(database_url, tmp_path).test_cli_runner()
    early = runner.invoke(args=["ledger", "expire-pending"])
    assert early.exit_code == 0, early.output
    assert "expired 0 pending" in early.output
    time.sleep(2.1)  # the command has no clock to inject: it must use the real one
    late = runner.invoke(args=["ledger", "expire-pending"])
    assert "expired 1 pending" in late.output
    with session_factory() as session:
        assert ledger.balance(session, fund_id).credits_pending == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_starts_the_web_app_on_loopback(tmp_path: Path) -> None:
    """What `make run` does: migrate, seed the demo once, then serve on 127.0.0.1."""
    env = {
        **os.environ,
        "MDFLEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'run.sqlite3'}",
        "MDFLEDGER_INSTANCE_PATH": str(tmp_path),
    }
    command = [sys.executable, "-c", "from mdfledger.cli import main; main()"]
    subprocess.run([*command, "db", "upgrade"], env=env, check=True, timeout=60)
    seeded = subprocess.run(
        [*command, "demo", "--if-empty"], env=env, check=True, timeout=120, capture_output=True
    ).stdout.decode()
    assert [line.split()[0] for line in seeded.splitlines() if "@demo.mdfledger.test" in line] == [
        "admin", "finance", "finance", "auditor", "partner"
    ]  # fmt: skip
    again = subprocess.run(
        [*command, "demo", "--if-empty"], env=env, check=True, timeout=60, capture_output=True
    ).stdout.decode()
    assert "already has data" in again
    port = _free_port()
    server = subprocess.Popen(
        [*command, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    assert r.status == 200
                    assert json.load(r)["ledger"]["transfers"] > 200  # the demo's
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_the_command_reports_an_unmigrated_database_in_one_line(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "MDFLEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.sqlite3'}",
        "MDFLEDGER_INSTANCE_PATH": str(tmp_path),
    }
    command = [sys.executable, "-c", "from mdfledger.cli import main; main()", "verify-ledger"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "Error: database error: no such table" in result.stderr
    assert "mdfledger db upgrade" in result.stderr
