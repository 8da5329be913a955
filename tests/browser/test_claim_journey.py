"""The claim journey in a real browser: a partner asks for pre-approval, finance approves, the
partner claims with proof uploaded through the widget, finance approves part of it with a
reason, and the partner sees the outcome. Full-page screenshots of the main pages are written
to docs/screenshots/ on each run (the README shows them).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from tests.browser.conftest import TIMEOUT_MS, Site, days, screenshot
from tests.samples import image_bytes, pdf_bytes

try:
    from playwright.sync_api import expect
except ImportError:  # the `chromium` fixture skips (or fails) and says why
    expect = None  # type: ignore[assignment]


def choose(select: Any, text: str) -> None:
    """Pick the option whose visible text contains `text`, as a person reading the list would."""
    option = select.locator("option", has_text=text).first
    select.select_option(value=option.get_attribute("value"))


def button(page: Any, name: str) -> Any:
    return page.get_by_role("button", name=name, exact=True)


def main_nav(page: Any, name: str) -> Any:
    return page.get_by_role("navigation", name="Main").get_by_role("link", name=name, exact=True)


def reference(page: Any, prefix: str) -> str:
    """The REQ-/CLM- reference in the page's heading."""
    found = re.search(rf"{prefix}-\d+", page.get_by_role("heading", level=1).inner_text())
    assert found is not None, f"the heading names the {prefix} reference"
    return found.group(0)


def figure(region: Any, name: str) -> Any:
    """One labelled figure of a page's figures list ("Approved" -> its box with the amount)."""
    return region.locator("dl div").filter(has=region.page.get_by_text(name, exact=True))


def upload(page: Any, files: list[Path], kind: str) -> None:
    """Choose files in the upload widget; once all are uploaded the page reloads and lists them
    among the claim's documents."""
    expect(button(page, "Upload")).to_be_hidden()  # the widget is live: files go as chosen
    choose(page.get_by_label("What the files are"), kind)
    page.get_by_label(re.compile("choose files")).set_input_files([str(f) for f in files])
    for f in files:
        expect(page.locator(".documents")).to_contain_text(f.name)


def see_documents(page: Any, pdf_name: str) -> None:
    """The proof is shown inline: the image has loaded, and the PDF is open in Chromium's
    viewer inside the page (its toolbar names the file)."""
    image = page.locator(".documents img").first
    image.scroll_into_view_if_needed()  # both load lazily, as they come into view
    expect(image).to_have_js_property("complete", True)
    assert image.evaluate("img => img.naturalWidth") > 0, "the image is shown"
    frame = page.locator(".documents iframe").first
    expect(frame).to_have_attribute("title", re.compile(re.escape(pdf_name)))
    frame.scroll_into_view_if_needed()
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        for viewer in page.frames:
            if (
                viewer.url.startswith("chrome-extension://")
                and viewer.get_by_text(pdf_name).count()
            ):
                page.wait_for_timeout(500)  # the viewer lays the page out after its toolbar
                return
        page.wait_for_timeout(100)  # (not time.sleep: Playwright handles its events meanwhile)
    raise AssertionError(f"{pdf_name} is not shown in the PDF viewer")


