"""schemathesis against the live app: every operation of the OpenAPI document, with a token per
role, over a world with programs, partners, requests, claims, documents, payouts and events.
On SQLite and PostgreSQL (where an id of 2**63 or a NUL in a string is a classic 500).

The app runs in a real HTTP server on 127.0.0.1; the document is read from it. Each operation
gets a few generated requests, valid and invalid ones, with generated ids in the path (mostly
of nothing) or the world's own (so bodies reach the services). Checks: no 5xx, every status
documented, content types and bodies as documented. Seeded: a run repeats exactly.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from werkzeug.serving import WSGIRequestHandler, make_server

from tests.api import test_api_access
from tests.api.test_api_access import IDS
from tests.api.test_programs_api import World

# Requests per operation, role and mode (valid, invalid): 4 makes about 700 a role, about 40 s
# a database for the four roles (worlds included). More finds more, slowly: 30 and 100 passed
# too (5 and 11 minutes on PostgreSQL); MDFLEDGER_SCHEMATHESIS_EXAMPLES=100 runs them by hand.

EXAMPLES = int(os.environ.get("MDFLEDGER_SCHEMATHESIS_EXAMPLES") or 4)
ROLES = ("admin", "finance", "auditor", "partner")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
MODES = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
# Every request carries the role's token: no generated Authorization header replaces it (the
# token checks have their own tests, and wrong tokens would soon be rate-limited).
CONFIG = schemathesis.Config.from_dict({"generation": {"with-security-parameters": False}})
SETTINGS = settings(
    max_examples=EXAMPLES,
    derandomize=True,  # the same requests every run
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: the first failure is reported
    suppress_health_check=list(HealthCheck),
)


world = test_api_access.world  # the access matrix's world: every kind of object, each role


class QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: Any) -> None:
        pass  # thousands of access lines would bury a failure's report


@pytest.fixture
def live(world: World) -> Iterator[str]:
    """The app behind a real HTTP server on a free loopback port: its base URL."""
    world.app.config["PROPAGATE_EXCEPTIONS"] = False  # a crash answers as in production: a 500
    server = make_server("127.0.0.1", 0, world.app, threaded=True, request_handler=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="live-app", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()
    server.server_close()


def _known_ids(world: World) -> dict[str, int]:
    ids = {name: get(world) for name, get in IDS.items()}
    ids["program_id"] = world.ids["mdf"]
    return ids


def _served(world: World) -> set[str]:
    return {
        f"{method} {rule.rule.replace('<int:', '{').replace('>', '}')}"
        for rule in world.app.url_map.iter_rules()
        if rule.rule.startswith("/api/v1/") and rule.endpoint != "api-docs.openapi_json"
        for method in rule.methods or ()
        if method not in ("HEAD", "OPTIONS")
    }


@pytest.mark.parametrize("role", ROLES)
def test_every_operation_keeps_to_its_documented_responses(
    world: World, live: str, role: str
) -> None:
    schema = schemathesis.openapi.from_url(f"{live}/api/v1/openapi.json", config=CONFIG)
    headers = {"Authorization": f"Bearer {world.tokens[role]}"}
    known = _known_ids(world)
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} == _served(world)  # all of them, nothing hidden
    for operation in operations:
        names = {p.name for p in operation.path_parameters}
        path_ids = {name: known[name] for name in names}
        for mode in MODES:
            strategies = [operation.as_strategy(generation_mode=mode)]
            if names:
                strategies.append(
                    operation.as_strategy(generation_mode=mode, path_parameters=path_ids)
                )

            @SETTINGS
            @given(case=st.one_of(strategies))
            def run(case: Any) -> None:
                case.call_and_validate(base_url=live, headers=headers, checks=CHECKS)

            try:
                run()
            except Unsatisfiable:  # nothing to make invalid: no parameters, no body
                assert mode == schemathesis.GenerationMode.NEGATIVE, operation.label
            except (Exception, BaseExceptionGroup) as exc:  # every operation's, not the first
                failures.append(f"{operation.label} ({mode}): {exc}")
    assert failures == [], "\n\n".join(failures)
