"""Checks for the fields people type: trimmed text, codes, choices, whole numbers, amounts.

Each returns the clean value or raises ValidationError naming the field, in words a user reads.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal

from mdfledger.errors import ValidationError

CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")


def clean_text(value: object, field: str, limit: int, *, required: bool = True) -> str:
    """Trimmed text of at most `limit` characters; blank only when not required."""
    if value is None and not required:
        return ""
    if not isinstance(value, str) or "\x00" in value:
        raise ValidationError(f"{field.replace('_', ' ')} must be text", field=field)
    value = value.strip()
    if required and not value:
        raise ValidationError(f"{field.replace('_', ' ')} is required", field=field)
    if len(value) > limit:
        raise ValidationError(
            f"{field.replace('_', ' ')} may have at most {limit} characters", field=field
        )
    return value


def check_code(value: object, field: str = "code") -> str:
    if not isinstance(value, str) or not CODE_RE.match(value.strip()):
        raise ValidationError(
            f"{field} must be 1-40 letters, digits, '.', '_' or '-', starting with a letter or"
            " digit",
            field=field,
        )
    return value.strip()


def check_choice(value: object, allowed: Iterable[str], field: str) -> str:
    allowed = list(allowed)
    if not isinstance(value, str) or value not in allowed:
        raise ValidationError(
            f"{field.replace('_', ' ')} must be one of {', '.join(allowed)}", field=field
        )
    return value


def check_whole(value: object, field: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValidationError(
            f"{field.replace('_', ' ')} must be a whole number from {low} to {high}", field=field
        )
    return value


def positive_amount(value: object, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**62:
        raise ValidationError(f"{field} must be a positive amount", field=field)
    return value


PERCENT_PATTERN = r"^[0-9]{1,3}(\.[0-9]+)?$"  # also published in the OpenAPI document


def parse_percent(
    text: object, field: str, *, low: Decimal = Decimal("0.01"), high: Decimal = Decimal(100)
) -> int:
    """'12.5' (or '12.5%') -> 1250 basis points, exactly: never more than 2 decimal places."""
    label = field.replace("_", " ")
    cleaned = text.strip().removesuffix("%").strip() if isinstance(text, str) else ""
    if not re.match(PERCENT_PATTERN, cleaned):
        raise ValidationError(f"{label} must be a percentage such as 50 or 12.5", field=field)
    value = Decimal(cleaned)
    scaled = value.scaleb(2)
    if scaled != scaled.to_integral_value():
        raise ValidationError(f"{label} may have at most 2 decimal places", field=field)
    if not low <= value <= high:
        raise ValidationError(f"{label} must be from {low}% to {high}%", field=field)
    return int(scaled)


def percent_text(basis_points: int) -> str:
    """5000 -> "50", 250 -> "2.5", 1 -> "0.01": exact, no exponent, no trailing zeros."""
    return format(Decimal(basis_points).scaleb(-2).normalize(), "f")
