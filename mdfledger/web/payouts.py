"""Payout pages: a partner's payout details (their own users, finance and admins edit them;
auditors read them masked), finance's Payouts page (payable claims per partner with what holds
them, "Pay now", payouts by state, the payment file), one payout with its claims, timeline and
finance's actions, a program's payout policy, and the Stripe webhook endpoint.

The webhook endpoint (POST /webhooks/stripe) is not a page: no sign-in and no CSRF token (the
Stripe-Signature is what authenticates it); it answers JSON — 400 with the reason when the
signature is missing, forged or stale, 200 with the outcome otherwise, never 500 for bad input.

Endpoints: web.payouts, web.run_payouts, web.payout, web.payout_action, web.payment_file,
web.payout_details, web.my_payout_details, web.program_payouts, web.stripe_webhook.
"""

from __future__ import annotations

from typing import Any

from flask import (
    Response,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from sqlalchemy.orm import Session
from wtforms import BooleanField, DateField, IntegerField, SelectField, StringField
from wtforms.validators import Optional

from mdfledger import payouts, programs
from mdfledger.actor import Actor
from mdfledger.auth import Role
from mdfledger.auth.access import request_actor, require_roles
from mdfledger.db import get_read_session, get_session
from mdfledger.errors import DomainError, Forbidden, NotFound
from mdfledger.extensions import csrf
from mdfledger.money import format_amount
from mdfledger.payouts import PayoutState
from mdfledger.payouts.rules import TAX_FORMS, WEEKDAYS, Schedule, mask
from mdfledger.programs.models import Partner
from mdfledger.web import bp, call_service, choices, parse_money
from mdfledger.web.partners import MANAGERS, STAFF, actor_names, paginate

ALL_ROLES = (*STAFF, Role.PARTNER)
PER_PAGE = 50
STATE_LABELS = {
    "pending": "Pending",
    "sent": "Sent",
    "settled": "Settled",
    "failed": "Failed",
    "flagged": "Flagged",
    "reversed": "Reversed",
    "cancelled": "Cancelled",
}
# What finance may do from each state (the service decides; this only offers the buttons).
ACTIONS = {
    "mark_sent": ("pending",),
    "mark_settled": ("pending", "sent"),
    "mark_failed": ("pending", "sent"),
    "retry": ("failed", "flagged", "reversed"),
    "cancel": ("failed", "flagged", "reversed"),
}
ACTION_DONE = {
    "mark_sent": "marked sent",
    "mark_settled": "marked settled",
    "mark_failed": "marked failed",
    "retry": "sent again",
    "cancel": "cancelled",
}


@bp.app_context_processor
def _payout_helpers() -> dict[str, Any]:
    return {"payout_state_labels": STATE_LABELS, "mask": mask}


# --- payout details ------------------------------------------------------------------------------


class DetailsForm(FlaskForm):
    method = SelectField(
        "Paid by",
        choices=choices([("bank", "Bank transfer"), ("stripe", "Stripe Connect")]),
        default="bank",
    )
    stripe_account = StringField("Stripe account id", render_kw={"autocomplete": "off"})
    account_holder = StringField("Account holder", render_kw={"maxlength": 200})
    bank_country = StringField("Bank country", render_kw={"maxlength": 2})
    iban = StringField("IBAN", render_kw={"autocomplete": "off"})
    account_number = StringField("Account number", render_kw={"autocomplete": "off"})
    routing_code = StringField("Routing number, sort code or bank code")
    payout_currency = StringField("Payout currency (optional)", render_kw={"maxlength": 3})
    tax_form = SelectField(
        "Tax form",
        choices=choices([("", "None on file"), *((f, f) for f in TAX_FORMS)]),
        default="",
    )
    tax_id = StringField("Tax id", render_kw={"autocomplete": "off"})
    tax_received_on = DateField("Tax form received on", validators=[Optional()])


def _can_edit_details(partner_id: int) -> bool:
    if current_user.role in MANAGERS:
        return True
    return current_user.role == Role.PARTNER and current_user.partner_id == partner_id


def _details_page(partner_id: int, form: DetailsForm | None = None, status: int = 200) -> Any:
    session = get_read_session()
    actor = request_actor()
    partner = programs.get_partner(session, actor, partner_id)
    details = payouts.details_of(session, actor, partner.id)
    editable = _can_edit_details(partner.id)
    if form is None and editable:
        form = DetailsForm(
            formdata=None,
            data={"method": details.method if details else "bank",
                  "stripe_account": details.stripe_account if details else "",
                  "account_holder": details.account_holder if details else partner.name,
                  "bank_country": (details.bank_country or "") if details else "",
                  "payout_currency": (details.payout_currency or "") if details else "",
                  "tax_form": (details.tax_form or "") if details else "",
                  "tax_received_on": details.tax_received_on if details else None},
        )  # fmt: skip
    page = render_template(
        "payouts/details.html",
        partner=partner,
        details=details,
        form=form,
        editable=editable,
        holds=payouts.holds_of(session, actor, partner.id),
        own=current_user.role == Role.PARTNER,
    )
    return page, status


@bp.get("/payout-details")
@require_roles(Role.PARTNER)
def my_payout_details() -> Any:
    return redirect(url_for("web.payout_details", partner_id=current_user.partner_id))


@bp.get("/partners/<int:partner_id>/payout-details")
@require_roles(*ALL_ROLES)
def payout_details(partner_id: int) -> Any:
    return _details_page(partner_id)


@bp.post("/partners/<int:partner_id>/payout-details")
@require_roles(Role.ADMIN, Role.FINANCE, Role.PARTNER)
def save_payout_details(partner_id: int) -> Any:
    programs.get_partner(get_read_session(), request_actor(), partner_id)  # 404 for others
    form = DetailsForm()
    if form.validate():
        data = form.data
        # Account numbers left empty on a bank form keep what is on file (they are shown masked).
        on_file = payouts.details_of(get_read_session(), request_actor(), partner_id)

        def keep(name: str) -> Any:
            typed = (data.get(name) or "").strip()
            if typed or on_file is None or on_file.method != data["method"]:
                return typed or None
            if name == "account_number" and (data.get("iban") or "").strip():
                return None
            if name == "iban" and (data.get("account_number") or "").strip():
                return None
            return getattr(on_file, name)

        def save(session: Session, actor: Actor) -> object:
            return payouts.set_details(
                session, actor, partner_id, method=data["method"],
                stripe_account=data["stripe_account"], account_holder=data["account_holder"],
                bank_country=data["bank_country"], iban=keep("iban"),
                account_number=keep("account_number"), routing_code=keep("routing_code"),
                payout_currency=data["payout_currency"] or None,
                tax_form=data["tax_form"] or None, tax_id=keep("tax_id"),
                tax_received_on=data["tax_received_on"],
            )  # fmt: skip

        if call_service(form, save) is not None:
            flash("Payout details saved", "success")
            return redirect(url_for("web.payout_details", partner_id=partner_id))
    return _details_page(partner_id, form, 422)


# --- the payouts page ----------------------------------------------------------------------------


class RunForm(FlaskForm):
    program_id = SelectField("Program", coerce=lambda v: int(v) if str(v).isdigit() else None)


@bp.get("/payouts")
@require_roles(*ALL_ROLES)
def payouts_page() -> Any:
    session = get_read_session()
    actor = request_actor()
    state = request.args.get("state") or None
    if state is not None and state not in STATE_LABELS:
        abort(404)
    attention = request.args.get("attention") == "1"
    statement = payouts.payouts_query(actor, state=state, attention=attention)
    page = paginate(session, statement, PER_PAGE)
    rows = session.scalars(statement.limit(PER_PAGE).offset(page.offset)).all()
    names = {p.id: p for p in session.scalars(programs.programs_query(actor))}
    shown = {r.partner_id for r in rows}
    partners = {p.id: p for p in session.scalars(select(Partner).where(Partner.id.in_(shown)))}
    groups = payouts.payable_claims(session, actor)
    form = None
    if current_user.role in MANAGERS:
        form = RunForm(formdata=None)
        form.program_id.choices = choices(
            [("", "Every program"), *((p.id, f"{p.code}: {p.name}") for p in names.values())]
        )
    return render_template(
        "payouts/list.html",
        rows=rows,
        page=page,
        state=state,
        attention=attention,
        groups=groups,
        programs_by_id=names,
        partners_by_id=partners,
        form=form,
        manager=current_user.role in MANAGERS,
        partner_view=current_user.role == Role.PARTNER,
    )


@bp.post("/payouts/run")
@require_roles(*MANAGERS)
def run_payouts() -> Any:
    form = FlaskForm()  # the CSRF token only; the ids are read below
    if not form.validate_on_submit():
        abort(400)
    program_id, partner_id = (_form_id(name) for name in ("program_id", "partner_id"))

    def run(session: Session, actor: Actor) -> payouts.Run:
        return payouts.create_payouts(
            session, actor, program_id=program_id, partner_id=partner_id, due_only=False
        )

    result = call_service(form, run)
    if result is None:
        flash(" ".join(form.form_errors) or "Nothing was paid", "error")
        return redirect(url_for("web.payouts_page"))
    paid = len(result.payouts)
    flash(f"{paid} payout{'s' if paid != 1 else ''} created", "success")
    for skipped in result.skipped:
        flash(
            f"{skipped.partner_name} ({skipped.program_code}) not paid: {skipped.reason}", "error"
        )
    return redirect(url_for("web.payouts_page"))


@bp.get("/payouts/payment-file.csv")
@require_roles(*MANAGERS)
def payment_file() -> Response:
    session = get_session()
    state = request.args.get("state", PayoutState.PENDING)
    try:
        text = payouts.payment_file(session, request_actor(), state=state)
    except DomainError:
        session.rollback()
        abort(400)
    session.commit()  # the download is in the audit log
    return Response(
        text,
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="payments-{state}.csv"',
            "Cache-Control": "no-store",
        },
    )


