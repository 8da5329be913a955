"""Sign-in and sign-out pages. Thin: parse the form, call the auth service, commit, redirect."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Blueprint, redirect, render_template, request, url_for
from flask_login import UserMixin, current_user, login_user, logout_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Length

from mdfledger.auth import service
from mdfledger.auth.models import User
from mdfledger.db import get_session
from mdfledger.errors import Unauthorized
from mdfledger.extensions import limiter, login_manager

bp = Blueprint("auth", __name__, template_folder="templates")


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
    user = get_session().get(User, int(user_id)) if user_id.isdigit() else None
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
@limiter.limit("10 per minute", methods=["POST"])
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
