"""Ledger writes: open and close accounts, and apply batches of transfers atomically.

Every write goes through `execute`: it checks each command's shape, loads what the commands
refer to, locks the chain head (one row: gap-free ids, a single hash chain, and a total order
of writers, so no lock cycle can form) and then the touched accounts in id order, decides each
command with the pure rules, and writes everything with a handful of bulk statements
(`writer.py`). It flushes, never commits: the caller's request, command or job owns the
transaction.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import any_, bindparam, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from mdfledger.actor import Actor
from mdfledger.clock import ensure_utc, utcnow
from mdfledger.errors import Conflict, ValidationError
from mdfledger.ledger import rules
from mdfledger.ledger.commands import (
    CODE_RE,
    KEY_MAX,
    Command,
    ExpirePending,
    NewTransfer,
    PostPending,
    Reverse,
    TransferRecord,
    VoidPending,
    check_shape,
    check_text,
    is_id,
)
from mdfledger.ledger.errors import (
    AccountClosed,
    AccountNotFound,
    AlreadyReversed,
    BatchRejected,
    CurrencyMismatch,
    IdempotencyConflict,
    InvalidTransfer,
    LedgerError,
    LimitExceeded,
    PendingNotOpen,
    TransferFailure,
    TransferNotFound,
)
from mdfledger.ledger.models import Account, AccountKind, ChainHead, Entry, Transfer
from mdfledger.ledger.models import TransferType as T
from mdfledger.ledger.writer import BALANCE_NAMES, BulkWriter
from mdfledger.money import format_amount, validate_currency

ACTOR_MAX = 200  # ledger_transfers.actor
_IN_CHUNK = 1000  # ids per IN (...) list: well under every driver's parameter limit
# Fields a replayed key must repeat exactly (defaults the caller left out are not compared).
_REPLAY_FIELDS = (
    "type", "debit_account_id", "credit_account_id", "amount", "code", "pending_id",
    "reverses_id", "expires_at", "effective_date", "ref_type", "ref_id", "memo",
)  # fmt: skip
_ACCOUNT_FIXED = (
    "kind", "currency", "code", "program_id", "partner_id",
    "debits_must_not_exceed_credits", "credits_must_not_exceed_debits",
)  # fmt: skip

_TRANSFER_COLUMNS = itemgetter(*(c.name for c in Transfer.__table__.columns))  # row -> tuple
_GIVEN_WITHOUT_DATE = frozenset({"type", "memo"})
_GIVEN_WITH_DATE = _GIVEN_WITHOUT_DATE | {"effective_date"}
_GIVEN_NEW = frozenset(
    {"debit_account_id", "credit_account_id", "amount", "code", "expires_at", "ref_type", "ref_id"}
)


# --- accounts ---------------------------------------------------------------------------------


def open_account(
    session: Session,
    actor: Actor,
    *,
    key: str,
    name: str,
    kind: str,
    currency: str,
    code: str | None = None,
    program_id: int | None = None,
    partner_id: int | None = None,
    debits_must_not_exceed_credits: bool = False,
    credits_must_not_exceed_debits: bool = False,
    now: datetime | None = None,
) -> Account:
    """Open an account, or return the one already opened under `key` with the same fields."""
    _check_actor(actor)
    for field, value in (("key", key), ("name", name)):
        try:
            check_text(value, field, KEY_MAX, optional=False)
        except InvalidTransfer as exc:
            raise ValidationError(exc.message, field=field) from None
    if not name.strip():
        raise ValidationError("account name must not be blank", field="name")
    if not isinstance(kind, str) or kind not in set(AccountKind):
        raise ValidationError(
            f"unknown account kind {kind!r}; one of {', '.join(AccountKind)}", field="kind"
        )
    validate_currency(currency)
    code = kind if code is None else code
    if not isinstance(code, str) or not CODE_RE.match(code):
        raise ValidationError(f"account code {code!r} must match {CODE_RE.pattern}", field="code")
    for field, value in (("program_id", program_id), ("partner_id", partner_id)):
        if value is not None and not is_id(value):
            raise ValidationError(f"{field} must be a positive integer id", field=field)
    flags = (debits_must_not_exceed_credits, credits_must_not_exceed_debits)
    if not all(isinstance(flag, bool) for flag in flags):
        raise ValidationError("account limits are true or false", field="flags")
    if all(flags):
        raise ValidationError("an account takes at most one of the two limits", field="flags")
    _lock_head(session)  # one opener at a time, so two requests cannot race for the same key
    wanted = {
        "kind": str(kind),
        "currency": currency,
        "code": code,
        "program_id": program_id,
        "partner_id": partner_id,
        "debits_must_not_exceed_credits": debits_must_not_exceed_credits,
        "credits_must_not_exceed_debits": credits_must_not_exceed_debits,
    }
    existing = session.scalar(select(Account).where(Account.key == key))
    if existing is not None:
        for field in _ACCOUNT_FIXED:
            if getattr(existing, field) != wanted[field]:
                raise IdempotencyConflict(
                    f"account {key!r} already exists with a different {field}",
                    field=field,
                    account_id=existing.id,
                )
        return existing
    account = Account(
        key=key,
        name=name.strip(),
        created_at=ensure_utc(now or utcnow()),
        debits_pending=0,
        debits_posted=0,
        credits_pending=0,
        credits_posted=0,
        **wanted,
    )
    session.add(account)
    session.flush()
    return account


def close_account(
    session: Session, actor: Actor, account_id: int, *, now: datetime | None = None
) -> Account:
    """Close an account to new transfers. Refused while it holds open reservations."""
    _check_actor(actor)
    if not is_id(account_id):
        raise AccountNotFound(f"account {account_id!r} does not exist", account_id=account_id)
    _lock_head(session)  # the lock order of every ledger write: head, then accounts
    locked = _lock_accounts(session, {account_id})
    if account_id not in locked:
        raise AccountNotFound(f"account {account_id} does not exist", account_id=account_id)
    account = session.get(Account, account_id, populate_existing=True)
    assert account is not None
    if account.closed_at is not None:
        return account
    if account.debits_pending or account.credits_pending:
        raise Conflict(
            f"account {account_id} has open reservations; post or void them first",
            account_id=account_id,
        )
    account.closed_at = ensure_utc(now or utcnow())
    session.flush()
    return account


# --- transfers --------------------------------------------------------------------------------


def transfer(
    session: Session, actor: Actor, command: Command, *, now: datetime | None = None
) -> TransferRecord:
    """Apply one command; raises the failing transfer's own error rather than a batch error."""
    try:
        return execute(session, actor, [command], now=now)[0]
    except BatchRejected as exc:
        raise exc.failures[0].error from None


