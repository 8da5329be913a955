"""Exports on pages: the Exports page (ask for the journal or the audit log, see your export
jobs with their progress), a job's page (it reloads itself while the job runs), the download,
the audit page's CSV and XLSX exports, and `offer_download` for any page that offers an export.

Who downloads a job's file: whoever asked for it, and staff whose role may ask for that kind
(exports.service.visible); partners only their own. Every download is in the audit log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from tempfile import SpooledTemporaryFile
from typing import Any

from flask import Response, flash, redirect, render_template, request, stream_with_context, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy.orm import Session
from wtforms import DateField, HiddenField, SelectField
from wtforms.validators import Optional

from mdfledger import exports
from mdfledger.actor import Actor
from mdfledger.auth.access import request_actor, require_roles
from mdfledger.auth.models import Role
from mdfledger.csvfile import human_size
from mdfledger.db import get_read_session, get_session
from mdfledger.errors import DomainError, ValidationError
from mdfledger.exports import job_rules, kinds
from mdfledger.exports.audit_log import csv_chunks
from mdfledger.exports.job_rules import ExportState
from mdfledger.exports.service import params_of
from mdfledger.storage import content_disposition
from mdfledger.web import bp, choices
from mdfledger.web.partners import paginate

ALL_ROLES = (Role.ADMIN, Role.FINANCE, Role.AUDITOR, Role.PARTNER)
PER_PAGE = 25
SPOOL_BYTES = 8 * 1024 * 1024  # a small export is kept in memory up to this, then on disk
REFRESH_SECONDS = 3
STATE_TEXT = {
    ExportState.QUEUED: "Waiting to start",
    ExportState.RUNNING: "Being prepared",
    ExportState.READY: "Ready",
    ExportState.FAILED: "Failed",
    ExportState.EXPIRED: "Expired",
}
AUDIT_FILTERS = ("action", "actor", "object_type", "object_id", "partner", "since", "until")


class ExportForm(FlaskForm):
    kind = HiddenField()
    format = SelectField("Format")
    as_of = DateField("As of (end of the UTC day)", validators=[Optional()])
    since = DateField("From (UTC date)", validators=[Optional()])
    until = DateField("To (UTC date)", validators=[Optional()])


def _forms(data: Mapping[str, Any] | None = None) -> dict[str, ExportForm]:
    """The request forms of the kinds the user may ask for here, by kind."""
    forms = {}
    for name in ("journal", "audit"):
        export_kind = kinds.kind(name)
        if current_user.role not in export_kind.roles:
            continue
        form = ExportForm(formdata=data, prefix=name)
        form.kind.data = name
        form.format.choices = choices(
            (f, f.upper() if len(f) <= 4 else f) for f in export_kind.formats
        )
        forms[name] = form
    return forms


def _params(name: str, form: ExportForm) -> dict[str, Any]:
    if name == "journal":
        return {"as_of": form.as_of.data.isoformat()} if form.as_of.data else {}
    return {
        key: getattr(form, key).data.isoformat()
        for key in ("since", "until")
        if getattr(form, key).data
    }


def _page(forms: dict[str, ExportForm], error: DomainError | None = None, status: int = 200) -> Any:
    session, actor = get_read_session(), request_actor()
    statement = exports.jobs_query(actor)
    page = paginate(session, statement, PER_PAGE)
    jobs = session.scalars(statement.offset(page.offset).limit(page.size)).all()
    html = render_template(
        "exports/list.html",
        jobs=jobs,
        page=page,
        forms=forms,
        error=error,
        **_helpers(),
    )
    return html, status


def _helpers() -> dict[str, Any]:
    return {
        "state_text": STATE_TEXT,
        "progress": job_rules.progress_text,
        "percent": job_rules.percent_done,
        "human_size": human_size,
        "label": _label,
        "keep_days": job_rules.KEEP.days,
    }


def _label(kind_name: str) -> str:
    try:
        return kinds.kind(kind_name).label
    except ValidationError:
        return kind_name


@bp.get("/exports")
@require_roles(*ALL_ROLES)
def exports_page() -> Any:
    return _page(_forms())


@bp.post("/exports")
@require_roles(*ALL_ROLES)
def request_export() -> Any:
    name = next((k for k in ("journal", "audit") if f"{k}-kind" in request.form), "")
    forms = _forms(request.form)
    form = forms.get(name)
    if form is None:
        return _page(_forms(), ValidationError("choose an export to ask for"), 422)
    if not form.validate_on_submit():
        field, messages = next(iter(form.errors.items()))
        label = getattr(form, field).label.text if hasattr(form, field) else field
        return _page(forms, ValidationError(f"{label}: {messages[0]}"), 422)
    session = get_session()
    try:
        job = exports.request_export(
            session, request_actor(), name, form.format.data, _params(name, form)
        )
    except DomainError as error:
        session.rollback()
        if error.http_status in (403, 404):
            raise
        return _page(forms, error, 422)
    session.commit()  # runs the job now in the embedded default, or sends it to a worker
    flash(
        f"Export {job.id} asked for: {job.filename}. This page shows when it is ready.", "success"
    )
    return redirect(url_for("web.export_job", job_id=job.id))


@bp.get("/exports/<int:job_id>")
@require_roles(*ALL_ROLES)
def export_job(job_id: int) -> Any:
    session = get_read_session()
    job = exports.get_job(session, request_actor(), job_id)
    running = job.state in (ExportState.QUEUED, ExportState.RUNNING)
    return render_template(
        "exports/job.html",
        job=job,
        params=params_of(job),
        refresh=REFRESH_SECONDS if running else None,
        **_helpers(),
    )


@bp.get("/exports/<int:job_id>/file")
@require_roles(*ALL_ROLES)
def export_file(job_id: int) -> Response:
    session = get_session()
    job = exports.download(session, request_actor(), job_id)
    assert job.file_key is not None
    chunks = exports.app_files().chunks(job.file_key)  # before the commit: a missing file is 404
    session.commit()
    return attachment(chunks, job.format, job.filename, job.file_size)


def attachment(body: Any, fmt: str, filename: str, length: int | None = None) -> Response:
    response = Response(body, content_type=kinds.MEDIA_TYPES[fmt])
    response.headers["Content-Disposition"] = content_disposition(filename)
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    if length is not None:
        response.headers["Content-Length"] = str(length)
    return response


def offer_download(kind_name: str, params: Mapping[str, Any], fmt: str) -> Response:
    """An export for the signed-in user: small ones (job_rules.DIRECT_MAX_ROWS rows or fewer)
    written at once and sent as an attachment; larger ones queued as a background job, with a
    redirect to its page. Raises the kind's DomainError for bad parameters (the caller shows
    it) and Forbidden for a role that may not ask."""
    session, actor = get_session(), request_actor()
    read = get_read_session()
    prepared = exports.prepare(read, actor, kind_name, fmt, dict(params))
    if prepared.in_background:
        job = exports.queue(session, actor, prepared)
        session.commit()
        flash(
            f"The export has {prepared.rows:,} rows, so it is being prepared in the background:"
            " this page shows its progress and a download link when it is ready.",
            "success",
        )
        return redirect(url_for("web.export_job", job_id=job.id))
    spool = SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 (closed by the response)
    try:
        exports.write_now(session, read, actor, prepared, spool)
    except BaseException:
        spool.close()
        raise
    session.commit()
    length = spool.tell()
    spool.seek(0)
    response = attachment(spooled_chunks(spool), prepared.format, prepared.filename, length)
    return response


def stream_csv(
    kind_name: str,
    params: Mapping[str, Any],
    chunks: Callable[[Session, Actor, exports.Prepared], Iterator[bytes]],
) -> Response:
    """A CSV export for the signed-in user, streamed as it is read whatever its size (flat
    memory), after its audit entry is committed. Raises the kind's DomainError."""
    session, read, actor = get_session(), get_read_session(), request_actor()
    prepared = exports.prepare(read, actor, kind_name, "csv", dict(params))
    exports.record_download(session, actor, prepared)
    session.commit()
    body = stream_with_context(chunks(read, actor, prepared))
    return attachment(body, "csv", prepared.filename)


def spooled_chunks(spool: Any) -> Iterator[bytes]:
    with spool:
        while chunk := spool.read(1024 * 1024):
            yield chunk


# --- the audit page's exports --------------------------------------------------------------------


@bp.get("/audit/export")
@require_roles(Role.AUDITOR, Role.ADMIN, Role.FINANCE)
def audit_export() -> Any:
    """The audit page's filtered entries: CSV streamed as it is read, XLSX through
    offer_download (large logs become a background job)."""
    fmt = request.args.get("format", "csv")
    filters = {k: v for k, v in request.args.items() if k in (*AUDIT_FILTERS, "request") and v}
    try:
        if fmt != "csv":
            return offer_download("audit", filters, fmt)
        return stream_csv("audit", filters, lambda read, who, p: csv_chunks(read, who, p.params))
    except ValidationError as error:
        flash(f"Not exported: {error.message}", "error")
        return redirect(url_for("web.audit_log", **filters))
