"""`mdfledger engagement signals` (run the partner signals now: cron calls it daily) and
`mdfledger engagement at-risk` (finance's list, in the terminal)."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from mdfledger import audit
from mdfledger.actor import Actor
from mdfledger.db import get_read_session, session_factory
from mdfledger.engagement import signals
from mdfledger.errors import DomainError
from mdfledger.programs.service import program_by_code

CLI_ACTOR = Actor.system("cli")

engagement_group = AppGroup("engagement", help="Partner engagement: activity signals.")


@engagement_group.command("signals")
@with_appcontext
@click.option("--program", "program_code", help="Only this program (its code).")
def signals_command(program_code: str | None) -> None:
    """Work out every partner's activity signals and send one event for each signal that
    turned on. Safe to run as often as you like: unchanged signals send nothing."""
    sessions = session_factory(current_app)
    try:
        if program_code is None:
            run = signals.signals_job(sessions)
        else:
            with sessions() as session:
                program = program_by_code(session, CLI_ACTOR, program_code)
                run = signals.run_signals(session, CLI_ACTOR, program_id=program.id)
                session.commit()
    except DomainError as error:
        raise click.ClickException(error.message) from error
    click.echo(
        f"{run.programs} program(s), {run.partners} partner(s): {run.turned_on} signal(s) on,"
        f" {run.turned_off} off, {run.events} event(s) sent"
    )


@engagement_group.command("at-risk")
@with_appcontext
@click.option("--program", "program_code", help="Only this program (its code).")
def at_risk_command(program_code: str | None) -> None:
    """Partners with risk signals on, riskiest first."""
    session = get_read_session()
    try:
        program_id = None
        if program_code is not None:
            program_id = program_by_code(session, CLI_ACTOR, program_code).id
        rows = signals.at_risk(session, CLI_ACTOR, program_id)
    except DomainError as error:
        raise click.ClickException(error.message) from error
    if not rows:
        click.echo("no partner is at risk")
        return
    for row in rows:
        expiring = (
            f"{audit.money(row.expiring_amount, row.currency)} expiring"
            f" {row.expiring_on.isoformat()}"
            if row.expiring_on
            else "nothing expiring"
        )
        click.echo(f"{row.partner_code} in {row.program_code}: {expiring}")
        for signal in row.signals:
            subject = f" {signal.subject}" if signal.subject else ""
            detail = f": {signal.detail}" if signal.detail else ""
            click.echo(
                f"  {signal.label}{subject} (signal on since {signal.since.isoformat()}){detail}"
            )
