"""The page check: is the landing page (or social post) live, and does it carry the markers?

A marker ("Acme Solutions", "Q3-CLOUD") is found when it appears in the page's title,
description or visible text, ignoring case, spacing, punctuation and diacritics, or nearly so
(rapidfuzz partial_ratio >= 90: "ACME Solution" passes for "Acme Solutions"). A close match
must keep the marker's numbers: "PROMO-2024" is not "PROMO-2025", however similar. Social posts
are pages like any other.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rapidfuzz import fuzz

from mdfledger.verification.fetch import FetchPolicy, Page, fetch
from mdfledger.verification.outcome import Finding, Outcome

__all__ = ["FUZZY_THRESHOLD", "MarkerMatch", "check_page", "find_marker"]

FUZZY_THRESHOLD = 90
SNIPPET_CHARS = 60  # of context either side of a match in the evidence
_WORD = re.compile(r"(?:[^\W_]|[\u0300-\u036f])+")  # letters and digits, with combining accents
_DIGITS = re.compile(r"\d+")

Fetcher = Callable[..., Page]


def _normal_word(word: str) -> str:
    if word.isascii():
        return word.lower()
    plain = unicodedata.normalize("NFKD", word)
    return "".join(c for c in plain if not unicodedata.combining(c)).casefold()


def normalise(text: str) -> str:
    """Lower case, no diacritics, words separated by single spaces, punctuation dropped."""
    return " ".join(filter(None, (_normal_word(m.group()) for m in _WORD.finditer(text))))


class _Haystack:
    """A text normalised word by word, remembering where each word came from to quote it."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.words: list[str] = []
        self.spans: list[tuple[int, int]] = []  # of each word in the original text
        for match in _WORD.finditer(text):
            word = _normal_word(match.group())
            if word:
                self.words.append(word)
                self.spans.append(match.span())
        self.normal = " ".join(self.words)
        self.starts = _offsets(self.words, 1)  # of each word in `normal`
        self.joined = "".join(self.words)  # no spaces: "Q3 CLOUD" is found in "#Q3CLOUD"
        self.joined_starts = _offsets(self.words, 0)
        self.joined_ends = {
            start + len(w) for start, w in zip(self.joined_starts, self.words, strict=True)
        }

    def exact(self, wanted: str) -> tuple[int, int] | None:
        """First and last word of the first whole-word occurrence, spaces ignored."""
        target = wanted.replace(" ", "")
        at = self.joined.find(target)
        while at >= 0:
            first = bisect_right(self.joined_starts, at) - 1
            if self.joined_starts[first] == at and at + len(target) in self.joined_ends:
                return first, bisect_right(self.joined_starts, at + len(target) - 1) - 1
            at = self.joined.find(target, at + 1)
        return None

    def words_around(self, start: int, end: int) -> tuple[int, int]:
        """First and last word touched by normal[start:end]."""
        first = max(bisect_right(self.starts, start) - 1, 0)
        return first, max(bisect_right(self.starts, max(end - 1, start)) - 1, first)

    def snippet(self, first: int, last: int) -> str:
        begin, end = self.spans[first][0], self.spans[last][1]
        left = max(begin - SNIPPET_CHARS, 0)
        right = min(end + SNIPPET_CHARS, len(self.text))
        quoted = " ".join(self.text[left:right].split())
        return ("…" if left else "") + quoted + ("…" if right < len(self.text) else "")


def _offsets(words: list[str], gap: int) -> list[int]:
    offsets, position = [], 0
    for word in words:
        offsets.append(position)
        position += len(word) + gap
    return offsets


@dataclass(frozen=True)
class MarkerMatch:
    marker: str
    found: bool
    score: int  # 100 exact; the rapidfuzz score of the best near match otherwise
    how: str | None  # "exact", "close" or None
    where: str  # the page's text around the best match ("" when nothing came near)


def find_marker(marker: str, text: str) -> MarkerMatch:
    """Look for one marker in a text: exactly (after normalising), else fuzzily."""
    return _find(marker, _Haystack(text))


def _find(marker: str, hay: _Haystack) -> MarkerMatch:
    wanted = normalise(marker)
    if not wanted:
        return MarkerMatch(marker, True, 100, "exact", "")
    words = hay.exact(wanted)
    if words is not None:
        return MarkerMatch(marker, True, 100, "exact", hay.snippet(*words))
    best = fuzz.partial_ratio_alignment(wanted, hay.normal) if hay.normal else None
    if best is None or best.score == 0:
        return MarkerMatch(marker, False, 0, None, "")
    first, last = hay.words_around(best.dest_start, best.dest_end)
    seen = " ".join(hay.words[first : last + 1])
    score = int(best.score)  # floor: 89.6 is below the bar, and reads so
    if _DIGITS.findall(wanted) != _DIGITS.findall(seen):
        score = min(score, FUZZY_THRESHOLD - 1)  # a different code or year is another marker
    found = score >= FUZZY_THRESHOLD
    return MarkerMatch(marker, found, score, "close" if found else None, hay.snippet(first, last))


# -- the check -----------------------------------------------------------------------------------


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _short(url: str, limit: int = 120) -> str:
    return url if len(url) <= limit else url[: limit - 1] + "…"


def _size(count: int) -> str:
    if count < 1024:
        return f"{count} bytes"
    if count < 1024 * 1024:
        return f"{count / 1024:.1f} KB"
    return f"{count / (1024 * 1024):.1f} MB"


