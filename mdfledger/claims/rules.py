"""Pure claim rules: the fund request and claim state machines, amounts, approval policy.

No database here. The services ask these rules what may happen and record what did.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from mdfledger.errors import Conflict, Forbidden, ValidationError
from mdfledger.programs.rules import reimbursable


class Who(StrEnum):
    PARTNER = "partner"  # a user of the partner that owns the request or claim
    FINANCE = "finance"  # finance or admin staff
    SYSTEM = "system"  # jobs: verification, deadlines, payouts


class RequestState(StrEnum):
    SUBMITTED = "submitted"
    RETURNED = "returned"  # finance asked for more information
    APPROVED = "approved"  # funds reserved until the claim deadline
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"
    CLAIMED = "claimed"  # a claim against it was approved or paid: the reservation is posted
    EXPIRED = "expired"  # the claim deadline passed without a claim


class ClaimState(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    VERIFYING = "verifying"  # automatic checks of the proof are running
    IN_REVIEW = "in_review"  # waiting for finance
    RETURNED = "returned"  # back with the partner to fix or add proof
    APPROVED = "approved"  # in full or in part; money moved to claims payable
    REJECTED = "rejected"
    PAID = "paid"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"  # never submitted before the claim deadline


# (state, event) -> (new state, who may do it). Anything not listed is refused.
REQUEST_TRANSITIONS: Mapping[tuple[str, str], tuple[str, frozenset[Who]]] = {
    (RequestState.SUBMITTED, "approve"): (RequestState.APPROVED, frozenset({Who.FINANCE})),
    (RequestState.SUBMITTED, "return"): (RequestState.RETURNED, frozenset({Who.FINANCE})),
    (RequestState.SUBMITTED, "reject"): (RequestState.REJECTED, frozenset({Who.FINANCE})),
    (RequestState.SUBMITTED, "withdraw"): (RequestState.WITHDRAWN, frozenset({Who.PARTNER})),
    (RequestState.RETURNED, "resubmit"): (RequestState.SUBMITTED, frozenset({Who.PARTNER})),
    (RequestState.RETURNED, "withdraw"): (RequestState.WITHDRAWN, frozenset({Who.PARTNER})),
    (RequestState.RETURNED, "reject"): (RequestState.REJECTED, frozenset({Who.FINANCE})),
    (RequestState.APPROVED, "withdraw"): (RequestState.WITHDRAWN, frozenset({Who.PARTNER})),
    (RequestState.APPROVED, "claim"): (RequestState.CLAIMED, frozenset({Who.FINANCE, Who.SYSTEM})),
    (RequestState.APPROVED, "expire"): (RequestState.EXPIRED, frozenset({Who.SYSTEM})),
}

CLAIM_TRANSITIONS: Mapping[tuple[str, str], tuple[str, frozenset[Who]]] = {
    (ClaimState.DRAFT, "submit"): (ClaimState.SUBMITTED, frozenset({Who.PARTNER})),
    (ClaimState.DRAFT, "withdraw"): (ClaimState.WITHDRAWN, frozenset({Who.PARTNER})),
    (ClaimState.DRAFT, "expire"): (ClaimState.EXPIRED, frozenset({Who.SYSTEM})),
    (ClaimState.SUBMITTED, "verify"): (ClaimState.VERIFYING, frozenset({Who.SYSTEM})),
    (ClaimState.SUBMITTED, "review"): (ClaimState.IN_REVIEW, frozenset({Who.SYSTEM, Who.FINANCE})),
    (ClaimState.SUBMITTED, "withdraw"): (ClaimState.WITHDRAWN, frozenset({Who.PARTNER})),
    (ClaimState.VERIFYING, "review"): (ClaimState.IN_REVIEW, frozenset({Who.SYSTEM})),
    (ClaimState.VERIFYING, "approve"): (ClaimState.APPROVED, frozenset({Who.SYSTEM})),
    (ClaimState.IN_REVIEW, "approve"): (ClaimState.APPROVED, frozenset({Who.FINANCE})),
    (ClaimState.IN_REVIEW, "return"): (ClaimState.RETURNED, frozenset({Who.FINANCE})),
    (ClaimState.IN_REVIEW, "reject"): (ClaimState.REJECTED, frozenset({Who.FINANCE})),
    (ClaimState.IN_REVIEW, "withdraw"): (ClaimState.WITHDRAWN, frozenset({Who.PARTNER})),
    (ClaimState.RETURNED, "submit"): (ClaimState.SUBMITTED, frozenset({Who.PARTNER})),
    (ClaimState.RETURNED, "withdraw"): (ClaimState.WITHDRAWN, frozenset({Who.PARTNER})),
    (ClaimState.RETURNED, "expire"): (ClaimState.EXPIRED, frozenset({Who.SYSTEM})),
    (ClaimState.APPROVED, "pay"): (ClaimState.PAID, frozenset({Who.SYSTEM, Who.FINANCE})),
}

TERMINAL_REQUEST = frozenset(
    {RequestState.REJECTED, RequestState.WITHDRAWN, RequestState.CLAIMED, RequestState.EXPIRED}
)
TERMINAL_CLAIM = frozenset(
    {ClaimState.REJECTED, ClaimState.PAID, ClaimState.WITHDRAWN, ClaimState.EXPIRED}
)


class InvalidTransition(Conflict):
    code = "invalid_transition"


def next_state(
    table: Mapping[tuple[str, str], tuple[str, frozenset[Who]]],
    what: str,
    state: str,
    event: str,
    who: Who,
) -> str:
    """The state after `event`, or an error that says why it cannot happen now."""
    found = table.get((state, event))
    if found is None:
        allowed = sorted(e for (s, e) in table if s == state)
        tail = f"; it can be: {', '.join(allowed)}" if allowed else "; it is closed"
        raise InvalidTransition(
            f"a {what} that is {state.replace('_', ' ')} cannot be {_past(event)}{tail}",
            state=state,
            event=event,
        )
    new_state, allowed_who = found
    if who not in allowed_who:
        raise Forbidden(f"only {' or '.join(sorted(allowed_who))} may {event} a {what}")
    return new_state


def _past(event: str) -> str:
    irregular = {
        "submit": "submitted", "resubmit": "resubmitted", "withdraw": "withdrawn", "pay": "paid",
        "verify": "verified",
    }  # fmt: skip
    return irregular.get(event, event + ("d" if event.endswith("e") else "ed"))


# --- reasons -------------------------------------------------------------------------------------


class ReasonCode(StrEnum):
    """Why a request or claim was rejected, returned or approved in part: partners see these."""

    NOT_ELIGIBLE = "not_eligible"  # the activity is not in the catalog or not allowed
    OVER_CAP = "over_cap"
    INSUFFICIENT_PROOF = "insufficient_proof"
    PROOF_MISMATCH = "proof_mismatch"  # invoice or evidence does not match the claim
    OUTSIDE_DATES = "outside_dates"
    LATE = "late"
    DUPLICATE = "duplicate"
    INELIGIBLE_COST = "ineligible_cost"  # part of the cost is not reimbursable
    BUDGET = "budget"  # no funds left for it
    OTHER = "other"


def check_reason(code: object, message: object) -> tuple[str, str]:
    """A rejection, return or partial approval needs a reason code and a message."""
    if not isinstance(code, str) or code not in set(ReasonCode):
        raise ValidationError(
            f"a reason code is needed: one of {', '.join(ReasonCode)}", field="reason_code"
        )
    if not isinstance(message, str) or not message.strip():
        raise ValidationError("say why, in a sentence the partner will read", field="reason")
    if len(message.strip()) > 2000:
        raise ValidationError("the reason may have at most 2000 characters", field="reason")
    return code, message.strip()


# --- amounts -------------------------------------------------------------------------------------


def max_request(estimated_cost: int, share_bp: int, cap: int | None) -> int:
    """The most a fund request may ask for: the program's share of the cost, within the cap."""
    share = reimbursable(estimated_cost, share_bp)
    return share if cap is None else min(share, cap)


