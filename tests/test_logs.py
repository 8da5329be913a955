"""Request ids in every log line and every error: records made while serving a request carry
its id, API errors and error pages show the id the X-Request-Id header names, the development
server's access lines carry it, and Celery jobs run under the id of the request that sent them.
"""

from __future__ import annotations

import logging
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from mdfledger import audit, create_app, jobs, logs
from mdfledger.config import Settings
from tests.api import test_api_foundation
from tests.api.test_api_foundation import Tokens, assert_error, bearer

app = test_api_foundation.app  # the API's test blueprint (a crash at /api/v1/test/boom)
tokens = test_api_foundation.tokens


def _ids(caplog: pytest.LogCaptureFixture, message: str) -> list[str]:
    return [r.request_id for r in caplog.records if r.getMessage() == message]  # type: ignore[attr-defined]


def test_a_record_logged_while_serving_a_request_carries_its_id(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app({"database_url": database_url, "env": "test", "instance_path": tmp_path})

    @app.get("/log-something")
    def log_something() -> str:
        logging.getLogger("mdfledger.anything").warning("looked at something")
        return "done"

    caplog.set_level(logging.INFO)
    client = app.test_client()
    first = client.get("/log-something")
    second = client.get("/log-something", headers={"X-Request-Id": "trace-7"})
    assert _ids(caplog, "looked at something") == [first.headers["X-Request-Id"], "trace-7"]
    logging.getLogger("mdfledger.anything").warning("outside any request")
    assert _ids(caplog, "outside any request") == [logs.NO_REQUEST]
    assert second.get_data(as_text=True) == "done"
    line = logs.Formatter().format(caplog.records[-1])
    assert "[-] mdfledger.anything: outside any request" in line


def test_api_errors_name_the_request_as_the_header_does(
    app: Flask, tokens: Tokens, caplog: pytest.LogCaptureFixture
) -> None:
    app.config["PROPAGATE_EXCEPTIONS"] = False  # a crash answers as in production
    client = app.test_client()
    headers = bearer(tokens["finance"])
    given = {}
    for path, status, code in (
        ("/api/v1/no-such-thing", 404, "not_found"),
        ("/api/v1/test/users?page=0", 422, "validation_error"),
        ("/api/v1/test/boom", 500, "internal_error"),
        ("/api/v1/me", 401, "unauthorized"),
    ):
        response = client.get(path, headers=headers if status != 401 else {})
        error = assert_error(response, status, code)  # request_id == the header's
        given[status] = error["request_id"]
    assert len(set(given.values())) == 4
    # The crash's traceback in the log carries the id the client was given.
    crashed = [r for r in caplog.records if r.levelno == logging.ERROR and r.exc_info]
    assert [r.request_id for r in crashed] == [given[500]]  # type: ignore[attr-defined]


def test_error_pages_show_the_request_id(app: Flask, tokens: Tokens) -> None:
    @app.get("/crash-page")
    def crash_page() -> str:
        raise RuntimeError("a page crashed")

    app.config["PROPAGATE_EXCEPTIONS"] = False
    client = app.test_client()
    for path, status in (("/no-such-page", 404), ("/crash-page", 500)):
        response = client.get(path)
        assert response.status_code == status
        page = response.get_data(as_text=True)
        assert f"Request id: <code>{response.headers['X-Request-Id']}</code>" in page, path
        assert "a page crashed" not in page
    quoted = client.get("/no-such-page", headers={"X-Request-Id": "ticket-1234"})
    assert "Request id: <code>ticket-1234</code>" in quoted.get_data(as_text=True)


@pytest.fixture
def live(app: Flask) -> Iterator[str]:
    """The app in the development server with `mdfledger serve`'s request handler."""
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=logs.RequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()
    server.server_close()


def test_the_development_servers_access_lines_carry_the_request_id(
    live: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="werkzeug")
    request = urllib.request.Request(f"{live}/healthz", headers={"X-Request-Id": "trace-42"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["X-Request-Id"] == "trace-42"
    lines = [r for r in caplog.records if r.name == "werkzeug" and "/healthz" in r.getMessage()]
    assert [r.request_id for r in lines] == ["trace-42"]  # type: ignore[attr-defined]


# --- Celery -------------------------------------------------------------------------------------


@pytest.fixture
def celery(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, list[dict[str, Any]]]:
    """A Celery app with a probe job that notes the request id and logs a line."""
    seen: list[dict[str, Any]] = []

    def probe(ctx: Any, *, n: int, final: bool = True) -> None:
        logging.getLogger("mdfledger.jobs").info("probe %d ran", n)
        seen.append({"n": n, "request_id": audit.current_request_id()})

    monkeypatch.setitem(jobs.JOBS, "probe", probe)
    settings = Settings(
        jobs="celery", broker_url="redis://127.0.0.1:6379/0", instance_path=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'jobs.sqlite3'}",
    )  # fmt: skip
    return jobs.celery_app(settings), seen


def test_a_job_sent_to_celery_carries_the_request_id_and_runs_under_it(
    celery: tuple[Any, list[dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    celery_app, seen = celery
    runner = jobs.CeleryRunner.__new__(jobs.CeleryRunner)
    runner.app, runner.queue = celery_app, "mdfledger"
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(celery_app, "send_task", lambda name, **options: sent.append(options))
    with audit.request_id_scope("req-77"):
        runner("probe", {"n": 1})
    runner("probe", {"n": 2})  # from no request (a command without a scope)
    assert [s["headers"] for s in sent] == [{jobs.REQUEST_ID_HEADER: "req-77"}, None]
    # The worker's side: what it received, run as Celery runs it.
    caplog.set_level(logging.INFO, logger="mdfledger.jobs")
    task = celery_app.tasks["mdfledger.probe"]
    for options in sent:
        task.apply(kwargs=options["kwargs"], headers=options["headers"])
    assert seen[0] == {"n": 1, "request_id": "req-77"}
    assert seen[1]["n"] == 2 and audit.valid_request_id(seen[1]["request_id"])  # its own
    assert seen[1]["request_id"] != "req-77"
    assert _ids(caplog, "probe 1 ran") == ["req-77"]
    assert _ids(caplog, "probe 2 ran") == [seen[1]["request_id"]]
    assert audit.current_request_id() is None
    assert "[%(request_id)s]" in celery_app.conf.worker_task_log_format
