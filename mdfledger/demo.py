"""A realistic demo book: two programs (MDF and co-op), twenty partners, allocations, a purchase
import, one user per role (two in finance), and fund requests and claims in every state with
their proof files. Everything goes through the same services people use.

Seeded relative to `now`, so the current period always has funds and something is expiring.
The requests and claims are a story told over the last 110 days: each step runs with `now=` at
its moment, in time order (the ledger's clock only moves forward), so activity dates, claim
deadlines, queue ages and timelines read as they would in a real book.
"""

from __future__ import annotations

import csv
import io
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mdfledger import auth, claims, demo_payouts, demo_proof, programs, verification
from mdfledger.actor import Actor
from mdfledger.auth import Role
from mdfledger.clock import ensure_utc, utcnow
from mdfledger.errors import Conflict
from mdfledger.money import format_amount
from mdfledger.storage import ProofStore

SEEDER = Actor.system("demo")
PERIOD_END = Actor.system("period-end")  # as the scheduled job names itself
EMAIL_DOMAIN = "demo.mdfledger.test"  # .test: never a real mailbox
# role, name, the e-mail's local part (the second finance user confirms large approvals)
STAFF = (
    (Role.ADMIN, "Avery Admin", "admin"),
    (Role.FINANCE, "Frankie Finance", "finance"),
    (Role.FINANCE, "Finley Fairweather", "finance2"),
    (Role.AUDITOR, "Ari Auditor", "auditor"),
)
STORY_DAYS = 110  # the requests and claims happen over this many days before `now`
SECOND_APPROVAL_ABOVE = 5_000_00  # MDF claims above this need two approvers

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
# Both programs' activities (the queue benchmark's too): code, name, proof asked for, cap
CATALOG = (
    ("webinar", "Webinar", ("landing_page", "lead_list"), 5_000_00),
    ("trade-show", "Trade show booth", ("invoice", "photos"), 15_000_00),
    ("digital-ads", "Digital advertising", ("invoice", "landing_page"), 10_000_00),
    ("social", "Social media campaign", ("social_post", "invoice"), 3_000_00),
    ("email", "E-mail campaign", ("invoice", "lead_list"), 2_500_00),
)


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
    requests: dict[str, int] = field(default_factory=dict)  # fund requests by state
    claims: dict[str, int] = field(default_factory=dict)  # claims by state


def is_seeded(session: Session) -> bool:
    return bool(session.scalar(select(func.count()).select_from(programs.Program)))


