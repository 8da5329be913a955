"""The fake Stripe server, driven by the real stripe SDK: if the SDK is happy with it, the
payout provider's tests against it mean something."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import stripe
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakestripe import FakeStripe, start_fake_stripe


@pytest.fixture
def fake() -> Iterator[FakeStripe]:
    server = start_fake_stripe(timeout_hold=1.5)
    yield server
    server.stop()


@pytest.fixture
def client(fake: FakeStripe) -> stripe.StripeClient:
    return fake.client(timeout=1.0)


class Receiver:
    """A webhook endpoint on loopback that keeps what it was sent."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, str | None]] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((body, self.headers.get("Stripe-Signature")))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/stripe"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def events(self) -> list[dict]:
        return [json.loads(body) for body, _ in self.received]


@pytest.fixture
def receiver(fake: FakeStripe) -> Iterator[Receiver]:
    endpoint = Receiver()
    fake.webhook_url = endpoint.url
    yield endpoint
    endpoint.stop()


def transfer_params(destination: str, amount: int = 1500, **extra: object) -> dict:
    return {"amount": amount, "currency": "usd", "destination": destination, **extra}


# -- accounts and authentication -------------------------------------------------------------


def test_accounts_created_and_retrieved(client: stripe.StripeClient, fake: FakeStripe) -> None:
    made = client.v1.accounts.create(
        params={
            "type": "express",
            "country": "DE",
            "email": "payee@example.com",
            "capabilities": {"transfers": {"requested": True}},
            "metadata": {"partner": "ACME"},
        }
    )
    assert made.id.startswith("acct_")
    got = client.v1.accounts.retrieve(made.id)
    assert got.capabilities.transfers == "active"
    assert got.payouts_enabled is True
    assert (got.country, got.email, got.type) == ("DE", "payee@example.com", "express")
    assert got.metadata.to_dict() == {"partner": "ACME"}

    plain = client.v1.accounts.create(params={"type": "custom"})
    assert client.v1.accounts.retrieve(plain.id).capabilities.to_dict() == {}
    inactive = fake.create_account(transfers="inactive")
    assert client.v1.accounts.retrieve(inactive).capabilities.transfers == "inactive"

    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.accounts.retrieve("acct_doesnotexist")
    assert missing.value.http_status == 404
    assert missing.value.code == "resource_missing"
    assert missing.value.user_message == "No such account: 'acct_doesnotexist'"


def test_wrong_api_key_is_refused(fake: FakeStripe) -> None:
    intruder = fake.client(api_key="sk_test_someone_else")
    with pytest.raises(stripe.AuthenticationError) as refused:
        intruder.v1.transfers.list()
    assert refused.value.http_status == 401
    assert "Invalid API Key provided" in refused.value.user_message
    assert fake.calls("GET", "/v1/transfers")[0].status == 401


def test_every_answer_carries_a_request_id(client: stripe.StripeClient) -> None:
    listed = client.v1.transfers.list()
    assert listed.last_response.request_id.startswith("req_")
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.transfers.retrieve("tr_nope")
    assert missing.value.request_id.startswith("req_")


# -- transfers -------------------------------------------------------------------------------


def test_transfer_moves_platform_balance_and_records_an_event(
    client: stripe.StripeClient, fake: FakeStripe
) -> None:
    account = fake.create_account()
    before = fake.balance("usd")
    made = client.v1.transfers.create(
        params=transfer_params(
            account,
            transfer_group="payout-7",
            description="Payout 7",
            metadata={"payout_id": "7", "claims": "CLM-1,CLM-2"},
        ),
        options={"idempotency_key": "payout-7-1"},
    )
    assert made.id.startswith("tr_")
    assert (made.amount, made.currency, made.destination) == (1500, "usd", account)
    assert (made.transfer_group, made.description) == ("payout-7", "Payout 7")
    assert made.metadata.to_dict() == {"payout_id": "7", "claims": "CLM-1,CLM-2"}
    assert (made.amount_reversed, made.reversed, made.livemode) == (0, False, False)
    assert fake.balance("usd") == before - 1500
    assert client.v1.transfers.retrieve(made.id).to_dict() == made.to_dict()

    (event,) = fake.events()
    assert event["type"] == "transfer.created"
    assert event["data"]["object"]["id"] == made.id
    assert event["request"]["idempotency_key"] == "payout-7-1"
    assert fake.calls("POST", "/v1/transfers")[0].idempotency_key == "payout-7-1"


