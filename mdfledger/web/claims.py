"""Claim pages: the partner's claims and finance's review queue, a new claim (against an
approved request or, where the program allows, directly), one claim with its proof shown
inline, its flags, what is still needed, its timeline and the decisions each role may take;
uploading proof (one file per request, JSON for the page's uploader or a plain form), links,
removing proof, serving a proof file, and approving several clean claims at once.

Decisions post the version the page showed and an idempotency key: a decision on a page that
is out of date comes back with status 409 and what happened meanwhile; a double click
decides once. Nothing is kept when a service refuses.

Endpoints: web.claims, web.new_claim, web.claim, web.claim_action, web.edit_claim,
web.upload_document, web.add_link, web.remove_document, web.claim_document, web.bulk_approve.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

from flask import (
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_wtf import FlaskForm
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response
from wtforms import DateField, HiddenField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired

from mdfledger import claims, payouts, programs
from mdfledger.actor import Actor
from mdfledger.auth import Role
from mdfledger.auth.access import request_actor, require_roles
from mdfledger.claims import Claim, ClaimState, Document, DocumentKind, QueueFilter
from mdfledger.clock import utcnow
from mdfledger.csvfile import human_size
from mdfledger.db import get_read_session, get_session
from mdfledger.errors import Conflict, DomainError, NotFound, ValidationError
from mdfledger.programs import Activity, Partner, Program
from mdfledger.storage import app_store, content_disposition, download_filename
from mdfledger.web import bp, call_service, money, parse_money
from mdfledger.web.partners import MANAGERS, actor_names, new_key, paginate
from mdfledger.web.requests import (
    ALL_ROLES,
    AMOUNT_INPUT,
    DECIDERS,
    EVENT_LABELS,
    active_programs,
    activity_choices,
    activity_label,
    amount_text,
    conflict_message,
    decision_form,
    is_manager,
    is_partner,
    my_label,
    names_by_id,
    optional_int,
    parse_amounts,
    parties,
    program_choices,
    reason_label,
    run_decision,
    sentence,
    state_label,
    with_ids,
)

PER_PAGE = 50
EDITABLE_STATES = (ClaimState.DRAFT, ClaimState.RETURNED)
WITHDRAWABLE = (ClaimState.DRAFT, ClaimState.SUBMITTED, ClaimState.IN_REVIEW, ClaimState.RETURNED)
FILE_KINDS = [
    (DocumentKind.INVOICE.value, "Invoice"),
    (DocumentKind.PHOTO.value, "Photo"),
    (DocumentKind.LEAD_LIST.value, "Lead list"),
    (DocumentKind.OTHER.value, "Other"),
]
LINK_KINDS = [
    (DocumentKind.LANDING_PAGE.value, "Landing page"),
    (DocumentKind.SOCIAL_POST.value, "Social post"),
]
KIND_LABELS = dict(FILE_KINDS + LINK_KINDS)
SORTS = [
    ("oldest", "Oldest first"),
    ("newest", "Newest first"),
    ("amount_desc", "Largest amount first"),
    ("amount_asc", "Smallest amount first"),
]
MAX_AGE_DAYS = 36500
# A proof file may not run script or load anything; a PDF still needs the browser's viewer,
# which a `sandbox` directive would block (Chromium refuses plugins in sandboxed documents).
CSP_PDF = (
    "default-src 'none'; object-src 'self'; img-src 'self' data:; style-src 'unsafe-inline';"
    " frame-ancestors 'self'; base-uri 'none'; form-action 'none'"
)
CSP_OTHER = (
    "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'self'; sandbox"
)


# --- forms ---------------------------------------------------------------------------------------


class ClaimForm(FlaskForm):
    program_id = SelectField(
        "Program", coerce=optional_int, validators=[DataRequired("choose a program")]
    )
    activity_id = SelectField(
        "Activity", coerce=optional_int, validators=[DataRequired("choose an activity")]
    )
    title = StringField("Title", render_kw={"maxlength": 200})
    description = TextAreaField("Description")
    starts_on = DateField("Started on", validators=[InputRequired("enter the day it started")])
    ends_on = DateField("Ended on", validators=[InputRequired("enter the day it ended")])
    actual_cost = StringField("Actual cost", render_kw=AMOUNT_INPUT)
    claimed_amount = StringField("Amount claimed", render_kw=AMOUNT_INPUT)
    invoice_issuer = StringField("Invoice issued by", render_kw={"maxlength": 200})
    invoice_number = StringField("Invoice number", render_kw={"maxlength": 100})
    invoice_total = StringField("Invoice total", render_kw=AMOUNT_INPUT)
    key = HiddenField()  # one per form shown: sending it twice makes one claim


class RequestClaimForm(ClaimForm):
    program_id = None  # the approved request says which program and activity
    activity_id = None


class EditClaimForm(RequestClaimForm):
    key = None


class LinkForm(FlaskForm):
    url = StringField("Address of the page", render_kw={"maxlength": 2000, "type": "url"})
    kind = SelectField("What it shows", choices=[SelectChoice(v, label) for v, label in LINK_KINDS])


class RemoveForm(FlaskForm):
    pass


_TERMS = (
    "title", "description", "starts_on", "ends_on", "invoice_issuer", "invoice_number",
)  # fmt: skip
_AMOUNTS = ("actual_cost", "claimed_amount", "invoice_total")


def _terms(form: FlaskForm, amounts: dict[str, int | None]) -> dict[str, Any]:
    values = {name: form[name].data for name in _TERMS}
    for name in ("title", "description", "invoice_issuer", "invoice_number"):
        values[name] = values[name] or ""
    return {**values, **amounts}


# --- the list: my claims, or the review queue ----------------------------------------------------


def _queue_filter(session: Session, actor: Actor) -> QueueFilter:
    """The queue's filters from the query string; a ValidationError names the bad one."""
    args = request.args
    state = args.get("state", "waiting")
    if state in ("", "waiting"):
        states = tuple(s.value for s in claims.WAITING)
    elif state == "any":
        states = tuple(s.value for s in ClaimState)
    else:
        states = (state,)
    older = args.get("older_than", "").strip()
    if older and (not older.isdigit() or int(older) > MAX_AGE_DAYS):
        raise ValidationError("older than: enter a whole number of days", field="older_than")
    flagged = {"": None, "yes": True, "no": False}.get(args.get("flagged", ""), "bad")
    if flagged == "bad":
        raise ValidationError("flagged must be yes, no or blank", field="flagged")
    program_id = args.get("program_id", type=int)
    low, high = args.get("min_amount", ""), args.get("max_amount", "")
    min_amount = max_amount = None
    if low.strip() or high.strip():
        currency = claims.queue_currency(session, actor, program_id, "min_amount")
        min_amount = parse_money(low, currency, "min_amount", required=False)
        max_amount = parse_money(high, currency, "max_amount", required=False)
    return QueueFilter(
        states=states,
        program_id=program_id,
        partner_id=args.get("partner_id", type=int),
        flagged=flagged,  # type: ignore[arg-type]
        min_amount=min_amount,
        max_amount=max_amount,
        older_than_days=int(older) if older else None,
        sort=args.get("sort", "oldest") or "oldest",
    )


