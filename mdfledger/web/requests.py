"""Fund request pages: the list ("My requests" for partners, the decision list for staff), a new
request, one request with its timeline and the decisions each role may take, and editing a
returned request.

Thin: a Flask-WTF form parses, one service call runs as the signed-in user, the view commits
and redirects. A refused decision re-renders the request page with what went wrong and the
status of the error (422 a bad field, 409 the request changed meanwhile, 403 not allowed);
nothing is kept. Every decision form carries the version the page showed and its own
idempotency key, so a stale page is refused and a double click decides once.

Endpoints: web.requests, web.new_request, web.request, web.request_action, web.edit_request.
Helpers shared with the claim pages (web/claims.py) live here too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from sqlalchemy.orm import Session
from wtforms import DateField, HiddenField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired

from mdfledger import claims, programs
from mdfledger.auth import Role
from mdfledger.auth.access import request_actor, require_roles
from mdfledger.claims import Claim, ClaimEvent, FundRequest, ReasonCode, RequestState
from mdfledger.db import get_read_session, get_session
from mdfledger.errors import Conflict, DomainError, Forbidden, NotFound, ValidationError
from mdfledger.money import format_amount
from mdfledger.programs import Activity, Partner, Program
from mdfledger.web import bp, call_service, money, parse_money, show_error
from mdfledger.web.partners import MANAGERS, STAFF, actor_names, is_manager, new_key, paginate

PER_PAGE = 50
ALL_ROLES = (*STAFF, Role.PARTNER)
DECIDERS = (*MANAGERS, Role.PARTNER)  # auditors read only
CLOSED_CLAIM_STATES = ("rejected", "withdrawn", "expired")

REASON_LABELS = {
    ReasonCode.NOT_ELIGIBLE: "Not eligible",
    ReasonCode.OVER_CAP: "Over the activity's cap",
    ReasonCode.INSUFFICIENT_PROOF: "Not enough proof",
    ReasonCode.PROOF_MISMATCH: "Proof does not match the claim",
    ReasonCode.OUTSIDE_DATES: "Outside the activity's dates",
    ReasonCode.LATE: "Too late",
    ReasonCode.DUPLICATE: "Duplicate",
    ReasonCode.INELIGIBLE_COST: "Part of the cost is not eligible",
    ReasonCode.BUDGET: "No funds left for it",
    ReasonCode.OTHER: "Other",
}
EVENT_LABELS = {
    "create": "drafted",
    "submit": "submitted",
    "resubmit": "resubmitted",
    "review": "sent to review",
    "verify": "sent to verification",
    "approve": "approved",
    "return": "returned",
    "reject": "rejected",
    "withdraw": "withdrew",
    "expire": "expired",
    "claim": "claimed",
    "pay": "paid",
}


# --- helpers shared with the claim pages ---------------------------------------------------------


def optional_int(value: object) -> int | None:
    """A select's value as an int; the blank placeholder is None (never a crash)."""
    if value is None or value == "":
        return None
    if isinstance(value, int):
        return value
    text = str(value).strip()
    return int(text) if text.isdigit() else None


def state_label(state: str) -> str:
    return state.replace("_", " ")


def reason_label(code: str | None) -> str:
    return REASON_LABELS.get(code, code or "")  # type: ignore[call-overload]


def reason_choices() -> list[SelectChoice]:
    options = [SelectChoice(code.value, label) for code, label in REASON_LABELS.items()]
    return [SelectChoice("", "Choose a reason"), *options]


def is_partner() -> bool:
    return current_user.role == Role.PARTNER


def my_label() -> str:
    return f"user:{current_user.id}"


def parse_amounts(
    form: FlaskForm, currency: str, names: Sequence[str], optional: Iterable[str] = ()
) -> dict[str, int | None] | None:
    """Every named amount field of `form` parsed, or None with each bad field's message on it."""
    values: dict[str, int | None] = {}
    ok = True
    for name in names:
        try:
            values[name] = parse_money(
                form[name].data, currency, name, required=name not in optional
            )
        except ValidationError as error:
            show_error(form, error)
            ok = False
    return values if ok else None


def amount_text(minor: int | None, currency: str) -> str:
    """Minor units as the decimal string a form field shows ('1500.00'); blank for None."""
    return "" if minor is None else format_amount(minor, currency)


def parse_version(text: object) -> int | None:
    typed = text.strip() if isinstance(text, str) else ""
    if not typed:
        return None
    if not typed.isdigit():
        raise ValidationError("the page is out of date: reload it and try again", field="version")
    return int(typed)


