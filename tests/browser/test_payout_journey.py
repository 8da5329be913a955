"""The payout journey in a real browser: the partner puts bank details on file (shown masked),
finance approves a claim and the program (manual provider, paying immediately) creates a
pending payout; finance downloads the payment file (full account number, finance only), marks
the payout sent and then settled; the partner sees the payout settled, the claim paid and a
message saying so. A second test: a program requiring tax information holds a partner without
payout details, and finance's Payouts page says why in words.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

from tests.browser.conftest import ADMIN, Site, screenshot

try:
    from playwright.sync_api import expect
except ImportError:  # the `chromium` fixture skips (or fails) and says why
    expect = None  # type: ignore[assignment]

ACCOUNT_NUMBER = "000123456789"
ROUTING_CODE = "021000021"
TAX_ID = "98-7654321"
MASKED_ACCOUNT = "\u2022\u2022\u2022\u2022 6789"  # last four only
PAYOUT_REF = re.compile(r"^PAY-\d+$")


def button(page: Any, name: str) -> Any:
    return page.get_by_role("button", name=name, exact=True)


def main_nav(page: Any, name: str) -> Any:
    return page.get_by_role("navigation", name="Main").get_by_role("link", name=name, exact=True)


def reference(page: Any, prefix: str) -> str:
    """The CLM-/PAY- reference in the page's heading."""
    found = re.search(rf"{prefix}-\d+", page.get_by_role("heading", level=1).inner_text())
    assert found is not None, f"the heading names the {prefix} reference"
    return found.group(0)


def fact(region: Any, name: str) -> Any:
    """The value of one term of a facts list ("Account number" -> its <dd>)."""
    term = region.locator("dt").filter(has_text=re.compile(rf"^{re.escape(name)}$"))
    return term.locator("xpath=following-sibling::dd[1]")


def action_form(page: Any, name: str) -> Any:
    """One of finance's forms on a payout page, found by its button."""
    return page.locator("form").filter(has=button(page, name))


def claim_approved_by(finance: Any, claim_id: int) -> str:
    """Finance approves a submitted claim in full on its page; returns its reference."""
    finance.goto(f"/claims/{claim_id}")
    expect(finance.get_by_role("heading", level=1)).to_contain_text("in review")
    claim_ref = reference(finance, "CLM")
    button(finance, "Approve").click()
    expect(finance.get_by_text(f"Approved {claim_ref} for 2,000.00 USD")).to_be_visible()
    return claim_ref


