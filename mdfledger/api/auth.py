"""Bearer tokens for the API: every request under /api carries one; cookies never count.

`authenticate_request` runs before every request (registered on the app by mdfledger.api), so an
endpoint cannot forget it; only the OpenAPI document is public. The browser session is never
read here, so a signed-in user's cookie cannot make an API call, and the API needs no CSRF token.

Failed tokens are counted per client address (the app's rate-limit storage): past
FAILED_TOKENS, no token from that address is even looked at until the window ends (429 with
Retry-After), so guessing gets no faster by hammering, and a script with a revoked token stops
filling the log. A request with no token at all guesses nothing and is not counted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from copy import deepcopy
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar

from flask import current_app, g, request
from flask_limiter.util import get_remote_address
from limits import parse
from werkzeug.wrappers import Response

from mdfledger.actor import Actor
from mdfledger.api.errors import error_response, is_api_request
from mdfledger.auth import rules
from mdfledger.auth.models import Role
from mdfledger.auth.service import authenticate_token
from mdfledger.db import get_session
from mdfledger.errors import Forbidden, Unauthorized
from mdfledger.extensions import limiter

F = TypeVar("F", bound=Callable[..., Any])

# The OpenAPI document (flask-smorest's doc blueprint is named "api-docs").
PUBLIC_ENDPOINTS = frozenset({"api-docs.openapi_json"})
REALM = "mdfledger"
# A client with a mistyped or revoked token fails a few times a minute; thirty is a script
# gone wrong or someone guessing (the secrets have 256 bits, so the limit keeps the database
# and the log quiet more than it protects the secrets).
FAILED_TOKENS = parse("30 per minute")


@dataclass(frozen=True, slots=True)
class ApiCaller:
    """Who is calling: the token's user, read once per request; nothing mutable."""

    user_id: int
    email: str
    name: str
    role: str  # the token's role, never more than the user's: this is the one that counts
    partner_id: int | None
    token_id: int
    token_name: str
    token_prefix: str


def authenticate_request() -> Response | None:
    """before_request: 401 unless the request carries a live bearer token."""
    if not is_api_request() or request.endpoint in PUBLIC_ENDPOINTS:
        return None
    scheme, _, secret = request.headers.get("Authorization", "").strip().partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        return _challenge("an API token is needed: send Authorization: Bearer <token>", scheme)
    if (refused := _too_many_failures()) is not None:
        return refused
    session = get_session()
    try:
        user, token = authenticate_token(session, secret)
        # Tokens are issued no stronger than their user; should the user's role change later,
        # a token left stronger than its user is not honoured.
        if not rules.may_delegate(user.role, token.role):
            raise Unauthorized("this API token's role is more than its user's; issue a new one")
    except Unauthorized as exc:
        session.rollback()
        if limiter.enabled:
            limiter.limiter.hit(FAILED_TOKENS, *_failure_key())
        return _challenge(exc.message, scheme)
    g.api_caller = ApiCaller(
        user.id, user.email, user.name, token.role, user.partner_id, token.id, token.name,
        token.prefix,
    )  # fmt: skip
    # Commit last_used_at now rather than after the view: the use is recorded whether or not
    # the view succeeds, and the view starts its own transaction, so a slow view does not hold
    # the token's row (PostgreSQL: concurrent requests with one token would queue on it) or
    # SQLite's write lock for its whole length. The cost is one short write per request.
    session.commit()
    view = current_app.view_functions.get(request.endpoint) if request.endpoint else None
    roles = getattr(view, "api_roles", None)
    if roles is not None:
        _check_role(roles)  # before webargs parses anything: a 403 comes before a 422
    return None


def _failure_key() -> tuple[str, str]:
    return ("api-token-failures", get_remote_address())


def _too_many_failures() -> Response | None:
    """429 while this address is over FAILED_TOKENS, without looking at its token."""
    if not limiter.enabled or limiter.limiter.test(FAILED_TOKENS, *_failure_key()):
        return None
    reset_at = limiter.limiter.get_window_stats(FAILED_TOKENS, *_failure_key()).reset_time
    retry_after = max(1, int(reset_at - time.time()) + 1)
    return error_response(
        429,
        "too_many_requests",
        f"too many requests with a wrong API token from this address; try again in"
        f" {retry_after} seconds",
        headers={"Retry-After": str(retry_after)},
    )


def _challenge(message: str, scheme: str) -> Response:
    challenge = f'Bearer realm="{REALM}"'
    if scheme:  # RFC 6750: no error code when the request had no credentials at all
        challenge += ', error="invalid_token"'
    return error_response(401, Unauthorized.code, message, headers={"WWW-Authenticate": challenge})


def api_caller() -> ApiCaller:
    """The authenticated caller of this API request."""
    caller = g.get("api_caller")
    if caller is None:
        raise Unauthorized("this request is not authenticated with an API token")
    return caller


def api_actor() -> Actor:
    """The caller as the services' Actor, with the token's role and the user's partner."""
    caller = api_caller()
    return Actor("user", str(caller.user_id), caller.role, caller.partner_id)


def require_roles(*roles: str) -> Callable[[F], F]:
    """API views for tokens with one of `roles` only; others get 403 JSON.

    Put it right under `@blp.route`. The check runs before the view's arguments are parsed,
    and the operation's OpenAPI entry gets a 403 response and `x-roles`.
    """
    allowed = frozenset(str(role) for role in roles)
    if not allowed or not allowed <= set(Role):
        raise ValueError(f"require_roles needs roles among {', '.join(Role)}")

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            _check_role(allowed)
            return view(*args, **kwargs)

        wrapper.api_roles = allowed  # type: ignore[attr-defined]
        # flask-smorest reads `_apidoc`; copy before changing it (the view's is shared).
        apidoc = deepcopy(getattr(view, "_apidoc", {}))
        manual = apidoc.setdefault("manual_doc", {})
        manual.setdefault("responses", {})[403] = "FORBIDDEN"
        manual["x-roles"] = sorted(allowed)
        wrapper._apidoc = apidoc  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


def _check_role(allowed: frozenset[str]) -> None:
    caller = api_caller()
    if caller.role not in allowed:
        raise Forbidden(
            f"a {caller.role} token may not do this; it needs one of: {', '.join(sorted(allowed))}"
        )
