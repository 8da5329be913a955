"""The API's limits: wrong bearer tokens per client address (429 with Retry-After), request
bodies over the upload limit (413), text with NUL characters (422), all in the JSON error
shape. On SQLite and PostgreSQL."""

from __future__ import annotations

import io
from pathlib import Path

from flask import Flask

from mdfledger import create_app
from mdfledger.api.auth import FAILED_TOKENS
from tests.api import test_api_foundation
from tests.api.test_api_foundation import Tokens, assert_error, bearer

app = test_api_foundation.app  # an app with the API's test blueprint, and its tokens
tokens = test_api_foundation.tokens

WRONG = bearer("mdf_" + "0" * 40)


def test_wrong_tokens_from_one_address_are_refused_for_a_while(app: Flask, tokens: Tokens) -> None:
    client = app.test_client()
    limit = FAILED_TOKENS.amount
    for _ in range(limit):
        assert_error(client.get("/api/v1/me", headers=WRONG), 401, "unauthorized")
    refused = client.get("/api/v1/me", headers=WRONG)
    error = assert_error(refused, 429, "too_many_requests")
    assert "too many requests with a wrong API token from this address" in error["message"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert f"try again in {refused.headers['Retry-After']} seconds" in error["message"]
    # While it lasts no token from that address is looked at, a good one included: guessing
    # cannot go on at full speed and learn when it hits.
    good = client.get("/api/v1/me", headers=bearer(tokens["finance"]))
    assert_error(good, 429, "too_many_requests")
    # Other addresses are served, and a missing token is no guess: never counted.
    elsewhere = {"REMOTE_ADDR": "192.0.2.9"}
    served = client.get("/api/v1/me", headers=bearer(tokens["finance"]), environ_base=elsewhere)
    assert served.status_code == 200 and served.json["email"] == "fin@example.com"
    for _ in range(limit + 5):
        assert_error(client.get("/api/v1/me", environ_base=elsewhere), 401, "unauthorized")
    assert client.get("/api/v1/me", headers=bearer(tokens["finance"]),
                      environ_base=elsewhere).status_code == 200  # fmt: skip


def test_a_revoked_or_disabled_token_counts_as_wrong(app: Flask, tokens: Tokens) -> None:
    client = app.test_client()
    for n in range(FAILED_TOKENS.amount):
        token = tokens["revoked"] if n % 2 else tokens["disabled"]
        assert_error(client.get("/api/v1/me", headers=bearer(token)), 401, "unauthorized")
    assert_error(client.get("/api/v1/me", headers=WRONG), 429, "too_many_requests")


def test_a_body_over_the_limit_is_a_json_413_naming_the_limits(
    database_url: str, tmp_path: Path, tokens: Tokens
) -> None:
    small = create_app(
        {"database_url": database_url, "env": "test", "instance_path": tmp_path,
         "upload_max_bytes": 1024}
    )  # fmt: skip
    big = io.BytesIO(b"x" * (small.config["MAX_CONTENT_LENGTH"] + 1))
    response = small.test_client().post(
        "/api/v1/programs/1/imports/allocations",
        headers=bearer(tokens["finance"]),
        data={"file": (big, "allocations.csv")},
        content_type="multipart/form-data",
    )
    error = assert_error(response, 413, "too_large")
    assert error["message"] == (
        "the request body is too large: a file may be at most 1 KB, and one request at most 1 MB"
    )
    small.extensions["mdfledger.db"].kw["bind"].dispose()


def test_text_with_a_nul_character_is_refused_wherever_it_is(app: Flask, tokens: Tokens) -> None:
    client = app.test_client()
    headers = bearer(tokens["finance"])
    partner = {"code": "NEWCO", "name": "New\x00Co", "type": "agency", "tier": "gold",
               "region": "NA"}  # fmt: skip
    body = assert_error(
        client.post("/api/v1/partners", headers=headers, json=partner), 422, "validation_error"
    )
    assert body["details"] == {"json": {"name": ["must not contain NUL characters"]}}
    query = assert_error(
        client.get("/api/v1/partners?search=acme%00", headers=headers), 422, "validation_error"
    )
    assert query["details"] == {"query": {"search": ["must not contain NUL characters"]}}
    # Parameters the operation does not read are ignored, as always.
    ignored = client.get("/api/v1/partners?nothing=a%00b", headers=headers)
    assert ignored.status_code == 200
