"""Every log record carries the id of the request, command or job it was written in.

`install()` wraps the log record factory, so every record — ours, Flask's, werkzeug's, Celery's,
and those pytest captures — has `request_id`: the audit log's request-id contextvar
(mdfledger.audit.current_request_id), or "-" outside a request. FORMAT shows it; `init_app`
puts it on the app's default handler and `configure` on the root logger (`mdfledger serve`).
A line in the log and an error a user quotes ("Request id: ...") find each other.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import Any

from flask import Flask, g, request
from flask.logging import default_handler
from werkzeug.serving import WSGIRequestHandler

from mdfledger.audit.service import current_request_id, request_id_scope

NO_REQUEST = "-"
FORMAT = "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"
ENVIRON_KEY = "mdfledger.request_id"  # for the access log line, written after the request
_MARK = "_mdfledger_request_id"


def install() -> None:
    """Add `request_id` to every log record made from now on, in this process. Idempotent."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, _MARK, False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        record.request_id = current_request_id() or NO_REQUEST
        return record

    setattr(factory, _MARK, True)
    logging.setLogRecordFactory(factory)


class Formatter(logging.Formatter):
    """FORMAT by default; a record made before `install` (or by a foreign factory) gets "-"."""

    def __init__(self, fmt: str = FORMAT, **kwargs: Any) -> None:
        super().__init__(fmt, **kwargs)

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "request_id"):
            record.request_id = NO_REQUEST
        return super().format(record)


def init_app(app: Flask) -> None:
    """Request ids on every record; the app's default handler (Flask's stderr handler, there
    when nothing else is configured) shows them. Register after the request-id hook."""
    install()
    if default_handler in app.logger.handlers:
        default_handler.setFormatter(Formatter())

    @app.before_request
    def _keep_for_the_access_log() -> None:
        request.environ[ENVIRON_KEY] = g.get("request_id")


def configure(level: int = logging.INFO) -> None:
    """For a long-running command (`mdfledger serve`): records of every logger to stderr with
    their request id, unless the root logger is configured already."""
    install()
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(Formatter())
    root.addHandler(handler)
    root.setLevel(level)
    # The app's records reach the root handler now: not twice.
    logging.getLogger("mdfledger").removeHandler(default_handler)


class RequestHandler(WSGIRequestHandler):
    """The development server's handler: its access line ("GET /claims 200") carries the
    request's id, although werkzeug writes it after the request has ended."""

    def log(self, type: str, message: str, *args: Any) -> None:
        request_id = (getattr(self, "environ", None) or {}).get(ENVIRON_KEY)
        with request_id_scope(request_id) if request_id else contextlib.nullcontext():
            super().log(type, message, *args)
