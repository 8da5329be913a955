"""The demo's payouts: how each program pays, partners' bank details (two of them missing
something, so finance sees held partners), and a payout run finance made by hand some days ago —
one payout settled by the bank, one sent and waiting, the rest waiting to be paid."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from mdfledger import payouts, programs
from mdfledger.actor import Actor

# Partners the demo leaves without payout details, or without tax information.
NO_DETAILS = "HARBOR"
NO_TAX_INFO = "IONIC"
EUROPE = {"EMEA"}


def demo_iban(country: str, bban: str) -> str:
    """A well-formed IBAN for `bban` (ISO 13616 check digits): demo data, no real account."""
    digits = "".join(str(int(ch, 36)) for ch in bban + country + "00")
    return f"{country}{98 - int(digits) % 97:02d}{bban}"


def setup(
    session: Session,
    seeder: Actor,
    mdf: programs.Program,
    coop: programs.Program,
    partners: Sequence[programs.Partner],
    at: datetime,
) -> None:
    """MDF pays approved claims at once by bank transfer; co-op pays monthly on the 1st and
    needs tax information on file."""
    payouts.set_policy(session, seeder, mdf.id, provider="manual", schedule="immediate", now=at)
    payouts.set_policy(
        session, seeder, coop.id, provider="manual", schedule="monthly", run_day=1,
        requires_tax_info=True, now=at,
    )  # fmt: skip
    for n, partner in enumerate(partners):
        if partner.code == NO_DETAILS:
            continue
        tax = {} if partner.code == NO_TAX_INFO else _tax(partner, n, at)
        if partner.region in EUROPE:
            bank = {"bank_country": "DE", "iban": demo_iban("DE", f"{37040044 + n:08d}{n:010d}")}
        else:
            bank = {"bank_country": "US", "account_number": f"{400012345 + n * 7919}",
                    "routing_code": "021000021"}  # fmt: skip
        payouts.set_details(
            session, seeder, partner.id, method="bank", account_holder=partner.name,
            payout_currency="USD", now=at, **bank, **tax,
        )  # fmt: skip


def _tax(partner: programs.Partner, n: int, at: datetime) -> dict[str, object]:
    if partner.region in EUROPE:
        form, tax_id = "W-8BEN-E", f"DE{100000000 + n * 3571}"
    else:
        form, tax_id = "W-9", f"{12 + n:02d}-{3456789 + n}"
    return {"tax_form": form, "tax_id": tax_id, "tax_received_on": at.date()}


def run(session: Session, finance: Actor, at: datetime, settled_at: datetime) -> None:
    """Finance pays what is payable; the bank confirms the first payout, the second is sent."""
    made = payouts.create_payouts(session, finance, due_only=False, now=at).payouts
    for n, payout in enumerate(made[:2]):
        payouts.mark_sent(session, finance, payout.id, reference=f"BANK-{8800 + n}", now=at)
    if made:
        payouts.mark_settled(session, finance, made[0].id, now=settled_at)
