"""A fake Stripe API on loopback that the real `stripe` SDK talks to, for Connect payouts.

It speaks the wire format the SDK uses: form-encoded requests (`metadata[key]=v`,
`created[gte]=`), JSON answers shaped like Stripe's (lists with `object`, `data`, `has_more`,
`url`; errors as `{"error": {"type", "code", "message", "param"}}` with Stripe's HTTP status;
a `Request-Id` on every answer). Covered: connected accounts, transfers (with idempotency keys,
a platform balance that can run out, list filters and cursors), reversals, events, and webhook
delivery signed like Stripe's (`Stripe-Signature: t=...,v1=...`).

Faults are programmed per call with `fail_next`, including the nasty one: a "timeout" performs
the operation and only then holds the answer past the client's timeout, so the transfer exists
although the client saw an error, as can happen with the real API.

State lives in one object behind one lock; the HTTP server is threaded. Webhooks go out from one
worker thread in event order (or synchronously with `deliver`, or with `auto_deliver = False`
not at all until asked).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import hmac
import json
import queue
import secrets
import socket
import string
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

__all__ = ["Delivery", "FakeStripe", "Seen"]

API_VERSION = "2026-10-28.endive"
FAULT_KINDS = ("timeout", "timeout_before", "500", "429", "webhook_first", "webhook_thrice")
# The currencies the fake accepts (a subset of Stripe's; enough for tests).
CURRENCIES = frozenset(
    "usd eur gbp cad aud nzd jpy chf sek nok dkk pln czk huf ron bgn sgd hkd mxn brl inr "  # noqa: SIM905
    "zar ils aed thb myr php idr krw twd try".split()
)
DEFAULT_BALANCE = 100_000_000_000  # per currency, in minor units
WEBHOOK_TIMEOUT = 10.0
_ALPHABET = string.ascii_letters + string.digits
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxies

# Hook for a webhook receiver inside the test process: (payload, headers) -> HTTP status, or any
# object with a `status_code` (a Flask test client response).
WebhookHandler = Callable[[bytes, dict[str, str]], Any]


def _id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(24))


@dataclass(frozen=True)
class Seen:
    """A request as the fake received it, and what it answered."""

    method: str
    path: str
    params: dict[str, Any]
    idempotency_key: str | None
    status: int | None  # None: no answer (a timeout fault)
    replayed: bool = False
    fault: str | None = None


@dataclass(frozen=True)
class Delivery:
    """One webhook delivery attempt."""

    event_id: str
    event_type: str
    status: int | None  # None: the receiver could not be reached
    signature: str
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class StripeFailure(Exception):
    """An error answer: HTTP status plus Stripe's error object."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error: dict[str, Any] = {"type": type, "message": message}
        if code:
            self.error["code"] = code
            self.error["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
        if param:
            self.error["param"] = param


def _missing(param: str) -> StripeFailure:
    return StripeFailure(
        400, f"Missing required param: {param}.", code="parameter_missing", param=param
    )


def _no_such(kind: str, ident: str, param: str = "id") -> StripeFailure:
    return StripeFailure(404, f"No such {kind}: '{ident}'", code="resource_missing", param=param)


def _unknown_params(params: Mapping[str, Any], allowed: Iterable[str]) -> None:
    for name in params:
        if name not in allowed:
            raise StripeFailure(
                400, f"Received unknown parameter: {name}", code="parameter_unknown", param=name
            )


def _integer(params: Mapping[str, Any], name: str, *, minimum: int | None = None) -> int | None:
    raw = params.get(name)
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw.lstrip("-").isdigit():
        raise StripeFailure(
            400, f"Invalid integer: {raw}", code="parameter_invalid_integer", param=name
        )
    value = int(raw)
    if minimum is not None and value < minimum:
        raise StripeFailure(
            400,
            f"This value must be greater than or equal to {minimum}.",
            code="parameter_invalid_integer",
            param=name,
        )
    return value


def _nest(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Form pairs as Stripe reads them: `a[b][c]=v` nests, `a[0]=x&a[1]=y` is a list."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = key.replace("]", "").split("[")
        node = root
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = value
    return _lists(root)


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    node = {key: _lists(value) for key, value in node.items()}
    if node and all(key.isdigit() for key in node):
        return [node[key] for key in sorted(node, key=int)]
    return node


def _metadata(raw: Any) -> dict[str, str]:
    if raw in (None, ""):
        return {}
    if not isinstance(raw, dict):
        raise StripeFailure(400, "Invalid hash", code="parameter_invalid_hash", param="metadata")
    if len(raw) > 50:
        raise StripeFailure(
            400, "Metadata can have up to 50 keys.", code="parameter_invalid", param="metadata"
        )
    for key, value in raw.items():
        if len(key) > 40:
            raise StripeFailure(
                400,
                f"Metadata keys can have up to 40 characters, but you passed in a key that is "
                f"{len(key)} characters. Invalid key: {key}",
                param="metadata",
            )
        if not isinstance(value, str) or len(value) > 500:
            raise StripeFailure(
                400,
                "Metadata values can have up to 500 characters.",
                param=f"metadata[{key}]",
            )
    # An empty value unsets the key, as in Stripe.
    return {key: value for key, value in raw.items() if value != ""}


def _created_filter(raw: Any) -> Callable[[int], bool]:
    if raw is None:
        return lambda _created: True
    if isinstance(raw, str):
        exact = _integer({"created": raw}, "created")
        return lambda created: created == exact
    if not isinstance(raw, dict):
        raise StripeFailure(400, "Invalid hash", code="parameter_invalid_hash", param="created")
    bounds = {}
    for op in raw:
        if op not in ("gt", "gte", "lt", "lte"):
            raise StripeFailure(
                400,
                f"Received unknown parameter: created[{op}]",
                code="parameter_unknown",
                param=f"created[{op}]",
            )
        bounds[op] = _integer(raw, op)
    checks: dict[str, Callable[[int, int], bool]] = {
        "gt": lambda c, b: c > b,
        "gte": lambda c, b: c >= b,
        "lt": lambda c, b: c < b,
        "lte": lambda c, b: c <= b,
    }
    return lambda created: all(checks[op](created, bound) for op, bound in bounds.items())


@dataclass
class _Fault:
    prefix: str
    kind: str
    remaining: int
    method: str | None
    hold: float | None


@dataclass
class _Answer:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)  # events this call created
    replayed: bool = False


class FakeStripe:
    """The fake. `start()` (or `with FakeStripe() as fake:`) runs it on 127.0.0.1, a free port;
    `api_base` is what to give `StripeClient(base_addresses={"api": ...})`."""

    def __init__(
        self,
        *,
        api_key: str = "sk_test_fakestripe",
        webhook_secret: str = "whsec_fakestripe_endpoint_secret",
        timeout_hold: float = 2.0,
        balance: Mapping[str, int] | None = None,
    ) -> None:
        self.api_key = api_key
        self.webhook_secret = webhook_secret
        self.timeout_hold = timeout_hold  # how long "timeout" faults hold the answer
        self.webhook_url: str | None = None
        self.webhook_handler: WebhookHandler | None = None
        self.auto_deliver = True  # deliver each new event after answering the call
        self.deliveries: list[Delivery] = []
        self._lock = threading.RLock()
        self._accounts: dict[str, dict[str, Any]] = {}
        self._transfers: dict[str, dict[str, Any]] = {}
        self._events: dict[str, dict[str, Any]] = {}
        self._payloads: dict[str, bytes] = {}
        self._order: dict[str, int] = {}  # id -> creation sequence (ties within a second)
        self._sequence = 0
        self._idempotent: dict[str, tuple[str, str, _Answer, str]] = {}
        self._faults: list[_Fault] = []
        self._requests: list[Seen] = []
        self._balance: dict[str, int] = (
            dict(balance) if balance is not None else dict.fromkeys(CURRENCIES, DEFAULT_BALANCE)
        )
        self._frozen: int | None = None
        self._stopping = threading.Event()
        self._outbox: queue.Queue[str | None] = queue.Queue()
        self._pending = 0
        self._settled = threading.Condition(self._lock)
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []

    # -- life cycle --------------------------------------------------------------------------

    def start(self) -> FakeStripe:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self  # type: ignore[attr-defined]
        self._server = server
        self._threads = [
            threading.Thread(
                target=server.serve_forever, args=(0.05,), name="fakestripe", daemon=True
            ),
            threading.Thread(target=self._deliver_loop, name="fakestripe-webhooks", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases held "timeout" answers
        self._outbox.put(None)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server.hang_up()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> FakeStripe:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the fake first"
        return self._server.server_address[1]

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, *, timeout: float = 5.0, max_network_retries: int = 0, api_key: str = ""):
        """A real `stripe.StripeClient` pointed at the fake."""
        import stripe

        return stripe.StripeClient(
            api_key or self.api_key,
            base_addresses={"api": self.api_base},
            http_client=stripe.RequestsClient(timeout=timeout),
            max_network_retries=max_network_retries,
        )

    # -- time --------------------------------------------------------------------------------

    def now(self) -> int:
        """The fake's clock (unix seconds): `created` of new objects."""
        with self._lock:
            return self._frozen if self._frozen is not None else int(time.time())

    def set_time(self, when: datetime | int | None) -> None:
        """Freeze the fake's clock at `when` (None: follow the wall clock again)."""
        with self._lock:
            self._frozen = int(when.timestamp()) if isinstance(when, datetime) else when

    def advance(self, seconds: int) -> None:
        with self._lock:
            self._frozen = self.now() + seconds

    # -- set-up and inspection helpers (no HTTP) ---------------------------------------------

    def create_account(
        self,
        *,
        transfers: bool | str = True,
        payouts_enabled: bool | None = None,
        country: str = "US",
        email: str | None = None,
        type: str = "express",
    ) -> str:
        """A connected account; `transfers`: True ("active"), False (not requested) or a status
        ("inactive", "pending"). Returns its id."""
        capabilities = {}
        if transfers is True:
            capabilities["transfers"] = "active"
        elif transfers:
            capabilities["transfers"] = transfers
        with self._lock:
            return self._new_account(type, country, email, capabilities, payouts_enabled, {})["id"]

    def set_capability(self, account_id: str, capability: str, status: str | None) -> None:
        with self._lock:
            account = self._accounts[account_id]
            if status is None:
                account["capabilities"].pop(capability, None)
            else:
                account["capabilities"][capability] = status
            if capability == "transfers":
                account["payouts_enabled"] = status == "active"

    def set_balance(self, currency: str, amount: int) -> None:
        with self._lock:
            self._balance[currency.lower()] = amount

    def balance(self, currency: str) -> int:
        with self._lock:
            return self._balance.get(currency.lower(), 0)

    def transfers(self, **filters: str) -> list[dict[str, Any]]:
        """Copies of the transfers, newest first; `filters` match fields exactly."""
        with self._lock:
            found = [
                copy.deepcopy(t)
                for t in self._newest_first(self._transfers.values())
                if all(t.get(k) == v for k, v in filters.items())
            ]
        return found

    def transfer(self, transfer_id: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._transfers[transfer_id])

    def events(self, type: str | None = None) -> list[dict[str, Any]]:
        """Copies of the events, oldest first."""
        with self._lock:
            found = [
                copy.deepcopy(e) for e in self._events.values() if type is None or e["type"] == type
            ]
        return found

    def event_payload(self, event_id: str) -> bytes:
        """The exact bytes delivered for an event."""
        with self._lock:
            return self._payloads[event_id]

    @property
    def requests(self) -> list[Seen]:
        with self._lock:
            return list(self._requests)

    def calls(self, method: str | None = None, path_prefix: str = "") -> list[Seen]:
        return [
            seen
            for seen in self.requests
            if (method is None or seen.method == method.upper())
            and seen.path.startswith(path_prefix)
        ]

    def reverse(self, transfer_id: str, amount: int | None = None) -> dict[str, Any]:
        """Reverse a transfer as if from the Dashboard (no API call); the event is delivered
        like any other."""
        with self._lock:
            params = {} if amount is None else {"amount": str(amount)}
            reversal, events = self._reverse(transfer_id, params, request_id=None, key=None)
        if self.auto_deliver:
            for event_id in events:
                self._enqueue(event_id, 1)
        return reversal

    def fail_next(
        self,
        path_prefix: str,
        kind: str,
        times: int = 1,
        *,
        method: str | None = None,
        hold: float | None = None,
    ) -> None:
        """The next `times` calls whose path starts with `path_prefix` (and method, if given):
        "timeout" (perform, then hold the answer for `hold` s, default `timeout_hold`),
        "timeout_before" (hold without performing), "500", "429", "webhook_first" (deliver the
        call's events synchronously before answering), "webhook_thrice" (deliver them 3 times)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {', '.join(FAULT_KINDS)}")
        with self._lock:
            self._faults.append(
                _Fault(path_prefix, kind, times, method.upper() if method else None, hold)
            )

    # -- webhooks ----------------------------------------------------------------------------

    def sign(self, payload: bytes, timestamp: int | None = None, secret: str | None = None) -> str:
        """A `Stripe-Signature` header value for `payload`, as Stripe computes it."""
        stamp = int(time.time()) if timestamp is None else int(timestamp)
        signed = f"{stamp}.".encode() + payload
        digest = hmac.new((secret or self.webhook_secret).encode(), signed, hashlib.sha256)
        return f"t={stamp},v1={digest.hexdigest()}"

    def deliver(
        self,
        event_id: str,
        times: int = 1,
        *,
        signature: str | None = None,
        timestamp: int | None = None,
    ) -> list[Delivery]:
        """Deliver an event now (synchronously), `times` times; `signature` replaces the header
        (forged, garbage), `timestamp` signs with that time (stale)."""
        with self._lock:
            payload = self._payloads[event_id]
        return [self._post(event_id, payload, signature, timestamp) for _ in range(times)]

    def settle(self, timeout: float = 10.0) -> None:
        """Wait until every queued webhook delivery has been attempted."""
        deadline = time.monotonic() + timeout
        with self._settled:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self._pending} webhook deliveries still pending")
                self._settled.wait(left)

    def _has_target(self) -> bool:
        return self.webhook_url is not None or self.webhook_handler is not None

    def _reserve(self, event_ids: list[str], times: int = 1) -> list[str]:
        """Count deliveries as pending before the API answer goes out (so `settle()` right
        after a call waits for them); `_send_out` queues them after the answer."""
        if not self._has_target():
            return []
        batch = [event_id for event_id in event_ids for _ in range(times)]
        with self._lock:
            self._pending += len(batch)
        return batch

    def _send_out(self, batch: list[str]) -> None:
        for event_id in batch:
            self._outbox.put(event_id)

    def _enqueue(self, event_id: str, times: int) -> None:
        self._send_out(self._reserve([event_id], times))

    def _deliver_loop(self) -> None:
        while True:
            event_id = self._outbox.get()
            if event_id is None:
                return
            try:
                if not self._stopping.is_set():
                    self.deliver(event_id)
            except RuntimeError:  # the webhook target was unset meanwhile
                pass
            finally:
                with self._settled:
                    self._pending -= 1
                    self._settled.notify_all()

    def _post(
        self, event_id: str, payload: bytes, signature: str | None, timestamp: int | None
    ) -> Delivery:
        header = signature if signature is not None else self.sign(payload, timestamp)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            "Stripe-Signature": header,
        }
        event_type = json.loads(payload)["type"]
        status: int | None = None
        error = ""
        if self.webhook_handler is not None:
            try:
                result = self.webhook_handler(payload, dict(headers))
                status = result if isinstance(result, int) else int(result.status_code)
            except Exception as exc:  # the receiver crashed: what a server would answer 500 to
                error = f"{exc.__class__.__name__}: {exc}"
        elif self.webhook_url is not None:
            request = urllib.request.Request(
                self.webhook_url, data=payload, headers=headers, method="POST"
            )
            try:
                with _DIRECT.open(request, timeout=WEBHOOK_TIMEOUT) as answer:
                    status = answer.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            except OSError as exc:  # refused, reset, timed out
                error = f"{exc.__class__.__name__}: {exc}"
        else:
            raise RuntimeError("set webhook_url or webhook_handler before delivering webhooks")
        delivery = Delivery(event_id, event_type, status, header, error)
        with self._lock:
            self.deliveries.append(delivery)
        return delivery

    # -- request handling --------------------------------------------------------------------

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if path.startswith(fault.prefix) and fault.method in (None, method):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _record(self, seen: Seen) -> None:
        with self._lock:
            self._requests.append(seen)

    def _hold(self, fault: _Fault) -> None:
        self._stopping.wait(fault.hold if fault.hold is not None else self.timeout_hold)

    def _answer(
        self,
        method: str,
        path: str,
        pairs: list[tuple[str, str]],
        key: str | None,
        request_id: str,
    ) -> _Answer:
        params = _nest(pairs)
        endpoint = f"{method} {path}"
        fingerprint = json.dumps(sorted(pairs))
        with self._lock:
            if method == "POST" and key:
                saved = self._idempotent.get(key)
                if saved is not None:
                    first_endpoint, first_fingerprint, answer, first_request = saved
                    if first_endpoint != endpoint:
                        raise StripeFailure(
                            400,
                            "Keys for idempotent requests can only be used for the same endpoint "
                            f"they were first used for ('{first_endpoint}' vs '{endpoint}'). Try "
                            f"using a key other than '{key}' if you meant to execute a different "
                            "request.",
                            type="idempotency_error",
                        )
                    if first_fingerprint != fingerprint:
                        raise StripeFailure(
                            400,
                            "Keys for idempotent requests can only be used with the same "
                            f"parameters they were first used with. Try using a key other than "
                            f"'{key}' if you meant to execute a different request.",
                            type="idempotency_error",
                        )
                    headers = dict(answer.headers)
                    headers["Idempotent-Replayed"] = "true"
                    headers["Original-Request"] = first_request
                    return _Answer(answer.status, answer.body, headers, [], replayed=True)
            status, obj, events = self._route(method, path, params, key, request_id)
            answer = _Answer(status, json.dumps(obj, indent=2).encode(), {}, events)
            if method == "POST" and key and 200 <= status < 300:
                # Only results are kept: a refused request may be retried with the same key.
                self._idempotent[key] = (endpoint, fingerprint, answer, request_id)
            return answer

    def _route(
        self, method: str, path: str, params: dict[str, Any], key: str | None, request_id: str
    ) -> tuple[int, dict[str, Any], list[str]]:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if parts[:1] == ["v1"]:
            parts = parts[1:]
            match method, parts:
                case "POST", ["accounts"]:
                    return 200, self._create_account(params), []
                case "GET", ["accounts", account_id]:
                    return 200, self._get(self._accounts, "account", account_id), []
                case "GET", ["balance"]:
                    return 200, self._balance_object(), []
                case "POST", ["transfers"]:
                    transfer, events = self._create_transfer(params, request_id, key)
                    return 200, transfer, events
                case "GET", ["transfers"]:
                    return 200, self._list_transfers(params), []
                case "GET", ["transfers", transfer_id]:
                    return 200, self._get(self._transfers, "transfer", transfer_id), []
                case "POST", ["transfers", transfer_id]:
                    transfer, events = self._update_transfer(transfer_id, params, request_id, key)
                    return 200, transfer, events
                case "POST", ["transfers", transfer_id, "reversals"]:
                    reversal, events = self._reverse(transfer_id, params, request_id, key)
                    return 200, reversal, events
                case "GET", ["transfers", transfer_id, "reversals"]:
                    transfer = self._get(self._transfers, "transfer", transfer_id)
                    return 200, transfer["reversals"], []
                case "GET", ["events"]:
                    return 200, self._list_events(params), []
                case "GET", ["events", event_id]:
                    return 200, self._get(self._events, "event", event_id), []
        raise StripeFailure(
            404,
            f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs "
            "or we can help at https://support.stripe.com/.",
        )

    # -- resources ---------------------------------------------------------------------------

    def _stamp(self, obj_id: str) -> None:
        self._sequence += 1
        self._order[obj_id] = self._sequence

    def _newest_first(self, objects: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(objects, key=lambda o: (o["created"], self._order[o["id"]]), reverse=True)

    @staticmethod
    def _get(table: dict[str, dict[str, Any]], kind: str, ident: str) -> dict[str, Any]:
        if ident not in table:
            raise _no_such(kind, ident)
        return copy.deepcopy(table[ident])

    def _new_account(
        self,
        type: str,
        country: str,
        email: str | None,
        capabilities: dict[str, str],
        payouts_enabled: bool | None,
        metadata: dict[str, str],
    ) -> dict[str, Any]:
        account = {
            "id": _id("acct_"),
            "object": "account",
            "type": type,
            "country": country,
            "email": email,
            "default_currency": "usd",
            "created": self.now(),
            "capabilities": capabilities,
            "charges_enabled": capabilities.get("card_payments") == "active",
            "payouts_enabled": (
                capabilities.get("transfers") == "active"
                if payouts_enabled is None
                else payouts_enabled
            ),
            "details_submitted": True,
            "metadata": metadata,
        }
        self._accounts[account["id"]] = account
        self._stamp(account["id"])
        return account

    def _create_account(self, params: dict[str, Any]) -> dict[str, Any]:
        kind = params.get("type", "express")
        if kind not in ("express", "custom", "standard"):
            raise StripeFailure(
                400,
                f"Invalid type: must be one of custom, express, or standard (got {kind})",
                code="parameter_invalid_string",
                param="type",
            )
        requested = params.get("capabilities") or {}
        if not isinstance(requested, dict):
            raise StripeFailure(400, "Invalid hash", param="capabilities")
        capabilities = {
            name: "active"
            for name, ask in requested.items()
            if isinstance(ask, dict) and ask.get("requested") == "true"
        }
        account = self._new_account(
            kind,
            params.get("country", "US"),
            params.get("email"),
            capabilities,
            None,
            _metadata(params.get("metadata")),
        )
        return copy.deepcopy(account)

    def _balance_object(self) -> dict[str, Any]:
        available = [
            {"amount": amount, "currency": currency, "source_types": {"card": amount}}
            for currency, amount in sorted(self._balance.items())
        ]
        return {"object": "balance", "available": available, "pending": [], "livemode": False}

    def _event(
        self,
        type: str,
        obj: dict[str, Any],
        request_id: str | None,
        key: str | None,
        previous: dict[str, Any] | None = None,
    ) -> str:
        data: dict[str, Any] = {"object": copy.deepcopy(obj)}
        if previous is not None:
            data["previous_attributes"] = previous
        event = {
            "id": _id("evt_"),
            "object": "event",
            "api_version": API_VERSION,
            "created": self.now(),
            "data": data,
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": request_id, "idempotency_key": key},
            "type": type,
        }
        self._events[event["id"]] = event
        self._payloads[event["id"]] = json.dumps(event, indent=2).encode()
        self._stamp(event["id"])
        return event["id"]

    def _create_transfer(
        self, params: dict[str, Any], request_id: str, key: str | None
    ) -> tuple[dict[str, Any], list[str]]:
        _unknown_params(
            params,
            {
                "amount",
                "currency",
                "destination",
                "description",
                "metadata",
                "source_transaction",
                "source_type",
                "transfer_group",
                "expand",
            },
        )
        for name in ("amount", "currency", "destination"):
            if params.get(name) in (None, ""):
                raise _missing(name)
        amount = _integer(params, "amount", minimum=1)
        assert amount is not None
        currency = str(params["currency"]).lower()
        if currency not in CURRENCIES:
            raise StripeFailure(
                400,
                f"Invalid currency: {currency}. Stripe currently supports these currencies: "
                f"{', '.join(sorted(CURRENCIES))}",
                param="currency",
            )
        destination = params["destination"]
        account = self._accounts.get(destination)
        if account is None:
            raise StripeFailure(
                400,
                f"No such destination: '{destination}'",
                code="resource_missing",
                param="destination",
            )
        if account["capabilities"].get("transfers") != "active":
            raise StripeFailure(
                400,
                "Your destination account needs to have at least one of the following "
                "capabilities enabled: transfers, crypto_transfers, legacy_payments",
                code="insufficient_capabilities_for_transfer",
                param="destination",
            )
        metadata = _metadata(params.get("metadata"))
        if self._balance.get(currency, 0) < amount:
            raise StripeFailure(
                400,
                "You have insufficient available funds in your Stripe account. Try adding funds "
                "directly to your available balance by creating Charges using the "
                "4000000000000077 test card. See: https://stripe.com/docs/testing#available-balance",
                code="balance_insufficient",
            )
        self._balance[currency] -= amount
        transfer_id = _id("tr_")
        transfer = {
            "id": transfer_id,
            "object": "transfer",
            "amount": amount,
            "amount_reversed": 0,
            "balance_transaction": _id("txn_"),
            "created": self.now(),
            "currency": currency,
            "description": params.get("description"),
            "destination": destination,
            "destination_payment": _id("py_"),
            "livemode": False,
            "metadata": metadata,
            "reversals": {
                "object": "list",
                "data": [],
                "has_more": False,
                "total_count": 0,
                "url": f"/v1/transfers/{transfer_id}/reversals",
            },
            "reversed": False,
            "source_transaction": params.get("source_transaction"),
            "source_type": params.get("source_type", "card"),
            "transfer_group": params.get("transfer_group"),
        }
        self._transfers[transfer_id] = transfer
        self._stamp(transfer_id)
        event = self._event("transfer.created", transfer, request_id, key)
        return copy.deepcopy(transfer), [event]

    def _update_transfer(
        self, transfer_id: str, params: dict[str, Any], request_id: str, key: str | None
    ) -> tuple[dict[str, Any], list[str]]:
        _unknown_params(params, {"description", "metadata", "expand"})
        if transfer_id not in self._transfers:
            raise _no_such("transfer", transfer_id)
        transfer = self._transfers[transfer_id]
        previous: dict[str, Any] = {}
        if "description" in params:
            previous["description"] = transfer["description"]
            transfer["description"] = params["description"] or None
        if "metadata" in params:
            previous["metadata"] = dict(transfer["metadata"])
            update = params["metadata"]
            if update == "":
                transfer["metadata"] = {}
            else:
                merged = {**transfer["metadata"], **(update if isinstance(update, dict) else {})}
                transfer["metadata"] = _metadata(merged)
        events = [self._event("transfer.updated", transfer, request_id, key, previous)]
        return copy.deepcopy(transfer), events

    def _reverse(
        self, transfer_id: str, params: dict[str, Any], request_id: str | None, key: str | None
    ) -> tuple[dict[str, Any], list[str]]:
        _unknown_params(
            params, {"amount", "description", "metadata", "refund_application_fee", "expand"}
        )
        if transfer_id not in self._transfers:
            raise _no_such("transfer", transfer_id)
        transfer = self._transfers[transfer_id]
        left = transfer["amount"] - transfer["amount_reversed"]
        if left <= 0:
            raise StripeFailure(
                400,
                f"Transfer {transfer_id} has already been reversed.",
                code="transfer_already_reversed",
            )
        amount = _integer(params, "amount", minimum=1)
        if amount is None:
            amount = left
        if amount > left:
            raise StripeFailure(
                400,
                f"Amount ({amount}) is greater than the unreversed amount of the transfer "
                f"({left}).",
                code="amount_too_large",
                param="amount",
            )
        reversal = {
            "id": _id("trr_"),
            "object": "transfer_reversal",
            "amount": amount,
            "balance_transaction": _id("txn_"),
            "created": self.now(),
            "currency": transfer["currency"],
            "destination_payment_refund": _id("pyr_"),
            "metadata": _metadata(params.get("metadata")),
            "source_refund": None,
            "transfer": transfer_id,
        }
        self._stamp(reversal["id"])
        transfer["amount_reversed"] += amount
        transfer["reversed"] = transfer["amount_reversed"] >= transfer["amount"]
        reversals = transfer["reversals"]
        reversals["data"].insert(0, reversal)
        reversals["total_count"] += 1
        self._balance[transfer["currency"]] = self._balance.get(transfer["currency"], 0) + amount
        event = self._event("transfer.reversed", transfer, request_id, key)
        return copy.deepcopy(reversal), [event]

    def _page(
        self, objects: list[dict[str, Any]], params: dict[str, Any], url: str, kind: str
    ) -> dict[str, Any]:
        """One page of a newest-first list, with Stripe's cursors."""
        limit = _integer(params, "limit", minimum=1)
        limit = 10 if limit is None else limit
        if limit > 100:
            raise StripeFailure(
                400,
                "This value must be less than or equal to 100.",
                code="parameter_invalid_integer",
                param="limit",
            )
        ids = [o["id"] for o in objects]
        after, before = params.get("starting_after"), params.get("ending_before")
        if after is not None and before is not None:
            raise StripeFailure(
                400, "You may only specify one of these parameters: ending_before, starting_after."
            )
        if after is not None:
            if after not in ids:
                raise _no_such(kind, after, "starting_after")
            rest = objects[ids.index(after) + 1 :]
            page, has_more = rest[:limit], len(rest) > limit
        elif before is not None:
            if before not in ids:
                raise _no_such(kind, before, "ending_before")
            rest = objects[: ids.index(before)]
            page, has_more = rest[-limit:], len(rest) > limit
        else:
            page, has_more = objects[:limit], len(objects) > limit
        return {
            "object": "list",
            "data": copy.deepcopy(page),
            "has_more": has_more,
            "url": url,
        }

    def _list_transfers(self, params: dict[str, Any]) -> dict[str, Any]:
        _unknown_params(
            params,
            {
                "created",
                "destination",
                "transfer_group",
                "limit",
                "starting_after",
                "ending_before",
                "expand",
            },
        )
        created = _created_filter(params.get("created"))
        found = [
            t
            for t in self._newest_first(self._transfers.values())
            if created(t["created"])
            and params.get("destination") in (None, t["destination"])
            and params.get("transfer_group") in (None, t["transfer_group"])
        ]
        return self._page(found, params, "/v1/transfers", "transfer")

    def _list_events(self, params: dict[str, Any]) -> dict[str, Any]:
        _unknown_params(
            params,
            {
                "created",
                "delivery_success",
                "type",
                "types",
                "limit",
                "starting_after",
                "ending_before",
                "expand",
            },
        )
        created = _created_filter(params.get("created"))
        wanted = params.get("types") or ([params["type"]] if params.get("type") else None)

        def matches(event_type: str) -> bool:
            if wanted is None:
                return True
            return any(
                event_type == w or (w.endswith(".*") and event_type.startswith(w[:-1]))
                for w in wanted
            )

        found = [
            e
            for e in self._newest_first(self._events.values())
            if created(e["created"]) and matches(e["type"])
        ]
        return self._page(found, params, "/v1/events", "event")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # bursts of concurrent clients in the tests

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def hang_up(self) -> None:
        """End idle keep-alive connections, so their threads finish when the fake stops."""
        with self._open_lock:
            connections = list(self._open)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's requests session expects
    timeout = 300  # idle keep-alive connections end eventually (or when the fake stops)
    wbufsize = 1 << 16  # headers and body leave in one write (no Nagle/delayed-ACK stalls)
    server_version = "fakestripe"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        fake: FakeStripe = self.server.fake  # type: ignore[attr-defined]
        split = urlsplit(self.path)
        path = split.path
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8") if length else ""
        pairs = parse_qsl(split.query, keep_blank_values=True)
        if method == "POST":
            pairs += parse_qsl(body, keep_blank_values=True)
        key = self.headers.get("Idempotency-Key")
        request_id = _id("req_")
        params = _nest(pairs)

        def seen(status: int | None, fault: str | None = None, replayed: bool = False) -> None:
            fake._record(Seen(method, path, params, key, status, replayed, fault))

        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            failure = StripeFailure(
                401,
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_"
                "KEY').",
            )
            seen(401)
            self._error(failure, request_id)
            return
        given = auth.removeprefix("Bearer ")
        if given != fake.api_key or not given.startswith("sk_test_"):
            seen(401)
            shown = given[:8] + "*" * max(0, len(given) - 12) + given[-4:]
            self._error(StripeFailure(401, f"Invalid API Key provided: {shown}"), request_id)
            return

        fault = fake._take_fault(method, path)
        kind = fault.kind if fault else None
        if fault is not None and kind == "timeout_before":
            seen(None, kind)
            fake._hold(fault)
            self.close_connection = True
            return
        if kind == "500":
            seen(500, kind)
            self._error(
                StripeFailure(500, "An unknown error occurred", type="api_error"), request_id
            )
            return
        if kind == "429":
            seen(429, kind)
            self._error(
                StripeFailure(
                    429,
                    "Request rate limit exceeded. Learn more about rate limits here "
                    "https://stripe.com/docs/rate-limits.",
                    code="rate_limit",
                ),
                request_id,
            )
            return

        try:
            answer = fake._answer(method, path, pairs, key, request_id)
        except StripeFailure as failure:
            if fault is not None and kind == "timeout":
                seen(None, kind)
                fake._hold(fault)
                self.close_connection = True
                return
            seen(failure.status, kind)
            self._error(failure, request_id)
            return

        if fault is not None and kind == "timeout":
            # The operation happened (and its webhooks go out); the client never hears of it.
            seen(None, kind, answer.replayed)
            if fake.auto_deliver:
                for event_id in answer.events:
                    fake._enqueue(event_id, 1)
            fake._hold(fault)
            self.close_connection = True
            return
        seen(answer.status, kind, answer.replayed)
        batch: list[str] = []
        if kind == "webhook_first" and fake._has_target():
            for event_id in answer.events:
                fake.deliver(event_id)
        elif kind == "webhook_thrice":
            batch = fake._reserve(answer.events, 3)
        elif fake.auto_deliver:
            batch = fake._reserve(answer.events)
        self._send(answer.status, answer.body, {**answer.headers, "Request-Id": request_id})
        fake._send_out(batch)

    def _error(self, failure: StripeFailure, request_id: str) -> None:
        error = dict(failure.error)
        error["request_log_url"] = f"https://dashboard.stripe.com/test/logs/{request_id}"
        body = json.dumps({"error": error}, indent=2).encode()
        self._send(failure.status, body, {"Request-Id": request_id})

    def _send(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Stripe-Version", API_VERSION)
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
        except OSError:  # the client gave up (timed out) and closed the connection
            self.close_connection = True
