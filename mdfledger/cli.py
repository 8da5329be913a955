"""The `mdfledger` command: Flask's CLI group over create_app, plus the project's commands.

Commands are thin: parse, call one service, commit, print.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import AppGroup, FlaskGroup, with_appcontext
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.serving import run_simple

from mdfledger import auth, claims, demo, integrity, jobs, ledger, logs, migrate, programs
from mdfledger.actor import Actor
from mdfledger.audit.cli import audit_group
from mdfledger.auth import Role
from mdfledger.csvfile import parse_date
from mdfledger.db import get_read_session, get_session, session_factory
from mdfledger.engagement.cli import events_group
from mdfledger.engagement.signals_cli import engagement_group
from mdfledger.errors import DomainError
from mdfledger.exports.cli import export_group
from mdfledger.money import format_amount, parse_amount, validate_currency
from mdfledger.payouts.cli import payouts_group, reconcile_group
from mdfledger.verification.cli import ocr_invoice, verification_group, worker

_CLI_ACTOR = Actor.system("cli")


@contextmanager
def _one_line_errors() -> Iterator[None]:
    """The errors users can cause become a one-line message and exit status 1."""
    try:
        yield
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    except SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc
        raise click.ClickException(
            f"database error: {str(cause).splitlines()[0]} (is MDFLEDGER_DATABASE_URL right,"
            " and the database migrated with `mdfledger db upgrade`?)"
        ) from exc


class _Command(click.Command):
    def invoke(self, ctx: click.Context) -> object:
        with _one_line_errors():
            return super().invoke(ctx)


class _Group(AppGroup):
    """A command group whose commands run in the app context and report errors in one line."""

    command_class = _Command


def _database_url() -> str:
    return current_app.config["MDFLEDGER"].database_url


@click.group("db", cls=_Group)
def db_group() -> None:
    """Database schema (Alembic migrations)."""


@db_group.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Migrate the database to REVISION (default: the latest)."""
    migrate.upgrade(_database_url(), revision)
    click.echo(f"database at {revision}")


