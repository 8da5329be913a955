"""The integrity page: the report auditors keep (chain heads, counts, totals, recomputation),
on screen and as a text file to file away and compare with a later one."""

from __future__ import annotations

from typing import Any

from flask import Response, render_template

from mdfledger import integrity
from mdfledger.auth import Role
from mdfledger.auth.access import require_roles
from mdfledger.db import get_read_session
from mdfledger.web import bp

READERS = (Role.AUDITOR, Role.ADMIN, Role.FINANCE)


@bp.get("/integrity")
@require_roles(*READERS)
def integrity_page() -> Any:
    report = integrity.integrity_report(get_read_session())
    return render_template("integrity.html", report=report)


@bp.get("/integrity.txt")
@require_roles(*READERS)
def integrity_text() -> Response:
    report = integrity.integrity_report(get_read_session())
    stamp = report.generated_at.strftime("%Y%m%dT%H%M%SZ")
    return Response(
        "\n".join(integrity.report_lines(report)) + "\n",
        mimetype="text/plain",
        headers={"Content-Disposition": f'attachment; filename="integrity-{stamp}.txt"'},
    )
