"""The messages partners read: what changed, why it matters, what to do (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mdfledger.engagement import EventType, render
from mdfledger.engagement.messages import RENDERERS
from mdfledger.errors import ValidationError

FULL: dict[str, dict[str, object]] = {
    "claim.submitted": {
        "claim_id": 12, "reference": "CLM-000012", "title": "Webinars held", "program": "MDF 2026",
        "program_code": "MDF26", "currency": "USD", "claimed": 150_000,
    },
    "claim.approved": {
        "reference": "CLM-000012", "title": "Webinars held", "currency": "USD",
        "claimed": 150_000, "approved": 100_000, "reason": "one webinar had no invoice",
        "reason_code": "partial_proof",
    },
    "claim.rejected": {
        "reference": "CLM-000012", "currency": "USD", "claimed": 150_000,
        "reason_code": "missing_proof", "reason": "no invoice attached",
    },
    "claim.paid": {
        "reference": "CLM-000012", "currency": "USD", "amount": 100_000,
        "payout_reference": "PO-000003", "program": "MDF 2026",
    },
    "payout.failed": {
        "payout_id": 3, "amount": 100_000, "currency": "USD",
        "reason": "the bank account is closed", "next_attempt_at": "2026-08-16T12:00:00+00:00",
    },
    "fund.allocated": {
        "amount": 2_000_000, "currency": "USD", "program": "MDF 2026", "period": "FY2026 Q3",
        "available_until": "2026-09-30",
    },
    "fund.accrued": {
        "amount": 12_345, "currency": "USD", "program": "Co-op 2026", "period": "FY2026 Q3",
        "available_until": "2026-12-31", "purchase_reference": "PO-7781",
    },
    "funds.expiring": {
        "amount": 45_000, "currency": "USD", "program": "MDF", "period": "FY2026 Q3",
        "expires_on": "2026-09-30", "days_left": 12, "activities_fitting": 2,
        "activity_names": ["Webinar", "Trade show"],
    },
    "funds.expired": {"amount": 45_000, "currency": "USD", "program": "MDF", "period": "FY2026 Q3"},
    "partner.inactive": {"days": 45, "threshold": 30, "last_seen": "2026-07-01T09:00:00+00:00"},
    "partner.no_sign_in": {"days": 60, "threshold": 30, "last_seen": None},
    "partner.no_activity": {"days": 90, "threshold": 60, "last_seen": "2026-05-17"},
    "reservation.deadline_near": {
        "request_id": 4, "reference": "REQ-000004", "amount": 200_000, "currency": "USD",
        "claim_deadline": "2026-10-29", "days_left": 7,
    },
    "utilisation.milestone": {
        "percent": 75, "used": 1_500_000, "total": 2_000_000, "currency": "USD",
        "program": "MDF 2026",
    },
}  # fmt: skip


def test_every_type_has_a_renderer_and_an_example() -> None:
    assert set(RENDERERS) == set(EventType) == set(FULL)


def test_the_expiry_message_says_what_why_and_what_to_do() -> None:
    message = render("funds.expiring", FULL["funds.expiring"])
    assert message.subject == "450.00 USD of your Q3 MDF expires on 30 September"
    assert "expires on 30 September 2026, in 12 days" in message.text
    assert "forfeited" in message.text  # why it matters
    assert "2 activities in the catalog fit: Webinar, Trade show." in message.text
    assert "Request pre-approval before 30 September 2026" in message.text
    assert message.action == "Request pre-approval before the funds expire"


@pytest.mark.parametrize(
    ("type_", "subject", "in_text"),
    [
        ("claim.submitted", "We received CLM-000012 (Webinars held) for 1,500.00 USD", "held"),
        (
            "claim.approved",
            "CLM-000012 (Webinars held) approved in part: 1,000.00 USD of 1,500.00 USD",
            "one webinar had no invoice",
        ),
        ("claim.rejected", "CLM-000012 was rejected: no invoice attached", "goes back"),
        ("claim.paid", "CLM-000012 was paid: 1,000.00 USD", "(payout PO-000003)"),
        ("payout.failed", "A payout of 1,000.00 USD to you failed", "16 August 2026"),
        ("fund.allocated", "New funds for you: 20,000.00 USD in MDF 2026", "30 September 2026"),
        ("fund.accrued", "Your purchases earned 123.45 USD in Co-op 2026", "Purchase PO-7781"),
        ("funds.expired", "450.00 USD of your FY2026 Q3 funds in MDF expired", "forfeited"),
        ("partner.inactive", "We have not seen you for 45 days", "since 1 July 2026"),
        ("partner.no_sign_in", "Nobody from your team has signed in for 60 days", "colleague"),
        ("partner.no_activity", "No marketing activity requested for 90 days", "17 May 2026"),
        (
            "reservation.deadline_near",
            "Claim pre-approval REQ-000004 by 29 October 2026: 2,000.00 USD reserved",
            "(7 days left)",
        ),
        (
            "utilisation.milestone",
            "You have used 75% of your funds in MDF 2026",
            "15,000.00 USD of 20,000.00 USD",
        ),
    ],
)
def test_messages_with_full_data(type_: str, subject: str, in_text: str) -> None:
    message = render(type_, FULL[type_])
    assert message.subject == subject
    assert in_text in message.text
    assert message.action


def test_a_full_approval_is_not_partial() -> None:
    data = {**FULL["claim.approved"], "approved": 150_000}
    message = render("claim.approved", data)
    assert message.subject == "CLM-000012 (Webinars held) approved: 1,500.00 USD"
    assert "in part" not in message.text


def test_rejection_by_code_only_and_failed_payout_without_retry() -> None:
    assert render("claim.rejected", {"reason_code": "out_of_policy"}).subject == (
        "Your claim was rejected: out of policy"
    )
    failed = render("payout.failed", {"amount": 100, "currency": "USD", "next_attempt_at": None})
    assert "will not retry until your payout details are fixed" in failed.text


def test_no_fitting_activity_says_whom_to_ask() -> None:
    data = {**FULL["funds.expiring"], "activities_fitting": 0, "activity_names": []}
    assert "talk to your channel manager" in render("funds.expiring", data).text


@pytest.mark.parametrize("type_", list(EventType))
def test_every_message_without_data(type_: str) -> None:
    message = render(type_, {})
    assert message.subject and message.text and message.action
    assert "None" not in message.subject + message.text


@pytest.mark.parametrize("type_", list(EventType))
def test_malformed_values_are_left_out(type_: str) -> None:
    junk = {key: [1, {"x": None}] for key in FULL[type_]}
    junk.update(currency="XYZ", amount=True, claimed="12", expires_on="soon", days_left=-3)
    message = render(type_, junk)
    assert message.subject and message.text
    assert "XYZ" not in message.subject + message.text


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(
    type_=st.sampled_from(list(EventType)),
    values=st.dictionaries(
        st.sampled_from(sorted({k for d in FULL.values() for k in d} | {"currency"})),
        json_values | st.sampled_from(["USD", "JPY", "2026-09-30", "BHD"]),
    ),
)
def test_any_json_data_renders(type_: str, values: dict[str, object]) -> None:
    message = render(type_, values)
    assert message.subject.strip() and message.text.strip() and message.action.strip()
    assert len(message.subject) <= 200


def test_unknown_type_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"'claim\.lost' is not an event type"):
        render("claim.lost", {})
