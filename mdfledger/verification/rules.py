"""Pure verification rules: which checks a claim needs, the date and amount checks, and the
decision (approve without a person, or send to finance with what needs a look on top)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from mdfledger import audit
from mdfledger.claims.rules import max_claim
from mdfledger.programs.models import ProofType
from mdfledger.verification.outcome import CheckKind, Finding, Outcome

# The check each kind of proof gets. Dates and amounts are checked on every claim.
CHECK_FOR_PROOF = {
    ProofType.INVOICE: CheckKind.INVOICE,
    ProofType.LANDING_PAGE: CheckKind.PAGE,
    ProofType.SOCIAL_POST: CheckKind.PAGE,
    ProofType.LEAD_LIST: CheckKind.LEADS,
    ProofType.PHOTOS: CheckKind.PHOTO,
}
ALWAYS = (CheckKind.DATES, CheckKind.AMOUNT)
# Finance reads the checks in this order below the failing and inconclusive ones.
ORDER = (
    CheckKind.INVOICE,
    CheckKind.AMOUNT,
    CheckKind.DATES,
    CheckKind.PAGE,
    CheckKind.LEADS,
    CheckKind.PHOTO,
)


def required_checks(proof: Iterable[str]) -> tuple[CheckKind, ...]:
    """The checks an activity's proof list (ProofType values) asks for, in reading order."""
    kinds = {CHECK_FOR_PROOF[ProofType(p)] for p in proof if p} | set(ALWAYS)
    return tuple(kind for kind in ORDER if kind in kinds)


def markers(template: str, *, partner: str, claim: str) -> list[str]:
    """The texts a landing page must show: one per line of the program's setting, with
    {partner} and {claim} filled in. Blank lines are ignored."""
    lines = (line.strip() for line in template.splitlines())
    return [line.replace("{partner}", partner).replace("{claim}", claim) for line in lines if line]


def dates_finding(
    *,
    starts_on: date,
    ends_on: date,
    submitted_on: date,
    deadline: date,
    request_window: tuple[date, date] | None,
) -> Finding:
    """The activity ran inside the pre-approved window, and the claim came by the deadline."""
    evidence = {
        "starts_on": starts_on.isoformat(),
        "ends_on": ends_on.isoformat(),
        "submitted_on": submitted_on.isoformat(),
        "deadline": deadline.isoformat(),
        "request_window": None
        if request_window is None
        else [day.isoformat() for day in request_window],
    }
    problems = []
    if request_window is not None:
        first, last = request_window
        if starts_on < first or ends_on > last:
            problems.append(
                f"the activity ran {starts_on.isoformat()} to {ends_on.isoformat()}, outside the"
                f" pre-approved {first.isoformat()} to {last.isoformat()}"
            )
    if submitted_on > deadline:
        problems.append(
            f"the claim came on {submitted_on.isoformat()}, after the deadline"
            f" {deadline.isoformat()}"
        )
    if problems:
        return Finding(Outcome.FAIL, 0, _sentence("; ".join(problems)), evidence)
    where = "inside the pre-approved dates" if request_window else "on record"
    return Finding(
        Outcome.PASS,
        100,
        f"Activity {starts_on.isoformat()} to {ends_on.isoformat()} is {where}; claimed on"
        f" {submitted_on.isoformat()}, by the deadline {deadline.isoformat()}",
        evidence,
    )


def amount_finding(
    *,
    claimed: int,
    currency: str,
    actual_cost: int,
    share_bp: int,
    verified_cost: int | None,
    invoice_needed: bool,
) -> Finding:
    """The claimed amount is within the program's share of the cost the invoices prove (or,
    for activities without an invoice, of the cost the partner declared)."""

    def money(amount: int) -> str:
        return audit.money(amount, currency)

    evidence = {
        "claimed": claimed,
        "actual_cost": actual_cost,
        "verified_cost": verified_cost,
        "share_bp": share_bp,
        "currency": currency,
    }
    if invoice_needed and verified_cost is None:
        return Finding(
            Outcome.INCONCLUSIVE,
            0,
            f"The cost could not be verified from the invoice: {money(claimed)} claimed against"
            f" a declared cost of {money(actual_cost)}",
            evidence,
        )
    basis = actual_cost if verified_cost is None else min(verified_cost, actual_cost)
    allowed = max_claim(basis, share_bp, None, None)
    evidence["allowed"] = allowed
    what = "the declared cost" if verified_cost is None else "the invoiced cost"
    share = audit.percent(share_bp)
    if claimed <= allowed:
        return Finding(
            Outcome.PASS,
            100,
            f"{money(claimed)} claimed is within the {share} share of {what}"
            f" ({money(basis)} allows {money(allowed)})",
            evidence,
        )
    score = max(0, 100 - (claimed - allowed) * 100 // max(claimed, 1))
    return Finding(
        Outcome.FAIL,
        int(score),
        f"{money(claimed)} claimed is {money(claimed - allowed)} more than the {share} share of"
        f" {what} allows ({money(allowed)} of {money(basis)})",
        evidence,
    )


@dataclass(frozen=True)
class Decision:
    approve: bool
    reason: str  # for the timeline: why it was approved, or what finance should look at


def decide(
    required: Sequence[CheckKind],
    findings: Mapping[CheckKind, Sequence[Finding]],
    *,
    amount: int,
    currency: str,
    auto_approve_up_to: int | None,
    second_approval_above: int | None,
    flagged: bool,
) -> Decision:
    """Approve without a person only when every required check ran and passed, nothing is
    flagged as a duplicate, and the amount is within the program's automatic limit (and below
    the two-approver threshold). Otherwise finance decides; the reason names what to look at."""
    attention = [
        f"{kind.value}: {finding.summary}"
        for kind in required
        for finding in findings.get(kind, ())
        if finding.outcome != Outcome.PASS
    ]
    missing = [kind.value for kind in required if not findings.get(kind)]
    if missing:
        attention.append(f"not checked: {', '.join(missing)}")
    if attention:
        return Decision(False, _sentence("; ".join(attention)))
    passed = "All checks passed (" + ", ".join(kind.value for kind in required) + ")"
    if flagged:
        return Decision(False, f"{passed}, but the claim is flagged as a possible duplicate")
    limit = auto_approve_up_to
    if second_approval_above is not None:
        limit = None if limit is None else min(limit, second_approval_above)
    if limit is None:
        return Decision(False, f"{passed}; the program approves every claim by hand")
    if amount > limit:
        return Decision(
            False,
            f"{passed}; {audit.money(amount, currency)} is above the automatic approval limit"
            f" of {audit.money(limit, currency)}",
        )
    return Decision(True, f"{passed}: approved automatically")


def reading_order(kind: str, outcome: str) -> tuple[int, int]:
    """Sort key that puts failing checks first, then inconclusive, then passed; the usual
    order of checks within each."""
    rank = {Outcome.FAIL: 0, Outcome.INCONCLUSIVE: 1, Outcome.PASS: 2}
    return rank[Outcome(outcome)], ORDER.index(CheckKind(kind))


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]