@bp.get("/claims", endpoint="claims")  # the function's name is the services' package
@require_roles(*ALL_ROLES)
def claims_page() -> Any:
    session = get_read_session()
    actor = request_actor()
    staff = not is_partner()
    error: DomainError | None = None
    state = request.args.get("state", "waiting" if staff else "")
    program_id = request.args.get("program_id", type=int)
    try:
        if staff:
            statement = claims.review_queue(actor, _queue_filter(session, actor))
        else:
            statement = claims.claims_query(actor, state=state or None, program_id=program_id)
    except DomainError as exc:
        error = exc
        statement = claims.claims_query(actor).where(Claim.id.is_(None))
    page = paginate(session, statement, PER_PAGE)
    rows = session.scalars(statement.offset(page.offset).limit(page.size)).all()
    query = {k: v for k, v in request.args.items() if k != "page"}
    context: dict[str, Any] = {}
    if not staff:
        context.update(
            claimable=claims.claimable_requests(session, actor),
            direct=[p for p in active_programs(session) if p.direct_claims],
        )
    html = render_template(
        "claims/list.html",
        rows=rows,
        page=page,
        query=query,
        back=urlencode(list(request.args.items(multi=True))),
        error=error,
        staff=staff,
        can_approve=is_manager(),
        args=request.args,
        state=state,
        program_id=program_id,
        partner_id=request.args.get("partner_id", type=int),
        states=[(s.value, state_label(s.value)) for s in ClaimState],
        sorts=SORTS,
        program_list=session.scalars(programs.programs_query(actor)).all(),
        partner_list=(
            session.execute(select(Partner.id, Partner.name).order_by(Partner.name)).all()
            if staff
            else []
        ),
        programs_by_id=names_by_id(session, Program, [c.program_id for c in rows]),
        activities=names_by_id(session, Activity, [c.activity_id for c in rows]),
        partners=names_by_id(session, Partner, [c.partner_id for c in rows]) if staff else {},
        now=utcnow(),
        age_days=age_days,
        filtered=bool(query),
        **context,
    )
    return html, 422 if error else 200


