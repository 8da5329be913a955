"""Partner pages: the list, a new partner, one partner's page (details, balances, allocation
history, contacts, users, corrections) and the allocate form. Thin: a form parses, one service
call does the work, the view commits and redirects; a DomainError re-renders the form (422)
with the message beside the field it names.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import Select, false, func, select
from sqlalchemy.orm import Session
from wtforms import (
    BooleanField,
    DateField,
    Form,
    HiddenField,
    PasswordField,
    SelectField,
    StringField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length, Optional

from mdfledger import ledger, programs
from mdfledger.auth import Role, User
from mdfledger.auth.access import request_actor, require_roles
from mdfledger.auth.rules import MIN_PASSWORD_LENGTH
from mdfledger.clock import utcnow
from mdfledger.db import get_read_session, get_session
from mdfledger.errors import DomainError, NotFound
from mdfledger.money import format_amount, parse_amount
from mdfledger.programs import Allocation, Fund, Partner, PartnerStatus, PartnerType, Program
from mdfledger.web import bp

STAFF = (Role.ADMIN, Role.FINANCE, Role.AUDITOR)
MANAGERS = (Role.ADMIN, Role.FINANCE)
PER_PAGE = 50
HISTORY_PER_PAGE = 50
DATALIST_LIMIT = 1000  # partner codes suggested in the allocate form; any code may be typed


# --- helpers shared with the import pages --------------------------------------------------------


@dataclass
class FormState:
    """What a form shows: its values and its errors by field ("_form" for the form as a whole)."""

    name: str
    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def form_state(name: str, form: FlaskForm, error: DomainError | None = None) -> FormState:
    """The submitted values (never passwords or files) and every error, for re-rendering."""
    values: dict[str, Any] = {}
    for item in form:
        if item.type in ("CSRFTokenField", "PasswordField", "FileField"):
            continue
        if item.type == "BooleanField":
            values[item.name] = bool(item.data)
        elif item.raw_data:
            values[item.name] = item.raw_data[0]
        else:
            values[item.name] = "" if item.data is None else item.data
    errors = {
        (key if key in form else "_form"): messages[0]
        for key, messages in form.errors.items()
        if messages and key != "csrf_token"
    }
    if "csrf_token" in form.errors:
        errors["_form"] = "the form expired; reload the page and submit it again"
    if error is not None:
        target = error.details.get("field")
        errors[target if target in form and target != "csrf_token" else "_form"] = error.message
    return FormState(name, values, errors)


def grouped(minor: int, currency: str) -> str:
    """123450 USD -> '1,234.50': exact, from the decimal string, never a float."""
    return f"{Decimal(format_amount(minor, currency)):,}"


@dataclass(frozen=True)
class Page:
    number: int
    size: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.size))

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size

    @property
    def first_item(self) -> int:
        return min(self.total, self.offset + 1)

    @property
    def last_item(self) -> int:
        return min(self.total, self.offset + self.size)

    def links(self) -> list[int | None]:
        """Page numbers to link: the first, the last and two either side; None for a gap."""
        wanted = {1, self.pages, *range(self.number - 2, self.number + 3)}
        shown = sorted(n for n in wanted if 1 <= n <= self.pages)
        out: list[int | None] = []
        for n in shown:
            if out and n - (out[-1] or 0) > 1:
                out.append(None)
            out.append(n)
        return out


def paginate(session: Session, statement: Select[Any], size: int, arg: str = "page") -> Page:
    total = session.scalar(select(func.count()).select_from(statement.order_by(None).subquery()))
    number = request.args.get(arg, 1, type=int)
    page = Page(1, size, total or 0)
    return Page(min(max(number, 1), page.pages), size, total or 0)


def actor_names(session: Session, labels: Iterable[str]) -> dict[str, str]:
    """'user:3' -> the user's name; 'system:cli' -> 'system (cli)'."""
    names: dict[str, str] = {}
    user_ids: dict[int, str] = {}
    for label in set(labels):
        kind, _, ident = label.partition(":")
        if kind == "user" and ident.isdigit():
            user_ids[int(ident)] = label
        names[label] = f"{kind} ({ident})" if kind == "system" else label
    if user_ids:
        for user_id, name in session.execute(
            select(User.id, User.name).where(User.id.in_(list(user_ids)))
        ):
            names[user_ids[user_id]] = name
    return names


def is_manager() -> bool:
    return current_user.role in MANAGERS


def new_key() -> str:
    return uuid.uuid4().hex


# --- forms ---------------------------------------------------------------------------------------

