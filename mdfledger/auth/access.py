"""Who may see what: role checks for views, and the Actor a request acts as."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import abort
from flask_login import current_user, login_required

from mdfledger.actor import Actor

F = TypeVar("F", bound=Callable[..., Any])


def require_roles(*roles: str) -> Callable[[F], F]:
    """Signed-in users with one of `roles` only: others are sent to sign in, or get 403."""

    def decorate(view: F) -> F:
        @wraps(view)
        @login_required
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if current_user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def request_actor() -> Actor:
    """The signed-in user as the services' Actor."""
    return Actor("user", str(current_user.id), current_user.role, current_user.partner_id)
