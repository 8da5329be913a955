"""Verification tests: OCR tests need the Tesseract program (Debian: tesseract-ocr)."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.claims.conftest import desk  # noqa: F401 - the claims tests' program and people
from tests.conftest import skip_or_fail

os.environ.setdefault("OMP_THREAD_LIMIT", "1")  # one thread: ~5x faster here
OCR_MODULES = ("test_invoice", "test_invoice_accuracy", "test_ocr_cli")


@pytest.fixture(autouse=True)
def _tesseract(request: pytest.FixtureRequest) -> None:
    if request.module.__name__.rsplit(".", 1)[-1] in OCR_MODULES and not shutil.which("tesseract"):
        skip_or_fail("OCR tests need Tesseract: apt-get install tesseract-ocr (see README)")
