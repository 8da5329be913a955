"""Pure engagement rules: event types, destination kinds, the delivery state machine, the retry
schedule, event-type filters, webhook signatures and the shapes senders receive.

No database here. The outbox (service.py) and the delivery loop (delivery.py) ask these rules
what may happen and record what did.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from mdfledger.errors import Conflict, ValidationError


class EventType(StrEnum):
    CLAIM_SUBMITTED = "claim.submitted"
    CLAIM_APPROVED = "claim.approved"
    CLAIM_REJECTED = "claim.rejected"
    CLAIM_PAID = "claim.paid"
    PAYOUT_FAILED = "payout.failed"
    FUND_ALLOCATED = "fund.allocated"
    FUND_ACCRUED = "fund.accrued"
    FUNDS_EXPIRING = "funds.expiring"
    FUNDS_EXPIRED = "funds.expired"
    PARTNER_INACTIVE = "partner.inactive"
    PARTNER_NO_SIGN_IN = "partner.no_sign_in"
    PARTNER_NO_ACTIVITY = "partner.no_activity"
    RESERVATION_DEADLINE_NEAR = "reservation.deadline_near"
    UTILISATION_MILESTONE = "utilisation.milestone"


class DestinationKind(StrEnum):
    WEBHOOK = "webhook"  # partners' CRMs and PRMs: signed JSON POSTs
    SNS = "sns"  # an Amazon SNS topic
    EVENTBRIDGE = "eventbridge"  # an Amazon EventBridge bus
    EMAIL = "email"  # SMTP to the destination's addresses (a partner's contacts by default)


class DeliveryState(StrEnum):
    PENDING = "pending"  # waiting for its turn, or for its next attempt
    DELIVERED = "delivered"
    DEAD = "dead"  # given up: on the dead-letter list until finance replays it


class AttemptOutcome(StrEnum):
    DELIVERED = "delivered"
    FAILED = "failed"  # will be tried again
    DEAD = "dead"  # failed and given up


class DeliveryEvent(StrEnum):
    SUCCEED = "succeed"
    FAIL = "fail"  # a failed attempt with time left: try again later
    GIVE_UP = "give_up"  # a failed attempt past the retry window, or a refusal for good
    REPLAY = "replay"  # finance sends a dead letter again


# (state, event) -> new state. Anything not listed is refused.
DELIVERY_TRANSITIONS: Mapping[tuple[str, str], str] = {
    (DeliveryState.PENDING, DeliveryEvent.SUCCEED): DeliveryState.DELIVERED,
    (DeliveryState.PENDING, DeliveryEvent.FAIL): DeliveryState.PENDING,
    (DeliveryState.PENDING, DeliveryEvent.GIVE_UP): DeliveryState.DEAD,
    (DeliveryState.DEAD, DeliveryEvent.REPLAY): DeliveryState.PENDING,
}


class InvalidTransition(Conflict):
    code = "invalid_transition"


def next_state(state: str, event: str) -> str:
    found = DELIVERY_TRANSITIONS.get((state, event))
    if found is None:
        allowed = sorted(e for (s, e) in DELIVERY_TRANSITIONS if s == state)
        tail = f"; it can be: {', '.join(allowed)}" if allowed else ""
        raise InvalidTransition(
            f"a delivery that is {state} cannot {event.replace('_', ' ')}{tail}",
            state=state,
            event=event,
        )
    return found


# --- the retry schedule --------------------------------------------------------------------------

# Waits after the 1st, 2nd, ... failed attempt; after the last listed, every 12 hours.
BACKOFF: tuple[timedelta, ...] = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=6),
    timedelta(hours=12),
)
# A delivery is retried while its next attempt would fall inside this window from when it
# started (created, or replayed): a destination down for a whole day still gets everything.
RETRY_WINDOW = timedelta(hours=36)


def backoff(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed attempt (1-based)."""
    if attempts < 1:
        raise ValueError("backoff is for a failed attempt: attempts starts at 1")
    return BACKOFF[min(attempts, len(BACKOFF)) - 1]


@dataclass(frozen=True)
class Verdict:
    event: DeliveryEvent
    next_attempt_at: datetime | None  # when to try again (FAIL only)


def after_failure(
    *, attempts: int, window_start: datetime, now: datetime, retriable: bool = True
) -> Verdict:
    """What a failed attempt (`attempts` counts it) leads to: another attempt after the
    backoff while that falls inside the retry window, else the dead-letter list."""
    if not retriable:
        return Verdict(DeliveryEvent.GIVE_UP, None)
    at = now + backoff(attempts)
    if at - window_start > RETRY_WINDOW:
        return Verdict(DeliveryEvent.GIVE_UP, None)
    return Verdict(DeliveryEvent.FAIL, at)


def schedule(window: timedelta = RETRY_WINDOW) -> list[timedelta]:
    """Offsets from the start at which a delivery that keeps failing is tried (first at 0)."""
    offsets, at, attempts = [timedelta(0)], timedelta(0), 1
    while at + backoff(attempts) <= window:
        at += backoff(attempts)
        offsets.append(at)
        attempts += 1
    return offsets