_TYPE_LABELS = {PartnerType.MSP: "MSP (managed service provider)"}
_TYPES = [
    (t.value, _TYPE_LABELS.get(t, t.value.replace("_", " ").capitalize())) for t in PartnerType
]
_STATUSES = [(s.value, s.value.capitalize()) for s in PartnerStatus]


def select_choices(pairs: Iterable[tuple[Any, str]]) -> list[SelectChoice]:
    """(value, label) pairs as WTForms wants them; templates keep the plain pairs."""
    return [SelectChoice(str(value), label) for value, label in pairs]


class PartnerForm(FlaskForm):
    # The services check every value and say what is wrong in words; the form only parses.
    code = StringField("Code")
    name = StringField("Name")
    type = SelectField("Type", choices=select_choices(_TYPES))
    tier = StringField("Tier")
    region = StringField("Region")
    status = SelectField(
        "Status", choices=select_choices(_STATUSES), default=PartnerStatus.ACTIVE.value
    )


class EditPartnerForm(FlaskForm):
    name = StringField("Name")
    type = SelectField("Type", choices=select_choices(_TYPES))
    tier = StringField("Tier")
    region = StringField("Region")
    status = SelectField("Status", choices=select_choices(_STATUSES))


class ContactForm(FlaskForm):
    name = StringField("Name")
    email = StringField("E-mail")
    phone = StringField("Phone")
    title = StringField("Title")
    is_primary = BooleanField("Primary contact")


class PartnerUserForm(FlaskForm):
    name = StringField("Name")
    email = StringField("E-mail")
    password = PasswordField(
        "Initial password",
        validators=[
            Length(
                min=MIN_PASSWORD_LENGTH,
                max=1024,
                message=f"passwords need at least {MIN_PASSWORD_LENGTH} characters",
            )
        ],
    )


class AdjustForm(FlaskForm):
    amount = StringField("Amount")
    reason = StringField("Reason")
    key = HiddenField()


class ReverseForm(FlaskForm):
    reason = StringField("Reason")


class AllocateForm(FlaskForm):
    program = SelectField("Program", coerce=int, choices=[])
    partner = StringField("Partner code")
    amount = StringField("Amount")
    period = DateField("Allocate to the period containing", validators=[Optional()])
    reason = StringField("Reason")
    key = HiddenField()


class PartnerFilter(Form):
    search = StringField("Search name or code")
    status = SelectField(
        "Status", choices=select_choices([("", "Any status"), *_STATUSES]), default=""
    )
    tier = StringField("Tier")
    region = StringField("Region")


# --- the list and a new partner ------------------------------------------------------------------


@bp.get("/partners")
@require_roles(*STAFF)
def partners() -> Any:
    session = get_read_session()
    filters = PartnerFilter(request.args)
    error = None
    try:
        statement = programs.partners_query(
            request_actor(),
            search=filters.search.data or None,
            status=filters.status.data or None,
            tier=filters.tier.data or None,
            region=filters.region.data or None,
        )
    except DomainError as exc:
        error = exc
        statement = programs.partners_query(request_actor()).where(false())
    page = paginate(session, statement, PER_PAGE)
    rows = session.scalars(statement.offset(page.offset).limit(page.size)).all()
    tiers = session.scalars(select(Partner.tier).distinct().order_by(Partner.tier)).all()
    regions = session.scalars(select(Partner.region).distinct().order_by(Partner.region)).all()
    query = {k: v for k, v in request.args.items() if k != "page" and v}
    html = render_template(
        "partners/list.html",
        partners=rows,
        page=page,
        filters=filters,
        tiers=tiers,
        regions=regions,
        query=query,
        error=error,
        statuses=_STATUSES,
        filtered=bool(query),
        can_manage=is_manager(),
    )
    return html, 422 if error else 200


@bp.route("/partners/new", methods=["GET", "POST"])
@require_roles(*MANAGERS)
def new_partner() -> Any:
    form = PartnerForm()
    error: DomainError | None = None
    if form.validate_on_submit():
        session = get_session()
        try:
            partner = programs.create_partner(
                session,
                request_actor(),
                code=form.code.data or "",
                name=form.name.data or "",
                type=form.type.data or "",
                tier=form.tier.data or "",
                region=form.region.data or "",
                status=form.status.data or "",
            )
        except DomainError as exc:
            session.rollback()
            error = exc
        else:
            session.commit()
            flash(f"Created partner {partner.name} ({partner.code})", "success")
            return redirect(url_for("web.partner", partner_id=partner.id))
    state = form_state("partner", form, error)
    status = 422 if state.errors else 200
    return render_template("partners/new.html", f=state, types=_TYPES, statuses=_STATUSES), status


