"""`mdfledger bench payouts`: a payout run, the engagement outbox, and webhook delivery.

Pure measuring code, like `mdfledger.ledger.bench` and `mdfledger.claims.bench`: it takes a
migrated, empty database URL (`sqlite_database` and `postgres_database` there make one), builds
what it needs through the services and returns figures.

1. Payout run. A program that takes direct claims, N partners with bank payout details, the
   manual provider on an immediate schedule (set by an admin), and M claims made the way
   partners and finance make them: create, attach a landing-page link, submit, sent to review,
   approved by finance. Setup commits once per chunk of claims and is not timed as the run:
   only `payouts.create_payouts(finance, due_only=False)` and its commit are, then
   `ledger.verify_ledger` checks the book.
2. Outbox. `engagement.emit` of E events for the first P partners in one transaction (each
   event also gets its pending delivery: one webhook destination, for every partner, exists).
3. Delivery. `engagement.deliver` with the senders `senders_from_settings` builds, repeated
   until nothing is due, to a loopback HTTP receiver answering 204; the receiver records what
   arrives, and the bench checks that every event arrived exactly once, signed, and in order
   per partner.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from mdfledger import claims, engagement, ledger, payouts, programs
from mdfledger.actor import Actor
from mdfledger.db import make_engine, make_session_factory
from mdfledger.ledger.bench import Progress, server_version  # the benches report alike
from mdfledger.payouts.models import PayoutClaim

NOW = datetime(2026, 8, 15, 12, 0, tzinfo=UTC)  # the book's clock (FY2026 Q3)
EVENTS_AT = NOW + timedelta(hours=1)
POSTGRES_DATABASE = "mdfledger_bench_payouts"  # not the other benches': they may run at once
CHUNK = 250  # claims per setup transaction
IBAN = "DE89370400440532013000"  # the standard's example IBAN: valid
SYSTEM = Actor.system("bench")
REVIEW = Actor.system("verification")  # sends submitted claims to finance, as the checks do
FINANCE = Actor("user", "bench-finance", "finance")
ADMIN = Actor("user", "bench-admin", "admin")


@dataclass
class Result:
    backend: str
    server: str
    # payout run
    claims: int
    partners: int
    setup_s: float
    run_s: float
    payouts: int
    claims_paid: int
    ledger_ok: bool
    verify_s: float
    # outbox
    events: int
    event_partners: int
    emit_s: float  # the emit calls
    emit_commit_s: float  # the one commit after them
    # delivery
    deliver_s: float
    delivered: int
    rounds: int  # deliver() calls until nothing was due
    received: int
    duplicates: int
    missing: int
    out_of_order: int  # partners whose events arrived out of order
    bad_signatures: int
    elapsed_s: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def payouts_per_s(self) -> float:
        return self.payouts / self.run_s if self.run_s else 0.0

    @property
    def emit_us(self) -> float:
        """Per event, the commit included."""
        return (self.emit_s + self.emit_commit_s) * 1e6 / self.events if self.events else 0.0

    @property
    def events_per_s(self) -> float:
        return self.delivered / self.deliver_s if self.deliver_s else 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(
            payouts_per_s=self.payouts_per_s, emit_us_per_event=self.emit_us,
            events_per_s=self.events_per_s, ok=self.ok,
        )  # fmt: skip
        return data


# --- 1. the payout run ----------------------------------------------------------------------------


@dataclass
class Book:
    program_id: int
    partners: list[int]
    claims: int = 0
    setup_s: float = 0.0


def build(
    factory: sessionmaker[Session],
    *,
    claims_count: int,
    partners: int,
    seed: int = 1,
    progress: Progress | None = None,
) -> Book:
    """The program, partners, their funds and payout details, the policy, and `claims_count`
    approved claims spread evenly over the partners, all through the services."""
    say = progress or (lambda _message: None)
    rnd = random.Random(seed)
    began = time.perf_counter()
    amounts = [rnd.randint(100_00, 5_000_00) for _ in range(claims_count)]
    owners = [n % partners for n in range(claims_count)]
    need = Counter[int]()
    for owner, amount in zip(owners, amounts, strict=True):
        need[owner] += amount
    with factory() as session:
        program = programs.create_program(
            session, SYSTEM, code="PAYB", name="Payout bench", kind="mdf", currency="USD",
            claim_deadline_days=60, share_bp=5_000, direct_claims=True, now=NOW,
        )  # fmt: skip
        activity = programs.add_activity(
            session, SYSTEM, program.id, code="LANDING", name="Landing page",
            proof=["landing_page"],
        )  # fmt: skip
        payouts.set_policy(
            session, ADMIN, program.id, provider="manual", schedule="immediate", now=NOW
        )
        programs.fund_budget(session, SYSTEM, program.id, sum(need.values()), reason="bench",
                             now=NOW)  # fmt: skip
        partner_ids = []
        for n in range(partners):
            partner = programs.create_partner(
                session, SYSTEM, code=f"B{n:05d}", name=f"Bench partner {n:05d}",
                type="reseller", tier="gold", region="NA", now=NOW,
            )  # fmt: skip
            partner_ids.append(partner.id)
            if need[n]:
                programs.allocate(session, SYSTEM, program.id, partner.id, need[n], reason="Q3",
                                  day=date(2026, 8, 1), now=NOW)  # fmt: skip
            payouts.set_details(
                session, FINANCE, partner.id, method="bank", bank_country="DE", iban=IBAN,
                account_holder=f"Bench partner {n:05d} GmbH", now=NOW,
            )  # fmt: skip
        session.commit()
        program_id, activity_id = program.id, activity.id
    say(f"{partners} partners ready; approving {claims_count:,} claims")
    for start in range(0, claims_count, CHUNK):
        with factory() as session:
            for n in range(start, min(start + CHUNK, claims_count)):
                partner_id = partner_ids[owners[n]]
                _approved_claim(session, program_id, activity_id, partner_id, n, amounts[n])
            session.commit()
        say(f"{min(start + CHUNK, claims_count):,}/{claims_count:,} claims approved")
    return Book(program_id, partner_ids, claims_count, time.perf_counter() - began)


def _approved_claim(
    session: Session, program_id: int, activity_id: int, partner_id: int, n: int, amount: int
) -> None:
    partner = Actor("user", f"bench-partner-{partner_id}", "partner", partner_id)
    claim = claims.create_claim(
        session, partner, program_id=program_id, activity_id=activity_id,
        title=f"Landing page {n}", actual_cost=amount * 2, claimed_amount=amount,
        starts_on=date(2026, 8, 1), ends_on=date(2026, 8, 10), now=NOW,
    )  # fmt: skip
    claims.add_link(
        session, partner, claim.id, url=f"https://partner{partner_id}.example/offer/{n}",
        kind="landing_page", now=NOW,
    )  # fmt: skip
    claims.submit_claim(session, partner, claim.id, now=NOW)
    claims.send_to_review(session, REVIEW, claim.id, message="bench: review by hand", now=NOW)
    claims.approve_claim(session, FINANCE, claim.id, now=NOW)


@dataclass
class PayoutRun:
    seconds: float
    payouts: int
    claims_paid: int
    amount: int
    ledger_ok: bool
    verify_s: float
    problems: list[str]


def payout_run(factory: sessionmaker[Session], book: Book) -> PayoutRun:
    """Time one run paying every approved claim (and its commit); then verify the ledger."""
    problems: list[str] = []
    with factory() as session:
        started = time.perf_counter()
        run = payouts.create_payouts(session, FINANCE, due_only=False, now=NOW)
        session.commit()
        seconds = time.perf_counter() - started
        made, amount = len(run.payouts), sum(p.amount for p in run.payouts)
        if run.skipped:
            problems.append(f"payout run skipped {len(run.skipped)} partner(s)")
    with factory() as session:
        paid = session.scalar(select(func.count()).where(PayoutClaim.live.is_(True))) or 0
        started = time.perf_counter()
        report = ledger.verify_ledger(session)
        verify_s = time.perf_counter() - started
    if made != len(book.partners):
        problems.append(f"{made} payouts for {len(book.partners)} partners")
    if paid != book.claims:
        problems.append(f"{paid} of {book.claims} claims in a payout")
    if not report.ok:
        problems.append("ledger: " + "; ".join(report.problems[:3]))
    return PayoutRun(seconds, made, paid, amount, report.ok, verify_s, problems)


# --- 2. the outbox and 3. delivery ----------------------------------------------------------------


class Receiver:
    """A partner's webhook endpoint on loopback: answers 204 to every POST (HTTP/1.1 keep-alive,
    as most endpoints are) and records the event id and partner of each, checking signatures
    the way a partner's CRM would."""

    def __init__(self) -> None:
        self.secret = ""  # the destination's signing secret
        self.arrived: list[tuple[int, int]] = []  # (partner id, event id), in arrival order
        self.bad_signatures = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                signed = engagement.verify_signature(
                    receiver.secret, body, self.headers.get("Mdfledger-Signature", "")
                )
                event = json.loads(body)
                with receiver.lock:
                    receiver.arrived.append((event["partner_id"], event["id"]))
                    receiver.bad_signatures += not signed
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/mdfledger"

    @contextmanager
    def running(self) -> Iterator[Receiver]:
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()
            thread.join()


