"""Claim pages through the browser's eyes: claim, upload proof (as the page's uploader does and
as a plain form), submit, the finance queue, decisions, documents served inline, on SQLite and
PostgreSQL. The world (and its helpers) is the request pages' one."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mdfledger import claims, ledger, programs
from mdfledger.claims.holds import payable_account
from mdfledger.storage import APP_KEY, LocalStore
from tests.samples import image_bytes, pdf_bytes, submit_checked
from tests.web.test_requests_pages import (
    SETUP,
    World,
    approve,
    build_world,
    csrf_token,
    decide_on,
    field_error,
    form_value,
    post,
    post_decision,
    propose,
    text,
    today,
    visible,
)

JSON = {"Accept": "application/json"}
GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"  # noqa: E501
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 64


@pytest.fixture
def world(
    database_url: str, tmp_path: Path, session_factory: sessionmaker[Session]
) -> Iterator[World]:
    yield from build_world(database_url, tmp_path, session_factory)


# --- helpers -------------------------------------------------------------------------------------


def claim_fields(**changes: str) -> dict[str, str]:
    fields = {
        "title": "Webinars held",
        "description": "Three sessions",
        "starts_on": (today() - timedelta(days=10)).isoformat(),
        "ends_on": (today() - timedelta(days=3)).isoformat(),
        "actual_cost": "4000.00",
        "claimed_amount": "1500.00",
        "invoice_issuer": "Webinars Inc",
        "invoice_number": "INV-1001",
        "invoice_total": "4000.00",
        "key": "claim-form-1",
    }
    fields.update(changes)
    return fields


def upload(client: FlaskClient, claim_id: int, data: bytes, name: str, kind: str, *, as_json: bool):
    """One file, as the page's uploader sends it (JSON, token in a header) or as the plain form."""
    path = f"/claims/{claim_id}/documents"
    token = csrf_token(client, "/login")
    body = {"kind": kind, "file": (io.BytesIO(data), name)}
    if as_json:
        return client.post(
            path, data=body, headers={**JSON, "X-CSRFToken": token},
            content_type="multipart/form-data",
        )  # fmt: skip
    return client.post(path, data={**body, "csrf_token": token}, content_type="multipart/form-data")


def act(client: FlaskClient, claim_id: int, action: str, **fields: str):
    return decide_on(client, f"/claims/{claim_id}", action, **fields)


def claim_row(world: World, claim_id: int) -> claims.Claim:
    with world.sessions() as session:
        found = session.get(claims.Claim, claim_id)
        assert found is not None
        session.expunge(found)
        return found


def documents(world: World, claim_id: int) -> list[tuple[str, str]]:
    with world.sessions() as session:
        rows = session.scalars(
            select(claims.Document).where(claims.Document.claim_id == claim_id)
        ).all()
        return [(d.kind, d.filename or d.url or "") for d in rows]


def stored_files(world: World) -> int:
    return sum(1 for p in world.proof.rglob("*") if p.is_file()) if world.proof.exists() else 0


def payable(world: World, partner_id: int | None = None) -> int:
    with world.sessions() as session:
        program = session.get(programs.Program, world.mdf)
        partner = session.get(programs.Partner, partner_id or world.acme)
        account = payable_account(session, SETUP, program, partner)
        session.commit()
        return ledger.balance(session, account).credits_posted


def submitted_claim(
    world: World,
    *,
    role: str = "partner",
    amount: int = 100_000,
    invoice: tuple[str, str, int] = ("Webinars Inc", "INV-1", 300_000),
    title: str = "Webinars held",
    submit: bool = True,
) -> int:
    """A direct claim with an invoice PDF, submitted (in review), made through the services."""
    actor = world.actors[role]
    issuer, number, total = invoice
    with world.sessions() as session:
        claim = claims.create_claim(
            session, actor, program_id=world.mdf, activity_id=world.webinar, title=title,
            starts_on=today() - timedelta(days=5), ends_on=today() - timedelta(days=1),
            actual_cost=total, claimed_amount=amount, invoice_issuer=issuer,
            invoice_number=number, invoice_total=total,
        )  # fmt: skip
        claims.add_document(
            session, actor, LocalStore(world.proof), claim.id,
            data=pdf_bytes(f"{number} {title} {claim.id}"), filename="invoice.pdf", kind="invoice",
        )  # fmt: skip
        if submit:
            submit_checked(session, actor, LocalStore(world.proof), claim.id)
        session.commit()
        return claim.id


