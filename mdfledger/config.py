"""Settings from the environment, with embedded defaults that need no servers."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_SECRET_KEY = "dev-only-insecure-secret-key"
MIN_SECRET_KEY_LENGTH = 32
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(RuntimeError):
    """Settings that must not be used to start the app."""


def _default_database_url(instance_path: Path) -> str:
    return f"sqlite:///{instance_path / 'mdfledger.sqlite3'}"


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    secret_key: str = DEFAULT_SECRET_KEY
    database_url: str = ""
    instance_path: Path = field(default_factory=lambda: PROJECT_ROOT / "instance")
    sql_echo: bool = False
    ratelimit_storage_url: str = "memory://"  # redis://... to share counters between workers

    @property
    def is_production(self) -> bool:
        return self.env == "production"

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
