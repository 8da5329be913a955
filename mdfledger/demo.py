"""A realistic demo book: two programs (MDF and co-op), twenty partners, allocations, a purchase
import, and one user per role. Everything goes through the same services people use.

Seeded relative to `now`, so the current period always has funds and something is expiring.
"""

from __future__ import annotations

import csv
import io
import random
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mdfledger import auth, programs
from mdfledger.actor import Actor
from mdfledger.auth import Role
from mdfledger.clock import ensure_utc, utcnow
from mdfledger.errors import Conflict
from mdfledger.money import format_amount

SEEDER = Actor.system("demo")
EMAIL_DOMAIN = "demo.mdfledger.test"  # .test: never a real mailbox
STAFF = (
    (Role.ADMIN, "Avery Admin"),
    (Role.FINANCE, "Frankie Finance"),
    (Role.AUDITOR, "Ari Auditor"),
)

# code, name, type, tier, region
PARTNERS = (
    ("ACME", "Acme Networks", "reseller", "platinum", "NA"),
    ("BOLT", "Bolt Systems", "reseller", "gold", "NA"),
    ("CIRRUS", "Cirrus Cloud Partners", "msp", "gold", "EMEA"),
    ("DELTA", "Delta Distribution", "distributor", "platinum", "EMEA"),
    ("EMBER", "Ember Digital Agency", "agency", "silver", "NA"),
    ("FJORD", "Fjord IT", "reseller", "silver", "EMEA"),
    ("GRANITE", "Granite Integrators", "system_integrator", "gold", "NA"),
    ("HARBOR", "Harbor Tech", "reseller", "registered", "APAC"),
    ("IONIC", "Ionic Solutions", "msp", "silver", "APAC"),
    ("JUNIPERO", "Junipero Consulting", "referral", "registered", "LATAM"),
    ("KESTREL", "Kestrel Security", "reseller", "gold", "NA"),
    ("LUMEN", "Lumen Data", "system_integrator", "platinum", "NA"),
    ("MERIDIAN", "Meridian Supply", "distributor", "gold", "APAC"),
    ("NORTHWIND", "Northwind Traders", "reseller", "silver", "EMEA"),
    ("ORBIT", "Orbit Marketing", "agency", "registered", "NA"),
    ("PINNACLE", "Pinnacle Partners", "reseller", "gold", "LATAM"),
    ("QUARTZ", "Quartz Networks", "reseller", "silver", "APAC"),
    ("RIVET", "Rivet Managed Services", "msp", "gold", "EMEA"),
    ("SUMMIT", "Summit Referral Group", "referral", "registered", "NA"),
    ("TUNDRA", "Tundra Systems", "reseller", "silver", "EMEA"),
)
ALLOCATION_BY_TIER = {"platinum": 25_000_00, "gold": 12_000_00, "silver": 6_000_00}
PRODUCT_LINES = ("storage", "networking", "software", "services")


@dataclass(frozen=True)
class DemoUser:
    role: str
    email: str
    password: str
    partner: str | None = None


@dataclass(frozen=True)
class DemoBook:
    programs: list[str]
    partners: int
    allocated: str
    accrued: str
    users: list[DemoUser]


def is_seeded(session: Session) -> bool:
    return bool(session.scalar(select(func.count()).select_from(programs.Program)))


def seed(session: Session, *, now: datetime | None = None, rng_seed: int = 2026) -> DemoBook:
    """Seed an empty database. Flushes, never commits. Refuses a database that has programs."""
    if is_seeded(session):
        raise Conflict("this database already has programs: the demo seeds an empty database")
    now = ensure_utc(now or utcnow())
    rng = random.Random(rng_seed)
    mdf, coop = _programs(session, now)
    partners = [
        programs.create_partner(
            session, SEEDER, code=code, name=name, type=kind, tier=tier, region=region, now=now
        )
        for code, name, kind, tier, region in PARTNERS
    ]
    for partner in partners:
        first, last = rng.choice(("Sam", "Alex", "Jo", "Kim", "Lee")), partner.name.split()[0]
        programs.add_contact(
            session, SEEDER, partner.id, name=f"{first} {last}", title="Marketing manager",
            email=f"marketing@{partner.code.lower()}.example", is_primary=True,
        )  # fmt: skip
    today = programs.today(mdf, now)
    period = programs.period_of(mdf, today)
    allocations = io.StringIO()
    writer = csv.writer(allocations)
    writer.writerow(("partner", "amount", "reason"))
    for partner in partners:
        amount = ALLOCATION_BY_TIER.get(partner.tier)
        if amount:
            writer.writerow((partner.code, format_amount(amount, "USD"), f"{partner.tier} plan"))
    report = programs.import_allocations(
        session, SEEDER, mdf.id, allocations.getvalue().encode(), filename="mdf-allocations.csv",
        reason=f"{period.label} plan", now=now,
    )  # fmt: skip
    allocated = report.moved
    next_period = period.end + timedelta(days=1)
    for partner in partners[:4]:
        allocated += programs.allocate(
            session, SEEDER, mdf.id, partner.id, 5_000_00, reason="launch campaign",
            day=next_period, now=now,
        ).amount  # fmt: skip
    first = session.scalar(
        select(programs.Allocation).where(programs.Allocation.partner_id == partners[1].id)
    )
    assert first is not None
    allocated += programs.adjust_fund(
        session, SEEDER, first.fund_id, -2_000_00, reason="plan revised after QBR", now=now
    ).amount
    # Two partners have been suspended since; they keep what they have but get nothing new.
    for partner in (partners[9], partners[18]):
        programs.update_partner(session, SEEDER, partner.id, status="suspended")
    purchases = _purchases(
        partners, programs.period_of(coop, programs.today(coop, now)), today, rng
    )
    accrued = programs.import_purchases(
        session, SEEDER, coop.id, purchases, filename="distributor-sales.csv", now=now
    ).moved
    users = [_user(session, role, name, None) for role, name in STAFF] + [
        _user(session, Role.PARTNER, "Pat Partner", partners[0])
    ]
    return DemoBook(
        [mdf.code, coop.code], len(partners), f"{format_amount(allocated, 'USD')} USD",
        f"{format_amount(accrued, 'USD')} USD", users,
    )  # fmt: skip


