"""The journal exports, checked by the real tools: hledger 1.25 and beancount 3 (bean-check).

Every check compares what the tool computes from the file with the ledger's own balances: the
cleared postings must add up to the posted balances, the pending ones to the open reservations,
and the file's own balance assertions must hold (and fail when altered).
"""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mdfledger import exports, ledger
from mdfledger.actor import Actor
from mdfledger.errors import ValidationError
from mdfledger.exports import rules
from mdfledger.ledger import AccountKind, NewTransfer
from mdfledger.ledger.models import Account, Transfer
from mdfledger.money import format_amount
from tests.conftest import skip_or_fail

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
INSTALL = "install hledger (apt-get install hledger) and beancount (pip install 'beancount>=3,<4')"


def _hledger() -> str:
    found = shutil.which("hledger")
    if found is None:
        skip_or_fail(f"hledger is not installed: {INSTALL}")
    return str(found)


def _bean_check() -> str:
    for folder in (Path(sys.executable).parent, Path(sys.prefix) / "bin"):
        if (folder / "bean-check").is_file():
            return str(folder / "bean-check")
    skip_or_fail(f"bean-check is not installed: {INSTALL}")
    raise AssertionError  # unreachable: skip_or_fail raises


def _export(session: Session, fmt: str, path: Path, as_of: datetime | None = None) -> Path:
    with path.open("w", encoding="utf-8") as out:
        exports.export_journal(session, out, fmt=fmt, as_of=as_of)
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


def _account_id(name: str) -> int:
    return int(name.rsplit(":", 1)[1][1:])  # names end in ":a17" / ":A17"


def _hledger_balances(path: Path, *flags: str) -> dict[int, tuple[Decimal, str | None]]:
    """Per ledger account id: (amount, commodity) from `hledger balance`, zeros included."""
    done = _run(_hledger(), "-f", str(path), "balance", "--flat", "-E", "-N", "-O", "csv", *flags)
    assert done.returncode == 0, done.stderr
    found = {}
    for row in list(csv.reader(io.StringIO(done.stdout)))[1:]:
        account, cell = row[0], row[1].strip()
        number, _, commodity = cell.partition(" ")
        found[_account_id(account)] = (Decimal(number.replace(",", "")), commodity or None)
    return found


def _ledger_figures(session: Session, *, pending: bool) -> dict[int, tuple[Decimal, str]]:
    found = {}
    for account in session.scalars(select(Account)):
        if pending:
            minor = account.debits_pending - account.credits_pending
        else:
            minor = account.debits_posted - account.credits_posted
        found[account.id] = (Decimal(format_amount(minor, account.currency)), account.currency)
    return found


def _assert_hledger_matches(session: Session, path: Path) -> None:
    done = _run(_hledger(), "-f", str(path), "check", "accounts", "commodities")
    assert done.returncode == 0, done.stderr
    for flag, pending in (("-C", False), ("-P", True)):
        tool = _hledger_balances(path, flag)
        for account_id, (amount, currency) in _ledger_figures(session, pending=pending).items():
            got, commodity = tool.get(account_id, (Decimal(0), None))
            assert got == amount, (flag, account_id, got, amount)
            assert amount == 0 or commodity == currency


class World:
    def __init__(self, session: Session, actor: Actor) -> None:
        self.session, self.actor, self.n = session, actor, 0
        self.accounts: dict[tuple[str, str], int] = {}

    def now(self) -> datetime:
        self.n += 1
        return T0 + timedelta(minutes=self.n)

    def account(self, kind: str, currency: str, **owners: int) -> int:
        account = ledger.open_account(
            self.session, self.actor, key=f"{kind}:{currency}:{owners}", name=f"{kind} {currency}",
            kind=kind, currency=currency, now=self.now(), **owners,
        )  # fmt: skip
        self.accounts[(kind, currency)] = account.id
        return account.id

    def move(self, debit: str, credit: str, currency: str, amount: int, **kw: object) -> int:
        self.n += 1
        command = NewTransfer(
            f"t{self.n}", self.accounts[(debit, currency)], self.accounts[(credit, currency)],
            amount, kw.pop("code", "allocation"), **kw,  # type: ignore[arg-type]
        )  # fmt: skip
        return ledger.transfer(self.session, self.actor, command, now=self.now()).id