def max_claim(actual_cost: int, share_bp: int, cap: int | None, reserved: int | None) -> int:
    """The most a claim may ask for: the share of the actual cost, within the cap, and within the
    reservation when it claims against an approved request."""
    limit = max_request(actual_cost, share_bp, cap)
    return limit if reserved is None else min(limit, reserved)


# --- approval policy -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ApprovalPolicy:
    """Who may approve how much. Amounts in the program's minor units."""

    second_approver_above: int | None = None  # above this, two different approvers are needed
    limits: Mapping[str, int] = field(default_factory=dict)  # approver id -> the most they approve


@dataclass(frozen=True)
class ApprovalStep:
    complete: bool  # True: the approval takes effect now; False: waits for a second approver
    message: str


def approval_step(
    policy: ApprovalPolicy,
    amount: int,
    *,
    approver: str,
    submitter: str,
    earlier_approvers: tuple[str, ...] = (),
) -> ApprovalStep:
    """Check one approver's approval of `amount` against the policy."""
    if approver == submitter:
        raise Forbidden("nobody approves their own submission")
    if approver in earlier_approvers:
        raise Conflict("you have already approved this; a second approver must be someone else")
    limit = policy.limits.get(approver)
    if limit is not None and amount > limit:
        raise Forbidden("the amount is above your approval limit", limit=limit)
    needed = (
        2
        if policy.second_approver_above is not None and amount > policy.second_approver_above
        else 1
    )
    given = len(earlier_approvers) + 1
    if given < needed:
        return ApprovalStep(False, "approved once: a second approver must confirm this amount")
    return ApprovalStep(True, "approved")


