"""Exports people ask for: checked through the kind registry (exports.kinds), written at once
when small, or run as a background job (exports.jobs) whose file is downloaded when ready.

Who sees a job: whoever asked for it; and staff whose role may ask for that kind themselves
(they could write the same file), so an auditor may fetch the journal export finance asked
for. Partner users see only their own jobs. Anything else is "not found". Asking, downloading
and writing an export at once leave audit entries ("export.request", "export.download").
Services flush, never commit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, BinaryIO

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from mdfledger import audit, background
from mdfledger.actor import Actor
from mdfledger.auth.scope import partner_scope
from mdfledger.clock import utcnow
from mdfledger.errors import Conflict, DomainError, Forbidden, NotFound, ValidationError
from mdfledger.exports import job_rules, kinds
from mdfledger.exports.job_rules import ExportState
from mdfledger.exports.models import ExportJob

EXPORT_JOB = "run_export"  # mdfledger.jobs.JOBS


class ExportNotReady(Conflict):
    code = "export_not_ready"


class ExportFailed(Conflict):
    code = "export_failed"


class ExportExpired(DomainError):
    code = "export_expired"
    http_status = 410


@dataclass(frozen=True)
class Prepared:
    """An export checked for an actor: its kind, format, normalised parameters, estimated
    rows and the download's file name."""

    kind: kinds.ExportKind
    format: str
    params: dict[str, Any]
    rows: int
    filename: str

    @property
    def media_type(self) -> str:
        return kinds.MEDIA_TYPES[self.format]

    @property
    def in_background(self) -> bool:
        return job_rules.in_background(self.rows)


def _may_ask(actor: Actor, export_kind: kinds.ExportKind) -> None:
    if actor.kind != "system" and actor.role not in export_kind.roles:
        raise Forbidden(f"a {actor.role} user cannot export the {export_kind.label.lower()}")


def prepare(
    session: Session, actor: Actor, kind_name: object, fmt: object, params: object
) -> Prepared:
    """Check what `actor` asks for: the kind, the role, the format and the parameters."""
    export_kind = kinds.kind(kind_name)
    _may_ask(actor, export_kind)
    fmt = kinds.check_format(export_kind, fmt or export_kind.formats[0])
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ValidationError("params must be an object", field="params")
    checked = export_kind.check(session, actor, params)
    if len(_json(checked)) > job_rules.PARAMS_MAX_CHARS:
        raise ValidationError("these parameters are too long", field="params")
    rows = export_kind.size(session, actor, checked)
    return Prepared(export_kind, fmt, checked, rows, export_kind.filename(checked, fmt))


def _json(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _described(prepared: Prepared) -> str:
    return (
        f"{prepared.kind.label} ({prepared.format}, {job_rules.progress_text(prepared.rows, None)})"
    )


def request_export(
    session: Session, actor: Actor, kind_name: object, fmt: object, params: object
) -> ExportJob:
    """Queue an export as a background job run as `actor` after the commit."""
    prepared = prepare(session, actor, kind_name, fmt, params)
    return queue(session, actor, prepared)


def queue(session: Session, actor: Actor, prepared: Prepared) -> ExportJob:
    """Queue an export `prepare` checked for `actor`."""
    user_id = int(actor.id) if actor.kind == "user" and actor.id.isdigit() else None
    job = ExportJob(
        requested_by=actor.label[:200], actor_kind=actor.kind, role=actor.role,
        partner_id=actor.partner_id, user_id=user_id, kind=prepared.kind.name,
        format=prepared.format, params=_json(prepared.params), filename=prepared.filename,
        state=ExportState.QUEUED.value, rows_done=0, rows_total=prepared.rows, attempts=0,
        created_at=utcnow(),
    )  # fmt: skip
    session.add(job)
    session.flush()
    audit.record(
        session, actor, "export.request", object_type="export", object_id=job.id,
        summary=f"Asked for an export of the {_described(prepared)}",
        after={"kind": job.kind, "format": job.format, "params": prepared.params},
        subject_partner_id=actor.partner_id,
    )  # fmt: skip
    background.enqueue(session, EXPORT_JOB, job_id=job.id)
    return job


def write_now(
    session: Session, read_session: Session, actor: Actor, prepared: Prepared, out: BinaryIO
) -> None:
    """Write a (small) export straight to `out`, reading in `read_session`; the download is
    recorded in `session`."""
    prepared.kind.write(read_session, actor, prepared.params, prepared.format, out, _ignore)
    record_download(session, actor, prepared)


def record_download(session: Session, actor: Actor, prepared: Prepared) -> None:
    """The audit entry of an export written at once (a streamed CSV, a small file)."""
    audit.record(
        session, actor, "export.download", object_type="export_kind",
        object_id=prepared.kind.name,
        summary=f"Downloaded an export of the {_described(prepared)}",
        after={"format": prepared.format, "params": prepared.params},
        subject_partner_id=actor.partner_id,
    )  # fmt: skip


def _ignore(done: int, total: int | None) -> None:
    return None


# --- reading -------------------------------------------------------------------------------------


def jobs_query(actor: Actor) -> Select[tuple[ExportJob]]:
    """The export jobs `actor` asked for, newest first."""
    return (
        select(ExportJob).where(ExportJob.requested_by == actor.label).order_by(ExportJob.id.desc())
    )


def visible(actor: Actor, job: ExportJob) -> bool:
    if job.requested_by == actor.label or actor.kind == "system":
        return True
    if partner_scope(actor) is not None:
        return False
    try:
        export_kind = kinds.kind(job.kind)
    except ValidationError:
        return False
    return actor.role in export_kind.roles


def get_job(session: Session, actor: Actor, job_id: object) -> ExportJob:
    """One export job `actor` may see; anything else is not found."""
    is_id = isinstance(job_id, int) and not isinstance(job_id, bool) and 0 < job_id < 2**63
    job = session.get(ExportJob, job_id) if is_id else None
    if job is None or not visible(actor, job):
        raise NotFound(f"export {job_id} not found")
    return job


def params_of(job: ExportJob) -> dict[str, Any]:
    return json.loads(job.params)


def download(session: Session, actor: Actor, job_id: object) -> ExportJob:
    """A ready job whose file `actor` may fetch now (recorded); otherwise why not: 409 while it
    is queued, running or failed, 410 once expired."""
    job = get_job(session, actor, job_id)
    if job.state == ExportState.READY:
        audit.record(
            session, actor, "export.download", object_type="export", object_id=job.id,
            summary=f"Downloaded export {job.id} ({job.filename})",
            after={"sha256": job.file_sha256, "size": job.file_size},
            subject_partner_id=actor.partner_id,
        )  # fmt: skip
        return job
    if job.state == ExportState.EXPIRED:
        assert job.expires_at is not None
        raise ExportExpired(
            f"export {job.id} expired on {job.expires_at:%Y-%m-%d %H:%M} UTC and its file was"
            " deleted: ask for it again",
            state=job.state,
        )
    if job.state == ExportState.FAILED:
        raise ExportFailed(f"export {job.id} failed: {job.error}", state=job.state)
    raise ExportNotReady(
        f"export {job.id} is still being prepared:"
        f" {job_rules.progress_text(job.rows_done, job.rows_total)} so far; try again when it"
        " is ready",
        state=job.state,
    )
