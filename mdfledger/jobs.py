"""Background jobs. Each job opens its own session and owns its transactions.

Two kinds. Scheduled jobs (period end, page re-checks, lost verifications, scheduled payout
runs and payout recovery, activity signals, event delivery retries) run from the `mdfledger`
command (cron calls it) and, in the embedded default, from the in-process Scheduler that
`mdfledger serve` starts. Jobs that services ask for after a commit (`background.enqueue`:
verifying a submitted claim, re-running a check, paying an approved claim, sending a payout,
delivering events) run in-process right after the commit in the embedded default
(InlineRunner), or as Celery tasks on `mdfledger worker` processes with a Redis broker in
production (CeleryRunner, `celery_app`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from mdfledger import (
    audit,
    background,
    claims,
    engagement,
    exports,
    ledger,
    logs,
    payouts,
    programs,
    verification,
)
from mdfledger.actor import Actor
from mdfledger.clock import ensure_utc, utcnow
from mdfledger.config import Settings
from mdfledger.engagement.signals import signals_job

log = logging.getLogger(__name__)
SWEEPER = Actor.system("expire-pending")


def expire_pending_transfers(
    sessions: sessionmaker[Session], *, now: datetime | None = None, batch_size: int = 1000
) -> int:
    """Expire every reservation past its deadline, committing each batch. Returns how many.

    Safe to run twice or concurrently: an expiry is keyed by its pending transfer, so a second
    run finds nothing left to do.
    """
    when = ensure_utc(now or utcnow())
    total = 0
    with sessions() as session:
        while expired := ledger.expire_overdue(session, SWEEPER, now=when, limit=batch_size):
            session.commit()
            total += sum(not record.replayed for record in expired)
    return total


PERIOD_END = Actor.system("period-end")


def run_period_end(
    sessions: sessionmaker[Session], *, now: datetime | None = None
) -> programs.ExpiryRun:
    """Period end: expire lapsed reservations (batch by batch) and the requests and claims
    whose claim deadline passed, then forfeit unspent funds past their last usable day — so
    money a lapsed request held is forfeited in the same run. Idempotent: a second run the
    same day finds nothing to do."""
    when = ensure_utc(now or utcnow())
    expired = expire_pending_transfers(sessions, now=when)
    with sessions() as session:
        requests = claims.expire_requests(session, PERIOD_END, now=when)
        drafts = claims.expire_claims(session, PERIOD_END, now=when)
        session.commit()
    with sessions() as session:
        run = programs.expire_funds(session, PERIOD_END, now=when)
        session.commit()
    return programs.ExpiryRun(expired, run, requests, drafts)


# --- verification --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    """What jobs need: sessions that write, sessions that only read, the checks' toolkit, the
    payout providers and the event senders."""

    sessions: sessionmaker[Session]
    read_sessions: sessionmaker[Session]
    kit: verification.Toolkit
    providers: Mapping[str, payouts.Provider] = field(
        default_factory=lambda: payouts.providers_from_settings(None)
    )
    senders: engagement.Senders = field(
        default_factory=lambda: engagement.senders_from_settings(None)
    )
    files: exports.ExportFiles = field(default_factory=lambda: exports.files_from_settings(None))


def context_from_settings(settings: Settings) -> Context:
    """A job context of its own (a worker process): an engine, sessions and the proof store."""
    from mdfledger import db, storage

    engine = db.make_engine(settings.database_url)
    store = storage.store_from_settings(settings)
    return Context(
        db.make_session_factory(engine),
        db.make_session_factory(engine, read_only=True),
        toolkit_from_settings(settings, store),
        payouts.providers_from_settings(settings),
        engagement.senders_from_settings(settings),
        exports.files_from_settings(settings, store),
    )


def toolkit_from_settings(settings: Settings, store: Any) -> verification.Toolkit:
    return verification.Toolkit(
        store=store,
        fetch_policy=verification.FetchPolicy(allow_hosts=frozenset(settings.verify_allow_hosts)),
        ocr_max_pages=settings.ocr_max_pages,
    )


class TransientCheckError(RuntimeError):
    """A check could not reach what it checks (a timeout, a 503): worth trying again later."""


def verify_claim(
    ctx: Context, claim_id: int, *, final: bool = True, now: datetime | None = None
) -> verification.Decision | None:
    """Check a submitted claim's proof and decide: approve it automatically or send it to
    finance. Idempotent: a claim no longer being verified is left alone, and a second run that
    finishes late finds the claim decided and records nothing. When not `final`, a transient
    failure raises TransientCheckError instead of being recorded (the task retries)."""
    with ctx.read_sessions() as session:
        claim = session.get(claims.Claim, claim_id)
        if claim is None or claim.state != claims.ClaimState.VERIFYING:
            return None
        work = verification.gather(session, claim_id)
    results = verification.run_checks(work, ctx.kit, now=now, final=final)
    transient = [r.finding.summary for r in results if r.finding.transient]
    if transient and not final:
        raise TransientCheckError("; ".join(transient))
    with ctx.sessions() as session:
        decision = verification.record(
            session, verification.VERIFIER, work, results, trigger=verification.Trigger.SUBMIT,
            now=now,
        )  # fmt: skip
        session.commit()
    return decision


def rerun_check(
    ctx: Context,
    claim_id: int,
    kind: str,
    document_id: int | None = None,
    requested_by: str | None = None,
    *,
    final: bool = True,
    now: datetime | None = None,
) -> None:
    """Run one check of a claim again and add its result to the claim's history."""
    only = (verification.CheckKind(kind), document_id)
    with ctx.read_sessions() as session:
        work = verification.gather(session, claim_id, only=only)
    results = verification.run_checks(work, ctx.kit, now=now, final=final)
    if not final and any(r.finding.transient for r in results):
        raise TransientCheckError("; ".join(r.finding.summary for r in results))
    trigger = verification.Trigger.RERUN if requested_by else verification.Trigger.RECHECK
    with ctx.sessions() as session:
        verification.record(
            session, verification.VERIFIER, work, results, trigger=trigger,
            requested_by=requested_by, now=now,
        )  # fmt: skip
        session.commit()


