"""Programs, their catalog and accrual rates, and partners: set up, change, look up. Never commits.

Every function takes a session and the acting Actor. Staff see everything; a partner user sees
active programs and only their own partner organisation (others are "not found").
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from mdfledger import audit, auth, ledger
from mdfledger.actor import Actor
from mdfledger.auth import Role
from mdfledger.auth.scope import MANAGERS, STAFF, check_partner, require_role, scoped
from mdfledger.clock import ensure_utc, utcnow
from mdfledger.errors import Conflict, NotFound, ValidationError
from mdfledger.fields import check_choice, check_code, check_whole, clean_text, positive_amount
from mdfledger.ledger import AccountKind
from mdfledger.ledger.commands import KEY_MAX
from mdfledger.money import validate_currency
from mdfledger.programs import rules
from mdfledger.programs.models import (
    AccrualRate,
    Activity,
    Contact,
    ExpiryPolicy,
    Partner,
    PartnerStatus,
    PartnerType,
    Program,
    ProgramKind,
    ProgramStatus,
    ProofType,
)

_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

# What the audit log shows of each object (never secrets: those are not on these objects).
PROGRAM_AUDITED = (
    "code", "name", "description", "kind", "currency", "timezone", "fiscal_start_month",
    "period_months", "claim_deadline_days", "share_bp", "expiry_policy", "rollover_days", "status",
    "direct_claims", "second_approval_above",
)  # fmt: skip
ACTIVITY_AUDITED = ("program_id", "code", "name", "description", "proof", "cap", "active")
PARTNER_AUDITED = ("code", "name", "type", "tier", "region", "status")
CONTACT_AUDITED = ("partner_id", "name", "email", "phone", "title", "is_primary")


def account_name(name: str) -> str:
    """A ledger account's display name within the ledger's limit. Names built from a program's
    and a partner's names (up to 200 characters each) used to exceed it, and the ledger refused
    to open the account: a long-named program could not be created, nor a long-named partner
    funded."""
    return name if len(name) <= KEY_MAX else name[: KEY_MAX - 1] + "…"


# --- programs ------------------------------------------------------------------------------------


def create_program(
    session: Session,
    actor: Actor,
    *,
    code: str,
    name: str,
    kind: str,
    currency: str,
    timezone: str = "UTC",
    fiscal_start_month: int = 1,
    period_months: int = 3,
    claim_deadline_days: int = 60,
    share_bp: int = 10_000,
    expiry_policy: str = ExpiryPolicy.FORFEIT,
    rollover_days: int = 0,
    description: str = "",
    direct_claims: bool = False,
    second_approval_above: int | None = None,
    now: datetime | None = None,
) -> Program:
    """A program and its ledger accounts: funding source, budget, expired and (co-op) accruals."""
    require_role(actor, *MANAGERS)
    values = {
        "code": check_code(code),
        "name": clean_text(name, "name", 200),
        "description": clean_text(description, "description", 5000, required=False),
        "kind": check_choice(kind, ProgramKind, "kind"),
        "timezone": timezone,
        "claim_deadline_days": check_whole(claim_deadline_days, "claim_deadline_days", 0, 3660),
        "share_bp": check_whole(share_bp, "share_bp", 1, rules.BASIS_POINTS),
        "expiry_policy": check_choice(expiry_policy, ExpiryPolicy, "expiry_policy"),
        "rollover_days": check_whole(rollover_days, "rollover_days", 0, 3660),
        "fiscal_start_month": fiscal_start_month,
        "period_months": period_months,
        "direct_claims": _true_or_false(direct_claims, "direct_claims"),
        "second_approval_above": _threshold(second_approval_above),
    }
    validate_currency(currency)
    rules.zone(timezone)
    rules.check_calendar(fiscal_start_month, period_months)
    if (values["expiry_policy"] == ExpiryPolicy.ROLLOVER) != (values["rollover_days"] > 0):
        raise ValidationError(
            "rolling over needs a number of days; forfeiting takes none", field="rollover_days"
        )
    if session.scalar(select(Program.id).where(Program.code == values["code"])) is not None:
        raise Conflict(f"a program with code {values['code']} already exists", field="code")
    now = ensure_utc(now or utcnow())
    key = f"program:{values['code']}"

    def account(kind: AccountKind, label: str, **limits: bool) -> int:
        opened = ledger.open_account(
            session, actor, key=f"{key}:{kind.value}",
            name=account_name(f"{values['name']}: {label}"),
            kind=kind, currency=currency, now=now, **limits,
        )  # fmt: skip
        return opened.id

    program = Program(
        **values,
        currency=currency,
        status=ProgramStatus.ACTIVE.value,
        created_at=now,
        funding_account_id=account(AccountKind.FUNDING, "vendor funding"),
        # The budget can never hand out more than it was funded with: the ledger holds it.
        budget_account_id=account(
            AccountKind.BUDGET, "budget", debits_must_not_exceed_credits=True
        ),
        accrual_account_id=(
            account(AccountKind.ACCRUAL_SOURCE, "co-op accruals")
            if values["kind"] == ProgramKind.COOP
            else None
        ),
        expired_account_id=account(AccountKind.EXPIRED, "expired funds"),
    )
    session.add(program)
    session.flush()
    audit.record(
        session, actor, "program.create", object_type="program", object_id=program.id,
        summary=f"Created {program.kind} program {program.code} ({program.name}) in {currency}",
        after=audit.snapshot(program, PROGRAM_AUDITED),
    )  # fmt: skip
    return program


def update_program(session: Session, actor: Actor, program_id: int, **changes: Any) -> Program:
    """Change what may change after funds exist: name, description, deadline, share, status."""
    require_role(actor, *MANAGERS)
    program = get_program(session, actor, program_id)
    checks = {
        "name": lambda v: clean_text(v, "name", 200),
        "description": lambda v: clean_text(v, "description", 5000, required=False),
        "claim_deadline_days": lambda v: check_whole(v, "claim_deadline_days", 0, 3660),
        "share_bp": lambda v: check_whole(v, "share_bp", 1, rules.BASIS_POINTS),
        "status": lambda v: check_choice(v, ProgramStatus, "status"),
        "direct_claims": lambda v: _true_or_false(v, "direct_claims"),
        "second_approval_above": _threshold,
    }
    fixed = ": a program's currency, calendar and expiry policy are fixed once it exists"
    before, after = _apply_changes(session, program, changes, checks, why_not=fixed)
    if after:  # a save that changes nothing leaves no entry
        audit.record(
            session, actor, "program.update", object_type="program", object_id=program.id,
            summary=f"Changed program {program.code}: {audit.describe(before, after)}",
            before=before, after=after,
        )  # fmt: skip
    return program


def _apply_changes(
    session: Session,
    row: Any,
    changes: dict[str, Any],
    checks: dict[str, Any],
    *,
    why_not: str = "",
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Check every change first, then apply them all; returns what changed (before, after)
    for the audit entry. A field without a check cannot be changed."""
    unknown = sorted(set(changes) - set(checks))
    if unknown:
        raise ValidationError(f"cannot change {', '.join(unknown)}{why_not}", field=unknown[0])
    clean = {field: checks[field](value) for field, value in changes.items()}
    before = audit.snapshot(row, changes)
    for field, value in clean.items():
        setattr(row, field, value)
    session.flush()
    return audit.changed(before, audit.snapshot(row, changes))