def with_ids(form: FlaskForm, prefix: str) -> FlaskForm:
    """Element ids unique on a page that shows several forms with the same field names."""
    for field in form:
        field.id = f"{prefix}-{field.name}"
        field.label.field_id = field.id
    return form


def event_text(event: ClaimEvent, currency: str) -> str:
    """'Fin approved it (1,200.00 USD)' -- for 'what happened' messages."""
    verb = EVENT_LABELS.get(event.event, event.event)
    text = f"{event.actor_name} {verb} it"
    if event.amount is not None and event.event in ("approve", "claim"):
        text += f" ({money(event.amount, currency)})"
    return text + f" on {event.at.strftime('%Y-%m-%d %H:%M')} UTC"


def sentence(message: str) -> str:
    """A service's message ('the claim ...') as the start of a sentence on a page."""
    return message[:1].upper() + message[1:]


def conflict_message(error: DomainError, timeline: Sequence[ClaimEvent], currency: str) -> str:
    """The service's refusal and, when it can tell, what changed: the latest step."""
    message = sentence(error.message)
    if timeline:
        message += f". The latest step: {event_text(timeline[-1], currency)}."
    return message


def activity_label(activity: Activity, currency: str) -> str:
    cap = "no cap" if activity.cap is None else f"cap {money(activity.cap, currency)}"
    proof = ", ".join(p.replace("_", " ") for p in activity.proof_required) or "none"
    return f"{activity.name} ({cap}; proof: {proof})"


def activity_choices(active: Sequence[Program], *, grouped: bool = True) -> list[SelectChoice]:
    """The active catalog of each program, grouped by program, showing cap and proof needed."""
    out = [SelectChoice("", "Choose an activity")]
    for program in active:
        for activity in program.activities:
            if activity.active:
                out.append(
                    SelectChoice(
                        str(activity.id),
                        activity_label(activity, program.currency),
                        optgroup=f"{program.name} ({program.code})" if grouped else None,
                    )
                )
    return out


def active_programs(session: Session) -> list[Program]:
    """The active programs the signed-in user may see."""
    return list(session.scalars(programs.programs_query(request_actor(), status="active")))


def program_choices(shown: Iterable[Program]) -> list[SelectChoice]:
    return [
        SelectChoice("", "Choose a program"),
        *(SelectChoice(str(p.id), f"{p.name} ({p.code}, {p.currency})") for p in shown),
    ]


def parties(session: Session, subject: FundRequest | Claim) -> tuple[Program, Activity, Partner]:
    """The program, activity and partner of a request or a claim."""
    program = session.get(Program, subject.program_id)
    activity = session.get(Activity, subject.activity_id)
    partner = session.get(Partner, subject.partner_id)
    assert program is not None and activity is not None and partner is not None
    return program, activity, partner


def claims_against(session: Session, fund_request: FundRequest) -> tuple[list[Claim], Claim | None]:
    """The claims against a request, and the one in progress (a draft counts) if any."""
    query = claims.claims_query(request_actor(), request_id=fund_request.id)
    linked = list(session.scalars(query))
    return linked, next((c for c in linked if c.state not in CLOSED_CLAIM_STATES), None)


def names_by_id(session: Session, model: Any, ids: Iterable[int]) -> dict[int, Any]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    return {row.id: row for row in session.scalars(select(model).where(model.id.in_(wanted)))}


# --- forms ---------------------------------------------------------------------------------------

AMOUNT_INPUT = {"inputmode": "decimal", "autocomplete": "off"}


class RequestForm(FlaskForm):
    # The service checks the values and words the problems; the form only parses.
    program_id = SelectField(
        "Program", coerce=optional_int, validators=[DataRequired("choose a program")]
    )
    activity_id = SelectField(
        "Activity", coerce=optional_int, validators=[DataRequired("choose an activity")]
    )
    title = StringField("Title", render_kw={"maxlength": 200})
    description = TextAreaField("Description")
    expected_outcome = TextAreaField("Expected outcome")
    starts_on = DateField("Starts on", validators=[InputRequired("enter the day it starts")])
    ends_on = DateField("Ends on", validators=[InputRequired("enter the day it ends")])
    estimated_cost = StringField("Estimated cost", render_kw=AMOUNT_INPUT)
    requested_amount = StringField("Amount requested", render_kw=AMOUNT_INPUT)
    key = HiddenField()  # one per form shown: sending it twice makes one request


