"""Pure formatting for the journal exports: account names, text escaping, transactions.

No database here. Amounts are ints of minor units written with mdfledger.money.format_amount,
so the tools read exact decimals (never floats).

Account roots, by the ledger's normal side (mdfledger.ledger.rules.DEBIT_NORMAL_KINDS): the two
debit-normal kinds are assets; the credit-normal ones are what the fund owes (liabilities), what
it holds unallocated or has paid out for good (equity), and breakage (income). Amounts are
signed the tools' way whatever the root: debits positive, credits negative.

Two-phase transfers (see journal.py): the reservation's legs carry status `!` (pending), the
posted legs `*` (cleared). Excluding `!` postings gives the ledger's posted balances; `!` alone
gives the open reservations (debits_pending - credits_pending).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from mdfledger.errors import ValidationError
from mdfledger.ledger import rules as ledger_rules
from mdfledger.ledger.models import AccountKind as K
from mdfledger.money import format_amount, minor_units

FORMATS = ("hledger", "beancount")

# kind -> (hledger root, beancount root, name segment)
KIND_NAMES: dict[str, tuple[str, str, str]] = {
    K.FUNDING: ("assets", "Assets", "funding"),
    K.ACCRUAL_SOURCE: ("assets", "Assets", "accrual-source"),
    K.BUDGET: ("equity", "Equity", "budget"),
    K.PARTNER_FUND: ("liabilities", "Liabilities", "partner-fund"),
    K.CLAIMS_PAYABLE: ("liabilities", "Liabilities", "claims-payable"),
    K.PAYOUTS_IN_TRANSIT: ("liabilities", "Liabilities", "payouts-in-transit"),
    K.SETTLED: ("equity", "Equity", "settled"),
    K.EXPIRED: ("income", "Income", "expired"),
}
# hledger's account types (A, L, E, R, X) for its `account` directives.
_HLEDGER_TYPES = {"assets": "A", "liabilities": "L", "equity": "E", "income": "R"}
assert set(KIND_NAMES) == set(K)
assert {k for k, v in KIND_NAMES.items() if v[0] == "assets"} == ledger_rules.DEBIT_NORMAL_KINDS

_UNSAFE_SEGMENT = re.compile(r"[^A-Za-z0-9-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")
BEANCOUNT_ACCOUNT_RE = re.compile(
    r"^(Assets|Liabilities|Equity|Income|Expenses)(:[A-Z0-9][A-Za-z0-9-]*)+$"
)


@dataclass(frozen=True, slots=True)
class AccountInfo:
    id: int
    kind: str
    code: str
    currency: str
    name: str
    program: str | None  # the owning program's code (or None)
    partner: str | None  # the owning partner's code (or None)
    opened: date  # the earlier of its creation date and its first effective date


@dataclass(frozen=True, slots=True)
class TransferInfo:
    id: int
    key: str
    type: str
    debit: str  # the formatted account names
    credit: str
    currency: str
    amount: int
    pending_amount: int  # the resolved reservation's amount (resolutions only), else 0
    code: str
    effective_date: date
    created_at: datetime
    pending_id: int | None
    reverses_id: int | None
    ref_type: str | None
    ref_id: str | None
    memo: str | None


def _segment(text: str, *, beancount: bool) -> str:
    """One account-name segment: ASCII letters, digits and '-'; beancount's start upper-case."""
    seg = _UNSAFE_SEGMENT.sub("-", text).strip("-") or "X"
    if beancount:
        seg = seg[0].upper() + seg[1:]
        if not re.match(r"[A-Z0-9]", seg):
            seg = "X" + seg
    return seg


def account_name(account: AccountInfo, fmt: str) -> str:
    """`liabilities:partner-fund:ACME:MDF-2026:a17` (hledger) or
    `Liabilities:Partner-fund:ACME:MDF-2026:A17` (beancount): root, kind, partner, program, the
    account's own code when it is not the kind, and its id, which keeps every name unique."""
    beancount = fmt == "beancount"
    root_h, root_b, kind_seg = KIND_NAMES[account.kind]
    parts = [root_b if beancount else root_h, kind_seg]
    parts += [p for p in (account.partner, account.program) if p]
    if account.code != account.kind:
        parts.append(account.code)
    parts.append(f"a{account.id}")
    name = ":".join([parts[0]] + [_segment(p, beancount=beancount) for p in parts[1:]])
    assert not beancount or BEANCOUNT_ACCOUNT_RE.match(name), name
    return name


def one_line(text: str) -> str:
    return _CONTROL.sub(" ", text).strip()


