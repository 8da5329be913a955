"""Senders: each sends one event to one destination or raises DeliveryFailed(detail, retriable).

- webhook: a signed JSON POST (urllib3, no redirects, 10 s timeouts). 2xx delivers; 410 Gone
  gives up at once (the receiver says the endpoint is gone for good); everything else (other
  4xx included: a partner may fix a misconfigured endpoint within the day) is retried.
- sns: `publish` to a topic (FIFO topics get the partner as the group, the event as the dedupe
  id); eventbridge: `put_events` on a bus. Both through boto3 (moto's server in the tests).
- email: smtplib to the configured server, one message to the destination's addresses.

`senders_from_settings(settings)` builds all four from the settings the app reads
(MDFLEDGER_SMTP_*, MDFLEDGER_MAIL_FROM, MDFLEDGER_AWS_REGION, MDFLEDGER_AWS_ENDPOINT_URL).
"""

from __future__ import annotations

import smtplib
import ssl
import threading
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

import urllib3

from mdfledger.clock import utcnow
from mdfledger.engagement import rules
from mdfledger.engagement.delivery import DeliveryFailed, Senders
from mdfledger.engagement.rules import DestinationKind, Envelope, Target

TIMEOUT = 10.0
USER_AGENT = "mdfledger-webhooks/1"
SNS_SUBJECT_MAX = 100


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- webhooks ------------------------------------------------------------------------------------


class WebhookSender:
    def __init__(
        self, *, timeout: float = TIMEOUT, pool: urllib3.PoolManager | None = None
    ) -> None:
        self.timeout = timeout
        self.pool = pool or urllib3.PoolManager(
            retries=False, timeout=urllib3.Timeout(connect=timeout, read=timeout)
        )

    def send(self, target: Target, envelope: Envelope, *, now: datetime | None = None) -> None:
        if not target.url or not target.secret:
            raise DeliveryFailed("the webhook has no URL or signing secret", retriable=False)
        body = envelope.body()
        timestamp = int((now or utcnow()).timestamp())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            rules.EVENT_ID_HEADER: str(envelope.id),
            rules.EVENT_TYPE_HEADER: envelope.type,
            rules.SIGNATURE_HEADER: rules.sign(target.secret, body, timestamp),
        }
        try:
            response = self.pool.request(
                "POST", target.url, body=body, headers=headers, redirect=False,
                retries=False, preload_content=False,
            )  # fmt: skip
        except urllib3.exceptions.HTTPError as error:
            raise DeliveryFailed(f"could not reach {target.url}: {_reason(error)}") from None
        try:
            snippet = response.read(300, decode_content=True).decode("utf-8", "replace")
        except urllib3.exceptions.HTTPError:
            snippet = ""
        finally:
            response.release_conn()
        status = response.status
        if 200 <= status < 300:
            return
        said = f": {_short(snippet)}" if snippet.strip() else ""
        raise DeliveryFailed(
            f"{target.url} answered {status}{said}", retriable=status != 410, status=status
        )


def _reason(error: Exception) -> str:
    reason = getattr(error, "reason", None)
    return _short(str(reason or error) or type(error).__name__)


# --- Amazon SNS and EventBridge ------------------------------------------------------------------


@dataclass
class _Clients:
    """boto3 clients per (service, region), made on first use; boto3 clients are thread-safe
    once made, making them is not."""

    region: str
    endpoint_url: str | None = None
    _made: dict[tuple[str, str], Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, service: str, region: str | None) -> Any:
        import boto3
        from botocore.config import Config

        name = region or self.region
        with self._lock:
            if (service, name) not in self._made:
                config = Config(
                    connect_timeout=TIMEOUT, read_timeout=TIMEOUT, retries={"max_attempts": 2}
                )
                self._made[(service, name)] = boto3.session.Session().client(
                    service, region_name=name, endpoint_url=self.endpoint_url, config=config
                )
            return self._made[(service, name)]


def _aws_failure(error: Exception, what: str) -> DeliveryFailed:
    from botocore.exceptions import ClientError

    if isinstance(error, ClientError):
        info = error.response.get("Error", {})
        code = info.get("Code", "")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        # A topic or bus that does not exist may be created later the same day: retried.
        return DeliveryFailed(
            f"{what}: {code} {_short(info.get('Message', ''))}".strip(), status=status
        )
    return DeliveryFailed(f"{what}: {_reason(error)}")


class SnsSender:
    def __init__(self, clients: _Clients) -> None:
        self.clients = clients

    def send(self, target: Target, envelope: Envelope) -> None:
        if not target.topic_arn:
            raise DeliveryFailed("the SNS destination has no topic", retriable=False)
        subject = _sns_subject(envelope.subject)
        request: dict[str, Any] = {
            "TopicArn": target.topic_arn,
            "Subject": subject,
            "Message": envelope.body().decode(),
            "MessageAttributes": {
                "type": {"DataType": "String", "StringValue": envelope.type},
                "partner_id": {"DataType": "Number", "StringValue": str(envelope.partner_id)},
                "event_id": {"DataType": "Number", "StringValue": str(envelope.id)},
            },
        }
        if target.topic_arn.endswith(".fifo"):
            request["MessageGroupId"] = f"partner-{envelope.partner_id}"
            request["MessageDeduplicationId"] = f"event-{envelope.id}"
        try:
            self.clients.get("sns", target.region).publish(**request)
        except Exception as error:
            raise _aws_failure(error, f"SNS publish to {target.topic_arn}") from None


