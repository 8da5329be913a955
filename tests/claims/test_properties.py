"""Whatever partners and finance do, in any order, every cent is accounted for."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from mdfledger import claims, ledger, programs
from mdfledger.claims.holds import payable_account
from mdfledger.errors import DomainError
from tests.claims.conftest import NOW, Desk, claim_with_proof, propose, submit

LATER = datetime(2026, 9, 5, 15, 0, tzinfo=UTC)

STEP = st.one_of(
    st.tuples(st.just("propose"), st.integers(1, 400_000)),
    st.tuples(st.just("approve_request"), st.integers(0, 9), st.integers(1, 400_000)),
    st.tuples(st.just("reject_request"), st.integers(0, 9)),
    st.tuples(st.just("withdraw_request"), st.integers(0, 9)),
    st.tuples(st.just("claim"), st.integers(0, 9), st.integers(1, 300_000)),
    st.tuples(st.just("direct"), st.integers(1, 300_000)),
    st.tuples(st.just("submit"), st.integers(0, 9)),
    st.tuples(st.just("approve"), st.integers(0, 9), st.integers(1, 300_000)),
    st.tuples(st.just("reject"), st.integers(0, 9)),
    st.tuples(st.just("return"), st.integers(0, 9)),
    st.tuples(st.just("withdraw"), st.integers(0, 9)),
)


def _pick(items: list, index: int):
    return items[index % len(items)] if items else None


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(STEP, min_size=1, max_size=14))
def test_money_is_conserved_through_any_sequence(session: Session, desk: Desk, steps):
    savepoint = session.begin_nested()
    try:
        requests: list[claims.FundRequest] = []
        made: list[claims.Claim] = []
        reason = {"reason_code": "other", "message": "because"}
        for step in steps:
            kind, *args = step
            try:
                with session.begin_nested():
                    if kind == "propose":
                        requests.append(propose(session, desk, amount=min(args[0], 300_000)))
                    elif kind == "approve_request" and requests:
                        r = _pick(requests, args[0])
                        amount = min(args[1], r.requested_amount)
                        claims.approve_request(
                            session, desk.finance, r.id, amount=amount, now=NOW, **reason
                        )
                    elif kind == "reject_request" and requests:
                        claims.reject_request(
                            session, desk.finance, _pick(requests, args[0]).id, now=NOW, **reason
                        )
                    elif kind == "withdraw_request" and requests:
                        claims.withdraw_request(
                            session, desk.acme_user, _pick(requests, args[0]).id, now=NOW
                        )
                    elif kind == "claim" and requests:
                        made.append(claim_with_proof(
                            session, desk, _pick(requests, args[0]), amount=args[1],
                            invoice=("I", str(len(made)), 1), now=LATER,
                        ))  # fmt: skip
                    elif kind == "direct":
                        made.append(claim_with_proof(
                            session, desk, amount=min(args[0], 150_000),
                            invoice=("I", str(len(made)), 1), now=NOW,
                        ))  # fmt: skip
                    elif kind == "submit" and made:
                        submit(session, desk, desk.acme_user, _pick(made, args[0]).id,
                                            now=LATER)  # fmt: skip
                    elif kind == "approve" and made:
                        c = _pick(made, args[0])
                        claims.approve_claim(
                            session, desk.finance, c.id, amount=min(args[1], c.claimed_amount),
                            now=LATER, **reason,
                        )  # fmt: skip
                    elif kind in ("reject", "return") and made:
                        decide = claims.reject_claim if kind == "reject" else claims.return_claim
                        decide(session, desk.finance, _pick(made, args[0]).id, now=LATER, **reason)
                    elif kind == "withdraw" and made:
                        claims.withdraw_claim(session, desk.acme_user, _pick(made, args[0]).id,
                                              now=LATER)  # fmt: skip
            except DomainError:
                pass  # refused: and, as the invariants below show, nothing half-done

        breakdown = programs.partner_breakdown(
            session, desk.finance, desk.acme.id, desk.mdf.id, now=LATER
        )
        open_holds = session.scalars(select(claims.Hold).where(claims.Hold.open)).all()
        approved = sum(c.approved_amount or 0 for c in made)
        payable = ledger.balance(
            session, payable_account(session, desk.finance, desk.mdf, desk.acme)
        )
        assert breakdown.reserved == sum(h.amount for h in open_holds)
        assert breakdown.approved == approved == payable.credits_posted
        assert breakdown.available + breakdown.reserved + breakdown.approved == 2_000_000
        for r in requests:
            held = sum(h.amount for h in open_holds if h.request_id == r.id)
            assert held == (r.approved_amount if r.state == "approved" and held else 0)
        for c in made:
            held = sum(h.amount for h in open_holds if h.claim_id == c.id)
            assert (held > 0) == (c.state in ("submitted", "in_review", "returned"))
        assert ledger.verify_ledger(session).ok
    finally:
        savepoint.rollback()