class EditRequestForm(RequestForm):
    program_id = None  # the program of a request is fixed
    key = None  # saving the same edit twice changes nothing


class DecisionForm(FlaskForm):
    """Every decision on a request or claim: the fields a template shows depend on the action."""

    amount = StringField("Amount to approve", render_kw=AMOUNT_INPUT)
    # The service says which codes there are, in words, when the one sent is not one of them.
    reason_code = SelectField("Reason", choices=reason_choices(), validate_choice=False)
    message = TextAreaField("Message to the partner", render_kw={"maxlength": 2000, "rows": 3})
    version = HiddenField()
    key = HiddenField()


STAFF_ACTIONS = ("approve", "return", "reject")
DECISION_LABELS = {
    "approve": (
        "Amount to approve", "Reason (needed when approving less)", "Message to the partner",
    ),
    "return": ("", "Reason", "What the partner should add or change"),
    "reject": ("", "Reason", "Why, in words the partner will read"),
    "withdraw": ("", "", "Note (optional)"),
    "resubmit": ("", "", "Note to finance (optional)"),
    "submit": ("", "", "Note to finance (optional)"),
}  # fmt: skip


def decision_form(
    action: str, *, version: int, amount: str = "", submitted: FlaskForm | None = None
) -> DecisionForm:
    """A fresh decision form for `action` (a new key, the version shown), or the one that was
    just submitted and refused, with its values and errors."""
    if submitted is not None:
        form = submitted
    else:
        form = DecisionForm(formdata=None, data={"amount": amount, "version": str(version)})
        form.key.data = new_key()
    amount_label, reason, message = DECISION_LABELS[action]
    form.amount.label.text = amount_label or "Amount"
    form.reason_code.label.text = reason or "Reason"
    form.message.label.text = message
    return with_ids(form, action)


# --- the list ------------------------------------------------------------------------------------


@bp.get("/requests")
@require_roles(*ALL_ROLES)
def requests() -> Any:
    session = get_read_session()
    actor = request_actor()
    staff = not is_partner()
    state = request.args.get("state")
    if state is None and staff:
        state = RequestState.SUBMITTED.value  # staff start with what awaits a decision
    program_id = request.args.get("program_id", type=int)
    partner_id = request.args.get("partner_id", type=int) if staff else None
    error = None
    try:
        statement = claims.requests_query(
            actor, state=state or None, program_id=program_id, partner_id=partner_id
        )
    except DomainError as exc:
        error = exc
        statement = claims.requests_query(actor).where(FundRequest.id.is_(None))
    page = paginate(session, statement, PER_PAGE)
    rows = session.scalars(statement.offset(page.offset).limit(page.size)).all()
    query = {k: v for k, v in request.args.items() if k != "page"}
    html = render_template(
        "requests/list.html",
        rows=rows,
        page=page,
        query=query,
        error=error,
        staff=staff,
        state=state or "",
        program_id=program_id,
        partner_id=partner_id,
        states=[(s.value, state_label(s.value)) for s in RequestState],
        program_list=session.scalars(programs.programs_query(actor)).all(),
        partner_list=(
            session.execute(select(Partner.id, Partner.name).order_by(Partner.name)).all()
            if staff
            else []
        ),
        activities=names_by_id(session, Activity, [r.activity_id for r in rows]),
        partners=names_by_id(session, Partner, [r.partner_id for r in rows]) if staff else {},
        filtered=bool(query),
        can_propose=is_partner(),
    )
    return html, 422 if error else 200


# --- a new request -------------------------------------------------------------------------------


@bp.route("/requests/new", methods=["GET", "POST"])
@require_roles(Role.PARTNER)
def new_request() -> Any:
    read = get_read_session()
    active = active_programs(read)
    form = RequestForm()
    form.program_id.choices = program_choices(active)
    form.activity_id.choices = activity_choices(active)
    if request.method == "GET":
        form.key.data = new_key()
        form.program_id.data = request.args.get("program", type=int)
    elif form.validate_on_submit():
        by_id = {p.id: p for p in active}
        program = by_id[form.program_id.data]
        amounts = parse_amounts(form, program.currency, ("estimated_cost", "requested_amount"))
        if amounts is not None:
            created = call_service(
                form,
                lambda session, actor: claims.create_request(
                    session,
                    actor,
                    program_id=program.id,
                    activity_id=form.activity_id.data,
                    title=form.title.data or "",
                    description=form.description.data or "",
                    expected_outcome=form.expected_outcome.data or "",
                    starts_on=form.starts_on.data,
                    ends_on=form.ends_on.data,
                    estimated_cost=amounts["estimated_cost"],
                    requested_amount=amounts["requested_amount"],
                    key=form.key.data or None,
                ),
            )
            if created is not None:
                flash(f"Request {created.reference} sent for pre-approval", "success")
                return redirect(url_for("web.request", request_id=created.id))
    failed = request.method == "POST"
    html = render_template("requests/new.html", form=form, programs=active)
    return html, 422 if failed else 200


