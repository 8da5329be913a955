"""A submitted claim's proof is checked and the claim decided: approved automatically when it is
clean and under the program's limit, else sent to finance with what to look at on top."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from mdfledger import background, claims, programs, verification
from mdfledger.claims import ClaimState
from mdfledger.demo_proof import invoice_pdf, lead_list_csv
from mdfledger.errors import Conflict, Forbidden, ValidationError
from mdfledger.verification import CheckKind, CheckResult, Toolkit, Trigger
from mdfledger.verification.testserver import PageServer, html
from tests.claims.conftest import NOW, Desk, claim_with_proof, propose

LATER = datetime(2026, 9, 5, 15, 0, tzinfo=UTC)


def invoice(total: int = 300_000, *, issuer: str = "Webinars Inc", issued=date(2026, 8, 25)):
    return invoice_pdf(
        issuer=issuer, number="INV-1001", issued=issued, bill_to="Acme Networks",
        items=(("Webinar platform and production", total),),
    )  # fmt: skip


def submitted(session: Session, desk: Desk, *, pdf: bytes | None = None, **kw) -> claims.Claim:
    request = propose(session, desk)
    claims.approve_request(session, desk.finance, request.id, now=NOW)
    claim = claim_with_proof(session, desk, request, pdf=pdf or invoice(), now=LATER, **kw)
    claims.submit_claim(session, desk.acme_user, claim.id, now=LATER)
    assert claim.state == ClaimState.VERIFYING
    return claim


def verify(session: Session, desk: Desk, claim: claims.Claim, **kw):
    return verification.verify(
        session, verification.VERIFIER, claim.id, Toolkit(desk.store), now=LATER, **kw
    )


def rules(session: Session, desk: Desk, **kw) -> None:
    fields = dict(
        auto_approve_up_to=200_000, tolerance_bp=100, invoice_grace_days=30,
        page_markers="{partner}", min_leads=None, recheck_days=30,
    )  # fmt: skip
    fields.update(kw)
    verification.set_policy(session, desk.admin, desk.mdf.id, **fields, now=NOW)


def results(session: Session, claim: claims.Claim) -> dict[str, tuple[str, str]]:
    return {
        view.result.kind: (view.result.outcome, view.result.summary)
        for view in verification.latest_checks(session, claim)
    }


def test_submitting_queues_the_checks_for_after_the_commit(session: Session, desk: Desk):
    claim = submitted(session, desk)
    assert background.pending(session)[-1] == (claims.VERIFY_JOB, {"claim_id": claim.id})
    assert [e.event for e in claims.timeline(session, claim)][-2:] == ["submit", "verify"]


def test_a_clean_claim_under_the_limit_is_approved_by_the_system(session: Session, desk: Desk):
    rules(session, desk)
    claim = submitted(session, desk)
    decision = verify(session, desk, claim)
    assert decision is not None and decision.approve
    assert claim.state == ClaimState.APPROVED and claim.approved_amount == 150_000
    assert results(session, claim) == {
        "invoice": ("pass", "Invoice total 3,000.00 USD matches the claimed cost"),
        "amount": (
            "pass",
            "1,500.00 USD claimed is within the 50% share of the invoiced cost"
            " (3,000.00 USD allows 1,500.00 USD)",
        ),
        "dates": (
            "pass",
            "Activity 2026-08-20 to 2026-08-30 is inside the pre-approved dates; claimed on"
            " 2026-09-05, by the deadline 2026-10-29",
        ),
    }
    last = claims.timeline(session, claim)[-1]
    assert (last.event, last.actor, last.amount) == ("approve", "system:verification", 150_000)
    assert last.message == "All checks passed (invoice, amount, dates): approved automatically"
    # The money moved as a person's approval moves it: held -> claims payable.
    assert claims.held(session, claim) == 0


def test_without_automatic_approval_a_clean_claim_waits_for_finance(session: Session, desk: Desk):
    claim = submitted(session, desk)
    decision = verify(session, desk, claim)
    assert decision is not None and not decision.approve
    assert claim.state == ClaimState.IN_REVIEW
    last = claims.timeline(session, claim)[-1]
    assert (last.event, last.actor) == ("review", "system:verification")
    assert last.message == (
        "All checks passed (invoice, amount, dates); the program approves every claim by hand"
    )
    # Finance approves it as before.
    claims.approve_claim(session, desk.finance, claim.id, now=LATER)
    assert claim.state == ClaimState.APPROVED


def test_an_invoice_that_does_not_match_sends_the_claim_to_finance_failing_first(
    session: Session, desk: Desk
):
    rules(session, desk)
    claim = submitted(session, desk, pdf=invoice(250_000))
    verify(session, desk, claim)
    assert claim.state == ClaimState.IN_REVIEW
    first = verification.latest_checks(session, claim)[0].result
    assert (first.kind, first.outcome) in {("invoice", "fail"), ("amount", "fail")}
    found = results(session, claim)
    assert found["invoice"][0] == "fail" and "below the claimed cost" in found["invoice"][1]
    assert found["amount"][0] == "fail"
    assert "Invoice:" in claims.timeline(session, claim)[-1].message


def test_an_invoice_from_the_partner_itself_is_not_proof(session: Session, desk: Desk):
    rules(session, desk)
    claim = submitted(session, desk, pdf=invoice(issuer="Acme Networks"))
    verify(session, desk, claim)
    assert claim.state == ClaimState.IN_REVIEW
    assert results(session, claim)["invoice"][0] == "fail"


def test_an_unreadable_invoice_is_inconclusive_and_never_approved(session: Session, desk: Desk):
    rules(session, desk)
    claim = submitted(session, desk, pdf=b"%PDF-1.4\n%garbage that is no PDF\n%%EOF\n")
    verify(session, desk, claim)
    assert claim.state == ClaimState.IN_REVIEW
    outcome, summary = results(session, claim)["invoice"]
    assert outcome == "inconclusive" and summary


def test_a_flagged_duplicate_is_never_approved_automatically(session: Session, desk: Desk):
    rules(session, desk)
    first = submitted(session, desk)
    verify(session, desk, first)
    second = submitted(session, desk)  # the same invoice file again
    assert second.flagged
    decision = verify(session, desk, second)
    assert decision is not None and "possible duplicate" in decision.reason
    assert second.state == ClaimState.IN_REVIEW


def test_a_second_run_of_the_same_checks_changes_nothing(session: Session, desk: Desk):
    claim = submitted(session, desk)
    verify(session, desk, claim)
    count = len(verification.check_history(session, claim))
    assert verify(session, desk, claim) is None
    assert len(verification.check_history(session, claim)) == count
    assert claim.state == ClaimState.IN_REVIEW


def test_finance_reruns_a_check_and_the_history_keeps_both(session: Session, desk: Desk):
    claim = submitted(session, desk)
    verify(session, desk, claim)
    verification.rerun_check(session, desk.finance, claim.id, "invoice")
    job, args = background.pending(session)[-1]
    assert (job, args["kind"], args["requested_by"]) == (
        verification.RERUN_JOB, "invoice", desk.finance.label,
    )  # fmt: skip
    verify(session, desk, claim, trigger=Trigger.RERUN, only=(CheckKind.INVOICE, None),
           requested_by=desk.finance.label)  # fmt: skip
    history = [r for r in verification.check_history(session, claim) if r.kind == "invoice"]
    assert [r.trigger for r in history] == ["rerun", "submit"]
    assert history[0].requested_by == desk.finance.label
    assert claim.state == ClaimState.IN_REVIEW  # a re-run decides nothing
    views = {v.result.kind: v.runs for v in verification.latest_checks(session, claim)}
    assert views["invoice"] == 2 and views["dates"] == 1


def test_reruns_are_for_finance_on_claims_in_review_or_decided(session: Session, desk: Desk):
    claim = submitted(session, desk)
    with pytest.raises(Conflict, match="checks run again only on claims in review or decided"):
        verification.rerun_check(session, desk.finance, claim.id, "invoice")
    verify(session, desk, claim)
    with pytest.raises(Forbidden):
        verification.rerun_check(session, desk.acme_user, claim.id, "invoice")
    with pytest.raises(ValidationError, match="choose a check"):
        verification.rerun_check(session, desk.finance, claim.id, "astrology")
    with pytest.raises(ValidationError, match="choose a document of this claim"):
        verification.rerun_check(session, desk.finance, claim.id, "photo", document_id=999)
    assert not any(job == verification.RERUN_JOB for job, _ in background.pending(session))


def test_lead_lists_count_leads_claimed_before_by_the_same_partner(session: Session, desk: Desk):
    leads = programs.add_activity(
        session, programs_actor(), desk.mdf.id, code="LEADS", name="Lead campaign",
        proof=["lead_list"],
    )  # fmt: skip
    csv = lead_list_csv("Webinar", 3)
    made = []
    for _ in range(2):
        claim = claims.create_claim(
            session, desk.acme_user, program_id=desk.mdf.id, activity_id=leads.id,
            title="Leads", starts_on=date(2026, 8, 1), ends_on=date(2026, 8, 31),
            actual_cost=100_000, claimed_amount=50_000, now=LATER,
        )  # fmt: skip
        claims.add_document(
            session, desk.acme_user, desk.store, claim.id, data=csv, filename="leads.csv",
            kind="lead_list", now=LATER,
        )  # fmt: skip
        claims.submit_claim(session, desk.acme_user, claim.id, now=LATER)
        verify(session, desk, claim)
        made.append(claim)
    first, second = (
        next(v.result for v in verification.latest_checks(session, c) if v.result.kind == "leads")
        for c in made
    )
    assert first.evidence["claimed_before"] == 0
    assert second.evidence["claimed_before"] == first.evidence["unique_leads"] > 0
    assert second.outcome == "fail"


def programs_actor():
    from mdfledger.actor import Actor

    return Actor.system("setup")


def test_results_are_append_only_in_the_database(session: Session, desk: Desk):
    claim = submitted(session, desk)
    verify(session, desk, claim)
    session.commit()
    with pytest.raises(Exception, match="append-only"):
        session.execute(text("UPDATE verification_checks SET outcome = 'pass'"))
    session.rollback()
    with pytest.raises(Exception, match="append-only"):
        session.execute(text("DELETE FROM verification_checks"))
    session.rollback()
    assert session.scalars(select(CheckResult)).all()


def test_claims_whose_verification_was_lost_are_found(session: Session, desk: Desk):
    claim = submitted(session, desk)
    assert verification.stalled(session, now=LATER + timedelta(minutes=5)) == []
    assert verification.stalled(session, now=LATER + timedelta(minutes=16)) == [claim.id]
    verify(session, desk, claim)
    assert verification.stalled(session, now=LATER + timedelta(minutes=16)) == []


def test_rules_are_checked_and_audited(session: Session, desk: Desk):
    with pytest.raises(ValidationError, match="tolerance bp must be a whole number"):
        rules(session, desk, tolerance_bp=20_000)
    with pytest.raises(Forbidden):
        verification.set_policy(
            session, desk.acme_user, desk.mdf.id, auto_approve_up_to=None, tolerance_bp=0,
            invoice_grace_days=0, page_markers="", min_leads=None, recheck_days=0,
        )  # fmt: skip
    assert verification.policy_of(session, desk.mdf.id) == verification.Policy()
    rules(session, desk, page_markers=" {partner} \n\n Q3-CLOUD ")
    assert verification.policy_of(session, desk.mdf.id).page_markers == "{partner}\nQ3-CLOUD"


def page_claim(session: Session, desk: Desk, url: str) -> claims.Claim:
    social = programs.add_activity(
        session, programs_actor(), desk.mdf.id, code="SOCIAL", name="Sponsored post",
        proof=["social_post"],
    )  # fmt: skip
    claim = claims.create_claim(
        session, desk.acme_user, program_id=desk.mdf.id, activity_id=social.id, title="Post",
        starts_on=date(2026, 8, 1), ends_on=date(2026, 8, 31), actual_cost=100_000,
        claimed_amount=50_000, now=LATER,
    )  # fmt: skip
    claims.add_link(session, desk.acme_user, claim.id, url=url, kind="social_post", now=LATER)
    claims.submit_claim(session, desk.acme_user, claim.id, now=LATER)
    return claim


def local_kit(desk: Desk) -> Toolkit:
    return Toolkit(desk.store, verification.FetchPolicy(allow_hosts=frozenset({"127.0.0.1"})))


def test_a_live_post_naming_the_partner_passes_and_a_later_404_is_recorded(
    session: Session, desk: Desk
):
    rules(session, desk, page_markers="{partner}\nQ3-CLOUD")
    post = html("<p>Our Q3-CLOUD offer, brought to you by ACME Networks.</p>", title="Acme post")
    with PageServer({"/post": post}) as server:
        claim = page_claim(session, desk, server.url("/post"))
        kit = local_kit(desk)
        verification.verify(session, verification.VERIFIER, claim.id, kit, now=LATER)
        assert claim.state == ClaimState.APPROVED  # 500.00 USD, every check passed
        outcome, summary = results(session, claim)["page"]
        assert outcome == "pass" and "Acme Networks" in summary and "Q3-CLOUD" in summary
        server.route("/post", html("gone", title="Not found", status=404))
        verification.verify(
            session, verification.VERIFIER, claim.id, kit, trigger=Trigger.RECHECK,
            only=(CheckKind.PAGE, claim.documents[0].id), now=LATER + timedelta(days=1),
        )  # fmt: skip
    outcome, summary = results(session, claim)["page"]
    assert outcome == "fail" and "404" in summary
    assert verification.pages_due(session, now=LATER + timedelta(days=1, hours=1)) == []
    assert verification.pages_due(session, now=LATER + timedelta(days=2, hours=1)) == [
        (claim.id, claim.documents[0].id)
    ]


def test_a_link_to_the_cloud_metadata_address_is_refused_not_fetched(session: Session, desk: Desk):
    rules(session, desk)
    claim = page_claim(session, desk, "http://169.254.169.254/latest/meta-data/")
    verification.verify(session, verification.VERIFIER, claim.id, local_kit(desk), now=LATER)
    assert claim.state == ClaimState.IN_REVIEW
    outcome, summary = results(session, claim)["page"]
    assert outcome == "fail" and "169.254.169.254" in summary