def test_request_claim_and_partial_approval(site: Site, open_as: Any, tmp_path: Path) -> None:
    # 1. The partner signs in to their funds and asks for pre-approval of a webinar series
    # that ran last week.
    partner = open_as("partner")
    expect(partner.get_by_role("heading", name="My funds", level=1)).to_be_visible()
    funds = partner.get_by_role("region", name=site.program_name)
    expect(figure(funds, "Available")).to_contain_text("20,000.00 USD")
    main_nav(partner, "My requests").click()
    expect(partner.get_by_role("heading", name="My requests", level=1)).to_be_visible()
    partner.get_by_role("link", name="New request").click()
    choose(partner.get_by_label("Program"), site.program_name)
    choose(partner.get_by_label("Activity"), site.activity_name)
    partner.get_by_label("Title").fill("Autumn webinar series")
    partner.get_by_label("Description").fill("Three webinars on the new switch line")
    partner.get_by_label("Expected outcome").fill("150 qualified leads")
    partner.get_by_label("Starts on").fill(days(site, -10).isoformat())
    partner.get_by_label("Ends on").fill(days(site, -3).isoformat())
    partner.get_by_label("Estimated cost").fill("6000.00")
    partner.get_by_label("Amount requested").fill("2500.00")
    screenshot(partner, "request-new")
    button(partner, "Send for pre-approval").click()
    expect(
        partner.get_by_text(re.compile(r"Request REQ-\d+ sent for pre-approval"))
    ).to_be_visible()
    expect(partner.get_by_role("heading", level=1)).to_contain_text("submitted")
    request_ref = reference(partner, "REQ")
    request_url = partner.url

    # 2. Finance finds it among the requests awaiting a decision and approves it in full.
    finance = open_as("finance")
    main_nav(finance, "Requests").click()
    row = finance.get_by_role("row").filter(has=finance.get_by_role("link", name=request_ref))
    expect(row).to_contain_text(site.partner_name)
    expect(row).to_contain_text("2,500.00 USD")
    row.get_by_role("link", name=request_ref).click()
    expect(finance.get_by_role("heading", level=1)).to_contain_text("Autumn webinar series")
    approve = finance.locator("form").filter(
        has=finance.get_by_role("group", name=f"Approve {request_ref}")
    )
    expect(approve.get_by_label("Amount to approve")).to_have_value("2500.00")
    screenshot(finance, "request-review")
    button(approve, "Approve").click()
    expect(finance.get_by_text(f"Approved {request_ref} for 2,500.00 USD")).to_be_visible()
    expect(finance.get_by_role("heading", level=1)).to_contain_text("approved")

    # 3. The partner claims against it, uploads the invoice and a photo, and submits.
    partner.goto(request_url)
    expect(partner.get_by_role("heading", level=1)).to_contain_text("approved")
    partner.get_by_role("link", name="Claim this").click()
    partner.get_by_label("Title").fill("Autumn webinars held")
    partner.get_by_label("Actual cost").fill("5000.00")
    partner.get_by_label("Amount claimed").fill("2400.00")
    partner.get_by_label("Invoice issued by").fill("Webinars Inc")
    partner.get_by_label("Invoice number").fill("INV-2042")
    partner.get_by_label("Invoice total").fill("5000.00")
    button(partner, "Save draft and add proof").click()
    expect(partner.get_by_role("heading", level=1)).to_contain_text("draft")
    claim_ref = reference(partner, "CLM")
    expect(partner.locator(".still-needed")).to_contain_text("invoice")
    expect(button(partner, "Submit claim")).to_be_disabled()

    invoice = tmp_path / "invoice-2042.pdf"
    invoice.write_bytes(pdf_bytes("INV-2042 Webinars Inc 5000.00"))
    photo = tmp_path / "webinar-room.png"
    photo.write_bytes(image_bytes("PNG", (480, 300)))
    # The widget gives one kind to the files chosen together: the invoice, then the photo.
    upload(partner, [invoice], "Invoice")
    upload(partner, [photo], "Photo")
    documents = partner.locator(".documents")
    expect(documents.locator(".document", has_text=invoice.name)).to_contain_text("Invoice")
    expect(documents.locator(".document", has_text=photo.name)).to_contain_text("Photo")
    expect(partner.get_by_text("Everything this activity asks for is here.")).to_be_visible()
    see_documents(partner, invoice.name)
    screenshot(partner, "claim-upload")
    button(partner, "Submit claim").click()
    expect(partner.get_by_text(f"Submitted {claim_ref}")).to_be_visible()
    expect(partner.get_by_role("heading", level=1)).to_contain_text("in review")

    # 4. Finance sees it in the queue, looks at the proof and approves part of it.
    main_nav(finance, "Claims").click()
    row = finance.get_by_role("row").filter(has=finance.get_by_role("link", name=claim_ref))
    expect(row).to_contain_text(site.partner_name)
    expect(row).to_contain_text("2,400.00 USD")
    screenshot(finance, "claims-queue")
    row.get_by_role("link", name=claim_ref).click()
    see_documents(finance, invoice.name)
    approve = finance.locator("form").filter(
        has=finance.get_by_role("group", name=f"Approve {claim_ref}")
    )
    expect(approve.get_by_label("Amount to approve")).to_have_value("2400.00")
    approve.get_by_label("Amount to approve").fill("2000.00")
    choose(approve.get_by_label(re.compile("^Reason")), "Part of the cost")
    approve.get_by_label("Message to the partner").fill(
        "Catering is not reimbursable under the program rules."
    )
    screenshot(finance, "claim-review")
    button(approve, "Approve").click()
    expect(finance.get_by_text(f"Approved {claim_ref} for 2,000.00 USD")).to_be_visible()
    expect(finance.get_by_role("heading", level=1)).to_contain_text("approved")

    # 5. The partner sees the approved amount and, in the timeline, the reason.
    main_nav(partner, "My claims").click()
    row = partner.get_by_role("row").filter(has=partner.get_by_role("link", name=claim_ref))
    expect(row).to_contain_text("approved")
    row.get_by_role("link", name=claim_ref).click()
    expect(partner.get_by_role("heading", level=1)).to_contain_text("approved")
    expect(figure(partner.get_by_role("region", name="Amounts"), "Approved")).to_contain_text(
        "2,000.00 USD"
    )
    timeline = partner.get_by_role("region", name="Timeline")
    expect(timeline).to_contain_text("approved: 2,000.00 USD")
    expect(timeline).to_contain_text("Part of the cost is not eligible")
    expect(timeline).to_contain_text("Catering is not reimbursable under the program rules.")
    see_documents(partner, invoice.name)
    screenshot(partner, "claim-approved")

    # 6. Their funds: 2,000.00 approved for payment; the rest of the hold is released.
    main_nav(partner, "My funds").click()
    funds = partner.get_by_role("region", name=site.program_name)
    expect(figure(funds, "Approved")).to_contain_text("2,000.00 USD")
    expect(figure(funds, "Reserved")).to_contain_text("0.00 USD")
    expect(figure(funds, "Available")).to_contain_text("18,000.00 USD")
    screenshot(partner, "partner-funds")


