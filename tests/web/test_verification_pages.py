"""Verification on the pages, as each role sees it: the claim's checks with their evidence (a
live page on loopback, a lead list, a photo, an invoice beside its preview), running a check
again, the history, and a program's verification rules. On SQLite and PostgreSQL.

Claims are submitted through the claim page: the app's in-process runner checks the proof right
after the submission commits, as in the embedded default."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from mdfledger import audit, claims, programs, verification
from mdfledger.demo_proof import invoice_pdf
from mdfledger.storage import LocalStore
from mdfledger.verification.testserver import PageServer, html
from tests.samples import image_bytes
from tests.web.test_claims_pages import act, claim_row
from tests.web.test_requests_pages import (
    SETUP,
    World,
    build_world,
    csrf_token,
    field_error,
    post,
    text,
    today,
    visible,
)

LIVE_PAGE = html(
    "<h1>Cloud days</h1><p>Brought to you by Acme Networks, partner of the month.</p>",
    title="Cloud days | Acme Networks",
)
FIXED_PAGE = html(
    "<h1>Cloud days</h1><p>Acme Networks invites you. Use code Q3-CLOUD.</p>",
    title="Cloud days | Acme Networks",
)


@pytest.fixture
def server() -> Iterator[PageServer]:
    with PageServer({"/launch": LIVE_PAGE}) as running:
        yield running


@pytest.fixture
def world(
    database_url: str,
    tmp_path: Path,
    session_factory: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[World]:
    # The page check may fetch the loopback test server (never allowed in production).
    monkeypatch.setenv("MDFLEDGER_VERIFY_ALLOW_HOSTS", "127.0.0.1")
    yield from build_world(database_url, tmp_path, session_factory)


def launch_activity(world: World) -> int:
    """The program's product launch: proved by a live page, a lead list and photos."""
    with world.sessions() as session:
        found = session.scalar(
            select(programs.Activity.id).where(programs.Activity.code == "LAUNCH")
        )
        if found is not None:
            return found
        launch = programs.add_activity(
            session, SETUP, world.mdf, code="LAUNCH", name="Product launch",
            proof=["landing_page", "lead_list", "photos"],
        )  # fmt: skip
        session.commit()
        return launch.id


# --- helpers -------------------------------------------------------------------------------------


def leads_csv(starts_on: date) -> bytes:
    """Three good leads inside the window, one repeated, one broken address."""
    day = starts_on.isoformat()
    rows = [
        "email,created",
        f"ann@buyer.example,{day}",
        f"bob@buyer.example,{day}",
        f"cy@buyer.example,{day}",
        f"ann@buyer.example,{day}",
        f"not-an-address,{day}",
    ]
    return ("\n".join(rows) + "\n").encode()


def draft_launch(world: World, url: str) -> int:
    """A direct claim of ACME for the launch: a link, a lead list and a photo."""
    actor = world.actors["partner"]
    store = LocalStore(world.proof)
    starts_on = today() - timedelta(days=5)
    with world.sessions() as session:
        claim = claims.create_claim(
            session, actor, program_id=world.mdf, activity_id=launch_activity(world),
            title="Launch", starts_on=starts_on, ends_on=today() - timedelta(days=1),
            actual_cost=300_000, claimed_amount=100_000,
        )  # fmt: skip
        claims.add_link(session, actor, claim.id, url=url, kind="landing_page")
        claims.add_document(
            session, actor, store, claim.id, data=leads_csv(starts_on), filename="leads.csv",
            kind="lead_list",
        )  # fmt: skip
        claims.add_document(
            session, actor, store, claim.id, data=image_bytes("JPEG"), filename="booth.jpg",
            kind="photo",
        )  # fmt: skip
        session.commit()
        return claim.id


def submit_on_the_page(world: World, claim_id: int) -> None:
    response = act(world.client("partner"), claim_id, "submit")
    assert response.status_code == 302, visible(response)


def set_markers(world: World, markers: str) -> None:
    with world.sessions() as session:
        verification.set_policy(
            session, SETUP, world.mdf, auto_approve_up_to=None, tolerance_bp=100,
            invoice_grace_days=30, page_markers=markers, min_leads=None, recheck_days=30,
        )  # fmt: skip
        session.commit()


