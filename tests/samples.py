"""Sample proof files built in code (no binary fixtures in the repository)."""

from __future__ import annotations

import io

from PIL import Image

from mdfledger.demo_proof import pdf_document


def pdf_bytes(text: str = "Invoice 42") -> bytes:
    """A small, valid one-page PDF (the demo's generator: one line of text)."""
    return pdf_document([text])


def image_bytes(kind: str, size: tuple[int, int] = (64, 48), mode: str = "RGB") -> bytes:
    # Noise, so the compressed data is long enough that cutting it off is noticed.
    image = Image.effect_noise(size, 80).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, kind)
    return buffer.getvalue()
