"""`mdfledger events deliver|dead|replay`: one delivery run (cron runs it every minute in
production), the dead-letter list, and sending dead letters again."""

from __future__ import annotations

import click
from flask.cli import AppGroup, with_appcontext

from mdfledger.actor import Actor
from mdfledger.db import get_read_session, get_session, session_factory
from mdfledger.engagement import app_senders, dead_letters, deliver, replay
from mdfledger.errors import DomainError

CLI_ACTOR = Actor.system("cli")

events_group = AppGroup("events", help="Partner events: delivery, dead letters, replay.")


@events_group.command("deliver")
@with_appcontext
@click.option("--partner-id", type=click.IntRange(1), help="Only this partner's deliveries.")
@click.option("--limit", default=500, show_default=True, type=click.IntRange(1, 100_000))
def deliver_command(partner_id: int | None, limit: int) -> None:
    """Send every delivery that is due, oldest first per destination and partner."""
    run = deliver(session_factory(), app_senders(), partner_id=partner_id, limit=limit)
    click.echo(
        f"{len(run.delivered)} delivered, {len(run.retrying)} to retry, {len(run.dead)} given up"
    )


@events_group.command("dead")
@with_appcontext
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 500))
def dead_command(limit: int) -> None:
    """List dead letters, newest first."""
    letters = dead_letters(get_read_session(), CLI_ACTOR, limit=limit)
    if not letters:
        click.echo("no dead letters")
        return
    for v in letters:
        d = v.delivery
        assert d.dead_at is not None
        click.echo(
            f"{d.id}\t{d.dead_at:%Y-%m-%d %H:%M}\tevent {v.event.id} {v.event.type}\t"
            f"{v.partner.code}\t{v.destination.name}\t{d.attempts} attempt(s)\t"
            f"{d.last_error or ''}"
        )


@events_group.command("replay")
@with_appcontext
@click.argument("delivery_ids", nargs=-1, required=True, type=click.IntRange(1))
def replay_command(delivery_ids: tuple[int, ...]) -> None:
    """Send dead letters again (by delivery id, as `events dead` lists them)."""
    session = get_session()
    try:
        replayed = replay(session, CLI_ACTOR, list(delivery_ids))
    except DomainError as error:
        session.rollback()
        raise click.ClickException(error.message) from None
    session.commit()
    click.echo(f"{len(replayed)} dead letter(s) back in the queue, oldest first")
