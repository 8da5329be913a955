"""The JSON API's foundation: bearer tokens only, one error shape, pages, the OpenAPI document."""

from __future__ import annotations

import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

import marshmallow as ma
import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_smorest import Blueprint
from sqlalchemy import select

from mdfledger import api, auth, create_app, programs
from mdfledger.actor import Actor
from mdfledger.api.auth import api_actor, require_roles
from mdfledger.api.pagination import PageArgsSchema, page_schema, paginate
from mdfledger.auth import ApiToken, Role, User
from mdfledger.db import get_read_session
from mdfledger.errors import Conflict

USERS_ADMIN = Actor("user", "admin-1", "admin")  # only admins create and disable staff users

ADMIN = Actor("user", "admin-1", "admin")  # tokens are issued by their user or an admin

PASSWORD = "correct horse battery staple"

# A blueprint for these tests only: a page of users, a role check, a POST, a crash.
test_blp = Blueprint("api_test", __name__, url_prefix="/api/v1/test")


class UserItemSchema(ma.Schema):
    id = ma.fields.Integer()
    email = ma.fields.String()


class NoteSchema(ma.Schema):
    text = ma.fields.String(required=True, validate=ma.validate.Length(min=1))


@test_blp.route("/users")
@test_blp.arguments(PageArgsSchema, location="query")
@test_blp.response(200, page_schema(UserItemSchema))
def users(args: dict[str, Any]) -> dict[str, Any]:
    return paginate(get_read_session(), select(User).order_by(User.id), args)


@test_blp.route("/emails")
@test_blp.arguments(PageArgsSchema, location="query")
def emails(args: dict[str, Any]) -> dict[str, Any]:
    page = paginate(get_read_session(), select(User.id, User.email).order_by(User.id), args)
    return {**page, "items": [[row.id, row.email] for row in page["items"]]}


@test_blp.route("/actor")
def actor_view() -> dict[str, Any]:
    return asdict(api_actor())


@test_blp.route("/finance-only")
@require_roles(Role.FINANCE, Role.ADMIN)
@test_blp.arguments(PageArgsSchema, location="query")
def finance_only(args: dict[str, Any]) -> dict[str, Any]:
    return {"desk": "ledger"}


@test_blp.route("/notes", methods=["POST"])
@test_blp.arguments(NoteSchema)
@test_blp.response(201, NoteSchema)
def notes(note: dict[str, Any]) -> dict[str, Any]:
    if note["text"] == "taken":
        raise Conflict("that note exists", text="taken")
    return note


@test_blp.route("/boom")
def boom() -> None:
    raise RuntimeError("secret database password in a traceback")


Tokens = dict[str, str]  # bearer secrets by label


@pytest.fixture
def tokens(session_factory, actor: Actor) -> Tokens:
    secrets: Tokens = {}
    with session_factory() as session:
        fin = auth.create_user(
            session, USERS_ADMIN, email="fin@example.com", name="Fin", role=Role.FINANCE,
            password=PASSWORD,
        )  # fmt: skip
        aud = auth.create_user(
            session, USERS_ADMIN, email="aud@example.com", name="Aud", role=Role.AUDITOR,
            password=PASSWORD,
        )  # fmt: skip
        old = auth.create_user(
            session, USERS_ADMIN, email="old@example.com", name="Old", role=Role.ADMIN,
            password=PASSWORD,
        )  # fmt: skip
        secrets["finance"] = auth.issue_token(session, ADMIN, fin.id, name="books").secret
        secrets["scoped"] = auth.issue_token(
            session, ADMIN, fin.id, name="reports", role=Role.AUDITOR
        ).secret
        revoked = auth.issue_token(session, ADMIN, aud.id, name="gone")
        auth.revoke_token(session, ADMIN, revoked.token.id)
        secrets["revoked"] = revoked.secret
        secrets["disabled"] = auth.issue_token(session, ADMIN, old.id, name="old").secret
        session.flush()
        # Disabled without revoking its tokens (disable_user would revoke them too): the user's
        # state alone must stop the token.
        old.disabled_at = old.created_at
        session.commit()
    return secrets


