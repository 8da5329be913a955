"""`mdfledger payouts run|recover` and `mdfledger reconcile payouts`.

Thin: parse, call one service or job, commit, print. Providers come from the app
(`payouts.init_app`): the manual one always, Stripe Connect when MDFLEDGER_STRIPE_API_KEY is set.
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from mdfledger import audit, payouts
from mdfledger.db import get_read_session, get_session, session_factory
from mdfledger.errors import DomainError
from mdfledger.payouts.reconcile import parse_since
from mdfledger.payouts.service import PAYOUTS
from mdfledger.programs.service import partner_by_code, program_by_code

payouts_group = AppGroup("payouts", help="Payout runs and recovery.")
reconcile_group = AppGroup("reconcile", help="Compare the ledger with outside records.")


@payouts_group.command("run")
@with_appcontext
@click.option("--program", "program_code", help="Only this program (its code).")
@click.option("--partner", "partner_code", help="Only this partner (its code).")
@click.option(
    "--due",
    is_flag=True,
    help="Only what is due: scheduled programs on their run day, above their minimum (for"
    " cron). Without it, everything payable is paid now.",
)
def run_command(program_code: str | None, partner_code: str | None, due: bool) -> None:
    """Pay approved claims: one payout per partner and program. Held partners are listed."""
    session = get_session()
    try:
        program_id = program_by_code(session, PAYOUTS, program_code).id if program_code else None
        partner_id = partner_by_code(session, PAYOUTS, partner_code).id if partner_code else None
        run = payouts.create_payouts(
            session, PAYOUTS, program_id=program_id, partner_id=partner_id, due_only=due
        )
        session.commit()
    except DomainError as error:
        raise click.ClickException(error.message) from error
    for payout in run.payouts:
        money = audit.money(payout.amount, payout.currency)
        click.echo(f"{payout.reference}  {money:>18}  {payout.provider:<6}  {payout.destination}")
    for skipped in run.skipped:
        click.echo(f"not paid: {skipped.partner_name} in {skipped.program_code}: {skipped.reason}")
    click.echo(f"{len(run.payouts)} payout(s) created, {len(run.skipped)} partner(s) not paid")


@payouts_group.command("recover")
@with_appcontext
@click.option(
    "--older-than",
    default=10,
    show_default=True,
    type=click.IntRange(0, 10_000),
    help="Minutes a pending payout must have been quiet.",
)
def recover_command(older_than: int) -> None:
    """Settle or resend payouts a crash or a timeout left pending, and retry failed payouts
    whose backoff has passed. Run it every few minutes from cron; safe to run twice."""
    result = payouts.recover(
        session_factory(), payouts.app_providers(), older_than=timedelta(minutes=older_than)
    )
    click.echo(f"found at the provider and settled: {len(result.confirmed)}")
    click.echo(f"sent again with the same key: {len(result.resent)}")
    click.echo(f"failed payouts retried: {len(result.retried)}")
    for payout_id, error in sorted(result.errors.items()):
        click.echo(f"still unknown: {payouts.rules.payout_reference(payout_id)}: {error}")


@reconcile_group.command("payouts")
@with_appcontext
@click.option("--since", help="Only transfers and payouts from this date (YYYY-MM-DD, UTC).")
@click.option("--provider", "provider_name", help="stripe or manual (default: stripe if set up).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def reconcile_command(since: str | None, provider_name: str | None, as_json: bool) -> None:
    """Compare the ledger and the payouts with the provider's transfers and list every
    difference. Exit status 1 when there is any."""
    providers = payouts.app_providers()
    name = provider_name or ("stripe" if "stripe" in providers else "manual")
    provider = providers.get(name)
    if provider is None:
        raise click.ClickException(
            f"provider {name!r} is not set up here (set MDFLEDGER_STRIPE_API_KEY for stripe)"
        )
    try:
        when = parse_since(since) if since else None
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--since") from None
    try:
        result = payouts.reconcile(get_read_session(), provider, since=when)
    except payouts.ProviderError as error:
        raise click.ClickException(f"{name} could not be asked: {error.message}") from error
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
    else:
        click.echo(
            f"{name}: {result.transfers} transfer(s), {result.payouts} payout(s),"
            f" {result.accounts} account(s) compared"
        )
        for difference in result.differences:
            click.echo(f"{difference.kind}: {difference.message}")
        click.echo("no differences" if result.ok else f"{len(result.differences)} difference(s)")
    if not result.ok:
        current_app.logger.debug("reconciliation found %d differences", len(result.differences))
        sys.exit(1)