def reserve(
    session: Session,
    actor: Actor,
    *,
    key: str,
    debit_account_id: int,
    credit_account_id: int,
    amount: int,
    code: str,
    expires_at: datetime | None = None,
    effective_date: date | None = None,
    ref_type: str | None = None,
    ref_id: str | None = None,
    memo: str | None = None,
    now: datetime | None = None,
) -> TransferRecord:
    """Hold `amount` with a pending transfer until it is posted, voided or expires."""
    command = NewTransfer(
        key, debit_account_id, credit_account_id, amount, code, effective_date, True,
        expires_at, ref_type, ref_id, memo,
    )  # fmt: skip
    return transfer(session, actor, command, now=now)


def post(
    session: Session,
    actor: Actor,
    pending_id: int,
    *,
    key: str,
    amount: int | None = None,
    effective_date: date | None = None,
    memo: str | None = None,
    now: datetime | None = None,
) -> TransferRecord:
    """Post a reservation in full, or in part (the rest is released)."""
    return transfer(
        session, actor, PostPending(key, pending_id, amount, effective_date, memo), now=now
    )


def void(
    session: Session,
    actor: Actor,
    pending_id: int,
    *,
    key: str,
    effective_date: date | None = None,
    memo: str | None = None,
    now: datetime | None = None,
) -> TransferRecord:
    """Release a reservation in full."""
    return transfer(session, actor, VoidPending(key, pending_id, effective_date, memo), now=now)


