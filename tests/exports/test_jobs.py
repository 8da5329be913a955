"""Background export jobs: asked for, run as the actor who asked, progress committed as rows go
out, the file stored (local directory or S3 on moto's server), downloaded, expired. Failures,
a second worker, a worker that died, and who may see a job. On SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from mdfledger import audit, auth, background, exports, programs
from mdfledger.actor import Actor
from mdfledger.audit import AuditEntry
from mdfledger.db import make_session_factory
from mdfledger.errors import DomainError, Forbidden, NotFound, ValidationError
from mdfledger.exports import ExportJob, job_rules, kinds
from mdfledger.exports.files import LocalFiles, S3Files, files_from_settings
from mdfledger.exports.job_rules import ExportState
from tests.conftest import skip_or_fail
from tests.test_storage import moto_server, s3_client  # noqa: F401  (fixtures)

ADMIN = Actor("user", "admin-1", "admin")
T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


@dataclass
class Book:
    sessions: sessionmaker[Session]
    reads: sessionmaker[Session]
    files: LocalFiles
    root: Path
    auditor: Actor
    finance: Actor
    partner: Actor  # ACME's user
    bolt: Actor  # BOLT's user

    def run(self, job_id: int, **kwargs: Any) -> str | None:
        return exports.run_export(self.sessions, self.reads, self.files, job_id, **kwargs)

    def job(self, job_id: int) -> ExportJob:
        with self.sessions() as session:
            found = session.get(ExportJob, job_id)
            assert found is not None
            return found

    def ask(self, actor: Actor, kind: str = "journal", fmt: str = "hledger", **params: Any) -> int:
        with self.sessions() as session:
            job = exports.request_export(session, actor, kind, fmt, params)
            assert background.pending(session) == [("run_export", {"job_id": job.id})]
            session.commit()
            return job.id

    def stored(self) -> list[Path]:
        return sorted(p for p in self.root.rglob("*") if p.is_file())

    def count(self, model: type) -> int:
        with self.sessions() as session:
            return session.scalar(select(func.count()).select_from(model)) or 0


def _user(session: Session, role: str, email: str, partner_id: int | None = None) -> Actor:
    if partner_id is None:
        user = auth.create_user(
            session, ADMIN, email=email, name=role.title(), role=role, password="x" * 12
        )
    else:
        user = programs.add_partner_user(
            session, ADMIN, partner_id, email=email, name="P", password="x" * 12
        )
    return Actor("user", str(user.id), role, partner_id)


@pytest.fixture
def book(engine: Any, session_factory: sessionmaker[Session], tmp_path: Path) -> Book:
    actor = Actor("user", "finance-1", "finance")
    with session_factory() as session:
        mdf = programs.create_program(
            session, actor, code="MDF26", name="MDF 2026", kind="mdf", currency="USD"
        )
        acme, bolt = (
            programs.create_partner(
                session,
                actor,
                code=code,
                name=code.title(),
                type="reseller",
                tier="gold",
                region="NA",
            )
            for code in ("ACME", "BOLT")
        )
        programs.fund_budget(session, actor, mdf.id, 1_000_000, reason="budget")
        for n in range(5):
            programs.allocate(session, actor, mdf.id, acme.id, 1_000 + n, reason=f"a{n}")
        programs.allocate(session, actor, mdf.id, bolt.id, 2_000, reason="b")
        auditor = _user(session, "auditor", "aud@example.com")
        finance = _user(session, "finance", "fin@example.com")
        partner = _user(session, "partner", "ada@acme.example", acme.id)
        other = _user(session, "partner", "bo@bolt.example", bolt.id)
        session.commit()
    root = tmp_path / "exports"
    return Book(
        session_factory, make_session_factory(engine, read_only=True), LocalFiles(root), root,
        auditor, finance, partner, other,
    )  # fmt: skip


def direct_journal(book: Book, fmt: str = "hledger") -> bytes:
    out = io.StringIO()
    with book.reads() as session:
        exports.export_journal(session, out, fmt=fmt)
    return out.getvalue().encode()


def file_bytes(files: Any, job: ExportJob) -> bytes:
    assert job.file_key is not None
    return b"".join(files.chunks(job.file_key))


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Wraps the journal's writer: records each progress call in `seen[1:]`, and runs the hook
    put in `seen[0]` once, at the next progress call (while that job is running)."""
    journal = kinds.kind("journal")
    seen: list[Any] = [None]

    def write(session: Session, actor: Actor, params: Any, fmt: str, out: BinaryIO, progress):  # type: ignore[no-untyped-def]
        def observed(done: int, total: int | None) -> None:
            seen.append((done, total))
            if seen[0] is not None:
                hook, seen[0] = seen[0], None
                hook()
            progress(done, total)

        journal.write(session, actor, params, fmt, out, observed)

    monkeypatch.setitem(kinds._KINDS, "journal", dataclasses.replace(journal, write=write))
    yield seen


