"""Stripe Connect as the payout provider: a payout is a Transfer from the platform balance to
the partner's connected account.

Exactly-once rests on two things: every call about one payout attempt carries the same
idempotency key (Stripe replays the first result), and every transfer carries the payout's
transfer_group, so after an unknown outcome (a timeout after Stripe did the work) `find(group)`
tells whether the money moved. Webhooks are verified against the endpoint secret before
anything in them is believed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import stripe

from mdfledger.clock import ensure_utc, utcnow
from mdfledger.payouts.provider import (
    ProviderError,
    ProviderEvent,
    ProviderTransfer,
    TransferRequest,
    WebhookRejected,
)

__all__ = ["StripeConnect"]

WEBHOOK_TOLERANCE = 300  # seconds either side of now a signature's timestamp may be
PAGE_SIZE = 100  # Stripe's largest page


class StripeConnect:
    """The Stripe Connect provider. `webhook_secret` is the endpoint's "whsec_..." (without it
    every webhook is rejected; transfers still work). `api_base` points the SDK elsewhere (the
    tests' fake); `timeout` bounds each HTTP request; the SDK itself retries network errors,
    409 and 5xx `max_network_retries` times with the same idempotency key. `tolerance` and
    `clock` judge webhook signature timestamps."""

    name = "stripe"

    def __init__(
        self,
        api_key: str,
        webhook_secret: str,
        *,
        api_base: str | None = None,
        timeout: float = 10.0,
        max_network_retries: int = 2,
        tolerance: int = WEBHOOK_TOLERANCE,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        if not api_key:
            raise ValueError("a Stripe secret key is required")
        self._webhook_secret = webhook_secret
        self._tolerance = tolerance
        self._clock = clock
        # A client of our own: no global stripe.api_key, so two providers never share settings.
        self._http = stripe.RequestsClient(timeout=timeout)
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base} if api_base else None,
            http_client=self._http,
            max_network_retries=max_network_retries,
        )

    def close(self) -> None:
        """Close this thread's pooled connections to Stripe (optional; they also time out)."""
        self._http.close()

    # -- transfers ---------------------------------------------------------------------------

    def send(self, request: TransferRequest) -> ProviderTransfer:
        if request.amount <= 0:
            raise ValueError(f"transfer amount must be positive, not {request.amount}")
        params: dict[str, Any] = {
            "amount": request.amount,
            "currency": request.currency.lower(),
            "destination": request.destination,
            "transfer_group": request.group,
            "description": request.description,
            "metadata": dict(request.metadata),
        }
        try:
            transfer = self._client.v1.transfers.create(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": request.idempotency_key},
            )
        except stripe.StripeError as exc:
            raise _failure(exc, key=request.idempotency_key) from exc
        return _transfer(transfer.to_dict())

    def find(self, group: str) -> ProviderTransfer | None:
        try:
            page = self._client.v1.transfers.list(
                params={"transfer_group": group, "limit": PAGE_SIZE}
            )
        except stripe.StripeError as exc:
            raise _failure(exc) from exc
        # Stripe lists newest first.
        return _transfer(page.data[0].to_dict()) if page.data else None

    def transfers(self, *, since: datetime | None = None) -> Iterator[ProviderTransfer]:
        params: dict[str, Any] = {"limit": PAGE_SIZE}
        if since is not None:
            params["created"] = {"gte": int(ensure_utc(since).timestamp())}
        try:
            page = self._client.v1.transfers.list(params=params)  # type: ignore[arg-type]
            for transfer in page.auto_paging_iter():
                yield _transfer(transfer.to_dict())
        except stripe.StripeError as exc:
            raise _failure(exc) from exc

    # -- connected accounts ------------------------------------------------------------------

    def account(self, account_id: str) -> str | None:
        """None when the connected account exists and can receive transfers, else why not.
        Raises ProviderError when Stripe cannot be asked (network, 5xx, rate limit)."""
        if not account_id.startswith("acct_") or "/" in account_id:
            return f"not a Stripe connected account id: {account_id!r}"
        try:
            account = self._client.v1.accounts.retrieve(account_id)
        except (stripe.InvalidRequestError, stripe.PermissionError) as exc:
            if exc.http_status in (403, 404):
                return f"no such account {account_id}"
            raise _failure(exc) from exc
        except stripe.StripeError as exc:
            raise _failure(exc) from exc
        data = account.to_dict()
        status = (data.get("capabilities") or {}).get("transfers")
        if status == "active" or data.get("payouts_enabled"):
            return None
        return f"transfers capability is {status or 'not requested'}"

    # -- webhooks ----------------------------------------------------------------------------

    def parse_webhook(self, payload: bytes, signature: str | None) -> ProviderEvent:
        if not self._webhook_secret:  # transfers work without; webhooks cannot be believed
            raise WebhookRejected("no Stripe webhook endpoint secret is configured")
        if not signature or not signature.strip():
            raise WebhookRejected("no Stripe-Signature header")
        timestamp = _signed_at(signature)
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            raise WebhookRejected("the payload is not UTF-8 text") from None
        try:
            # No tolerance here: the SDK only looks at the past; the window is checked below.
            stripe.WebhookSignature.verify_header(text, signature, self._webhook_secret)
        except stripe.SignatureVerificationError:
            raise WebhookRejected("signature does not match") from None
        age = self._clock().timestamp() - timestamp
        if abs(age) > self._tolerance:
            raise WebhookRejected(
                f"timestamp outside the tolerance: signed {int(age)} s "
                f"{'ago' if age > 0 else 'in the future'}, {self._tolerance} s allowed"
            )
        try:
            event = json.loads(text)
        except ValueError:
            raise WebhookRejected("the payload is not JSON") from None
        return _event(event)


def _signed_at(header: str) -> int:
    """The header's timestamp; refuses headers without one or without a v1 signature."""
    items = [part.split("=", 1) for part in header.split(",")]
    stamps = [item[1] for item in items if len(item) == 2 and item[0].strip() == "t"]
    if len(stamps) != 1 or not re.fullmatch(r"[0-9]{1,12}", stamps[0].strip()):
        raise WebhookRejected("malformed Stripe-Signature header: no timestamp")
    if not any(len(item) == 2 and item[0].strip() == "v1" for item in items):
        raise WebhookRejected("malformed Stripe-Signature header: no v1 signature")
    return int(stamps[0])


def _failure(exc: stripe.StripeError, *, key: str = "") -> ProviderError:
    """An SDK error as a ProviderError: retriable when the outcome is unknown or the refusal
    temporary (call again with the same key), not retriable when Stripe refused."""
    error = exc.error
    code = exc.code or (error.code if error is not None and error.code else "") or ""
    message = exc.user_message or exc.__class__.__name__
    status = exc.http_status
    if isinstance(exc, stripe.APIConnectionError):
        detail = message.strip().splitlines()[-1]  # "(Network error: ReadTimeout: ...)"
        if detail.startswith("(") and detail.endswith(")"):
            detail = detail[1:-1]
        return ProviderError(
            f"Stripe could not be reached or did not answer in time; the outcome is unknown "
            f"({detail})",
            retriable=True,
            code="connection_error",
        )
    if isinstance(exc, stripe.IdempotencyError):
        return ProviderError(
            f"Stripe refused idempotency key {key!r}: it was already used for a different "
            f"request ({message})",
            retriable=False,
            code=code or "idempotency_error",
        )
    if isinstance(exc, stripe.RateLimitError) or status == 429:
        return ProviderError(
            f"Stripe rate limit: {message}", retriable=True, code=code or "rate_limit"
        )
    # 409: another request with the same key is still running at Stripe; its outcome is unknown.
    if status is None or status >= 500 or status == 409:
        return ProviderError(
            f"Stripe error (HTTP {status or 'unknown'}): {message}",
            retriable=True,
            code=code or "api_error",
        )
    return ProviderError(message, retriable=False, code=code)


def _when(value: Any) -> datetime:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**37:
        raise ValueError(f"not a Unix time: {value!r}")
    return datetime.fromtimestamp(value, UTC)


def _transfer(data: Mapping[str, Any]) -> ProviderTransfer:
    destination = data.get("destination")
    if isinstance(destination, Mapping):  # expanded
        destination = destination.get("id")
    metadata = data.get("metadata") or {}
    if not isinstance(metadata, Mapping):
        raise TypeError("metadata is not an object")
    return ProviderTransfer(
        id=str(data["id"]),
        amount=int(data["amount"]),
        currency=str(data["currency"]).upper(),
        destination=str(destination or ""),
        group=data.get("transfer_group") or None,
        metadata={str(k): str(v) for k, v in metadata.items()},
        created=_when(data["created"]),
        amount_reversed=int(data.get("amount_reversed") or 0),
    )


def _event(event: Any) -> ProviderEvent:
    if (
        not isinstance(event, dict)
        or event.get("object") != "event"
        or not isinstance(event.get("id"), str)
        or not isinstance(event.get("type"), str)
        or not isinstance(event.get("created"), int)
    ):
        raise WebhookRejected("the payload is not a Stripe event")
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    transfer = None
    if isinstance(obj, dict) and obj.get("object") == "transfer":
        try:
            transfer = _transfer(obj)
        except (KeyError, TypeError, ValueError):
            raise WebhookRejected("the event's transfer is malformed") from None
    if transfer is None and event["type"].startswith("transfer."):
        raise WebhookRejected("a transfer event without its transfer")
    try:
        created = _when(event["created"])
    except ValueError:
        raise WebhookRejected("the event's creation time is not a Unix time") from None
    return ProviderEvent(
        id=event["id"],
        type=event["type"],
        created=created,
        transfer=transfer,
        livemode=bool(event.get("livemode")),
    )