@db_group.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Migrate the database back to REVISION ('base' empties it)."""
    migrate.downgrade(_database_url(), revision)
    click.echo(f"database at {revision}")


@db_group.command("check")
def db_check() -> None:
    """Fail when the models and the migrated schema differ."""
    diff = migrate.schema_diff(_database_url())
    if diff:
        for item in diff:
            click.echo(f"differs: {item}", err=True)
        sys.exit(1)
    click.echo("models and migrations agree")


@click.command("verify-ledger", cls=_Command)
@with_appcontext
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--report", "full", is_flag=True,
    help="The integrity report auditors keep: chain heads, counts, totals, recomputation.",
)  # fmt: skip
def verify_ledger_command(as_json: bool, full: bool) -> None:
    """Recompute every balance from the journal, check the hash chain; exit 1 on a discrepancy."""
    if full:
        found = integrity.integrity_report(get_read_session())
        if as_json:
            click.echo(json.dumps(found.as_dict(), indent=2))
        else:
            click.echo("\n".join(integrity.report_lines(found)))
        sys.exit(0 if found.ok else 1)
    report = ledger.verify_ledger(get_read_session())
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        click.echo(f"transfers: {report.transfers}  accounts: {report.accounts}")
        click.echo(f"chain head: {report.head_id} {report.head_hash}")
        for currency, b in sorted(report.totals.items()):
            click.echo(
                f"{currency}: debits posted {b.debits_posted} = credits posted {b.credits_posted};"
                f" pending {b.debits_pending} = {b.credits_pending}"
            )
    if not report.ok:
        for problem in report.problems:
            click.echo(f"DISCREPANCY: {problem}", err=True)
        sys.exit(1)
    if not as_json:
        click.echo("ledger verified: balances recomputed, chain intact")


@click.group("ledger", cls=_Group)
def ledger_group() -> None:
    """Ledger maintenance."""


@ledger_group.command("expire-pending")
@click.option("--batch-size", default=1000, show_default=True, type=click.IntRange(1, 10000))
def expire_pending(batch_size: int) -> None:
    """Expire pending transfers whose deadline has passed (run it from a scheduler)."""
    # No --now: the sweep's time becomes the transfers' created_at, which must be the clock's.
    total = jobs.expire_pending_transfers(session_factory(), batch_size=batch_size)
    click.echo(f"expired {total} pending transfer(s)")


@click.group("users", cls=_Group)
def users_group() -> None:
    """People who sign in: create and disable them."""


@users_group.command("create")
@click.option("--email", required=True)
@click.option("--name", required=True)
@click.option("--role", required=True, type=click.Choice([r.value for r in Role]))
@click.option(
    "--partner", "partner_code", help="The partner organisation (code) of a partner user."
)
@click.password_option(help="Asked for when not given (at least 12 characters).")
def users_create(email: str, name: str, role: str, partner_code: str | None, password: str) -> None:
    """Create a user who signs in with e-mail and password."""
    session = get_session()
    partner_id = None
    if partner_code is not None:
        partner_id = programs.partner_by_code(session, _CLI_ACTOR, partner_code).id
    user = auth.create_user(
        session, _CLI_ACTOR, email=email, name=name, role=role, password=password,
        partner_id=partner_id,
    )  # fmt: skip
    session.commit()
    click.echo(f"created {user.role} user {user.email} (id {user.id})")


@users_group.command("disable")
@click.argument("email")
def users_disable(email: str) -> None:
    """Stop a user from signing in, and revoke their API tokens."""
    session = get_session()
    user = auth.disable_user(session, _CLI_ACTOR, auth.user_by_email(session, email).id)
    session.commit()
    click.echo(f"disabled {user.email}")


@users_group.command("limit")
@click.argument("email")
@click.argument("currency")
@click.argument("amount")
def users_limit(email: str, currency: str, amount: str) -> None:
    """Set the most the finance user with EMAIL may approve on one claim in CURRENCY, e.g.
    `users limit fin@example.com USD 5000.00`; AMOUNT `none` removes the limit."""
    session = get_session()
    user = auth.user_by_email(session, email)
    currency = validate_currency(currency.upper())
    limit = None if amount.strip().lower() == "none" else parse_amount(amount, currency)
    claims.set_approval_limit(session, _CLI_ACTOR, user.id, currency, limit)
    session.commit()
    shown = "no limit" if limit is None else f"{format_amount(limit, currency)} {currency}"
    click.echo(f"{user.email} may approve up to {shown} per claim")


@click.group("tokens", cls=_Group)
def tokens_group() -> None:
    """API tokens for integrations: issue (shown once), list, revoke."""


@tokens_group.command("issue")
@click.argument("email")
@click.option("--name", required=True, help="What the token is for, e.g. 'CRM sync'.")
@click.option(
    "--role",
    type=click.Choice([r.value for r in Role]),
    help="A role no stronger than the user's own (default: the user's).",
)
def tokens_issue(email: str, name: str, role: str | None) -> None:
    """Issue an API token for the user with EMAIL; the secret is printed only now."""
    session = get_session()
    issued = auth.issue_token(
        session, _CLI_ACTOR, auth.user_by_email(session, email).id, name=name, role=role
    )
    session.commit()
    click.echo(f"token {issued.token.id} ({issued.token.role}) for {email}; keep it secret:")
    click.echo(issued.secret)


@tokens_group.command("list")
@click.argument("email")
def tokens_list(email: str) -> None:
    """A user's tokens: id, prefix, role, name, last used, revoked."""
    session = get_read_session()
    user = auth.user_by_email(session, email)
    for token in auth.tokens_of(session, _CLI_ACTOR, user.id):
        used = f"{token.last_used_at:%Y-%m-%d %H:%M}" if token.last_used_at else "never"
        state = f"revoked {token.revoked_at:%Y-%m-%d}" if token.revoked_at else "live"
        click.echo(f"{token.id}\t{token.prefix}…\t{token.role}\t{token.name}\tused {used}\t{state}")


