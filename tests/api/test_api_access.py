"""Who may call what: every endpoint of the programs API for each role and without a token, and
a partner's token against another partner's objects. On SQLite and PostgreSQL."""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from mdfledger.actor import Actor
from mdfledger.audit import AuditEntry
from mdfledger.clock import utcnow
from mdfledger.ledger.models import Transfer
from tests.api.test_api_foundation import answer
from tests.api.test_claims_api import direct_claim
from tests.api.test_exports_api import add_exports_world
from tests.api.test_programs_api import World, build_world, ok
from tests.api.test_requests_api import add_claims_world, proposal
from tests.engagement.test_api import engagement_ids
from tests.payouts.test_api import BANK, add_payouts_world
from tests.samples import pdf_bytes


@pytest.fixture
def world(
    database_url: str, tmp_path: Path, session_factory: sessionmaker[Session], actor: Actor
) -> Iterator[World]:
    for built in build_world(database_url, tmp_path, session_factory, actor):
        # requests, claims and documents of ACME and BOLT; their payout details and payouts
        yield add_exports_world(add_payouts_world(add_claims_world(built)))


ALL = frozenset({"admin", "finance", "auditor", "partner"})
STAFF = frozenset({"admin", "finance", "auditor"})
MANAGERS = frozenset({"admin", "finance"})
PARTNER = frozenset({"partner"})


Request = Callable[[World], dict[str, Any]]  # the test client's keyword arguments
RULES = {  # a program's verification rules (the defaults)
    "auto_approve_up_to": None, "tolerance_bp": 100, "invoice_grace_days": 30,
    "page_markers": ["{partner}"], "min_leads": None, "recheck_days": 30,
}  # fmt: skip
SIGNALS = {  # a program's partner signal thresholds (the defaults)
    "active": True, "no_sign_in_days": 30, "no_activity_days": 45, "expiry_warning_days": 30,
    "deadline_warning_days": 14, "milestones": [25, 50, 75, 100],
}  # fmt: skip


def _csv(content: str, **form: str) -> Request:
    def request(world: World) -> dict[str, Any]:
        data = {"file": (io.BytesIO(content.encode()), "upload.csv"), **form}
        return {"data": data, "content_type": "multipart/form-data"}

    return request


def _file(content: bytes, name: str, **form: str) -> Request:
    def request(world: World) -> dict[str, Any]:
        data = {"file": (io.BytesIO(content), name), **form}
        return {"data": data, "content_type": "multipart/form-data"}

    return request


def _json(**body: Any) -> Request:
    return lambda world: {"json": body}


def _nothing(world: World) -> dict[str, Any]:
    return {}


def _statement(world: World) -> dict[str, Any]:
    day = utcnow().date()
    return {"partner_id": world.acme, "start": f"{day.year}-01-01", "end": day.isoformat()}


@dataclass(frozen=True)
class Case:
    method: str
    rule: str  # as Flask spells it
    allowed: frozenset[str]
    status: int  # for the allowed roles
    request: Request = _nothing  # the body, valid for an allowed role
    program: str = "mdf"  # the program in the path
    # Other world objects than IDS names, where a call needs one in a given state:
    # (("request_id", "request_returned"),) puts world.request_returned in the path.
    objects: tuple[tuple[str, str], ...] = ()

    def path(self, world: World) -> str:
        ids = {name: get(world) for name, get in IDS.items()}
        ids["program_id"] = world.ids[self.program]
        ids.update((name, world.ids[key]) for name, key in self.objects)
        return re.sub(r"<int:(\w+)>", lambda m: str(ids[m.group(1)]), self.rule)


# The ids in a path: objects of ACME, the partner token's own partner.
IDS: dict[str, Callable[[World], int]] = {
    "activity_id": lambda w: w.webinar,
    "partner_id": lambda w: w.acme,
    "fund_id": lambda w: w.acme_fund,
    "allocation_id": lambda w: w.acme_allocation,
    "import_id": lambda w: w.imp,
    "entry_id": lambda w: _audit_entry_about(w, w.acme),
    "request_id": lambda w: w.request,  # submitted
    "claim_id": lambda w: w.claim,  # a draft with proof
    "document_id": lambda w: w.document,  # the draft's invoice
    "payout_id": lambda w: w.payout,  # pending, manual
    "destination_id": lambda w: engagement_ids(w)["destination"],  # ACME's webhook
    "export_id": lambda w: w.export,  # ACME's user's ready statement export
}