@pytest.mark.parametrize(
    ("change", "code", "param", "message"),
    [
        ({"amount": 0}, "parameter_invalid_integer", "amount", "greater than or equal to 1"),
        ({"amount": "12.5"}, "parameter_invalid_integer", "amount", "Invalid integer: 12.5"),
        ({"currency": "xyz"}, None, "currency", "Invalid currency: xyz"),
        ({"destination": "acct_missing"}, "resource_missing", "destination", "No such dest"),
        ({"destination": None}, "parameter_missing", "destination", "Missing required param"),
        ({"colour": "red"}, "parameter_unknown", "colour", "Received unknown parameter: colour"),
    ],
)
def test_invalid_transfers_are_refused(
    client: stripe.StripeClient, fake: FakeStripe, change: dict, code, param, message
) -> None:
    params = {**transfer_params(fake.create_account()), **change}
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.transfers.create(params=params)
    assert refused.value.http_status == 400
    assert (refused.value.code, refused.value.param) == (code, param)
    assert message in refused.value.user_message
    assert fake.transfers() == [] and fake.events() == []


def test_destination_without_transfers_capability_is_refused(
    client: stripe.StripeClient, fake: FakeStripe
) -> None:
    for status in (False, "inactive", "pending"):
        account = fake.create_account(transfers=status)
        with pytest.raises(stripe.InvalidRequestError) as refused:
            client.v1.transfers.create(params=transfer_params(account))
        assert refused.value.code == "insufficient_capabilities_for_transfer"
    assert fake.transfers() == []


def test_platform_balance_can_run_out(client: stripe.StripeClient, fake: FakeStripe) -> None:
    account = fake.create_account()
    fake.set_balance("eur", 1000)
    client.v1.transfers.create(params={**transfer_params(account, 600), "currency": "eur"})
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.transfers.create(
            params={**transfer_params(account, 600), "currency": "eur"},
            options={"idempotency_key": "second"},
        )
    assert refused.value.code == "balance_insufficient"
    assert fake.balance("eur") == 400
    # A refusal is not kept against the key: the same call succeeds once there is money.
    fake.set_balance("eur", 5000)
    again = client.v1.transfers.create(
        params={**transfer_params(account, 600), "currency": "eur"},
        options={"idempotency_key": "second"},
    )
    assert again.last_response.headers.get("Idempotent-Replayed") is None
    assert fake.balance("eur") == 4400
    assert len(fake.transfers(currency="eur")) == 2


# -- idempotency ------------------------------------------------------------------------------


def test_same_key_same_params_replays_the_first_answer(
    client: stripe.StripeClient, fake: FakeStripe
) -> None:
    account = fake.create_account()
    params = transfer_params(account, transfer_group="payout-1", metadata={"payout_id": "1"})
    first = client.v1.transfers.create(params=params, options={"idempotency_key": "k-1"})
    second = client.v1.transfers.create(params=params, options={"idempotency_key": "k-1"})
    assert second.id == first.id
    assert second.to_dict() == first.to_dict()
    assert second.last_response.headers["Idempotent-Replayed"] == "true"
    assert first.last_response.headers.get("Idempotent-Replayed") is None
    assert len(fake.transfers()) == 1
    assert len(fake.events()) == 1
    assert [seen.replayed for seen in fake.calls("POST", "/v1/transfers")] == [False, True]


