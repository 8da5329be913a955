"""Engagement: events that tell partners what changed, why it matters and what to do next.

Services write events with `emit` in the transaction of the change (a transactional outbox);
after the commit `deliver` sends them, at least once and in order per destination and partner,
to signed webhooks, Amazon SNS topics, EventBridge buses and e-mail, retrying for 36 hours
before a delivery goes to the dead-letter list that finance replays.
"""

from mdfledger.engagement.delivery import (
    PROBE_TYPE,
    DeliveryFailed,
    DeliveryRun,
    ProbeResult,
    Sender,
    Senders,
    deliver,
    send_probe,
)
from mdfledger.engagement.messages import Message, render
from mdfledger.engagement.models import Delivery, DeliveryAttempt, Destination, Event
from mdfledger.engagement.rules import (
    DeliveryState,
    DestinationKind,
    Envelope,
    EventType,
    Target,
    mask_secret,
    verify_signature,
)
from mdfledger.engagement.senders import senders_from_settings
from mdfledger.engagement.service import (
    DELIVER_JOB,
    DeliveryView,
    NewDestination,
    create_destination,
    dead_letters,
    deliveries,
    destinations,
    emit,
    events_for,
    get_destination,
    get_event,
    replay,
    rotate_secret,
    update_destination,
)

APP_KEY = "mdfledger.engagement.senders"


def app_senders(app: object = None) -> Senders:
    """The app's senders: app.extensions[APP_KEY] when set (tests put fakes there), else built
    once from the app's settings."""
    from flask import current_app

    app = app or current_app
    extensions = app.extensions  # type: ignore[attr-defined]
    if APP_KEY not in extensions:
        extensions[APP_KEY] = senders_from_settings(app.config.get("MDFLEDGER"))  # type: ignore[attr-defined]
    return extensions[APP_KEY]


__all__ = [
    "APP_KEY",
    "DELIVER_JOB",
    "PROBE_TYPE",
    "Delivery",
    "DeliveryAttempt",
    "DeliveryFailed",
    "DeliveryRun",
    "DeliveryState",
    "DeliveryView",
    "Destination",
    "DestinationKind",
    "Envelope",
    "Event",
    "EventType",
    "Message",
    "NewDestination",
    "ProbeResult",
    "Sender",
    "Senders",
    "Target",
    "app_senders",
    "create_destination",
    "dead_letters",
    "deliver",
    "deliveries",
    "destinations",
    "emit",
    "events_for",
    "get_destination",
    "get_event",
    "mask_secret",
    "render",
    "replay",
    "rotate_secret",
    "send_probe",
    "senders_from_settings",
    "update_destination",
    "verify_signature",
]