def results(world: World, claim_id: int | None = None) -> int:
    with world.sessions() as session:
        query = select(func.count()).select_from(verification.CheckResult)
        if claim_id is not None:
            query = query.where(verification.CheckResult.claim_id == claim_id)
        return session.scalar(query) or 0


def check_items(page: str) -> list[str]:
    """Each check on the page as a reader sees it, in the page's order."""
    items = re.findall(
        r'<li class="check check-\w+" id="check-\d+">(.*?)</li>\s*(?=<li|</ol)', page, re.S
    )
    return [" ".join(re.sub(r"<[^>]+>", " ", item).split()) for item in items]


def rerun_forms(page: str) -> list[tuple[str, str | None]]:
    """(kind, document_id) of every "Run again" form on the page."""
    forms = re.findall(
        r'<form method="post" action="/claims/\d+/checks/rerun"(.*?)</form>', page, re.S
    )
    found = []
    for form in forms:
        kind = re.search(r'name="kind" value="([^"]+)"', form)
        document = re.search(r'name="document_id" value="([^"]+)"', form)
        assert kind
        found.append((kind.group(1), document.group(1) if document else None))
    return found


def document_ids(world: World, claim_id: int) -> dict[str, int]:
    with world.sessions() as session:
        rows = session.scalars(select(claims.Document).where(claims.Document.claim_id == claim_id))
        return {d.kind: d.id for d in rows}


# --- the claim page ------------------------------------------------------------------------------


def test_finance_reads_each_check_with_its_evidence_failing_first(
    world: World, server: PageServer
) -> None:
    set_markers(world, "{partner}\nQ3-CLOUD")
    claim_id = draft_launch(world, server.url("/launch"))
    submit_on_the_page(world, claim_id)
    assert claim_row(world, claim_id).state == "in_review"

    finance = world.client("finance")
    response = finance.get(f"/claims/{claim_id}")
    page = text(response)
    seen = visible(response)
    assert "Checks" in seen and "5 checks: 1 failed, 0 inconclusive, 4 passed." in seen
    items = check_items(page)
    # The failing page comes first, then the passed ones in the usual reading order.
    assert [item.split(" ", 1)[0] for item in items] == ["Failed", *["Passed"] * 4]
    assert items[0].startswith(f"Failed Landing page or post: {server.url('/launch')}")
    assert "Page is live (200) but does not mention: Q3-CLOUD" in items[0]
    assert "1 run" in items[0] and "on submission" in items[0]

    # The page: the answer, the final address as a safe link, the title, each marker.
    final = re.search(r'<a href="([^"]+)" rel="([^"]+)" target="_blank" class="check-url">', page)
    assert final and final.groups() == (server.url("/launch"), "noopener noreferrer nofollow")
    assert "Answer 200 (text/html" in items[0] and "Title Cloud days | Acme Networks" in items[0]
    assert "Acme Networks Found in the title: Cloud days | Acme Networks" in items[0]
    assert "Q3-CLOUD Missing (best 76) closest: Cloud days" in items[0]
    assert "Fetched " + today().isoformat() in items[0]
    assert "What the page says Cloud days Brought to you by Acme Networks" in items[0]

    # The lead list's counts and its masked examples; the photo; the dates; the amount.
    leads = next(item for item in items if item.startswith("Passed Lead list"))
    assert "Unique leads 3" in leads and "New, inside the activity window 3" in leads
    assert "Invalid e-mail addresses 1" in leads and "Duplicates in the file 1" in leads
    assert "a***@buyer.example" in leads and "ann@buyer.example" not in page
    photo = next(item for item in items if item.startswith("Passed Photo"))
    assert "Photo opens (64 x 48 JPEG); the camera recorded no date" in photo
    assert "Size 64 x 48 pixels, JPEG" in photo
    dates = next(item for item in items if item.startswith("Passed Dates"))
    assert "no pre-approval: a direct claim" in dates
    amount = next(item for item in items if item.startswith("Passed Amount"))
    assert "1,000.00 USD claimed is within the 50% share of the declared cost" in amount
    assert "Claimed 1,000.00 USD" in amount and "Allowed 1,500.00 USD" in amount

    # Finance may run every check again; the per-document ones name their document.
    docs = document_ids(world, claim_id)
    assert sorted(rerun_forms(page), key=str) == sorted(
        [
            ("page", str(docs["landing_page"])), ("leads", str(docs["lead_list"])),
            ("photo", str(docs["photo"])), ("dates", None), ("amount", None),
        ],
        key=str,
    )  # fmt: skip
    assert "History (5 runs)" in seen


