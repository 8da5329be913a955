"""SNS and EventBridge destinations on moto's server (loopback), read back through SQS."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from sqlalchemy.orm import Session, sessionmaker

from mdfledger import engagement
from mdfledger.actor import Actor
from mdfledger.config import Settings
from mdfledger.engagement.senders import senders_from_settings
from tests import storage_server
from tests.conftest import skip_or_fail
from tests.engagement.conftest import NOW, World, claim_data

ADMIN = Actor.system("test-admin")
REGION = "eu-west-1"
ACCOUNT = "123456789012"  # moto's default account


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    try:
        server = storage_server.start(tmp_path_factory.mktemp("moto-engagement"))
    except storage_server.MotoUnavailable as exc:
        yield str(exc)
        return
    yield server
    server.stop()


@pytest.fixture
def aws(moto: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    if isinstance(moto, str):
        skip_or_fail(moto)
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_SESSION_TOKEN", "testing"),
    ):  # fmt: skip
        monkeypatch.setenv(name, value)
    return moto


def client(aws: Any, service: str) -> Any:
    return boto3.client(service, region_name=REGION, endpoint_url=aws.endpoint_url)


def unique(name: str) -> str:
    """Each test its own topics, queues and buses: the server lives for the module, and FIFO
    deduplication would swallow the other backend's run of the same test."""
    stem, dot, suffix = name.partition(".")
    return f"{stem}-{uuid.uuid4().hex[:8]}{dot}{suffix}"


def queue(aws: Any, name: str, **attributes: str) -> tuple[str, str]:
    sqs = client(aws, "sqs")
    url = sqs.create_queue(QueueName=unique(name), Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn


def drain(aws: Any, url: str, expected: int) -> list[dict[str, Any]]:
    sqs, found = client(aws, "sqs"), []
    for _ in range(20):
        answer = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, AttributeNames=["All"]
        )
        found.extend(answer.get("Messages", []))
        if len(found) >= expected:
            break
    return found


def senders(aws: Any) -> engagement.Senders:
    settings = Settings.from_env()
    settings = type(settings)(
        **{**settings.__dict__, "aws_region": REGION, "aws_endpoint_url": aws.endpoint_url}
    )
    return senders_from_settings(settings)


def test_sns_topic(
    aws: Any, session: Session, session_factory: sessionmaker[Session], world: World
) -> None:
    topic = client(aws, "sns").create_topic(Name=unique("partner-events"))["TopicArn"]
    url, arn = queue(aws, "partner-events-q")
    client(aws, "sns").subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    engagement.create_destination(
        session, ADMIN, name="SNS", kind="sns", topic_arn=topic, event_types="claim.approved",
        now=NOW,
    )  # fmt: skip
    long_title = "A claim with a very long title " * 6
    event = engagement.emit(
        session, "claim.approved", partner_id=world.acme.id,
        data=claim_data(7, approved=150_000, title=long_title), now=NOW,
    )  # fmt: skip
    assert event is not None
    session.commit()

    run = engagement.deliver(session_factory, senders(aws), now=NOW)

    assert len(run.delivered) == 1
    (message,) = drain(aws, url, 1)
    envelope = json.loads(message["Body"])  # SNS's wrapper around what was published
    assert envelope["TopicArn"] == topic
    assert len(envelope["Subject"]) <= 100 and envelope["Subject"].startswith("CLM-000007")
    body = json.loads(envelope["Message"])
    assert body["id"] == event.id and body["type"] == "claim.approved"
    assert body["data"]["approved"] == 150_000
    assert body["message"]["subject"] == event.subject
    attributes = envelope["MessageAttributes"]
    assert attributes["type"]["Value"] == "claim.approved"
    assert attributes["partner_id"]["Value"] == str(world.acme.id)


