"""Payouts: approved claims paid to partners through a provider — Stripe Connect transfers, or
the manual provider (finance pays by bank transfer from a payment file and records it).

Money: claims payable -> payouts in transit (payout.send) when a payout is created or retried;
-> settled (payout.settle) when the provider confirms; a failure reverses the send; a reversal
after settlement moves settled -> claims payable (payout.reversal). Webhooks are applied once,
in any order; `jobs.recover` finds payouts a crash or a timeout left in flight; `reconcile`
compares the ledger with the provider.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mdfledger.payouts.jobs import (
    Recovery,
    TransientPayoutError,
    on_claim_approved,
    recover,
    scheduled_run,
    send_payout,
)
from mdfledger.payouts.manual import (
    ManualProvider,
    cancel_payout,
    mark_failed,
    mark_sent,
    mark_settled,
    payment_file,
    retry_payout,
)
from mdfledger.payouts.models import (
    Payout,
    PayoutClaim,
    PayoutDetails,
    PayoutEvent,
    PayoutPolicy,
    ProviderEventRecord,
)
from mdfledger.payouts.provider import (
    Provider,
    ProviderError,
    ProviderEvent,
    ProviderTransfer,
    TransferRequest,
    WebhookRejected,
)
from mdfledger.payouts.reconcile import Difference, Reconciliation, reconcile
from mdfledger.payouts.rules import PayoutState
from mdfledger.payouts.service import (
    PAYOUTS,
    SEND_JOB,
    ClaimPayment,
    PayableGroup,
    Policy,
    Run,
    Skipped,
    claim_payment,
    create_payouts,
    details_of,
    get_payout,
    hold_reason,
    holds_of,
    payable_claims,
    payout_claims,
    payouts_query,
    policy_of,
    set_details,
    set_policy,
    timeline,
)
from mdfledger.payouts.webhooks import apply_event, webhook_actor

APP_KEY = "mdfledger.payouts"


def providers_from_settings(settings: Any) -> dict[str, Provider]:
    """The providers the settings make available: manual always, Stripe Connect when
    MDFLEDGER_STRIPE_API_KEY is set."""
    found: dict[str, Provider] = {"manual": ManualProvider()}
    key = getattr(settings, "stripe_api_key", "")
    if key:
        from mdfledger.payouts.stripe_connect import StripeConnect

        found["stripe"] = StripeConnect(
            key,
            getattr(settings, "stripe_webhook_secret", ""),
            api_base=getattr(settings, "stripe_api_base", "") or None,
        )
    return found


def init_app(app: Any, settings: Any) -> None:
    """Put the providers where pages, the API, the webhook endpoint and commands find them."""
    app.extensions[APP_KEY] = providers_from_settings(settings)


def app_providers(app: Any = None) -> Mapping[str, Provider]:
    from flask import current_app

    return (app or current_app).extensions.get(APP_KEY) or {"manual": ManualProvider()}


__all__ = [
    "APP_KEY",
    "PAYOUTS",
    "SEND_JOB",
    "ClaimPayment",
    "Difference",
    "ManualProvider",
    "PayableGroup",
    "Payout",
    "PayoutClaim",
    "PayoutDetails",
    "PayoutEvent",
    "PayoutPolicy",
    "PayoutState",
    "Policy",
    "Provider",
    "ProviderError",
    "ProviderEvent",
    "ProviderEventRecord",
    "ProviderTransfer",
    "Reconciliation",
    "Recovery",
    "Run",
    "Skipped",
    "TransferRequest",
    "TransientPayoutError",
    "WebhookRejected",
    "app_providers",
    "apply_event",
    "cancel_payout",
    "claim_payment",
    "create_payouts",
    "details_of",
    "get_payout",
    "hold_reason",
    "holds_of",
    "init_app",
    "mark_failed",
    "mark_sent",
    "mark_settled",
    "on_claim_approved",
    "payable_claims",
    "payment_file",
    "payout_claims",
    "payouts_query",
    "policy_of",
    "providers_from_settings",
    "reconcile",
    "recover",
    "retry_payout",
    "scheduled_run",
    "send_payout",
    "set_details",
    "set_policy",
    "timeline",
    "webhook_actor",
]