def test_same_key_different_params_is_an_idempotency_error(
    client: stripe.StripeClient, fake: FakeStripe
) -> None:
    account = fake.create_account()
    client.v1.transfers.create(params=transfer_params(account), options={"idempotency_key": "k"})
    with pytest.raises(stripe.IdempotencyError) as conflict:
        client.v1.transfers.create(
            params=transfer_params(account, 1501), options={"idempotency_key": "k"}
        )
    assert conflict.value.http_status == 400
    assert "same parameters" in conflict.value.user_message
    with pytest.raises(stripe.IdempotencyError) as elsewhere:
        client.v1.accounts.create(params={"type": "express"}, options={"idempotency_key": "k"})
    assert "same endpoint" in elsewhere.value.user_message
    assert len(fake.transfers()) == 1


def test_concurrent_calls_with_one_key_make_one_transfer(fake: FakeStripe) -> None:
    account = fake.create_account()
    before = fake.balance("usd")
    ids: list[str] = []

    def call() -> None:
        client = fake.client()
        made = client.v1.transfers.create(
            params=transfer_params(account), options={"idempotency_key": "race"}
        )
        ids.append(made.id)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(ids) == 8 and len(set(ids)) == 1
    assert len(fake.transfers()) == 1
    assert fake.balance("usd") == before - 1500


def test_concurrent_calls_with_distinct_keys_all_count(fake: FakeStripe) -> None:
    account = fake.create_account()
    fake.set_balance("usd", 10_000)

    def call(n: int) -> None:
        with contextlib.suppress(stripe.InvalidRequestError):  # the balance ran out
            fake.client().v1.transfers.create(
                params=transfer_params(account, 1000), options={"idempotency_key": f"k-{n}"}
            )

    threads = [threading.Thread(target=call, args=(n,)) for n in range(15)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(fake.transfers()) == 10
    assert fake.balance("usd") == 0


# -- lists -----------------------------------------------------------------------------------


def test_list_filters(client: stripe.StripeClient, fake: FakeStripe) -> None:
    first, second = fake.create_account(), fake.create_account()
    fake.set_time(1_700_000_000)
    for n in range(6):
        fake.advance(60)
        client.v1.transfers.create(
            params=transfer_params(
                first if n % 2 else second, 100 + n, transfer_group=f"payout-{n % 3}"
            )
        )
    grouped = client.v1.transfers.list(params={"transfer_group": "payout-1"})
    assert [t.amount for t in grouped.data] == [104, 101]  # newest first
    assert grouped.url == "/v1/transfers" and grouped.has_more is False
    to_first = client.v1.transfers.list(params={"destination": first})
    assert [t.amount for t in to_first.data] == [105, 103, 101]
    recent = client.v1.transfers.list(params={"created": {"gte": 1_700_000_000 + 4 * 60}})
    assert [t.amount for t in recent.data] == [105, 104, 103]
    window = client.v1.transfers.list(
        params={"created": {"gt": 1_700_000_000 + 60, "lte": 1_700_000_000 + 3 * 60}}
    )
    assert [t.amount for t in window.data] == [102, 101]
    exact = client.v1.transfers.list(params={"created": 1_700_000_000 + 60})
    assert [t.amount for t in exact.data] == [100]
    assert client.v1.transfers.list(params={"transfer_group": "payout-9"}).data == []


def test_list_pages_and_cursors(client: stripe.StripeClient, fake: FakeStripe) -> None:
    account = fake.create_account()
    for n in range(25):  # all in the same second: creation order breaks the tie
        client.v1.transfers.create(params=transfer_params(account, 100 + n))
    newest_first = list(range(124, 99, -1))

    page = client.v1.transfers.list(params={"limit": 10})
    assert [t.amount for t in page.data] == newest_first[:10] and page.has_more
    after = client.v1.transfers.list(params={"limit": 10, "starting_after": page.data[-1].id})
    assert [t.amount for t in after.data] == newest_first[10:20] and after.has_more
    last = client.v1.transfers.list(params={"limit": 10, "starting_after": after.data[-1].id})
    assert [t.amount for t in last.data] == newest_first[20:] and not last.has_more
    before = client.v1.transfers.list(params={"limit": 5, "ending_before": after.data[0].id})
    assert [t.amount for t in before.data] == newest_first[5:10] and before.has_more

    every = client.v1.transfers.list(params={"limit": 7}).auto_paging_iter()
    assert [t.amount for t in every] == newest_first
    assert len(fake.calls("GET", "/v1/transfers")) == 4 + 4  # 25 in pages of 7
    backwards = client.v1.transfers.list(params={"limit": 4, "ending_before": page.data[-1].id})
    assert [t.amount for t in backwards.auto_paging_iter()] == newest_first[:9][::-1]

    with pytest.raises(stripe.InvalidRequestError) as too_many:
        client.v1.transfers.list(params={"limit": 101})
    assert too_many.value.param == "limit"
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        client.v1.transfers.list(params={"starting_after": "tr_gone"})
    assert unknown.value.code == "resource_missing"


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    groups=st.lists(st.sampled_from("abc"), min_size=0, max_size=14),
    limit=st.integers(min_value=1, max_value=5),
)
def test_paging_through_a_group_sees_each_transfer_once(
    fake: FakeStripe, groups: list[str], limit: int
) -> None:
    client = fake.client()
    account = fake.create_account()
    run = f"run-{time.monotonic_ns()}-"  # examples share the fake: groups of their own
    made = [
        client.v1.transfers.create(params=transfer_params(account, transfer_group=run + g)).id
        for g in groups
    ]
    for group in "abc":
        expected = [tid for tid, g in zip(made, groups, strict=True) if g == group][::-1]
        listed = client.v1.transfers.list(params={"transfer_group": run + group, "limit": limit})
        assert [t.id for t in listed.auto_paging_iter()] == expected