def hledger_text(text: str) -> str:
    """A description: one line, and no ';' (it would start a comment)."""
    return one_line(text).replace(";", ",")


def hledger_tag(value: object) -> str:
    """A tag value ends at a comma or the line's end: percent-encode those (and '%')."""
    text = str(value)
    for char in ("%", ",", "\n", "\r"):
        text = text.replace(char, f"%{ord(char):02X}")
    return one_line(text)


def beancount_string(value: object) -> str:
    text = one_line(str(value)).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def money(minor: int, currency: str) -> str:
    return f"{format_amount(minor, currency)} {currency}"


def beancount_exact(minor: int, currency: str) -> str:
    """A balance amount with zero tolerance: beancount would otherwise accept one minor unit off."""
    return f"{format_amount(minor, currency)} ~ 0 {currency}"


def description(t: TransferInfo) -> str:
    return f"{t.code}: {t.memo}" if t.memo else t.code


def _metadata(t: TransferInfo) -> Iterator[tuple[str, object]]:
    yield "transfer-id", t.id
    yield "type", t.type
    yield "code", t.code
    yield "idempotency-key", t.key
    yield "created-at", t.created_at.astimezone(UTC).isoformat()
    for name, value in (
        ("pending-id", t.pending_id),
        ("reverses-id", t.reverses_id),
        ("ref-type", t.ref_type),
        ("ref-id", t.ref_id),
        ("memo", t.memo),
    ):
        if value is not None:
            yield name, value


def _legs(t: TransferInfo) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """(cleared legs, pending legs) as (account, signed amount): debits positive."""
    pending_delta, posted_delta = ledger_rules.effect(t.type, t.amount, t.pending_amount)
    cleared = [(t.debit, posted_delta), (t.credit, -posted_delta)] if posted_delta else []
    pending = [(t.debit, pending_delta), (t.credit, -pending_delta)] if pending_delta else []
    return cleared, pending


def transaction(t: TransferInfo, fmt: str) -> list[str]:
    """The transfer as one transaction: header, metadata, cleared legs, reservation legs (`!`
    inside a cleared transaction). The formats differ only in quoting and indentation."""
    hledger = fmt == "hledger"
    cleared, pending = _legs(t)
    pad = "    " if hledger else "  "
    text = hledger_text(description(t)) if hledger else beancount_string(description(t))
    lines = [f"{t.effective_date.isoformat()} {'*' if cleared else '!'} {text}"]
    lines += [
        f"{pad}; {k}: {hledger_tag(v)}" if hledger else f"{pad}{k}: {beancount_string(v)}"
        for k, v in _metadata(t)
    ]
    lines += [f"{pad}{acct}  {money(amt, t.currency)}" for acct, amt in cleared]
    mark = "! " if cleared else ""
    lines += [f"{pad}{mark}{acct}  {money(amt, t.currency)}" for acct, amt in pending]
    return lines


def hledger_commodity(currency: str) -> str:
    """Fixes the decimal mark and display precision: `commodity 1000.00 USD`, `1000. JPY`."""
    sample = format_amount(100_000 * 10 ** minor_units(currency), currency)
    return f"commodity {sample if '.' in sample else sample + '.'} {currency}"


def hledger_account(account: AccountInfo, name: str) -> str:
    root = KIND_NAMES[account.kind][0]
    return (
        f"account {name}  ; type: {_HLEDGER_TYPES[root]}, currency: {account.currency},"
        f" opened: {account.opened.isoformat()}, ledger-id: {account.id},"
        f" title: {hledger_tag(account.name)}"
    )


def beancount_open(account: AccountInfo, name: str) -> list[str]:
    return [
        f"{account.opened.isoformat()} open {name} {account.currency}",
        f"  ledger-id: {beancount_string(account.id)}",
        f"  title: {beancount_string(account.name)}",
    ]


def net(balances: ledger_rules.Balances) -> int:
    """What the tools sum over every posting of an account: debits positive, all statuses."""
    return (
        balances.debits_posted
        + balances.debits_pending
        - balances.credits_posted
        - balances.credits_pending
    )


def parse_as_of(text: str) -> datetime:
    """'2026-03-31T18:00:00+00:00' (naive means UTC), or a date: the end of that day, UTC."""
    try:
        if len(text.strip()) == 10:
            day = date.fromisoformat(text.strip())
            return datetime.combine(day + timedelta(days=1), time.min, UTC) - timedelta(
                microseconds=1
            )
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValidationError(
            f"{text!r} is not a date (2026-03-31) or an ISO time (2026-03-31T18:00:00Z)",
            field="as_of",
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