# --- the partner's path --------------------------------------------------------------------------


def test_the_partner_claims_uploads_submits_and_finance_approves_in_part(world: World) -> None:
    request_id = propose(world, amount=200_000)
    approve(world, request_id, amount=150_000)
    partner = world.client("partner")

    # "Claim this" leads to the form, which shows the terms and proposes the request's dates.
    page = partner.get(f"/claims/new?request={request_id}")
    assert page.status_code == 200
    seen = visible(page)
    assert "What was approved" in seen and "1,500.00 USD: the most this claim may ask" in seen
    start = (today() - timedelta(days=10)).isoformat()
    assert re.search(rf'name="starts_on"[^>]* type="date" value="{start}"', text(page))
    for name in ("title", "description", "starts_on", "ends_on", "actual_cost", "claimed_amount",
                 "invoice_issuer", "invoice_number", "invoice_total", "key"):  # fmt: skip
        assert f'name="{name}"' in text(page), name
    over = post(
        partner, f"/claims/new?request={request_id}", claim_fields(claimed_amount="1500.01")
    )
    assert over.status_code == 422
    assert "at most 1500.00 USD may be claimed: the amount pre-approved" in field_error(
        text(over), "claimed_amount"
    )
    assert world.count(claims.Claim) == 0
    made = post(partner, f"/claims/new?request={request_id}", claim_fields())
    assert made.status_code == 302
    claim_id = int(made.headers["Location"].rsplit("/", 1)[1])
    seen = visible(partner.get(made.headers["Location"]))
    assert "Draft CLM-" in seen and "add the proof it needs" in seen
    assert "Still needed before you can submit: invoice" in seen
    page = text(partner.get(f"/claims/{claim_id}"))
    assert "Drop files here or" in page and 'type="file"' in page and "multiple" in page
    assert 'data-max-bytes="20971520"' in page and "/assets/upload.js" in page
    assert re.search(r'<button type="submit" disabled aria-describedby="[^"]+">Submit claim', page)

    # Submitting without the proof is refused, and says what is missing.
    refused = act(partner, claim_id, "submit")
    assert refused.status_code == 422
    assert "add the proof this activity needs: invoice" in visible(refused)
    assert claim_row(world, claim_id).state == "draft"

    # One file as the page's uploader sends it, one as a plain form.
    first = upload(partner, claim_id, pdf_bytes("INV-1001"), "invoice.pdf", "invoice", as_json=True)
    assert first.status_code == 201
    answer = first.get_json()
    assert answer["filename"] == "invoice.pdf" and answer["kind"] == "invoice"
    assert answer["size"] == len(pdf_bytes("INV-1001")) and answer["document_id"] > 0
    photo = image_bytes("PNG")
    second = upload(partner, claim_id, photo, "booth.png", "photo", as_json=False)
    assert second.status_code == 302
    assert second.headers["Location"] == f"/claims/{claim_id}#documents"
    seen = visible(partner.get(second.headers["Location"]))
    assert "Uploaded booth.png" in seen and "as photo" in seen
    assert "Everything this activity asks for is here." in seen
    assert documents(world, claim_id) == [("invoice", "invoice.pdf"), ("photo", "booth.png")]

    submitted = act(partner, claim_id, "submit")
    assert submitted.status_code == 302
    assert claim_row(world, claim_id).state == "in_review"
    assert "waits for finance's review" in visible(partner.get(f"/claims/{claim_id}"))

    # Finance sees it in the queue, with the proof inline beside the terms.
    finance = world.client("finance")
    queue = visible(finance.get("/claims"))
    assert f"CLM-{claim_id:06d}" in queue and "Acme Networks" in queue and "1,500.00 USD" in queue
    page = text(finance.get(f"/claims/{claim_id}"))
    pdf_url = f"/claims/{claim_id}/documents/"
    assert re.search(rf'<iframe class="doc-frame" src="{pdf_url}\d+"', page)
    assert re.search(rf'<img class="doc-image" src="{pdf_url}\d+" alt="Photo: booth.png"', page)
    assert form_value(page, f"/claims/{claim_id}/approve", "amount") == "1500.00"

    no_reason = act(finance, claim_id, "approve", amount="1200.00")
    assert no_reason.status_code == 422
    assert "a reason code is needed" in field_error(text(no_reason), "approve-reason_code")
    assert claim_row(world, claim_id).state == "in_review" and payable(world) == 0
    approved = act(
        finance, claim_id, "approve", amount="1200.00", reason_code="ineligible_cost",
        message="Catering is not reimbursable",
    )  # fmt: skip
    assert approved.status_code == 302
    row = claim_row(world, claim_id)
    assert (row.state, row.approved_amount) == ("approved", 120_000)
    assert payable(world) == 120_000
    assert world.breakdown().reserved == 0 and world.breakdown().approved == 120_000

    # The partner sees the approved amount and why it is less.
    seen = visible(partner.get("/claims"))
    assert "My claims" in seen and "1,200.00 USD" in seen and "approved" in seen
    seen = visible(partner.get(f"/claims/{claim_id}"))
    assert "Approved 1,200.00 USD" in seen
    assert "Fin (finance) approved: 1,200.00 USD" in seen
    assert "Reason: Part of the cost is not eligible" in seen
    assert "Catering is not reimbursable" in seen
    assert "the claim against it was approved" in visible(partner.get(f"/requests/{request_id}"))


