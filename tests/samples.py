"""Sample proof files built in code (no binary fixtures in the repository)."""

from __future__ import annotations

import io

from PIL import Image
from sqlalchemy.orm import Session

from mdfledger import claims, verification
from mdfledger.actor import Actor
from mdfledger.demo_proof import pdf_document
from mdfledger.storage import ProofStore


def pdf_bytes(text: str = "Invoice 42") -> bytes:
    """A small, valid one-page PDF (the demo's generator: one line of text)."""
    return pdf_document([text])


def image_bytes(kind: str, size: tuple[int, int] = (64, 48), mode: str = "RGB") -> bytes:
    # Noise, so the compressed data is long enough that cutting it off is noticed.
    image = Image.effect_noise(size, 80).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, kind)
    return buffer.getvalue()


def submit_checked(
    session: Session, actor: Actor, store: ProofStore, claim_id: int, **kw
) -> claims.Claim:
    """Submit a claim and check its proof in the same session, as the job does after the
    commit (sessions made outside the app have no job runner)."""
    claim = claims.submit_claim(session, actor, claim_id, **kw)
    if claim.state == claims.ClaimState.VERIFYING:
        verification.verify(
            session, verification.VERIFIER, claim.id, verification.Toolkit(store),
            now=kw.get("now"),
        )  # fmt: skip
    return claim