def _evidence(page: Page, matches: Sequence[MarkerMatch], where: dict[str, str]) -> dict[str, Any]:
    return {
        "requested_url": page.requested_url,
        "final_url": page.final_url,
        "redirects": list(page.redirects),
        "status": page.status,
        "content_type": page.content_type,
        "encoding": page.encoding,
        "title": page.title,
        "excerpt": page.excerpt,
        "sha256": page.sha256,
        "bytes": page.bytes_read,
        "truncated": page.truncated,
        "elapsed_seconds": page.elapsed,
        "fetched_at": page.fetched_at.isoformat(),
        "error": page.error,
        "markers": [
            {
                "marker": m.marker,
                "found": m.found,
                "score": m.score,
                "match": m.how,
                "in": where.get(m.marker, ""),
                "where": m.where,
            }
            for m in matches
        ],
    }


def _search(page: Page, markers: Sequence[str]) -> tuple[list[MarkerMatch], dict[str, str]]:
    """Each marker's best match over the title, the description and the visible text."""
    sections = [(name, _Haystack(text)) for name, text in _sections(page) if text]
    matches, where = [], {}
    for marker in markers:
        best, best_in = MarkerMatch(marker, False, 0, None, ""), ""
        for name, hay in sections:
            match = _find(marker, hay)
            if match.score > best.score:
                best, best_in = match, name
            if match.score == 100:
                break
        matches.append(best)
        if best.found:
            where[marker] = best_in
    return matches, where


def _sections(page: Page) -> tuple[tuple[str, str], ...]:
    return (("title", page.title), ("description", page.description), ("text", page.text))


def _unreached(page: Page, deadline: float) -> tuple[Outcome, str, bool]:
    """Outcome, summary and transient flag when no usable answer came."""
    error = page.error or "no answer"
    if page.refused:
        detail = error.removeprefix("refused: ")
        hop = f" (redirected from {_short(page.requested_url)})" if page.redirects else ""
        return Outcome.FAIL, f"Refused to fetch {_short(page.final_url)}{hop}: {detail}", False
    if error.startswith("timed out after"):
        words = (
            f"Page did not finish within {deadline:g} s (stopped after {_size(page.bytes_read)})"
        )
        return Outcome.INCONCLUSIVE, words, page.transient
    if page.transient:
        words = f"Page could not be reached on {_when(page.fetched_at)}: {error}"
        return Outcome.INCONCLUSIVE, words, True
    return Outcome.FAIL, f"Page could not be fetched on {_when(page.fetched_at)}: {error}", False


def check_page(
    url: str,
    markers: Sequence[str],
    policy: FetchPolicy,
    *,
    now: datetime | None = None,
    fetcher: Fetcher = fetch,
    final_attempt: bool = False,
) -> Finding:
    """Fetch `url` and look for every marker. A server error (5xx) or a timeout is inconclusive
    and transient so the job retries; on the `final_attempt` a server that still answers 5xx
    fails the check (a timeout stays inconclusive: nobody saw the page)."""
    wanted = list(dict.fromkeys(m.strip() for m in markers if normalise(m)))
    page = fetcher(url, policy, now=now)
    status = page.status
    if page.error is not None:
        outcome, summary, transient = _unreached(page, policy.deadline)
        # a page that broke off mid-body still shows the person who looks what it had
        partial = status is not None and 200 <= status < 300
        matches, where = _search(page, wanted) if partial else ([], {})
        return Finding(outcome, 0, summary, _evidence(page, matches, where), transient)
    assert status is not None  # no error means the server answered
    when = _when(page.fetched_at)
    if status >= 500 or status == 429:
        reason = "server error" if status >= 500 else "too many requests"
        summary = f"Page returned {status} ({reason}) on {when}"
        if final_attempt and status >= 500:
            return Finding(Outcome.FAIL, 0, summary, _evidence(page, [], {}))
        return Finding(Outcome.INCONCLUSIVE, 0, summary, _evidence(page, [], {}), True)
    if not 200 <= status < 300:
        return Finding(
            Outcome.FAIL, 0, f"Page returned {status} on {when}", _evidence(page, [], {})
        )

    matches, where = _search(page, wanted)
    evidence = _evidence(page, matches, where)
    score = min((m.score for m in matches), default=100)
    missing = [m.marker for m in matches if not m.found]
    live = f"Page is live ({status})"
    if not missing:
        found = [
            m.marker if m.how == "exact" else f"{m.marker} (close match, {m.score})"
            for m in matches
        ]
        listed = f"; found: {', '.join(found)}" if found else ""
        return Finding(Outcome.PASS, score, f"{live} at {_short(page.final_url)}{listed}", evidence)
    absent = ", ".join(missing)
    if not (page.text or page.title or page.description):
        kind = page.content_type or "empty"
        summary = f"{live} but has no text to search ({kind}); cannot find: {absent}"
        return Finding(Outcome.INCONCLUSIVE, score, summary, evidence)
    if page.truncated:
        summary = f"{live} but does not mention: {absent} (first {_size(page.bytes_read)} read)"
        return Finding(Outcome.INCONCLUSIVE, score, summary, evidence)
    return Finding(Outcome.FAIL, score, f"{live} but does not mention: {absent}", evidence)
