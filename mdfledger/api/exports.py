"""Exports over the API: ask for any registered export kind as a background job, follow its
progress, download the file when it is ready; and the audit log's filtered entries as CSV
(streamed) or XLSX.

A token sees the jobs its user asked for, and staff also those of kinds their role may ask for
(mdfledger.exports.service.visible); anything else is 404. Every download is in the audit log.
"""

from __future__ import annotations

from tempfile import SpooledTemporaryFile
from typing import Any

import marshmallow as ma
from flask import Response, stream_with_context, url_for
from marshmallow import validate

from mdfledger import exports
from mdfledger.api import API_PREFIX
from mdfledger.api.audit import AuditListArgsSchema
from mdfledger.api.auth import api_actor, require_roles
from mdfledger.api.blueprint import Blueprint
from mdfledger.api.errors import documented_errors
from mdfledger.api.pagination import PageArgsSchema, page_schema, paginate
from mdfledger.auth.models import Role
from mdfledger.auth.scope import STAFF
from mdfledger.db import get_read_session, get_session
from mdfledger.errors import ValidationError
from mdfledger.exports import ExportJob, job_rules, kinds
from mdfledger.exports.audit_log import csv_chunks
from mdfledger.exports.service import params_of
from mdfledger.web.exports import SPOOL_BYTES, attachment, spooled_chunks

blp = Blueprint(
    "exports",
    __name__,
    url_prefix=API_PREFIX,
    description="Exports: background export jobs with progress and a download when ready, and"
    " the audit log as CSV or XLSX",
)
errors = documented_errors(blp)
ALL = (*STAFF, Role.PARTNER)


class ExportRequestSchema(ma.Schema):
    kind = ma.fields.String(
        required=True,
        validate=validate.Length(min=1, max=32),
        metadata={"description": "journal, audit or statement", "example": "journal"},
    )
    format = ma.fields.String(
        validate=validate.Length(min=1, max=16),
        metadata={
            "description": "The kind's formats: journal hledger or beancount; audit csv or"
            " xlsx; statement csv, xlsx or pdf. Default: the kind's first",
            "example": "hledger",
        },
    )
    params = ma.fields.Dict(
        keys=ma.fields.String(validate=validate.Length(max=40)),
        load_default=dict,
        metadata={
            "description": "The kind's parameters. journal: as_of (a date or an ISO time)."
            " audit: action, actor (user:12 or an e-mail address), object_type, object_id,"
            " partner_id, since, until (dates or ISO times), request_id",
            "example": {"as_of": "2026-03-31"},
        },
    )


class ExportJobSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    kind = ma.fields.String(required=True)
    label = ma.fields.String(required=True, metadata={"example": "Journal"})
    format = ma.fields.String(required=True)
    params = ma.fields.Dict(required=True, metadata={"description": "As checked and stored"})
    state = ma.fields.String(
        required=True,
        validate=validate.OneOf([s.value for s in exports.ExportState]),
        metadata={"description": "queued, running, ready, failed or expired"},
    )
    rows_done = ma.fields.Integer(required=True)
    rows_total = ma.fields.Integer(
        required=True, allow_none=True, metadata={"description": "The estimate; null: unknown"}
    )
    progress = ma.fields.String(required=True, metadata={"example": "1,234 of 5,000 rows (24%)"})
    filename = ma.fields.String(required=True)
    file_size = ma.fields.Integer(required=True, allow_none=True, metadata={"description": "Bytes"})
    sha256 = ma.fields.String(required=True, allow_none=True)
    error = ma.fields.String(required=True, allow_none=True, metadata={"description": "Failed"})
    requested_by = ma.fields.String(required=True, metadata={"example": "user:12"})
    created_at = ma.fields.DateTime(required=True)
    started_at = ma.fields.DateTime(required=True, allow_none=True)
    finished_at = ma.fields.DateTime(required=True, allow_none=True)
    expires_at = ma.fields.DateTime(
        required=True, allow_none=True, metadata={"description": "When the file is deleted"}
    )
    download_url = ma.fields.String(
        required=True, allow_none=True, metadata={"description": "When ready"}
    )


def job_out(job: ExportJob) -> dict[str, Any]:
    try:
        label = kinds.kind(job.kind).label
    except ValidationError:  # a kind no longer registered
        label = job.kind
    ready = job.state == exports.ExportState.READY
    return {
        "id": job.id, "kind": job.kind, "label": label, "format": job.format,
        "params": params_of(job), "state": job.state, "rows_done": job.rows_done,
        "rows_total": job.rows_total,
        "progress": job_rules.progress_text(job.rows_done, job.rows_total),
        "filename": job.filename, "file_size": job.file_size, "sha256": job.file_sha256,
        "error": job.error, "requested_by": job.requested_by, "created_at": job.created_at,
        "started_at": job.started_at, "finished_at": job.finished_at,
        "expires_at": job.expires_at,
        "download_url": url_for("exports.export_file", export_id=job.id) if ready else None,
    }  # fmt: skip


