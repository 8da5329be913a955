"""The API: destinations, deliveries and replay, events; roles and partner isolation. On SQLite
and PostgreSQL. `engagement_ids` also gives tests/api/test_api_access.py its objects."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mdfledger import engagement
from mdfledger.actor import Actor
from mdfledger.engagement import Delivery, DeliveryState
from mdfledger.engagement.rules import AttemptOutcome
from tests.api.test_api_foundation import answer
from tests.api.test_programs_api import World, build_world, ok
from tests.engagement.conftest import NOW, claim_data

SYSTEM = Actor.system("test")


@pytest.fixture
def world(
    database_url: str, tmp_path: Path, session_factory: sessionmaker[Session], actor: Actor
) -> Iterator[World]:
    yield from build_world(database_url, tmp_path, session_factory, actor)


def engagement_ids(world: World) -> dict[str, int]:
    """A webhook for ACME (nobody listens at its URL) with one dead delivery of an ACME event,
    and a BOLT event: made once per world, ids kept in world.ids."""
    if "destination" in world.ids:
        return world.ids
    with world.sessions() as session:
        made = engagement.create_destination(
            session, SYSTEM, name="Acme CRM", kind="webhook", partner_id=world.acme,
            url="http://127.0.0.1:9/hooks", now=NOW,
        )  # fmt: skip
        acme_event = engagement.emit(
            session, "claim.paid", partner_id=world.acme, data=claim_data(1), now=NOW
        )
        bolt_event = engagement.emit(
            session, "claim.rejected", partner_id=world.bolt,
            data={"reference": "CLM-000002", "reason": "Bolt launch was out of policy"}, now=NOW,
        )  # fmt: skip
        assert acme_event is not None and bolt_event is not None
        delivery = session.scalars(select(Delivery).where(Delivery.event_id == acme_event.id)).one()
        # Given up, as the delivery loop leaves it (tests/engagement/test_delivery.py).
        delivery.state, delivery.dead_at, delivery.attempts = DeliveryState.DEAD, NOW, 9
        delivery.last_error = "could not reach http://127.0.0.1:9/hooks"
        session.add(
            engagement.DeliveryAttempt(
                delivery_id=delivery.id, at=NOW, outcome=AttemptOutcome.DEAD,
                detail=delivery.last_error,
            )
        )  # fmt: skip
        session.commit()
        world.ids.update(
            destination=made.destination.id, dead_delivery=delivery.id,
            acme_event=acme_event.id, bolt_event=bolt_event.id,
        )  # fmt: skip
    return world.ids


def test_admins_add_and_change_destinations(world: World) -> None:
    body = {
        "name": "Acme CRM", "kind": "webhook", "partner_id": world.acme,
        "url": "https://crm.acme.example/hooks", "event_types": ["claim.paid", "claim.approved"],
    }  # fmt: skip
    made = ok(world.post("admin", "/api/v1/destinations", body), 201)
    secret = made["secret"]
    assert secret.startswith("whsec_") and len(secret) > 30
    assert made["event_types"] == ["claim.approved", "claim.paid"]
    assert made["partner_id"] == world.acme and made["active"] is True
    shown = ok(world.get("finance", f"/api/v1/destinations/{made['id']}"))
    assert shown["secret"] == engagement.mask_secret(secret)
    listed = ok(world.get("auditor", "/api/v1/destinations"))["destinations"]
    assert [d["id"] for d in listed] == [made["id"]] and secret not in str(listed)

    changed = ok(
        world.patch(
            "admin", f"/api/v1/destinations/{made['id']}", {"active": False, "event_types": "*"}
        )
    )
    assert changed["active"] is False and changed["event_types"] == "*"
    assert changed["secret"] == engagement.mask_secret(secret)  # the same secret


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "kind": "webhook", "url": "ftp://x"}, "url"),
        ({"name": "x", "kind": "webhook"}, "url"),
        ({"name": "x", "kind": "sns", "topic_arn": "arn:nope"}, "topic_arn"),
        ({"name": "x", "kind": "email"}, "email_to"),
        ({"name": "x", "kind": "email", "email_to": ["nobody"]}, "email_to"),
        ({"name": "x", "kind": "email", "email_to": ["a@b.test"], "event_types": ["x.y"]},
         "event_types"),
        ({"name": "x", "kind": "email", "email_to": ["a@b.test"], "partner_id": 999},
         "partner_id"),
        ({"name": "x", "kind": "eventbridge", "event_bus": "bad bus!"}, "event_bus"),
    ],
)  # fmt: skip
def test_bad_destinations_are_refused_naming_the_field(
    world: World, body: dict, field: str
) -> None:
    response = world.post("admin", "/api/v1/destinations", body)
    assert response.status_code == 422, response.json
    assert response.json["error"]["details"]["field"] == field
    assert ok(world.get("admin", "/api/v1/destinations")) == {"destinations": []}


def test_unknown_fields_and_kinds_are_refused(world: World) -> None:
    for body in (
        {"name": "x", "kind": "fax"},
        {"name": "x", "kind": "email", "email_to": ["a@b.test"], "secret": "mine"},
    ):
        assert world.post("admin", "/api/v1/destinations", body).status_code == 422
    assert ok(world.get("admin", "/api/v1/destinations")) == {"destinations": []}


def test_dead_letters_and_replay(world: World) -> None:
    ids = engagement_ids(world)
    dead = ok(world.get("finance", "/api/v1/deliveries?state=dead"))
    assert dead["total"] == 1
    (item,) = dead["items"]
    assert item["id"] == ids["dead_delivery"] and item["state"] == "dead"
    assert item["event"]["id"] == ids["acme_event"] and item["destination_name"] == "Acme CRM"
    assert item["last_error"].startswith("could not reach")
    assert ok(world.get("auditor", "/api/v1/deliveries?state=pending"))["total"] == 0

    gone = world.post("finance", "/api/v1/deliveries/replay", {"delivery_ids": [999]})
    assert gone.status_code == 404
    replayed = ok(
        world.post("finance", "/api/v1/deliveries/replay", {"delivery_ids": [ids["dead_delivery"]]})
    )
    assert replayed == {"replayed": [ids["dead_delivery"]]}
    again = world.post(
        "admin", "/api/v1/deliveries/replay", {"delivery_ids": [ids["dead_delivery"]]}
    )
    assert again.status_code == 409
    assert ok(world.get("finance", "/api/v1/deliveries?state=dead"))["total"] == 0
    bad = world.post("finance", "/api/v1/deliveries/replay", {"delivery_ids": []})
    assert bad.status_code == 422


def test_events_are_partner_scoped(world: World) -> None:
    ids = engagement_ids(world)
    mine = ok(world.get("partner", "/api/v1/events"))
    assert {e["partner_id"] for e in mine["items"]} == {world.acme}  # allocations' too
    assert mine["items"][0]["id"] == ids["acme_event"]  # newest first
    event = mine["items"][0]
    assert event["message"]["subject"] == "CLM-000001 (Webinars held) was paid"
    assert event["data"]["reference"] == "CLM-000001" and event["type"] == "claim.paid"
    assert ids["bolt_event"] not in [e["id"] for e in mine["items"]]
    assert "out of policy" not in str(mine)
    theirs = world.get("partner", f"/api/v1/events?partner_id={world.bolt}")
    nowhere = world.get("partner", "/api/v1/events?partner_id=999")
    assert theirs.status_code == nowhere.status_code == 404
    assert answer(theirs) == answer(nowhere)
    assert "out of policy" not in theirs.get_data(as_text=True)
    everyone = ok(world.get("auditor", "/api/v1/events"))
    assert [e["id"] for e in everyone["items"]][:2] == [ids["bolt_event"], ids["acme_event"]]
    only = ok(world.get("finance", "/api/v1/events?type=claim.rejected"))
    assert [e["id"] for e in only["items"]] == [ids["bolt_event"]]
    assert world.get("finance", "/api/v1/events?type=claim.lost").status_code == 422