# --- the happy path ------------------------------------------------------------------------------


def test_a_job_goes_queued_running_ready_with_progress_and_the_direct_exports_bytes(
    book: Book, spy: list[Any]
) -> None:
    job_id = book.ask(book.auditor, "journal", "beancount")
    queued = book.job(job_id)
    assert (queued.state, queued.rows_done, queued.rows_total) == ("queued", 0, 7)
    assert (queued.requested_by, queued.role, queued.filename) == (
        book.auditor.label, "auditor", "journal-all.beancount",
    )  # fmt: skip
    states: list[tuple[str, int]] = []
    spy[0] = lambda: states.append((book.job(job_id).state, book.job(job_id).rows_done))

    assert book.run(job_id, every=3) == "ready"

    assert states == [("running", 0)]  # committed at the first report
    assert spy[1] == (0, 7) and spy[-1] == (7, 7)  # the callback saw the start and the end
    job = book.job(job_id)
    assert (job.state, job.rows_done, job.rows_total, job.attempts) == ("ready", 7, 7, 1)
    content = file_bytes(book.files, job)
    assert content == direct_journal(book, "beancount")
    assert (job.file_size, len(book.stored())) == (len(content), 1)
    assert job.expires_at == job.finished_at + timedelta(days=7)
    assert job.lease is None and job.leased_until is None
    with book.sessions() as session:
        actions = session.scalars(
            select(AuditEntry.action).where(AuditEntry.object_type == "export")
        ).all()
        assert actions == ["export.request", "export.ready"]
        # Downloading is recorded too; running it again changes nothing.
        assert exports.download(session, book.auditor, job_id).file_key == job.file_key
        session.commit()
    assert book.run(job_id) is None
    assert book.job(job_id).file_key == job.file_key and len(book.stored()) == 1


