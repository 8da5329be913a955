"""Request ids: every request gets one, audit entries written while serving it carry it, and the
response names it in `X-Request-Id`.

A client (or the proxy in front) may send its own `X-Request-Id` (1-64 letters, digits and
. _ : @ -); anything else is replaced by a fresh uuid4 hex.
"""

from __future__ import annotations

from flask import Flask, g, request
from werkzeug.wrappers import Response

from mdfledger.audit.service import (
    new_request_id,
    reset_request_id,
    set_request_id,
    valid_request_id,
)

HEADER = "X-Request-Id"


def init_app(app: Flask) -> None:
    """Register the hooks. Call before any other before_request hook (the API's token check
    answers 401 from one), so every response carries the id."""
    app.before_request(start_request)
    app.after_request(echo_request_id)
    app.teardown_request(end_request)


def start_request() -> None:
    incoming = request.headers.get(HEADER, "").strip()
    request_id = incoming if valid_request_id(incoming) else new_request_id()
    g.request_id = request_id
    g._request_id_token = set_request_id(request_id)


def echo_request_id(response: Response) -> Response:
    request_id = g.get("request_id")
    if request_id:
        response.headers[HEADER] = request_id
    return response


def end_request(_exc: BaseException | None) -> None:
    token = g.pop("_request_id_token", None)
    if token is not None:
        try:
            reset_request_id(token)
        except ValueError:  # set in another context (cannot happen in Flask's own flow)
            set_request_id(None)
