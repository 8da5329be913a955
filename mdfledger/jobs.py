"""Background jobs. Each job opens its own session and owns its transactions.

They run from the `mdfledger` command (cron or any scheduler calls it) and, in the embedded
default, from the in-process Scheduler that `mdfledger serve` starts; the Celery worker that
runs them in production arrives with the verification work.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from mdfledger import claims, ledger, programs
from mdfledger.actor import Actor
from mdfledger.clock import ensure_utc, utcnow

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


class Scheduler:
    """The embedded default's scheduler: one daemon thread running the daily jobs every
    `interval` seconds (they are idempotent, so running hourly costs a few queries). In
    production a cron entry or Celery beat runs `mdfledger funds expire` instead."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        interval: float = 3600.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sessions, self.interval, self.clock = sessions, interval, clock
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
        if result.reservations_expired or result.funds:
            log.info(
                "period end: %d reservation(s) expired, %d fund(s) forfeited",
                result.reservations_expired,
                len(result.funds),
            )
        return result

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="mdfledger-jobs", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.run_once()
            self._stop.wait(self.interval)
