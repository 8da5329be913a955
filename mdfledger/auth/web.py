"""Sign-in and sign-out pages. Thin: parse the form, call the auth service, commit, redirect."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_limiter.util import get_remote_address
from flask_login import UserMixin, current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from werkzeug.wrappers import Response
from wtforms import EmailField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Length

from mdfledger.auth import rules, service
from mdfledger.auth.access import request_actor, require_roles
from mdfledger.auth.models import Role, User
from mdfledger.db import get_read_session, get_session
from mdfledger.errors import DomainError, Unauthorized
from mdfledger.extensions import limiter, login_manager

bp = Blueprint("auth", __name__, template_folder="templates")

# Sign-in attempts per client address: a person mistypes a few times; more is guessing.
SIGN_IN_LIMIT = "10 per minute"
# Tokens issued per user: a person makes a handful; more is a script gone wrong or a stolen
# session minting credentials that outlive it.
TOKEN_LIMIT = "20 per hour"


@dataclass(frozen=True)
class SignedIn(UserMixin):
    """What a request knows of its user: enough to scope queries, nothing mutable."""

    id: int
    name: str
    email: str
    role: str
    partner_id: int | None


@login_manager.user_loader
def _load(user_id: str) -> SignedIn | None:
    # The read session: on SQLite a writing one would hold the write lock for every page.
    user = get_read_session().get(User, int(user_id)) if user_id.isdigit() else None
    if user is None or not user.is_active:
        return None
    return SignedIn(user.id, user.name, user.email, user.role, user.partner_id)


class LoginForm(FlaskForm):
    email = EmailField("E-mail", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


def _safe_next(target: str | None) -> str:
    # Only paths on this site: never an open redirect to somewhere else.
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("web.index")


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(SIGN_IN_LIMIT, methods=["POST"])
def login() -> Any:
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        session = get_session()
        try:
            user = service.authenticate(session, form.email.data or "", form.password.data or "")
        except Unauthorized as exc:
            session.rollback()
            error = exc.message
        else:
            session.commit()
            login_user(SignedIn(user.id, user.name, user.email, user.role, user.partner_id))
            return redirect(_safe_next(request.args.get("next")))
    status = 401 if error else (400 if form.errors else 200)
    return render_template("auth/login.html", form=form, error=error), status


@bp.post("/logout")
def logout() -> Response:
    if current_user.is_authenticated:
        logout_user()
    return redirect(url_for("auth.login"))


class TokenForm(FlaskForm):
    name = StringField("What it is for", validators=[DataRequired(), Length(max=100)])
    role = SelectField("Role", choices=[])


def _token_form(**kwargs: Any) -> TokenForm:
    form = TokenForm(**kwargs)
    form.role.choices = [r.value for r in Role if rules.may_delegate(current_user.role, r.value)]
    return form


def _user_or_address() -> str:
    return f"user:{current_user.id}" if current_user.is_authenticated else get_remote_address()


@bp.route("/account/tokens", methods=["GET", "POST"])
@limiter.limit(TOKEN_LIMIT, methods=["POST"], key_func=_user_or_address)
@login_required
def tokens() -> Any:
    """The signed-in user's API tokens: issue one (its secret shown once), see, revoke."""
    session = get_session()
    form = _token_form()
    secret = None
    if form.validate_on_submit():
        try:
            issued = service.issue_token(
                session, request_actor(), current_user.id, name=form.name.data or "",
                role=form.role.data,
            )  # fmt: skip
        except DomainError as exc:
            session.rollback()
            form.name.errors = [*form.name.errors, exc.message]
        else:
            session.commit()
            secret = issued.secret
            form = _token_form(formdata=None)
    listed = service.tokens_of(session, request_actor(), current_user.id)
    status = 422 if form.errors else 200
    page = render_template("auth/tokens.html", form=form, tokens=listed, secret=secret)
    return page, status


@bp.post("/account/tokens/<int:token_id>/revoke")
@login_required
def revoke(token_id: int) -> Response:
    session = get_session()
    token = service.revoke_token(session, request_actor(), token_id)  # another's: not found
    session.commit()
    flash(f"Revoked the token “{token.name}”.", "success")
    return redirect(url_for("auth.tokens"))


class StaffForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=200)])
    email = EmailField("E-mail", validators=[DataRequired(), Length(max=254)])
    role = SelectField("Role", choices=[Role.ADMIN.value, Role.FINANCE.value, Role.AUDITOR.value])
    password = PasswordField("Initial password", validators=[DataRequired(), Length(max=1024)])


@bp.route("/admin/users", methods=["GET", "POST"])
@require_roles(Role.ADMIN)
def users() -> Any:
    """Everyone who signs in; admins add staff here (partner users come from a partner's page)
    and disable anyone but themselves."""
    session = get_session()
    form = StaffForm()
    if form.validate_on_submit():
        try:
            user = service.create_user(
                session, request_actor(), email=form.email.data or "", name=form.name.data or "",
                role=form.role.data or "", password=form.password.data or "",
            )  # fmt: skip
        except DomainError as exc:
            session.rollback()
            field = getattr(form, str(exc.details.get("field")), form.email)
            field.errors = [*field.errors, exc.message]
        else:
            session.commit()
            flash(f"Added {user.name} ({user.role}); they sign in with {user.email}.", "success")
            return redirect(url_for("auth.users"))
    everyone = session.scalars(select(User).order_by(User.role, User.email)).all()
    status = 422 if form.errors else 200
    return render_template("auth/users.html", form=form, users=everyone), status


@bp.post("/admin/users/<int:user_id>/disable")
@require_roles(Role.ADMIN)
def disable(user_id: int) -> Response:
    session = get_session()
    try:
        user = service.disable_user(session, request_actor(), user_id)
    except DomainError as exc:
        session.rollback()
        flash(exc.message, "error")
    else:
        session.commit()
        flash(
            f"Disabled {user.email}: they cannot sign in and their API tokens are revoked.",
            "success",
        )
    return redirect(url_for("auth.users"))
