"""The review-queue benchmark: the queries finance's claims page runs, over many claims.

Pure measuring code, like `mdfledger.ledger.bench`: it takes a migrated, empty database URL
(`sqlite_database` and `postgres_database` there make one), builds a book and returns figures;
`mdfledger bench queue` prints them.

The book: a few programs with the demo's activity catalog and a few hundred partners, made
through the services; then N claims BULK-INSERTED with SQLAlchemy core, in a realistic mix of
states, ages, amounts and flags. Not through the claim services: 100,000 claims submitted and
decided one by one would take the better part of an hour and exercise the write path (holds,
ledger, audit), while this measures the read path: `claims.review_queue` filtered, sorted and
paged as the page pages it (LIMIT/OFFSET plus a COUNT), each query repeated, median and p95.
Claims have no holds, documents or timeline rows; the queue does not read them.
"""

from __future__ import annotations

import math
import random
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, insert, select, text
from sqlalchemy.orm import Session, sessionmaker

from mdfledger import claims, programs
from mdfledger.actor import Actor
from mdfledger.claims.models import Claim
from mdfledger.claims.rules import ClaimState, ReasonCode, invoice_key
from mdfledger.db import make_engine, make_session_factory
from mdfledger.demo import CATALOG
from mdfledger.ledger.bench import Progress, server_version  # the two benches report alike

NOW = datetime(2026, 6, 30, 12, 0, tzinfo=UTC)  # the book's clock: ages are counted from here
PAGE = 50  # rows per page, as the claims page shows them
DEEP_PAGE = 100
INSERT_CHUNK = 5_000
POSTGRES_DATABASE = "mdfledger_bench_queue"  # not the ledger bench's: both may run at once
TARGET_MS = 50.0  # every query, p95, at 100,000 claims, on SQLite and PostgreSQL
FINANCE = Actor("user", "bench-finance", "finance")
SYSTEM = Actor.system("bench")

# Most claims were decided long ago; ~10% wait for finance (the queue), a few are flagged.
STATE_MIX: tuple[tuple[str, float], ...] = (
    (ClaimState.PAID, 0.40),
    (ClaimState.APPROVED, 0.32),
    (ClaimState.IN_REVIEW, 0.08),
    (ClaimState.SUBMITTED, 0.01),
    (ClaimState.VERIFYING, 0.01),
    (ClaimState.REJECTED, 0.05),
    (ClaimState.RETURNED, 0.03),
    (ClaimState.WITHDRAWN, 0.04),
    (ClaimState.DRAFT, 0.04),
    (ClaimState.EXPIRED, 0.02),
)
WAITING = frozenset(s.value for s in claims.WAITING)


@dataclass
class Timing:
    query: str
    kind: str  # "page" (LIMIT/OFFSET) or "count"
    rows: int  # rows on the page, or the count
    runs: int
    median_ms: float
    p95_ms: float

    @classmethod
    def of(cls, query: str, kind: str, rows: int, seconds: Sequence[float]) -> Timing:
        ordered = sorted(seconds)
        p95 = ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]
        median = statistics.median(ordered)
        return cls(query, kind, rows, len(ordered), median * 1000, p95 * 1000)

    @property
    def ok(self) -> bool:
        return self.p95_ms < TARGET_MS


@dataclass
class Result:
    backend: str
    server: str
    claims: int
    partners: int
    programs: int
    waiting: int
    flagged_waiting: int
    build_s: float
    timings: list[Timing] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.timings)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["target_ms"] = TARGET_MS
        data["ok"] = self.ok
        return data


# --- the book ---------------------------------------------------------------------------------


@dataclass
class Book:
    """What the queries filter on: ids of the programs and partners, the busiest of each."""

    programs: list[int]
    partners: list[int]
    activities: dict[int, list[int]]  # program -> its activities
    busiest_program: int = 0
    busiest_partner: int = 0
    claims: int = 0


