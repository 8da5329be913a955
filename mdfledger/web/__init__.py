"""Server-rendered pages. For now: the front page and a health check."""

from __future__ import annotations

from flask import Blueprint, jsonify, render_template
from sqlalchemy import func, select, text

from mdfledger.db import get_read_session
from mdfledger.ledger.models import Account, ChainHead

bp = Blueprint("web", __name__, template_folder="templates")


def _ledger_summary() -> dict[str, object]:
    session = get_read_session()
    head = session.execute(select(ChainHead.last_transfer_id, ChainHead.last_hash)).one()
    accounts = session.scalar(select(func.count()).select_from(Account))
    return {"transfers": head.last_transfer_id, "head_hash": head.last_hash, "accounts": accounts}


@bp.get("/")
def index() -> str:
    return render_template("index.html", ledger=_ledger_summary())


@bp.get("/healthz")
def healthz() -> tuple[object, int]:
    get_read_session().execute(text("SELECT 1"))
    return jsonify(status="ok", ledger=_ledger_summary()), 200
