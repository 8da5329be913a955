"""Every state-changing service leaves exactly one audit entry, in its own transaction: with its
action, a sentence, the fields before and after, and who did it. Replays leave none, refused
calls leave none, and nothing secret ever goes in. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from mdfledger import audit, auth, programs
from mdfledger.actor import Actor
from mdfledger.audit import AuditEntry
from mdfledger.errors import Conflict, ValidationError
from tests.audit.conftest import NOW, Book, entries_after, last_id, only_entry

ADMIN = Actor("user", "admin-1", "admin")
SYSTEM = Actor.system("test")
PASSWORD = "correct horse battery staple"


def check(
    entry: AuditEntry, action: str, object_type: str, object_id: object, **fields: Any
) -> AuditEntry:
    """The entry is this action on this object, with these column values (before and after
    compared as dicts)."""
    assert (entry.action, entry.object_type, entry.object_id) == (
        action, object_type, str(object_id)
    )  # fmt: skip
    for name, value in fields.items():
        got = getattr(entry, name)
        if name in ("before", "after"):
            got = audit.loads(got)
        assert got == value, (name, got)
    return entry


# --- who, when, and the chain -------------------------------------------------------------------


def test_an_entry_says_who_did_it_and_chains_to_the_one_before(
    session: Session, actor: Actor, book: Book
) -> None:
    mark = last_id(session)
    previous = session.get(AuditEntry, mark)
    partner = programs.create_partner(
        session, actor, code="CORE", name="Core IT", type="msp", tier="silver", region="EMEA"
    )
    session.commit()
    entry = check(
        only_entry(session, mark), "partner.create", "partner", partner.id,
        actor="user:finance-1", actor_kind="user", role="finance", partner_id=None,
        subject_partner_id=partner.id, summary="Created partner CORE (Core IT)", before=None,
        after={"code": "CORE", "name": "Core IT", "type": "msp", "tier": "silver",
               "region": "EMEA", "status": "active"},
        request_id=None,
    )  # fmt: skip
    assert entry.id == mark + 1 and previous is not None
    assert entry.at >= previous.at and entry.at.tzinfo is not None
    assert entry.hash == audit.service.entry_hash(
        previous.hash, {name: getattr(entry, name) for name in audit.service.HASHED_FIELDS}
    )
    head = session.get(audit.AuditHead, 1)
    assert head is not None and (head.last_id, head.last_hash) == (entry.id, entry.hash)
    assert audit.verify_audit(session).ok


def test_the_system_and_partner_users_are_recorded_as_such(session: Session, book: Book) -> None:
    mark = last_id(session)
    programs.update_partner(session, SYSTEM, book.acme.id, region="LATAM")
    entry = only_entry(session, mark)
    assert (entry.actor, entry.actor_kind, entry.role, entry.partner_id) == (
        "system:test", "system", "system", None
    )  # fmt: skip
    user = programs.add_partner_user(
        session, SYSTEM, book.acme.id, email="ada@acme.example", name="Ada", password=PASSWORD
    )
    mark = last_id(session)
    partner = Actor("user", str(user.id), "partner", book.acme.id)
    auth.issue_token(session, partner, user.id, name="mine")
    entry = only_entry(session, mark)
    assert (entry.actor, entry.role, entry.partner_id, entry.subject_partner_id) == (
        f"user:{user.id}", "partner", book.acme.id, book.acme.id
    )  # fmt: skip


def test_a_request_id_scope_marks_what_a_command_or_job_records(
    session: Session, actor: Actor, book: Book
) -> None:
    mark = last_id(session)
    with audit.request_id_scope("nightly-2026-08-15") as request_id:
        assert audit.current_request_id() == request_id == "nightly-2026-08-15"
        programs.update_partner(session, actor, book.acme.id, tier="platinum")
    assert audit.current_request_id() is None
    programs.update_partner(session, actor, book.acme.id, tier="gold")
    first, second = entries_after(session, mark)
    assert (first.request_id, second.request_id) == ("nightly-2026-08-15", None)
    with pytest.raises(ValueError, match="not a request id"), audit.request_id_scope("a b"):
        pass


# --- programs and the catalog -------------------------------------------------------------------


def test_programs_are_created_and_changed_with_before_and_after(
    session: Session, actor: Actor, book: Book
) -> None:
    mark = last_id(session)
    program = programs.create_program(
        session, actor, code="MDF27", name="MDF 2027", kind="mdf", currency="EUR",
        share_bp=5000,
    )  # fmt: skip
    entry = check(
        only_entry(session, mark), "program.create", "program", program.id,
        summary="Created mdf program MDF27 (MDF 2027) in EUR", subject_partner_id=None,
    )  # fmt: skip
    after = audit.loads(entry.after)
    assert after is not None
    assert (after["code"], after["currency"], after["share_bp"], after["status"]) == (
        "MDF27", "EUR", 5000, "active"
    )  # fmt: skip

    mark = last_id(session)
    programs.update_program(
        session, actor, program.id, name="MDF 2027 (EU)", status="closed", share_bp=5000
    )
    check(
        only_entry(session, mark), "program.update", "program", program.id,
        before={"name": "MDF 2027", "status": "active"},
        after={"name": "MDF 2027 (EU)", "status": "closed"},
        summary="Changed program MDF27: name “MDF 2027” → “MDF 2027 (EU)”,"
        " status active → closed",
    )  # fmt: skip
    mark = last_id(session)
    programs.update_program(session, actor, program.id, status="closed")  # nothing changes
    assert entries_after(session, mark) == []


def test_activities_are_added_and_changed(session: Session, actor: Actor, book: Book) -> None:
    mark = last_id(session)
    activity = programs.add_activity(
        session, actor, book.mdf.id, code="webinar", name="Webinar", proof=["invoice"],
        cap=500_000,
    )  # fmt: skip
    check(
        only_entry(session, mark), "activity.create", "activity", activity.id,
        summary="Added activity webinar (Webinar) to program MDF26",
        after={"program_id": book.mdf.id, "code": "webinar", "name": "Webinar",
               "description": "", "proof": "invoice", "cap": 500_000, "active": True},
    )  # fmt: skip
    mark = last_id(session)
    programs.update_activity(session, actor, activity.id, active=False, cap=None)
    check(
        only_entry(session, mark), "activity.update", "activity", activity.id,
        before={"active": True, "cap": 500_000}, after={"active": False, "cap": None},
        summary="Changed activity webinar of program MDF26: active True → False,"
        " cap 500000 → none",
    )  # fmt: skip


def test_accrual_rates_record_the_rate_they_replace(
    session: Session, actor: Actor, book: Book
) -> None:
    mark = last_id(session)
    rate = programs.set_accrual_rate(session, actor, book.coop.id, tier="Gold", rate_bp=250)
    check(
        only_entry(session, mark), "accrual_rate.set", "accrual_rate", rate.id, before=None,
        after={"program_id": book.coop.id, "tier": "Gold", "product_line": "", "rate_bp": 250},
        summary="Set the COOP26 co-op rate for Gold and any product line to 2.5%",
    )  # fmt: skip
    mark = last_id(session)
    programs.set_accrual_rate(session, actor, book.coop.id, tier="gold", rate_bp=300)
    check(
        only_entry(session, mark), "accrual_rate.set", "accrual_rate", rate.id,
        before={"rate_bp": 250},
        summary="Set the COOP26 co-op rate for Gold and any product line to 3% (was 2.5%)",
    )  # fmt: skip
    mark = last_id(session)
    programs.set_accrual_rate(session, actor, book.coop.id, tier="gold", rate_bp=300)
    assert entries_after(session, mark) == []


# --- partners, contacts, partner users ----------------------------------------------------------


def test_partners_and_contacts_are_recorded_about_their_partner(
    session: Session, actor: Actor, book: Book
) -> None:
    mark = last_id(session)
    programs.update_partner(session, actor, book.acme.id, tier="silver", status="suspended")
    check(
        only_entry(session, mark), "partner.update", "partner", book.acme.id,
        subject_partner_id=book.acme.id,
        before={"tier": "gold", "status": "active"},
        after={"tier": "silver", "status": "suspended"},
        summary="Changed partner ACME: tier gold → silver, status active → suspended",
    )  # fmt: skip
    mark = last_id(session)
    contact = programs.add_contact(
        session, actor, book.acme.id, name="Ada Acme", email="Ada@Acme.example", is_primary=True
    )
    check(
        only_entry(session, mark), "contact.create", "contact", contact.id,
        subject_partner_id=book.acme.id,
        summary="Added the primary contact Ada Acme <ada@acme.example> to partner ACME",
        after={"partner_id": book.acme.id, "name": "Ada Acme", "email": "ada@acme.example",
               "phone": "", "title": "", "is_primary": True},
    )  # fmt: skip


def test_a_partner_user_is_one_entry_and_no_password(
    session: Session, actor: Actor, book: Book
) -> None:
    mark = last_id(session)
    user = programs.add_partner_user(
        session, actor, book.bolt.id, email="bo@bolt.example", name="Bo Bolt", password=PASSWORD
    )
    entry = check(
        only_entry(session, mark), "user.create", "user", user.id,
        subject_partner_id=book.bolt.id,
        summary="Created partner user bo@bolt.example (Bo Bolt) for partner BOLT",
        after={"email": "bo@bolt.example", "name": "Bo Bolt", "role": "partner",
               "partner_id": book.bolt.id},
    )  # fmt: skip
    assert_nothing_secret(entry, PASSWORD, user.password_hash)


def assert_nothing_secret(entry: AuditEntry, *secrets: str) -> None:
    for column in ("summary", "before", "after"):
        text = getattr(entry, column) or ""
        for secret in secrets:
            assert secret not in text, (column, secret)
        assert "password_hash" not in text and "token_hash" not in text


# --- users and tokens ---------------------------------------------------------------------------


def test_users_and_tokens_leave_entries_without_secrets(session: Session, book: Book) -> None:
    mark = last_id(session)
    user = auth.create_user(
        session, ADMIN, email="aud@example.com", name="Au Ditor", role="auditor",
        password=PASSWORD,
    )  # fmt: skip
    check(
        only_entry(session, mark), "user.create", "user", user.id, actor="user:admin-1",
        subject_partner_id=None, summary="Created auditor user aud@example.com (Au Ditor)",
    )  # fmt: skip

    mark = last_id(session)
    issued = auth.issue_token(session, ADMIN, user.id, name="exports")
    entry = check(
        only_entry(session, mark), "token.issue", "api_token", issued.token.id,
        summary="Issued the auditor API token “exports” to aud@example.com",
        after={"user_id": user.id, "name": "exports", "role": "auditor"},
    )  # fmt: skip
    assert_nothing_secret(entry, issued.secret, issued.secret[:12], issued.token.token_hash)

    mark = last_id(session)
    new_password = "another long passphrase here"
    auth.set_password(session, ADMIN, user.id, new_password)
    entry = check(
        only_entry(session, mark), "user.set_password", "user", user.id,
        summary="Set a new password for aud@example.com", before=None, after=None,
    )  # fmt: skip
    assert_nothing_secret(entry, new_password, user.password_hash)

    mark = last_id(session)
    auth.revoke_token(session, ADMIN, issued.token.id)
    check(
        only_entry(session, mark), "token.revoke", "api_token", issued.token.id,
        summary="Revoked the API token “exports” of aud@example.com",
        before={"revoked_at": None},
    )  # fmt: skip
    mark = last_id(session)
    auth.revoke_token(session, ADMIN, issued.token.id)  # already revoked: nothing happens
    assert entries_after(session, mark) == []

    second = auth.issue_token(session, ADMIN, user.id, name="books")
    mark = last_id(session)
    auth.disable_user(session, ADMIN, user.id)
    entry = check(
        only_entry(session, mark), "user.disable", "user", user.id,
        summary="Disabled auditor user aud@example.com and revoked 1 API token",
        before={"disabled_at": None},
    )  # fmt: skip
    after = audit.loads(entry.after)
    assert after is not None and after["revoked_token_ids"] == [second.token.id]
    assert after["disabled_at"].endswith("+00:00")
    mark = last_id(session)
    auth.disable_user(session, ADMIN, user.id)  # already disabled
    assert entries_after(session, mark) == []


def test_signing_in_is_not_an_audit_entry(session: Session, book: Book) -> None:
    auth.create_user(
        session, ADMIN, email="f@example.com", name="F", role="finance", password=PASSWORD
    )
    mark = last_id(session)
    auth.authenticate(session, "f@example.com", PASSWORD)
    assert entries_after(session, mark) == []


# --- money --------------------------------------------------------------------------------------


def test_budget_changes_are_recorded_once_per_key(
    session: Session, actor: Actor, book: Book
) -> None:
    mark = last_id(session)
    record = programs.fund_budget(session, actor, book.mdf.id, 150_000, reason="top up", key="b1")
    check(
        only_entry(session, mark), "budget.fund", "program", book.mdf.id,
        summary="Funded the MDF26 budget with 1,500.00 USD: top up",
        after={"amount": "1500.00", "currency": "USD", "reason": "top up",
               "transfer_id": record.id},
    )  # fmt: skip
    mark = last_id(session)
    replay = programs.fund_budget(session, actor, book.mdf.id, 150_000, reason="top up", key="b1")
    assert replay.replayed and entries_after(session, mark) == []
    programs.fund_budget(session, actor, book.mdf.id, -50_000, reason="cut")
    check(
        only_entry(session, mark), "budget.withdraw", "program", book.mdf.id,
        summary="Took 500.00 USD back from the MDF26 budget: cut",
    )  # fmt: skip


def test_an_allocation_is_recorded_once_and_a_replay_adds_nothing(
    session: Session, actor: Actor, book: Book
) -> None:
    mark = last_id(session)
    allocation = programs.allocate(
        session, actor, book.mdf.id, book.acme.id, 150_000, reason="Q3 plan", key="a1", now=NOW
    )
    session.commit()
    check(
        only_entry(session, mark), "allocation.create", "allocation", allocation.id,
        subject_partner_id=book.acme.id,
        summary="Allocated 1,500.00 USD to ACME for FY2026 Q3 from the MDF26 budget: Q3 plan",
        after={"kind": "allocation", "program_id": book.mdf.id, "partner_id": book.acme.id,
               "fund_id": allocation.fund_id, "period": "FY2026 Q3", "amount": "1500.00",
               "currency": "USD", "reason": "Q3 plan", "transfer_id": allocation.transfer_id,
               "reverses_id": None, "import_id": None},
    )  # fmt: skip
    mark = last_id(session)
    again = programs.allocate(
        session, actor, book.mdf.id, book.acme.id, 150_000, reason="Q3 plan", key="a1", now=NOW
    )
    assert again.id == allocation.id
    assert entries_after(session, mark) == []


@pytest.mark.parametrize(
    "call",
    [
        # refused before anything moved
        lambda s, a, b: programs.allocate(s, a, b.mdf.id, b.acme.id, 1_000, reason="", now=NOW),
        # refused by the ledger: more than the budget holds
        lambda s, a, b: programs.allocate(
            s, a, b.mdf.id, b.acme.id, 10**12, reason="too much", now=NOW
        ),
        lambda s, a, b: programs.update_partner(s, a, b.acme.id, name="Acme", status="gone"),
        lambda s, a, b: programs.create_program(
            s, a, code="X1", name="X", kind="mdf", currency="USD", rollover_days=5
        ),
        lambda s, a, b: auth.create_user(
            s, ADMIN, email="x@example.com", name="X", role="finance", password="short"
        ),
        lambda s, a, b: programs.import_allocations(
            s, a, b.mdf.id, b"partner,amount\nACME,1.00\nNOPE,2.00\n", filename="bad.csv", now=NOW
        ),
    ],
)
def test_a_refused_call_leaves_no_entry(
    session: Session, actor: Actor, book: Book, call: Any
) -> None:
    mark = last_id(session)
    with pytest.raises((ValidationError, Conflict)):
        call(session, actor, book)
    session.rollback()
    assert entries_after(session, mark) == []
    assert audit.verify_audit(session).ok


def test_a_rolled_back_transaction_takes_its_entries_with_it(
    session: Session, actor: Actor, book: Book
) -> None:
    mark = last_id(session)
    programs.update_partner(session, actor, book.acme.id, region="APAC")
    programs.allocate(session, actor, book.mdf.id, book.acme.id, 1_000, reason="r", now=NOW)
    assert len(entries_after(session, mark)) == 2
    session.rollback()
    assert entries_after(session, mark) == []
    programs.update_partner(session, actor, book.acme.id, region="EMEA")
    session.commit()
    assert only_entry(session, mark).id == mark + 1  # the chain goes on from where it was
    assert audit.verify_audit(session).ok


def test_adjustments_and_reversals_are_recorded_once(
    session: Session, actor: Actor, book: Book
) -> None:
    allocation = programs.allocate(
        session, actor, book.mdf.id, book.acme.id, 100_000, reason="plan", now=NOW
    )
    mark = last_id(session)
    down = programs.adjust_fund(
        session, actor, allocation.fund_id, -2_500, reason="overstated", key="adj", now=NOW
    )
    check(
        only_entry(session, mark), "allocation.adjust", "allocation", down.id,
        subject_partner_id=book.acme.id,
        summary="Adjusted ACME's FY2026 Q3 fund in MDF26 down by 25.00 USD: overstated",
    )  # fmt: skip
    mark = last_id(session)
    programs.adjust_fund(
        session, actor, allocation.fund_id, -2_500, reason="overstated", key="adj", now=NOW
    )
    assert entries_after(session, mark) == []

    other = programs.allocate(
        session, actor, book.mdf.id, book.bolt.id, 100_000, reason="plan", now=NOW
    )
    mark = last_id(session)
    reversal = programs.reverse_allocation(
        session, actor, other.id, reason="wrong partner", key="rev", now=NOW
    )
    entry = check(
        only_entry(session, mark), "allocation.reverse", "allocation", reversal.id,
        subject_partner_id=book.bolt.id,
        summary=f"Reversed allocation #{other.id} of 1,000.00 USD to BOLT for FY2026 Q3"
        " in MDF26: wrong partner",
    )  # fmt: skip
    after = audit.loads(entry.after)
    assert after is not None
    assert (after["amount"], after["reverses_id"]) == ("-1000.00", other.id)
    mark = last_id(session)
    programs.reverse_allocation(
        session, actor, other.id, reason="wrong partner", key="rev", now=NOW
    )
    assert entries_after(session, mark) == []
    with pytest.raises(Conflict, match="already reversed"):
        programs.reverse_allocation(session, actor, other.id, reason="again", now=NOW)
    assert entries_after(session, mark) == []


def test_expiry_leaves_one_entry_per_forfeited_fund(
    session: Session, actor: Actor, book: Book
) -> None:
    for partner, amount in ((book.acme, 30_000), (book.bolt, 12_345)):
        programs.allocate(session, actor, book.mdf.id, partner.id, amount, reason="Q3", now=NOW)
    session.commit()
    later = NOW + timedelta(days=60)  # FY2026 Q3 ended on 30 September
    mark = last_id(session)
    expired = programs.expire_funds(session, SYSTEM, now=later)
    assert len(expired) == 2
    entries = entries_after(session, mark)
    assert [(e.action, e.object_type, e.object_id) for e in entries] == [
        ("fund.expire", "fund", str(f.fund_id)) for f in expired
    ]
    assert [e.subject_partner_id for e in entries] == [book.acme.id, book.bolt.id]
    assert entries[1].summary == (
        "Expired 123.45 USD unspent in BOLT's FY2026 Q3 fund of MDF26 (usable until 2026-09-30)"
    )
    after = audit.loads(entries[1].after)
    assert after is not None and isinstance(after.pop("transfer_id"), int)
    assert after == {"amount": "123.45", "currency": "USD", "available_until": "2026-09-30"}
    mark = last_id(session)
    assert programs.expire_funds(session, SYSTEM, now=later) == []
    assert entries_after(session, mark) == []


def test_an_import_is_one_entry_with_its_counts(session: Session, actor: Actor, book: Book) -> None:
    mark = last_id(session)
    report = programs.import_allocations(
        session, actor, book.mdf.id, b"partner,amount\nACME,10.00\nBOLT,5.50\n",
        filename="q3.csv", now=NOW,
    )  # fmt: skip
    check(
        only_entry(session, mark), "import.allocations", "import", report.import_id,
        subject_partner_id=None,
        summary="Imported allocations from q3.csv into MDF26 for FY2026 Q3: 2 rows, 2 applied,"
        " 0 skipped, 15.50 USD moved",
    )  # fmt: skip
    mark = last_id(session)
    with pytest.raises(Conflict, match="already imported"):
        programs.import_allocations(
            session, actor, book.mdf.id, b"partner,amount\nACME,10.00\nBOLT,5.50\n",
            filename="q3.csv", now=NOW,
        )  # fmt: skip
    assert entries_after(session, mark) == []

    purchases = (
        b"partner,reference,date,amount\nACME,I-1,2026-08-01,1000.00\nBOLT,I-2,2026-08-02,500.00\n"
    )
    report = programs.import_purchases(
        session, actor, book.coop.id, purchases, filename="sales.csv", now=NOW
    )
    entry = check(
        only_entry(session, mark), "import.purchases", "import", report.import_id,
        summary="Imported purchases from sales.csv into COOP26 for FY2026 Q3: 2 rows,"
        " 2 applied, 0 skipped, 30.00 USD moved",
    )  # fmt: skip
    after = audit.loads(entry.after)
    assert after is not None and (after["rows"], after["applied"], after["amount"]) == (
        2, 2, "30.00"
    )  # fmt: skip
    mark = last_id(session)
    report = programs.import_purchases(
        session, actor, book.coop.id, purchases, filename="sales.csv", now=NOW
    )
    entry = only_entry(session, mark)  # a new import, in which every row was seen before
    assert entry.summary.endswith("2 rows, 0 applied, 2 skipped, 0.00 USD moved")


# --- what record takes --------------------------------------------------------------------------


def test_record_keeps_secrets_and_nonsense_out(session: Session, actor: Actor, book: Book) -> None:
    mark = last_id(session)

    def record(**kwargs: Any) -> AuditEntry:
        values = {"object_type": "partner", "object_id": 1, "summary": "s", **kwargs}
        return audit.record(session, actor, values.pop("action", "partner.note"), **values)

    for bad, message in (
        ({"after": {"password": "x"}}, "never goes into the audit log"),
        ({"before": {"user": {"password_hash": "x"}}}, "never goes into the audit log"),
        ({"after": {"tokens": [{"secret": "x"}]}}, "never goes into the audit log"),
        ({"action": "Partner Note"}, "dotted lower-case verb"),
        ({"action": "note"}, "dotted lower-case verb"),
        ({"object_type": "Partner"}, "object type"),
        ({"object_id": ""}, "object id"),
        ({"summary": "  "}, "needs a summary"),
    ):
        with pytest.raises(ValueError, match=message):
            record(**bad)
    assert entries_after(session, mark) == []


def test_before_and_after_hold_plain_json(session: Session, actor: Actor, book: Book) -> None:
    from datetime import date
    from decimal import Decimal

    from mdfledger.programs import ProgramStatus

    entry = audit.record(
        session, actor, "partner.note", object_type="partner", object_id=book.acme.id,
        summary="x" * 3000,
        after={"when": NOW, "day": date(2026, 1, 2), "rate": Decimal("2.50"),
               "status": ProgramStatus.CLOSED, "tags": {"b", "a"}, "ünïcode": "✓"},
    )  # fmt: skip
    assert json.loads(entry.after or "") == {
        "when": "2026-08-15T12:00:00+00:00", "day": "2026-01-02", "rate": "2.50",
        "status": "closed", "tags": ["a", "b"], "ünïcode": "✓",
    }  # fmt: skip
    assert len(entry.summary) == 2000 and entry.summary.endswith("…")
    session.commit()
    assert audit.verify_audit(session).ok
