"""Money at the edges: ISO 4217 codes, minor units, and exact decimal strings.

Inside mdfledger an amount is an int of minor units plus a currency code. These helpers turn
user-facing decimal strings into minor units and back; nothing here ever touches a float.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from babel.numbers import get_currency_precision, is_currency

from mdfledger.errors import ValidationError

_AMOUNT_RE = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")  # ASCII digits only: "١٢" is not 12


def validate_currency(code: str) -> str:
    if not isinstance(code, str) or len(code) != 3 or not code.isupper() or not is_currency(code):
        raise ValidationError(f"{code!r} is not an ISO 4217 currency code", field="currency")
    return code


def minor_units(currency: str) -> int:
    """Number of decimal places of the currency's minor unit (USD 2, JPY 0, BHD 3)."""
    return get_currency_precision(validate_currency(currency))


def parse_amount(text: str, currency: str) -> int:
    """'1234.50' USD -> 123450. Refuses more decimals than the currency has: no silent rounding."""
    if not isinstance(text, str) or not _AMOUNT_RE.match(text.strip()):
        raise ValidationError(f"{text!r} is not a decimal amount like 1234.50", field="amount")
    places = minor_units(currency)
    try:
        value = Decimal(text.strip())
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only valid decimals
        raise ValidationError(f"{text!r} is not a decimal amount", field="amount") from exc
    scaled = value.scaleb(places)
    if scaled != scaled.to_integral_value():
        raise ValidationError(
            f"{text} has more than {places} decimal places for {currency}", field="amount"
        )
    return int(scaled)


def format_amount(minor: int, currency: str) -> str:
    """123450 USD -> '1234.50'; the exact inverse of parse_amount."""
    if not isinstance(minor, int) or isinstance(minor, bool):
        raise TypeError("amounts are ints of minor units")
    places = minor_units(currency)
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(minor), 10**places)
    return f"{sign}{whole}.{frac:0{places}d}" if places else f"{sign}{whole}"
