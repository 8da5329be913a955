"""Proof-of-performance checks: each claim's invoice read by OCR and compared with the claim,
its landing pages and posts fetched (safely) and searched for the program's markers, its lead
lists counted, its dates and amount checked; the results recorded with their evidence; and the
decision: approve clean claims under the program's limit, send the rest to finance with what
needs a look on top. The slow work runs on background jobs (mdfledger.jobs).
"""

from mdfledger.verification.fetch import FetchPolicy
from mdfledger.verification.models import CheckResult, ClaimedLead, Trigger, VerificationPolicy
from mdfledger.verification.outcome import CheckKind, Finding, Outcome, Unreadable
from mdfledger.verification.rules import Decision
from mdfledger.verification.service import (
    RERUN_JOB,
    VERIFIER,
    CheckView,
    Policy,
    Toolkit,
    check_history,
    gather,
    latest_checks,
    pages_due,
    policy_of,
    record,
    rerun_check,
    run_checks,
    set_policy,
    stalled,
    verify,
)

__all__ = [
    "RERUN_JOB",
    "VERIFIER",
    "CheckKind",
    "CheckResult",
    "CheckView",
    "ClaimedLead",
    "Decision",
    "FetchPolicy",
    "Finding",
    "Outcome",
    "Policy",
    "Toolkit",
    "Trigger",
    "Unreadable",
    "VerificationPolicy",
    "check_history",
    "gather",
    "latest_checks",
    "pages_due",
    "policy_of",
    "record",
    "rerun_check",
    "run_checks",
    "set_policy",
    "stalled",
    "verify",
]
