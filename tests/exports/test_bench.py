"""The exports benchmark stays runnable and writes what it claims: a tiny run writes the
budget's statement in every format and the whole journal, each a real file with every row.
Never timing. SQLite and PostgreSQL."""

from __future__ import annotations

from mdfledger.exports import bench


def test_a_tiny_run_writes_every_format_with_every_row(database_url: str, backend: str) -> None:
    messages: list[str] = []
    result = bench.run(database_url, transfers=3000, progress=messages.append)
    assert result.backend == backend and result.transfers == 3000
    written = {w.what: w for w in result.written}
    assert list(written) == ["statement csv", "statement xlsx", "statement pdf", "journal hledger"]
    statement_rows = {written[f"statement {fmt}"].rows for fmt in ("csv", "xlsx", "pdf")}
    assert len(statement_rows) == 1  # each format holds the same lines
    assert 0 < statement_rows.pop() < 3000  # the budget's share of the transfers
    assert written["journal hledger"].rows == 3000
    assert all(w.bytes > 0 for w in result.written)
    assert result.csv_peak_mib > 0
    table = bench.format_result(result)
    assert "statement pdf" in table and "rows/s" in table
    assert any("filling the ledger" in m for m in messages)