def _audit_entry_about(world: World, partner_id: int) -> int:
    with world.sessions() as session:
        found = session.scalar(
            select(func.max(AuditEntry.id)).where(AuditEntry.subject_partner_id == partner_id)
        )
    assert found is not None
    return found


CASES = [
    Case("GET", "/api/v1/me", ALL, 200),
    Case("GET", "/api/v1/programs", ALL, 200),
    Case(
        "POST",
        "/api/v1/programs",
        MANAGERS,
        201,
        _json(code="NEWP", name="New", kind="mdf", currency="USD"),
    ),
    Case("GET", "/api/v1/programs/<int:program_id>", ALL, 200),
    Case("PATCH", "/api/v1/programs/<int:program_id>", MANAGERS, 200, _json(description="d")),
    Case(
        "POST",
        "/api/v1/programs/<int:program_id>/activities",
        MANAGERS,
        201,
        _json(code="ADS", name="Ads", proof=["invoice"]),
    ),
    Case(
        "PATCH",
        "/api/v1/programs/<int:program_id>/activities/<int:activity_id>",
        MANAGERS,
        200,
        _json(active=False),
    ),
    Case(
        "PUT",
        "/api/v1/programs/<int:program_id>/rates",
        MANAGERS,
        200,
        _json(rate_percent="1"),
        program="coop",
    ),
    Case(
        "POST",
        "/api/v1/programs/<int:program_id>/budget",
        MANAGERS,
        201,
        _json(amount="10.00", reason="r"),
    ),
    Case("GET", "/api/v1/programs/<int:program_id>/utilisation", STAFF, 200),
    Case("GET", "/api/v1/programs/<int:program_id>/verification", STAFF, 200),
    Case(
        "PUT",
        "/api/v1/programs/<int:program_id>/verification",
        MANAGERS,
        200,
        _json(**RULES),
    ),
    Case(
        "POST",
        "/api/v1/programs/<int:program_id>/imports/allocations",
        MANAGERS,
        201,
        _csv("partner,amount\nACME,1.00\n"),
    ),
    Case(
        "POST",
        "/api/v1/programs/<int:program_id>/imports/purchases",
        MANAGERS,
        201,
        _csv(f"partner,reference,date,amount\nACME,I-1,{utcnow().date()},10.00\n"),
        program="coop",
    ),
    Case("GET", "/api/v1/imports", STAFF, 200),
    Case("GET", "/api/v1/imports/<int:import_id>", STAFF, 200),
    Case("GET", "/api/v1/partners", ALL, 200),
    Case(
        "POST",
        "/api/v1/partners",
        MANAGERS,
        201,
        _json(code="NEWCO", name="New Co", type="agency", tier="gold", region="NA"),
    ),
    Case("GET", "/api/v1/partners/<int:partner_id>", ALL, 200),
    Case("PATCH", "/api/v1/partners/<int:partner_id>", MANAGERS, 200, _json(region="LATAM")),
    Case(
        "POST",
        "/api/v1/partners/<int:partner_id>/contacts",
        MANAGERS,
        201,
        _json(name="Cy", email="cy@acme.example"),
    ),
    Case("GET", "/api/v1/partners/<int:partner_id>/balances", ALL, 200),
    Case("GET", "/api/v1/partners/<int:partner_id>/balances/<int:program_id>", ALL, 200),
    Case("GET", "/api/v1/allocations", ALL, 200),
    Case(
        "POST",
        "/api/v1/allocations",
        MANAGERS,
        201,
        lambda w: {
            "json": {"program_id": w.mdf, "partner_id": w.acme, "amount": "5.00", "reason": "r"}
        },
    ),
    Case(
        "POST",
        "/api/v1/funds/<int:fund_id>/adjustments",
        MANAGERS,
        201,
        _json(amount="-5.00", reason="r"),
    ),
    Case(
        "POST",
        "/api/v1/allocations/<int:allocation_id>/reversal",
        MANAGERS,
        201,
        _json(reason="r"),
    ),
    Case("GET", "/api/v1/audit", STAFF, 200),
    Case("GET", "/api/v1/audit/<int:entry_id>", STAFF, 200),
    # fund requests and claims (the objects: tests/api/test_requests_api.add_claims_world)
    Case("GET", "/api/v1/requests", ALL, 200),
    Case("POST", "/api/v1/requests", PARTNER, 201, lambda w: {"json": proposal(w)}),
    Case("GET", "/api/v1/requests/<int:request_id>", ALL, 200),
    Case(
        "PATCH",
        "/api/v1/requests/<int:request_id>",
        PARTNER,
        200,
        _json(title="Spring ads, revised"),
        objects=(("request_id", "request_returned"),),
    ),
    Case("POST", "/api/v1/requests/<int:request_id>/approve", MANAGERS, 200, _json(amount="50.00")),
    Case(
        "POST",
        "/api/v1/requests/<int:request_id>/return",
        MANAGERS,
        200,
        _json(reason_code="other", message="Which keywords?"),
        objects=(("request_id", "request_b"),),
    ),
    Case(
        "POST",
        "/api/v1/requests/<int:request_id>/reject",
        MANAGERS,
        200,
        _json(reason_code="not_eligible", message="Not in the plan"),
        objects=(("request_id", "request_b"),),
    ),
    Case(
        "POST",
        "/api/v1/requests/<int:request_id>/withdraw",
        PARTNER,
        200,
        _json(message="Plans changed"),
        objects=(("request_id", "request_c"),),
    ),
    Case(
        "POST",
        "/api/v1/requests/<int:request_id>/resubmit",
        PARTNER,
        200,
        _json(message="Keywords added"),
        objects=(("request_id", "request_returned"),),
    ),
    Case("GET", "/api/v1/claims", ALL, 200),
    Case("POST", "/api/v1/claims", PARTNER, 201, lambda w: {"json": direct_claim(w)}),
    Case("GET", "/api/v1/claims/<int:claim_id>", ALL, 200),
    Case("PATCH", "/api/v1/claims/<int:claim_id>", PARTNER, 200, _json(title="Ads, revised")),
    Case(
        "POST",
        "/api/v1/claims/<int:claim_id>/documents",
        PARTNER,
        201,
        _file(pdf_bytes("Lead list"), "leads.pdf", kind="other"),
    ),
    Case(
        "POST",
        "/api/v1/claims/<int:claim_id>/links",
        PARTNER,
        201,
        _json(url="https://acme.example/ads", kind="landing_page"),
    ),
    Case("GET", "/api/v1/claims/<int:claim_id>/documents/<int:document_id>/content", ALL, 200),
    Case(
        "DELETE",
        "/api/v1/claims/<int:claim_id>/documents/<int:document_id>",
        PARTNER,
        200,
        objects=(("document_id", "spare_document"),),
    ),
    Case(
        "POST",
        "/api/v1/claims/<int:claim_id>/submit",
        PARTNER,
        200,
        objects=(("claim_id", "claim_ready"),),
    ),
    Case(
        "POST",
        "/api/v1/claims/<int:claim_id>/withdraw",
        PARTNER,
        200,
        objects=(("claim_id", "claim_d"),),
    ),
    Case(
        "POST",
        "/api/v1/claims/<int:claim_id>/approve",
        MANAGERS,
        200,
        objects=(("claim_id", "claim_a"),),
    ),
    Case(
        "POST",
        "/api/v1/claims/<int:claim_id>/return",
        MANAGERS,
        200,
        _json(reason_code="insufficient_proof", message="Add the ads"),
        objects=(("claim_id", "claim_b"),),
    ),
    Case(
        "POST",
        "/api/v1/claims/<int:claim_id>/reject",
        MANAGERS,
        200,
        _json(reason_code="duplicate", message="Claimed before"),
        objects=(("claim_id", "claim_c"),),
    ),
    Case(
        "POST",
        "/api/v1/claims/bulk-approve",
        MANAGERS,
        200,
        lambda w: {"json": {"claim_ids": [w.claim_d]}},
    ),
    # verification (a claim's checks; claim_d is decided by now for the managers)
    Case("GET", "/api/v1/claims/<int:claim_id>/checks", ALL, 200),
    Case(
        "POST",
        "/api/v1/claims/<int:claim_id>/checks/rerun",
        MANAGERS,
        202,
        _json(kind="dates"),
        objects=(("claim_id", "claim_d"),),
    ),
    # payouts (tests/payouts/test_api.add_payouts_world)
    Case("GET", "/api/v1/partners/<int:partner_id>/payout-details", ALL, 200),
    Case(
        "PUT",
        "/api/v1/partners/<int:partner_id>/payout-details",
        MANAGERS | PARTNER,
        200,
        _json(**BANK),
    ),
    Case("GET", "/api/v1/programs/<int:program_id>/payout-policy", STAFF, 200),
    Case(
        "PUT",
        "/api/v1/programs/<int:program_id>/payout-policy",
        frozenset({"admin"}),
        200,
        _json(provider="manual", schedule="immediate"),
    ),
    Case("GET", "/api/v1/payouts", ALL, 200),
    Case("GET", "/api/v1/payouts/payable", ALL, 200),
    Case("GET", "/api/v1/payouts/<int:payout_id>", ALL, 200),
    Case("POST", "/api/v1/payouts/run", MANAGERS, 201, _json()),
    Case(
        "POST",
        "/api/v1/payouts/<int:payout_id>/mark-sent",
        MANAGERS,
        200,
        _json(reference="BANK-1"),
        objects=(("payout_id", "payout_send"),),
    ),
    Case(
        "POST",
        "/api/v1/payouts/<int:payout_id>/mark-settled",
        MANAGERS,
        200,
        _json(reference="BANK-2"),
        objects=(("payout_id", "payout_settle"),),
    ),
    Case(
        "POST",
        "/api/v1/payouts/<int:payout_id>/mark-failed",
        MANAGERS,
        200,
        _json(reason="returned"),
        objects=(("payout_id", "payout_fail"),),
    ),
    Case(
        "POST",
        "/api/v1/payouts/<int:payout_id>/retry",
        MANAGERS,
        200,
        objects=(("payout_id", "payout_retry"),),
    ),
    Case(
        "POST",
        "/api/v1/payouts/<int:payout_id>/cancel",
        MANAGERS,
        200,
        _json(reason="given up"),
        objects=(("payout_id", "payout_cancel"),),
    ),
    Case("GET", "/api/v1/payouts/payment-file", MANAGERS, 200),
    # partner signals
    Case("GET", "/api/v1/partners/at-risk", MANAGERS, 200),
    Case("GET", "/api/v1/programs/<int:program_id>/signals", STAFF, 200),
    Case(
        "PUT",
        "/api/v1/programs/<int:program_id>/signals",
        frozenset({"admin"}),
        200,
        _json(**SIGNALS),
    ),
    # engagement: destinations, deliveries, events (tests/engagement/test_api.engagement_ids)
    Case("GET", "/api/v1/destinations", STAFF, 200),
    Case(
        "POST",
        "/api/v1/destinations",
        frozenset({"admin"}),
        201,
        _json(name="Ops", kind="email", email_to=["ops@vendor.example"]),
    ),
    Case("GET", "/api/v1/destinations/<int:destination_id>", STAFF, 200),
    Case(
        "PATCH",
        "/api/v1/destinations/<int:destination_id>",
        frozenset({"admin"}),
        200,
        _json(name="Acme Salesforce"),
    ),
    Case("GET", "/api/v1/deliveries", STAFF, 200),
    Case(
        "POST",
        "/api/v1/deliveries/replay",
        MANAGERS,
        200,
        lambda w: {"json": {"delivery_ids": [engagement_ids(w)["dead_delivery"]]}},
    ),
    Case("GET", "/api/v1/events", ALL, 200),
    # exports (tests/api/test_exports_api.add_exports_world); a partner may not export journals
    Case("POST", "/api/v1/exports", STAFF, 202, _json(kind="journal", format="hledger")),
    Case("GET", "/api/v1/exports", ALL, 200),
    Case("GET", "/api/v1/exports/<int:export_id>", ALL, 200),
    Case("GET", "/api/v1/exports/<int:export_id>/file", ALL, 200),
    Case("GET", "/api/v1/audit/export", STAFF, 200),
    # statements (a partner token reads its own partner's)
    Case("GET", "/api/v1/statements", ALL, 200, lambda w: {"query_string": _statement(w)}),
    Case(
        "GET",
        "/api/v1/statements/file",
        ALL,
        200,
        lambda w: {"query_string": {**_statement(w), "format": "csv"}},
    ),
]