def test_a_wrong_type_upload_gets_a_clear_message_and_nothing_is_stored(world: World) -> None:
    claim_id = submitted_claim(world, submit=False)
    partner = world.client("partner")
    before = stored_files(world)
    gif = upload(partner, claim_id, GIF, "logo.gif", "photo", as_json=True)
    assert gif.status_code == 422
    assert gif.get_json() == {
        "code": "upload_type_not_accepted",
        "message": "this file is a GIF image, not a type we accept: upload PDF, PNG, JPEG, CSV"
        " or XLSX (save it as PNG)",
    }
    exe = upload(partner, claim_id, EXE, "setup.exe", "other", as_json=False)
    assert exe.status_code == 302
    seen = visible(partner.get(exe.headers["Location"]))
    assert "setup.exe: this file is an executable program, not a type we accept" in seen
    wrong_kind = upload(partner, claim_id, pdf_bytes(), "x.pdf", "landing_page", as_json=True)
    assert (
        wrong_kind.status_code == 422 and "kind must be one of" in wrong_kind.get_json()["message"]
    )
    empty = partner.post(
        f"/claims/{claim_id}/documents", data={"kind": "invoice"},
        headers={**JSON, "X-CSRFToken": csrf_token(partner, "/login")},
    )  # fmt: skip
    assert empty.status_code == 422 and empty.get_json()["message"] == "choose a file to upload"
    assert documents(world, claim_id) == [("invoice", "invoice.pdf")]
    assert stored_files(world) == before


def test_a_body_over_the_limit_gets_413_and_the_page_tells_the_uploader_the_limit(
    world: World,
) -> None:
    claim_id = submitted_claim(world, submit=False)
    partner = world.client("partner")
    world.app.config["MAX_CONTENT_LENGTH"] = 4096
    too_big = upload(
        partner, claim_id, b"%PDF-" + b"x" * 10_000, "big.pdf", "invoice", as_json=True
    )
    assert too_big.status_code == 413
    assert documents(world, claim_id) == [("invoice", "invoice.pdf")]
    script = partner.get("/assets/upload.js")
    assert script.status_code == 200
    code = script.get_data(as_text=True)
    assert (
        "xhr.status === 413" in code and "X-CSRFToken" in code and "upload.addEventListener" in code
    )


