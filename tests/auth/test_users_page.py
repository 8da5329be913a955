"""Admins manage staff users on a page: add, see everyone, disable (never themselves)."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select

from mdfledger import auth, create_app
from mdfledger.actor import Actor
from mdfledger.auth import Role
from mdfledger.errors import Forbidden
from tests.auth.test_login import PASSWORD, csrf_token, sign_in

SYSTEM = Actor.system("test")


@pytest.fixture
def app(database_url: str, tmp_path: Path, session_factory) -> Flask:
    with session_factory() as session:
        for email, role in (("root@example.com", Role.ADMIN), ("fin@example.com", Role.FINANCE)):
            auth.create_user(
                session, SYSTEM, email=email, name=email[:4], role=role, password=PASSWORD
            )
        session.commit()
    return create_app({"database_url": database_url, "env": "test", "instance_path": tmp_path})


def add(client, **fields: str):
    data = {"name": "Ann", "email": "ann@example.com", "role": "auditor", "password": PASSWORD}
    data |= fields
    return client.post(
        "/admin/users", data={**data, "csrf_token": csrf_token(client, "/admin/users")}
    )


def users(session_factory) -> int:
    with session_factory() as session:
        return session.scalar(select(func.count()).select_from(auth.User))


def test_an_admin_adds_a_staff_user_who_can_then_sign_in(app: Flask, session_factory) -> None:
    client = app.test_client()
    sign_in(client, "root@example.com", PASSWORD)
    assert 'href="/admin/users"' in client.get("/programs").get_data(as_text=True)  # in the nav
    response = add(client)
    assert response.status_code == 302
    page = client.get("/admin/users").get_data(as_text=True)
    assert "ann@example.com" in page and "Added Ann (auditor)" in page
    assert sign_in(app.test_client(), "ann@example.com", PASSWORD).status_code == 302


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"password": "short"}, "at least 12 characters"),
        ({"email": "fin@example.com"}, "already exists"),
        ({"email": "not-an-address"}, "is not an e-mail address"),
        ({"role": "partner"}, "Not a valid choice"),
    ],
)
def test_bad_input_is_shown_and_adds_nobody(
    app: Flask, session_factory, fields: dict[str, str], message: str
) -> None:
    client = app.test_client()
    sign_in(client, "root@example.com", PASSWORD)
    before = users(session_factory)
    response = add(client, **fields)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert users(session_factory) == before


def test_an_admin_disables_a_user_but_not_themselves(app: Flask, session_factory) -> None:
    client = app.test_client()
    sign_in(client, "root@example.com", PASSWORD)
    with session_factory() as session:
        fin = auth.user_by_email(session, "fin@example.com")
        root = auth.user_by_email(session, "root@example.com")
    token = csrf_token(client, "/admin/users")
    assert (
        client.post(f"/admin/users/{fin.id}/disable", data={"csrf_token": token}).status_code == 302
    )
    assert sign_in(app.test_client(), "fin@example.com", PASSWORD).status_code == 401
    client.post(f"/admin/users/{root.id}/disable", data={"csrf_token": token})
    assert "you cannot disable yourself" in client.get("/admin/users").get_data(as_text=True)
    with session_factory() as session:
        assert auth.user_by_email(session, "root@example.com").disabled_at is None


@pytest.mark.parametrize("email", ["fin@example.com", None])
def test_only_admins_reach_the_page(app: Flask, email: str | None) -> None:
    client = app.test_client()
    if email:
        sign_in(client, email, PASSWORD)
    response = client.get("/admin/users")
    assert response.status_code == (403 if email else 302)
    assert "root@example.com" not in response.get_data(as_text=True)


def test_the_services_refuse_staff_changes_by_non_admins(session_factory) -> None:
    finance = Actor("user", "2", "finance")
    with session_factory() as session:
        with pytest.raises(Forbidden):
            auth.create_user(
                session, finance, email="x@example.com", name="X", role=Role.ADMIN,
                password=PASSWORD,
            )  # fmt: skip
        admin = auth.create_user(
            session, SYSTEM, email="a@example.com", name="A", role=Role.ADMIN, password=PASSWORD
        )
        with pytest.raises(Forbidden):
            auth.disable_user(session, finance, admin.id)