def reverse(
    session: Session,
    actor: Actor,
    transfer_id: int,
    *,
    key: str,
    effective_date: date | None = None,
    memo: str | None = None,
    now: datetime | None = None,
) -> TransferRecord:
    """Undo a posted transfer with an opposite one that names it."""
    return transfer(session, actor, Reverse(key, transfer_id, effective_date, memo), now=now)


def expire_overdue(
    session: Session, actor: Actor, *, now: datetime | None = None, limit: int = 1000
) -> list[TransferRecord]:
    """Expire up to `limit` pending transfers whose deadline has passed, oldest first.

    A reservation posted or voided between the search and the locks is skipped, so one such
    race never holds back the rest of the sweep.
    """
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ValidationError("limit must be a positive integer", field="limit")
    now = ensure_utc(now or utcnow())
    resolution = Transfer.__table__.alias("resolution")
    overdue = session.scalars(
        select(Transfer.id)
        .outerjoin(resolution, resolution.c.pending_id == Transfer.id)
        .where(
            Transfer.type == T.PENDING,
            Transfer.expires_at <= now,
            resolution.c.id.is_(None),
        )
        .order_by(Transfer.expires_at, Transfer.id)
        .limit(limit)
    ).all()
    commands = [ExpirePending(pid) for pid in overdue]
    try:
        return execute(session, actor, commands, now=now)
    except BatchRejected as rejected:
        # Nothing was written, and the locks taken stay held: the retry sees the same state.
        raced = {f.index for f in rejected.failures if isinstance(f.error, PendingNotOpen)}
        if len(raced) < len(rejected.failures):
            raise
        rest = [c for i, c in enumerate(commands) if i not in raced]
        return execute(session, actor, rest, now=now)


def execute(
    session: Session, actor: Actor, commands: Sequence[Command], *, now: datetime | None = None
) -> list[TransferRecord]:
    """Apply commands in order, all or nothing. Returns one record per command, in order.

    Raises BatchRejected naming every command that failed; then nothing was written.
    """
    commands = list(commands)
    if not commands:
        return []
    _check_actor(actor)
    now = ensure_utc(now or utcnow())
    failures: list[TransferFailure] = []
    well_formed: list[tuple[int, Command]] = []
    for index, command in enumerate(commands):
        try:
            check_shape(command)
            well_formed.append((index, command))
        except LedgerError as error:
            failures.append(TransferFailure(index, str(getattr(command, "key", "")), error))
    session.flush()
    # The well-formed rest is still decided, so the caller learns every failure at once.
    batch = _Batch(session, actor, now, [command for _, command in well_formed])
    with _collector_paused():  # not while waiting for locks: only the CPU-bound part
        results: list[TransferRecord] = []
        for index, command in well_formed:
            try:
                results.append(batch.apply(command))
            except LedgerError as error:
                failures.append(TransferFailure(index, command.key, error))
        if failures:
            raise BatchRejected(sorted(failures, key=lambda f: f.index))
        batch.write()
    return results