def test_documents_are_served_inline_with_their_type_and_safe_headers(world: World) -> None:
    claim_id = submitted_claim(world, submit=False)
    partner = world.client("partner")
    assert (
        upload(
            partner, claim_id, image_bytes("PNG"), "photo.PNG", "photo", as_json=True
        ).status_code
        == 201
    )
    csv_file = b"leads,count\nwebinar,42\n"
    assert (
        upload(partner, claim_id, csv_file, "leads.csv", "lead_list", as_json=True).status_code
        == 201
    )
    with world.sessions() as session:
        docs = {
            d.kind: d.id
            for d in session.scalars(
                select(claims.Document).where(claims.Document.claim_id == claim_id)
            )
        }
    page = text(partner.get(f"/claims/{claim_id}"))
    assert f'href="/claims/{claim_id}/documents/{docs["lead_list"]}?download=1" download' in page

    pdf = partner.get(f"/claims/{claim_id}/documents/{docs['invoice']}")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF-")
    assert pdf.headers["Content-Type"] == "application/pdf"
    assert pdf.headers["Content-Disposition"] == 'inline; filename="invoice.pdf"'
    assert pdf.headers["X-Content-Type-Options"] == "nosniff"
    assert pdf.headers["X-Frame-Options"] == "SAMEORIGIN"  # the claim page frames it
    policy = pdf.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy  # default-src covers it
    assert "frame-ancestors 'self'" in policy

    png = partner.get(f"/claims/{claim_id}/documents/{docs['photo']}")
    assert png.headers["Content-Type"] == "image/png" and png.data.startswith(b"\x89PNG")
    assert "sandbox" in png.headers["Content-Security-Policy"]
    assert png.headers["Content-Disposition"] == 'inline; filename="photo.PNG"'

    download = partner.get(f"/claims/{claim_id}/documents/{docs['lead_list']}?download=1")
    assert download.headers["Content-Type"] == "text/csv"
    assert download.headers["Content-Disposition"] == 'attachment; filename="leads.csv"'
    assert download.data == csv_file
    # Finance and auditors read it too; a link is not a stored file.
    assert (
        world.client("auditor").get(f"/claims/{claim_id}/documents/{docs['invoice']}").status_code
        == 200
    )
    assert partner.get(f"/claims/{claim_id + 1}/documents/{docs['invoice']}").status_code == 404


def test_links_are_added_and_proof_is_removed(world: World) -> None:
    claim_id = submitted_claim(world, submit=False)
    partner = world.client("partner")
    bad = post(partner, f"/claims/{claim_id}/links", {"url": "example.com", "kind": "landing_page"})
    assert bad.status_code == 422
    assert "starting with https://" in field_error(text(bad), "link-url")
    added = post(
        partner, f"/claims/{claim_id}/links",
        {"url": "https://acme.example/webinars", "kind": "landing_page"},
    )  # fmt: skip
    assert added.status_code == 302
    page = text(partner.get(f"/claims/{claim_id}"))
    assert 'href="https://acme.example/webinars" rel="noopener noreferrer nofollow"' in page
    with world.sessions() as session:
        invoice = session.scalars(
            select(claims.Document).where(claims.Document.kind == "invoice")
        ).one()
    removed = post(partner, f"/claims/{claim_id}/documents/{invoice.id}/remove")
    assert removed.status_code == 302
    assert "Removed invoice.pdf" in visible(partner.get(f"/claims/{claim_id}"))
    assert documents(world, claim_id) == [("landing_page", "https://acme.example/webinars")]
    assert "Still needed before you can submit: invoice" in visible(
        partner.get(f"/claims/{claim_id}")
    )


def test_a_draft_is_edited_and_withdrawn(world: World) -> None:
    claim_id = submitted_claim(world, submit=False)
    partner = world.client("partner")
    edit = partner.get(f"/claims/{claim_id}/edit")
    assert edit.status_code == 200 and 'value="1000.00"' in text(edit)
    fields = claim_fields(claimed_amount="1200.00", actual_cost="3000.00", invoice_total="3000.00")
    fields.pop("key")
    bad = post(partner, f"/claims/{claim_id}/edit", {**fields, "claimed_amount": "1600.00"})
    assert bad.status_code == 422
    assert "at most 1500.00 USD may be claimed" in field_error(text(bad), "claimed_amount")
    assert post(partner, f"/claims/{claim_id}/edit", fields).status_code == 302
    assert claim_row(world, claim_id).claimed_amount == 120_000
    assert act(partner, claim_id, "withdraw").status_code == 302
    assert claim_row(world, claim_id).state == "withdrawn"
    assert partner.get(f"/claims/{claim_id}/edit").status_code == 409


