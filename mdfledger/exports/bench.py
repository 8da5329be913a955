"""`mdfledger bench exports`: how fast statements and the journal are written, per format.

A ledger like the ledger benchmark's (one program, partner funds, claims; mdfledger.ledger.bench)
is filled to `transfers`; then the budget account's statement for the year is written as CSV,
XLSX and PDF through the export registry's writer (the code pages, API, CLI and export jobs
run), and the whole journal for hledger. Each file goes to a temporary file; the CSV is written
a second time under tracemalloc for its peak memory (not timed: tracemalloc slows Python).
"""

from __future__ import annotations

import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from mdfledger.actor import Actor
from mdfledger.db import make_engine, make_session_factory
from mdfledger.exports import kinds
from mdfledger.ledger import bench as ledger_bench

AUDITOR = Actor("user", "bench", "auditor")
PARTNERS = 50


@dataclass(frozen=True)
class Written:
    what: str  # "statement csv", "journal hledger"
    rows: int
    seconds: float
    bytes: int

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class Result:
    backend: str
    transfers: int
    written: list[Written]
    csv_peak_mib: float

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for entry, written in zip(data["written"], self.written, strict=True):
            entry["rows_per_second"] = written.rows_per_second
        return data


def run(
    database_url: str,
    *,
    transfers: int = 100_000,
    progress: Callable[[str], None] | None = None,
) -> Result:
    say = progress or (lambda _message: None)
    engine = make_engine(database_url)
    try:
        work = ledger_bench._Workload(make_session_factory(engine), PARTNERS, transfers, seed=1)
        work.write(work.fund(), work.now())
        say(f"{engine.dialect.name}: filling the ledger to {transfers:,} transfers")
        work.batches(transfers - work.count)
        readers = make_session_factory(engine, read_only=True)
        start, end = ledger_bench.START.date(), (ledger_bench.START + ledger_bench.SPAN).date()
        statement = kinds.kind("statement")
        with readers() as session:
            params = statement.check(
                session, AUDITOR, {"account_id": work.budget, "start": start, "end": end}
            )
        jobs = [(statement, fmt, params) for fmt in statement.formats]
        jobs.append((kinds.kind("journal"), "hledger", {}))
        written = []
        for kind, fmt, asked in jobs:
            say(f"{engine.dialect.name}: {kind.name} as {fmt}")
            written.append(_write(readers, kind, fmt, asked))
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            _write(readers, statement, "csv", params)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    finally:
        engine.dispose()
    return Result(engine.dialect.name, transfers, written, peak / 2**20)


def _write(readers: Any, kind: kinds.ExportKind, fmt: str, params: dict[str, Any]) -> Written:
    rows = [0]

    def progress(done: int, _total: int | None) -> None:
        rows[0] = done

    with tempfile.TemporaryFile() as out, readers() as session:
        started = time.perf_counter()
        kind.write(session, AUDITOR, params, fmt, out, progress)
        seconds = time.perf_counter() - started
        size = out.tell()
    return Written(f"{kind.name} {fmt}", rows[0], seconds, size)


def format_result(r: Result) -> str:
    lines = [f"{r.backend}: a ledger of {r.transfers:,} transfers"]
    for w in r.written:
        lines.append(
            f"  {w.what:<18} {w.rows:>9,} rows  {w.seconds:7.2f} s  {w.rows_per_second:>9,.0f}"
            f" rows/s  {w.bytes / 2**20:7.1f} MiB"
        )
    lines.append(f"  statement csv peak memory (tracemalloc): {r.csv_peak_mib:.2f} MiB")
    return "\n".join(lines)