# -- reversals and events --------------------------------------------------------------------


def test_reversals_partial_then_full(client: stripe.StripeClient, fake: FakeStripe) -> None:
    made = client.v1.transfers.create(params=transfer_params(fake.create_account(), 1000))
    balance = fake.balance("usd")
    part = client.v1.transfers.reversals.create(made.id, params={"amount": 300})
    assert (part.object, part.amount, part.transfer) == ("transfer_reversal", 300, made.id)
    now = client.v1.transfers.retrieve(made.id)
    assert (now.amount_reversed, now.reversed) == (300, False)
    with pytest.raises(stripe.InvalidRequestError) as too_much:
        client.v1.transfers.reversals.create(made.id, params={"amount": 701})
    assert too_much.value.param == "amount"

    rest = client.v1.transfers.reversals.create(made.id)
    assert rest.amount == 700
    done = client.v1.transfers.retrieve(made.id)
    assert (done.amount_reversed, done.reversed) == (1000, True)
    assert [r.amount for r in done.reversals.data] == [700, 300]
    assert done.reversals.total_count == 2
    assert fake.balance("usd") == balance + 1000
    with pytest.raises(stripe.InvalidRequestError) as again:
        client.v1.transfers.reversals.create(made.id)
    assert again.value.code == "transfer_already_reversed"

    reversed_events = fake.events("transfer.reversed")
    assert [e["data"]["object"]["amount_reversed"] for e in reversed_events] == [300, 1000]
    listed = client.v1.transfers.reversals.list(made.id)
    assert [r.amount for r in listed.data] == [700, 300]


def test_dashboard_reversal_helper_emits_the_event(fake: FakeStripe) -> None:
    made = fake.client().v1.transfers.create(params=transfer_params(fake.create_account(), 800))
    fake.reverse(made.id, 200)
    assert fake.transfer(made.id)["amount_reversed"] == 200
    (event,) = fake.events("transfer.reversed")
    assert event["request"]["id"] is None


def test_transfer_update_emits_previous_attributes(client: stripe.StripeClient, fake) -> None:
    made = client.v1.transfers.create(
        params=transfer_params(fake.create_account(), metadata={"payout_id": "3"})
    )
    client.v1.transfers.update(made.id, params={"metadata": {"note": "checked"}})
    (event,) = fake.events("transfer.updated")
    assert event["data"]["object"]["metadata"] == {"payout_id": "3", "note": "checked"}
    assert event["data"]["previous_attributes"] == {"metadata": {"payout_id": "3"}}


