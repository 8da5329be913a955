"""The web edge: security headers, cookie flags, CSRF on every form, rate limits on sign-in and
token issuing, and uploads over the limit. On SQLite and PostgreSQL.

The world is the partner pages' (tests/web/test_partners_pages.py): two programs, two
partners, a user per role.
"""

from __future__ import annotations

import dataclasses
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select

from mdfledger import auth, create_app
from mdfledger.audit import AuditEntry
from mdfledger.auth import ApiToken, User
from mdfledger.config import ConfigError, Settings
from mdfledger.ledger.models import Transfer
from mdfledger.security import CONTENT_SECURITY_POLICY
from tests.auth.test_login import csrf_token
from tests.web import test_partners_pages
from tests.web.test_partners_pages import EMAILS, PASSWORD, World, body

world = test_partners_pages.world

REFUSED_FORM = "security token is missing or has expired"  # web.errors.CSRF_MESSAGE, as shown
EVERY_RESPONSE = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def test_the_policy_allows_this_site_only_and_no_framing() -> None:
    directives = dict(d.split(" ", 1) for d in CONTENT_SECURITY_POLICY.split("; "))
    assert directives == {
        "default-src": "'self'", "object-src": "'none'",
        "base-uri": "'none'", "frame-ancestors": "'none'", "form-action": "'self'",
    }  # fmt: skip


def test_every_answer_carries_the_security_headers_and_private_ones_are_not_stored(
    world: World,
) -> None:
    anonymous, finance = world.client(), world.client("finance")
    answers = {
        "sign-in page": anonymous.get("/login"),
        "a signed-in page": finance.get(f"/partners/{world.acme}"),
        "an error page": finance.get("/partners/999999"),
        "a redirect": anonymous.get(f"/partners/{world.acme}"),
        "the API": anonymous.get("/api/v1/me"),
        "the OpenAPI document": anonymous.get("/api/v1/openapi.json"),
    }
    assert answers["a signed-in page"].status_code == 200
    assert answers["an error page"].status_code == 404
    for what, response in answers.items():
        for name, value in EVERY_RESPONSE.items():
            assert response.headers.get(name) == value, (what, name)
        assert "camera=()" in response.headers["Permissions-Policy"], what
        assert "geolocation=()" in response.headers["Permissions-Policy"], what
        assert response.headers["Cache-Control"] == "no-store", what
        assert "Strict-Transport-Security" not in response.headers, what  # not in test
    # Static files are the same for everyone: cacheable, but still nosniff.
    style = anonymous.get("/assets/app.css")
    assert style.status_code == 200
    assert style.headers["Cache-Control"] != "no-store"
    assert style.headers["X-Content-Type-Options"] == "nosniff"


def test_no_template_carries_inline_script_or_style() -> None:
    """What the policy refuses: inline <script>, on* handlers, style attributes, javascript:."""
    root = Path(__file__).resolve().parents[1] / "mdfledger"
    inline = re.compile(
        r"<script(?![^>]*\bsrc=)[^>]*>|\son[a-z]+\s*=|\sstyle\s*=|<style|javascript:", re.I
    )
    found = [
        f"{path.relative_to(root)}: {match.group(0)}"
        for path in sorted(root.rglob("templates/**/*.html"))
        for match in inline.finditer(path.read_text(encoding="utf-8"))
    ]
    assert found == []


def _cookie(response, name: str) -> str:
    cookies = [c for c in response.headers.getlist("Set-Cookie") if c.startswith(f"{name}=")]
    assert cookies, f"no {name} cookie set"
    return cookies[-1]


