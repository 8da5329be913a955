"""Server-rendered pages: the layout, navigation, the front page, HTML errors and a health check.

Page modules register their routes on `bp` and are imported at the bottom of this module. What
templates can use everywhere:

- `{{ minor|money(currency) }}`: "12,345.67 USD" (exact, from the int of minor units);
- `{{ bp|percent }}`: basis points as a percentage, "12.5%";
- `{{ day|longdate }}`: "30 September 2026";
- `url_if(endpoint, **values)`: the URL, or None when no such endpoint is registered (for links
  to pages that may not exist yet);
- `nav_items()`: the signed-in user's navigation, each with `label`, `url` and `current`;
- `macros.html`: form fields with their errors, form-level errors, money cells.

And for views: `show_error(form, error)` puts a DomainError's message next to the field it names
(or above the form), `MultiCheckboxField` is a list of checkboxes, `choices(pairs)` makes a
select's options, and `mdfledger.fields.parse_percent("12.5")` reads a percentage exactly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from babel.dates import format_date
from babel.numbers import format_decimal
from flask import Blueprint, current_app, jsonify, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, select, text
from werkzeug.routing import BuildError
from werkzeug.wrappers import Response
from wtforms import SelectMultipleField
from wtforms.widgets import CheckboxInput, ListWidget

try:
    from wtforms.fields.choices import SelectChoice
except ImportError:  # pragma: no cover - WTForms before 3.3 takes (value, label) tuples
    SelectChoice = None

from mdfledger.auth.access import request_actor
from mdfledger.auth.models import Role
from mdfledger.db import get_read_session, get_session
from mdfledger.errors import DomainError, Forbidden, NotFound, ValidationError
from mdfledger.fields import percent_text
from mdfledger.ledger.models import Account, ChainHead
from mdfledger.money import minor_units, parse_amount

bp = Blueprint(
    "web",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/assets",  # the app's own /static would shadow a blueprint's /static
)

LOCALE = "en_US"


# --- filters and helpers for every template ------------------------------------------------------


@bp.app_template_filter("money")
def money(minor: int, currency: str) -> str:
    """123456789 USD -> '1,234,567.89 USD': thousands separators, exact (no float anywhere)."""
    if not isinstance(minor, int) or isinstance(minor, bool):
        raise TypeError("amounts are ints of minor units")
    places = minor_units(currency)
    pattern = "#,##0" + ("." + "0" * places if places else "")
    value = Decimal(minor).scaleb(-places)
    return f"{format_decimal(value, format=pattern, locale=LOCALE)} {currency}"


@bp.app_template_filter("percent")
def percent(basis_points: int | None) -> str:
    """5000 -> '50%', 1250 -> '12.5%', 1 -> '0.01%'; None (nothing to divide by) -> a dash."""
    if basis_points is None:
        return "\u2013"
    return f"{percent_text(basis_points)}%"


@bp.app_template_filter("longdate")
def longdate(day: date) -> str:
    """date(2026, 9, 30) -> '30 September 2026'."""
    return format_date(day, "d MMMM y", locale=LOCALE)


def url_if(endpoint: str, **values: Any) -> str | None:
    """url_for, or None when `endpoint` is not registered in this app (a page not built yet)."""
    if endpoint not in current_app.view_functions:
        return None
    try:
        return url_for(endpoint, **values)
    except BuildError:
        return None


@dataclass(frozen=True, slots=True)
class NavItem:
    label: str
    url: str
    current: str | None  # the aria-current value: "page", "true" (a page inside it) or None


# Per role, the navigation: (label, endpoint). Endpoints that do not exist yet are left out.
NAVIGATION: dict[str, tuple[tuple[str, str], ...]] = {
    Role.ADMIN: (
        ("Claims", "web.claims"),
        ("Requests", "web.requests"),
        ("Payouts", "web.payouts_page"),
        ("Programs", "web.programs"),
        ("Partners", "web.partners"),
        ("Statements", "web.statements"),
        ("Allocate", "web.allocate"),
        ("Imports", "web.imports"),
        ("At-risk partners", "web.at_risk"),
        ("Integrations", "web.integrations"),
        ("Dead letters", "web.dead_letters"),
        ("Users", "auth.users"),
        ("Audit log", "web.audit_log"),
        ("Exports", "web.exports_page"),
    ),
    Role.FINANCE: (
        ("Claims", "web.claims"),
        ("Requests", "web.requests"),
        ("Payouts", "web.payouts_page"),
        ("Programs", "web.programs"),
        ("Partners", "web.partners"),
        ("Statements", "web.statements"),
        ("Allocate", "web.allocate"),
        ("Imports", "web.imports"),
        ("At-risk partners", "web.at_risk"),
        ("Integrations", "web.integrations"),
        ("Dead letters", "web.dead_letters"),
        ("Audit log", "web.audit_log"),
        ("Exports", "web.exports_page"),
    ),
    Role.AUDITOR: (
        ("Claims", "web.claims"),
        ("Requests", "web.requests"),
        ("Payouts", "web.payouts_page"),
        ("Programs", "web.programs"),
        ("Partners", "web.partners"),
        ("Statements", "web.statements"),
        ("Integrations", "web.integrations"),
        ("Integrity", "web.integrity_page"),
        ("Audit log", "web.audit_log"),
        ("Exports", "web.exports_page"),
    ),
    Role.PARTNER: (
        ("My funds", "web.funds"),
        ("My statement", "web.statements"),
        ("My requests", "web.requests"),
        ("My claims", "web.claims"),
        ("Messages", "web.messages"),
        ("My payouts", "web.payouts_page"),
        ("Payout details", "web.my_payout_details"),
        ("Programs", "web.programs"),
        ("My exports", "web.exports_page"),
    ),
}


def nav_items() -> list[NavItem]:
    """The signed-in user's navigation; the current page (or its section) is marked."""
    if not current_user.is_authenticated:
        return []
    items = []
    for label, endpoint in NAVIGATION.get(current_user.role, ()):
        url = url_if(endpoint)
        if url is None:
            continue
        if request.path == url:
            current = "page"
        elif request.path.startswith(url.rstrip("/") + "/"):
            current = "true"
        else:
            current = None
        items.append(NavItem(label, url, current))
    return items