def test_events_listed_filtered_and_retrieved(client: stripe.StripeClient, fake) -> None:
    account = fake.create_account()
    made = [client.v1.transfers.create(params=transfer_params(account, 100 + n)) for n in range(3)]
    client.v1.transfers.reversals.create(made[0].id)
    everything = client.v1.events.list()
    assert [e.type for e in everything.data] == ["transfer.reversed"] + ["transfer.created"] * 3
    created = client.v1.events.list(params={"type": "transfer.created", "limit": 2})
    assert [e.data.object.amount for e in created.auto_paging_iter()] == [102, 101, 100]
    wildcard = client.v1.events.list(params={"type": "transfer.*"})
    assert len(wildcard.data) == 4
    one = client.v1.events.retrieve(everything.data[0].id)
    assert one.data.object.id == made[0].id
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.events.retrieve("evt_missing")


# -- webhooks --------------------------------------------------------------------------------


def test_delivered_webhooks_verify_with_the_sdk(
    client: stripe.StripeClient, fake: FakeStripe, receiver: Receiver
) -> None:
    made = client.v1.transfers.create(params=transfer_params(fake.create_account()))
    client.v1.transfers.reversals.create(made.id, params={"amount": 100})
    fake.settle()
    assert len(receiver.received) == 2
    types = []
    for body, signature in receiver.received:
        event = stripe.Webhook.construct_event(body, signature, fake.webhook_secret)
        assert event.data.object.id == made.id
        types.append(event.type)
    assert types == ["transfer.created", "transfer.reversed"]  # in event order
    assert all(d.ok for d in fake.deliveries)


def test_forged_and_stale_deliveries_fail_verification(
    client: stripe.StripeClient, fake: FakeStripe, receiver: Receiver
) -> None:
    fake.auto_deliver = False
    client.v1.transfers.create(params=transfer_params(fake.create_account()))
    (event,) = fake.events()
    assert receiver.received == []

    fake.deliver(event["id"], signature=fake.sign(fake.event_payload(event["id"]), secret="x"))
    fake.deliver(event["id"], timestamp=int(time.time()) - 3600)
    fake.deliver(event["id"], signature="t=abc")
    fake.deliver(event["id"], times=2)
    bodies = {body for body, _ in receiver.received}
    assert bodies == {fake.event_payload(event["id"])}  # redeliveries are byte-identical
    outcomes = []
    for body, signature in receiver.received:
        try:
            stripe.Webhook.construct_event(body, signature, fake.webhook_secret, tolerance=300)
            outcomes.append("ok")
        except stripe.SignatureVerificationError as exc:
            outcomes.append(str(exc).split()[0])
    assert outcomes == ["No", "Timestamp", "Unable", "ok", "ok"]


def test_sign_matches_the_sdk(fake: FakeStripe) -> None:
    payload = b'{"id": "evt_1", "object": "event"}'
    header = fake.sign(payload, timestamp=1_700_000_000)
    expected = stripe.WebhookSignature.generate_signature_header(
        payload.decode(), fake.webhook_secret, timestamp=1_700_000_000
    )
    assert header == expected


def test_webhook_first_arrives_before_the_answer(fake: FakeStripe) -> None:
    seen: list[str] = []

    def handler(payload: bytes, headers: dict[str, str]) -> int:
        seen.append("webhook " + json.loads(payload)["type"])
        return 200

    fake.webhook_handler = handler
    fake.fail_next("/v1/transfers", "webhook_first", method="POST")
    fake.client().v1.transfers.create(params=transfer_params(fake.create_account()))
    seen.append("answer")
    fake.settle()
    assert seen == ["webhook transfer.created", "answer"]  # and not delivered a second time


def test_webhook_thrice_delivers_the_same_event_three_times(
    fake: FakeStripe, receiver: Receiver
) -> None:
    fake.fail_next("/v1/transfers", "webhook_thrice")
    fake.client().v1.transfers.create(params=transfer_params(fake.create_account()))
    fake.settle()
    ids = [event["id"] for event in receiver.events()]
    assert len(ids) == 3 and len(set(ids)) == 1