@pytest.fixture
def app(database_url: str, tmp_path: Path, tokens: Tokens) -> Flask:
    app = create_app({"database_url": database_url, "env": "test", "instance_path": tmp_path})
    api.register_blueprint(app, test_blp)
    return app


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def assert_error(response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.content_type == "application/json"
    assert response.json["error"]["code"] == code
    assert response.json["error"]["message"]
    assert response.json["error"]["request_id"] == response.headers["X-Request-Id"]
    return response.json["error"]


def answer(response) -> str:
    """The body with its request id (new on every request) masked: for telling whether two
    answers say the same, byte for byte."""
    return response.get_data(as_text=True).replace(response.headers["X-Request-Id"], "<id>")


def sign_in_with_the_form(client: FlaskClient, email: str) -> None:
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert token
    data = {"email": email, "password": PASSWORD, "csrf_token": token.group(1)}
    assert client.post("/login", data=data).status_code == 302
    assert "Fin (finance)" in client.get("/").get_data(as_text=True)


def unresolved_refs(document: dict[str, Any]) -> list[str]:
    def resolves(ref: str) -> bool:
        node: Any = document
        for part in ref.removeprefix("#/").split("/"):
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return True

    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and not resolves(ref):
                found.append(ref)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    return found


def test_the_openapi_document_is_public_and_describes_the_api(app: Flask) -> None:
    response = app.test_client().get("/api/v1/openapi.json")
    assert response.status_code == 200
    doc = response.json
    assert doc["openapi"] == "3.0.3"
    assert doc["info"] == {"title": "mdfledger", "version": "v1"}
    assert doc["components"]["securitySchemes"]["bearerAuth"]["type"] == "http"
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert doc["security"] == [{"bearerAuth": []}]
    me = doc["paths"]["/api/v1/me"]["get"]
    assert me["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Me"
    }
    assert set(doc["components"]["schemas"]["Me"]["properties"]) >= {
        "id", "email", "name", "role", "partner_id", "token",
    }  # fmt: skip
    # Errors are documented in the shape they are sent in.
    error = doc["components"]["schemas"]["ApiErrorBody"]
    assert error["required"] == ["code", "message"]
    # Pages of a feature document their envelope; role checks their 403.
    users = doc["paths"]["/api/v1/test/users"]["get"]
    assert {p["name"] for p in users["parameters"]} == {"page", "per_page"}
    page = doc["components"]["schemas"]["UserItemPage"]
    assert set(page["properties"]) == {"items", "page", "per_page", "total", "pages"}
    assert page["properties"]["items"]["items"] == {"$ref": "#/components/schemas/UserItem"}
    restricted = doc["paths"]["/api/v1/test/finance-only"]["get"]
    assert restricted["x-roles"] == ["admin", "finance"]
    assert "403" in restricted["responses"]
    assert unresolved_refs(doc) == []
    assert "/api/v1/openapi.json" not in doc["paths"]


def test_there_is_no_documentation_page_loading_scripts_from_a_cdn(
    app: Flask, tokens: Tokens
) -> None:
    client = app.test_client()
    for path in ("/api/v1/docs", "/api/v1/swagger-ui", "/api/v1/redoc", "/api/v1/rapidoc"):
        assert client.get(path, headers=bearer(tokens["finance"])).status_code == 404


def test_me_tells_whose_token_it_is_and_records_its_use(
    app: Flask, tokens: Tokens, session_factory
) -> None:
    response = app.test_client().get("/api/v1/me", headers=bearer(tokens["finance"]))
    assert response.status_code == 200
    assert response.json == {
        "id": 1,
        "email": "fin@example.com",
        "name": "Fin",
        "role": "finance",
        "partner_id": None,
        "token": {"id": 1, "name": "books", "prefix": tokens["finance"][:12]},
    }
    with session_factory() as session:
        token = session.scalar(select(ApiToken).where(ApiToken.name == "books"))
        assert token is not None and token.last_used_at is not None


def test_a_token_scoped_below_its_user_acts_with_the_token_role(app: Flask, tokens: Tokens) -> None:
    client = app.test_client()
    me = client.get("/api/v1/me", headers=bearer(tokens["scoped"]))
    assert me.json["role"] == "auditor"
    assert me.json["token"]["name"] == "reports"
    actor = client.get("/api/v1/test/actor", headers=bearer(tokens["scoped"])).json
    assert actor == {"kind": "user", "id": "1", "role": "auditor", "partner_id": None}


def test_a_partner_token_acts_for_its_partner_only(
    app: Flask, session_factory, actor: Actor
) -> None:
    with session_factory() as session:
        partner = programs.create_partner(
            session, actor, code="ACME", name="Acme", type="reseller", tier="gold", region="NA"
        )
        user = programs.add_partner_user(
            session, actor, partner.id, email="pat@acme.example", name="Pat", password=PASSWORD
        )
        secret = auth.issue_token(session, ADMIN, user.id, name="acme").secret
        session.commit()
    client = app.test_client()
    me = client.get("/api/v1/me", headers=bearer(secret)).json
    assert (me["role"], me["partner_id"]) == ("partner", partner.id)
    acting = client.get("/api/v1/test/actor", headers=bearer(secret)).json
    assert acting == {
        "kind": "user",
        "id": str(user.id),
        "role": "partner",
        "partner_id": partner.id,
    }


@pytest.mark.parametrize(
    ("label", "header", "invalid"),
    [
        ("no header", None, False),
        ("another scheme", "Basic Zm9vOmJhcg==", True),
        ("no token after the scheme", "Bearer ", True),
        ("not an mdfledger token", "Bearer abc.def.ghi", True),
        ("unknown token", "Bearer mdf_" + "A" * 43, True),
        ("revoked token", "revoked", True),
        ("disabled user", "disabled", True),
    ],
)
def test_requests_without_a_live_token_get_401_with_a_challenge(
    app: Flask, tokens: Tokens, label: str, header: str | None, invalid: bool
) -> None:
    if header in tokens:
        header = f"Bearer {tokens[header]}"
    headers = {"Authorization": header} if header is not None else {}
    response = app.test_client().get("/api/v1/me", headers=headers)
    assert_error(response, 401, "unauthorized")
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    assert ('error="invalid_token"' in challenge) == invalid


def test_a_revoked_token_and_a_disabled_user_say_why(app: Flask, tokens: Tokens) -> None:
    client = app.test_client()
    revoked = client.get("/api/v1/me", headers=bearer(tokens["revoked"]))
    assert "revoked" in assert_error(revoked, 401, "unauthorized")["message"]
    disabled = client.get("/api/v1/me", headers=bearer(tokens["disabled"]))
    assert "disabled" in assert_error(disabled, 401, "unauthorized")["message"]


def test_a_signed_in_browser_session_does_not_authenticate_the_api(
    app: Flask, tokens: Tokens
) -> None:
    client = app.test_client()
    sign_in_with_the_form(client, "fin@example.com")
    assert_error(client.get("/api/v1/me"), 401, "unauthorized")
    assert_error(client.post("/api/v1/test/notes", json={"text": "hi"}), 401, "unauthorized")
    # The same client with a token is served: the token decides, not the cookie.
    assert client.get("/api/v1/me", headers=bearer(tokens["scoped"])).json["role"] == "auditor"


def test_a_post_needs_the_token_and_no_csrf_token(app: Flask, tokens: Tokens) -> None:
    client = app.test_client()
    response = client.post(
        "/api/v1/test/notes", json={"text": "hi"}, headers=bearer(tokens["finance"])
    )
    assert response.status_code == 201
    assert response.json == {"text": "hi"}


def test_role_checks_refuse_other_tokens_before_reading_arguments(
    app: Flask, tokens: Tokens
) -> None:
    client = app.test_client()
    ok = client.get("/api/v1/test/finance-only", headers=bearer(tokens["finance"]))
    assert ok.json == {"desk": "ledger"}
    refused = client.get("/api/v1/test/finance-only", headers=bearer(tokens["scoped"]))
    assert "auditor" in assert_error(refused, 403, "forbidden")["message"]
    bad_args = client.get("/api/v1/test/finance-only?page=0", headers=bearer(tokens["scoped"]))
    assert_error(bad_args, 403, "forbidden")


def test_unknown_paths_and_methods_under_the_api_are_json(app: Flask, tokens: Tokens) -> None:
    client = app.test_client()
    assert_error(
        client.get("/api/v1/nothing-here", headers=bearer(tokens["finance"])), 404, "not_found"
    )
    response = client.delete("/api/v1/me", headers=bearer(tokens["finance"]))
    assert_error(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]
    # Without a token, the API says nothing more than 401 about what exists.
    assert_error(client.get("/api/v1/nothing-here"), 401, "unauthorized")


def test_pages_outside_the_api_keep_their_html_errors(app: Flask) -> None:
    response = app.test_client().get("/nothing-here")
    assert response.status_code == 404
    assert response.content_type.startswith("text/html")
    response = app.test_client().post("/login", data={"email": "fin@example.com"})
    assert response.status_code == 400  # the CSRF refusal, as before
    assert response.content_type.startswith("text/html")


def test_bodies_that_do_not_parse_or_validate_are_refused_with_details(
    app: Flask, tokens: Tokens
) -> None:
    client = app.test_client()
    headers = bearer(tokens["finance"])
    missing = client.post("/api/v1/test/notes", json={}, headers=headers)
    details = assert_error(missing, 422, "validation_error")["details"]
    assert details == {"json": {"text": ["Missing data for required field."]}}
    garbled = client.post(
        "/api/v1/test/notes", data="{not json", content_type="application/json", headers=headers
    )
    assert_error(garbled, 400, "bad_request")
    conflict = client.post("/api/v1/test/notes", json={"text": "taken"}, headers=headers)
    assert assert_error(conflict, 409, "conflict")["details"] == {"text": "taken"}


def test_a_body_over_the_limit_is_too_large(app: Flask, tokens: Tokens) -> None:
    app.config["MAX_CONTENT_LENGTH"] = 1000
    response = app.test_client().post(
        "/api/v1/test/notes", json={"text": "x" * 2000}, headers=bearer(tokens["finance"])
    )
    assert_error(response, 413, "too_large")


def test_a_crash_is_a_json_500_that_leaks_nothing(app: Flask, tokens: Tokens) -> None:
    app.config["PROPAGATE_EXCEPTIONS"] = False  # as in production; tests re-raise by default
    response = app.test_client().get("/api/v1/test/boom", headers=bearer(tokens["finance"]))
    error = assert_error(response, 500, "internal_error")
    body = response.get_data(as_text=True)
    assert "secret" not in body
    assert "Traceback" not in body
    assert "details" not in error


def test_lists_come_in_numbered_pages(app: Flask, tokens: Tokens) -> None:
    client = app.test_client()
    headers = bearer(tokens["finance"])
    first = client.get("/api/v1/test/users", headers=headers).json
    assert first["page"] == 1 and first["per_page"] == 50
    assert first["total"] == 3 and first["pages"] == 1
    assert [u["email"] for u in first["items"]] == [
        "fin@example.com", "aud@example.com", "old@example.com",
    ]  # fmt: skip
    second = client.get("/api/v1/test/users?page=2&per_page=2", headers=headers).json
    assert second == {
        "items": [{"id": 3, "email": "old@example.com"}],
        "page": 2,
        "per_page": 2,
        "total": 3,
        "pages": 2,
    }
    beyond = client.get("/api/v1/test/users?page=9&per_page=2", headers=headers).json
    assert beyond["items"] == [] and beyond["total"] == 3
    rows = client.get("/api/v1/test/emails?per_page=1", headers=headers).json
    assert rows["items"] == [[1, "fin@example.com"]] and rows["pages"] == 3


@pytest.mark.parametrize(
    ("query", "fields"),
    [
        ("page=0", {"page"}),
        ("per_page=201", {"per_page"}),
        ("per_page=0&page=abc", {"page", "per_page"}),
        ("page=99999999999999999999", {"page"}),
    ],
)
def test_bad_page_arguments_are_422_with_the_field_messages(
    app: Flask, tokens: Tokens, query: str, fields: set[str]
) -> None:
    response = app.test_client().get(
        f"/api/v1/test/users?{query}", headers=bearer(tokens["finance"])
    )
    details = assert_error(response, 422, "validation_error")["details"]
    assert set(details["query"]) == fields
    assert all(isinstance(m, str) for messages in details["query"].values() for m in messages)


def test_api_blueprints_must_live_under_the_api_prefix(app: Flask) -> None:
    with pytest.raises(ValueError, match="/api/v1"):
        api.register_blueprint(app, Blueprint("stray", __name__, url_prefix="/stray"))