def test_the_session_cookie_is_http_only_and_same_site(world: World) -> None:
    client = world.app.test_client()
    token = csrf_token(client)
    response = client.post(
        "/login", data={"email": EMAILS["finance"], "password": PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 302
    cookie = _cookie(response, "session")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # a development server speaks plain http


def test_production_adds_hsts_and_secure_cookies(database_url: str, tmp_path: Path) -> None:
    app = create_app(
        {"database_url": database_url, "env": "production", "secret_key": "s" * 40,
         "instance_path": tmp_path}
    )  # fmt: skip
    assert app.config["REMEMBER_COOKIE_SECURE"] is True
    assert app.config["REMEMBER_COOKIE_HTTPONLY"] is True
    assert app.config["REMEMBER_COOKIE_SAMESITE"] == "Lax"
    client = app.test_client()
    page = client.get("/login")
    assert page.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    cookie = _cookie(page, "session")  # the CSRF token lives in the session
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


# --- CSRF ---------------------------------------------------------------------------------------

# Not forms: the API takes bearer tokens only (never cookies), Stripe signs its webhooks.
NOT_FORMS = ("/api/", "/webhooks/stripe")


def _fill(rule: str, world: World) -> str:
    ids = {"partner_id": world.acme, "program_id": world.mdf}
    path = re.sub(r"<int:(\w+)>", lambda m: str(ids.get(m.group(1), 1)), rule)
    return re.sub(r"<(\w+)>", "approve", path)  # /claims/<id>/<action>


def _counts(world: World) -> tuple[int, ...]:
    with world.sessions() as session:
        return tuple(
            session.scalar(select(func.count()).select_from(model)) or 0
            for model in (AuditEntry, Transfer, User, ApiToken)
        )


def test_every_form_post_without_its_csrf_token_is_refused_and_changes_nothing(
    world: World,
) -> None:
    posts = sorted(
        rule.rule
        for rule in world.app.url_map.iter_rules()
        if "POST" in (rule.methods or ()) and not rule.rule.startswith(NOT_FORMS)
    )
    assert len(posts) >= 40  # every page that changes something
    admin, partner = world.client("admin"), world.client("partner")
    before = _counts(world)
    wrong = []
    for rule in posts:
        for client in (admin, partner):
            response = client.post(_fill(rule, world), data={"name": "x", "reason": "x"})
            if response.status_code != 400 or REFUSED_FORM not in body(response):
                wrong.append(f"{rule}: {response.status_code}")
    assert wrong == []
    assert _counts(world) == before
    # A stale token is no better than none.
    stale = admin.post("/allocate", data={"csrf_token": "x" * 40})
    assert stale.status_code == 400 and REFUSED_FORM in body(stale)


# --- rate limits --------------------------------------------------------------------------------


def test_sign_in_is_limited_per_address_with_a_readable_page(world: World) -> None:
    client = world.app.test_client()
    token = csrf_token(client)
    data = {"email": EMAILS["finance"], "password": "wrong", "csrf_token": token}
    statuses = [client.post("/login", data=data).status_code for _ in range(11)]
    assert statuses == [401] * 10 + [429]
    limited = client.post("/login", data={**data, "password": PASSWORD})
    assert limited.status_code == 429  # even the right password waits
    assert "Too many requests" in body(limited) and "Wait a minute" in body(limited)
    # Another address is not held up.
    other = world.app.test_client()
    elsewhere = other.post(
        "/login",
        data={**data, "password": PASSWORD, "csrf_token": csrf_token(other)},
        environ_base={"REMOTE_ADDR": "192.0.2.7"},
    )
    assert elsewhere.status_code == 302


def test_issuing_api_tokens_is_limited_per_user(world: World) -> None:
    finance, auditor = world.client("finance"), world.client("auditor")
    token = csrf_token(finance, "/account/tokens")
    for n in range(20):
        issued = finance.post("/account/tokens", data={"name": f"t{n}", "role": "finance",
                                                       "csrf_token": token})  # fmt: skip
        assert issued.status_code == 200 and "mdf_" in body(issued), n
    refused = finance.post(
        "/account/tokens", data={"name": "one more", "role": "finance", "csrf_token": token}
    )
    assert refused.status_code == 429 and "Too many requests" in body(refused)
    with world.sessions() as session:
        user = auth.user_by_email(session, EMAILS["finance"])
        assert user is not None
        names = session.scalars(select(ApiToken.name).where(ApiToken.user_id == user.id)).all()
    assert len(names) == 20 and "one more" not in names
    # Someone else (same address) still may.
    other = auditor.post(
        "/account/tokens",
        data={"name": "reports", "role": "auditor",
              "csrf_token": csrf_token(auditor, "/account/tokens")},
    )  # fmt: skip
    assert other.status_code == 200 and "mdf_" in body(other)


# --- uploads over the limit ---------------------------------------------------------------------


@pytest.fixture
def small_uploads(database_url: str, tmp_path: Path, world: World) -> Iterator[Flask]:
    """The world's database behind an app with a 1 KB upload limit (so 1 MB + 5 KB a request)."""
    app = create_app(
        {"database_url": database_url, "env": "test", "instance_path": tmp_path / "small",
         "upload_max_bytes": 1024}
    )  # fmt: skip
    yield app
    app.extensions["mdfledger.db"].kw["bind"].dispose()


def test_a_body_over_the_limit_gets_a_readable_413_page_and_nothing_is_stored(
    world: World, small_uploads: Flask
) -> None:
    client = small_uploads.test_client()
    token = csrf_token(client)
    client.post("/login", data={"email": EMAILS["partner"], "password": PASSWORD,
                                "csrf_token": token})  # fmt: skip
    before = _counts(world)
    big = b"x" * (small_uploads.config["MAX_CONTENT_LENGTH"] + 1)
    response = client.post(
        "/claims/1/documents",
        data={"csrf_token": token, "kind": "invoice", "file": (io.BytesIO(big), "invoice.pdf")},
        content_type="multipart/form-data",
    )  # fmt: skip
    assert response.status_code == 413
    assert response.content_type.startswith("text/html")
    page = body(response)
    assert "Upload too large" in page
    assert (
        "The file or form is too large: a file may be at most 1 KB, and one request at most"
        " 1 MB. Nothing was saved."
    ) in page
    assert _counts(world) == before


def test_behind_a_proxy_limits_count_per_client_not_per_proxy(
    database_url: str, tmp_path: Path, world: World
) -> None:
    app = create_app(
        {"database_url": database_url, "env": "test", "instance_path": tmp_path / "proxied",
         "proxy_hops": 1}
    )  # fmt: skip
    client = app.test_client()
    token = csrf_token(client)
    data = {"email": EMAILS["finance"], "password": "wrong", "csrf_token": token}

    def sign_in_from(address: str) -> int:
        return client.post("/login", data=data, headers={"X-Forwarded-For": address}).status_code

    assert [sign_in_from("198.51.100.1") for _ in range(11)] == [401] * 10 + [429]
    assert sign_in_from("198.51.100.2") == 401  # another client behind the same proxy
    app.extensions["mdfledger.db"].kw["bind"].dispose()
    with pytest.raises(ConfigError, match="MDFLEDGER_PROXY_HOPS"):
        Settings.from_env({"MDFLEDGER_PROXY_HOPS": "9"}).validate()


def test_with_proof_on_s3_the_policy_lets_the_claim_page_frame_and_show_it() -> None:
    from mdfledger.config import Settings
    from mdfledger.security import content_security_policy

    local = Settings()
    assert content_security_policy(local) == CONTENT_SECURITY_POLICY
    on_aws = dataclasses.replace(local, proof_store="s3", s3_bucket="proof")
    moto = dataclasses.replace(on_aws, s3_endpoint_url="http://127.0.0.1:9000")
    for settings, origins in (
        (on_aws, "https://*.amazonaws.com"),
        (moto, "http://127.0.0.1:9000 http://*.127.0.0.1:9000"),
    ):
        directives = dict(d.split(" ", 1) for d in content_security_policy(settings).split("; "))
        assert directives["img-src"] == directives["frame-src"] == f"'self' {origins}"
        assert directives["default-src"] == "'self'" and directives["frame-ancestors"] == "'none'"


def test_a_nul_character_in_a_page_address_or_form_is_refused_before_any_query(
    world: World,
) -> None:
    """PostgreSQL can neither store nor compare NUL: it would be a 500 there."""
    auditor = world.client("auditor")
    for path in (
        "/statements?partner=AC%00ME&start=2026-01-01&end=2026-12-31",
        "/statements/file.csv?partner=AC%00ME&start=2026-01-01&end=2026-12-31",
        "/audit/export?partner=a%00b",
        "/partners?q=%00",
    ):
        response = auditor.get(path)
        assert response.status_code == 400, path
        assert "NUL character" in body(response)
        assert response.headers["X-Request-Id"] in response.get_data(as_text=True)
    assert auditor.get("/api/v1/me").status_code == 401  # the API answers in its own way