def test_direct_claims_through_the_form_and_where_none_is_allowed(world: World) -> None:
    partner = world.client("partner")
    page = text(partner.get("/claims/new"))
    assert 'name="program_id"' in page and 'name="activity_id"' in page
    made = post(
        partner, "/claims/new",
        {**claim_fields(), "program_id": str(world.mdf), "activity_id": str(world.event)},
    )  # fmt: skip
    assert made.status_code == 302
    seen = visible(partner.get(made.headers["Location"]))
    assert "Still needed before you can submit: invoice photos" in seen
    with world.sessions() as session:
        programs.update_program(session, SETUP, world.mdf, direct_claims=False)
        session.commit()
    none = partner.get("/claims/new")
    assert none.status_code == 200
    seen = visible(none)
    assert "None of your programs pays activities that were not pre-approved" in seen
    assert 'name="program_id"' not in text(none)
    # A request that is not approved cannot be claimed.
    request_id = propose(world)
    refused = partner.get(f"/claims/new?request={request_id}")
    assert refused.status_code == 409
    assert "is submitted: only an approved request can be claimed" in visible(refused)
    assert world.client("finance").get("/claims/new").status_code == 403


# --- finance -------------------------------------------------------------------------------------


def test_the_queue_filters_sorts_pages_and_shows_flags(world: World) -> None:
    for n in range(51):
        submitted_claim(world, amount=1000 + n, invoice=("Printers", f"P-{n}", 10_000))
    dup_a = submitted_claim(world, amount=90_000, invoice=("Webinars, Inc.", "INV-0042", 300_000))
    dup_b = submitted_claim(
        world, role="partner_b", amount=80_000, invoice=("webinars inc", "inv 0042", 300_000)
    )
    draft = submitted_claim(world, submit=False, title="Not sent")
    finance = world.client("finance")
    first = visible(finance.get("/claims"))
    assert "Claims waiting for a decision: 1\N{EN DASH}50 of 53" in first
    assert "Not sent" not in first and f"CLM-{draft:06d}" not in first
    assert "(0 days)" in first
    second = finance.get("/claims?page=2")
    assert "51\N{EN DASH}53 of 53" in visible(second)
    assert f"CLM-{dup_b:06d}" in visible(second)  # oldest first: the last one is on page 2

    biggest = text(finance.get("/claims?sort=amount_desc"))
    references = re.findall(r">(CLM-\d{6})</a>", biggest)
    assert references[:2] == [f"CLM-{dup_a:06d}", f"CLM-{dup_b:06d}"]
    smallest = re.findall(r">(CLM-\d{6})</a>", text(finance.get("/claims?sort=amount_asc")))
    assert smallest[0] == "CLM-000001"

    flagged = visible(finance.get("/claims?flagged=yes"))
    assert "of 1" in flagged and f"CLM-{dup_b:06d}" in flagged and "flagged" in flagged
    assert "of 52" in visible(finance.get("/claims?flagged=no"))
    bolt = visible(finance.get(f"/claims?partner_id={world.bolt}"))
    assert "1\N{EN DASH}1 of 1" in bolt and "Bolt Systems" in bolt
    ranged = visible(finance.get("/claims?min_amount=800&max_amount=850.00"))
    assert "1\N{EN DASH}1 of 1" in ranged and f"CLM-{dup_b:06d}" in ranged
    assert "1\N{EN DASH}50 of 53" in visible(finance.get("/claims?older_than=0"))
    assert "none" in visible(finance.get("/claims?older_than=1"))
    everything = visible(finance.get("/claims?state=any"))
    assert "of 54" in everything
    drafts = visible(finance.get("/claims?state=draft"))
    assert "1\N{EN DASH}1 of 1" in drafts and f"CLM-{draft:06d}" in drafts
    page_links = text(finance.get("/claims?flagged=no&sort=newest"))
    assert "flagged=no" in page_links and "sort=newest" in page_links and "page=2" in page_links
    for query, message in (
        ("older_than=soon", "older than: enter a whole number of days"),
        ("sort=random", "sort must be one of"),
        ("state=lost", "state must be one of"),
        ("min_amount=5&max_amount=1", "the smallest amount is above the largest"),
        ("min_amount=1.234", "more than 2 decimal places"),
    ):
        bad = finance.get(f"/claims?{query}")
        assert bad.status_code == 422, query
        assert message in visible(bad), query

    # The flagged claim shows its flag with a link to the other claim.
    page = finance.get(f"/claims/{dup_b}")
    seen = visible(page)
    assert "Same invoice:" in seen and "of another partner" in seen
    assert f'href="/claims/{dup_a}"' in text(page)
    # The partner who owns it sees the flag; the other claim is not theirs to open.
    partner_b = world.client("partner_b")
    assert f'href="/claims/{dup_a}"' in text(partner_b.get(f"/claims/{dup_b}"))
    assert partner_b.get(f"/claims/{dup_a}").status_code == 404