def test_the_matrix_covers_every_endpoint(world: World) -> None:
    served = {
        (method, rule.rule)
        for rule in world.app.url_map.iter_rules()
        if rule.rule.startswith("/api/v1/") and rule.endpoint != "api-docs.openapi_json"
        for method in rule.methods or ()
        if method not in ("HEAD", "OPTIONS")
    }
    assert {(case.method, case.rule) for case in CASES} == served


@pytest.mark.parametrize("role", [*sorted(ALL), None])
def test_each_role_may_call_what_it_may_and_nothing_else(world: World, role: str | None) -> None:
    wrong: list[str] = []
    for case in CASES:
        if role is None:
            expected, code = 401, "unauthorized"
        elif role in case.allowed:
            expected, code = case.status, None
        else:
            expected, code = 403, "forbidden"
        response = world.call(role, case.method, case.path(world), **case.request(world))
        got = response.status_code
        if got != expected or (code and response.json["error"]["code"] != code):
            wrong.append(f"{case.method} {case.rule}: {got}, not {expected}: {response.json}")
    assert wrong == []


# --- another partner's objects -------------------------------------------------------------------

BOLT_SECRETS = ("BOLT", "Bolt Systems", "bo@bolt.example", "EMEA", "2500.00", "Bolt launch")


def leaks(text: str) -> list[str]:
    return [secret for secret in BOLT_SECRETS if secret in text]


