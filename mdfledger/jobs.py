"""Background jobs. Each job opens its own session and owns its transactions.

Today they run from the `mdfledger` command (cron or any scheduler calls it); the Celery worker
that runs them in production arrives with the verification work.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from mdfledger import ledger
from mdfledger.actor import Actor
from mdfledger.clock import ensure_utc, utcnow

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
