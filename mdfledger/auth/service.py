"""Users and API tokens: create, authenticate, disable, issue and revoke. Never commits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import column, select, table
from sqlalchemy.orm import Session

from mdfledger import audit
from mdfledger.actor import Actor
from mdfledger.auth import rules
from mdfledger.auth.models import ApiToken, Role, User
from mdfledger.clock import ensure_utc, utcnow
from mdfledger.errors import Conflict, Forbidden, NotFound, Unauthorized, ValidationError

BAD_CREDENTIALS = "e-mail or password is wrong"  # the same words whichever one was wrong


def create_user(
    session: Session,
    actor: Actor,
    *,
    email: str,
    name: str,
    role: str,
    password: str,
    partner_id: int | None = None,
    now: datetime | None = None,
) -> User:
    # Admins create staff; finance may also give a partner's people their sign-in.
    _require(actor, *_MANAGED_BY[role == Role.PARTNER])
    address = rules.normalise_email(email)
    if address is None:
        raise ValidationError(f"{email!r} is not an e-mail address", field="email")
    if not isinstance(name, str) or not 0 < len(name.strip()) <= 200:
        raise ValidationError("a name of 1 to 200 characters is needed", field="name")
    if role not in set(Role):
        raise ValidationError(f"role must be one of {', '.join(Role)}", field="role")
    if (role == Role.PARTNER) != (partner_id is not None):
        raise ValidationError(
            "partner users belong to one partner organisation; staff to none", field="partner_id"
        )
    if partner_id is not None and not _partner_exists(session, partner_id):
        raise ValidationError(f"partner {partner_id!r} does not exist", field="partner_id")
    if problem := rules.password_problem(password):
        raise ValidationError(problem, field="password")
    if session.scalar(select(User.id).where(User.email == address)) is not None:
        raise Conflict(f"a user with e-mail {address} already exists", field="email")
    user = User(
        email=address,
        name=name.strip(),
        role=str(role),
        partner_id=partner_id,
        password_hash=rules.hash_password(password),
        created_at=ensure_utc(now or utcnow()),
    )
    session.add(user)
    session.flush()
    whose = f" for partner {_partner_code(session, partner_id)}" if partner_id is not None else ""
    audit.record(
        session, actor, "user.create", object_type="user", object_id=user.id,
        summary=f"Created {user.role} user {user.email} ({user.name}){whose}",
        after={"email": user.email, "name": user.name, "role": user.role,
               "partner_id": user.partner_id},
        subject_partner_id=user.partner_id,
    )  # fmt: skip
    return user


def authenticate(
    session: Session, email: str, password: str, *, now: datetime | None = None
) -> User:
    """The active user with these credentials; raises Unauthorized with one message for all."""
    address = rules.normalise_email(email)
    user = session.scalar(select(User).where(User.email == address)) if address else None
    if not rules.password_matches(user.password_hash if user else None, str(password)):
        raise Unauthorized(BAD_CREDENTIALS)
    assert user is not None
    if not user.is_active:
        raise Unauthorized("this account is disabled; ask an administrator")
    if rules.needs_rehash(user.password_hash):
        user.password_hash = rules.hash_password(password)
    user.last_login_at = ensure_utc(now or utcnow())
    session.flush()
    return user


def disable_user(
    session: Session, actor: Actor, user_id: int, *, now: datetime | None = None
) -> User:
    user = _user(session, user_id)
    _require(actor, *_MANAGED_BY[user.role == Role.PARTNER])
    if actor.kind == "user" and actor.id == str(user.id):
        raise Conflict("you cannot disable yourself: ask another admin")
    if user.disabled_at is None:
        user.disabled_at = ensure_utc(now or utcnow())
        revoked = []
        for token in session.scalars(select(ApiToken).where(ApiToken.user_id == user.id)):
            if token.revoked_at is None:
                revoked.append(token.id)
            token.revoked_at = token.revoked_at or user.disabled_at
        session.flush()
        audit.record(
            session, actor, "user.disable", object_type="user", object_id=user.id,
            summary=f"Disabled {user.role} user {user.email}"
            + (f" and revoked {len(revoked)} API token{'s' if len(revoked) != 1 else ''}"
               if revoked else ""),
            before={"disabled_at": None},
            after={"disabled_at": user.disabled_at, "revoked_token_ids": revoked},
            subject_partner_id=user.partner_id,
        )  # fmt: skip
    return user


def set_password(session: Session, actor: Actor, user_id: int, password: str) -> User:
    """Give a user a new password (an admin reset, or the demo's fresh passwords)."""
    user = _user(session, user_id)
    if problem := rules.password_problem(password):
        raise ValidationError(problem, field="password")
    user.password_hash = rules.hash_password(password)
    session.flush()
    audit.record(  # that it changed, never what to
        session, actor, "user.set_password", object_type="user", object_id=user.id,
        summary=f"Set a new password for {user.email}", subject_partner_id=user.partner_id,
    )  # fmt: skip
    return user


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    secret: str  # shown to the user once; only its hash is kept


def issue_token(
    session: Session,
    actor: Actor,
    user_id: int,
    *,
    name: str,
    role: str | None = None,
    now: datetime | None = None,
) -> IssuedToken:
    if not _may_manage(actor, user_id):
        raise NotFound(f"user {user_id!r} does not exist")
    user = _user(session, user_id)
    if not user.is_active:
        raise Conflict("a disabled user cannot get new tokens")
    role = role or user.role
    if role not in set(Role) or not rules.may_delegate(user.role, role):
        raise Forbidden(f"a {user.role} user cannot issue {role} tokens", field="role")
    if not isinstance(name, str) or not 0 < len(name.strip()) <= 100:
        raise ValidationError("a token name of 1 to 100 characters is needed", field="name")
    secret = rules.new_token()
    token = ApiToken(
        user_id=user.id,
        name=name.strip(),
        prefix=secret[:12],
        token_hash=rules.token_hash(secret),
        role=str(role),
        created_at=ensure_utc(now or utcnow()),
    )
    session.add(token)
    session.flush()
    audit.record(  # never the secret, nor its hash
        session, actor, "token.issue", object_type="api_token", object_id=token.id,
        summary=f"Issued the {token.role} API token “{token.name}” to {user.email}",
        after={"user_id": user.id, "name": token.name, "role": token.role},
        subject_partner_id=user.partner_id,
    )  # fmt: skip
    return IssuedToken(token, secret)


def authenticate_token(
    session: Session, secret: str, *, now: datetime | None = None
) -> tuple[User, ApiToken]:
    """The user and token behind a bearer secret; raises Unauthorized when it is not live."""
    if not isinstance(secret, str) or not secret.startswith(rules.TOKEN_PREFIX):
        raise Unauthorized("not an mdfledger API token")
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == rules.token_hash(secret)))
    if token is None or token.revoked_at is not None:
        raise Unauthorized("this API token is unknown or revoked")
    user = _user(session, token.user_id)
    if not user.is_active:
        raise Unauthorized("this API token's user is disabled")
    token.last_used_at = ensure_utc(now or utcnow())
    session.flush()
    return user, token


