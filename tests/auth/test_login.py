"""Signing in and out through the pages, as a browser would: CSRF, sessions, rate limit."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from mdfledger import auth, create_app
from mdfledger.actor import Actor
from mdfledger.auth import Role

USERS_ADMIN = Actor("user", "admin-1", "admin")  # only admins create and disable staff users

PASSWORD = "correct horse battery staple"


@pytest.fixture
def app(database_url: str, tmp_path: Path, session_factory, actor: Actor) -> Flask:
    with session_factory() as session:
        auth.create_user(
            session, USERS_ADMIN, email="fin@example.com", name="Fin", role=Role.FINANCE,
            password=PASSWORD,
        )  # fmt: skip
        auth.create_user(
            session, USERS_ADMIN, email="old@example.com", name="Old", role=Role.AUDITOR,
            password=PASSWORD,
        )  # fmt: skip
        auth.disable_user(session, USERS_ADMIN, 2)
        session.commit()
    return create_app({"database_url": database_url, "env": "test", "instance_path": tmp_path})


def csrf_token(client: FlaskClient, path: str = "/login") -> str:
    page = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or re.search(
        r'name="csrf_token" value="([^"]+)"', page
    )
    assert match, "the form carries a CSRF token"
    return match.group(1)


def sign_in(client: FlaskClient, email: str, password: str, **query: str):
    token = csrf_token(client)
    return client.post(
        "/login", query_string=query,
        data={"email": email, "password": password, "csrf_token": token},
    )  # fmt: skip


def test_a_user_signs_in_sees_their_name_and_signs_out(app: Flask) -> None:
    client = app.test_client()
    response = sign_in(client, "FIN@example.com", PASSWORD)
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    home = client.get("/").get_data(as_text=True)
    assert "Fin (finance)" in home
    response = client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    assert response.status_code == 302
    assert "Fin (finance)" not in client.get("/").get_data(as_text=True)


def test_a_wrong_password_is_refused_with_one_plain_message(app: Flask) -> None:
    response = sign_in(app.test_client(), "fin@example.com", "not the password")
    assert response.status_code == 401
    assert "e-mail or password is wrong" in response.get_data(as_text=True)


def test_a_disabled_user_cannot_sign_in(app: Flask) -> None:
    response = sign_in(app.test_client(), "old@example.com", PASSWORD)
    assert response.status_code == 401
    assert "disabled" in response.get_data(as_text=True)


def test_a_form_without_its_csrf_token_is_refused(app: Flask) -> None:
    client = app.test_client()
    response = client.post("/login", data={"email": "fin@example.com", "password": PASSWORD})
    assert response.status_code == 400
    assert "Fin (finance)" not in client.get("/").get_data(as_text=True)


def test_sign_in_only_redirects_within_the_site(app: Flask) -> None:
    response = sign_in(app.test_client(), "fin@example.com", PASSWORD, next="//evil.example/x")
    assert response.headers["Location"] == "/"


def test_sign_in_attempts_are_rate_limited(app: Flask) -> None:
    client = app.test_client()
    statuses = [sign_in(client, "fin@example.com", "wrong password").status_code for _ in range(11)]
    assert statuses[:10] == [401] * 10
    assert statuses[10] == 429


def test_a_view_for_some_roles_sends_others_to_sign_in_or_refuses_them(app: Flask) -> None:
    from mdfledger.auth.access import require_roles

    @app.get("/finance-only")
    @require_roles(Role.FINANCE)
    def finance_only() -> str:
        return "ledger desk"

    @app.get("/admin-only")
    @require_roles(Role.ADMIN)
    def admin_only() -> str:
        return "users"

    client = app.test_client()
    assert client.get("/finance-only").status_code == 302  # to the sign-in page
    sign_in(client, "fin@example.com", PASSWORD)
    assert client.get("/finance-only").get_data(as_text=True) == "ledger desk"
    assert client.get("/admin-only").status_code == 403


def test_the_command_creates_and_disables_users(app: Flask) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=["users", "create", "--email", "Ada@Example.com", "--name", "Ada", "--role", "admin",
              "--password", PASSWORD],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "created admin user ada@example.com" in result.output
    assert sign_in(app.test_client(), "ada@example.com", PASSWORD).status_code == 302
    result = runner.invoke(args=["users", "disable", "ada@example.com"])
    assert result.exit_code == 0, result.output
    assert sign_in(app.test_client(), "ada@example.com", PASSWORD).status_code == 401


def test_the_command_refuses_a_short_password_and_creates_nothing(app: Flask) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=["users", "create", "--email", "b@example.com", "--name", "B", "--role", "finance",
              "--password", "short"],
    )  # fmt: skip
    assert result.exit_code != 0
    assert sign_in(app.test_client(), "b@example.com", "short").status_code in (400, 401)
