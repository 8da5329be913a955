"""Pure rules for statements: what each movement is in business terms (its reference, and the
page that shows it), the rows the files are made of, and amounts as exact decimal strings.

No database here. The writers of ledger transfers name their business object in `ref_type` /
`ref_id` and say what kind of movement it is in `code`:

| ref_type     | codes                                   | written by                        |
|--------------|-----------------------------------------|-----------------------------------|
| program      | budget.funding                          | programs.funds.fund_budget        |
| partner      | allocation, allocation.adjustment       | programs.funds (allocate, adjust) |
| import       | allocation                              | programs.imports (allocation CSV) |
| purchase     | coop.accrual, coop.return (ref_id: the purchase's own reference, not an id) |
| fund         | fund.expiry                             | programs.funds.expire_funds       |
| fund_request | claim.reservation (pending, then void / expire when moved to a claim or lapsed) |
| claim        | claim.reimbursement (pending, then post / void / expire)                    |
| payout       | payout.send, payout.settle, payout.reversal; a failed send is a ledger      |
|              | reversal of the payout.send transfer                                         |

A reversal (reverses_id) keeps the code and reference of what it reverses; a post, void or
expiry keeps its reservation's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from mdfledger.exports.rules import one_line
from mdfledger.money import format_amount, minor_units

MAX_DAYS = 3660  # ten years a statement; its opening balance carries everything before

# Page kinds a reference can point at; the web layer maps them to its pages and decides whether
# the reader may open them.
TARGETS = ("program", "partner", "import", "fund", "fund_request", "claim", "payout")


@dataclass(frozen=True, slots=True)
class Reference:
    type: str | None  # the transfer's ref_type
    id: str | None  # the transfer's ref_id
    label: str  # what people read: "Claim #12 approved"
    target: tuple[str, int] | None  # (page kind, id) of the page showing it, if there is one


def _int(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() and len(text) < 19 else None


_HOLD = {  # (ref_type, transfer type) -> what happened to the money held
    "pending": "held",
    "post": "approved",
    "void": "released",
    "expire": "hold expired",
}
_REQUEST_HOLD = {**_HOLD, "pending": "reserved", "post": "posted", "expire": "reservation expired"}
_PAYOUT = {
    "payout.send": "sent",
    "payout.settle": "settled",
    "payout.reversal": "reversed by the provider",
    "payout.fail": "failed",
}
_CODES = {
    "budget.funding": "Budget funding",
    "allocation": "Allocation",
    "allocation.adjustment": "Allocation adjustment",
    "coop.accrual": "Co-op accrual",
    "coop.return": "Co-op accrual returned",
    "fund.expiry": "Funds expired",
    "claim.reservation": "Reservation",
    "claim.reimbursement": "Claim hold",
}


def reference(
    *,
    code: str,
    type: str,
    ref_type: str | None,
    ref_id: str | None,
    reverses_id: int | None,
) -> Reference:
    """The business reference of one movement: a label and the page that shows its object."""
    number = _int(ref_id)
    what = _CODES.get(code, code)
    target: tuple[str, int] | None = None
    if ref_type == "fund_request" and number is not None:
        label = f"Fund request #{number} {_REQUEST_HOLD.get(type, type)}"
        target = ("fund_request", number)
    elif ref_type == "claim" and number is not None:
        label = f"Claim #{number} {_HOLD.get(type, type)}"
        target = ("claim", number)
    elif ref_type == "payout" and number is not None:
        if reverses_id is not None and code == "payout.send":
            label = f"Payout #{number} failed (sending reversed)"
        else:
            label = f"Payout #{number} {_PAYOUT.get(code, code)}"
        target = ("payout", number)
    elif ref_type == "import" and number is not None:
        label = f"{what} from import #{number}"
        target = ("import", number)
    elif ref_type == "purchase" and ref_id:
        label = f"{what}, purchase {one_line(ref_id)}"
    elif ref_type == "fund" and number is not None:
        label = f"{what} from fund #{number}"
        target = ("fund", number)
    elif ref_type in ("program", "partner") and number is not None:
        label = what
        target = (ref_type, number)
    elif ref_type and ref_id:
        label = f"{what} ({one_line(ref_type)} {one_line(ref_id)})"
    else:
        label = what
    if reverses_id is not None and not label.endswith("(sending reversed)"):
        label = f"Reversal of {label[0].lower()}{label[1:]}"
    return Reference(ref_type, ref_id, label, target)


# --- amounts and rows ---------------------------------------------------------------------------


def amount_text(minor: int, currency: str) -> str:
    """Exact decimal string for files: 123450 USD -> '1234.50' (no grouping)."""
    return format_amount(minor, currency)


def amount_decimal(minor: int, currency: str) -> Decimal:
    """Exact Decimal for spreadsheets: 123450 USD -> Decimal('1234.50')."""
    return Decimal(format_amount(minor, currency))


def grouped(minor: int, currency: str) -> str:
    """For people (PDF): 123450 USD -> '1,234.50', exact."""
    places = minor_units(currency)
    return f"{amount_decimal(minor, currency):,.{places}f}"


def number_format(currency: str) -> str:
    """The spreadsheet number format showing exactly the currency's decimals."""
    places = minor_units(currency)
    return "#,##0" + ("." + "0" * places if places else "")


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Header:
    """What every file states first."""

    subject: str
    start: date
    end: date
    as_of: datetime
    generated_at: datetime
    high_water: int

    def pairs(self) -> list[tuple[str, str]]:
        return [
            ("Statement", self.subject),
            ("From", self.start.isoformat()),
            ("To", self.end.isoformat()),
            ("As of", stamp(self.as_of)),
            ("Generated at", stamp(self.generated_at)),
            ("Up to transfer", str(self.high_water)),
        ]


# One table for CSV and XLSX: an opening row, one row per movement and a closing row per
# account. `amount` changes the posted balance and `reserved` the money held (both signed to
# the account's normal side); `balance` is the running posted balance, `available` what is
# left once holds are taken off.
COLUMNS = (
    "record",
    "account_id",
    "account",
    "currency",
    "date",
    "transfer_id",
    "recorded_at",
    "type",
    "code",
    "reference",
    "reference_type",
    "reference_id",
    "description",
    "counter_account_id",
    "counter_account",
    "amount",
    "reserved",
    "balance",
    "available",
)
MONEY_COLUMNS = frozenset({"amount", "reserved", "balance", "available"})


def description(memo: str | None) -> str:
    return one_line(memo) if memo else ""
