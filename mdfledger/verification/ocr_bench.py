"""How well the invoice reader does: per-field accuracy and seconds per page over a sample set
(`invoice_samples.generate()`), for `mdfledger bench ocr` and the accuracy test."""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from mdfledger.verification.invoice import InvoiceReading, read_invoice
from mdfledger.verification.invoice_samples import Sample
from mdfledger.verification.outcome import Unreadable

FIELDS = ("issuer", "number", "issued_on", "total", "currency")


@dataclass(frozen=True)
class Miss:
    sample: str
    field: str
    expected: str
    read: str
    confidence: int


@dataclass(frozen=True)
class PageTime:
    sample: str
    method: str  # "text" or "ocr"
    seconds: float  # the document's wall-clock time divided by its pages read
    cpu_seconds: float  # likewise CPU time, ours and Tesseract's: what other load does not inflate


@dataclass(frozen=True)
class AccuracyReport:
    samples: int
    correct: dict[str, int]  # field -> samples where it was read exactly right
    pages: tuple[PageTime, ...]
    misses: tuple[Miss, ...]
    unreadable: tuple[tuple[str, str], ...]  # (sample, reason)
    wall_seconds: float

    def accuracy(self, field: str) -> float:
        """Share of samples (0-1) with `field` read exactly right."""
        return self.correct[field] / self.samples if self.samples else 0.0

    def seconds(self, method: str | None = "ocr", *, cpu: bool = False) -> list[float]:
        """Seconds of every page read by `method` ("ocr", "text", or None for all)."""
        return sorted(
            p.cpu_seconds if cpu else p.seconds
            for p in self.pages
            if method is None or p.method == method
        )

    def median(self, method: str | None = "ocr", *, cpu: bool = False) -> float:
        times = self.seconds(method, cpu=cpu)
        return statistics.median(times) if times else 0.0

    def p95(self, method: str | None = "ocr", *, cpu: bool = False) -> float:
        times = self.seconds(method, cpu=cpu)
        return times[math.ceil(0.95 * len(times)) - 1] if times else 0.0

    def lines(self) -> list[str]:
        ocr, text = self.seconds("ocr"), self.seconds("text")
        out = [
            f"Invoice reading on {self.samples} invoices: {len(self.pages)} pages "
            f"({len(ocr)} OCR'd, {len(text)} from a text layer), {self.wall_seconds:.1f} s",
        ]
        for field in FIELDS:
            out.append(
                f"  {field:<10} {self.correct[field]:>4}/{self.samples:<4} "
                f"{100 * self.accuracy(field):5.1f}% exact"
            )
        if ocr:
            cpu = self.seconds("ocr", cpu=True)
            out.append(
                f"  seconds per OCR'd page, wall clock: median {self.median():.2f}, "
                f"p95 {self.p95():.2f}, max {ocr[-1]:.2f}"
            )
            out.append(
                f"  seconds per OCR'd page, CPU (one core): median {self.median(cpu=True):.2f}, "
                f"p95 {self.p95(cpu=True):.2f}, max {cpu[-1]:.2f}"
            )
        if text:
            out.append(f"  seconds per text-layer page: median {self.median('text'):.3f}")
        for name, reason in self.unreadable:
            out.append(f"  unreadable: {name}: {reason}")
        for miss in self.misses:
            out.append(
                f"  miss: {miss.sample}: {miss.field} expected {miss.expected}, "
                f"read {miss.read} (confidence {miss.confidence})"
            )
        return out


def _same(field: str, expected: object, read: object) -> bool:
    if field == "issuer":  # names compare without regard to case and spacing
        return isinstance(read, str) and " ".join(read.casefold().split()) == " ".join(
            str(expected).casefold().split()
        )
    return read == expected


def _cpu() -> float:
    """CPU seconds used so far by this process and its finished children (Tesseract)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def measure(
    samples: Iterable[Sample], reader: Callable[[bytes], InvoiceReading] = read_invoice
) -> AccuracyReport:
    """Read every sample and compare each field with what the sample says it shows."""
    started = time.perf_counter()
    count = 0
    correct = dict.fromkeys(FIELDS, 0)
    pages: list[PageTime] = []
    misses: list[Miss] = []
    unreadable: list[tuple[str, str]] = []
    for sample in samples:
        count += 1
        cpu_before = _cpu()
        try:
            reading = reader(sample.data)
        except Unreadable as error:
            unreadable.append((sample.name, str(error)))
            continue
        read = max(1, reading.pages_read)
        page = PageTime(
            sample.name, reading.method, reading.seconds / read, (_cpu() - cpu_before) / read
        )
        pages += [page] * reading.pages_read
        for field in FIELDS:
            expected = getattr(sample.expected, field)
            got = getattr(reading, field)
            if _same(field, expected, got.value):
                correct[field] += 1
            else:
                misses.append(
                    Miss(sample.name, field, repr(expected), repr(got.value), got.confidence)
                )
    return AccuracyReport(
        samples=count,
        correct=correct,
        pages=tuple(pages),
        misses=tuple(misses),
        unreadable=tuple(unreadable),
        wall_seconds=time.perf_counter() - started,
    )