@bp.post("/claims/bulk-approve")
@require_roles(*MANAGERS)
def bulk_approve() -> Any:
    back = request.form.get("back", "")
    # Only the queue's own query string goes back into the address, re-encoded.
    target = url_for("web.claims")
    if back:
        target += "?" + urlencode(parse_qsl(back, keep_blank_values=True))
    raw = request.form.getlist("claim_ids")
    ids = [int(value) for value in raw if value.isdigit()]
    session = get_session()
    actor = request_actor()
    try:
        results = claims.bulk_approve(session, actor, ids)
    except ValidationError as error:
        session.rollback()
        flash(sentence(error.message), "error")
        return redirect(target)
    session.commit()
    for result in results:
        reference = claims.claim_reference(result.claim_id)
        if result.approved:
            flash(f"{reference}: approved", "success")
            continue
        claim = session.get(Claim, result.claim_id) if result.claim_id else None
        if claim is not None and claim.first_approval_by == my_label():
            waiting = f"{reference}: your approval is recorded; it waits for a second approver"
            flash(waiting, "success")
        else:
            flash(f"{reference}: not approved: {result.message}", "error")
    return redirect(target)


# --- a new claim ---------------------------------------------------------------------------------


@bp.route("/claims/new", methods=["GET", "POST"])
@require_roles(Role.PARTNER)
def new_claim() -> Any:
    read = get_read_session()
    actor = request_actor()
    request_id = request.args.get("request", type=int)
    if "request" in request.args and request_id is None:
        abort(404)
    fund_request = None
    problem = None
    open_claim = None
    direct: list[Program] = []
    if request_id is not None:
        fund_request = claims.get_request(read, actor, request_id)
        program = read.get(Program, fund_request.program_id)
        activity = read.get(Activity, fund_request.activity_id)
        assert program is not None and activity is not None
        form: ClaimForm = RequestClaimForm()
        try:
            claims.check_claimable(read, fund_request)
        except Conflict as refused:
            problem = refused.message
    else:
        program = activity = None
        direct = [p for p in active_programs(read) if p.direct_claims]
        form = ClaimForm()
        form.program_id.choices = program_choices(direct)
        form.activity_id.choices = activity_choices(direct)
    if request.method == "GET":
        form.key.data = new_key()
        if fund_request is not None:
            form.title.data = fund_request.title
            form.starts_on.data = fund_request.starts_on
            form.ends_on.data = fund_request.ends_on
    elif problem is None and (fund_request is not None or direct) and form.validate_on_submit():
        chosen = program or {p.id: p for p in direct}[form.program_id.data]
        amounts = parse_amounts(form, chosen.currency, _AMOUNTS, optional=("invoice_total",))
        if amounts is not None:
            where = (
                {"request_id": fund_request.id}
                if fund_request is not None
                else {"program_id": chosen.id, "activity_id": form.activity_id.data}
            )
            created = call_service(
                form,
                lambda session, actor: claims.create_claim(
                    session, actor, **where, **_terms(form, amounts), key=form.key.data or None
                ),
            )
            if created is not None:
                flash(
                    f"Draft {created.reference} saved: add the proof it needs, then submit it",
                    "success",
                )
                return redirect(url_for("web.claim", claim_id=created.id))
    html = render_template(
        "claims/new.html",
        form=form,
        r=fund_request,
        program=program,
        activity=activity,
        problem=problem,
        open_claim=open_claim,
        direct=direct,
        claimable=claims.claimable_requests(read, actor) if fund_request is None else [],
        activity_label=activity_label,
    )
    if problem:
        return html, 409
    return html, 422 if request.method == "POST" else 200