def test_bulk_approve_says_what_happened_to_each_and_keeps_the_filters(world: World) -> None:
    clean = [submitted_claim(world, amount=10_000, invoice=("A", f"{n}", 20_000)) for n in (1, 2)]
    dup_a = submitted_claim(world, amount=10_000, invoice=("Dup", "9", 20_000))
    dup_b = submitted_claim(world, role="partner_b", amount=10_000, invoice=("Dup", "9", 20_000))
    finance = world.client("finance")
    page = text(finance.get("/claims?sort=newest&flagged="))
    assert 'action="/claims/bulk-approve"' in page and "Approve selected" in page
    back = form_value(page, "/claims/bulk-approve", "back")
    assert "sort=newest" in back
    response = post(
        finance, "/claims/bulk-approve",
        {"claim_ids": [str(clean[0]), str(clean[1]), str(dup_b)], "back": back},
    )  # fmt: skip
    assert response.status_code == 302
    assert response.headers["Location"] == "/claims?sort=newest&flagged="
    seen = visible(finance.get(response.headers["Location"]))
    assert f"CLM-{clean[0]:06d}: approved" in seen and f"CLM-{clean[1]:06d}: approved" in seen
    assert f"CLM-{dup_b:06d}: not approved: flagged as a possible duplicate" in seen
    assert [claim_row(world, c).state for c in (*clean, dup_a, dup_b)] == [
        "approved", "approved", "in_review", "in_review",
    ]  # fmt: skip
    assert payable(world) == 20_000
    nothing = post(finance, "/claims/bulk-approve", {"back": ""})
    assert nothing.status_code == 302
    assert "Choose the claims to approve" in visible(finance.get(nothing.headers["Location"]))


def test_two_finance_users_on_the_same_version_the_second_gets_409(world: World) -> None:
    claim_id = submitted_claim(world, amount=100_000)
    fin, fay = world.client("finance"), world.client("finance2")
    path = f"/claims/{claim_id}"
    fin_page, fay_page = text(fin.get(path)), text(fay.get(path))
    first = post_decision(fin, fin_page, f"{path}/approve", amount="1000.00")
    assert first.status_code == 302
    second = post_decision(fay, fay_page, f"{path}/approve", amount="1000.00")
    assert second.status_code == 409
    seen = visible(second)
    assert "Nothing was changed." in seen
    assert "this claim changed since you opened it: it is now approved" in seen.lower()
    assert "The latest step: Fin approved it (1,000.00 USD)" in seen
    assert payable(world) == 100_000  # once, not twice
    with world.sessions() as session:
        claim = session.get(claims.Claim, claim_id)
        assert [e.event for e in claims.timeline(session, claim)].count("approve") == 1


def test_a_double_post_with_the_same_key_decides_once(world: World) -> None:
    claim_id = submitted_claim(world, submit=False)
    partner = world.client("partner")
    path = f"/claims/{claim_id}/submit"
    page = text(partner.get(f"/claims/{claim_id}"))
    assert post_decision(partner, page, path).status_code == 302
    assert post_decision(partner, page, path).status_code == 302
    finance = world.client("finance")
    path = f"/claims/{claim_id}/approve"
    page = text(finance.get(f"/claims/{claim_id}"))
    assert post_decision(finance, page, path, amount="1000.00").status_code == 302
    assert post_decision(finance, page, path, amount="1000.00").status_code == 302
    assert payable(world) == 100_000
    with world.sessions() as session:
        claim = session.get(claims.Claim, claim_id)
        events = [e.event for e in claims.timeline(session, claim)]
    assert events == ["create", "submit", "verify", "review", "approve"]


