"""`mdfledger export journal --format hledger|beancount [--as-of ...] [--output FILE]`."""

from __future__ import annotations

import sys

import click
from flask.cli import AppGroup, with_appcontext

from mdfledger import exports
from mdfledger.db import get_read_session
from mdfledger.errors import DomainError

export_group = AppGroup("export", help="Export the books for outside tools.")


@export_group.command("journal")
@with_appcontext
@click.option("--format", "fmt", required=True, type=click.Choice(exports.FORMATS))
@click.option(
    "--as-of",
    help="Only transfers created up to this time (ISO 8601; naive is UTC) or the end of this"
    " date (UTC). Default: everything.",
)
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False, writable=True), help="Default: stdout."
)
def journal_command(fmt: str, as_of: str | None, output: str | None) -> None:
    """Write the journal for hledger or beancount, with a balance check per account."""
    try:
        cut = exports.parse_as_of(as_of) if as_of else None
        session = get_read_session()
        if output is None:
            summary = exports.export_journal(session, sys.stdout, fmt=fmt, as_of=cut)
        else:
            with open(output, "w", encoding="utf-8", newline="\n") as out:
                summary = exports.export_journal(session, out, fmt=fmt, as_of=cut)
    except DomainError as error:
        raise click.ClickException(error.message) from error
    if output is not None:
        click.echo(
            f"wrote {summary.transfers} transfer(s) and {summary.accounts} account(s)"
            f" (up to transfer {summary.high_water}) to {output}"
        )
