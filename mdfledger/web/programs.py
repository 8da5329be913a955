"""Program pages and a partner's own funds.

Thin views: parse a Flask-WTF form, call one service as the signed-in user, commit, flash and
redirect (POST/redirect/GET). When the service refuses, nothing is kept (rollback) and the page
comes back with status 422 and the message next to the field it names. Pages read through the
read-only session.

Endpoints: web.programs, web.program_new, web.program, web.program_budget,
web.program_activities, web.program_activity, web.program_rates, web.program_status, web.funds.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy.orm import Session
from wtforms import (
    BooleanField,
    HiddenField,
    IntegerField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import InputRequired, Optional

from mdfledger import programs
from mdfledger.actor import Actor
from mdfledger.auth.access import request_actor, require_roles
from mdfledger.auth.models import Role
from mdfledger.db import get_read_session, get_session
from mdfledger.errors import NotFound
from mdfledger.fields import parse_percent
from mdfledger.money import format_amount
from mdfledger.web import MultiCheckboxField, bp, call_service, choices, money, parse_money

ALL_ROLES = (Role.ADMIN, Role.FINANCE, Role.AUDITOR, Role.PARTNER)
MANAGERS = (Role.ADMIN, Role.FINANCE)

PERIOD_LENGTHS = {
    1: "Monthly",
    2: "Bi-monthly",
    3: "Quarterly",
    4: "Four-monthly",
    6: "Half-yearly",
    12: "Annual",
}
MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip
KINDS = {programs.ProgramKind.MDF: "MDF", programs.ProgramKind.COOP: "Co-op"}
EXPIRY_POLICIES = {
    programs.ExpiryPolicy.FORFEIT: "Forfeit at period end",
    programs.ExpiryPolicy.ROLLOVER: "Roll over",
}
PROOF_LABELS = {
    programs.ProofType.INVOICE: "Invoice",
    programs.ProofType.LANDING_PAGE: "Landing page",
    programs.ProofType.SOCIAL_POST: "Social post",
    programs.ProofType.LEAD_LIST: "Lead list",
    programs.ProofType.PHOTOS: "Photos",
}
# Offered in the time zone field; any other IANA name may be typed (the service checks it).
COMMON_TIMEZONES = (
    "UTC", "America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles",
    "America/Toronto", "America/Mexico_City", "America/Sao_Paulo", "Europe/London",
    "Europe/Dublin", "Europe/Paris", "Europe/Berlin", "Europe/Madrid", "Europe/Amsterdam",
    "Europe/Stockholm", "Europe/Warsaw", "Africa/Johannesburg", "Asia/Dubai", "Asia/Kolkata",
    "Asia/Singapore", "Asia/Shanghai", "Asia/Tokyo", "Australia/Sydney", "Pacific/Auckland",
)  # fmt: skip


def _labels() -> dict[str, Any]:
    return {
        "period_lengths": PERIOD_LENGTHS,
        "months": MONTHS,
        "kinds": KINDS,
        "expiry_policies": EXPIRY_POLICIES,
        "proof_labels": PROOF_LABELS,
    }


# --- forms ---------------------------------------------------------------------------------------


class ProgramForm(FlaskForm):
    code = StringField("Code", render_kw={"autocomplete": "off", "spellcheck": "false"})
    name = StringField("Name")
    description = TextAreaField("Description")
    kind = SelectField(
        "Kind",
        choices=choices(
            [
                ("mdf", "MDF: funds allocated up front"),
                ("coop", "Co-op: funds accrued on purchases"),
            ]
        ),
    )
    currency = StringField(
        "Currency", default="USD", render_kw={"maxlength": 3, "autocomplete": "off"}
    )
    timezone = StringField(
        "Time zone", default="UTC", render_kw={"list": "timezones", "autocomplete": "off"}
    )
    fiscal_start_month = SelectField(
        "Fiscal year starts in",
        coerce=int,
        default=1,
        choices=choices(enumerate(MONTHS, start=1)),
    )
    period_months = SelectField(
        "Period length", coerce=int, default=3, choices=choices(PERIOD_LENGTHS.items())
    )
    claim_deadline_days = IntegerField(
        "Claim deadline (days)",
        default=60,
        validators=[InputRequired("Enter a number of days.")],
        render_kw={"inputmode": "numeric"},
    )
    share = StringField(
        "Reimbursement share (%)", default="100", render_kw={"inputmode": "decimal"}
    )
    expiry_policy = SelectField("Unspent funds", choices=choices(EXPIRY_POLICIES.items()))
    rollover_days = IntegerField(
        "Rollover days", default=0, validators=[Optional()], render_kw={"inputmode": "numeric"}
    )

    direct_claims = BooleanField("Partners may claim without pre-approval")
    second_approval_above = StringField(
        "Second approver above (optional)", render_kw={"inputmode": "decimal"}
    )


class BudgetForm(FlaskForm):
    amount = StringField("Amount", render_kw={"inputmode": "decimal", "autocomplete": "off"})
    reason = StringField("Reason")
    key = HiddenField()  # one per form shown: submitting twice funds the budget once


class ActivityForm(FlaskForm):
    code = StringField("Code", render_kw={"autocomplete": "off", "spellcheck": "false"})
    name = StringField("Name")
    description = TextAreaField("Description")
    proof = MultiCheckboxField("Proof required", choices=choices(PROOF_LABELS.items()))
    cap = StringField("Cap (optional)", render_kw={"inputmode": "decimal"})


class ActivityEditForm(FlaskForm):
    name = StringField("Name")
    description = TextAreaField("Description")
    proof = MultiCheckboxField("Proof required", choices=choices(PROOF_LABELS.items()))
    cap = StringField("Cap (optional)", render_kw={"inputmode": "decimal"})


class ActivityToggleForm(FlaskForm):
    set_active = HiddenField()  # "true" to reactivate, "false" to deactivate


class RateForm(FlaskForm):
    tier = StringField("Partner tier")
    product_line = StringField("Product line")
    rate = StringField("Rate (%)", render_kw={"inputmode": "decimal"})


class StatusForm(FlaskForm):
    status = HiddenField()


def _budget_form(**kwargs: Any) -> BudgetForm:
    return BudgetForm(prefix="budget", key=uuid.uuid4().hex, **kwargs)


def _activity_prefix(activity_id: int) -> str:
    return f"activity-{activity_id}"


def _toggle_prefix(activity_id: int) -> str:
    return f"toggle-{activity_id}"


def _edit_form(program: programs.Program, activity: programs.Activity) -> ActivityEditForm:
    return ActivityEditForm(
        formdata=None,
        prefix=_activity_prefix(activity.id),
        data={
            "name": activity.name,
            "description": activity.description,
            "proof": list(activity.proof_required),
            "cap": "" if activity.cap is None else format_amount(activity.cap, program.currency),
        },
    )


# --- helpers -------------------------------------------------------------------------------------


# --- the list and a new program ------------------------------------------------------------------


@bp.get("/programs", endpoint="programs")  # the function's name is the services' package
@require_roles(*ALL_ROLES)
def programs_list() -> str:
    session = get_read_session()
    actor = request_actor()
    rows = session.scalars(programs.programs_query(actor)).all()
    staff = current_user.role != Role.PARTNER
    utilisation = (
        {p.id: programs.program_utilisation(session, actor, p.id) for p in rows} if staff else {}
    )
    return render_template(
        "programs/list.html",
        programs=rows,
        utilisation=utilisation,
        staff=staff,
        manager=current_user.role in MANAGERS,
        **_labels(),
    )


@bp.route("/programs/new", methods=["GET", "POST"])
@require_roles(*MANAGERS)
def program_new() -> Any:
    form = ProgramForm()
    if not form.is_submitted():
        return _new_page(form)
    if form.validate():

        def create(session: Session, actor: Actor) -> programs.Program:
            return programs.create_program(
                session,
                actor,
                code=form.code.data or "",
                name=form.name.data or "",
                description=form.description.data or "",
                kind=form.kind.data,
                currency=(form.currency.data or "").strip(),
                timezone=(form.timezone.data or "").strip(),
                fiscal_start_month=form.fiscal_start_month.data,
                period_months=form.period_months.data,
                claim_deadline_days=form.claim_deadline_days.data,
                share_bp=parse_percent(form.share.data, "share"),
                expiry_policy=form.expiry_policy.data,
                rollover_days=form.rollover_days.data or 0,
                direct_claims=bool(form.direct_claims.data),
                second_approval_above=parse_money(
                    form.second_approval_above.data,
                    (form.currency.data or "").strip(),
                    "second_approval_above",
                    required=False,
                    positive=False,
                ),
            )

        program = call_service(form, create, {"share_bp": "share"})
        if program is not None:
            flash(f"Program {program.code} ({program.name}) created.", "success")
            return redirect(url_for("web.program", program_id=program.id))
    return _new_page(form, 422)


def _new_page(form: ProgramForm, status: int = 200) -> tuple[str, int]:
    page = render_template("programs/new.html", form=form, timezones=COMMON_TIMEZONES, **_labels())
    return page, status


# --- one program ---------------------------------------------------------------------------------


def _program_page(
    program_id: int,
    *,
    status: int = 200,
    budget_form: BudgetForm | None = None,
    activity_form: ActivityForm | None = None,
    rate_form: RateForm | None = None,
    status_form: StatusForm | None = None,
    edit_forms: dict[int, ActivityEditForm] | None = None,
) -> tuple[str, int]:
    session = get_read_session()
    actor = request_actor()
    program = programs.get_program(session, actor, program_id)
    staff = current_user.role != Role.PARTNER
    manager = current_user.role in MANAGERS
    today = programs.today(program)
    activities = [a for a in program.activities if staff or a.active]
    context: dict[str, Any] = {
        "program": program,
        "staff": staff,
        "manager": manager,
        "today": today,
        "period": programs.period_of(program, today),
        "activities": activities,
        "rates": program.rates if program.kind == programs.ProgramKind.COOP else [],
        "utilisation": programs.program_utilisation(session, actor, program.id) if staff else None,
        **_labels(),
    }
    if manager:
        no_data = {"formdata": None}
        edits = {a.id: _edit_form(program, a) for a in activities}
        edits.update(edit_forms or {})
        context.update(
            budget_form=budget_form or _budget_form(**no_data),
            activity_form=activity_form or ActivityForm(prefix="activity", **no_data),
            rate_form=rate_form or RateForm(prefix="rate", **no_data),
            status_form=status_form or StatusForm(prefix="status", **no_data),
            edit_forms=edits,
            toggle_forms={
                a.id: ActivityToggleForm(prefix=_toggle_prefix(a.id), **no_data) for a in activities
            },
            open_edit=set(edit_forms or ()),
        )
    return render_template("programs/detail.html", **context), status


@bp.get("/programs/<int:program_id>")
@require_roles(*ALL_ROLES)
def program(program_id: int) -> tuple[str, int]:
    return _program_page(program_id)


@bp.post("/programs/<int:program_id>/budget")
@require_roles(*MANAGERS)
def program_budget(program_id: int) -> Any:
    form = BudgetForm(prefix="budget")
    if form.validate():

        def fund(session: Session, actor: Actor) -> tuple[programs.Program, int, bool]:
            program = programs.get_program(session, actor, program_id)
            amount = parse_money(form.amount.data, program.currency, "amount", positive=False)
            record = programs.fund_budget(
                session, actor, program.id, amount,
                reason=form.reason.data or "", key=form.key.data or None,
            )  # fmt: skip
            return program, amount, record.replayed

        done = call_service(form, fund)
        if done is not None:
            program, amount, replayed = done
            shown = money(abs(amount), program.currency)
            if replayed:
                flash("That budget change was already recorded; nothing was added twice.")
            elif amount > 0:
                flash(f"Added {shown} to the {program.code} budget.", "success")
            else:
                flash(f"Took {shown} back from the {program.code} budget.", "success")
            return redirect(url_for("web.program", program_id=program_id) + "#budget")
    return _program_page(program_id, status=422, budget_form=form)


@bp.post("/programs/<int:program_id>/activities")
@require_roles(*MANAGERS)
def program_activities(program_id: int) -> Any:
    form = ActivityForm(prefix="activity")
    if form.validate():

        def add(session: Session, actor: Actor) -> programs.Activity:
            program = programs.get_program(session, actor, program_id)
            return programs.add_activity(
                session, actor, program.id,
                code=form.code.data or "", name=form.name.data or "",
                description=form.description.data or "", proof=form.proof.data or [],
                cap=parse_money(
                    form.cap.data, program.currency, "cap", required=False, positive=False
                ),
            )  # fmt: skip

        activity = call_service(form, add)
        if activity is not None:
            flash(f"Activity {activity.name} added to the catalog.", "success")
            return redirect(url_for("web.program", program_id=program_id) + "#catalog")
    return _program_page(program_id, status=422, activity_form=form)


@bp.post("/programs/<int:program_id>/activities/<int:activity_id>")
@require_roles(*MANAGERS)
def program_activity(program_id: int, activity_id: int) -> Any:
    session = get_session()
    program = programs.get_program(session, request_actor(), program_id)
    activity = session.get(programs.Activity, activity_id)
    if activity is None or activity.program_id != program.id:
        raise NotFound("activity not found")  # another program's activity is not found here

    toggle = f"{_toggle_prefix(activity_id)}-set_active" in request.form
    if toggle:
        toggle_form = ActivityToggleForm(prefix=_toggle_prefix(activity_id))
        if not toggle_form.validate() or toggle_form.set_active.data not in ("true", "false"):
            abort(400)
        changes: dict[str, Any] = {"active": toggle_form.set_active.data == "true"}
        form = _edit_form(program, activity)
    else:
        form = ActivityEditForm(prefix=_activity_prefix(activity_id))
        if not form.validate():
            return _program_page(program_id, status=422, edit_forms={activity_id: form})
        changes = {"name": form.name.data or "", "description": form.description.data or ""}
        changes["proof"] = form.proof.data or []

    def update(session: Session, actor: Actor) -> programs.Activity:
        if not toggle:
            changes["cap"] = parse_money(
                form.cap.data, program.currency, "cap", required=False, positive=False
            )
        return programs.update_activity(session, actor, activity_id, **changes)

    updated = call_service(form, update)
    if updated is None:
        return _program_page(program_id, status=422, edit_forms={activity_id: form})
    if toggle:
        state = "reactivated" if updated.active else "deactivated"
        flash(f"Activity {updated.name} {state}.", "success")
    else:
        flash(f"Activity {updated.name} saved.", "success")
    return redirect(url_for("web.program", program_id=program_id) + "#catalog")


@bp.post("/programs/<int:program_id>/rates")
@require_roles(*MANAGERS)
def program_rates(program_id: int) -> Any:
    form = RateForm(prefix="rate")
    if form.validate():

        def set_rate(session: Session, actor: Actor) -> programs.AccrualRate:
            return programs.set_accrual_rate(
                session, actor, program_id,
                rate_bp=parse_percent(form.rate.data, "rate", low=Decimal(0)),
                tier=form.tier.data or "", product_line=form.product_line.data or "",
            )  # fmt: skip

        rate = call_service(form, set_rate, {"rate_bp": "rate"})
        if rate is not None:
            tier = rate.tier or "any tier"
            line = rate.product_line or "any product line"
            flash(f"Accrual rate for {tier}, {line} set.", "success")
            return redirect(url_for("web.program", program_id=program_id) + "#rates")
    return _program_page(program_id, status=422, rate_form=form)


@bp.post("/programs/<int:program_id>/status")
@require_roles(*MANAGERS)
def program_status(program_id: int) -> Any:
    form = StatusForm(prefix="status")
    if form.validate():

        def change(session: Session, actor: Actor) -> programs.Program:
            return programs.update_program(session, actor, program_id, status=form.status.data)

        program = call_service(form, change)
        if program is not None:
            state = "closed" if program.status == programs.ProgramStatus.CLOSED else "reopened"
            flash(f"Program {program.code} {state}.", "success")
            return redirect(url_for("web.program", program_id=program_id))
    return _program_page(program_id, status=422, status_form=form)


# --- a partner's own funds -----------------------------------------------------------------------


@bp.get("/funds")
@login_required
def funds() -> Any:
    """The signed-in partner's money in every program; staff have the program pages instead."""
    if current_user.role != Role.PARTNER:
        return redirect(url_for("web.programs"))
    session = get_read_session()
    actor = request_actor()
    partner = programs.get_partner(session, actor, actor.partner_id)
    breakdowns = programs.partner_breakdowns(session, actor, partner.id)
    return render_template("programs/funds.html", partner=partner, breakdowns=breakdowns)
