"""Errors under /api: one JSON shape with a stable code, for every status; pages keep theirs.

The shape is the app's DomainError shape, `{"error": {"code", "message", "details",
"request_id"}}`: `details` when there is something in it, `request_id` (as in the X-Request-Id
header) so a client can quote it and we can find the log lines. DomainErrors raised by API
views come out this way through create_app's handler (`domain_error`); this module covers what
Flask and werkzeug raise (404, 405, 413, 500, ...) and what webargs raises while parsing
arguments (422).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, TypeVar

import marshmallow as ma
from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from mdfledger.audit.service import current_request_id
from mdfledger.errors import DomainError
from mdfledger.security import too_large_message

F = TypeVar("F", bound=Callable[..., Any])

API_PATH = "/api"

# Stable codes for the HTTP errors the API answers with; other statuses get their name in
# snake case. DomainErrors keep their own codes (mdfledger/errors.py).
HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
    500: "internal_error",
}


def is_api_request() -> bool:
    """Whether the current request is for the API (anything under /api, matched or not)."""
    return request.path == API_PATH or request.path.startswith(API_PATH + "/")


def error_response(
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: Any = None,
) -> Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    if request_id := current_request_id():
        body["request_id"] = request_id
    response = jsonify(error=body)
    response.status_code = status
    if headers:
        response.headers.extend(headers)
    return response


def domain_error(error: DomainError) -> Response:
    """A service's refusal as JSON, with its own status and code."""
    return error_response(error.http_status, error.code, error.message, error.details)


def http_error(error: HTTPException) -> Response | HTTPException:
    """Flask's handler for every HTTPException: JSON under /api, Flask's own pages elsewhere."""
    if not is_api_request():
        return error  # exactly what Flask does when no handler is registered
    status = error.code or 500
    code = HTTP_CODES.get(status) or re.sub(r"\W+", "_", error.name).strip("_").lower()
    # webargs' and flask_smorest's abort() put their extras in `data`.
    data: dict[str, Any] = getattr(error, "data", None) or {}
    details = data.get("errors") or data.get("messages")
    if status == 500:
        # The exception is logged by Flask; the client learns nothing about it.
        message, details = "an internal error occurred; it has been logged", None
    elif status == 413:
        message = f"the request body is too large: {too_large_message()}"
    elif status == 422 and details and "message" not in data:
        message = "some arguments are not valid; see details"
    else:
        message = data.get("message") or error.description or error.name
    # Keep what werkzeug would send along (Allow on 405, WWW-Authenticate, Retry-After).
    headers = [(k, v) for k, v in error.get_headers() if k.lower() != "content-type"]
    headers.extend((data.get("headers") or {}).items())
    return error_response(status, code, message, details, headers)


def register_error_handlers(app: Flask) -> None:
    # One handler for the HTTPException class, not per status: an app-level handler for a status
    # (say a page's 404) registered later would take precedence and must defer to http_error
    # when is_api_request().
    app.register_error_handler(HTTPException, http_error)


class ApiErrorBodySchema(ma.Schema):
    code = ma.fields.String(
        required=True, metadata={"description": "Stable machine-readable code, e.g. not_found"}
    )
    message = ma.fields.String(required=True, metadata={"description": "For people"})
    details = ma.fields.Dict(
        metadata={"description": "More, when there is any: field messages by location, ids"}
    )
    request_id = ma.fields.String(
        metadata={"description": "This request's id, as in the X-Request-Id header: quote it"}
    )


class ApiErrorSchema(ma.Schema):
    """Every error response of the API."""

    error = ma.fields.Nested(ApiErrorBodySchema, required=True)


def documented_errors(blp: Any) -> Callable[..., Callable[[F], F]]:
    """`errors(404, 409)` for `blp`'s operations: documents the error responses an operation may
    give in the OpenAPI document (every one needs a token: 401 always, and 429 after too many
    wrong tokens from one address)."""

    def errors(*statuses: int) -> Callable[[F], F]:
        def decorate(view: F) -> F:
            for status in (401, 429, *statuses):
                view = blp.alt_response(status, response=HTTPStatus(status).name)(view)
            return view

        return decorate

    return errors