# --- one request ---------------------------------------------------------------------------------


def _request_page(
    request_id: int,
    *,
    failed: tuple[str, DecisionForm] | None = None,
    problem: str | None = None,
    conflict: DomainError | None = None,
    status: int = 200,
) -> Any:
    """The request page; `failed` is a refused decision form to show again with its errors,
    `problem` a refusal to show above everything, `conflict` a decision that lost a race."""
    session = get_read_session()
    actor = request_actor()
    fund_request = claims.get_request(session, actor, request_id)
    program, activity, partner = parties(session, fund_request)
    cur = fund_request.currency
    linked, open_claim = claims_against(session, fund_request)
    timeline = claims.timeline(session, fund_request)
    if conflict is not None:
        problem = conflict_message(conflict, timeline, cur)
    state = fund_request.state
    actions: list[str] = []
    if is_manager():
        if state == RequestState.SUBMITTED:
            actions += ["approve", "return", "reject"]
        elif state == RequestState.RETURNED:
            actions.append("reject")
    elif is_partner():
        if state == RequestState.RETURNED:
            actions.append("resubmit")
        if state in (RequestState.SUBMITTED, RequestState.RETURNED, RequestState.APPROVED):
            actions.append("withdraw")
    failed_action, failed_form = failed or (None, None)
    forms = {
        action: decision_form(
            action,
            version=fund_request.version,
            amount=amount_text(fund_request.requested_amount, cur) if action == "approve" else "",
            submitted=failed_form if action == failed_action else None,
        )
        for action in actions
    }
    available = None
    if not is_partner() and state == RequestState.SUBMITTED:
        available = programs.partner_breakdown(session, actor, partner.id, program.id).available
    html = render_template(
        "requests/detail.html",
        available=available,
        r=fund_request,
        program=program,
        activity=activity,
        partner=partner,
        cur=cur,
        held=claims.held(session, fund_request),
        linked=linked,
        open_claim=open_claim,
        timeline=timeline,
        forms=forms,
        failed_action=failed_action,
        problem=problem,
        staff=not is_partner(),
        partner_view=is_partner(),
        can_claim=(is_partner() and state == RequestState.APPROVED and open_claim is None),
        who=actor_names(session, [fund_request.submitted_by]),
        reason_label=reason_label,
        state_label=state_label,
        event_labels=EVENT_LABELS,
    )
    return html, status


# The endpoint is "web.request"; the function cannot be called `request` (Flask's proxy).
@bp.get("/requests/<int:request_id>", endpoint="request")
@require_roles(*ALL_ROLES)
def request_page(request_id: int) -> Any:
    return _request_page(request_id)


# Each decision a page may post, and the service that makes it.
DECISIONS = {
    ("request", "approve"): claims.approve_request,
    ("request", "return"): claims.return_request,
    ("request", "reject"): claims.reject_request,
    ("request", "withdraw"): claims.withdraw_request,
    ("request", "resubmit"): claims.resubmit_request,
    ("claim", "submit"): claims.submit_claim,
    ("claim", "approve"): claims.approve_claim,
    ("claim", "return"): claims.return_claim,
    ("claim", "reject"): claims.reject_claim,
    ("claim", "withdraw"): claims.withdraw_claim,
}


def decide(session: Session, subject: str, action: str, form: DecisionForm, subject_id: int) -> Any:
    """Call the service for a decision on a request or a claim with the form's values."""
    actor = request_actor()
    load = claims.get_request if subject == "request" else claims.get_claim
    currency = load(session, actor, subject_id).currency  # another partner's: not found, first
    version = parse_version(form.version.data)
    message = (form.message.data or "").strip() or None
    terms: dict[str, Any] = {"message": message}
    if action == "approve":
        terms["amount"] = parse_money(form.amount.data, currency, "amount", required=False)
        terms["reason_code"] = form.reason_code.data or None
    elif action in ("return", "reject"):
        terms = {"reason_code": form.reason_code.data or "", "message": message or ""}
    return DECISIONS[(subject, action)](
        session, actor, subject_id, **terms, version=version, key=form.key.data or None
    )


