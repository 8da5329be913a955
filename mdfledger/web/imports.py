"""Import pages: the list of imports, the upload form (allocations or co-op purchases from a CSV
file), one import's summary and rows, and example files. A rejected file is shown line by line
and changes nothing; a good one moves money in one batch and leads to its summary.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from flask_wtf.file import FileAllowed, FileField, FileRequired
from sqlalchemy import select
from werkzeug.wrappers import Response
from wtforms import DateField, SelectField, StringField
from wtforms.validators import Optional

from mdfledger import programs
from mdfledger.auth.access import request_actor, require_roles
from mdfledger.clock import utcnow
from mdfledger.csvfile import MAX_BYTES, Column
from mdfledger.db import get_read_session, get_session
from mdfledger.errors import DomainError, ValidationError
from mdfledger.programs import (
    Allocation,
    Fund,
    Import,
    ImportKind,
    ImportRejected,
    Partner,
    Program,
    Purchase,
)
from mdfledger.programs.imports import ALLOCATION_COLUMNS, PURCHASE_COLUMNS
from mdfledger.web import bp
from mdfledger.web.partners import (
    MANAGERS,
    STAFF,
    FormState,
    actor_names,
    form_state,
    grouped,
    is_manager,
    paginate,
    select_choices,
)

PER_PAGE = 50
ROWS_PER_PAGE = 200
PROBLEMS_SHOWN = 1000  # a file with more bad lines lists the first ones and says how many
KINDS = [
    (ImportKind.ALLOCATIONS.value, "Allocations"),
    (ImportKind.PURCHASES.value, "Co-op purchases"),
]
COLUMNS = {ImportKind.ALLOCATIONS.value: ALLOCATION_COLUMNS, "purchases": PURCHASE_COLUMNS}
# What each column holds, for the help panel.
COLUMN_HELP = {
    ("allocations", "partner"): "the partner's code",
    ("allocations", "amount"): "the amount to allocate, e.g. 1500.00 (no thousands separators)",
    ("allocations", "currency"): "the program's currency code, if given",
    ("allocations", "reason"): "why; the form's reason is used when blank",
    ("purchases", "partner"): "the partner's code",
    ("purchases", "reference"): "the invoice or credit note number",
    ("purchases", "date"): "the purchase date, YYYY-MM-DD, inside the chosen period",
    ("purchases", "amount"): "the net amount; negative for a return or credit note",
    ("purchases", "product_line"): "the product line, when rates depend on it",
    ("purchases", "currency"): "the program's currency code, if given",
}


def _program_labels(session: Any) -> dict[int, Program]:
    return {p.id: p for p in session.scalars(select(Program))}


def _period_label(program: Program | None, start: Any) -> str:
    return programs.period_of(program, start).label if program else start.isoformat()


class ImportForm(FlaskForm):
    kind = SelectField("What the file holds", choices=select_choices(KINDS))
    program = SelectField("Program", coerce=int, choices=[])
    period = DateField("Period containing", validators=[Optional()])
    reason = StringField("Reason")
    file = FileField(
        "CSV file",
        validators=[
            FileRequired("choose a CSV file to upload"),
            FileAllowed(["csv"], "the file must be a .csv file; export it from your spreadsheet"),
        ],
    )


@bp.get("/imports")
@require_roles(*STAFF)
def imports() -> Any:
    session = get_read_session()
    actor = request_actor()
    statement = programs.imports_query(actor)
    page = paginate(session, statement, PER_PAGE)
    rows = session.scalars(statement.offset(page.offset).limit(page.size)).all()
    by_id = _program_labels(session)
    return render_template(
        "imports/list.html",
        imports=rows,
        page=page,
        programs=by_id,
        periods={i.id: _period_label(by_id.get(i.program_id), i.period_start) for i in rows},
        who=actor_names(session, [i.actor for i in rows]),
        can_manage=is_manager(),
        kinds=dict(KINDS),
    )


def _size(limit: int) -> str:
    """10485760 -> '10 MB'; 1024 -> '1 KB'."""
    for unit, scale in (("MB", 1024 * 1024), ("KB", 1024)):
        if limit >= scale:
            return f"{limit / scale:,.1f}".removesuffix(".0") + f" {unit}"
    return f"{limit:,} bytes"


def _upload(form: ImportForm) -> tuple[bytes | None, str]:
    """The uploaded bytes (None when over the size limit) and the file's name."""
    storage = form.file.data
    stream = storage.stream
    stream.seek(0, io.SEEK_END)
    size = stream.tell()
    stream.seek(0)
    name = storage.filename or "upload.csv"
    return (None if size > MAX_BYTES else stream.read()), name


