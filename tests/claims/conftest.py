"""A program with a catalog, funded partners, partner and finance users, and a proof store."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from mdfledger import auth, claims, programs
from mdfledger.actor import Actor
from mdfledger.storage import LocalStore
from tests.samples import pdf_bytes, submit_checked

# 2026-08-15 noon UTC: inside FY2026 Q3.
NOW = datetime(2026, 8, 15, 12, 0, tzinfo=UTC)


@dataclass
class Desk:
    mdf: programs.Program
    webinar: programs.Activity  # proof: invoice; cap 5,000.00
    event: programs.Activity  # proof: invoice and photos; no cap
    acme: programs.Partner
    bolt: programs.Partner
    acme_user: Actor
    bolt_user: Actor
    finance: Actor
    finance2: Actor
    admin: Actor
    auditor: Actor
    store: LocalStore


def user_actor(session: Session, email: str, role: str, partner_id: int | None = None) -> Actor:
    user = auth.create_user(
        session, Actor.system("test"), email=email, name=email.split("@")[0].title(), role=role,
        password="correct horse battery staple", partner_id=partner_id,
    )  # fmt: skip
    return Actor("user", str(user.id), role, partner_id)


@pytest.fixture
def desk(session: Session, tmp_path: Path) -> Desk:
    system = Actor.system("setup")
    mdf = programs.create_program(
        session, system, code="MDF26", name="MDF 2026", kind="mdf", currency="USD",
        timezone="America/New_York", claim_deadline_days=60, share_bp=5000,
        direct_claims=True, now=NOW,
    )  # fmt: skip
    webinar = programs.add_activity(
        session, system, mdf.id, code="WEBINAR", name="Webinar", proof=["invoice"], cap=500_000
    )
    event = programs.add_activity(
        session, system, mdf.id, code="EVENT", name="Trade show", proof=["invoice", "photos"]
    )
    acme, bolt = (
        programs.create_partner(
            session,
            system,
            code=code,
            name=name,
            type="reseller",
            tier="gold",
            region="NA",
            now=NOW,
        )
        for code, name in (("ACME", "Acme Networks"), ("BOLT", "Bolt Systems"))
    )
    programs.fund_budget(session, system, mdf.id, 10_000_000, reason="budget", now=NOW)
    for partner in (acme, bolt):
        programs.allocate(
            session, system, mdf.id, partner.id, 2_000_000, reason="Q3", day=date(2026, 8, 1),
            now=NOW,
        )  # fmt: skip
    session.flush()
    return Desk(
        mdf, webinar, event, acme, bolt,
        acme_user=user_actor(session, "pat@acme.test", "partner", acme.id),
        bolt_user=user_actor(session, "bo@bolt.test", "partner", bolt.id),
        finance=user_actor(session, "fin@vendor.test", "finance"),
        finance2=user_actor(session, "fay@vendor.test", "finance"),
        admin=user_actor(session, "ada@vendor.test", "admin"),
        auditor=user_actor(session, "aud@vendor.test", "auditor"),
        store=LocalStore(tmp_path / "proof"),
    )  # fmt: skip


def submit(session: Session, desk: Desk, actor: Actor, claim_id: int, **kw) -> claims.Claim:
    """Submit, then check the proof as the job does once the submission commits."""
    return submit_checked(session, actor, desk.store, claim_id, **kw)


def propose(session: Session, desk: Desk, amount: int = 200_000, **kw) -> claims.FundRequest:
    fields = dict(
        program_id=desk.mdf.id, activity_id=desk.webinar.id, title="Q3 webinar series",
        starts_on=date(2026, 8, 20), ends_on=date(2026, 8, 30), estimated_cost=600_000,
        requested_amount=amount, description="Three webinars", expected_outcome="150 leads",
        now=NOW,
    )  # fmt: skip
    fields.update(kw)
    actor = fields.pop("actor", desk.acme_user)
    return claims.create_request(session, actor, **fields)


def claim_with_proof(
    session: Session,
    desk: Desk,
    request: claims.FundRequest | None = None,
    *,
    amount: int = 150_000,
    invoice: tuple[str, str, int] = ("Webinars Inc", "INV-1001", 300_000),
    pdf: bytes | None = None,
    actor: Actor | None = None,
    now: datetime = NOW,
) -> claims.Claim:
    """A draft claim with an invoice PDF attached (dates inside the request's)."""
    actor = actor or desk.acme_user
    issuer, number, total = invoice
    fields = dict(
        title="Webinars held", actual_cost=300_000, claimed_amount=amount,
        invoice_issuer=issuer, invoice_number=number, invoice_total=total, now=now,
    )  # fmt: skip
    if request is not None:
        fields["request_id"] = request.id
    else:
        fields.update(
            program_id=desk.mdf.id, activity_id=desk.webinar.id, starts_on=date(2026, 8, 1),
            ends_on=date(2026, 8, 10),
        )  # fmt: skip
    claim = claims.create_claim(session, actor, **fields)
    claims.add_document(
        session, actor, desk.store, claim.id, data=pdf or pdf_bytes(f"{number} {claim.id}"),
        filename="invoice.pdf", kind="invoice", now=now,
    )  # fmt: skip
    return claim
