"""The pure ledger rules (no database) and money at the edges."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mdfledger.errors import ValidationError
from mdfledger.ledger import rules
from mdfledger.ledger.models import AccountKind, TransferType
from mdfledger.ledger.rules import Balances, Limits, chain_hash, effect, limit_breach, normal_side
from mdfledger.money import format_amount, minor_units, parse_amount, validate_currency

# --- effect -------------------------------------------------------------------------------------


def test_single_transfer_posts_its_amount() -> None:
    assert effect(TransferType.SINGLE, 700) == (0, 700)


def test_pending_transfer_only_reserves_its_amount() -> None:
    assert effect(TransferType.PENDING, 700) == (700, 0)


def test_full_post_releases_the_reservation_and_posts_it() -> None:
    assert effect(TransferType.POST, 700, pending_amount=700) == (-700, 700)


def test_partial_post_releases_the_whole_reservation_but_posts_less() -> None:
    assert effect(TransferType.POST, 300, pending_amount=700) == (-700, 300)


@pytest.mark.parametrize("kind", [TransferType.VOID, TransferType.EXPIRE])
def test_void_and_expire_release_the_reservation_and_post_nothing(kind: TransferType) -> None:
    assert effect(kind, 700, pending_amount=700) == (-700, 0)


def test_effect_accepts_the_plain_string_stored_in_the_database() -> None:
    assert effect("post", 5, pending_amount=9) == (-9, 5)


def test_effect_refuses_an_unknown_transfer_type() -> None:
    with pytest.raises(ValueError, match="refund"):
        effect("refund", 1)


# --- limits -------------------------------------------------------------------------------------

DEBIT_LIMIT = Limits(debits_must_not_exceed_credits=True)
CREDIT_LIMIT = Limits(credits_must_not_exceed_debits=True)


def test_no_limit_allows_any_balances() -> None:
    assert limit_breach(Limits(), Balances(5, 5, 0, 0)) is None
    assert limit_breach(Limits(), Balances(0, 0, 5, 5)) is None


def test_debits_may_reach_exactly_the_credits() -> None:
    assert limit_breach(DEBIT_LIMIT, Balances(debits_posted=1000, credits_posted=1000)) is None


def test_debits_one_unit_beyond_the_credits_breach() -> None:
    b = Balances(debits_posted=1001, credits_posted=1000)
    assert limit_breach(DEBIT_LIMIT, b) == "debits_would_exceed_credits"


def test_pending_debits_count_toward_the_debit_limit() -> None:
    assert limit_breach(DEBIT_LIMIT, Balances(400, 600, 0, 1000)) is None
    assert limit_breach(DEBIT_LIMIT, Balances(401, 600, 0, 1000)) == "debits_would_exceed_credits"


def test_pending_credits_do_not_fund_debits() -> None:
    b = Balances(debits_posted=1, credits_pending=1000, credits_posted=0)
    assert limit_breach(DEBIT_LIMIT, b) == "debits_would_exceed_credits"


def test_credits_may_reach_exactly_the_debits() -> None:
    assert limit_breach(CREDIT_LIMIT, Balances(0, 1000, 300, 700)) is None


def test_pending_credits_count_toward_the_credit_limit() -> None:
    b = Balances(0, 1000, 301, 700)
    assert limit_breach(CREDIT_LIMIT, b) == "credits_would_exceed_debits"


def test_pending_debits_do_not_cover_credits() -> None:
    b = Balances(debits_pending=1000, credits_posted=1)
    assert limit_breach(CREDIT_LIMIT, b) == "credits_would_exceed_debits"


def test_debit_limit_ignores_excess_credits_and_credit_limit_ignores_excess_debits() -> None:
    assert limit_breach(DEBIT_LIMIT, Balances(0, 0, 50, 900)) is None
    assert limit_breach(CREDIT_LIMIT, Balances(50, 900, 0, 0)) is None


# --- normal side and Balances -------------------------------------------------------------------


@pytest.mark.parametrize("kind", [AccountKind.FUNDING, AccountKind.ACCRUAL_SOURCE])
def test_sources_are_debit_normal(kind: AccountKind) -> None:
    assert normal_side(kind) == "debit"
    assert normal_side(kind.value) == "debit"


@pytest.mark.parametrize(
    "kind", sorted(set(AccountKind) - {AccountKind.FUNDING, AccountKind.ACCRUAL_SOURCE})
)
def test_every_other_kind_is_credit_normal(kind: AccountKind) -> None:
    assert normal_side(kind) == "credit"


def test_moving_the_debit_side_changes_only_debits() -> None:
    before = Balances(1, 2, 3, 4)
    assert before.moved("debit", 10, 20) == Balances(11, 22, 3, 4)
    assert before == Balances(1, 2, 3, 4)  # frozen: moved returns a new value


def test_moving_the_credit_side_changes_only_credits() -> None:
    assert Balances(1, 2, 3, 4).moved("credit", -3, 20) == Balances(1, 2, 0, 24)


def test_balances_add_field_by_field_and_list_in_stored_order() -> None:
    total = Balances(1, 2, 3, 4) + Balances(10, 20, 30, 40)
    assert total.as_tuple() == (11, 22, 33, 44)
    assert Balances().as_tuple() == (0, 0, 0, 0)


# --- the hash chain -----------------------------------------------------------------------------

ROW: dict[str, object] = {
    "id": 7,
    "key": "claim:42:approve",
    "type": "post",
    "debit_account_id": 3,
    "credit_account_id": 4,
    "currency": "USD",
    "amount": 12_345,
    "code": "claim_approved",
    "pending_id": 6,
    "reverses_id": None,
    "expires_at": None,
    "effective_date": date(2026, 3, 1),
    "created_at": datetime(2026, 3, 1, 9, 30, 0, 123456, tzinfo=UTC),
    "ref_type": "claim",
    "ref_id": "42",
    "memo": "Q1 trade show — booth",
    "actor": "user:finance-1",
}
PREV = "ab" * 32

# A different value of the same type for every hashed field.
CHANGED: dict[str, object] = {
    "id": 8,
    "key": "claim:42:approve2",
    "type": "single",
    "debit_account_id": 5,
    "credit_account_id": 6,
    "currency": "EUR",
    "amount": 12_346,
    "code": "claim_approved_",
    "pending_id": 5,
    "reverses_id": 1,
    "expires_at": datetime(2026, 4, 1, tzinfo=UTC),
    "effective_date": date(2026, 3, 2),
    "created_at": datetime(2026, 3, 1, 9, 30, 0, 123457, tzinfo=UTC),
    "ref_type": "claims",
    "ref_id": "43",
    "memo": "Q1 trade show - booth",
    "actor": "user:finance-2",
}


ACCOUNT = {
    "id": 3,
    "key": "program:1:partner:7:fund",
    "kind": "partner_fund",
    "code": "partner_fund",
    "currency": "USD",
    "program_id": 1,
    "partner_id": 7,
    "debits_must_not_exceed_credits": True,
    "credits_must_not_exceed_debits": False,
}
DEBIT_DEF = rules.account_definition(ACCOUNT)
CREDIT_DEF = rules.account_definition({**ACCOUNT, "id": 4, "key": "claims", "partner_id": None})


def test_an_account_definition_is_compact_json_of_its_fixed_fields() -> None:
    assert DEBIT_DEF == (
        '[3,"program:1:partner:7:fund","partner_fund","partner_fund","USD",1,7,true,false]'
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [("kind", "budget"), ("partner_id", 8), ("debits_must_not_exceed_credits", False)],
)
def test_a_changed_account_definition_changes_its_transfers_hashes(field: str, value) -> None:
    changed = rules.account_definition({**ACCOUNT, field: value})
    assert chain_hash(PREV, ROW, changed, CREDIT_DEF) != chain_hash(
        PREV, ROW, DEBIT_DEF, CREDIT_DEF
    )


def test_every_hashed_field_has_a_sensitivity_case() -> None:
    assert set(CHANGED) == set(rules.HASHED_FIELDS) == set(ROW)


def test_chain_hash_is_a_deterministic_sha256_hex_digest() -> None:
    first = chain_hash(PREV, dict(ROW), DEBIT_DEF, CREDIT_DEF)
    assert first == chain_hash(PREV, dict(reversed(list(ROW.items()))), DEBIT_DEF, CREDIT_DEF)
    assert re.fullmatch(r"[0-9a-f]{64}", first)


def test_chain_hash_is_sha256_over_the_previous_hash_and_compact_json_of_the_fields() -> None:
    # Pinned: a change to the canonical form would make every stored hash fail verification.
    canonical = (
        '[7,"claim:42:approve","post",3,4,"USD",12345,"claim_approved",6,null,null,'
        '"2026-03-01","2026-03-01T09:30:00.123456+00:00","claim","42",'
        '"Q1 trade show \u2014 booth","user:finance-1"]'
    )
    expected = hashlib.sha256(
        f"{PREV}\n{canonical}\n{DEBIT_DEF}\n{CREDIT_DEF}".encode()
    ).hexdigest()
    assert chain_hash(PREV, ROW, DEBIT_DEF, CREDIT_DEF) == expected


def test_chain_hash_ignores_fields_it_does_not_cover() -> None:
    assert chain_hash(
        PREV, {**ROW, "hash": "x" * 64, "replayed": True}, DEBIT_DEF, CREDIT_DEF
    ) == chain_hash(PREV, ROW, DEBIT_DEF, CREDIT_DEF)


@pytest.mark.parametrize("field", rules.HASHED_FIELDS)
def test_chain_hash_changes_with_every_hashed_field(field: str) -> None:
    assert chain_hash(PREV, {**ROW, field: CHANGED[field]}, DEBIT_DEF, CREDIT_DEF) != chain_hash(
        PREV, ROW, DEBIT_DEF, CREDIT_DEF
    )


@pytest.mark.parametrize("field", ["memo", "ref_type", "ref_id", "pending_id", "expires_at"])
def test_chain_hash_tells_a_missing_value_from_an_empty_or_zero_one(field: str) -> None:
    empty = 0 if field == "pending_id" else ""
    hashes = {
        chain_hash(PREV, {**ROW, field: v}, DEBIT_DEF, CREDIT_DEF) for v in (None, empty, "null")
    }
    assert len(hashes) == 3


def test_chain_hash_depends_on_the_previous_hash() -> None:
    assert chain_hash(PREV, ROW, DEBIT_DEF, CREDIT_DEF) != chain_hash(
        rules.GENESIS_HASH, ROW, DEBIT_DEF, CREDIT_DEF
    )
    assert chain_hash(PREV, ROW, DEBIT_DEF, CREDIT_DEF) != chain_hash(
        "ab" * 31 + "ac", ROW, DEBIT_DEF, CREDIT_DEF
    )


def test_chain_hash_links_each_transfer_to_all_before_it() -> None:
    rows = [{**ROW, "id": i, "key": f"k{i}"} for i in range(1, 4)]
    chain = []
    prev = rules.GENESIS_HASH
    for row in rows:
        prev = chain_hash(prev, row, DEBIT_DEF, CREDIT_DEF)
        chain.append(prev)
    # Changing the first transfer changes the hash of the last one, computed over the chain.
    prev = chain_hash(rules.GENESIS_HASH, {**rows[0], "amount": 1}, DEBIT_DEF, CREDIT_DEF)
    for row in rows[1:]:
        prev = chain_hash(prev, row, DEBIT_DEF, CREDIT_DEF)
    assert prev != chain[-1]


# --- money --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("currency", "places"), [("USD", 2), ("JPY", 0), ("BHD", 3)])
def test_minor_units_follow_iso_4217(currency: str, places: int) -> None:
    assert minor_units(currency) == places


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("1234.50", "USD", 123450),
        ("0.01", "USD", 1),
        ("7", "USD", 700),
        ("1234", "JPY", 1234),
        ("1.234", "BHD", 1234),
        ("0.5", "BHD", 500),
        ("-12.34", "USD", -1234),
        ("-5", "JPY", -5),
        (" 12.5 ", "USD", 1250),
        ("\t3\n", "JPY", 3),
        ("0012.50", "USD", 1250),
    ],
)
def test_parse_amount_gives_exact_minor_units(text: str, currency: str, minor: int) -> None:
    assert parse_amount(text, currency) == minor


@pytest.mark.parametrize(
    ("text", "currency"),
    [("1.005", "USD"), ("0.001", "USD"), ("12.5", "JPY"), ("1.0001", "BHD")],
)
def test_parse_amount_refuses_more_decimals_than_the_currency_has(text: str, currency: str) -> None:
    with pytest.raises(ValidationError, match="decimal places") as err:
        parse_amount(text, currency)
    assert err.value.details == {"field": "amount"}


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "1e3",
        "1E3",
        "1,000.00",
        "1 000",
        "+5",
        ".5",
        "5.",
        "1.2.3",
        "--1",
        "NaN",
        "Infinity",
        "0x10",
        "12 USD",
        "$12",
    ],
)
def test_parse_amount_refuses_what_is_not_a_plain_decimal(text: str) -> None:
    with pytest.raises(ValidationError, match="not a decimal amount") as err:
        parse_amount(text, "USD")
    assert err.value.details == {"field": "amount"}


@pytest.mark.parametrize("value", [None, 12, 12.5, b"12"])
def test_parse_amount_takes_only_text(value: object) -> None:
    with pytest.raises(ValidationError):
        parse_amount(value, "USD")  # type: ignore[arg-type]


def test_parse_amount_refuses_an_unknown_currency() -> None:
    with pytest.raises(ValidationError) as err:
        parse_amount("1.00", "ABC")
    assert err.value.details == {"field": "currency"}


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [
        (123450, "USD", "1234.50"),
        (1, "USD", "0.01"),
        (0, "USD", "0.00"),
        (-1234, "USD", "-12.34"),
        (-5, "USD", "-0.05"),
        (1234, "JPY", "1234"),
        (0, "JPY", "0"),
        (-7, "JPY", "-7"),
        (1234, "BHD", "1.234"),
        (5, "BHD", "0.005"),
        (-1005, "BHD", "-1.005"),
    ],
)
def test_format_amount_writes_every_minor_digit(minor: int, currency: str, text: str) -> None:
    assert format_amount(minor, currency) == text


@pytest.mark.parametrize("value", [1.5, True, "100", None])
def test_format_amount_refuses_anything_but_an_int(value: object) -> None:
    with pytest.raises(TypeError):
        format_amount(value, "USD")  # type: ignore[arg-type]


MONEY_CURRENCIES = st.sampled_from(["USD", "JPY", "BHD", "EUR", "KWD", "CLF"])


@given(minor=st.integers(min_value=-(2**63), max_value=2**63 - 1), currency=MONEY_CURRENCIES)
def test_format_then_parse_is_the_identity(minor: int, currency: str) -> None:
    assert parse_amount(format_amount(minor, currency), currency) == minor


@given(
    negative=st.booleans(),
    whole=st.integers(min_value=0, max_value=10**15),
    frac=st.integers(min_value=0, max_value=999),
    currency=st.sampled_from(["USD", "JPY", "BHD"]),
)
def test_parse_then_format_returns_the_canonical_text(
    negative: bool, whole: int, frac: int, currency: str
) -> None:
    places = minor_units(currency)
    text = f"{whole}.{frac % 10**places:0{places}d}" if places else str(whole)
    if negative and (whole or frac % 10**places):
        text = "-" + text
    assert format_amount(parse_amount(text, currency), currency) == text


@given(text=st.text(alphabet="0123456789.-, e+", max_size=12))
def test_parse_amount_either_refuses_or_round_trips(text: str) -> None:
    try:
        minor = parse_amount(text, "USD")
    except ValidationError:
        return
    assert isinstance(minor, int)
    assert parse_amount(format_amount(minor, "USD"), "USD") == minor


@pytest.mark.parametrize("code", ["USD", "JPY", "BHD", "EUR"])
def test_validate_currency_returns_a_valid_code(code: str) -> None:
    assert validate_currency(code) == code


@pytest.mark.parametrize("code", ["usd", "Usd", "US", "USDD", "", "ABC", "U$D", None, 840, b"USD"])
def test_validate_currency_refuses_what_is_not_an_iso_4217_code(code: object) -> None:
    with pytest.raises(ValidationError, match="ISO 4217") as err:
        validate_currency(code)  # type: ignore[arg-type]
    assert err.value.details == {"field": "currency"}
