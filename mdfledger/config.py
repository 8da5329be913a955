"""Settings from the environment, with embedded defaults that need no servers."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_SECRET_KEY = "dev-only-insecure-secret-key"
MIN_SECRET_KEY_LENGTH = 32
DEFAULT_UPLOAD_MAX_BYTES = 20 * 1024 * 1024  # proof documents (storage.py)
DEFAULT_OCR_MAX_PAGES = 5  # invoices are read from their first pages only
JOB_MODES = ("inline", "celery")
PROOF_STORES = ("local", "s3")
S3_SSE_MODES = ("AES256", "aws:kms")
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(RuntimeError):
    """Settings that must not be used to start the app."""


def _default_database_url(instance_path: Path) -> str:
    return f"sqlite:///{instance_path / 'mdfledger.sqlite3'}"


def _whole_number(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isascii() or not raw.isdigit():
        raise ConfigError(f"{name} must be a whole number, e.g. {default}, not {raw!r}")
    return int(raw)


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    secret_key: str = DEFAULT_SECRET_KEY
    database_url: str = ""
    instance_path: Path = field(default_factory=lambda: PROJECT_ROOT / "instance")
    sql_echo: bool = False
    ratelimit_storage_url: str = "memory://"  # redis://... to share counters between workers
    # Proxies in front that set X-Forwarded-For/-Proto (0: none). Rate limits count per client
    # address, and behind a proxy every client would otherwise be the proxy.
    proxy_hops: int = 0
    # Proof documents (storage.py). AWS credentials and region come from boto3's usual chain.
    proof_store: str = "local"  # or "s3"
    proof_dir: Path | None = None  # local store; None means instance_path / "proof"
    s3_bucket: str = ""
    s3_prefix: str = "proof"
    s3_endpoint_url: str = ""  # only for S3-compatible servers (moto, MinIO)
    s3_sse: str = "AES256"  # or "aws:kms"
    s3_kms_key_id: str = ""  # with aws:kms; empty means the account's aws/s3 key
    upload_max_bytes: int = DEFAULT_UPLOAD_MAX_BYTES
    # Background jobs (jobs.py): "inline" runs them in-process after each commit; "celery"
    # sends them to `mdfledger worker` processes through the broker (Redis).
    jobs: str = "inline"
    broker_url: str = ""  # redis://127.0.0.1:6379/0
    jobs_queue: str = "mdfledger"
    # Hosts, addresses or networks (CIDR) the page checks may fetch although they are private
    # or loopback: for tests and staging only; empty in production.
    verify_allow_hosts: tuple[str, ...] = ()
    ocr_max_pages: int = DEFAULT_OCR_MAX_PAGES
    # Payouts (payouts/): the manual provider always; Stripe Connect when a key is set.
    stripe_api_key: str = ""  # sk_live_... / sk_test_...
    stripe_api_base: str = ""  # only for a Stripe-compatible test server
    stripe_webhook_secret: str = ""  # whsec_...: the webhook endpoint's signing secret
    # Engagement events (engagement/): e-mail through SMTP, SNS and EventBridge through boto3
    # (credentials from boto3's usual chain).
    smtp_host: str = ""  # empty: e-mail destinations fail with a clear reason (and retry)
    smtp_port: int = 25
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    mail_from: str = "mdfledger@localhost"
    aws_region: str = "us-east-1"
    aws_endpoint_url: str = ""  # only for AWS-compatible servers (moto)

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def proof_path(self) -> Path:
        """Where the local store keeps proof documents."""
        return self.proof_dir if self.proof_dir is not None else self.instance_path / "proof"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        instance_path = Path(env.get("MDFLEDGER_INSTANCE_PATH") or PROJECT_ROOT / "instance")
        return cls(
            env=env.get("MDFLEDGER_ENV", "development"),
            secret_key=env.get("MDFLEDGER_SECRET_KEY", DEFAULT_SECRET_KEY),
            database_url=env.get("MDFLEDGER_DATABASE_URL") or _default_database_url(instance_path),
            instance_path=instance_path,
            sql_echo=env.get("MDFLEDGER_SQL_ECHO", "") in {"1", "true", "yes"},
            ratelimit_storage_url=env.get("MDFLEDGER_RATELIMIT_STORAGE_URL", "memory://"),
            proxy_hops=_whole_number(env, "MDFLEDGER_PROXY_HOPS", 0),
            proof_store=env.get("MDFLEDGER_PROOF_STORE") or "local",
            proof_dir=Path(env["MDFLEDGER_PROOF_DIR"]) if env.get("MDFLEDGER_PROOF_DIR") else None,
            s3_bucket=env.get("MDFLEDGER_S3_BUCKET", ""),
            s3_prefix=env.get("MDFLEDGER_S3_PREFIX", "proof"),
            s3_endpoint_url=env.get("MDFLEDGER_S3_ENDPOINT_URL", ""),
            s3_sse=env.get("MDFLEDGER_S3_SSE") or "AES256",
            s3_kms_key_id=env.get("MDFLEDGER_S3_KMS_KEY_ID", ""),
            upload_max_bytes=_whole_number(
                env, "MDFLEDGER_UPLOAD_MAX_BYTES", DEFAULT_UPLOAD_MAX_BYTES
            ),
            jobs=env.get("MDFLEDGER_JOBS") or "inline",
            broker_url=env.get("MDFLEDGER_BROKER_URL", ""),
            jobs_queue=env.get("MDFLEDGER_JOBS_QUEUE") or "mdfledger",
            verify_allow_hosts=tuple(
                host.strip()
                for host in env.get("MDFLEDGER_VERIFY_ALLOW_HOSTS", "").split(",")
                if host.strip()
            ),
            ocr_max_pages=_whole_number(env, "MDFLEDGER_OCR_MAX_PAGES", DEFAULT_OCR_MAX_PAGES),
            stripe_api_key=env.get("MDFLEDGER_STRIPE_API_KEY", ""),
            stripe_api_base=env.get("MDFLEDGER_STRIPE_API_BASE", ""),
            stripe_webhook_secret=env.get("MDFLEDGER_STRIPE_WEBHOOK_SECRET", ""),
            smtp_host=env.get("MDFLEDGER_SMTP_HOST", ""),
            smtp_port=_whole_number(env, "MDFLEDGER_SMTP_PORT", 25),
            smtp_user=env.get("MDFLEDGER_SMTP_USER", ""),
            smtp_password=env.get("MDFLEDGER_SMTP_PASSWORD", ""),
            smtp_starttls=env.get("MDFLEDGER_SMTP_STARTTLS", "") in {"1", "true", "yes"},
            mail_from=env.get("MDFLEDGER_MAIL_FROM") or "mdfledger@localhost",
            aws_region=env.get("MDFLEDGER_AWS_REGION") or "us-east-1",
            aws_endpoint_url=env.get("MDFLEDGER_AWS_ENDPOINT_URL", ""),
        )

    def validate(self) -> None:
        if self.env not in {"development", "test", "production"}:
            raise ConfigError(
                f"MDFLEDGER_ENV must be development, test or production, not {self.env!r}"
            )
        if self.is_production and (
            self.secret_key == DEFAULT_SECRET_KEY or len(self.secret_key) < MIN_SECRET_KEY_LENGTH
        ):
            raise ConfigError(
                "production refuses to start with the default or a short secret key: set"
                f" MDFLEDGER_SECRET_KEY to a random string of {MIN_SECRET_KEY_LENGTH}+ characters"
            )
        if not 0 <= self.proxy_hops <= 5:
            raise ConfigError("MDFLEDGER_PROXY_HOPS must be from 0 to 5")
        self._validate_proof_storage()
        self._validate_jobs()
        self._validate_payouts()

    def _validate_payouts(self) -> None:
        if self.stripe_api_key and not self.stripe_api_key.startswith(("sk_", "rk_")):
            raise ConfigError(
                "MDFLEDGER_STRIPE_API_KEY must be a Stripe secret or restricted key (sk_... or"
                " rk_...)"
            )
        if self.stripe_api_key and not self.stripe_webhook_secret.startswith("whsec_"):
            raise ConfigError(
                "MDFLEDGER_STRIPE_API_KEY is set: set MDFLEDGER_STRIPE_WEBHOOK_SECRET to the"
                " webhook endpoint's signing secret (whsec_...) so payouts can be confirmed"
            )
        if self.is_production and self.stripe_api_base:
            raise ConfigError("MDFLEDGER_STRIPE_API_BASE is for test servers, not production")
        if not 1 <= self.smtp_port <= 65535:
            raise ConfigError("MDFLEDGER_SMTP_PORT must be from 1 to 65535")

    def _validate_jobs(self) -> None:
        if self.jobs not in JOB_MODES:
            raise ConfigError(f"MDFLEDGER_JOBS must be inline or celery, not {self.jobs!r}")
        if self.jobs == "celery" and not self.broker_url.startswith(("redis://", "rediss://")):
            raise ConfigError(
                "MDFLEDGER_JOBS=celery needs MDFLEDGER_BROKER_URL, the Redis broker:"
                " redis://host:6379/0"
            )
        if not 1 <= self.ocr_max_pages <= 50:
            raise ConfigError("MDFLEDGER_OCR_MAX_PAGES must be from 1 to 50")

    def _validate_proof_storage(self) -> None:
        if self.proof_store not in PROOF_STORES:
            raise ConfigError(
                f"MDFLEDGER_PROOF_STORE must be local or s3, not {self.proof_store!r}"
            )
        if self.upload_max_bytes <= 0:
            raise ConfigError("MDFLEDGER_UPLOAD_MAX_BYTES must be a positive number of bytes")
        if self.s3_sse not in S3_SSE_MODES:
            raise ConfigError(f"MDFLEDGER_S3_SSE must be AES256 or aws:kms, not {self.s3_sse!r}")
        if self.s3_kms_key_id and self.s3_sse != "aws:kms":
            raise ConfigError(
                "MDFLEDGER_S3_KMS_KEY_ID is set but MDFLEDGER_S3_SSE is not aws:kms;"
                " set MDFLEDGER_S3_SSE=aws:kms or remove the key id"
            )
        if self.s3_endpoint_url and not self.s3_endpoint_url.startswith(("http://", "https://")):
            raise ConfigError(
                "MDFLEDGER_S3_ENDPOINT_URL must start with http:// or https://,"
                f" not {self.s3_endpoint_url!r}"
            )
        if any(part in {".", ".."} for part in self.s3_prefix.split("/")):
            raise ConfigError(f"MDFLEDGER_S3_PREFIX must not contain . or .. ({self.s3_prefix!r})")
        if self.proof_store == "s3" and not self.s3_bucket:
            raise ConfigError(
                "MDFLEDGER_PROOF_STORE=s3 needs MDFLEDGER_S3_BUCKET, the bucket for proof documents"
            )