def _sns_subject(subject: str) -> str:
    """SNS subjects: at most 100 ASCII printable characters, no line breaks."""
    text = "".join(c if 32 <= ord(c) < 127 else "-" for c in " ".join(subject.split()))
    text = text.strip() or "mdfledger event"
    return text if len(text) <= SNS_SUBJECT_MAX else text[: SNS_SUBJECT_MAX - 3] + "..."


class EventBridgeSender:
    SOURCE = "mdfledger"

    def __init__(self, clients: _Clients) -> None:
        self.clients = clients

    def send(self, target: Target, envelope: Envelope) -> None:
        if not target.event_bus:
            raise DeliveryFailed("the EventBridge destination has no bus", retriable=False)
        entry = {
            "Source": self.SOURCE,
            "DetailType": envelope.type,
            "Detail": envelope.body().decode(),
            "EventBusName": target.event_bus,
            "Time": envelope.created_at,
            "Resources": [],
        }
        try:
            answer = self.clients.get("events", target.region).put_events(Entries=[entry])
        except Exception as error:
            raise _aws_failure(error, f"EventBridge put_events on {target.event_bus}") from None
        if answer.get("FailedEntryCount", 0):
            failed = next((e for e in answer.get("Entries", []) if e.get("ErrorCode")), {})
            raise DeliveryFailed(
                f"EventBridge refused the event: {failed.get('ErrorCode', 'unknown')}"
                f" {_short(failed.get('ErrorMessage', ''))}".strip()
            )


# --- e-mail --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmtpConfig:
    host: str = ""  # none: e-mail destinations fail with the reason, and are retried
    port: int = 25
    user: str | None = None
    password: str | None = None
    starttls: bool = False
    mail_from: str = "mdfledger@localhost"
    timeout: float = TIMEOUT


class EmailSender:
    def __init__(self, config: SmtpConfig) -> None:
        self.config = config

    def message(self, target: Target, envelope: Envelope) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.config.mail_from
        message["To"] = ", ".join(target.email_to)
        message["Subject"] = " ".join(envelope.subject.split())
        message["Date"] = formatdate(envelope.created_at.timestamp(), usegmt=True)
        domain = self.config.mail_from.rpartition("@")[2] or "localhost"
        message["Message-ID"] = make_msgid(f"event-{envelope.id}", domain=domain)
        message[rules.EVENT_ID_HEADER] = str(envelope.id)
        message[rules.EVENT_TYPE_HEADER] = envelope.type
        message.set_content(f"{envelope.text}\n\nWhat to do next: {envelope.action}\n")
        return message

    def send(self, target: Target, envelope: Envelope) -> None:
        if not target.email_to:
            raise DeliveryFailed("nobody to e-mail: the partner has no contacts")
        config = self.config
        if not config.host:
            raise DeliveryFailed("no mail server is set up (MDFLEDGER_SMTP_HOST)")
        try:
            with smtplib.SMTP(config.host, config.port, timeout=config.timeout) as smtp:
                if config.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if config.user:
                    smtp.login(config.user, config.password or "")
                smtp.send_message(self.message(target, envelope))
        except smtplib.SMTPRecipientsRefused as error:
            raise DeliveryFailed(
                f"the mail server refused every recipient: {', '.join(error.recipients)}"
            ) from None
        except smtplib.SMTPResponseException as error:
            text = (
                error.smtp_error.decode("utf-8", "replace")
                if isinstance(error.smtp_error, bytes)
                else str(error.smtp_error)
            )
            raise DeliveryFailed(
                f"the mail server answered {error.smtp_code} {_short(text)}",
                status=error.smtp_code,
            ) from None
        except (smtplib.SMTPException, OSError) as error:
            raise DeliveryFailed(
                f"could not send mail through {config.host}:{config.port}: {_reason(error)}"
            ) from None


# --- from settings -------------------------------------------------------------------------------


def senders_from_settings(settings: Any) -> Senders:
    """The four senders from the app's settings (getattr with defaults, so settings without
    the e-mail and AWS fields still work)."""

    def get(name: str, default: Any) -> Any:
        value = getattr(settings, name, default)
        return default if value is None else value

    clients = _Clients(
        region=get("aws_region", "us-east-1"), endpoint_url=get("aws_endpoint_url", None) or None
    )
    smtp = SmtpConfig(
        host=get("smtp_host", ""),
        port=int(get("smtp_port", 25)),
        user=get("smtp_user", None) or None,
        password=get("smtp_password", None) or None,
        starttls=bool(get("smtp_starttls", False)),
        mail_from=get("mail_from", "mdfledger@localhost"),
    )
    return {
        DestinationKind.WEBHOOK.value: WebhookSender(),
        DestinationKind.SNS.value: SnsSender(clients),
        DestinationKind.EVENTBRIDGE.value: EventBridgeSender(clients),
        DestinationKind.EMAIL.value: EmailSender(smtp),
    }


__all__ = [
    "EmailSender",
    "EventBridgeSender",
    "SmtpConfig",
    "SnsSender",
    "WebhookSender",
    "senders_from_settings",
]