@bp.route("/imports/new", methods=["GET", "POST"])
@require_roles(*MANAGERS)
def new_import() -> Any:
    read = get_read_session()
    actor = request_actor()
    active = read.scalars(programs.programs_query(actor, status="active")).all()
    form = ImportForm()
    program_choices = [(p.id, f"{p.name} ({p.code}, {p.kind}, {p.currency})") for p in active]
    form.program.choices = select_choices(program_choices)
    if request.method == "GET":
        form.period.data = utcnow().date()
        form.program.data = request.args.get("program", type=int)
        form.kind.data = request.args.get("kind", ImportKind.ALLOCATIONS.value)
        form.reason.data = "bulk allocation"
    error: DomainError | None = None
    rejected: ImportRejected | None = None
    if form.validate_on_submit():
        data, filename = _upload(form)
        session = get_session()
        try:
            if data is None:
                limit = _size(MAX_BYTES)
                raise ValidationError(f"the file is over the limit of {limit}", field="file")
            if form.kind.data == ImportKind.PURCHASES:
                report = programs.import_purchases(
                    session, actor, form.program.data, data, filename=filename,
                    day=form.period.data,
                )  # fmt: skip
            else:
                report = programs.import_allocations(
                    session, actor, form.program.data, data, filename=filename,
                    day=form.period.data, reason=form.reason.data or "bulk allocation",
                )  # fmt: skip
        except ImportRejected as exc:
            session.rollback()
            rejected = exc
        except DomainError as exc:
            session.rollback()
            error = exc
        else:
            session.commit()
            skipped = f", {report.skipped} skipped as already imported" if report.skipped else ""
            flash(
                f"Imported {report.filename}: {report.rows} rows, {report.applied} applied"
                f"{skipped}; {grouped(report.moved, report.currency)} {report.currency} moved"
                f" into partner funds for {report.period_label}",
                "success",
            )
            return redirect(url_for("web.show_import", import_id=report.import_id))
    state: FormState = form_state("import", form, error)
    if rejected is not None:
        state.errors["_form"] = rejected.message
    problems = rejected.report.errors if rejected else []
    html = render_template(
        "imports/new.html",
        f=state,
        kinds=KINDS,
        program_choices=program_choices,
        problems=problems[:PROBLEMS_SHOWN],
        problem_count=len(problems),
        rejected=rejected,
        help=_column_help(),
        max_size=_size(MAX_BYTES),
    )
    return html, 422 if state.errors else 200


def _column_help() -> list[tuple[str, str, list[tuple[Column, str]]]]:
    return [
        (kind, label, [(c, COLUMN_HELP.get((kind, c.name), "")) for c in COLUMNS[kind]])
        for kind, label in KINDS
    ]


@bp.get("/imports/<int:import_id>")
@require_roles(*STAFF)
def show_import(import_id: int) -> Any:
    session = get_read_session()
    record = session.scalar(programs.imports_query(request_actor()).where(Import.id == import_id))
    if record is None:
        abort(404)
    program = session.get(Program, record.program_id)
    assert program is not None
    if record.kind == ImportKind.PURCHASES:
        statement = (
            select(Purchase, Partner)
            .join(Partner, Partner.id == Purchase.partner_id)
            .where(Purchase.import_id == record.id)
            .order_by(Purchase.id)
        )
    else:
        statement = (
            select(Allocation, Partner, Fund)
            .join(Partner, Partner.id == Allocation.partner_id)
            .join(Fund, Fund.id == Allocation.fund_id)
            .where(Allocation.import_id == record.id)
            .order_by(Allocation.id)
        )
    page = paginate(session, statement, ROWS_PER_PAGE)
    rows = session.execute(statement.offset(page.offset).limit(page.size)).all()
    reversed_ids: set[int] = set()
    if record.kind == ImportKind.ALLOCATIONS and rows:
        reversed_ids = set(
            session.scalars(
                select(Allocation.reverses_id).where(
                    Allocation.reverses_id.in_([row[0].id for row in rows])
                )
            )
        )
    return render_template(
        "imports/detail.html",
        record=record,
        program=program,
        period=_period_label(program, record.period_start),
        rows=rows,
        page=page,
        reversed_ids=reversed_ids,
        who=actor_names(session, [record.actor]),
        kinds=dict(KINDS),
    )


def _example(kind: str) -> str:
    today = utcnow().date().isoformat()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    if kind == ImportKind.ALLOCATIONS:
        # The optional currency column is left out: it must match the program's when given.
        writer.writerow(["partner", "amount", "reason"])
        writer.writerow(["ACME", "1500.00", "Q3 launch campaign"])
        writer.writerow(["BOLT", "750.50", ""])
    else:
        writer.writerow(["partner", "reference", "date", "amount", "product_line"])
        writer.writerow(["ACME", "INV-1001", today, "12000.00", "storage"])
        writer.writerow(["BOLT", "INV-1002", today, "4500.00", ""])
        writer.writerow(["ACME", "CN-1003", today, "-1200.00", "storage"])
    return out.getvalue()


@bp.get("/imports/example/<kind>.csv")
@require_roles(*STAFF)
def import_example(kind: str) -> Response:
    if kind not in COLUMNS:
        abort(404)
    return Response(
        _example(kind),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="example-{kind}.csv"'},
    )