def programs_query(actor: Actor, *, status: str | None = None) -> Select[tuple[Program]]:
    """Programs the actor may see, by name: partners see active programs only."""
    statement = select(Program).order_by(Program.name, Program.id)
    if actor.role == Role.PARTNER and actor.kind == "user":
        status = ProgramStatus.ACTIVE
    if status is not None:
        statement = statement.where(Program.status == check_choice(status, ProgramStatus, "status"))
    return statement


def get_program(session: Session, actor: Actor, program_id: object) -> Program:
    program = session.get(Program, program_id) if _is_id(program_id) else None
    if program is None or (
        actor.role == Role.PARTNER and actor.kind == "user" and program.status != "active"
    ):
        raise NotFound(f"program {program_id} not found")
    return program


def program_by_code(session: Session, actor: Actor, program_code: str) -> Program:
    found = session.scalar(select(Program.id).where(Program.code == str(program_code).strip()))
    if found is None:
        raise NotFound(f"program {program_code!r} not found", field="program")
    return get_program(session, actor, found)


# --- activity catalog and accrual rates ----------------------------------------------------------


def _proof(values: object) -> str:
    if isinstance(values, str):
        values = [v for v in values.split(",") if v.strip()]
    if not isinstance(values, list | tuple | set | frozenset) or not values:
        raise ValidationError("name at least one kind of proof", field="proof")
    chosen = {check_choice(str(v).strip(), ProofType, "proof") for v in values}
    return ",".join(sorted(chosen))