def test_failed_deliveries_are_recorded(fake: FakeStripe, receiver: Receiver) -> None:
    receiver.status = 500
    fake.client().v1.transfers.create(params=transfer_params(fake.create_account()))
    fake.settle()
    (delivery,) = fake.deliveries
    assert (delivery.status, delivery.ok, delivery.event_type) == (500, False, "transfer.created")
    receiver.stop()
    (again,) = fake.deliver(delivery.event_id)
    assert again.status is None and again.error


# -- faults ----------------------------------------------------------------------------------


def test_500_and_429_change_nothing(client: stripe.StripeClient, fake: FakeStripe) -> None:
    account = fake.create_account()
    fake.fail_next("/v1/transfers", "500")
    with pytest.raises(stripe.APIError) as server_error:
        client.v1.transfers.create(params=transfer_params(account))
    assert server_error.value.http_status == 500
    fake.fail_next("/v1/transfers", "429")
    with pytest.raises(stripe.RateLimitError) as limited:
        client.v1.transfers.create(params=transfer_params(account))
    assert limited.value.http_status == 429
    assert fake.transfers() == []
    made = client.v1.transfers.create(params=transfer_params(account))  # faults are used up
    assert [t["id"] for t in fake.transfers()] == [made.id]
    assert [s.fault for s in fake.calls("POST", "/v1/transfers")] == ["500", "429", None]


def test_timeout_still_makes_the_transfer(client: stripe.StripeClient, fake: FakeStripe) -> None:
    account = fake.create_account()
    fake.fail_next("/v1/transfers", "timeout")
    with pytest.raises(stripe.APIConnectionError) as timed_out:
        client.v1.transfers.create(
            params=transfer_params(account, transfer_group="payout-5"),
            options={"idempotency_key": "payout-5-1"},
        )
    assert timed_out.value.should_retry
    (made,) = fake.transfers(transfer_group="payout-5")
    # The retry with the same key gets the transfer that was made, not a second one.
    replay = client.v1.transfers.create(
        params=transfer_params(account, transfer_group="payout-5"),
        options={"idempotency_key": "payout-5-1"},
    )
    assert replay.id == made["id"]
    assert replay.last_response.headers["Idempotent-Replayed"] == "true"
    assert len(fake.transfers()) == 1


def test_timeout_before_makes_nothing(client: stripe.StripeClient, fake: FakeStripe) -> None:
    fake.fail_next("/v1/transfers", "timeout_before", method="POST")
    with pytest.raises(stripe.APIConnectionError):
        client.v1.transfers.create(params=transfer_params(fake.create_account()))
    assert fake.transfers() == []
    assert fake.calls("POST", "/v1/transfers")[0].status is None


def test_sdk_retries_a_timeout_with_its_own_key(fake: FakeStripe) -> None:
    client = fake.client(timeout=1.0, max_network_retries=1)
    fake.fail_next("/v1/transfers", "timeout")
    made = client.v1.transfers.create(params=transfer_params(fake.create_account()))
    assert [t["id"] for t in fake.transfers()] == [made.id]
    first, retry = fake.calls("POST", "/v1/transfers")
    assert first.idempotency_key == retry.idempotency_key  # the SDK made one up for both
    assert (first.fault, retry.replayed) == ("timeout", True)


def test_faults_match_method_and_count(fake: FakeStripe) -> None:
    client = fake.client()
    fake.fail_next("/v1/transfers", "500", times=2, method="GET")
    client.v1.transfers.create(params=transfer_params(fake.create_account()))  # a POST: no fault
    for _ in range(2):
        with pytest.raises(stripe.APIError):
            client.v1.transfers.list()
    assert len(client.v1.transfers.list().data) == 1
    with pytest.raises(ValueError, match="unknown fault kind"):
        fake.fail_next("/v1/transfers", "explode")