# --- one partner ---------------------------------------------------------------------------------


def _partner_page(partner_id: int, failed: FormState | None = None) -> Any:
    session = get_read_session()
    actor = request_actor()
    try:
        partner = programs.get_partner(session, actor, partner_id)
    except NotFound:
        abort(404)
    breakdowns = programs.partner_breakdowns(session, actor, partner.id)
    users = programs.partner_users(session, actor, partner.id)
    history = (
        select(Allocation, Program, Fund)
        .join(Program, Program.id == Allocation.program_id)
        .join(Fund, Fund.id == Allocation.fund_id)
        .where(Allocation.partner_id == partner.id)
        .order_by(Allocation.created_at.desc(), Allocation.id.desc())
    )
    page = paginate(session, history, HISTORY_PER_PAGE, arg="history")
    rows = session.execute(history.offset(page.offset).limit(page.size)).all()
    reversed_ids = set(
        session.scalars(
            select(Allocation.reverses_id).where(
                Allocation.partner_id == partner.id, Allocation.reverses_id.is_not(None)
            )
        )
    )
    staff = current_user.role in STAFF
    html = render_template(
        "partners/detail.html",
        partner=partner,
        contacts=partner.contacts,
        users=users,
        breakdowns=breakdowns,
        history=rows,
        history_page=page,
        reversed_ids=reversed_ids,
        who=actor_names(session, [a.actor for a, _, _ in rows]) if staff else {},
        staff=staff,
        can_manage=is_manager(),
        failed=failed,
        types=_TYPES,
        statuses=_STATUSES,
        new_key=new_key,
        min_password=MIN_PASSWORD_LENGTH,
    )
    return html, 422 if failed else 200


@bp.get("/partners/<int:partner_id>")
@require_roles(*STAFF, Role.PARTNER)
def partner(partner_id: int) -> Any:
    return _partner_page(partner_id)


def _manage(
    partner_id: int,
    form: FlaskForm,
    name: str,
    action: Any,
    message: Any,
) -> Any:
    """Validate `form`, run `action(session, actor)`, commit, flash `message(result)` and go
    back to the partner page; or re-render that page with this form's errors (422)."""
    error: DomainError | None = None
    if form.validate_on_submit():
        session = get_session()
        try:
            result = action(session, request_actor())
        except DomainError as exc:
            session.rollback()
            if isinstance(exc, NotFound) and exc.details.get("field") is None:
                abort(404)
            error = exc
        else:
            session.commit()
            flash(message(result), "success")
            return redirect(url_for("web.partner", partner_id=partner_id))
    return _partner_page(partner_id, failed=form_state(name, form, error))


def _own_partner(session: Session, partner_id: int) -> Partner:
    try:
        return programs.get_partner(session, request_actor(), partner_id)
    except NotFound:
        abort(404)


@bp.post("/partners/<int:partner_id>/edit")
@require_roles(*MANAGERS)
def edit_partner(partner_id: int) -> Any:
    _own_partner(get_session(), partner_id)
    form = EditPartnerForm()
    return _manage(
        partner_id,
        form,
        "edit",
        lambda session, actor: programs.update_partner(
            session,
            actor,
            partner_id,
            name=form.name.data or "",
            type=form.type.data or "",
            tier=form.tier.data or "",
            region=form.region.data or "",
            status=form.status.data or "",
        ),
        lambda partner: f"Saved {partner.name} ({partner.code})",
    )


@bp.post("/partners/<int:partner_id>/contacts")
@require_roles(*MANAGERS)
def add_contact(partner_id: int) -> Any:
    _own_partner(get_session(), partner_id)
    form = ContactForm()
    return _manage(
        partner_id,
        form,
        "contact",
        lambda session, actor: programs.add_contact(
            session,
            actor,
            partner_id,
            name=form.name.data or "",
            email=form.email.data or "",
            phone=form.phone.data or "",
            title=form.title.data or "",
            is_primary=bool(form.is_primary.data),
        ),
        lambda contact: f"Added contact {contact.name}",
    )


@bp.post("/partners/<int:partner_id>/users")
@require_roles(*MANAGERS)
def add_partner_user(partner_id: int) -> Any:
    _own_partner(get_session(), partner_id)
    form = PartnerUserForm()
    return _manage(
        partner_id,
        form,
        "user",
        lambda session, actor: programs.add_partner_user(
            session,
            actor,
            partner_id,
            name=form.name.data or "",
            email=form.email.data or "",
            password=form.password.data or "",
        ),
        lambda user: f"Added user {user.email}; they can sign in with the password you set",
    )