@tokens_group.command("revoke")
@click.argument("token_id", type=int)
def tokens_revoke(token_id: int) -> None:
    """Revoke a token at once; integrations using it get 401."""
    session = get_session()
    token = auth.revoke_token(session, _CLI_ACTOR, token_id)
    session.commit()
    click.echo(f"revoked token {token.id} ({token.name})")


@click.group("bench")
def bench_group() -> None:
    """Benchmarks (figures in docs/benchmarks.md)."""


def _bench_databases(sqlite: bool, postgres_url: str | None) -> list[Any]:
    """Fresh, migrated databases to bench (context managers giving their URLs)."""
    from mdfledger.ledger import bench

    databases = []
    if sqlite:
        databases.append(bench.sqlite_database())
    if postgres_url:
        databases.append(bench.postgres_database(postgres_url))
    if not databases:
        raise click.UsageError("nothing to bench: give --postgres-url or leave --sqlite on")
    return databases


@bench_group.command("ledger")
@click.option("--sqlite/--no-sqlite", default=True, show_default=True, help="Bench a temp file.")
@click.option(
    "--postgres-url",
    envvar="MDFLEDGER_BENCH_POSTGRES_URL",
    help="Admin URL of a PostgreSQL server; the bench creates and drops a database"
    " mdfledger_bench there. Default: $MDFLEDGER_BENCH_POSTGRES_URL.",
)
@click.option(
    "--transfers",
    default=1_000_000,
    show_default=True,
    type=click.IntRange(3000),
    help="Ledger size for the read and export benchmarks.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def bench_ledger(sqlite: bool, postgres_url: str | None, transfers: int, as_json: bool) -> None:
    """Write throughput, balance and as-of read latency, statement export: SQLite, PostgreSQL."""
    import time

    from mdfledger.ledger import bench

    databases = _bench_databases(sqlite, postgres_url)
    started = time.perf_counter()
    results = []
    for database in databases:
        with database as url:
            result = bench.run(url, transfers=transfers, progress=lambda m: click.echo(m, err=True))
        results.append(result)
        if not as_json:
            click.echo(bench.format_result(result))
    elapsed = time.perf_counter() - started
    if as_json:
        figures = {"results": [r.as_dict() for r in results], "elapsed_s": elapsed}
        click.echo(json.dumps(figures, indent=2, default=str))
    else:
        click.echo(f"total elapsed {elapsed:.1f} s")


@bench_group.command("queue")
@click.option("--sqlite/--no-sqlite", default=True, show_default=True, help="Bench a temp file.")
@click.option(
    "--postgres-url",
    "--database-url",
    "postgres_url",
    envvar="MDFLEDGER_BENCH_POSTGRES_URL",
    help="Admin URL of a PostgreSQL server; the bench creates and drops a database"
    " mdfledger_bench_queue there. Default: $MDFLEDGER_BENCH_POSTGRES_URL.",
)
@click.option(
    "--claims",
    "claims_count",
    default=100_000,
    show_default=True,
    type=click.IntRange(100),
    help="How many claims to build.",
)
@click.option("--partners", default=250, show_default=True, type=click.IntRange(1))
@click.option(
    "--repeat", default=30, show_default=True, type=click.IntRange(1), help="Runs of each query."
)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def bench_queue(
    sqlite: bool,
    postgres_url: str | None,
    claims_count: int,
    partners: int,
    repeat: int,
    as_json: bool,
) -> None:
    """Finance's claims queue: each filter, sort and page, and the COUNT for paging, timed."""
    import time
    from contextlib import AbstractContextManager

    from mdfledger.claims import bench as queue_bench
    from mdfledger.ledger import bench

    databases: list[AbstractContextManager[str]] = []
    if sqlite:
        databases.append(bench.sqlite_database())
    if postgres_url:
        databases.append(bench.postgres_database(postgres_url, queue_bench.POSTGRES_DATABASE))
    if not databases:
        raise click.UsageError("nothing to bench: give --postgres-url or leave --sqlite on")
    started = time.perf_counter()
    results = []
    for database in databases:
        with database as url:
            result = queue_bench.run(
                url, claims_count=claims_count, partners=partners, repeat=repeat,
                progress=lambda m: click.echo(m, err=True),
            )  # fmt: skip
        results.append(result)
        if not as_json:
            click.echo(queue_bench.format_result(result))
    elapsed = time.perf_counter() - started
    if as_json:
        figures = {"results": [r.as_dict() for r in results], "elapsed_s": elapsed}
        click.echo(json.dumps(figures, indent=2, default=str))
    else:
        click.echo(f"total elapsed {elapsed:.1f} s")


@bench_group.command("ocr")
@click.option("--count", default=60, show_default=True, type=click.IntRange(1, 1000))
@click.option("--seed", default=7, show_default=True, type=int)
def bench_ocr(count: int, seed: int) -> None:
    """Invoice OCR on the generated invoice set: seconds per page, accuracy per field."""
    from mdfledger.verification import invoice_samples, ocr_bench

    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    click.echo(f"generating {count} invoices (seed {seed})...", err=True)
    report = ocr_bench.measure(invoice_samples.generate(count, seed))
    for line in report.lines():
        click.echo(line)


@bench_group.command("urls")
@click.option("--count", default=100, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--threads", default=8, show_default=True, type=click.IntRange(1, 64))
def bench_urls(count: int, threads: int) -> None:
    """Landing-page checks against a local server: URLs checked per second."""
    from mdfledger.verification import url_bench

    for line in url_bench.measure(count, threads=threads):
        click.echo(line)


@bench_group.command("payouts")
@click.option("--sqlite/--no-sqlite", default=True, show_default=True, help="Bench a temp file.")
@click.option(
    "--postgres-url",
    envvar="MDFLEDGER_BENCH_POSTGRES_URL",
    help="Admin URL of a PostgreSQL server; the bench creates and drops a database"
    " mdfledger_bench_payouts there. Default: $MDFLEDGER_BENCH_POSTGRES_URL.",
)
@click.option("--claims", "claims_count", default=2_000, show_default=True,
              type=click.IntRange(1), help="Approved claims the payout run pays.")  # fmt: skip
@click.option("--events", default=5_000, show_default=True, type=click.IntRange(1),
              help="Events emitted, then delivered.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def bench_payouts(
    sqlite: bool, postgres_url: str | None, claims_count: int, events: int, as_json: bool
) -> None:
    """A payout run over approved claims, the events outbox, webhook delivery to loopback."""
    from mdfledger.payouts import bench

    try:
        results = bench.run_all(
            sqlite=sqlite, postgres_url=postgres_url, claims_count=claims_count, events=events,
            progress=lambda m: click.echo(m, err=True),
        )  # fmt: skip
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in results], indent=2, default=str))
    else:
        click.echo(bench.format_results(results))


