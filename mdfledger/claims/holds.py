"""Money held for fund requests and claims: pending ledger transfers from the partner's funds
to the partner's claims-payable account. Internal to the claims package; never commits.

A request's hold expires at its claim deadline. Submitting a claim moves the hold to the claim
(released and taken again from the same funds in one batch) without an expiry, so a claim in
review never loses its money; approval posts it (in part: the rest is released).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from mdfledger import ledger
from mdfledger.actor import Actor
from mdfledger.claims import rules
from mdfledger.claims.models import Claim, FundRequest, Hold
from mdfledger.errors import Conflict
from mdfledger.ledger import AccountKind, ExpirePending, NewTransfer, PostPending, VoidPending
from mdfledger.ledger.models import Transfer
from mdfledger.money import format_amount
from mdfledger.programs.models import Fund, Partner, Program
from mdfledger.programs.service import account_name

Owner = FundRequest | Claim


def payable_account(session: Session, actor: Actor, program: Program, partner: Partner) -> int:
    """The partner's claims-payable account in the program, opened on first use."""
    account = ledger.open_account(
        session, actor,
        key=f"program:{program.code}:partner:{partner.code}:claims_payable",
        name=account_name(f"{partner.name}: {program.name} claims payable"),
        kind=AccountKind.CLAIMS_PAYABLE, currency=program.currency,
        program_id=program.id, partner_id=partner.id,
    )  # fmt: skip
    return account.id


def open_holds(session: Session, owner: Owner) -> list[Hold]:
    column = Hold.request_id if isinstance(owner, FundRequest) else Hold.claim_id
    return list(
        session.scalars(select(Hold).where(column == owner.id, Hold.open).order_by(Hold.id))
    )


def held(session: Session, owner: Owner) -> int:
    return sum(h.amount for h in open_holds(session, owner))


def _owner_fields(owner: Owner) -> dict[str, int | None]:
    if isinstance(owner, FundRequest):
        return {"request_id": owner.id, "claim_id": None}
    return {"request_id": None, "claim_id": owner.id}


def _ref(owner: Owner) -> tuple[str, str]:
    return ("fund_request" if isinstance(owner, FundRequest) else "claim", str(owner.id))


def _next_key(session: Session, owner: Owner) -> int:
    """Hold keys count up per owner, so a hold taken again later never replays an old one."""
    column = Hold.request_id if isinstance(owner, FundRequest) else Hold.claim_id
    return len(session.scalars(select(Hold.id).where(column == owner.id)).all())


def reserve(
    session: Session,
    actor: Actor,
    owner: Owner,
    program: Program,
    partner: Partner,
    amount: int,
    *,
    day: date,
    expires_at: datetime | None,
    now: datetime | None = None,
) -> list[Hold]:
    """Hold `amount` from the partner's live funds, the soonest expiring first."""
    funds = session.execute(
        select(Fund)
        .where(
            Fund.program_id == program.id,
            Fund.partner_id == partner.id,
            Fund.available_until >= day,
        )
        .order_by(Fund.available_until, Fund.period_start)
    ).scalars()
    free = [(f, ledger.balance(session, f.account_id).available) for f in funds]
    try:
        plan = rules.plan_holds([(i, have) for i, (_, have) in enumerate(free)], amount)
    except rules.ShortOfFunds as short:
        raise Conflict(
            f"{partner.name} has {format_amount(short.available, program.currency)}"
            f" {program.currency} available in {program.code}; "
            f"{format_amount(amount, program.currency)} is more",
            field="amount",
            available=short.available,
        ) from None
    payable = payable_account(session, actor, program, partner)
    code = rules.RESERVATION if isinstance(owner, FundRequest) else rules.REIMBURSEMENT
    ref_type, ref_id = _ref(owner)
    first = _next_key(session, owner)
    commands = [
        NewTransfer(
            f"{ref_type}:{owner.id}:hold:{first + n}", free[i][0].account_id, payable, take,
            code, day, True, expires_at, ref_type, ref_id,
        )
        for n, (i, take) in enumerate(plan)
    ]  # fmt: skip
    records = _run(session, actor, commands, now)
    holds = [
        Hold(
            fund_id=free[i][0].id, transfer_id=r.id, amount=take, open=True, **_owner_fields(owner)
        )
        for (i, take), r in zip(plan, records, strict=True)
    ]
    session.add_all(holds)
    session.flush()
    return holds


