"""The JSON API under /api/v1: flask-smorest, bearer tokens, one error shape, OpenAPI 3.

A feature adds endpoints with a flask_smorest.Blueprint whose url_prefix starts with /api/v1,
named in BLUEPRINTS below. Every request under /api needs a bearer token (mdfledger.api.auth)
except the document at GET /api/v1/openapi.json. There is no Swagger or ReDoc page:
flask-smorest would load them from a CDN.
"""

from __future__ import annotations

import importlib

import flask_smorest
from flask import Flask

from mdfledger.api.auth import authenticate_request
from mdfledger.api.errors import ApiErrorSchema, register_error_handlers

API_PREFIX = "/api/v1"

# Every feature's API blueprint as "module:attribute", imported when the app is built (so feature
# modules may import mdfledger.api freely). Add yours here.
BLUEPRINTS = (
    "mdfledger.api.me:blp",
    "mdfledger.api.programs:blp",
    "mdfledger.api.partners:blp",
    "mdfledger.api.audit:blp",
    "mdfledger.api.requests:blp",
    "mdfledger.api.claims:blp",
    "mdfledger.api.verification:blp",
    "mdfledger.api.payouts:blp",
    "mdfledger.api.signals:blp",
    "mdfledger.api.engagement:blp",
    "mdfledger.api.statements:blp",
    "mdfledger.api.exports:blp",
)


class Api(flask_smorest.Api):
    ERROR_SCHEMA = ApiErrorSchema  # what the document says errors look like

    def _register_error_handlers(self) -> None:
        # flask-smorest's own handler would answer every HTTP error of the app, pages
        # included, in its own shape; ours answers only under /api.
        register_error_handlers(self._app)


def init_app(app: Flask) -> Api:
    app.config.update(
        API_TITLE="mdfledger",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX=API_PREFIX,
        OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS={"security": [{"bearerAuth": []}]},  # every operation needs a token
    )
    api = Api(app)
    api.spec.components.security_scheme(
        "bearerAuth",
        {"type": "http", "scheme": "bearer", "description": "An mdfledger API token (mdf_...)"},
    )
    app.extensions["mdfledger.api"] = api
    app.before_request(authenticate_request)
    for name in BLUEPRINTS:
        module, _, attribute = name.partition(":")
        register_blueprint(app, getattr(importlib.import_module(module), attribute))
    return api


def register_blueprint(app: Flask, blueprint: flask_smorest.Blueprint) -> None:
    """Serve and document an API blueprint (init_app does it for BLUEPRINTS). Before any request.

    Its routes must lie under /api/v1, where authentication happens; it is exempt from CSRF,
    which protects cookies, and the API does not read cookies.
    """
    from mdfledger.extensions import csrf

    prefix = blueprint.url_prefix or ""
    if prefix != API_PREFIX and not prefix.startswith(API_PREFIX + "/"):
        raise ValueError(f"API blueprint {blueprint.name!r} needs a url_prefix under {API_PREFIX}")
    app.extensions["mdfledger.api"].register_blueprint(blueprint)
    csrf.exempt(blueprint)