def test_running_a_check_again_shows_the_new_result_and_adds_to_the_history(
    world: World, server: PageServer
) -> None:
    set_markers(world, "{partner}\nQ3-CLOUD")
    claim_id = draft_launch(world, server.url("/launch"))
    submit_on_the_page(world, claim_id)
    server.route("/launch", FIXED_PAGE)  # the partner fixed the page

    finance = world.client("finance")
    link = document_ids(world, claim_id)["landing_page"]
    response = post(
        finance, f"/claims/{claim_id}/checks/rerun", {"kind": "page", "document_id": str(link)}
    )
    assert response.status_code == 302
    assert response.headers["Location"] == f"/claims/{claim_id}#checks"
    again = finance.get(response.headers["Location"])
    seen = visible(again)
    assert "The landing page or post check is running again" in seen
    items = check_items(text(again))
    assert all(item.startswith("Passed") for item in items)
    page_check = next(item for item in items if item.startswith("Passed Landing page"))
    assert "Q3-CLOUD Found" in page_check and "2 runs" in page_check
    assert "(run again)" in page_check
    # The history keeps both runs: who asked, why it ran, what it said then.
    assert "History (6 runs)" in seen
    history = re.search(r'<details class="check-history">(.*?)</details>', text(again), re.S)
    assert history
    rows = [" ".join(re.sub(r"<[^>]+>", " ", r).split()) for r in re.findall(
        r"<tr>(.*?)</tr>", history.group(1), re.S)][1:]  # fmt: skip
    assert "Landing page or post run again Fin Passed Page is live (200)" in rows[0]
    assert "Landing page or post on submission system (verification) Failed" in " ".join(rows)
    assert claim_row(world, claim_id).state == "in_review"  # a re-run decides nothing


def test_partners_see_their_own_checks_read_only_and_auditors_too(
    world: World, server: PageServer
) -> None:
    claim_id = draft_launch(world, server.url("/launch"))
    submit_on_the_page(world, claim_id)
    for role in ("partner", "auditor"):
        page = text(world.client(role).get(f"/claims/{claim_id}"))
        assert "5 checks: 0 failed, 0 inconclusive, 5 passed." in visible_text(page), role
        assert rerun_forms(page) == [], role
        refused = post(world.client(role), f"/claims/{claim_id}/checks/rerun", {"kind": "dates"})
        assert refused.status_code == 403, role
    admin = text(world.client("admin").get(f"/claims/{claim_id}"))
    assert len(rerun_forms(admin)) == 5

    # Another partner's claim is not found, page and re-run alike.
    other = world.client("partner_b")
    assert other.get(f"/claims/{claim_id}").status_code == 404
    assert results(world, claim_id) == 5