def revoke_token(
    session: Session, actor: Actor, token_id: int, *, now: datetime | None = None
) -> ApiToken:
    token = session.get(ApiToken, token_id) if isinstance(token_id, int) else None
    if token is None or not _may_manage(actor, token.user_id):
        raise NotFound(f"API token {token_id!r} does not exist")
    if token.revoked_at is None:
        token.revoked_at = ensure_utc(now or utcnow())
        session.flush()
        user = _user(session, token.user_id)
        audit.record(
            session, actor, "token.revoke", object_type="api_token", object_id=token.id,
            summary=f"Revoked the API token “{token.name}” of {user.email}",
            before={"revoked_at": None}, after={"revoked_at": token.revoked_at},
            subject_partner_id=user.partner_id,
        )  # fmt: skip
    return token


def tokens_of(session: Session, actor: Actor, user_id: int) -> list[ApiToken]:
    """A user's tokens, newest first: their own, or anyone's for an admin or the system."""
    if not _may_manage(actor, user_id):
        raise NotFound(f"user {user_id!r} does not exist")
    return list(
        session.scalars(
            select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id.desc())
        )
    )


_MANAGED_BY = {True: (Role.ADMIN, Role.FINANCE), False: (Role.ADMIN,)}  # partner user?


def _require(actor: Actor, *roles: str) -> None:
    if actor.kind != "system" and actor.role not in roles:
        raise Forbidden(f"a {actor.role} user cannot manage these users")


def _may_manage(actor: Actor, user_id: int) -> bool:
    return actor.kind == "system" or actor.role == Role.ADMIN or actor.id == str(user_id)


def user_by_email(session: Session, email: str) -> User:
    address = rules.normalise_email(email)
    user = session.scalar(select(User).where(User.email == address)) if address else None
    if user is None:
        raise NotFound(f"no user has e-mail {email!r}", field="email")
    return user


def _partner_exists(session: Session, partner_id: object) -> bool:
    # By table name, not model: auth sits below the programs package that defines partners.
    partners = table("partners", column("id"))
    if not isinstance(partner_id, int) or isinstance(partner_id, bool) or partner_id < 1:
        return False
    return session.scalar(select(partners.c.id).where(partners.c.id == partner_id)) is not None


def _partner_code(session: Session, partner_id: int) -> str:
    partners = table("partners", column("id"), column("code"))
    return session.scalar(select(partners.c.code).where(partners.c.id == partner_id)) or "?"


def _user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id) if isinstance(user_id, int) else None
    if user is None:
        raise NotFound(f"user {user_id!r} does not exist")
    return user
