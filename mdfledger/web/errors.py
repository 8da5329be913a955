"""Errors on pages: a friendly HTML page with the right status; the API keeps its JSON.

- A DomainError raised by a page view (blueprint `web`) becomes the error page with the error's
  status and message. Not-found and forbidden say nothing about the object: a partner must not
  learn whether another partner's program or claim exists.
- HTTP errors anywhere in the app (400 including a missing CSRF token, 403, 404, 405, 413, 429,
  500) get the error page too, except under /api, where mdfledger.api.errors answers in JSON.
  Handlers for a status take precedence over the API's handler for HTTPException, so each of
  these defers to it for /api paths.
- Every error page shows the request's id (the X-Request-Id header) for the user to quote.
"""

from __future__ import annotations

import logging

from flask import render_template, request
from flask_wtf.csrf import CSRFError
from markupsafe import escape
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from mdfledger.audit.service import current_request_id
from mdfledger.errors import DomainError, Forbidden, NotFound, Unauthorized
from mdfledger.security import too_large_message
from mdfledger.web import bp

log = logging.getLogger(__name__)

API_PATH = "/api"

# status -> (title, what the user reads)
PAGES: dict[int, tuple[str, str]] = {
    400: ("Bad request", "The request could not be understood. Go back, reload and try again."),
    401: ("Please sign in", "Sign in to see this page."),
    403: ("Not allowed", "Your role does not allow this page or action."),
    404: (
        "Not found",
        "There is nothing to show at this address, or it is not available to you.",
    ),
    405: ("Method not allowed", "This address does not accept that kind of request."),
    409: ("That cannot be done", "It conflicts with the current state. Nothing was changed."),
    413: ("Upload too large", "The file or form is larger than this site accepts."),
    422: ("That cannot be done", "The request was not valid. Nothing was changed."),
    429: ("Too many requests", "Wait a minute, then try again."),
    500: (
        "Something went wrong",
        "An error occurred on our side and has been logged. Try again later.",
    ),
}
CSRF_MESSAGE = (
    "The form's security token is missing or has expired, so it was not accepted. Reload the"
    " page and submit the form again."
)


def _is_api_request() -> bool:
    return request.path == API_PATH or request.path.startswith(API_PATH + "/")


def error_page(status: int, message: str | None = None, *, headers: object = None) -> Response:
    """The HTML error page for `status`, with `message` (or the status's own) for the user."""
    title, default = PAGES.get(status, PAGES[500 if status >= 500 else 400])
    request_id = current_request_id()
    try:
        body = render_template(
            "error.html", status=status, title=title, message=message or default,
            request_id=request_id,
        )  # fmt: skip
    except Exception:  # the page must come out even when the layout cannot (say the database)
        log.exception("rendering the error page failed")
        body = f"<!doctype html><title>{escape(title)}</title><h1>{escape(title)}</h1>"
        if request_id:
            body += f"<p>Request id: <code>{escape(request_id)}</code></p>"
    response = Response(body, status=status, mimetype="text/html")
    if headers:
        response.headers.extend(headers)
    return response


@bp.errorhandler(DomainError)
def _domain_error(error: DomainError) -> Response:
    """A service refused what a page asked: its message, except for not found / forbidden."""
    if isinstance(error, NotFound | Forbidden | Unauthorized):
        return error_page(error.http_status)
    return error_page(error.http_status, error.message)


def _http_error(error: HTTPException) -> Response | HTTPException:
    if _is_api_request():
        from mdfledger.api.errors import http_error

        return http_error(error)
    status = error.code or 500
    # The page's own words, never werkzeug's description or an exception's text.
    message = CSRF_MESSAGE if isinstance(error, CSRFError) else None
    if status == 413:
        message = f"The file or form is too large: {too_large_message()}. Nothing was saved."
    # Keep what werkzeug would send along (Allow on 405, Retry-After on 429).
    headers = [(k, v) for k, v in error.get_headers() if k.lower() != "content-type"]
    return error_page(status, message, headers=headers)


for _status in (400, 403, 404, 405, 413, 429, 500):
    bp.app_errorhandler(_status)(_http_error)