@bp.app_context_processor
def _template_helpers() -> dict[str, Any]:
    return {"url_if": url_if, "nav_items": nav_items}


# --- forms ---------------------------------------------------------------------------------------


def choices(pairs: Iterable[tuple[Any, str]]) -> list[Any]:
    """(value, label) pairs as a select field's choices (SelectChoice from WTForms 3.3 on, which
    deprecates tuples)."""
    if SelectChoice is None:  # pragma: no cover
        return list(pairs)
    return [SelectChoice(value=value, label=label) for value, label in pairs]


class MultiCheckboxField(SelectMultipleField):
    """Several choices as checkboxes (macros.field renders it as a fieldset with a legend)."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


def show_error(form: Any, error: DomainError, aliases: dict[str, str] | None = None) -> None:
    """Put a service's message next to the form field it names (`error.details["field"]`,
    renamed by `aliases` where the form calls it differently), or above the form."""
    name = error.details.get("field")
    name = (aliases or {}).get(name, name)
    field = form._fields.get(name) if isinstance(name, str) else None
    if field is not None and field.type not in ("CSRFTokenField", "HiddenField"):
        field.errors = [*field.errors, error.message]
    else:
        form.form_errors.append(error.message)


def call_service(form: Any, action: Any, aliases: dict[str, str] | None = None) -> Any:
    """Run `action(session, actor)` in the request's writing session and commit; on a refusal
    roll back, put the message on the form (see show_error) and return None. Not found and
    forbidden go to the error page: they say nothing about the object."""
    session = get_session()
    try:
        result = action(session, request_actor())
    except (NotFound, Forbidden):
        session.rollback()
        raise
    except DomainError as error:
        session.rollback()
        show_error(form, error, aliases)
        return None
    session.commit()
    return result


# "12,345.67": commas only as thousands separators, in groups of three. Anything else with a
# comma ("1,50" meaning 1.50 in much of Europe) is refused rather than read as 150.
_GROUPED = re.compile(r"^-?[0-9]{1,3}(,[0-9]{3})+(\.[0-9]+)?$")


def parse_money(
    text: object, currency: str, field: str, *, required: bool = True, positive: bool = True
) -> int | None:
    """A decimal amount typed in `currency`, in minor units: exact, or a ValidationError on
    `field`. Blank is None when not required; zero and below are refused when `positive`."""
    typed = text.strip() if isinstance(text, str) else ""
    if not typed:
        if not required:
            return None
        raise ValidationError(f"enter an amount in {currency}, such as 1500.00", field=field)
    if _GROUPED.match(typed):
        typed = typed.replace(",", "")
    try:
        value = parse_amount(typed, currency)
    except ValidationError as error:
        raise ValidationError(error.message, field=field) from None
    if positive and value <= 0:
        raise ValidationError(f"enter an amount above zero in {currency}", field=field)
    return value


# --- the front page and the health check ---------------------------------------------------------


def _ledger_summary() -> dict[str, object]:
    session = get_read_session()
    head = session.execute(select(ChainHead.last_transfer_id, ChainHead.last_hash)).one()
    accounts = session.scalar(select(func.count()).select_from(Account))
    return {"transfers": head.last_transfer_id, "head_hash": head.last_hash, "accounts": accounts}


def home_endpoint() -> str:
    """Where a user starts: partners at their funds, staff at the programs."""
    return "web.funds" if current_user.role == Role.PARTNER else "web.programs"


@bp.get("/")
def index() -> Response:
    """Anonymous visitors go to sign in; partners to their funds; staff to the programs."""
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login"))
    target = url_for(home_endpoint())
    response = redirect(target)
    # A redirect's body is a short note with a link (RFC 9110); this one is in the layout, so
    # it carries the user's name and the sign-out form like every page.
    response.set_data(render_template("front.html", target=target))
    return response


@bp.get("/healthz")
def healthz() -> tuple[object, int]:
    get_read_session().execute(text("SELECT 1"))
    return jsonify(status="ok", ledger=_ledger_summary()), 200


# Page modules: importing them registers their routes and handlers on `bp`.
from mdfledger.web import audit as audit  # noqa: E402
from mdfledger.web import claims, imports, partners, requests  # noqa: E402,F401  (routes)
from mdfledger.web import engagement as engagement  # noqa: E402
from mdfledger.web import errors as errors  # noqa: E402
from mdfledger.web import exports as exports  # noqa: E402
from mdfledger.web import integrity as integrity  # noqa: E402
from mdfledger.web import payouts as payouts  # noqa: E402
from mdfledger.web import programs as programs  # noqa: E402
from mdfledger.web import signals as signals  # noqa: E402
from mdfledger.web import statements as statements  # noqa: E402
from mdfledger.web import verification as verification  # noqa: E402
