"""A program, three partners with contacts, users of every role, and a webhook receiver."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session

from mdfledger import programs
from mdfledger.actor import Actor
from tests.claims.conftest import user_actor
from tests.engagement.receiver import Receiver

NOW = datetime(2026, 8, 15, 12, 0, tzinfo=UTC)


@dataclass
class World:
    mdf: programs.Program
    acme: programs.Partner
    bolt: programs.Partner
    cogs: programs.Partner
    acme_user: Actor
    bolt_user: Actor
    finance: Actor
    admin: Actor
    auditor: Actor


def make_world(session: Session) -> World:
    system = Actor.system("setup")
    mdf = programs.create_program(
        session, system, code="MDF26", name="MDF 2026", kind="mdf", currency="USD", now=NOW
    )
    partners = [
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
        for code, name in (("ACME", "Acme Networks"), ("BOLT", "Bolt Systems"), ("COGS", "Cogs"))
    ]
    acme, bolt, cogs = partners
    programs.add_contact(session, system, acme.id, name="Pat", email="pat@acme.test")
    programs.add_contact(
        session, system, acme.id, name="Sam", email="sam@acme.test", is_primary=True
    )
    session.flush()
    return World(
        mdf, acme, bolt, cogs,
        acme_user=user_actor(session, "pat.user@acme.test", "partner", acme.id),
        bolt_user=user_actor(session, "bo@bolt.test", "partner", bolt.id),
        finance=user_actor(session, "fin@vendor.test", "finance"),
        admin=user_actor(session, "ada@vendor.test", "admin"),
        auditor=user_actor(session, "aud@vendor.test", "auditor"),
    )  # fmt: skip


@pytest.fixture
def world(session: Session) -> World:
    world = make_world(session)
    session.commit()
    return world


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


def claim_data(n: int = 12, **extra: object) -> dict[str, object]:
    data: dict[str, object] = {
        "claim_id": n, "reference": f"CLM-{n:06d}", "title": "Webinars held",
        "program": "MDF 2026", "program_code": "MDF26", "currency": "USD", "claimed": 150_000,
    }  # fmt: skip
    data.update(extra)
    return data
