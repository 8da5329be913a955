"""Users and API tokens, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mdfledger import auth
from mdfledger.actor import Actor
from mdfledger.auth import Role, User
from mdfledger.auth.rules import MIN_PASSWORD_LENGTH
from mdfledger.errors import Conflict, Forbidden, Unauthorized, ValidationError

USERS_ADMIN = Actor("user", "admin-1", "admin")  # only admins create and disable staff users

ADMIN = Actor("user", "admin-1", "admin")  # tokens are issued by their user or an admin

PASSWORD = "correct horse battery staple"


def make_user(
    session: Session, actor: Actor, *, password: str = PASSWORD, **overrides: Any
) -> User:
    fields = {"email": "Fin@Example.com ", "name": "Fin", "role": Role.FINANCE, **overrides}
    return auth.create_user(session, USERS_ADMIN, password=password, **fields)


def test_a_user_signs_in_with_their_password_whatever_the_email_case(
    session: Session, actor: Actor
) -> None:
    user = make_user(session, actor)
    assert user.email == "fin@example.com"
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash
    signed_in = auth.authenticate(session, "FIN@example.com", PASSWORD)
    assert signed_in.id == user.id
    assert signed_in.last_login_at is not None


@pytest.mark.parametrize(
    ("email", "password"),
    [("fin@example.com", "wrong password!!"), ("nobody@example.com", PASSWORD), ("x", PASSWORD)],
)
def test_wrong_credentials_get_one_message_whichever_part_was_wrong(
    session: Session, actor: Actor, email: str, password: str
) -> None:
    make_user(session, actor)
    with pytest.raises(Unauthorized) as err:
        auth.authenticate(session, email, password)
    assert err.value.message == auth.service.BAD_CREDENTIALS


def test_a_disabled_user_cannot_sign_in_and_loses_their_tokens(
    session: Session, actor: Actor
) -> None:
    user = make_user(session, actor)
    issued = auth.issue_token(session, ADMIN, user.id, name="crm")
    auth.disable_user(session, USERS_ADMIN, user.id)
    with pytest.raises(Unauthorized, match="disabled"):
        auth.authenticate(session, user.email, PASSWORD)
    with pytest.raises(Unauthorized):
        auth.authenticate_token(session, issued.secret)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"email": "not-an-address"}, "email"),
        ({"name": " "}, "name"),
        ({"role": "root"}, "role"),
        ({"role": Role.PARTNER}, "partner_id"),  # a partner user needs their organisation
        ({"partner_id": 7}, "partner_id"),  # staff belong to none
        ({"password": "x" * (MIN_PASSWORD_LENGTH - 1)}, "password"),
    ],
)
def test_bad_user_fields_are_refused_and_nothing_is_written(
    session: Session, actor: Actor, overrides: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as err:
        make_user(session, actor, **overrides)
    assert err.value.details["field"] == field
    assert session.scalar(select(func.count()).select_from(User)) == 0


def test_an_email_is_taken_once(session: Session, actor: Actor) -> None:
    make_user(session, actor)
    with pytest.raises(Conflict):
        make_user(session, actor, email="fin@example.com")


def test_the_database_refuses_a_partner_user_without_a_partner(
    session: Session, actor: Actor
) -> None:
    user = make_user(session, actor)
    session.commit()
    with pytest.raises(IntegrityError):
        session.execute(text("UPDATE users SET role = 'partner' WHERE id = :id"), {"id": user.id})
    session.rollback()


def test_an_api_token_is_shown_once_stored_hashed_and_revocable(
    session: Session, actor: Actor
) -> None:
    user = make_user(session, actor)
    issued = auth.issue_token(session, ADMIN, user.id, name="  crm sync ")
    assert issued.secret.startswith("mdf_")
    assert issued.token.name == "crm sync"
    assert issued.secret not in issued.token.token_hash
    assert issued.token.prefix == issued.secret[:12]
    found_user, found_token = auth.authenticate_token(session, issued.secret)
    assert (found_user.id, found_token.id) == (user.id, issued.token.id)
    assert found_token.last_used_at is not None
    auth.revoke_token(session, ADMIN, issued.token.id)
    with pytest.raises(Unauthorized, match="revoked"):
        auth.authenticate_token(session, issued.secret)


@pytest.mark.parametrize("secret", ["", "Bearer x", "mdf_" + "a" * 43, None])
def test_unknown_token_secrets_are_refused(session: Session, secret: Any) -> None:
    with pytest.raises(Unauthorized):
        auth.authenticate_token(session, secret)


@pytest.mark.parametrize(
    ("user_role", "token_role", "allowed"),
    [
        (Role.FINANCE, Role.AUDITOR, True),
        (Role.FINANCE, Role.ADMIN, False),
        (Role.AUDITOR, Role.FINANCE, False),
        (Role.ADMIN, Role.FINANCE, True),
    ],
)
def test_a_token_never_carries_more_than_its_users_role(
    session: Session, actor: Actor, user_role: str, token_role: str, allowed: bool
) -> None:
    user = make_user(session, actor, role=user_role)
    if allowed:
        assert auth.issue_token(session, ADMIN, user.id, name="t", role=token_role).token.role
    else:
        with pytest.raises(Forbidden):
            auth.issue_token(session, ADMIN, user.id, name="t", role=token_role)
