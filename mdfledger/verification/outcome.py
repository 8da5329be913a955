"""What a check found: the shared result type of every proof-of-performance check."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"  # the proof could not be judged: a person must look


class CheckKind(StrEnum):
    INVOICE = "invoice"  # OCR'd invoice against the claim
    PAGE = "page"  # landing page or social post is live and carries the markers
    LEADS = "leads"  # lead list counts and duplicates
    PHOTO = "photo"  # photos open as images
    DATES = "dates"  # activity inside the request, claim inside the deadline
    AMOUNT = "amount"  # claimed amount within the share of the verified cost


@dataclass(frozen=True)
class Finding:
    """One check's result. `summary` is the sentence finance reads ("Invoice total 1,234.56 USD
    matches the claimed cost"); `evidence` is what the check saw, JSON-serialisable (strings,
    numbers, booleans, lists, dicts; dates as ISO strings). `score` is 0-100: how well the proof
    matched (100 = exactly). `transient` marks failures a later retry may not repeat (a timeout,
    a 503): the job retries those before recording them."""

    outcome: Outcome
    score: int
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)
    transient: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.score <= 100:
            raise ValueError(f"score must be 0-100, not {self.score}")


class Unreadable(Exception):
    """A document the checks cannot read (corrupt, encrypted, too big, too many pages, wrong
    encoding). The message is the reason, worded for finance: "the PDF is encrypted"."""