def _form_id(name: str) -> int | None:
    typed = request.form.get(name, "").strip()
    return int(typed) if typed.isascii() and typed.isdigit() and len(typed) < 19 else None


# --- one payout ----------------------------------------------------------------------------------


@bp.get("/payouts/<int:payout_id>")
@require_roles(*ALL_ROLES)
def payout(payout_id: int) -> Any:
    return _payout_page(payout_id)


def _payout_page(payout_id: int, problem: str | None = None, status: int = 200) -> Any:
    session = get_read_session()
    actor = request_actor()
    found = payouts.get_payout(session, actor, payout_id)
    events = payouts.timeline(session, found)
    partner = programs.get_partner(session, actor, found.partner_id)
    program = session.get(programs.Program, found.program_id)
    actions = []
    if current_user.role in MANAGERS:
        by_hand = found.provider == "manual" or found.flagged_reason is not None
        for name, states in ACTIONS.items():
            if found.state not in states:
                continue
            if name.startswith("mark_") and not by_hand:
                continue
            if name == "mark_sent" and found.provider != "manual":
                continue
            actions.append(name)
    page = render_template(
        "payouts/detail.html",
        p=found,
        partner=partner,
        program=program,
        claims=payouts.payout_claims(session, found),
        events=events,
        who=actor_names(session, {e.actor for e in events}),
        actions=actions,
        problem=problem,
        staff=current_user.role in STAFF,
    )
    return page, status