# --- payouts and events ---------------------------------------------------------------------


def pay_approved_claim(
    ctx: Context, claim_id: int, *, final: bool = True, now: datetime | None = None
) -> None:
    """An approved claim's program pays immediately: pay the partner now (the payout is sent
    by its own job once this commits)."""
    payouts.on_claim_approved(ctx.sessions, claim_id, now=now)


def send_payout(
    ctx: Context, payout_id: int, *, final: bool = True, now: datetime | None = None
) -> None:
    """Send a payout to its provider. An unknown answer (timeout, 5xx, 429) is tried again by
    the worker with the same idempotency key; on the last try it is left pending for
    recovery, which asks the provider before sending again."""
    try:
        payouts.send_payout(ctx.sessions, ctx.providers, payout_id, now=now)
    except payouts.TransientPayoutError:
        if not final:
            raise
        log.warning("payout %s left pending for recovery", payout_id, exc_info=True)


def deliver_events(
    ctx: Context, partner_id: int | None = None, *, final: bool = True, now: datetime | None = None
) -> None:
    """Deliver a partner's due events (a failed delivery is retried on its own schedule by
    `upkeep`, not by the task)."""
    engagement.deliver(ctx.sessions, ctx.senders, partner_id=partner_id, now=now)


def run_export(
    ctx: Context, job_id: int, *, final: bool = True, now: datetime | None = None
) -> None:
    """Write an export someone asked for, as them, and store its file (idempotent: a job
    already done, or held by another worker, is left alone)."""
    exports.run_export(ctx.sessions, ctx.read_sessions, ctx.files, job_id, now=now)


# The jobs services may enqueue, by name (background.enqueue(session, name, **kwargs)).
JOBS: dict[str, Callable[..., Any]] = {
    claims.VERIFY_JOB: verify_claim,
    verification.RERUN_JOB: rerun_check,
    claims.APPROVED_JOB: pay_approved_claim,
    payouts.SEND_JOB: send_payout,
    engagement.DELIVER_JOB: deliver_events,
    exports.EXPORT_JOB: run_export,
}


@dataclass(frozen=True)
class Upkeep:
    payouts_created: int  # by scheduled runs (and immediate programs' held-back claims)
    payouts_recovered: int  # in-flight payouts confirmed, resent or retried
    events_delivered: int
    signals_turned_on: int | None  # None: not run this time (signals run once a day)
    exports: exports.ExportUpkeep | None = None  # files expired, stalled export jobs re-run


