"""Pure rules of background export jobs: the state machine, the lease, how long files are kept,
which exports run at once and which in the background, and progress as people read it.
No database here.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from enum import StrEnum

from mdfledger.errors import Conflict


class ExportState(StrEnum):
    QUEUED = "queued"  # asked for; waiting for a worker
    RUNNING = "running"  # a worker holds its lease and is writing the file
    READY = "ready"  # the file is stored and may be downloaded until it expires
    FAILED = "failed"  # stopped with a message; no file
    EXPIRED = "expired"  # the file was deleted after KEEP


class ExportEvent(StrEnum):
    START = "start"  # a worker takes the job (again, when the last one's lease ran out)
    FINISH = "finish"
    FAIL = "fail"
    EXPIRE = "expire"


S, E = ExportState, ExportEvent

# (state, event) -> new state. Anything not listed is refused.
EXPORT_TRANSITIONS: Mapping[tuple[str, str], str] = {
    (S.QUEUED, E.START): S.RUNNING,
    (S.RUNNING, E.START): S.RUNNING,  # taken over after the lease lapsed (a worker died)
    (S.RUNNING, E.FINISH): S.READY,
    (S.QUEUED, E.FAIL): S.FAILED,  # e.g. the user lost the right to it before it started
    (S.RUNNING, E.FAIL): S.FAILED,
    (S.READY, E.EXPIRE): S.EXPIRED,
}

# A worker holds a job this long past its last progress report; after that another may take it.
LEASE = timedelta(minutes=5)
# Progress is committed (and the lease renewed) every this many rows.
PROGRESS_EVERY = 1000
# Runs that ended without finishing (a worker killed mid-way): then the job fails.
MAX_ATTEMPTS = 3
# Ready files are kept this long, then deleted by upkeep.
KEEP = timedelta(days=7)
# Pages send exports of up to this many rows at once; larger ones become background jobs.
DIRECT_MAX_ROWS = 5000
# A job's parameters, as JSON, are at most this long (they are a kind's checked filters).
PARAMS_MAX_CHARS = 4000


class InvalidTransition(Conflict):
    code = "invalid_transition"


def next_state(state: str, event: str) -> str:
    """The job's state after `event`, or an error that says why it cannot happen now."""
    found = EXPORT_TRANSITIONS.get((state, event))
    if found is None:
        allowed = sorted(e for (s, e) in EXPORT_TRANSITIONS if s == state)
        tail = f"; it can: {', '.join(allowed)}" if allowed else ""
        raise InvalidTransition(
            f"an export that is {state} cannot {event}{tail}", state=state, event=event
        )
    return found


def claimable(state: str, leased_until: datetime | None, now: datetime) -> bool:
    """Whether a worker may take the job now: queued, or running under a lease that lapsed."""
    if state == S.QUEUED:
        return True
    return state == S.RUNNING and (leased_until is None or leased_until <= now)


def in_background(rows: int) -> bool:
    """Whether a page should run an export of `rows` rows as a background job."""
    return rows > DIRECT_MAX_ROWS


def progress_text(done: int, total: int | None) -> str:
    """'1,234 of 5,000 rows (24%)'; '1,234 rows' when the total is unknown. The percentage is
    rounded down and never over 100, so 100% means done."""
    if total is None:
        return f"{done:,} row" + ("" if done == 1 else "s")
    share = percent_done(done, total)
    return f"{done:,} of {total:,} row" + ("" if total == 1 else "s") + f" ({share}%)"


def percent_done(done: int, total: int | None) -> int | None:
    """0-100 for a progress bar; None when the total is unknown."""
    if total is None:
        return None
    return 100 if total <= 0 else min(100, done * 100 // total)