def seed(
    session: Session,
    store: ProofStore | None = None,
    *,
    now: datetime | None = None,
    rng_seed: int = 2026,
) -> DemoBook:
    """Seed an empty database. Flushes, never commits. Refuses a database that has programs.

    Proof files go to `store` (default: the running app's proof store)."""
    if is_seeded(session):
        raise Conflict("this database already has programs: the demo seeds an empty database")
    now = ensure_utc(now or utcnow())
    if store is None:
        from mdfledger.storage import app_store

        store = app_store()
    clock = _Clock(now)
    # The book opens when the story starts; its funds are for the period of `now`.
    opened = clock.at(STORY_DAYS, 13)
    rng = random.Random(rng_seed)
    mdf, coop = _programs(session, opened, year=now.year)  # named for the current year
    partners = [
        programs.create_partner(
            session,
            SEEDER,
            code=code,
            name=name,
            type=kind,
            tier=tier,
            region=region,
            now=opened,
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
        day=today, reason=f"{period.label} plan", now=opened,
    )  # fmt: skip
    allocated = report.moved
    next_period = period.end + timedelta(days=1)
    for partner in partners[:4]:
        allocated += programs.allocate(
            session, SEEDER, mdf.id, partner.id, 5_000_00, reason="launch campaign",
            day=next_period, now=opened,
        ).amount  # fmt: skip
    first = session.scalar(
        select(programs.Allocation).where(programs.Allocation.partner_id == partners[1].id)
    )
    assert first is not None
    allocated += programs.adjust_fund(
        session, SEEDER, first.fund_id, -2_000_00, reason="plan revised after QBR", now=opened
    ).amount
    # Two partners have been suspended since; they keep what they have but get nothing new.
    for partner in (partners[9], partners[18]):
        programs.update_partner(session, SEEDER, partner.id, status="suspended")
    staff = {local: _user(session, role, name, None, local) for role, name, local in STAFF}
    pat, pat_actor = _user(session, Role.PARTNER, "Pat Partner", partners[0])
    users = [user for user, _ in staff.values()] + [pat]

    demo = _Demo(session, store, clock, mdf, coop, partners)
    demo.finance = {local: actor for local, (_, actor) in staff.items()}
    demo.people[partners[0].code] = pat_actor
    accrued: list[int] = []

    def import_purchases(at: datetime) -> None:
        # The distributor's sales report arrives yesterday, with the period's sales so far.
        coop_period = programs.period_of(coop, programs.today(coop, now))
        data = _purchases(partners, coop_period, clock.day(1), rng)
        accrued.append(
            programs.import_purchases(
                session, SEEDER, coop.id, data, filename="distributor-sales.csv",
                day=coop_period.start, now=at,
            ).moved
        )  # fmt: skip

    def automatic_approval(at: datetime) -> None:
        # MDF approves clean claims up to 1,000.00 USD without a person from now on.
        verification.set_policy(
            session, SEEDER, mdf.id, auto_approve_up_to=1_000_00, tolerance_bp=100,
            invoice_grace_days=30, page_markers="{partner}", min_leads=None, recheck_days=30,
            now=at,
        )  # fmt: skip

    demo_payouts.setup(session, SEEDER, mdf, coop, partners, opened)

    def payout_run(at: datetime) -> None:
        demo_payouts.run(session, demo.finance["finance"], at, clock.at(2, 12))

    demo.story.at(1, 13, import_purchases)
    demo.story.at(2, 11, automatic_approval)
    demo.story.at(3, 20, payout_run)
    _tell(demo)
    demo.story.play()
    return DemoBook(
        [mdf.code, coop.code], len(partners), f"{format_amount(allocated, 'USD')} USD",
        f"{format_amount(sum(accrued), 'USD')} USD", users,
        _count_by_state(session, claims.FundRequest), _count_by_state(session, claims.Claim),
    )  # fmt: skip


def _count_by_state(session: Session, model: type[claims.FundRequest | claims.Claim]) -> dict:
    rows = session.execute(select(model.state, func.count()).group_by(model.state)).all()
    return {state: count for state, count in sorted(rows)}


def _programs(
    session: Session, now: datetime, *, year: int
) -> tuple[programs.Program, programs.Program]:
    threshold = format_amount(SECOND_APPROVAL_ABOVE, "USD")
    mdf = programs.create_program(
        session, SEEDER, code=f"MDF-{year}", name=f"Market development funds {year}", kind="mdf",
        currency="USD", timezone="America/New_York", fiscal_start_month=1, period_months=3,
        claim_deadline_days=60, share_bp=5_000, expiry_policy="forfeit",
        second_approval_above=SECOND_APPROVAL_ABOVE,
        description="Quarterly MDF for resellers, integrators and agencies: 50% of eligible cost,"
        f" pre-approval first; claims above {threshold} USD need two approvers.",
        now=now,
    )  # fmt: skip
    coop = programs.create_program(
        session, SEEDER, code=f"COOP-{year}", name=f"Co-op {year}", kind="coop", currency="USD",
        timezone="America/New_York", fiscal_start_month=1, period_months=3,
        claim_deadline_days=90, share_bp=10_000, expiry_policy="rollover", rollover_days=90,
        direct_claims=True,
        description="Co-op earned on purchases, claimed directly; unspent funds roll over for"
        " 90 days.",
        now=now,
    )  # fmt: skip
    programs.fund_budget(
        session, SEEDER, mdf.id, 600_000_00, reason=f"FY{year} MDF budget", now=now
    )
    for program in (mdf, coop):
        for code, name, proof, cap in CATALOG:
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
    partners: list[programs.Partner], period: programs.Period, last: date, rng: random.Random
) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(("partner", "invoice", "date", "amount", "product_line"))
    active = [p for p in partners if p.status == "active"]
    days = max(0, (min(last, period.end) - period.start).days)
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