# --- event types, filters, data ------------------------------------------------------------------

ALL_TYPES = "*"


def check_type(value: object) -> EventType:
    if isinstance(value, str) and value in EventType._value2member_map_:
        return EventType(value)
    raise ValidationError(
        f"{value!r} is not an event type; known types: {', '.join(EventType)}", field="type"
    )


def parse_event_types(value: object) -> str:
    """'*' (every type) or a list of types (a list, or text separated by commas or spaces),
    stored as '*' or the types sorted and joined by commas."""
    if isinstance(value, str):
        items = [part for part in value.replace(",", " ").split() if part]
    elif isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        items = list(value)
    else:
        raise ValidationError("event types must be '*' or a list of types", field="event_types")
    if not items or ALL_TYPES in items:
        if len(items) > 1:
            raise ValidationError("'*' already means every event type", field="event_types")
        if not items:
            raise ValidationError(
                "choose the event types to send, or '*' for all", field="event_types"
            )
        return ALL_TYPES
    found = set()
    for item in items:
        try:
            found.add(check_type(item))
        except ValidationError as error:
            raise ValidationError(error.message, field="event_types") from None
    return ",".join(sorted(found))


def type_list(event_types: str) -> list[str]:
    return [] if event_types == ALL_TYPES else event_types.split(",")


def matches(event_types: str, event_type: str) -> bool:
    return event_types == ALL_TYPES or event_type in event_types.split(",")


MAX_DATA_BYTES = 64 * 1024


def check_data(data: object) -> dict[str, Any]:
    """Event data: a JSON object of plain JSON values (no dates, Decimals or NaN), at most
    64 KiB. Money is ints of minor units with a currency."""
    if not isinstance(data, dict):
        raise ValidationError("event data must be a JSON object", field="data")
    _check_json(data, "data")
    size = len(canonical_json(data).encode())
    if size > MAX_DATA_BYTES:
        raise ValidationError(
            f"event data is {size} bytes; at most {MAX_DATA_BYTES} are kept", field="data"
        )
    return data


def _check_json(value: object, path: str) -> None:
    if value is None or isinstance(value, bool | int | str):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError(f"{path} is not a finite number", field="data")
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            _check_json(item, f"{path}[{index}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValidationError(f"{path} has a key that is not text: {key!r}", field="data")
            _check_json(item, f"{path}.{key}")
        return
    raise ValidationError(
        f"{path} is a {type(value).__name__}, not a JSON value (text, number, true/false,"
        " null, list or object)",
        field="data",
    )


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# --- what senders get ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Envelope:
    """One event as it leaves: the same for every destination; receivers dedupe by `id`."""

    id: int
    type: str
    created_at: datetime
    partner_id: int
    program_id: int | None
    data: dict[str, Any]
    subject: str
    text: str
    action: str

    def payload(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "created_at": self.created_at.isoformat().replace("+00:00", "Z"),
            "partner_id": self.partner_id,
            "program_id": self.program_id,
            "data": self.data,
            "message": {"subject": self.subject, "text": self.text, "action": self.action},
        }

    def body(self) -> bytes:
        return canonical_json(self.payload()).encode()


@dataclass(frozen=True)
class Target:
    """A destination as a sender needs it, with its e-mail recipients resolved."""

    id: int
    name: str
    kind: str
    url: str | None = None
    secret: str | None = None
    topic_arn: str | None = None
    event_bus: str | None = None
    region: str | None = None
    email_to: tuple[str, ...] = ()


# --- webhook secrets and signatures --------------------------------------------------------------

SECRET_PREFIX = "whsec_"
SIGNATURE_HEADER = "Mdfledger-Signature"
EVENT_ID_HEADER = "Mdfledger-Event-Id"
EVENT_TYPE_HEADER = "Mdfledger-Event-Type"


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def mask_secret(secret: str | None) -> str:
    """'whsec_…Xy12': enough to tell secrets apart, never enough to use one."""
    if not secret:
        return ""
    return f"{SECRET_PREFIX}…{secret[-4:]}"


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The signature header's value: t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_signature(
    secret: str,
    body: bytes | str,
    header: str,
    tolerance: int = 300,
    now: datetime | None = None,
) -> bool:
    """For receivers: True when `header` (Mdfledger-Signature) signs `body` (the raw request
    body, exactly as received) with `secret`, and its time is within `tolerance` seconds of
    `now`. Any `v1=` entry may match (a receiver rotating secrets checks each)."""
    from mdfledger.clock import ensure_utc, utcnow

    if isinstance(body, str):
        body = body.encode()
    if not isinstance(header, str):
        return False
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == "v1" and value:
            signatures.append(value)
    if timestamp is None or not signatures:
        return False
    current = ensure_utc(now or utcnow()).timestamp()
    if abs(current - timestamp) > tolerance:
        return False
    expected = sign(secret, body, timestamp).partition(",v1=")[2]
    return any(hmac.compare_digest(expected, candidate) for candidate in signatures)
