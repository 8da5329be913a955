"""`mdfledger events deliver|dead|replay`."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from mdfledger import create_app, engagement
from mdfledger.actor import Actor
from mdfledger.engagement.senders import WebhookSender
from tests.engagement.conftest import World, claim_data
from tests.engagement.receiver import Receiver

ADMIN = Actor.system("test-admin")


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Flask:
    app = create_app({"database_url": database_url, "env": "test", "instance_path": tmp_path})
    app.extensions[engagement.APP_KEY]["webhook"] = WebhookSender(timeout=5)
    return app


def test_deliver_list_dead_and_replay(
    app: Flask, session: Session, world: World, receiver: Receiver
) -> None:
    engagement.create_destination(session, ADMIN, name="Acme CRM", kind="webhook", url=receiver.url)
    event = engagement.emit(session, "claim.paid", partner_id=world.acme.id, data=claim_data(3))
    assert event is not None
    session.commit()
    runner = app.test_cli_runner()
    assert runner.invoke(args=["events", "dead"]).output == "no dead letters\n"

    receiver.status = 410  # gone for good: a dead letter at once
    result = runner.invoke(args=["events", "deliver"])
    assert result.exit_code == 0, result.output
    assert result.output == "0 delivered, 0 to retry, 1 given up\n"
    listed = runner.invoke(args=["events", "dead"])
    (line,) = listed.output.splitlines()
    delivery_id = line.split("\t")[0]
    assert f"event {event.id} claim.paid\tACME\tAcme CRM\t1 attempt(s)" in line
    assert "answered 410" in line

    receiver.status = 200
    result = runner.invoke(args=["events", "replay", delivery_id])
    assert result.exit_code == 0, result.output
    assert "1 dead letter(s) back in the queue" in result.output
    # The embedded default delivered it right after the replay committed.
    assert receiver.ids()[-1] == event.id
    assert runner.invoke(args=["events", "dead"]).output == "no dead letters\n"
    refused = runner.invoke(args=["events", "replay", delivery_id, "999"])
    assert refused.exit_code != 0 and "delivery 999 not found" in refused.output
