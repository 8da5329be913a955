"""The pages: Integrations (admins set up, others read), dead letters with replay, and the
partner's Messages; each role, and partner isolation. On SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mdfledger import audit, engagement
from mdfledger.actor import Actor
from mdfledger.engagement import Delivery, DeliveryState, Destination
from mdfledger.engagement.senders import WebhookSender
from tests.engagement.conftest import NOW, claim_data
from tests.engagement.receiver import Receiver
from tests.web.test_requests_pages import World, build_world, field_error, post, text, visible

ADMIN = Actor.system("test-admin")


@pytest.fixture
def world(
    database_url: str, tmp_path: Path, session_factory: sessionmaker[Session]
) -> Iterator[World]:
    for built in build_world(database_url, tmp_path, session_factory):
        built.app.extensions[engagement.APP_KEY] = {"webhook": WebhookSender(timeout=5)}
        yield built


def new_webhook(world: World, receiver: Receiver, **fields: str):
    data = {
        "kind": "webhook", "name": "Acme CRM", "partner": "ACME", "url": receiver.url,
        "event_types": "*", **fields,
    }  # fmt: skip
    return post(world.client("admin"), "/integrations/new", data)


def destination_row(world: World) -> Destination:
    with world.sessions() as session:
        found = session.scalars(select(Destination).order_by(Destination.id.desc())).first()
        assert found is not None
        return found


def test_an_admin_adds_a_webhook_and_sees_its_secret_once(world: World, receiver: Receiver) -> None:
    response = new_webhook(world, receiver)
    assert response.status_code == 201
    made = destination_row(world)
    assert made.secret and made.secret.startswith("whsec_")
    assert made.secret in text(response)
    assert "it is not shown again" in visible(response)
    masked = engagement.mask_secret(made.secret)
    for page in ("/integrations", f"/integrations/{made.id}"):
        shown = text(world.client("admin").get(page))
        assert made.secret not in shown and masked in shown
    listing = visible(world.client("finance").get("/integrations"))
    assert "Acme CRM" in listing and "Acme Networks" in listing and "Active" in listing
    with world.sessions() as session:
        (entry,) = session.scalars(audit.query(ADMIN, action="destination.create")).all()
        assert made.secret not in (entry.after or "")


def test_bad_settings_are_shown_beside_their_fields(world: World, receiver: Receiver) -> None:
    response = new_webhook(world, receiver, url="ftp://crm.example")
    assert response.status_code == 422
    assert "is not an http(s) URL" in field_error(text(response), "url")
    response = new_webhook(world, receiver, partner="NOPE")
    assert response.status_code == 422
    assert field_error(text(response), "partner") == "no partner has the code 'NOPE'"
    response = new_webhook(world, receiver, kind="sns", topic_arn="not-an-arn")
    assert "is not an SNS topic ARN" in field_error(text(response), "topic_arn")
    with world.sessions() as session:
        assert session.scalars(select(Destination)).all() == []


def test_edit_disable_enable_and_test_send(world: World, receiver: Receiver) -> None:
    new_webhook(world, receiver)
    made = destination_row(world)
    receiver.secret = made.secret
    admin = world.client("admin")
    page = f"/integrations/{made.id}"
    response = post(
        admin, page, {"name": "Acme Salesforce", "url": receiver.url,
                      "event_types": ["claim.approved", "claim.paid"]},
    )  # fmt: skip
    assert response.status_code == 302
    changed = destination_row(world)
    assert (changed.name, changed.event_types) == ("Acme Salesforce", "claim.approved,claim.paid")
    assert changed.secret == made.secret  # editing keeps the secret

    assert post(admin, f"{page}/active", {}).status_code == 302
    assert destination_row(world).active is False
    assert "Disabled" in visible(admin.get(page))
    assert post(admin, f"{page}/active", {"active": "y"}).status_code == 302
    assert destination_row(world).active is True

    response = post(admin, f"{page}/test", {}, follow_redirects=True)
    assert "Test message delivered" in visible(response)
    (got,) = receiver.received
    assert got.json["type"] == "mdfledger.test" and got.json["id"] == 0
    assert receiver.bad_signatures == 0
    receiver.status = 500
    response = post(admin, f"{page}/test", {}, follow_redirects=True)
    assert "Test message not delivered" in visible(response) and "answered 500" in visible(response)

    response = post(admin, f"{page}/secret", {})
    rotated = destination_row(world).secret
    assert rotated != made.secret and rotated in text(response)

    with world.sessions() as session:
        mail = engagement.create_destination(
            session, ADMIN, name="Ops", kind="email", email_to="ops@vendor.test"
        ).destination.id
        session.commit()
    response = post(admin, f"/integrations/{mail}/secret", {}, follow_redirects=True)
    assert "only webhooks have a signing secret" in visible(response)
    assert destination_row(world).secret is None


def test_who_may_see_and_change_integrations(world: World, receiver: Receiver) -> None:
    new_webhook(world, receiver)
    made = destination_row(world)
    for role in ("finance", "auditor"):
        client = world.client(role)
        page = client.get(f"/integrations/{made.id}")
        assert page.status_code == 200
        assert "Add a destination" not in text(client.get("/integrations"))
        assert f'action="/integrations/{made.id}"' not in text(page)  # no settings form
        assert post(client, "/integrations/new", {"kind": "email"}).status_code == 403
        assert post(client, f"/integrations/{made.id}/active", {}).status_code == 403
        assert post(client, f"/integrations/{made.id}/test", {}).status_code == 403
    partner = world.client("partner")
    for path in ("/integrations", f"/integrations/{made.id}", "/dead-letters"):
        assert partner.get(path).status_code == 403
    assert world.client("admin").get("/integrations/999").status_code == 404


def make_dead(world: World, receiver: Receiver) -> list[int]:
    """Two dead deliveries (the receiver answered 410 Gone) of ACME and BOLT."""
    with world.sessions() as session:
        engagement.create_destination(
            session, ADMIN, name="PRM", kind="webhook", url=receiver.url, now=NOW
        )
        for partner in (world.acme, world.bolt):
            engagement.emit(
                session, "claim.paid", partner_id=partner, data=claim_data(partner), now=NOW
            )
        session.commit()
    receiver.status = 410
    run = engagement.deliver(world.sessions, {"webhook": WebhookSender()}, now=NOW)
    assert len(run.dead) == 2
    return run.dead


def test_finance_replays_dead_letters(world: World, receiver: Receiver) -> None:
    dead = make_dead(world, receiver)
    finance = world.client("finance")
    page = finance.get("/dead-letters")
    shown = visible(page)
    assert "ACME" in shown and "BOLT" in shown and "answered 410" in shown
    assert len(re.findall(r'name="delivery_id"', text(page))) == 2
    response = post(finance, "/dead-letters/replay", {})
    assert response.status_code == 422
    assert "choose the dead letters to replay" in visible(response)

    receiver.status = 200  # fixed: the embedded default delivers right after the replay
    response = post(finance, "/dead-letters/replay", {"delivery_id": [str(dead[0])]})
    assert response.status_code == 302
    assert "1 dead letter sent again" in visible(finance.get("/dead-letters"))
    with world.sessions() as session:
        states = {d.id: d.state for d in session.scalars(select(Delivery))}
    assert states == {dead[0]: DeliveryState.DELIVERED, dead[1]: DeliveryState.DEAD}
    assert receiver.ids()[-1] == receiver.ids()[0]  # the same event, sent again
    # Not dead any more: replaying it again is refused with the reason.
    response = post(finance, "/dead-letters/replay", {"delivery_id": [str(dead[0])]})
    assert response.status_code == 422
    assert f"delivery {dead[0]}: a delivery that is delivered cannot replay" in visible(response)

    auditor = world.client("auditor")
    assert 'name="delivery_id"' not in text(auditor.get("/dead-letters"))
    assert post(auditor, "/dead-letters/replay", {"delivery_id": [str(dead[1])]}).status_code == (
        403
    )


def test_partners_read_their_own_messages(world: World) -> None:
    with world.sessions() as session:
        engagement.emit(
            session, "funds.expiring", partner_id=world.acme, program_id=world.mdf,
            data={"amount": 45_000, "currency": "USD", "program": "MDF", "period": "FY2026 Q3",
                  "expires_on": "2026-09-30", "activities_fitting": 1,
                  "activity_names": ["Webinar"]},
            now=NOW,
        )  # fmt: skip
        engagement.emit(
            session, "claim.rejected", partner_id=world.bolt,
            data={"reference": "CLM-000099", "reason": "Bolt's secret reason"}, now=NOW,
        )  # fmt: skip
        session.commit()
    page = world.client("partner").get("/messages")
    shown = visible(page)
    assert "450.00 USD of your Q3 MDF expires on 30 September" in shown
    assert "1 activity in the catalog fits: Webinar." in shown
    assert "Next step: Request pre-approval before the funds expire · See your funds" in shown
    assert '<a href="/funds">See your funds</a>' in text(page)
    assert "Bolt" not in shown and "CLM-000099" not in shown
    sneaky = visible(world.client("partner").get(f"/messages?partner={world.bolt}"))
    assert "CLM-000099" not in sneaky and "450.00 USD" in sneaky
    staff = visible(world.client("finance").get("/messages"))
    assert "CLM-000099" in staff and "450.00 USD" in staff and "Bolt Systems" in staff
    assert "Messages" in visible(world.client("partner").get("/messages"))  # in the nav
