"""The ledger benchmark: write throughput, read latency and statement export, on one database.

Pure measuring code: it takes a migrated, empty database URL (`sqlite_database` and
`postgres_database` make one) and returns figures; the `mdfledger bench ledger` command prints
them. Everything goes through the ledger's public API with limits, history and the hash chain on,
as in production. Time is simulated: transfers are spread evenly over `SPAN`, so as-of reads
and statements see a year of history rather than one busy minute.
"""

from __future__ import annotations

import csv
import math
import random
import sqlite3
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from operator import attrgetter
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, make_url, text
from sqlalchemy.orm import Session, sessionmaker

from mdfledger import ledger, migrate
from mdfledger.actor import Actor
from mdfledger.db import make_engine, make_session_factory
from mdfledger.ledger.models import AccountKind

BATCH = 1000  # transfers per execute call (and per commit) in the batched phases
START = datetime(2024, 1, 1, tzinfo=UTC)
SPAN = timedelta(days=365)
POSTGRES_DATABASE = "mdfledger_bench"
ALLOCATION_SHARE = 0.2  # the rest of the workload is claims: partner fund -> claims payable

# What the ledger should reach (docs/benchmarks.md).
TARGET_BATCHED = {"sqlite": 20_000.0, "postgresql": 10_000.0}  # transfers/s, at least
TARGET_BALANCE_P99_MS = 1.0  # at 1,000,000 transfers, at most

Progress = Callable[[str], None]


@dataclass
class Latency:
    reads: int
    p50_ms: float
    p99_ms: float

    @classmethod
    def of(cls, seconds: list[float]) -> Latency:
        ordered = sorted(seconds)
        return cls(
            len(ordered),
            ordered[len(ordered) // 2] * 1000,
            ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)] * 1000,
        )


@dataclass
class Rate:
    transfers: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.transfers / self.seconds if self.seconds else 0.0


@dataclass
class Export:
    account: str
    lines: int
    seconds: float
    peak_mib: float  # tracemalloc peak during a second, traced run of the same export

    @property
    def lines_per_second(self) -> float:
        return self.lines / self.seconds if self.seconds else 0.0


@dataclass
class Result:
    backend: str
    server: str
    transfers: int
    accounts: int
    batched: Rate
    single: Rate
    fill: Rate
    balance: Latency
    as_of_time: Latency
    as_of_date: Latency
    export: Export
    elapsed_s: float
    phases_s: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for name in ("batched", "single", "fill"):
            data[name]["per_second"] = getattr(self, name).per_second
        data["export"]["lines_per_second"] = self.export.lines_per_second
        data["targets"] = {
            "batched_per_second": TARGET_BATCHED.get(self.backend),
            "balance_p99_ms": TARGET_BALANCE_P99_MS,
        }
        return data


# --- databases --------------------------------------------------------------------------------