def _user(
    session: Session,
    role: str,
    name: str,
    partner: programs.Partner | None,
    local: str | None = None,
) -> tuple[DemoUser, Actor]:
    email = f"{local or role}@{EMAIL_DOMAIN}"
    password = secrets.token_urlsafe(12)
    if partner is None:
        user = auth.create_user(
            session, SEEDER, email=email, name=name, role=role, password=password
        )
    else:
        user = programs.add_partner_user(
            session, SEEDER, partner.id, email=email, name=name, password=password
        )
    actor = Actor("user", str(user.id), user.role, user.partner_id)
    return DemoUser(role, email, password, partner.name if partner else None), actor


# --- the story: requests and claims ---------------------------------------------------------------


class _Clock:
    """Moments in the past, `days_ago` days before `now`'s UTC date at `hour` UTC.

    Hours stay within 11-21 UTC, the same calendar day in New York (the programs' timezone),
    and every step is at least a day old, so nothing lands after `now`."""

    def __init__(self, now: datetime) -> None:
        self.midnight = datetime.combine(now.astimezone(UTC).date(), time(), tzinfo=UTC)

    def at(self, days_ago: int, hour: int) -> datetime:
        return self.midnight - timedelta(days=days_ago) + timedelta(hours=hour)

    def day(self, days_ago: int) -> date:
        return (self.midnight - timedelta(days=days_ago)).date()


class _Story:
    """Steps registered in any order, played in time order (ties: in the order registered)."""

    def __init__(self, clock: _Clock) -> None:
        self.clock = clock
        self.steps: list[tuple[datetime, int, Callable[[datetime], object]]] = []

    def at(self, days_ago: int, hour: int, step: Callable[[datetime], object]) -> None:
        if days_ago < 1 or not 11 <= hour <= 21:
            raise ValueError("story steps are on past days, between 11:00 and 21:00 UTC")
        self.steps.append((self.clock.at(days_ago, hour), len(self.steps), step))

    def play(self) -> None:
        for when, _, step in sorted(self.steps, key=lambda s: (s[0], s[1])):
            step(when)


@dataclass(frozen=True)
class _Invoice:
    issuer: str
    number: str
    issued: date
    bill_to: str
    items: tuple[tuple[str, int], ...]

    @property
    def total(self) -> int:
        return sum(amount for _, amount in self.items)

    def pdf(self) -> bytes:
        return demo_proof.invoice_pdf(
            issuer=self.issuer, number=self.number, issued=self.issued, bill_to=self.bill_to,
            items=self.items,
        )  # fmt: skip


# Who sends the invoice for each kind of activity (when a story line does not say).
_VENDORS = {
    "trade-show": ("Expo Services LLC", "EXS", "Booth space, furniture and power"),
    "digital-ads": ("Searchlight Ads Inc.", "SL", "Paid search and display, campaign flight"),
    "social": ("Brightline Media Inc.", "BM", "Sponsored posts and creative"),
    "email": ("Mailwave Ltd", "MW", "E-mail campaign: design, list rental, sends"),
    "webinar": ("Stagecast Inc.", "SC", "Webinar platform and production"),
}


class _Demo:
    """What the story's steps need: services' arguments, actors, activities, the proof store."""

    def __init__(
        self,
        session: Session,
        store: ProofStore,
        clock: _Clock,
        mdf: programs.Program,
        coop: programs.Program,
        partners: list[programs.Partner],
    ) -> None:
        self.session, self.store, self.clock = session, store, clock
        self.kit = verification.Toolkit(store)
        self.story = _Story(clock)
        self.programs = {"mdf": mdf, "coop": coop}
        self.partners = {p.code: p for p in partners}
        self.finance: dict[str, Actor] = {}
        self.people: dict[str, Actor] = {}  # partner code -> a user of that partner
        self.activities = {
            (key, a.code): a
            for key, program in self.programs.items()
            for a in session.scalars(
                select(programs.Activity).where(programs.Activity.program_id == program.id)
            )
        }
        self.serial = 0

    def person(self, code: str) -> Actor:
        """A user of the partner (its marketing lead), made on first use. Their password is
        not shown: the demo's sign-ins are the users it prints."""
        if code not in self.people:
            partner = self.partners[code]
            first = ("Jo", "Sam", "Alex", "Kim", "Lee", "Robin", "Noor")[len(self.people) % 7]
            user = programs.add_partner_user(
                self.session, SEEDER, partner.id, name=f"{first} {partner.name.split()[0]}",
                email=f"{first.lower()}@{code.lower()}.{EMAIL_DOMAIN}",
                password=secrets.token_urlsafe(12),
            )  # fmt: skip
            self.people[code] = Actor("user", str(user.id), user.role, user.partner_id)
        return self.people[code]

    def line(self, code: str, activity: str, title: str, program: str = "mdf") -> _Line:
        self.person(code)
        return _Line(self, code, program, activity, title)

    def next_serial(self) -> int:
        self.serial += 1
        return self.serial


