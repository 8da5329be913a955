"""The pure rules: which checks a claim needs, the date and amount checks, the decision."""

from __future__ import annotations

from datetime import date

from mdfledger.verification import rules
from mdfledger.verification.outcome import CheckKind, Finding, Outcome

PASS = Finding(Outcome.PASS, 100, "fine")


def test_each_kind_of_proof_names_its_check_and_dates_and_amounts_are_always_checked():
    assert rules.required_checks(["invoice", "photos"]) == (
        CheckKind.INVOICE, CheckKind.AMOUNT, CheckKind.DATES, CheckKind.PHOTO,
    )  # fmt: skip
    assert rules.required_checks(["landing_page", "social_post", "lead_list"]) == (
        CheckKind.AMOUNT, CheckKind.DATES, CheckKind.PAGE, CheckKind.LEADS,
    )  # fmt: skip
    assert rules.required_checks([""]) == (CheckKind.AMOUNT, CheckKind.DATES)


def test_markers_fill_in_the_partner_and_claim_and_skip_blank_lines():
    template = "{partner}\n\n  Q3-CLOUD  \nRef {claim}\n"
    assert rules.markers(template, partner="Acme Networks", claim="CLM-000007") == [
        "Acme Networks", "Q3-CLOUD", "Ref CLM-000007",
    ]  # fmt: skip


def dates(**kw):
    fields = dict(
        starts_on=date(2026, 8, 20), ends_on=date(2026, 8, 30), submitted_on=date(2026, 9, 5),
        deadline=date(2026, 10, 29), request_window=(date(2026, 8, 20), date(2026, 8, 30)),
    )  # fmt: skip
    fields.update(kw)
    return rules.dates_finding(**fields)


def test_dates_pass_inside_the_request_and_before_the_deadline():
    found = dates()
    assert found.outcome == Outcome.PASS and found.score == 100
    assert found.summary == (
        "Activity 2026-08-20 to 2026-08-30 is inside the pre-approved dates; claimed on"
        " 2026-09-05, by the deadline 2026-10-29"
    )


def test_dates_fail_outside_the_request_or_after_the_deadline_saying_which():
    outside = dates(ends_on=date(2026, 9, 2))
    assert outside.outcome == Outcome.FAIL
    assert "outside the pre-approved 2026-08-20 to 2026-08-30" in outside.summary
    late = dates(submitted_on=date(2026, 10, 30))
    assert late.outcome == Outcome.FAIL
    assert late.summary.startswith("The claim came on 2026-10-30, after the deadline 2026-10-29")
    assert dates(request_window=None).summary.startswith("Activity 2026-08-20 to 2026-08-30 is on")


def amount(**kw):
    fields = dict(
        claimed=150_000, currency="USD", actual_cost=300_000, share_bp=5000,
        verified_cost=300_000, invoice_needed=True,
    )  # fmt: skip
    fields.update(kw)
    return rules.amount_finding(**fields)


def test_amount_within_the_share_of_the_invoiced_cost_passes():
    found = amount()
    assert found.outcome == Outcome.PASS
    assert found.summary == (
        "1,500.00 USD claimed is within the 50% share of the invoiced cost"
        " (3,000.00 USD allows 1,500.00 USD)"
    )


def test_amount_above_the_share_of_a_smaller_invoice_fails_with_the_difference():
    found = amount(verified_cost=250_000)
    assert found.outcome == Outcome.FAIL
    assert found.summary == (
        "1,500.00 USD claimed is 250.00 USD more than the 50% share of the invoiced cost allows"
        " (1,250.00 USD of 2,500.00 USD)"
    )
    assert 0 < found.score < 100


def test_amount_without_a_readable_invoice_is_inconclusive_and_without_invoice_uses_the_cost():
    assert amount(verified_cost=None).outcome == Outcome.INCONCLUSIVE
    declared = amount(verified_cost=None, invoice_needed=False, share_bp=2550)
    assert declared.outcome == Outcome.FAIL
    assert "25.5% share of the declared cost" in declared.summary


def decide(findings, **kw):
    fields = dict(
        amount=40_000, currency="USD", auto_approve_up_to=50_000, second_approval_above=None,
        flagged=False,
    )  # fmt: skip
    fields.update(kw)
    return rules.decide((CheckKind.INVOICE, CheckKind.AMOUNT), findings, **fields)


def test_clean_claims_under_the_limit_are_approved_with_the_checks_as_the_reason():
    decision = decide({CheckKind.INVOICE: [PASS], CheckKind.AMOUNT: [PASS]})
    assert decision == rules.Decision(
        True, "All checks passed (invoice, amount): approved automatically"
    )


def test_anything_less_than_all_passed_under_the_limit_goes_to_finance_saying_why():
    clean = {CheckKind.INVOICE: [PASS], CheckKind.AMOUNT: [PASS]}
    failing = {**clean, CheckKind.INVOICE: [Finding(Outcome.FAIL, 10, "Total differs")]}
    assert decide(failing) == rules.Decision(False, "Invoice: Total differs")
    assert decide({CheckKind.INVOICE: [PASS]}).reason == "Not checked: amount"
    assert "above the automatic approval limit of 500.00 USD" in decide(clean, amount=50_001).reason
    assert decide(clean, amount=50_000).approve
    assert "approves every claim by hand" in decide(clean, auto_approve_up_to=None).reason
    assert "possible duplicate" in decide(clean, flagged=True).reason
    # Never automatically where two approvers are needed.
    assert not decide(clean, second_approval_above=30_000).approve


def test_reading_order_puts_failing_then_inconclusive_then_passed():
    found = [
        ("page", "pass"), ("dates", "inconclusive"), ("leads", "fail"), ("invoice", "pass"),
    ]  # fmt: skip
    assert sorted(found, key=lambda item: rules.reading_order(*item)) == [
        ("leads", "fail"), ("dates", "inconclusive"), ("invoice", "pass"), ("page", "pass"),
    ]  # fmt: skip