# --- one claim -----------------------------------------------------------------------------------


def _viewer(document: Document) -> str:
    """How the page shows a document: a link, a PDF frame, an image, or a download."""
    if document.url is not None:
        return "link"
    if document.media_type == "application/pdf":
        return "pdf"
    if (document.media_type or "").startswith("image/"):
        return "image"
    return "download"


def claim_page(
    claim_id: int,
    *,
    failed: tuple[str, Any] | None = None,
    problem: str | None = None,
    conflict: DomainError | None = None,
    link_form: LinkForm | None = None,
    status: int = 200,
) -> Any:
    """The claim page; `failed` is a refused decision form to show again with its errors,
    `problem` a refusal to show above everything, `conflict` a decision that lost a race."""
    session = get_read_session()
    actor = request_actor()
    claim = claims.get_claim(session, actor, claim_id)
    program, activity, partner = parties(session, claim)
    fund_request = (
        claims.get_request(session, actor, claim.request_id) if claim.request_id else None
    )
    cur = claim.currency
    timeline = claims.timeline(session, claim)
    if conflict is not None:
        problem = conflict_message(conflict, timeline, cur)
    state = claim.state
    editable = is_partner() and state in EDITABLE_STATES
    actions: list[str] = []
    if is_partner():
        if editable:
            actions.append("submit")
        if state in WITHDRAWABLE:
            actions.append("withdraw")
    elif is_manager() and state == ClaimState.IN_REVIEW:
        actions += ["approve", "return", "reject"]
    failed_action, failed_form = failed or (None, None)
    prefill = claim.first_approval_amount or claim.claimed_amount
    forms = {
        action: decision_form(
            action,
            version=claim.version,
            amount=amount_text(prefill, cur) if action == "approve" else "",
            submitted=failed_form if action == failed_action else None,
        )
        for action in actions
    }
    first_by = claim.first_approval_by
    settings = current_app.config["MDFLEDGER"]
    html = render_template(
        "claims/detail.html",
        c=claim,
        program=program,
        activity=activity,
        partner=partner,
        r=fund_request,
        cur=cur,
        held=claims.held(session, claim),
        request_held=claims.held(session, fund_request) if fund_request else 0,
        documents=[(d, _viewer(d)) for d in claim.documents],
        flags=claim.flags,
        missing=claims.missing_proof(session, claim) if editable else [],
        timeline=timeline,
        forms=forms,
        failed_action=failed_action,
        problem=problem,
        editable=editable,
        staff=not is_partner(),
        partner_view=is_partner(),
        first_by=actor_names(session, [first_by]).get(first_by) if first_by else None,
        first_is_me=first_by == my_label(),
        link_form=link_form or with_ids(LinkForm(formdata=None), "link"),
        remove_form=RemoveForm(formdata=None),
        file_kinds=FILE_KINDS,
        kind_labels=KIND_LABELS,
        upload_max=settings.upload_max_bytes,
        upload_max_text=human_size(settings.upload_max_bytes),
        human_size=human_size,
        reason_label=reason_label,
        event_labels=EVENT_LABELS,
        payment=payouts.claim_payment(session, claim),
    )
    return html, status