@bp.post("/partners/<int:partner_id>/funds/<int:fund_id>/adjust")
@require_roles(*MANAGERS)
def adjust_fund(partner_id: int, fund_id: int) -> Any:
    session = get_session()
    _own_partner(session, partner_id)
    fund = session.get(Fund, fund_id)
    if fund is None or fund.partner_id != partner_id:
        abort(404)
    program = session.get(Program, fund.program_id)
    assert program is not None
    currency, label = program.currency, fund.period_label
    form = AdjustForm()

    def action(session: Session, actor: Any) -> Allocation:
        delta = parse_amount((form.amount.data or "").strip(), currency)
        return programs.adjust_fund(
            session, actor, fund_id, delta, reason=form.reason.data or "", key=form.key.data or None
        )

    return _manage(
        partner_id,
        form,
        f"adjust-{fund_id}",
        action,
        lambda a: (
            f"Adjusted the {program.code} {label} fund by {grouped(a.amount, currency)} {currency}"
        ),
    )


@bp.post("/partners/<int:partner_id>/allocations/<int:allocation_id>/reverse")
@require_roles(*MANAGERS)
def reverse_allocation(partner_id: int, allocation_id: int) -> Any:
    session = get_session()
    _own_partner(session, partner_id)
    original = session.get(Allocation, allocation_id)
    if original is None or original.partner_id != partner_id:
        abort(404)
    currency = session.scalar(select(Program.currency).where(Program.id == original.program_id))
    assert currency is not None
    form = ReverseForm()
    return _manage(
        partner_id,
        form,
        f"reverse-{allocation_id}",
        lambda session, actor: programs.reverse_allocation(
            session, actor, allocation_id, reason=form.reason.data or ""
        ),
        lambda r: (
            f"Reversed {original.kind} #{allocation_id}: {grouped(r.amount, currency)} {currency}"
        ),
    )


# --- allocate ------------------------------------------------------------------------------------


def _program_choices(programs_: Sequence[Program]) -> list[tuple[int, str]]:
    return [(p.id, f"{p.name} ({p.code}, {p.currency})") for p in programs_]


@bp.route("/allocate", methods=["GET", "POST"])
@require_roles(*MANAGERS)
def allocate() -> Any:
    read = get_read_session()
    actor = request_actor()
    active = read.scalars(programs.programs_query(actor, status="active")).all()
    form = AllocateForm()
    program_choices = _program_choices(active)
    form.program.choices = select_choices(program_choices)
    error: DomainError | None = None
    notice = None
    if request.method == "GET":
        form.key.data = new_key()
        form.period.data = utcnow().date()
        form.program.data = request.args.get("program", type=int)
        form.partner.data = request.args.get("partner", "")
    elif form.validate_on_submit():
        session = get_session()
        try:
            program = programs.get_program(session, actor, form.program.data)
            partner = programs.partner_by_code(session, actor, form.partner.data or "")
            amount = parse_amount((form.amount.data or "").strip(), program.currency)
            allocation = programs.allocate(
                session,
                actor,
                program.id,
                partner.id,
                amount,
                reason=form.reason.data or "",
                day=form.period.data,
                key=form.key.data or None,
            )
        except ledger.IdempotencyConflict:
            session.rollback()
            # The page was submitted before (browser back?) and then changed: a fresh key lets
            # this submission allocate as a new allocation, once the user confirms.
            notice = (
                "This form was already used for an earlier allocation. Check the partner's"
                " history; submit again to make a new allocation."
            )
            form.key.data = new_key()
        except DomainError as exc:
            session.rollback()
            error = exc
        else:
            session.commit()
            flash(
                f"Allocated {grouped(amount, program.currency)} {program.currency} to"
                f" {partner.name} for {allocation.fund.period_label}",
                "success",
            )
            return redirect(url_for("web.partner", partner_id=partner.id))
    state = form_state("allocate", form, error)
    if notice:
        state.errors["_form"] = notice
        state.values["key"] = form.key.data
    suggestions = read.execute(
        programs.partners_query(actor, status="active")
        .with_only_columns(Partner.code, Partner.name)
        .limit(DATALIST_LIMIT)
    ).all()
    html = render_template(
        "partners/allocate.html",
        f=state,
        program_choices=program_choices,
        suggestions=suggestions,
    )
    return html, 422 if state.errors else 200
