"""Pure rules: the retry schedule, the delivery state machine, event-type filters, webhook
signatures; and the senders' handling of answers, with stub clients."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mdfledger.engagement import rules
from mdfledger.engagement.delivery import DeliveryFailed
from mdfledger.engagement.rules import (
    BACKOFF,
    RETRY_WINDOW,
    DeliveryEvent,
    Envelope,
    Target,
    after_failure,
    schedule,
    sign,
    verify_signature,
)
from mdfledger.engagement.senders import EventBridgeSender, SnsSender, _sns_subject
from mdfledger.errors import ValidationError

T0 = datetime(2026, 8, 15, 12, 0, tzinfo=UTC)
M, H = timedelta(minutes=1), timedelta(hours=1)


def test_the_schedule() -> None:
    assert BACKOFF == (1 * M, 5 * M, 30 * M, 2 * H, 6 * H, 12 * H)
    assert schedule() == [
        timedelta(0), 1 * M, 6 * M, 36 * M, 2 * H + 36 * M, 8 * H + 36 * M, 20 * H + 36 * M,
        32 * H + 36 * M,
    ]  # fmt: skip
    # A destination down for a whole day is tried again after it is back, within the window.
    assert any(timedelta(hours=24) < at <= RETRY_WINDOW for at in schedule())


@settings(max_examples=200, deadline=None)
@given(
    attempts=st.integers(1, 40),
    elapsed=st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=72)),
)
def test_a_retry_never_falls_outside_the_window(attempts: int, elapsed: timedelta) -> None:
    verdict = after_failure(attempts=attempts, window_start=T0, now=T0 + elapsed)
    if verdict.event == DeliveryEvent.FAIL:
        assert verdict.next_attempt_at is not None
        assert verdict.next_attempt_at - T0 <= RETRY_WINDOW
        assert verdict.next_attempt_at > T0 + elapsed
    else:
        assert verdict.event == DeliveryEvent.GIVE_UP
        assert T0 + elapsed + rules.backoff(attempts) - T0 > RETRY_WINDOW


def test_refused_for_good_gives_up_at_once() -> None:
    verdict = after_failure(attempts=1, window_start=T0, now=T0, retriable=False)
    assert verdict == rules.Verdict(DeliveryEvent.GIVE_UP, None)


def test_the_state_machine() -> None:
    assert rules.next_state("pending", "succeed") == "delivered"
    assert rules.next_state("pending", "fail") == "pending"
    assert rules.next_state("pending", "give_up") == "dead"
    assert rules.next_state("dead", "replay") == "pending"
    with pytest.raises(rules.InvalidTransition, match=r"delivered cannot replay$"):
        rules.next_state("delivered", "replay")
    with pytest.raises(rules.InvalidTransition, match="it can be: replay"):
        rules.next_state("dead", "succeed")


@pytest.mark.parametrize(
    ("given_", "stored"),
    [
        ("*", "*"),
        (["*"], "*"),
        ("claim.paid, claim.approved", "claim.approved,claim.paid"),
        (["claim.paid", "claim.paid"], "claim.paid"),
    ],
)
def test_event_type_filters(given_: object, stored: str) -> None:
    assert rules.parse_event_types(given_) == stored
    assert rules.matches(stored, "claim.paid")
    assert rules.matches(stored, "funds.expired") == (stored == "*")


@pytest.mark.parametrize("bad", [[], "", ["*", "claim.paid"], ["claim.lost"], 7, [None]])
def test_bad_event_type_filters(bad: object) -> None:
    with pytest.raises(ValidationError) as caught:
        rules.parse_event_types(bad)
    assert caught.value.details["field"] == "event_types"


def test_signatures() -> None:
    body = b'{"id":1}'
    now = int(T0.timestamp())
    header = sign("whsec_a", body, now)
    assert header.startswith(f"t={now},v1=")
    assert verify_signature("whsec_a", body, header, now=T0)
    assert verify_signature("whsec_a", body.decode(), header, now=T0 + timedelta(seconds=299))
    assert not verify_signature("whsec_a", body, header, now=T0 + timedelta(seconds=301))
    assert not verify_signature("whsec_a", body, header, now=T0 - timedelta(seconds=301))
    assert not verify_signature("whsec_b", body, header, now=T0)
    assert not verify_signature("whsec_a", b'{"id":2}', header, now=T0)
    # A receiver rotating secrets: any v1 entry may match.
    other = sign("whsec_b", body, now).partition(",")[2]
    assert verify_signature("whsec_b", body, f"{header},{other}", now=T0)
    for malformed in ("", "v1=abc", f"t={now}", "t=x,v1=abc", None, "garbage"):
        assert not verify_signature("whsec_a", body, malformed, now=T0)  # type: ignore[arg-type]


def test_secrets_are_masked() -> None:
    secret = rules.new_secret()
    assert secret.startswith("whsec_") and len(secret) >= 40
    assert rules.mask_secret(secret) == f"whsec_…{secret[-4:]}"
    assert rules.mask_secret(None) == ""
    assert rules.new_secret() != secret


ENVELOPE = Envelope(
    7, "claim.paid", T0, 3, None, {"amount": 1}, "Ünïcode subject\nwith a break " * 6, "t", "a"
)


class StubClients:
    def __init__(self, client: Any) -> None:
        self.client = client

    def get(self, service: str, region: str | None) -> Any:
        return self.client


def test_eventbridge_failed_entries_are_failures() -> None:
    class Client:
        def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
            self.entries = Entries
            return {
                "FailedEntryCount": 1,
                "Entries": [{"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"}],
            }

    client = Client()
    sender = EventBridgeSender(StubClients(client))  # type: ignore[arg-type]
    with pytest.raises(DeliveryFailed) as caught:
        sender.send(Target(1, "bus", "eventbridge", event_bus="partners"), ENVELOPE)
    assert caught.value.detail == "EventBridge refused the event: ThrottlingException slow down"
    assert caught.value.retriable
    (entry,) = client.entries
    assert (entry["Source"], entry["DetailType"], entry["EventBusName"]) == (
        "mdfledger", "claim.paid", "partners",
    )  # fmt: skip


def test_sns_subjects_fit_sns() -> None:
    subject = _sns_subject(ENVELOPE.subject)
    assert len(subject) <= 100 and subject.isascii() and "\n" not in subject
    assert _sns_subject("   ") == "mdfledger event"

    class Client:
        def publish(self, **request: Any) -> None:
            self.request = request

    client = Client()
    SnsSender(StubClients(client)).send(  # type: ignore[arg-type]
        Target(1, "t", "sns", topic_arn="arn:aws:sns:eu-west-1:123456789012:t.fifo"), ENVELOPE
    )
    assert client.request["MessageGroupId"] == "partner-3"
    assert client.request["MessageDeduplicationId"] == "event-7"
    assert client.request["Subject"] == subject
