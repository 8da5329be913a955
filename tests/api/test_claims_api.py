"""The claims API: from proposal to a partly approved claim the partner understands, proof
uploads and downloads, finance's queue and decisions, bulk approval; bad input, idempotent
retries, stale views, another partner's claims and the OpenAPI document. On SQLite and
PostgreSQL. The world: tests/api/test_requests_api.py (`add_claims_world`)."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from mdfledger import claims, create_app
from mdfledger.actor import Actor
from mdfledger.claims import Claim, ClaimEvent, Document
from mdfledger.clock import utcnow
from mdfledger.ledger.models import Transfer
from tests.api.test_api_foundation import answer, assert_error, unresolved_refs
from tests.api.test_programs_api import World, build_world, ok
from tests.api.test_requests_api import (
    HELD_BY_CLAIMS,
    add_claims_world,
    balance,
    proposal,
    today,
)
from tests.samples import image_bytes, pdf_bytes


@pytest.fixture
def world(
    database_url: str, tmp_path: Path, session_factory: sessionmaker[Session], actor: Actor
) -> Iterator[World]:
    for built in build_world(database_url, tmp_path, session_factory, actor):
        yield add_claims_world(built)


def upload(world: World, role: str, claim_id: int, content: bytes, name: str, kind: str) -> Any:
    data = {"file": (io.BytesIO(content), name), "kind": kind}
    return world.call(
        role, "POST", f"/api/v1/claims/{claim_id}/documents", data=data,
        content_type="multipart/form-data",
    )  # fmt: skip


def direct_claim(world: World, **changes: Any) -> dict[str, Any]:
    body = {
        "program_id": world.clm, "activity_id": world.ads, "title": "Spring ads",
        "starts_on": (today() - timedelta(days=5)).isoformat(), "ends_on": today().isoformat(),
        "actual_cost": "300.00", "claimed_amount": "150.00", "invoice_issuer": "AdCo",
        "invoice_number": "A-77", "invoice_total": "300.00",
    }  # fmt: skip
    body.update(changes)
    return body


# --- the whole way, through the API --------------------------------------------------------------


def test_from_proposal_to_a_partly_approved_claim_the_partner_understands(world: World) -> None:
    # The partner proposes; finance approves less, saying why.
    request = ok(world.post("partner", "/api/v1/requests", proposal(world), key="p-1"), 201)
    request = ok(world.post("finance", f"/api/v1/requests/{request['id']}/approve", {
        "amount": "800.00", "reason_code": "budget", "message": "We fund 800.00 this quarter",
        "version": request["version"],
    }, key="a-1"))  # fmt: skip
    assert (request["state"], request["approved_amount"], request["held"]) == (
        "approved", "800.00", "800.00",
    )  # fmt: skip

    # The partner claims against it and uploads an invoice and a photo.
    claim = ok(world.post("partner", "/api/v1/claims", {
        "request_id": request["id"], "title": "NetExpo booth", "actual_cost": "1500.00",
        "claimed_amount": "750.00", "invoice_issuer": "Expo GmbH", "invoice_number": "EX-1",
        "invoice_total": "1500.00", "currency": "USD",
    }, key="c-1"), 201)  # fmt: skip
    assert (claim["state"], claim["request_id"], claim["claimed_amount"]) == (
        "draft", request["id"], "750.00",
    )  # fmt: skip
    assert (claim["starts_on"], claim["ends_on"]) == (
        proposal(world)["starts_on"], proposal(world)["ends_on"],
    )  # fmt: skip
    assert claim["missing_proof"] == ["invoice", "photos"]
    invoice = pdf_bytes("Expo GmbH EX-1 1500.00")
    doc = ok(upload(world, "partner", claim["id"], invoice, "EX-1.pdf", "invoice"), 201)
    assert (doc["kind"], doc["media_type"], doc["size"], doc["url"]) == (
        "invoice", "application/pdf", len(invoice), None,
    )  # fmt: skip
    assert doc["download_url"] == f"/api/v1/claims/{claim['id']}/documents/{doc['id']}/content"
    ok(upload(world, "partner", claim["id"], image_bytes("JPEG"), "booth.jpg", "photo"), 201)
    claim = ok(world.get("partner", f"/api/v1/claims/{claim['id']}"))
    assert claim["missing_proof"] == []
    assert [(d["kind"], d["filename"]) for d in claim["documents"]] == [
        ("invoice", "EX-1.pdf"), ("photo", "booth.jpg"),
    ]  # fmt: skip

    # Submitted, it waits for finance with the request's money held for it.
    claim = ok(world.post("partner", f"/api/v1/claims/{claim['id']}/submit", {
        "version": claim["version"]}))  # fmt: skip
    # The answer is the claim as committed; its proof is checked right after.
    assert (claim["state"], claim["held"], claim["flagged"]) == ("verifying", "800.00", False)
    claim = ok(world.get("partner", f"/api/v1/claims/{claim['id']}"))
    assert claim["state"] == "in_review"
    queue = ok(world.get("finance", f"/api/v1/claims?program_id={world.clm}&sort=newest"))
    assert queue["items"][0]["id"] == claim["id"]

    # Finance downloads the invoice and approves part of the claim, saying why.
    download = world.get("finance", doc["download_url"])
    assert download.status_code == 200 and download.get_data() == invoice
    assert download.content_type == "application/pdf"
    assert download.headers["Content-Disposition"] == 'attachment; filename="EX-1.pdf"'
    claim = ok(world.post("finance", f"/api/v1/claims/{claim['id']}/approve", {
        "amount": "600.00", "reason_code": "ineligible_cost",
        "message": "Catering is not reimbursable", "version": claim["version"],
    }, key="a-2"))  # fmt: skip
    assert (claim["state"], claim["approved_amount"], claim["held"]) == (
        "approved", "600.00", "0.00",
    )  # fmt: skip

    # The partner reads why, on the claim and on the request.
    seen = ok(world.get("partner", f"/api/v1/claims/{claim['id']}"))
    assert [(e["event"], e["to_state"]) for e in seen["timeline"]] == [
        ("create", "draft"), ("submit", "submitted"), ("verify", "verifying"),
        ("review", "in_review"), ("approve", "approved"),
    ]  # fmt: skip
    last = seen["timeline"][-1]
    assert (last["amount"], last["reason_code"], last["message"], last["actor_name"]) == (
        "600.00", "ineligible_cost", "Catering is not reimbursable", "Finance",
    )  # fmt: skip
    assert (seen["reason_code"], seen["reason"]) == ("ineligible_cost", "Catering is not"
                                                     " reimbursable")  # fmt: skip
    request = ok(world.get("partner", f"/api/v1/requests/{request['id']}"))
    assert request["state"] == "claimed" and request["claim_ids"] == [claim["id"]]
    assert [e["event"] for e in request["timeline"]] == ["submit", "approve", "claim"]
    assert request["timeline"][1]["message"] == "We fund 800.00 this quarter"
    money = balance(world)
    assert (money["approved"], money["reserved"], money["available"]) == (
        "600.00", HELD_BY_CLAIMS, "4320.00",
    )  # fmt: skip


# --- drafting, proof and submitting --------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"claimed_amount": "150.01"}, "claimed_amount", "50% of the actual cost"),
        (
            {"actual_cost": "3000.00", "claimed_amount": "1000.01"},
            "claimed_amount",
            "Search ads cap",
        ),
        ({"claimed_amount": "1.005"}, "claimed_amount", "more than 2 decimal places"),
        ({"invoice_total": "1,000"}, None, None),
        ({"currency": "EUR", "claimed_amount": "10.00"}, "currency", "pays in USD"),
        ({"currency": "JPY", "claimed_amount": "15.50"}, "claimed_amount", "0 decimal places"),
        ({"currency": "usd"}, "currency", "ISO 4217"),
        (
            {
                "starts_on": (today() + timedelta(days=1)).isoformat(),
                "ends_on": (today() + timedelta(days=2)).isoformat(),
            },
            "starts_on",
            "once it has started",
        ),
        ({"program_id": "old"}, None, None),
    ],
)
def test_a_bad_claim_is_refused_naming_the_field(
    world: World, changes: dict[str, Any], field: str | None, words: str | None
) -> None:
    before = world.count(Claim)
    if changes.get("program_id") == "old":  # a closed program: not there for partners
        changes = {**changes, "program_id": world.old}
        assert_error(world.post("partner", "/api/v1/claims", direct_claim(world, **changes)),
                     404, "not_found")  # fmt: skip
    elif field is None:
        assert_error(world.post("partner", "/api/v1/claims", direct_claim(world, **changes)),
                     422, "validation_error")  # fmt: skip
    else:
        response = world.post("partner", "/api/v1/claims", direct_claim(world, **changes))
        error = assert_error(response, 422, "invalid")
        assert error["details"]["field"] == field
        assert words in error["message"]
    assert world.count(Claim) == before


def test_claims_against_requests_stay_within_the_reservation(world: World) -> None:
    ok(world.post("finance", f"/api/v1/requests/{world.request}/approve", {}))  # 50.00
    body = {"request_id": world.request, "title": "Ads", "actual_cost": "200.00",
            "claimed_amount": "50.01", "invoice_issuer": "AdCo", "invoice_number": "9",
            "invoice_total": "200.00"}  # fmt: skip
    over = assert_error(world.post("partner", "/api/v1/claims", body), 422, "invalid")
    assert over["details"]["field"] == "claimed_amount"
    assert "pre-approved" in over["message"]
    # A request that is not approved, or that another claim already uses, cannot be claimed.
    for request_id in (world.request_b, world.request_returned):
        closed = world.post(
            "partner",
            "/api/v1/claims",
            {**body, "request_id": request_id, "claimed_amount": "10.00"},
        )
        assert "only an approved request" in assert_error(closed, 409, "conflict")["message"]
    made = ok(world.post("partner", "/api/v1/claims", {**body, "claimed_amount": "50.00"}), 201)
    twice = world.post("partner", "/api/v1/claims", {**body, "claimed_amount": "10.00"})
    error = assert_error(twice, 409, "conflict")
    assert error["details"] == {"field": "request_id", "claim_id": made["id"]}
    # Another partner's request is not there at all.
    theirs = world.post("partner", "/api/v1/claims", {**body, "request_id": world.bolt_request})
    nowhere = world.post("partner", "/api/v1/claims", {**body, "request_id": 999_999})
    assert theirs.status_code == nowhere.status_code == 404
    assert answer(theirs) == answer(nowhere)


def test_an_expired_or_withdrawn_request_cannot_be_claimed(world: World) -> None:
    for name in ("request", "request_b"):
        ok(world.post("finance", f"/api/v1/requests/{world.ids[name]}/approve", {}))
    ok(world.post("partner", f"/api/v1/requests/{world.request_b}/withdraw", {}))
    with world.sessions() as session:
        later = utcnow() + timedelta(days=400)
        assert claims.expire_requests(session, Actor.system("jobs"), now=later) == 2  # + BOLT's
        session.commit()
    assert ok(world.get("partner", f"/api/v1/requests/{world.request}"))["state"] == "expired"
    for request_id, state in ((world.request, "expired"), (world.request_b, "withdrawn")):
        body = {"request_id": request_id, "title": "Late", "actual_cost": "100.00",
                "claimed_amount": "10.00"}  # fmt: skip
        refused = assert_error(world.post("partner", "/api/v1/claims", body), 409, "conflict")
        assert f"is {state}: only an approved request can be claimed" in refused["message"]


def test_proof_is_checked_and_a_draft_changed_before_submission(world: World) -> None:
    made = ok(world.post("partner", "/api/v1/claims", direct_claim(world)), 201)
    url = f"/api/v1/claims/{made['id']}"
    early = assert_error(world.post("partner", f"{url}/submit", {}), 422, "invalid")
    assert (early["details"]["field"], early["message"]) == (
        "documents", "add the proof this activity needs: invoice",
    )  # fmt: skip
    documents = world.count(Document)
    page = b"<!doctype html><html><body>invoice</body></html>"
    html = assert_error(upload(world, "partner", made["id"], page, "invoice.pdf", "invoice"),
                        422, "upload_type_not_accepted")  # fmt: skip
    assert "web page" in html["message"]
    program = b"MZ\x90\x00" + b"\x00" * 200  # a Windows program
    exe = upload(world, "partner", made["id"], program, "invoice.pdf", "invoice")
    exe = assert_error(exe, 422, "upload_type_not_accepted")
    assert exe["details"]["filename"] == "invoice.pdf"
    wrong_kind = upload(world, "partner", made["id"], pdf_bytes(), "i.pdf", "landing_page")
    assert "kind" in assert_error(wrong_kind, 422, "validation_error")["details"]["multipart"]
    as_text = world.call("partner", "POST", f"{url}/documents", data={"file": "%PDF-",
                         "kind": "invoice"}, content_type="multipart/form-data")  # fmt: skip
    assert_error(as_text, 422, "validation_error")
    assert world.count(Document) == documents

    link = ok(world.post("partner", f"{url}/links", {"url": "https://acme.example/spring",
                                                     "kind": "landing_page"}), 201)  # fmt: skip
    assert (link["url"], link["download_url"], link["filename"]) == (
        "https://acme.example/spring", None, "",
    )  # fmt: skip
    bad_link = world.post("partner", f"{url}/links", {"url": "acme.example", "kind": "social_post"})
    assert assert_error(bad_link, 422, "invalid")["details"]["field"] == "url"
    no_content = world.get("partner", f"{url}/documents/{link['id']}/content")
    assert "is a link" in assert_error(no_content, 404, "not_found")["message"]
    removed = ok(world.call("partner", "DELETE", f"{url}/documents/{link['id']}"))
    assert removed["documents"] == []
    # Another claim's document is not this claim's.
    elsewhere = world.call("partner", "DELETE", f"{url}/documents/{world.document}")
    assert_error(elsewhere, 404, "not_found")

    changed = ok(world.patch("partner", url, {"claimed_amount": "120.00", "invoice_total": None}))
    assert (changed["claimed_amount"], changed["invoice_total"]) == ("120.00", None)
    assert "the invoice's issuer, number and total" in changed["missing_proof"]
    over = world.patch("partner", url, {"claimed_amount": "150.01"})
    assert assert_error(over, 422, "invalid")["details"]["field"] == "claimed_amount"
    assert_error(world.patch("partner", url, {"state": "approved"}), 422, "validation_error")
    ok(world.patch("partner", url, {"invoice_total": "300.00"}))
    ok(upload(world, "partner", made["id"], pdf_bytes("AdCo A-77"), "a77.pdf", "invoice"), 201)
    submitted = ok(world.post("partner", f"{url}/submit", {"message": "All there"}))
    assert (submitted["state"], submitted["held"]) == ("verifying", "120.00")
    assert ok(world.get("partner", url))["state"] == "in_review"
    assert submitted["timeline"][1]["message"] == "All there"
    late = upload(world, "partner", made["id"], pdf_bytes("more"), "more.pdf", "other")
    assert "only a draft or a returned claim" in assert_error(late, 409, "conflict")["message"]
    assert_error(world.patch("partner", url, {"title": "x"}), 409, "conflict")


def test_an_upload_over_the_size_limit_is_refused(world: World, database_url: str,
                                                  tmp_path: Path) -> None:  # fmt: skip
    small = create_app({"database_url": database_url, "env": "test", "instance_path": tmp_path,
                        "upload_max_bytes": 2048})  # fmt: skip
    try:
        tight = dataclasses.replace(world, app=small)
        documents = world.count(Document)
        big = pdf_bytes("x" * 3000)
        error = assert_error(upload(tight, "partner", world.claim, big, "big.pdf", "invoice"),
                             422, "upload_too_large")  # fmt: skip
        assert error["message"].endswith("upload a smaller file, or split it")
        assert error["details"] == {
            "reason": "size", "filename": "big.pdf", "size": len(big), "limit": 2048,
        }  # fmt: skip
        assert world.count(Document) == documents
        ok(upload(tight, "partner", world.claim, pdf_bytes("ok"), "ok.pdf", "invoice"), 201)
    finally:
        small.extensions["mdfledger.db"].kw["bind"].dispose()


# --- finance's queue and decisions ---------------------------------------------------------------


def test_the_queue_filters_and_partners_see_their_own(world: World) -> None:
    def ids(query: str, role: str = "finance") -> list[int]:
        return [c["id"] for c in ok(world.get(role, f"/api/v1/claims?{query}"))["items"]]

    waiting = [world.claim_a, world.claim_b, world.claim_c, world.claim_d, world.bolt_claim]
    assert ids("") == waiting  # oldest first
    assert ids("sort=newest") == waiting[::-1]
    assert ids(f"partner_id={world.bolt}") == [world.bolt_claim]
    assert ids("state=draft") == [world.claim, world.claim_ready]
    both = ok(world.get("finance", "/api/v1/claims?state=draft&state=in_review&per_page=2"))
    assert (both["total"], both["pages"], len(both["items"])) == (7, 4, 2)
    assert ids("flagged=true") == []
    assert ids("older_than_days=1") == []
    assert ids(f"program_id={world.clm}&min_amount=20.00&max_amount=20.00") == waiting
    assert ids(f"program_id={world.clm}&min_amount=20.01") == []
    assert ids(f"program_id={world.mdf}") == []
    no_program = world.get("finance", "/api/v1/claims?min_amount=10.00")
    assert assert_error(no_program, 422, "invalid")["details"]["field"] == "min_amount"
    precise = world.get("finance", f"/api/v1/claims?program_id={world.clm}&max_amount=1.001")
    assert assert_error(precise, 422, "invalid")["details"]["field"] == "max_amount"
    for query in ("state=lost", "sort=random", "flagged=maybe", "older_than_days=-1"):
        assert_error(world.get("finance", f"/api/v1/claims?{query}"), 422, "validation_error")
    # Partners: their own, every state, newest first; other partners' ids find nothing.
    mine = ids("", "partner")
    assert sorted(mine) == sorted([world.claim, world.claim_ready, *waiting[:4]])
    assert mine[0] == max(mine)
    assert ids("state=draft", "partner") == [world.claim_ready, world.claim]
    assert ids(f"partner_id={world.bolt}", "partner") == ids("", "partner")
    assert ids("", "bolt") == [world.bolt_claim]
    assert ok(world.get("auditor", "/api/v1/claims"))["total"] == 5


def test_partial_approval_return_and_rejection_need_reasons(world: World) -> None:
    url = f"/api/v1/claims/{world.claim_a}"
    partial = world.post("finance", f"{url}/approve", {"amount": "10.00"})
    assert assert_error(partial, 422, "invalid")["details"]["field"] == "reason_code"
    message = world.post("finance", f"{url}/approve", {"amount": "10.00", "reason_code": "other"})
    assert assert_error(message, 422, "invalid")["details"]["field"] == "message"
    for action in ("return", "reject"):
        missing = world.post("finance", f"{url}/{action}", {"reason_code": "duplicate"})
        assert "message" in assert_error(missing, 422, "validation_error")["details"]["json"]
        blank = world.post("finance", f"{url}/{action}", {"reason_code": "duplicate",
                                                          "message": " "})  # fmt: skip
        assert assert_error(blank, 422, "invalid")["details"]["field"] == "message"
        unknown = world.post("finance", f"{url}/{action}", {"reason_code": "meh",
                                                            "message": "x"})  # fmt: skip
        assert_error(unknown, 422, "validation_error")
    assert ok(world.get("finance", url))["state"] == "in_review"
    assert balance(world)["approved"] == "0.00"

    returned = ok(
        world.post(
            "finance",
            f"/api/v1/claims/{world.claim_b}/return",
            {"reason_code": "insufficient_proof", "message": "Add the ads"},
        )
    )
    assert (returned["state"], returned["held"]) == ("returned", "20.00")
    rejected = ok(
        world.post(
            "admin",
            f"/api/v1/claims/{world.claim_c}/reject",
            {"reason_code": "duplicate", "message": "Claimed in March"},
        )
    )
    assert (rejected["state"], rejected["held"]) == ("rejected", "0.00")
    partner_view = ok(world.get("partner", f"/api/v1/claims/{world.claim_c}"))
    assert partner_view["timeline"][-1]["message"] == "Claimed in March"
    withdrawn = ok(world.post("partner", f"/api/v1/claims/{world.claim_d}/withdraw", {}))
    assert withdrawn["state"] == "withdrawn"
    assert balance(world)["reserved"] == "40.00"  # claim_a and the returned claim_b


def test_a_double_post_with_one_key_makes_one_claim_and_one_approval(world: World) -> None:
    claims_before = world.count(Claim)
    first = ok(world.post("partner", "/api/v1/claims", direct_claim(world), key="k-1"), 201)
    again = ok(world.post("partner", "/api/v1/claims", direct_claim(world), key="k-1"), 201)
    assert again == first
    assert world.count(Claim) == claims_before + 1

    url = f"/api/v1/claims/{world.claim_a}/approve"
    transfers, events = world.count(Transfer), world.count(ClaimEvent)
    approved = ok(world.post("finance", url, {}, key="ok-1"))
    assert ok(world.post("finance", url, {}, key="ok-1")) == approved
    assert (world.count(Transfer), world.count(ClaimEvent)) == (transfers + 1, events + 1)
    assert balance(world)["approved"] == "20.00"
    other = world.post("finance", url, {}, key="ok-2")
    assert_error(other, 409, "invalid_transition")
    assert balance(world)["approved"] == "20.00"


def test_a_decision_on_a_stale_view_is_refused(world: World) -> None:
    seen = ok(world.get("finance", f"/api/v1/claims/{world.claim_a}"))
    ok(world.post("partner", f"/api/v1/claims/{world.claim_a}/withdraw", {}))
    stale = world.post("finance", f"/api/v1/claims/{world.claim_a}/approve",
                       {"version": seen["version"]})  # fmt: skip
    error = assert_error(stale, 409, "conflict")
    assert "it is now withdrawn" in error["message"]
    assert error["details"]["state"] == "withdrawn"
    assert balance(world)["approved"] == "0.00"


def test_bulk_approve_reports_each_claim(world: World) -> None:
    ids = [world.claim_a, world.claim, world.bolt_claim, 999_999]
    results = ok(world.post("finance", "/api/v1/claims/bulk-approve", {"claim_ids": ids}))
    assert [(r["claim_id"], r["approved"]) for r in results["results"]] == [
        (world.claim_a, True), (world.claim, False), (world.bolt_claim, True), (999_999, False),
    ]  # fmt: skip
    assert "draft" in results["results"][1]["message"]
    assert balance(world)["approved"] == "20.00"
    for body in ({"claim_ids": []}, {"claim_ids": ["1"]}, {}, {"claim_ids": list(range(1, 202))}):
        assert_error(world.post("finance", "/api/v1/claims/bulk-approve", body), 422,
                     "validation_error")  # fmt: skip
    assert_error(world.post("partner", "/api/v1/claims/bulk-approve", {"claim_ids": ids}), 403,
                 "forbidden")  # fmt: skip


def test_another_partners_claims_and_documents_are_not_found(world: World) -> None:
    theirs, doc = world.bolt_claim, world.bolt_document
    events, documents = world.count(ClaimEvent), world.count(Document)
    before = ok(world.get("finance", f"/api/v1/claims/{theirs}"))
    for method, path, body in (
        ("GET", "/api/v1/claims/{c}", None),
        ("GET", "/api/v1/claims/{c}/documents/{d}/content", None),
        ("PATCH", "/api/v1/claims/{c}", {"title": "Mine"}),
        ("POST", "/api/v1/claims/{c}/links", {"url": "https://x.example", "kind": "social_post"}),
        ("DELETE", "/api/v1/claims/{c}/documents/{d}", None),
        ("POST", "/api/v1/claims/{c}/submit", {}),
        ("POST", "/api/v1/claims/{c}/withdraw", {}),
    ):
        got = world.call("partner", method, path.format(c=theirs, d=doc), json=body)
        nowhere = world.call("partner", method, path.format(c=999_999, d=999_999), json=body)
        assert got.status_code == 404, (method, path, got.get_data(as_text=True))
        assert answer(got) == answer(nowhere), (method, path)
    # Its document under one's own claim is not found either.
    mixed = world.get("partner", f"/api/v1/claims/{world.claim}/documents/{doc}/content")
    assert_error(mixed, 404, "not_found")
    upload_theirs = upload(world, "partner", theirs, pdf_bytes(), "x.pdf", "invoice")
    assert_error(upload_theirs, 404, "not_found")
    # Nothing changed: document adds and removals leave no claim event, so count them too.
    assert (world.count(ClaimEvent), world.count(Document)) == (events, documents)
    assert ok(world.get("finance", f"/api/v1/claims/{theirs}")) == before
    # Staff and auditors read any claim's documents.
    staff = world.get("auditor", f"/api/v1/claims/{theirs}/documents/{doc}/content")
    assert staff.status_code == 200


# --- the OpenAPI document ------------------------------------------------------------------------

DECISIONS = ("approve", "return", "reject")


def test_the_openapi_document_lists_the_new_paths_with_schemas(world: World) -> None:
    doc = ok(world.get(None, "/api/v1/openapi.json"))
    assert unresolved_refs(doc) == []
    paths, schemas = doc["paths"], doc["components"]["schemas"]

    def body_schema(path: str, method: str = "post", kind: str = "application/json") -> dict:
        ref = paths[path][method]["requestBody"]["content"][kind]["schema"]["$ref"]
        return schemas[ref.rsplit("/", 1)[1]]

    def answer(path: str, method: str, status: str) -> dict:
        ref = paths[path][method]["responses"][status]["content"]["application/json"]["schema"]
        return schemas[ref["$ref"].rsplit("/", 1)[1]]

    assert set(body_schema("/api/v1/requests")["required"]) >= {
        "program_id", "activity_id", "estimated_cost", "requested_amount",
    }  # fmt: skip
    assert body_schema("/api/v1/requests")["additionalProperties"] is False
    assert answer("/api/v1/requests", "post", "201") == answer(
        "/api/v1/requests/{request_id}", "get", "200"
    )
    detail = answer("/api/v1/claims/{claim_id}", "get", "200")["properties"]
    assert {"documents", "flags", "missing_proof", "timeline", "held", "version"} <= set(detail)
    assert detail["claimed_amount"]["type"] == "string"
    assert set(answer("/api/v1/claims", "get", "200")["properties"]) == {
        "items", "page", "per_page", "total", "pages",
    }  # fmt: skip
    queue = {p["name"] for p in paths["/api/v1/claims"]["get"]["parameters"]}
    assert queue >= {"state", "program_id", "partner_id", "flagged", "min_amount", "max_amount",
                     "older_than_days", "sort", "page", "per_page"}  # fmt: skip
    upload_body = body_schema("/api/v1/claims/{claim_id}/documents", kind="multipart/form-data")
    assert upload_body["properties"]["file"]["format"] == "binary"
    assert upload_body["properties"]["kind"]["enum"] == ["invoice", "lead_list", "photo", "other"]
    for subject, name in (("requests", "request_id"), ("claims", "claim_id")):
        for action in DECISIONS:
            operation = paths[f"/api/v1/{subject}/{{{name}}}/{action}"]["post"]
            headers = [p["name"] for p in operation["parameters"] if p["in"] == "header"]
            assert headers == ["Idempotency-Key"], (subject, action)
            assert {"401", "403", "404", "409", "422"} <= set(operation["responses"])
            assert operation["x-roles"] == ["admin", "finance"]
            assert "version" in body_schema(f"/api/v1/{subject}/{{{name}}}/{action}")["properties"]
    content = paths["/api/v1/claims/{claim_id}/documents/{document_id}/content"]["get"]
    assert content["responses"]["200"]["content"]["application/pdf"]["schema"] == {
        "type": "string", "format": "binary",
    }  # fmt: skip
    assert "302" in content["responses"] and "404" in content["responses"]
    bulk = answer("/api/v1/claims/bulk-approve", "post", "200")
    assert bulk["properties"]["results"]["type"] == "array"