@contextmanager
def _collector_paused() -> Iterator[None]:
    """A batch allocates a few dozen short-lived objects per transfer, none of them in cycles,
    and the cyclic collector's passes they trigger cost ~20% of a batch (docs/benchmarks.md).
    Reference counting still frees everything; the collector resumes right after."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@dataclass
class _AccountState:
    id: int
    name: str
    currency: str
    closed: bool
    limits: rules.Limits
    balances: rules.Balances
    definition: str  # what each transfer's hash covers of the account


class _Batch:
    """The working state of one execute call: what was loaded, decided and is to be written."""

    def __init__(
        self, session: Session, actor: Actor, now: datetime, commands: Sequence[Command]
    ) -> None:
        self.session, self.actor = session, actor
        self.today = now.date()
        # Transfers are immutable, so what commands refer to can be read before taking locks.
        referred = {
            c.pending_id if not isinstance(c, Reverse) else c.transfer_id
            for c in commands
            if not isinstance(c, NewTransfer)
        }
        self.referred = _load_transfers(session, referred)
        # The chain head first: it serialises ledger writers, so the account locks taken after
        # it cannot form a cycle, even across several execute calls in one transaction.
        head = _lock_head(session)
        account_ids = {t["debit_account_id"] for t in self.referred.values()}
        account_ids |= {t["credit_account_id"] for t in self.referred.values()}
        for c in commands:
            if isinstance(c, NewTransfer):
                account_ids |= {c.debit_account_id, c.credit_account_id}
        self.accounts = {
            row["id"]: _AccountState(
                row["id"],
                row["name"],
                row["currency"],
                bool(row["closed"]),
                rules.Limits(
                    row["debits_must_not_exceed_credits"], row["credits_must_not_exceed_debits"]
                ),
                rules.Balances(
                    row["debits_pending"],
                    row["debits_posted"],
                    row["credits_pending"],
                    row["credits_posted"],
                ),
                rules.account_definition(row),
            )
            for row in _lock_accounts(session, account_ids).values()
        }
        self.next_id = head["last_transfer_id"] + 1
        self.last_hash = head["last_hash"]
        # Server clock, never behind the previous transfer: created_at follows id order.
        last = head["last_created_at"]
        self.created_at = now if last is None or now > last else last
        keys = {c.key for c in commands}
        self.prior = {
            row["key"]: row for row in _select_in(session, Transfer.__table__.c.key, keys)
        }
        self.resolved = {  # pending id -> type of the transfer that resolved it
            row["pending_id"]: row["type"]
            for row in _select_in(session, Transfer.__table__.c.pending_id, referred)
        }
        self.reversed = {
            row["reverses_id"]
            for row in _select_in(session, Transfer.__table__.c.reverses_id, referred)
        }
        self.written: dict[str, dict[str, Any]] = {}
        self.rows: list[dict[str, Any]] = []
        self.entries: list[tuple[Any, ...]] = []
        self.days: dict[tuple[int, date], list[int]] = {}

    # deciding ----------------------------------------------------------------------------------

    def apply(self, command: Command) -> TransferRecord:
        row, given = self._resolve(command)
        prior = self.written.get(row["key"]) or self.prior.get(row["key"])
        if prior is not None:
            for field in _REPLAY_FIELDS:
                if field in given and prior[field] != row[field]:
                    raise IdempotencyConflict(
                        f"key {row['key']!r} was used for a transfer with a different {field}",
                        field=field,
                        transfer_id=prior["id"],
                    )
            return TransferRecord.from_mapping(prior, replayed=True)
        self._check_state(row)
        pending_amount = self.referred[row["pending_id"]]["amount"] if row["pending_id"] else 0
        pending_delta, posted_delta = rules.effect(row["type"], row["amount"], pending_amount)
        debit = self.accounts[row["debit_account_id"]]
        credit = self.accounts[row["credit_account_id"]]
        new_debit = debit.balances.moved("debit", pending_delta, posted_delta)
        new_credit = credit.balances.moved("credit", pending_delta, posted_delta)
        for account, after in ((debit, new_debit), (credit, new_credit)):
            if rules.overflows(after):
                raise InvalidTransfer(
                    f"account {account.id}'s balances would exceed the largest storable amount",
                    account_id=account.id,
                )
            breach = rules.limit_breach(account.limits, after)
            if breach:
                raise self._limit_error(account, breach, row["amount"])
        row.update(id=self.next_id, created_at=self.created_at, actor=self.actor.label)
        row["hash"] = self.last_hash = rules.chain_hash(
            self.last_hash, row, debit.definition, credit.definition
        )
        self.next_id += 1
        debit.balances, credit.balances = new_debit, new_credit
        for side, account in (("debit", debit), ("credit", credit)):
            # In ledger_entries column order.
            self.entries.append(
                (account.id, row["id"], side, row["effective_date"], pending_delta, posted_delta,
                 *account.balances.as_tuple())
            )  # fmt: skip
            # Changes per (account, day) as [debits_pending, debits_posted, credits_pending,
            # credits_posted], summed in place: this runs twice per transfer.
            day = self.days.get((account.id, row["effective_date"]))
            if day is None:
                day = self.days[(account.id, row["effective_date"])] = [0, 0, 0, 0]
            first = 0 if side == "debit" else 2
            day[first] += pending_delta
            day[first + 1] += posted_delta
        if row["pending_id"]:
            self.resolved[row["pending_id"]] = row["type"]
        if row["reverses_id"]:
            self.reversed.add(row["reverses_id"])
        self.written[row["key"]] = row
        self.referred[row["id"]] = row
        self.rows.append(row)
        return TransferRecord(**row)

    def _resolve(self, c: Command) -> tuple[dict[str, Any], frozenset[str]]:
        """The row a (shape-checked) command asks for, and which fields the caller chose."""
        effective = getattr(c, "effective_date", None)
        given = _GIVEN_WITH_DATE if effective is not None else _GIVEN_WITHOUT_DATE
        base: dict[str, Any] = {
            "key": c.key,
            "memo": getattr(c, "memo", None),
            "effective_date": effective or self.today,
            "pending_id": None,
            "reverses_id": None,
            "expires_at": None,
        }
        if isinstance(c, NewTransfer):
            return self._resolve_new(c, base), given | _GIVEN_NEW
        if isinstance(c, Reverse):
            target = self._referred(c.transfer_id)
            if target["type"] not in (T.SINGLE, T.POST) or target["reverses_id"] is not None:
                raise InvalidTransfer(
                    f"transfer {c.transfer_id} is a {target['type']}"
                    f"{' reversal' if target['reverses_id'] else ''} transfer and cannot be"
                    " reversed; void a pending transfer instead",
                    transfer_id=c.transfer_id,
                )
            return {
                **base,
                "type": T.SINGLE.value,
                "debit_account_id": target["credit_account_id"],
                "credit_account_id": target["debit_account_id"],
                "currency": target["currency"],
                "amount": target["amount"],
                "code": target["code"],
                "reverses_id": target["id"],
                "ref_type": target["ref_type"],
                "ref_id": target["ref_id"],
            }, given | {"reverses_id"}
        # post, void, expire: resolve a pending transfer
        pending = self._referred(c.pending_id)
        if pending["type"] != T.PENDING:
            raise InvalidTransfer(
                f"transfer {c.pending_id} is not pending", transfer_id=c.pending_id
            )
        row = {
            **base,
            "debit_account_id": pending["debit_account_id"],
            "credit_account_id": pending["credit_account_id"],
            "currency": pending["currency"],
            "amount": pending["amount"],
            "code": pending["code"],
            "pending_id": pending["id"],
            "ref_type": pending["ref_type"],
            "ref_id": pending["ref_id"],
        }
        given |= {"pending_id"}
        if isinstance(c, PostPending):
            row["type"] = T.POST.value
            # Omitted means "all of it": a replay of a partial post as a full one must conflict.
            given |= {"amount"}
            if c.amount is not None:
                if c.amount > pending["amount"]:
                    raise InvalidTransfer(
                        f"cannot post {c.amount}: pending transfer {pending['id']} holds"
                        f" {pending['amount']}",
                        field="amount",
                    )
                row["amount"] = c.amount
        elif isinstance(c, VoidPending):
            row["type"] = T.VOID.value
        else:
            row["type"] = T.EXPIRE.value
            if pending["expires_at"] is not None:
                # It lapsed on its deadline, not on sweep day; never before it took effect.
                row["effective_date"] = max(pending["effective_date"], pending["expires_at"].date())
        return row, given

    def _resolve_new(self, c: NewTransfer, base: dict[str, Any]) -> dict[str, Any]:
        currencies = []
        for field in ("debit_account_id", "credit_account_id"):
            account = self.accounts.get(getattr(c, field))
            if account is None:
                raise AccountNotFound(f"account {getattr(c, field)!r} does not exist", field=field)
            currencies.append(account.currency)
        if currencies[0] != currencies[1]:
            raise CurrencyMismatch(
                f"debit account is in {currencies[0]} but credit account is in {currencies[1]}",
                debit_currency=currencies[0],
                credit_currency=currencies[1],
            )
        return {
            **base,
            "type": T.PENDING.value if c.pending else T.SINGLE.value,
            "debit_account_id": c.debit_account_id,
            "credit_account_id": c.credit_account_id,
            "currency": currencies[0],
            "amount": c.amount,
            "code": c.code,
            "expires_at": ensure_utc(c.expires_at) if c.expires_at is not None else None,
            "ref_type": c.ref_type,
            "ref_id": c.ref_id,
        }

    def _referred(self, transfer_id: int) -> dict[str, Any]:
        found = self.referred.get(transfer_id)
        if found is None:
            raise TransferNotFound(
                f"transfer {transfer_id!r} does not exist", transfer_id=transfer_id
            )
        return found

    def _check_state(self, row: dict[str, Any]) -> None:
        """What depends on the ledger's state now (a replay skips these: it already happened)."""
        for field in ("debit_account_id", "credit_account_id"):
            if self.accounts[row[field]].closed:
                raise AccountClosed(f"account {row[field]} is closed", account_id=row[field])
        # Deadlines are judged at the time the transfer is recorded with, so the journal itself
        # shows every post and void before its deadline and every expiry after it.
        if row["expires_at"] is not None and row["expires_at"] <= self.created_at:
            raise InvalidTransfer("expires_at must be in the future", field="expires_at")
        target_id = row["pending_id"] or row["reverses_id"]
        if target_id is not None and row["effective_date"] < (
            target_date := self.referred[target_id]["effective_date"]
        ):
            raise InvalidTransfer(
                f"effective_date {row['effective_date']} is before transfer {target_id}'s"
                f" ({target_date}); a resolution or reversal cannot take effect before it",
                field="effective_date",
            )
        if row["reverses_id"] is not None and row["reverses_id"] in self.reversed:
            raise AlreadyReversed(
                f"transfer {row['reverses_id']} is already reversed",
                transfer_id=row["reverses_id"],
            )
        pending_id = row["pending_id"]
        if pending_id is None:
            return
        if pending_id in self.resolved:
            raise PendingNotOpen(
                f"pending transfer {pending_id} was already resolved ({self.resolved[pending_id]})",
                transfer_id=pending_id,
                resolution=self.resolved[pending_id],
            )
        expires_at = self.referred[pending_id]["expires_at"]
        expired = expires_at is not None and self.created_at >= expires_at
        if expired != (row["type"] == T.EXPIRE):
            raise PendingNotOpen(
                f"pending transfer {pending_id} "
                + (f"expired at {expires_at.isoformat()}" if expired else "has not expired yet"),
                transfer_id=pending_id,
                expires_at=expires_at.isoformat() if expires_at else None,
            )

    def _limit_error(self, account: _AccountState, breach: str, amount: int) -> LimitExceeded:
        b = account.balances
        if breach == "debits_would_exceed_credits":
            room = b.credits_posted - b.debits_posted - b.debits_pending
        else:
            room = b.debits_posted - b.credits_posted - b.credits_pending
        cur = account.currency
        return LimitExceeded(
            f"{account.name} (account {account.id}) has {format_amount(room, cur)} {cur}"
            f" available; {format_amount(amount, cur)} {cur} would exceed it",
            account_id=account.id,
            limit=breach,
            available=room,
            amount=amount,
        )

    # writing -----------------------------------------------------------------------------------

    def write(self) -> None:
        if not self.rows:
            return
        writer = BulkWriter(self.session)
        writer.insert(Transfer.__table__, [_TRANSFER_COLUMNS(r) for r in self.rows])
        writer.insert(Entry.__table__, self.entries)
        touched = sorted({e[0] for e in self.entries})
        writer.set_balances([(a, *self.accounts[a].balances.as_tuple()) for a in touched])
        writer.add_days([(a, d, *delta) for (a, d), delta in sorted(self.days.items())])
        self.session.execute(
            update(ChainHead)
            .where(ChainHead.id == 1)
            .values(
                last_transfer_id=self.next_id - 1,
                last_hash=self.last_hash,
                last_created_at=self.created_at,
            )
        )
        # Account objects already in the session must not show the balances from before.
        touched_set = set(touched)
        resolved = {r["pending_id"] for r in self.rows if r["pending_id"]}
        reversed_ = {r["reverses_id"] for r in self.rows if r["reverses_id"]}
        for obj in list(self.session.identity_map.values()):
            if isinstance(obj, Account) and obj.id in touched_set:
                self.session.expire(obj, list(BALANCE_NAMES))
            elif isinstance(obj, Transfer) and obj.id in resolved:
                self.session.expire(obj, ["resolution"])
            elif isinstance(obj, Transfer) and obj.id in reversed_:
                self.session.expire(obj, ["reversed_by"])