# --- holds: where reserved money comes from and where it goes ------------------------------------

RESERVATION = "claim.reservation"  # ledger code: held for an approved fund request
REIMBURSEMENT = "claim.reimbursement"  # ledger code: held for a claim, posted on approval


def plan_holds(available: Sequence[tuple[int, int]], amount: int) -> list[tuple[int, int]]:
    """Take `amount` from funds in the order given (soonest expiring first), as little from as
    few funds as that order allows: [(fund, take)]. Raises when together they hold too little."""
    if amount <= 0:
        raise ValueError("a hold is for a positive amount")
    plan: list[tuple[int, int]] = []
    left = amount
    for fund, free in available:
        if left == 0:
            break
        take = min(free, left)
        if take > 0:
            plan.append((fund, take))
            left -= take
    if left:
        raise ShortOfFunds(amount - left)
    return plan


class ShortOfFunds(Exception):
    def __init__(self, available: int) -> None:
        super().__init__(available)
        self.available = available


def plan_release(holds: Sequence[tuple[int, int]], amount: int) -> list[tuple[int, int]]:
    """Post `amount` across holds in order: [(hold, post)], where 0 means release it all.

    The holds in order are used up first, so a partial approval releases the last ones.
    """
    total = sum(held for _, held in holds)
    if not 0 <= amount <= total:
        raise ValueError(f"cannot post {amount} of holds worth {total}")
    plan, left = [], amount
    for hold, held in holds:
        post = min(held, left)
        plan.append((hold, post))
        left -= post
    return plan


# --- duplicates ----------------------------------------------------------------------------------

_INVOICE_NOISE = re.compile(r"[^0-9a-z]+")
_ISSUER_SUFFIXES = re.compile(
    r"\b(inc|incorporated|llc|ltd|limited|gmbh|ag|sa|sarl|srl|bv|nv|plc|co|corp|corporation"
    r"|company|pty)\b"
)


def invoice_key(issuer: str, number: str, total: int | None) -> str | None:
    """Issuer + number + total, normalised so that 'ACME, Inc.' / 'acme inc' and 'INV-0042' /
    'inv 0042' are the same invoice. None when any part is missing."""
    if not issuer or not number or total is None:
        return None
    name = _ISSUER_SUFFIXES.sub(" ", issuer.casefold())
    name = _INVOICE_NOISE.sub("", name)
    ref = _INVOICE_NOISE.sub("", number.casefold()).lstrip("0") or "0"
    if not name:
        return None
    return f"{name}|{ref}|{total}"