def add_destination(factory: sessionmaker[Session], receiver: Receiver) -> None:
    """One webhook destination for every partner, added by an admin; its secret to the receiver."""
    with factory() as session:
        made = engagement.create_destination(
            session, ADMIN, name="Partner CRM", kind="webhook", url=receiver.url, now=NOW
        )
        assert made.secret is not None
        receiver.secret = made.secret
        session.commit()


@dataclass
class Emitted:
    seconds: float
    commit_s: float
    by_partner: dict[int, list[int]]  # event ids in emission order


def emit_events(
    factory: sessionmaker[Session], partner_ids: list[int], program_id: int, count: int
) -> Emitted:
    """`count` claim.approved events round-robin over the partners, in one transaction."""
    by_partner: dict[int, list[int]] = defaultdict(list)
    with factory() as session:
        started = time.perf_counter()
        for n in range(count):
            partner_id = partner_ids[n % len(partner_ids)]
            data = {
                "claim_id": 1_000_000 + n, "reference": f"CLM-{1_000_000 + n}",
                "title": f"Landing page {n}", "program": "Payout bench", "program_code": "PAYB",
                "currency": "USD", "claimed": 150_000, "approved": 150_000,
            }  # fmt: skip
            event = engagement.emit(
                session, "claim.approved", partner_id=partner_id, program_id=program_id,
                data=data, now=EVENTS_AT,
            )  # fmt: skip
            assert event is not None
            by_partner[partner_id].append(event.id)
        emitted = time.perf_counter()
        session.commit()
        committed = time.perf_counter()
    return Emitted(emitted - started, committed - emitted, dict(by_partner))


