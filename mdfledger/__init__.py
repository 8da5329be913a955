"""mdfledger: a double-entry funds ledger for market development funds and co-op programs."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from flask import Flask

from mdfledger.config import Settings
from mdfledger.errors import DomainError


def create_app(config: Settings | Mapping[str, Any] | None = None) -> Flask:
    """config -> extensions -> blueprints -> CLI -> errors. `config` overrides the environment."""
    if isinstance(config, Settings):
        settings = config
    else:
        settings = dataclasses.replace(Settings.from_env(), **dict(config or {}))
    settings.validate()
    settings.instance_path.mkdir(parents=True, exist_ok=True)

    app = Flask(__name__, instance_path=str(settings.instance_path))
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MDFLEDGER=settings,
        TESTING=settings.env == "test",
        RATELIMIT_STORAGE_URI=settings.ratelimit_storage_url,
        # Bigger bodies get 413 at once: room for five proof files of the upload limit in one
        # request (a CSV import is capped lower, at csvfile.MAX_BYTES).
        MAX_CONTENT_LENGTH=5 * settings.upload_max_bytes + 1024 * 1024,
    )

    from mdfledger import db
    from mdfledger.extensions import csrf, limiter, login_manager

    db.init_app(app, settings.database_url, echo=settings.sql_echo)
    from mdfledger import storage

    app.extensions[storage.APP_KEY] = storage.store_from_settings(settings)
    from mdfledger import engagement, jobs, payouts

    payouts.init_app(app, settings)  # Stripe Connect when configured, the manual provider always
    app.extensions[engagement.APP_KEY] = engagement.senders_from_settings(settings)

    jobs.init_app(app, settings, app.extensions[storage.APP_KEY])
    from mdfledger.audit import requests as request_ids

    request_ids.init_app(app)  # first of the before_request hooks: every response gets its id
    from mdfledger import logs, security

    logs.init_app(app)  # every log record carries the request id
    security.init_app(app, settings)  # security headers, cookie flags
    csrf.init_app(app)
    login_manager.init_app(app)
    limiter.init_app(app)

    from mdfledger import api
    from mdfledger.auth.web import bp as auth_bp
    from mdfledger.web import bp as web_bp

    app.register_blueprint(web_bp)
    app.register_blueprint(auth_bp)
    api.init_app(app)  # /api/v1: bearer tokens, JSON errors, the OpenAPI document

    from mdfledger.cli import register_commands

    register_commands(app)

    from mdfledger.api.errors import domain_error

    app.register_error_handler(DomainError, domain_error)  # pages have their own (web/errors.py)

    return app