def test_a_partner_token_cannot_read_another_partners_objects(world: World) -> None:
    for path in (
        f"/api/v1/partners/{world.bolt}",
        f"/api/v1/partners/{world.bolt}/balances",
        f"/api/v1/partners/{world.bolt}/balances/{world.mdf}",
    ):
        response = world.get("partner", path)
        text = response.get_data(as_text=True)
        assert response.status_code == 404, (path, text)
        assert response.json["error"]["code"] == "not_found"
        assert leaks(text) == [], path
        # Exactly what an id that exists nowhere gets: the response tells nothing.
        nowhere = world.get("partner", path.replace(f"/partners/{world.bolt}", "/partners/999"))
        assert nowhere.status_code == 404
        assert answer(response) == answer(nowhere).replace("999", str(world.bolt))


def test_a_partner_tokens_lists_hold_its_own_partner_only(world: World) -> None:
    for query in (
        f"/api/v1/allocations?partner_id={world.bolt}",
        f"/api/v1/allocations?partner_id={world.bolt}&program_id={world.mdf}",
        "/api/v1/partners?search=bolt",
        "/api/v1/partners?region=EMEA",
    ):
        response = world.get("partner", query)
        page = ok(response)
        assert (page["items"], page["total"], page["pages"]) == ([], 0, 0), query
        assert leaks(response.get_data(as_text=True)) == [], query
    for path in ("/api/v1/allocations", "/api/v1/partners", "/api/v1/programs"):
        response = world.get("partner", path)
        ok(response)
        assert leaks(response.get_data(as_text=True)) == [], path
    mine = ok(world.get("partner", "/api/v1/allocations"))["items"]
    assert {a["partner_id"] for a in mine} == {world.acme}
    # The other way round, too: BOLT's user sees BOLT only.
    theirs = ok(world.get("bolt", "/api/v1/allocations"))["items"]
    assert {a["partner_id"] for a in theirs} == {world.bolt}
    assert world.get("bolt", f"/api/v1/partners/{world.acme}").status_code == 404