@dataclass
class Delivered:
    seconds: float
    delivered: int
    rounds: int
    not_delivered: int  # retrying or dead
    received: int
    duplicates: int
    missing: int
    out_of_order: int
    bad_signatures: int


def deliver_all(
    factory: sessionmaker[Session], receiver: Receiver, emitted: Emitted, senders: Any = None
) -> Delivered:
    """`engagement.deliver` until a run finds nothing due; then what the receiver got."""
    senders = senders or engagement.senders_from_settings(None)
    delivered = failed = rounds = 0
    at = EVENTS_AT + timedelta(seconds=1)
    started = time.perf_counter()
    while True:
        run = engagement.deliver(factory, senders, now=at)
        rounds += 1
        delivered += len(run.delivered)
        failed += len(run.retrying) + len(run.dead) + len(run.lost)
        if run.attempts == 0 or run.retrying or run.dead:
            break  # nothing due; or failures, whose retries are not due until later
    seconds = time.perf_counter() - started
    with receiver.lock:
        arrived = list(receiver.arrived)
        bad = receiver.bad_signatures
    counts = Counter(event_id for _partner, event_id in arrived)
    expected = {e for ids in emitted.by_partner.values() for e in ids}
    got: dict[int, list[int]] = defaultdict(list)
    for partner_id, event_id in arrived:
        got[partner_id].append(event_id)
    out_of_order = sum(got.get(p, []) != ids for p, ids in emitted.by_partner.items())
    return Delivered(
        seconds, delivered, rounds, failed, len(arrived),
        sum(c - 1 for c in counts.values() if c > 1), len(expected - counts.keys()),
        out_of_order, bad,
    )  # fmt: skip


# --- the run --------------------------------------------------------------------------------------


def run(
    database_url: str,
    *,
    claims_count: int = 2_000,
    partners: int = 200,
    events: int = 5_000,
    event_partners: int = 50,
    seed: int = 1,
    progress: Progress | None = None,
) -> Result:
    """Build, run the payouts, emit and deliver, in the empty migrated database at the URL."""
    say = progress or (lambda _message: None)
    if claims_count < 1 or partners < 1 or events < 1 or event_partners < 1:
        raise ValueError("claims, partners, events and event partners must be at least 1")
    partners = min(partners, claims_count)  # every partner has a claim to be paid
    event_partners = min(event_partners, partners)
    began = time.perf_counter()
    engine = make_engine(database_url)
    backend = engine.dialect.name
    try:
        server = server_version(engine)
        factory = make_session_factory(engine)
        say(f"{backend}: building {claims_count:,} approved claims for {partners:,} partners")
        book = build(
            factory, claims_count=claims_count, partners=partners, seed=seed,
            progress=lambda m: say(f"{backend}: {m}"),
        )  # fmt: skip
        say(f"{backend}: built in {book.setup_s:.1f} s; payout run")
        paid = payout_run(factory, book)
        receiver = Receiver()
        with receiver.running():
            add_destination(factory, receiver)
            chosen = book.partners[:event_partners]
            say(f"{backend}: emitting {events:,} events for {event_partners} partners")
            emitted = emit_events(factory, chosen, book.program_id, events)
            say(f"{backend}: delivering {events:,} events")
            sent = deliver_all(factory, receiver, emitted)
    finally:
        engine.dispose()
    problems = list(paid.problems)
    if sent.delivered != events or sent.not_delivered:
        problems.append(f"{sent.delivered} of {events} delivered ({sent.not_delivered} failed)")
    if sent.duplicates or sent.missing or sent.out_of_order or sent.bad_signatures:
        problems.append(
            f"receiver: {sent.duplicates} duplicate(s), {sent.missing} missing,"
            f" {sent.out_of_order} partner(s) out of order, {sent.bad_signatures} bad signature(s)"
        )
    return Result(
        backend, server, book.claims, len(book.partners), book.setup_s, paid.seconds,
        paid.payouts, paid.claims_paid, paid.ledger_ok, paid.verify_s, events, event_partners,
        emitted.seconds, emitted.commit_s, sent.seconds, sent.delivered, sent.rounds,
        sent.received, sent.duplicates, sent.missing, sent.out_of_order, sent.bad_signatures,
        time.perf_counter() - began, problems,
    )  # fmt: skip