@bench_group.command("exports")
@click.option("--sqlite/--no-sqlite", default=True, show_default=True, help="Bench a temp file.")
@click.option(
    "--postgres-url",
    envvar="MDFLEDGER_BENCH_POSTGRES_URL",
    help="Admin URL of a PostgreSQL server; the bench creates and drops a database"
    " mdfledger_bench there. Default: $MDFLEDGER_BENCH_POSTGRES_URL.",
)
@click.option("--transfers", default=100_000, show_default=True, type=click.IntRange(3000),
              help="Ledger size (the budget's statement has about a fifth).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def bench_exports(sqlite: bool, postgres_url: str | None, transfers: int, as_json: bool) -> None:
    """A statement as CSV, XLSX and PDF and the journal for hledger: rows per second, size."""
    from mdfledger.exports import bench

    databases = _bench_databases(sqlite, postgres_url)
    results = []
    for database in databases:
        with database as url:
            result = bench.run(url, transfers=transfers, progress=lambda m: click.echo(m, err=True))
        results.append(result)
        if not as_json:
            click.echo(bench.format_result(result))
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in results], indent=2, default=str))


@click.group("funds", cls=_Group)
def funds_group() -> None:
    """Program funds: period-end expiry."""


@funds_group.command("expire")
def funds_expire() -> None:
    """Period end: expire reservations past their claim deadline, then forfeit unspent funds
    past their last usable day (per program policy). Safe to run hourly from a scheduler."""
    run = jobs.run_period_end(session_factory())
    click.echo(f"expired {run.reservations_expired} reservation(s)")
    click.echo(f"expired {run.requests_expired} fund request(s) not claimed by their deadline")
    click.echo(f"expired {run.claims_expired} claim(s) not submitted by their deadline")
    for fund in run.funds:
        amount = format_amount(fund.amount, fund.currency)
        click.echo(
            f"forfeited {amount} {fund.currency}: {fund.partner_code} {fund.program_code}"
            f" {fund.period_label}"
        )
    click.echo(f"forfeited {len(run.funds)} fund(s)")