def test_sns_fifo_topic_groups_by_partner(
    aws: Any, session: Session, session_factory: sessionmaker[Session], world: World
) -> None:
    sns = client(aws, "sns")
    topic = sns.create_topic(Name=unique("partner-events.fifo"), Attributes={"FifoTopic": "true"})[
        "TopicArn"
    ]
    url, arn = queue(aws, "partner-events-q.fifo", FifoQueue="true")
    sns.subscribe(
        TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"}
    )
    engagement.create_destination(session, ADMIN, name="FIFO", kind="sns", topic_arn=topic)
    ids = [
        engagement.emit(session, "claim.paid", partner_id=p, data=claim_data(n)).id  # type: ignore[union-attr]
        for n, p in enumerate([world.acme.id, world.bolt.id, world.acme.id])
    ]
    session.commit()
    run = engagement.deliver(session_factory, senders(aws))
    assert len(run.delivered) == 3
    messages = drain(aws, url, 3)
    assert sorted(json.loads(m["Body"])["id"] for m in messages) == sorted(ids)
    groups = {json.loads(m["Body"])["id"]: m["Attributes"]["MessageGroupId"] for m in messages}
    assert groups[ids[0]] == groups[ids[2]] == f"partner-{world.acme.id}"
    assert groups[ids[1]] == f"partner-{world.bolt.id}"


def test_sns_topic_missing_is_retried_with_the_reason(
    aws: Any, session: Session, session_factory: sessionmaker[Session], world: World
) -> None:
    missing = f"arn:aws:sns:{REGION}:{ACCOUNT}:no-such-topic"
    engagement.create_destination(session, ADMIN, name="gone", kind="sns", topic_arn=missing)
    engagement.emit(session, "claim.paid", partner_id=world.acme.id, data={}, now=NOW)
    session.commit()
    run = engagement.deliver(session_factory, senders(aws), now=NOW)
    assert len(run.retrying) == 1
    (view,) = engagement.deliveries(session, ADMIN)
    assert "SNS publish" in (view.delivery.last_error or "")
    assert "NotFound" in (view.delivery.last_error or "")


def test_eventbridge_bus_to_sqs(
    aws: Any, session: Session, session_factory: sessionmaker[Session], world: World
) -> None:
    events = client(aws, "events")
    bus = unique("partners")
    events.create_event_bus(Name=bus)
    url, arn = queue(aws, "bus-target")
    events.put_rule(
        Name="from-mdfledger", EventBusName=bus,
        EventPattern=json.dumps({"source": ["mdfledger"]}),
    )  # fmt: skip
    events.put_targets(Rule="from-mdfledger", EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])
    engagement.create_destination(
        session, ADMIN, name="Bus", kind="eventbridge", event_bus=bus, region=REGION
    )
    event = engagement.emit(
        session, "funds.expiring", partner_id=world.bolt.id, program_id=world.mdf.id,
        data={"amount": 45_000, "currency": "USD", "expires_on": "2026-09-30"}, now=NOW,
    )  # fmt: skip
    assert event is not None
    session.commit()

    run = engagement.deliver(session_factory, senders(aws), now=NOW)

    assert len(run.delivered) == 1
    (message,) = drain(aws, url, 1)
    got = json.loads(message["Body"])
    assert got["source"] == "mdfledger" and got["detail-type"] == "funds.expiring"
    assert got["detail"]["id"] == event.id
    assert got["detail"]["program_id"] == world.mdf.id
    assert got["detail"]["message"]["subject"] == "450.00 USD of your funds expires on 30 September"


def test_eventbridge_refusal_is_recorded(
    aws: Any, session: Session, session_factory: sessionmaker[Session], world: World
) -> None:
    engagement.create_destination(
        session, ADMIN, name="No bus", kind="eventbridge", event_bus="never-made"
    )
    engagement.emit(session, "claim.paid", partner_id=world.acme.id, data={}, now=NOW)
    session.commit()
    run = engagement.deliver(session_factory, senders(aws), now=NOW)
    assert len(run.retrying) == 1
    (view,) = engagement.deliveries(session, ADMIN)
    assert view.delivery.last_error == (
        "EventBridge put_events on never-made: ResourceNotFoundException"
        " Event bus never-made does not exist."
    )