@bp.post("/payouts/<int:payout_id>/<action>")
@require_roles(*MANAGERS)
def payout_action(payout_id: int, action: str) -> Any:
    if action not in ACTIONS:
        abort(404)
    form = FlaskForm()
    if not form.validate_on_submit():
        abort(400)
    text = request.form.get("text", "")
    session = get_session()
    actor = request_actor()
    try:
        if action == "mark_sent":
            payouts.mark_sent(session, actor, payout_id, reference=text)
        elif action == "mark_settled":
            payouts.mark_settled(session, actor, payout_id, reference=text or None)
        elif action == "mark_failed":
            payouts.mark_failed(session, actor, payout_id, reason=text)
        elif action == "retry":
            payouts.retry_payout(session, actor, payout_id)
        else:
            payouts.cancel_payout(session, actor, payout_id, reason=text)
    except (NotFound, Forbidden):
        session.rollback()
        raise
    except DomainError as error:
        session.rollback()
        return _payout_page(payout_id, problem=error.message, status=error.http_status)
    session.commit()  # a retried Stripe payout is sent right after this
    flash(f"Payout {payouts.rules.payout_reference(payout_id)} {ACTION_DONE[action]}", "success")
    return redirect(url_for("web.payout", payout_id=payout_id))


# --- a program's payout policy -------------------------------------------------------------------