@bp.get("/claims/<int:claim_id>")
@require_roles(*ALL_ROLES)
def claim(claim_id: int) -> Any:
    return claim_page(claim_id)


@bp.post("/claims/<int:claim_id>/<action>")
@require_roles(*DECIDERS)
def claim_action(claim_id: int, action: str) -> Any:
    done, response = run_decision("claim", claim_id, action, claim_page)
    if response is not None:
        return response
    cur = done.currency
    if action == "approve" and done.state != ClaimState.APPROVED:
        shown = money(done.first_approval_amount or 0, cur)
        message = f"Your approval of {shown} is recorded: a second approver must confirm it"
    else:
        messages = {
            "submit": f"Submitted {done.reference}: it waits for finance's review",
            "approve": f"Approved {done.reference} for {money(done.approved_amount or 0, cur)}",
            "return": f"Returned {done.reference} to the partner",
            "reject": f"Rejected {done.reference}",
            "withdraw": f"Withdrew {done.reference}",
        }
        message = messages[action]
    flash(message, "success")
    return redirect(url_for("web.claim", claim_id=claim_id))


@bp.route("/claims/<int:claim_id>/edit", methods=["GET", "POST"])
@require_roles(Role.PARTNER)
def edit_claim(claim_id: int) -> Any:
    read = get_read_session()
    claim = claims.get_claim(read, request_actor(), claim_id)
    cur = claim.currency
    if request.method == "GET":
        data = {name: getattr(claim, name) for name in _TERMS}
        data.update({name: amount_text(getattr(claim, name), cur) for name in _AMOUNTS})
        form = EditClaimForm(formdata=None, data=data)
    else:
        form = EditClaimForm()
    editable = claim.state in EDITABLE_STATES
    if request.method == "POST" and form.validate():
        amounts = parse_amounts(form, cur, _AMOUNTS, optional=("invoice_total",))
        if amounts is not None:
            saved = call_service(
                form,
                lambda session, actor: claims.update_claim(
                    session, actor, claim_id, **_terms(form, amounts)
                ),
            )
            if saved is not None:
                flash(f"Saved {saved.reference}", "success")
                return redirect(url_for("web.claim", claim_id=claim_id))
    html = render_template("claims/edit.html", form=form, c=claim, editable=editable)
    if request.method == "POST":
        return html, 422
    return html, 200 if editable else 409


# --- proof ---------------------------------------------------------------------------------------


def wants_json() -> bool:
    """The page's uploader asks for JSON; a plain form (no script) gets pages and redirects."""
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def _json_error(error: DomainError) -> tuple[Response, int]:
    return jsonify(code=error.code, message=error.message), error.http_status


