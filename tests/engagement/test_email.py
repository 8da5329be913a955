"""E-mail destinations through a local SMTP server (aiosmtpd on 127.0.0.1)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from email import message_from_bytes, policy
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from mdfledger import engagement
from mdfledger.actor import Actor
from mdfledger.engagement.rules import BACKOFF
from mdfledger.engagement.senders import EmailSender, SmtpConfig
from mdfledger.errors import ValidationError
from tests.engagement.conftest import NOW, World

ADMIN = Actor.system("test-admin")


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Any]] = []
        self.refuse: str | None = None  # an SMTP reply to answer every message with

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse:
            return self.refuse
        self.messages.append(
            (list(envelope.rcpt_tos), message_from_bytes(envelope.content, policy=policy.default))
        )
        return "250 OK"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def senders(port: int) -> engagement.Senders:
    return {
        "email": EmailSender(SmtpConfig(host="127.0.0.1", port=port, mail_from="mdf@vendor.test"))
    }


EXPIRING = {
    "amount": 45_000, "currency": "USD", "program": "MDF", "period": "FY2026 Q3",
    "expires_on": "2026-09-30", "days_left": 12, "activities_fitting": 2,
    "activity_names": ["Webinar", "Trade show"],
}  # fmt: skip


def test_partner_contacts_get_the_message(
    smtp: tuple[Inbox, int],
    session: Session,
    session_factory: sessionmaker[Session],
    world: World,
) -> None:
    inbox, port = smtp
    engagement.create_destination(
        session, ADMIN, name="Acme mail", kind="email", partner_id=world.acme.id, now=NOW
    )
    event = engagement.emit(
        session, "funds.expiring", partner_id=world.acme.id, data=EXPIRING, now=NOW
    )
    assert event is not None
    session.commit()

    run = engagement.deliver(session_factory, senders(port), now=NOW)

    assert len(run.delivered) == 1
    ((recipients, message),) = inbox.messages
    assert recipients == ["sam@acme.test", "pat@acme.test"]  # the primary contact first
    assert message["To"] == "sam@acme.test, pat@acme.test"
    assert message["From"] == "mdf@vendor.test"
    assert message["Subject"] == "450.00 USD of your Q3 MDF expires on 30 September"
    assert message["Mdfledger-Event-Id"] == str(event.id)
    assert message["Message-ID"].endswith(f".event-{event.id}@vendor.test>")
    body = message.get_content()
    assert "2 activities in the catalog fit: Webinar, Trade show." in body
    assert "What to do next: Request pre-approval before the funds expire" in body


def test_vendor_wide_mail_goes_to_its_addresses(
    smtp: tuple[Inbox, int],
    session: Session,
    session_factory: sessionmaker[Session],
    world: World,
) -> None:
    inbox, port = smtp
    with pytest.raises(ValidationError, match="needs addresses"):
        engagement.create_destination(session, ADMIN, name="Ops", kind="email")
    with pytest.raises(ValidationError, match="not an e-mail address"):
        engagement.create_destination(
            session, ADMIN, name="Ops", kind="email", email_to="ops@vendor.test, nobody"
        )
    engagement.create_destination(
        session, ADMIN, name="Ops", kind="email", email_to="Ops@Vendor.test; cm@vendor.test",
        event_types=["claim.rejected"],
    )  # fmt: skip
    engagement.emit(session, "claim.paid", partner_id=world.bolt.id, data={}, now=NOW)  # not wanted
    engagement.emit(
        session, "claim.rejected", partner_id=world.bolt.id,
        data={"reference": "CLM-000003", "reason": "no proof"}, now=NOW,
    )  # fmt: skip
    session.commit()
    engagement.deliver(session_factory, senders(port), now=NOW)
    ((recipients, message),) = inbox.messages
    assert recipients == ["ops@vendor.test", "cm@vendor.test"]
    assert message["Subject"] == "CLM-000003 was rejected: no proof"


def test_mail_server_trouble_is_retried_with_the_reason(
    smtp: tuple[Inbox, int],
    session: Session,
    session_factory: sessionmaker[Session],
    world: World,
) -> None:
    inbox, port = smtp
    engagement.create_destination(
        session, ADMIN, name="Bolt", kind="email", partner_id=world.bolt.id
    )
    engagement.create_destination(
        session, ADMIN, name="Ops", kind="email", email_to=["ops@vendor.test"]
    )
    engagement.emit(session, "claim.paid", partner_id=world.bolt.id, data={}, now=NOW)
    session.commit()
    inbox.refuse = "451 Try again later"
    run = engagement.deliver(session_factory, senders(port), now=NOW)
    assert len(run.retrying) == 2
    errors = {
        v.destination.name: v.delivery.last_error for v in engagement.deliveries(session, ADMIN)
    }
    session.commit()
    assert errors["Bolt"] == "nobody to e-mail: the partner has no contacts"
    assert errors["Ops"] == "the mail server answered 451 Try again later"

    closed = free_port()  # nobody listens there
    later = NOW + BACKOFF[0]
    run = engagement.deliver(session_factory, senders(closed), now=later)
    assert len(run.retrying) == 2
    (ops,) = [v for v in engagement.deliveries(session, ADMIN) if v.destination.name == "Ops"]
    assert "could not send mail through 127.0.0.1" in (ops.delivery.last_error or "")
    session.commit()
    unset = {"email": EmailSender(SmtpConfig())}
    engagement.deliver(session_factory, unset, now=later + BACKOFF[1])
    session.expire_all()
    (ops,) = [v for v in engagement.deliveries(session, ADMIN) if v.destination.name == "Ops"]
    assert ops.delivery.last_error == "no mail server is set up (MDFLEDGER_SMTP_HOST)"