@contextmanager
def sqlite_database() -> Iterator[str]:
    """A fresh, migrated SQLite file in a temporary directory, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="mdfledger-bench-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
        migrate.upgrade(url)
        yield url


@contextmanager
def postgres_database(admin_url: str, name: str = POSTGRES_DATABASE) -> Iterator[str]:
    """A fresh, migrated database `name` on the server of `admin_url`, dropped afterwards."""
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    drop = text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    try:
        with admin.connect() as conn:
            conn.execute(drop)
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        migrate.upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(drop)
        admin.dispose()


# --- the benchmark ----------------------------------------------------------------------------


class _Workload:
    """One program: a funding source, a budget funding `partners` partner funds, and one
    claims-payable account. Budget and partner funds carry debits_must_not_exceed_credits."""

    def __init__(self, factory: sessionmaker[Session], partners: int, total: int, seed: int):
        self.factory, self.total = factory, total
        self.random = random.Random(seed)
        self.actor = Actor.system("bench")
        self.count = 0  # transfers written so far; also the next key's number
        with factory() as session:

            def open_(key: str, kind: AccountKind, limited: bool = False) -> int:
                return ledger.open_account(
                    session, self.actor, key=key, name=key, kind=kind, currency="USD",
                    program_id=1, debits_must_not_exceed_credits=limited, now=START,
                ).id  # fmt: skip

            self.funding = open_("funding", AccountKind.FUNDING)
            self.budget = open_("budget", AccountKind.BUDGET, limited=True)
            self.payable = open_("claims-payable", AccountKind.CLAIMS_PAYABLE)
            self.funds = [
                open_(f"fund-{p}", AccountKind.PARTNER_FUND, limited=True) for p in range(partners)
            ]
            session.commit()
        self.accounts = [self.funding, self.budget, self.payable, *self.funds]

    def now(self) -> datetime:
        """Simulated server time for the next transfer: N transfers span SPAN."""
        return START + SPAN * (self.count / self.total)

    def _key(self) -> str:
        self.count += 1
        return f"bench-{self.count}"

    def fund(self) -> list[ledger.NewTransfer]:
        """Setup: fund the budget, then every partner fund with plenty for the claims."""
        per_fund = 10**10
        commands = [
            ledger.NewTransfer(
                self._key(), self.funding, self.budget, per_fund * len(self.funds) * 2, "funding"
            )
        ]
        commands += [
            ledger.NewTransfer(self._key(), self.budget, fund, per_fund, "allocation")
            for fund in self.funds
        ]
        return commands

    def next(self) -> ledger.NewTransfer:
        """An allocation (budget -> fund) or a claim (fund -> claims payable), small amounts,
        each naming the business object behind it as the callers will."""
        fund, key = self.random.choice(self.funds), self._key()
        if self.random.random() < ALLOCATION_SHARE:
            debit, credit, code, most = self.budget, fund, "allocation", 100_000
        else:
            debit, credit, code, most = fund, self.payable, "claim", 50_000
        amount = self.random.randint(1, most)
        return ledger.NewTransfer(
            key, debit, credit, amount, code, ref_type=code, ref_id=str(self.count)
        )

    def write(self, commands: list[ledger.NewTransfer], now: datetime) -> None:
        with self.factory() as session:
            ledger.execute(session, self.actor, commands, now=now)
            session.commit()

    def batches(self, transfers: int) -> float:
        """Write `transfers` in batches of BATCH, one commit each; returns the seconds spent."""
        spent = 0.0
        while transfers > 0:
            now = self.now()
            commands = [self.next() for _ in range(min(BATCH, transfers))]
            started = time.perf_counter()
            self.write(commands, now)
            spent += time.perf_counter() - started
            transfers -= len(commands)
        return spent


def run(
    database_url: str,
    *,
    transfers: int = 1_000_000,
    batched: int = 50_000,
    single: int = 2_000,
    reads: int = 2_000,
    partners: int = 1_000,
    seed: int = 1,
    progress: Progress | None = None,
) -> Result:
    """Benchmark the ledger in the empty, migrated database at `database_url`.

    Phases: set up and fund the accounts; `batched` transfers in batches of BATCH; `single`
    transfers one per commit; fill to `transfers` in batches; then `reads` reads of each kind
    on random accounts and times; then a statement export of the budget account.
    """
    say = progress or (lambda _message: None)
    setup = partners + 1
    if transfers < setup + BATCH + 1:
        raise ValueError(f"transfers must be at least {setup + BATCH + 1} for {partners} partners")
    # Scale the phases down for small ledgers: half for the batched phase, then single writes.
    batched = max(BATCH, min(batched, (transfers - setup) // 2 // BATCH * BATCH))
    single = min(single, transfers - setup - batched)
    fill = transfers - setup - batched - single

    engine = make_engine(database_url)
    backend = engine.dialect.name
    began = time.perf_counter()
    phases: dict[str, float] = {}
    try:
        server = server_version(engine)
        factory = make_session_factory(engine)
        mark = time.perf_counter()
        work = _Workload(factory, partners, transfers, seed)
        work.write(work.fund(), work.now())
        phases["setup"] = time.perf_counter() - mark

        say(f"{backend}: {batched:,} transfers in batches of {BATCH:,}")
        mark = time.perf_counter()
        batched_rate = Rate(batched, work.batches(batched))
        phases["batched"] = time.perf_counter() - mark

        say(f"{backend}: {single:,} transfers, one per commit")
        spent = 0.0
        mark = time.perf_counter()
        for _ in range(single):
            now, command = work.now(), work.next()
            started = time.perf_counter()
            work.write([command], now)
            spent += time.perf_counter() - started
        single_rate = Rate(single, spent)
        phases["single"] = time.perf_counter() - mark

        mark = time.perf_counter()
        spent, step = 0.0, max(BATCH, fill // 20 // BATCH * BATCH)
        while work.count < transfers:
            chunk = min(step, transfers - work.count)
            seconds = work.batches(chunk)
            spent += seconds
            say(
                f"{backend}: filled {work.count:,}/{transfers:,} ({work.count / transfers:.0%}),"
                f" {chunk / seconds:,.0f} transfers/s"
            )
        fill_rate = Rate(fill, spent)
        phases["fill"] = time.perf_counter() - mark

        say(f"{backend}: {reads:,} reads of each kind")
        mark = time.perf_counter()
        balance, as_of_time, as_of_date = _reads(work, reads)
        phases["reads"] = time.perf_counter() - mark

        say(f"{backend}: statement export of the budget account")
        mark = time.perf_counter()
        readers = make_session_factory(engine, read_only=True)
        export = _export(readers, work.budget, START.date(), (START + SPAN).date())
        phases["export"] = time.perf_counter() - mark
    finally:
        engine.dispose()
    return Result(
        backend, server, transfers, len(work.accounts), batched_rate, single_rate, fill_rate,
        balance, as_of_time, as_of_date, export, time.perf_counter() - began, phases,
    )  # fmt: skip


def server_version(engine: Any) -> str:
    if engine.dialect.name == "sqlite":
        return f"SQLite {sqlite3.sqlite_version}"
    with engine.connect() as conn:
        return str(conn.scalar(text("SHOW server_version")))


def _reads(work: _Workload, reads: int) -> tuple[Latency, Latency, Latency]:
    """Time each ledger read on one open session; the identity map is emptied before each, so
    every read goes to the database. A few untimed reads warm the statement caches first."""
    rnd = random.Random(7)
    span_s = SPAN.total_seconds()

    def random_time() -> datetime:
        return START + timedelta(seconds=rnd.uniform(0, span_s))

    kinds: list[Callable[[Session, int], object]] = [
        ledger.balance,
        lambda s, a: ledger.balance_as_of(s, a, at=random_time()),
        lambda s, a: ledger.balance_as_of(s, a, on=random_time().date()),
    ]
    figures = []
    with work.factory() as session:
        for read in kinds:
            for account in rnd.choices(work.accounts, k=min(50, reads)):
                session.expunge_all()
                read(session, account)
            seconds = []
            for account in rnd.choices(work.accounts, k=reads):
                session.expunge_all()
                started = time.perf_counter()
                read(session, account)
                seconds.append(time.perf_counter() - started)
            figures.append(Latency.of(seconds))
    return figures[0], figures[1], figures[2]


class _Discard:
    def write(self, text: str) -> int:
        return len(text)


_LINE_FIELDS = (
    "transfer_id", "effective_date", "created_at", "type", "code", "side", "counter_account_id",
    "amount", "pending_change", "balance", "available", "ref_type", "ref_id", "memo", "key",
    "pending_id", "reverses_id",
)  # fmt: skip


def _export_once(factory: sessionmaker[Session], account_id: int, start: date, end: date) -> int:
    row = attrgetter(*_LINE_FIELDS)
    writer = csv.writer(_Discard())
    writer.writerow(_LINE_FIELDS)
    lines = 0
    with factory() as session:
        for line in ledger.statement(session, account_id, start, end).lines:
            writer.writerow(row(line))
            lines += 1
    return lines


def _export(factory: sessionmaker[Session], account_id: int, start: date, end: date) -> Export:
    """Stream the account's statement into CSV twice: timed, then under tracemalloc (which
    slows Python down, so it is not timed) for the peak memory of the export alone."""
    started = time.perf_counter()
    lines = _export_once(factory, account_id, start, end)
    seconds = time.perf_counter() - started
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        _export_once(factory, account_id, start, end)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return Export("budget", lines, seconds, peak / 2**20)


# --- output -----------------------------------------------------------------------------------


def format_result(r: Result) -> str:
    """The figures as a plain-text table, each beside its target where there is one."""
    target = TARGET_BATCHED.get(r.backend)

    def verdict(ok: bool) -> str:
        return "ok" if ok else "MISSED"

    def rate(label: str, x: Rate, note: str = "") -> str:
        return f"  {label:<34}{x.per_second:>12,.0f} transfers/s  ({x.transfers:,}){note}"

    def latency(label: str, x: Latency, note: str = "") -> str:
        return f"  {label:<34}p50 {x.p50_ms:7.3f} ms  p99 {x.p99_ms:7.3f} ms{note}"

    batched_note = (
        f"   target >= {target:,.0f}/s: {verdict(r.batched.per_second >= target)}" if target else ""
    )
    scale = "" if r.transfers >= 1_000_000 else " (the target is for 1,000,000)"
    balance_note = (
        f"   target p99 < {TARGET_BALANCE_P99_MS:g} ms:"
        f" {verdict(r.balance.p99_ms < TARGET_BALANCE_P99_MS)}{scale}"
    )
    e = r.export
    return "\n".join(
        [
            f"{r.backend} ({r.server}): {r.transfers:,} transfers, {r.accounts:,} accounts",
            rate(f"batched writes ({BATCH:,} per commit)", r.batched, batched_note),
            rate("single writes (1 per commit)", r.single),
            rate(f"fill to {r.transfers:,} (batched)", r.fill),
            latency(f"balance read ({r.balance.reads:,})", r.balance, balance_note),
            latency(f"as-of read, at time ({r.as_of_time.reads:,})", r.as_of_time),
            latency(f"as-of read, on date ({r.as_of_date.reads:,})", r.as_of_date),
            f"  {f'statement export ({e.account})':<34}{e.lines_per_second:>12,.0f} lines/s"
            f"  ({e.lines:,} lines, peak {e.peak_mib:.2f} MiB)",
            f"  elapsed {r.elapsed_s:.1f} s ("
            + ", ".join(f"{k} {v:.1f}" for k, v in r.phases_s.items())
            + ")",
        ]
    )
