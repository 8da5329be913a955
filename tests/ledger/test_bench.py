"""The ledger benchmark stays runnable: a tiny run on SQLite returns sane figures."""

from __future__ import annotations

from pathlib import Path

from mdfledger import create_app
from mdfledger.ledger import bench


def test_bench_runs_on_a_tiny_sqlite_ledger() -> None:
    messages: list[str] = []
    with bench.sqlite_database() as url:
        result = bench.run(url, transfers=3000, single=100, reads=100, progress=messages.append)

    assert result.backend == "sqlite"
    assert result.transfers == 3000
    assert result.accounts == 1003  # funding, budget, claims payable, 1,000 partner funds
    assert result.batched.transfers + result.single.transfers + result.fill.transfers == 3000 - 1001
    for rate in (result.batched, result.single):
        assert rate.transfers > 0 and rate.per_second > 0
    for latency in (result.balance, result.as_of_time, result.as_of_date):
        assert latency.reads == 100
        assert 0 < latency.p50_ms <= latency.p99_ms
    assert result.export.lines > 1000  # the budget: funding, 1,000 allocations, then some
    assert result.export.lines_per_second > 0 and result.export.peak_mib > 0
    assert messages
    assert "sqlite" in bench.format_result(result)
    assert result.as_dict()["targets"]["batched_per_second"] == bench.TARGET_BATCHED["sqlite"]


def test_bench_command_is_wired(tmp_path: Path) -> None:
    app = create_app({"env": "test", "instance_path": tmp_path})
    runner = app.test_cli_runner()
    result = runner.invoke(args=["bench", "ledger", "--help"])
    assert result.exit_code == 0, result.output
    assert "--postgres-url" in result.output
    result = runner.invoke(args=["bench", "ledger", "--no-sqlite", "--postgres-url", ""])
    assert result.exit_code == 2
    assert "nothing to bench" in result.output