def test_a_partner_token_cannot_touch_any_partners_money(world: World) -> None:
    before = world.count(Transfer)
    writes = [
        ("POST", "/api/v1/funds/{}/adjustments", (world.bolt_fund, world.acme_fund, 999),
         {"amount": "5.00", "reason": "mine now"}),
        ("POST", "/api/v1/allocations/{}/reversal", (world.bolt_allocation,
         world.acme_allocation, 999), {"reason": "undo"}),
        ("PATCH", "/api/v1/partners/{}", (world.bolt, world.acme, 999), {"name": "Mine"}),
        ("POST", "/api/v1/partners/{}/contacts", (world.bolt, world.acme, 999),
         {"name": "Eve", "email": "eve@example.com"}),
    ]  # fmt: skip
    for method, template, (theirs, own, nowhere), body in writes:
        bodies = set()
        for object_id in (theirs, own, nowhere):
            response = world.call("partner", method, template.format(object_id), json=body)
            text = response.get_data(as_text=True)
            assert response.status_code == 403, (template, object_id, text)
            assert leaks(text) == []
            bodies.add(answer(response))
        # Whose object it is, or whether it exists, makes no difference to the answer.
        assert len(bodies) == 1, (template, bodies)
    assert world.count(Transfer) == before
    for path in (f"/api/v1/programs/{world.mdf}/utilisation", f"/api/v1/imports/{world.imp}"):
        response = world.get("partner", path)
        assert response.status_code == 403
        assert leaks(response.get_data(as_text=True)) == []
