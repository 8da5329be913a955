"""Pure auth rules: password policy and hashing, token format, which roles a token may carry."""

from __future__ import annotations

import hashlib
import re
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from mdfledger.auth.models import Role

MIN_PASSWORD_LENGTH = 12
TOKEN_PREFIX = "mdf_"
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_HASHER = PasswordHasher()  # argon2id with the library's current recommended parameters
# Verified against when the e-mail is unknown, so a miss costs as long as a wrong password.
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))

# A token may carry the user's role or a weaker one, never a stronger one.
_MAY_DELEGATE = {
    Role.ADMIN: {Role.ADMIN, Role.FINANCE, Role.AUDITOR},
    Role.FINANCE: {Role.FINANCE, Role.AUDITOR},
    Role.AUDITOR: {Role.AUDITOR},
    Role.PARTNER: {Role.PARTNER},
}


def normalise_email(email: str) -> str | None:
    """Lower-cased and trimmed, or None when it is not an e-mail address."""
    if not isinstance(email, str):
        return None
    email = email.strip().lower()
    return email if len(email) <= 254 and _EMAIL_RE.match(email) else None


def password_problem(password: object) -> str | None:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        return f"passwords need at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > 1024:
        return "passwords may have at most 1024 characters"
    return None


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def password_matches(stored_hash: str | None, password: str) -> bool:
    try:
        return _HASHER.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return _HASHER.check_needs_rehash(stored_hash)


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    # Tokens are 256 random bits: a fast hash is enough, and lookups stay an index hit.
    return hashlib.sha256(token.encode()).hexdigest()


def may_delegate(user_role: str, token_role: str) -> bool:
    return token_role in _MAY_DELEGATE.get(Role(user_role), set())