def test_a_second_approver_is_named_with_the_amount(world: World) -> None:
    with world.sessions() as session:
        programs.update_program(session, SETUP, world.mdf, second_approval_above=50_000)
        session.commit()
    claim_id = submitted_claim(world, amount=100_000)
    fin, fay = world.client("finance"), world.client("finance2")
    assert act(fin, claim_id, "approve", amount="1000.00").status_code == 302
    assert claim_row(world, claim_id).state == "in_review" and payable(world) == 0
    mine = visible(fin.get(f"/claims/{claim_id}"))
    assert "You approved 1,000.00 USD" in mine and "second approver must confirm" in mine
    theirs = visible(fay.get(f"/claims/{claim_id}"))
    assert "Fin approved 1,000.00 USD" in theirs and "approving it completes" in theirs
    assert "1 of 2 approvals" in visible(fay.get("/claims"))
    different = act(fay, claim_id, "approve", amount="900.00", reason_code="other", message="less")
    assert different.status_code == 409
    assert "approve the same amount" in field_error(text(different), "approve-amount")
    assert act(fay, claim_id, "approve", amount="1000.00").status_code == 302
    assert claim_row(world, claim_id).state == "approved" and payable(world) == 100_000


def test_finance_returns_and_rejects_with_a_reason(world: World) -> None:
    claim_id = submitted_claim(world)
    finance = world.client("finance")
    assert act(finance, claim_id, "return", message="Add the attendee list").status_code == 422
    assert act(
        finance, claim_id, "return", reason_code="insufficient_proof",
        message="Add the attendee list",
    ).status_code == 302  # fmt: skip
    partner = world.client("partner")
    seen = visible(partner.get(f"/claims/{claim_id}"))
    assert (
        "returned" in seen
        and "Add the attendee list" in seen
        and "Reason: Not enough proof" in seen
    )
    assert act(partner, claim_id, "submit").status_code == 302
    assert act(finance, claim_id, "reject", reason_code="duplicate").status_code == 422
    assert (
        act(
            finance, claim_id, "reject", reason_code="duplicate", message="Claimed before"
        ).status_code
        == 302
    )
    assert claim_row(world, claim_id).state == "rejected"
    assert world.breakdown().reserved == 0


# --- who may do what -----------------------------------------------------------------------------


def test_an_auditor_sees_the_queue_and_claims_but_changes_nothing(world: World) -> None:
    claim_id = submitted_claim(world)
    auditor = world.client("auditor")
    queue = auditor.get("/claims")
    assert queue.status_code == 200 and f"CLM-{claim_id:06d}" in visible(queue)
    assert "Approve selected" not in text(queue) and 'name="claim_ids"' not in text(queue)
    page = auditor.get(f"/claims/{claim_id}")
    assert page.status_code == 200
    body = text(page).split("<main", 1)[1]
    assert "<button" not in body and "<iframe" in body
    for action in ("approve", "return", "reject", "submit", "withdraw"):
        response = post(auditor, f"/claims/{claim_id}/{action}", {"version": "3", "key": "k"})
        assert response.status_code == 403, action
    assert post(auditor, "/claims/bulk-approve", {"claim_ids": str(claim_id)}).status_code == 403
    assert (
        upload(auditor, claim_id, pdf_bytes(), "a.pdf", "invoice", as_json=True).status_code == 403
    )
    assert auditor.get(f"/claims/{claim_id}/edit").status_code == 403
    assert auditor.get("/claims/new").status_code == 403
    assert claim_row(world, claim_id).state == "in_review"


def test_partners_do_not_decide_and_finance_does_not_submit(world: World) -> None:
    claim_id = submitted_claim(world)
    partner = world.client("partner")
    assert post(partner, f"/claims/{claim_id}/approve", {"version": "3"}).status_code == 403
    assert post(partner, "/claims/bulk-approve", {"claim_ids": str(claim_id)}).status_code == 403
    finance = world.client("finance")
    assert post(finance, f"/claims/{claim_id}/withdraw", {"version": "3"}).status_code == 403
    assert post(finance, f"/claims/{claim_id}/pay").status_code == 404
    assert claim_row(world, claim_id).state == "in_review"