def test_progress_is_committed_at_the_start_and_every_so_many_rows(
    book: Book, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = book.ask(book.auditor)
    journal = kinds.kind("journal")
    committed: list[tuple[int, int]] = []

    def write(session: Session, actor: Actor, params: Any, fmt: str, out: BinaryIO, progress):  # type: ignore[no-untyped-def]
        def observed(done: int, total: int | None) -> None:
            progress(done, total)
            committed.append((done, book.job(job_id).rows_done))

        journal.write(session, actor, params, fmt, out, observed)

    monkeypatch.setitem(kinds._KINDS, "journal", dataclasses.replace(journal, write=write))
    assert book.run(job_id, every=3) == "ready"
    # (rows written, rows the job's page shows): the start at once, then every third row.
    assert committed == [(0, 0), (1, 0), (2, 0), (3, 3), (4, 3), (5, 3), (6, 6), (7, 6)]
    assert book.job(job_id).rows_done == 7  # and the end


# --- failures ------------------------------------------------------------------------------------


def _raising(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> None:
    journal = kinds.kind("journal")

    def write(session: Session, actor: Actor, params: Any, fmt: str, out: BinaryIO, progress):  # type: ignore[no-untyped-def]
        progress(0, 7)
        out.write(b"half a file")
        raise error

    monkeypatch.setitem(kinds._KINDS, "journal", dataclasses.replace(journal, write=write))


def test_a_writer_that_refuses_fails_the_job_with_its_message_and_no_file(
    book: Book, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = book.ask(book.finance)
    _raising(monkeypatch, ValidationError("the ledger is being rebuilt: try again at noon"))
    assert book.run(job_id) == "failed"
    job = book.job(job_id)
    assert (job.state, job.error) == ("failed", "the ledger is being rebuilt: try again at noon")
    assert job.file_key is None and book.stored() == []
    with book.sessions() as session:
        with pytest.raises(exports.ExportFailed, match="failed: the ledger is being rebuilt"):
            exports.download(session, book.finance, job_id)
        entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "export.fail")).one()
        assert entry.summary.endswith("failed: the ledger is being rebuilt: try again at noon")


def test_an_unexpected_error_fails_the_job_saying_it_was_logged(
    book: Book, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = book.ask(book.finance)
    _raising(monkeypatch, RuntimeError("connection to 10.0.0.7 lost"))
    assert book.run(job_id) == "failed"
    error = book.job(job_id).error
    assert error == (
        "the export could not be written (RuntimeError); the error was logged: ask for it"
        " again, or tell an admin if it fails again"
    )
    assert book.stored() == []


def test_a_job_whose_user_lost_the_role_fails_before_writing(book: Book, spy: list[Any]) -> None:
    job_id = book.ask(book.finance)
    with book.sessions() as session:
        auth.disable_user(session, ADMIN, int(book.finance.id))
        session.commit()
    assert book.run(job_id) == "failed"
    assert book.job(job_id).error == "the user who asked for this export can no longer sign in"
    assert spy[1:] == [] and book.stored() == []


def test_a_token_with_a_lesser_role_than_its_users_runs_its_job_with_that_role(
    book: Book,
) -> None:
    """auth.rules.may_delegate: a finance user may issue an auditor token; its jobs run."""
    as_auditor = Actor("user", book.finance.id, "auditor")
    job_id = book.ask(as_auditor)
    assert book.run(job_id) == "ready"
    as_admin = Actor("user", book.finance.id, "admin")  # more than the user has: refused
    refused = book.ask(as_admin)
    assert book.run(refused) == "failed"
    assert book.job(refused).error == "the role of the user who asked for this export has changed"


# --- two workers, a worker that died -------------------------------------------------------------


def test_a_second_worker_cannot_take_a_leased_job_but_takes_over_a_lapsed_one(
    book: Book, spy: list[Any]
) -> None:
    job_id = book.ask(book.auditor)
    second: list[str | None] = []
    # While the first worker writes (its lease runs to T0 + 5 min), another tries at T0 and
    # gets nothing.
    spy[0] = lambda: second.append(book.run(job_id, now=T0))
    assert book.run(job_id, now=T0) == "ready"
    assert second == [None]
    assert book.job(job_id).attempts == 1

    job_id = book.ask(book.auditor)
    later = T0 + job_rules.LEASE + timedelta(seconds=1)
    # This time the first worker stalls past its lease: the second takes the job over and
    # finishes it; the first notices at its next report and stops, storing nothing.
    spy[0] = lambda: second.append(book.run(job_id, now=later))
    assert book.run(job_id, now=T0, every=1) is None
    assert second[-1] == "ready"
    job = book.job(job_id)
    assert (job.state, job.attempts) == ("ready", 2)
    assert file_bytes(book.files, job) == direct_journal(book)
    assert len(book.stored()) == 2  # one per job


class WorkerKilled(BaseException):
    """What a killed worker looks like to the job: it never gets to record anything."""


def test_upkeep_reruns_a_job_whose_worker_died_and_gives_up_after_three_runs(
    book: Book, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = book.ask(book.auditor)
    journal = kinds.kind("journal")
    _raising(monkeypatch, WorkerKilled())
    with pytest.raises(WorkerKilled):
        book.run(job_id, now=T0)
    assert book.job(job_id).state == "running"
    # Before the lease lapses upkeep leaves it alone; after, it runs it again.
    assert exports.export_upkeep(book.sessions, book.reads, book.files, now=T0).rerun == 0
    monkeypatch.setitem(kinds._KINDS, "journal", journal)
    done = exports.export_upkeep(
        book.sessions, book.reads, book.files, now=T0 + timedelta(minutes=6)
    )
    assert done == exports.ExportUpkeep(expired=0, rerun=1)
    assert (book.job(job_id).state, book.job(job_id).attempts) == ("ready", 2)

    stuck = book.ask(book.auditor)
    _raising(monkeypatch, WorkerKilled())
    when = T0
    for _ in range(job_rules.MAX_ATTEMPTS):
        with pytest.raises(WorkerKilled):
            book.run(stuck, now=when)
        when += timedelta(minutes=6)
    assert exports.export_upkeep(book.sessions, book.reads, book.files, now=when).rerun == 0
    job = book.job(stuck)
    assert (job.state, job.attempts) == ("failed", 3)
    assert job.error == (
        "the export stopped 3 times without finishing: ask for it again, perhaps for less at a time"
    )


def test_upkeep_runs_a_job_whose_start_was_lost(book: Book) -> None:
    job_id = book.ask(book.auditor)  # committed, but nobody ran it (a broker that was down)
    created = book.job(job_id).created_at
    soon = exports.export_upkeep(book.sessions, book.reads, book.files, now=created)
    assert soon.rerun == 0 and book.job(job_id).state == "queued"
    late = exports.export_upkeep(
        book.sessions, book.reads, book.files, now=created + timedelta(minutes=6)
    )
    assert late.rerun == 1 and book.job(job_id).state == "ready"


# --- expiry --------------------------------------------------------------------------------------


def test_upkeep_deletes_files_past_their_time_and_downloads_then_say_gone(book: Book) -> None:
    job_id = book.ask(book.auditor)
    assert book.run(job_id, now=T0) == "ready"
    assert len(book.stored()) == 1
    kept = exports.export_upkeep(book.sessions, book.reads, book.files, now=T0 + timedelta(days=6))
    assert kept.expired == 0 and len(book.stored()) == 1
    gone = exports.export_upkeep(book.sessions, book.reads, book.files, now=T0 + timedelta(days=7))
    assert gone.expired == 1
    assert book.stored() == [] and list(book.root.iterdir()) == []
    job = book.job(job_id)
    assert (job.state, job.file_key) == ("expired", None)
    with book.sessions() as session, pytest.raises(exports.ExportExpired) as raised:
        exports.download(session, book.auditor, job_id)
    assert raised.value.http_status == 410
    assert raised.value.message == (
        f"export {job_id} expired on 2026-05-11 09:00 UTC and its file was deleted: ask for it"
        " again"
    )
    again = exports.export_upkeep(book.sessions, book.reads, book.files, now=T0 + timedelta(days=8))
    assert again == exports.ExportUpkeep(expired=0, rerun=0)


def test_a_download_before_the_file_is_ready_says_how_far_it_got(book: Book) -> None:
    job_id = book.ask(book.auditor)
    with book.sessions() as session, pytest.raises(exports.ExportNotReady) as raised:
        exports.download(session, book.auditor, job_id)
    assert raised.value.http_status == 409
    assert raised.value.message == (
        f"export {job_id} is still being prepared: 0 of 7 rows (0%) so far; try again when it"
        " is ready"
    )


# --- asking, and who sees what -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "fmt", "params", "error", "message"),
    [
        ("ledger", "csv", {}, ValidationError, "kind must be one of audit, journal, statement"),
        ("journal", "csv", {}, ValidationError, "a journal exports as hledger, beancount"),
        ("journal", "hledger", {"as_of": "yesterday"}, ValidationError, "is not a date"),
        ("journal", "hledger", {"since": "2026-01-01"}, ValidationError, "takes only as_of"),
        ("audit", "csv", {"partner": "NOPE"}, ValidationError, "unknown partner 'NOPE'"),
        ("audit", "csv", {"since": "2026-02-01", "until": "2026-01-01"}, ValidationError,
         "the date range ends before it starts"),
        ("audit", "csv", {"colour": "red"}, ValidationError, "no filter colour"),
        ("journal", "hledger", {"as_of": "9999-12-31"}, ValidationError, "too far in the future"),
        ("audit", "csv", {"partner_id": 2**70}, ValidationError, "partner must be a partner's"),
    ],
)  # fmt: skip
def test_bad_kind_format_or_params_are_refused_and_nothing_is_created(
    book: Book, kind: str, fmt: str, params: dict[str, Any], error: type, message: str
) -> None:
    before = (book.count(ExportJob), book.count(AuditEntry))
    with book.sessions() as session:
        with pytest.raises(error, match=message):
            exports.request_export(session, book.auditor, kind, fmt, params)
        assert background.pending(session) == []
    assert (book.count(ExportJob), book.count(AuditEntry)) == before


def test_partners_may_not_export_the_journal_or_the_audit_log(book: Book) -> None:
    for kind, fmt in (("journal", "hledger"), ("audit", "csv")):
        with book.sessions() as session, pytest.raises(Forbidden):
            exports.request_export(session, book.partner, kind, fmt, {})
    assert book.count(ExportJob) == 0


def test_jobs_are_seen_by_who_asked_and_staff_who_may_ask_for_them(book: Book) -> None:
    journal = book.ask(book.finance)
    mine = book.ask(book.auditor, "audit", "csv", partner="ACME")
    with book.sessions() as session:
        # Staff whose role may ask for the kind see each other's jobs; their lists hold their own.
        assert exports.get_job(session, book.auditor, journal).id == journal
        assert exports.get_job(session, book.finance, mine).id == mine
        assert [j.id for j in session.scalars(exports.jobs_query(book.auditor))] == [mine]
        assert [j.id for j in session.scalars(exports.jobs_query(book.finance))] == [journal]
        # Partners see none of it: exactly what an id that exists nowhere gets.
        for job_id in (journal, mine, 999):
            with pytest.raises(NotFound, match=f"export {job_id} not found"):
                exports.get_job(session, book.partner, job_id)
        assert list(session.scalars(exports.jobs_query(book.partner))) == []


def test_a_partners_job_is_theirs_alone(book: Book) -> None:
    today = datetime.now(UTC).date()
    params = {"start": (today - timedelta(days=30)).isoformat(), "end": today.isoformat()}
    job_id = book.ask(book.partner, "statement", "csv", **params)
    assert book.run(job_id) == "ready"
    job = book.job(job_id)
    assert (job.partner_id, job.role) == (book.partner.partner_id, "partner")
    with book.sessions() as session:
        assert exports.get_job(session, book.partner, job_id).id == job_id
        with pytest.raises(NotFound):
            exports.get_job(session, book.bolt, job_id)
        assert exports.get_job(session, book.auditor, job_id).id == job_id
        request = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "export.request")
        ).one()
        assert request.subject_partner_id == book.partner.partner_id
        # So the partner's own audit trail shows it (audit.query scopes by subject partner).
        trail = session.scalars(audit.query(book.partner, action="export")).all()
        assert [(e.action, e.object_id) for e in trail] == [
            ("export.ready", str(job_id)), ("export.request", str(job_id)),
        ]  # fmt: skip


