"""Verification runs after the submitting transaction commits: in-process in the embedded
default, on a real Celery worker with a Redis broker in production."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from mdfledger import background, claims, jobs, verification
from mdfledger.claims import ClaimState
from mdfledger.config import Settings
from mdfledger.db import make_session_factory
from tests.claims.conftest import NOW, Desk, claim_with_proof, propose
from tests.conftest import skip_or_fail
from tests.verification.test_service import LATER, invoice

REDIS_URL = os.environ.get("MDFLEDGER_TEST_REDIS_URL", "")


def context(engine: Engine, sessions: sessionmaker[Session], desk: Desk) -> jobs.Context:
    return jobs.Context(
        sessions, make_session_factory(engine, read_only=True), verification.Toolkit(desk.store)
    )


def submit(session: Session, desk: Desk) -> int:
    request = propose(session, desk)
    claims.approve_request(session, desk.finance, request.id, now=NOW)
    claim = claim_with_proof(session, desk, request, pdf=invoice(), now=LATER)
    claims.submit_claim(session, desk.acme_user, claim.id, now=LATER)
    return claim.id


def state(sessions: sessionmaker[Session], claim_id: int) -> str:
    reads = make_session_factory(sessions.kw["bind"].engine, read_only=True)
    with reads() as fresh:
        claim = fresh.get(claims.Claim, claim_id)
        assert claim is not None
        return claim.state


def test_inline_the_checks_run_right_after_the_commit_and_not_after_a_rollback(
    engine: Engine, session_factory: sessionmaker[Session], session: Session, desk: Desk
):
    background.install(session_factory, jobs.InlineRunner(context(engine, session_factory, desk)))
    claim_id = submit(session, desk)
    session.commit()
    assert state(session_factory, claim_id) == ClaimState.IN_REVIEW
    with session_factory() as fresh:
        kinds = {
            v.result.kind
            for v in verification.latest_checks(fresh, fresh.get(claims.Claim, claim_id))
        }
    assert kinds == {"invoice", "amount", "dates"}

    # A submission rolled back leaves no job behind.
    other = claim_with_proof(session, desk, now=LATER)
    session.commit()
    claims.submit_claim(session, desk.acme_user, other.id, now=LATER)
    session.rollback()
    assert background.pending(session) == []
    assert state(session_factory, other.id) == ClaimState.DRAFT


def test_the_sweep_sends_lost_verifications_again(
    engine: Engine, session_factory: sessionmaker[Session], session: Session, desk: Desk
):
    claim_id = submit(session, desk)
    session.commit()  # no runner installed: the job is lost, as if the process died
    assert state(session_factory, claim_id) == ClaimState.VERIFYING
    ctx = context(engine, session_factory, desk)
    sweep = jobs.verification_sweep(
        ctx, jobs.InlineRunner(ctx), now=LATER.replace(hour=LATER.hour + 1)
    )
    assert sweep.resent == 1
    assert state(session_factory, claim_id) == ClaimState.IN_REVIEW
    assert jobs.verification_sweep(ctx, jobs.InlineRunner(ctx), now=LATER).resent == 0


def test_a_real_celery_worker_on_redis_verifies_a_submitted_claim(
    database_url: str, session_factory: sessionmaker[Session], session: Session, desk: Desk,
    tmp_path: Path,
):  # fmt: skip
    if not REDIS_URL:
        skip_or_fail("the Celery worker test needs Redis (MDFLEDGER_TEST_REDIS_URL)")
    _require_redis()
    queue = f"mdfledger-test-{uuid.uuid4().hex[:8]}"
    settings = replace(Settings(), jobs="celery", broker_url=REDIS_URL, jobs_queue=queue)
    env = {
        **os.environ,
        "MDFLEDGER_DATABASE_URL": database_url,
        "MDFLEDGER_INSTANCE_PATH": str(tmp_path / "instance"),
        "MDFLEDGER_PROOF_DIR": str(desk.store.root),
        "MDFLEDGER_JOBS": "celery",
        "MDFLEDGER_BROKER_URL": REDIS_URL,
        "MDFLEDGER_JOBS_QUEUE": queue,
        "OMP_THREAD_LIMIT": "1",
    }
    command = [str(Path(sys.executable).with_name("mdfledger")), "worker", "--concurrency", "1"]
    worker = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        background.install(session_factory, jobs.CeleryRunner(settings))
        claim_id = submit(session, desk)
        session.commit()  # the job goes to Redis; the worker picks it up
        deadline = time.monotonic() + 60
        while state(session_factory, claim_id) == ClaimState.VERIFYING:
            if worker.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert state(session_factory, claim_id) == ClaimState.IN_REVIEW, _output(worker)
        with session_factory() as fresh:
            claim = fresh.get(claims.Claim, claim_id)
            last = claims.timeline(fresh, claim)[-1]
            assert (last.event, last.actor) == ("review", "system:verification")
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()


def _require_redis() -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        skip_or_fail(f"Redis at {REDIS_URL} does not answer: {error}")


def _output(worker: subprocess.Popen[str]) -> str:
    worker.terminate()
    try:
        out, _ = worker.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        worker.kill()
        out, _ = worker.communicate()
    return f"worker output:\n{out[-4000:]}"
