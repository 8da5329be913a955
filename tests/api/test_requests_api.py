"""The fund requests API: propose, read with the timeline, edit when returned, decide; bad input,
idempotent retries, stale views and another partner's requests. On SQLite and PostgreSQL.

The world is the programs API's (tests/api/test_programs_api.py) plus CLM27, a USD program for
claims with ACME's and BOLT's funds and requests and claims in every state the API needs
(`add_claims_world`, shared with test_claims_api and test_api_access). The API uses the real
clock, so dates are relative to today.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mdfledger import auth, claims, programs, storage
from mdfledger.actor import Actor
from mdfledger.claims import ClaimEvent, FundRequest
from mdfledger.clock import utcnow
from mdfledger.ledger.models import Transfer
from tests.api.test_api_foundation import answer, assert_error
from tests.api.test_programs_api import World, build_world, ok
from tests.samples import image_bytes, pdf_bytes, submit_checked

SYSTEM = Actor.system("test")
HELD_BY_CLAIMS = "80.00"  # ACME's four claims in review, 20.00 each


def today() -> date:
    return utcnow().date()


def _user_actor(session: Session, email: str) -> Actor:
    user = session.scalar(select(auth.User).where(auth.User.email == email))
    assert user is not None
    return Actor("user", str(user.id), user.role, user.partner_id)


def add_claims_world(world: World) -> World:
    """CLM27 (USD, 50% share, direct claims allowed): activities ADS (invoice; cap 1000.00) and
    EVENT (invoice and photos); 5000.00 each for ACME and BOLT. ACME has requests `request`
    and `request_b` (submitted), `request_c` (submitted), `request_returned` (returned); claims
    `claim` (a draft with an invoice `document` and a `spare_document`), `claim_ready` (a draft
    with all its proof) and `claim_a` .. `claim_d` (in review). BOLT has `bolt_request`
    (approved), `bolt_claim` (in review) with `bolt_document`."""
    store = world.app.extensions[storage.APP_KEY]
    day = today()
    with world.sessions() as session:
        acme = _user_actor(session, "ada@acme.example")
        bolt = _user_actor(session, "bo@bolt.example")
        finance = _user_actor(session, "finance@example.com")
        clm = programs.create_program(
            session, SYSTEM, code="CLM27", name="Claims 2027", kind="mdf", currency="USD",
            share_bp=5000, direct_claims=True,
        )  # fmt: skip
        ads = programs.add_activity(
            session, SYSTEM, clm.id, code="ADS", name="Search ads", proof=["invoice"], cap=100_000
        )
        event = programs.add_activity(
            session, SYSTEM, clm.id, code="EVENT", name="Trade show", proof=["invoice", "photos"]
        )
        programs.fund_budget(session, SYSTEM, clm.id, 10_000_000, reason="FY budget")
        for partner_id in (world.acme, world.bolt):
            programs.allocate(session, SYSTEM, clm.id, partner_id, 500_000, reason="Claims")
        counter = iter(range(1, 1000))

        def propose(actor: Actor) -> FundRequest:
            return claims.create_request(
                session, actor, program_id=clm.id, activity_id=ads.id, title="Spring ads",
                starts_on=day - timedelta(days=3), ends_on=day, estimated_cost=20_000,
                requested_amount=5_000,
            )  # fmt: skip

        def draft(actor: Actor, *, proof: bool = True) -> claims.Claim:
            n = next(counter)
            claim = claims.create_claim(
                session, actor, program_id=clm.id, activity_id=ads.id, title=f"Ads {n}",
                starts_on=day - timedelta(days=3), ends_on=day, actual_cost=10_000,
                claimed_amount=2_000, invoice_issuer=f"Vendor {n}", invoice_number=f"INV-{n}",
                invoice_total=10_000,
            )  # fmt: skip
            if proof:
                claims.add_document(
                    session, actor, store, claim.id, data=pdf_bytes(f"Invoice {n}"),
                    filename=f"invoice-{n}.pdf", kind="invoice",
                )  # fmt: skip
            return claim

        def in_review(actor: Actor) -> claims.Claim:
            claim = draft(actor)
            return submit_checked(session, actor, store, claim.id)

        objects: dict[str, Any] = {
            "request": propose(acme),
            "request_b": propose(acme),
            "request_c": propose(acme),
            "request_returned": propose(acme),
            "claim": draft(acme),
            "claim_ready": draft(acme),
            **{f"claim_{x}": in_review(acme) for x in "abcd"},
            "bolt_request": propose(bolt),
            "bolt_claim": in_review(bolt),
        }
        claims.return_request(
            session, finance, objects["request_returned"].id, reason_code="other",
            message="Which keywords?",
        )  # fmt: skip
        claims.approve_request(session, finance, objects["bolt_request"].id)
        spare = claims.add_document(
            session, acme, store, objects["claim"].id, data=image_bytes("PNG"),
            filename="booth.png", kind="photo",
        )  # fmt: skip
        session.commit()
        world.ids.update({name: value.id for name, value in objects.items()})
        world.ids.update(
            clm=clm.id, ads=ads.id, event=event.id, spare_document=spare.id,
            document=objects["claim"].documents[0].id,
            bolt_document=objects["bolt_claim"].documents[0].id,
        )  # fmt: skip
    return world


@pytest.fixture
def world(
    database_url: str, tmp_path: Path, session_factory: sessionmaker[Session], actor: Actor
) -> Iterator[World]:
    for built in build_world(database_url, tmp_path, session_factory, actor):
        yield add_claims_world(built)


def proposal(world: World, **changes: Any) -> dict[str, Any]:
    body = {
        "program_id": world.clm, "activity_id": world.event, "title": "Booth at NetExpo",
        "description": "A 3x3 m booth", "expected_outcome": "200 badge scans",
        "starts_on": (today() - timedelta(days=2)).isoformat(), "ends_on": today().isoformat(),
        "estimated_cost": "2000.00", "requested_amount": "1000.00",
    }  # fmt: skip
    body.update(changes)
    return body


def balance(world: World, partner: str = "acme") -> dict[str, Any]:
    return ok(world.get("finance", f"/api/v1/partners/{world.ids[partner]}/balances/{world.clm}"))


# --- proposing and reading -----------------------------------------------------------------------


def test_a_partner_proposes_and_reads_its_request(world: World) -> None:
    made = ok(world.post("partner", "/api/v1/requests", proposal(world)), 201)
    assert {k: made[k] for k in ("state", "currency", "estimated_cost", "requested_amount")} == {
        "state": "submitted", "currency": "USD", "estimated_cost": "2000.00",
        "requested_amount": "1000.00",
    }  # fmt: skip
    assert made["reference"] == f"REQ-{made['id']:06d}"
    assert (made["approved_amount"], made["held"], made["claim_ids"]) == (None, "0.00", [])
    assert made["partner_id"] == world.acme and made["version"] == 1
    assert [(e["event"], e["to_state"], e["amount"]) for e in made["timeline"]] == [
        ("submit", "submitted", "1000.00")
    ]
    assert made["timeline"][0]["actor_name"] == "Ada"
    assert ok(world.get("partner", f"/api/v1/requests/{made['id']}")) == made
    assert ok(world.get("auditor", f"/api/v1/requests/{made['id']}")) == made
    # Lists: newest first; the partner sees its own, staff filter.
    mine = ok(world.get("partner", "/api/v1/requests"))
    assert mine["items"][0]["id"] == made["id"]
    assert {r["partner_id"] for r in mine["items"]} == {world.acme}
    assert mine["total"] == 5
    returned = ok(world.get("finance", "/api/v1/requests?state=returned"))
    assert [r["id"] for r in returned["items"]] == [world.request_returned]
    bolts = ok(world.get("finance", f"/api/v1/requests?partner_id={world.bolt}"))
    assert [r["id"] for r in bolts["items"]] == [world.bolt_request]
    assert ok(world.get("partner", f"/api/v1/requests?partner_id={world.bolt}"))["total"] == 0
    assert ok(world.get("bolt", "/api/v1/requests"))["total"] == 1
    paged = ok(world.get("finance", f"/api/v1/requests?program_id={world.clm}&per_page=2&page=3"))
    assert (paged["total"], paged["pages"], len(paged["items"])) == (6, 3, 2)
    assert_error(world.get("finance", "/api/v1/requests?state=lost"), 422, "validation_error")


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"requested_amount": "1000.01"}, "requested_amount", "at most 1000.00 USD"),
        (
            {"activity_id": "ads", "estimated_cost": "5000.00", "requested_amount": "1500.00"},
            "requested_amount",
            "Search ads cap",
        ),
        ({"requested_amount": "10.001"}, "requested_amount", "more than 2 decimal places"),
        ({"estimated_cost": "0"}, "estimated_cost", "positive"),
        ({"ends_on": "2001-01-31", "starts_on": "2001-01-01"}, "ends_on", "has passed"),
        ({"activity_id": "webinar"}, "activity_id", "CLM27 catalog"),
    ],
)
def test_a_bad_proposal_is_refused_naming_the_field(
    world: World, changes: dict[str, Any], field: str, words: str
) -> None:
    before = world.count(FundRequest)
    changes = {k: world.ids[v] if k == "activity_id" else v for k, v in changes.items()}
    error = assert_error(world.post("partner", "/api/v1/requests", proposal(world, **changes)),
                         422, "invalid")  # fmt: skip
    assert error["details"]["field"] == field
    assert words in error["message"]
    assert world.count(FundRequest) == before


def test_a_proposal_of_the_wrong_shape_is_refused(world: World) -> None:
    before = world.count(FundRequest)
    for body in (
        proposal(world, requested_amount=1000),  # a JSON number: never through a float
        proposal(world, colour="red"),
        {k: v for k, v in proposal(world).items() if k != "title"},
        proposal(world, starts_on="yesterday"),
    ):
        error = assert_error(world.post("partner", "/api/v1/requests", body), 422,
                             "validation_error")  # fmt: skip
        assert error["details"]["json"]
    # A closed program is not there for a partner; staff do not propose.
    closed = world.post("partner", "/api/v1/requests", proposal(world, program_id=world.old))
    assert_error(closed, 404, "not_found")
    assert_error(world.post("finance", "/api/v1/requests", proposal(world)), 403, "forbidden")
    assert world.count(FundRequest) == before


def test_the_same_idempotency_key_makes_one_request(world: World) -> None:
    before = world.count(FundRequest)
    first = ok(world.post("partner", "/api/v1/requests", proposal(world), key="form-1"), 201)
    again = ok(world.post("partner", "/api/v1/requests", proposal(world), key="form-1"), 201)
    assert again == first
    assert world.count(FundRequest) == before + 1
    other = ok(world.post("partner", "/api/v1/requests", proposal(world), key="form-2"), 201)
    assert other["id"] != first["id"]


# --- decisions -----------------------------------------------------------------------------------


def test_approve_in_part_needs_a_reason_and_holds_the_amount(world: World) -> None:
    made = ok(world.post("partner", "/api/v1/requests", proposal(world)), 201)
    url = f"/api/v1/requests/{made['id']}/approve"
    no_reason = assert_error(world.post("finance", url, {"amount": "600.00"}), 422, "invalid")
    assert no_reason["details"]["field"] == "reason_code"
    no_message = world.post("finance", url, {"amount": "600.00", "reason_code": "budget"})
    assert assert_error(no_message, 422, "invalid")["details"]["field"] == "message"
    blank = world.post("finance", url, {"amount": "600.00", "reason_code": "budget",
                                        "message": "  "})  # fmt: skip
    assert assert_error(blank, 422, "invalid")["details"]["field"] == "message"
    precise = world.post("finance", url, {"amount": "600.001"})
    assert assert_error(precise, 422, "invalid")["details"]["field"] == "amount"
    more = world.post("finance", url, {"amount": "1000.01"})
    assert assert_error(more, 422, "invalid")["details"]["field"] == "amount"
    assert balance(world)["reserved"] == HELD_BY_CLAIMS

    body = {"amount": "600.00", "reason_code": "budget", "message": "600 this quarter",
            "version": made["version"]}  # fmt: skip
    approved = ok(world.post("finance", url, body))
    assert (approved["state"], approved["approved_amount"], approved["held"]) == (
        "approved", "600.00", "600.00",
    )  # fmt: skip
    assert (approved["reason_code"], approved["reason"]) == ("budget", "600 this quarter")
    last = approved["timeline"][-1]
    assert (last["event"], last["amount"], last["reason_code"], last["message"]) == (
        "approve", "600.00", "budget", "600 this quarter",
    )  # fmt: skip
    assert last["role"] == "finance" and last["actor_name"] == "Finance"
    # The partner reads the reason.
    seen = ok(world.get("partner", f"/api/v1/requests/{made['id']}"))
    assert seen["timeline"][-1]["message"] == "600 this quarter"
    assert (balance(world)["reserved"], balance(world)["available"]) == ("680.00", "4320.00")


def test_a_decision_retried_with_its_key_happens_once(world: World) -> None:
    url = f"/api/v1/requests/{world.request}/approve"
    transfers = world.count(Transfer)
    first = ok(world.post("finance", url, {}, key="click-1"))
    again = ok(world.post("admin", url, {}, key="click-1"))
    assert again == first
    assert first["state"] == "approved" and first["held"] == "50.00"
    assert world.count(Transfer) == transfers + 1
    assert balance(world)["reserved"] == "130.00"
    # Another key is another decision: approving twice is refused.
    twice = world.post("finance", url, {}, key="click-2")
    assert "cannot be approved" in assert_error(twice, 409, "invalid_transition")["message"]
    assert world.count(Transfer) == transfers + 1


def test_a_decision_on_a_stale_view_is_a_conflict(world: World) -> None:
    seen = ok(world.get("finance", f"/api/v1/requests/{world.request_b}"))
    ok(world.post("admin", f"/api/v1/requests/{world.request_b}/return",
                  {"reason_code": "other", "message": "Which keywords?"}))  # fmt: skip
    stale = world.post(
        "finance", f"/api/v1/requests/{world.request_b}/approve", {"version": seen["version"]}
    )
    error = assert_error(stale, 409, "conflict")
    assert "changed since you opened it: it is now returned" in error["message"]
    assert error["details"] == {"state": "returned", "version": seen["version"] + 1}
    assert balance(world)["reserved"] == HELD_BY_CLAIMS
    assert_error(
        world.post("finance", f"/api/v1/requests/{world.request_b}/approve", {"version": "2"}),
        422, "validation_error",
    )  # fmt: skip


def test_return_edit_resubmit_then_reject_with_a_reason(world: World) -> None:
    url = f"/api/v1/requests/{world.request_c}"
    missing = world.post("finance", f"{url}/return", {"message": "Which?"})
    assert "reason_code" in assert_error(missing, 422, "validation_error")["details"]["json"]
    ok(world.post("finance", f"{url}/return", {"reason_code": "other", "message": "Which?"}))
    edited = ok(world.patch("partner", url, {"expected_outcome": "40 leads",
                                             "requested_amount": "60.00"}))  # fmt: skip
    assert (edited["expected_outcome"], edited["requested_amount"]) == ("40 leads", "60.00")
    too_much = world.patch("partner", url, {"requested_amount": "100.01"})
    assert assert_error(too_much, 422, "invalid")["details"]["field"] == "requested_amount"
    assert_error(world.patch("partner", url, {"state": "approved"}), 422, "validation_error")
    assert_error(world.patch("finance", url, {"title": "x"}), 403, "forbidden")
    back = ok(world.post("partner", f"{url}/resubmit", {"message": "Keywords attached"}))
    assert back["state"] == "submitted"
    assert_error(world.patch("partner", url, {"title": "Late change"}), 409, "conflict")
    no_reason = world.post("finance", f"{url}/reject", {"reason_code": "not_eligible"})
    assert "message" in assert_error(no_reason, 422, "validation_error")["details"]["json"]
    rejected = ok(
        world.post(
            "finance",
            f"{url}/reject",
            {"reason_code": "not_eligible", "message": "Not in the plan"},
        )
    )
    assert (rejected["state"], rejected["reason_code"]) == ("rejected", "not_eligible")
    assert [e["event"] for e in rejected["timeline"]] == [
        "submit", "return", "resubmit", "reject",
    ]  # fmt: skip
    assert rejected["timeline"][2]["message"] == "Keywords attached"


def test_withdrawing_an_approved_request_releases_its_hold(world: World) -> None:
    ok(world.post("finance", f"/api/v1/requests/{world.request}/approve", {}))
    assert balance(world)["reserved"] == "130.00"
    withdrawn = ok(world.post("partner", f"/api/v1/requests/{world.request}/withdraw",
                              {"message": "Plans changed"}))  # fmt: skip
    assert (withdrawn["state"], withdrawn["held"]) == ("withdrawn", "0.00")
    assert balance(world)["reserved"] == HELD_BY_CLAIMS
    again = world.post("partner", f"/api/v1/requests/{world.request}/withdraw")
    assert_error(again, 409, "invalid_transition")


def test_roles_partners_and_auditors_do_not_decide(world: World) -> None:
    url = f"/api/v1/requests/{world.request}"
    for role in ("partner", "auditor", "bolt"):
        assert_error(world.post(role, f"{url}/approve", {}), 403, "forbidden")
    assert_error(world.post("auditor", f"{url}/withdraw", {}), 403, "forbidden")
    assert_error(world.post("finance", f"{url}/withdraw", {}), 403, "forbidden")
    assert ok(world.get("auditor", url))["state"] == "submitted"


def test_another_partners_request_is_not_found(world: World) -> None:
    events = world.count(ClaimEvent)
    before = ok(world.get("finance", f"/api/v1/requests/{world.bolt_request}"))
    for method, suffix, body in (
        ("GET", "", None),
        ("PATCH", "", {"title": "Mine"}),
        ("POST", "/withdraw", {}),
        ("POST", "/resubmit", {}),
    ):
        theirs = world.call("partner", method, f"/api/v1/requests/{world.bolt_request}{suffix}",
                            json=body)  # fmt: skip
        nowhere = world.call("partner", method, f"/api/v1/requests/999999{suffix}", json=body)
        assert theirs.status_code == 404, (method, suffix, theirs.get_data(as_text=True))
        assert answer(theirs) == answer(nowhere)
        assert b"Spring" not in theirs.get_data()
    assert world.count(ClaimEvent) == events
    # An edit leaves no event: the request itself must be as it was.
    assert ok(world.get("finance", f"/api/v1/requests/{world.bolt_request}")) == before