def _build(session: Session, actor: Actor) -> tuple[World, datetime]:
    """Every kind, three currencies, singles, two-phase transfers in every state, a reversal."""
    w = World(session, actor)
    K = AccountKind
    for kind in K:
        w.account(kind, "USD", program_id=7, partner_id=42)
    for kind in (K.ACCRUAL_SOURCE, K.PARTNER_FUND, K.EXPIRED):
        w.account(kind, "EUR", program_id=7, partner_id=43)
    for kind in (K.FUNDING, K.BUDGET):
        w.account(kind, "JPY", program_id=8)
    day = date(2026, 3, 1)
    w.move(K.FUNDING, K.BUDGET, "USD", 1_000_000, effective_date=date(2026, 1, 1))  # backdated
    w.move(K.BUDGET, K.PARTNER_FUND, "USD", 500_000, effective_date=day)
    w.move(K.FUNDING, K.BUDGET, "JPY", 123_456, effective_date=day)
    w.move(K.ACCRUAL_SOURCE, K.PARTNER_FUND, "EUR", 9_999, code="accrual", ref_type="order",
           ref_id="PO-1", memo='tricky; memo, with "quotes"\nand a newline %')  # fmt: skip
    partly = w.move(K.PARTNER_FUND, K.CLAIMS_PAYABLE, "USD", 30_000, pending=True,
                    code="claim", ref_type="claim", ref_id="12", effective_date=day)  # fmt: skip
    ledger.post(session, actor, partly, key="post-1", amount=20_000, now=w.now())
    voided = w.move(K.PARTNER_FUND, K.CLAIMS_PAYABLE, "USD", 15_000, pending=True, code="claim")
    ledger.void(session, actor, voided, key="void-1", memo="rejected", now=w.now())
    expiring = w.move(K.PARTNER_FUND, K.CLAIMS_PAYABLE, "USD", 5_000, pending=True,
                      code="claim", expires_at=T0 + timedelta(hours=1))  # fmt: skip
    w.move(K.CLAIMS_PAYABLE, K.PAYOUTS_IN_TRANSIT, "USD", 20_000, code="payout",
           ref_type="payout", ref_id="p-9")  # fmt: skip
    cut = w.now()  # the as-of tests cut here: one reservation still open
    w.move(K.PAYOUTS_IN_TRANSIT, K.SETTLED, "USD", 20_000, code="payout")
    w.n += 120
    assert [r.pending_id for r in ledger.expire_overdue(session, actor, now=w.now())] == [expiring]
    wrong = w.move(K.PARTNER_FUND, K.EXPIRED, "EUR", 1_000, code="breakage")
    ledger.reverse(session, actor, wrong, key="rev-1", memo="not expired", now=w.now())
    w.move(K.PARTNER_FUND, K.EXPIRED, "USD", 100, code="breakage", effective_date=date(2026, 4, 2))
    w.move(K.PARTNER_FUND, K.CLAIMS_PAYABLE, "USD", 7_500, pending=True, code="claim")  # open
    session.flush()
    return w, cut


def test_hledger_export_agrees_with_the_ledger(session: Session, actor: Actor, tmp_path: Path):
    _build(session, actor)
    path = _export(session, "hledger", tmp_path / "books.journal")
    text = path.read_text()
    assert "assets:funding:42:" not in text  # owners without a code fall back to program-7...
    assert "liabilities:partner-fund:partner-42:program-7:a" in text
    assert "! tricky" not in text and "; memo: tricky%2C" not in text  # description, tags
    assert " ! liabilities:partner-fund" in text  # a post's released reservation stays pending
    _assert_hledger_matches(session, path)
    # The assertions bite: change one and the check fails.
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if " = " in line and "0.00 USD = " in line)
    lines[at] = lines[at].rsplit("=", 1)[0] + "= 0.01 USD"
    bad = tmp_path / "altered.journal"
    bad.write_text("\n".join(lines) + "\n")
    done = _run(_hledger(), "-f", str(bad), "check")
    assert done.returncode != 0 and "assertion" in done.stderr.lower()