def run_all(
    *,
    sqlite: bool = True,
    postgres_url: str | None = None,
    progress: Progress | None = None,
    **sizes: int,
) -> list[Result]:
    """`run` on a fresh temporary SQLite file and/or a fresh database POSTGRES_DATABASE on the
    server of the admin URL `postgres_url` (created, migrated, dropped after)."""
    from mdfledger.ledger.bench import postgres_database, sqlite_database

    databases = [sqlite_database()] if sqlite else []
    if postgres_url:
        databases.append(postgres_database(postgres_url, POSTGRES_DATABASE))
    if not databases:
        raise ValueError("nothing to bench: give a PostgreSQL URL or leave SQLite on")
    results = []
    for database in databases:
        with database as url:
            results.append(run(url, progress=progress, **sizes))
    return results


# --- output ---------------------------------------------------------------------------------------


def _database(r: Result) -> str:
    return r.server if r.backend == "sqlite" else f"PostgreSQL {r.server.split()[0]}"


# (label, figure of one result): the rows of the table, one column per database
ROWS: tuple[tuple[str, Callable[[Result], str]], ...] = (
    ("", _database),
    ("setup through the services (not timed)", lambda r: f"{r.setup_s:.1f} s"),
    ("payout run (create_payouts + commit)", lambda r: f"{r.run_s:.2f} s"),
    ("  payouts / claims paid", lambda r: f"{r.payouts:,} / {r.claims_paid:,}"),
    ("  payouts/s", lambda r: f"{r.payouts_per_s:,.0f} /s"),
    ("  claims/s", lambda r: f"{r.claims_paid / r.run_s:,.0f} /s"),
    ("  ledger verified after", lambda r: f"{'ok' if r.ledger_ok else 'FAILED'}"
                                          f" ({r.verify_s:.2f} s)"),
    ("outbox: emit, one transaction", lambda r: f"{r.emit_us:,.0f} µs/event"),
    ("  emits / commit", lambda r: f"{r.emit_s:.2f} s / {r.emit_commit_s * 1000:.0f} ms"),
    ("delivery to a loopback webhook", lambda r: f"{r.events_per_s:,.0f} events/s"),
    ("  seconds, deliver() calls", lambda r: f"{r.deliver_s:.1f} s, {r.rounds}"),
    ("  received / duplicates / missing", lambda r: f"{r.received:,} / {r.duplicates} /"
                                                    f" {r.missing}"),
    ("  partners out of order / bad signatures",
     lambda r: f"{r.out_of_order} / {r.bad_signatures}"),
    ("elapsed", lambda r: f"{r.elapsed_s:.1f} s"),
)  # fmt: skip


def format_results(results: list[Result]) -> str:
    """The figures as a plain-text table, one column per database; then any problem."""
    if not results:
        return ""
    first = results[0]
    lines = [
        f"payouts: {first.claims:,} approved claims, {first.partners:,} partners (bank details,"
        f" manual provider, immediate); {first.events:,} events for {first.event_partners}"
        " partners, one webhook destination"
    ]
    for label, figure in ROWS:
        lines.append(f"  {label:<44}" + "".join(f"{figure(r):>24}" for r in results))
    for r in results:
        lines.extend(f"  PROBLEM ({r.backend}): {problem}" for problem in r.problems)
    return "\n".join(lines)


__all__ = [
    "POSTGRES_DATABASE",
    "Receiver",
    "Result",
    "add_destination",
    "build",
    "deliver_all",
    "emit_events",
    "format_results",
    "payout_run",
    "run",
    "run_all",
]