FILE_RESPONSE = {
    "200": {
        "description": "The file, as an attachment named like the job's filename",
        "content": {
            media.split(";")[0]: {"schema": {"type": "string", "format": "binary"}}
            for media in sorted(set(kinds.MEDIA_TYPES.values()))
        },
    }
}


@blp.route("/exports", methods=["POST"])
@require_roles(*ALL)
@blp.arguments(ExportRequestSchema)
@blp.response(202, ExportJobSchema)
@errors(404, 422)
def request_export(args: dict[str, Any]) -> dict[str, Any]:
    """Ask for an export

    Checked at once (kind, format, the role may ask for it, the parameters: 422 naming the
    field, 403 for a role that may not; nothing is created then), then written in the
    background as the caller. Follow `GET /exports/{id}`; when `state` is `ready`, fetch
    `download_url`. Files are kept 7 days.
    """
    session = get_session()
    job = exports.request_export(
        session, api_actor(), args["kind"], args.get("format"), args["params"]
    )
    session.commit()  # starts the job (in this process, or on a worker)
    session.refresh(job)
    return job_out(job)


@blp.route("/exports", methods=["GET"])
@require_roles(*ALL)
@blp.arguments(PageArgsSchema, location="query")
@blp.response(200, page_schema(ExportJobSchema))
@errors()
def list_exports(args: dict[str, Any]) -> dict[str, Any]:
    """My exports, newest first"""
    page = paginate(get_read_session(), exports.jobs_query(api_actor()), args)
    return {**page, "items": [job_out(j) for j in page["items"]]}


@blp.route("/exports/<int:export_id>", methods=["GET"])
@require_roles(*ALL)
@blp.response(200, ExportJobSchema)
@errors(404)
def get_export(export_id: int) -> dict[str, Any]:
    """An export job, with its progress"""
    return job_out(exports.get_job(get_read_session(), api_actor(), export_id))


@blp.route("/exports/<int:export_id>/file", methods=["GET"])
@require_roles(*ALL)
@blp.doc(responses=FILE_RESPONSE)
@errors(404, 409, 410)
def export_file(export_id: int) -> Response:
    """An export's file

    409 while the job is queued or running (the message says how far it got) or when it
    failed (with why); 410 once the file has expired. Every download is in the audit log.
    """
    session = get_session()
    job = exports.download(session, api_actor(), export_id)
    assert job.file_key is not None
    chunks = exports.app_files().chunks(job.file_key)
    session.commit()
    return attachment(chunks, job.format, job.filename, job.file_size)


class AuditExportArgsSchema(AuditListArgsSchema):
    class Meta:
        exclude = ("page", "per_page")

    format = ma.fields.String(
        load_default="csv", validate=validate.OneOf(["csv", "xlsx"]), metadata={"example": "csv"}
    )


@blp.route("/audit/export", methods=["GET"])
@require_roles(*STAFF)
@blp.arguments(AuditExportArgsSchema, location="query")
@blp.doc(
    responses={
        "200": {
            "description": "The filtered entries, oldest first, with what each hash covers",
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                kinds.MEDIA_TYPES["xlsx"]: {"schema": {"type": "string", "format": "binary"}},
            },
        }
    }
)
@errors(422)
def audit_export(args: dict[str, Any]) -> Response:
    """The audit log as CSV or XLSX

    The entries the filters of `GET /audit` find, oldest first. Columns: id, at, actor, who,
    role, action, object_type, object_id, partner, summary, before, after, request_id, hash,
    actor_kind, actor_partner_id, subject_partner_id, previous_hash: enough to recompute each
    hash (see mdfledger/exports/audit_log.py). CSV is streamed; XLSX is written first (for a
    large log, `POST /exports` with kind `audit` runs it in the background).
    """
    fmt = args.pop("format")
    session, read, actor = get_session(), get_read_session(), api_actor()
    prepared = exports.prepare(read, actor, "audit", fmt, args)
    if fmt == "csv":
        exports.record_download(session, actor, prepared)
        session.commit()
        body = stream_with_context(csv_chunks(read, actor, prepared.params))
        return attachment(body, "csv", prepared.filename)
    spool = SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 (closed by the response)
    exports.write_now(session, read, actor, prepared, spool)
    session.commit()
    length = spool.tell()
    spool.seek(0)
    return attachment(spooled_chunks(spool), fmt, prepared.filename, length)
