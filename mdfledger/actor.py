"""Who is acting: every service takes one, and the ledger and audit log record it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class Actor:
    kind: Literal["user", "system"]
    id: str
    role: str | None = None
    partner_id: int | None = None  # set for partner users: every query they reach is scoped to it

    @classmethod
    def system(cls, name: str) -> Actor:
        return cls("system", name, "system")

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.id}"
