"""The Stripe Connect provider against the fake Stripe server: transfers exactly once by
idempotency key, SDK failures sorted into retriable and refused, recovery by transfer group,
reconciliation paging, verified webhooks, and connected-account checks. No database."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import stripe

from mdfledger.payouts.provider import (
    Provider,
    ProviderError,
    ProviderTransfer,
    TransferRequest,
    WebhookRejected,
)
from mdfledger.payouts.stripe_connect import StripeConnect
from tests.fakestripe import FakeStripe, start_fake_stripe

T0 = 1_700_000_000


@pytest.fixture
def fake() -> Iterator[FakeStripe]:
    server = start_fake_stripe(timeout_hold=1.5)
    yield server
    server.stop()


def connect(fake: FakeStripe, **options) -> StripeConnect:
    settings = {"api_base": fake.api_base, "timeout": 1.0, "max_network_retries": 0, **options}
    return StripeConnect(fake.api_key, fake.webhook_secret, **settings)


@pytest.fixture
def provider(fake: FakeStripe) -> StripeConnect:
    return connect(fake)


def request(destination: str, payout_id: int = 1, amount: int = 12_345, **extra) -> TransferRequest:
    fields = {
        "payout_id": payout_id,
        "idempotency_key": f"payout-{payout_id}-attempt-1",
        "group": f"payout-{payout_id}",
        "amount": amount,
        "currency": "USD",
        "destination": destination,
        "description": f"MDF payout {payout_id}",
        "metadata": {"payout_id": str(payout_id), "partner": "ACME", "claims": "CLM-1,CLM-2"},
        **extra,
    }
    return TransferRequest(**fields)


# -- send ------------------------------------------------------------------------------------


def test_is_a_provider(provider: StripeConnect) -> None:
    as_protocol: Provider = provider  # type-checks against the interface
    assert as_protocol.name == "stripe"
    for method in ("send", "find", "transfers", "parse_webhook"):
        assert callable(getattr(as_protocol, method))


def test_send_creates_the_transfer(provider: StripeConnect, fake: FakeStripe) -> None:
    account = fake.create_account()
    fake.set_time(T0)
    sent = provider.send(request(account))
    assert isinstance(sent, ProviderTransfer)
    assert sent.id.startswith("tr_")
    assert (sent.amount, sent.currency, sent.destination) == (12_345, "USD", account)
    assert sent.group == "payout-1"
    assert sent.metadata == {"payout_id": "1", "partner": "ACME", "claims": "CLM-1,CLM-2"}
    assert sent.created == datetime.fromtimestamp(T0, UTC)
    assert sent.amount_reversed == 0

    (on_stripe,) = fake.transfers()
    assert on_stripe["currency"] == "usd"  # lower case on the wire
    assert on_stripe["description"] == "MDF payout 1"
    (call,) = fake.calls("POST", "/v1/transfers")
    assert call.idempotency_key == "payout-1-attempt-1"
    assert call.params["transfer_group"] == "payout-1"


def test_send_again_with_the_same_key_returns_the_same_transfer(
    provider: StripeConnect, fake: FakeStripe
) -> None:
    account = fake.create_account()
    first = provider.send(request(account))
    again = provider.send(request(account))
    assert again == first
    assert len(fake.transfers()) == 1
    assert [c.replayed for c in fake.calls("POST", "/v1/transfers")] == [False, True]


def test_same_key_different_amount_is_refused(provider: StripeConnect, fake) -> None:
    account = fake.create_account()
    provider.send(request(account))
    with pytest.raises(ProviderError) as refused:
        provider.send(request(account, amount=99))
    assert refused.value.retriable is False
    assert refused.value.code == "idempotency_error"
    assert "payout-1-attempt-1" in str(refused.value)
    assert "already used for a different request" in str(refused.value)
    assert len(fake.transfers()) == 1


@pytest.mark.parametrize(
    ("setup", "code", "words"),
    [
        (lambda fake: "acct_unknown", "resource_missing", "No such destination: 'acct_unknown'"),
        (
            lambda fake: fake.create_account(transfers="inactive"),
            "insufficient_capabilities_for_transfer",
            "capabilities enabled: transfers",
        ),
        (
            lambda fake: fake.set_balance("usd", 100) or fake.create_account(),
            "balance_insufficient",
            "insufficient available funds",
        ),
    ],
    ids=["unknown-account", "no-capability", "platform-balance"],
)
def test_refusals_are_not_retriable(provider: StripeConnect, fake, setup, code, words) -> None:
    with pytest.raises(ProviderError) as refused:
        provider.send(request(setup(fake)))
    assert refused.value.retriable is False
    assert refused.value.code == code
    assert words in refused.value.message
    assert fake.transfers() == []


def test_wrong_api_key_is_not_retriable(fake: FakeStripe) -> None:
    wrong = StripeConnect("sk_test_wrong", fake.webhook_secret, api_base=fake.api_base)
    with pytest.raises(ProviderError) as refused:
        wrong.send(request(fake.create_account()))
    assert refused.value.retriable is False
    assert "Invalid API Key" in refused.value.message


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        ("500", "api_error"),
        ("429", "rate_limit"),
        ("timeout", "connection_error"),
        ("timeout_before", "connection_error"),
    ],
)
def test_faults_are_retriable(provider: StripeConnect, fake: FakeStripe, kind, code) -> None:
    account = fake.create_account()
    fake.fail_next("/v1/transfers", kind)
    with pytest.raises(ProviderError) as failed:
        provider.send(request(account))
    assert failed.value.retriable is True
    assert failed.value.code == code
    made = fake.transfers()
    assert len(made) == (1 if kind == "timeout" else 0)  # a timeout may hide a transfer
    # The retry with the same key: exactly one transfer either way.
    sent = provider.send(request(account))
    assert [t["id"] for t in fake.transfers()] == [sent.id]
    if made:
        assert sent.id == made[0]["id"]


def test_timeout_then_find_recovers_the_transfer(provider: StripeConnect, fake) -> None:
    account = fake.create_account()
    fake.fail_next("/v1/transfers", "timeout")
    with pytest.raises(ProviderError) as unknown:
        provider.send(request(account, payout_id=42))
    assert unknown.value.retriable
    assert "outcome is unknown" in unknown.value.message
    found = provider.find("payout-42")
    assert found is not None
    assert (found.amount, found.group, found.metadata["payout_id"]) == (12_345, "payout-42", "42")
    assert found.id == fake.transfers()[0]["id"]


def test_sdk_retries_hide_a_transient_failure(fake: FakeStripe) -> None:
    patient = connect(fake, max_network_retries=2)
    account = fake.create_account()
    fake.fail_next("/v1/transfers", "500")
    sent = patient.send(request(account))
    assert [t["id"] for t in fake.transfers()] == [sent.id]
    first, retry = fake.calls("POST", "/v1/transfers")
    assert first.idempotency_key == retry.idempotency_key == "payout-1-attempt-1"


def test_provider_leaves_the_global_stripe_settings_alone(fake: FakeStripe) -> None:
    before = (stripe.api_key, stripe.api_base, stripe.max_network_retries)
    connect(fake).send(request(fake.create_account()))
    assert (stripe.api_key, stripe.api_base, stripe.max_network_retries) == before


def test_needs_a_key_and_without_a_webhook_secret_rejects_webhooks(fake: FakeStripe) -> None:
    with pytest.raises(ValueError, match="secret key"):
        StripeConnect("", "whsec_x")
    unsigned = StripeConnect(fake.api_key, "", api_base=fake.api_base, timeout=1.0)
    sent = unsigned.send(request(fake.create_account()))
    payload = delivered(fake, "transfer.created")
    with pytest.raises(WebhookRejected, match="no Stripe webhook endpoint secret is configured"):
        unsigned.parse_webhook(payload, fake.sign(payload))
    assert unsigned.find("payout-1") == sent


# -- find and transfers ----------------------------------------------------------------------


def test_find_returns_none_or_the_newest(provider: StripeConnect, fake: FakeStripe) -> None:
    assert provider.find("payout-9") is None
    account = fake.create_account()
    provider.send(request(account, payout_id=9))
    newer = provider.send(request(account, payout_id=9, idempotency_key="payout-9-attempt-2"))
    provider.send(request(account, payout_id=10))
    assert provider.find("payout-9") == newer


def test_find_failure_is_retriable(provider: StripeConnect, fake: FakeStripe) -> None:
    fake.fail_next("/v1/transfers", "500", method="GET")
    with pytest.raises(ProviderError) as failed:
        provider.find("payout-1")
    assert failed.value.retriable


def test_transfers_pages_through_more_than_a_hundred(provider, fake: FakeStripe) -> None:
    account = fake.create_account()
    fake.set_time(T0)
    early = [provider.send(request(account, payout_id=n)).id for n in range(1, 41)]
    fake.advance(3600)
    late = [provider.send(request(account, payout_id=n)).id for n in range(41, 246)]

    listed = list(provider.transfers())
    assert [t.id for t in listed] == (early + late)[::-1]  # newest first, each once
    assert all(isinstance(t, ProviderTransfer) and t.currency == "USD" for t in listed)
    assert len(fake.calls("GET", "/v1/transfers")) == 3  # pages of 100

    since = datetime.fromtimestamp(T0 + 3600, UTC)
    recent = list(provider.transfers(since=since))
    assert [t.id for t in recent] == late[::-1]
    pages = fake.calls("GET", "/v1/transfers")[3:]
    assert len(pages) == 3
    assert all(page.params["created"] == {"gte": str(T0 + 3600)} for page in pages)
    assert pages[1].params["starting_after"] == recent[99].id


def test_transfers_refuses_naive_times(provider: StripeConnect) -> None:
    with pytest.raises(ValueError, match="naive"):
        list(provider.transfers(since=datetime(2026, 1, 1)))  # noqa: DTZ001


def test_transfers_failure_midway_is_retriable(provider, fake: FakeStripe) -> None:
    account = fake.create_account()
    for n in range(1, 103):
        provider.send(request(account, payout_id=n))
    listing = provider.transfers()
    assert len([next(listing) for _ in range(100)]) == 100
    fake.fail_next("/v1/transfers", "429", method="GET")
    with pytest.raises(ProviderError) as failed:
        next(listing)
    assert failed.value.retriable and failed.value.code == "rate_limit"


# -- webhooks --------------------------------------------------------------------------------


def delivered(fake: FakeStripe, type: str) -> bytes:
    (event,) = fake.events(type)
    return fake.event_payload(event["id"])


def test_parse_webhook_accepts_a_signed_event(provider: StripeConnect, fake) -> None:
    sent = provider.send(request(fake.create_account()))
    payload = delivered(fake, "transfer.created")
    event = provider.parse_webhook(payload, fake.sign(payload))
    assert event.id.startswith("evt_")
    assert event.type == "transfer.created"
    assert event.livemode is False
    assert event.transfer == sent
    assert event.created.tzinfo is UTC


def test_parse_webhook_reads_reversals(provider: StripeConnect, fake) -> None:
    sent = provider.send(request(fake.create_account(), amount=1000))
    fake.reverse(sent.id, 250)
    payload = delivered(fake, "transfer.reversed")
    event = provider.parse_webhook(payload, fake.sign(payload))
    assert event.type == "transfer.reversed"
    assert event.transfer is not None
    assert (event.transfer.id, event.transfer.amount_reversed) == (sent.id, 250)


def test_parse_webhook_of_other_objects_has_no_transfer(provider: StripeConnect, fake) -> None:
    payload = json.dumps(
        {
            "id": "evt_acct",
            "object": "event",
            "type": "account.updated",
            "created": T0,
            "livemode": True,
            "data": {"object": {"id": "acct_1", "object": "account"}},
        }
    ).encode()
    event = provider.parse_webhook(payload, fake.sign(payload))
    assert (event.type, event.transfer, event.livemode) == ("account.updated", None, True)


def test_deliveries_through_the_fake_parse(provider: StripeConnect, fake: FakeStripe) -> None:
    events = []
    fake.webhook_handler = lambda body, headers: (
        events.append(provider.parse_webhook(body, headers["Stripe-Signature"])) or 200
    )
    fake.fail_next("/v1/transfers", "webhook_thrice")
    sent = provider.send(request(fake.create_account()))
    fake.settle()
    assert len(events) == 3
    assert len({e.id for e in events}) == 1  # one event, delivered three times
    assert all(e.transfer == sent for e in events)


@pytest.mark.parametrize(
    ("signature", "reason"),
    [
        (None, "no Stripe-Signature header"),
        ("", "no Stripe-Signature header"),
        ("garbage", "malformed Stripe-Signature header: no timestamp"),
        ("t=abc,v1=00", "malformed Stripe-Signature header: no timestamp"),
        (f"t={int(time.time())}", "malformed Stripe-Signature header: no v1 signature"),
        (f"t={int(time.time())},v1=deadbeef", "signature does not match"),
    ],
)
def test_parse_webhook_rejects_bad_headers(provider, fake, signature, reason) -> None:
    provider.send(request(fake.create_account()))
    payload = delivered(fake, "transfer.created")
    with pytest.raises(WebhookRejected) as rejected:
        provider.parse_webhook(payload, signature)
    assert str(rejected.value) == reason


def test_parse_webhook_rejects_forged_and_tampered(provider: StripeConnect, fake) -> None:
    provider.send(request(fake.create_account()))
    payload = delivered(fake, "transfer.created")
    forged = fake.sign(payload, secret="whsec_attacker")
    with pytest.raises(WebhookRejected, match="signature does not match"):
        provider.parse_webhook(payload, forged)
    tampered = payload.replace(b'"amount": 12345', b'"amount": 99999')
    assert tampered != payload
    with pytest.raises(WebhookRejected, match="signature does not match"):
        provider.parse_webhook(tampered, fake.sign(payload))


def test_parse_webhook_tolerance_both_ways(fake: FakeStripe) -> None:
    now = datetime.fromtimestamp(T0, UTC)
    provider = connect(fake, clock=lambda: now)
    payload = b'{"id": "evt_1", "object": "event", "type": "ping", "created": 1700000000}'
    assert provider.parse_webhook(payload, fake.sign(payload, T0 - 300)).id == "evt_1"
    assert provider.parse_webhook(payload, fake.sign(payload, T0 + 300)).id == "evt_1"
    with pytest.raises(WebhookRejected) as stale:
        provider.parse_webhook(payload, fake.sign(payload, T0 - 301))
    assert str(stale.value) == "timestamp outside the tolerance: signed 301 s ago, 300 s allowed"
    with pytest.raises(WebhookRejected) as future:
        provider.parse_webhook(payload, fake.sign(payload, T0 + 3600))
    assert "timestamp outside the tolerance" in str(future.value)
    assert "in the future" in str(future.value)


def test_stale_redelivery_from_the_fake_is_rejected(provider: StripeConnect, fake) -> None:
    provider.send(request(fake.create_account()))
    (event,) = fake.events()
    rejected = []

    def receive(body: bytes, headers: dict[str, str]) -> int:
        try:
            provider.parse_webhook(body, headers["Stripe-Signature"])
        except WebhookRejected as exc:
            rejected.append(str(exc))
            return 400
        return 200

    fake.webhook_handler = receive
    (delivery,) = fake.deliver(event["id"], timestamp=int(time.time()) - 3600)
    assert delivery.status == 400
    assert rejected[0].startswith("timestamp outside the tolerance")


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff\xfe not utf-8", "the payload is not UTF-8 text"),
        (b"<html>not json</html>", "the payload is not JSON"),
        (b"[1, 2, 3]", "the payload is not a Stripe event"),
        (b'{"id": "x", "object": "charge"}', "the payload is not a Stripe event"),
        (
            b'{"id": "evt_1", "object": "event", "type": "transfer.created", "created": 1, '
            b'"data": {"object": {"object": "transfer", "id": "tr_1"}}}',
            "the event's transfer is malformed",
        ),
    ],
    ids=["binary", "html", "list", "not-event", "bad-transfer"],
)
def test_parse_webhook_rejects_garbage(provider: StripeConnect, fake, payload, reason) -> None:
    with pytest.raises(WebhookRejected) as rejected:
        provider.parse_webhook(payload, fake.sign(payload))
    assert str(rejected.value) == reason


# -- connected accounts ----------------------------------------------------------------------


def test_account_reasons(provider: StripeConnect, fake: FakeStripe) -> None:
    assert provider.account(fake.create_account()) is None
    assert provider.account("acct_missing") == "no such account acct_missing"
    inactive = fake.create_account(transfers="inactive")
    assert provider.account(inactive) == "transfers capability is inactive"
    pending = fake.create_account(transfers="pending")
    assert provider.account(pending) == "transfers capability is pending"
    never = fake.create_account(transfers=False)
    assert provider.account(never) == "transfers capability is not requested"
    paying = fake.create_account(transfers="inactive", payouts_enabled=True)
    assert provider.account(paying) is None
    assert provider.account("ba_123") == "not a Stripe connected account id: 'ba_123'"


def test_account_follows_capability_changes(provider: StripeConnect, fake) -> None:
    account = fake.create_account()
    fake.set_capability(account, "transfers", "inactive")
    assert provider.account(account) == "transfers capability is inactive"
    fake.set_capability(account, "transfers", "active")
    assert provider.account(account) is None


def test_account_lookup_failure_is_retriable(provider: StripeConnect, fake) -> None:
    fake.fail_next("/v1/accounts", "500")
    with pytest.raises(ProviderError) as failed:
        provider.account(fake.create_account())
    assert failed.value.retriable