def move(
    session: Session,
    actor: Actor,
    source: Owner,
    target: Owner,
    *,
    day: date,
    expires_at: datetime | None,
    now: datetime | None = None,
) -> list[Hold]:
    """Move every open hold of `source` to `target`: the same funds and amounts, one batch."""
    old = open_holds(session, source)
    if not old:
        return []
    pending = {h.id: _pending(session, h) for h in old}
    code = rules.RESERVATION if isinstance(target, FundRequest) else rules.REIMBURSEMENT
    ref_type, ref_id = _ref(target)
    first = _next_key(session, target)
    source_ref, _ = _ref(source)
    commands: list[ledger.Command] = []
    for n, h in enumerate(old):
        commands.append(VoidPending(f"{source_ref}:{source.id}:release:{h.id}", h.transfer_id, day))
        commands.append(
            NewTransfer(
                f"{ref_type}:{target.id}:hold:{first + n}", pending[h.id].debit_account_id,
                pending[h.id].credit_account_id, h.amount, code, day, True, expires_at,
                ref_type, ref_id,
            )
        )  # fmt: skip
    records = _run(session, actor, commands, now)
    for h in old:
        h.open = False
    holds = [
        Hold(
            fund_id=h.fund_id, transfer_id=records[2 * n + 1].id, amount=h.amount, open=True,
            **_owner_fields(target),
        )
        for n, h in enumerate(old)
    ]  # fmt: skip
    session.add_all(holds)
    session.flush()
    return holds


def settle(
    session: Session,
    actor: Actor,
    owner: Owner,
    amount: int,
    *,
    day: date,
    now: datetime | None = None,
) -> None:
    """Post `amount` of the owner's holds to claims payable and release the rest (0: all)."""
    holds = open_holds(session, owner)
    ref_type, _ = _ref(owner)
    plan = rules.plan_release([(h, h.amount) for h in holds], amount)
    commands: list[ledger.Command] = [
        PostPending(f"{ref_type}:{owner.id}:post:{h.id}", h.transfer_id, post, day)
        if post
        else VoidPending(f"{ref_type}:{owner.id}:release:{h.id}", h.transfer_id, day)
        for h, post in plan
    ]
    _run(session, actor, commands, now)
    for h in holds:
        h.open = False
    session.flush()


def release(
    session: Session, actor: Actor, owner: Owner, *, day: date, now: datetime | None = None
) -> None:
    settle(session, actor, owner, 0, day=day, now=now)


def lapsed(session: Session, actor: Actor, owner: Owner, *, now: datetime) -> None:
    """Close holds whose deadline passed: expire those the ledger's sweep has not reached."""
    holds = open_holds(session, owner)
    resolved = set(
        session.scalars(
            select(Transfer.pending_id).where(
                Transfer.pending_id.in_([h.transfer_id for h in holds])
            )
        )
    )
    _run(
        session,
        actor,
        [ExpirePending(h.transfer_id) for h in holds if h.transfer_id not in resolved],
        now,
    )
    for h in holds:
        h.open = False
    session.flush()


def _pending(session: Session, hold: Hold) -> Transfer:
    transfer = session.get(Transfer, hold.transfer_id)
    assert transfer is not None
    return transfer


def _run(
    session: Session, actor: Actor, commands: list[ledger.Command], now: datetime | None
) -> list[ledger.TransferRecord]:
    try:
        return ledger.execute(session, actor, commands, now=now)
    except ledger.BatchRejected as rejected:
        raise rejected.failures[0].error from None