def _cap(value: object) -> int | None:
    return None if value is None else positive_amount(value, "cap")


def add_activity(
    session: Session,
    actor: Actor,
    program_id: int,
    *,
    code: str,
    name: str,
    proof: Iterable[str] | str,
    cap: int | None = None,
    description: str = "",
) -> Activity:
    require_role(actor, *MANAGERS)
    program = get_program(session, actor, program_id)
    activity_code = check_code(code)
    taken = select(Activity.id).where(
        Activity.program_id == program.id, Activity.code == activity_code
    )
    if session.scalar(taken) is not None:
        raise Conflict(f"{program.code} already has an activity {activity_code}", field="code")
    activity = Activity(
        program_id=program.id,
        code=activity_code,
        name=clean_text(name, "name", 200),
        description=clean_text(description, "description", 5000, required=False),
        proof=_proof(proof),
        cap=_cap(cap),
        active=True,
    )
    session.add(activity)
    session.flush()
    audit.record(
        session, actor, "activity.create", object_type="activity", object_id=activity.id,
        summary=f"Added activity {activity.code} ({activity.name}) to program {program.code}",
        after=audit.snapshot(activity, ACTIVITY_AUDITED),
    )  # fmt: skip
    return activity


def update_activity(session: Session, actor: Actor, activity_id: int, **changes: Any) -> Activity:
    require_role(actor, *MANAGERS)
    activity = session.get(Activity, activity_id) if _is_id(activity_id) else None
    if activity is None:
        raise NotFound(f"activity {activity_id} not found")
    checks = {
        "name": lambda v: clean_text(v, "name", 200),
        "description": lambda v: clean_text(v, "description", 5000, required=False),
        "proof": _proof,
        "cap": _cap,
        "active": _true_or_false,
    }
    before, after = _apply_changes(session, activity, changes, checks)
    if after:  # a save that changes nothing leaves no entry
        audit.record(
            session, actor, "activity.update", object_type="activity", object_id=activity.id,
            summary=f"Changed activity {activity.code} of program {activity.program.code}:"
            f" {audit.describe(before, after)}",
            before=before, after=after,
        )  # fmt: skip
    return activity


def _true_or_false(value: object, field: str = "active") -> bool:
    # Was check_choice(v, (), "active"), whose message read "active must be one of " (nothing).
    if not isinstance(value, bool):
        raise ValidationError(f"{field.replace('_', ' ')} is true or false", field=field)
    return value