def test_partner_is_paid_by_bank_transfer(site: Site, open_as: Any) -> None:
    # 1. The partner opens their payout details: none on file yet, so payouts would wait.
    partner = open_as("partner")
    main_nav(partner, "Payout details").click()
    expect(partner.get_by_role("heading", name="Payout details", level=1)).to_be_visible()
    on_file = partner.get_by_role("region", name="On file")
    expect(on_file).to_contain_text("No payout details yet: payouts wait until they are added.")
    hold = partner.get_by_role("status").filter(has_text="Payouts on hold")
    expect(hold).to_contain_text("MDF26: Acme Networks has no payout details")

    form = partner.locator("form").filter(has=button(partner, "Save payout details"))
    expect(form.get_by_label("Account holder")).to_have_value(site.partner_name)
    form.get_by_label("Bank country").fill("US")
    form.get_by_label("Account number", exact=True).fill(ACCOUNT_NUMBER)
    form.get_by_label("Routing number, sort code or bank code").fill(ROUTING_CODE)
    form.get_by_label("Tax form", exact=True).select_option("W-9")
    form.get_by_label("Tax id").fill(TAX_ID)
    form.get_by_label("Tax form received on").fill(site.today.isoformat())
    button(form, "Save payout details").click()

    # The account is on file, shown by its last four characters only, never in full.
    expect(partner.get_by_text("Payout details saved")).to_be_visible()
    expect(fact(on_file, "Paid by")).to_have_text("Bank transfer")
    expect(fact(on_file, "Account holder")).to_have_text(site.partner_name)
    expect(fact(on_file, "Account number")).to_have_text(MASKED_ACCOUNT)
    expect(fact(on_file, "Routing or sort code")).to_have_text("\u2022\u2022\u2022\u2022 0021")
    expect(fact(on_file, "Tax information")).to_contain_text(
        "W-9, tax id \u2022\u2022\u2022\u2022 4321"
    )
    expect(hold).to_have_count(0)
    html = partner.content()
    for secret in (ACCOUNT_NUMBER, ROUTING_CODE, TAX_ID):
        assert secret not in html, f"the page shows {secret} masked only"

    # 2. Finance approves a claim of Acme's; the program pays at once, by bank transfer
    # (the manual provider): a payout is created, pending until finance sends the money.
    claim_id = site.draft_claim(submit=True)
    finance = open_as("finance")
    claim_ref = claim_approved_by(finance, claim_id)

    # 3. Finance's Payouts page lists the pending payout; nothing is left waiting to be paid.
    main_nav(finance, "Payouts").click()
    expect(finance.get_by_role("heading", name="Payouts", level=1)).to_be_visible()
    expect(finance.get_by_role("heading", name="Approved, waiting to be paid")).to_have_count(0)
    row = finance.get_by_role("row").filter(has=finance.get_by_role("link", name=PAYOUT_REF))
    expect(row).to_have_count(1)
    expect(row).to_contain_text(site.partner_name)
    expect(row).to_contain_text("MDF26")
    expect(row).to_contain_text("2,000.00 USD")
    expect(row).to_contain_text("Pending")
    expect(row).to_contain_text(f"account {MASKED_ACCOUNT}")
    screenshot(finance, "payouts")

    # The payment file for the bank: finance gets the full account number.
    with finance.expect_download() as downloading:
        finance.get_by_role("link", name="Download the payment file (CSV)").click()
    download = downloading.value
    assert download.suggested_filename == "payments-pending.csv"
    text = Path(download.path()).read_text(encoding="utf-8")
    lines = list(csv.DictReader(io.StringIO(text)))
    assert len(lines) == 1, lines
    line = lines[0]
    assert line["partner"] == "ACME"
    assert line["beneficiary"] == site.partner_name
    assert line["bank_country"] == "US"
    assert line["account_number"] == ACCOUNT_NUMBER
    assert line["routing_code"] == ROUTING_CODE
    assert line["amount"] == "2000.00"
    assert line["currency"] == "USD"
    assert claim_ref in line["remittance"]

    # Finance opens the payout, records the bank transfer, then the bank's confirmation.
    row.get_by_role("link", name=PAYOUT_REF).click()
    expect(finance.get_by_role("heading", level=1)).to_contain_text("Pending")
    payout_ref = reference(finance, "PAY")
    facts = finance.get_by_role("region", name="Payout")
    expect(fact(facts, "Amount")).to_have_text("2,000.00 USD")
    expect(fact(facts, "Paid through")).to_have_text(f"bank transfer to account {MASKED_ACCOUNT}")
    expect(finance.get_by_role("region", name="Claims paid")).to_contain_text(claim_ref)
    sent = action_form(finance, "Mark sent")
    sent.get_by_label("Bank reference").fill("WIRE-2026-0042")
    button(sent, "Mark sent").click()
    expect(finance.get_by_text(f"Payout {payout_ref} marked sent")).to_be_visible()
    expect(finance.get_by_role("heading", level=1)).to_contain_text("Sent")
    expect(fact(finance.get_by_role("region", name="Payout"), "Reference")).to_have_text(
        "WIRE-2026-0042"
    )
    button(finance, "Mark settled").click()
    expect(finance.get_by_text(f"Payout {payout_ref} marked settled")).to_be_visible()
    expect(finance.get_by_role("heading", level=1)).to_contain_text("Settled")
    expect(button(finance, "Mark settled")).to_have_count(0)

    # Its timeline shows each step: created, sent with the bank reference, settled.
    timeline = finance.get_by_role("region", name="Timeline")
    steps = timeline.locator("li")
    expect(steps).to_have_count(3)
    expect(steps.nth(0)).to_contain_text(f"for {claim_ref} to account {MASKED_ACCOUNT}")
    expect(steps.nth(1)).to_contain_text("Fin Vendor")
    expect(steps.nth(1)).to_contain_text("pending → sent")
    expect(steps.nth(1)).to_contain_text("WIRE-2026-0042")
    expect(steps.nth(2)).to_contain_text("Fin Vendor")
    expect(steps.nth(2)).to_contain_text("sent → settled")

    # 4. The partner: the payout settled, the claim paid, and a message saying so.
    main_nav(partner, "My payouts").click()
    expect(partner.get_by_role("heading", name="My payouts", level=1)).to_be_visible()
    mine = partner.get_by_role("row").filter(has=partner.get_by_role("link", name=payout_ref))
    expect(mine).to_contain_text("2,000.00 USD")
    expect(mine).to_contain_text("Settled")
    expect(mine).to_contain_text(f"account {MASKED_ACCOUNT}")
    mine.get_by_role("link", name=payout_ref).click()
    expect(partner.get_by_role("heading", level=1)).to_contain_text("Settled")
    expect(button(partner, "Mark settled")).to_have_count(0)  # finance's, not theirs

    main_nav(partner, "My claims").click()
    claim_row = partner.get_by_role("row").filter(has=partner.get_by_role("link", name=claim_ref))
    expect(claim_row).to_contain_text("paid")
    claim_row.get_by_role("link", name=claim_ref).click()
    expect(partner.get_by_role("heading", level=1)).to_contain_text("paid")

    main_nav(partner, "Messages").click()
    paid = partner.locator(".messages li").filter(has_text="was paid")
    expect(paid).to_have_count(1)
    expect(paid.get_by_role("heading")).to_have_text(
        f"{claim_ref} (Spring webinar held) was paid: 2,000.00 USD"
    )
    expect(paid).to_contain_text("We sent 2,000.00 USD for your claim in MDF 2026")
    expect(paid.get_by_role("link", name="Open the claim")).to_be_visible()