def _check_actor(actor: object) -> None:
    if not isinstance(actor, Actor) or not 0 < len(actor.label) <= ACTOR_MAX:
        raise ValidationError(f"an Actor with a label of 1 to {ACTOR_MAX} characters is needed")


# --- loading and locking ------------------------------------------------------------------------


def _one_of(session: Session, column: Any, values: list[Any]) -> Any:
    """`column IN values`; on PostgreSQL as `= ANY(array)`, one parameter however many values."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, values, type_=ARRAY(column.type)))
    return column.in_(values)


def _select_in(session: Session, column: Any, values: Iterable[Any]) -> list[Any]:
    values = sorted(v for v in set(values) if v is not None)
    found: list[Any] = []
    for start in range(0, len(values), _IN_CHUNK):
        where = _one_of(session, column, values[start : start + _IN_CHUNK])
        found.extend(session.execute(select(column.table).where(where)).mappings())
    return found


def _load_transfers(session: Session, ids: Iterable[Any]) -> dict[int, Any]:
    ids = {i for i in ids if is_id(i)}
    return {row["id"]: dict(row) for row in _select_in(session, Transfer.__table__.c.id, ids)}


_LOCK_COLUMNS = (
    Account.id,
    Account.name,
    Account.key,
    Account.kind,
    Account.code,
    Account.program_id,
    Account.partner_id,
    Account.currency,
    Account.closed_at.is_not(None).label("closed"),
    Account.debits_must_not_exceed_credits,
    Account.credits_must_not_exceed_debits,
    Account.debits_pending,
    Account.debits_posted,
    Account.credits_pending,
    Account.credits_posted,
)


def _lock_accounts(session: Session, ids: set[int]) -> dict[int, Any]:
    """Read accounts for update. On PostgreSQL rows are locked in id order; SQLite already
    holds the database write lock (BEGIN IMMEDIATE)."""
    table = Account.__table__
    found: dict[int, Any] = {}
    ordered = sorted(ids)
    for start in range(0, len(ordered), _IN_CHUNK):
        chunk = ordered[start : start + _IN_CHUNK]
        stmt = select(*_LOCK_COLUMNS).where(_one_of(session, table.c.id, chunk))
        stmt = stmt.order_by(table.c.id)
        if session.get_bind().dialect.name == "postgresql":
            # NO KEY UPDATE: what an UPDATE of balances takes anyway; unlike FOR UPDATE it does
            # not block other transactions' foreign-key checks against these accounts.
            stmt = stmt.with_for_update(key_share=True)
        found.update((row["id"], row) for row in session.execute(stmt).mappings())
    return found


def _lock_head(session: Session) -> Any:
    table = ChainHead.__table__
    stmt = select(table).where(table.c.id == 1)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return session.execute(stmt).mappings().one()