def set_accrual_rate(
    session: Session,
    actor: Actor,
    program_id: int,
    *,
    rate_bp: int,
    tier: str = "",
    product_line: str = "",
) -> AccrualRate:
    """Set the co-op rate for a tier and/or product line ('' for any); replaces an earlier one."""
    require_role(actor, *MANAGERS)
    program = get_program(session, actor, program_id)
    if program.kind != ProgramKind.COOP:
        raise ValidationError("only co-op programs accrue on purchases", field="program")
    tier = clean_text(tier, "tier", 40, required=False)
    product_line = clean_text(product_line, "product_line", 80, required=False)
    rate_bp = check_whole(rate_bp, "rate_bp", 0, rules.BASIS_POINTS)
    # Rates are picked case-insensitively (rules.pick_rate), so "Gold" replaces "gold" rather
    # than adding a second rate that ties with it and wins or loses by row order.
    rate = session.scalar(
        select(AccrualRate).where(
            AccrualRate.program_id == program.id,
            func.lower(AccrualRate.tier) == tier.lower(),
            func.lower(AccrualRate.product_line) == product_line.lower(),
        )
    )
    before = None if rate is None else {"rate_bp": rate.rate_bp}
    if rate is None:
        rate = AccrualRate(program_id=program.id, tier=tier, product_line=product_line)
        session.add(rate)
    rate.rate_bp = rate_bp
    session.flush()
    if before != {"rate_bp": rate_bp}:  # setting the rate it already has leaves no entry
        audit.record(
            session, actor, "accrual_rate.set", object_type="accrual_rate", object_id=rate.id,
            summary=f"Set the {program.code} co-op rate for {rate.tier or 'any tier'} and"
            f" {rate.product_line or 'any product line'} to {audit.percent(rate_bp)}"
            + (f" (was {audit.percent(before['rate_bp'])})" if before else ""),
            before=before,
            after={"program_id": program.id, "tier": rate.tier,
                   "product_line": rate.product_line, "rate_bp": rate_bp},
        )  # fmt: skip
    return rate


# --- partners ------------------------------------------------------------------------------------

_PARTNER_FIELDS = {
    "name": lambda v: clean_text(v, "name", 200),
    "type": lambda v: check_choice(v, PartnerType, "type"),
    "tier": lambda v: clean_text(v, "tier", 40),
    "region": lambda v: clean_text(v, "region", 40),
    "status": lambda v: check_choice(v, PartnerStatus, "status"),
}


def create_partner(
    session: Session,
    actor: Actor,
    *,
    code: str,
    name: str,
    type: str,
    tier: str,
    region: str,
    status: str = PartnerStatus.ACTIVE,
    now: datetime | None = None,
) -> Partner:
    require_role(actor, *MANAGERS)
    fields = {
        k: check(v)
        for (k, check), v in zip(
            _PARTNER_FIELDS.items(), (name, type, tier, region, status), strict=True
        )
    }
    partner_code = check_code(code)
    # Imports find partners by code case-insensitively, so "acme" next to "ACME" would make a
    # file's rows land on either of them: codes must differ in more than case.
    taken = session.scalar(
        select(Partner.code).where(func.lower(Partner.code) == partner_code.lower())
    )
    if taken is not None:
        raise Conflict(f"a partner with code {taken} already exists", field="code")
    partner = Partner(code=partner_code, created_at=ensure_utc(now or utcnow()), **fields)
    session.add(partner)
    session.flush()
    audit.record(
        session, actor, "partner.create", object_type="partner", object_id=partner.id,
        summary=f"Created partner {partner.code} ({partner.name})",
        after=audit.snapshot(partner, PARTNER_AUDITED), subject_partner_id=partner.id,
    )  # fmt: skip
    return partner


def update_partner(session: Session, actor: Actor, partner_id: int, **changes: Any) -> Partner:
    require_role(actor, *MANAGERS)
    partner = get_partner(session, actor, partner_id)
    before, after = _apply_changes(session, partner, changes, _PARTNER_FIELDS)
    if after:  # a save that changes nothing leaves no entry
        audit.record(
            session, actor, "partner.update", object_type="partner", object_id=partner.id,
            summary=f"Changed partner {partner.code}: {audit.describe(before, after)}",
            before=before, after=after, subject_partner_id=partner.id,
        )  # fmt: skip
    return partner


