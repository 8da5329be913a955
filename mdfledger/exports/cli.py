"""`mdfledger export journal --format hledger|beancount [--as-of ...] [--output FILE]` and
`mdfledger export audit [filters] --format csv|xlsx --output FILE`."""

from __future__ import annotations

import sys

import click
from flask.cli import AppGroup, with_appcontext

from mdfledger import exports
from mdfledger.actor import Actor
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


@export_group.command("audit")
@with_appcontext
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "xlsx"]), default="csv", show_default=True
)
@click.option("--action", help="An action (allocation.reverse) or a family (allocation).")
@click.option("--actor", help="Who: user:12, system:cli, or a user's e-mail address.")
@click.option("--object-type")
@click.option("--object-id")
@click.option("--partner", help="Entries about this partner (its code).")
@click.option("--since", help="From this date (UTC) or ISO time with an offset, inclusive.")
@click.option("--until", help="Through this date (UTC) or ISO time with an offset, inclusive.")
@click.option("--request", "request_id", help="Everything one request did.")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False, writable=True))
def audit_command(fmt: str, output: str, **filters: str | None) -> None:
    """Write the audit log's entries (filtered as on the audit page), oldest first, with what
    each hash covers so the chain can be recomputed."""
    session = get_read_session()
    try:
        params = {k: v for k, v in filters.items() if v}
        prepared = exports.prepare(session, Actor.system("cli"), "audit", fmt, params)
        with open(output, "wb") as out:
            prepared.kind.write(session, Actor.system("cli"), prepared.params, fmt, out, _quiet)
    except DomainError as error:
        raise click.ClickException(error.message) from error
    click.echo(
        f"wrote {prepared.rows:,} audit entr{'y' if prepared.rows == 1 else 'ies'} to {output}"
    )


def _quiet(done: int, total: int | None) -> None:
    return None


@export_group.command("statement")
@with_appcontext
@click.option("--partner", "partner_code", help="A partner's accounts (its code).")
@click.option("--program", "program_code", help="A program's own accounts, or with --partner:"
              " the partner's accounts in it (its code).")  # fmt: skip
@click.option("--account", "account_id", type=click.IntRange(min=1), help="One account (its id).")
@click.option("--from", "start", required=True, help="First effective date (2026-01-01).")
@click.option("--to", "end", required=True, help="Last effective date, inclusive.")
@click.option(
    "--as-of",
    help="The books as they stood then: a date (its end, UTC) or an ISO time. Default: now.",
)
@click.option("--format", "fmt", required=True, type=click.Choice(["csv", "xlsx", "pdf"]))
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False, writable=True), help="Default: stdout."
)
def statement_command(
    partner_code: str | None,
    program_code: str | None,
    account_id: int | None,
    start: str,
    end: str,
    as_of: str | None,
    fmt: str,
    output: str | None,
) -> None:
    """Write the statement of a partner, a program or an account: opening balance, every
    movement with its business reference and running balance, closing balance."""
    from mdfledger import programs

    actor = Actor.system("cli")
    session = get_read_session()
    try:
        if account_id is not None and (partner_code or program_code):
            raise click.UsageError("give --account alone, or --partner and/or --program")
        if account_id is None and not (partner_code or program_code):
            raise click.UsageError("give --partner, --program or --account")
        partner = programs.partner_by_code(session, actor, partner_code) if partner_code else None
        program = programs.program_by_code(session, actor, program_code) if program_code else None
        prepared = exports.prepare_statement(
            session, actor, partner_id=partner.id if partner else None,
            program_id=program.id if program else None, account_id=account_id, start=start,
            end=end, as_of=as_of,
        )  # fmt: skip
        params = prepared.params()
        if output is None:
            exports.write_statement(session, actor, params, fmt, sys.stdout.buffer, _quiet)
            sys.stdout.buffer.flush()
            return
        with open(output, "wb") as out:
            exports.write_statement(session, actor, params, fmt, out, _quiet)
    except DomainError as error:
        raise click.ClickException(error.message) from error
    click.echo(
        f"wrote the statement of {prepared.subject_label}, {len(prepared.accounts)} account(s)"
        f" (up to transfer {prepared.high_water}) to {output}"
    )