def test_another_partners_claim_and_documents_are_not_found(world: World) -> None:
    claim_id = submitted_claim(world, submit=False)
    with world.sessions() as session:
        document_id = session.scalars(select(claims.Document.id)).one()
    other = world.client("partner_b")
    for path in (f"/claims/{claim_id}", f"/claims/{claim_id}/documents/{document_id}",
                 f"/claims/{claim_id}/edit", "/claims/987654"):  # fmt: skip
        response = other.get(path)
        assert response.status_code == 404, path
        assert "invoice.pdf" not in text(response) and "Webinars held" not in text(response)
    for action in ("submit", "withdraw"):
        assert post(other, f"/claims/{claim_id}/{action}", {"version": "1"}).status_code == 404
    assert (
        upload(other, claim_id, pdf_bytes("x"), "x.pdf", "invoice", as_json=True).status_code == 404
    )
    assert (
        upload(other, claim_id, pdf_bytes("x"), "x.pdf", "invoice", as_json=False).status_code
        == 404
    )
    assert (
        post(
            other, f"/claims/{claim_id}/links", {"url": "https://x.example", "kind": "social_post"}
        ).status_code
        == 404
    )
    assert post(other, f"/claims/{claim_id}/documents/{document_id}/remove").status_code == 404
    assert other.get(f"/claims/new?request={propose(world)}").status_code == 404
    assert "Webinars held" not in visible(other.get("/claims"))
    assert documents(world, claim_id) == [("invoice", "invoice.pdf")]
    assert claim_row(world, claim_id).state == "draft"


def test_forms_without_their_csrf_token_are_refused(world: World) -> None:
    claim_id = submitted_claim(world, submit=False)
    partner = world.client("partner")
    response = partner.post(
        f"/claims/{claim_id}/documents", headers=JSON, content_type="multipart/form-data",
        data={"kind": "photo", "file": (io.BytesIO(image_bytes("PNG")), "p.png")},
    )  # fmt: skip
    assert response.status_code == 400
    response = partner.post(f"/claims/{claim_id}/submit", data={"version": "1"})
    assert response.status_code == 400 and "security token" in visible(response)
    assert documents(world, claim_id) == [("invoice", "invoice.pdf")]
    assert claim_row(world, claim_id).state == "draft"
    finance = world.client("finance")
    assert (
        finance.post("/claims/bulk-approve", data={"claim_ids": str(claim_id)}).status_code == 400
    )


@pytest.mark.parametrize("role", ["partner", "finance", "auditor", "admin"])
def test_each_role_reaches_the_claim_and_request_lists(world: World, role: str) -> None:
    client = world.client(role)
    for path in ("/claims", "/requests"):
        response = client.get(path)
        assert response.status_code == 200, path
    nav = re.search(r'<nav aria-label="Main">(.*?)</nav>', text(client.get("/claims")), re.S)
    assert nav is not None
    labels = re.findall(r">([^<>]+)</a>", nav.group(1))
    expected = ["My requests", "My claims"] if role == "partner" else ["Claims", "Requests"]
    assert [label for label in labels if label in expected] == expected
    # On the claim list, its own link is marked as the current page (and only that one).
    current = re.findall(r'<a href="([^"]+)" aria-current="page">([^<>]+)</a>', nav.group(1))
    assert current == [("/claims", "My claims" if role == "partner" else "Claims")]


class PresigningStore(LocalStore):
    """The local store, handing out links as S3 does (the app must redirect to them)."""

    def download_url(
        self, sha256: str, *, filename: str, expires: int = 300, inline: bool = False
    ) -> str | None:
        return f"https://proof.example/{sha256}?inline={inline}&name={filename}"


def test_a_store_with_presigned_links_gets_a_redirect(world: World) -> None:
    claim_id = submitted_claim(world, submit=False)
    world.app.extensions[APP_KEY] = PresigningStore(world.proof)
    with world.sessions() as session:
        document = session.scalars(select(claims.Document)).one()
    partner = world.client("partner")
    shown = partner.get(f"/claims/{claim_id}/documents/{document.id}")
    assert shown.status_code == 302
    assert shown.headers["Location"] == (
        f"https://proof.example/{document.sha256}?inline=True&name=invoice.pdf"
    )
    saved = partner.get(f"/claims/{claim_id}/documents/{document.id}?download=1")
    assert saved.headers["Location"].endswith("inline=False&name=invoice.pdf")
    assert (
        world.client("partner_b").get(f"/claims/{claim_id}/documents/{document.id}").status_code
        == 404
    )