def _programs(session: Session, now: datetime) -> tuple[programs.Program, programs.Program]:
    year = now.year
    mdf = programs.create_program(
        session, SEEDER, code=f"MDF-{year}", name=f"Market development funds {year}", kind="mdf",
        currency="USD", timezone="America/New_York", fiscal_start_month=1, period_months=3,
        claim_deadline_days=60, share_bp=5_000, expiry_policy="forfeit",
        description="Quarterly MDF for resellers, integrators and agencies: 50% of eligible cost.",
        now=now,
    )  # fmt: skip
    coop = programs.create_program(
        session, SEEDER, code=f"COOP-{year}", name=f"Co-op {year}", kind="coop", currency="USD",
        timezone="America/New_York", fiscal_start_month=1, period_months=3,
        claim_deadline_days=90, share_bp=10_000, expiry_policy="rollover", rollover_days=90,
        description="Co-op earned on purchases; unspent funds roll over for 90 days.", now=now,
    )  # fmt: skip
    programs.fund_budget(
        session, SEEDER, mdf.id, 600_000_00, reason=f"FY{year} MDF budget", now=now
    )
    catalog = (
        ("webinar", "Webinar", ["landing_page", "lead_list"], 5_000_00),
        ("trade-show", "Trade show booth", ["invoice", "photos"], 15_000_00),
        ("digital-ads", "Digital advertising", ["invoice", "landing_page"], 10_000_00),
        ("social", "Social media campaign", ["social_post", "invoice"], 3_000_00),
        ("email", "E-mail campaign", ["invoice", "lead_list"], 2_500_00),
    )
    for program in (mdf, coop):
        for code, name, proof, cap in catalog:
            programs.add_activity(
                session, SEEDER, program.id, code=code, name=name, proof=proof, cap=cap,
                description=f"{name}: claim with {', '.join(p.replace('_', ' ') for p in proof)}.",
            )  # fmt: skip
    for tier, line, rate in (
        ("", "", 200), ("gold", "", 300), ("platinum", "", 400), ("platinum", "storage", 500),
    ):  # fmt: skip
        programs.set_accrual_rate(
            session, SEEDER, coop.id, tier=tier, product_line=line, rate_bp=rate
        )
    return mdf, coop


def _purchases(
    partners: list[programs.Partner], period: programs.Period, today: date, rng: random.Random
) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(("partner", "invoice", "date", "amount", "product_line"))
    active = [p for p in partners if p.status == "active"]
    days = (min(today, period.end) - period.start).days
    for number in range(1, 201):
        partner = rng.choice(active)
        day = period.start + timedelta(days=rng.randint(0, days))
        amount = rng.randint(500_00, 60_000_00)
        line = rng.choice(PRODUCT_LINES)
        writer.writerow(
            (partner.code, f"INV-{number:05d}", day, format_amount(amount, "USD"), line)
        )
        if number % 25 == 0:  # now and then a credit note for part of it
            writer.writerow(
                (partner.code, f"CN-{number:05d}", day, format_amount(-amount // 4, "USD"), line)
            )
    return out.getvalue().encode()


def _user(session: Session, role: str, name: str, partner: programs.Partner | None) -> DemoUser:
    email = f"{role}@{EMAIL_DOMAIN}"
    password = secrets.token_urlsafe(12)
    if partner is None:
        auth.create_user(session, SEEDER, email=email, name=name, role=role, password=password)
    else:
        programs.add_partner_user(
            session, SEEDER, partner.id, email=email, name=name, password=password
        )
    return DemoUser(role, email, password, partner.name if partner else None)


def reset_passwords(session: Session) -> list[DemoUser]:
    """New passwords for the demo users (shown once, like the first time)."""
    users = []
    for user in session.scalars(
        select(auth.User).where(auth.User.email.like(f"%@{EMAIL_DOMAIN}")).order_by(auth.User.id)
    ):
        password = secrets.token_urlsafe(12)
        auth.set_password(session, SEEDER, user.id, password)
        partner = session.get(programs.Partner, user.partner_id) if user.partner_id else None
        users.append(DemoUser(user.role, user.email, password, partner.name if partner else None))
    return users