def upkeep(ctx: Context, *, now: datetime | None = None, signals: bool = True) -> Upkeep:
    """The frequent jobs: scheduled payout runs (each new payout is sent by its own job after
    the run commits), payout recovery (crashes, timeouts, retries with backoff), event
    deliveries due for a retry, partner activity signals, and export files past their time
    (deleted) and export jobs whose worker vanished (run again). Each is idempotent and safe
    to run concurrently with itself."""
    when = ensure_utc(now or utcnow())
    run = payouts.scheduled_run(ctx.sessions, now=when)
    recovered = payouts.recover(ctx.sessions, ctx.providers, now=when)
    delivered = engagement.deliver(ctx.sessions, ctx.senders, now=when)
    turned_on = signals_job(ctx.sessions, now=when).turned_on if signals else None
    exported = exports.export_upkeep(ctx.sessions, ctx.read_sessions, ctx.files, now=when)
    return Upkeep(
        len(run.payouts), recovered.touched, len(delivered.delivered), turned_on, exported
    )


@dataclass(frozen=True)
class Sweep:
    resent: int  # verifications that had been lost, sent again
    rechecked: int  # landing pages and posts checked again


def verification_sweep(
    ctx: Context, runner: background.Runner, *, now: datetime | None = None
) -> Sweep:
    """Send lost verifications again and re-check live pages that are due (daily, for the
    program's re-check period). Idempotent: safe to run every few minutes."""
    when = ensure_utc(now or utcnow())
    with ctx.read_sessions() as session:
        lost = verification.stalled(session, now=when)
        due = verification.pages_due(session, now=when)
    for claim_id in lost:
        runner(claims.VERIFY_JOB, {"claim_id": claim_id})
    for claim_id, document_id in due:
        runner(
            verification.RERUN_JOB,
            {"claim_id": claim_id, "kind": "page", "document_id": document_id},
        )
    return Sweep(len(lost), len(due))