def partners_query(
    actor: Actor,
    *,
    search: str | None = None,
    status: str | None = None,
    tier: str | None = None,
    region: str | None = None,
) -> Select[tuple[Partner]]:
    """Partners the actor may see (a partner user: only their own), filtered, by name."""
    statement = scoped(select(Partner), Partner.id, actor).order_by(Partner.name, Partner.id)
    if search:
        # Escaped: "_" and "%" in what people type are characters, not wildcards.
        term = clean_text(search, "search", 100).lower()
        like = "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        statement = statement.where(
            or_(
                func.lower(Partner.name).like(like, escape="\\"),
                func.lower(Partner.code).like(like, escape="\\"),
            )
        )
    if status:
        statement = statement.where(Partner.status == check_choice(status, PartnerStatus, "status"))
    if tier:
        statement = statement.where(func.lower(Partner.tier) == tier.strip().lower())
    if region:
        statement = statement.where(func.lower(Partner.region) == region.strip().lower())
    return statement


def get_partner(session: Session, actor: Actor, partner_id: object) -> Partner:
    """A partner the actor may see; anything else, including another partner, is not found."""
    if not _is_id(partner_id):
        raise NotFound(f"partner {partner_id} not found")
    check_partner(actor, partner_id, f"partner {partner_id}")  # type: ignore[arg-type]
    partner = session.get(Partner, partner_id)
    if partner is None:
        raise NotFound(f"partner {partner_id} not found")
    return partner


def partner_by_code(session: Session, actor: Actor, partner_code: str) -> Partner:
    found = session.scalar(select(Partner.id).where(Partner.code == str(partner_code).strip()))
    if found is None:
        raise NotFound(f"partner {partner_code!r} not found", field="partner")
    return get_partner(session, actor, found)


def add_contact(
    session: Session,
    actor: Actor,
    partner_id: int,
    *,
    name: str,
    email: str,
    phone: str = "",
    title: str = "",
    is_primary: bool = False,
) -> Contact:
    require_role(actor, *MANAGERS)
    partner = get_partner(session, actor, partner_id)
    address = clean_text(email, "email", 254).lower()
    if not _EMAIL_RE.match(address):
        raise ValidationError(f"{email!r} is not an e-mail address", field="email")
    if not isinstance(is_primary, bool):
        raise ValidationError("is_primary is true or false", field="is_primary")
    if is_primary:  # one primary contact per partner
        for other in partner.contacts:
            other.is_primary = False
    contact = Contact(
        partner_id=partner.id,
        name=clean_text(name, "name", 200),
        email=address,
        phone=clean_text(phone, "phone", 40, required=False),
        title=clean_text(title, "title", 100, required=False),
        is_primary=is_primary,
    )
    session.add(contact)
    session.flush()
    audit.record(
        session, actor, "contact.create", object_type="contact", object_id=contact.id,
        summary=f"Added {'the primary ' if is_primary else ''}contact {contact.name}"
        f" <{contact.email}> to partner {partner.code}",
        after=audit.snapshot(contact, CONTACT_AUDITED), subject_partner_id=partner.id,
    )  # fmt: skip
    return contact


def add_partner_user(
    session: Session,
    actor: Actor,
    partner_id: int,
    *,
    email: str,
    name: str,
    password: str,
    now: datetime | None = None,
) -> auth.User:
    """A sign-in for one of the partner's people; it sees only this partner's data. Audited
    by auth.create_user ("user.create", about this partner)."""
    require_role(actor, *MANAGERS)
    partner = get_partner(session, actor, partner_id)
    return auth.create_user(
        session, actor, email=email, name=name, role=Role.PARTNER, password=password,
        partner_id=partner.id, now=now,
    )  # fmt: skip


def partner_users(session: Session, actor: Actor, partner_id: int) -> list[auth.User]:
    require_role(actor, *STAFF, Role.PARTNER)
    partner = get_partner(session, actor, partner_id)
    return list(
        session.scalars(
            select(auth.User).where(auth.User.partner_id == partner.id).order_by(auth.User.name)
        )
    )


def _threshold(value: object) -> int | None:
    """Claims above this need a second approver; None: one approver is always enough."""
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**62:
        raise ValidationError(
            "the second-approval threshold must be an amount of zero or more",
            field="second_approval_above",
        )
    return value


def _is_id(value: object) -> bool:
    return ledger.commands.is_id(value)
