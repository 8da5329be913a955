"""`mdfledger bench urls`: how many page checks a second, against a scripted loopback server.

Each check is the real thing (resolve, vet the address, connect, GET, decode, extract the text,
match the markers) with the server allow-listed, as a test deployment would run it. The target
is 100 checks in under 5 seconds, one at a time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from mdfledger.verification.fetch import FetchPolicy
from mdfledger.verification.outcome import Outcome
from mdfledger.verification.pages import check_page
from mdfledger.verification.testserver import PageServer, html

__all__ = ["TARGET_SECONDS", "measure"]

TARGET_COUNT = 100
TARGET_SECONDS = 5.0
MARKERS = ("Acme Solutions", "Q3-CLOUD")
_PAGE = html(
    "<h1>Spring cloud days</h1>"
    + "<p>Partners save on the cloud bundle this quarter. </p>" * 40
    + "<p>Brought to you by Acme Solutions. Use code Q3-CLOUD at checkout.</p>",
    title="Spring cloud days | Acme",
)


def _timed(count: int, run: Callable[[int], Outcome], threads: int) -> tuple[float, int]:
    started = time.perf_counter()
    if threads <= 1:
        outcomes = [run(n) for n in range(count)]
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            outcomes = list(pool.map(run, range(count)))
    return time.perf_counter() - started, sum(o is Outcome.PASS for o in outcomes)


def measure(count: int = TARGET_COUNT, threads: int = 8) -> list[str]:
    """Check `count` URLs one at a time, then with `threads` threads; lines to print."""
    if count < 1:
        raise ValueError("count must be at least 1")
    policy = FetchPolicy(allow_hosts=frozenset({"127.0.0.1"}))
    lines = [f"url checks: {count} page checks against a loopback server (markers: 2)"]
    with PageServer({"/landing": _PAGE}) as server:

        def run(n: int) -> Outcome:
            return check_page(server.url(f"/landing?n={n}"), MARKERS, policy).outcome

        runs = [("one at a time", 1)] + ([(f"{threads} threads", threads)] if threads > 1 else [])
        sequential = 0.0
        for label, workers in runs:
            seconds, passed = _timed(count, run, workers)
            sequential = sequential or seconds
            lines.append(
                f"  {label:>14}: {seconds:6.2f} s, {count / seconds:7.1f} URLs/s"
                f" ({passed}/{count} passed)"
            )
    per_hundred = sequential * TARGET_COUNT / count
    verdict = "met" if per_hundred < TARGET_SECONDS else "MISSED"
    lines.append(
        f"  target: {TARGET_COUNT} checks under {TARGET_SECONDS:g} s one at a time: {verdict}"
        f" ({per_hundred:.2f} s per {TARGET_COUNT})"
    )
    return lines