def test_beancount_export_agrees_with_the_ledger(session: Session, actor: Actor, tmp_path: Path):
    _build(session, actor)
    path = _export(session, "beancount", tmp_path / "books.beancount")
    done = _run(_bean_check(), str(path))
    assert done.returncode == 0, done.stdout + done.stderr

    from beancount import loader
    from beancount.core import data

    entries, errors, _ = loader.load_file(str(path))
    assert not errors
    cleared: dict[int, Decimal] = {}
    pending: dict[int, Decimal] = {}
    for entry in entries:
        if isinstance(entry, data.Transaction):
            assert rules.BEANCOUNT_ACCOUNT_RE.match(entry.postings[0].account)
            for p in entry.postings:
                target = pending if (p.flag or entry.flag) == "!" else cleared
                target[_account_id(p.account)] = (
                    target.get(_account_id(p.account), Decimal(0)) + p.units.number
                )
    for account_id, (amount, _) in _ledger_figures(session, pending=False).items():
        assert cleared.get(account_id, Decimal(0)) == amount
    for account_id, (amount, _) in _ledger_figures(session, pending=True).items():
        assert pending.get(account_id, Decimal(0)) == amount

    text = path.read_text()
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if " balance " in line and "USD" in line)
    number = Decimal(lines[at].split()[-4])  # "... balance NAME  12.34 ~ 0 USD"
    lines[at] = " ".join(lines[at].split()[:-4]) + f"  {number + Decimal('0.01')} ~ 0 USD"
    bad = tmp_path / "altered.beancount"
    bad.write_text("\n".join(lines) + "\n")
    done = _run(_bean_check(), str(bad))
    assert done.returncode != 0 and "balance" in (done.stdout + done.stderr).lower()


@pytest.mark.parametrize("fmt", exports.FORMATS)
def test_as_of_exports_what_was_created_by_then(
    session: Session, actor: Actor, tmp_path: Path, fmt: str
):
    _, cut = _build(session, actor)
    path = _export(session, fmt, tmp_path / f"cut.{fmt}", as_of=cut)
    if fmt == "hledger":
        assert _run(_hledger(), "-f", str(path), "check").returncode == 0
        tool = _hledger_balances(path, "-C")
        for account in session.scalars(select(Account).where(Account.created_at <= cut)):
            then = ledger.balance_as_of(session, account.id, at=cut)
            minor = then.debits_posted - then.credits_posted
            got = tool.get(account.id, (Decimal(0), None))[0]
            assert got == Decimal(format_amount(minor, account.currency))
        assert "settled" not in path.read_text().split("balance assertions")[0].split("\n\n")[-1]
    else:
        done = _run(_bean_check(), str(path))
        assert done.returncode == 0, done.stdout + done.stderr


def test_empty_ledger_and_bad_arguments(session: Session, tmp_path: Path):
    path = _export(session, "hledger", tmp_path / "empty.journal")
    assert _run(_hledger(), "-f", str(path), "check").returncode == 0
    path = _export(session, "beancount", tmp_path / "empty.beancount")
    assert _run(_bean_check(), str(path)).returncode == 0
    with pytest.raises(ValidationError):
        exports.export_journal(session, io.StringIO(), fmt="ledger-cli")
    with pytest.raises(ValidationError):
        exports.export_journal(session, io.StringIO(), fmt="hledger", as_of=datetime(2026, 1, 1))  # noqa: DTZ001