class InlineRunner:
    """The embedded default: run each job in this process, now. A failing job is logged; the
    sweep finds a claim it left in verification."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def __call__(self, job: str, kwargs: dict[str, Any]) -> None:
        try:
            JOBS[job](self.ctx, **kwargs)
        except Exception:
            log.exception("job %s %s failed", job, kwargs)


class CeleryRunner:
    """Production: send each job to the workers through the broker, with the id of the request
    (or command) that asked for it in a header: the worker's log lines and audit entries carry
    it too."""

    def __init__(self, settings: Settings) -> None:
        self.app, self.queue = celery_app(settings), settings.jobs_queue

    def __call__(self, job: str, kwargs: dict[str, Any]) -> None:
        request_id = audit.current_request_id()
        headers = {REQUEST_ID_HEADER: request_id} if request_id else None
        self.app.send_task(f"mdfledger.{job}", kwargs=kwargs, queue=self.queue, headers=headers)


def runner_for(settings: Settings, ctx: Context) -> background.Runner:
    return CeleryRunner(settings) if settings.jobs == "celery" else InlineRunner(ctx)


def init_app(app: Any, settings: Settings, store: Any) -> None:
    """Run the jobs the app's services enqueue, the way the settings say, with the app's own
    payout providers and event senders (pages and jobs share them)."""
    ctx = Context(
        app.extensions["mdfledger.db"],
        app.extensions["mdfledger.db.read"],
        toolkit_from_settings(settings, store),
        app.extensions[payouts.APP_KEY],
        app.extensions[engagement.APP_KEY],
        exports.files_from_settings(settings, store),
    )
    runner = runner_for(settings, ctx)
    background.install(ctx.sessions, runner)
    app.extensions[JOBS_KEY] = (ctx, runner)
    app.extensions[exports.files.APP_KEY] = ctx.files


JOBS_KEY = "mdfledger.jobs"
REQUEST_ID_HEADER = "mdfledger_request_id"  # a Celery message header
# An export of millions of rows writes for many minutes (bench exports: ~1,500 PDF lines/s);
# the app-wide limits below are for checks that hang.
TIME_LIMITS = {exports.EXPORT_JOB: (3 * 3600, 3 * 3600 + 300)}
RETRIES = 5  # transient failures: tried again after 30 s, 1, 2, 4, 8 min; then recorded


def celery_app(settings: Settings) -> Any:
    """The Celery app of the workers and of the web app that sends them jobs."""
    from celery import Celery

    app = Celery("mdfledger", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_default_queue=settings.jobs_queue,
        task_acks_late=True,  # a worker that dies mid-job leaves the job for another
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,  # OCR jobs are slow: do not hoard them
        task_soft_time_limit=240,  # a check that hangs is stopped, never the worker
        task_time_limit=300,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        # Celery's own formats, with the id of the request the job came from (mdfledger.logs).
        worker_log_format="[%(asctime)s: %(levelname)s/%(processName)s] [%(request_id)s]"
        " %(message)s",
        worker_task_log_format="[%(asctime)s: %(levelname)s/%(processName)s] [%(request_id)s]"
        " %(task_name)s[%(task_id)s]: %(message)s",
    )
    logs.install()
    worker: dict[str, Context] = {}

    def context() -> Context:
        if "ctx" not in worker:  # one engine per worker process, made on its first job
            worker["ctx"] = context_from_settings(settings)
        return worker["ctx"]

    def task(job: str) -> None:
        # Not shared: each Celery app (one per runner or worker) has its own tasks.
        soft, hard = TIME_LIMITS.get(job, (None, None))  # None: the app's (a hung check)

        @app.task(
            name=f"mdfledger.{job}", bind=True, max_retries=RETRIES, shared=False,
            soft_time_limit=soft, time_limit=hard,
        )  # fmt: skip
        def run(self: Any, **kwargs: Any) -> None:
            final = self.request.retries >= RETRIES
            request_id = (self.request.headers or {}).get(REQUEST_ID_HEADER)
            if not audit.valid_request_id(request_id):
                request_id = None  # a job no request asked for gets an id of its own
            try:
                with audit.request_id_scope(request_id):
                    JOBS[job](context(), **kwargs, final=final)
            except (TransientCheckError, payouts.TransientPayoutError, OperationalError) as error:
                raise self.retry(exc=error, countdown=30 * 2**self.request.retries) from error

    for job in JOBS:
        task(job)
    return app


class Scheduler:
    """The embedded default's scheduler: one daemon thread running the daily jobs every
    `interval` seconds (they are idempotent, so running hourly costs a few queries) and the
    upkeep (payout recovery and runs, event retries) every `tick` seconds. In production cron
    runs `mdfledger funds expire`, `mdfledger verification sweep` and `mdfledger upkeep`."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        interval: float = 3600.0,
        tick: float = 60.0,
        clock: Callable[[], datetime] = utcnow,
        jobs: tuple[Context, background.Runner] | None = None,
    ) -> None:
        self.sessions, self.interval, self.clock, self.jobs = sessions, interval, clock, jobs
        self.tick = tick
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.runs = 0

    def run_once(self) -> programs.ExpiryRun | None:
        try:
            result = run_period_end(self.sessions, now=self.clock())
        except Exception:  # a failed run must not kill the thread; the next one retries
            log.exception("period-end job failed")
            return None
        self.runs += 1
        if self.jobs is not None:
            try:
                verification_sweep(*self.jobs, now=self.clock())
            except Exception:
                log.exception("verification sweep failed")
        self.run_upkeep(signals=True)
        if result.reservations_expired or result.funds:
            log.info(
                "period end: %d reservation(s) expired, %d fund(s) forfeited",
                result.reservations_expired,
                len(result.funds),
            )
        return result

    def run_upkeep(self, *, signals: bool = False) -> Upkeep | None:
        if self.jobs is None:
            return None
        try:
            return upkeep(self.jobs[0], now=self.clock(), signals=signals)
        except Exception:  # as above: the next tick tries again
            log.exception("upkeep failed")
            return None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="mdfledger-jobs", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        last: float | None = None
        while not self._stop.is_set():
            if last is None or time.monotonic() - last >= self.interval:
                last = time.monotonic()
                self.run_once()
            else:
                self.run_upkeep()
            self._stop.wait(self.tick)
