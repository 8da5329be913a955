"""Users, roles and API tokens. Passwords are hashed with argon2id; tokens are stored hashed."""

from mdfledger.auth.models import ApiToken, Role, User
from mdfledger.auth.service import (
    IssuedToken,
    authenticate,
    authenticate_token,
    create_user,
    disable_user,
    issue_token,
    revoke_token,
    set_password,
    tokens_of,
    user_by_email,
)

__all__ = [
    "ApiToken",
    "IssuedToken",
    "Role",
    "User",
    "authenticate",
    "authenticate_token",
    "create_user",
    "disable_user",
    "issue_token",
    "revoke_token",
    "set_password",
    "tokens_of",
    "user_by_email",
]