def test_a_wrong_type_upload_shows_the_servers_message(
    site: Site, open_as: Any, tmp_path: Path
) -> None:
    claim_id = site.draft_claim()
    partner = open_as("partner")
    partner.goto(f"/claims/{claim_id}")
    invoice = tmp_path / "invoice-77.pdf"
    invoice.write_bytes(pdf_bytes("INV-77"))
    animation = tmp_path / "booth.gif"
    animation.write_bytes(image_bytes("GIF"))
    expect(button(partner, "Upload")).to_be_hidden()
    choose(partner.get_by_label("What the files are"), "Invoice")
    partner.get_by_label(re.compile("choose files")).set_input_files([str(invoice), str(animation)])

    # One row per file: the PDF is stored, the GIF refused in the server's words; the page
    # stays (no reload) so the message can be read.
    rows = partner.locator(".upload-list li")
    expect(rows.filter(has_text=invoice.name)).to_contain_text("uploaded")
    refused = rows.filter(has_text=animation.name).get_by_role("alert")
    expect(refused).to_contain_text("GIF image")
    expect(refused).to_contain_text("not a type we accept")
    expect(partner.get_by_role("status").filter(has_text="1 uploaded, 1 not")).to_be_visible()

    # Only the PDF was kept.
    button(partner, "Show the uploaded files").click()
    documents = partner.locator(".documents")
    expect(documents).to_contain_text(invoice.name)
    expect(documents).not_to_contain_text(animation.name)


def test_two_approvers_on_one_claim_the_second_is_told_what_happened(
    site: Site, open_as: Any
) -> None:
    claim_id = site.draft_claim(submit=True)
    fin, fay = open_as("finance"), open_as("finance2")
    for page in (fin, fay):
        page.goto(f"/claims/{claim_id}")
        expect(page.get_by_role("heading", level=1)).to_contain_text("in review")
    claim_ref = reference(fin, "CLM")

    button(fin, "Approve").click()
    expect(fin.get_by_text(f"Approved {claim_ref} for 2,000.00 USD")).to_be_visible()

    # Fay's page still shows the claim in review: her approval is refused, and she reads why.
    button(fay, "Approve").click()
    problem = fay.get_by_role("alert").filter(has_text="Nothing was changed.")
    expect(problem).to_contain_text("Fin Vendor approved it (2,000.00 USD)")
    expect(fay.get_by_role("heading", level=1)).to_contain_text("approved")
    timeline = fay.get_by_role("region", name="Timeline")
    expect(timeline.get_by_text("approved: 2,000.00 USD")).to_have_count(1)