class _Line:
    """One partner's fund request and the claim against it (or a direct claim), as steps on
    the story's clock. Each method schedules a step and returns the line, so a line reads as
    its history: propose, approve, claim, submit, decide."""

    def __init__(self, demo: _Demo, code: str, program: str, activity: str, title: str) -> None:
        self.demo, self.code, self.title = demo, code, title
        self.program = demo.programs[program]
        self.activity = demo.activities[(program, activity)]
        self.partner = demo.partners[code]
        self.request: claims.FundRequest | None = None
        self.claimed: claims.Claim | None = None  # the claim, once drafted

    def _at(self, days_ago: int, hour: int, step: Callable[[datetime], object]) -> _Line:
        self.demo.story.at(days_ago, hour, step)
        return self

    @property
    def _s(self) -> Session:
        return self.demo.session

    @property
    def _me(self) -> Actor:
        return self.demo.people[self.code]

    def _request_id(self) -> int:
        assert self.request is not None, f"{self.title}: propose before deciding"
        return self.request.id

    def _claim_id(self) -> int:
        assert self.claimed is not None, f"{self.title}: claim before deciding"
        return self.claimed.id

    # --- the fund request ---

    def propose(
        self,
        days_ago: int,
        *,
        runs: tuple[int, int],
        cost: int,
        asked: int,
        outcome: str = "",
        hour: int = 14,
    ) -> _Line:
        """Ask for pre-approval of an activity from `runs[0]` to `runs[1]` days ago (negative:
        days ahead)."""
        start, end = self.demo.clock.day(runs[0]), self.demo.clock.day(runs[1])

        def step(now: datetime) -> None:
            self.request = claims.create_request(
                self._s, self._me, program_id=self.program.id, activity_id=self.activity.id,
                title=self.title, starts_on=start, ends_on=end, estimated_cost=cost,
                requested_amount=asked, expected_outcome=outcome,
                description=f"{self.activity.name} run by {self.partner.name}.", now=now,
            )  # fmt: skip

        return self._at(days_ago, hour, step)

    def _decide(
        self,
        days_ago: int,
        hour: int,
        decide: Callable[..., object],
        target: Callable[[], int],
        *,
        by: str = "finance",
        reason: tuple[str, str] | None = None,
        **fields: Any,
    ) -> _Line:
        """A finance user (`by`) decides on the request or claim: `target` is called when the
        step plays (the object does not exist before); `reason` is (reason code, message)."""
        code, message = reason or (None, None)
        return self._at(days_ago, hour, lambda now: decide(
            self._s, self.demo.finance[by], target(), reason_code=code, message=message, now=now,
            **fields,
        ))  # fmt: skip

    def approve(
        self,
        days_ago: int,
        *,
        by: str = "finance",
        amount: int | None = None,
        reason: tuple[str, str] | None = None,
        hour: int = 17,
    ) -> _Line:
        return self._decide(
            days_ago, hour, claims.approve_request, self._request_id, by=by, reason=reason,
            amount=amount,
        )  # fmt: skip

    def send_back(self, days_ago: int, code: str, message: str, *, hour: int = 17) -> _Line:
        return self._decide(
            days_ago, hour, claims.return_request, self._request_id, reason=(code, message)
        )

    def turn_down(self, days_ago: int, code: str, message: str, *, hour: int = 17) -> _Line:
        return self._decide(
            days_ago, hour, claims.reject_request, self._request_id, reason=(code, message)
        )

    def resubmit(self, days_ago: int, message: str, *, hour: int = 14, **changes: Any) -> _Line:
        def step(now: datetime) -> None:
            claims.update_request(self._s, self._me, self._request_id(), now=now, **changes)
            claims.resubmit_request(self._s, self._me, self._request_id(), message=message, now=now)

        return self._at(days_ago, hour, step)

    def call_off(self, days_ago: int, message: str, *, hour: int = 14) -> _Line:
        return self._at(days_ago, hour, lambda now: claims.withdraw_request(
            self._s, self._me, self._request_id(), message=message, now=now
        ))  # fmt: skip

    # --- the claim ---

    def claim(
        self,
        days_ago: int,
        *,
        cost: int,
        amount: int,
        invoice: _Invoice | None = None,
        runs: tuple[int, int] | None = None,
        photos: int = 1,
        leave_out: tuple[str, ...] = (),
        submit: bool = True,
        hour: int = 15,
    ) -> _Line:
        """Draft the claim with the proof its activity asks for (less `leave_out`), and submit
        it unless told not to. Without a request (`runs` given) it is a direct claim."""
        serial = self.demo.next_serial()
        needed = [p for p in self.activity.proof_required if p not in leave_out]
        if invoice is None and "invoice" in self.activity.proof_required:
            issuer, prefix, text = _VENDORS[self.activity.code]
            invoice = _Invoice(
                issuer, f"{prefix}-{4100 + serial * 37}", self.demo.clock.day(days_ago + 2),
                self.partner.name, ((text, cost),),
            )  # fmt: skip

        def step(now: datetime) -> None:
            fields: dict[str, Any] = {}
            if invoice is not None:
                fields.update(
                    invoice_issuer=invoice.issuer, invoice_number=invoice.number,
                    invoice_total=invoice.total,
                )  # fmt: skip
            if runs is None:
                fields["request_id"] = self._request_id()
            else:
                fields.update(
                    program_id=self.program.id, activity_id=self.activity.id,
                    starts_on=self.demo.clock.day(runs[0]), ends_on=self.demo.clock.day(runs[1]),
                )  # fmt: skip
            self.claimed = claims.create_claim(
                self._s, self._me, title=self.title, actual_cost=cost, claimed_amount=amount,
                description=f"{self.activity.name} held by {self.partner.name}.", now=now,
                **fields,
            )  # fmt: skip
            for proof in needed:
                self._add_proof(proof, invoice, serial, photos, now)
            if submit:
                claims.submit_claim(self._s, self._me, self.claimed.id, now=now)
                # What the job does once the submission commits, here in the same session.
                verification.verify(
                    self._s, verification.VERIFIER, self.claimed.id, self.demo.kit, now=now
                )

        return self._at(days_ago, hour, step)

    def _add_proof(
        self, proof: str, invoice: _Invoice | None, serial: int, photos: int, now: datetime
    ) -> None:
        claim_id, store = self._claim_id(), self.demo.store
        slug = self.partner.name.split()[0].lower()
        topic = "-".join(self.title.lower().replace(":", "").split()[:4])

        def upload(data: bytes, filename: str, kind: str) -> None:
            claims.add_document(
                self._s, self._me, store, claim_id, data=data, filename=filename, kind=kind,
                now=now,
            )  # fmt: skip

        if proof == "invoice":
            assert invoice is not None
            upload(invoice.pdf(), f"invoice-{invoice.number}.pdf", "invoice")
        elif proof == "photos":
            for n in range(1, photos + 1):
                caption = f"{self.partner.name} - {self.title}"
                upload(demo_proof.booth_photo(caption, serial * 10 + n), f"booth-{n}.png", "photo")
        elif proof == "lead_list":
            upload(demo_proof.lead_list_csv(self.title, serial), "registrants.csv", "lead_list")
        elif proof == "landing_page":
            claims.add_link(
                self._s, self._me, claim_id, url=f"https://www.{slug}.example/{topic}",
                kind="landing_page", now=now,
            )  # fmt: skip
        elif proof == "social_post":
            claims.add_link(
                self._s, self._me, claim_id, kind="social_post", now=now,
                url=f"https://social.example/{slug}/posts/{7_340_000 + serial}",
            )  # fmt: skip

    def pay_out(
        self,
        days_ago: int,
        *,
        by: str = "finance",
        amount: int | None = None,
        reason: tuple[str, str] | None = None,
        hour: int = 17,
    ) -> _Line:
        """Finance approves the claim (in part, with a reason, when `amount` is less)."""
        return self._decide(
            days_ago, hour, claims.approve_claim, self._claim_id, by=by, reason=reason,
            amount=amount,
        )  # fmt: skip

    def return_claim(self, days_ago: int, code: str, message: str, *, hour: int = 17) -> _Line:
        return self._decide(
            days_ago, hour, claims.return_claim, self._claim_id, reason=(code, message)
        )

    def reject_claim(self, days_ago: int, code: str, message: str, *, hour: int = 17) -> _Line:
        return self._decide(
            days_ago, hour, claims.reject_claim, self._claim_id, reason=(code, message)
        )

    def withdraw_claim(self, days_ago: int, message: str, *, hour: int = 14) -> _Line:
        return self._at(days_ago, hour, lambda now: claims.withdraw_claim(
            self._s, self._me, self._claim_id(), message=message, now=now
        ))  # fmt: skip


