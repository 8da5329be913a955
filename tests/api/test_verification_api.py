"""Verification over the API: a claim's checks and history after it is submitted, running a
check again, bad input that runs nothing, another partner's claim, a program's rules, and the
OpenAPI document. On SQLite and PostgreSQL. The world: tests/api/test_requests_api.py.

Claims are submitted through the API: the app's in-process runner checks the proof right after
the submission commits, as in the embedded default."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from mdfledger import verification
from mdfledger.actor import Actor
from mdfledger.demo_proof import invoice_pdf
from tests.api.test_api_foundation import answer, assert_error, unresolved_refs
from tests.api.test_claims_api import direct_claim
from tests.api.test_programs_api import World, build_world, ok
from tests.api.test_requests_api import add_claims_world, today
from tests.samples import image_bytes


@pytest.fixture
def world(
    database_url: str, tmp_path: Path, session_factory: sessionmaker[Session], actor: Actor
) -> Iterator[World]:
    for built in build_world(database_url, tmp_path, session_factory, actor):
        yield add_claims_world(built)


def invoice(total: int = 30_000, issuer: str = "AdCo") -> bytes:
    return invoice_pdf(
        issuer=issuer, number="A-77", issued=today() - timedelta(days=1), bill_to="Acme Networks",
        items=(("Search ads", total),),
    )  # fmt: skip


def upload(world: World, claim_id: int, content: bytes, name: str, kind: str) -> dict[str, Any]:
    data = {"file": (io.BytesIO(content), name), "kind": kind}
    return ok(world.call(
        "partner", "POST", f"/api/v1/claims/{claim_id}/documents", data=data,
        content_type="multipart/form-data",
    ), 201)  # fmt: skip


def submitted(world: World, *, pdf: bytes | None = None, **changes: Any) -> dict[str, Any]:
    """A direct claim of ACME with its invoice, drafted, uploaded and submitted through the API
    (its proof is checked as the submission commits)."""
    claim = ok(world.post("partner", "/api/v1/claims", direct_claim(world, **changes)), 201)
    upload(world, claim["id"], pdf or invoice(), "A-77.pdf", "invoice")
    ok(world.post("partner", f"/api/v1/claims/{claim['id']}/submit", {}))
    return ok(world.get("partner", f"/api/v1/claims/{claim['id']}"))


def checks(world: World, claim_id: int, role: str = "finance") -> dict[str, Any]:
    return ok(world.get(role, f"/api/v1/claims/{claim_id}/checks"))


def results(world: World, claim_id: int | None = None) -> int:
    """How many check results were recorded (for one claim, when given)."""
    query = select(func.count()).select_from(verification.CheckResult)
    if claim_id is not None:
        query = query.where(verification.CheckResult.claim_id == claim_id)
    with world.sessions() as session:
        return session.scalar(query) or 0


def user_label(world: World, role: str) -> str:
    return f"user:{ok(world.get(role, '/api/v1/me'))['id']}"


# --- reading a claim's checks --------------------------------------------------------------------


def test_a_submitted_claims_checks_come_with_their_evidence(world: World) -> None:
    claim = submitted(world)
    assert claim["state"] == "in_review"  # the program approves every claim by hand
    seen = checks(world, claim["id"])
    assert (seen["claim_id"], seen["state"]) == (claim["id"], "in_review")
    latest = {c["kind"]: c for c in seen["checks"]}
    assert [c["kind"] for c in seen["checks"]] == ["invoice", "amount", "dates"]
    assert {(c["outcome"], c["runs"], c["trigger"]) for c in seen["checks"]} == {
        ("pass", 1, "submit")
    }
    assert latest["invoice"]["summary"].startswith("Invoice total 300.00 USD matches")
    document = latest["invoice"]["evidence"]["documents"][0]
    assert (document["filename"], document["issuer"]["value"]) == ("A-77.pdf", "AdCo")
    assert document["total"]["value"] == "300.00" and document["currency"]["value"] == "USD"
    assert 0 < document["total"]["confidence"] <= 100
    compared = latest["invoice"]["evidence"]
    assert (compared["sum"], compared["claimed_cost"], compared["tolerance"]) == (
        "300.00", "300.00", "3.00",
    )  # fmt: skip
    amount = latest["amount"]["evidence"]
    assert (amount["claimed"], amount["actual_cost"], amount["allowed"]) == (
        "150.00", "300.00", "150.00",
    )  # fmt: skip
    assert amount["verified_cost"] == "300.00" and amount["share_bp"] == 5000
    assert latest["dates"]["evidence"]["request_window"] is None
    assert [h["kind"] for h in seen["history"]] == ["dates", "amount", "invoice"]  # newest first
    assert {h["requested_by"] for h in seen["history"]} == {"system:verification"}
    assert "runs" not in seen["history"][0]

    # The partner reads its own claim's checks; the auditor too.
    for role in ("partner", "auditor"):
        assert checks(world, claim["id"], role) == seen


def test_another_partners_checks_are_not_found_like_an_unknown_claim(world: World) -> None:
    claim = submitted(world)
    theirs = world.get("bolt", f"/api/v1/claims/{claim['id']}/checks")
    assert_error(theirs, 404, "not_found")
    nowhere = world.get("bolt", "/api/v1/claims/999999/checks")
    assert answer(theirs) == answer(nowhere).replace("999999", str(claim["id"]))
    assert "AdCo" not in theirs.get_data(as_text=True)


def test_a_draft_has_no_checks_yet(world: World) -> None:
    seen = checks(world, world.claim, "partner")
    assert (seen["state"], seen["checks"], seen["history"]) == ("draft", [], [])


# --- running a check again -----------------------------------------------------------------------


def test_finance_runs_a_check_again_and_the_history_grows(world: World) -> None:
    claim = submitted(world)
    response = world.post(
        "finance", f"/api/v1/claims/{claim['id']}/checks/rerun", {"kind": "invoice"}
    )
    assert ok(response, 202) == {
        "claim_id": claim["id"], "kind": "invoice", "document_id": None,
        "checks_url": f"/api/v1/claims/{claim['id']}/checks",
    }  # fmt: skip
    seen = checks(world, claim["id"])
    latest = {c["kind"]: c for c in seen["checks"]}
    assert (latest["invoice"]["runs"], latest["invoice"]["trigger"]) == (2, "rerun")
    assert latest["invoice"]["requested_by"] == user_label(world, "finance")
    assert (latest["amount"]["runs"], len(seen["history"])) == (1, 4)
    assert seen["history"][0]["id"] == latest["invoice"]["id"]
    assert ok(world.get("finance", f"/api/v1/claims/{claim['id']}"))["state"] == "in_review"
    for role in ("partner", "auditor"):
        refused = world.post(role, f"/api/v1/claims/{claim['id']}/checks/rerun", {"kind": "dates"})
        assert_error(refused, 403, "forbidden")
    assert results(world, claim["id"]) == 4


def test_a_photo_is_checked_again_on_its_own(world: World) -> None:
    body = direct_claim(world, activity_id=world.event, claimed_amount="100.00")
    claim = ok(world.post("partner", "/api/v1/claims", body), 201)
    upload(world, claim["id"], invoice(), "A-77.pdf", "invoice")
    photo = upload(world, claim["id"], image_bytes("JPEG"), "booth.jpg", "photo")
    ok(world.post("partner", f"/api/v1/claims/{claim['id']}/submit", {}))
    path = f"/api/v1/claims/{claim['id']}/checks/rerun"
    ok(world.post("admin", path, {"kind": "photo", "document_id": photo["id"]}), 202)
    seen = checks(world, claim["id"])
    runs = {(c["kind"], c["document_id"]): c["runs"] for c in seen["checks"]}
    assert runs[("photo", photo["id"])] == 2 and runs[("invoice", None)] == 1
    shown = next(c for c in seen["checks"] if c["kind"] == "photo")["evidence"]
    assert {k: shown[k] for k in ("filename", "width", "height", "format")} == {
        "filename": "booth.jpg", "width": 64, "height": 48, "format": "JPEG",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("body", "status", "code", "words"),
    [
        ({"kind": "horoscope"}, 422, "validation_error", "Must be one of"),
        ({}, 422, "validation_error", "Missing data"),
        ({"kind": "dates", "extra": 1}, 422, "validation_error", "Unknown field"),
        ({"kind": "dates", "document_id": "7"}, 422, "validation_error", "Not a valid integer"),
        ({"kind": "invoice", "document_id": "own"}, 422, "invalid", "choose a document"),
        ({"kind": "photo", "document_id": "other"}, 422, "invalid", "choose a document"),
        ({"kind": "photo", "document_id": 999999}, 422, "invalid", "choose a document"),
    ],
)
def test_bad_re_run_input_is_refused_and_runs_nothing(
    world: World, body: dict[str, Any], status: int, code: str, words: str
) -> None:
    claim = submitted(world)
    own = claim["documents"][0]["id"]
    other = world.spare_document  # a photo of another claim
    body = {k: {"own": own, "other": other}.get(v, v) for k, v in body.items()}
    before = results(world)
    response = world.post("finance", f"/api/v1/claims/{claim['id']}/checks/rerun", body)
    error = assert_error(response, status, code)
    assert words in str(error), error
    if code == "invalid":
        assert error["details"]["field"] == "document_id"
    assert results(world) == before


def test_checks_run_again_only_on_claims_in_review_or_decided(world: World) -> None:
    before = results(world)
    path = f"/api/v1/claims/{world.claim}/checks/rerun"  # a draft
    error = assert_error(world.post("finance", path, {"kind": "dates"}), 409, "conflict")
    assert "checks run again only on claims in review or decided" in error["message"]
    assert_error(world.post("finance", "/api/v1/claims/999999/checks/rerun", {"kind": "dates"}),
                 404, "not_found")  # fmt: skip
    assert results(world) == before


# --- a program's rules ---------------------------------------------------------------------------

RULES = {
    "auto_approve_up_to": "250.00",
    "tolerance_bp": 50,
    "invoice_grace_days": 14,
    "page_markers": ["{partner}", "Q3-CLOUD"],
    "min_leads": None,
    "recheck_days": 10,
}


def test_rules_start_at_the_defaults_and_are_replaced_as_a_whole(world: World) -> None:
    path = f"/api/v1/programs/{world.clm}/verification"
    defaults = {
        "program_id": world.clm, "currency": "USD", "auto_approve_up_to": None,
        "tolerance_bp": 100, "invoice_grace_days": 30, "page_markers": ["{partner}"],
        "min_leads": None, "recheck_days": 30,
    }  # fmt: skip
    for role in ("admin", "finance", "auditor"):
        assert ok(world.get(role, path)) == defaults
    assert_error(world.get("partner", path), 403, "forbidden")
    saved = ok(world.call("finance", "PUT", path, json=RULES))
    assert saved == {**defaults, **RULES}
    assert ok(world.get("auditor", path)) == saved
    assert_error(world.call("auditor", "PUT", path, json=RULES), 403, "forbidden")
    assert_error(world.get("finance", "/api/v1/programs/999999/verification"), 404, "not_found")

    # Under the new limit, a clean claim is approved without a person.
    claim = submitted(world)
    assert claim["state"] == "approved" and claim["approved_amount"] == "150.00"


@pytest.mark.parametrize(
    ("changes", "code", "field"),
    [
        ({"auto_approve_up_to": "0.00"}, "invalid", "auto_approve_up_to"),
        ({"auto_approve_up_to": "1.001"}, "invalid", "auto_approve_up_to"),
        ({"auto_approve_up_to": 250}, "validation_error", "auto_approve_up_to"),
        ({"tolerance_bp": "50"}, "validation_error", "tolerance_bp"),
        ({"tolerance_bp": 10_001}, "invalid", "tolerance_bp"),
        ({"invoice_grace_days": -1}, "invalid", "invoice_grace_days"),
        ({"min_leads": 0}, "invalid", "min_leads"),
        ({"recheck_days": True}, "validation_error", "recheck_days"),
        ({"page_markers": "{partner}"}, "validation_error", "page_markers"),
        ({"page_markers": ["a\nb"]}, "validation_error", "page_markers"),
        ({"page_markers": ["x" * 150] * 14}, "invalid", "page_markers"),
        ({"recheck_days": None}, "validation_error", "recheck_days"),
        ({"surprise": 1}, "validation_error", "surprise"),
    ],
)
def test_bad_rules_are_refused_naming_the_field_and_change_nothing(
    world: World, changes: dict[str, Any], code: str, field: str
) -> None:
    path = f"/api/v1/programs/{world.clm}/verification"
    before = ok(world.get("finance", path))
    error = assert_error(world.call("finance", "PUT", path, json={**RULES, **changes}), 422, code)
    if code == "invalid":
        assert error["details"]["field"] == field
    else:
        assert field in error["details"]["json"]
    missing = {k: v for k, v in RULES.items() if k != "min_leads"}
    error = assert_error(world.call("finance", "PUT", path, json=missing), 422, "validation_error")
    assert "min_leads" in error["details"]["json"]
    assert ok(world.get("finance", path)) == before


# --- the OpenAPI document ------------------------------------------------------------------------


def test_the_openapi_document_describes_the_checks_and_the_rules(world: World) -> None:
    doc = ok(world.get(None, "/api/v1/openapi.json"))
    assert unresolved_refs(doc) == []
    paths, schemas = doc["paths"], doc["components"]["schemas"]

    def schema(ref: dict[str, Any]) -> dict[str, Any]:
        return schemas[ref["$ref"].rsplit("/", 1)[1]]

    read = paths["/api/v1/claims/{claim_id}/checks"]["get"]
    body = schema(read["responses"]["200"]["content"]["application/json"]["schema"])
    assert set(body["properties"]) == {"claim_id", "state", "checks", "history"}
    assert {"401", "404"} <= set(read["responses"])
    rerun = paths["/api/v1/claims/{claim_id}/checks/rerun"]["post"]
    assert rerun["x-roles"] == ["admin", "finance"]
    assert {"202", "401", "403", "404", "409", "422"} <= set(rerun["responses"])
    asked = schema(rerun["requestBody"]["content"]["application/json"]["schema"])
    assert asked["additionalProperties"] is False and asked["required"] == ["kind"]
    assert asked["properties"]["kind"]["enum"] == [
        "invoice", "page", "leads", "photo", "dates", "amount",
    ]  # fmt: skip
    rules = paths["/api/v1/programs/{program_id}/verification"]
    assert rules["get"]["x-roles"] == ["admin", "auditor", "finance"]
    put = schema(rules["put"]["requestBody"]["content"]["application/json"]["schema"])
    assert put["additionalProperties"] is False and len(put["required"]) == 6
    out = schema(rules["put"]["responses"]["200"]["content"]["application/json"]["schema"])
    assert out["properties"]["auto_approve_up_to"]["type"] == "string"
