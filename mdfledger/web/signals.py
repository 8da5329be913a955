"""Partner activity signals on the pages: finance's at-risk partners list, and each program's
signal thresholds (staff read them, admins change them).

Endpoints: web.at_risk, web.program_signals, web.save_program_signals.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy.orm import Session
from wtforms import BooleanField, IntegerField, StringField
from wtforms.validators import InputRequired

from mdfledger import programs
from mdfledger.actor import Actor
from mdfledger.auth import Role
from mdfledger.auth.access import request_actor, require_roles
from mdfledger.auth.scope import MANAGERS, STAFF
from mdfledger.db import get_read_session
from mdfledger.engagement import signals
from mdfledger.engagement.signal_rules import KIND_LABELS, Thresholds, milestones_text
from mdfledger.errors import DomainError
from mdfledger.web import bp, call_service


def when(moment: datetime | None) -> str:
    return "never" if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")


# --- the at-risk list ----------------------------------------------------------------------------


@bp.get("/at-risk")
@require_roles(*MANAGERS)
def at_risk() -> Any:
    session = get_read_session()
    actor = request_actor()
    choices = session.scalars(programs.programs_query(actor)).all()
    typed = request.args.get("program", "").strip()
    program_id: object = int(typed) if typed.isascii() and typed.isdigit() else typed or None
    error = None
    try:
        rows = signals.at_risk(session, actor, program_id)
    except DomainError as exc:  # an unknown program in the filter
        error, rows = exc, []
    html = render_template(
        "signals/at_risk.html",
        rows=rows,
        choices=choices,
        selected=program_id,
        error=error,
        when=when,
    )
    return html, 422 if error else 200


# --- a program's thresholds ----------------------------------------------------------------------


class ThresholdsForm(FlaskForm):
    active = BooleanField("Send signals for this program")
    no_sign_in_days = IntegerField(
        "No sign-in for (days)",
        validators=[InputRequired("Enter a whole number of days, such as 30.")],
        render_kw={"inputmode": "numeric"},
    )
    no_activity_days = IntegerField(
        "No request or claim for (days)",
        validators=[InputRequired("Enter a whole number of days, such as 45.")],
        render_kw={"inputmode": "numeric"},
    )
    expiry_warning_days = IntegerField(
        "Warn of unspent funds expiring within (days)",
        validators=[InputRequired("Enter a whole number of days, such as 30.")],
        render_kw={"inputmode": "numeric"},
    )
    deadline_warning_days = IntegerField(
        "Warn of claim deadlines within (days)",
        validators=[InputRequired("Enter a whole number of days, such as 14.")],
        render_kw={"inputmode": "numeric"},
    )
    milestones = StringField("Utilisation milestones (%)", render_kw={"autocomplete": "off"})


def _form(policy: Thresholds) -> ThresholdsForm:
    return ThresholdsForm(
        formdata=None,
        data={
            "active": policy.active,
            "no_sign_in_days": policy.no_sign_in_days,
            "no_activity_days": policy.no_activity_days,
            "expiry_warning_days": policy.expiry_warning_days,
            "deadline_warning_days": policy.deadline_warning_days,
            "milestones": milestones_text(policy.milestones),
        },
    )


def _page(
    program: programs.Program, form: ThresholdsForm | None = None, status: int = 200
) -> tuple[str, int]:
    policy = signals.policy_of(get_read_session(), program.id)
    page = render_template(
        "signals/program.html",
        program=program,
        policy=policy,
        form=form or _form(policy),
        admin=current_user.role == Role.ADMIN,
        kinds=KIND_LABELS,
    )
    return page, status


@bp.get("/programs/<int:program_id>/signals")
@require_roles(*STAFF)
def program_signals(program_id: int) -> tuple[str, int]:
    return _page(programs.get_program(get_read_session(), request_actor(), program_id))


@bp.post("/programs/<int:program_id>/signals")
@require_roles(Role.ADMIN)
def save_program_signals(program_id: int) -> Any:
    program = programs.get_program(get_read_session(), request_actor(), program_id)
    form = ThresholdsForm()
    if form.validate():

        def save(session: Session, actor: Actor) -> object:
            return signals.set_policy(
                session, actor, program.id,
                no_sign_in_days=form.no_sign_in_days.data,
                no_activity_days=form.no_activity_days.data,
                expiry_warning_days=form.expiry_warning_days.data,
                deadline_warning_days=form.deadline_warning_days.data,
                milestones=form.milestones.data or "", active=bool(form.active.data),
            )  # fmt: skip

        if call_service(form, save) is not None:
            flash(f"Partner signal thresholds of {program.code} saved", "success")
            return redirect(url_for("web.program_signals", program_id=program.id))
    return _page(program, form, 422)
