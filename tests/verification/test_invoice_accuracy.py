"""The invoice reader on the generated invoice set: every kind of document (text PDFs, image
PDFs, clean, scanned, skewed, rotated, low-resolution and JPEG-damaged images) in several
layouts, fonts, languages, currencies and number and date formats.

The floors are the figures measured on this subset (24 samples, seed 7) minus a margin, so a
change that makes reading worse fails here; `mdfledger bench ocr` measures the full set."""

from __future__ import annotations

import pytest

from mdfledger.verification import invoice_samples
from mdfledger.verification.ocr_bench import AccuracyReport, measure

# Measured on this subset: total, currency and date 24/24, number 23/24, issuer 21/24 (OCR reads
# "Lumière" as "Lumiere": names are compared exactly, bar case and spacing). The margins allow
# a slip or two more per field.
FLOORS = {"total": 0.95, "currency": 0.95, "issued_on": 0.91, "number": 0.87, "issuer": 0.79}


@pytest.fixture(scope="module")
def report() -> AccuracyReport:
    return measure(invoice_samples.generate(24, seed=7))


def test_the_subset_has_every_kind_of_document():
    names = [s.name for s in invoice_samples.generate(24, seed=7)]
    for kind in invoice_samples.KINDS:
        assert sum(f"-{kind}-" in name for name in names) >= 2, kind


def test_the_total_is_read_exactly_on_at_least_95_percent(report: AccuracyReport):
    assert report.accuracy("total") >= 0.95, "\n".join(report.lines())
    assert not report.unreadable


@pytest.mark.parametrize("field", sorted(FLOORS))
def test_each_field_stays_above_its_measured_floor(report: AccuracyReport, field: str):
    assert report.accuracy(field) >= FLOORS[field], "\n".join(report.lines())


def test_the_report_gives_the_benchmark_figures(report: AccuracyReport):
    # Speed is measured by `mdfledger bench ocr` (docs/benchmarks.md), not asserted here.
    lines = report.lines()
    assert lines[0].startswith("Invoice reading on 24 invoices")
    assert any(line.strip().startswith("total") for line in lines)
