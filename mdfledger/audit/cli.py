"""`mdfledger audit verify`: recompute the audit log's hash chain; exit 1 naming the first bad
entry."""

from __future__ import annotations

import json
import sys

import click
from flask.cli import AppGroup

from mdfledger.audit.service import verify_audit
from mdfledger.db import get_read_session

audit_group = AppGroup("audit", help="The audit log.")


@audit_group.command("verify")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def verify_command(as_json: bool) -> None:
    """Check every entry's hash against its fields and the chain, and the chain head."""
    report = verify_audit(get_read_session())
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        click.echo(f"audit entries: {report.entries}")
        click.echo(f"chain head: {report.head_id} {report.head_hash}")
    if not report.ok:
        for problem in report.problems:
            click.echo(f"DISCREPANCY: {problem}", err=True)
        sys.exit(1)
    if not as_json:
        click.echo("audit log verified: chain intact")