@bp.post("/claims/<int:claim_id>/documents")
@require_roles(Role.PARTNER)
def upload_document(claim_id: int) -> Any:
    as_json = wants_json()
    files = [f for f in request.files.getlist("file") if f.filename or f.content_length]
    kind = request.form.get("kind", "")
    back = url_for("web.claim", claim_id=claim_id) + "#documents"
    if not files or (as_json and len(files) > 1):
        error = ValidationError(
            "choose a file to upload" if not files else "send one file per request", field="file"
        )
        if as_json:
            return _json_error(error)
        claims.get_claim(get_read_session(), request_actor(), claim_id)  # 404 before a hint
        flash("Choose a file to upload first", "error")
        return redirect(back)
    session = get_session()
    actor = request_actor()
    store = app_store()
    added: list[Document] = []
    for upload in files:
        name = upload.filename or "upload"
        try:
            document = claims.add_document(
                session, actor, store, claim_id, data=upload.read(), filename=name, kind=kind
            )
        except NotFound:
            session.rollback()
            if as_json:
                return _json_error(NotFound("not found"))
            raise
        except DomainError as error:
            session.rollback()
            if as_json:
                return _json_error(error)
            flash(f"{name}: {error.message}", "error")
            continue
        session.commit()  # each file is its own change: one refused file keeps the others
        added.append(document)
        if as_json:
            body = {
                "document_id": document.id,
                "filename": document.filename,
                "size": document.size,
                "kind": document.kind,
            }
            return jsonify(body), 201
        flash(
            f"Uploaded {document.filename} ({human_size(document.size or 0)}) as"
            f" {KIND_LABELS.get(document.kind, document.kind).lower()}",
            "success",
        )
    return redirect(back)


@bp.post("/claims/<int:claim_id>/links")
@require_roles(Role.PARTNER)
def add_link(claim_id: int) -> Any:
    form = with_ids(LinkForm(), "link")
    if form.validate():
        document = call_service(
            form,
            lambda session, actor: claims.add_link(
                session, actor, claim_id, url=form.url.data or "", kind=form.kind.data or ""
            ),
        )
        if document is not None:
            flash(f"Added the {KIND_LABELS[document.kind].lower()} {document.url}", "success")
            return redirect(url_for("web.claim", claim_id=claim_id) + "#documents")
    return claim_page(claim_id, link_form=form, status=422)


@bp.post("/claims/<int:claim_id>/documents/<int:document_id>/remove")
@require_roles(Role.PARTNER)
def remove_document(claim_id: int, document_id: int) -> Any:
    session = get_session()
    actor = request_actor()
    try:
        document = claims.get_document(session, actor, document_id)
        if document.claim_id != claim_id:
            raise NotFound("document not found")
        shown = document.url or document.filename
        claims.remove_document(session, actor, document_id)
    except NotFound:
        session.rollback()
        raise
    except DomainError as error:
        session.rollback()
        return claim_page(claim_id, problem=sentence(error.message), status=error.http_status)
    session.commit()
    flash(f"Removed {shown}", "success")
    return redirect(url_for("web.claim", claim_id=claim_id) + "#documents")


@bp.get("/claims/<int:claim_id>/documents/<int:document_id>")
@require_roles(*ALL_ROLES)
def claim_document(claim_id: int, document_id: int) -> Any:
    """The stored file, inline (or as an attachment with ?download=1), typed as sniffed on
    upload; on S3 a redirect to a short-lived presigned link."""
    document = claims.get_document(get_read_session(), request_actor(), document_id)
    if document.claim_id != claim_id or document.sha256 is None:
        raise NotFound("document not found")
    inline = request.args.get("download") != "1"
    name = download_filename(document.filename, document.extension or "bin")
    store = app_store()
    link = store.download_url(document.sha256, filename=name, inline=inline)
    if link is not None:
        return redirect(link)
    response = Response(store.open(document.sha256), content_type=document.media_type)
    response.headers["Content-Disposition"] = content_disposition(name, inline=inline)
    response.headers["X-Content-Type-Options"] = "nosniff"
    pdf = document.media_type == "application/pdf"
    response.headers["Content-Security-Policy"] = CSP_PDF if pdf else CSP_OTHER
    response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
    response.headers["X-Frame-Options"] = "SAMEORIGIN"  # the claim page frames it
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "private, no-store"
    return response


def age_days(now: datetime, then: datetime | None) -> int | None:
    return None if then is None else max(0, (now - then).days)
