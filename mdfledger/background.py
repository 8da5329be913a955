"""Work to do after a transaction commits: services ask for it, the app decides how it runs.

A service calls `enqueue(session, "verify_claim", claim_id=7)`; nothing happens unless the
transaction commits (a rollback forgets it). After the commit, the runner `install` put on the
session factory gets each job: in the embedded default it runs the job in-process at once
(`jobs.InlineRunner`), in production it sends it to a Celery worker (`jobs.CeleryRunner`).
Sessions from a factory without a runner (service tests) keep the list and drop it on close.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)
PENDING = "mdfledger.background.pending"
MARKS = "mdfledger.background.savepoints"  # savepoint -> jobs pending when it began

Runner = Callable[[str, dict[str, Any]], None]


def enqueue(session: Session, job: str, **kwargs: Any) -> None:
    """Run `job(**kwargs)` after this session's transaction commits. Arguments must be plain
    JSON values (they may travel to a worker)."""
    session.info.setdefault(PENDING, []).append((job, kwargs))


def pending(session: Session) -> list[tuple[str, dict[str, Any]]]:
    """The jobs waiting for this session's commit (for tests and for running them by hand)."""
    return list(session.info.get(PENDING, ()))


def install(sessions: sessionmaker[Session], runner: Runner) -> None:
    """Hand every committed job of sessions from `sessions` to `runner`."""

    @event.listens_for(sessions, "after_commit")
    def _after_commit(session: Session) -> None:
        if session.in_nested_transaction():  # a savepoint released: the work is not committed
            return
        jobs = session.info.pop(PENDING, [])
        for job, kwargs in jobs:
            try:
                runner(job, kwargs)
            except Exception:  # the change is committed; a lost job is found by the sweeper
                log.exception("background job %s %s could not be started", job, kwargs)

    @event.listens_for(sessions, "after_transaction_create")
    def _savepoint(session: Session, transaction: Any) -> None:
        if transaction.nested:  # jobs asked for inside it go if it rolls back
            session.info.setdefault(MARKS, {})[transaction] = len(session.info.get(PENDING, ()))

    @event.listens_for(sessions, "after_soft_rollback")
    def _after_rollback(session: Session, previous: Any) -> None:
        mark = session.info.get(MARKS, {}).pop(previous, None)
        if previous.nested and mark is not None:
            del session.info.get(PENDING, [])[mark:]
        elif not previous.nested:
            session.info.pop(PENDING, None)
            session.info.pop(MARKS, None)