def visible_text(page: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", page).split())


def test_bad_re_run_input_gets_a_clear_message_and_runs_nothing(
    world: World, server: PageServer
) -> None:
    claim_id = draft_launch(world, server.url("/launch"))
    other_id = draft_launch(world, server.url("/launch"))
    submit_on_the_page(world, claim_id)
    finance = world.client("finance")
    path = f"/claims/{claim_id}/checks/rerun"
    before = results(world)
    entries = audit_entries(world)

    unknown = post(finance, path, {"kind": "horoscope"})
    assert unknown.status_code == 422
    assert "Nothing was changed. Choose a check: invoice, page, leads" in visible(unknown)
    elsewhere = post(
        finance, path, {"kind": "photo", "document_id": str(document_ids(world, other_id)["photo"])}
    )
    assert elsewhere.status_code == 422
    assert "Choose a document of this claim" in visible(elsewhere)
    wrong_kind = post(
        finance, path, {"kind": "page", "document_id": str(document_ids(world, claim_id)["photo"])}
    )
    assert wrong_kind.status_code == 422
    draft = post(finance, f"/claims/{other_id}/checks/rerun", {"kind": "dates"})
    assert draft.status_code == 409
    assert "checks run again only on claims in review or decided" in visible(draft)
    no_token = finance.post(path, data={"kind": "dates"})
    assert no_token.status_code == 400
    token = csrf_token(finance, "/login")
    nowhere = finance.post(
        "/claims/999999/checks/rerun", data={"kind": "dates", "csrf_token": token}
    )
    assert nowhere.status_code == 404

    assert results(world) == before
    assert audit_entries(world) == entries


def audit_entries(world: World) -> int:
    with world.sessions() as session:
        return session.scalar(select(func.count()).select_from(audit.AuditEntry)) or 0


def test_while_the_proof_is_checked_the_page_says_so(world: World, server: PageServer) -> None:
    claim_id = draft_launch(world, server.url("/launch"))
    with world.sessions() as session:  # no runner on the test's sessions: the job waits
        claims.submit_claim(session, world.actors["partner"], claim_id)
        session.commit()
    for role in ("partner", "finance"):
        page = world.client(role).get(f"/claims/{claim_id}")
        seen = visible(page)
        assert "Checking the proof…" in seen, role
        assert check_items(text(page)) == [] and "History (" not in seen
    # A draft has no checks section at all.
    draft = draft_launch(world, server.url("/launch"))
    assert 'id="checks"' not in text(world.client("partner").get(f"/claims/{draft}"))


def test_the_invoice_fields_are_shown_beside_the_invoice(world: World) -> None:
    actor = world.actors["partner"]
    with world.sessions() as session:
        claim = claims.create_claim(
            session, actor, program_id=world.mdf, activity_id=world.webinar, title="Webinars",
            starts_on=today() - timedelta(days=5), ends_on=today() - timedelta(days=1),
            actual_cost=300_000, claimed_amount=100_000, invoice_issuer="Webinars Inc",
            invoice_number="INV-1001", invoice_total=300_000,
        )  # fmt: skip
        pdf = invoice_pdf(
            issuer="Webinars Inc", number="INV-1001", issued=today() - timedelta(days=2),
            bill_to="Acme Networks", items=(("Webinar platform", 300_000),),
        )  # fmt: skip
        document = claims.add_document(
            session, actor, LocalStore(world.proof), claim.id, data=pdf, filename="inv.pdf",
            kind="invoice",
        )  # fmt: skip
        session.commit()
        claim_id, document_id = claim.id, document.id
    submit_on_the_page(world, claim_id)

    page = text(world.client("finance").get(f"/claims/{claim_id}"))
    item = next(i for i in check_items(page) if " Invoice " in f" {i} ")
    assert item.startswith("Passed Invoice Invoice total 3,000.00 USD matches the claimed cost")
    assert "Invoiced 3,000.00 USD Cost claimed 3,000.00 USD, give or take 30.00 USD (1%)" in item
    reading = re.search(r'<div class="invoice-reading">(.*?)</table>', page, re.S)
    assert reading, "the invoice's reading"
    preview, fields = reading.group(1).split('<div class="invoice-fields">')
    assert f'<iframe class="doc-frame" src="/claims/{claim_id}/documents/{document_id}"' in preview
    rows = [" ".join(re.sub(r"<[^>]+>", " ", r).split()) for r in re.findall(
        r"<tr>(.*?)</tr>", fields, re.S)]  # fmt: skip
    assert rows[0] == "Field Read Confidence The claim says"
    by_field = {row.split(" ", 1)[0]: row for row in rows[1:]}
    assert by_field["Issuer"].startswith("Issuer Webinars Inc")
    assert by_field["Number"].startswith("Number INV-1001")
    assert by_field["Total"].startswith("Total 3,000.00 USD")
    assert "3,000.00 USD cost claimed" in by_field["Total"]
    assert by_field["Currency"].startswith("Currency USD")
    assert all(re.search(r" \d{1,3}% ", row) for row in by_field.values()), by_field


# --- a program's rules ---------------------------------------------------------------------------

GOOD_RULES = {
    "auto_approve_up_to": "2,500.00",
    "tolerance_bp": "50",
    "invoice_grace_days": "14",
    "page_markers": "{partner}\r\n\r\n  Q3-CLOUD  \r\n",
    "min_leads": "",
    "recheck_days": "10",
}


def policy(world: World) -> verification.Policy:
    with world.sessions() as session:
        return verification.policy_of(session, world.mdf)


def test_admins_set_a_programs_rules_and_the_program_page_links_to_them(world: World) -> None:
    admin = world.client("admin")
    link = f'href="/programs/{world.mdf}/verification">Verification rules</a>'
    assert link in text(admin.get(f"/programs/{world.mdf}"))
    response = admin.get(f"/programs/{world.mdf}/verification")
    assert re.search(r'name="tolerance_bp"[^>]* value="100"', text(response))
    assert "{partner} stands for the partner's name" in visible(response)
    saved = post(admin, f"/programs/{world.mdf}/verification", GOOD_RULES)
    assert saved.status_code == 302
    assert "Verification rules of MDF26 saved" in visible(admin.get(saved.headers["Location"]))
    assert policy(world) == verification.Policy(
        auto_approve_up_to=250_000, tolerance_bp=50, invoice_grace_days=14,
        page_markers="{partner}\nQ3-CLOUD", min_leads=None, recheck_days=10,
    )  # fmt: skip
    again = text(admin.get(f"/programs/{world.mdf}/verification"))
    assert re.search(r'name="auto_approve_up_to"[^>]* value="2500.00"', again)


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"auto_approve_up_to": "0"}, "auto_approve_up_to", "above zero"),
        ({"auto_approve_up_to": "12.345"}, "auto_approve_up_to", "decimal places"),
        ({"auto_approve_up_to": "1,5"}, "auto_approve_up_to", "not a decimal amount"),
        ({"tolerance_bp": "1%"}, "tolerance_bp", "Not a valid integer value"),
        ({"tolerance_bp": "10001"}, "tolerance_bp", "from 0 to 10000"),
        ({"invoice_grace_days": ""}, "invoice_grace_days", "whole number of days"),
        ({"invoice_grace_days": "-1"}, "invoice_grace_days", "from 0 to 366"),
        ({"min_leads": "0"}, "min_leads", "from 1 to 1000000"),
        ({"recheck_days": "367"}, "recheck_days", "from 0 to 366"),
        ({"page_markers": "x" * 2001}, "page_markers", "at most 2000 characters"),
    ],
)
def test_bad_rules_come_back_next_to_their_field_and_change_nothing(
    world: World, changes: dict[str, str], field: str, words: str
) -> None:
    admin = world.client("admin")
    before = policy(world)
    response = post(admin, f"/programs/{world.mdf}/verification", {**GOOD_RULES, **changes})
    assert response.status_code == 422
    assert words in field_error(text(response), field)
    assert policy(world) == before


def test_auditors_read_the_rules_and_partners_do_not_see_them(world: World) -> None:
    auditor = world.client("auditor")
    page = auditor.get(f"/programs/{world.mdf}/verification")
    assert page.status_code == 200
    seen = visible(page)
    assert "Approve automatically up to Never: finance decides every claim" in seen
    assert "Invoice tolerance 1% of the claimed cost" in seen
    assert 'name="tolerance_bp"' not in text(page)
    assert post(auditor, f"/programs/{world.mdf}/verification", GOOD_RULES).status_code == 403
    partner = world.client("partner")
    assert partner.get(f"/programs/{world.mdf}/verification").status_code == 403
    assert "Verification rules" not in text(partner.get(f"/programs/{world.mdf}"))
    assert policy(world) == verification.Policy()
