"""A fake Stripe API for the payouts tests: the real `stripe` SDK talks to it over HTTP on
loopback. See server.py for what it covers and the faults it can play."""

from __future__ import annotations

from typing import Any

from tests.fakestripe.server import Delivery, FakeStripe, Seen

__all__ = ["Delivery", "FakeStripe", "Seen", "start_fake_stripe"]


def start_fake_stripe(**options: Any) -> FakeStripe:
    """A running fake (options: api_key, webhook_secret, timeout_hold, balance). Stop it with
    `.stop()`; as a fixture:

        @pytest.fixture
        def fake_stripe():
            fake = start_fake_stripe()
            yield fake
            fake.stop()
    """
    return FakeStripe(**options).start()