class PolicyForm(FlaskForm):
    provider = SelectField(
        "Paid through",
        choices=choices([("manual", "Bank transfer by finance (manual)"),
                         ("stripe", "Stripe Connect")]),
    )  # fmt: skip
    schedule = SelectField(
        "When",
        choices=choices([("immediate", "As soon as a claim is approved"),
                         ("weekly", "Weekly"), ("monthly", "Monthly")]),
    )  # fmt: skip
    run_day = IntegerField("Run day", validators=[Optional()])
    requires_tax_info = BooleanField("Tax information required before paying")
    minimum_amount = StringField("Minimum for a scheduled run (optional)")
    max_attempts = IntegerField("Attempts before a payout is flagged", validators=[Optional()])


@bp.get("/programs/<int:program_id>/payouts")
@require_roles(*STAFF)
def program_payouts(program_id: int) -> Any:
    return _policy_page(programs.get_program(get_read_session(), request_actor(), program_id))


def _policy_page(program: programs.Program, form: PolicyForm | None = None, status: int = 200):
    policy = payouts.policy_of(get_read_session(), program.id)
    if form is None:
        form = PolicyForm(
            formdata=None,
            data={"provider": policy.provider, "schedule": policy.schedule,
                  "run_day": policy.run_day, "requires_tax_info": policy.requires_tax_info,
                  "minimum_amount": format_amount(policy.minimum_amount, program.currency)
                  if policy.minimum_amount else "",
                  "max_attempts": policy.max_attempts},
        )  # fmt: skip
    stripe_ready = "stripe" in payouts.app_providers()
    page = render_template(
        "payouts/policy.html",
        program=program,
        policy=policy,
        form=form,
        admin=current_user.role == Role.ADMIN,
        weekdays=WEEKDAYS,
        stripe_ready=stripe_ready,
    )
    return page, status


@bp.post("/programs/<int:program_id>/payouts")
@require_roles(Role.ADMIN)
def save_program_payouts(program_id: int) -> Any:
    program = programs.get_program(get_read_session(), request_actor(), program_id)
    form = PolicyForm()
    if form.validate():

        def save(session: Session, actor: Actor) -> object:
            schedule = form.schedule.data
            return payouts.set_policy(
                session, actor, program.id, provider=form.provider.data, schedule=schedule,
                run_day=None if schedule == Schedule.IMMEDIATE else form.run_day.data,
                requires_tax_info=bool(form.requires_tax_info.data),
                minimum_amount=parse_money(form.minimum_amount.data, program.currency,
                                           "minimum_amount", required=False) or 0,
                max_attempts=form.max_attempts.data or 5,
            )  # fmt: skip

        if call_service(form, save) is not None:
            flash(f"Payout policy of {program.code} saved", "success")
            return redirect(url_for("web.program_payouts", program_id=program.id))
    return _policy_page(program, form, 422)


# --- the Stripe webhook --------------------------------------------------------------------------


@bp.post("/webhooks/stripe")
@csrf.exempt
def stripe_webhook() -> Any:
    provider = payouts.app_providers().get("stripe")
    if provider is None:
        return jsonify(error="Stripe payouts are not configured here"), 404
    try:
        event = provider.parse_webhook(request.get_data(), request.headers.get("Stripe-Signature"))
    except payouts.WebhookRejected as rejected:
        return jsonify(error=str(rejected)), 400
    session = get_session()
    try:
        outcome = payouts.apply_event(session, payouts.webhook_actor("stripe"), "stripe", event)
    except DomainError as error:  # never a 500 for what a sender can put in a payload
        session.rollback()
        current_app.logger.warning("stripe webhook %s refused: %s", event.id, error.message)
        return jsonify(error=error.message), 422
    session.commit()
    return jsonify(outcome=outcome), 200
