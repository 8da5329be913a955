"""The queue benchmark stays runnable and measures the right thing: a tiny run returns a
report of the expected shape, and every query returns the rows the page should show (checked
against the same filters and sorts worked out in Python). Not timing. SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mdfledger import create_app
from mdfledger.claims import WAITING, Claim, bench
from mdfledger.claims.models import WAITING_SQL
from mdfledger.web.claims import PER_PAGE

SORT_KEYS = {
    "oldest": lambda c: (c.submitted_at, c.id),
    "newest": lambda c: (c.submitted_at, c.id),  # reversed below
    "amount_desc": lambda c: (-c.claimed_amount, c.id),
    "amount_asc": lambda c: (c.claimed_amount, c.id),
}


def _expected(every: list[Claim], query: bench.Query, book: bench.Book) -> list[int]:
    """The ids the page should show, worked out without SQL."""
    wanted = query.wanted
    if wanted is None:  # the partner's own claims, newest first
        rows = [c for c in every if c.partner_id == book.busiest_partner]
        rows.sort(key=lambda c: (c.created_at, c.id), reverse=True)
    else:
        cutoff = None
        if wanted.older_than_days is not None:
            cutoff = bench.NOW - timedelta(days=wanted.older_than_days)
        rows = [
            c
            for c in every
            if c.state in wanted.states
            and (wanted.program_id is None or c.program_id == wanted.program_id)
            and (wanted.partner_id is None or c.partner_id == wanted.partner_id)
            and (wanted.flagged is None or c.flagged == wanted.flagged)
            and (wanted.min_amount is None or c.claimed_amount >= wanted.min_amount)
            and (wanted.max_amount is None or c.claimed_amount <= wanted.max_amount)
            and (cutoff is None or c.submitted_at <= cutoff)
        ]
        rows.sort(key=SORT_KEYS[wanted.sort], reverse=wanted.sort == "newest")
    ids = [c.id for c in rows]
    if query.count:
        return ids
    start = (query.page - 1) * bench.PAGE
    return ids[start : start + bench.PAGE]


def test_the_queries_return_what_the_page_should_show(
    session_factory: sessionmaker[Session],
) -> None:
    assert bench.PAGE == PER_PAGE  # the bench pages as the claims page does
    book = bench.build(session_factory, claims_count=600, partners=30)
    assert book.claims == 600 and len(book.partners) == 30 and len(book.programs) == 3
    with session_factory() as session:
        every = list(session.scalars(select(Claim)))
        assert len(every) == 600
        states = {c.state for c in every}
        assert {"paid", "approved", "in_review", "rejected", "draft"} <= states
        waiting = [c for c in every if c.state in {s.value for s in WAITING}]
        assert 0.04 < len(waiting) / len(every) < 0.2  # about a tenth waits for finance
        assert any(c.flagged for c in waiting)
        queries = bench.queries(book)
        assert len(queries) == 15
        for query in queries:
            got = bench.fetch(session, query)
            expected = _expected(every, query, book)
            if query.count:
                assert got == len(expected), query.label
            else:
                assert isinstance(got, list)
                assert [c.id for c in got] == expected, query.label
        # Filters that narrow the queue do narrow it, and the default page is full.
        assert len(bench.fetch(session, queries[0])) == bench.PAGE  # type: ignore[arg-type]
        assert bench.fetch(session, queries[11]) < bench.fetch(session, queries[10])  # type: ignore[operator]


def test_a_tiny_run_reports_every_query(database_url: str, backend: str) -> None:
    messages: list[str] = []
    result = bench.run(
        database_url, claims_count=300, partners=20, repeat=3, progress=messages.append
    )
    assert result.backend == backend and result.server
    assert (result.claims, result.partners, result.programs) == (300, 20, 3)
    assert 0 < result.waiting < 300 and result.flagged_waiting <= result.waiting
    labels = [q.label for q in bench.queries(bench.Book([], [], {}))]
    assert [t.query for t in result.timings] == labels
    for timing in result.timings:
        assert timing.runs == 3
        assert 0 < timing.median_ms <= timing.p95_ms
        assert timing.kind in ("page", "count")
        if timing.kind == "page":
            assert 0 <= timing.rows <= bench.PAGE
    assert result.timings[10].rows == result.waiting  # the COUNT of the default queue
    assert messages and any("300/300" in m for m in messages)
    table = bench.format_result(result)
    assert "waiting, oldest first" in table and "target < 50 ms" in table
    figures = result.as_dict()
    assert figures["target_ms"] == bench.TARGET_MS and len(figures["timings"]) == 15
    json.dumps(figures)  # the CLI's --json prints it


def test_the_command_is_wired(tmp_path: Path) -> None:
    app = create_app({"env": "test", "instance_path": tmp_path})
    runner = app.test_cli_runner()
    result = runner.invoke(args=["bench", "queue", "--help"])
    assert result.exit_code == 0, result.output
    assert "--postgres-url" in result.output and "--claims" in result.output
    result = runner.invoke(args=["bench", "queue", "--no-sqlite", "--postgres-url", ""])
    assert result.exit_code == 2 and "nothing to bench" in result.output
    result = runner.invoke(
        args=["bench", "queue", "--claims", "150", "--partners", "5", "--repeat", "1", "--json"]
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["results"][0]["backend"] == "sqlite"
    assert figures["results"][0]["claims"] == 150


def test_the_queues_partial_indexes_cover_exactly_the_waiting_states() -> None:
    """The partial indexes name the waiting states in SQL; the queue's WAITING must agree, or
    PostgreSQL silently stops using them."""
    named = set(re.findall(r"'([a-z_]+)'", WAITING_SQL))
    assert named == {state.value for state in WAITING}
    for index in Claim.__table__.indexes:
        where = index.dialect_options["postgresql"]["where"]
        if where is not None:
            assert str(where) == WAITING_SQL, index.name
            assert str(index.dialect_options["sqlite"]["where"]) == WAITING_SQL