def build(
    factory: sessionmaker[Session],
    *,
    claims_count: int,
    partners: int,
    program_count: int = 3,
    seed: int = 1,
    progress: Progress | None = None,
) -> Book:
    """Programs, activities and partners through the services; then the claims, bulk-inserted."""
    say = progress or (lambda _message: None)
    rnd = random.Random(seed)
    with factory() as session:
        program_ids, activities = [], {}
        for n in range(program_count):
            coop = n == program_count - 1 and program_count > 1
            kind = "coop" if coop else "mdf"
            program = programs.create_program(
                session, SYSTEM, code=f"{kind.upper()}-{n + 1}", name=f"{kind} program {n + 1}",
                kind=kind,
                currency="USD", claim_deadline_days=90 if coop else 60,
                share_bp=10_000 if coop else 5_000, direct_claims=coop, now=NOW,
            )  # fmt: skip
            program_ids.append(program.id)
            activities[program.id] = [
                programs.add_activity(
                    session, SYSTEM, program.id, code=code, name=name, proof=proof, cap=cap
                ).id
                for code, name, proof, cap in CATALOG
            ]
        partner_ids = [
            programs.create_partner(
                session, SYSTEM, code=f"P{n:05d}", name=f"Partner {n:05d}", type="reseller",
                tier=("platinum", "gold", "silver", "registered")[n % 4], region="NA", now=NOW,
            ).id
            for n in range(partners)
        ]  # fmt: skip
        session.commit()
    book = Book(program_ids, partner_ids, activities)
    # Partners differ in size: a long tail and a few busy ones (Zipf-like weights).
    partner_weights = [1 / (rank + 1) ** 0.8 for rank in range(partners)]
    rnd.shuffle(partner_weights)
    program_weights = [max(1, program_count - n) for n in range(program_count)]
    states = [s.value for s, _ in STATE_MIX]
    state_weights = [w for _, w in STATE_MIX]
    per_partner: dict[int, int] = {}
    per_program: dict[int, int] = {}
    made = 0
    while made < claims_count:
        chunk = min(INSERT_CHUNK, claims_count - made)
        rows = []
        picked_partners = rnd.choices(partner_ids, partner_weights, k=chunk)
        picked_programs = rnd.choices(program_ids, program_weights, k=chunk)
        picked_states = rnd.choices(states, state_weights, k=chunk)
        for i in range(chunk):
            partner, program, state = picked_partners[i], picked_programs[i], picked_states[i]
            rows.append(_claim_row(rnd, made + i, program, rnd.choice(activities[program]),
                                   partner, state))  # fmt: skip
            per_partner[partner] = per_partner.get(partner, 0) + 1
            per_program[program] = per_program.get(program, 0) + 1
        with factory() as session:
            session.execute(insert(Claim.__table__), rows)
            session.commit()
        made += chunk
        say(f"{made:,}/{claims_count:,} claims")
    book.busiest_partner = max(per_partner, key=lambda p: per_partner[p])
    book.busiest_program = max(per_program, key=lambda p: per_program[p])
    book.claims = made
    return book