# --- the stores ----------------------------------------------------------------------------------


def test_files_from_settings_pick_the_local_directory_or_the_proof_bucket(tmp_path: Path) -> None:
    from mdfledger.config import Settings

    local = files_from_settings(Settings(instance_path=tmp_path))
    assert isinstance(local, LocalFiles) and local.root == tmp_path / "exports"

    class Proof:
        client = object()

    s3 = files_from_settings(
        Settings(proof_store="s3", s3_bucket="proof-bucket", s3_sse="aws:kms", s3_kms_key_id="k"),
        Proof(),
    )
    assert isinstance(s3, S3Files)
    assert (s3.bucket, s3.client, s3.sse, s3.kms_key_id) == ("proof-bucket", Proof.client,
                                                              "aws:kms", "k")  # fmt: skip
    assert s3.object_key("7/" + "a" * 32 + ".csv") == "exports/7/" + "a" * 32 + ".csv"
    with pytest.raises(ValueError, match="not an export file key"):
        local.path("../../etc/passwd")


def test_a_job_stores_its_file_in_s3_and_upkeep_deletes_it(
    book: Book,
    moto_server: Any,  # noqa: F811  (the fixture of tests/test_storage.py)
    s3_client: Any,  # noqa: F811
) -> None:
    if isinstance(moto_server, str):
        skip_or_fail(moto_server)
    bucket = f"proof-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=bucket)
    files = S3Files(bucket, s3_client)
    job_id = book.ask(book.auditor, "audit", "xlsx")
    assert exports.run_export(book.sessions, book.reads, files, job_id, now=T0) == "ready"
    job = book.job(job_id)
    assert job.file_key is not None
    head = s3_client.head_object(Bucket=bucket, Key=f"exports/{job.file_key}")
    assert head["ContentLength"] == job.file_size
    assert head["ServerSideEncryption"] == "AES256"
    assert head["ContentType"] == kinds.MEDIA_TYPES["xlsx"]
    assert file_bytes(files, job)[:2] == b"PK"
    expired = exports.export_upkeep(book.sessions, book.reads, files, now=T0 + timedelta(days=8))
    assert expired.expired == 1
    listed = s3_client.list_objects_v2(Bucket=bucket, Prefix="exports/")
    assert listed.get("KeyCount", 0) == 0


