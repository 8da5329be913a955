"""The claim rules, without a database: state machines, reasons, amounts, approval policy."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mdfledger.claims import rules
from mdfledger.claims.rules import (
    CLAIM_TRANSITIONS,
    REQUEST_TRANSITIONS,
    ApprovalPolicy,
    ClaimState,
    RequestState,
    Who,
)
from mdfledger.errors import Conflict, Forbidden, ValidationError


def claim(state: str, event: str, who: Who = Who.PARTNER) -> str:
    return rules.next_state(CLAIM_TRANSITIONS, "claim", state, event, who)


def request(state: str, event: str, who: Who = Who.FINANCE) -> str:
    return rules.next_state(REQUEST_TRANSITIONS, "fund request", state, event, who)


def test_a_claims_usual_path_from_draft_to_paid() -> None:
    state = claim(ClaimState.DRAFT, "submit")
    state = rules.next_state(CLAIM_TRANSITIONS, "claim", state, "verify", Who.SYSTEM)
    state = rules.next_state(CLAIM_TRANSITIONS, "claim", state, "review", Who.SYSTEM)
    state = claim(state, "approve", Who.FINANCE)
    assert claim(state, "pay", Who.SYSTEM) == ClaimState.PAID


def test_a_returned_claim_goes_back_to_the_partner_and_comes_back() -> None:
    returned = claim(ClaimState.IN_REVIEW, "return", Who.FINANCE)
    assert returned == ClaimState.RETURNED
    assert claim(returned, "submit") == ClaimState.SUBMITTED


def test_the_refusal_says_what_the_state_allows() -> None:
    with pytest.raises(Conflict, match=r"a claim that is paid cannot be approved; it is closed"):
        claim(ClaimState.PAID, "approve", Who.FINANCE)
    with pytest.raises(Conflict, match=r"cannot be withdrawn; it can be: pay"):
        claim(ClaimState.APPROVED, "withdraw")


def test_each_event_belongs_to_its_people() -> None:
    with pytest.raises(Forbidden, match="only finance may approve a claim"):
        claim(ClaimState.IN_REVIEW, "approve", Who.PARTNER)
    with pytest.raises(Forbidden, match="only partner may withdraw a fund request"):
        request(RequestState.SUBMITTED, "withdraw", Who.FINANCE)


def test_terminal_states_have_no_way_out() -> None:
    for table, terminal in (
        (CLAIM_TRANSITIONS, rules.TERMINAL_CLAIM), (REQUEST_TRANSITIONS, rules.TERMINAL_REQUEST),
    ):  # fmt: skip
        assert not [key for key in table if key[0] in terminal]


def test_every_state_is_reachable_from_the_start() -> None:
    for table, start, states in (
        (CLAIM_TRANSITIONS, ClaimState.DRAFT, set(ClaimState)),
        (REQUEST_TRANSITIONS, RequestState.SUBMITTED, set(RequestState)),
    ):
        seen, frontier = {start}, [start]
        while frontier:
            here = frontier.pop()
            for (state, _), (after, _) in table.items():
                if state == here and after not in seen:
                    seen.add(after)
                    frontier.append(after)
        assert seen == states


@given(
    st.sampled_from(list(ClaimState)),
    st.sampled_from(sorted({e for _, e in CLAIM_TRANSITIONS} | {"approve", "nonsense"})),
    st.sampled_from(list(Who)),
)
def test_next_state_either_follows_the_table_or_refuses(state, event, who) -> None:
    try:
        after = rules.next_state(CLAIM_TRANSITIONS, "claim", state, event, who)
    except (Conflict, Forbidden):
        entry = CLAIM_TRANSITIONS.get((state, event))
        assert entry is None or who not in entry[1]
    else:
        assert (after, who in CLAIM_TRANSITIONS[(state, event)][1]) == (
            CLAIM_TRANSITIONS[(state, event)][0], True
        )  # fmt: skip


def test_a_reason_needs_a_known_code_and_words() -> None:
    assert rules.check_reason("over_cap", "  Above the webinar cap ") == (
        "over_cap", "Above the webinar cap"
    )  # fmt: skip
    with pytest.raises(ValidationError, match="a reason code is needed"):
        rules.check_reason("because", "no")
    with pytest.raises(ValidationError, match="say why"):
        rules.check_reason("other", "   ")
    with pytest.raises(ValidationError, match="at most 2000"):
        rules.check_reason("other", "x" * 2001)


@pytest.mark.parametrize(
    ("cost", "share", "cap", "reserved", "expected"),
    [
        (100_000, 5000, None, None, 50_000),  # half the cost
        (100_001, 5000, None, None, 50_000),  # rounded down: never more than the share
        (100_000, 5000, 30_000, None, 30_000),  # the cap
        (100_000, 5000, None, 20_000, 20_000),  # the reservation
        (100_000, 10_000, 250_000, 80_000, 80_000),
    ],
)
def test_the_most_a_claim_may_ask(cost, share, cap, reserved, expected) -> None:
    assert rules.max_claim(cost, share, cap, reserved) == expected
    assert rules.max_request(cost, share, cap) == min(
        rules.max_claim(cost, share, cap, None), cap or 10**18
    )


def test_nobody_approves_their_own_submission_or_twice() -> None:
    policy = ApprovalPolicy()
    with pytest.raises(Forbidden, match="their own submission"):
        rules.approval_step(policy, 100, approver="u1", submitter="u1")
    with pytest.raises(Conflict, match="already approved"):
        rules.approval_step(policy, 100, approver="u2", submitter="u1", earlier_approvers=("u2",))


def test_large_amounts_need_a_second_approver_and_limits_hold() -> None:
    policy = ApprovalPolicy(second_approver_above=1_000_000, limits={"junior": 50_000})
    assert rules.approval_step(policy, 1_000_000, approver="a", submitter="p").complete
    first = rules.approval_step(policy, 1_000_001, approver="a", submitter="p")
    assert not first.complete and "second approver" in first.message
    second = rules.approval_step(
        policy, 1_000_001, approver="b", submitter="p", earlier_approvers=("a",)
    )
    assert second.complete
    with pytest.raises(Forbidden, match="above your approval limit"):
        rules.approval_step(policy, 50_001, approver="junior", submitter="p")
    assert rules.approval_step(policy, 50_000, approver="junior", submitter="p").complete