def test_account_names_and_text_rules():
    info = rules.AccountInfo(5, "partner_fund", "partner_fund", "USD", "x", "mdf 2026", "acme.co",
                             date(2026, 1, 1))  # fmt: skip
    assert rules.account_name(info, "hledger") == "liabilities:partner-fund:acme-co:mdf-2026:a5"
    assert rules.account_name(info, "beancount") == "Liabilities:Partner-fund:Acme-co:Mdf-2026:A5"
    assert rules.hledger_tag("a,b%\nc") == "a%2Cb%25%0Ac"
    assert rules.beancount_string('say "hi"\\') == '"say \\"hi\\"\\\\"'
    assert rules.parse_as_of("2026-03-31") == datetime(2026, 3, 31, 23, 59, 59, 999999, UTC)
    assert rules.parse_as_of("2026-03-31T10:00:00") == datetime(2026, 3, 31, 10, tzinfo=UTC)
    with pytest.raises(ValidationError):
        rules.parse_as_of("yesterday")


OPS = st.lists(
    st.tuples(
        st.sampled_from(["single", "pending", "post", "void", "reverse"]),
        st.integers(0, 7),  # which account pair / earlier transfer
        st.integers(1, 10**9),  # amount in minor units
        st.integers(-40, 40),  # effective date offset in days
    ),
    min_size=1,
    max_size=25,
)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=OPS, currency=st.sampled_from(["USD", "JPY", "BHD"]))
def test_random_journals_balance_in_hledger(
    session: Session, actor: Actor, tmp_path: Path, ops: list, currency: str
):
    # The database outlives the examples: fresh accounts each time, the whole journal compared.
    tag = f"{currency}{session.scalar(select(Account.id).order_by(Account.id.desc()).limit(1))}"
    ids = [
        ledger.open_account(
            session, actor, key=f"h{tag}-{kind}", name=kind, kind=kind, currency=currency
        ).id
        for kind in AccountKind
    ]
    open_pending: list[int] = []
    posted: list[int] = []
    held: dict[int, tuple[int, date]] = {}
    for n, (op, pick, amount, offset) in enumerate(ops):
        key, day = f"h{tag}-{n}", date(2026, 6, 1) + timedelta(days=offset)
        debit, credit = ids[pick % len(ids)], ids[(pick + 1 + pick // 3) % len(ids)]
        if op in ("single", "pending"):
            record = ledger.transfer(
                session, actor,
                NewTransfer(key, debit, credit, amount, "random", day, op == "pending"),
            )  # fmt: skip
            (open_pending if op == "pending" else posted).append(record.id)
            held[record.id] = (amount, day)
        elif op == "post" and open_pending:
            pending_id = open_pending.pop(pick % len(open_pending))
            whole, since = held[pending_id]  # in part or in full, never before the reservation
            record = ledger.post(
                session, actor, pending_id, key=key, amount=amount % whole + 1,
                effective_date=max(day, since),
            )  # fmt: skip
            posted.append(record.id)
        elif op == "void" and open_pending:
            ledger.void(session, actor, open_pending.pop(pick % len(open_pending)), key=key)
        elif op == "reverse" and posted:
            ledger.reverse(session, actor, posted.pop(pick % len(posted)), key=key)
    session.flush()
    path = _export(session, "hledger", tmp_path / f"random-{tag}.journal")
    _assert_hledger_matches(session, path)


def test_the_export_command_writes_a_file_hledger_accepts(
    session: Session, actor: Actor, tmp_path: Path, database_url: str
):
    import mdfledger

    _build(session, actor)
    session.commit()
    transfers = session.scalar(select(func.count()).select_from(Transfer))
    session.close()  # SQLite: the command's session needs the write lock
    app = mdfledger.create_app(
        {"database_url": database_url, "env": "test", "instance_path": tmp_path / "instance"}
    )
    try:
        runner = app.test_cli_runner()
        out = tmp_path / "books.journal"
        done = runner.invoke(args=["export", "journal", "--format", "hledger", "-o", str(out)])
        assert done.exit_code == 0, done.output
        assert done.output.startswith(f"wrote {transfers} transfer(s) and ")
        assert _run(_hledger(), "-f", str(out), "check").returncode == 0
        bad = runner.invoke(args=["export", "journal", "--format", "hledger", "--as-of", "May"])
        assert bad.exit_code != 0 and "'May' is not a date (2026-03-31)" in bad.output
    finally:
        app.extensions["mdfledger.db"].kw["bind"].dispose()