def test_a_partner_without_payout_details_is_held_and_finance_reads_why(
    site: Site, open_as: Any
) -> None:
    from mdfledger import claims, payouts

    with site.sessions() as session:
        payouts.set_policy(
            session, ADMIN, site.program_id, provider="manual", schedule="immediate",
            requires_tax_info=True,
        )  # fmt: skip
        session.commit()
    claim_id = site.draft_claim(submit=True)
    with site.sessions() as session:  # approved outside the app: no payout run follows
        claims.approve_claim(session, site.actor("finance"), claim_id)
        session.commit()

    finance = open_as("finance")
    main_nav(finance, "Payouts").click()
    waiting = finance.get_by_role("region", name="Approved, waiting to be paid")
    group = waiting.get_by_role("row").filter(has_text=site.partner_name)
    expect(group).to_contain_text("2,000.00 USD")
    expect(group).to_contain_text("Acme Networks has no payout details: add a bank account")
    expect(button(group, "Pay now")).to_have_count(0)
    expect(finance.get_by_role("cell", name="No payouts.")).to_be_visible()

    # With a bank account but no tax form, the hold names the missing tax information.
    partner = site.actor("partner")
    with site.sessions() as session:
        payouts.set_details(
            session, partner, site.partner_id, method="bank", account_holder=site.partner_name,
            bank_country="US", account_number=ACCOUNT_NUMBER, routing_code=ROUTING_CODE,
        )  # fmt: skip
        session.commit()
    finance.reload()
    expect(group).to_contain_text("MDF26 requires tax information and Acme Networks has none")

    # Paying everything pays nobody, and says why.
    button(finance, "Pay everything not on hold").click()
    expect(finance.get_by_text("0 payouts created")).to_be_visible()
    expect(
        finance.get_by_text("Acme Networks (MDF26) not paid: MDF26 requires tax")
    ).to_be_visible()