def _claim_row(
    rnd: random.Random, n: int, program: int, activity: int, partner: int, state: str
) -> dict[str, Any]:
    """One claim as its row. Waiting claims are recent (a long tail up to ~90 days), decided
    ones spread over two years; amounts from ~100 to ~15,000, most small."""
    draft = state in (ClaimState.DRAFT, ClaimState.EXPIRED)
    if state in WAITING:
        age = timedelta(days=min(rnd.expovariate(1 / 15), 90), seconds=rnd.randint(0, 86_399))
    else:
        age = timedelta(days=rnd.uniform(1, 730))
    submitted = NOW - age
    created = submitted - timedelta(days=rnd.uniform(0, 5))
    claimed = int(min(15_000_00, max(100_00, rnd.lognormvariate(math.log(1_500_00), 0.9))))
    approved = None
    reason_code = reason = None
    if state in (ClaimState.APPROVED, ClaimState.PAID):
        approved = claimed
        if rnd.random() < 0.1:  # partial approvals, with a reason
            approved = max(1, claimed * 8 // 10)
            reason_code, reason = (
                ReasonCode.INELIGIBLE_COST.value,
                "Part of the cost is not covered.",
            )
    elif state in (ClaimState.REJECTED, ClaimState.RETURNED):
        reason_code = rnd.choice([ReasonCode.INSUFFICIENT_PROOF, ReasonCode.PROOF_MISMATCH]).value
        reason = "See the reason code."
    ends = (submitted - timedelta(days=rnd.randint(1, 40))).date()
    starts = ends - timedelta(days=rnd.randint(0, 5))
    has_invoice = rnd.random() < 0.7
    issuer, number = f"Vendor {n % 997}", f"INV-{n:07d}"
    invoice_total = claimed * 2 if has_invoice else None
    flagged = rnd.random() < (0.05 if state in WAITING else 0.01)
    first = state == ClaimState.IN_REVIEW and claimed > 5_000_00 and rnd.random() < 0.3
    decided = state not in WAITING and not draft and state != ClaimState.WITHDRAWN
    return {
        "program_id": program,
        "partner_id": partner,
        "activity_id": activity,
        "request_id": None,
        "currency": "USD",
        "title": f"Activity {n}",
        "description": "",
        "starts_on": starts,
        "ends_on": ends,
        "actual_cost": claimed * 2,
        "claimed_amount": claimed,
        "approved_amount": approved,
        "claim_deadline": ends + timedelta(days=60),
        "invoice_issuer": issuer if has_invoice else "",
        "invoice_number": number if has_invoice else "",
        "invoice_total": invoice_total,
        "invoice_key": invoice_key(issuer, number, invoice_total) if has_invoice else None,
        "state": state,
        "flagged": flagged,
        "reason_code": reason_code,
        "reason": reason,
        "first_approval_by": "user:bench-approver" if first else None,
        "first_approval_amount": claimed if first else None,
        "created_by": f"user:partner-{partner}",
        "created_at": created,
        "submitted_by": None if draft else f"user:partner-{partner}",
        "submitted_at": None if draft else submitted,
        "decided_at": submitted + timedelta(days=rnd.uniform(1, 20)) if decided else None,
        "idempotency_key": None,
        "version": rnd.randint(1, 4),
    }


# --- the queries ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    label: str
    statement: Select[tuple[Claim]]
    wanted: claims.QueueFilter | None  # None: the partner's own list (claims_query)
    page: int = 1
    count: bool = False  # time the COUNT the page runs for its paging, not the page


def queries(book: Book) -> list[Query]:
    """What the claims page runs for finance, in the order the table shows them, and one
    partner's "My claims"."""
    q = claims.QueueFilter

    def queue(label: str, wanted: claims.QueueFilter, **kw: Any) -> Query:
        return Query(label, claims.review_queue(FINANCE, wanted, now=NOW), wanted, **kw)

    approved = ("approved",)
    partner = Actor("user", "bench-partner", "partner", book.busiest_partner)
    return [
        queue("waiting, oldest first (the default)", q()),
        queue("  by program (the busiest)", q(program_id=book.busiest_program)),
        queue("  by partner (the busiest)", q(partner_id=book.busiest_partner)),
        queue("  flagged only", q(flagged=True)),
        queue("  amount 1,000.00-5,000.00", q(min_amount=1_000_00, max_amount=5_000_00)),
        queue("  older than 30 days", q(older_than_days=30)),
        queue("  newest first", q(sort="newest")),
        queue("  largest amount first", q(sort="amount_desc")),
        queue("  smallest amount first", q(sort="amount_asc")),
        queue(f"  page {DEEP_PAGE}", q(), page=DEEP_PAGE),
        queue("  COUNT for paging", q(), count=True),
        queue("  flagged only: COUNT", q(flagged=True), count=True),
        queue("approved, newest first", q(states=approved, sort="newest")),
        queue("  COUNT for paging", q(states=approved), count=True),
        Query("a partner's own claims, newest first", claims.claims_query(partner), None),
    ]


def fetch(session: Session, query: Query) -> int | list[Claim]:
    """What the page gets: the COUNT for its paging, or the rows of its page."""
    if query.count:
        counted = select(func.count()).select_from(query.statement.order_by(None).subquery())
        return int(session.scalar(counted) or 0)
    offset = (query.page - 1) * PAGE
    return list(session.scalars(query.statement.offset(offset).limit(PAGE)).all())


def _page(session: Session, query: Query) -> int:
    got = fetch(session, query)
    return got if isinstance(got, int) else len(got)


def time_queries(
    factory: sessionmaker[Session], book: Book, *, repeat: int, warmup: int = 3
) -> list[Timing]:
    """Each query `warmup` times untimed (statement caches, the database's page cache), then
    `repeat` times timed, on one session whose identity map is emptied before each run so
    every row is loaded as the page would load it."""
    timings = []
    with factory() as session:
        for query in queries(book):
            for _ in range(warmup):
                session.expunge_all()
                _page(session, query)
            seconds = []
            rows = 0
            for _ in range(repeat):
                session.expunge_all()
                started = time.perf_counter()
                rows = _page(session, query)
                seconds.append(time.perf_counter() - started)
            kind = "count" if query.count else "page"
            timings.append(Timing.of(query.label, kind, rows, seconds))
            session.rollback()  # end the read transaction between queries
    return timings


# --- the run ----------------------------------------------------------------------------------


def run(
    database_url: str,
    *,
    claims_count: int = 100_000,
    partners: int = 250,
    program_count: int = 3,
    repeat: int = 30,
    seed: int = 1,
    progress: Progress | None = None,
) -> Result:
    """Build the book in the empty, migrated database at `database_url` and time the queue."""
    say = progress or (lambda _message: None)
    if claims_count < 1 or partners < 1 or program_count < 1 or repeat < 1:
        raise ValueError("claims, partners, programs and repeat must be at least 1")
    began = time.perf_counter()
    engine = make_engine(database_url)
    backend = engine.dialect.name
    try:
        server = server_version(engine)
        factory = make_session_factory(engine)
        say(f"{backend}: building {claims_count:,} claims for {partners:,} partners")
        book = build(
            factory, claims_count=claims_count, partners=partners, program_count=program_count,
            seed=seed, progress=lambda m: say(f"{backend}: {m}"),
        )  # fmt: skip
        if backend == "postgresql":
            # What autovacuum does within a minute of a bulk load: the planner's statistics.
            # SQLite is left as the app leaves it (it never runs ANALYZE).
            with engine.connect() as conn:
                conn.execute(text("ANALYZE claims"))
                conn.commit()
        built = time.perf_counter() - began
        waiting_filter = Claim.state.in_(sorted(WAITING))
        with factory() as session:
            waiting = session.scalar(select(func.count()).where(waiting_filter)) or 0
            flagged = session.scalar(select(func.count()).where(waiting_filter, Claim.flagged)) or 0
        say(f"{backend}: timing the queue, {repeat} runs of each query")
        timings = time_queries(factory, book, repeat=repeat)
    finally:
        engine.dispose()
    return Result(
        backend, server, book.claims, len(book.partners), len(book.programs), waiting, flagged,
        built, timings, time.perf_counter() - began,
    )  # fmt: skip


# --- output -----------------------------------------------------------------------------------


def format_result(r: Result) -> str:
    """The figures as a plain-text table; every query beside the target."""
    scale = "" if r.claims >= 100_000 else "   (the target is for 100,000 claims)"
    lines = [
        f"{r.backend} ({r.server}): {r.claims:,} claims, {r.partners:,} partners,"
        f" {r.programs} programs; {r.waiting:,} waiting ({r.flagged_waiting:,} flagged);"
        f" built in {r.build_s:.1f} s",
        f"  {'query':<40}{'rows':>8}{'median':>11}{'p95':>11}   target < {TARGET_MS:g} ms{scale}",
    ]
    for t in r.timings:
        rows = f"{t.rows:,}" if t.kind == "count" else str(t.rows)
        verdict = "ok" if t.ok else "MISSED"
        lines.append(
            f"  {t.query:<40}{rows:>8}{t.median_ms:>8.2f} ms{t.p95_ms:>8.2f} ms   {verdict}"
        )
    lines.append(
        f"  elapsed {r.elapsed_s:.1f} s; page = {PAGE} rows, {r.timings[0].runs} runs each"
    )
    return "\n".join(lines)