def _tell(demo: _Demo) -> None:
    """Who did what, when (days ago). Amounts in cents; MDF pays 50% of the cost, capped."""
    # Acme, the demo partner user's company: a claim or request in nearly every state.
    demo.line("ACME", "webinar", "Storage webinar series").propose(
        100, runs=(94, 90), cost=5_000_00, asked=2_500_00, outcome="3 sessions, 200 registrants"
    ).approve(98).claim(88, cost=4_800_00, amount=2_400_00).pay_out(84)
    demo.line("ACME", "trade-show", "Booth at DataWorld Expo").propose(
        97, runs=(75, 73), cost=10_000_00, asked=5_000_00, outcome="400 badge scans"
    ).approve(95, by="finance2").claim(
        70, cost=9_400_00, amount=4_700_00, photos=2,
        invoice=_Invoice(
            "Expo Services LLC", "EXS-10442", demo.clock.day(72), "Acme Networks",
            (("Booth space 6 x 3 m, furniture, power", 8_200_00),
             ("Booth catering", 1_200_00)),
        ),
    ).pay_out(
        65, by="finance2", amount=4_100_00,
        reason=("ineligible_cost", "Catering (1,200.00 USD on the invoice) is not reimbursable:"
                " approved 50% of the other 8,200.00 USD."),
    )  # fmt: skip
    demo.line("ACME", "email", "Spring newsletter").propose(
        104, runs=(100, 95), cost=2_000_00, asked=1_000_00
    ).approve(102).claim(93, cost=2_000_00, amount=1_000_00, leave_out=("lead_list",), submit=False)
    demo.line("ACME", "trade-show", "Cloud Summit booth").propose(
        50, runs=(35, 33), cost=6_000_00, asked=3_000_00
    ).approve(48).claim(30, cost=6_000_00, amount=3_000_00).return_claim(
        26, "insufficient_proof",
        "The booth photo does not show your logo: add a photo of the booth with your signage.",
    )  # fmt: skip
    demo.line("ACME", "digital-ads", "Q4 search ads: hybrid cloud").propose(
        45, runs=(40, 12), cost=8_000_00, asked=4_000_00, outcome="2,000 clicks"
    ).approve(44).claim(9, cost=7_800_00, amount=3_900_00)
    demo.line("ACME", "email", "Holiday e-mail campaign").propose(
        20, runs=(8, 2), cost=2_400_00, asked=1_200_00
    ).approve(18)
    demo.line("ACME", "social", "LinkedIn thought-leadership posts").propose(
        14, runs=(-10, -40), cost=2_000_00, asked=1_000_00
    ).send_back(
        12, "other", "How many posts, and for which audience? Add the posting plan and the cost"
        " per post.",
    )  # fmt: skip
    demo.line("ACME", "trade-show", "Golf day sponsorship").propose(
        16, runs=(-30, -30), cost=8_000_00, asked=4_000_00
    ).turn_down(15, "not_eligible", "Hospitality sponsorships are not eligible for MDF.")
    demo.line("ACME", "webinar", "Partner summit webinar").propose(
        6, runs=(-20, -20), cost=3_000_00, asked=1_500_00
    ).send_back(4, "other", "What audience do you expect? Add the expected registrants.").resubmit(
        2, "Added the expected registrants.", expected_outcome="120 registrants, 40 qualified leads"
    )

    reused = _Invoice(  # Pinnacle's print shop invoice: claimed in summer, and again in autumn
        "Inkwell Print Co.",
        "IP-3004",
        demo.clock.day(82),
        "Pinnacle Partners",
        (("Printed mailers, 4,000 pieces, and postage", 2_400_00),),
    )

    # Finance's history with the other partners: approved, in part, by two approvers, or not.
    # Clean, under the automatic limit, with an invoice that matches: approved by the checks.
    demo.line("CIRRUS", "trade-show", "Regional roadshow table").propose(
        10, runs=(6, 5), cost=1_600_00, asked=800_00
    ).approve(9).claim(1, cost=1_600_00, amount=800_00, hour=21)
    demo.line("CIRRUS", "webinar", "Cloud migration webinar").propose(
        80, runs=(70, 70), cost=3_000_00, asked=1_500_00
    ).approve(78).claim(66, cost=3_000_00, amount=1_500_00).pay_out(62, by="finance2")
    demo.line("PINNACLE", "email", "Summer promotion mailing").propose(
        92, runs=(90, 85), cost=2_400_00, asked=1_200_00
    ).approve(91).claim(80, cost=2_400_00, amount=1_200_00, invoice=reused).pay_out(76)
    demo.line("MERIDIAN", "digital-ads", "APAC display campaign").propose(
        99, runs=(92, 80), cost=9_000_00, asked=4_500_00
    ).approve(97).claim(75, cost=9_000_00, amount=4_500_00).pay_out(71)
    demo.line("NORTHWIND", "email", "Nordic customer newsletter").propose(
        70, runs=(62, 60), cost=2_000_00, asked=1_000_00
    ).approve(68).claim(55, cost=2_000_00, amount=1_000_00).pay_out(52, by="finance2")
    demo.line("RIVET", "trade-show", "MSP Expo booth").propose(
        65, runs=(50, 48), cost=9_000_00, asked=4_500_00
    ).approve(63).claim(44, cost=9_000_00, amount=4_500_00).pay_out(
        40, amount=3_800_00,
        reason=("ineligible_cost", "Travel for booth staff is not covered: 1,400.00 USD off."),
    )  # fmt: skip
    demo.line("TUNDRA", "social", "Winter social campaign").propose(
        60, runs=(50, 40), cost=3_000_00, asked=1_500_00
    ).approve(59).claim(38, cost=3_000_00, amount=1_500_00).pay_out(35)
    demo.line("GRANITE", "trade-show", "Integrators' Forum booth").propose(
        75, runs=(60, 58), cost=14_000_00, asked=7_000_00
    ).approve(73).claim(50, cost=13_000_00, amount=6_500_00, photos=2).pay_out(46).pay_out(
        45, by="finance2"
    )  # above the threshold: the second approval completes it
    demo.line("BOLT", "webinar", "Security webinar").propose(
        50, runs=(40, 38), cost=4_000_00, asked=2_000_00
    ).approve(49).claim(35, cost=4_000_00, amount=2_000_00).reject_claim(
        31, "proof_mismatch", "The lead list is from last year's event, not this webinar."
    )  # the request is approved again: Bolt may claim with the right list until the deadline
    demo.line("BOLT", "trade-show", "Sales kick-off party").propose(
        20, runs=(-14, -14), cost=6_000_00, asked=3_000_00
    ).turn_down(17, "not_eligible", "Internal sales events are not partner marketing.")
    demo.line("CIRRUS", "trade-show", "Regional IT fair").propose(
        60, runs=(30, 29), cost=5_000_00, asked=2_500_00
    ).approve(58).call_off(40, "The fair was cancelled.")
    demo.line("DELTA", "trade-show", "Distributor roadshow").propose(
        105, runs=(100, 97), cost=12_000_00, asked=6_000_00
    ).approve(103)  # never claimed: it expires with the claim deadline
    demo.line("KESTREL", "webinar", "Zero-trust webinar").propose(
        35, runs=(25, 22), cost=4_000_00, asked=2_000_00
    ).approve(33).claim(20, cost=3_000_00, amount=1_500_00).withdraw_claim(
        18, "Wrong amount: we will claim again with the final invoice."
    )  # fmt: skip
    demo.line("DELTA", "digital-ads", "Partner locator ads").propose(
        55, runs=(-5, -35), cost=6_000_00, asked=3_000_00
    ).approve(
        53, amount=2_000_00,
        reason=("budget", "2,000.00 USD this quarter; ask again next quarter for the rest."),
    )  # fmt: skip

    # The queue: claims waiting for finance, of all ages; two flagged, one half-approved.
    for code, activity, title, runs, days_ago, cost in (
        ("MERIDIAN", "webinar", "Data platform webinar", (52, 50), 45, 3_600_00),
        ("NORTHWIND", "email", "Year-end offers mailing", (44, 40), 38, 2_200_00),
        ("QUARTZ", "social", "Quartz on social", (40, 35), 33, 2_800_00),
        ("RIVET", "webinar", "Managed backup webinar", (30, 28), 21, 4_200_00),
        ("TUNDRA", "digital-ads", "Search ads: edge", (25, 15), 14, 5_000_00),
        ("IONIC", "webinar", "Ionic customer day", (10, 9), 7, 2_400_00),
        ("CIRRUS", "email", "Q4 newsletter", (12, 5), 3, 2_000_00),
    ):
        demo.line(code, activity, title).propose(
            runs[0] + 8, runs=runs, cost=cost, asked=cost // 2
        ).approve(runs[0] + 6).claim(days_ago, cost=cost, amount=cost // 2)
    shared = _Invoice(  # one agency invoice, claimed by two partners
        "Brightline Media Inc.",
        "BM-2291",
        demo.clock.day(18),
        "Ember Digital Agency",
        (("E-mail campaign: design and three sends", 3_000_00),),
    )
    demo.line("EMBER", "email", "Agency e-mail campaign").propose(
        30, runs=(25, 20), cost=3_000_00, asked=1_500_00
    ).approve(29).claim(15, cost=3_000_00, amount=1_500_00, invoice=shared)
    demo.line("FJORD", "email", "Fjord e-mail campaign").propose(
        28, runs=(24, 19), cost=3_000_00, asked=1_500_00
    ).approve(27).claim(11, cost=3_000_00, amount=1_500_00, invoice=shared)
    demo.line("PINNACLE", "email", "Autumn promotion mailing").propose(
        12, runs=(10, 6), cost=2_400_00, asked=1_200_00
    ).approve(11).claim(4, cost=2_400_00, amount=1_200_00, invoice=reused)  # its old invoice
    lumen = demo.line("LUMEN", "trade-show", "Analytics World booth").propose(
        40, runs=(20, 18), cost=16_000_00, asked=8_000_00
    )
    # Above the threshold: the first approval waits for a second approver (finance2).
    lumen.approve(38).claim(10, cost=15_000_00, amount=7_500_00, photos=2).pay_out(6)

    # Requests waiting for finance's decision.
    for code, activity, title, runs, days_ago, cost in (
        ("GRANITE", "webinar", "Integration bootcamp webinar", (-20, -20), 5, 4_000_00),
        ("LUMEN", "webinar", "Analytics partner day", (-12, -12), 3, 6_000_00),
        ("QUARTZ", "social", "Holiday social push", (-3, -25), 2, 2_400_00),
        ("EMBER", "email", "New year e-mail series", (-40, -45), 1, 3_000_00),
    ):
        demo.line(code, activity, title).propose(days_ago, runs=runs, cost=cost, asked=cost // 2)

    # Period end on day 30: the drafts and reservations whose claim deadline passed expire.
    demo.story.at(30, 11, lambda now: (
        claims.expire_requests(demo.session, PERIOD_END, now=now),
        claims.expire_claims(demo.session, PERIOD_END, now=now),
    ))  # fmt: skip

    # Co-op: claimed directly against accrued funds, after yesterday's purchase import.
    demo.line("ACME", "digital-ads", "Regional print and web ads", "coop").claim(
        1,
        runs=(20, 10),
        cost=1_600_00,
        amount=1_600_00,
        hour=18,
        submit=False,
        leave_out=("invoice", "landing_page"),
    )  # a draft: the proof is still to come
    demo.line("RIVET", "email", "Co-op e-mail blast", "coop").claim(
        1, runs=(15, 12), cost=900_00, amount=900_00, hour=19
    )


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
