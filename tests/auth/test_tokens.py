"""API tokens through the page and the command: issued once, listed, revoked, only one's own."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask

from mdfledger import auth, create_app
from mdfledger.actor import Actor
from mdfledger.auth import Role
from tests.auth.test_login import PASSWORD, csrf_token, sign_in

USERS_ADMIN = Actor("user", "admin-1", "admin")  # only admins create and disable staff users


@pytest.fixture
def app(database_url: str, tmp_path: Path, session_factory, actor: Actor) -> Flask:
    with session_factory() as session:
        for email, role in (("fin@example.com", Role.FINANCE), ("aud@example.com", Role.AUDITOR)):
            auth.create_user(
                session, USERS_ADMIN, email=email, name=email[:3], role=role, password=PASSWORD
            )
        session.commit()
    return create_app({"database_url": database_url, "env": "test", "instance_path": tmp_path})


def test_a_user_issues_a_token_sees_it_once_uses_it_and_revokes_it(app: Flask) -> None:
    client = app.test_client()
    sign_in(client, "fin@example.com", PASSWORD)
    page = client.get("/account/tokens").get_data(as_text=True)
    assert "No tokens yet." in page
    assert '<option value="admin"' not in page  # never more than the user's own role
    issued = client.post(
        "/account/tokens",
        data={
            "name": "CRM sync",
            "role": "auditor",
            "csrf_token": csrf_token(client, "/account/tokens"),
        },
    )
    assert issued.status_code == 200
    secret = re.search(r'<code id="new-token">([^<]+)</code>', issued.get_data(as_text=True))[1]
    api = app.test_client()
    me = api.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert me.status_code == 200 and me.json["role"] == "auditor"
    listing = client.get("/account/tokens").get_data(as_text=True)
    assert secret not in listing  # shown once only
    assert "CRM sync" in listing and secret[:12] in listing
    token_id = re.search(r"/account/tokens/(\d+)/revoke", listing)[1]
    revoked = client.post(
        f"/account/tokens/{token_id}/revoke",
        data={"csrf_token": csrf_token(client, "/account/tokens")},
    )
    assert revoked.status_code == 302
    assert api.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"}).status_code == 401


def test_a_role_above_ones_own_or_a_blank_name_is_refused(app: Flask) -> None:
    client = app.test_client()
    sign_in(client, "aud@example.com", PASSWORD)
    token = csrf_token(client, "/account/tokens")
    too_strong = client.post(
        "/account/tokens", data={"name": "x", "role": "finance", "csrf_token": token}
    )
    assert too_strong.status_code == 422
    blank = client.post(
        "/account/tokens", data={"name": "", "role": "auditor", "csrf_token": token}
    )
    assert blank.status_code == 422
    assert "No tokens yet." in blank.get_data(as_text=True)


def test_nobody_revokes_another_users_token(app: Flask, session_factory) -> None:
    with session_factory() as session:
        fin = auth.user_by_email(session, "fin@example.com")
        issued = auth.issue_token(session, Actor.system("test"), fin.id, name="books")
        session.commit()
    client = app.test_client()
    sign_in(client, "aud@example.com", PASSWORD)
    response = client.post(
        f"/account/tokens/{issued.token.id}/revoke",
        data={"csrf_token": csrf_token(client, "/account/tokens")},
    )
    assert response.status_code == 404
    assert "books" not in response.get_data(as_text=True)
    with session_factory() as session:
        assert auth.tokens_of(session, Actor.system("test"), fin.id)[0].revoked_at is None


def test_signed_out_visitors_are_sent_to_sign_in(app: Flask) -> None:
    response = app.test_client().get("/account/tokens")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_the_command_issues_lists_and_revokes(app: Flask) -> None:
    runner = app.test_cli_runner()
    issued = runner.invoke(args=["tokens", "issue", "fin@example.com", "--name", "ERP"])
    assert issued.exit_code == 0, issued.output
    secret = issued.output.splitlines()[-1]
    assert secret.startswith("mdf_")
    listed = runner.invoke(args=["tokens", "list", "fin@example.com"])
    assert "ERP" in listed.output and "live" in listed.output and secret not in listed.output
    token_id = listed.output.split()[0]
    assert runner.invoke(args=["tokens", "revoke", token_id]).exit_code == 0
    assert "revoked" in runner.invoke(args=["tokens", "list", "fin@example.com"]).output
    refused = runner.invoke(
        args=["tokens", "issue", "fin@example.com", "--name", "x", "--role", "admin"]
    )
    assert refused.exit_code == 1
    assert "a finance user cannot issue admin tokens" in refused.output