def run_decision(subject: str, subject_id: int, action: str, page: Any) -> tuple[Any, Any]:
    """Validate the posted decision form and run it. Returns (result, None) on success, or
    (None, response) with the page re-rendered: 422 a bad field, 409 a conflict, 403 refused.
    An action the page does not offer is 404; finance's decisions are finance's only (403)."""
    if (subject, action) not in DECISIONS:
        abort(404)
    if (action in STAFF_ACTIONS) != is_manager():
        abort(403)  # finance decides; the partner submits, resubmits and withdraws
    form = DecisionForm()
    if not form.validate():
        return None, page(subject_id, failed=(action, form), status=422)
    session = get_session()
    try:
        result = decide(session, subject, action, form, subject_id)
    except NotFound:
        session.rollback()
        raise
    except Forbidden as error:
        session.rollback()
        return None, page(subject_id, problem=sentence(error.message), status=403)
    except Conflict as error:
        session.rollback()
        if error.details.get("field") in ("amount", "file"):
            show_error(form, error)
            return None, page(subject_id, failed=(action, form), status=409)
        return None, page(subject_id, conflict=error, status=409)
    except DomainError as error:
        session.rollback()
        show_error(form, error, {"reason": "message"})
        return None, page(subject_id, failed=(action, form), status=error.http_status)
    session.commit()
    return result, None


@bp.post("/requests/<int:request_id>/<action>")
@require_roles(*DECIDERS)
def request_action(request_id: int, action: str) -> Any:
    done, response = run_decision("request", request_id, action, _request_page)
    if response is not None:
        return response
    cur = done.currency
    messages = {
        "approve": f"Approved {done.reference} for {money(done.approved_amount or 0, cur)}:"
        f" held until {done.claim_deadline.isoformat()}",
        "return": f"Returned {done.reference} to the partner",
        "reject": f"Rejected {done.reference}",
        "withdraw": f"Withdrew {done.reference}",
        "resubmit": f"Sent {done.reference} back for pre-approval",
    }
    flash(messages[action], "success")
    return redirect(url_for("web.request", request_id=request_id))


# --- editing a returned request ------------------------------------------------------------------


@bp.route("/requests/<int:request_id>/edit", methods=["GET", "POST"])
@require_roles(Role.PARTNER)
def edit_request(request_id: int) -> Any:
    read = get_read_session()
    actor = request_actor()
    fund_request = claims.get_request(read, actor, request_id)
    program = read.get(Program, fund_request.program_id)
    assert program is not None
    cur = program.currency
    if request.method == "GET":
        form = EditRequestForm(
            formdata=None,
            data={
                "activity_id": fund_request.activity_id,
                "title": fund_request.title,
                "description": fund_request.description,
                "expected_outcome": fund_request.expected_outcome,
                "starts_on": fund_request.starts_on,
                "ends_on": fund_request.ends_on,
                "estimated_cost": amount_text(fund_request.estimated_cost, cur),
                "requested_amount": amount_text(fund_request.requested_amount, cur),
            },
        )
    else:
        form = EditRequestForm()
    form.activity_id.choices = activity_choices([program], grouped=False)
    editable = fund_request.state == RequestState.RETURNED
    if request.method == "POST" and form.validate():
        amounts = parse_amounts(form, cur, ("estimated_cost", "requested_amount"))
        if amounts is not None:
            saved = call_service(
                form,
                lambda session, actor: claims.update_request(
                    session,
                    actor,
                    request_id,
                    activity_id=form.activity_id.data,
                    title=form.title.data or "",
                    description=form.description.data or "",
                    expected_outcome=form.expected_outcome.data or "",
                    starts_on=form.starts_on.data,
                    ends_on=form.ends_on.data,
                    estimated_cost=amounts["estimated_cost"],
                    requested_amount=amounts["requested_amount"],
                ),
            )
            if saved is not None:
                flash(
                    f"Saved {saved.reference}: resubmit it when it is ready for finance",
                    "success",
                )
                return redirect(url_for("web.request", request_id=request_id))
    html = render_template(
        "requests/edit.html", form=form, r=fund_request, program=program, editable=editable
    )
    if request.method == "POST":
        return html, 422
    return html, 200 if editable else 409