@click.group("import", cls=_Group)
def import_group() -> None:
    """Bulk imports from CSV: all rows or none, with a report line by line."""


def _import(kind: str, program_code: str, path: str, period: str | None, **options: str) -> None:
    data = _read_upload(path)
    session = get_session()
    program = programs.program_by_code(session, _CLI_ACTOR, program_code)
    day = parse_date(period, "period") if period else None
    run = programs.import_allocations if kind == "allocations" else programs.import_purchases
    bar = _ProgressBar()
    try:
        report = run(
            session, _CLI_ACTOR, program.id, data, filename=os.path.basename(path), day=day,
            progress=bar, **options,
        )  # fmt: skip
    except programs.ImportRejected as rejected:
        bar.close()
        session.rollback()
        for error in rejected.report.errors:
            where = f"line {error.line}" if error.line else "file"
            column = f" [{error.column}]" if error.column else ""
            click.echo(f"{where}{column}: {error.message}", err=True)
        raise click.ClickException(rejected.message) from None
    bar.close()
    session.commit()
    currency = report.currency
    click.echo(
        f"import #{report.import_id}: {report.kind} into {report.program_code}"
        f" {report.period_label} from {report.filename}"
    )
    click.echo(
        f"rows {report.rows}, applied {report.applied}, skipped (imported before) {report.skipped},"
        f" moved {format_amount(report.moved, currency)} {currency}"
    )
    for result in report.results:
        if result.note and result.status == "applied":  # skipped rows are in the count above
            click.echo(f"line {result.line} ({result.partner}): {result.note}")


def _read_upload(path: str) -> bytes:
    from mdfledger.csvfile import MAX_BYTES

    if os.path.getsize(path) > MAX_BYTES:  # refuse before reading a huge file into memory
        size = os.path.getsize(path) / 2**20
        raise click.ClickException(f"{path} is {size:.1f} MB; the limit is {MAX_BYTES >> 20} MB")
    with open(path, "rb") as handle:
        return handle.read()


class _ProgressBar:
    """Import progress on stderr, one bar per stage; quiet when stderr is not a terminal."""

    def __init__(self) -> None:
        self.stage: str | None = None
        self.bar: Any = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not sys.stderr.isatty():
            return
        if stage != self.stage:
            self.close()
            self.stage = stage
            self.bar = click.progressbar(length=max(total, 1), label=stage, file=sys.stderr)
            self.bar.__enter__()
        self.bar.update(done - self.bar.pos)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


@import_group.command("allocations")
@click.argument("program")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--period", help="A date in the period to allocate for (default: today).")
@click.option("--reason", default="bulk allocation", show_default=True)
def import_allocations(program: str, csv_file: str, period: str | None, reason: str) -> None:
    """Allocate to partners from CSV_FILE (partner, amount[, currency, reason])."""
    _import("allocations", program, csv_file, period, reason=reason)


@import_group.command("purchases")
@click.argument("program")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--period", help="A date in the period the purchases belong to (default: today).")
def import_purchases(program: str, csv_file: str, period: str | None) -> None:
    """Accrue co-op funds on purchases in CSV_FILE (partner, reference, date, amount
    [, product_line, currency]); rows imported before are skipped."""
    _import("purchases", program, csv_file, period)