# --- the rules -----------------------------------------------------------------------------------


def test_the_state_machine_and_progress_in_words() -> None:
    S = ExportState
    assert job_rules.next_state(S.QUEUED, "start") == S.RUNNING
    assert job_rules.next_state(S.RUNNING, "start") == S.RUNNING
    assert job_rules.next_state(S.RUNNING, "finish") == S.READY
    assert job_rules.next_state(S.READY, "expire") == S.EXPIRED
    with pytest.raises(DomainError, match="an export that is ready cannot fail; it can: expire"):
        job_rules.next_state(S.READY, "fail")
    with pytest.raises(DomainError, match=r"an export that is expired cannot start$"):
        job_rules.next_state(S.EXPIRED, "start")
    assert job_rules.claimable(S.QUEUED, None, T0)
    assert not job_rules.claimable(S.RUNNING, T0 + timedelta(seconds=1), T0)
    assert job_rules.claimable(S.RUNNING, T0, T0)
    assert not job_rules.claimable(S.READY, None, T0)
    assert job_rules.progress_text(1234, 5000) == "1,234 of 5,000 rows (24%)"
    assert job_rules.progress_text(0, 0) == "0 of 0 rows (100%)"
    assert job_rules.progress_text(1, 1) == "1 of 1 row (100%)"
    assert job_rules.progress_text(1, None) == "1 row"
    assert job_rules.progress_text(12, 10) == "12 of 10 rows (100%)"  # an estimate passed
    assert not job_rules.in_background(5000) and job_rules.in_background(5001)
