"""`mdfledger ocr-invoice FILE` (what the invoice check reads, for finance to debug a decision),
`mdfledger verification sweep|rules` and `mdfledger worker`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from mdfledger import jobs
from mdfledger.actor import Actor
from mdfledger.db import get_session
from mdfledger.errors import DomainError
from mdfledger.money import format_amount, parse_amount
from mdfledger.programs.service import program_by_code
from mdfledger.verification.invoice import read_invoice
from mdfledger.verification.outcome import Unreadable
from mdfledger.verification.service import policy_of, set_policy

CLI_ACTOR = Actor.system("cli")
READ_LIMIT = 50 * 1024 * 1024  # larger files are not invoices

verification_group = AppGroup("verification", help="Checks of claims' proof of performance.")


@click.command("ocr-invoice")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON.")
@click.option("--max-pages", default=5, show_default=True, type=click.IntRange(1, 50))
def ocr_invoice(file: Path, as_json: bool, max_pages: int) -> None:
    """Read an invoice (PDF, PNG or JPEG) as the invoice check does and print what it found:
    issuer, number, date, total and currency, each with its confidence and source line."""
    try:
        with file.open("rb") as handle:
            data = handle.read(READ_LIMIT + 1)
    except OSError as error:
        raise click.ClickException(f"cannot read {file}: {error.strerror or error}") from None
    if len(data) > READ_LIMIT:
        raise click.ClickException(f"{file} is larger than 50 MB: not an invoice")
    try:
        reading = read_invoice(data, max_pages=max_pages)
    except Unreadable as error:
        if as_json:
            click.echo(json.dumps({"file": str(file), "error": str(error)}, indent=2))
            sys.exit(1)
        raise click.ClickException(f"{file}: {error}") from None
    found = reading.as_dict()
    if as_json:
        click.echo(json.dumps({"file": str(file), **found}, indent=2, ensure_ascii=False))
        return
    click.echo(f"{file}: {reading.pages_read} of {reading.pages_total} page(s) read by"
               f" {reading.method} in {reading.seconds:.2f} s")  # fmt: skip
    for name in ("issuer", "number", "issued_on", "total", "currency"):
        field = getattr(reading, name)
        value = field.value
        if name == "total" and value is not None and reading.currency.value:
            value = f"{format_amount(value, reading.currency.value)}"
        shown = "(not found)" if value is None else str(value)
        line = f"   <- {field.line!r}" if field.line else ""
        click.echo(f"  {name.replace('_', ' '):<10} {shown:<32} {field.confidence:>3}%{line}")
    for note in reading.notes:
        click.echo(f"  note: {note}")


@verification_group.command("sweep")
@with_appcontext
def sweep() -> None:
    """Send lost verifications again and re-check the live pages that are due. Run it every
    few minutes from cron (the embedded default's scheduler runs it hourly)."""
    ctx, runner = current_app.extensions[jobs.JOBS_KEY]
    result = jobs.verification_sweep(ctx, runner)
    click.echo(f"sent {result.resent} lost verification(s) again")
    click.echo(f"re-checked {result.rechecked} page(s)")


@verification_group.command("rules")
@with_appcontext
@click.argument("program_code")
@click.option("--auto-approve-up-to", metavar="AMOUNT|none", help="Approve clean claims up to"
              " this amount without a person (program currency); none: never.")  # fmt: skip
@click.option("--tolerance", metavar="BP", type=int, help="Invoice total vs cost, basis points.")
@click.option("--invoice-grace-days", type=int, help="Invoice dates allowed around the activity.")
@click.option("--marker", "markers", multiple=True, help="Text pages must show; {partner} and"
              " {claim} are filled in. Repeat for several; give '' to require none.")  # fmt: skip
@click.option("--min-leads", metavar="N|none", help="Leads a lead list must prove.")
@click.option("--recheck-days", type=int, help="Days after submission that pages are re-checked.")
def rules_command(
    program_code: str,
    auto_approve_up_to: str | None,
    tolerance: int | None,
    invoice_grace_days: int | None,
    markers: tuple[str, ...],
    min_leads: str | None,
    recheck_days: int | None,
) -> None:
    """Show a program's verification rules, or change the ones given."""
    session = get_session()
    try:
        program = program_by_code(session, CLI_ACTOR, program_code)
        now = policy_of(session, program.id)
        given = (auto_approve_up_to, tolerance, invoice_grace_days, min_leads, recheck_days)
        changed = any(value is not None for value in given) or bool(markers)
        if changed:
            auto = now.auto_approve_up_to
            if auto_approve_up_to is not None:
                auto = None if auto_approve_up_to == "none" else parse_amount(
                    auto_approve_up_to, program.currency
                )  # fmt: skip
            leads = now.min_leads
            if min_leads is not None:
                leads = None if min_leads == "none" else _count(min_leads)
            set_policy(
                session, CLI_ACTOR, program.id, auto_approve_up_to=auto,
                tolerance_bp=now.tolerance_bp if tolerance is None else tolerance,
                invoice_grace_days=now.invoice_grace_days
                if invoice_grace_days is None else invoice_grace_days,
                page_markers="\n".join(markers) if markers else now.page_markers,
                min_leads=leads,
                recheck_days=now.recheck_days if recheck_days is None else recheck_days,
            )  # fmt: skip
            session.commit()
            now = policy_of(session, program.id)
    except DomainError as error:
        raise click.ClickException(error.message) from error
    auto_text = (
        "never (finance decides every claim)"
        if now.auto_approve_up_to is None
        else f"up to {format_amount(now.auto_approve_up_to, program.currency)} {program.currency}"
    )
    click.echo(f"{program.code} verification rules")
    click.echo(f"  automatic approval   {auto_text}")
    click.echo(f"  invoice tolerance    {now.tolerance_bp} bp of the cost")
    click.echo(f"  invoice dates        within {now.invoice_grace_days} days of the activity")
    click.echo(f"  page markers         {', '.join(now.page_markers.splitlines()) or '(none)'}")
    click.echo(f"  leads required       {now.min_leads or '(any new leads)'}")
    click.echo(f"  pages re-checked     daily for {now.recheck_days} days")


def _count(text: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise click.BadParameter(f"a whole number or none, not {text!r}", param_hint="--min-leads")
    return int(text)


@click.command("worker")
@with_appcontext
@click.option("--concurrency", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option("--loglevel", default="INFO", show_default=True)
def worker(concurrency: int, loglevel: str) -> None:
    """Start a Celery worker for the background jobs (MDFLEDGER_JOBS=celery, with
    MDFLEDGER_BROKER_URL naming the Redis broker). Run several on several machines to scale."""
    settings = current_app.config["MDFLEDGER"]
    if not settings.broker_url:
        raise click.ClickException(
            "set MDFLEDGER_BROKER_URL to the Redis broker (redis://host:6379/0) to run a worker"
        )
    app = jobs.celery_app(settings)
    app.worker_main(
        [
            "worker",
            f"--concurrency={concurrency}",
            f"--loglevel={loglevel}",
            f"--queues={settings.jobs_queue}",
            "--without-gossip",
            "--without-mingle",
        ]
    )