@click.command("demo", cls=_Command)
@with_appcontext
@click.option("--if-empty", is_flag=True, help="Do nothing (but say so) when data exists.")
@click.option("--reset-passwords", is_flag=True, help="Give the demo users new passwords.")
def demo_command(if_empty: bool, reset_passwords: bool) -> None:
    """Seed a demo: two programs, twenty partners, allocations, a purchase import, fund
    requests and claims in every state with proof documents, users."""
    session = get_session()
    if reset_passwords:
        users = demo.reset_passwords(session)
    elif if_empty and demo.is_seeded(session):
        click.echo("demo: the database already has data; left as it is")
        click.echo("demo: `mdfledger demo --reset-passwords` prints new passwords for its users")
        return
    else:
        book = demo.seed(session)
        users = book.users
        click.echo(f"seeded programs {', '.join(book.programs)} with {book.partners} partners")
        click.echo(f"allocated {book.allocated}; co-op accrued {book.accrued}")
        for what, counts in (("fund requests", book.requests), ("claims", book.claims)):
            shown = ", ".join(f"{n} {state.replace('_', ' ')}" for state, n in counts.items())
            click.echo(f"{what}: {shown}")
    session.commit()
    click.echo("sign in with (passwords are shown only now):")
    for user in users:
        partner = f"  ({user.partner})" if user.partner else ""
        click.echo(f"  {user.role:<8} {user.email:<32} {user.password}{partner}")


@click.command("serve", cls=_Command)
@with_appcontext
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--no-jobs", is_flag=True, help="Do not run the scheduled jobs in this process.")
def serve(host: str, port: int, no_jobs: bool) -> None:
    """Start the web app (Flask's server; use gunicorn wsgi:app in production)."""
    logs.configure()  # every line to stderr with its request id
    scheduler = None
    if not no_jobs:
        scheduler = jobs.Scheduler(session_factory(), jobs=current_app.extensions[jobs.JOBS_KEY])
    if scheduler is not None:  # the embedded default's jobs: period end, verification sweep
        scheduler.start()
    try:
        run_simple(
            host, port, current_app._get_current_object(), threaded=True,
            request_handler=logs.RequestHandler,
        )  # fmt: skip
    finally:
        if scheduler is not None:
            scheduler.stop()


@click.command("upkeep", cls=_Command)
@with_appcontext
@click.option(
    "--signals/--no-signals", default=True, help="Also work out partner activity signals."
)
def upkeep_command(signals: bool) -> None:
    """Scheduled payout runs, payout recovery and retries, event deliveries that are due, and
    partner activity signals. Run it every minute from cron (--no-signals) and once a day with
    signals; the embedded default's scheduler does this in `mdfledger serve`."""
    ctx, _runner = current_app.extensions[jobs.JOBS_KEY]
    done = jobs.upkeep(ctx, signals=signals)
    click.echo(f"payouts: {done.payouts_created} created, {done.payouts_recovered} recovered")
    click.echo(f"events: {done.events_delivered} delivered")
    if done.signals_turned_on is not None:
        click.echo(f"signals: {done.signals_turned_on} turned on")


def register_commands(app: Flask) -> None:
    commands = (
        db_group, verify_ledger_command, ledger_group, users_group, tokens_group, funds_group,
        import_group, audit_group, verification_group, ocr_invoice, worker,
        payouts_group, reconcile_group, events_group, engagement_group, upkeep_command,
        demo_command, bench_group, serve,
        export_group,
    )  # fmt: skip
    for command in commands:
        app.cli.add_command(command)


def _create_app() -> Flask:
    from mdfledger import create_app

    return create_app()


class _Cli(FlaskGroup):
    """The top-level group: the same one-line errors for anything raised outside a command."""

    def invoke(self, ctx: click.Context) -> object:
        with _one_line_errors():
            return super().invoke(ctx)


cli = _Cli(create_app=_create_app, help="mdfledger: the MDF and co-op funds ledger.")


def main() -> None:
    cli(prog_name="mdfledger")
