"""Running export jobs: each step in its own short transaction, the file written outside any.

1. take the job: queued, or running under a lease that lapsed (a worker died). It is leased to
   this run (`lease`, `leased_until`) and committed. On PostgreSQL the row is locked FOR
   UPDATE SKIP LOCKED; on SQLite the write lock does it. So two workers never run one job: the
   second finds it leased and leaves it.
2. write the file to a temporary file, reading in a read-only session (one snapshot on
   PostgreSQL) as the actor who asked, and commit progress every PROGRESS_EVERY rows in a
   short transaction that also renews the lease. A run that finds its lease taken over stops.
3. store the file (exports.files), then mark the job ready with its key, size and SHA-256,
   if the lease is still this run's (else the stored file is deleted again).

A writer's refusal (a DomainError) fails the job with its message; anything else fails it
with a message that says it was logged. Safe to run again: a job that is not claimable is
left alone. `upkeep` deletes files past their time and re-runs jobs whose worker vanished.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from mdfledger import audit
from mdfledger.actor import Actor
from mdfledger.auth.models import User
from mdfledger.auth.rules import may_delegate
from mdfledger.clock import ensure_utc, utcnow
from mdfledger.errors import DomainError, ValidationError
from mdfledger.exports import job_rules, kinds
from mdfledger.exports.files import ExportFiles
from mdfledger.exports.job_rules import LEASE, ExportEvent, ExportState
from mdfledger.exports.models import ExportJob
from mdfledger.exports.service import params_of

log = logging.getLogger(__name__)
EXPORTER = Actor.system("exports")
ERROR_MAX = 2000


class LeaseLost(Exception):
    """Another worker took the job over (this run's lease lapsed)."""


@dataclass(frozen=True)
class _Taken:
    job_id: int
    lease: str
    actor: Actor
    user_id: int | None
    kind: str
    format: str
    params: dict[str, Any]


def run_export(
    sessions: sessionmaker[Session],
    read_sessions: sessionmaker[Session],
    files: ExportFiles,
    job_id: int,
    *,
    now: datetime | None = None,
    every: int = job_rules.PROGRESS_EVERY,
) -> str | None:
    """Run one export job to the end. Returns its state, or None when it was not this run's
    to do (done already, or another worker holds it). `now` fixes the clock (tests)."""

    def clock() -> datetime:
        return utcnow() if now is None else ensure_utc(now)

    taken = _take(sessions, job_id, clock())
    if taken is None:
        return None
    try:
        export_kind = kinds.kind(taken.kind)
        _still_allowed(read_sessions, taken, export_kind)
        with tempfile.TemporaryFile() as temp:
            report = _Reporter(sessions, taken, clock, every)
            with read_sessions() as session:
                export_kind.write(session, taken.actor, taken.params, taken.format, temp, report)
            report.final()
            size, sha256 = _digest(temp)
            key = f"{taken.job_id}/{taken.lease}.{taken.format}"
            files.put(key, temp, media_type=kinds.MEDIA_TYPES[taken.format])
        return _finish(sessions, files, taken, key, size, sha256, clock())
    except LeaseLost:
        log.warning("export %s was taken over by another worker", job_id)
        return None
    except DomainError as error:
        return _fail(sessions, taken, error.message, clock())
    except Exception as error:
        log.exception("export %s failed", job_id)
        message = (
            f"the export could not be written ({type(error).__name__}); the error was logged:"
            " ask for it again, or tell an admin if it fails again"
        )
        return _fail(sessions, taken, message, clock())


def _lock(session: Session, job_id: int, *, skip_locked: bool = False) -> ExportJob | None:
    statement = select(ExportJob).where(ExportJob.id == job_id)
    if session.get_bind().dialect.name == "postgresql":
        statement = statement.with_for_update(skip_locked=skip_locked)
    return session.scalars(statement).one_or_none()


def _take(sessions: sessionmaker[Session], job_id: int, now: datetime) -> _Taken | None:
    with sessions() as session:
        job = _lock(session, job_id, skip_locked=True)
        if job is None or not job_rules.claimable(job.state, job.leased_until, now):
            return None
        if job.attempts >= job_rules.MAX_ATTEMPTS:
            _set_failed(
                session, job,
                f"the export stopped {job.attempts} times without finishing: ask for it again,"
                " perhaps for less at a time",
                now,
            )  # fmt: skip
            session.commit()
            return None
        job.state = job_rules.next_state(job.state, ExportEvent.START)
        job.lease, job.leased_until = uuid.uuid4().hex, now + LEASE
        job.attempts += 1
        job.started_at, job.rows_done = now, 0
        kind, _, name = job.requested_by.partition(":")
        actor = Actor(kind, name, job.role, job.partner_id)  # type: ignore[arg-type]
        taken = _Taken(job.id, job.lease, actor, job.user_id, job.kind, job.format, params_of(job))
        session.commit()
    return taken


def _still_allowed(
    read_sessions: sessionmaker[Session], taken: _Taken, export_kind: kinds.ExportKind
) -> None:
    """The job runs with the rights it was asked with, if its user still has them."""
    if taken.user_id is None:
        return
    with read_sessions() as session:
        user = session.get(User, taken.user_id)
        if user is None or not user.is_active:
            raise ValidationError("the user who asked for this export can no longer sign in")
        # A token may carry a lesser role than its user's (auth.rules.may_delegate).
        if (
            not may_delegate(user.role, taken.actor.role)
            or user.partner_id != taken.actor.partner_id
        ):
            raise ValidationError("the role of the user who asked for this export has changed")
    if taken.actor.role not in export_kind.roles:
        raise ValidationError(f"a {taken.actor.role} user cannot export this")


def _digest(file: BinaryIO) -> tuple[int, str]:
    """The file's size and SHA-256, read from the start in chunks."""
    file.seek(0)
    digest, size = hashlib.sha256(), 0
    while chunk := file.read(1024 * 1024):
        digest.update(chunk)
        size += len(chunk)
    file.seek(0)
    return size, digest.hexdigest()


class _Reporter:
    """The progress callback: commits rows done (and renews the lease) at the first call and
    every `every` rows; raises LeaseLost once another worker holds the job."""

    def __init__(
        self, sessions: sessionmaker[Session], taken: _Taken, clock: Any, every: int
    ) -> None:
        self.sessions, self.taken, self.clock, self.every = sessions, taken, clock, every
        self.done, self.total, self.reported = 0, None, -1

    def __call__(self, done: int, total: int | None) -> None:
        self.done, self.total = done, total
        if self.reported < 0 or done - self.reported >= self.every:
            self._commit()

    def final(self) -> None:
        if self.done != self.reported:
            self._commit()

    def _commit(self) -> None:
        values: dict[str, Any] = {
            "rows_done": self.done,
            "leased_until": self.clock() + LEASE,
        }
        if self.total is not None:
            values["rows_total"] = self.total
        with self.sessions() as session:
            result = session.execute(
                update(ExportJob)
                .where(
                    ExportJob.id == self.taken.job_id,
                    ExportJob.lease == self.taken.lease,
                    ExportJob.state == ExportState.RUNNING.value,
                )
                .values(**values)
            )
            session.commit()
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise LeaseLost(self.taken.job_id)
        self.reported = self.done


def _finish(
    sessions: sessionmaker[Session],
    files: ExportFiles,
    taken: _Taken,
    key: str,
    size: int,
    sha256: str,
    now: datetime,
) -> str | None:
    with sessions() as session:
        job = _lock(session, taken.job_id)
        if job is None or job.state != ExportState.RUNNING or job.lease != taken.lease:
            session.rollback()
            files.delete(key)  # another worker took over; its file is the one that counts
            return None
        job.state = job_rules.next_state(job.state, ExportEvent.FINISH)
        job.file_key, job.file_size, job.file_sha256 = key, size, sha256
        job.finished_at, job.expires_at = now, now + job_rules.KEEP
        job.lease = job.leased_until = None
        audit.record(
            session, EXPORTER, "export.ready", object_type="export", object_id=job.id,
            summary=f"Export {job.id} ({job.filename}) is ready: {size:,} bytes,"
            f" {job_rules.progress_text(job.rows_done, None)}",
            after={"state": job.state, "sha256": job.file_sha256, "size": job.file_size},
            subject_partner_id=job.partner_id,
        )  # fmt: skip
        session.commit()
        return job.state


def _set_failed(session: Session, job: ExportJob, message: str, now: datetime) -> None:
    job.state = job_rules.next_state(job.state, ExportEvent.FAIL)
    job.error = message[:ERROR_MAX]
    job.finished_at = now
    job.lease = job.leased_until = None
    audit.record(
        session, EXPORTER, "export.fail", object_type="export", object_id=job.id,
        summary=f"Export {job.id} ({job.filename}) failed: {job.error}",
        after={"state": job.state, "error": job.error}, subject_partner_id=job.partner_id,
    )  # fmt: skip


def _fail(
    sessions: sessionmaker[Session], taken: _Taken, message: str, now: datetime
) -> str | None:
    with sessions() as session:
        job = _lock(session, taken.job_id)
        if job is None or job.state != ExportState.RUNNING or job.lease != taken.lease:
            return None
        _set_failed(session, job, message, now)
        session.commit()
        return job.state


# --- upkeep --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportUpkeep:
    expired: int  # files deleted past their time
    rerun: int  # jobs whose worker vanished (or that were never started), run again


def upkeep(
    sessions: sessionmaker[Session],
    read_sessions: sessionmaker[Session],
    files: ExportFiles,
    *,
    now: datetime | None = None,
    limit: int = 100,
) -> ExportUpkeep:
    """Delete the files of ready jobs past `expires_at` (marking them expired), and run jobs
    left running under a lapsed lease, or queued for longer than a lease (their start was
    lost). Idempotent; safe to run concurrently with itself and with workers."""
    when = ensure_utc(now or utcnow())
    with sessions() as session:
        due = list(
            session.scalars(
                select(ExportJob.id)
                .where(ExportJob.state == ExportState.READY.value, ExportJob.expires_at <= when)
                .order_by(ExportJob.id)
                .limit(limit)
            )
        )
    expired = sum(_expire(sessions, files, job_id, when) for job_id in due)
    with sessions() as session:
        stuck = list(
            session.scalars(
                select(ExportJob.id)
                .where(
                    or_(
                        (ExportJob.state == ExportState.RUNNING.value)
                        & (ExportJob.leased_until <= when),
                        (ExportJob.state == ExportState.QUEUED.value)
                        & (ExportJob.created_at <= when - LEASE),
                    )
                )
                .order_by(ExportJob.id)
                .limit(limit)
            )
        )
    rerun = 0
    for job_id in stuck:
        if run_export(sessions, read_sessions, files, job_id, now=now) is not None:
            rerun += 1
    return ExportUpkeep(expired, rerun)


def _expire(
    sessions: sessionmaker[Session], files: ExportFiles, job_id: int, now: datetime
) -> bool:
    with sessions() as session:
        job = _lock(session, job_id, skip_locked=True)
        if job is None or job.state != ExportState.READY or job.expires_at is None:
            return False
        if job.expires_at > now:
            return False
        # The file goes first: a crash before the commit leaves a ready job whose file is gone,
        # which the next upkeep expires (deleting a missing file is no error).
        assert job.file_key is not None
        files.delete(job.file_key)
        job.state = job_rules.next_state(job.state, ExportEvent.EXPIRE)
        job.file_key = None
        audit.record(
            session, EXPORTER, "export.expire", object_type="export", object_id=job.id,
            summary=f"Export {job.id} ({job.filename}) expired: its file was deleted",
            after={"state": job.state}, subject_partner_id=job.partner_id,
        )  # fmt: skip
        session.commit()
    return True
